//! The automatic S-T draft's API on both database backends (a SQLite file and a real
//! PostgreSQL server): before a draft, with no or an unprocessed recording, with a recording
//! of someone else's audio or with its files gone, a bad or foreign `recording_id`, an
//! observation without S-T, a draft made (from a processed recording the server's own
//! processor wrote), compared with the observer's codes, made again (replaced, never
//! duplicated), and refused after submission while still readable. Each refusal is a
//! problem+json with its status and kind. Nothing here is mocked.
//!
//! Run: `cargo test --test st_draft_api`.

mod support;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use support::school::{fixture, lesson, App, Backend};
use support::stdraft::{recording_of, silent_recording, SILENT_OPUS};

fn kind(v: &Value) -> &str {
    v["type"]
        .as_str()
        .unwrap_or("")
        .trim_start_matches("urn:classrelay:problem:")
}

async fn ok(
    app: &App,
    token: &str,
    m: Method,
    path: &str,
    body: Option<Value>,
    want: StatusCode,
) -> Value {
    let (s, v) = app.call(Some(token), m.clone(), path, body).await;
    assert_eq!(s, want, "{m} {path}: {v}");
    v
}

async fn refused(app: &App, token: &str, m: Method, path: &str, want: StatusCode, k: &str) {
    let (s, v) = app.call(Some(token), m.clone(), path, None).await;
    assert_eq!((s, kind(&v)), (want, k), "{m} {path}: {v}");
    assert!(
        v["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "a reason: {v}"
    );
}

async fn lifecycle(app: App) {
    let f = fixture(&app).await;
    let l = lesson(&app, &f, "delivery", "08:00", "08:40").await;
    let obs = &f.observer_login;
    let o = ok(
        &app,
        obs,
        Method::POST,
        "/api/observations",
        Some(json!({"lesson_id": l, "methods": ["st"], "interval_s": 5})),
        StatusCode::CREATED,
    )
    .await["id"]
        .as_i64()
        .unwrap();
    let draft = format!("/api/observations/{o}/st-draft");

    // Before any draft: an empty answer of the same shape.
    let v = ok(&app, obs, Method::GET, &draft, None, StatusCode::OK).await;
    assert_eq!(v["made"], false, "{v}");
    assert_eq!(v["codes"], "", "{v}");
    assert_eq!(v["comparison"]["compared"], 0, "{v}");
    assert!(v["comparison"]["agreement"].is_null(), "{v}");

    // No recording at all.
    refused(
        &app,
        obs,
        Method::POST,
        &draft,
        StatusCode::CONFLICT,
        "no-recording",
    )
    .await;
    // A recording still being made (not processed).
    let pool = app.server.state().school.store.pool().clone();
    let (raw,): (i64,) = sqlx::query_as(
        "INSERT INTO recordings (room, lesson_id, started_at, state, capture_path) \
         VALUES ($1, $2, 0, 'recording', '') RETURNING id",
    )
    .bind(format!("lesson-{l}"))
    .bind(l)
    .fetch_one(&pool)
    .await
    .unwrap();
    refused(
        &app,
        obs,
        Method::POST,
        &format!("{draft}?recording_id={raw}"),
        StatusCode::CONFLICT,
        "no-recording",
    )
    .await;
    refused(
        &app,
        obs,
        Method::POST,
        &draft,
        StatusCode::CONFLICT,
        "no-recording",
    )
    .await;
    // A bad id, and a recording of another lesson.
    refused(
        &app,
        obs,
        Method::POST,
        &format!("{draft}?recording_id=abc"),
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-field",
    )
    .await;
    let other = lesson(&app, &f, "delivery", "09:00", "09:40").await;
    let foreign = silent_recording(&app, other, 6).await;
    refused(
        &app,
        obs,
        Method::POST,
        &format!("{draft}?recording_id={foreign}"),
        StatusCode::NOT_FOUND,
        "not-found",
    )
    .await;
    // A recording with only a classroom's audio: nothing of the teacher to listen to.
    let class_only = recording_of(&app, l, "c:12", false, &vec![SILENT_OPUS.to_vec(); 300]).await;
    refused(
        &app,
        obs,
        Method::POST,
        &format!("{draft}?recording_id={class_only}"),
        StatusCode::CONFLICT,
        "no-teacher-audio",
    )
    .await;
    // A recording whose files are gone.
    let gone = silent_recording(&app, l, 6).await;
    let (manifest,): (String,) =
        sqlx::query_as("SELECT manifest_path FROM recordings WHERE id = $1")
            .bind(gone)
            .fetch_one(&pool)
            .await
            .unwrap();
    let dir = std::path::Path::new(&manifest)
        .parent()
        .unwrap()
        .to_path_buf();
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "webm") {
            std::fs::remove_file(p).unwrap();
        }
    }
    refused(
        &app,
        obs,
        Method::POST,
        &format!("{draft}?recording_id={gone}"),
        StatusCode::CONFLICT,
        "recording-unreadable",
    )
    .await;

    // The newest processed recording: 22 s of the teacher's silence at 5 s → 4 samples, all S.
    let rec = silent_recording(&app, l, 22).await;
    let v = ok(&app, obs, Method::POST, &draft, None, StatusCode::CREATED).await;
    assert_eq!(v["made"], true, "{v}");
    assert_eq!(v["recording_id"], rec, "{v}");
    assert_eq!(v["codes"], "SSSS", "{v}");
    let at: Vec<u64> = v["samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["at_ms"].as_u64().unwrap())
        .collect();
    assert_eq!(at, vec![5_000, 10_000, 15_000, 20_000]);
    assert_eq!(v["st"]["n"], 4, "{v}");
    assert_eq!(v["st"]["type"], "practice", "all S: Rt = 0 ≤ 0.3: {v}");
    assert_eq!(v["rule"]["half_window_ms"], 1000, "{v}");

    // The observer's codes are untouched by the draft, and compared with it.
    let got = ok(
        &app,
        obs,
        Method::GET,
        &format!("/api/observations/{o}"),
        None,
        StatusCode::OK,
    )
    .await;
    assert_eq!(got["st"]["n"], 0, "{got}");
    ok(
        &app,
        obs,
        Method::POST,
        &format!("/api/observations/{o}/codes"),
        Some(json!({"method": "st", "codes": "TSS"})),
        StatusCode::OK,
    )
    .await;
    let v = ok(&app, obs, Method::GET, &draft, None, StatusCode::OK).await;
    // Draft SSSS against TSS: 3 compared, 2 agree, sample 0 differs, 1 sample draft-only.
    assert_eq!(
        v["comparison"],
        json!({"compared": 3, "agree": 2, "agreement": 2.0 / 3.0, "disagree": [0],
               "draft_only": 1, "observer_only": 0}),
        "{v}"
    );
    assert_eq!(v["observer_codes"], "TSS", "{v}");

    // Made again from an explicit recording: replaced, never a second row.
    let v = ok(
        &app,
        obs,
        Method::POST,
        &format!("{draft}?recording_id={rec}"),
        None,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(v["codes"], "SSSS", "{v}");
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM st_drafts WHERE observation_id = $1")
        .bind(o)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n, 1);

    // An observation without S-T has no draft.
    let r = ok(
        &app,
        obs,
        Method::POST,
        "/api/observations",
        Some(json!({"lesson_id": l, "methods": ["fias"]})),
        StatusCode::CREATED,
    )
    .await["id"]
        .as_i64()
        .unwrap();
    for m in [Method::GET, Method::POST] {
        refused(
            &app,
            obs,
            m,
            &format!("/api/observations/{r}/st-draft"),
            StatusCode::NOT_FOUND,
            "not-found",
        )
        .await;
    }

    // Submitted: the draft is still read, never made again.
    ok(
        &app,
        obs,
        Method::POST,
        &format!("/api/observations/{o}/submit"),
        None,
        StatusCode::OK,
    )
    .await;
    refused(
        &app,
        obs,
        Method::POST,
        &draft,
        StatusCode::CONFLICT,
        "observation-submitted",
    )
    .await;
    let v = ok(
        &app,
        &f.teacher_login,
        Method::GET,
        &draft,
        None,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        v["codes"], "SSSS",
        "the lesson's teacher reads it once submitted: {v}"
    );
    // Not an id at all.
    refused(
        &app,
        obs,
        Method::GET,
        "/api/observations/x/st-draft",
        StatusCode::NOT_FOUND,
        "not-found",
    )
    .await;
}

mod lifecycle {
    use super::*;
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        let app = App::start_in_process(Backend::Sqlite)
            .await
            .expect("sqlite always works");
        super::lifecycle(app).await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        if let Some(app) = App::start_in_process(Backend::Postgres).await {
            super::lifecycle(app).await;
        }
    }
}
