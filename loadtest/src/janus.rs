//! Janus 1.1.2 (Debian package, Streaming plugin, HTTP API) as the side-by-side peer: the same
//! encoded stream in, the same non-decoding str0m subscribers out, the same [`PeerStats`].
//!
//! Pieces:
//! * [`Netns`]: a private network namespace with `lo` up and a veth interface holding
//!   `127.0.0.2/32`. Janus never offers loopback ICE candidates (libnice skips interfaces
//!   flagged `LOOPBACK`); an address of 127/8 on a non-loopback interface is offered, and
//!   traffic to it still stays inside the kernel.
//! * [`JanusServer`]: writes a scratch config folder (derived from `/etc/janus`: only the
//!   Streaming plugin and the HTTP transport load, one RTP mountpoint, narrow RTP port range)
//!   and runs `janus -F <folder> -i 127.0.0.2` inside the namespace, optionally under
//!   `taskset`. Its PID is the real `janus` (`ip netns exec` and `taskset` both exec), so CPU
//!   and RSS come from `/proc` as for classrelay. Drop kills it and deletes the namespace.
//! * [`RtpFeeder`]: sends the publisher's stream (VP8 frames from an IVF file, Opus frames) as
//!   plain RTP to the mountpoint at real-time pace.
//! * [`JanusViewer`]: one simulated classroom over the HTTP API (create, attach, `watch`,
//!   long-poll the offer, `start` with a str0m answer, keepalives, destroy).
//!
//! Seen with Janus 1.1.2 here: viewers must bind `127.0.0.2` too (with a `127.0.0.1` host
//! candidate in the answer, Janus's ICE never completes); and a viewer joining with a buffered
//! keyframe (`videobufferkf`) gets that keyframe first and then the live stream with a
//! sequence jump of the packets in between, which [`PeerStats::video_seq_gaps`] counts: take
//! loss over a window after the joins, not from zero.
//!
//! # Entering the namespace
//!
//! Sockets belong to the network namespace of the thread that creates them, and the swarm,
//! the feeder and the HTTP client all create sockets on their own threads. Moving threads with
//! `setns(2)` would need `unsafe` (or a crate such as `nix`) and care with every thread pool
//! (tokio workers, the swarm thread, reqwest's resolver). Instead the *process* that runs the
//! load is started inside the namespace: [`Netns::run_current_exe`] re-executes the current
//! binary under `ip netns exec <ns>` with [`NETNS_ENV`] and the [`JanusEndpoint`] in its
//! environment; the inner process finds them with [`JanusEndpoint::from_env`]. The outer
//! process keeps owning Janus (PID, `/proc` sampling, cleanup). A CLI does the same with a
//! subcommand; a test re-runs its own binary filtered to one inner test.

use std::ffi::OsStr;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use rtc_media::io::ogg_reader::OggReader;
use rtc_rtp::codec::vp8::Vp8Payloader;
use rtc_rtp::packetizer::Payloader;
use rtc_shared::marshal::Marshal;
use serde_json::{json, Value};
use str0m::format::Codec;

use crate::ivf::Frame;
#[cfg(doc)]
use crate::swarm::PeerStats;
use crate::swarm::{PeerHandle, Swarm};
use crate::target::{sample, ProcSample};

/// Set (to the namespace name) in the environment of a process re-executed inside a
/// namespace by [`Netns::run_current_exe`].
pub const NETNS_ENV: &str = "CLASSRELAY_LOADTEST_NETNS";
const ENV_HTTP: &str = "CLASSRELAY_JANUS_HTTP";
const ENV_VIDEO: &str = "CLASSRELAY_JANUS_VIDEO_RTP";
const ENV_AUDIO: &str = "CLASSRELAY_JANUS_AUDIO_RTP";
const ENV_MOUNTPOINT: &str = "CLASSRELAY_JANUS_MOUNTPOINT";
const ENV_PEER_IP: &str = "CLASSRELAY_JANUS_PEER_IP";

/// The non-loopback-interface address Janus gathers candidates on.
pub const JANUS_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
/// Names of the veth pair inside the namespace (interface names are per namespace).
const VETH: (&str, &str) = ("crj0", "crj1");

/// The namespace this process was re-executed into, if any.
pub fn current_netns() -> Option<String> {
    std::env::var(NETNS_ENV).ok().filter(|s| !s.is_empty())
}

fn run(cmd: &mut Command) -> Result<()> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// A private network namespace created with `ip netns add`, deleted on drop (after the
/// processes still inside it, all started by us, are stopped by PID).
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates a namespace with a unique name, `lo` up, and a veth interface holding
    /// `ip/32` (the address Janus offers candidates on). Needs root.
    pub fn create(ip: Ipv4Addr) -> Result<Netns> {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "crlt-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        run(Command::new("ip").args(["netns", "add", &name]))?;
        // From here on, Drop deletes the namespace if a later step fails.
        let ns = Netns { name };
        let ip_n = |args: &[&str]| {
            let mut c = Command::new("ip");
            c.args(["-n", &ns.name]).args(args);
            run(&mut c)
        };
        ip_n(&["link", "set", "lo", "up"])?;
        // A dummy interface would do, but kernels without the dummy module are common in
        // containers; veth is built in almost everywhere.
        ip_n(&[
            "link", "add", VETH.0, "type", "veth", "peer", "name", VETH.1,
        ])?;
        ip_n(&["addr", "add", &format!("{ip}/32"), "dev", VETH.0])?;
        ip_n(&["link", "set", VETH.0, "up"])?;
        ip_n(&["link", "set", VETH.1, "up"])?;
        Ok(ns)
    }

    /// The namespace name (for `ip netns exec`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A command running `program` inside the namespace.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).arg(program);
        c
    }

    /// PIDs of the processes inside the namespace.
    pub fn pids(&self) -> Vec<u32> {
        Command::new("ip")
            .args(["netns", "pids", &self.name])
            .stdin(Stdio::null())
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .split_whitespace()
                    .filter_map(|p| p.parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// A command re-executing the current binary inside the namespace with `args` and `envs`
    /// (plus [`NETNS_ENV`]); the caller chooses how to wire its stdio and waits for it.
    pub fn current_exe_command<I, S>(&self, args: I, envs: &[(String, String)]) -> Result<Command>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let exe = std::env::current_exe().context("current_exe")?;
        let mut c = self.command(exe);
        c.args(args)
            .envs(envs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env(NETNS_ENV, &self.name);
        Ok(c)
    }

    /// Re-executes the current binary inside the namespace with `args` and `envs` (plus
    /// [`NETNS_ENV`]) and waits for it; its stdout and stderr are inherited.
    pub fn run_current_exe<I, S>(&self, args: I, envs: &[(String, String)]) -> Result<ExitStatus>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let out = self
            .current_exe_command(args, envs)?
            .stdin(Stdio::null())
            .output()
            .context("re-executing inside the namespace")?;
        // Indented, so the inner run's own "test result:" line is not read as one of the
        // outer harness's (CI sums those lines).
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            println!("    | {line}");
        }
        for line in String::from_utf8_lossy(&out.stderr).lines() {
            eprintln!("    | {line}");
        }
        Ok(out.status)
    }
}

/// Sends `signal` to `pid` with kill(1) (std has no kill-by-PID and we keep `unsafe` out).
fn signal(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .args([signal, &pid.to_string()])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Only our own processes can be in a namespace we created.
        let me = std::process::id();
        let left: Vec<u32> = self.pids().into_iter().filter(|&p| p != me).collect();
        for &p in &left {
            signal(p, "-TERM");
        }
        let deadline = Instant::now() + Duration::from_secs(3);
        while !self.pids().is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        for p in self.pids() {
            if p != me {
                signal(p, "-KILL");
            }
        }
        let _ = run(Command::new("ip").args(["netns", "del", &self.name]));
    }
}

/// How to run Janus.
#[derive(Debug, Clone)]
pub struct JanusOptions {
    /// The `janus` binary.
    pub janus_bin: PathBuf,
    /// Folder holding the packaged configs to derive from.
    pub etc: PathBuf,
    /// Address Janus gathers ICE candidates on and binds its HTTP API to.
    pub ip: Ipv4Addr,
    /// HTTP API port.
    pub http_port: u16,
    /// Mountpoint id.
    pub mountpoint: u64,
    /// UDP port the mountpoint takes video (pt 96) on.
    pub video_port: u16,
    /// The mountpoint's video codec: VP8, or H.264 (constrained baseline, packetization-mode 1).
    pub video_codec: Codec,
    /// UDP port the mountpoint takes Opus (pt 111) on.
    pub audio_port: u16,
    /// Port range for the viewers' ICE/RTP.
    pub rtp_port_range: (u16, u16),
    /// Streaming plugin helper threads for relaying (`threads`, 0 = none).
    pub threads: u32,
    /// Pin Janus to this core (`taskset -c`).
    pub core: Option<usize>,
    /// Run Janus (every thread) `SCHED_FIFO` at `target::SERVER_PRIORITY` (`chrt`).
    pub realtime: bool,
    /// Janus debug level (0-7); 4 logs every session, 3 only warnings.
    pub debug_level: u8,
    /// Session timeout in seconds (viewers keep alive well within it).
    pub session_timeout_s: u32,
}

impl Default for JanusOptions {
    fn default() -> Self {
        JanusOptions {
            janus_bin: PathBuf::from("/usr/bin/janus"),
            etc: PathBuf::from("/etc/janus"),
            ip: JANUS_IP,
            http_port: 8088,
            mountpoint: 1,
            video_port: 5004,
            video_codec: Codec::Vp8,
            audio_port: 5002,
            rtp_port_range: (20000, 29999),
            threads: 0,
            core: None,
            realtime: false,
            debug_level: 3,
            session_timeout_s: 60,
        }
    }
}

/// Where the load goes: what a process inside the namespace needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JanusEndpoint {
    /// `http://127.0.0.2:8088/janus`.
    pub http: String,
    /// Where to send VP8 RTP.
    pub video_rtp: SocketAddr,
    /// Where to send Opus RTP.
    pub audio_rtp: SocketAddr,
    /// Mountpoint id to `watch`.
    pub mountpoint: u64,
    /// Address the simulated viewers bind to (Janus's own address: see the module docs).
    pub peer_ip: IpAddr,
}

impl JanusEndpoint {
    /// Environment variables carrying the endpoint into a re-executed process.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            (ENV_HTTP.into(), self.http.clone()),
            (ENV_VIDEO.into(), self.video_rtp.to_string()),
            (ENV_AUDIO.into(), self.audio_rtp.to_string()),
            (ENV_MOUNTPOINT.into(), self.mountpoint.to_string()),
            (ENV_PEER_IP.into(), self.peer_ip.to_string()),
        ]
    }

    /// The endpoint passed by [`JanusEndpoint::env`], if this process has one.
    pub fn from_env() -> Option<Result<JanusEndpoint>> {
        let http = std::env::var(ENV_HTTP).ok()?;
        let get = |k: &str| std::env::var(k).with_context(|| format!("{k} unset"));
        Some((|| {
            Ok(JanusEndpoint {
                http,
                video_rtp: get(ENV_VIDEO)?.parse()?,
                audio_rtp: get(ENV_AUDIO)?.parse()?,
                mountpoint: get(ENV_MOUNTPOINT)?.parse()?,
                peer_ip: get(ENV_PEER_IP)?.parse()?,
            })
        })())
    }
}

/// A running Janus inside its own namespace.
pub struct JanusServer {
    child: Child,
    dir: PathBuf,
    endpoint: JanusEndpoint,
    // Dropped after `child` is killed (field order does not matter: Drop kills first).
    netns: Netns,
}

/// `key = value` lines of a jcfg file's `general` section we carry over (folders).
fn jcfg_value(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let l = l.trim();
        let rest = l.strip_prefix(key)?.trim_start().strip_prefix('=')?;
        let v = rest.trim_start().strip_prefix('"')?;
        Some(v[..v.find('"')?].to_string())
    })
}

/// `libjanus_*.so` files in `folder` except `keep`, comma-joined (for `disable = ...`).
fn disable_list(folder: &Path, keep: &str) -> String {
    let mut names: Vec<String> = std::fs::read_dir(folder)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().to_string())
                .filter(|n| n.starts_with("libjanus_") && n.ends_with(".so") && n != keep)
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names.join(",")
}

/// Writes the three config files into `dir`.
fn write_configs(dir: &Path, o: &JanusOptions) -> Result<()> {
    let main = std::fs::read_to_string(o.etc.join("janus.jcfg")).with_context(|| {
        format!(
            "reading {}/janus.jcfg (apt-get install janus)",
            o.etc.display()
        )
    })?;
    let lib = "/usr/lib/x86_64-linux-gnu/janus";
    let folder =
        |key: &str, sub: &str| jcfg_value(&main, key).unwrap_or_else(|| format!("{lib}/{sub}"));
    let plugins = folder("plugins_folder", "plugins");
    let transports = folder("transports_folder", "transports");
    let events = folder("events_folder", "events");
    let loggers = folder("loggers_folder", "loggers");
    let janus_jcfg = format!(
        r#"# Derived from {etc}/janus.jcfg by classrelay-loadtest: only the Streaming plugin and
# the HTTP transport load; no admin secret, event handlers or loggers.
general: {{
	configs_folder = "{dir}"
	plugins_folder = "{plugins}"
	transports_folder = "{transports}"
	events_folder = "{events}"
	loggers_folder = "{loggers}"
	debug_level = {debug}
	session_timeout = {timeout}
}}
certificates: {{
}}
media: {{
	rtp_port_range = "{lo}-{hi}"
}}
nat: {{
	nice_debug = false
	ice_ignore_list = "vmnet"
}}
plugins: {{
	disable = "{dis_plugins}"
}}
transports: {{
	disable = "{dis_transports}"
}}
loggers: {{
	disable = "{dis_loggers}"
}}
events: {{
	broadcast = false
}}
"#,
        etc = o.etc.display(),
        dir = dir.display(),
        debug = o.debug_level.min(7),
        timeout = o.session_timeout_s,
        lo = o.rtp_port_range.0,
        hi = o.rtp_port_range.1,
        dis_plugins = disable_list(Path::new(&plugins), "libjanus_streaming.so"),
        dis_transports = disable_list(Path::new(&transports), "libjanus_http.so"),
        dis_loggers = disable_list(Path::new(&loggers), ""),
    );
    let http_jcfg = format!(
        r#"# Derived from {etc}/janus.transport.http.jcfg: plain HTTP on the namespace address.
general: {{
	json = "plain"
	base_path = "/janus"
	http = true
	port = {port}
	ip = "{ip}"
	https = false
}}
admin: {{
	admin_http = false
	admin_https = false
}}
cors: {{
}}
"#,
        etc = o.etc.display(),
        port = o.http_port,
        ip = o.ip,
    );
    let streaming_jcfg = format!(
        r#"# Derived from {etc}/janus.plugin.streaming.jcfg: one mountpoint fed by plain RTP, like
# the sample "rtp-sample" with {codec} on pt 96 (what the classrelay publisher negotiates).
general: {{
}}
classroom: {{
	type = "rtp"
	id = {id}
	description = "classrelay-loadtest"
	audio = true
	video = true
	audioport = {aport}
	audiopt = 111
	audiocodec = "opus"
	videoport = {vport}
	videopt = 96
	videocodec = "{codec}"{fmtp}
	videobufferkf = true
	threads = {threads}
}}
"#,
        etc = o.etc.display(),
        id = o.mountpoint,
        aport = o.audio_port,
        vport = o.video_port,
        codec = if o.video_codec == Codec::H264 {
            "h264"
        } else {
            "vp8"
        },
        fmtp = if o.video_codec == Codec::H264 {
            "\n\tvideofmtp = \"profile-level-id=42e01f;packetization-mode=1\""
        } else {
            ""
        },
        threads = o.threads,
    );
    std::fs::write(dir.join("janus.jcfg"), janus_jcfg)?;
    std::fs::write(dir.join("janus.transport.http.jcfg"), http_jcfg)?;
    std::fs::write(dir.join("janus.plugin.streaming.jcfg"), streaming_jcfg)?;
    Ok(())
}

/// Whether `/proc/<pid>/net/tcp` (the namespace's table) has a listener on `port`.
fn listening(pid: u32, port: u16) -> bool {
    let want = format!(":{port:04X}");
    ["tcp", "tcp6"].iter().any(|t| {
        std::fs::read_to_string(format!("/proc/{pid}/net/{t}"))
            .map(|s| {
                s.lines().skip(1).any(|l| {
                    let f: Vec<&str> = l.split_whitespace().collect();
                    f.len() > 3 && f[1].ends_with(&want) && f[3] == "0A"
                })
            })
            .unwrap_or(false)
    })
}

impl JanusServer {
    /// Creates a namespace, writes the configs and starts Janus; returns once its HTTP API
    /// listens (the Streaming plugin and its mountpoint are set up before transports start).
    pub fn start(opts: JanusOptions) -> Result<JanusServer> {
        if !opts.janus_bin.exists() {
            bail!(
                "{} not found (apt-get install -y janus)",
                opts.janus_bin.display()
            );
        }
        let netns = Netns::create(opts.ip)?;
        let dir = std::env::temp_dir().join(format!("classrelay-janus-{}", netns.name()));
        std::fs::create_dir_all(&dir)?;
        let started = (|| {
            write_configs(&dir, &opts)?;
            let log = std::fs::File::create(dir.join("janus.log"))?;
            // `taskset` and `chrt` exec what follows: the PID is Janus's.
            let mut line: Vec<std::ffi::OsString> = Vec::new();
            if let Some(c) = opts.core {
                line.extend(["taskset".into(), "-c".into(), c.to_string().into()]);
            }
            if opts.realtime {
                let prio = crate::target::SERVER_PRIORITY.to_string();
                line.extend(["chrt".into(), "-f".into(), prio.into()]);
            }
            line.push(opts.janus_bin.clone().into());
            let mut cmd = netns.command(&line[0]);
            cmd.args(&line[1..]);
            cmd.arg("-F")
                .arg(&dir)
                .args(["-i", &opts.ip.to_string(), "-o"])
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log);
            let mut child = cmd.spawn().context("starting janus")?;
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                if let Some(st) = child.try_wait()? {
                    bail!("janus exited at start ({st})");
                }
                if listening(child.id(), opts.http_port) {
                    break;
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    bail!("janus did not open its HTTP port {}", opts.http_port);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            Ok(child)
        })();
        let child = match started {
            Ok(c) => c,
            Err(e) => {
                let log = std::fs::read_to_string(dir.join("janus.log")).unwrap_or_default();
                let _ = std::fs::remove_dir_all(&dir);
                let tail: Vec<&str> = log.lines().rev().take(15).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                return Err(e.context(format!("janus log tail:\n{}", tail.join("\n"))));
            }
        };
        let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let endpoint = JanusEndpoint {
            http: format!("http://{}:{}/janus", opts.ip, opts.http_port),
            // The mountpoint binds the wildcard address, so plain loopback reaches it.
            video_rtp: SocketAddr::new(loopback, opts.video_port),
            audio_rtp: SocketAddr::new(loopback, opts.audio_port),
            mountpoint: opts.mountpoint,
            peer_ip: IpAddr::V4(opts.ip),
        };
        Ok(JanusServer {
            child,
            dir,
            endpoint,
            netns,
        })
    }

    /// Janus's PID (the `janus` process itself).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// CPU seconds and RSS of Janus so far.
    pub fn sample(&self) -> Result<ProcSample> {
        sample(self.pid())
    }

    /// Where the load goes.
    pub fn endpoint(&self) -> &JanusEndpoint {
        &self.endpoint
    }

    /// The namespace Janus runs in.
    pub fn netns(&self) -> &Netns {
        &self.netns
    }

    /// Janus's log file.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("janus.log")
    }

    /// Re-executes the current binary inside Janus's namespace with the endpoint in its
    /// environment (see the module docs), and waits for it.
    pub fn run_current_exe<I, S>(&self, args: I) -> Result<ExitStatus>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.netns.run_current_exe(args, &self.endpoint.env())
    }

    /// Like [`JanusServer::run_current_exe`], but returns the command (endpoint and `envs` in
    /// its environment) for the caller to spawn with its own stdio.
    pub fn current_exe_command<I, S>(&self, args: I, envs: &[(String, String)]) -> Result<Command>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut all = self.endpoint.env();
        all.extend(envs.iter().cloned());
        self.netns.current_exe_command(args, &all)
    }
}

impl Drop for JanusServer {
    fn drop(&mut self) {
        // SIGTERM first so Janus tears its sessions down; SIGKILL if it lingers.
        signal(self.child.id(), "-TERM");
        let deadline = Instant::now() + Duration::from_secs(3);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
        // `netns` drops after this, stopping anything left and deleting the namespace.
    }
}

// ---------------------------------------------------------------------------------------
// RTP feeder

/// Opus silence: one 20 ms frame (TOC: CELT FB 20 ms, mono), what the classrelay publisher
/// sends when its source has audio.
pub const OPUS_SILENCE: [u8; 3] = [0xf8, 0xff, 0xfe];

/// Payload bytes per RTP packet (the publisher's str0m packetizes to a similar size).
const MAX_PAYLOAD: usize = 1100;

/// A VP8 payloader as the feeder uses it: RFC 7741 payload descriptors with a PictureID
/// (`rtc-rtp` numbers pictures from 0, one per frame it payloads: 7 bits below 128, then
/// 15 bits).
pub fn vp8_payloader() -> Vp8Payloader {
    let mut p = Vp8Payloader::default();
    p.enable_picture_id = true;
    p
}

/// Splits one VP8 frame into RTP payloads of at most `max_payload` bytes, the descriptor
/// included (S=1 on the first), and moves `p` to the next picture.
pub fn vp8_payloads(p: &mut Vp8Payloader, frame: &[u8], max_payload: usize) -> Vec<Vec<u8>> {
    // It refuses nothing but an empty frame or a zero size, which yield no payloads anyway.
    p.payload(max_payload, &Bytes::copy_from_slice(frame))
        .unwrap_or_default()
        .into_iter()
        .map(|b| b.to_vec())
        .collect()
}

/// A 12-byte RTP header (no CSRCs, no extensions) followed by `payload`.
pub fn rtp_packet(pt: u8, marker: bool, seq: u16, ts: u32, ssrc: u32, payload: &[u8]) -> Vec<u8> {
    let packet = rtc_rtp::Packet {
        header: rtc_rtp::Header {
            version: 2,
            marker,
            payload_type: pt & 0x7f,
            sequence_number: seq,
            timestamp: ts,
            ssrc,
            ..Default::default()
        },
        payload: Bytes::copy_from_slice(payload),
    };
    // Marshalling fails only for an extension or CSRC list that does not fit; there is none.
    packet.marshal().map(|b| b.to_vec()).unwrap_or_default()
}

/// Opus packets of an Ogg Opus file, in order (the `OpusHead`/`OpusTags` headers dropped),
/// by `rtc-media`'s reader. It reads pages, not packets, so a page must hold one 20 ms
/// packet (as ffmpeg writes with `-page_duration 20000`, and the test fixture is); a page
/// that spans more samples is refused.
pub fn ogg_opus_packets(bytes: &[u8]) -> Result<Vec<Vec<u8>>> {
    let (mut reader, _) =
        OggReader::new(bytes, false).map_err(|e| anyhow!("not an Ogg Opus file: {e}"))?;
    let mut packets = Vec::new();
    let mut granule = 0;
    while let Ok((payload, page)) = reader.parse_next_page() {
        if payload.starts_with(b"OpusTags") {
            continue;
        }
        let samples = page.granule_position.saturating_sub(granule);
        granule = page.granule_position;
        if samples > 960 {
            bail!("an Ogg page spans {samples} samples; expected one 20 ms Opus packet per page");
        }
        packets.push(payload.to_vec());
    }
    if packets.is_empty() {
        bail!("no Opus packets in the Ogg file");
    }
    Ok(packets)
}

/// What the feeder sends.
#[derive(Clone)]
pub struct FeedMedia {
    /// VP8 or H.264.
    pub codec: Codec,
    /// Encoded frames (H.264: access units in Annex B), looped.
    pub video: Arc<Vec<Frame>>,
    /// Video frame rate.
    pub fps: u32,
    /// Opus packets of 20 ms each, looped (`None`: no audio).
    pub audio: Option<Arc<Vec<Vec<u8>>>>,
}

impl FeedMedia {
    /// VP8 from an IVF file or H.264 from an Annex B file; audio from an Ogg Opus file, or
    /// Opus silence as the classrelay publisher sends when `audio_silence` is set.
    pub fn load(video: &Path, fps: u32, ogg: Option<&Path>, audio_silence: bool) -> Result<Self> {
        let (codec, frames) = crate::h264::load_video(video)?;
        let audio = match ogg {
            Some(p) => {
                let b = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
                Some(Arc::new(ogg_opus_packets(&b)?))
            }
            None => audio_silence.then(|| Arc::new(vec![OPUS_SILENCE.to_vec()])),
        };
        Ok(FeedMedia {
            codec,
            video: Arc::new(frames),
            fps,
            audio,
        })
    }
}

/// Counters of a feeder.
#[derive(Debug, Default)]
pub struct FeedStats {
    /// Video frames sent.
    pub frames: AtomicU64,
    /// Video RTP packets sent.
    pub video_packets: AtomicU64,
    /// Audio RTP packets sent.
    pub audio_packets: AtomicU64,
    /// Failed sends.
    pub send_errors: AtomicU64,
}

/// Sends [`FeedMedia`] as plain RTP at real-time pace from its own thread until dropped.
pub struct RtpFeeder {
    /// Its counters.
    pub stats: Arc<FeedStats>,
    stop: Arc<AtomicBool>,
    join: Option<std::thread::JoinHandle<()>>,
}

impl RtpFeeder {
    /// Starts sending video (pt 96) to `video_to` and audio (pt 111) to `audio_to`.
    pub fn start(media: FeedMedia, video_to: SocketAddr, audio_to: SocketAddr) -> Result<Self> {
        let bind = if video_to.is_ipv4() {
            SocketAddr::from((Ipv4Addr::LOCALHOST, 0))
        } else {
            "[::1]:0".parse()?
        };
        let socket = UdpSocket::bind(bind)?;
        let stats = Arc::new(FeedStats::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (s2, st2) = (stats.clone(), stop.clone());
        let join = std::thread::Builder::new()
            .name("rtp-feeder".into())
            .spawn(move || feed(socket, media, video_to, audio_to, &s2, &st2))?;
        Ok(RtpFeeder {
            stats,
            stop,
            join: Some(join),
        })
    }
}

impl Drop for RtpFeeder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(j) = self.join.take() {
            let _ = j.join();
        }
    }
}

fn feed(
    socket: UdpSocket,
    media: FeedMedia,
    video_to: SocketAddr,
    audio_to: SocketAddr,
    stats: &FeedStats,
    stop: &AtomicBool,
) {
    // Fixed SSRCs and random-enough starts are not needed: one source per mountpoint.
    let (vssrc, assrc) = (0x5eed_0001u32, 0x5eed_0002u32);
    let fps = media.fps.max(1);
    let frame_interval = Duration::from_secs(1) / fps;
    let audio_interval = Duration::from_millis(20);
    let start = Instant::now();
    let (mut vseq, mut aseq) = (0u16, 0u16);
    let (mut frame_n, mut audio_n) = (0u64, 0u64);
    let (mut next_video, mut next_audio) = (start, start);
    let mut vp8 = vp8_payloader();
    let send = |pkt: &[u8], to: SocketAddr| {
        if socket.send_to(pkt, to).is_err() {
            stats.send_errors.fetch_add(1, Ordering::Relaxed);
        }
    };
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        if now >= next_video {
            let frame = &media.video[(frame_n % media.video.len() as u64) as usize];
            let ts = (frame_n * 90_000 / u64::from(fps)) as u32;
            let payloads = match media.codec {
                // A unit the payloader refuses (none of a valid file) is skipped.
                Codec::H264 => crate::h264::payloads(&frame.data, MAX_PAYLOAD).unwrap_or_default(),
                _ => vp8_payloads(&mut vp8, &frame.data, MAX_PAYLOAD),
            };
            let last = payloads.len().saturating_sub(1);
            for (i, p) in payloads.iter().enumerate() {
                send(&rtp_packet(96, i == last, vseq, ts, vssrc, p), video_to);
                vseq = vseq.wrapping_add(1);
                stats.video_packets.fetch_add(1, Ordering::Relaxed);
            }
            stats.frames.fetch_add(1, Ordering::Relaxed);
            frame_n += 1;
            next_video = (start + frame_interval * frame_n as u32).max(now);
        }
        if let Some(audio) = &media.audio {
            if now >= next_audio {
                let p = &audio[(audio_n % audio.len() as u64) as usize];
                let ts = (audio_n * 960) as u32;
                send(&rtp_packet(111, audio_n == 0, aseq, ts, assrc, p), audio_to);
                aseq = aseq.wrapping_add(1);
                audio_n += 1;
                stats.audio_packets.fetch_add(1, Ordering::Relaxed);
                next_audio = (start + audio_interval * audio_n as u32).max(now);
            }
        }
        let next = if media.audio.is_some() {
            next_video.min(next_audio)
        } else {
            next_video
        };
        let wait = next
            .saturating_duration_since(Instant::now())
            .min(Duration::from_millis(50));
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Viewer over the HTTP API

static TRANSACTION: AtomicU64 = AtomicU64::new(1);

fn transaction() -> String {
    format!("t{}", TRANSACTION.fetch_add(1, Ordering::Relaxed))
}

async fn post(http: &reqwest::Client, url: &str, mut body: Value) -> Result<Value> {
    body["transaction"] = Value::String(transaction());
    let text = http
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .with_context(|| format!("POST {url}"))?
        .text()
        .await?;
    let v: Value = serde_json::from_str(&text).with_context(|| format!("POST {url}: {text}"))?;
    if v["janus"] == "error" {
        bail!("POST {url}: janus error {}", v["error"]);
    }
    Ok(v)
}

/// Long-polls the session's events (Janus answers within 30 s, with a keepalive if idle).
async fn poll_events(http: &reqwest::Client, session_url: &str) -> Result<Vec<Value>> {
    let url = format!(
        "{session_url}?maxev=10&rid={}",
        TRANSACTION.load(Ordering::Relaxed)
    );
    let text = http
        .get(&url)
        .send()
        .await
        .with_context(|| format!("GET {url}"))?
        .text()
        .await?;
    let v: Value = serde_json::from_str(&text).with_context(|| format!("GET {url}: {text}"))?;
    Ok(match v {
        Value::Array(a) => a,
        other => vec![other],
    })
}

fn data_id(v: &Value) -> Result<u64> {
    v["data"]["id"]
        .as_u64()
        .ok_or_else(|| anyhow!("no data.id in {v}"))
}

/// One simulated classroom watching the mountpoint through Janus.
pub struct JanusViewer {
    /// The str0m subscriber (same counters as a classrelay subscriber).
    pub peer: PeerHandle,
    /// When the viewer began signalling (before `create`).
    pub joined_at: Instant,
    /// When the `start` request carrying the answer was sent.
    pub start_sent_at: Instant,
    /// When the `start` with the answer was acknowledged.
    pub started_at: Instant,
    http: reqwest::Client,
    session_url: String,
    background: tokio::task::JoinHandle<()>,
}

impl JanusViewer {
    /// Creates a session, attaches to the Streaming plugin, watches `endpoint.mountpoint`,
    /// answers the offer with a swarm subscriber and starts it. A background task keeps the
    /// session alive and drains its events until [`JanusViewer::leave`] (or drop).
    pub async fn join(
        http: &reqwest::Client,
        endpoint: &JanusEndpoint,
        swarm: &Swarm,
    ) -> Result<JanusViewer> {
        let joined_at = Instant::now();
        let base = endpoint.http.trim_end_matches('/');
        let session = data_id(&post(http, base, json!({"janus": "create"})).await?)?;
        let session_url = format!("{base}/{session}");
        let result = Self::watch(http, endpoint, swarm, &session_url).await;
        let (peer, start_sent_at, started_at) = match result {
            Ok(r) => r,
            Err(e) => {
                let _ = post(http, &session_url, json!({"janus": "destroy"})).await;
                return Err(e);
            }
        };
        let background = tokio::spawn(keep_alive(http.clone(), session_url.clone()));
        Ok(JanusViewer {
            peer,
            joined_at,
            start_sent_at,
            started_at,
            http: http.clone(),
            session_url,
            background,
        })
    }

    async fn watch(
        http: &reqwest::Client,
        endpoint: &JanusEndpoint,
        swarm: &Swarm,
        session_url: &str,
    ) -> Result<(PeerHandle, Instant, Instant)> {
        let attach = json!({"janus": "attach", "plugin": "janus.plugin.streaming"});
        let handle = data_id(&post(http, session_url, attach).await?)?;
        let handle_url = format!("{session_url}/{handle}");
        let watch =
            json!({"janus": "message", "body": {"request": "watch", "id": endpoint.mountpoint}});
        post(http, &handle_url, watch).await?;
        let deadline = Instant::now() + Duration::from_secs(20);
        let offer = loop {
            if Instant::now() > deadline {
                bail!("no offer from Janus within 20 s");
            }
            let mut found = None;
            for ev in poll_events(http, session_url).await? {
                let data = &ev["plugindata"]["data"];
                if !data["error"].is_null() {
                    bail!("watch failed: {data}");
                }
                if ev["jsep"]["type"] == "offer" {
                    found = ev["jsep"]["sdp"].as_str().map(str::to_string);
                }
            }
            if let Some(o) = found {
                break o;
            }
        };
        let (peer, answer) = swarm.subscriber_answer(&offer, endpoint.peer_ip)?;
        let start = json!({
            "janus": "message",
            "body": {"request": "start"},
            "jsep": {"type": "answer", "sdp": answer},
        });
        let sent = Instant::now();
        if let Err(e) = post(http, &handle_url, start).await {
            let _ = swarm.close(&peer);
            return Err(e);
        }
        Ok((peer, sent, Instant::now()))
    }

    /// Destroys the Janus session and closes the subscriber.
    pub async fn leave(self, swarm: &Swarm) -> Result<()> {
        self.background.abort();
        let _ = swarm.close(&self.peer);
        post(&self.http, &self.session_url, json!({"janus": "destroy"})).await?;
        Ok(())
    }
}

impl Drop for JanusViewer {
    fn drop(&mut self) {
        self.background.abort();
    }
}

/// Keeps a session alive (a keepalive every ≤ 30 s, well within the 60 s timeout) and drains
/// its events so they do not pile up in Janus.
async fn keep_alive(http: reqwest::Client, session_url: String) {
    loop {
        let ok = post(&http, &session_url, json!({"janus": "keepalive"}))
            .await
            .is_ok();
        let polled =
            tokio::time::timeout(Duration::from_secs(35), poll_events(&http, &session_url)).await;
        if !ok || !matches!(polled, Ok(Ok(_))) {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vp8_payload_descriptors() {
        let frame: Vec<u8> = (0..2500u32).map(|i| i as u8).collect();
        let mut vp8 = vp8_payloader();
        // Picture 0: a 7-bit PictureID.
        let p = vp8_payloads(&mut vp8, &frame, 1000);
        assert_eq!(p.len(), 3);
        assert_eq!(&p[0][..3], &[0x90, 0x80, 0x00]);
        assert_eq!(&p[1][..3], &[0x80, 0x80, 0x00]);
        assert!(p.iter().all(|x| x.len() <= 1000));
        let joined: Vec<u8> = p.iter().flat_map(|x| x[3..].to_vec()).collect();
        assert_eq!(joined, frame);
        // From picture 128 on, 15 bits (M=1).
        for _ in 1..0x1234 {
            vp8_payloads(&mut vp8, &[1], 1000);
        }
        let p = vp8_payloads(&mut vp8, &frame, 1000);
        assert_eq!(&p[0][..4], &[0x90, 0x80, 0x92, 0x34]);
        assert_eq!(&p[1][..4], &[0x80, 0x80, 0x92, 0x34]);
        // str0m's own keyframe detection reads the descriptor written.
        let key = vp8_payloads(
            &mut vp8_payloader(),
            &[0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a],
            1000,
        );
        assert!(str0m::format::detect_vp8_keyframe(&key[0]));
    }

    #[test]
    fn rtp_header_layout() {
        let p = rtp_packet(96, true, 0x0102, 0x03040506, 0x0708090a, &[0xff]);
        assert_eq!(p, vec![0x80, 0xe0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 0xff]);
    }

    /// An Ogg page (checksum left zero) of `packets`, ending at `granule` samples.
    fn page(packets: &[&[u8]], granule: u64, header_type: u8) -> Vec<u8> {
        let mut lacing = Vec::new();
        let mut body = Vec::new();
        for p in packets {
            let mut n = p.len();
            while n >= 255 {
                lacing.push(255u8);
                n -= 255;
            }
            lacing.push(n as u8);
            body.extend_from_slice(p);
        }
        let mut v = b"OggS".to_vec();
        v.extend_from_slice(&[0, header_type]);
        v.extend_from_slice(&granule.to_le_bytes());
        v.extend_from_slice(&[0; 12]);
        v.push(lacing.len() as u8);
        v.extend_from_slice(&lacing);
        v.extend_from_slice(&body);
        v
    }

    #[test]
    fn ogg_packets_skip_headers_and_keep_long_ones_whole() {
        let long = vec![7u8; 300];
        // OpusHead: version 1, mono, pre-skip 312, 48 kHz, gain 0, mapping family 0.
        let head = b"OpusHead\x01\x01\x38\x01\x80\xbb\x00\x00\x00\x00\x00";
        let mut f = page(&[head], 0, 2);
        f.extend(page(&[b"OpusTags...."], 0, 0));
        f.extend(page(&[&[1, 2, 3]], 960, 0));
        f.extend(page(&[&long], 1920, 0));
        let p = ogg_opus_packets(&f).unwrap();
        assert_eq!(p, vec![vec![1, 2, 3], long.clone()]);
        // Two packets in one page cannot be told apart by the page reader: refused.
        let mut two = page(&[head], 0, 2);
        two.extend(page(&[&[1, 2, 3], &long], 1920, 0));
        assert!(ogg_opus_packets(&two).is_err());
        assert!(ogg_opus_packets(b"nope").is_err());
    }

    #[test]
    fn endpoint_round_trips_through_env_vars() {
        let e = JanusEndpoint {
            http: "http://127.0.0.2:8088/janus".into(),
            video_rtp: "127.0.0.1:5004".parse().unwrap(),
            audio_rtp: "127.0.0.1:5002".parse().unwrap(),
            mountpoint: 1,
            peer_ip: "127.0.0.1".parse().unwrap(),
        };
        let vars = e.env();
        assert_eq!(vars.len(), 5);
        assert!(vars
            .iter()
            .any(|(k, v)| k == ENV_VIDEO && v == "127.0.0.1:5004"));
    }

    #[test]
    fn jcfg_values_are_read() {
        let t = "general: {\n\tplugins_folder = \"/x/plugins\"\t\t# c\n}";
        assert_eq!(
            jcfg_value(t, "plugins_folder").as_deref(),
            Some("/x/plugins")
        );
        assert_eq!(jcfg_value(t, "events_folder"), None);
    }
}
