//! The `classrelay` binary: help, tokens, config checking, and first start.
//!
//! Run: `cargo test --test cli`.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use classrelay::auth::{Grant, TokenKeys};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_classrelay"));
    // Only what the test sets: no inherited CLASSRELAY_* overrides.
    for (k, _) in std::env::vars() {
        if k.starts_with("CLASSRELAY_") {
            c.env_remove(k);
        }
    }
    c
}

#[test]
fn help_lists_the_commands() {
    let out = bin().arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for cmd in ["serve", "token", "check-config"] {
        assert!(text.contains(cmd), "{text}");
    }
}

#[test]
fn check_config_names_the_bad_key_and_accepts_good_files() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[media]\nudp_prot = 5000\n").unwrap();
    let out = bin()
        .current_dir(dir.path())
        .args(["check-config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("udp_prot"), "{err}");
    assert!(err.contains("bad.toml"), "names the file: {err}");

    let wrong = dir.path().join("wrong.toml");
    std::fs::write(&wrong, "[auth]\ndefault_ttl = \"soonish\"\n").unwrap();
    let out = bin()
        .current_dir(dir.path())
        .arg("check-config")
        .arg(&wrong)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("auth.default_ttl"));

    let good = dir.path().join("good.toml");
    std::fs::write(&good, "[media]\nudp_port = 5000\n").unwrap();
    let out = bin()
        .current_dir(dir.path())
        .arg("check-config")
        .arg(&good)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Environment overrides are checked too.
    let out = bin()
        .current_dir(dir.path())
        .env("CLASSRELAY_MEDIA__UDP_PORT", "lots")
        .arg("check-config")
        .arg(&good)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("media.udp_port"));
}

#[test]
fn token_prints_a_verifiable_token_with_the_data_dir_secret() {
    let dir = tempfile::tempdir().unwrap();
    let out = bin()
        .current_dir(dir.path())
        .args([
            "token", "--room", "math-7", "--grant", "publish", "--ttl", "90m",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let secret = std::fs::read_to_string(dir.path().join("data/secret")).unwrap();
    let keys = TokenKeys::new(secret.trim().as_bytes());
    let claims = keys
        .authorize(Some(&format!("Bearer {token}")), "math-7", Grant::Publish)
        .unwrap();
    let life = claims.exp - claims.iat;
    assert_eq!(life, 90 * 60);
    // Bad input gets a clear error.
    let out = bin()
        .current_dir(dir.path())
        .args(["token", "--room", "bad room", "--grant", "publish"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let out = bin()
        .current_dir(dir.path())
        .args(["token", "--room", "r", "--grant", "teach"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("teach"));
}

/// Without `--dev`: how to log in (where the password is), no password and no token; the
/// listening line is the last line of the start.
#[test]
fn first_start_prints_how_to_log_in_and_serves_health() {
    let dir = tempfile::tempdir().unwrap();
    let (_child, _rest, lines, base) = serve(dir.path());
    let text = lines.join("\n");
    assert!(text.contains("Generated a new signing secret"), "{text}");
    assert!(
        text.contains("/login as `admin` with the password in ./data/admin-password"),
        "{text}"
    );
    let password = std::fs::read_to_string(dir.path().join("data/admin-password")).unwrap();
    assert!(!text.contains(password.trim()), "{text}");
    assert!(!text.contains("token="), "{text}");
    assert!(dir.path().join("data/secret").exists());
    let health = std::net::TcpStream::connect(base.trim_start_matches("http://"))
        .map(|mut s| {
            use std::io::{Read, Write};
            s.write_all(b"GET /healthz HTTP/1.0\r\n\r\n").unwrap();
            let mut r = String::new();
            s.read_to_string(&mut r).unwrap();
            r
        })
        .unwrap();
    assert!(
        health.starts_with("HTTP/1.0 200") || health.starts_with("HTTP/1.1 200"),
        "{health}"
    );
}

/// SIGTERM (what `docker stop` sends to the container's PID 1) shuts the server down like
/// Ctrl-C: the shutdown lines, then exit status 0, well before Docker's 10 s SIGKILL.
#[test]
fn sigterm_shuts_down_gracefully() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, rest, _, _) = serve(dir.path());
    let sent = std::time::Instant::now();
    let kill = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    // The rest of stdout, up to its end (the process exited or closed it).
    let mut after = Vec::new();
    while let Ok(line) = rest.recv_timeout(Duration::from_secs(10)) {
        after.push(line);
    }
    let status = loop {
        if let Some(s) = child.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            sent.elapsed() < Duration::from_secs(10),
            "still running 10 s after SIGTERM; printed {after:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    println!("exited {status} {:?} after SIGTERM", sent.elapsed());
    // The log lines of the shutdown (the workers stopping) come in between.
    assert_eq!(
        after.first().map(String::as_str),
        Some("shutting down (SIGTERM)"),
        "{after:?}"
    );
    assert_eq!(
        after.last().map(String::as_str),
        Some("stopped"),
        "{after:?}"
    );
    assert!(status.success(), "{status}");
    assert!(
        sent.elapsed() < Duration::from_secs(5),
        "{:?}",
        sent.elapsed()
    );
}

/// `classrelay serve` in `dir` on free ports with one media worker: the running server, its
/// stdout after the listening line, the lines up to and including it, and the base URL.
fn serve(
    dir: &std::path::Path,
) -> (
    KillOnDrop,
    std::sync::mpsc::Receiver<String>,
    Vec<String>,
    String,
) {
    let mut child = KillOnDrop(
        bin()
            .current_dir(dir)
            .env("CLASSRELAY_HTTP__LISTEN", "127.0.0.1:0")
            .env("CLASSRELAY_MEDIA__UDP_PORT", "0")
            .env("CLASSRELAY_MEDIA__WORKERS", "1")
            .arg("serve")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let stdout = child.0.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    let mut base = None;
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(30)) {
        if let Some(rest) = line.strip_prefix("classrelay listening on ") {
            base = rest.split_whitespace().next().map(str::to_string);
        }
        lines.push(line);
        if base.is_some() {
            break;
        }
    }
    let base = base.unwrap_or_else(|| panic!("no listening line in {lines:?}"));
    (child, rx, lines, base)
}

/// The server, killed however the test ends (a failed assertion included).
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
