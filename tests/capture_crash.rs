//! Crash safety of the capture: a real `classrelay serve` process records a lesson the
//! independent `webrtc` client publishes to, is killed with SIGKILL mid-lesson, and the
//! capture it leaves holds every frame sent up to 250 ms before the kill (the figure is
//! measured and printed). Must never stop the server gracefully or read the file before the
//! kill.

mod support;

use std::process::Command;
use std::time::Duration;

use classrelay::record::file::{read_capture, DamageKind};
use classrelay::record::format::{Codec, Record};
use classrelay::record::storage::{DirStorage, RecordingStorage, CAPTURE_FILE};
use serde_json::Value;
use support::recording::{record_a_lesson_then_kill, vp8_frames, KilledMidLesson};
use support::webrtc_client::find_contiguous;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_leaves_every_frame_sent_up_to_250_ms_before_the_kill() {
    let KilledMidLesson {
        dir,
        lesson: id,
        killed,
        sent_video,
        sent_audio,
    } = record_a_lesson_then_kill().await;

    let storage = DirStorage::new(dir.path().join("recordings"));
    let ids = storage.list().expect("recordings");
    assert_eq!(ids.len(), 1, "{ids:?}");
    let path = storage.recording_dir(ids[0]).join(CAPTURE_FILE);
    let (c, report) = read_capture(&path);
    if let Some(d) = &report.damage {
        assert_eq!(d.kind, DamageKind::Torn, "{}", report.describe());
    }
    let track = |codec: Codec| {
        c.records
            .iter()
            .find_map(|r| match r {
                Record::Track(t) if t.codec == codec => Some(t.track),
                _ => None,
            })
            .expect("the track is declared")
    };
    let packets = |id: u32| -> Vec<&[u8]> {
        c.records
            .iter()
            .filter_map(|r| match r {
                Record::Rtp { track, packet, .. } if *track == id => Some(&packet[..]),
                _ => None,
            })
            .collect()
    };
    let frames = vp8_frames(&packets(track(Codec::Vp8)));
    let sent: Vec<&[u8]> = sent_video.iter().map(|f| &f.data[..]).collect();
    assert_eq!(
        find_contiguous(&sent, &frames),
        Some(0),
        "a prefix of what was sent"
    );
    let opus: Vec<&[u8]> = packets(track(Codec::Opus))
        .iter()
        .map(|p| &p[12..])
        .collect();
    let sent_a: Vec<&[u8]> = sent_audio.iter().map(|f| &f.data[..]).collect();
    assert_eq!(find_contiguous(&sent_a, &opus), Some(0), "audio: a prefix");
    // The loss: from the first frame sent but not in the capture to the kill.
    let lost = |sent: &[support::webrtc_client::SentFrame], kept: usize| {
        sent.get(kept)
            .map(|f| killed.saturating_duration_since(f.sent_at))
            .unwrap_or_default()
    };
    let lost_video = lost(&sent_video, frames.len());
    let lost_audio = lost(&sent_audio, opus.len());
    eprintln!(
        "kill -9: kept {}/{} video frames and {}/{} audio frames; lost the last {:?} of video, \
         {:?} of audio; {}",
        frames.len(),
        sent_video.len(),
        opus.len(),
        sent_audio.len(),
        lost_video,
        lost_audio,
        report.describe()
    );
    // The command line lists it (still `recording`: nothing closed it) with its capture.
    let out = Command::new(env!("CARGO_BIN_EXE_classrelay"))
        .env("CLASSRELAY_DATA__DIR", dir.path())
        .args(["recordings", "list", "--json"])
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(rows[0]["id"], ids[0], "{rows}");
    assert_eq!(rows[0]["lesson_id"], id, "{rows}");
    assert_eq!(rows[0]["state"], "recording", "{rows}");
    assert_eq!(
        rows[0]["capture_path"],
        path.display().to_string(),
        "{rows}"
    );
    assert!(lost_video <= Duration::from_millis(250), "{lost_video:?}");
    assert!(lost_audio <= Duration::from_millis(250), "{lost_audio:?}");
}
