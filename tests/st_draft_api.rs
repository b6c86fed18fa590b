//! The automatic S-T draft's API on both database backends (a SQLite file and a real
//! PostgreSQL server): before a draft, with no or an unprocessed recording, a bad or foreign
//! `recording_id`, an observation without S-T (refused at once, problem+json with status and
//! kind); with a recording of someone else's audio or with its files gone (the job fails,
//! and `GET` shows `failed` with the problem kind and reason); a draft made by the background
//! job (`202` with the job, then `done`) from a processed recording the server's own processor
//! wrote, compared with the observer's codes, made again (replaced, never duplicated), and
//! refused after submission while still readable. On SQLite: at most one job per recording
//! runs at a time, and a job a stopped server left running runs again after a restart.
//! Nothing here is mocked.
//!
//! Run: `cargo test --test st_draft_api`.

mod support;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use support::school::{fixture, lesson, App, Backend};
use support::stdraft::{draft_settled, recording_of, silent_recording, SILENT_OPUS};

/// How long a draft job of a few seconds of audio may take (a debug build, shared cores).
const JOB: std::time::Duration = std::time::Duration::from_secs(60);

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

/// A failed job: its state, problem kind and a reason; no draft made.
fn failed(v: &Value, k: &str) {
    assert_eq!(v["job"]["state"], "failed", "{v}");
    assert_eq!(v["job"]["error_kind"], k, "{v}");
    assert!(
        v["job"]["error"].as_str().is_some_and(|d| !d.is_empty()),
        "a reason: {v}"
    );
    assert!(v["job"]["finished_at"].is_number(), "{v}");
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
    assert!(v["job"].is_null(), "no job asked for yet: {v}");
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
    // It is asked for (a job), and the job fails with the reason.
    let class_only = recording_of(&app, l, "c:12", false, &vec![SILENT_OPUS.to_vec(); 300]).await;
    let v = ok(
        &app,
        obs,
        Method::POST,
        &format!("{draft}?recording_id={class_only}"),
        None,
        StatusCode::ACCEPTED,
    )
    .await;
    assert_eq!(v["job"]["recording_id"], class_only, "{v}");
    assert_eq!(v["made"], false, "{v}");
    let v = draft_settled(&app, obs, o, JOB).await;
    failed(&v, "no-teacher-audio");
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
    ok(
        &app,
        obs,
        Method::POST,
        &format!("{draft}?recording_id={gone}"),
        None,
        StatusCode::ACCEPTED,
    )
    .await;
    let v = draft_settled(&app, obs, o, JOB).await;
    failed(&v, "recording-unreadable");
    assert_eq!(v["job"]["recording_id"], gone, "{v}");

    // The newest processed recording: 22 s of the teacher's silence at 5 s → 4 samples, all S.
    let rec = silent_recording(&app, l, 22).await;
    let v = ok(&app, obs, Method::POST, &draft, None, StatusCode::ACCEPTED).await;
    assert!(
        matches!(
            v["job"]["state"].as_str(),
            Some("pending" | "running" | "done")
        ),
        "a new job, not the failed one: {v}"
    );
    assert_eq!(v["job"]["recording_id"], rec, "{v}");
    let v = draft_settled(&app, obs, o, JOB).await;
    assert_eq!(v["job"]["state"], "done", "{v}");
    assert_eq!(v["job"]["progress"], 1.0, "{v}");
    assert!(
        v["job"]["error"].is_null() && v["job"]["error_kind"].is_null(),
        "{v}"
    );
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
        StatusCode::ACCEPTED,
    )
    .await;
    // The draft made before stays readable while the new job runs.
    assert_eq!(v["codes"], "SSSS", "{v}");
    let v = draft_settled(&app, obs, o, JOB).await;
    assert_eq!(v["job"]["state"], "done", "{v}");
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

/// One job per recording at a time, and a restart: a job a stopped server left `running` (a
/// row as the server writes it when it claims one) holds its recording, so a job asked for
/// later on the same recording waits while one on another recording, asked for after both,
/// is made; a new server on the same database runs the interrupted job again, then the one
/// that waited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_job_per_recording_and_a_restart_runs_the_unfinished_one() {
    let app = App::start_in_process(Backend::Sqlite)
        .await
        .expect("sqlite always works");
    let f = fixture(&app).await;
    let l = lesson(&app, &f, "delivery", "08:00", "08:40").await;
    let obs = f.observer_login.clone();
    let mut ids = Vec::new();
    for _ in 0..3 {
        let v = ok(
            &app,
            &obs,
            Method::POST,
            "/api/observations",
            Some(json!({"lesson_id": l, "methods": ["st"], "interval_s": 5})),
            StatusCode::CREATED,
        )
        .await;
        ids.push(v["id"].as_i64().unwrap());
    }
    let (o1, o2, o3) = (ids[0], ids[1], ids[2]);
    let shared = silent_recording(&app, l, 16).await;
    let other = silent_recording(&app, l, 11).await;
    let pool = app.server.state().school.store.pool().clone();
    // The server that stopped had claimed o1's job on `shared`.
    sqlx::query(
        "INSERT INTO st_draft_jobs (observation_id, recording_id, state, requested_at, \
         started_at) VALUES ($1, $2, 'running', 1, 2)",
    )
    .bind(o1)
    .bind(shared)
    .execute(&pool)
    .await
    .unwrap();
    let v = ok(
        &app,
        &obs,
        Method::POST,
        &format!("/api/observations/{o2}/st-draft?recording_id={shared}"),
        None,
        StatusCode::ACCEPTED,
    )
    .await;
    assert_eq!(v["job"]["state"], "pending", "{v}");
    ok(
        &app,
        &obs,
        Method::POST,
        &format!("/api/observations/{o3}/st-draft?recording_id={other}"),
        None,
        StatusCode::ACCEPTED,
    )
    .await;
    // o3's job, asked for last, is made; o2's (older, first in line) still waits for its
    // recording.
    let v = draft_settled(&app, &obs, o3, JOB).await;
    assert_eq!(
        (v["job"]["state"].as_str(), v["codes"].as_str()),
        (Some("done"), Some("SS")),
        "{v}"
    );
    let (_, v) = app
        .call(
            Some(obs.as_str()),
            Method::GET,
            &format!("/api/observations/{o2}/st-draft"),
            None,
        )
        .await;
    assert_eq!(
        v["job"]["state"], "pending",
        "one job per recording at a time: {v}"
    );
    let (_, v) = app
        .call(
            Some(obs.as_str()),
            Method::GET,
            &format!("/api/observations/{o1}/st-draft"),
            None,
        )
        .await;
    assert_eq!(
        v["job"]["state"], "running",
        "nobody runs another server's claimed job: {v}"
    );
    // Asking again while it runs changes nothing (no second job).
    let again = ok(
        &app,
        &obs,
        Method::POST,
        &format!("/api/observations/{o1}/st-draft?recording_id={other}"),
        None,
        StatusCode::ACCEPTED,
    )
    .await;
    assert_eq!(
        (
            again["job"]["state"].as_str(),
            again["job"]["recording_id"].as_i64()
        ),
        (Some("running"), Some(shared)),
        "{again}"
    );

    // Restart: the same data directory and database, a new server.
    let App {
        dir,
        server,
        oneshot,
        http,
        clock,
        admin,
        ..
    } = app;
    drop((oneshot, server, pool));
    let cfg = classrelay::Config::for_tests(dir.path());
    let server = classrelay::Server::in_process(cfg, clock.clone())
        .await
        .expect("the same database opens again");
    let app = App {
        base: server.base_url(),
        oneshot: Some(server.app()),
        dir,
        server,
        http,
        clock,
        admin,
    };
    for o in [o1, o2] {
        let v = draft_settled(&app, &obs, o, JOB).await;
        assert_eq!(v["job"]["state"], "done", "observation {o}: {v}");
        assert_eq!(v["recording_id"], shared, "{v}");
        assert_eq!(v["codes"], "SSS", "16 s at 5 s: {v}");
    }
}

/// A measurement, not a test (ignored; speed belongs in benchmarks): the S-T draft of a
/// 45-minute lesson whose hub teacher's track is the Opus fixture looped (135 000 packets),
/// processed by the server's own processor; prints how long the background job took from
/// the request to `done` and how long listening alone takes. Run:
/// `cargo test --release --test st_draft_api -- --ignored --nocapture forty_five`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn forty_five_minute_teacher_track_measurement() {
    let minutes: usize = std::env::var("BENCH_MINUTES")
        .ok()
        .and_then(|m| m.parse().ok())
        .unwrap_or(45);
    let app = App::start_in_process(Backend::Sqlite)
        .await
        .expect("sqlite always works");
    let f = fixture(&app).await;
    let l = lesson(&app, &f, "delivery", "08:00", "08:45").await;
    let opus = support::recorded::opus_frames();
    let frames: Vec<Vec<u8>> = (0..minutes * 60 * 50)
        .map(|i| opus[i % opus.len()].clone())
        .collect();
    let rec = support::stdraft::processed_recording(&app, l, &frames).await;
    let obs = &f.observer_login;
    let o = ok(
        &app,
        obs,
        Method::POST,
        "/api/observations",
        Some(json!({"lesson_id": l, "methods": ["st"]})),
        StatusCode::CREATED,
    )
    .await["id"]
        .as_i64()
        .unwrap();
    let asked = std::time::Instant::now();
    ok(
        &app,
        obs,
        Method::POST,
        &format!("/api/observations/{o}/st-draft?recording_id={rec}"),
        None,
        StatusCode::ACCEPTED,
    )
    .await;
    let v = draft_settled(&app, obs, o, std::time::Duration::from_secs(1800)).await;
    let job_s = asked.elapsed().as_secs_f64();
    assert_eq!(v["job"]["state"], "done", "{v}");
    // One sample per 30 s (the last instant may fall a frame past the track's end).
    let n = v["samples"].as_array().unwrap().len();
    assert!(
        n + 1 >= minutes * 60 / 30 && n <= minutes * 60 / 30,
        "{n} samples"
    );
    let (manifest,): (String,) =
        sqlx::query_as("SELECT manifest_path FROM recordings WHERE id = $1")
            .bind(rec)
            .fetch_one(app.server.state().school.store.pool())
            .await
            .unwrap();
    let teacher = v["teacher"].as_str().unwrap().to_string();
    let listen = std::time::Instant::now();
    let samples = tokio::task::spawn_blocking(move || {
        classrelay::observe::stdraft_job::make(
            std::path::Path::new(&manifest),
            &teacher,
            30,
            classrelay::observe::stdraft::DraftRule::default(),
            |_| {},
        )
    })
    .await
    .unwrap()
    .expect("a draft");
    let listen_s = listen.elapsed().as_secs_f64();
    assert_eq!(samples.len(), n);
    println!(
        "S-T draft of a {minutes}-minute teacher track: job {job_s:.2} s from the request to done \
         (polled every 50 ms); decoding + VAD + draft alone {listen_s:.2} s ({:.0}× real time)",
        (minutes * 60) as f64 / listen_s
    );
}
