//! The load generator drives Janus 1.1.2 (the side-by-side peer) the way it drives classrelay:
//! the fixture VP8 (+ Opus) stream fed as plain RTP into a Streaming mountpoint, three str0m
//! viewers over the HTTP API, each receiving video and a keyframe.
//!
//! Janus only offers ICE candidates on a non-loopback interface, so it runs in a private
//! network namespace holding 127.0.0.2 on a veth (see `classrelay_loadtest::janus`). The
//! feeder and viewers must be in that namespace too: `janus_streaming_three_viewers` starts
//! Janus, then re-runs this test binary inside the namespace filtered to
//! `inner_janus_viewers` (ignored in normal runs), which finds the endpoint in its
//! environment. Janus and the namespace are torn down when the outer test ends.
//!
//! Needs root and `/usr/bin/janus`; without janus the test skips (`support/skip.rs`), unless
//! `CI` is set, where that is a failure.
//! Run: `cargo test --test janus_smoke`.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use classrelay_loadtest::janus::{FeedMedia, JanusEndpoint, JanusOptions, JanusServer, RtpFeeder};
use classrelay_loadtest::janus::{JanusViewer, NETNS_ENV};
use classrelay_loadtest::Swarm;

#[path = "support/skip.rs"]
#[allow(dead_code)] // only the skip itself is used here
mod skip;

const INNER: &str = "inner_janus_viewers";
const VIEWERS: usize = 3;

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

#[test]
fn janus_streaming_three_viewers() {
    let opts = JanusOptions::default();
    if !opts.janus_bin.exists() {
        skip::because(format!(
            "{} not installed (apt-get install -y janus)",
            opts.janus_bin.display()
        ));
        return;
    }
    let server = JanusServer::start(opts).expect("janus starts in a namespace");
    let before = server.sample().expect("janus /proc entry");
    let status = server
        .run_current_exe([
            INNER,
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .expect("re-run inside the namespace");
    let after = server.sample().expect("janus still running");
    println!(
        "janus pid {}: {:.2} CPU-s during the run, RSS {} KiB",
        server.pid(),
        after.cpu_seconds - before.cpu_seconds,
        after.rss_kib
    );
    if !status.success() {
        let log = std::fs::read_to_string(server.log_path()).unwrap_or_default();
        panic!("inner test failed ({status}); janus log:\n{log}");
    }
    let ns = server.netns().name().to_string();
    drop(server);
    let left = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&left.stdout).contains(&ns),
        "namespace {ns} deleted"
    );
}

/// Runs inside Janus's namespace (started by the test above); refuses to run anywhere else,
/// so `--ignored` or `--include-ignored` cannot count it as a pass.
#[test]
#[ignore = "run by janus_streaming_three_viewers inside Janus's network namespace"]
fn inner_janus_viewers() {
    let (Some(endpoint), Some(_)) = (JanusEndpoint::from_env(), std::env::var_os(NETNS_ENV)) else {
        panic!(
            "{INNER} runs only inside Janus's network namespace, started by \
             janus_streaming_three_viewers (run that test instead)"
        );
    };
    let endpoint = endpoint.expect("endpoint from the environment");
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(viewers(endpoint));
}

async fn viewers(endpoint: JanusEndpoint) {
    let media = FeedMedia::load(
        &fixture("video_vp8.ivf"),
        30,
        Some(&fixture("audio_opus.ogg")),
        false,
    )
    .expect("fixtures load");
    let feeder = RtpFeeder::start(media, endpoint.video_rtp, endpoint.audio_rtp).unwrap();
    // The lesson is live before classrooms join, as with classrelay's publisher: Janus has
    // a keyframe buffered (`videobufferkf`) for the first viewer.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let swarm = Swarm::start().unwrap();
    let http = reqwest::Client::new();
    let mut joined = Vec::new();
    for i in 0..VIEWERS {
        let v = JanusViewer::join(&http, &endpoint, &swarm)
            .await
            .unwrap_or_else(|e| panic!("viewer {i} joins: {e:#}"));
        joined.push(v);
    }
    for (i, v) in joined.iter().enumerate() {
        let s = &v.peer.stats;
        let ok = s
            .wait_for(Duration::from_secs(15), |s| {
                s.first_keyframe_at().is_some() && s.video_packets.load(Ordering::Relaxed) >= 20
            })
            .await;
        let since_start =
            |t: Option<std::time::Instant>| t.map(|t| t.saturating_duration_since(v.started_at));
        println!(
            "viewer {i}: DTLS connected {:?} and first keyframe {:?} after start; video {} pkts, \
             audio {} pkts, keyframes {}, gaps {}",
            since_start(s.connected_at()),
            since_start(s.first_keyframe_at()),
            s.video_packets.load(Ordering::Relaxed),
            s.audio_packets.load(Ordering::Relaxed),
            s.keyframes.load(Ordering::Relaxed),
            s.video_seq_gaps.load(Ordering::Relaxed),
        );
        assert!(ok, "viewer {i} received video and a keyframe");
    }
    // Audio flows too (Janus forwards the Ogg's Opus packets).
    for (i, v) in joined.iter().enumerate() {
        let s = &v.peer.stats;
        let got_audio = s
            .wait_for(Duration::from_secs(5), |s| {
                s.audio_packets.load(Ordering::Relaxed) > 0
            })
            .await;
        assert!(got_audio, "viewer {i} received audio");
    }
    println!(
        "feeder: {} frames, {} video pkts, {} audio pkts, {} send errors",
        feeder.stats.frames.load(Ordering::Relaxed),
        feeder.stats.video_packets.load(Ordering::Relaxed),
        feeder.stats.audio_packets.load(Ordering::Relaxed),
        feeder.stats.send_errors.load(Ordering::Relaxed),
    );
    for v in joined {
        v.leave(&swarm).await.expect("session destroyed");
    }
    drop(swarm);
    drop(feeder);
}
