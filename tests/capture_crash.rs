//! Crash safety of the capture: a real `classrelay serve` process records a lesson the
//! independent `webrtc` client publishes to, is killed with SIGKILL mid-lesson, and the
//! capture it leaves holds every frame sent up to 250 ms before the kill (the figure is
//! measured and printed). Must never stop the server gracefully or read the file before the
//! kill.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use classrelay::record::file::{read_capture, DamageKind};
use classrelay::record::format::{Codec, Record};
use classrelay::record::storage::{DirStorage, RecordingStorage, CAPTURE_FILE};
use serde_json::{json, Value};
use support::school::{fixture, lesson, App, Backend};
use support::webrtc_client::{
    audio_fixture, find_contiguous, video_fixture, whip_publish_with, PublishOptions,
};

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The VP8 payload descriptor's length (RFC 7741 4.2).
fn vp8_descriptor_len(p: &[u8]) -> Option<usize> {
    let b0 = *p.first()?;
    let mut i = 1;
    if b0 & 0x80 != 0 {
        let x = *p.get(i)?;
        i += 1;
        if x & 0x80 != 0 {
            i += if *p.get(i)? & 0x80 != 0 { 2 } else { 1 };
        }
        if x & 0x40 != 0 {
            i += 1;
        }
        if x & 0x30 != 0 {
            i += 1;
        }
    }
    (i <= p.len()).then_some(i)
}

/// Whole VP8 frames from captured RTP packets (a frame cut by the kill is left out).
fn vp8_frames(packets: &[&[u8]]) -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    let mut cur: Option<Vec<u8>> = None;
    for p in packets {
        let payload = &p[12..];
        let Some(d) = vp8_descriptor_len(payload) else {
            continue;
        };
        if payload[0] & 0x10 != 0 {
            cur = Some(Vec::new());
        }
        if let Some(c) = cur.as_mut() {
            c.extend_from_slice(&payload[d..]);
        }
        if p[1] & 0x80 != 0 {
            if let Some(c) = cur.take() {
                frames.push(c);
            }
        }
    }
    frames
}

async fn post(http: &reqwest::Client, url: &str, token: Option<&str>, body: Value) -> Value {
    let mut r = http.post(url).json(&body);
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    let resp = r.send().await.expect("the server answers");
    let status = resp.status();
    let v: Value = resp.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "{url}: {status} {v}");
    v
}

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

    let mut cmd = Command::new(env!("CARGO_BIN_EXE_classrelay"));
    for (k, _) in std::env::vars() {
        if k.starts_with("CLASSRELAY_") {
            cmd.env_remove(k);
        }
    }
    let mut child = KillOnDrop(
        cmd.current_dir(dir.path())
            .env("CLASSRELAY_DATA__DIR", dir.path())
            .env(
                "CLASSRELAY_AUTH__SECRET",
                "test-secret-test-secret-test-secret",
            )
            .env("CLASSRELAY_HTTP__LISTEN", "127.0.0.1:0")
            .env("CLASSRELAY_MEDIA__BIND_IP", "127.0.0.1")
            .env("CLASSRELAY_MEDIA__UDP_PORT", "0")
            .env("CLASSRELAY_MEDIA__WORKERS", "1")
            .arg("serve")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the server starts"),
    );
    let stdout = child.0.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let base = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the server prints where it listens");
        if let Some(rest) = line.strip_prefix("classrelay listening on ") {
            break rest.split_whitespace().next().expect("a URL").to_string();
        }
    };

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
