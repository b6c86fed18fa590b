//! The same scenario against Janus (Streaming plugin), for the side-by-side figures.
//!
//! Janus runs in its own network namespace (see [`crate::janus`]), so the load must be
//! generated there too: the *outer* process (the CLI, or a test) starts Janus pinned to its
//! core and re-executes its own binary inside the namespace ([`run_janus`]); the *inner*
//! process ([`inner_main`]) feeds the mountpoint with [`RtpFeeder`] (the same IVF and Opus
//! silence the classrelay publisher sends), joins the same number of str0m viewers at the
//! same pace, and measures them with the same code as for classrelay
//! ([`crate::scenario::measure`]).
//!
//! # How the steady window is shared
//!
//! Only the outer process owns Janus's PID, so it reads `/proc`; only the inner one knows when
//! the joins are done. At each [`Mark`] the inner process prints a marker line on its stdout
//! and blocks until the outer process, having read `/proc`, writes a line back on its stdin.
//! So the CPU window the outer process measures (between its `window-start` and `window-end`
//! samples, on its own clock) encloses the inner process's packet window (from the
//! `window-start` acknowledgement to just before the `window-end` marker) up to one pipe
//! round trip at each end (microseconds against seconds). RSS is read at `base` (feeder
//! running, no viewer yet) and `window-end`. At the end the inner process prints its figures
//! as one JSON marker line; the outer process adds CPU and memory. Other inner output is
//! passed through indented.
//!
//! # What the Janus path cannot measure
//!
//! * Latency: Janus 1.1.2 knows neither the abs-capture-time extension (neither the core nor
//!   the Streaming plugin negotiates or forwards it) nor anything the feeder could put in
//!   plain RTP for it, so the column says "n/a".
//! * Keyframe requests at the publisher: the feeder is plain RTP without an RTCP path; Janus
//!   serves joins from its buffered keyframe (`videobufferkf`).

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::janus::{FeedMedia, JanusEndpoint, JanusServer, JanusViewer, RtpFeeder};
use crate::scenario::{
    gather, join_interval, measure, start_swarms, Figures, Joined, Load, Mark, Probe, Session,
};
use crate::target::ProcSample;

/// Environment variable carrying the scenario and load into the inner process.
pub const RUN_ENV: &str = "CLASSRELAY_LOADTEST_JANUS_RUN";
/// Prefix of the inner process's marker lines.
const MARKER: &str = "@@classrelay-loadtest ";

/// Why `sync` has no Janus run.
pub const SYNC_UNSUPPORTED: &str = "sync against Janus is not supported: the Streaming plugin \
     is one-to-many (one RTP source per mountpoint, receive-only viewers); a two-way \
     hub-and-classes comparison would need the VideoRoom plugin and WebRTC publishers";

#[derive(Serialize, Deserialize)]
struct RunSpec {
    scenario: String,
    load: Load,
}

/// Runs `scenario` against a started Janus: re-executes the current binary inside Janus's
/// namespace with `inner_args` (which must make it call [`inner_main`]), answers its marks
/// with `/proc` samples of Janus, and returns its figures with Janus's CPU and memory.
pub fn run_janus<S: AsRef<OsStr>>(
    server: &JanusServer,
    inner_args: &[S],
    scenario: &str,
    load: &Load,
) -> Result<Figures> {
    if scenario == "sync" {
        bail!("{SYNC_UNSUPPORTED}");
    }
    let spec = serde_json::to_string(&RunSpec {
        scenario: scenario.to_string(),
        load: load.clone(),
    })?;
    let mut child = server
        .current_exe_command(inner_args, &[(RUN_ENV.to_string(), spec)])?
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting the load inside Janus's namespace")?;
    let mut ack = child.stdin.take().context("inner stdin")?;
    let out = BufReader::new(child.stdout.take().context("inner stdout")?);
    let mut base: Option<ProcSample> = None;
    let mut start: Option<(ProcSample, Instant)> = None;
    let mut end: Option<(ProcSample, Instant)> = None;
    let mut figures: Option<Figures> = None;
    let mut failure = None;
    for line in out.lines() {
        let line = line?;
        // Anywhere in the line: a test harness running the inner process may print its
        // "test name ... " prefix on the same line as the first output.
        let Some(at) = line.find(MARKER) else {
            println!("    | {line}");
            continue;
        };
        let rest = &line[at + MARKER.len()..];
        if let Some(name) = rest.strip_prefix("mark ") {
            let s = server.sample();
            let now = Instant::now();
            // Acknowledge even on failure, so the inner process does not hang.
            let _ = writeln!(ack, "ok").and_then(|_| ack.flush());
            let s = match s {
                Ok(s) => s,
                Err(e) => {
                    failure = Some(e.context("sampling janus"));
                    continue;
                }
            };
            match Mark::parse(name) {
                Some(Mark::Base) => base = Some(s),
                Some(Mark::WindowStart) => start = Some((s, now)),
                Some(Mark::WindowEnd) => end = Some((s, now)),
                None => failure = Some(anyhow::anyhow!("unknown mark {name}")),
            }
        } else if let Some(json) = rest.strip_prefix("figures ") {
            figures = Some(serde_json::from_str(json).context("inner figures")?);
        }
    }
    drop(ack);
    let status = child.wait()?;
    if !status.success() {
        let log = std::fs::read_to_string(server.log_path()).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(15).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        bail!(
            "the inner run failed ({status}); janus log tail:\n{}",
            tail.join("\n")
        );
    }
    if let Some(e) = failure {
        return Err(e);
    }
    let mut f = figures.context("the inner run printed no figures")?;
    let ((s0, t0), (s1, t1)) = start.zip(end).context("the inner run marked no window")?;
    let base = base.context("the inner run marked no base")?;
    let cpu = (s1.cpu_seconds - s0.cpu_seconds) / t1.duration_since(t0).as_secs_f64();
    f.server_cpu = cpu;
    if cpu > 0.0 {
        f.pkts_per_cpu_s = f.forwarded_pps / cpu;
        f.video_pkts_per_cpu_s = f.forwarded_video_pps / cpu;
    }
    f.rss_base_kib = base.rss_kib;
    f.rss_end_kib = s1.rss_kib;
    f.rss_per_sub_kib = (s1.rss_kib as f64 - base.rss_kib as f64) / f.subscribers.max(1) as f64;
    Ok(f)
}

/// The inner process's probe: a marker line out, an acknowledgement line in.
struct MarkerProbe;

impl Probe for MarkerProbe {
    fn mark(&mut self, mark: Mark) -> Result<Option<ProcSample>> {
        println!("{MARKER}mark {}", mark.name());
        std::io::stdout().flush()?;
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .context("waiting for the outer process")?;
        if line.trim() != "ok" {
            bail!("the outer process did not acknowledge mark {}", mark.name());
        }
        Ok(None)
    }
}

/// The inner process: if this process was started by [`run_janus`], runs the load and prints
/// the figures, and returns `Some`; otherwise `None`.
pub fn inner_main() -> Option<Result<()>> {
    let spec = std::env::var(RUN_ENV).ok()?;
    Some((|| {
        let endpoint =
            JanusEndpoint::from_env().context("no Janus endpoint in the environment")??;
        let spec: RunSpec = serde_json::from_str(&spec).context("bad run spec")?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let figures = rt.block_on(run_inner(&endpoint, &spec.scenario, &spec.load))?;
        println!("{MARKER}figures {}", serde_json::to_string(&figures)?);
        Ok(())
    })())
}

async fn run_inner(endpoint: &JanusEndpoint, scenario: &str, load: &Load) -> Result<Figures> {
    // What the classrelay publisher sends: the IVF's frames and 20 ms Opus silence.
    let media = FeedMedia::load(&load.video, load.fps, None, true)?;
    // The lesson is live before classrooms join (as with classrelay's publisher, >30 frames),
    // and Janus holds a keyframe for them (`videobufferkf`). Janus never buffers the very
    // first keyframe of a new source (seen: with the 720p file, keyframes 2 s apart, every
    // viewer waited for the live one), so the feeder also gets past the file's second
    // keyframe (or its loop back to the first) before anyone joins.
    let second_keyframe = media
        .video
        .iter()
        .enumerate()
        .skip(1)
        .find(|(_, f)| f.keyframe)
        .map_or(media.video.len(), |(i, _)| i) as u64;
    let warm = second_keyframe.max(30);
    let feeder = RtpFeeder::start(media, endpoint.video_rtp, endpoint.audio_rtp)?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while feeder.stats.frames.load(Ordering::Relaxed) <= warm && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut probe = MarkerProbe;
    probe.mark(Mark::Base)?;
    let swarms = start_swarms(load)?;
    let http = reqwest::Client::new();
    let swarms_len = swarms.len();
    let interval = join_interval(scenario, load, load.subscribers);
    let t0 = Instant::now();
    let mut pending = Vec::new();
    for i in 0..load.subscribers {
        let at = t0 + Duration::from_secs_f64(interval * i as f64);
        tokio::time::sleep_until(at.into()).await;
        let swarm = swarms[i % swarms.len()].clone();
        let (http, endpoint) = (http.clone(), endpoint.clone());
        pending.push(tokio::spawn(async move {
            JanusViewer::join(&http, &endpoint, &swarm)
                .await
                .map(|v| (i % swarms_len, v))
        }));
    }
    let viewers = gather(pending, "janus viewer").await?;
    let join_s = t0.elapsed().as_secs_f64();
    let sessions = viewers
        .iter()
        .map(|(_, v)| Session {
            peer: v.peer.clone(),
            asked: v.joined_at,
            answered: v.start_sent_at,
        })
        .collect();
    let joined = Joined {
        scenario,
        target: "janus",
        load,
        asked_for: load.subscribers,
        sessions,
        swarms: &swarms,
        publishers: Vec::new(),
        kf_before: 0,
        base: None,
        join_s,
        metrics_url: None,
        notes: vec![
            "latency n/a: Janus 1.1.2 neither negotiates nor forwards the abs-capture-time \
             extension, and the RTP feeder has no other stamp Janus would carry"
                .to_string(),
            "keyframe requests n/a: the feeder is plain RTP without an RTCP path; Janus \
             serves joins from its buffered keyframe (videobufferkf)"
                .to_string(),
        ],
    };
    let figures = measure(joined, &mut probe).await?;
    for (i, v) in viewers {
        if let Err(e) = v.leave(&swarms[i]).await {
            tracing::debug!("leaving: {e:#}");
        }
    }
    drop(swarms);
    drop(feeder);
    Ok(figures)
}
