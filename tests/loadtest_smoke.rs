//! The load generator runs end to end against the real binary and produces figures. Speed is
//! not asserted here (that is BENCHMARKS.md's job): only that media flowed and every figure
//! was measured.
//!
//! `broadcast_side_by_side_smoke` runs the same load against classrelay and against Janus
//! (the side-by-side peer) the way `classrelay-loadtest broadcast --target both` does: Janus
//! in its network namespace, the load re-executed inside it (here: this test binary filtered
//! to the ignored `inner_janus_load`). It needs root and `/usr/bin/janus`; without janus it
//! skips the Janus half (`support::skip`), unless `CI` is set, where that is a failure.
//!
//! Run: `cargo test --test loadtest_smoke`.

mod support;

use std::path::PathBuf;
use std::time::Duration;

use classrelay_loadtest::janus::{JanusOptions, JanusServer};
use classrelay_loadtest::scenario::{self, Figures, Load, Ratios};
use classrelay_loadtest::side;
use classrelay_loadtest::target::{ClassrelayProc, ServerOptions};
use str0m::format::Codec;

const INNER: &str = "inner_janus_load";

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn load(subscribers: usize) -> Load {
    Load {
        subscribers,
        join_rate: 20.0,
        join_window: Duration::from_secs(1),
        warmup: Duration::from_millis(500),
        duration: Duration::from_secs(2),
        video: fixture("video_vp8.ivf"),
        fps: 30,
        swarms: 1,
        classes: 0,
        class_video: fixture("video_vp8.ivf"),
        simulcast: Vec::new(),
        viewer_gro: true,
        viewer_spin: false,
        realtime: false,
    }
}

fn one_worker() -> ServerOptions {
    ServerOptions {
        workers: 1,
        ..ServerOptions::default()
    }
}

/// `--realtime --workers 2 --spread-after 0`, the latency set-up: every server thread runs
/// `SCHED_FIFO`, the viewers are spread over both workers (the room piped to the second),
/// and the figures are all there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn realtime_broadcast_over_two_workers_smoke() {
    if !support::skip::is_root() {
        support::skip::because("SCHED_FIFO needs root");
        return;
    }
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_classrelay"));
    let server = ClassrelayProc::start(
        &bin,
        &ServerOptions {
            workers: 2,
            realtime: true,
            spread_after: Some(0),
            ..ServerOptions::default()
        },
    )
    .unwrap();
    let policies: Vec<String> = std::fs::read_dir(format!("/proc/{}/task", server.pid()))
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("stat")).ok())
        // Field 41 (`policy`), counted after the parenthesised command name.
        .filter_map(|st| {
            st.rsplit_once(')')?
                .1
                .split_whitespace()
                .nth(38)
                .map(str::to_string)
        })
        .collect();
    assert!(!policies.is_empty());
    assert!(
        policies.iter().all(|p| p == "1"),
        "every server thread SCHED_FIFO: {policies:?}"
    );
    let mut l = load(4);
    l.realtime = true;
    let f = scenario::run_classrelay(&server, "broadcast", &l)
        .await
        .unwrap();
    println!("{}", scenario::table(std::slice::from_ref(&f)));
    assert_eq!(f.receiving, 4, "every subscriber got a keyframe");
    assert!(f.latency_us.is_some_and(|l| l.p50 > 0.0));
    let metrics = reqwest::get(format!("{}/metrics", server.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let piped = support::metrics::value(&metrics, "classrelay_pipe_packets_total").unwrap_or(0.0);
    assert!(piped > 0.0, "half the viewers were fed through the pipe");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcast_smoke_against_classrelay() {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_classrelay"));
    let server = ClassrelayProc::start(&bin, &one_worker()).unwrap();
    let f = scenario::run_classrelay(&server, "broadcast", &load(4))
        .await
        .unwrap();
    println!("{}", scenario::table(std::slice::from_ref(&f)));
    assert_eq!(f.receiving, 4, "every subscriber got a keyframe");
    assert!(f.forwarded_video_pps > 0.0 && f.forwarded_pps > f.forwarded_video_pps);
    assert!(f.server_cpu > 0.0, "server CPU measured from /proc");
    assert!(f.pkts_per_cpu_s > 0.0);
    assert!(
        f.latency_us.is_some_and(|l| l.p50 > 0.0),
        "latency stamps travelled through the SFU"
    );
    assert!(f.ttfk_ms.p50 > 0.0);
    assert!(f.rss_end_kib > 0);
    let json = serde_json::to_value(&f).unwrap();
    assert_eq!(json["target"], "classrelay");
}

/// The publisher sends three simulcast layers; every viewer still gets a picture and the
/// figures are all there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcast_simulcast_smoke_against_classrelay() {
    // Packets the server took in per packet it sent each viewer: with three layers coming in
    // and one going out, clearly more than with one layer in the same run shape.
    async fn intake_per_viewer_copy(simulcast: Vec<String>) -> f64 {
        let bin = PathBuf::from(env!("CARGO_BIN_EXE_classrelay"));
        let server = ClassrelayProc::start(&bin, &one_worker()).unwrap();
        let l = Load {
            simulcast,
            ..load(3)
        };
        let f = scenario::run_classrelay(&server, "broadcast", &l)
            .await
            .unwrap();
        assert_figures(&f, 3);
        assert!(f.sfu_residence_us.is_some());
        let text = support::metrics::scrape(&reqwest::Client::new(), &server.base).await;
        let value = |name: &str| -> f64 {
            support::metrics::value(&text, name).unwrap_or_else(|| panic!("{name} missing"))
        };
        value("classrelay_rtp_packets_in_total") / (value("classrelay_rtp_packets_out_total") / 3.0)
    }
    let one = intake_per_viewer_copy(Vec::new()).await;
    let three = intake_per_viewer_copy(vec!["h".into(), "m".into(), "l".into()]).await;
    println!("intake per viewer copy: one layer {one:.2}, three layers {three:.2}");
    assert!(
        three > one * 1.2,
        "three layers came in ({three:.2} vs {one:.2})"
    );
}

/// `mixed` (issue 19 item 7): four sites watch a three-layer simulcast publisher, two of
/// them each behind a rural link (1.2 Mbit/s, 3 % loss, 150 ms round trip, 30 ms jitter).
/// With the server's per-viewer estimation on, the rural sites are delivered a lower layer
/// than the clean ones (the highest layer does not fit their line); with it off, every site
/// gets the same layer, the highest, whatever its link.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_rural_sites_get_a_lower_layer_only_with_estimation() {
    use classrelay_loadtest::mixed::{self, MixedOptions, Profile};
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_classrelay"));
    for on in [true, false] {
        let server =
            ClassrelayProc::start_with_env(&bin, &one_worker(), &mixed::server_env(on)).unwrap();
        let l = Load {
            video: PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("loadtest/fixtures/vp8_720p30_1200k.ivf"),
            // The estimate acts on receiver reports (about one a second): time to settle.
            warmup: Duration::from_secs(6),
            duration: Duration::from_secs(5),
            ..load(4)
        };
        let o = MixedOptions {
            load: l,
            impaired: 0.5,
            profile: Profile::Rural,
            estimation: on,
        };
        let f = mixed::run(&server, &o).await.unwrap();
        println!("{}", mixed::table(std::slice::from_ref(&f)));
        let (clean, rural) = (f.group("clean").unwrap(), f.group("rural").unwrap());
        assert_eq!((clean.sites, rural.sites), (2, 2));
        assert_eq!((clean.receiving, rural.receiving), (2, 2));
        assert_eq!(f.rids, ["h", "m", "l"]);
        assert!(f.server_cpu > 0.0, "server CPU measured");
        assert!(clean.kbps > 0.0 && rural.kbps > 0.0);
        let layer = |g: &mixed::GroupFigures| {
            g.mean_layer
                .unwrap_or_else(|| panic!("{}: complete frames arrived", g.link))
        };
        let (c, r) = (layer(clean), layer(rural));
        if on {
            assert!(
                r >= c + 0.5,
                "estimation on: the rural sites got a lower layer ({r:.2}) than the clean \
                 ones ({c:.2})"
            );
        } else {
            assert!(
                c == 0.0 && r == 0.0,
                "estimation off: every site gets the highest layer (clean {c:.2}, rural {r:.2})"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bell_smoke_against_classrelay() {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_classrelay"));
    let server = ClassrelayProc::start(&bin, &one_worker()).unwrap();
    let l = load(6);
    let f = scenario::run_classrelay(&server, "bell", &l).await.unwrap();
    println!("{}", scenario::table(std::slice::from_ref(&f)));
    assert_eq!(f.receiving, 6);
    // Six joins spread over the join window: at most one keyframe request per 300 ms reaches
    // the publisher, plus the one that opens the window (without coalescing, and with joiners
    // not served from the GOP cache, there would be about one per join).
    let allowed = 1 + (l.join_window.as_millis() / 300) as u64;
    let asked = f
        .keyframe_requests_at_publisher
        .expect("counted at the publisher");
    assert!(
        asked <= allowed,
        "{asked} keyframe requests, allowed {allowed}"
    );
}

/// Every figure of a broadcast run was produced and media flowed.
fn assert_figures(f: &Figures, subscribers: usize) {
    assert_eq!(f.subscribers, subscribers);
    assert_eq!(
        f.receiving, subscribers,
        "{}: every subscriber got a keyframe",
        f.target
    );
    assert!(f.window_s > 1.0);
    assert!(
        f.forwarded_video_pps > 0.0 && f.forwarded_pps > f.forwarded_video_pps,
        "{}: video and audio forwarded",
        f.target
    );
    assert!(f.server_cpu > 0.0, "{}: CPU from /proc", f.target);
    assert!(f.pkts_per_cpu_s > 0.0 && f.video_pkts_per_cpu_s > 0.0);
    assert!(f.loss_pct.is_finite() && f.loss_pct >= 0.0);
    assert!(f.ttfk_ms.p50 > 0.0 && f.ttfk_ms.p99 >= f.ttfk_ms.p50);
    assert!(f.ttfk_after_answer_ms.p50 > 0.0);
    assert!(f.connect_ms.p50 > 0.0);
    assert!(f.rss_base_kib > 0 && f.rss_end_kib > 0);
    assert!(f.join_s > 0.0);
    if f.target == "classrelay" {
        let d = f
            .datagrams_per_send_call
            .expect("send calls from the server's metrics");
        assert!(d >= 1.0, "{d} datagrams per send call");
    }
}

#[test]
fn broadcast_side_by_side_smoke() {
    side_by_side(fixture("video_vp8.ivf"), Codec::Vp8);
}

/// The same with the H.264 fixture: str0m packetizes it for classrelay, the feeder as FU-A
/// for a Janus mountpoint set to H.264.
#[test]
fn broadcast_h264_side_by_side_smoke() {
    side_by_side(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("loadtest/fixtures/h264_720p30_1200k.h264"),
        Codec::H264,
    );
}

fn side_by_side(video: PathBuf, codec: Codec) {
    const SUBS: usize = 3;
    let load = |n: usize| Load {
        video: video.clone(),
        ..load(n)
    };
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_classrelay"));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let c = rt
        .block_on(async {
            let server = ClassrelayProc::start(&bin, &one_worker())?;
            scenario::run_classrelay(&server, "broadcast", &load(SUBS)).await
        })
        .unwrap();
    assert_figures(&c, SUBS);
    assert_eq!(c.video_codec, codec.to_string());
    assert!(
        c.sfu_residence_us
            .is_some_and(|r| r.p50 > 0.0 && r.p99 >= r.p50),
        "the server's own residence histogram was read over the window"
    );
    assert!(c.latency_us.is_some_and(|l| l.p50 > 0.0));
    assert!(c.keyframe_requests_at_publisher.is_some());

    let opts = JanusOptions {
        video_codec: codec,
        ..JanusOptions::default()
    };
    if !opts.janus_bin.exists() {
        println!("{}", scenario::table(std::slice::from_ref(&c)));
        support::skip::because(format!(
            "the Janus half: {} not installed (apt-get install -y janus)",
            opts.janus_bin.display()
        ));
        return;
    }
    let server = JanusServer::start(opts).expect("janus starts in a namespace");
    let inner = [
        INNER,
        "--exact",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ];
    let j = side::run_janus(&server, &inner, "broadcast", &load(SUBS)).unwrap_or_else(|e| {
        let log = std::fs::read_to_string(server.log_path()).unwrap_or_default();
        panic!("janus run failed: {e:#}\njanus log:\n{log}")
    });
    drop(server);
    println!("{}", scenario::table_side_by_side(&c, &j));
    assert_eq!(j.target, "janus");
    assert_figures(&j, SUBS);
    assert_eq!(j.video_codec, codec.to_string());
    // What the Janus path cannot measure is reported as such, not as numbers.
    assert!(j.latency_us.is_none() && j.keyframe_requests_at_publisher.is_none());
    assert!(j.sfu_residence_us.is_none());
    assert!(j.notes.iter().any(|n| n.starts_with("latency n/a")));
    let r = Ratios::of(&c, &j);
    assert!(r.pkts_per_cpu_s.is_some_and(|x| x > 0.0));
    assert!(r.ttfk.is_some());
    assert!(r.latency.is_none());
    let json = serde_json::to_value(&r).unwrap();
    assert!(json["pkts_per_cpu_s"].is_number());
}

/// Runs inside Janus's namespace (started by the test above); refuses to run anywhere else,
/// so `--ignored` or `--include-ignored` cannot count it as a pass.
#[test]
#[ignore = "run by broadcast_side_by_side_smoke inside Janus's network namespace"]
fn inner_janus_load() {
    match side::inner_main() {
        Some(r) => r.expect("the load inside the namespace"),
        None => panic!(
            "{INNER} runs only inside Janus's network namespace, started by \
             side::run_janus (run broadcast_side_by_side_smoke instead)"
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_smoke_against_classrelay() {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_classrelay"));
    let server = ClassrelayProc::start(&bin, &one_worker()).unwrap();
    let mut l = load(2);
    l.classes = 2;
    let f = scenario::run_classrelay(&server, "sync", &l).await.unwrap();
    println!("{}", scenario::table(std::slice::from_ref(&f)));
    // Two classes receive the hub, the hub receives both classes.
    assert_figures(&f, 3);
    assert!(f.latency_us.is_some_and(|l| l.p50 > 0.0));
    assert!(f.keyframe_requests_at_publisher.is_some());
    // Each class receives one video stream and the hub two: ≥ 4 streams' worth of packets
    // (the 320×240 fixture sends about 25 video packets per second).
    assert!(
        f.forwarded_video_pps > 4.0 * 15.0,
        "{}",
        f.forwarded_video_pps
    );
}

/// The floor scenario (no SFU) runs from the library and produces figures from real sends:
/// every sealed video datagram reached its viewer's socket and was timed.
#[test]
fn floor_smoke() {
    // The last case leaves a sender with no viewer at all.
    for (subscribers, senders, gso_batch, spin) in [
        (6, 2, false, false),
        (6, 2, true, true),
        (1, 3, true, false),
    ] {
        let f = classrelay_loadtest::floor::run(&classrelay_loadtest::floor::FloorOptions {
            subscribers,
            senders,
            receivers: 2,
            warmup: Duration::from_millis(300),
            duration: Duration::from_secs(1),
            video: PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("loadtest/fixtures/vp8_720p30_1200k.ivf"),
            fps: 30,
            realtime: false,
            gso_batch,
            spin,
        })
        .expect("floor runs");
        assert_eq!(f.subscribers, subscribers);
        assert!(f.video_pkt_per_s > subscribers as f64 * 30.0, "{f:?}");
        assert_eq!(f.loss_pct, 0.0, "{f:?}");
        assert!(
            f.latency_us[0] > 0 && f.latency_us[2] >= f.latency_us[0],
            "{f:?}"
        );
        assert!(f.cpu_us_per_viewer_frame > 0.0, "{f:?}");
    }
}
