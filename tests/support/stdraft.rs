//! A processed recording of a lesson made without a media session, for the tests of the S-T
//! draft routes that need one to exist (the role matrix, the OpenAPI answers): the hub
//! teacher's Opus track as a capture, processed by the server's own processor into its
//! WebM and `manifest.json`, and a `ready` row in `recordings`. Test-only; the truth test
//! (`tests/st_draft_truth.rs`) records a real lesson instead.

use classrelay::record::format::{
    Capture, CaptureHeader, Codec, Record, SourceKind, TrackInfo, FORMAT_VERSION,
};

use super::school::App;

/// An Opus packet of 20 ms of silence (TOC 0xF8: CELT fullband 20 ms, mono, one frame).
pub const SILENT_OPUS: [u8; 3] = [0xF8, 0xFF, 0xFE];

/// Makes a `ready` recording of `lesson` whose hub teacher sends `frames` Opus packets (20 ms
/// each) from time zero; returns the recording's id.
pub async fn processed_recording(app: &App, lesson: i64, frames: &[Vec<u8>]) -> i64 {
    let pool = app.server.state().school.store.pool().clone();
    let (teacher,): (String,) = sqlx::query_as(
        "SELECT t.name FROM lessons l JOIN teachers t ON t.id = l.hub_teacher_id WHERE l.id = $1",
    )
    .bind(lesson)
    .fetch_one(&pool)
    .await
    .expect("the lesson's teacher");
    recording_of(app, lesson, &teacher, true, frames).await
}

/// [`processed_recording`] with the track published by `owner` (`hub`: whether the hub).
pub async fn recording_of(
    app: &App,
    lesson: i64,
    owner: &str,
    hub: bool,
    frames: &[Vec<u8>],
) -> i64 {
    let pool = app.server.state().school.store.pool().clone();
    let mut records = vec![Record::Track(TrackInfo {
        track: 1,
        kind: SourceKind::Audio,
        codec: Codec::Opus,
        payload_type: 111,
        clock_rate: 48_000,
        owner: owner.to_string(),
        hub,
    })];
    for (i, f) in frames.iter().enumerate() {
        let seq = i as u16;
        let ts = (i as u32).wrapping_mul(960);
        let mut p = vec![0x80, 111];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&ts.to_be_bytes());
        p.extend_from_slice(&0x5eed_0001u32.to_be_bytes());
        p.extend_from_slice(f);
        records.push(Record::Rtp {
            track: 1,
            arrival_us: i as u64 * 20_000,
            packet: p,
        });
    }
    records.push(Record::TrackEnd {
        track: 1,
        arrival_us: frames.len() as u64 * 20_000,
    });
    let capture = Capture {
        header: Some(CaptureHeader {
            version: FORMAT_VERSION,
            room: format!("lesson-{lesson}"),
            lesson_id: Some(lesson),
            started_unix_ms: 0,
        }),
        records,
    };
    let (id,): (i64,) = sqlx::query_as(
        "INSERT INTO recordings (room, lesson_id, started_at, ended_at, state, capture_path) \
         VALUES ($1, $2, 0, $3, 'stopped', '') RETURNING id",
    )
    .bind(format!("lesson-{lesson}"))
    .bind(lesson)
    .bind(frames.len() as i64 * 20)
    .fetch_one(&pool)
    .await
    .expect("a recording row");
    // Processed straight into the recordings' place (the storage trait), where every route
    // that serves a recording's files looks for them.
    let storage = classrelay::school::recording::storage(&app.server.state().school);
    let dir = storage
        .file(id, "manifest.json")
        .expect("a plain name")
        .parent()
        .expect("a recording's place")
        .to_path_buf();
    classrelay::record::process::process(&capture, &dir).expect("processed");
    sqlx::query("UPDATE recordings SET processing = 'ready', manifest_path = $1 WHERE id = $2")
        .bind(dir.join("manifest.json").display().to_string())
        .bind(id)
        .execute(&pool)
        .await
        .expect("ready");
    id
}

/// `seconds` of silence from the hub teacher.
pub async fn silent_recording(app: &App, lesson: i64, seconds: u32) -> i64 {
    let frames = vec![SILENT_OPUS.to_vec(); seconds as usize * 50];
    processed_recording(app, lesson, &frames).await
}

/// [`silent_recording`]: every recording made here is in the recordings' place already.
pub async fn stored_recording(app: &App, lesson: i64, seconds: u32) -> i64 {
    silent_recording(app, lesson, seconds).await
}

/// Waits (polling its `GET`, as the workspace does) until observation `observation`'s S-T
/// draft job has ended, `done` or `failed`, and returns that answer; panics after `deadline`.
pub async fn draft_settled(
    app: &App,
    token: &str,
    observation: i64,
    deadline: std::time::Duration,
) -> serde_json::Value {
    let path = format!("/api/observations/{observation}/st-draft");
    let until = std::time::Instant::now() + deadline;
    loop {
        let (s, v) = app
            .call(Some(token), reqwest::Method::GET, &path, None)
            .await;
        assert_eq!(s, reqwest::StatusCode::OK, "GET {path}: {v}");
        if matches!(v["job"]["state"].as_str(), Some("done" | "failed")) {
            return v;
        }
        assert!(
            std::time::Instant::now() < until,
            "the S-T draft job of observation {observation} did not end in {deadline:?}: {v}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
