//! The fixture files as sources for the tests' simulated publishers (str0m peers from
//! `classrelay_loadtest`). Loading only: what arrives is checked by the swarm's counters and
//! by `webrtc_client`, never here.

use std::sync::atomic::Ordering;
use std::time::Duration;

use classrelay_loadtest::swarm::{PeerHandle, Source};

fn load(path: &str) -> Source {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    classrelay_loadtest::scenario::source_from(&path, 30)
        .unwrap_or_else(|e| panic!("{}: {e:#}", path.display()))
}

/// `tests/fixtures/video_vp8.ivf` (small VP8) at 30 fps, with Opus.
pub fn vp8_source() -> Source {
    load("tests/fixtures/video_vp8.ivf")
}

/// The load generator's 720p30 VP8 at 1.2 Mbit/s (a frame is several packets; a keyframe
/// every 2 s), with Opus.
pub fn hd_source() -> Source {
    load("loadtest/fixtures/vp8_720p30_1200k.ivf")
}

/// Whether the simulated publisher `p` has sent more than `n` frames within `limit`.
pub async fn sent_more_than(p: &PeerHandle, n: u64, limit: Duration) -> bool {
    p.stats
        .wait_for(limit, |s| s.frames_sent.load(Ordering::Relaxed) > n)
        .await
}
