//! The load generator runs end to end against the real binary and produces figures. Speed is
//! not asserted here (that is BENCHMARKS.md's job): only that media flowed and every figure
//! was measured.
//!
//! Run: `cargo test --test loadtest_smoke`.

use std::path::PathBuf;
use std::time::Duration;

use classrelay_loadtest::scenario::{self, Load};
use classrelay_loadtest::target::ClassrelayProc;

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
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcast_smoke_against_classrelay() {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_classrelay"));
    let server = ClassrelayProc::start(&bin, None, 1).unwrap();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bell_smoke_against_classrelay() {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_classrelay"));
    let server = ClassrelayProc::start(&bin, None, 1).unwrap();
    let f = scenario::run_classrelay(&server, "bell", &load(6))
        .await
        .unwrap();
    assert_eq!(f.receiving, 6);
    assert!(f.keyframe_requests_at_publisher.is_some_and(|k| k <= 6));
}
