//! Crash safety of the capture: a real `classrelay serve` process records a lesson the
//! independent `webrtc` client publishes to, is killed with SIGKILL mid-lesson, and the
//! capture it leaves holds every frame sent up to 250 ms before the kill (the figure is
//! measured and printed). Must never stop the server gracefully or read the file before the
//! kill.

mod support;

use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use classrelay::record::file::{read_capture, DamageKind};
use classrelay::record::format::{Codec, Record};
use classrelay::record::storage::{DirStorage, RecordingStorage, CAPTURE_FILE};
use serde_json::{json, Value};
use support::recording::{post, serve, vp8_frames};
use support::school::{fixture, lesson, App, Backend};
use support::webrtc_client::{
    audio_fixture, find_contiguous, video_fixture, whip_publish_with, PublishOptions,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_leaves_every_frame_sent_up_to_250_ms_before_the_kill() {
    // The school and a lesson made in-process, then moved to now on the real clock.
    let app = App::start_in_process(Backend::Sqlite)
        .await
        .expect("sqlite");
    let f = fixture(&app).await;
    let id = lesson(&app, &f, "delivery", "08:00", "08:40").await;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as i64;
    sqlx::query("UPDATE lessons SET starts_at = $1, ends_at = $2 WHERE id = $3")
        .bind(now - 1_000)
        .bind(now + 40 * 60_000)
        .bind(id)
        .execute(app.server.state().school.store.pool())
        .await
        .expect("lesson moved to now");
    let App { dir, server, .. } = app;
    server.shutdown().await;

    let (mut child, base) = serve(dir.path());

    let http = reqwest::Client::new();
    let login = post(
        &http,
        &format!("{base}/api/login"),
        None,
        json!({"username": "wang", "password": "password-123"}),
    )
    .await;
    let teacher = login["token"].as_str().expect("a session").to_string();
    // The scheduler's first pass makes the lesson live and starts its recording.
    let t0 = Instant::now();
    loop {
        let v: Value = http
            .get(format!("{base}/api/lessons/{id}/live"))
            .bearer_auth(&teacher)
            .send()
            .await
            .expect("answers")
            .json()
            .await
            .unwrap_or(Value::Null);
        if v["recording"] == true {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(20), "recording: {v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let j = post(
        &http,
        &format!("{base}/api/lessons/{id}/join"),
        Some(&teacher),
        json!(null),
    )
    .await;
    let publisher = whip_publish_with(
        &base,
        &format!("lesson-{id}"),
        j["token"].as_str().expect("a media token"),
        &video_fixture(),
        &audio_fixture(),
        PublishOptions::default(),
    )
    .await
    .expect("the teacher publishes");
    publisher
        .wait_progress(Duration::from_secs(20), |p| p.video_frames >= 120)
        .await
        .expect("four seconds of video sent");
    child.0.kill().expect("SIGKILL");
    let killed = Instant::now();
    child.0.wait().expect("reaped");
    let sent_video = publisher.sent_video();
    let sent_audio = publisher.sent_audio();
    drop(publisher);

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
