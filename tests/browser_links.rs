//! Real Chromium on rural links (issue 19, "what must be shown"): the teacher console
//! publishes simulcast (960×540: three layers) and a courseware screen straight to the server;
//! a classroom page watches through coturn reached over UDP *through the userspace impairment
//! relay* (`classrelay_loadtest::netem::LinkRelay`), with `iceTransportPolicy: "relay"`, so
//! every datagram of its media and RTCP crosses the impaired link: Chromium → relay → coturn →
//! server and back. Profiles run one after another (one Chromium pair at a time), first with
//! `media.downlink_adaptation` on, then off; each is measured from the viewer's `getStats`,
//! sampled every second over 30 s, and printed. Thresholds are asserted with estimation on
//! only (and "on beats off" on the rural profile); it must never loosen the figures.
//!
//! Why coturn: the relay forwards every client to one fixed upstream address, and a server
//! advertising the relay's address broke str0m's candidate checks; a TURN server in front of
//! the server is what a school's line reaches anyway, and the relay in front of coturn's UDP
//! listener impairs the whole path without touching ICE.
//!
//! Run: `cargo test --test browser_links -- --ignored --nocapture` (needs `coturn`,
//! `chromium`, `chromium-driver`; 13 minutes on the shared 2-core machine).

mod support;

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::Value;

use classrelay_loadtest::netem::{LinkProfile, LinkRelay};
use support::browser::{num, open_console_sized, Browser, Page};
use support::school::{at, fixture, lesson, App, Backend};
use support::turn::Coturn;

/// How long each profile is measured (after the warm-up).
const WINDOW: Duration = Duration::from_secs(30);
/// Media flows this long before the window starts (the estimate settles, "down fast").
const WARM_UP: Duration = Duration::from_secs(4);
/// The collapse profile: the link is at its base for this long into the window, …
const COLLAPSE_AT: Duration = Duration::from_secs(8);
/// … at 300 kbit/s for this long, then back at its base.
const COLLAPSE_FOR: Duration = Duration::from_secs(10);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// One direction of a link: `rate` kbit/s, `loss` share lost, `one_way` delay ± `jitter`.
fn dir(rate_kbps: u64, loss: f64, one_way: Duration, jitter: Duration, seed: u64) -> LinkProfile {
    LinkProfile {
        loss,
        delay: one_way,
        jitter,
        rate_bps: Some(rate_kbps * 1000),
        seed,
    }
}

/// A profile of the issue: both directions of the classroom's line (the RTT is split evenly;
/// "30 ms jitter" is the round trip's spread, ±15 ms each way).
#[derive(Clone)]
struct Profile {
    name: &'static str,
    up: LinkProfile,
    down: LinkProfile,
    /// The round trip the relay adds.
    rtt: Duration,
    /// `(up, down)` during the collapse, if this profile collapses.
    collapse: Option<(LinkProfile, LinkProfile)>,
}

fn profiles() -> Vec<Profile> {
    let rural = |seed| dir(1200, 0.03, ms(75), ms(15), seed);
    let satellite = |seed| dir(2000, 0.01, ms(300), Duration::ZERO, seed);
    // The collapse starts from a fair line (2.5 Mbit/s, 40 ms RTT, no loss) so that the top
    // layer plays before it.
    let fair = |seed| dir(2500, 0.0, ms(20), Duration::ZERO, seed);
    let thin = |seed| dir(300, 0.0, ms(20), Duration::ZERO, seed);
    vec![
        Profile {
            name: "rural",
            up: rural(1),
            down: rural(2),
            rtt: ms(150),
            collapse: None,
        },
        Profile {
            name: "satellite",
            up: satellite(3),
            down: satellite(4),
            rtt: ms(600),
            collapse: None,
        },
        Profile {
            name: "collapse",
            up: fair(5),
            down: fair(6),
            rtt: ms(40),
            collapse: Some((thin(7), thin(8))),
        },
    ]
}

/// One second's sample of the viewer: its hub link's stats and whether the page shows the
/// audio-only badge.
struct Sample {
    /// Seconds since the window started.
    t: f64,
    hub: Value,
    weak: bool,
}

/// The `role` track's entry in a stats summary's `list` (`inboundVideo`, `inboundAudio`).
fn track<'a>(stats: &'a Value, list: &str, role: &str) -> Option<&'a Value> {
    stats[list]
        .as_array()
        .and_then(|v| v.iter().find(|v| v["role"] == role))
}

fn camera(stats: &Value, pointer: &str) -> f64 {
    track(stats, "inboundVideo", "camera").map_or(0.0, |v| num(v, pointer))
}

fn screen(stats: &Value, pointer: &str) -> f64 {
    track(stats, "inboundVideo", "screen").map_or(0.0, |v| num(v, pointer))
}

fn audio(stats: &Value, pointer: &str) -> f64 {
    stats["inboundAudio"]
        .as_array()
        .and_then(|v| v.first())
        .map_or(0.0, |v| num(v, pointer))
}

/// Bytes of every inbound track.
fn bytes_in(stats: &Value) -> f64 {
    ["inboundVideo", "inboundAudio"]
        .iter()
        .flat_map(|l| stats[*l].as_array().into_iter().flatten())
        .map(|v| num(v, "/bytesReceived"))
        .sum()
}

/// What one profile showed at the viewer.
#[derive(Debug, Default, Clone)]
struct Figures {
    profile: &'static str,
    estimation: bool,
    secs: f64,
    /// Teacher camera frames decoded per second over the window.
    camera_fps: f64,
    /// Courseware screen frames decoded per second.
    screen_fps: f64,
    /// Share of the window the camera was frozen (`totalFreezesDuration`).
    freeze_share: f64,
    freezes: f64,
    /// Share of audio samples concealed.
    concealment: f64,
    /// Received kbit/s (all tracks).
    kbps: f64,
    /// Seconds spent at each camera width (the layer), as `width: seconds`.
    layers: Vec<(u64, u32)>,
    /// Smallest and median round trip of the selected (relayed) pair, ms.
    rtt_min_ms: f64,
    rtt_median_ms: f64,
    /// Seconds with no real (unconcealed) audio.
    silent_secs: u32,
    /// Seconds the page showed the audio-only badge.
    audio_only_secs: u32,
    /// Collapse: seconds from the link's recovery to the first second with camera frames
    /// decoded again (`None`: never within the window).
    video_back_s: Option<f64>,
    /// Collapse: camera frames decoded during the collapse.
    camera_frames_in_collapse: f64,
    /// Datagrams the relay lost or dropped towards the viewer in the window.
    down_lost: u64,
    down_overflowed: u64,
    /// The selected pair: local type / relay protocol.
    pair: String,
}

impl Figures {
    fn line(&self) -> String {
        let layers = self
            .layers
            .iter()
            .map(|(w, s)| format!("{w}px:{s}s"))
            .collect::<Vec<_>>()
            .join(" ");
        let collapse = match (self.profile, self.video_back_s) {
            ("collapse", Some(s)) => format!(
                " video back {s:.1}s after recovery, {:.0} camera frames in the collapse,",
                self.camera_frames_in_collapse
            ),
            ("collapse", None) => format!(
                " video NOT back, {:.0} camera frames in the collapse,",
                self.camera_frames_in_collapse
            ),
            _ => String::new(),
        };
        format!(
            "{:<9} estimation {:<3}: camera {:.1} fps, screen {:.1} fps, frozen {:.2} % \
             ({} freezes), audio concealed {:.2} %, {} s without audio, audio-only badge {} s,\
             {collapse} {:.0} kbit/s, layers [{layers}], RTT min {:.0} ms median {:.0} ms, \
             relay down lost {} overflowed {}, pair {} ({:.0} s)",
            self.profile,
            if self.estimation { "on" } else { "off" },
            self.camera_fps,
            self.screen_fps,
            self.freeze_share * 100.0,
            self.freezes,
            self.concealment * 100.0,
            self.silent_secs,
            self.audio_only_secs,
            self.kbps,
            self.rtt_min_ms,
            self.rtt_median_ms,
            self.down_lost,
            self.down_overflowed,
            self.pair,
            self.secs,
        )
    }
}

fn figures(
    p: &Profile,
    estimation: bool,
    samples: &[Sample],
    lost: u64,
    overflowed: u64,
) -> Figures {
    let (first, last) = (&samples[0], &samples[samples.len() - 1]);
    let secs = last.t - first.t;
    let d = |f: fn(&Value, &str) -> f64, ptr: &str| f(&last.hub, ptr) - f(&first.hub, ptr);
    let samples_in = d(audio, "/totalSamplesReceived");
    let mut layers: Vec<(u64, u32)> = Vec::new();
    let mut rtts: Vec<f64> = Vec::new();
    let (mut silent, mut weak) = (0, 0);
    for w in samples.windows(2) {
        let width = camera(&w[1].hub, "/frameWidth") as u64;
        let decoded = camera(&w[1].hub, "/framesDecoded") - camera(&w[0].hub, "/framesDecoded");
        // A second without frames counts as "paused", whatever the last width was.
        let width = if decoded > 0.0 { width } else { 0 };
        match layers.iter_mut().find(|(w, _)| *w == width) {
            Some((_, n)) => *n += 1,
            None => layers.push((width, 1)),
        }
        let real = |s: &Value| audio(s, "/totalSamplesReceived") - audio(s, "/concealedSamples");
        if real(&w[1].hub) - real(&w[0].hub) <= 0.0 {
            silent += 1;
        }
        if w[1].weak {
            weak += 1;
        }
        let rtt = num(&w[1].hub, "/candidatePair/currentRoundTripTime");
        if rtt > 0.0 {
            rtts.push(rtt * 1000.0);
        }
    }
    layers.sort();
    rtts.sort_by(f64::total_cmp);
    let (mut video_back_s, mut in_collapse) = (None, 0.0);
    if p.collapse.is_some() {
        let (from, to) = (
            COLLAPSE_AT.as_secs_f64(),
            (COLLAPSE_AT + COLLAPSE_FOR).as_secs_f64(),
        );
        for w in samples.windows(2) {
            let decoded = camera(&w[1].hub, "/framesDecoded") - camera(&w[0].hub, "/framesDecoded");
            if w[0].t >= from + 1.0 && w[1].t <= to {
                in_collapse += decoded;
            }
            // The first second after the recovery with frames decoded (a few, not a stray
            // one already in the jitter buffer).
            if video_back_s.is_none() && w[0].t >= to && decoded >= 3.0 {
                video_back_s = Some(w[1].t - to);
            }
        }
    }
    Figures {
        profile: p.name,
        estimation,
        secs,
        camera_fps: d(camera, "/framesDecoded") / secs,
        screen_fps: d(screen, "/framesDecoded") / secs,
        freeze_share: d(camera, "/totalFreezesDuration") / secs,
        freezes: d(camera, "/freezeCount"),
        concealment: d(audio, "/concealedSamples") / samples_in.max(1.0),
        kbps: (bytes_in(&last.hub) - bytes_in(&first.hub)) * 8.0 / 1000.0 / secs,
        layers,
        rtt_min_ms: rtts.first().copied().unwrap_or(0.0),
        rtt_median_ms: rtts.get(rtts.len() / 2).copied().unwrap_or(0.0),
        silent_secs: silent,
        audio_only_secs: weak,
        video_back_s,
        camera_frames_in_collapse: in_collapse,
        down_lost: lost,
        down_overflowed: overflowed,
        pair: format!(
            "{}/{}",
            last.hub["candidatePair"]["localType"]
                .as_str()
                .unwrap_or("?"),
            last.hub["candidatePair"]["localRelayProtocol"]
                .as_str()
                .unwrap_or("?")
        ),
    }
}

/// The classroom page's hub stats and audio-only badge, in one round trip.
async fn sample(page: &Page) -> Result<(Value, bool)> {
    let v = page
        .eval(
            "return (async () => ({ hub: window.classrelay && window.classrelay.stats \
             ? (await window.classrelay.stats()).hub : null, \
             weak: !document.getElementById('weakNet').hidden }))();",
        )
        .await?;
    Ok((v["hub"].clone(), v["weak"].as_bool().unwrap_or(false)))
}

/// Watches `p` on the classroom page of device `device`, through `relay` set to `p`; returns
/// the figures.
async fn measure(
    browser: &Browser,
    app: &App,
    relay: &LinkRelay,
    lesson_id: i64,
    device: &str,
    p: &Profile,
    estimation: bool,
) -> Result<Figures> {
    relay.set_profiles(p.up.clone(), p.down.clone())?;
    let page = browser.new_page().await?;
    page.goto(&format!(
        "{}/classroom?device={device}&lesson={lesson_id}&width=320&height=240&relay=1",
        app.base
    ))
    .await?;
    page.wait_for_state("connected", Duration::from_secs(60))
        .await
        .with_context(|| format!("{} classroom connecting", p.name))?;
    let started = page
        .wait_until(
            "window.classrelay.stats().then((s) => s.hub.inboundVideo.some((v) => \
             v.role === 'camera' && v.framesDecoded > 0))",
            Duration::from_secs(40),
            "window.classrelay.stats().then((s) => s.hub)",
        )
        .await;
    if let Err(e) = started {
        bail!(
            "{}: no camera frame: {e}\n{}",
            p.name,
            page.page_log().await
        );
    }
    // Warm-up, then one sample a second. The deadline is the next second, whatever the
    // WebDriver round trip took (under load it takes a good part of it).
    tokio::time::sleep(WARM_UP).await;
    let (lost0, over0) = (
        relay.down().lost.load(std::sync::atomic::Ordering::Relaxed),
        relay
            .down()
            .overflowed
            .load(std::sync::atomic::Ordering::Relaxed),
    );
    let t0 = Instant::now();
    let mut samples = Vec::new();
    let mut collapsed = false;
    let mut recovered = false;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let t = t0.elapsed();
        if let Some((up, down)) = &p.collapse {
            if !collapsed && t >= COLLAPSE_AT {
                relay.set_profiles(up.clone(), down.clone())?;
                collapsed = true;
            } else if collapsed && !recovered && t >= COLLAPSE_AT + COLLAPSE_FOR {
                relay.set_profiles(p.up.clone(), p.down.clone())?;
                recovered = true;
            }
        }
        let (hub, weak) = sample(&page).await?;
        samples.push(Sample {
            t: t0.elapsed().as_secs_f64(),
            hub,
            weak,
        });
        if t >= WINDOW {
            break;
        }
    }
    let lost = relay.down().lost.load(std::sync::atomic::Ordering::Relaxed) - lost0;
    let overflowed = relay
        .down()
        .overflowed
        .load(std::sync::atomic::Ordering::Relaxed)
        - over0;
    // Hang up (WHEP DELETE) before closing, so the server stops sending into the shared link.
    let _ = page
        .eval(
            "return (async () => { const l = window.classrelay.links; \
             if (l && l.hub) await l.hub.stop(); return true; })();",
        )
        .await;
    page.close().await?;
    Ok(figures(p, estimation, &samples, lost, overflowed))
}

/// One server with `media.downlink_adaptation = estimation`, its teacher publishing, each
/// profile watched from its own classroom (a fresh viewer per profile).
async fn run_all(
    browser: &Browser,
    coturn: &Coturn,
    relay: &LinkRelay,
    estimation: bool,
) -> Result<Vec<Figures>> {
    let turn = coturn.udp_config_via(relay.addr());
    let app = App::start_with(Backend::Sqlite, |c| {
        c.turn = turn;
        c.media.downlink_adaptation = estimation;
    })
    .await
    .context("server")?;
    let f = fixture(&app).await;
    let id = lesson(&app, &f, "master", "07:30", "08:10").await;
    app.clock.set(at("07:35"));
    let teacher = open_console_sized(browser, &app.base, "wang", id, 960, 540).await?;
    teacher
        .wait_for_state("connected", Duration::from_secs(60))
        .await?;
    let mut out = Vec::new();
    for (p, room) in profiles().iter().zip([f.room_a, f.room_b, f.room_view]) {
        let device = app.device(room).await;
        let fig = measure(browser, &app, relay, id, &device, p, estimation).await?;
        println!("{}", fig.line());
        out.push(fig);
    }
    let sent = teacher.stats().await?;
    println!(
        "teacher sends: {}",
        sent["publish"]["outboundVideo"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|v| format!(
                "{}{} {}x{} {:.0}fps",
                v["role"].as_str().unwrap_or("?"),
                v["rid"]
                    .as_str()
                    .map(|r| format!("/{r}"))
                    .unwrap_or_default(),
                num(v, "/frameWidth"),
                num(v, "/frameHeight"),
                num(v, "/framesPerSecond")
            ))
            .collect::<Vec<_>>()
            .join(", ")
    );
    teacher.close().await?;
    Ok(out)
}

// Ignored (run it with `-- --ignored --nocapture`): it takes about 13 minutes on the shared
// 2-core machine, over the CI budget, and with estimation on the thresholds are not
// met yet (docs/rural-links.md has the figures and what is left to fix). The thresholds stay
// as the issue states them.
#[ignore = "13 min; rural/satellite/collapse thresholds not met yet with estimation on (docs/rural-links.md)"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rural_satellite_and_collapse_links_with_estimation_on_and_off() -> Result<()> {
    let Some(coturn) = Coturn::start()? else {
        return Ok(());
    };
    let Some(browser) = Browser::start_or_skip().await else {
        return Ok(());
    };
    let relay = LinkRelay::start(
        coturn.udp_addr(),
        LinkProfile::clean(),
        LinkProfile::clean(),
    )?;
    let on = run_all(&browser, &coturn, &relay, true).await?;
    let off = run_all(&browser, &coturn, &relay, false).await?;
    println!("--- rural links, Chromium viewer through coturn and the impairment relay ---");
    for f in on.iter().chain(&off) {
        println!("{}", f.line());
    }
    // TURN's allocation went through the impaired link (its requests retransmitted where lost).
    assert!(
        coturn.allocated_for("d:"),
        "no allocation by a classroom device in coturn's log:\n{}",
        coturn.log()
    );
    let profiles = profiles();
    for f in on.iter().chain(&off) {
        let p = profiles.iter().find(|p| p.name == f.profile).unwrap();
        assert_eq!(f.pair, "relay/udp", "{}", f.line());
        // The relay adds the profile's round trip (both directions' delays), no less; queueing
        // and jitter add some on top.
        let rtt = p.rtt.as_secs_f64() * 1000.0;
        assert!(
            f.rtt_min_ms >= rtt - 20.0 && f.rtt_min_ms <= rtt + 120.0,
            "RTT {} ms for a {rtt} ms profile: {}",
            f.rtt_min_ms,
            f.line()
        );
    }
    let get = |set: &[Figures], name: &str| set.iter().find(|f| f.profile == name).cloned();
    let rural = get(&on, "rural").unwrap();
    assert!(rural.camera_fps >= 15.0, "{}", rural.line());
    assert!(rural.freeze_share < 0.02, "{}", rural.line());
    assert!(rural.concealment < 0.05, "{}", rural.line());
    let sat = get(&on, "satellite").unwrap();
    assert!(sat.camera_fps >= 5.0, "video plays: {}", sat.line());
    assert!(sat.concealment < 0.05, "{}", sat.line());
    let col = get(&on, "collapse").unwrap();
    assert_eq!(col.silent_secs, 0, "audio never stops: {}", col.line());
    assert!(col.audio_only_secs > 0, "audio-only shown: {}", col.line());
    assert!(
        col.video_back_s.is_some_and(|s| s <= 3.0),
        "video back within 3 s: {}",
        col.line()
    );
    // With estimation off only printed; on the rural profile "on" must be the better picture
    // (fewer freezes).
    let rural_off = get(&off, "rural").unwrap();
    assert!(
        rural.freeze_share <= rural_off.freeze_share,
        "on: {}\noff: {}",
        rural.line(),
        rural_off.line()
    );
    drop(relay);
    drop(browser);
    drop(coturn);
    Ok(())
}
