//! Real Chromium as a classroom on a rural line: a Chromium publisher sending three simulcast
//! layers, a Chromium viewer whose line goes through the userspace impairment relay
//! (`classrelay_loadtest::netem::LinkRelay`; the server announces the relay's address, so
//! every packet of both pages passes it), measured from the viewer's own `getStats()` over
//! 30 s: with the per-viewer downlink estimate on (the default), and off for the comparison.
//! Both runs' figures are printed; the limits hold for the run with estimation on. It must
//! never rewrite SDP or reach past the pages: what the viewer decodes is the verdict.
//!
//! Rural profile (issue 19): 1.2 Mbit/s toward the classroom, 3 % loss, 150 ms round trip,
//! 30 ms jitter → video ≥ 15 fps, frozen < 2 % of the time, audio concealed < 5 %.
//!
//! Run: `cargo test --test browser_links -- --nocapture` (needs `chromium` and
//! `chromium-driver`; skips without them unless `CI` is set).

mod support;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::{Context, Result};
use classrelay::auth::Grant;
use classrelay_loadtest::netem::{LinkProfile, LinkRelay};
use serde_json::Value;

use support::browser::{num, Browser, Page, DEFAULT_DEADLINE};

/// How long the estimate gets to settle before the window.
const WARM_UP: Duration = Duration::from_secs(10);
/// The measured window.
const WINDOW: Duration = Duration::from_secs(30);

/// The relay's client-facing IP: another loopback address, announced by the server.
const RELAY_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// The rural line: toward the classroom 1.2 Mbit/s, 3 % loss, 75 ms ± 30 ms; back 75 ms
/// (150 ms round trip). The publisher's packets pass the same relay (the server announces one
/// address), so the way up has no loss and no jitter: the teacher's own line is not on trial.
fn rural() -> (LinkProfile, LinkProfile) {
    let up = LinkProfile {
        delay: ms(75),
        seed: 7,
        ..LinkProfile::default()
    };
    let down = LinkProfile {
        loss: 0.03,
        delay: ms(75),
        jitter: ms(30),
        rate_bps: Some(1_200_000),
        seed: 8,
    };
    (up, down)
}

/// What the viewer's `getStats()` says (the video stream that decoded most, the audio).
#[derive(Debug, Clone, Copy, Default)]
struct Snap {
    frames: f64,
    freeze_secs: f64,
    freezes: f64,
    width: f64,
    height: f64,
    concealed: f64,
    samples: f64,
    bytes: f64,
}

async fn snap(page: &Page) -> Result<Snap> {
    let v: Value = page
        .eval(
            "const s = await window.classrelay.pc.getStats(); let v = null, a = null; \
             for (const r of s.values()) { if (r.type !== 'inbound-rtp') continue; \
             if (r.kind === 'video' && (!v || (r.framesDecoded || 0) > (v.framesDecoded || 0))) v = r; \
             if (r.kind === 'audio') a = r; } \
             v = v || {}; a = a || {}; \
             return { frames: v.framesDecoded || 0, freeze_secs: v.totalFreezesDuration || 0, \
             freezes: v.freezeCount || 0, width: v.frameWidth || 0, height: v.frameHeight || 0, \
             bytes: v.bytesReceived || 0, concealed: a.concealedSamples || 0, \
             samples: a.totalSamplesReceived || 0 };",
        )
        .await?;
    Ok(Snap {
        frames: num(&v, "/frames"),
        freeze_secs: num(&v, "/freeze_secs"),
        freezes: num(&v, "/freezes"),
        width: num(&v, "/width"),
        height: num(&v, "/height"),
        concealed: num(&v, "/concealed"),
        samples: num(&v, "/samples"),
        bytes: num(&v, "/bytes"),
    })
}

/// The window's figures.
#[derive(Debug)]
struct Figures {
    fps: f64,
    frozen_share: f64,
    freezes: f64,
    concealed_share: f64,
    kbps: f64,
    size: (f64, f64),
}

/// A free UDP port on loopback (the server binds it on 127.0.0.1, the relay on 127.0.0.2).
fn free_udp_port() -> Result<u16> {
    let s = std::net::UdpSocket::bind("127.0.0.1:0")?;
    Ok(s.local_addr()?.port())
}

/// One run: server (estimation on or off), relay, publisher and viewer pages; the viewer's
/// figures over the window.
async fn run(browser: &Browser, estimation: bool) -> Result<Figures> {
    let dir = tempfile::tempdir()?;
    let port = free_udp_port()?;
    let mut config = classrelay::Config::for_tests(dir.path());
    config.media.udp_port = port;
    config.media.public_ip = Some(RELAY_IP);
    config.media.downlink_adaptation = estimation;
    let server = classrelay::Server::start(config).await?;
    let (up, down) = rural();
    let relay = LinkRelay::start_on(
        SocketAddr::new(RELAY_IP, port),
        SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port),
        up,
        down,
    )
    .context("the relay binds 127.0.0.2")?;
    let base = format!("http://{}", server.http_addr());
    let room = "rural";
    let ttl = Duration::from_secs(3600);
    let pub_token = server.mint_token(room, Grant::Publish, ttl);
    let sub_token = server.mint_token(room, Grant::Subscribe, ttl);

    let publisher = browser.new_page().await?;
    publisher
        .goto(&format!(
            "{base}/publish?room={room}&token={pub_token}&codec=vp8&width=960&height=540"
        ))
        .await?;
    publisher
        .wait_for_state("connected", DEFAULT_DEADLINE)
        .await?;
    let viewer = browser.new_page().await?;
    viewer
        .goto(&format!("{base}/watch?room={room}&token={sub_token}"))
        .await?;
    viewer.wait_for_state("connected", DEFAULT_DEADLINE).await?;
    viewer
        .wait_for_stats(DEFAULT_DEADLINE, "decoded video", |s| {
            s["inboundVideo"]
                .as_array()
                .is_some_and(|v| v.iter().any(|x| num(x, "/framesDecoded") > 0.0))
        })
        .await?;
    // A measurement window, not a wait for an event: the figures are rates over it.
    tokio::time::sleep(WARM_UP).await;
    let a = snap(&viewer).await?;
    tokio::time::sleep(WINDOW).await;
    let b = snap(&viewer).await?;
    let secs = WINDOW.as_secs_f64();
    let figures = Figures {
        fps: (b.frames - a.frames) / secs,
        frozen_share: (b.freeze_secs - a.freeze_secs) / secs,
        freezes: b.freezes - a.freezes,
        concealed_share: (b.concealed - a.concealed) / (b.samples - a.samples).max(1.0),
        kbps: (b.bytes - a.bytes) * 8.0 / secs / 1000.0,
        size: (b.width, b.height),
    };
    eprintln!(
        "rural line, estimation {}: {:.1} fps, frozen {:.2} % ({} freezes), audio concealed \
         {:.2} %, video {:.0} kbit/s at {}x{}; relay dropped {} at the queue, lost {}",
        if estimation { "on" } else { "off" },
        figures.fps,
        figures.frozen_share * 100.0,
        figures.freezes,
        figures.concealed_share * 100.0,
        figures.kbps,
        figures.size.0,
        figures.size.1,
        relay
            .down()
            .overflowed
            .load(std::sync::atomic::Ordering::Relaxed),
        relay.down().lost.load(std::sync::atomic::Ordering::Relaxed),
    );
    viewer.eval("return window.classrelay.stop();").await?;
    publisher.eval("return window.classrelay.stop();").await?;
    viewer.close().await?;
    publisher.close().await?;
    drop(relay);
    server.shutdown().await;
    Ok(figures)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rural_line_keeps_fluent_video_and_clean_audio_with_the_estimate() -> Result<()> {
    let Some(browser) = Browser::start_or_skip().await else {
        return Ok(());
    };
    let on = run(&browser, true).await?;
    let off = run(&browser, false).await?;
    eprintln!("rural line: estimation on {on:?}; off {off:?}");
    assert!(on.fps >= 15.0, "video at {:.1} fps", on.fps);
    assert!(
        on.frozen_share < 0.02,
        "frozen {:.2} % of the time",
        on.frozen_share * 100.0
    );
    assert!(
        on.concealed_share < 0.05,
        "audio concealed {:.2} %",
        on.concealed_share * 100.0
    );
    Ok(())
}
