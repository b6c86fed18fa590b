//! Exports through the API and the command line (issue 20 item 4). Without `--features gst`:
//! both say clearly that exports need such a build. With it: a job queued over the API runs in
//! the background on a real server, its progress and outcome are readable, a corrupt input
//! fails with its reason, and a job a restart left running is queued again and finished. In
//! every build: job changes are pushed on the recording's event stream (`export` events), read
//! over HTTP while the job runs. Test-only; writes only in temp dirs.
//!
//! Run: `cargo test --test exports_api` and `cargo test --features gst --test exports_api`.

mod support;

use reqwest::{Method, StatusCode};
use serde_json::json;
use support::school::{fixture, lesson, App, Backend};

#[cfg(not(feature = "gst"))]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_gst_the_api_and_the_cli_say_exports_need_a_gst_build() {
    let app = App::start_in_process(Backend::Sqlite).await.unwrap();
    let f = fixture(&app).await;
    let l = lesson(&app, &f, "delivery", "08:00", "08:40").await;
    let (s, v) = app
        .call(
            Some(&app.admin),
            Method::POST,
            &format!("/api/lessons/{l}/exports"),
            Some(json!({"preset": "showcase"})),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_IMPLEMENTED, "{v}");
    assert_eq!(
        v["type"]
            .as_str()
            .map(|t| t.ends_with("exports-unavailable")),
        Some(true),
        "{v}"
    );
    assert!(
        v["detail"].as_str().unwrap().contains("--features gst"),
        "{v}"
    );
    // A typo is named before that.
    let (s, v) = app
        .call(
            Some(&app.admin),
            Method::POST,
            &format!("/api/lessons/{l}/exports"),
            Some(json!({"preset": "cinema"})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let (s, v) = app
        .call(
            Some(&app.admin),
            Method::GET,
            &format!("/api/lessons/{l}/exports"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["available"], json!(false), "{v}");
    assert_eq!(v["jobs"], json!([]), "{v}");

    // The command line says the same, and fails.
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_classrelay"))
        .current_dir(dir.path())
        .args(["recordings", "export", "1", "--preset", "showcase"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--features gst"), "{err}");
}

#[cfg(feature = "gst")]
async fn ready_recording(app: &App, lesson: i64, dir: &std::path::Path) -> i64 {
    let store = &app.server.state().school.store;
    let (id,): (i64,) = sqlx::query_as(
        "INSERT INTO recordings (room, lesson_id, started_at, ended_at, state, capture_path, \
         processing, manifest_path) VALUES ($1, $2, $3, $4, 'stopped', $5, 'ready', $6) RETURNING id",
    )
    .bind(format!("lesson-{lesson}"))
    .bind(lesson)
    .bind(1_i64)
    .bind(2_i64)
    .bind(dir.join("capture.crcap").display().to_string())
    .bind(dir.join("manifest.json").display().to_string())
    .fetch_one(store.pool())
    .await
    .unwrap();
    id
}

/// Reads the lesson's jobs until job `id` is done or failed; returns it and every progress seen.
#[cfg(feature = "gst")]
async fn until_finished(app: &App, lesson: i64, id: i64) -> (serde_json::Value, Vec<f64>) {
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    loop {
        let (s, v) = app
            .call(
                Some(&app.admin),
                Method::GET,
                &format!("/api/lessons/{lesson}/exports"),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let job = v["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|j| j["id"] == json!(id))
            .cloned()
            .expect("the job is listed");
        seen.push(job["progress"].as_f64().unwrap());
        if matches!(job["state"].as_str(), Some("done" | "failed")) {
            return (job, seen);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "job {id} never finished: {job}"
        );
        // The runner writes progress at most twice a second.
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

#[cfg(feature = "gst")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_job_runs_in_the_background_reports_progress_and_failures_and_survives_a_restart()
{
    use support::exports::{manifest, source};
    if std::process::Command::new("gst-launch-1.0")
        .arg("--version")
        .output()
        .is_err()
    {
        support::skip::because("gst-launch-1.0 is not installed (Debian: gstreamer1.0-tools)");
        return;
    }
    let app = App::start(Backend::Sqlite).await.unwrap();
    let f = fixture(&app).await;
    let l = lesson(&app, &f, "delivery", "08:00", "08:40").await;

    let good = tempfile::tempdir().unwrap();
    source(good.path(), "teacher.webm", "pattern=ball", 4, true);
    manifest(
        good.path(),
        &[("teacher.webm", "teacher_camera", "vp8,opus", 4_000)],
    );
    let rec = ready_recording(&app, l, good.path()).await;

    let (s, job) = app
        .call(
            Some(&app.admin),
            Method::POST,
            &format!("/api/lessons/{l}/exports"),
            Some(json!({"preset": "showcase", "volume": "上册"})),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{job}");
    assert_eq!(job["recording"], json!(rec));
    assert_eq!(job["preset"], json!("showcase"));
    // The title card comes from the lesson, its hub school and teacher.
    let t = &job["title"];
    assert_eq!(t["course"], json!("Unit 3 Colours"), "{job}");
    assert_eq!(t["grade"], json!("三年级"));
    assert_eq!(t["volume"], json!("上册"));
    assert_eq!(t["edition"], json!("人教版PEP"));
    assert!(
        !t["school"].as_str().unwrap().is_empty() && !t["teacher"].as_str().unwrap().is_empty(),
        "{job}"
    );
    let id = job["id"].as_i64().unwrap();
    let (done, seen) = until_finished(&app, l, id).await;
    println!("progress seen: {seen:?}");
    assert_eq!(done["state"], json!("done"), "{done}");
    assert_eq!(done["progress"], json!(1.0));
    assert!(
        seen.windows(2).all(|w| w[0] <= w[1]),
        "progress never goes back: {seen:?}"
    );
    let out = &done["outcome"];
    println!("export outcome: {out}");
    assert!(
        good.path().join(out["file"].as_str().unwrap()).is_file(),
        "{done}"
    );
    assert!(
        good.path()
            .join(out["thumbnail"].as_str().unwrap())
            .is_file(),
        "{done}"
    );
    assert_eq!(
        (out["width"].as_u64(), out["height"].as_u64()),
        (Some(1280), Some(720))
    );

    // A corrupt input: the job fails and says which file and why.
    let bad = tempfile::tempdir().unwrap();
    let path = source(bad.path(), "teacher.webm", "pattern=ball", 2, true);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.truncate(300);
    bytes.extend((0..20_000u32).map(|i| (i * 7919 % 251) as u8));
    std::fs::write(&path, bytes).unwrap();
    manifest(
        bad.path(),
        &[("teacher.webm", "teacher_camera", "vp8,opus", 2_000)],
    );
    let bad_rec = ready_recording(&app, l, bad.path()).await;
    let (s, job) = app
        .call(
            Some(&app.admin),
            Method::POST,
            &format!("/api/lessons/{l}/exports"),
            Some(json!({"preset": "composite", "recording": bad_rec})),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{job}");
    let (failed, _) = until_finished(&app, l, job["id"].as_i64().unwrap()).await;
    assert_eq!(failed["state"], json!("failed"), "{failed}");
    let why = failed["error"].as_str().unwrap();
    println!("failed export: {why}");
    assert!(
        why.contains("teacher.webm"),
        "the reason names the file: {why}"
    );

    // A job a stopped server left running: the start-up pass queues it again and it is run.
    let store = &app.server.state().school.store;
    let (left,): (i64,) = sqlx::query_as(
        "INSERT INTO export_jobs (recording_id, preset, state, progress, title, created_at, started_at) \
         VALUES ($1, 'showcase', 'running', 400, '{}', 1, 1) RETURNING id",
    )
    .bind(rec)
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert_eq!(
        classrelay::school::exports::requeue_interrupted(store)
            .await
            .unwrap(),
        1
    );
    let (again, _) = until_finished(&app, l, left).await;
    assert_eq!(again["state"], json!("done"), "{again}");
}

/// Export jobs are pushed, not polled (issue 20, recfin): the recording's event stream (read
/// over loopback HTTP) names the job still running when it opens, then each change the runner's
/// own bookkeeping makes (progress, then the failure with its reason), and ends once the
/// recording is processed and no job is open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_job_changes_are_pushed_on_the_recording_event_stream() {
    use classrelay::school::exports;
    use support::recorded::{insert, three_sources};
    use support::school::at;
    use support::sse::Sse;

    let app = App::start(Backend::Sqlite).await.unwrap();
    let f = fixture(&app).await;
    let l = lesson(&app, &f, "delivery", "08:00", "08:40").await;
    let rid = insert(
        &app.server,
        Some(l),
        at("08:00"),
        at("08:40"),
        Some(&three_sources(1)),
    )
    .await;
    let school = &app.server.state().school;
    // A job as the runner leaves it once claimed.
    let (job,): (i64,) = sqlx::query_as(
        "INSERT INTO export_jobs (recording_id, preset, state, progress, created_at, started_at) \
         VALUES ($1, 'showcase', 'running', 0, 0, 0) RETURNING id",
    )
    .bind(rid)
    .fetch_one(school.store.pool())
    .await
    .unwrap();
    let path = format!("/api/recordings/{rid}/events");
    let mut ev = Sse::get(&app, &f.teacher_login, &path).await;
    let (kind, v) = ev.next().await;
    assert_eq!(
        (kind.as_str(), &v["processing"]),
        ("processing", &json!("ready")),
        "{v}"
    );
    let (kind, v) = ev.next().await;
    assert_eq!(kind, "export", "{v}");
    assert_eq!(
        (&v["id"], &v["recording"], &v["state"], &v["progress"]),
        (&json!(job), &json!(rid), &json!("running"), &json!(0.0)),
        "{v}"
    );
    exports::set_progress(school, job, 400).await.unwrap();
    let (kind, v) = ev.next().await;
    assert_eq!(kind, "export", "{v}");
    assert_eq!(
        (&v["state"], &v["progress"]),
        (&json!("running"), &json!(0.4)),
        "{v}"
    );
    exports::finish(school, job, Err("encoder stopped"))
        .await
        .unwrap();
    let (kind, v) = ev.next().await;
    assert_eq!(kind, "export", "{v}");
    assert_eq!(
        (&v["state"], &v["error"]),
        (&json!("failed"), &json!("encoder stopped")),
        "{v}"
    );
    assert!(
        ev.next_or_end().await.is_none(),
        "the stream ends once nothing is open"
    );
    // A job of another recording never shows on this one's stream.
    let (other,): (i64,) = sqlx::query_as(
        "INSERT INTO export_jobs (recording_id, preset, state, progress, created_at) \
         VALUES ($1, 'premium', 'queued', 0, 0) RETURNING id",
    )
    .bind(rid)
    .fetch_one(school.store.pool())
    .await
    .unwrap();
    let rid2 = insert(
        &app.server,
        Some(l),
        at("09:00"),
        at("09:40"),
        Some(&three_sources(1)),
    )
    .await;
    let (job2,): (i64,) = sqlx::query_as(
        "INSERT INTO export_jobs (recording_id, preset, state, progress, created_at) \
         VALUES ($1, 'showcase', 'queued', 0, 0) RETURNING id",
    )
    .bind(rid2)
    .fetch_one(school.store.pool())
    .await
    .unwrap();
    let mut ev2 = Sse::get(
        &app,
        &f.teacher_login,
        &format!("/api/recordings/{rid2}/events"),
    )
    .await;
    assert_eq!(ev2.next().await.0, "processing");
    assert_eq!(ev2.next().await.1["id"], json!(job2));
    exports::set_progress(school, other, 0).await.unwrap();
    exports::finish(school, other, Err("not this one"))
        .await
        .unwrap();
    exports::finish(school, job2, Err("this one"))
        .await
        .unwrap();
    let v = ev2.next().await.1;
    assert_eq!(
        (&v["id"], &v["error"]),
        (&json!(job2), &json!("this one")),
        "{v}"
    );
    assert!(ev2.next_or_end().await.is_none());
}

/// With GStreamer: a real export queued over the API is followed on the recording's event
/// stream from queued or running, through rising progress, to done with its outcome.
#[cfg(feature = "gst")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_export_is_followed_on_the_recording_event_stream() {
    use support::exports::{manifest, source};
    use support::sse::Sse;
    if std::process::Command::new("gst-launch-1.0")
        .arg("--version")
        .output()
        .is_err()
    {
        support::skip::because("gst-launch-1.0 is not installed (Debian: gstreamer1.0-tools)");
        return;
    }
    let app = App::start(Backend::Sqlite).await.unwrap();
    let f = fixture(&app).await;
    let l = lesson(&app, &f, "delivery", "08:00", "08:40").await;
    let good = tempfile::tempdir().unwrap();
    source(good.path(), "teacher.webm", "pattern=ball", 4, true);
    manifest(
        good.path(),
        &[("teacher.webm", "teacher_camera", "vp8,opus", 4_000)],
    );
    let rec = ready_recording(&app, l, good.path()).await;
    let (s, job) = app
        .call(
            Some(&app.admin),
            Method::POST,
            &format!("/api/lessons/{l}/exports"),
            Some(json!({"preset": "showcase"})),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{job}");
    let id = job["id"].as_i64().unwrap();
    let mut ev = Sse::get(
        &app,
        &f.teacher_login,
        &format!("/api/recordings/{rec}/events"),
    )
    .await;
    assert_eq!(ev.next().await.0, "processing");
    let mut seen = Vec::new();
    let mut last = serde_json::Value::Null;
    while let Some((kind, v)) = ev.next_or_end().await {
        assert_eq!(kind, "export", "{v}");
        assert_eq!(v["id"], json!(id), "{v}");
        seen.push((
            v["state"].as_str().unwrap_or("").to_string(),
            v["progress"].as_f64().unwrap_or(-1.0),
        ));
        last = v;
    }
    println!("pushed: {seen:?}");
    assert_eq!(last["state"], json!("done"), "{last}");
    assert!(last["outcome"]["file"].is_string(), "{last}");
    assert!(
        seen.windows(2).all(|w| w[0].1 <= w[1].1),
        "progress never goes back: {seen:?}"
    );
}
