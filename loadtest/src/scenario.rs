//! Scenarios and the figures they produce.
//!
//! * `broadcast` (名师课堂): one publisher, N viewing sites joining at a set rate; measured over a
//!   steady window after everyone joined.
//! * `bell`: N classrooms join within T seconds at lesson start; time to first keyframe and the
//!   keyframe requests that reached the publisher are what matter.
//! * `sync` (同步课堂): one hub and K classes, all two-way. The hub publishes the 720p file and
//!   receives every class; each class publishes a smaller file and receives the hub. On the
//!   room-token path a subscriber's slots are filled in publish order with every track of the
//!   room but its own session's, and the hub's WHEP session is not its WHIP session, so the
//!   load uses two rooms: `sync-hub` (the hub publishes, the classes subscribe with one audio
//!   and one video slot) and `sync-classes` (the classes publish, the hub subscribes with K of
//!   each). The server forwards exactly what one two-way lesson needs.
//!
//! Subscribers never decode. Packet counts come from the subscribers, CPU and memory from the
//! server's `/proc` entry, latency from the abs-capture-time stamp the publisher writes and the
//! subscribers read on the same clock.
//!
//! The steady-window measurement is shared by all targets ([`measure`]); where the server's
//! `/proc` entry is read is a [`Probe`]: directly for classrelay, from the outer process for
//! Janus (see [`crate::side`]).

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

use crate::swarm::{PeerHandle, PeerStats, Source, Swarm};
use crate::target::{sample, ClassrelayProc, ProcSample};
use crate::whip;

/// Options shared by the scenarios.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Load {
    /// Viewing sites / classrooms.
    pub subscribers: usize,
    /// Joins per second (broadcast, sync); for `bell`, all join within `join_window`.
    pub join_rate: f64,
    /// Bell: all subscribers join within this window.
    pub join_window: Duration,
    /// Settling time after the last join before measuring.
    pub warmup: Duration,
    /// Measurement window.
    pub duration: Duration,
    /// The video file the publisher (the hub in `sync`) loops: VP8 in IVF or H.264 Annex B.
    pub video: PathBuf,
    /// Simulcast rids the publisher (the hub in `sync`) sends, highest first; empty: none.
    /// Each layer carries the frames cut to 1/2^i of their size (see `Source::simulcast`).
    #[serde(default)]
    pub simulcast: Vec<String>,
    /// Its frame rate.
    pub fps: u32,
    /// Subscriber threads (each a swarm with its own poll loop).
    pub swarms: usize,
    /// Sync: classes (each publishes and subscribes).
    pub classes: usize,
    /// Sync: the VP8 IVF file each class publishes (same frame rate as `video`).
    pub class_video: PathBuf,
    /// Whether the simulated viewers' sockets take UDP GSO runs whole (`UDP_GRO`), as a
    /// viewer behind a NIC would; see `swarm::enable_gro`.
    #[serde(default = "yes")]
    pub viewer_gro: bool,
    /// The publisher's thread runs `SCHED_FIFO` (see `Swarm::realtime`); with a server
    /// started real-time too, for latency runs where server and generator share the cores.
    #[serde(default)]
    pub realtime: bool,
    /// The viewers' swarm threads poll without sleeping, so no datagram the server sends has
    /// to wake one: on loopback that wake-up (an IPI, a VM exit here) runs on the server's
    /// core inside its send call, a viewer's cost a real network never puts there.
    #[serde(default)]
    pub viewer_spin: bool,
}

fn yes() -> bool {
    true
}

/// `SCHED_FIFO` priority of the publishers' thread in real-time runs: above the server's
/// (`target::SERVER_PRIORITY`), so a busy server cannot delay a frame's capture stamp from
/// its send either.
pub const PUBLISHER_PRIORITY: u8 = 20;

/// The figures of one run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Figures {
    /// "classrelay" or "janus".
    pub target: String,
    /// Scenario name.
    pub scenario: String,
    /// The publisher's video codec ("VP8", "H264"); empty in files written before it was kept.
    #[serde(default)]
    pub video_codec: String,
    /// Subscriber sessions asked for (sync: K classes + the hub).
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
    /// a clock); includes both loopback hops and the generator's own scheduling. `None` when
    /// no packet carried the abs-capture-time stamp (see `notes`).
    pub latency_us: Option<Percentiles>,
    /// What the server itself adds, microseconds: kernel arrival of a packet → hand-off of
    /// its copies to the kernel, from the server's `forward_residence_seconds` histogram over
    /// the window (interpolated within buckets; classrelay only).
    #[serde(default)]
    pub sfu_residence_us: Option<Percentiles>,
    /// Datagrams the server sent per send system call over the window, from its
    /// `udp_datagrams_out` and `udp_send_calls` counters (classrelay only).
    #[serde(default)]
    pub datagrams_per_send_call: Option<f64>,
    /// Join request → first keyframe, milliseconds.
    pub ttfk_ms: Percentiles,
    /// Answer applied → first keyframe, milliseconds: for classrelay from the WHEP answer's
    /// arrival, for Janus from sending the `start` request that carries the answer.
    pub ttfk_after_answer_ms: Percentiles,
    /// Join request → DTLS connected, milliseconds.
    pub connect_ms: Percentiles,
    /// Server RSS before subscribers joined, KiB.
    pub rss_base_kib: u64,
    /// Server RSS at the end, KiB.
    pub rss_end_kib: u64,
    /// (end − base) / subscribers, KiB. In `sync` the base is taken with only the hub
    /// publishing, so this is per class (its publisher and subscriber) plus the hub's share.
    pub rss_per_sub_kib: f64,
    /// Keyframe requests the publisher(s) received while subscribers joined; `None` when the
    /// publisher cannot see them (see `notes`).
    pub keyframe_requests_at_publisher: Option<u64>,
    /// How long the joins took, seconds.
    pub join_s: f64,
    /// What could not be measured on this path, and why.
    #[serde(default)]
    pub notes: Vec<String>,
}

/// p50/p95/p99.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
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

/// The residence buckets and the (datagrams sent, send calls) counters from one reading of
/// the server's metrics.
async fn server_reading(
    http: &reqwest::Client,
    url: &str,
) -> Option<(Vec<(f64, f64)>, Option<(f64, f64)>)> {
    let text = http.get(url).send().await.ok()?.text().await.ok()?;
    let b = parse_buckets(&text, "classrelay_forward_residence_seconds_bucket");
    let sends = parse_counter(&text, "classrelay_udp_datagrams_out_total")
        .zip(parse_counter(&text, "classrelay_udp_send_calls_total"));
    (!b.is_empty()).then_some((b, sends))
}

/// The value of counter `name` (a `name value` line), if present.
pub fn parse_counter(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        let rest = l.strip_prefix(name)?.strip_prefix(' ')?;
        rest.trim().parse().ok()
    })
}

/// The cumulative buckets of histogram `name` (`name{le="..."} count` lines).
pub fn parse_buckets(text: &str, name: &str) -> Vec<(f64, f64)> {
    let mut out: Vec<(f64, f64)> = text
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(name)?.strip_prefix("{le=\"")?;
            let (le, rest) = rest.split_once('"')?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            let count = rest.rsplit(' ').next()?.parse().ok()?;
            Some((le, count))
        })
        .collect();
    out.sort_by(|a, b| a.0.total_cmp(&b.0));
    out
}

/// p50/p95/p99 in microseconds of what was added between two readings of a cumulative
/// histogram, interpolated linearly inside the bucket (a value in the `+Inf` bucket reads
/// as the largest finite bound). `None` when nothing was added.
pub fn bucket_percentiles(before: &[(f64, f64)], after: &[(f64, f64)]) -> Option<Percentiles> {
    let delta: Vec<(f64, f64)> = after
        .iter()
        .map(|&(le, c)| {
            let b = before
                .iter()
                .find(|(l, _)| *l == le)
                .map_or(0.0, |&(_, c0)| c0);
            (le, (c - b).max(0.0))
        })
        .collect();
    let total = delta.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let at = |q: f64| -> f64 {
        let target = q * total;
        let (mut lo, mut below) = (0.0, 0.0);
        for &(le, cum) in &delta {
            if cum >= target {
                if le.is_infinite() {
                    return lo * 1e6;
                }
                let within = if cum > below {
                    (target - below) / (cum - below)
                } else {
                    0.0
                };
                return (lo + (le - lo) * within) * 1e6;
            }
            lo = le;
            below = cum;
        }
        lo * 1e6
    };
    Some(Percentiles {
        p50: at(0.5),
        p95: at(0.95),
        p99: at(0.99),
    })
}

/// Loads a publisher's source from a video file: VP8 in IVF, or H.264 Annex B.
pub fn source_from(video: &std::path::Path, fps: u32) -> Result<Source> {
    let (codec, frames) = crate::h264::load_video(video)?;
    Ok(Source {
        frames: Arc::new(frames),
        fps,
        codec,
        audio: true,
        simulcast: Vec::new(),
    })
}

/// Loads the publisher's source, with its simulcast layers.
pub fn source(load: &Load) -> Result<Source> {
    let mut s = source_from(&load.video, load.fps)?;
    s.simulcast = load.simulcast.clone();
    Ok(s)
}

/// The points of a run at which the server's `/proc` entry is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// Publisher(s) sending, before any subscriber joins (RSS base).
    Base,
    /// Start of the steady window.
    WindowStart,
    /// End of the steady window (RSS end).
    WindowEnd,
}

impl Mark {
    /// The mark's name on a marker line.
    pub fn name(self) -> &'static str {
        match self {
            Mark::Base => "base",
            Mark::WindowStart => "window-start",
            Mark::WindowEnd => "window-end",
        }
    }

    /// The mark named `s`.
    pub fn parse(s: &str) -> Option<Mark> {
        [Mark::Base, Mark::WindowStart, Mark::WindowEnd]
            .into_iter()
            .find(|m| m.name() == s)
    }
}

/// Reads the server's CPU and memory at the marks of a run.
pub trait Probe {
    /// The server's `/proc` sample at `mark`, or `None` if another process takes it.
    fn mark(&mut self, mark: Mark) -> Result<Option<ProcSample>>;
}

/// Reads `/proc/<pid>` of a server this process can see.
pub struct PidProbe(pub u32);

impl Probe for PidProbe {
    fn mark(&mut self, _: Mark) -> Result<Option<ProcSample>> {
        sample(self.0).map(Some)
    }
}

/// One subscriber session.
pub struct Session {
    /// The simulated subscriber.
    pub peer: PeerHandle,
    /// When its signalling began.
    pub asked: Instant,
    /// When the answer was applied (classrelay) or sent (`start`, Janus).
    pub answered: Instant,
}

/// Everything the steady-window measurement needs from the joins.
pub struct Joined<'a> {
    /// Scenario name.
    pub scenario: &'a str,
    /// "classrelay" or "janus".
    pub target: &'a str,
    /// The load.
    pub load: &'a Load,
    /// Subscriber sessions asked for.
    pub asked_for: usize,
    /// Those that signalled successfully.
    pub sessions: Vec<Session>,
    /// The subscriber swarms (latency histograms).
    pub swarms: &'a [Arc<Swarm>],
    /// Publishers whose keyframe requests count (empty: not observable).
    pub publishers: Vec<Arc<PeerStats>>,
    /// Their keyframe requests before the joins.
    pub kf_before: u64,
    /// The server's sample at [`Mark::Base`].
    pub base: Option<ProcSample>,
    /// How long the joins took, seconds.
    pub join_s: f64,
    /// Notes carried into the figures.
    pub notes: Vec<String>,
    /// The server's Prometheus endpoint, read for `forward_residence_seconds` (classrelay).
    pub metrics_url: Option<String>,
}

impl<'a> Joined<'a> {
    /// A run against classrelay before its joins: nothing joined yet, no notes, and the
    /// server's `/metrics` to read. The runner fills in what its joins gave.
    fn classrelay(
        scenario: &'a str,
        load: &'a Load,
        swarms: &'a [Arc<Swarm>],
        server: &ClassrelayProc,
    ) -> Joined<'a> {
        Joined {
            scenario,
            target: "classrelay",
            load,
            asked_for: 0,
            sessions: Vec::new(),
            swarms,
            publishers: Vec::new(),
            kf_before: 0,
            base: None,
            join_s: 0.0,
            notes: Vec::new(),
            metrics_url: Some(format!("{}/metrics", server.base)),
        }
    }
}

/// Awaits every join task: what joined, in order; a failed join is logged (as `what`
/// failed) and left out, so the figures count the sessions that really came up.
pub async fn gather<T>(
    pending: Vec<tokio::task::JoinHandle<Result<T>>>,
    what: &str,
) -> Result<Vec<T>> {
    let mut joined = Vec::with_capacity(pending.len());
    for task in pending {
        match task.await? {
            Ok(j) => joined.push(j),
            Err(e) => tracing::warn!("{what} failed: {e:#}"),
        }
    }
    Ok(joined)
}

fn kf_sum(publishers: &[Arc<PeerStats>]) -> u64 {
    publishers
        .iter()
        .map(|p| p.keyframe_requests.load(Ordering::Relaxed))
        .sum()
}

/// Waits for the keyframes, settles, measures the steady window and computes the figures.
/// CPU and RSS are zero when the probe returns no samples (another process fills them in).
pub async fn measure(j: Joined<'_>, probe: &mut dyn Probe) -> Result<Figures> {
    // Everyone who can should get a keyframe.
    for s in &j.sessions {
        s.peer
            .stats
            .wait_for(Duration::from_secs(10), |s| s.first_keyframe_at().is_some())
            .await;
    }
    let kf_requests =
        (!j.publishers.is_empty()).then(|| kf_sum(&j.publishers).saturating_sub(j.kf_before));
    tokio::time::sleep(j.load.warmup).await;

    // Steady window.
    let snap = |j: &[Session]| -> (u64, u64, u64) {
        j.iter().fold((0, 0, 0), |(v, a, g), x| {
            (
                v + x.peer.stats.video_packets.load(Ordering::Relaxed),
                a + x.peer.stats.audio_packets.load(Ordering::Relaxed),
                g + x.peer.stats.video_seq_gaps.load(Ordering::Relaxed),
            )
        })
    };
    for s in j.swarms {
        s.latency.reset();
    }
    let http = reqwest::Client::new();
    let held0 = match &j.metrics_url {
        Some(u) => server_reading(&http, u).await,
        None => None,
    };
    let cpu0 = probe.mark(Mark::WindowStart)?;
    let (v0, a0, g0) = snap(&j.sessions);
    let w0 = Instant::now();
    tokio::time::sleep(j.load.duration).await;
    let window = w0.elapsed().as_secs_f64();
    let (v1, a1, g1) = snap(&j.sessions);
    let cpu1 = probe.mark(Mark::WindowEnd)?;
    let held1 = match &j.metrics_url {
        Some(u) => server_reading(&http, u).await,
        None => None,
    };
    let (sfu_residence_us, datagrams_per_send_call) = match (held0, held1) {
        (Some((a, s0)), Some((b, s1))) => (
            bucket_percentiles(&a, &b),
            s0.zip(s1)
                .and_then(|((d0, c0), (d1, c1))| (c1 > c0).then_some((d1 - d0) / (c1 - c0))),
        ),
        _ => (None, None),
    };

    let video = (v1 - v0) as f64;
    let total = video + (a1 - a0) as f64;
    let cpu = match (cpu0, cpu1) {
        (Some(a), Some(b)) => (b.cpu_seconds - a.cpu_seconds) / window,
        _ => 0.0,
    };
    let gaps = (g1 - g0) as f64;
    let mut notes = j.notes;
    let stamped: u64 = j.swarms.iter().map(|s| s.latency.count()).sum();
    let latency_us = if stamped == 0 {
        if !notes.iter().any(|n| n.starts_with("latency")) {
            notes
                .push("latency n/a: no packet arrived with the abs-capture-time stamp".to_string());
        }
        None
    } else {
        let q = |q: f64| {
            // Merge the swarms' histograms by taking the worst swarm's quantile (conservative).
            j.swarms
                .iter()
                .filter_map(|s| s.latency.quantile(q))
                .max()
                .unwrap_or_default()
                .as_secs_f64()
                * 1e6
        };
        Some(Percentiles {
            p50: q(0.5),
            p95: q(0.95),
            p99: q(0.99),
        })
    };
    let since = |from: fn(&Session) -> Instant, at: fn(&PeerStats) -> Option<Instant>| {
        j.sessions
            .iter()
            .filter_map(|s| {
                at(&s.peer.stats).map(|t| t.saturating_duration_since(from(s)).as_secs_f64() * 1e3)
            })
            .collect::<Vec<f64>>()
    };
    let ttfk = since(|s| s.asked, PeerStats::first_keyframe_at);
    let receiving = ttfk.len();
    let ttfk_after = since(|s| s.answered, PeerStats::first_keyframe_at);
    let connect = since(|s| s.asked, PeerStats::connected_at);
    let n = j.asked_for.max(1) as f64;
    let base = j.base.unwrap_or_default();
    let end = cpu1.unwrap_or_default();
    Ok(Figures {
        target: j.target.into(),
        scenario: j.scenario.into(),
        video_codec: crate::h264::codec_of(&j.load.video)
            .map(|c| c.to_string())
            .unwrap_or_default(),
        subscribers: j.asked_for,
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
        latency_us,
        sfu_residence_us,
        datagrams_per_send_call,
        ttfk_ms: percentiles(ttfk),
        ttfk_after_answer_ms: percentiles(ttfk_after),
        connect_ms: percentiles(connect),
        rss_base_kib: base.rss_kib,
        rss_end_kib: end.rss_kib,
        rss_per_sub_kib: (end.rss_kib as f64 - base.rss_kib as f64) / n,
        keyframe_requests_at_publisher: kf_requests,
        join_s: j.join_s,
        notes,
    })
}

/// Seconds between joins: paced at `join_rate`, or spread evenly over `join_window` (bell).
pub fn join_interval(scenario: &str, load: &Load, joins: usize) -> f64 {
    if scenario == "bell" {
        load.join_window.as_secs_f64() / joins.max(1) as f64
    } else {
        1.0 / load.join_rate.max(0.001)
    }
}

/// Starts the subscriber swarms of a load.
pub fn start_swarms(load: &Load) -> Result<Vec<Arc<Swarm>>> {
    (0..load.swarms.max(1))
        .map(|_| Swarm::start_with(load.viewer_gro, load.viewer_spin).map(Arc::new))
        .collect()
}

/// Runs a scenario against a classrelay process.
pub async fn run_classrelay(
    server: &ClassrelayProc,
    scenario: &str,
    load: &Load,
) -> Result<Figures> {
    match scenario {
        "broadcast" | "bell" => run_broadcast(server, scenario, load).await,
        "sync" => run_sync(server, load).await,
        other => bail!("unknown scenario {other}"),
    }
}

/// One WHEP subscriber: POST, then hand the peer to its swarm at once, so the time to connect
/// is not inflated by later joins.
pub(crate) async fn whep(
    swarm: Arc<Swarm>,
    http: reqwest::Client,
    url: String,
    token: String,
    audio: usize,
    video: usize,
) -> Result<Session> {
    let asked = Instant::now();
    let offer = swarm.subscriber_offer(audio, video)?;
    let c = whip::post_offer(&http, &url, &token, &offer.sdp).await?;
    let answered = Instant::now();
    let peer = swarm.add(offer, &c.answer, c.url, c.etag)?;
    Ok(Session {
        peer,
        asked,
        answered,
    })
}

async fn run_broadcast(server: &ClassrelayProc, scenario: &str, load: &Load) -> Result<Figures> {
    let http = reqwest::Client::new();
    let room = "loadtest";
    let pub_token = server.token(room, "publish")?;
    let sub_token = server.token(room, "subscribe")?;
    let publisher_swarm = Swarm::start()?;
    if load.realtime {
        publisher_swarm.realtime(PUBLISHER_PRIORITY)?;
    }
    let swarms = start_swarms(load)?;
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
    let mut probe = PidProbe(server.pid());
    let base = probe.mark(Mark::Base)?;
    let publishers = vec![publisher.stats.clone()];
    let kf_before = kf_sum(&publishers);

    let interval = join_interval(scenario, load, load.subscribers);
    let t0 = Instant::now();
    let mut pending = Vec::new();
    for i in 0..load.subscribers {
        let at = t0 + Duration::from_secs_f64(interval * i as f64);
        tokio::time::sleep_until(at.into()).await;
        let swarm = swarms[i % swarms.len()].clone();
        let url = format!("{}/whep/{room}", server.base);
        pending.push(tokio::spawn(whep(
            swarm,
            http.clone(),
            url,
            sub_token.clone(),
            1,
            1,
        )));
    }
    let sessions = gather(pending, "join").await?;
    let join_s = t0.elapsed().as_secs_f64();
    let joined = Joined {
        asked_for: load.subscribers,
        sessions,
        publishers,
        kf_before,
        base,
        join_s,
        ..Joined::classrelay(scenario, load, &swarms, server)
    };
    let figures = measure(joined, &mut probe).await;
    drop(publisher_swarm);
    figures
}

/// 同步课堂 against classrelay (see the module docs for the two rooms).
async fn run_sync(server: &ClassrelayProc, load: &Load) -> Result<Figures> {
    let http = reqwest::Client::new();
    let (hub_room, class_room) = ("sync-hub", "sync-classes");
    let hub_pub = server.token(hub_room, "publish")?;
    let hub_sub = server.token(hub_room, "subscribe")?;
    let class_pub = server.token(class_room, "publish")?;
    let class_sub = server.token(class_room, "subscribe")?;
    let publisher_swarm = Arc::new(Swarm::start()?);
    if load.realtime {
        publisher_swarm.realtime(PUBLISHER_PRIORITY)?;
    }
    let swarms = start_swarms(load)?;
    let k = load.classes.max(1);
    let hub = whip::join(
        &publisher_swarm,
        &http,
        &format!("{}/whip/{hub_room}", server.base),
        &hub_pub,
        publisher_swarm.publisher_offer(source(load)?)?,
    )
    .await?;
    hub.stats
        .wait_for(Duration::from_secs(10), |s| {
            s.frames_sent.load(Ordering::Relaxed) > 30
        })
        .await;
    let mut probe = PidProbe(server.pid());
    let base = probe.mark(Mark::Base)?;
    let kf_before = hub.stats.keyframe_requests.load(Ordering::Relaxed);
    let class_source = source_from(&load.class_video, load.fps)?;

    let interval = join_interval("sync", load, k);
    let t0 = Instant::now();
    let mut pending = Vec::new();
    for i in 0..k {
        let at = t0 + Duration::from_secs_f64(interval * i as f64);
        tokio::time::sleep_until(at.into()).await;
        let (pswarm, swarm) = (publisher_swarm.clone(), swarms[i % swarms.len()].clone());
        let (http, base_url) = (http.clone(), server.base.clone());
        let (ptok, stok, src) = (class_pub.clone(), hub_sub.clone(), class_source.clone());
        pending.push(tokio::spawn(async move {
            // A class publishes its camera, then receives the hub.
            let offer = pswarm.publisher_offer(src)?;
            let url = format!("{base_url}/whip/{class_room}");
            let publisher = whip::join(&pswarm, &http, &url, &ptok, offer).await?;
            let url = format!("{base_url}/whep/{hub_room}");
            let session = whep(swarm, http, url, stok, 1, 1).await?;
            anyhow::Ok((publisher, session))
        }));
    }
    let mut sessions = Vec::new();
    let mut publishers = vec![hub.stats.clone()];
    for (p, s) in gather(pending, "class join").await? {
        publishers.push(p.stats);
        sessions.push(s);
    }
    // The hub receives every class: K audio and K video slots in the classes' room.
    let url = format!("{}/whep/{class_room}", server.base);
    match whep(swarms[0].clone(), http.clone(), url, class_sub, k, k).await {
        Ok(s) => sessions.push(s),
        Err(e) => tracing::warn!("hub subscriber failed: {e:#}"),
    }
    let join_s = t0.elapsed().as_secs_f64();
    let joined = Joined {
        asked_for: k + 1,
        sessions,
        publishers,
        kf_before,
        base,
        join_s,
        ..Joined::classrelay("sync", load, &swarms, server)
    };
    let figures = measure(joined, &mut probe).await;
    drop(publisher_swarm);
    figures
}

fn pct3(p: &Percentiles) -> String {
    format!("{:.0}/{:.0}/{:.0}", p.p50, p.p95, p.p99)
}

/// Row names of [`table`] that [`Ratios`] fill.
const ROW_PKTS: &str = "pkt per CPU-s (video)";
const ROW_LATENCY: &str = "latency p50/p95/p99 µs";
const ROW_TTFK: &str = "first keyframe p50/p95/p99 ms";
const ROW_RSS: &str = "RSS per subscriber KiB";

fn rows(runs: &[Figures]) -> Vec<(String, Vec<String>)> {
    let mut rows: Vec<(String, Vec<String>)> = Vec::new();
    let mut row = |name: &str, f: &dyn Fn(&Figures) -> String| {
        rows.push((name.to_string(), runs.iter().map(f).collect()));
    };
    row("target", &|f| f.target.clone());
    row("scenario", &|f| f.scenario.clone());
    row("video codec", &|f| f.video_codec.clone());
    row("subscribers (receiving)", &|f| {
        format!("{} ({})", f.subscribers, f.receiving)
    });
    row("forwarded pkt/s (video)", &|f| {
        format!("{:.0} ({:.0})", f.forwarded_pps, f.forwarded_video_pps)
    });
    row("server CPU s/s", &|f| format!("{:.3}", f.server_cpu));
    row(ROW_PKTS, &|f| {
        format!("{:.0} ({:.0})", f.pkts_per_cpu_s, f.video_pkts_per_cpu_s)
    });
    row("subscriber loss %", &|f| format!("{:.3}", f.loss_pct));
    row(ROW_LATENCY, &|f| {
        f.latency_us.as_ref().map_or("n/a".to_string(), pct3)
    });
    row("datagrams per send call", &|f| {
        f.datagrams_per_send_call
            .map_or("n/a".to_string(), |d| format!("{d:.1}"))
    });
    row("SFU residence p50/p95/p99 µs", &|f| {
        f.sfu_residence_us.as_ref().map_or("n/a".to_string(), pct3)
    });
    row(ROW_TTFK, &|f| pct3(&f.ttfk_ms));
    row("  after answer/start p50/p95/p99 ms", &|f| {
        pct3(&f.ttfk_after_answer_ms)
    });
    row("connected p50/p95/p99 ms", &|f| pct3(&f.connect_ms));
    row("RSS base → end MiB", &|f| {
        format!(
            "{:.1} → {:.1}",
            f.rss_base_kib as f64 / 1024.0,
            f.rss_end_kib as f64 / 1024.0
        )
    });
    row(ROW_RSS, &|f| format!("{:.0}", f.rss_per_sub_kib));
    row("keyframe requests at publisher", &|f| {
        f.keyframe_requests_at_publisher
            .map_or("n/a".to_string(), |k| k.to_string())
    });
    row("joins took s", &|f| format!("{:.1}", f.join_s));
    rows
}

fn render(rows: Vec<(String, Vec<String>)>) -> String {
    render_with(rows, 22)
}

/// A figures table: the row names left-aligned, each value right-aligned in `width` columns.
pub(crate) fn render_with(rows: Vec<(String, Vec<String>)>, width: usize) -> String {
    let w0 = rows
        .iter()
        .map(|(n, _)| n.chars().count())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for (name, vals) in rows {
        out.push_str(&format!("{name:<w0$}"));
        for v in vals {
            out.push_str(&format!("  {v:>width$}"));
        }
        out.push('\n');
    }
    out
}

/// A plain-text table of runs, one column per run, and the notes of each run below it.
pub fn table(runs: &[Figures]) -> String {
    let mut out = render(rows(runs));
    for f in runs {
        for n in &f.notes {
            out.push_str(&format!("note ({}): {n}\n", f.target));
        }
    }
    out
}

/// classrelay against Janus in the same scenario: each ratio is "how many times better
/// classrelay is" (above 1 = classrelay better). `None` where either side has no figure.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ratios {
    /// classrelay ÷ Janus, forwarded packets per CPU-second.
    pub pkts_per_cpu_s: Option<f64>,
    /// classrelay ÷ Janus, forwarded video packets per CPU-second.
    pub video_pkts_per_cpu_s: Option<f64>,
    /// Janus ÷ classrelay, RSS per subscriber.
    pub rss_per_sub: Option<f64>,
    /// Janus ÷ classrelay, latency p50/p95/p99.
    pub latency: Option<Percentiles>,
    /// Janus ÷ classrelay, join → first keyframe p50/p95/p99.
    pub ttfk: Option<Percentiles>,
}

fn ratio(num: f64, den: f64) -> Option<f64> {
    (num > 0.0 && den > 0.0 && num.is_finite() && den.is_finite()).then(|| num / den)
}

fn ratio3(num: &Percentiles, den: &Percentiles) -> Option<Percentiles> {
    Some(Percentiles {
        p50: ratio(num.p50, den.p50)?,
        p95: ratio(num.p95, den.p95)?,
        p99: ratio(num.p99, den.p99)?,
    })
}

impl Ratios {
    /// The ratios of a classrelay run to a Janus run.
    pub fn of(classrelay: &Figures, janus: &Figures) -> Ratios {
        Ratios {
            pkts_per_cpu_s: ratio(classrelay.pkts_per_cpu_s, janus.pkts_per_cpu_s),
            video_pkts_per_cpu_s: ratio(
                classrelay.video_pkts_per_cpu_s,
                janus.video_pkts_per_cpu_s,
            ),
            rss_per_sub: ratio(janus.rss_per_sub_kib, classrelay.rss_per_sub_kib),
            latency: classrelay
                .latency_us
                .as_ref()
                .zip(janus.latency_us.as_ref())
                .and_then(|(c, j)| ratio3(j, c)),
            ttfk: ratio3(&janus.ttfk_ms, &classrelay.ttfk_ms),
        }
    }
}

/// classrelay and Janus side by side, with a third column holding the ratios (classrelay ÷
/// Janus for packets per CPU-second, Janus ÷ classrelay for latency, first keyframe and RSS
/// per subscriber: above 1 means classrelay does better).
pub fn table_side_by_side(classrelay: &Figures, janus: &Figures) -> String {
    let r = Ratios::of(classrelay, janus);
    let x = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.2}×"));
    let x3 = |p: Option<Percentiles>| {
        p.map_or("n/a".to_string(), |p| {
            format!("{:.2}/{:.2}/{:.2}×", p.p50, p.p95, p.p99)
        })
    };
    let mut rows = rows(&[classrelay.clone(), janus.clone()]);
    for (name, vals) in &mut rows {
        let cell = match name.as_str() {
            "target" => "ratio".to_string(),
            ROW_PKTS => format!("{} ({})", x(r.pkts_per_cpu_s), x(r.video_pkts_per_cpu_s)),
            ROW_LATENCY => x3(r.latency),
            ROW_TTFK => x3(r.ttfk),
            ROW_RSS => x(r.rss_per_sub),
            _ => String::new(),
        };
        vals.push(cell);
    }
    let mut out = render(rows);
    for f in [classrelay, janus] {
        for n in &f.notes {
            out.push_str(&format!("note ({}): {n}\n", f.target));
        }
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

    #[test]
    fn marks_round_trip() {
        for m in [Mark::Base, Mark::WindowStart, Mark::WindowEnd] {
            assert_eq!(Mark::parse(m.name()), Some(m));
        }
        assert_eq!(Mark::parse("nope"), None);
    }

    #[test]
    fn ratios_favour_classrelay_above_one() {
        let p = |x: f64| Percentiles {
            p50: x,
            p95: 2.0 * x,
            p99: 3.0 * x,
        };
        let f = |pkts: f64, rss: f64, lat: Option<Percentiles>| Figures {
            target: String::new(),
            scenario: String::new(),
            video_codec: String::new(),
            subscribers: 1,
            receiving: 1,
            window_s: 1.0,
            forwarded_pps: pkts,
            forwarded_video_pps: pkts,
            server_cpu: 1.0,
            pkts_per_cpu_s: pkts,
            video_pkts_per_cpu_s: pkts,
            loss_pct: 0.0,
            latency_us: lat,
            sfu_residence_us: None,
            datagrams_per_send_call: None,
            ttfk_ms: p(100.0),
            ttfk_after_answer_ms: p(100.0),
            connect_ms: p(10.0),
            rss_base_kib: 1,
            rss_end_kib: 2,
            rss_per_sub_kib: rss,
            keyframe_requests_at_publisher: None,
            join_s: 1.0,
            notes: Vec::new(),
        };
        let c = f(30_000.0, 100.0, Some(p(1000.0)));
        let j = f(10_000.0, 500.0, None);
        let r = Ratios::of(&c, &j);
        assert_eq!(r.pkts_per_cpu_s, Some(3.0));
        assert_eq!(r.rss_per_sub, Some(5.0));
        assert!(r.latency.is_none(), "no Janus latency, no ratio");
        assert_eq!(r.ttfk.map(|t| t.p50), Some(1.0));
        let both = Ratios::of(&c, &f(10_000.0, 500.0, Some(p(2000.0))));
        assert_eq!(both.latency.map(|l| l.p99), Some(2.0));
        let t = table_side_by_side(&c, &j);
        assert!(t.contains("3.00×") && t.contains("5.00×") && t.contains("n/a"));
    }

    #[test]
    fn residence_percentiles_from_prometheus_buckets() {
        let text = |c: [u64; 4]| {
            format!(
                "# HELP x\n\
                 classrelay_forward_residence_seconds_bucket{{le=\"0.0005\"}} {}\n\
                 classrelay_forward_residence_seconds_bucket{{le=\"0.001\"}} {}\n\
                 classrelay_forward_residence_seconds_bucket{{le=\"0.002\"}} {}\n\
                 classrelay_forward_residence_seconds_bucket{{le=\"+Inf\"}} {}\n\
                 classrelay_forward_residence_seconds_count {}\n",
                c[0], c[1], c[2], c[3], c[3]
            )
        };
        let name = "classrelay_forward_residence_seconds_bucket";
        let before = parse_buckets(&text([10, 10, 10, 10]), name);
        assert_eq!(before.len(), 4);
        assert!(before[3].0.is_infinite());
        // 100 new: 50 under 0.5 ms, 40 in (0.5, 1] ms, 9 in (1, 2] ms, 1 beyond.
        let after = parse_buckets(&text([60, 100, 109, 110]), name);
        let p = bucket_percentiles(&before, &after).unwrap();
        assert!((p.p50 - 500.0).abs() < 1e-6, "{p:?}");
        assert!(
            (p.p95 - (1000.0 + 1000.0 * 5.0 / 9.0)).abs() < 1e-6,
            "{p:?}"
        );
        assert!((p.p99 - 2000.0).abs() < 1e-6, "{p:?}");
        assert!(
            bucket_percentiles(&before, &before).is_none(),
            "nothing added"
        );
        assert!(parse_buckets("no histogram here", name).is_empty());
    }

    #[test]
    fn a_counter_is_read_by_its_exact_name() {
        let text = "# HELP classrelay_udp_send_calls sendmmsg calls\n\
                    classrelay_udp_send_calls_total 1234\n\
                    classrelay_udp_datagrams_out_total 98765\n\
                    classrelay_udp_datagrams_out_total_other 1\n";
        assert_eq!(
            parse_counter(text, "classrelay_udp_send_calls_total"),
            Some(1234.0)
        );
        assert_eq!(
            parse_counter(text, "classrelay_udp_datagrams_out_total"),
            Some(98765.0)
        );
        assert_eq!(parse_counter(text, "classrelay_udp_send_calls"), None);
    }
}
