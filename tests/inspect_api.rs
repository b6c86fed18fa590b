//! Sampling inspection (抽检) through the API on both database backends (a SQLite file and a
//! real PostgreSQL server): a county round drawn from its seed (the same seed draws the same
//! samples), every stratum covered, recusal and experts first in the real assignment, a
//! blinded reviewer whose every answer (every field of every response they can call) holds
//! no teacher, school or region name or id, a straddling pair of grades that creates the third
//! review, an appeal, re-grading, the review's media (listed by index, served by ranges, the
//! file's Title with the room and teacher blanked), and the audit log: it only grows through the API, and the
//! database itself refuses UPDATE, DELETE (and on PostgreSQL TRUNCATE) of its rows.
//!
//! Run: `cargo test --test inspect_api`.

mod support;

use std::collections::BTreeSet;

use classrelay::store::Store;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use support::school::{fixture, inspector, lesson, upload_evidence, App, Backend, Fixture};

macro_rules! both_backends {
    ($name:ident, $body:ident) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let app = App::start_in_process(Backend::Sqlite)
                    .await
                    .expect("sqlite always works");
                $body(app).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(app) = App::start_in_process(Backend::Postgres).await {
                    $body(app).await;
                }
            }
        }
    };
}

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

/// A submitted S-T observation of a new lesson of `subject` at `start`–`end` (Monday).
async fn submitted(app: &App, f: &Fixture, subject: &str, start: &str, end: &str) -> i64 {
    let l = if subject == "英语" {
        lesson(app, f, "delivery", start, end).await
    } else {
        // Another subject, no sites (nothing to pair): a lesson of the hub classroom.
        use classrelay::time::{local_to_millis, parse_date, parse_hhmm, parse_offset};
        let off = parse_offset("+08:00").unwrap();
        let d = parse_date("2026-09-07").unwrap();
        app.create(
            "/api/lessons",
            json!({"mode": "master", "subject": subject, "grade": "七年级", "title": "彝族民歌",
                   "hub_teacher_id": f.other_teacher, "hub_classroom_id": f.hub_room,
                   "starts_at": local_to_millis(d, parse_hhmm(start).unwrap(), off),
                   "ends_at": local_to_millis(d, parse_hhmm(end).unwrap(), off), "sites": []}),
        )
        .await
    };
    let o = ok(
        app,
        &f.observer_login,
        Method::POST,
        "/api/observations",
        Some(json!({"lesson_id": l, "methods": ["st"]})),
        StatusCode::CREATED,
    )
    .await["id"]
        .as_i64()
        .unwrap();
    ok(
        app,
        &f.observer_login,
        Method::POST,
        &format!("/api/observations/{o}/codes"),
        Some(json!({"method": "st", "codes": "TTTSSTTS"})),
        StatusCode::OK,
    )
    .await;
    ok(
        app,
        &f.observer_login,
        Method::POST,
        &format!("/api/observations/{o}/submit"),
        None,
        StatusCode::OK,
    )
    .await;
    o
}

/// Every (path, value) leaf of a JSON document, with object keys on the path.
fn leaves(v: &Value, path: String, out: &mut Vec<(String, Value)>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                out.push((format!("{path}/{k}"), Value::Null));
                leaves(x, format!("{path}/{k}"), out);
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                leaves(x, format!("{path}/{i}"), out);
            }
        }
        x => out.push((path, x.clone())),
    }
}

/// GET `path` as `token` with an optional `Range`, over loopback or in process: status,
/// content type and body bytes.
async fn raw(app: &App, token: &str, path: &str, range: Option<&str>) -> (u16, String, Vec<u8>) {
    if let Some(router) = app.oneshot.clone() {
        use tower::ServiceExt;
        let mut req = axum::http::Request::builder()
            .uri(path)
            .header("authorization", format!("Bearer {token}"));
        if let Some(r) = range {
            req = req.header("range", r);
        }
        let r = router
            .oneshot(req.body(axum::body::Body::empty()).unwrap())
            .await
            .unwrap();
        let ct = r
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string());
        let status = r.status().as_u16();
        let body = axum::body::to_bytes(r.into_body(), usize::MAX)
            .await
            .unwrap();
        return (status, ct.unwrap_or_default(), body.to_vec());
    }
    let mut rb = app
        .http
        .get(format!("{}{path}", app.base))
        .bearer_auth(token);
    if let Some(r) = range {
        rb = rb.header("range", r);
    }
    let r = rb.send().await.unwrap();
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string());
    (
        r.status().as_u16(),
        ct.unwrap_or_default(),
        r.bytes().await.unwrap().to_vec(),
    )
}

/// Every `.webm`/`.mkv` under `dir`.
fn walk_webm(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk_webm(&p));
        } else if matches!(p.extension().and_then(|x| x.to_str()), Some("webm" | "mkv")) {
            out.push(p);
        }
    }
    out
}

/// What a blinded reviewer must never receive.
struct Secrets {
    /// Names, codes and titles (teacher, school, classroom, region, lesson, observer).
    words: Vec<String>,
    /// Ids of teachers, schools, classrooms, regions, lessons and observations.
    ids: BTreeSet<i64>,
}

/// Walks every field of a reviewer's answer: no key names an identifying thing, no string
/// holds a secret word, and an identifying id may appear only as a figure (counts, scores)
/// whose key says so.
fn assert_blind(what: &str, v: &Value, s: &Secrets) {
    const KEYS: &[&str] = &[
        "teacher",
        "teacher_name",
        "school",
        "school_name",
        "region",
        "province",
        "city",
        "county",
        "classroom",
        "lesson",
        "observer",
        "observation",
        "unit",
        "unit_name",
        "round",
        "seed",
        "username",
        "display_name",
        "media",
        "recording",
        "reviewer",
        "place",
        "audit",
    ];
    // Figures that may equal an id by chance; everything else holding a number is checked.
    const FIGURES: &[&str] = &[
        "n",
        "n_t",
        "runs",
        "ordinal",
        "score",
        "pass_mark",
        "minutes",
        "weight",
        "total",
        "version",
        "steady_state",
        "positive_integration",
        "defect",
        // A blinded ability point's evidence: item numbers, file sizes, clip points and
        // the sources' places on the timeline.
        "item",
        "size",
        "in_ms",
        "out_ms",
        "start_ms",
        "duration_ms",
    ];
    let mut all = Vec::new();
    leaves(v, String::new(), &mut all);
    for (path, x) in &all {
        let key = path.rsplit('/').next().unwrap_or("");
        if x.is_null() && !key.is_empty() && key.parse::<usize>().is_err() {
            assert!(
                !KEYS.contains(&key) && !key.ends_with("_id"),
                "{what}: the key `{key}` ({path}) names an identifying thing: {v}"
            );
        }
        if let Some(t) = x.as_str() {
            for w in &s.words {
                assert!(
                    !t.contains(w.as_str()),
                    "{what}: {path} = {t:?} holds `{w}`: {v}"
                );
            }
        }
        if let Some(n) = x.as_i64() {
            let parent = path.split('/').rev().nth(1).unwrap_or("");
            let figure = FIGURES.contains(&key)
                || path.contains("/matrix/")
                || (key == "id" && path.matches('/').count() <= 2)
                || parent == "matrix";
            assert!(
                figure || !s.ids.contains(&n),
                "{what}: {path} = {n} is an identifying id: {v}"
            );
        }
    }
}

async fn inspection_flow(app: App) {
    let f = fixture(&app).await;
    // Five submitted 英语 (三年级, primary) and two 音乐 (七年级, junior) observations at the
    // hub school, and one draft that no draw may take.
    let mut obs = Vec::new();
    for (i, (start, end)) in [
        ("08:00", "08:40"),
        ("08:50", "09:30"),
        ("09:40", "10:20"),
        ("10:30", "11:10"),
        ("11:20", "12:00"),
    ]
    .iter()
    .enumerate()
    {
        let _ = i;
        obs.push(submitted(&app, &f, "英语", start, end).await);
    }
    obs.push(submitted(&app, &f, "音乐", "14:00", "14:40").await);
    obs.push(submitted(&app, &f, "音乐", "14:50", "15:30").await);
    let l = lesson(&app, &f, "delivery", "16:00", "16:40").await;
    let draft = ok(
        &app,
        &f.observer_login,
        Method::POST,
        "/api/observations",
        Some(json!({"lesson_id": l, "methods": ["st"]})),
        StatusCode::CREATED,
    )
    .await["id"]
        .as_i64()
        .unwrap();
    let music: BTreeSet<i64> = obs[5..].iter().copied().collect();

    // Reviewers: a teacher-expert of a partner school (same county, another school), an
    // expert at the hub school itself (recused from it), and two of another county.
    let r2 = app
        .create(
            "/api/regions",
            json!({"province": "四川省", "city": "成都市", "county": "武侯区"}),
        )
        .await;
    let (rev_a, tok_a) = inspector(
        &app,
        "rev_a",
        json!({"scope": "school", "school_id": f.partner_a}),
    )
    .await;
    let (rev_b, _) = inspector(
        &app,
        "rev_b",
        json!({"scope": "school", "school_id": f.hub_school}),
    )
    .await;
    let (rev_c, tok_c) =
        inspector(&app, "rev_c", json!({"scope": "county", "region_id": r2})).await;
    let (rev_d, tok_d) =
        inspector(&app, "rev_d", json!({"scope": "county", "region_id": r2})).await;
    let manager = f.inspector_login.clone(); // county inspector of the fixture's county

    // A round needs a manager whose scope contains it: rev_c (another county) is refused.
    let round_body = json!({"name": "2026秋 县级抽检", "level": "county", "region_id": f.region, "seed": 424242});
    let (s, v) = app
        .call(
            Some(&tok_c),
            Method::POST,
            "/api/inspections/rounds",
            Some(round_body.clone()),
        )
        .await;
    assert_eq!(
        (s, kind(&v)),
        (StatusCode::FORBIDDEN, "out-of-scope"),
        "{v}"
    );
    // Bad input: a ratio below the level's minimum, an unknown level, an ability-point
    // round without its term or with a term that does not exist, an observation round with
    // a term.
    for (bad, want) in [
        (
            json!({"name": "x", "level": "county", "region_id": f.region, "ratio": 0.05}),
            "invalid-field",
        ),
        (
            json!({"name": "x", "level": "school", "region_id": f.region}),
            "invalid-field",
        ),
        (
            json!({"name": "x", "level": "county", "region_id": f.region, "source": "ability_point"}),
            "invalid-field",
        ),
        (
            json!({"name": "x", "level": "county", "region_id": f.region, "source": "ability_point", "term": "1999春"}),
            "invalid-field",
        ),
        (
            json!({"name": "x", "level": "county", "region_id": f.region, "term": "2026秋"}),
            "invalid-field",
        ),
        (
            json!({"name": "x", "level": "county", "region_id": f.region, "seed": -1}),
            "invalid-field",
        ),
    ] {
        let (s, v) = app
            .call(
                Some(&manager),
                Method::POST,
                "/api/inspections/rounds",
                Some(bad),
            )
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
        assert_eq!(kind(&v), want, "{v}");
    }
    let round = ok(
        &app,
        &manager,
        Method::POST,
        "/api/inspections/rounds",
        Some(round_body.clone()),
        StatusCode::CREATED,
    )
    .await;
    let rid = round["round"]["id"].as_i64().unwrap();
    assert_eq!(
        round["round"]["seed"], 424242,
        "the seed is stored and shown"
    );
    assert_eq!(round["round"]["ratio"], 0.1, "the county default");
    assert_eq!(round["round"]["state"], "open");
    // A draw needs a pool.
    let (s, v) = app
        .call(
            Some(&manager),
            Method::POST,
            &format!("/api/inspections/rounds/{rid}/draw"),
            None,
        )
        .await;
    assert_eq!(
        (s, kind(&v)),
        (StatusCode::CONFLICT, "round-without-reviewers"),
        "{v}"
    );
    // The manager cannot review blind: refused from the pool.
    let me = ok(&app, &manager, Method::GET, "/api/me", None, StatusCode::OK).await;
    let manager_id = me["id"].as_i64().or(me["user"]["id"].as_i64()).unwrap();
    let (s, v) = app
        .call(
            Some(&manager),
            Method::PUT,
            &format!("/api/inspections/rounds/{rid}/reviewers"),
            Some(json!({"reviewers": [{"user_id": manager_id}]})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let pool = json!({"reviewers": [
        {"user_id": rev_a, "expert": true}, {"user_id": rev_b, "expert": true},
        {"user_id": rev_c}, {"user_id": rev_d, "expert": true}]});
    ok(
        &app,
        &manager,
        Method::PUT,
        &format!("/api/inspections/rounds/{rid}/reviewers"),
        Some(pool.clone()),
        StatusCode::OK,
    )
    .await;
    let drawn = ok(
        &app,
        &manager,
        Method::POST,
        &format!("/api/inspections/rounds/{rid}/draw"),
        None,
        StatusCode::OK,
    )
    .await;
    let samples = drawn["samples"].as_array().unwrap().clone();
    // 10 % of 7 is 1, but two strata (英语 primary, 音乐 junior) need one each.
    assert_eq!(samples.len(), 2, "{drawn}");
    assert_eq!(drawn["round"]["population"], 7, "the draft is not drawable");
    let drawn_ids: BTreeSet<i64> = samples
        .iter()
        .map(|x| x["observation_id"].as_i64().unwrap())
        .collect();
    assert!(!drawn_ids.contains(&draft));
    assert_eq!(
        drawn_ids.intersection(&music).count(),
        1,
        "every stratum covered: {drawn}"
    );
    let subjects: BTreeSet<&str> = samples
        .iter()
        .map(|x| x["stratum"]["subject"].as_str().unwrap())
        .collect();
    assert_eq!(subjects, BTreeSet::from(["英语", "音乐"]));
    // Recusal and experts first: every sample is at the hub school, so rev_b (an expert
    // there) reviews none; the two other experts take both slots.
    for x in &samples {
        let who: BTreeSet<i64> = x["reviews"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["reviewer_id"].as_i64().unwrap())
            .collect();
        assert_eq!(who, BTreeSet::from([rev_a, rev_d]), "{x}");
    }
    // Drawing twice is refused; the same seed in another round draws the same samples
    // under the same pseudonyms.
    let (s, _) = app
        .call(
            Some(&manager),
            Method::POST,
            &format!("/api/inspections/rounds/{rid}/draw"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    let again = ok(
        &app,
        &manager,
        Method::POST,
        "/api/inspections/rounds",
        Some(json!({"name": "重抽核对", "level": "county", "region_id": f.region, "seed": 424242})),
        StatusCode::CREATED,
    )
    .await["round"]["id"]
        .as_i64()
        .unwrap();
    ok(
        &app,
        &manager,
        Method::PUT,
        &format!("/api/inspections/rounds/{again}/reviewers"),
        Some(pool.clone()),
        StatusCode::OK,
    )
    .await;
    let redraw = ok(
        &app,
        &manager,
        Method::POST,
        &format!("/api/inspections/rounds/{again}/draw"),
        None,
        StatusCode::OK,
    )
    .await;
    let pairs = |d: &Value| -> BTreeSet<(i64, String)> {
        d["samples"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| {
                (
                    x["observation_id"].as_i64().unwrap(),
                    x["pseudonym"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    assert_eq!(pairs(&redraw), pairs(&drawn), "reproducible from the seed");

    // What the reviewer must never see.
    let mut words: Vec<String> = vec![
        "成都七中",
        "昭觉县民族小学",
        "昭觉县城北小学",
        "HUB01",
        "ZJ01",
        "ZJ02",
        "王老师",
        "李老师",
        "阿依老师",
        "T001",
        "T002",
        "录播教室",
        "三年级1班",
        "四川省",
        "凉山彝族自治州",
        "昭觉县",
        "成都市",
        "武侯区",
        "Unit 3 Colours",
        "彝族民歌",
        "observer1",
        "inspector1",
        "wang",
        "li",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    words.retain(|w| w.chars().count() > 2 || !w.is_ascii());
    let mut ids: BTreeSet<i64> = [
        f.region,
        r2,
        f.hub_school,
        f.partner_a,
        f.partner_b,
        f.hub_room,
        f.room_a,
        f.room_b,
        f.room_view,
        f.teacher,
        f.other_teacher,
        f.assistant_a,
    ]
    .into_iter()
    .collect();
    ids.extend(obs.iter().copied());
    let secrets = Secrets { words, ids };

    // Each observed lesson has a processed recording (its hub teacher's audio; the processor
    // writes the room `lesson-{id}` and the teacher's name into the file's Title).
    let pool = app.server.state().school.store.pool().clone();
    let mut lessons = Vec::new();
    for o in &obs {
        let (l,): (i64,) = sqlx::query_as("SELECT lesson_id FROM observations WHERE id = $1")
            .bind(o)
            .fetch_one(&pool)
            .await
            .unwrap();
        support::stdraft::stored_recording(&app, l, 4).await;
        lessons.push(l);
    }
    let (teacher_name,): (String,) = sqlx::query_as("SELECT name FROM teachers WHERE id = $1")
        .bind(f.teacher)
        .fetch_one(&pool)
        .await
        .unwrap();

    // Every response rev_a can call, walked field by field.
    let mine = ok(
        &app,
        &tok_a,
        Method::GET,
        "/api/inspections/reviews",
        None,
        StatusCode::OK,
    )
    .await;
    assert_blind("GET /api/inspections/reviews", &mine, &secrets);
    assert_eq!(
        mine.as_array().unwrap().len(),
        4,
        "two rounds × two samples"
    );
    for r in mine.as_array().unwrap() {
        let id = r["id"].as_i64().unwrap();
        let one = ok(
            &app,
            &tok_a,
            Method::GET,
            &format!("/api/inspections/reviews/{id}"),
            None,
            StatusCode::OK,
        )
        .await;
        assert!(one["evidence"]["st"]["n"].as_u64() == Some(8), "{one}");
        assert_blind(
            &format!("GET /api/inspections/reviews/{id}"),
            &one,
            &secrets,
        );
        // The review's media: listed by index, nothing identifying in the list or the URLs…
        let media = ok(
            &app,
            &tok_a,
            Method::GET,
            &format!("/api/inspections/reviews/{id}/media"),
            None,
            StatusCode::OK,
        )
        .await;
        assert_blind(
            &format!("GET /api/inspections/reviews/{id}/media"),
            &media,
            &secrets,
        );
        let items = media.as_array().unwrap();
        assert_eq!(items.len(), 1, "{media}");
        assert_eq!(items[0]["kind"], "audio");
        let url = items[0]["url"].as_str().unwrap();
        assert_eq!(url, format!("/api/inspections/reviews/{id}/media/0"));
        // …and the file, played by ranges, carries neither the teacher's name nor the room
        // (`lesson-{id}`) in its metadata.
        let whole = raw(&app, &tok_a, url, None).await;
        assert_eq!(whole.0, 200);
        assert_eq!(whole.1, "audio/webm");
        let whole = whole.2;
        let has =
            |hay: &[u8], needle: &str| hay.windows(needle.len()).any(|w| w == needle.as_bytes());
        assert!(
            !has(&whole, &teacher_name),
            "the teacher's name is in the file"
        );
        for l in &lessons {
            assert!(
                !has(&whole, &format!("lesson-{l}")),
                "the room is in the file"
            );
        }
        let part = raw(&app, &tok_a, url, Some("bytes=0-99")).await;
        assert_eq!(part.0, 206);
        assert_eq!(&part.2[..], &whole[..100]);
        let bad = raw(&app, &tok_a, url, Some("bytes=999999999-")).await;
        assert_eq!(bad.0, 416);
    }
    // The original files do name the teacher (so the check above can fail): the processor's
    // Title is what the reviewer's copy blanks.
    let dir = app.dir.path().to_path_buf();
    let named = walk_webm(&dir)
        .into_iter()
        .filter(|p| {
            !p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("blind-")
        })
        .any(|p| {
            let b = std::fs::read(p).unwrap();
            b.windows(teacher_name.len())
                .any(|w| w == teacher_name.as_bytes())
        });
    assert!(named, "no original file names the teacher");
    // Another reviewer's media is refused, and says nothing.
    let other = mine.as_array().unwrap()[0]["id"].as_i64().unwrap();
    for path in [
        format!("/api/inspections/reviews/{other}/media"),
        format!("/api/inspections/reviews/{other}/media/0"),
    ] {
        let (s, v) = app
            .call(Some(&f.observer_login), Method::GET, &path, None)
            .await;
        assert!(s == StatusCode::FORBIDDEN, "{path}: {s} {v}");
        assert_blind(&path, &v, &secrets);
    }
    // The manager's routes and other people's reviews are refused, and the refusals say
    // nothing either.
    let sample_of = |d: &Value, i: usize| d["samples"][i]["id"].as_i64().unwrap();
    for (m, path) in [
        (Method::GET, format!("/api/inspections/rounds/{rid}")),
        (Method::GET, format!("/api/inspections/rounds/{rid}/audit")),
        (Method::GET, "/api/inspections/rounds".to_string()),
        (Method::GET, format!("/api/observations/{}", obs[0])),
    ] {
        let (s, v) = app.call(Some(&tok_a), m.clone(), &path, None).await;
        assert!(
            s == StatusCode::FORBIDDEN || (s == StatusCode::OK && v == json!([])),
            "{m} {path}: {s} {v}"
        );
        assert_blind(&format!("{m} {path}"), &v, &secrets);
    }

    // The straddling pair: rev_a passes sample 0 (75), rev_d fails it (50) → a third review,
    // assigned to the one reviewer left who may take it (rev_c; rev_b is recused).
    let s0 = sample_of(&drawn, 0);
    let s1 = sample_of(&drawn, 1);
    let review_of = |d: &Value, sample: i64, who: i64| -> i64 {
        d["samples"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["id"] == sample)
            .unwrap()["reviews"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["reviewer_id"] == who)
            .unwrap()["id"]
            .as_i64()
            .unwrap()
    };
    let grade = |tok: String, review: i64, score: f64| {
        let app = &app;
        let secrets = &secrets;
        async move {
            let v = ok(
                app,
                &tok,
                Method::PUT,
                &format!("/api/inspections/reviews/{review}"),
                Some(json!({"score": score, "comment": "结构清楚"})),
                StatusCode::OK,
            )
            .await;
            assert_blind("PUT /api/inspections/reviews/{id}", &v, secrets);
            v
        }
    };
    // Someone else's review is refused.
    let (s, v) = app
        .call(
            Some(&tok_a),
            Method::PUT,
            &format!("/api/inspections/reviews/{}", review_of(&drawn, s0, rev_d)),
            Some(json!({"score": 10})),
        )
        .await;
    assert_eq!(
        (s, kind(&v)),
        (StatusCode::FORBIDDEN, "not-your-review"),
        "{v}"
    );
    let (s, _) = app
        .call(
            Some(&tok_a),
            Method::PUT,
            &format!("/api/inspections/reviews/{}", review_of(&drawn, s0, rev_a)),
            Some(json!({"score": 101})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    grade(tok_a.clone(), review_of(&drawn, s0, rev_a), 75.0).await;
    let view = |id: i64| {
        let app = &app;
        let manager = manager.clone();
        async move {
            ok(
                app,
                &manager,
                Method::GET,
                &format!("/api/inspections/rounds/{id}"),
                None,
                StatusCode::OK,
            )
            .await
        }
    };
    assert_eq!(
        view(rid).await["progress"]["disputes"],
        0,
        "one grade is no dispute"
    );
    grade(tok_d.clone(), review_of(&drawn, s0, rev_d), 50.0).await;
    let d = view(rid).await;
    assert_eq!(d["progress"]["disputes"], 1, "{d}");
    let third = d["samples"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["id"] == s0)
        .unwrap()["reviews"][2]
        .clone();
    assert_eq!(third["reason"], "dispute", "{d}");
    assert_eq!(third["ordinal"], 3);
    assert_eq!(
        third["reviewer_id"], rev_c,
        "the only one left who may take it"
    );
    let third_id = third["id"].as_i64().unwrap();
    // rev_c sees it blinded, and decides it.
    let seen = ok(
        &app,
        &tok_c,
        Method::GET,
        &format!("/api/inspections/reviews/{third_id}"),
        None,
        StatusCode::OK,
    )
    .await;
    assert_eq!(seen["reason"], "dispute");
    assert_blind("the dispute review", &seen, &secrets);
    grade(tok_c.clone(), third_id, 66.0).await;
    // The other sample: two passes, no dispute.
    grade(tok_a.clone(), review_of(&drawn, s1, rev_a), 80.0).await;
    grade(tok_d.clone(), review_of(&drawn, s1, rev_d), 90.0).await;
    let d = view(rid).await;
    assert_eq!(d["progress"]["disputes"], 1, "{d}");
    assert_eq!(d["progress"]["passed"], 2, "{d}");
    assert_eq!(
        d["units"],
        json!([{"unit": "成都七中", "samples": 2, "decided": 2, "passed": 2, "pass_rate": 1.0}])
    );
    // Decided observations are `reviewed`.
    let o = ok(
        &app,
        &f.observer_login,
        Method::GET,
        &format!("/api/observations/{}", samples[1]["observation_id"]),
        None,
        StatusCode::OK,
    )
    .await;
    assert_eq!(o["state"], "reviewed");

    // A change of grade, and an appeal (once).
    grade(tok_a.clone(), review_of(&drawn, s1, rev_a), 85.0).await;
    let before = ok(
        &app,
        &manager,
        Method::GET,
        &format!("/api/inspections/rounds/{rid}/audit"),
        None,
        StatusCode::OK,
    )
    .await;
    let appealed = ok(
        &app,
        &manager,
        Method::POST,
        &format!("/api/inspections/samples/{s1}/appeal"),
        Some(json!({"reason": "教师申诉：评分标准理解不同"})),
        StatusCode::CREATED,
    )
    .await;
    let s1v = appealed["samples"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["id"] == s1)
        .unwrap()
        .clone();
    assert_eq!(s1v["reviews"][2]["reason"], "appeal", "{s1v}");
    assert_eq!(s1v["outcome"], "pending", "the appeal's review is open");
    let (s, v) = app
        .call(
            Some(&manager),
            Method::POST,
            &format!("/api/inspections/samples/{s1}/appeal"),
            Some(json!({"reason": "再次申诉"})),
        )
        .await;
    assert_eq!(
        (s, kind(&v)),
        (StatusCode::CONFLICT, "sample-appealed"),
        "{v}"
    );

    // The audit log: every grade and change, in order, and it only grew.
    let after = ok(
        &app,
        &manager,
        Method::GET,
        &format!("/api/inspections/rounds/{rid}/audit"),
        None,
        StatusCode::OK,
    )
    .await;
    let (b, a) = (before.as_array().unwrap(), after.as_array().unwrap());
    assert_eq!(&a[..b.len()], &b[..], "earlier entries unchanged");
    let actions: Vec<&str> = a.iter().map(|e| e["action"].as_str().unwrap()).collect();
    for want in [
        "round.create",
        "round.pool",
        "round.draw",
        "review.assign",
        "review.grade",
        "review.change",
        "sample.dispute",
        "sample.appeal",
    ] {
        assert!(actions.contains(&want), "{want} missing: {actions:?}");
    }
    assert_eq!(actions.iter().filter(|a| **a == "review.grade").count(), 5);
    assert!(a
        .iter()
        .any(|e| e["action"] == "round.draw"
            && e["detail"].as_str().unwrap().contains("seed 424242")));
    assert!(a.iter().any(
        |e| e["action"] == "review.change" && e["detail"].as_str().unwrap().contains("80 → 85")
    ));
}

both_backends!(inspection, inspection_flow);

/// Grades evidence item `id` as the fixture's county observer.
async fn grade_evidence(app: &App, f: &Fixture, id: i64, grade: &str) {
    ok(
        app,
        &f.observer_login,
        Method::PUT,
        &format!("/api/evidence/{id}/grade"),
        Some(json!({"grade": grade})),
        StatusCode::OK,
    )
    .await;
}

/// Ability-point submissions (微能力点) drawn in a county round: the term's decided points
/// (not one still waiting for a grade), every stratum covered; the blinded reviewer sees the
/// point, the pseudonym and the evidence (files renamed and served by index, the clip through
/// the blinded media route with its Title blanked), never a teacher, school or region in any
/// field, file name or served byte; grades are 优秀/合格/不合格, a straddling pair makes the
/// dispute review; the teacher whose point it is appeals the decided outcome once, and no
/// one else may.
async fn ability_point_flow(app: App) {
    let f = fixture(&app).await;
    let l1 = lesson(&app, &f, "delivery", "08:00", "08:40").await;
    // The lesson's processed recording (4 s; its Title names the room and 王老师).
    let rec = support::stdraft::stored_recording(&app, l1, 4).await;
    app.clock.set(support::school::at("12:00"));
    let add = |token: String, teacher: i64, body: Value| {
        let app = &app;
        async move {
            ok(
                app,
                &token,
                Method::POST,
                &format!("/api/teachers/{teacher}/evidence"),
                Some(body),
                StatusCode::CREATED,
            )
            .await["id"]
                .as_i64()
                .unwrap()
        }
    };
    let wang = f.teacher_login.clone();
    let li = f.other_teacher_login.clone();
    // 王老师: A1 (a clip of the recording and a file named after her), A3 (a file only).
    let a1 = add(wang.clone(), f.teacher,
        json!({"term": "2026秋", "point": "A1", "recording_id": rec, "in_ms": 1000, "out_ms": 3000, "note": "王老师的课前问卷"})).await;
    let pdf = b"%PDF-1.4\n% plan\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n".to_vec();
    let (s, v) =
        upload_evidence(&app, &wang, a1, "王老师 成都七中 教学设计.pdf", pdf.clone()).await;
    assert_eq!(s, 201, "{v}");
    let a1_file = v["id"].as_i64().unwrap();
    let a3 = add(
        wang.clone(),
        f.teacher,
        json!({"term": "2026秋", "point": "A3"}),
    )
    .await;
    let png = [
        0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13, b'I', b'H', b'D', b'R', 0, 0,
        0, 1, 0, 0, 0, 1, 8, 2, 0, 0, 0,
    ]
    .to_vec();
    let (s, v) = upload_evidence(&app, &wang, a3, "昭觉县 作业.png", png.clone()).await;
    assert_eq!(s, 201, "{v}");
    let a3_file = v["id"].as_i64().unwrap();
    // 李老师 (音乐): A3 graded, A1 not yet graded (not drawable).
    let li_a3 = add(
        li.clone(),
        f.other_teacher,
        json!({"term": "2026秋", "point": "A3"}),
    )
    .await;
    let li_a1 = add(
        li.clone(),
        f.other_teacher,
        json!({"term": "2026秋", "point": "A1"}),
    )
    .await;
    grade_evidence(&app, &f, a1, "excellent").await;
    grade_evidence(&app, &f, a3, "pass").await;
    grade_evidence(&app, &f, li_a3, "fail").await;

    let r2 = app
        .create(
            "/api/regions",
            json!({"province": "四川省", "city": "成都市", "county": "武侯区"}),
        )
        .await;
    let (rev_a, tok_a) = inspector(
        &app,
        "rev_a",
        json!({"scope": "school", "school_id": f.partner_a}),
    )
    .await;
    let (rev_c, tok_c) =
        inspector(&app, "rev_c", json!({"scope": "county", "region_id": r2})).await;
    let (rev_d, tok_d) =
        inspector(&app, "rev_d", json!({"scope": "county", "region_id": r2})).await;
    let manager = f.inspector_login.clone();
    let round = ok(
        &app,
        &manager,
        Method::POST,
        "/api/inspections/rounds",
        Some(
            json!({"name": "2026秋 微能力点抽检", "level": "county", "region_id": f.region,
                    "source": "ability_point", "term": "2026秋", "seed": 77, "ratio": 1.0}),
        ),
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(round["round"]["source"], "ability_point");
    assert_eq!(round["round"]["term"], "2026秋");
    let rid = round["round"]["id"].as_i64().unwrap();
    ok(
        &app,
        &manager,
        Method::PUT,
        &format!("/api/inspections/rounds/{rid}/reviewers"),
        Some(json!({"reviewers": [{"user_id": rev_a, "expert": true},
            {"user_id": rev_c}, {"user_id": rev_d, "expert": true}]})),
        StatusCode::OK,
    )
    .await;
    let drawn = ok(
        &app,
        &manager,
        Method::POST,
        &format!("/api/inspections/rounds/{rid}/draw"),
        None,
        StatusCode::OK,
    )
    .await;
    // Three decided points (王 A1, 王 A3, 李 A3); 李 A1 waits for its grade.
    assert_eq!(drawn["round"]["population"], 3, "{drawn}");
    let samples = drawn["samples"].as_array().unwrap().clone();
    assert_eq!(samples.len(), 3, "a ratio of 1 draws them all: {drawn}");
    let drawn_points: BTreeSet<(i64, String)> = samples
        .iter()
        .map(|x| {
            assert_eq!(x["observation_id"], Value::Null, "{x}");
            (
                x["ability_point"]["teacher_id"].as_i64().unwrap(),
                x["ability_point"]["point"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        drawn_points,
        BTreeSet::from([
            (f.teacher, "A1".to_string()),
            (f.teacher, "A3".to_string()),
            (f.other_teacher, "A3".to_string())
        ])
    );
    // Strata: 王 A1's clip is of a 三年级 英语 lesson (primary); the others have no clip
    // (stage other, the teacher's first subject).
    let strata: BTreeSet<(String, String)> = samples
        .iter()
        .map(|x| {
            (
                x["stratum"]["stage"].as_str().unwrap().to_string(),
                x["stratum"]["subject"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        strata,
        BTreeSet::from([
            ("primary".to_string(), "英语".to_string()),
            ("other".to_string(), "英语".to_string()),
            ("other".to_string(), "音乐".to_string())
        ])
    );
    let sample_of = |teacher: i64, point: &str| -> Value {
        samples
            .iter()
            .find(|x| {
                x["ability_point"]["teacher_id"] == teacher && x["ability_point"]["point"] == point
            })
            .unwrap()
            .clone()
    };
    let s_a1 = sample_of(f.teacher, "A1");
    let s_a3 = sample_of(f.teacher, "A3");
    // A drawn point's evidence no longer changes: no new item, no withdrawal; a point not
    // drawn still takes evidence.
    for (token, teacher, point, want) in [
        (&wang, f.teacher, "A1", StatusCode::CONFLICT),
        (&li, f.other_teacher, "A1", StatusCode::CREATED),
    ] {
        let (s, v) = app
            .call(
                Some(token),
                Method::POST,
                &format!("/api/teachers/{teacher}/evidence"),
                Some(json!({"term": "2026秋", "point": point})),
            )
            .await;
        assert_eq!(s, want, "{v}");
        if s == StatusCode::CONFLICT {
            assert_eq!(kind(&v), "point-drawn", "{v}");
        }
    }
    // Nor are its grades changed: the observer who graded A1 cannot re-grade it now.
    let (s, v) = app
        .call(
            Some(&f.observer_login),
            Method::PUT,
            &format!("/api/evidence/{a1}/grade"),
            Some(json!({"grade": "fail"})),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert_eq!(kind(&v), "point-drawn", "{v}");

    // What the reviewer must never see.
    let (teacher_name,): (String,) = sqlx::query_as("SELECT name FROM teachers WHERE id = $1")
        .bind(f.teacher)
        .fetch_one(app.server.state().school.store.pool())
        .await
        .unwrap();
    let words: Vec<String> = [
        "成都七中",
        "昭觉县民族小学",
        "昭觉县城北小学",
        "HUB01",
        "ZJ01",
        "ZJ02",
        "王老师",
        "李老师",
        "阿依老师",
        "T001",
        "T002",
        "四川省",
        "凉山彝族自治州",
        "昭觉县",
        "成都市",
        "武侯区",
        "Unit 3 Colours",
        "教学设计",
        "作业",
        "课前问卷",
        "observer1",
        "inspector1",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    let mut ids: BTreeSet<i64> = [
        f.region,
        r2,
        f.hub_school,
        f.partner_a,
        f.partner_b,
        f.hub_room,
        f.teacher,
        f.other_teacher,
        l1,
        rec,
        a1,
        a3,
        li_a3,
        li_a1,
        a1_file,
        a3_file,
    ]
    .into_iter()
    .collect();
    ids.extend(
        samples
            .iter()
            .map(|x| x["ability_point"]["id"].as_i64().unwrap()),
    );
    let secrets = Secrets { words, ids };

    // Every response of every reviewer, walked field by field; the files and the clip's
    // media fetched and checked byte by byte.
    let has = |hay: &[u8], needle: &str| hay.windows(needle.len()).any(|w| w == needle.as_bytes());
    let mut files_seen = 0;
    let mut clips_seen = 0;
    for tok in [&tok_a, &tok_c, &tok_d] {
        let mine = ok(
            &app,
            tok,
            Method::GET,
            "/api/inspections/reviews",
            None,
            StatusCode::OK,
        )
        .await;
        assert_blind("GET /api/inspections/reviews", &mine, &secrets);
        for r in mine.as_array().unwrap() {
            let id = r["id"].as_i64().unwrap();
            assert_eq!(r["marks"], "grade", "{r}");
            let one = ok(
                &app,
                tok,
                Method::GET,
                &format!("/api/inspections/reviews/{id}"),
                None,
                StatusCode::OK,
            )
            .await;
            assert_blind(
                &format!("GET /api/inspections/reviews/{id}"),
                &one,
                &secrets,
            );
            assert_eq!(one["evidence"], Value::Null, "{one}");
            let point = &one["point"];
            assert!(point["code"] == "A1" || point["code"] == "A3", "{one}");
            assert!(!point["name"].as_str().unwrap().is_empty(), "{one}");
            for item in point["items"].as_array().unwrap() {
                for file in item["files"].as_array().unwrap() {
                    let url = file["url"].as_str().unwrap();
                    let name = file["name"].as_str().unwrap();
                    assert!(name.starts_with("材料"), "{file}");
                    let (status, ct, bytes) = raw(&app, tok, url, None).await;
                    assert_eq!(status, 200, "{url}");
                    assert!(ct == "application/pdf" || ct == "image/png", "{ct}");
                    assert!(bytes == pdf || bytes == png, "the file as uploaded");
                    files_seen += 1;
                }
                if let Some(clip) = item["clip"].as_object() {
                    assert_eq!(
                        (clip["in_ms"].as_i64(), clip["out_ms"].as_i64()),
                        (Some(1000), Some(3000))
                    );
                    let urls = clip["urls"].as_array().unwrap();
                    assert_eq!(urls.len(), 1, "{one}");
                    let (status, ct, bytes) = raw(&app, tok, urls[0].as_str().unwrap(), None).await;
                    assert_eq!((status, ct.as_str()), (200, "audio/webm"));
                    assert!(
                        !has(&bytes, &teacher_name),
                        "the teacher's name is in the clip"
                    );
                    assert!(
                        !has(&bytes, &format!("lesson-{l1}")),
                        "the room is in the clip"
                    );
                    clips_seen += 1;
                }
            }
            let media = ok(
                &app,
                tok,
                Method::GET,
                &format!("/api/inspections/reviews/{id}/media"),
                None,
                StatusCode::OK,
            )
            .await;
            assert_blind(
                &format!("GET /api/inspections/reviews/{id}/media"),
                &media,
                &secrets,
            );
            let clipped = point["code"] == "A1" && one["pseudonym"] == s_a1["pseudonym"];
            assert_eq!(
                media.as_array().unwrap().len(),
                usize::from(clipped),
                "{media}"
            );
            if clipped {
                assert_eq!(media[0]["item"], 1);
                assert_eq!(media[0]["in_ms"], 1000);
            }
            // A file index past the end says nothing.
            let (s, v) = app
                .call(
                    Some(tok),
                    Method::GET,
                    &format!("/api/inspections/reviews/{id}/files/9"),
                    None,
                )
                .await;
            assert_eq!((s, kind(&v)), (StatusCode::NOT_FOUND, "not-found"), "{v}");
            assert_blind("a missing file", &v, &secrets);
        }
    }
    assert!(files_seen >= 4, "every file of every review: {files_seen}");
    assert!(
        clips_seen >= 2,
        "the clip for both of its reviewers: {clips_seen}"
    );
    // The served file's name is made up, not the uploaded one.
    let a1_review = s_a1["reviews"][0]["id"].as_i64().unwrap();
    let a1_reviewer = s_a1["reviews"][0]["reviewer_id"].as_i64().unwrap();
    let token_of = |u: i64| {
        if u == rev_a {
            tok_a.clone()
        } else if u == rev_c {
            tok_c.clone()
        } else {
            tok_d.clone()
        }
    };
    let r = app
        .oneshot_request(
            Some(&token_of(a1_reviewer)),
            Method::GET,
            &format!("/api/inspections/reviews/{a1_review}/files/0"),
            None,
        )
        .await;
    let cd = r.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .to_string();
    let decoded = percent_encoding::percent_decode_str(&cd)
        .decode_utf8()
        .unwrap();
    assert!(decoded.contains("材料1-1.pdf"), "{decoded}");
    assert!(
        !decoded.contains("教学设计") && !decoded.contains(&teacher_name),
        "{decoded}"
    );

    // Grading with the point grades: a score is refused, so is an unknown grade.
    let grade = |review: i64, reviewer: i64, body: Value, want: StatusCode| {
        let app = &app;
        let tok = token_of(reviewer);
        let secrets = &secrets;
        async move {
            let v = ok(
                app,
                &tok,
                Method::PUT,
                &format!("/api/inspections/reviews/{review}"),
                Some(body),
                want,
            )
            .await;
            assert_blind("PUT /api/inspections/reviews/{id}", &v, secrets);
            v
        }
    };
    let v = grade(
        a1_review,
        a1_reviewer,
        json!({"score": 80}),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(kind(&v), "invalid-field");
    grade(
        a1_review,
        a1_reviewer,
        json!({"grade": "优秀"}),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    let v = grade(
        a1_review,
        a1_reviewer,
        json!({"grade": "excellent", "comment": "问卷设计合理"}),
        StatusCode::OK,
    )
    .await;
    assert_eq!(v["grade"], "excellent");
    // The teacher cannot appeal while reviews are open.
    let s_a1_id = s_a1["id"].as_i64().unwrap();
    let (s, v) = app
        .call(
            Some(&wang),
            Method::POST,
            "/api/inspections/appeals",
            Some(json!({"sample_id": s_a1_id, "reason": "评分有误"})),
        )
        .await;
    assert_eq!(
        (s, kind(&v)),
        (StatusCode::CONFLICT, "sample-pending"),
        "{v}"
    );
    // 不合格 against 优秀: the pair straddles pass/fail → a dispute review, to the one left.
    let second = &s_a1["reviews"][1];
    grade(
        second["id"].as_i64().unwrap(),
        second["reviewer_id"].as_i64().unwrap(),
        json!({"grade": "fail"}),
        StatusCode::OK,
    )
    .await;
    let view = ok(
        &app,
        &manager,
        Method::GET,
        &format!("/api/inspections/rounds/{rid}"),
        None,
        StatusCode::OK,
    )
    .await;
    let s_a1v = view["samples"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["id"] == s_a1_id)
        .unwrap()
        .clone();
    assert_eq!(s_a1v["disputed"], true, "{s_a1v}");
    let third = s_a1v["reviews"][2].clone();
    assert_eq!(third["reason"], "dispute", "{s_a1v}");
    let used: BTreeSet<i64> = s_a1["reviews"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["reviewer_id"].as_i64().unwrap())
        .collect();
    assert!(
        !used.contains(&third["reviewer_id"].as_i64().unwrap()),
        "{s_a1v}"
    );
    grade(
        third["id"].as_i64().unwrap(),
        third["reviewer_id"].as_i64().unwrap(),
        json!({"grade": "pass"}),
        StatusCode::OK,
    )
    .await;
    // Two 合格-or-better against one 不合格: passed. A pair that agrees is no dispute.
    for r in s_a3["reviews"].as_array().unwrap() {
        grade(
            r["id"].as_i64().unwrap(),
            r["reviewer_id"].as_i64().unwrap(),
            json!({"grade": "pass"}),
            StatusCode::OK,
        )
        .await;
    }
    let view = ok(
        &app,
        &manager,
        Method::GET,
        &format!("/api/inspections/rounds/{rid}"),
        None,
        StatusCode::OK,
    )
    .await;
    let outcome = |id: &Value| {
        view["samples"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["id"] == *id)
            .unwrap()["outcome"]
            .clone()
    };
    assert_eq!(outcome(&s_a1["id"]), "passed", "{view}");
    assert_eq!(outcome(&s_a3["id"]), "passed", "{view}");
    assert_eq!(view["progress"]["disputes"], 1, "{view}");

    // The appeal: only the teacher whose point it is, once, with a reason.
    for (who, want) in [
        (li.clone(), "out-of-scope"),
        (manager.clone(), "role-forbidden"),
        (f.observer_login.clone(), "role-forbidden"),
        (tok_a.clone(), "role-forbidden"),
    ] {
        let (s, v) = app
            .call(
                Some(&who),
                Method::POST,
                "/api/inspections/appeals",
                Some(json!({"sample_id": s_a1_id, "reason": "评分有误"})),
            )
            .await;
        assert_eq!((s, kind(&v)), (StatusCode::FORBIDDEN, want), "{v}");
    }
    let (s, v) = app
        .call(
            Some(&wang),
            Method::POST,
            "/api/inspections/appeals",
            Some(json!({"sample_id": s_a1_id, "reason": "  "})),
        )
        .await;
    assert_eq!(
        (s, kind(&v)),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid-field"),
        "{v}"
    );
    let (s, v) = app
        .call(
            Some(&wang),
            Method::POST,
            "/api/inspections/appeals",
            Some(json!({"sample_id": 999_999, "reason": "评分有误"})),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    let appealed = ok(
        &app,
        &wang,
        Method::POST,
        "/api/inspections/appeals",
        Some(json!({"sample_id": s_a1_id, "reason": "课前问卷的设计依据未被考虑"})),
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(appealed["appealed"], true, "{appealed}");
    assert_eq!(
        appealed["state"], "reviewing",
        "the appeal's review is open: {appealed}"
    );
    assert_eq!(appealed["may_appeal"], false);
    assert_eq!(appealed["reviews"], 4);
    let (s, v) = app
        .call(
            Some(&wang),
            Method::POST,
            "/api/inspections/appeals",
            Some(json!({"sample_id": s_a1_id, "reason": "再次申诉"})),
        )
        .await;
    assert_eq!(
        (s, kind(&v)),
        (StatusCode::CONFLICT, "sample-appealed"),
        "{v}"
    );
    let log = ok(
        &app,
        &manager,
        Method::GET,
        &format!("/api/inspections/rounds/{rid}/audit"),
        None,
        StatusCode::OK,
    )
    .await;
    let me = ok(&app, &wang, Method::GET, "/api/me", None, StatusCode::OK).await;
    let wang_user = me["id"].as_i64().unwrap();
    assert!(
        log.as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "sample.appeal"
                && e["actor"] == format!("u:{wang_user}")
                && e["detail"].as_str().unwrap().contains("设计依据")),
        "{log}"
    );
    assert!(log
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["action"] == "review.grade" && e["detail"] == "grade excellent"));
}

both_backends!(ability_points, ability_point_flow);

/// The audit table refuses UPDATE and DELETE (and TRUNCATE on PostgreSQL) at the database,
/// and no code in `src/` issues either.
async fn append_only(store: Store) {
    use classrelay::observe::inspect_store as istore;
    let region: i64 = sqlx::query_scalar(
        "INSERT INTO regions (province, city, county) VALUES ('省', '市', '县') RETURNING id",
    )
    .fetch_one(store.pool())
    .await
    .unwrap();
    let round = istore::insert_round(
        &store,
        &istore::NewRound {
            name: "r",
            level: "county",
            region_id: region,
            source: "observation",
            term: None,
            ratio: 0.1,
            seed: 7,
            reviews_per_sample: 2,
            pass_mark: 60.0,
        },
        "u:1",
        1,
    )
    .await
    .unwrap();
    assert!(istore::set_pool(&store, round, &[], "u:1", 2)
        .await
        .unwrap());
    let log = istore::audit_log(&store, round).await.unwrap();
    assert_eq!(log.len(), 2);
    for sql in [
        "UPDATE inspection_audit SET detail = 'rewritten'",
        "UPDATE inspection_audit SET at = 0 WHERE id = (SELECT MIN(id) FROM inspection_audit)",
        "DELETE FROM inspection_audit",
        "DELETE FROM inspection_audit WHERE action = 'round.pool'",
    ] {
        let r = sqlx::query(sql).execute(store.pool()).await;
        assert!(r.is_err(), "{sql} went through");
    }
    if store.backend() == classrelay::store::Backend::Postgres {
        assert!(sqlx::query("TRUNCATE inspection_audit")
            .execute(store.pool())
            .await
            .is_err());
    }
    let again = istore::audit_log(&store, round).await.unwrap();
    assert_eq!(
        serde_json::to_value(&again).unwrap(),
        serde_json::to_value(&log).unwrap()
    );
}

#[tokio::test]
async fn the_audit_log_is_append_only_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open("", &dir.path().join("audit.db")).await.unwrap();
    s.migrate().await.unwrap();
    append_only(s).await;
}

#[tokio::test]
async fn the_audit_log_is_append_only_on_postgres() {
    let dir = tempfile::tempdir().unwrap();
    let Some(url) = support::pg::fresh_database().await else {
        return;
    };
    let s = Store::open(&url, &dir.path().join("unused.db"))
        .await
        .unwrap();
    s.migrate().await.unwrap();
    append_only(s).await;
}

#[test]
fn no_code_path_updates_or_deletes_the_audit_log() {
    fn walk(dir: &std::path::Path, out: &mut Vec<(String, String)>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push((
                    p.display().to_string(),
                    std::fs::read_to_string(&p).unwrap(),
                ));
            }
        }
    }
    let mut files = Vec::new();
    walk(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    assert!(files.len() > 20);
    for (path, text) in files {
        let t = text
            .to_uppercase()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        for bad in [
            "UPDATE INSPECTION_AUDIT",
            "DELETE FROM INSPECTION_AUDIT",
            "TRUNCATE INSPECTION_AUDIT",
            "DROP TABLE INSPECTION_AUDIT",
        ] {
            assert!(!t.contains(bad), "{path} has `{bad}`");
        }
    }
}
