//! A recording becomes playable files by itself, on real servers: a lesson the independent
//! `webrtc` client publishes to is recorded, stopped through the API and processed (the row goes
//! `ready`, `manifest.json` lists the source, and the WebM read back with an independent demuxer
//! holds exactly the frames sent); and a server killed with SIGKILL mid-lesson recovers the
//! capture at its restart into playable files, the loss before the kill measured. Must never
//! mock the server, the client or the files.

mod support;

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use matroska_demuxer::{Frame as MkvFrame, MatroskaFile};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use support::recording::{
    record_a_lesson_then_kill, recording_at_the_bell, serve, teacher_publishes, KilledMidLesson,
};
use support::school::{fixture, App, Backend};
use support::webrtc_client::{find_contiguous, SentFrame};

/// A file's frames as `matroska-demuxer` reads them: codec id → frame payloads.
fn demux(path: &Path) -> HashMap<String, Vec<Vec<u8>>> {
    let mut mkv = MatroskaFile::open(File::open(path).expect("the file")).expect("valid Matroska");
    let ids: HashMap<u64, String> = mkv
        .tracks()
        .iter()
        .map(|t| (t.track_number().get(), t.codec_id().to_string()))
        .collect();
    let mut out: HashMap<String, Vec<Vec<u8>>> = HashMap::new();
    let mut f = MkvFrame::default();
    while mkv.next_frame(&mut f).expect("frames demux") {
        out.entry(ids[&f.track].clone())
            .or_default()
            .push(f.data.clone());
    }
    out
}

fn hashes<T: AsRef<[u8]>>(frames: &[T]) -> Vec<[u8; 32]> {
    frames
        .iter()
        .map(|f| Sha256::digest(f.as_ref()).into())
        .collect()
}

/// The processed recording: its manifest and the one source's demuxed frames (VP8, Opus).
fn read_processed(manifest_path: &Path) -> (Value, Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(manifest_path).expect("manifest.json"))
            .expect("JSON");
    let sources = manifest["sources"].as_array().expect("sources");
    assert_eq!(
        sources.len(),
        1,
        "one source: the teacher's camera with its audio: {manifest}"
    );
    let s = &sources[0];
    assert_eq!(s["kind"], "teacher_camera", "{manifest}");
    assert_eq!(s["codec"], "vp8,opus", "{manifest}");
    let file = manifest_path
        .parent()
        .expect("a directory")
        .join(s["file"].as_str().expect("a file name"));
    let mut frames = demux(&file);
    let video = frames.remove("V_VP8").expect("a VP8 track");
    let audio = frames.remove("A_OPUS").expect("an Opus track");
    assert_eq!(
        s["frames"].as_u64(),
        Some((video.len() + audio.len()) as u64),
        "{manifest}"
    );
    (manifest, video, audio)
}

/// The processed frames are the first frames sent, byte for byte (payload hashes).
fn assert_prefix(what: &str, sent: &[SentFrame], got: &[Vec<u8>]) {
    let sent: Vec<&[u8]> = sent.iter().map(|f| &f.data[..]).collect();
    assert!(got.len() <= sent.len(), "{what}: more frames than sent");
    assert_eq!(
        hashes(got),
        hashes(&sent[..got.len()]),
        "{what}: the file holds the first {} frames sent, exactly",
        got.len()
    );
    assert_eq!(find_contiguous(&sent, got), Some(0), "{what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_lesson_recording_becomes_ready_with_exactly_the_frames_sent() {
    let app = App::start(Backend::Sqlite).await.expect("sqlite");
    let f = fixture(&app).await;
    let (id, room) = recording_at_the_bell(&app, &f).await;
    let state = app.server.state();
    let publisher = teacher_publishes(&app, &f, id, &room).await;
    publisher
        .wait_progress(Duration::from_secs(20), |p| p.video_frames >= 90)
        .await
        .expect("three seconds of video sent");
    let (s, v) = app
        .call(
            Some(&f.teacher_login),
            Method::POST,
            &format!("/api/lessons/{id}/recording"),
            Some(json!({"on": false})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let rec_id = v["recordings"][0]["id"].as_i64().expect("a recording");
    let sent_video = publisher.sent_video();
    let sent_audio = publisher.sent_audio();
    drop(publisher);

    // Processing runs by itself; await the row's state.
    let store = &state.school.store;
    let t0 = Instant::now();
    let manifest_path = loop {
        let (p, err, path): (Option<String>, Option<String>, Option<String>) = sqlx::query_as(
            "SELECT processing, processing_error, manifest_path FROM recordings WHERE id = $1",
        )
        .bind(rec_id)
        .fetch_one(store.pool())
        .await
        .expect("the row");
        match p.as_deref() {
            Some("ready") => break PathBuf::from(path.expect("a manifest path")),
            Some("failed") => panic!("processing failed: {err:?}"),
            _ => {}
        }
        assert!(t0.elapsed() < Duration::from_secs(60), "processing: {p:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let (manifest, video, audio) = read_processed(&manifest_path);
    assert_eq!(manifest["lesson_id"], id, "{manifest}");
    assert!(
        manifest["notes"][0]
            .as_str()
            .is_some_and(|n| n.starts_with("processed up to byte")),
        "the read report leads the notes: {manifest}"
    );
    assert!(
        video.len() >= 85,
        "{} of {} video frames",
        video.len(),
        sent_video.len()
    );
    assert!(
        audio.len() >= 100,
        "{} of {} audio frames",
        audio.len(),
        sent_audio.len()
    );
    assert_prefix("video", &sent_video, &video);
    assert_prefix("audio", &sent_audio, &audio);
    // The lesson API shows it ready.
    let (s, v) = app
        .call(
            Some(&f.teacher_login),
            Method::POST,
            &format!("/api/lessons/{id}/recording"),
            Some(json!({"on": false})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["recordings"][0]["processing"], "ready", "{v}");
    eprintln!(
        "processed: {} of {} video and {} of {} audio frames sent; {}",
        video.len(),
        sent_video.len(),
        audio.len(),
        sent_audio.len(),
        manifest["notes"][0]
    );
}

/// `classrelay recordings list --json` on `dir`.
fn list(dir: &Path) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_classrelay"))
        .env("CLASSRELAY_DATA__DIR", dir)
        .args(["recordings", "list", "--json"])
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_recovers_the_capture_into_playable_files_at_restart() {
    let KilledMidLesson {
        dir,
        lesson: _,
        killed,
        sent_video,
        sent_audio,
    } = record_a_lesson_then_kill().await;
    let rows = list(dir.path());
    assert_eq!(
        rows[0]["state"], "recording",
        "a crash left it open: {rows}"
    );
    assert_eq!(rows[0]["processing"], Value::Null, "{rows}");
    let cut = rows[0]["id"].clone();

    // The restart: the recovery pass marks it stopped and processes it, by itself. (The
    // lesson is still live, so the restarted server also opens a new recording of it,
    // listed first: `tests/capture_restart.rs` is about that one.)
    let (_child, _base) = serve(dir.path());
    let t0 = Instant::now();
    let row = loop {
        let rows = list(dir.path());
        let recovered = rows
            .as_array()
            .and_then(|a| a.iter().find(|r| r["id"] == cut))
            .cloned()
            .unwrap_or(Value::Null);
        match recovered["processing"].as_str() {
            Some("ready") => break recovered,
            Some("failed") => panic!("recovery failed: {rows}"),
            _ => {}
        }
        assert!(t0.elapsed() < Duration::from_secs(60), "recovery: {rows}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(row["state"], "stopped", "{row}");
    let (manifest, video, audio) = read_processed(Path::new(
        row["manifest_path"].as_str().expect("a manifest"),
    ));
    assert_eq!(
        manifest["complete"], false,
        "cut off by the kill: {manifest}"
    );
    assert_prefix("video", &sent_video, &video);
    assert_prefix("audio", &sent_audio, &audio);
    // The loss: from the first frame sent but not in the files to the kill.
    let lost = |sent: &[SentFrame], kept: usize| {
        sent.get(kept)
            .map(|f| killed.saturating_duration_since(f.sent_at))
            .unwrap_or_default()
    };
    let lost_video = lost(&sent_video, video.len());
    let lost_audio = lost(&sent_audio, audio.len());
    eprintln!(
        "kill -9 then recovery: the files hold {}/{} video and {}/{} audio frames sent; \
         missing the last {:?} of video and {:?} of audio before the kill; {}",
        video.len(),
        sent_video.len(),
        audio.len(),
        sent_audio.len(),
        lost_video,
        lost_audio,
        manifest["notes"][0]
    );
    assert!(lost_video <= Duration::from_millis(250), "{lost_video:?}");
    assert!(lost_audio <= Duration::from_millis(250), "{lost_audio:?}");

    // Re-running by hand gives the same files and prints the report.
    let out = Command::new(env!("CARGO_BIN_EXE_classrelay"))
        .env("CLASSRELAY_DATA__DIR", dir.path())
        .args(["recordings", "process", &row["id"].to_string()])
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("a JSON report");
    assert_eq!(
        report["manifest"]["sources"], manifest["sources"],
        "{report}"
    );
    assert!(
        report["read"]
            .as_str()
            .is_some_and(|r| r.starts_with("processed up to byte")),
        "{report}"
    );
}
