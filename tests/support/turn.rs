//! Debian's coturn on loopback for the TURN tests (`use-auth-secret`, UDP and TCP on one
//! port, no TLS), started by a test and killed on drop; never left running, never reachable
//! from outside 127.0.0.1.
#![allow(dead_code)] // each test binary uses a different part

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context, Result};

/// The `static-auth-secret` coturn and classrelay share.
pub const SECRET: &str = "coturn-shared-secret-for-the-test";
/// coturn's realm.
pub const REALM: &str = "classrelay.test";

/// A `turnserver` on 127.0.0.1 (TCP and UDP listeners on one port), its log collected.
pub struct Coturn {
    child: Child,
    /// The port of both listeners (UDP and TCP).
    pub port: u16,
    log: Arc<Mutex<String>>,
    _dir: tempfile::TempDir,
}

impl Coturn {
    /// Starts coturn and waits for its TCP listener's "opened" line; `None` (skipped, a
    /// failure under CI) when `turnserver` is not installed.
    pub fn start() -> Result<Option<Coturn>> {
        let bin = Path::new("/usr/bin/turnserver");
        if !bin.exists() {
            super::skip::because("/usr/bin/turnserver not installed (apt-get install -y coturn)");
            return Ok(None);
        }
        let dir = tempfile::tempdir()?;
        // A free port for both listeners (the kernel picks; released just before coturn
        // binds it).
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let relay_base = 40_000 + (port % 20) * 1_000;
        let mut child = Command::new(bin)
            .args([
                "-n", // no configuration file: everything is on this line
                "--listening-ip=127.0.0.1",
                "--relay-ip=127.0.0.1",
                &format!("--listening-port={port}"),
                &format!("--min-port={relay_base}"),
                &format!("--max-port={}", relay_base + 999),
                "--use-auth-secret",
                &format!("--static-auth-secret={SECRET}"),
                &format!("--realm={REALM}"),
                "--no-tls",
                "--no-dtls",
                // coturn 4.6 refuses loopback peers by default; classrelay's media socket is
                // on 127.0.0.1 here. Never in production (docs/TURN.md).
                "--allow-loopback-peers",
                "--allowed-peer-ip=127.0.0.1",
                "--no-cli",
                "--no-multicast-peers",
                "--verbose",
                "--log-file=stdout",
                "--simple-log",
                &format!("--userdb={}", dir.path().join("turndb").display()),
                &format!("--pidfile={}", dir.path().join("turnserver.pid").display()),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("spawn turnserver")?;
        let stdout = child.stdout.take().context("turnserver stdout")?;
        let log = Arc::new(Mutex::new(String::new()));
        let (ready_tx, ready_rx) = mpsc::channel();
        let sink = log.clone();
        let ready_line = format!("TCP listener opened on : 127.0.0.1:{port}");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line.contains(&ready_line) {
                    let _ = ready_tx.send(());
                }
                let mut l = sink.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let coturn = Coturn {
            child,
            port,
            log,
            _dir: dir,
        };
        if ready_rx.recv_timeout(Duration::from_secs(15)).is_err() {
            bail!("coturn did not open its TCP listener:\n{}", coturn.log());
        }
        Ok(Some(coturn))
    }

    /// Everything coturn logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// classrelay's `[turn]` for this coturn: TCP only, as a school that blocks UDP.
    pub fn config(&self) -> classrelay::config::TurnConfig {
        classrelay::config::TurnConfig {
            secret: SECRET.into(),
            secret_file: None,
            urls: vec![format!("turn:127.0.0.1:{}?transport=tcp", self.port)],
            ttl: "1h".into(),
        }
    }

    /// Whether coturn allocated a relay for a username `<expiry>:<principal>` whose principal
    /// starts with `prefix`.
    pub fn allocated_for(&self, prefix: &str) -> bool {
        self.log().lines().any(|l| {
            l.contains("ALLOCATE processed, success")
                && l.split("user <")
                    .nth(1)
                    .and_then(|u| u.split_once(':'))
                    .is_some_and(|(exp, who)| exp.parse::<u64>().is_ok() && who.starts_with(prefix))
        })
    }
}

impl Coturn {
    /// The UDP listener's address (for a userspace link relay in front of it).
    pub fn udp_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// classrelay's `[turn]` naming one `turn:<front>?transport=udp` URL: clients reach
    /// coturn's UDP listener through `front` (e.g. an impaired link relay forwarding to
    /// [`Coturn::udp_addr`]).
    pub fn udp_config_via(&self, front: SocketAddr) -> classrelay::config::TurnConfig {
        classrelay::config::TurnConfig {
            urls: vec![format!("turn:{front}?transport=udp")],
            ..self.config()
        }
    }
}

impl Drop for Coturn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
