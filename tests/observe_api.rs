//! The observation API on both database backends (a SQLite file and a real PostgreSQL
//! server): the contract of issue 21 (`POST /api/observations`, `.../codes`, the `st` and
//! `fias` figures of `GET /api/observations/{id}`), batching independence through the API,
//! corrections, immutability after submission, the amendment audit, rubric versioning, the
//! charts, and bad input. Nothing here is mocked: the server runs in-process on its real
//! store.
//!
//! Run: `cargo test --test observe_api`.

mod support;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use support::school::{fixture, lesson, App, Backend, Fixture};

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

/// `token` calls; panics unless the status is `want`.
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

async fn setup(app: &App) -> (Fixture, i64) {
    let f = fixture(app).await;
    let l = lesson(app, &f, "delivery", "08:00", "08:40").await;
    (f, l)
}

async fn open(app: &App, f: &Fixture, body: Value) -> i64 {
    ok(
        app,
        &f.observer_login,
        Method::POST,
        "/api/observations",
        Some(body),
        StatusCode::CREATED,
    )
    .await["id"]
        .as_i64()
        .unwrap()
}

async fn append(app: &App, f: &Fixture, id: i64, method: &str, codes: Value) -> Value {
    ok(
        app,
        &f.observer_login,
        Method::POST,
        &format!("/api/observations/{id}/codes"),
        Some(json!({"method": method, "codes": codes})),
        StatusCode::OK,
    )
    .await
}

async fn get(app: &App, token: &str, id: i64) -> Value {
    ok(
        app,
        token,
        Method::GET,
        &format!("/api/observations/{id}"),
        None,
        StatusCode::OK,
    )
    .await
}

/// The seven items of the default rubric, all scored: 9+8+18+17+9+16+8 = 85 (优秀).
fn full_scores() -> Value {
    json!({"scores": [
        {"item": "objectives", "score": 9}, {"item": "content", "score": 8},
        {"item": "structure", "score": 18}, {"item": "methods", "score": 17, "comment": "远端互动充分"},
        {"item": "classroom_state", "score": 9}, {"item": "outcomes", "score": 16},
        {"item": "features", "score": 8},
    ]})
}

async fn contract(app: App) {
    let (f, l) = setup(&app).await;
    let id = open(
        &app,
        &f,
        json!({"lesson_id": l, "methods": ["rubric", "st", "fias"]}),
    )
    .await;
    // S-T: "TTTTSS" then ["T","T","S","T","T","T"] then "SSSSTTTT":
    // TTTT SS TT S TTT SSSS TTTT → N = 20, N_T = 13, g = 7, Rt = 0.65, Ch = 6/20 = 0.3 → mixed.
    append(&app, &f, id, "st", json!("TTTTSS")).await;
    append(&app, &f, id, "st", json!(["T", "T", "S", "T", "T", "T"])).await;
    let r = append(&app, &f, id, "st", json!("SSSSTTTT")).await;
    assert_eq!(r["st"]["n"], 20);
    // FIAS "5548825" (10 would be written 0): padded 10 5 5 4 8 8 2 5 10 → 8 pairs.
    append(&app, &f, id, "fias", json!("5548825")).await;
    let v = get(&app, &f.observer_login, id).await;
    assert_eq!(
        v["st"],
        json!({"n": 20, "n_t": 13, "runs": 7, "rt": 0.65, "ch": 0.3, "type": "mixed"})
    );
    let fi = &v["fias"];
    assert_eq!(fi["n"], 7);
    let m = fi["matrix"].as_array().unwrap();
    assert_eq!(m.len(), 10);
    let cell = |i: usize, j: usize| m[i - 1][j - 1].as_u64().unwrap();
    // matrix[i][j] counts code i+1 followed by j+1.
    for (a, b) in [
        (10, 5),
        (5, 5),
        (5, 4),
        (4, 8),
        (8, 8),
        (8, 2),
        (2, 5),
        (5, 10),
    ] {
        assert_eq!(cell(a, b), 1, "({a},{b})");
    }
    let total: u64 = m
        .iter()
        .flat_map(|r| r.as_array().unwrap())
        .map(|c| c.as_u64().unwrap())
        .sum();
    assert_eq!(total, 8, "N + 1 pairs");
    // Teacher 5/7, student 2/7, silence 0, i/d = 2/3, revised = 1/0 → null, diagonal 2.
    assert!((fi["teacher_talk"].as_f64().unwrap() - 5.0 / 7.0).abs() < 1e-12);
    assert!((fi["student_talk"].as_f64().unwrap() - 2.0 / 7.0).abs() < 1e-12);
    assert_eq!(fi["silence"], 0.0);
    assert!((fi["indirect_direct"].as_f64().unwrap() - 2.0 / 3.0).abs() < 1e-12);
    assert_eq!(fi["revised_indirect_direct"], Value::Null);
    assert_eq!(fi["steady_state"], 2);
    // The default rubric came with the observation; scoring totals and bands it.
    assert_eq!(v["rubric"]["key"], "default");
    assert_eq!(v["rubric"]["version"], 1);
    let r = ok(
        &app,
        &f.observer_login,
        Method::PUT,
        &format!("/api/observations/{id}/scores"),
        Some(full_scores()),
        StatusCode::OK,
    )
    .await;
    assert_eq!(r["result"]["total"], 85.0);
    assert_eq!(r["result"]["band_name"], "优秀");
    // A comment at 12:40 into the lesson.
    let c = ok(
        &app,
        &f.observer_login,
        Method::POST,
        &format!("/api/observations/{id}/comments"),
        Some(json!({"at_ms": 760_000, "body": "此处为封闭式提问，可改为开放式"})),
        StatusCode::CREATED,
    )
    .await;
    assert!(c["id"].as_i64().unwrap() > 0);
    let v = get(&app, &f.observer_login, id).await;
    assert_eq!(v["comments"][0]["at_ms"], 760_000);
    assert_eq!(v["state"], "draft");
    // The charts are SVG.
    for chart in ["st.svg", "rt-ch.svg", "fias.svg"] {
        let r = app
            .oneshot_request(
                Some(&f.observer_login),
                Method::GET,
                &format!("/api/observations/{id}/{chart}"),
                None,
            )
            .await;
        assert_eq!(r.status().as_u16(), 200, "{chart}");
        assert!(r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("image/svg+xml"));
        let b = axum::body::to_bytes(r.into_body(), usize::MAX)
            .await
            .unwrap();
        assert!(b.starts_with(b"<svg xmlns"), "{chart}");
    }
    // Lists: by lesson, by teacher, mine.
    for q in [
        format!("lesson_id={l}"),
        format!("teacher_id={}", f.teacher),
        "mine=true".to_string(),
    ] {
        let v = ok(
            &app,
            &f.observer_login,
            Method::GET,
            &format!("/api/observations?{q}"),
            None,
            StatusCode::OK,
        )
        .await;
        assert_eq!(v.as_array().unwrap().len(), 1, "{q}: {v}");
    }
    let v = ok(
        &app,
        &f.observer_login,
        Method::GET,
        &format!("/api/observations?teacher_id={}", f.other_teacher),
        None,
        StatusCode::OK,
    )
    .await;
    assert_eq!(v, json!([]));
}
both_backends!(the_contract, contract);

/// A deterministic, lesson-like sequence (seeded xorshift: runs of 1-6 samples).
fn sequence(n: usize, seed: u64, alphabet: &[char]) -> String {
    let mut x = seed;
    let mut out = String::new();
    while out.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let c = alphabet[(x % alphabet.len() as u64) as usize];
        for _ in 0..(1 + (x >> 8) % 6) {
            out.push(c);
        }
    }
    out.truncate(n);
    out
}

async fn batching(app: App) {
    let (f, l) = setup(&app).await;
    let st = sequence(80, 7, &['T', 'S']);
    let fias = sequence(800, 11, &['1', '2', '3', '4', '5', '6', '7', '8', '9', '0']);
    let whole = open(&app, &f, json!({"lesson_id": l, "methods": ["st", "fias"]})).await;
    append(&app, &f, whole, "st", json!(st)).await;
    append(&app, &f, whole, "fias", json!(fias)).await;
    let want = get(&app, &f.observer_login, whole).await;
    // The same codes in uneven batches, strings and arrays mixed, one sample at a time for
    // the first ten.
    let piecewise = open(&app, &f, json!({"lesson_id": l, "methods": ["st", "fias"]})).await;
    let mut cuts = vec![0usize];
    cuts.extend(1..=10);
    cuts.extend([17, 18, 40, 41, 79, 80]);
    for w in cuts.windows(2) {
        let part = &st[w[0]..w[1]];
        let codes = if w[0] % 2 == 0 {
            json!(part)
        } else {
            json!(part.chars().map(|c| c.to_string()).collect::<Vec<_>>())
        };
        append(&app, &f, piecewise, "st", codes).await;
    }
    for (i, part) in fias.as_bytes().chunks(97).enumerate() {
        let part = std::str::from_utf8(part).unwrap();
        let codes = if i % 2 == 0 {
            json!(part)
        } else {
            let nums: Vec<u8> = part
                .chars()
                .map(|c| match c.to_digit(10).unwrap() {
                    0 => 10,
                    d => d as u8,
                })
                .collect();
            json!(nums)
        };
        append(&app, &f, piecewise, "fias", codes).await;
    }
    let got = get(&app, &f.observer_login, piecewise).await;
    assert_eq!(got["st"], want["st"]);
    assert_eq!(got["fias"], want["fias"]);
    assert_eq!(got["codes"], want["codes"]);
    assert_eq!(want["st"]["n"], 80);
    assert_eq!(want["fias"]["n"], 800);
}
both_backends!(results_do_not_depend_on_batching, batching);

async fn corrections_and_immutability(app: App) {
    let (f, l) = setup(&app).await;
    let id = open(
        &app,
        &f,
        json!({"lesson_id": l, "methods": ["rubric", "st"], "interval_s": 15}),
    )
    .await;
    append(&app, &f, id, "st", json!("TTSSTX".replace('X', "T"))).await;
    // Backspace three times: TTSSTT → TTS.
    let r = ok(
        &app,
        &f.observer_login,
        Method::DELETE,
        &format!("/api/observations/{id}/codes?method=st&last=3"),
        None,
        StatusCode::OK,
    )
    .await;
    assert_eq!(r["codes"], "TTS");
    assert_eq!(r["st"]["n"], 3);
    let (s, v) = app
        .call(
            Some(&f.observer_login),
            Method::DELETE,
            &format!("/api/observations/{id}/codes?method=st&last=4"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    // Not finished: the rubric is not scored.
    let (s, v) = app
        .call(
            Some(&f.observer_login),
            Method::POST,
            &format!("/api/observations/{id}/submit"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(
        v["errors"][0].as_str().unwrap().contains("not scored"),
        "{v}"
    );
    // A draft is the observer's own: the lesson's teacher does not see it yet.
    let (s, v) = app
        .call(
            Some(&f.teacher_login),
            Method::GET,
            &format!("/api/observations/{id}"),
            None,
        )
        .await;
    assert_eq!(
        (s, kind(&v)),
        (StatusCode::FORBIDDEN, "out-of-scope"),
        "{v}"
    );
    ok(
        &app,
        &f.observer_login,
        Method::PUT,
        &format!("/api/observations/{id}/scores"),
        Some(full_scores()),
        StatusCode::OK,
    )
    .await;
    let v = ok(
        &app,
        &f.observer_login,
        Method::POST,
        &format!("/api/observations/{id}/submit"),
        None,
        StatusCode::OK,
    )
    .await;
    assert_eq!(v["state"], "submitted");
    // Now immutable: every change is a conflict.
    let changes: Vec<(Method, String, Option<Value>)> = vec![
        (
            Method::POST,
            format!("/api/observations/{id}/codes"),
            Some(json!({"method": "st", "codes": "T"})),
        ),
        (
            Method::DELETE,
            format!("/api/observations/{id}/codes?method=st&last=1"),
            None,
        ),
        (
            Method::PUT,
            format!("/api/observations/{id}/scores"),
            Some(full_scores()),
        ),
        (
            Method::POST,
            format!("/api/observations/{id}/comments"),
            Some(json!({"at_ms": 1000, "body": "late"})),
        ),
        (Method::POST, format!("/api/observations/{id}/submit"), None),
    ];
    for (m, path, body) in changes {
        let (s, v) = app
            .call(Some(&f.observer_login), m.clone(), &path, body)
            .await;
        assert_eq!(
            (s, kind(&v)),
            (StatusCode::CONFLICT, "observation-submitted"),
            "{m} {path}: {v}"
        );
    }
    let v = get(&app, &f.observer_login, id).await;
    assert_eq!(v["codes"]["st"], "TTS");
    assert_eq!(v["comments"], json!([]));
    // The lesson's hub teacher reads the submitted observation; the other teacher does not.
    let v = get(&app, &f.teacher_login, id).await;
    assert_eq!(v["rubric"]["total"], 85.0);
    let (s, _) = app
        .call(
            Some(&f.other_teacher_login),
            Method::GET,
            &format!("/api/observations/{id}"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let v = ok(
        &app,
        &f.teacher_login,
        Method::GET,
        &format!("/api/observations?teacher_id={}", f.teacher),
        None,
        StatusCode::OK,
    )
    .await;
    assert_eq!(v.as_array().unwrap().len(), 1);

    // Amendments: a reason is required; the change is applied and the original kept.
    let path = format!("/api/observations/{id}/amendments");
    let (s, v) = app
        .call(
            Some(&f.observer_login),
            Method::POST,
            &path,
            Some(json!({"reason": "  ", "scores": [{"item": "features", "score": 6}]})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let (s, v) = app
        .call(
            Some(&f.teacher_login),
            Method::POST,
            &path,
            Some(json!({"reason": "x", "scores": [{"item": "features", "score": 10}]})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "only the observer amends: {v}");
    let r = ok(
        &app,
        &f.observer_login,
        Method::POST,
        &path,
        Some(json!({"reason": "复看录像：特色环节评分偏高", "scores": [{"item": "features", "score": 6}],
                    "codes": {"method": "st", "codes": "TTST"}})),
        StatusCode::CREATED,
    )
    .await;
    let v = &r["observation"];
    assert_eq!(v["rubric"]["total"], 83.0, "85 − 8 + 6");
    assert_eq!(v["rubric"]["band_name"], "良好");
    assert_eq!(v["st"]["n"], 4);
    let a = &v["amendments"][0];
    assert_eq!(a["reason"], "复看录像：特色环节评分偏高");
    assert_eq!(
        a["old"]["scores"],
        json!([{"item": "features", "score": 8.0, "comment": ""}])
    );
    assert_eq!(a["new"]["scores"][0]["score"], 6.0);
    assert_eq!(a["old"]["codes"]["codes"], "TTS");
    assert_eq!(a["new"]["codes"]["codes"], "TTST");
    assert!(a["actor"].as_str().unwrap().starts_with("u:"));
    // The trail is append-only: a second amendment adds, the first stays.
    ok(
        &app,
        &f.observer_login,
        Method::POST,
        &path,
        Some(json!({"reason": "再次复核", "scores": [{"item": "features", "score": 7}]})),
        StatusCode::CREATED,
    )
    .await;
    let v = get(&app, &f.observer_login, id).await;
    let list = v["amendments"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["new"]["scores"][0]["score"], 6.0);
    assert_eq!(list[1]["old"]["scores"][0]["score"], 6.0);
    assert_eq!(v["rubric"]["total"], 84.0);
}
both_backends!(
    corrections_submission_and_amendments,
    corrections_and_immutability
);

async fn rubric_versions(app: App) {
    let (f, l) = setup(&app).await;
    let rubrics = ok(
        &app,
        &app.admin,
        Method::GET,
        "/api/rubrics",
        None,
        StatusCode::OK,
    )
    .await;
    let v1 = rubrics
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["key"] == "default")
        .unwrap()
        .clone();
    assert_eq!(v1["version"], 1);
    let id = open(&app, &f, json!({"lesson_id": l, "methods": ["rubric"]})).await;
    ok(
        &app,
        &f.observer_login,
        Method::PUT,
        &format!("/api/observations/{id}/scores"),
        Some(full_scores()),
        StatusCode::OK,
    )
    .await;
    // A rubric that does not add up is refused with the reason.
    let mut bad = v1["rubric"].clone();
    bad["items"][0]["weight"] = json!(15);
    let (s, v) = app
        .call(
            Some(&app.admin),
            Method::PUT,
            &format!("/api/rubrics/{}", v1["id"]),
            Some(bad),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        v["detail"]
            .as_str()
            .unwrap()
            .contains("add up to 105, not the total 100"),
        "{v}"
    );
    let mut gapped = v1["rubric"].clone();
    gapped["bands"][0]["min"] = json!(10);
    let (s, v) = app
        .call(
            Some(&app.admin),
            Method::PUT,
            &format!("/api/rubrics/{}", v1["id"]),
            Some(gapped),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(v["detail"].as_str().unwrap().contains("from 0"), "{v}");
    // Only a global admin edits; an observer may not at all.
    let (s, _) = app
        .call(
            Some(&f.observer_login),
            Method::PUT,
            &format!("/api/rubrics/{}", v1["id"]),
            Some(v1["rubric"].clone()),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // Edit: features becomes 5 and outcomes 25 (still 100) → version 2.
    let mut edit = v1["rubric"].clone();
    edit["items"][6]["weight"] = json!(5);
    edit["items"][5]["weight"] = json!(25);
    let v2 = ok(
        &app,
        &app.admin,
        Method::PUT,
        &format!("/api/rubrics/{}", v1["id"]),
        Some(edit.clone()),
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(v2["version"], 2);
    assert_ne!(v2["id"], v1["id"]);
    // Editing the old version again is a conflict: someone edited since.
    let (s, v) = app
        .call(
            Some(&app.admin),
            Method::PUT,
            &format!("/api/rubrics/{}", v1["id"]),
            Some(edit),
        )
        .await;
    assert_eq!((s, kind(&v)), (StatusCode::CONFLICT, "stale-version"));
    // The existing score keeps version 1: its total, band and weights are unchanged.
    let v = get(&app, &f.observer_login, id).await;
    assert_eq!(v["rubric"]["version"], 1);
    assert_eq!(v["rubric"]["id"], v1["id"]);
    assert_eq!(v["rubric"]["total"], 85.0);
    assert_eq!(v["rubric"]["items"][6]["weight"], 10);
    // Version 1 is still readable as it was.
    let old = ok(
        &app,
        &f.observer_login,
        Method::GET,
        &format!("/api/rubrics/{}", v1["id"]),
        None,
        StatusCode::OK,
    )
    .await;
    assert_eq!(old["rubric"], v1["rubric"]);
    let all = ok(
        &app,
        &app.admin,
        Method::GET,
        "/api/rubrics?all=true",
        None,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        all.as_array()
            .unwrap()
            .iter()
            .filter(|r| r["key"] == "default")
            .count(),
        2
    );
    // A new observation takes the newest version, where features takes at most 5.
    let id2 = open(&app, &f, json!({"lesson_id": l, "methods": ["rubric"]})).await;
    let v = get(&app, &f.observer_login, id2).await;
    assert_eq!(v["rubric"]["version"], 2);
    let (s, v) = app
        .call(
            Some(&f.observer_login),
            Method::PUT,
            &format!("/api/observations/{id2}/scores"),
            Some(full_scores()),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        v["detail"]
            .as_str()
            .unwrap()
            .contains("`features` scores 8 but takes 0 to 5"),
        "{v}"
    );
    // A new rubric of its own key.
    let mut mine = v1["rubric"].clone();
    mine["name"] = json!("数学学科评课量表");
    let r = ok(
        &app,
        &app.admin,
        Method::POST,
        "/api/rubrics",
        Some(json!({"key": "math", "rubric": mine})),
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(
        (r["key"].as_str(), r["version"].as_i64()),
        (Some("math"), Some(1))
    );
    let id3 = open(
        &app,
        &f,
        json!({"lesson_id": l, "methods": ["rubric"], "rubric_id": r["id"]}),
    )
    .await;
    assert_eq!(
        get(&app, &f.observer_login, id3).await["rubric"]["key"],
        "math"
    );
}
both_backends!(editing_a_rubric_keeps_existing_scores, rubric_versions);

async fn bad_input(app: App) {
    let (f, l) = setup(&app).await;
    let post = |body: Value| {
        let app = &app;
        let t = f.observer_login.clone();
        async move {
            app.call(Some(&t), Method::POST, "/api/observations", Some(body))
                .await
        }
    };
    let (s, v) = post(json!({"lesson_id": l, "methods": ["st", "video"]})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        v["detail"]
            .as_str()
            .unwrap()
            .contains("unknown method `video`"),
        "{v}"
    );
    let (s, _) = post(json!({"lesson_id": l, "methods": []})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let (s, _) = post(json!({"lesson_id": l, "methods": ["st", "st"]})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let (s, _) = post(json!({"lesson_id": l, "methods": ["st"], "interval_s": 0})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let (s, _) = post(json!({"lesson_id": l, "methods": ["rubric"], "rubric_id": 999})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let (s, v) = post(json!({"lesson_id": 999_999, "methods": ["st"]})).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    let (s, _) = post(json!({"lesson_id": "x", "methods": ["st"]})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    // An observer of another county may not observe this lesson.
    let r2 = app
        .create(
            "/api/regions",
            json!({"province": "四川省", "city": "凉山彝族自治州", "county": "布拖县"}),
        )
        .await;
    app.create(
        "/api/users",
        json!({"username": "observer2", "display_name": "o2", "role": "observer",
               "password": "password-123", "scope": "county", "region_id": r2}),
    )
    .await;
    let o2 = app.login("observer2", "password-123").await;
    let (s, v) = app
        .call(
            Some(&o2),
            Method::POST,
            "/api/observations",
            Some(json!({"lesson_id": l, "methods": ["st"]})),
        )
        .await;
    assert_eq!(
        (s, kind(&v)),
        (StatusCode::FORBIDDEN, "out-of-scope"),
        "{v}"
    );
    // Neither may a teacher or a classroom device open one.
    let dev = app.device(f.room_a).await;
    for t in [&f.teacher_login, &dev] {
        let (s, v) = app
            .call(
                Some(t),
                Method::POST,
                "/api/observations",
                Some(json!({"lesson_id": l, "methods": ["st"]})),
            )
            .await;
        assert_eq!(
            (s, kind(&v)),
            (StatusCode::FORBIDDEN, "role-forbidden"),
            "{v}"
        );
    }

    let id = open(&app, &f, json!({"lesson_id": l, "methods": ["st", "fias"]})).await;
    // Another observer reads nothing of it and writes nothing to it; a device never.
    let (s, _) = app
        .call(
            Some(&o2),
            Method::GET,
            &format!("/api/observations/{id}"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, v) = app
        .call(
            Some(&o2),
            Method::POST,
            &format!("/api/observations/{id}/codes"),
            Some(json!({"method": "st", "codes": "T"})),
        )
        .await;
    assert_eq!(
        (s, kind(&v)),
        (StatusCode::FORBIDDEN, "not-your-observation")
    );
    let (s, v) = app
        .call(
            Some(&dev),
            Method::GET,
            &format!("/api/observations/{id}"),
            None,
        )
        .await;
    assert_eq!((s, kind(&v)), (StatusCode::FORBIDDEN, "role-forbidden"));
    let (s, _) = app
        .call(
            Some(&f.observer_login),
            Method::GET,
            "/api/observations/424242",
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let codes = |method: &str, codes: Value| {
        let app = &app;
        let t = f.observer_login.clone();
        let body = json!({"method": method, "codes": codes});
        async move {
            app.call(
                Some(&t),
                Method::POST,
                &format!("/api/observations/{id}/codes"),
                Some(body),
            )
            .await
        }
    };
    for (m, c, want) in [
        ("st", json!("TTXS"), "code 2 (`X`) is not T or S"),
        ("st", json!(["T", "TS"]), "code 1"),
        ("st", json!({"T": 1}), "must be an array or a string"),
        ("fias", json!("55a"), "code 2 (`a`)"),
        (
            "fias",
            json!([5, 11]),
            "code 1 (`11`) is not a FIAS category 1-10",
        ),
        ("fias", json!([0]), "code 0"),
        ("video", json!("T"), "method must be st or fias"),
        ("rubric", json!("T"), "method must be st or fias"),
    ] {
        let (s, v) = codes(m, c.clone()).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{m} {c}: {v}");
        assert!(v["detail"].as_str().unwrap().contains(want), "{m} {c}: {v}");
        assert!(v["type"]
            .as_str()
            .unwrap()
            .starts_with("urn:classrelay:problem:"));
    }
    // Huge: over the per-request count (413), and over the body limit (413).
    let (s, v) = codes("st", json!("T".repeat(10_001))).await;
    assert_eq!(
        (s, kind(&v)),
        (StatusCode::PAYLOAD_TOO_LARGE, "too-many-codes"),
        "{v}"
    );
    let (s, _) = codes("fias", json!(vec![5; 1_000_000])).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    // Over the per-method total: 2 × 10 000 fit, one more does not.
    for _ in 0..2 {
        let (s, v) = codes("fias", json!("5".repeat(10_000))).await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }
    let (s, v) = codes("fias", json!("5")).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(
        v["detail"].as_str().unwrap().contains("at most 20000"),
        "{v}"
    );
    // Nothing of the refused requests was stored.
    let v = get(&app, &f.observer_login, id).await;
    assert_eq!(v["st"]["n"], 0);
    assert_eq!(v["st"]["rt"], Value::Null);
    assert_eq!(v["fias"]["n"], 20_000);
    // Comments off the timeline, empty, or on a method-less path.
    for body in [
        json!({"at_ms": -1, "body": "x"}),
        json!({"at_ms": 0, "body": " "}),
    ] {
        let (s, _) = app
            .call(
                Some(&f.observer_login),
                Method::POST,
                &format!("/api/observations/{id}/comments"),
                Some(body),
            )
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    }
    let (s, _) = app
        .call(
            Some(&f.observer_login),
            Method::PUT,
            &format!("/api/observations/{id}/scores"),
            Some(full_scores()),
        )
        .await;
    assert_eq!(
        s,
        StatusCode::UNPROCESSABLE_ENTITY,
        "no rubric in this observation"
    );
    let (s, _) = app
        .call(
            Some(&f.observer_login),
            Method::GET,
            &format!("/api/observations/{id}/rt-ch.svg"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let only_st = open(&app, &f, json!({"lesson_id": l, "methods": ["st"]})).await;
    let (s, _) = app
        .call(
            Some(&f.observer_login),
            Method::GET,
            &format!("/api/observations/{only_st}/fias.svg"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}
both_backends!(bad_input_is_refused_with_a_reason, bad_input);
