//! The servers under test, as processes: started, pinned, measured from `/proc`, stopped.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};

/// CPU time and memory of a process, read from `/proc/<pid>`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcSample {
    /// User + system CPU seconds used so far (all threads).
    pub cpu_seconds: f64,
    /// Resident set size in KiB.
    pub rss_kib: u64,
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// Reads CPU time and RSS of `pid`.
pub fn sample(pid: u32) -> Result<ProcSample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    // The command name is in parentheses and may hold spaces: split after the last ')'.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("unexpected /proc stat format")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After ')' field 0 is state (overall field 3); utime and stime are overall 14 and 15.
    let utime: f64 = fields.get(11).context("utime")?.parse()?;
    let stime: f64 = fields.get(12).context("stime")?.parse()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    Ok(ProcSample {
        cpu_seconds: (utime + stime) / clock_ticks(),
        rss_kib,
    })
}

/// User + system CPU seconds of this process's children that have been waited for
/// (`cutime` + `cstime` of `/proc/self/stat`): what a finished child command cost.
pub fn children_cpu_seconds() -> Result<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").context("reading /proc/self/stat")?;
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("unexpected /proc stat format")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // cutime and cstime are overall fields 16 and 17 (13 and 14 after the state).
    let cutime: f64 = fields.get(13).context("cutime")?.parse()?;
    let cstime: f64 = fields.get(14).context("cstime")?.parse()?;
    Ok((cutime + cstime) / clock_ticks())
}

/// Pins the calling process (and the threads it starts afterwards) to `core`.
pub fn pin_self(core: usize) -> Result<()> {
    let status = Command::new("taskset")
        .args(["-cp", &core.to_string(), &std::process::id().to_string()])
        .stdout(Stdio::null())
        .status()
        .context("running taskset")?;
    if !status.success() {
        bail!("taskset failed");
    }
    Ok(())
}

/// A classrelay server process started for a run.
pub struct ClassrelayProc {
    child: Child,
    bin: PathBuf,
    data: PathBuf,
    secret: String,
    /// `http://127.0.0.1:port`.
    pub base: String,
}

/// `SCHED_FIFO` priority of a server started real-time (`--realtime`).
pub const SERVER_PRIORITY: u8 = 10;

/// How to start the server.
#[derive(Debug, Clone, Default)]
pub struct ServerOptions {
    /// Pin it to this core (`taskset -c`).
    pub core: Option<usize>,
    /// Media workers (`media.workers`; 0 = one per core, as the server decides).
    pub workers: usize,
    /// Every thread `SCHED_FIFO` at [`SERVER_PRIORITY`] (`chrt`).
    pub realtime: bool,
    /// `media.spread_after` (the server's default when `None`).
    pub spread_after: Option<usize>,
}

impl ClassrelayProc {
    /// Starts `bin serve` on loopback as `opts` says.
    pub fn start(bin: &Path, opts: &ServerOptions) -> Result<Self> {
        Self::start_with_env(bin, opts, &[])
    }

    /// [`ClassrelayProc::start`] with more `CLASSRELAY_…` settings in the server's environment
    /// (e.g. `CLASSRELAY_RECORDING__ROOMS=all` for the `record` scenario).
    pub fn start_with_env(bin: &Path, opts: &ServerOptions, env: &[(&str, &str)]) -> Result<Self> {
        let ServerOptions {
            core,
            workers,
            realtime,
            spread_after,
        } = *opts;
        if !bin.exists() {
            bail!(
                "{} not found: build it first (cargo build --release --bin classrelay)",
                bin.display()
            );
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let data =
            std::env::temp_dir().join(format!("classrelay-loadtest-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&data)?;
        let secret = format!(
            "loadtest-{}-{port}-secret-secret-secret",
            std::process::id()
        );
        // `taskset` and `chrt` exec what follows: the child's PID is the server's.
        let mut line: Vec<std::ffi::OsString> = Vec::new();
        if let Some(c) = core {
            line.extend(["taskset".into(), "-c".into(), c.to_string().into()]);
        }
        if realtime {
            line.extend([
                "chrt".into(),
                "-f".into(),
                SERVER_PRIORITY.to_string().into(),
            ]);
        }
        line.push(bin.into());
        let mut cmd = Command::new(&line[0]);
        cmd.args(&line[1..]);
        cmd.arg("serve")
            .env("CLASSRELAY_HTTP__LISTEN", format!("127.0.0.1:{port}"))
            .env("CLASSRELAY_MEDIA__UDP_PORT", "0")
            .env("CLASSRELAY_MEDIA__WORKERS", workers.to_string())
            .env("CLASSRELAY_MEDIA__MAX_PEERS", "100000")
            // Every simulated viewer joins with the one token of `token()`.
            .env("CLASSRELAY_MEDIA__MAX_SESSIONS_PER_PRINCIPAL", "100000")
            .env("CLASSRELAY_MEDIA__MAX_SESSIONS_PER_TOKEN", "100000")
            .env("CLASSRELAY_MEDIA__MAX_ROOM_SHARE_PERCENT", "100")
            .env("CLASSRELAY_AUTH__SECRET", &secret)
            .env("CLASSRELAY_DATA__DIR", &data)
            .env("CLASSRELAY_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(n) = spread_after {
            cmd.env("CLASSRELAY_MEDIA__SPREAD_AFTER", n.to_string());
        }
        cmd.envs(env.iter().copied());
        let mut child = cmd.spawn().context("starting classrelay")?;
        let stdout = child.stdout.take().context("stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut base = None;
        while let Ok(line) = rx.recv_timeout(Duration::from_secs(20)) {
            if let Some(rest) = line.strip_prefix("classrelay listening on ") {
                base = rest.split_whitespace().next().map(str::to_string);
                break;
            }
        }
        let Some(base) = base else {
            let _ = child.kill();
            bail!("classrelay did not report its address");
        };
        Ok(ClassrelayProc {
            child,
            bin: bin.to_path_buf(),
            data,
            secret,
            base,
        })
    }

    /// The server's PID (the real server, not `taskset`, which execs it).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A token from the server's own CLI (same secret).
    pub fn token(&self, room: &str, grant: &str) -> Result<String> {
        let out = Command::new(&self.bin)
            .args(["token", "--room", room, "--grant", grant, "--ttl", "12h"])
            .env("CLASSRELAY_AUTH__SECRET", &self.secret)
            .env("CLASSRELAY_DATA__DIR", &self.data)
            .output()?;
        if !out.status.success() {
            bail!("token: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8(out.stdout)?.trim().to_string())
    }
}

impl Drop for ClassrelayProc {
    fn drop(&mut self) {
        // SIGTERM first: the server shuts down in order (and a wrapper such as valgrind gets
        // to write its profile); SIGKILL only if it has not exited within 20 s.
        let asked = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while asked && std::time::Instant::now() < deadline {
            match self.child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) => std::thread::sleep(Duration::from_millis(50)),
                Err(_) => break,
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.data);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_own_process() {
        let before = sample(std::process::id()).unwrap();
        assert!(before.rss_kib > 0);
        // Burn CPU until the count moves (it moves in clock ticks, 10 ms at USER_HZ 100).
        let started = std::time::Instant::now();
        let mut x = 0u64;
        let after = loop {
            for i in 0..1_000_000u64 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
            }
            let s = sample(std::process::id()).unwrap();
            if s.cpu_seconds > before.cpu_seconds || started.elapsed() > Duration::from_secs(10) {
                break s;
            }
        };
        assert!(
            after.cpu_seconds > before.cpu_seconds,
            "CPU time did not move while burning it: {before:?} then {after:?}"
        );
    }
}
