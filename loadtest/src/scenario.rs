//! Scenarios and the figures they produce.
//!
//! * `broadcast` (名师课堂): one publisher, N viewing sites joining at a set rate; measured over a
//!   steady window after everyone joined.
//! * `bell`: N classrooms join within T seconds at lesson start; time to first keyframe and the
//!   keyframe requests that reached the publisher are what matter.
//!
//! Subscribers never decode. Packet counts come from the subscribers, CPU and memory from the
//! server's `/proc` entry, latency from the abs-capture-time stamp the publisher writes and the
//! subscribers read on the same clock.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::Serialize;
use str0m::format::Codec;

use crate::ivf;
use crate::swarm::{PeerHandle, Source, Swarm};
use crate::target::{sample, ClassrelayProc};
use crate::whip;

/// Options shared by the scenarios.
#[derive(Debug, Clone)]
pub struct Load {
    /// Viewing sites / classrooms.
    pub subscribers: usize,
    /// Joins per second (broadcast); for `bell`, all join within `join_window`.
    pub join_rate: f64,
    /// Bell: all subscribers join within this window.
    pub join_window: Duration,
    /// Settling time after the last join before measuring.
    pub warmup: Duration,
    /// Measurement window.
    pub duration: Duration,
    /// The VP8 IVF file the publisher loops.
    pub video: PathBuf,
    /// Its frame rate.
    pub fps: u32,
    /// Subscriber threads (each a swarm with its own poll loop).
    pub swarms: usize,
}

/// The figures of one run.
#[derive(Debug, Clone, Serialize)]
pub struct Figures {
    /// "classrelay" or "janus".
    pub target: String,
    /// Scenario name.
    pub scenario: String,
    /// Subscribers asked for.
    pub subscribers: usize,
    /// Subscribers that connected and received a keyframe.
    pub receiving: usize,
    /// Measurement window in seconds.
    pub window_s: f64,
    /// RTP packets received by all subscribers per second (what the server forwarded).
    pub forwarded_pps: f64,
    /// Video packets only, per second.
    pub forwarded_video_pps: f64,
    /// Server CPU seconds per second (1.0 = one core busy).
    pub server_cpu: f64,
    /// Forwarded packets per server CPU-second.
    pub pkts_per_cpu_s: f64,
    /// Forwarded video packets per server CPU-second.
    pub video_pkts_per_cpu_s: f64,
    /// Video packets missing at subscribers (sequence gaps) over the window, percent.
    pub loss_pct: f64,
    /// Capture→arrival latency percentiles in microseconds (publisher and subscribers share
    /// a clock); includes both loopback hops and the generator's own scheduling.
    pub latency_us: Percentiles,
    /// Join request → first keyframe, milliseconds.
    pub ttfk_ms: Percentiles,
    /// Join request → DTLS connected, milliseconds.
    pub connect_ms: Percentiles,
    /// Server RSS before subscribers joined, KiB.
    pub rss_base_kib: u64,
    /// Server RSS at the end, KiB.
    pub rss_end_kib: u64,
    /// (end − base) / subscribers, KiB.
    pub rss_per_sub_kib: f64,
    /// Keyframe requests the publisher received while subscribers joined.
    pub keyframe_requests_at_publisher: u64,
    /// How long the joins took, seconds.
    pub join_s: f64,
}

/// p50/p95/p99.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
}

fn percentiles(mut v: Vec<f64>) -> Percentiles {
    if v.is_empty() {
        return Percentiles::default();
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let at = |q: f64| v[(((v.len() - 1) as f64) * q).round() as usize];
    Percentiles {
        p50: at(0.5),
        p95: at(0.95),
        p99: at(0.99),
    }
}

/// Loads the publisher's source.
pub fn source(load: &Load) -> Result<Source> {
    let bytes =
        std::fs::read(&load.video).with_context(|| format!("reading {}", load.video.display()))?;
    let (_, frames) = ivf::parse(&bytes)?;
    Ok(Source {
        frames: Arc::new(frames),
        fps: load.fps,
        codec: Codec::Vp8,
        audio: true,
        simulcast: Vec::new(),
    })
}

struct Joined {
    peer: PeerHandle,
    asked: Instant,
}

/// Runs a scenario against a classrelay process.
pub async fn run_classrelay(
    server: &ClassrelayProc,
    scenario: &str,
    load: &Load,
) -> Result<Figures> {
    let http = reqwest::Client::new();
    let room = "loadtest";
    let pub_token = server.token(room, "publish")?;
    let sub_token = server.token(room, "subscribe")?;
    let publisher_swarm = Swarm::start()?;
    let swarms: Vec<Arc<Swarm>> = (0..load.swarms.max(1))
        .map(|_| Swarm::start().map(Arc::new))
        .collect::<Result<_>>()?;
    let publisher = whip::join(
        &publisher_swarm,
        &http,
        &format!("{}/whip/{room}", server.base),
        &pub_token,
        publisher_swarm.publisher_offer(source(load)?)?,
    )
    .await?;
    publisher
        .stats
        .wait_for(Duration::from_secs(10), |s| {
            s.frames_sent.load(Ordering::Relaxed) > 30
        })
        .await;
    let base = sample(server.pid())?;
    let kf_before = publisher.stats.keyframe_requests.load(Ordering::Relaxed);

    // Joins: paced at join_rate (broadcast) or spread evenly over join_window (bell).
    let interval = if scenario == "bell" {
        load.join_window.as_secs_f64() / load.subscribers.max(1) as f64
    } else {
        1.0 / load.join_rate.max(0.001)
    };
    let t0 = Instant::now();
    let mut pending = Vec::new();
    for i in 0..load.subscribers {
        let at = t0 + Duration::from_secs_f64(interval * i as f64);
        tokio::time::sleep_until(at.into()).await;
        let swarm = swarms[i % swarms.len()].clone();
        let http = http.clone();
        let url = format!("{}/whep/{room}", server.base);
        let token = sub_token.clone();
        // Each join runs on its own: POST, then hand the peer to its swarm at once, so the
        // time to connect is not inflated by later joins.
        pending.push(tokio::spawn(async move {
            let asked = Instant::now();
            let offer = swarm.subscriber_offer(1, 1)?;
            let c = whip::post_offer(&http, &url, &token, &offer.sdp).await?;
            let peer = swarm.add(offer, &c.answer, c.url, c.etag)?;
            anyhow::Ok(Joined { peer, asked })
        }));
    }
    let mut joined = Vec::new();
    for task in pending {
        match task.await? {
            Ok(j) => joined.push(j),
            Err(e) => tracing::warn!("join failed: {e:#}"),
        }
    }
    let join_s = t0.elapsed().as_secs_f64();
    // Everyone who can should get a keyframe.
    for j in &joined {
        j.peer
            .stats
            .wait_for(Duration::from_secs(10), |s| s.first_keyframe_at().is_some())
            .await;
    }
    let kf_requests = publisher
        .stats
        .keyframe_requests
        .load(Ordering::Relaxed)
        .saturating_sub(kf_before);
    tokio::time::sleep(load.warmup).await;

    // Steady window.
    let snap = |j: &[Joined]| -> (u64, u64, u64) {
        j.iter().fold((0, 0, 0), |(v, a, g), x| {
            (
                v + x.peer.stats.video_packets.load(Ordering::Relaxed),
                a + x.peer.stats.audio_packets.load(Ordering::Relaxed),
                g + x.peer.stats.video_seq_gaps.load(Ordering::Relaxed),
            )
        })
    };
    for s in &swarms {
        s.latency.reset();
    }
    let cpu0 = sample(server.pid())?;
    let (v0, a0, g0) = snap(&joined);
    let w0 = Instant::now();
    tokio::time::sleep(load.duration).await;
    let window = w0.elapsed().as_secs_f64();
    let cpu1 = sample(server.pid())?;
    let (v1, a1, g1) = snap(&joined);

    let video = (v1 - v0) as f64;
    let total = video + (a1 - a0) as f64;
    let cpu = (cpu1.cpu_seconds - cpu0.cpu_seconds) / window;
    let gaps = (g1 - g0) as f64;
    let mut lat = Vec::new();
    for q in [0.5, 0.95, 0.99] {
        // Merge the swarms' histograms by taking the worst swarm's quantile (conservative).
        let worst = swarms
            .iter()
            .filter_map(|s| s.latency.quantile(q))
            .max()
            .unwrap_or_default();
        lat.push(worst.as_secs_f64() * 1e6);
    }
    let ttfk: Vec<f64> = joined
        .iter()
        .filter_map(|j| {
            j.peer
                .stats
                .first_keyframe_at()
                .map(|t| (t - j.asked).as_secs_f64() * 1e3)
        })
        .collect();
    let receiving = ttfk.len();
    let connect: Vec<f64> = joined
        .iter()
        .filter_map(|j| {
            j.peer
                .stats
                .connected_at()
                .map(|t| t.saturating_duration_since(j.asked).as_secs_f64() * 1e3)
        })
        .collect();
    let n = load.subscribers.max(1) as f64;
    Ok(Figures {
        target: "classrelay".into(),
        scenario: scenario.into(),
        subscribers: load.subscribers,
        receiving,
        window_s: window,
        forwarded_pps: total / window,
        forwarded_video_pps: video / window,
        server_cpu: cpu,
        pkts_per_cpu_s: if cpu > 0.0 { total / window / cpu } else { 0.0 },
        video_pkts_per_cpu_s: if cpu > 0.0 { video / window / cpu } else { 0.0 },
        loss_pct: if video + gaps > 0.0 {
            100.0 * gaps / (video + gaps)
        } else {
            0.0
        },
        latency_us: Percentiles {
            p50: lat[0],
            p95: lat[1],
            p99: lat[2],
        },
        ttfk_ms: percentiles(ttfk),
        connect_ms: percentiles(connect),
        rss_base_kib: base.rss_kib,
        rss_end_kib: cpu1.rss_kib,
        rss_per_sub_kib: (cpu1.rss_kib as f64 - base.rss_kib as f64) / n,
        keyframe_requests_at_publisher: kf_requests,
        join_s,
    })
}

/// A plain-text table of runs, one column per run.
pub fn table(runs: &[Figures]) -> String {
    let mut rows: Vec<(String, Vec<String>)> = Vec::new();
    let mut row = |name: &str, f: &dyn Fn(&Figures) -> String| {
        rows.push((name.to_string(), runs.iter().map(f).collect()));
    };
    row("target", &|f| f.target.clone());
    row("scenario", &|f| f.scenario.clone());
    row("subscribers (receiving)", &|f| {
        format!("{} ({})", f.subscribers, f.receiving)
    });
    row("forwarded pkt/s (video)", &|f| {
        format!("{:.0} ({:.0})", f.forwarded_pps, f.forwarded_video_pps)
    });
    row("server CPU s/s", &|f| format!("{:.3}", f.server_cpu));
    row("pkt per CPU-s (video)", &|f| {
        format!("{:.0} ({:.0})", f.pkts_per_cpu_s, f.video_pkts_per_cpu_s)
    });
    row("subscriber loss %", &|f| format!("{:.3}", f.loss_pct));
    row("latency p50/p95/p99 µs", &|f| {
        format!(
            "{:.0}/{:.0}/{:.0}",
            f.latency_us.p50, f.latency_us.p95, f.latency_us.p99
        )
    });
    row("first keyframe p50/p95/p99 ms", &|f| {
        format!(
            "{:.0}/{:.0}/{:.0}",
            f.ttfk_ms.p50, f.ttfk_ms.p95, f.ttfk_ms.p99
        )
    });
    row("connected p50/p95/p99 ms", &|f| {
        format!(
            "{:.0}/{:.0}/{:.0}",
            f.connect_ms.p50, f.connect_ms.p95, f.connect_ms.p99
        )
    });
    row("RSS base → end MiB", &|f| {
        format!(
            "{:.1} → {:.1}",
            f.rss_base_kib as f64 / 1024.0,
            f.rss_end_kib as f64 / 1024.0
        )
    });
    row("RSS per subscriber KiB", &|f| {
        format!("{:.0}", f.rss_per_sub_kib)
    });
    row("keyframe requests at publisher", &|f| {
        f.keyframe_requests_at_publisher.to_string()
    });
    row("joins took s", &|f| format!("{:.1}", f.join_s));
    let w0 = rows
        .iter()
        .map(|(n, _)| n.chars().count())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for (name, vals) in rows {
        out.push_str(&format!("{name:<w0$}"));
        for v in vals {
            out.push_str(&format!("  {v:>22}"));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_picks() {
        let p = percentiles((1..=100).map(f64::from).collect());
        assert_eq!((p.p50, p.p95, p.p99), (51.0, 95.0, 99.0));
        let e = percentiles(vec![]);
        assert_eq!(e.p50, 0.0);
    }
}
