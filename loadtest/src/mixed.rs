//! The `mixed` scenario (issue 19 item 7): N sites watch one simulcast publisher, a share of
//! them each behind an impaired link of its own (the userspace [`LinkRelay`]: rural,
//! satellite or 5 % loss), with the server's per-viewer estimation on or off. Reports per
//! link profile the layer the sites were delivered (share of complete frames per layer),
//! loss, freezes (gaps of more than 500 ms between complete frames), bitrate and the
//! server's CPU. Only classrelay: Janus has no per-viewer estimate to compare. It only
//! measures: it must never send anywhere but the loopback server it started.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

use crate::frames::MAX_LAYERS;
use crate::netem::{LinkProfile, LinkRelay};
use crate::scenario::{source, start_swarms, Load, Mark, PidProbe, Probe, PUBLISHER_PRIORITY};
use crate::swarm::{PeerHandle, PeerStats, Swarm};
use crate::target::ClassrelayProc;
use crate::whip;

/// Said in the help, the table and BENCHMARKS.md.
pub const NO_JANUS: &str = "Janus has no per-viewer bandwidth estimate (its Streaming \
    plugin sends every viewer the same stream), so there is nothing of it to compare here";

/// The simulcast rids `mixed` publishes when none are given: the 720p file at full size,
/// half and a quarter (about 1.2, 0.6 and 0.3 Mbit/s).
pub const DEFAULT_RIDS: [&str; 3] = ["h", "m", "l"];

/// An impaired site's link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// A rural teaching point: 1.2 Mbit/s down, 3 % loss, 150 ms round trip, 30 ms jitter.
    Rural,
    /// A satellite site: 2 Mbit/s down, 1 % loss, 600 ms round trip.
    Satellite,
    /// 5 % random loss both ways, 40 ms round trip, no rate cap.
    Lossy5,
}

impl Profile {
    /// Its name on the command line and in the figures.
    pub fn name(self) -> &'static str {
        match self {
            Profile::Rural => "rural",
            Profile::Satellite => "satellite",
            Profile::Lossy5 => "lossy5",
        }
    }

    /// The profile named `s`.
    pub fn parse(s: &str) -> Option<Profile> {
        [Profile::Rural, Profile::Satellite, Profile::Lossy5]
            .into_iter()
            .find(|p| p.name() == s)
    }

    /// (uplink: what the site sends, downlink: what it receives), seeded with `seed`. Half
    /// the round trip each way; the rate cap, jitter and loss on the downlink (the one the
    /// estimate is about); the uplink loses the same share (receiver reports and NACKs too).
    pub fn links(self, seed: u64) -> (LinkProfile, LinkProfile) {
        let ms = Duration::from_millis;
        let (loss, one_way, jitter, rate) = match self {
            Profile::Rural => (0.03, ms(75), ms(30), Some(1_200_000)),
            Profile::Satellite => (0.01, ms(300), Duration::ZERO, Some(2_000_000)),
            Profile::Lossy5 => (0.05, ms(20), Duration::ZERO, None),
        };
        let up = LinkProfile {
            loss,
            delay: one_way,
            jitter: Duration::ZERO,
            rate_bps: None,
            seed: seed ^ 0x5eed,
        };
        let down = LinkProfile {
            loss,
            delay: one_way,
            jitter,
            rate_bps: rate,
            seed,
        };
        (up, down)
    }
}

/// What a `mixed` run does.
#[derive(Debug, Clone)]
pub struct MixedOptions {
    /// Sites, the publisher's file and rids (empty: [`DEFAULT_RIDS`]), warm-up, window,
    /// join rate, swarms.
    pub load: Load,
    /// Share of the sites behind an impaired link, 0..=1 (the first ones to join).
    pub impaired: f64,
    /// Their link.
    pub profile: Profile,
    /// Whether the server ran with `media.downlink_adaptation` on (only reported here: the
    /// caller starts the server, see [`server_env`]).
    pub estimation: bool,
}

/// The server setting that turns estimation on or off.
pub fn server_env(estimation: bool) -> [(&'static str, &'static str); 1] {
    [(
        "CLASSRELAY_MEDIA__DOWNLINK_ADAPTATION",
        if estimation { "true" } else { "false" },
    )]
}

/// The figures of one group of sites (all on clean links, or all on the impaired profile).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct GroupFigures {
    /// "clean" or the profile's name.
    pub link: String,
    /// Sites in the group.
    pub sites: usize,
    /// Those that got a keyframe.
    pub receiving: usize,
    /// Complete frames per layer over the window, summed over the group's sites (index 0 =
    /// the highest rid).
    pub frames_by_layer: Vec<u64>,
    /// The same as shares of the group's complete frames, percent.
    pub layer_share_pct: Vec<f64>,
    /// Mean layer index of the complete frames (0 = highest); `None` without frames.
    pub mean_layer: Option<f64>,
    /// Complete video frames per second per site.
    pub complete_fps: f64,
    /// Video sequence numbers skipped on arrival over the window, percent: lost, or only
    /// late (jitter reorders), before any repair.
    pub loss_pct: f64,
    /// Video sequence numbers still missing at the end of the window, percent (after NACK
    /// repair), over the whole session.
    pub missing_pct: f64,
    /// Gaps of more than 500 ms between complete frames, summed over the group.
    pub freezes: u64,
    /// Time frozen as a share of the window, percent (mean over the group's sites; a
    /// freeze still open at the end counts up to the end).
    pub frozen_pct: f64,
    /// Payload received per site, kbit/s (mean).
    pub kbps: f64,
}

/// The figures of one `mixed` run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MixedFigures {
    /// "mixed".
    pub scenario: String,
    /// The impaired sites' profile.
    pub profile: Profile,
    /// Server estimation on or off.
    pub estimation: bool,
    /// Rids the publisher sent, highest first (layer `i` is rid `i`).
    pub rids: Vec<String>,
    /// Measurement window, seconds.
    pub window_s: f64,
    /// Server CPU seconds per second over the window.
    pub server_cpu: f64,
    /// The clean sites, then the impaired ones.
    pub groups: Vec<GroupFigures>,
    /// What could not be compared, and why.
    pub notes: Vec<String>,
}

impl MixedFigures {
    /// The group on `link` ("clean" or a profile's name).
    pub fn group(&self, link: &str) -> Option<&GroupFigures> {
        self.groups.iter().find(|g| g.link == link)
    }
}

/// How many of `sites` are impaired at share `impaired`.
pub fn impaired_count(sites: usize, impaired: f64) -> usize {
    ((sites as f64) * impaired.clamp(0.0, 1.0)).round() as usize
}

struct Site {
    peer: PeerHandle,
    impaired: bool,
    // Kept alive as long as the site.
    _relay: Option<LinkRelay>,
}

#[derive(Clone, Copy, Default)]
struct Snap {
    layers: [u64; MAX_LAYERS],
    complete: u64,
    video: u64,
    gaps: u64,
    bytes: u64,
    freezes: u64,
    frozen_us: u64,
}

fn snap(s: &PeerStats) -> Snap {
    let mut layers = [0; MAX_LAYERS];
    for (l, c) in layers.iter_mut().zip(&s.frames_by_layer) {
        *l = c.load(Ordering::Relaxed);
    }
    Snap {
        layers,
        complete: s.frames_complete.load(Ordering::Relaxed),
        video: s.video_packets.load(Ordering::Relaxed),
        gaps: s.video_seq_gaps.load(Ordering::Relaxed),
        bytes: s.bytes.load(Ordering::Relaxed),
        freezes: s.freezes.load(Ordering::Relaxed),
        frozen_us: s.frozen_us.load(Ordering::Relaxed),
    }
}

/// Runs `mixed` against a classrelay process started with [`server_env`]`(o.estimation)`.
pub async fn run(server: &ClassrelayProc, o: &MixedOptions) -> Result<MixedFigures> {
    let mut load = o.load.clone();
    if load.simulcast.is_empty() {
        load.simulcast = DEFAULT_RIDS.iter().map(|r| r.to_string()).collect();
    }
    if load.simulcast.len() > MAX_LAYERS {
        bail!("mixed tells at most {MAX_LAYERS} simulcast layers apart");
    }
    let http = reqwest::Client::new();
    let room = "mixed";
    let pub_token = server.token(room, "publish")?;
    let sub_token = server.token(room, "subscribe")?;
    let publisher_swarm = Swarm::start()?;
    if load.realtime {
        publisher_swarm.realtime(PUBLISHER_PRIORITY)?;
    }
    let swarms = start_swarms(&load)?;
    let publisher = whip::join(
        &publisher_swarm,
        &http,
        &format!("{}/whip/{room}", server.base),
        &pub_token,
        publisher_swarm.publisher_offer(source(&load)?)?,
    )
    .await?;
    publisher
        .stats
        .wait_for(Duration::from_secs(10), |s| {
            s.frames_sent.load(Ordering::Relaxed) > 30
        })
        .await;

    let bad = impaired_count(load.subscribers, o.impaired);
    let url = format!("{}/whep/{room}", server.base);
    let interval = 1.0 / load.join_rate.max(0.001);
    let t0 = Instant::now();
    let mut sites = Vec::new();
    for i in 0..load.subscribers {
        let at = t0 + Duration::from_secs_f64(interval * i as f64);
        tokio::time::sleep_until(at.into()).await;
        let swarm: &Arc<Swarm> = &swarms[i % swarms.len()];
        let offer = swarm.subscriber_offer(1, 1)?;
        let joined = if i < bad {
            let (up, down) = o.profile.links(1000 + i as u64);
            whip::join_through(swarm, &http, &url, &sub_token, offer, up, down)
                .await
                .map(|(peer, relay)| (peer, Some(relay)))
        } else {
            whip::join(swarm, &http, &url, &sub_token, offer)
                .await
                .map(|peer| (peer, None))
        };
        match joined {
            Ok((peer, relay)) => sites.push(Site {
                peer,
                impaired: i < bad,
                _relay: relay,
            }),
            Err(e) => tracing::warn!("site {i} did not join: {e:#}"),
        }
    }
    for s in &sites {
        s.peer
            .stats
            .wait_for(Duration::from_secs(10), |st| {
                st.first_keyframe_at().is_some()
            })
            .await;
    }
    // The estimate needs a few receiver reports to act: the warm-up is the settling time.
    tokio::time::sleep(load.warmup).await;

    let mut probe = PidProbe(server.pid());
    let cpu0 = probe.mark(Mark::WindowStart)?;
    let before: Vec<Snap> = sites.iter().map(|s| snap(&s.peer.stats)).collect();
    let w0 = Instant::now();
    tokio::time::sleep(load.duration).await;
    let end = Instant::now();
    let window = end.duration_since(w0).as_secs_f64();
    let after: Vec<Snap> = sites.iter().map(|s| snap(&s.peer.stats)).collect();
    let cpu1 = probe.mark(Mark::WindowEnd)?;
    let server_cpu = match (cpu0, cpu1) {
        (Some(a), Some(b)) => (b.cpu_seconds - a.cpu_seconds) / window,
        _ => 0.0,
    };

    let group = |impaired: bool, link: &str| -> GroupFigures {
        let mut g = GroupFigures {
            link: link.to_string(),
            frames_by_layer: vec![0; load.simulcast.len()],
            ..GroupFigures::default()
        };
        let (mut video, mut gaps, mut bytes, mut complete, mut frozen) =
            (0u64, 0u64, 0u64, 0u64, 0f64);
        let (mut span, mut missing) = (0u64, 0u64);
        for ((s, b), a) in sites.iter().zip(&before).zip(&after) {
            if s.impaired != impaired {
                continue;
            }
            let st = &s.peer.stats;
            g.sites += 1;
            g.receiving += usize::from(st.first_keyframe_at().is_some());
            for (l, c) in g.frames_by_layer.iter_mut().enumerate() {
                *c += a.layers[l] - b.layers[l];
            }
            complete += a.complete - b.complete;
            video += a.video - b.video;
            gaps += a.gaps - b.gaps;
            bytes += a.bytes - b.bytes;
            g.freezes += a.freezes - b.freezes;
            let mut site_frozen = (a.frozen_us - b.frozen_us) as f64 / 1e6;
            // A freeze still open at the end of the window.
            let since = st.last_complete_at().map_or(window, |t| {
                end.saturating_duration_since(t).as_secs_f64().min(window)
            });
            if since > crate::frames::FREEZE.as_secs_f64() {
                g.freezes += 1;
                site_frozen += since;
            }
            frozen += site_frozen.min(window);
            span += st.video_seq_span.load(Ordering::Acquire);
            missing += st.video_seq_missing();
        }
        let n = g.sites.max(1) as f64;
        let tagged: u64 = g.frames_by_layer.iter().sum();
        g.layer_share_pct = g
            .frames_by_layer
            .iter()
            .map(|&c| {
                if tagged > 0 {
                    100.0 * c as f64 / tagged as f64
                } else {
                    0.0
                }
            })
            .collect();
        g.mean_layer = (tagged > 0).then(|| {
            g.frames_by_layer
                .iter()
                .enumerate()
                .map(|(l, &c)| l as f64 * c as f64)
                .sum::<f64>()
                / tagged as f64
        });
        g.complete_fps = complete as f64 / window / n;
        g.loss_pct = if video + gaps > 0 {
            100.0 * gaps as f64 / (video + gaps) as f64
        } else {
            0.0
        };
        g.missing_pct = if span > 0 {
            100.0 * missing as f64 / span as f64
        } else {
            0.0
        };
        g.frozen_pct = 100.0 * frozen / window / n;
        g.kbps = bytes as f64 * 8.0 / 1000.0 / window / n;
        g
    };
    let mut groups = Vec::new();
    if sites.iter().any(|s| !s.impaired) {
        groups.push(group(false, "clean"));
    }
    if sites.iter().any(|s| s.impaired) {
        groups.push(group(true, o.profile.name()));
    }
    drop(sites);
    drop(publisher_swarm);
    Ok(MixedFigures {
        scenario: "mixed".into(),
        profile: o.profile,
        estimation: o.estimation,
        rids: load.simulcast.clone(),
        window_s: window,
        server_cpu,
        groups,
        notes: vec![NO_JANUS.to_string()],
    })
}

/// A plain-text table: one column per group of each run, then the notes.
pub fn table(runs: &[MixedFigures]) -> String {
    let cols: Vec<(&MixedFigures, &GroupFigures)> = runs
        .iter()
        .flat_map(|r| r.groups.iter().map(move |g| (r, g)))
        .collect();
    let mut rows: Vec<(String, Vec<String>)> = Vec::new();
    let mut row = |name: &str, f: &dyn Fn(&MixedFigures, &GroupFigures) -> String| {
        rows.push((
            name.to_string(),
            cols.iter().map(|(r, g)| f(r, g)).collect(),
        ));
    };
    row("estimation", &|r, _| {
        if r.estimation { "on" } else { "off" }.into()
    });
    row("link", &|_, g| g.link.clone());
    row("sites (receiving)", &|_, g| {
        format!("{} ({})", g.sites, g.receiving)
    });
    row("layer share % (rids)", &|r, g| {
        let shares: Vec<String> = g
            .layer_share_pct
            .iter()
            .map(|p| format!("{p:.0}"))
            .collect();
        format!("{} ({})", shares.join("/"), r.rids.join("/"))
    });
    row("mean layer (0 = highest)", &|_, g| {
        g.mean_layer.map_or("n/a".into(), |m| format!("{m:.2}"))
    });
    row("complete frames/s per site", &|_, g| {
        format!("{:.1}", g.complete_fps)
    });
    row("skipped on arrival % (lost/late)", &|_, g| {
        format!("{:.2}", g.loss_pct)
    });
    row("missing after repair %", &|_, g| {
        format!("{:.2}", g.missing_pct)
    });
    row("freezes (> 500 ms)", &|_, g| g.freezes.to_string());
    row("time frozen %", &|_, g| format!("{:.1}", g.frozen_pct));
    row("kbit/s per site", &|_, g| format!("{:.0}", g.kbps));
    row("server CPU s/s", &|r, _| format!("{:.3}", r.server_cpu));
    let mut out = crate::scenario::render_with(rows, 20);
    out.push_str(&format!("note: {NO_JANUS}.\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_parse_and_shape_the_downlink() {
        for p in [Profile::Rural, Profile::Satellite, Profile::Lossy5] {
            assert_eq!(Profile::parse(p.name()), Some(p));
        }
        assert_eq!(Profile::parse("dialup"), None);
        let (up, down) = Profile::Rural.links(7);
        assert_eq!(down.rate_bps, Some(1_200_000));
        assert_eq!(up.delay + down.delay, Duration::from_millis(150));
        assert_eq!(down.jitter, Duration::from_millis(30));
        let (up, down) = Profile::Satellite.links(7);
        assert_eq!(up.delay + down.delay, Duration::from_millis(600));
        assert_eq!(Profile::Lossy5.links(1).1.loss, 0.05);
    }

    #[test]
    fn impaired_share_rounds_to_sites() {
        assert_eq!(impaired_count(10, 0.3), 3);
        assert_eq!(impaired_count(4, 0.5), 2);
        assert_eq!(impaired_count(3, 2.0), 3);
        assert_eq!(impaired_count(5, 0.0), 0);
    }
}
