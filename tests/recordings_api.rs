//! The recordings API on a real server over loopback (SQLite and PostgreSQL): the list by
//! lesson, teacher (hub or assisting), school and date, paged and scoped; one recording's
//! metadata and sources; the manifest; HTTP range playback (206, Content-Range, 416 for bad
//! ranges) and download of a source the real processor made; clear problems for bad input;
//! the School API's `record_lessons` and `retention_days`; and the retention sweep on
//! simulated time (time passed in): nothing goes a millisecond early, expired recordings'
//! files go through the storage trait, each deletion leaves an audit row; and every file of a
//! recording plus its manifest downloaded as one zip.
//!
//! Run: `cargo test --test recordings_api`.

mod support;

use reqwest::{header, Method, StatusCode};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use support::recorded::{insert, three_sources};
use support::school::{at, fixture, lesson, App, Backend, Fixture};

const DAY: i64 = 86_400_000;

fn kind(v: &Value) -> &str {
    v["type"]
        .as_str()
        .unwrap_or("")
        .trim_start_matches("urn:classrelay:problem:")
}

fn ids(v: &Value) -> Vec<i64> {
    v["items"]
        .as_array()
        .unwrap_or_else(|| panic!("a page: {v}"))
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect()
}

/// The world of these tests: lesson `l` (王老师 at 成都七中 with both partner schools) today
/// with a processed three-source recording, the same lesson's second recording tomorrow
/// (unprocessed), another teacher's lesson, and a plain room's recording.
struct Recs {
    f: Fixture,
    l: i64,
    l2: i64,
    r1: i64,
    r2: i64,
    r3: i64,
    r4: i64,
}

async fn recordings(app: &App) -> Recs {
    let f = fixture(app).await;
    let l = lesson(app, &f, "delivery", "08:00", "08:40").await;
    let l2 = app
        .create(
            "/api/lessons",
            json!({"mode": "delivery", "subject": "英语", "grade": "三年级", "title": "Unit 4",
                   "hub_teacher_id": f.other_teacher, "hub_classroom_id": f.hub_room,
                   "starts_at": at("10:00"), "ends_at": at("10:40"),
                   "sites": [{"classroom_id": f.room_a}]}),
        )
        .await;
    let src = three_sources(4);
    let r1 = insert(&app.server, Some(l), at("08:00"), at("08:40"), Some(&src)).await;
    let r2 = insert(&app.server, Some(l2), at("10:00"), at("10:40"), None).await;
    let r3 = insert(&app.server, None, at("11:00"), at("11:30"), None).await;
    let r4 = insert(
        &app.server,
        Some(l),
        at("08:00") + DAY,
        at("08:40") + DAY,
        None,
    )
    .await;
    Recs {
        f,
        l,
        l2,
        r1,
        r2,
        r3,
        r4,
    }
}

async fn get(app: &App, token: &str, path: &str) -> (StatusCode, Value) {
    app.call(Some(token), Method::GET, path, None).await
}

async fn listing_and_metadata(app: App) {
    let w = recordings(&app).await;
    let admin = app.admin.clone();
    let list = |q: String| {
        let admin = admin.clone();
        let app = &app;
        async move {
            let (s, v) = get(app, &admin, &format!("/api/recordings{q}")).await;
            assert_eq!(s, StatusCode::OK, "{q}: {v}");
            v
        }
    };
    // Newest first; everything the global admin may see.
    let all = list(String::new()).await;
    assert_eq!(ids(&all), vec![w.r4, w.r3, w.r2, w.r1], "{all}");
    assert_eq!(all["total"], 4);
    assert_eq!(
        ids(&list(format!("?lesson_id={}", w.l)).await),
        vec![w.r4, w.r1]
    );
    assert_eq!(ids(&list(format!("?lesson_id={}", w.l2)).await), vec![w.r2]);
    // By teacher: the hub teacher, and the assisting teacher of a site.
    assert_eq!(
        ids(&list(format!("?teacher_id={}", w.f.teacher)).await),
        vec![w.r4, w.r1]
    );
    assert_eq!(
        ids(&list(format!("?teacher_id={}", w.f.assistant_a)).await),
        vec![w.r4, w.r1]
    );
    assert_eq!(
        ids(&list(format!("?teacher_id={}", w.f.other_teacher)).await),
        vec![w.r2]
    );
    // By school: the hub school, or a school with a site classroom.
    assert_eq!(
        ids(&list(format!("?school_id={}", w.f.partner_b)).await),
        vec![w.r4, w.r1]
    );
    assert_eq!(
        ids(&list(format!("?school_id={}", w.f.partner_a)).await),
        vec![w.r4, w.r2, w.r1]
    );
    // By date (local days), both ends included.
    assert_eq!(
        ids(&list("?from=2026-09-07&to=2026-09-07".into()).await),
        vec![w.r3, w.r2, w.r1]
    );
    assert_eq!(ids(&list("?from=2026-09-08".into()).await), vec![w.r4]);
    assert_eq!(
        ids(&list(format!("?teacher_id={}&from=2026-09-08", w.f.teacher)).await),
        vec![w.r4]
    );
    // Pages.
    let p2 = list("?per_page=3&page=2".into()).await;
    assert_eq!(ids(&p2), vec![w.r1]);
    assert_eq!(
        (p2["total"].as_i64(), p2["page"].as_i64()),
        (Some(4), Some(2))
    );
    assert_eq!(
        ids(&list("?per_page=3&page=9".into()).await),
        Vec::<i64>::new()
    );

    // One recording: the lesson's metadata and the three sources on one timeline.
    let (s, r) = get(&app, &admin, &format!("/api/recordings/{}", w.r1)).await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(r["lesson"]["subject"], "英语");
    assert_eq!(r["lesson"]["grade"], "三年级");
    assert_eq!(r["lesson"]["textbook"], "人教版PEP");
    assert_eq!(r["lesson"]["chapter"], "Unit 3");
    assert_eq!(r["lesson"]["title"], "Unit 3 Colours");
    assert_eq!(r["teacher"]["name"], "王老师");
    assert_eq!(r["school"]["name"], "成都七中");
    let paired: Vec<&str> = r["paired_schools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(paired, vec!["昭觉县民族小学", "昭觉县城北小学"]);
    assert_eq!(r["processing"], "ready");
    assert_eq!(r["started"], "2026-09-07T08:00:00+08:00");
    let sources = r["sources"].as_array().unwrap();
    let kinds: Vec<&str> = sources
        .iter()
        .map(|s| s["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        vec!["teacher_camera", "courseware", "classroom_camera"]
    );
    let starts: Vec<i64> = sources
        .iter()
        .map(|s| s["start_ms"].as_i64().unwrap())
        .collect();
    // Sent 0.5 s and 1 s after the teacher: where the manifest puts them (within a frame).
    assert!((starts[1] - starts[0] - 500).abs() <= 34, "{starts:?}");
    assert!((starts[2] - starts[0] - 1000).abs() <= 34, "{starts:?}");
    assert_eq!(sources[0]["codec"], "vp8,opus");
    assert_eq!(sources[0]["mime"], "video/webm");
    let url = sources[0]["url"].as_str().unwrap();
    assert_eq!(
        url,
        format!(
            "/api/recordings/{}/files/{}",
            w.r1,
            sources[0]["file"].as_str().unwrap()
        )
    );
    assert_eq!(sources[0]["download"], format!("{url}?download=1"));
    assert!(r["duration_ms"].as_i64().unwrap() >= 4900, "{r}");

    // The manifest as processing wrote it.
    let (s, m) = get(&app, &admin, &format!("/api/recordings/{}/manifest", w.r1)).await;
    assert_eq!(s, StatusCode::OK, "{m}");
    assert_eq!(m["sources"].as_array().unwrap().len(), 3);
    assert_eq!(m["lesson_id"], w.l);
    // Not processed yet: a clear conflict, and no sources.
    let (s, v) = get(&app, &admin, &format!("/api/recordings/{}/manifest", w.r2)).await;
    assert_eq!(
        (s, kind(&v)),
        (StatusCode::CONFLICT, "recording-not-ready"),
        "{v}"
    );
    let (s, v) = get(&app, &admin, &format!("/api/recordings/{}", w.r2)).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["sources"], json!([]));

    // Bad input: clear problems, never a panic.
    for q in [
        "?per_page=0",
        "?per_page=500",
        "?page=-1",
        "?lesson_id=x",
        "?teacher_id=1.5",
        "?from=2026-13-01",
        "?to=tomorrow",
    ] {
        let r = app
            .http
            .get(format!("{}/api/recordings{q}", app.base))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{q}");
        assert_eq!(
            r.headers()[header::CONTENT_TYPE],
            "application/problem+json",
            "{q}"
        );
        let v: Value = r.json().await.unwrap();
        assert_eq!(kind(&v), "bad-query", "{q}: {v}");
    }
    for p in [
        "/api/recordings/999",
        "/api/recordings/0",
        "/api/recordings/abc",
    ] {
        let (s, v) = get(&app, &admin, p).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{p}: {v}");
    }

    // Scope: the county observer sees the lessons' recordings but not the plain room's; the
    // inspector and devices may not list recordings at all.
    let (s, v) = get(&app, &w.f.observer_login, "/api/recordings").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(ids(&v), vec![w.r4, w.r2, w.r1]);
    let (s, v) = get(
        &app,
        &w.f.observer_login,
        &format!("/api/recordings/{}", w.r3),
    )
    .await;
    assert_eq!(
        (s, kind(&v)),
        (StatusCode::FORBIDDEN, "out-of-scope"),
        "{v}"
    );
    let (s, v) = get(&app, &w.f.inspector_login, "/api/recordings").await;
    assert_eq!(
        (s, kind(&v)),
        (StatusCode::FORBIDDEN, "role-forbidden"),
        "{v}"
    );
    let dev = app.device(w.f.room_a).await;
    let (s, v) = get(&app, &dev, &format!("/api/recordings/{}", w.r1)).await;
    assert_eq!(
        (s, kind(&v)),
        (StatusCode::FORBIDDEN, "role-forbidden"),
        "{v}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recordings_are_listed_by_lesson_teacher_school_and_date_with_their_metadata_sqlite() {
    listing_and_metadata(App::start(Backend::Sqlite).await.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recordings_are_listed_by_lesson_teacher_school_and_date_with_their_metadata_postgres() {
    if let Some(app) = App::start(Backend::Postgres).await {
        listing_and_metadata(app).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_plays_by_range_requests_and_downloads() {
    let app = App::start(Backend::Sqlite).await.unwrap();
    let w = recordings(&app).await;
    let (_, r) = get(&app, &app.admin, &format!("/api/recordings/{}", w.r1)).await;
    let (_, m) = get(
        &app,
        &app.admin,
        &format!("/api/recordings/{}/manifest", w.r1),
    )
    .await;
    let src = &r["sources"][0];
    let url = format!("{}{}", app.base, src["url"].as_str().unwrap());
    let dir = app.dir.path().join("recordings").join(w.r1.to_string());
    let on_disk = std::fs::read(dir.join(src["file"].as_str().unwrap())).unwrap();
    let size = on_disk.len();
    assert!(size > 1000, "{size}");
    let send = |range: Option<&str>, method: Method| {
        let mut rb = app.http.request(method, &url).bearer_auth(&app.admin);
        if let Some(r) = range {
            rb = rb.header(header::RANGE, r);
        }
        rb.send()
    };

    // The whole file: the bytes the processor wrote, whose SHA-256 the manifest names.
    let whole = send(None, Method::GET).await.unwrap();
    assert_eq!(whole.status(), StatusCode::OK);
    assert_eq!(whole.headers()[header::CONTENT_TYPE], "video/webm");
    assert_eq!(whole.headers()[header::ACCEPT_RANGES], "bytes");
    assert_eq!(whole.headers()[header::CONTENT_DISPOSITION], "inline");
    let body = whole.bytes().await.unwrap();
    assert_eq!(body.as_ref(), on_disk.as_slice());
    let sha = hex::encode(Sha256::digest(&body));
    let listed = m["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["file"] == src["file"])
        .unwrap();
    assert_eq!(listed["sha256"], sha);

    // Ranges: 206 with Content-Range and exactly those bytes.
    for (range, from, to) in [
        ("bytes=0-99".to_string(), 0, 99),
        (format!("bytes=100-{}", size - 1), 100, size - 1),
        ("bytes=500-".to_string(), 500, size - 1),
        ("bytes=-64".to_string(), size - 64, size - 1),
        (format!("bytes=10-{}", size + 5000), 10, size - 1),
    ] {
        let r = send(Some(&range), Method::GET).await.unwrap();
        assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT, "{range}");
        assert_eq!(
            r.headers()[header::CONTENT_RANGE],
            format!("bytes {from}-{to}/{size}").as_str(),
            "{range}"
        );
        assert_eq!(r.headers()[header::CONTENT_TYPE], "video/webm");
        let b = r.bytes().await.unwrap();
        assert_eq!(b.as_ref(), &on_disk[from..=to], "{range}");
    }
    // Bad ranges: 416 with `bytes */size`, as a problem.
    for range in [
        format!("bytes={size}-"),
        format!("bytes={}-{}", size + 10, size + 20),
        "bytes=9-3".to_string(),
        "bytes=abc".to_string(),
        "lines=0-10".to_string(),
        "bytes=0-1,5-9".to_string(),
    ] {
        let r = send(Some(&range), Method::GET).await.unwrap();
        assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE, "{range}");
        assert_eq!(
            r.headers()[header::CONTENT_RANGE],
            format!("bytes */{size}").as_str(),
            "{range}"
        );
        assert_eq!(
            r.headers()[header::CONTENT_TYPE],
            "application/problem+json"
        );
        let v: Value = r.json().await.unwrap();
        assert_eq!(kind(&v), "range-not-satisfiable", "{range}: {v}");
    }
    // HEAD: the headers only.
    let head = send(None, Method::HEAD).await.unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(
        head.headers()[header::CONTENT_LENGTH],
        size.to_string().as_str()
    );
    // Download: an attachment named after the recording, the lesson's date and the file.
    let dl = app
        .http
        .get(format!("{url}?download=1"))
        .bearer_auth(&app.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(dl.status(), StatusCode::OK);
    let cd = dl.headers()[header::CONTENT_DISPOSITION]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(
        cd,
        format!(
            "attachment; filename=\"recording-{}-2026-09-07-{}-{}\"",
            w.r1,
            w.l,
            src["file"].as_str().unwrap()
        )
    );
    assert_eq!(dl.bytes().await.unwrap().len(), size);
    // Only the files the manifest lists: not the capture beside them, nothing outside.
    for name in [
        "capture.crcap",
        "manifest.json",
        "nope.webm",
        "..%2F..%2Fclassrelay.db",
    ] {
        let r = app
            .http
            .get(format!("{}/api/recordings/{}/files/{name}", app.base, w.r1))
            .bearer_auth(&app.admin)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{name}");
    }
    // The observer of the county plays it too; someone outside its scope may not.
    let r = app
        .http
        .get(&url)
        .bearer_auth(&w.f.observer_login)
        .header(header::RANGE, "bytes=0-9")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    let r = app.http.get(&url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_retention_sweep_deletes_expired_recordings_on_simulated_time_and_audits_each() {
    // Plain rooms (and schools without their own days) keep recordings 7 days here.
    let app = App::start_with(Backend::Sqlite, |c| c.recording.retention_days = 7)
        .await
        .unwrap();
    let w = recordings(&app).await;
    // The School API shows and takes `record_lessons` and `retention_days`.
    let (s, school) = get(
        &app,
        &app.admin,
        &format!("/api/schools/{}", w.f.hub_school),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(school["record_lessons"], true);
    assert_eq!(school["retention_days"], Value::Null);
    let mut changed = school.clone();
    changed["retention_days"] = json!(30);
    changed["record_lessons"] = json!(false);
    app.admin_ok(
        Method::PUT,
        &format!("/api/schools/{}", w.f.hub_school),
        changed,
        StatusCode::OK,
    )
    .await;
    let (_, school) = get(
        &app,
        &app.admin,
        &format!("/api/schools/{}", w.f.hub_school),
    )
    .await;
    assert_eq!(school["record_lessons"], false);
    assert_eq!(school["retention_days"], 30);
    for bad in [json!(0), json!(-1), json!(40_000)] {
        let mut b = school.clone();
        b["retention_days"] = bad.clone();
        let (s, v) = app
            .call(
                Some(&app.admin),
                Method::PUT,
                &format!("/api/schools/{}", w.f.hub_school),
                Some(b),
            )
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {v}");
        assert!(
            v["detail"].as_str().unwrap().contains("retention_days"),
            "{v}"
        );
    }
    let (_, r1) = get(&app, &app.admin, &format!("/api/recordings/{}", w.r1)).await;
    assert_eq!(r1["retention_days"], 30);
    assert_eq!(r1["expires"], "2026-10-07T08:40:00+08:00");
    let (_, r3) = get(&app, &app.admin, &format!("/api/recordings/{}", w.r3)).await;
    assert_eq!(r3["retention_days"], 7);

    let school = app.server.state().school.clone();
    let storage = classrelay::school::recording::storage(&school);
    let sweep = |now: i64| {
        let school = school.clone();
        let storage = storage.clone();
        async move {
            let mut ids: Vec<i64> = classrelay::school::retention::sweep(&school, storage, now)
                .await
                .expect("sweep")
                .into_iter()
                .map(|d| d.id)
                .collect();
            ids.sort_unstable();
            ids
        }
    };
    let dir = |id: i64| app.dir.path().join("recordings").join(id.to_string());
    assert!(dir(w.r1).join("manifest.json").exists());
    // A millisecond before the plain room's 7 days: nothing goes.
    assert_eq!(sweep(at("11:30") + 7 * DAY - 1).await, Vec::<i64>::new());
    // Its 7 days: the plain room's recording goes; the lessons' (30 days) stay.
    assert_eq!(sweep(at("11:30") + 7 * DAY).await, vec![w.r3]);
    assert_eq!(
        sweep(at("11:30") + 7 * DAY).await,
        Vec::<i64>::new(),
        "once"
    );
    // 30 days after the lesson's end: the first recording; the next day's a day later.
    assert_eq!(sweep(at("08:40") + 30 * DAY - 1).await, Vec::<i64>::new());
    assert_eq!(sweep(at("08:40") + 30 * DAY).await, vec![w.r1]);
    assert!(!dir(w.r1).exists(), "the files are gone");
    // The other teacher's lesson is at the same hub school: 30 days after 10:40.
    assert_eq!(sweep(at("10:40") + 30 * DAY).await, vec![w.r2]);
    assert_eq!(sweep(at("08:40") + 31 * DAY).await, vec![w.r4]);

    // Gone from the list; the row says when; its files answer 410.
    let (_, all) = get(&app, &app.admin, "/api/recordings").await;
    assert_eq!(ids(&all), Vec::<i64>::new());
    let (s, r1) = get(&app, &app.admin, &format!("/api/recordings/{}", w.r1)).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(r1["deleted_at"], at("08:40") + 30 * DAY);
    assert_eq!(r1["sources"], json!([]));
    let (s, v) = get(
        &app,
        &app.admin,
        &format!("/api/recordings/{}/manifest", w.r1),
    )
    .await;
    assert_eq!(
        (s, kind(&v)),
        (StatusCode::GONE, "recording-deleted"),
        "{v}"
    );
    // One audit row per deletion, naming the recording, its school and the days kept.
    let rows: Vec<(i64, String, String, String, String)> = sqlx::query_as(
        "SELECT at, actor, action, object, detail FROM audit_log \
         WHERE action = 'recording.delete' ORDER BY id",
    )
    .fetch_all(school.store.pool())
    .await
    .unwrap();
    let objects: Vec<&str> = rows.iter().map(|r| r.3.as_str()).collect();
    assert_eq!(
        objects,
        vec![
            format!("recording:{}", w.r3),
            format!("recording:{}", w.r1),
            format!("recording:{}", w.r2),
            format!("recording:{}", w.r4)
        ]
    );
    assert!(rows.iter().all(|r| r.1 == "system:retention"));
    let d1: Value = serde_json::from_str(&rows[1].4).unwrap();
    assert_eq!(d1["school_id"], w.f.hub_school);
    assert_eq!(d1["days"], 30);
    assert_eq!(d1["lesson_id"], w.l);
    assert_eq!(rows[1].0, at("08:40") + 30 * DAY);
}

/// Issue 20: processing is announced. A follower of `/api/recordings/{id}/events` gets the
/// state now (`waiting`), then `processing` and `ready` as the real processor runs, and the
/// stream ends; the lesson's own followers get a `processing` event; a later follower gets
/// `ready` at once; a failure comes with its reason; an inspector (who sees recordings only
/// through a blinded round) may not follow it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processing_is_announced_to_the_recording_and_lesson_followers() {
    use classrelay::school::recording_files::process_announced;
    use support::recorded::insert_unprocessed;
    use support::sse::Sse;

    let app = App::start(Backend::Sqlite).await.unwrap();
    let f = fixture(&app).await;
    let l = lesson(&app, &f, "delivery", "08:00", "08:40").await;
    let mut lesson_ev = Sse::open(&app, &f.teacher_login, l, None).await;
    lesson_ev.until("resync").await;
    let rid = insert_unprocessed(
        &app.server,
        Some(l),
        at("08:00"),
        at("08:40"),
        &three_sources(2),
        None,
    )
    .await;
    let path = format!("/api/recordings/{rid}/events");
    let mut ev = Sse::get(&app, &f.teacher_login, &path).await;
    let (kind, v) = ev.next().await;
    assert_eq!(kind, "processing");
    assert_eq!(
        v,
        json!({"recording": rid, "lesson": l, "processing": "waiting", "error": null})
    );
    let (s, v) = get(&app, &f.inspector_login, &path).await;
    assert!(
        s == StatusCode::FORBIDDEN || s == StatusCode::NOT_FOUND,
        "{s} {v}"
    );

    let school = &app.server.state().school;
    let report = process_announced(&school.store, &school.recording_events, rid)
        .await
        .expect("processed");
    assert_eq!(report.manifest.sources.len(), 3);
    assert_eq!(ev.next().await.1["processing"], "processing");
    assert_eq!(ev.next().await.1["processing"], "ready");
    assert!(
        ev.next_or_end().await.is_none(),
        "the stream ends once ready"
    );
    let p = lesson_ev.until("processing").await;
    assert_eq!(p["data"]["recording"], rid, "{p}");
    assert_eq!(p["data"]["processing"], "processing", "{p}");
    let p = lesson_ev.until("processing").await;
    assert_eq!(p["data"]["processing"], "ready", "{p}");
    let mut late = Sse::get(&app, &f.teacher_login, &path).await;
    assert_eq!(late.next().await.1["processing"], "ready");
    assert!(late.next_or_end().await.is_none());
    let (s, d) = get(&app, &f.teacher_login, &format!("/api/recordings/{rid}")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(d["sources"].as_array().unwrap().len(), 3, "{d}");

    // No capture: processing fails, and says why.
    let bad = insert(&app.server, Some(l), at("09:00"), at("09:40"), None).await;
    let mut ev = Sse::get(
        &app,
        &f.teacher_login,
        &format!("/api/recordings/{bad}/events"),
    )
    .await;
    assert_eq!(ev.next().await.1["processing"], "waiting");
    process_announced(&school.store, &school.recording_events, bad)
        .await
        .expect_err("nothing to process");
    assert_eq!(ev.next().await.1["processing"], "processing");
    let v = ev.next().await.1;
    assert_eq!(v["processing"], "failed", "{v}");
    assert!(!v["error"].as_str().unwrap_or("").is_empty(), "{v}");
    assert!(ev.next_or_end().await.is_none());
}

/// `GET /api/recordings/{id}/download.zip` (issue 20, recfin): one stored entry per source the
/// manifest lists plus `manifest.json`, each entry's bytes the file's on disk and its SHA-256
/// the manifest's; a recording not processed yet is a clear 409, one out of scope refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_sources_and_the_manifest_download_as_one_zip() {
    use std::io::Read;
    let app = App::start(Backend::Sqlite).await.unwrap();
    let w = recordings(&app).await;
    let url = format!("{}/api/recordings/{}/download.zip", app.base, w.r1);
    let resp = app
        .http
        .get(&url)
        .bearer_auth(&w.f.teacher_login)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()[header::CONTENT_TYPE], "application/zip");
    assert_eq!(
        resp.headers()[header::CONTENT_DISPOSITION],
        format!("attachment; filename=\"recording-{}.zip\"", w.r1).as_str()
    );
    // Streamed: no length known before the last entry is written.
    assert!(resp.headers().get(header::CONTENT_LENGTH).is_none());
    let body = resp.bytes().await.unwrap();

    let dir = app.dir.path().join("recordings").join(w.r1.to_string());
    let manifest_bytes = std::fs::read(dir.join("manifest.json")).unwrap();
    let manifest: Value = serde_json::from_slice(&manifest_bytes).unwrap();
    let sources = manifest["sources"].as_array().unwrap();
    assert_eq!(sources.len(), 3, "{manifest}");
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(body.to_vec())).expect("a zip");
    let mut names: Vec<String> = (0..zip.len())
        .map(|i| zip.by_index(i).unwrap().name().to_string())
        .collect();
    names.sort();
    let mut want: Vec<String> = sources
        .iter()
        .map(|s| s["file"].as_str().unwrap().to_string())
        .chain(["manifest.json".to_string()])
        .collect();
    want.sort();
    assert_eq!(names, want);
    for s in sources {
        let file = s["file"].as_str().unwrap();
        let mut entry = zip.by_name(file).unwrap();
        assert_eq!(
            entry.compression(),
            zip::CompressionMethod::Stored,
            "{file}"
        );
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        assert_eq!(bytes, std::fs::read(dir.join(file)).unwrap(), "{file}");
        assert_eq!(
            hex::encode(Sha256::digest(&bytes)),
            s["sha256"].as_str().unwrap(),
            "{file}"
        );
    }
    let mut m = Vec::new();
    zip.by_name("manifest.json")
        .unwrap()
        .read_to_end(&mut m)
        .unwrap();
    assert_eq!(m, manifest_bytes);

    // Not processed yet: a problem, not an empty zip.
    let (s, v) = get(
        &app,
        &app.admin,
        &format!("/api/recordings/{}/download.zip", w.r2),
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert_eq!(kind(&v), "recording-not-ready", "{v}");
    // Inspectors never see recordings outside a round: refused.
    let (s, v) = get(
        &app,
        &w.f.inspector_login,
        &format!("/api/recordings/{}/download.zip", w.r1),
    )
    .await;
    assert!(
        s == StatusCode::FORBIDDEN || s == StatusCode::NOT_FOUND,
        "{s} {v}"
    );
}
