//! A throwaway PostgreSQL server on loopback for the Postgres backend tests.
//!
//! Started once per test binary from Debian's `postgresql` package (which `.ci/run`
//! installs): `initdb` into a temporary directory, then `postgres` under a small shell that
//! stops it when our end of its stdin closes, which happens when the test process exits,
//! however it exits; the shell then deletes the data directory (the `TempDir` lives in a
//! static, which is never dropped). Each test gets its own database. As root (CI), the server runs as the
//! `postgres` user, because PostgreSQL refuses to run as root.

use std::io::Write;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::skip::is_root;

struct Pg {
    port: u16,
    _dir: tempfile::TempDir,
    // Held open for the life of the process; closing it stops the server.
    _stdin: Mutex<ChildStdin>,
    _child: Mutex<Child>,
}

static PG: OnceLock<Result<Pg, String>> = OnceLock::new();
static NEXT_DB: AtomicU32 = AtomicU32::new(0);

fn bin_dir() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("postgres").exists())
        .collect();
    dirs.sort();
    dirs.pop()
}

fn as_pg_user(program: &str) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--", program]);
        c
    } else {
        Command::new(program)
    }
}

fn start() -> Result<Pg, String> {
    let bin = bin_dir().ok_or("PostgreSQL is not installed (/usr/lib/postgresql/*/bin)")?;
    let dir = tempfile::Builder::new()
        .prefix("classrelay-pg")
        .tempdir_in("/tmp")
        .map_err(|e| e.to_string())?;
    if is_root() {
        let ok = Command::new("chown")
            .args(["postgres:postgres", &dir.path().display().to_string()])
            .status()
            .map_err(|e| e.to_string())?;
        if !ok.success() {
            return Err("chown to postgres failed".into());
        }
    }
    let data = dir.path().join("data");
    let out = as_pg_user(&bin.join("initdb").display().to_string())
        .args([
            "-D",
            &data.display().to_string(),
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--no-locale",
        ])
        .output()
        .map_err(|e| format!("initdb: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let script = format!(
        "'{pg}' -D '{data}' -k '{sock}' -p {port} -c listen_addresses=127.0.0.1 -c fsync=off \
         -c synchronous_commit=off -c full_page_writes=off >'{sock}/log' 2>&1 & pid=$!; \
         cat >/dev/null; kill -INT $pid; wait $pid; rm -rf '{sock}'",
        pg = bin.join("postgres").display(),
        data = data.display(),
        sock = dir.path().display(),
    );
    let mut child = as_pg_user("sh")
        .args(["-c", &script])
        .stdin(Stdio::piped())
        .spawn()
        .map_err(|e| format!("starting postgres: {e}"))?;
    let stdin = child.stdin.take().ok_or("no stdin")?;
    // Ready when it accepts connections.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ready = Command::new(bin.join("pg_isready"))
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres"])
            .stdout(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if ready {
            break;
        }
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(dir.path().join("log")).unwrap_or_default();
            return Err(format!("postgres did not become ready in 30 s:\n{log}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(Pg {
        port,
        _dir: dir,
        _stdin: Mutex::new(stdin),
        _child: Mutex::new(child),
    })
}

/// A URL to a new, empty database on the shared server; `None` (skipped, see
/// [`super::skip::because`]) where PostgreSQL is not installed, except on CI, where that is a
/// failure.
pub async fn fresh_database() -> Option<String> {
    let pg = match PG.get_or_init(start) {
        Ok(pg) => pg,
        Err(e) => {
            super::skip::because(format!("PostgreSQL: {e} (apt-get install -y postgresql)"));
            return None;
        }
    };
    let name = format!(
        "t{}_{}",
        std::process::id(),
        NEXT_DB.fetch_add(1, Ordering::Relaxed)
    );
    let admin = format!("postgres://postgres@127.0.0.1:{}/postgres", pg.port);
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&admin)
        .await
        .expect("connect to postgres");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&pool)
        .await
        .expect("create database");
    pool.close().await;
    let _ = std::io::stdout().flush();
    Some(format!("postgres://postgres@127.0.0.1:{}/{name}", pg.port))
}
