//! Recording benchmarks (issue 20): `record` (publishers into recorded rooms, the same run
//! with recording on and off, alternating: capture cost per stream, writer lag and drops,
//! forwarding speed) and `lesson` (a made-up 45-minute three-source capture, then the time
//! `classrelay recordings process` and `recordings export` take on it). Measures only; must
//! never change what the server does beyond the settings a run names.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::ivf::Frame;
use crate::scenario::{
    measure, parse_counter, source_from, start_swarms, whep, Figures, Joined, Load, Mark, PidProbe,
    Probe,
};
use crate::swarm::Swarm;
use crate::target::{children_cpu_seconds, ClassrelayProc, ServerOptions};
use crate::whip;

/// `record`'s settings.
#[derive(Debug, Clone)]
pub struct RecordOptions {
    /// Publishers, each in its own room.
    pub streams: usize,
    /// Each publisher's video bitrate, bit/s (the file's frames padded up to it).
    pub bitrate: f64,
    /// Viewers per room (what the server forwards).
    pub viewers: usize,
    /// off/on pairs.
    pub rounds: usize,
    /// The server binary.
    pub server_bin: PathBuf,
    /// The server's pinning and workers.
    pub server: ServerOptions,
    /// The load (video, fps, warmup, window, swarms).
    pub load: Load,
}

/// One `record` run's figures.
#[derive(Debug, Clone, Serialize)]
pub struct RecordRun {
    /// Whether the rooms were recorded.
    pub recording: bool,
    /// The forwarding figures (server CPU over the window, packets per CPU-second, loss).
    pub figures: Figures,
    /// Capture files open at the window's end.
    pub capture_open: f64,
    /// Capture bytes written per second over warm-up and window, MB/s.
    pub capture_mb_per_s: f64,
    /// Capture records per second.
    pub capture_records_per_s: f64,
    /// Packets the media workers could not hand to the writer, over warm-up and window.
    pub capture_dropped: f64,
    /// Capture write errors over warm-up and window.
    pub capture_write_errors: f64,
    /// The largest writer lag read (every 250 ms), ms.
    pub writer_lag_max_ms: f64,
    /// The largest writer queue read.
    pub writer_queue_max: f64,
}

/// What `record` found, over all rounds.
#[derive(Debug, Clone, Serialize)]
pub struct RecordSummary {
    /// Every run, in order.
    pub runs: Vec<RecordRun>,
    /// (CPU on − CPU off) / streams, per round, in % of one core.
    pub capture_cost_pct_core_per_stream: Vec<f64>,
    /// 1 − (video pkt per CPU-s on / off), per round, %.
    pub forwarding_cost_pct: Vec<f64>,
}

/// The frames padded (with their own bytes repeated) so the file plays at `bitrate` bit/s;
/// a frame is never cut. The server and the recorder never decode, only the first bytes
/// (keyframe flag) matter to them.
pub fn at_bitrate(frames: &[Frame], fps: u32, bitrate: f64) -> Vec<Frame> {
    let bytes: usize = frames.iter().map(|f| f.data.len()).sum();
    let now = bytes as f64 * 8.0 * f64::from(fps) / frames.len().max(1) as f64;
    let factor = (bitrate / now.max(1.0)).max(1.0);
    frames
        .iter()
        .map(|f| {
            let want = (f.data.len() as f64 * factor).round() as usize;
            let mut data = f.data.clone();
            while data.len() < want {
                let take = (want - data.len()).min(f.data.len());
                data.extend_from_slice(&f.data[..take]);
            }
            Frame {
                data,
                keyframe: f.keyframe,
            }
        })
        .collect()
}

/// Parses `2.5M`, `2500k` or `2500000` as bit/s.
pub fn parse_bitrate(s: &str) -> Result<f64> {
    let t = s.trim();
    let (num, mul) = match t.char_indices().last() {
        Some((i, 'M' | 'm')) => (&t[..i], 1e6),
        Some((i, 'K' | 'k')) => (&t[..i], 1e3),
        _ => (t, 1.0),
    };
    let v: f64 = num
        .trim()
        .parse()
        .with_context(|| format!("bitrate {s:?}: expected e.g. 2.5M, 2500k"))?;
    if !(v.is_finite() && v > 0.0) {
        bail!("bitrate {s:?} must be positive");
    }
    Ok(v * mul)
}

/// The capture counters of one `/metrics` reading.
#[derive(Debug, Clone, Copy, Default)]
struct CaptureReading {
    bytes: f64,
    records: f64,
    dropped: f64,
    errors: f64,
    open: f64,
    lag_s: f64,
    queue: f64,
}

async fn capture_reading(http: &reqwest::Client, url: &str) -> Option<CaptureReading> {
    let text = http.get(url).send().await.ok()?.text().await.ok()?;
    let c = |n: &str| parse_counter(&text, n).unwrap_or(0.0);
    Some(CaptureReading {
        bytes: c("classrelay_capture_bytes_total"),
        records: c("classrelay_capture_records_total"),
        dropped: c("classrelay_capture_dropped_packets_total"),
        errors: c("classrelay_capture_write_errors_total"),
        open: c("classrelay_capture_open_files"),
        lag_s: c("classrelay_capture_writer_lag_seconds"),
        queue: c("classrelay_capture_writer_queue"),
    })
}

/// One run: a fresh server with recording on or off, `streams` publishers each in room
/// `rec-i` with `viewers` viewers, measured over the load's window.
async fn record_run(o: &RecordOptions, recording: bool) -> Result<RecordRun> {
    let rooms = if recording { "all" } else { "none" };
    let server = ClassrelayProc::start_with_env(
        &o.server_bin,
        &o.server,
        &[("CLASSRELAY_RECORDING__ROOMS", rooms)],
    )?;
    let http = reqwest::Client::new();
    let mut source = source_from(&o.load.video, o.load.fps)?;
    source.frames = Arc::new(at_bitrate(&source.frames, o.load.fps, o.bitrate));
    let publisher_swarm = Swarm::start()?;
    let swarms = start_swarms(&o.load)?;
    let t0 = Instant::now();
    let mut publishers = Vec::new();
    let mut sub_tokens = Vec::new();
    for i in 0..o.streams {
        let room = format!("rec-{i}");
        let token = server.token(&room, "publish")?;
        sub_tokens.push((room.clone(), server.token(&room, "subscribe")?));
        let p = whip::join(
            &publisher_swarm,
            &http,
            &format!("{}/whip/{room}", server.base),
            &token,
            publisher_swarm.publisher_offer(source.clone())?,
        )
        .await
        .with_context(|| format!("publisher {i}"))?;
        publishers.push(p);
    }
    for p in &publishers {
        p.stats
            .wait_for(Duration::from_secs(20), |s| {
                s.frames_sent.load(Ordering::Relaxed) > 30
            })
            .await;
    }
    let mut probe = PidProbe(server.pid());
    let base = probe.mark(Mark::Base)?;
    let mut pending = Vec::new();
    for (k, (room, token)) in sub_tokens.iter().enumerate() {
        for v in 0..o.viewers {
            let swarm = swarms[(k * o.viewers + v) % swarms.len()].clone();
            let url = format!("{}/whep/{room}", server.base);
            pending.push(tokio::spawn(whep(
                swarm,
                http.clone(),
                url,
                token.clone(),
                1,
                1,
            )));
        }
    }
    let sessions = crate::scenario::gather(pending, "join").await?;
    let join_s = t0.elapsed().as_secs_f64();

    let metrics_url = format!("{}/metrics", server.base);
    let before = capture_reading(&http, &metrics_url)
        .await
        .unwrap_or_default();
    let started = Instant::now();
    // The writer's lag and queue are gauges: read them every 250 ms while the run lasts.
    let stop = Arc::new(AtomicBool::new(false));
    let poller = {
        let (stop, http, url) = (stop.clone(), http.clone(), metrics_url.clone());
        tokio::spawn(async move {
            let (mut lag, mut queue) = (0f64, 0f64);
            while !stop.load(Ordering::Relaxed) {
                if let Some(r) = capture_reading(&http, &url).await {
                    lag = lag.max(r.lag_s);
                    queue = queue.max(r.queue);
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            (lag, queue)
        })
    };
    let joined = Joined {
        scenario: "record",
        target: "classrelay",
        load: &o.load,
        asked_for: o.streams * o.viewers,
        sessions,
        swarms: &swarms,
        publishers: publishers.iter().map(|p| p.stats.clone()).collect(),
        kf_before: 0,
        base,
        join_s,
        notes: vec![format!(
            "{} publishers at {:.0} kbit/s video, recording {}",
            o.streams,
            o.bitrate / 1e3,
            if recording { "on" } else { "off" }
        )],
        metrics_url: Some(metrics_url.clone()),
    };
    let figures = measure(joined, &mut probe).await?;
    stop.store(true, Ordering::Relaxed);
    let (lag, queue) = poller.await.unwrap_or_default();
    let after = capture_reading(&http, &metrics_url)
        .await
        .unwrap_or_default();
    let secs = started.elapsed().as_secs_f64().max(1e-9);
    drop(publisher_swarm);
    Ok(RecordRun {
        recording,
        figures,
        capture_open: after.open,
        capture_mb_per_s: (after.bytes - before.bytes) / secs / 1e6,
        capture_records_per_s: (after.records - before.records) / secs,
        capture_dropped: after.dropped - before.dropped,
        capture_write_errors: after.errors - before.errors,
        writer_lag_max_ms: lag.max(after.lag_s) * 1e3,
        writer_queue_max: queue.max(after.queue),
    })
}

/// `record`: `rounds` pairs of runs, recording off then on, each on a fresh server.
pub async fn record(o: &RecordOptions) -> Result<RecordSummary> {
    let mut runs = Vec::new();
    let mut cost = Vec::new();
    let mut fwd = Vec::new();
    for round in 0..o.rounds.max(1) {
        let mut pair = Vec::new();
        for recording in [false, true] {
            println!(
                "== record: round {}, recording {} ==",
                round + 1,
                if recording { "on" } else { "off" }
            );
            let r = record_run(o, recording).await?;
            println!("{}", run_lines(&r));
            pair.push(r.clone());
            runs.push(r);
        }
        let (off, on) = (&pair[0].figures, &pair[1].figures);
        cost.push(100.0 * (on.server_cpu - off.server_cpu) / o.streams.max(1) as f64);
        if off.video_pkts_per_cpu_s > 0.0 {
            fwd.push(100.0 * (1.0 - on.video_pkts_per_cpu_s / off.video_pkts_per_cpu_s));
        }
    }
    let s = RecordSummary {
        runs,
        capture_cost_pct_core_per_stream: cost,
        forwarding_cost_pct: fwd,
    };
    println!("{}", summary_lines(&s));
    Ok(s)
}

fn run_lines(r: &RecordRun) -> String {
    let f = &r.figures;
    format!(
        "server CPU s/s {:.3}; forwarded video pkt/s {:.0}; video pkt per CPU-s {:.0}; \
         viewers receiving {}/{}; loss {:.3} %\n\
         capture: open files {:.0}, {:.2} MB/s, {:.0} records/s, dropped packets {:.0}, \
         write errors {:.0}, writer lag max {:.1} ms, writer queue max {:.0}",
        f.server_cpu,
        f.forwarded_video_pps,
        f.video_pkts_per_cpu_s,
        f.receiving,
        f.subscribers,
        f.loss_pct,
        r.capture_open,
        r.capture_mb_per_s,
        r.capture_records_per_s,
        r.capture_dropped,
        r.capture_write_errors,
        r.writer_lag_max_ms,
        r.writer_queue_max,
    )
}

fn summary_lines(s: &RecordSummary) -> String {
    let list = |v: &[f64], d: usize| {
        v.iter()
            .map(|x| format!("{x:.d$}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "capture cost per recorded stream, % of a core (per round): {}\n\
         forwarding cost of recording (video pkt per CPU-s, off → on), % (per round): {}\n\
         dropped packets with recording on: {}",
        list(&s.capture_cost_pct_core_per_stream, 3),
        list(&s.forwarding_cost_pct, 1),
        s.runs
            .iter()
            .filter(|r| r.recording)
            .map(|r| format!("{:.0}", r.capture_dropped))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// `lesson`'s settings.
#[derive(Debug, Clone)]
pub struct LessonOptions {
    /// The lesson's length, e.g. "45m".
    pub duration: String,
    /// The VP8 IVF file every video source loops.
    pub video: PathBuf,
    /// The server binary (its `recordings` commands).
    pub server_bin: PathBuf,
    /// Times `recordings process` runs.
    pub runs: usize,
    /// Export presets to time (a `--features gst` build), e.g. showcase.
    pub exports: Vec<String>,
    /// The data directory (kept); a fresh temporary one, removed at the end, when `None`.
    pub data: Option<PathBuf>,
}

/// A timed command.
#[derive(Debug, Clone, Serialize)]
pub struct Timed {
    /// What ran.
    pub what: String,
    /// Wall-clock seconds.
    pub wall_s: f64,
    /// CPU seconds of the command (user + system, all threads).
    pub cpu_s: f64,
    /// Lesson seconds per wall-clock second (exports).
    pub realtime_factor: Option<f64>,
}

/// What `lesson` found.
#[derive(Debug, Clone, Serialize)]
pub struct LessonSummary {
    /// What `recordings synthesize` printed.
    pub capture: serde_json::Value,
    /// Each `recordings process` run.
    pub process: Vec<Timed>,
    /// Each export.
    pub exports: Vec<Timed>,
}

fn run_timed(bin: &Path, data: &Path, args: &[&str]) -> Result<(Timed, String)> {
    let cpu0 = children_cpu_seconds()?;
    let t0 = Instant::now();
    let out = Command::new(bin)
        .args(args)
        .env("CLASSRELAY_DATA__DIR", data)
        .env("CLASSRELAY_LOG", "warn")
        .output()
        .with_context(|| format!("running {}", bin.display()))?;
    let wall_s = t0.elapsed().as_secs_f64();
    let cpu_s = children_cpu_seconds()? - cpu0;
    if !out.status.success() {
        bail!(
            "{} {}: {}",
            bin.display(),
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok((
        Timed {
            what: args.join(" "),
            wall_s,
            cpu_s,
            realtime_factor: None,
        },
        String::from_utf8_lossy(&out.stdout).into_owned(),
    ))
}

/// `lesson`: synthesise, then time processing (`runs` times) and each export.
pub fn lesson(o: &LessonOptions) -> Result<LessonSummary> {
    if !o.server_bin.exists() {
        bail!(
            "{} not found: build it first (cargo build --release --bin classrelay, with \
             --features gst for exports)",
            o.server_bin.display()
        );
    }
    let temp = o.data.is_none();
    let data = o.data.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("classrelay-lesson-{}", std::process::id()))
    });
    std::fs::create_dir_all(&data)?;
    let result = lesson_in(o, &data);
    if temp {
        let _ = std::fs::remove_dir_all(&data);
    }
    result
}

fn lesson_in(o: &LessonOptions, data: &Path) -> Result<LessonSummary> {
    let video = o.video.display().to_string();
    let (made, out) = run_timed(
        &o.server_bin,
        data,
        &[
            "recordings",
            "synthesize",
            "--duration",
            &o.duration,
            "--video",
            &video,
        ],
    )?;
    let capture: serde_json::Value =
        serde_json::from_str(out.trim()).context("synthesize printed no JSON")?;
    let id = capture["id"]
        .as_i64()
        .context("synthesize printed no id")?
        .to_string();
    let lesson_s = capture["report"]["duration_ms"].as_f64().unwrap_or(0.0) / 1e3;
    println!(
        "capture: {} MB, {} packets, {:.0} kbit/s per video source, written in {:.1} s",
        capture["report"]["bytes"].as_f64().unwrap_or(0.0) / 1e6,
        capture["report"]["packets"],
        capture["report"]["video_kbps"].as_f64().unwrap_or(0.0),
        made.wall_s
    );
    let mut process = Vec::new();
    for i in 0..o.runs.max(1) {
        let (t, out) = run_timed(&o.server_bin, data, &["recordings", "process", &id])?;
        let report: serde_json::Value = serde_json::from_str(out.trim()).unwrap_or_default();
        println!(
            "process run {}: {:.2} s wall, {:.2} s CPU ({} sources; {})",
            i + 1,
            t.wall_s,
            t.cpu_s,
            report["manifest"]["sources"]
                .as_array()
                .map_or(0, |a| a.len()),
            report["read"].as_str().unwrap_or("?")
        );
        process.push(t);
    }
    let mut exports = Vec::new();
    for preset in &o.exports {
        let (mut t, _) = run_timed(
            &o.server_bin,
            data,
            &["recordings", "export", &id, "--preset", preset],
        )?;
        t.realtime_factor = Some(lesson_s / t.wall_s.max(1e-9));
        println!(
            "export {preset}: {:.1} s wall, {:.1} s CPU, {:.2}× real time",
            t.wall_s,
            t.cpu_s,
            lesson_s / t.wall_s.max(1e-9)
        );
        exports.push(t);
    }
    Ok(LessonSummary {
        capture,
        process,
        exports,
    })
}
