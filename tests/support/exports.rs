//! What the export tests share: a lesson's source files made by `gst-launch-1.0` (an encoder
//! independent of classrelay) and a manifest as `record::process` writes it. Test-only; writes
//! only where it is told.

use std::path::{Path, PathBuf};
use std::process::Command;

use classrelay::record::process::Manifest;

/// Runs `gst-launch-1.0 -q <args>` (split on blanks), panicking with its stderr on failure.
pub fn gst_launch(args: &str) {
    let out = Command::new("gst-launch-1.0")
        .arg("-q")
        .args(args.split_whitespace())
        .output()
        .expect("gst-launch-1.0 runs");
    assert!(
        out.status.success(),
        "gst-launch-1.0 {args}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A WebM like processing writes (VP8 + Opus), `secs` long, 640×480 at 25 fps: `picture` is a
/// videotestsrc setting (`pattern=snow`, `pattern=solid-color foreground-color=0xffff0000`).
pub fn source(dir: &Path, name: &str, picture: &str, secs: u32, audio: bool) -> PathBuf {
    let path = dir.join(name);
    let frames = secs * 25;
    let mut args = format!(
        "videotestsrc num-buffers={frames} {picture} ! video/x-raw,width=640,height=480,framerate=25/1 \
         ! vp8enc deadline=1 target-bitrate=1500000 ! webmmux name=m ! filesink location={}",
        path.display()
    );
    if audio {
        args.push_str(&format!(
            " audiotestsrc num-buffers={} samplesperbuffer=960 freq=440 ! audio/x-raw,rate=48000,channels=2 ! opusenc ! m.",
            secs * 50
        ));
    }
    gst_launch(&args);
    path
}

/// A manifest as `record::process` writes it, for `(file, kind, codec, duration_ms)`.
pub fn manifest(dir: &Path, sources: &[(&str, &str, &str, u64)]) {
    let sources: Vec<serde_json::Value> = sources
        .iter()
        .map(|(file, kind, codec, dur)| {
            serde_json::json!({
                "file": file, "kind": kind, "codec": codec, "mime": "video/webm",
                "owner": "t:1", "hub": true, "start_ms": 0, "duration_ms": dur, "frames": 0,
                "gaps": [], "sha256": "", "timeline": "sender_reports", "tracks": [],
            })
        })
        .collect();
    let m = serde_json::json!({
        "version": 1, "room": "lesson-1", "lesson_id": 1, "started_unix_ms": 0,
        "timeline_zero_unix_ms": 0, "duration_ms": 0, "complete": true, "notes": [],
        "sources": sources,
    });
    // It must be what the processor's own type reads.
    let _: Manifest = serde_json::from_value(m.clone()).expect("a manifest processing writes");
    std::fs::write(dir.join("manifest.json"), m.to_string()).unwrap();
}
