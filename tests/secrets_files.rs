//! Files and secrets on disk and on stdout: the database (and its `-wal`/`-shm`), the signing
//! secret and the first administrator's password file are owner-only (0600, the data
//! directory 0700) from the moment they are created; the password file goes once the admin
//! has a password of their own; a configured `auth.secret` is at least 32 bytes; and
//! `classrelay serve` prints no token or password unless `--dev`.
//!
//! The binary tests run `classrelay` under `umask 000`, so a file created with the default mode
//! would show 0644/0666. The strace test proves "from the start": every file is created with
//! mode 0600 by the `open` that creates it, and nothing is chmod'ed afterwards. It needs
//! `strace`; without it the test prints SKIPPED, unless `CI` is set, when it fails.
//!
//! Run: `cargo test --test secrets_files`.

mod support;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use classrelay::auth::people;
use classrelay::config::ConfigError;
use classrelay::{Config, Server, StartError};
use reqwest::{Method, StatusCode};
use serde_json::json;
use support::school::{App, Backend};

/// The files a first start leaves in the data directory, all owner-only.
const PRIVATE_FILES: [&str; 5] = [
    "classrelay.db",
    "classrelay.db-wal",
    "classrelay.db-shm",
    "secret",
    "admin-password",
];

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// A `classrelay` run, killed when dropped (also when an assertion fails first).
struct Running {
    child: Child,
    /// The server's pid once it printed it (under strace the child is strace).
    server: Option<u32>,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(pid) = self.server {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `classrelay <args>` in `cwd` under `umask 000`, with its data in `<cwd>/data` (absolute, so
/// traced paths are recognisable), loopback and ephemeral ports. With `trace`, the whole run
/// is under `strace -f`, writing to that file.
fn spawn(cwd: &Path, args: &[&str], trace: Option<&Path>) -> Running {
    let mut c = match trace {
        Some(log) => {
            let mut c = Command::new("strace");
            c.args(["-f", "-y", "-qq", "-o"]).arg(log).args([
                "-e",
                "trace=open,openat,creat,mkdir,mkdirat,chmod,fchmod,fchmodat",
                "--",
                "sh",
            ]);
            c
        }
        None => Command::new("sh"),
    };
    // `exec` keeps the shell's pid, so killing the child (or the printed pid) ends the server.
    c.arg("-c")
        .arg(r#"umask 000; echo "pid $$"; exec "$0" "$@""#)
        .arg(env!("CARGO_BIN_EXE_classrelay"))
        .args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("CLASSRELAY_") {
            c.env_remove(k);
        }
    }
    c.current_dir(cwd)
        .env("CLASSRELAY_DATA__DIR", cwd.join("data"))
        .env("CLASSRELAY_HTTP__LISTEN", "127.0.0.1:0")
        .env("CLASSRELAY_MEDIA__UDP_PORT", "0")
        .env("CLASSRELAY_MEDIA__WORKERS", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map(|child| Running {
            child,
            server: None,
        })
        .unwrap()
}

/// What the server printed up to its listening line (the last line of the start).
struct Started {
    text: String,
    base: String,
}

fn read_start(run: &mut Running) -> Started {
    let stdout = run.child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(60)) {
        if let Some(p) = line.strip_prefix("pid ") {
            run.server = p.trim().parse().ok();
            continue;
        }
        let base = line
            .strip_prefix("classrelay listening on ")
            .and_then(|rest| rest.split_whitespace().next())
            .map(str::to_string);
        lines.push(line);
        if let Some(base) = base {
            assert!(run.server.is_some(), "the shell prints its pid first");
            return Started {
                text: lines.join("\n"),
                base,
            };
        }
    }
    panic!("no listening line; output so far:\n{}", lines.join("\n"));
}

#[test]
fn first_start_under_umask_000_leaves_only_owner_only_files() {
    let tmp = tempfile::tempdir().unwrap();
    let mut run = spawn(tmp.path(), &["serve"], None);
    let started = read_start(&mut run);
    let data = tmp.path().join("data");
    let modes: Vec<(&str, u32)> = PRIVATE_FILES
        .iter()
        .map(|f| (*f, mode(&data.join(f))))
        .collect();
    let dir_mode = mode(&data);
    let password = std::fs::read_to_string(data.join("admin-password")).unwrap();
    drop(run);

    let wrong: Vec<String> = std::iter::once(("data/", dir_mode, 0o700))
        .chain(modes.into_iter().map(|(f, m)| (f, m, 0o600)))
        .filter(|(_, m, want)| m != want)
        .map(|(f, m, want)| format!("{f} is {m:o}, not {want:o}"))
        .collect();
    assert!(wrong.is_empty(), "{wrong:#?}");
    // The start says how to log in, without the password and without any token.
    let text = started.text;
    assert!(
        text.contains(&format!("{}/login", started.base)),
        "says where to log in:\n{text}"
    );
    assert!(
        text.contains(&data.join("admin-password").display().to_string()),
        "names the password file:\n{text}"
    );
    assert!(
        !text.contains(password.trim()),
        "prints the password:\n{text}"
    );
    assert!(!text.contains("token="), "prints a token:\n{text}");
    assert!(!text.contains("Bearer"), "prints a token:\n{text}");
}

#[test]
fn serve_dev_prints_the_password_and_demo_tokens() {
    let tmp = tempfile::tempdir().unwrap();
    // `classrelay --dev` (no command: serve), as `cargo run --release -- --dev` runs it.
    for args in [&["serve", "--dev"][..], &["--dev"][..]] {
        let started = read_start(&mut spawn(tmp.path(), args, None));
        let text = started.text;
        assert!(
            text.contains("/publish?room=demo&token="),
            "{args:?}:\n{text}"
        );
        assert!(
            text.contains("/watch?room=demo&token="),
            "{args:?}:\n{text}"
        );
    }
    // The first of the two starts created the admin and printed the password.
    let password = std::fs::read_to_string(tmp.path().join("data/admin-password")).unwrap();
    let started = read_start(&mut spawn(tmp.path(), &["serve"], None));
    assert!(!started.text.contains(password.trim()), "{}", started.text);
    assert!(!started.text.contains("token="), "{}", started.text);
    // `--dev` belongs to serve: other commands refuse it.
    let out = Command::new(env!("CARGO_BIN_EXE_classrelay"))
        .current_dir(tmp.path())
        .args(["--dev", "token", "--room", "r", "--grant", "publish"])
        .output()
        .unwrap();
    assert!(!out.status.success());
}

/// One syscall line of `strace -f -y` that touches `under`: (call, path, the mode argument).
fn traced_calls(log: &str, under: &str) -> Vec<(String, String, Option<u32>, String)> {
    let mut calls = Vec::new();
    for line in log.lines() {
        // "1234 openat(AT_FDCWD</x>, "/tmp/…/data/secret.tmp", O_WRONLY|O_CREAT|O_EXCL|O_CLOEXEC, 0600) = 9</…>"
        let Some(rest) = line.split_once(' ').map(|(_, r)| r.trim_start()) else {
            continue;
        };
        let Some((call, args)) = rest.split_once('(') else {
            continue;
        };
        if !args.contains(under) || call.contains("resumed") {
            continue;
        }
        let args = args
            .split(" <unfinished")
            .next()
            .unwrap_or(args)
            .split(") = ")
            .next()
            .unwrap_or(args);
        // The path: the first quoted string, or the fd's path `3</…>` for fchmod.
        let path = args
            .split('"')
            .nth(1)
            .map(str::to_string)
            .or_else(|| {
                let (_, p) = args.split_once('<')?;
                Some(p.split('>').next()?.to_string())
            })
            .unwrap_or_default();
        let mode = args
            .rsplit(", ")
            .next()
            .filter(|m| m.starts_with('0'))
            .and_then(|m| u32::from_str_radix(m, 8).ok());
        calls.push((call.to_string(), path, mode, args.to_string()));
    }
    calls
}

#[test]
fn every_private_file_is_created_owner_only_and_never_chmodded() {
    if Command::new("strace").arg("-V").output().is_err() {
        support::skip::because("strace not installed (apt-get install -y strace)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let log_path: PathBuf = tmp.path().join("strace.log");
    let mut run = spawn(tmp.path(), &["serve"], Some(&log_path));
    read_start(&mut run);
    // Ends the server, then strace, which has written the whole log by then.
    drop(run);
    let log = std::fs::read_to_string(&log_path).unwrap();
    let data = tmp.path().join("data").display().to_string();
    let calls = traced_calls(&log, &data);
    assert!(!calls.is_empty(), "nothing traced under {data}:\n{log}");

    // The data directory: made 0700 by the mkdir that makes it.
    let mkdirs: Vec<_> = calls.iter().filter(|c| c.0.starts_with("mkdir")).collect();
    assert!(
        mkdirs.iter().any(|c| c.1 == data),
        "no mkdir of {data}: {mkdirs:?}"
    );
    let mut wrong = Vec::new();
    for c in mkdirs.iter().filter(|c| c.2 != Some(0o700)) {
        wrong.push(format!("directory made as {}({})", c.0, c.3));
    }
    // No chmod at all: modes are right when the file appears.
    for c in calls.iter().filter(|c| c.0.contains("chmod")) {
        wrong.push(format!("chmod after the fact: {}({})", c.0, c.3));
    }
    // The first open that may create each file asks for 0600 (later O_CREAT opens of an
    // existing file, such as SQLite's own open of the database, create nothing).
    let mut seen = std::collections::HashSet::new();
    for c in calls.iter().filter(|c| c.3.contains("O_CREAT")) {
        if seen.insert(c.1.clone()) && c.2 != Some(0o600) {
            wrong.push(format!("created as {}({})", c.0, c.3));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
    // `secret` is `secret.tmp` renamed once written.
    for f in PRIVATE_FILES
        .iter()
        .map(|f| if *f == "secret" { "secret.tmp" } else { f })
    {
        let p = format!("{data}/{f}");
        assert!(seen.contains(&p), "no open creating {p}; traced: {seen:?}");
    }
}

#[tokio::test]
async fn a_short_configured_secret_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = Config::for_tests(tmp.path());
    cfg.auth.secret = "x".repeat(31);
    match Server::start(cfg).await {
        Err(StartError::Config(ConfigError::Value { key, message })) => {
            assert_eq!(key, "auth.secret");
            assert!(message.contains("32"), "{message}");
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("a 31-byte secret was accepted"),
    }
    // Nothing was written before the refusal.
    assert!(!tmp.path().join("classrelay.db").exists());
    let mut cfg = Config::for_tests(tmp.path());
    cfg.auth.secret = "x".repeat(32);
    let server = Server::start(cfg).await.unwrap();
    server.shutdown().await;

    // The same from the command line, for the environment override.
    let out = Command::new(env!("CARGO_BIN_EXE_classrelay"))
        .current_dir(tmp.path())
        .env("CLASSRELAY_AUTH__SECRET", "too-short")
        .arg("check-config")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("auth.secret") && err.contains("32"),
        "names the key and the minimum: {err}"
    );
}

async fn user_id(app: &App, username: &str) -> i64 {
    let users = app
        .admin_ok(Method::GET, "/api/users", json!(null), StatusCode::OK)
        .await;
    users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == username)
        .unwrap()["id"]
        .as_i64()
        .unwrap()
}

#[tokio::test]
async fn the_password_file_goes_once_the_admin_sets_a_password() {
    let app = App::start(Backend::Sqlite).await.unwrap();
    let file = app.dir.path().join("admin-password");
    assert!(file.exists());
    // Another user's password, or disabling without a password, leaves the file.
    app.create(
        "/api/users",
        json!({"username": "second-admin", "display_name": "Second", "role": "admin",
               "password": "second-password", "scope": "global"}),
    )
    .await;
    let second = user_id(&app, "second-admin").await;
    app.admin_ok(
        Method::PATCH,
        &format!("/api/users/{second}"),
        json!({"password": "another-password"}),
        StatusCode::OK,
    )
    .await;
    let admin = user_id(&app, "admin").await;
    app.admin_ok(
        Method::PATCH,
        &format!("/api/users/{admin}"),
        json!({"disabled": false}),
        StatusCode::OK,
    )
    .await;
    assert!(file.exists(), "removed by another change");
    // A refused password change leaves it too.
    app.admin_ok(
        Method::PATCH,
        &format!("/api/users/{admin}"),
        json!({"password": "short"}),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert!(file.exists(), "removed by a refused change");
    app.admin_ok(
        Method::PATCH,
        &format!("/api/users/{admin}"),
        json!({"password": "the-admin's-own"}),
        StatusCode::OK,
    )
    .await;
    assert!(!file.exists(), "still there after the admin set a password");
    app.server.shutdown().await;
}

#[tokio::test]
async fn a_start_removes_a_password_file_that_no_longer_logs_in() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("admin-password");
    let server = Server::start(Config::for_tests(tmp.path())).await.unwrap();
    assert!(server.first_admin().is_some());
    server.shutdown().await;
    // Still the admin's password: a restart keeps it.
    let server = Server::start(Config::for_tests(tmp.path())).await.unwrap();
    assert!(server.first_admin().is_none());
    assert!(file.exists(), "removed while still valid");
    // The password changed behind the API's back (another tool, an older version): the
    // next start removes the file.
    let store = &server.state().school.store;
    let admin = people::list_users(store)
        .await
        .unwrap()
        .into_iter()
        .find(|u| u.username == "admin")
        .unwrap();
    let change = people::UserChange {
        password: Some("changed-elsewhere"),
        ..Default::default()
    };
    people::update_user(store, admin.id, &change).await.unwrap();
    server.shutdown().await;
    assert!(file.exists());
    let server = Server::start(Config::for_tests(tmp.path())).await.unwrap();
    assert!(!file.exists(), "a stale password file survived a start");
    server.shutdown().await;
}
