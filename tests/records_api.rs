//! The teacher-record API (教师数字档案) on both database backends (a SQLite file and a real
//! PostgreSQL server): a term's record of a hub teacher and of an assisting teacher built
//! from real lessons, recordings and submitted observations (drafts and lessons still to come
//! are left out, every figure names its sources), its CSV export, micro-ability evidence
//! (a clip of the teacher's own recording and files checked by content), grading by the
//! rule 优秀 only if all 优秀 / any 不合格 fails, and bad input refused with a reason. Nothing
//! is mocked: the server runs in-process on its real store.
//!
//! Run: `cargo test --test records_api`.

mod support;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use support::school::{
    at, fixture, inspector, lesson, upload_evidence as upload, App, Backend, Fixture,
};

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

/// Opens an observation of `lesson` with `methods`, codes and scores it, and submits it
/// unless `draft`; its id.
async fn observed(
    app: &App,
    f: &Fixture,
    lesson: i64,
    st: &str,
    fias: Option<&str>,
    score: Option<f64>,
    draft: bool,
) -> i64 {
    let mut methods = vec!["st"];
    if fias.is_some() {
        methods.push("fias");
    }
    if score.is_some() {
        methods.push("rubric");
    }
    let o = &f.observer_login;
    let v = ok(
        app,
        o,
        Method::POST,
        "/api/observations",
        Some(json!({"lesson_id": lesson, "methods": methods})),
        StatusCode::CREATED,
    )
    .await;
    let id = v["id"].as_i64().unwrap();
    let codes = format!("/api/observations/{id}/codes");
    ok(
        app,
        o,
        Method::POST,
        &codes,
        Some(json!({"method": "st", "codes": st})),
        StatusCode::OK,
    )
    .await;
    if let Some(c) = fias {
        ok(
            app,
            o,
            Method::POST,
            &codes,
            Some(json!({"method": "fias", "codes": c})),
            StatusCode::OK,
        )
        .await;
    }
    if let Some(fraction) = score {
        let items = v["rubric"]["items"].as_array().unwrap();
        let scores: Vec<Value> = items
            .iter()
            .map(|i| json!({"item": i["key"], "score": i["weight"].as_f64().unwrap() * fraction}))
            .collect();
        ok(
            app,
            o,
            Method::PUT,
            &format!("/api/observations/{id}/scores"),
            Some(json!({"scores": scores})),
            StatusCode::OK,
        )
        .await;
    }
    if !draft {
        ok(
            app,
            o,
            Method::POST,
            &format!("/api/observations/{id}/submit"),
            None,
            StatusCode::OK,
        )
        .await;
    }
    id
}

/// A stopped recording of `lesson`, `minutes` long, as the recorder leaves its row.
async fn recording(app: &App, lesson: i64, starts: i64, minutes: i64) -> i64 {
    let pool = app.server.state().school.store.pool().clone();
    let row = sqlx::query(
        "INSERT INTO recordings (room, lesson_id, started_at, ended_at, state) \
         VALUES ($1, $2, $3, $4, 'stopped') RETURNING id",
    )
    .bind(format!("lesson-{lesson}"))
    .bind(lesson)
    .bind(starts)
    .bind(starts + minutes * 60_000)
    .fetch_one(&pool)
    .await
    .unwrap();
    use sqlx::Row;
    row.try_get::<i64, _>("id").unwrap()
}

fn ids(v: &Value) -> Vec<i64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_i64().unwrap())
        .collect()
}

async fn the_record(app: App) {
    let f = fixture(&app).await;
    // Two delivery lessons this morning (08:00–08:40, 09:00–09:40), one this afternoon still
    // to come (15:00), each with sites at partner A (assisted by 阿依老师) and partner B.
    let l1 = lesson(&app, &f, "delivery", "08:00", "08:40").await;
    let l2 = lesson(&app, &f, "sync", "09:00", "09:40").await;
    let l3 = lesson(&app, &f, "delivery", "15:00", "15:40").await;
    let r1 = recording(&app, l1, at("08:00"), 40).await;
    // Observation 1 of lesson 1: every rubric item at 0.9 of its weight = 90 (优秀);
    // S-T TTTTSSTTSTTTSSSSTTTT: N 20, N_T 13, g 7 → Rt 0.65, Ch 0.3 → mixed;
    // FIAS 5548825: N 7, teacher talk (5,5,4,2,5) 5/7, student talk (8,8) 2/7, silence 0.
    let o1 = observed(
        &app,
        &f,
        l1,
        "TTTTSSTTSTTTSSSSTTTT",
        Some("5548825"),
        Some(0.9),
        false,
    )
    .await;
    // Observation 2 of lesson 2: rubric at 0.7 = 70 (合格), S-T all T: Rt 1 → lecture.
    let o2 = observed(&app, &f, l2, "TTTTTTTTTT", None, Some(0.7), false).await;
    // A draft of lesson 1 (never part of a record).
    let draft = observed(&app, &f, l1, "SSSS", None, None, true).await;
    // 12:00: the morning lessons are over, the afternoon's is not.
    app.clock.set(at("12:00"));
    let path = format!("/api/teachers/{}/record?term=2026秋", f.teacher);
    let v = ok(
        &app,
        &f.teacher_login,
        Method::GET,
        &path,
        None,
        StatusCode::OK,
    )
    .await;
    assert_eq!(v["teacher"]["name"], "王老师");
    assert_eq!(v["teacher"]["school_name"], "成都七中");
    assert_eq!(v["term"]["name"], "2026秋");
    let hub = &v["teaching"]["hub"];
    // 2 lessons × 40 minutes; the 15:00 lesson is still to come.
    assert_eq!(
        (hub["count"].as_i64(), hub["minutes"].as_i64()),
        (Some(2), Some(80))
    );
    assert_eq!(ids(&hub["lesson_ids"]), vec![l1, l2]);
    assert_eq!(ids(&v["teaching"]["upcoming"]), vec![l3]);
    let modes = hub["modes"].as_array().unwrap();
    assert_eq!(modes.len(), 2);
    assert_eq!(
        (modes[0]["key"].as_str(), ids(&modes[0]["lesson_ids"])),
        (Some("delivery"), vec![l1])
    );
    assert_eq!(
        (modes[1]["key"].as_str(), ids(&modes[1]["lesson_ids"])),
        (Some("sync"), vec![l2])
    );
    // Paired schools: partner A and partner B (two classrooms there, counted once a lesson).
    let paired = hub["paired_schools"].as_array().unwrap();
    assert_eq!(paired.len(), 2, "{paired:?}");
    for p in paired {
        assert_eq!(
            (p["lessons"].as_i64(), p["minutes"].as_i64()),
            (Some(2), Some(80))
        );
    }
    assert_eq!(paired[0]["name"], "昭觉县民族小学");
    assert_eq!(v["teaching"]["assisting"]["count"], 0);
    let lessons = v["teaching"]["lessons"].as_array().unwrap();
    // A page for people, not the API's JSON.
    assert_eq!(lessons[0]["url"], format!("/lesson?id={l1}"));
    assert_eq!(lessons[0]["role"], "hub");
    // The recording of lesson 1.
    assert_eq!(v["recordings"].as_array().unwrap().len(), 1);
    assert_eq!(v["recordings"][0]["id"], r1);
    assert_eq!(v["recordings"][0]["exports"], json!([]), "{v}");
    // Observation results, in lesson order, with the URLs they came from; no draft.
    let obs = &v["observations"];
    let res = obs["results"].as_array().unwrap();
    assert_eq!(
        res.iter()
            .map(|r| r["id"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        vec![o1, o2]
    );
    assert!(!res.iter().any(|r| r["id"] == draft));
    assert_eq!(res[0]["url"], format!("/observe?observation={o1}"));
    assert_eq!(res[0]["api"], format!("/api/observations/{o1}"));
    assert_eq!(res[0]["rubric"]["total"], 90.0);
    assert_eq!(res[0]["rubric"]["band_name"], "优秀");
    assert_eq!(
        res[0]["st"],
        json!({"n": 20, "rt": 0.65, "ch": 0.3, "type": "mixed"})
    );
    let fi = &res[0]["fias"];
    assert_eq!(fi["n"], 7);
    assert!((fi["teacher_talk"].as_f64().unwrap() - 5.0 / 7.0).abs() < 1e-12);
    assert!((fi["student_talk"].as_f64().unwrap() - 2.0 / 7.0).abs() < 1e-12);
    assert_eq!(fi["silence"], 0.0);
    assert_eq!(res[1]["st"]["type"], "lecture");
    assert_eq!(res[1]["fias"], Value::Null);
    // (90 + 70) / 2 = 80 over both observations.
    assert_eq!(obs["rubric_mean"]["mean"], 80.0);
    assert_eq!(ids(&obs["rubric_mean"]["observation_ids"]), vec![o1, o2]);
    let types: Vec<(String, Vec<i64>)> = obs["st_types"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["key"].as_str().unwrap().to_string(),
                ids(&t["observation_ids"]),
            )
        })
        .collect();
    assert_eq!(
        types,
        vec![("lecture".into(), vec![o2]), ("mixed".into(), vec![o1])]
    );
    assert_eq!(ids(&obs["fias_teacher_talk"]["observation_ids"]), vec![o1]);
    assert_eq!(v["abilities"]["points"], json!([]));
    assert_eq!(v["abilities"]["meets_minimum"], false);

    // The assisting teacher's record (read by an admin): the same two lessons, assisted,
    // paired with the hub school; observations are the hub teacher's, not theirs.
    let v = ok(
        &app,
        &app.admin,
        Method::GET,
        &format!("/api/teachers/{}/record?term=2026秋", f.assistant_a),
        None,
        StatusCode::OK,
    )
    .await;
    let a = &v["teaching"]["assisting"];
    assert_eq!(
        (a["count"].as_i64(), a["minutes"].as_i64()),
        (Some(2), Some(80))
    );
    assert_eq!(a["paired_schools"][0]["key"], f.hub_school.to_string());
    assert_eq!(a["paired_schools"][0]["name"], "成都七中");
    assert_eq!(v["teaching"]["hub"]["count"], 0);
    assert_eq!(v["observations"]["results"], json!([]));
    assert_eq!(v["recordings"], json!([]));

    // CSV: one figure a row with its sources.
    // A finished showcase export of that recording (the row the export runner leaves; the
    // encoding itself is tests/gst_export.rs's) is listed under the recording and in the CSV.
    let pool = app.server.state().school.store.pool().clone();
    let job: i64 = sqlx::query_scalar(
        "INSERT INTO export_jobs (recording_id, preset, state, progress, created_at, finished_at) \
         VALUES ($1, 'showcase', 'done', 1000, 1, 2) RETURNING id",
    )
    .bind(r1)
    .fetch_one(&pool)
    .await
    .unwrap();
    let v = ok(
        &app,
        &f.teacher_login,
        Method::GET,
        &path,
        None,
        StatusCode::OK,
    )
    .await;
    let exports = &v["recordings"][0]["exports"];
    assert_eq!(exports.as_array().map(Vec::len), Some(1), "{v}");
    assert_eq!(exports[0]["id"], job);
    assert_eq!(exports[0]["preset"], "showcase");
    assert_eq!(exports[0]["state"], "done");
    let r = app
        .oneshot_request(
            Some(&f.teacher_login),
            Method::GET,
            &format!("/api/teachers/{}/record.csv?term=2026秋", f.teacher),
            None,
        )
        .await;
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let body = axum::body::to_bytes(r.into_body(), usize::MAX)
        .await
        .unwrap();
    // A UTF-8 byte order mark first (Excel on a Chinese Windows reads the file as UTF-8).
    assert_eq!(
        &body[..3],
        b"\xEF\xBB\xBF",
        "{:?}",
        &body[..8.min(body.len())]
    );
    let csv = String::from_utf8(body[3..].to_vec()).unwrap();
    assert!(
        csv.starts_with("类别,项目,数值,来源编号,来源链接\n"),
        "{csv}"
    );
    assert!(
        csv.contains(&format!(
            "授课,主讲课数,2,{l1};{l2},/lesson?id={l1} /lesson?id={l2}"
        )),
        "{csv}"
    );
    assert!(
        csv.contains(&format!(
            "评课,观察 #{o1} 量表总分,90 优秀,{o1},/observe?observation={o1}"
        )),
        "{csv}"
    );
    assert!(
        csv.contains(&format!("评课,量表平均分,80.000,{o1};{o2}")),
        "{csv}"
    );
    assert!(!csv.contains(&format!("#{draft}")), "{csv}");
    assert!(csv.contains(&format!("录像,晒课导出,1,{job}")), "{csv}");

    // An observation amended after submission changes the record on the next read.
    ok(
        &app,
        &f.observer_login,
        Method::POST,
        &format!("/api/observations/{o2}/amendments"),
        Some(json!({"reason": "复核", "codes": {"method": "st", "codes": "SSSSSSSSSS"}})),
        StatusCode::CREATED,
    )
    .await;
    let v = ok(
        &app,
        &f.teacher_login,
        Method::GET,
        &path,
        None,
        StatusCode::OK,
    )
    .await;
    assert_eq!(v["observations"]["results"][1]["st"]["type"], "practice");
}
both_backends!(record_of_a_term, the_record);

/// The record's CSV as `token` reads it.
async fn record_csv(app: &App, token: &str, teacher: i64) -> String {
    let r = app
        .oneshot_request(
            Some(token),
            Method::GET,
            &format!("/api/teachers/{teacher}/record.csv?term=2026秋"),
            None,
        )
        .await;
    assert_eq!(r.status().as_u16(), 200);
    let body = axum::body::to_bytes(r.into_body(), usize::MAX)
        .await
        .unwrap();
    String::from_utf8(body.to_vec()).unwrap()
}

/// The inspection outcome in the record (抽检结果): an observation and an ability point,
/// each drawn in a county round, show the round, the review state and, once every review is
/// graded, the outcome (never who reviewed or their grades), in the JSON and the CSV; the
/// teacher appeals the decided observation and the record shows it under review again.
async fn inspection_in_the_record(app: App) {
    let f = fixture(&app).await;
    let l1 = lesson(&app, &f, "delivery", "08:00", "08:40").await;
    let l2 = lesson(&app, &f, "delivery", "09:00", "09:40").await;
    app.clock.set(at("12:00"));
    let o1 = observed(&app, &f, l1, "TTSSTTSS", None, None, false).await;
    // Not drawn: a round's ratio of 1 takes every submitted one there is when it draws, and
    // this one is submitted after the draw.
    let t = &f.teacher_login;
    let e = ok(
        &app,
        t,
        Method::POST,
        &format!("/api/teachers/{}/evidence", f.teacher),
        Some(json!({"term": "2026秋", "point": "A1"})),
        StatusCode::CREATED,
    )
    .await["id"]
        .as_i64()
        .unwrap();
    ok(
        &app,
        &f.observer_login,
        Method::PUT,
        &format!("/api/evidence/{e}/grade"),
        Some(json!({"grade": "pass"})),
        StatusCode::OK,
    )
    .await;
    let r2 = app
        .create(
            "/api/regions",
            json!({"province": "四川省", "city": "成都市", "county": "武侯区"}),
        )
        .await;
    let (rev, tok) = inspector(&app, "rev_x", json!({"scope": "county", "region_id": r2})).await;
    let manager = f.inspector_login.clone();
    let mut rounds = Vec::new();
    for (name, extra) in [
        ("县级课堂抽检", json!({})),
        (
            "县级微能力点抽检",
            json!({"source": "ability_point", "term": "2026秋"}),
        ),
    ] {
        let mut body = json!({"name": name, "level": "county", "region_id": f.region,
                              "seed": 5, "ratio": 1.0, "reviews_per_sample": 1});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let id = ok(
            &app,
            &manager,
            Method::POST,
            "/api/inspections/rounds",
            Some(body),
            StatusCode::CREATED,
        )
        .await["round"]["id"]
            .as_i64()
            .unwrap();
        ok(
            &app,
            &manager,
            Method::PUT,
            &format!("/api/inspections/rounds/{id}/reviewers"),
            Some(json!({"reviewers": [{"user_id": rev, "expert": true}]})),
            StatusCode::OK,
        )
        .await;
        let d = ok(
            &app,
            &manager,
            Method::POST,
            &format!("/api/inspections/rounds/{id}/draw"),
            None,
            StatusCode::OK,
        )
        .await;
        assert_eq!(d["samples"].as_array().unwrap().len(), 1, "{d}");
        rounds.push((id, d["samples"][0].clone()));
    }
    let o2 = observed(&app, &f, l2, "TTTT", None, None, false).await;
    let path = format!("/api/teachers/{}/record?term=2026秋", f.teacher);
    let record = |token: String| {
        let app = &app;
        let path = path.clone();
        async move { ok(app, &token, Method::GET, &path, None, StatusCode::OK).await }
    };
    let result = |v: &Value, id: i64| -> Value {
        v["observations"]["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == id)
            .unwrap()
            .clone()
    };
    let point = |v: &Value| v["abilities"]["points"][0].clone();
    // Drawn, under review.
    let v = record(t.clone()).await;
    let i = &result(&v, o1)["inspections"];
    assert_eq!(i.as_array().unwrap().len(), 1, "{v}");
    assert_eq!(i[0]["round_id"], rounds[0].0);
    assert_eq!(i[0]["round_name"], "县级课堂抽检");
    assert_eq!(i[0]["level"], "county");
    assert_eq!(i[0]["sample_id"], rounds[0].1["id"]);
    assert_eq!(i[0]["state"], "reviewing");
    assert_eq!(
        (i[0]["reviews"].as_u64(), i[0]["graded"].as_u64()),
        (Some(1), Some(0))
    );
    assert_eq!(i[0]["outcome"], Value::Null);
    assert_eq!(i[0]["may_appeal"], false);
    assert_eq!(result(&v, o2)["inspections"], json!([]), "never drawn");
    let p = point(&v);
    assert_eq!(p["code"], "A1");
    assert_eq!(p["inspections"][0]["round_name"], "县级微能力点抽检", "{p}");
    assert_eq!(p["inspections"][0]["state"], "reviewing");
    // The reviewer grades: the observation fails (50 < 60), the point passes (合格).
    let reviews = ok(
        &app,
        &tok,
        Method::GET,
        "/api/inspections/reviews",
        None,
        StatusCode::OK,
    )
    .await;
    for r in reviews.as_array().unwrap() {
        let body = if r["marks"] == "grade" {
            json!({"grade": "pass"})
        } else {
            json!({"score": 50})
        };
        ok(
            &app,
            &tok,
            Method::PUT,
            &format!("/api/inspections/reviews/{}", r["id"]),
            Some(body),
            StatusCode::OK,
        )
        .await;
    }
    for who in [t.clone(), f.observer_login.clone(), app.admin.clone()] {
        let v = record(who).await;
        let i = &result(&v, o1)["inspections"][0];
        assert_eq!(
            (i["state"].as_str(), i["outcome"].as_str()),
            (Some("decided"), Some("failed")),
            "{v}"
        );
        assert_eq!(i["graded"], 1);
        let p = &point(&v)["inspections"][0];
        assert_eq!(
            (p["state"].as_str(), p["outcome"].as_str()),
            (Some("decided"), Some("passed")),
            "{v}"
        );
        // Never the reviewers: no name, no id, no grade of theirs.
        let text = v.to_string();
        assert!(
            !text.contains("专家rev_x") && !text.contains("rev_x"),
            "{text}"
        );
        assert!(!text.contains("reviewer"), "{text}");
        assert!(!text.contains("\"score\":50"), "{text}");
    }
    let v = record(t.clone()).await;
    assert_eq!(result(&v, o1)["inspections"][0]["may_appeal"], true);
    assert_eq!(result(&v, o1)["state"], "reviewed");
    let csv = record_csv(&app, t, f.teacher).await;
    assert!(
        csv.contains(&format!(
            "抽检,观察 #{o1} 县级抽检「县级课堂抽检」,不合格,{o1},/observe?observation={o1}"
        )),
        "{csv}"
    );
    assert!(
        csv.contains(&format!(
            "抽检,微能力点 A1 县级抽检「县级微能力点抽检」,合格,{e},"
        )),
        "{csv}"
    );
    // The teacher appeals the failed observation: under review again, appealed, no second
    // appeal offered.
    let a = ok(
        &app,
        t,
        Method::POST,
        "/api/inspections/appeals",
        Some(json!({"sample_id": rounds[0].1["id"], "reason": "课堂以学生活动为主，评分未考虑"})),
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(a["sample_id"], rounds[0].1["id"]);
    let v = record(t.clone()).await;
    let i = &result(&v, o1)["inspections"][0];
    assert_eq!(
        (
            i["state"].as_str(),
            i["appealed"].as_bool(),
            i["may_appeal"].as_bool()
        ),
        (Some("reviewing"), Some(true), Some(false)),
        "{v}"
    );
    assert_eq!(i["reviews"], 2);
    assert_eq!(i["outcome"], Value::Null);
    let csv = record_csv(&app, t, f.teacher).await;
    assert!(csv.contains("评审中 1/2 已申诉"), "{csv}");
}
both_backends!(inspection_outcome_in_the_record, inspection_in_the_record);

async fn evidence(app: App) {
    let f = fixture(&app).await;
    let l1 = lesson(&app, &f, "delivery", "08:00", "08:40").await;
    let rec = recording(&app, l1, at("08:00"), 40).await;
    app.clock.set(at("12:00"));
    let t = &f.teacher_login;
    let add = format!("/api/teachers/{}/evidence", f.teacher);
    // A1: a clip of minutes 5–8 of the teacher's own recording.
    let e1 = ok(&app, t, Method::POST, &add,
        Some(json!({"term": "2026秋", "point": "A1", "recording_id": rec, "in_ms": 300_000, "out_ms": 480_000, "note": "课前问卷"})),
        StatusCode::CREATED).await;
    assert_eq!(e1["recording_id"], rec);
    assert_eq!(e1["grade"], Value::Null);
    let e1 = e1["id"].as_i64().unwrap();
    // A1 again (a second item) and A3 with files only.
    let e2 = ok(
        &app,
        t,
        Method::POST,
        &add,
        Some(json!({"term": "2026秋", "point": "A1"})),
        StatusCode::CREATED,
    )
    .await["id"]
        .as_i64()
        .unwrap();
    let e3 = ok(
        &app,
        t,
        Method::POST,
        &add,
        Some(json!({"term": "2026秋", "point": "A3"})),
        StatusCode::CREATED,
    )
    .await["id"]
        .as_i64()
        .unwrap();
    // A PDF, recognised by its content.
    let pdf = b"%PDF-1.4\n% lesson plan\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n".to_vec();
    let (s, v) = upload(&app, t, e3, "第三单元 教学设计.pdf", pdf.clone()).await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(
        (v["kind"].as_str(), v["mime"].as_str()),
        (Some("pdf"), Some("application/pdf"))
    );
    assert_eq!(v["size"], pdf.len());
    let url = v["url"].as_str().unwrap().to_string();
    // Read back as uploaded, by the teacher and by an admin; not by another teacher.
    for who in [t, &app.admin] {
        let r = app
            .oneshot_request(Some(who), Method::GET, &url, None)
            .await;
        assert_eq!(r.status().as_u16(), 200);
        assert_eq!(r.headers()["content-type"], "application/pdf");
        assert!(r.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains("filename*=UTF-8''"));
        assert_eq!(
            axum::body::to_bytes(r.into_body(), usize::MAX)
                .await
                .unwrap()
                .to_vec(),
            pdf
        );
    }
    let (s, v) = app
        .call(Some(&f.other_teacher_login), Method::GET, &url, None)
        .await;
    assert_eq!((s, kind(&v)), (StatusCode::FORBIDDEN, "out-of-scope"));
    // Text called .pdf is not a PDF; an empty file; a file over 20 MiB; no name.
    let (s, v) = upload(
        &app,
        t,
        e3,
        "notes.pdf",
        b"just some text, not a pdf".to_vec(),
    )
    .await;
    assert_eq!((s, kind(&v)), (415, "unsupported-file-type"), "{v}");
    let (s, _) = upload(&app, t, e3, "empty.pdf", vec![]).await;
    assert_eq!(s, 422);
    let mut big = pdf.clone();
    big.resize(20 * 1024 * 1024 + 1, b' ');
    let (s, v) = upload(&app, t, e3, "big.pdf", big).await;
    assert_eq!((s, kind(&v)), (413, "file-too-large"), "{v}");
    let (s, _) = upload(&app, t, e3, "", pdf.clone()).await;
    assert_eq!(s, 422);
    // Another teacher cannot add evidence to, or files under, this teacher's record.
    let (s, v) = app
        .call(
            Some(&f.other_teacher_login),
            Method::POST,
            &add,
            Some(json!({"term": "2026秋", "point": "A1"})),
        )
        .await;
    assert_eq!((s, kind(&v)), (StatusCode::FORBIDDEN, "out-of-scope"));
    let (s, _) = upload(&app, &f.other_teacher_login, e3, "x.pdf", pdf.clone()).await;
    assert_eq!(s, 403);

    // Grading: the county observer grades; points follow the rule.
    let grade = |id: i64, g: Value| {
        let app = &app;
        let o = f.observer_login.clone();
        async move {
            app.call(
                Some(&o),
                Method::PUT,
                &format!("/api/evidence/{id}/grade"),
                Some(json!({"grade": g})),
            )
            .await
        }
    };
    let path = format!("/api/teachers/{}/record?term=2026秋", f.teacher);
    let point = |v: &Value, code: &str| {
        v["abilities"]["points"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["code"] == code)
            .cloned()
            .unwrap()
    };
    let v = ok(&app, t, Method::GET, &path, None, StatusCode::OK).await;
    assert_eq!(point(&v, "A1")["status"], "pending");
    assert_eq!(point(&v, "A1")["evidence"].as_array().unwrap().len(), 2);
    assert_eq!(point(&v, "A3")["evidence"][0]["files"][0]["url"], url);
    // A1: 优秀 + 优秀 → 优秀.
    assert_eq!(grade(e1, json!("excellent")).await.0, StatusCode::OK);
    let v = ok(&app, t, Method::GET, &path, None, StatusCode::OK).await;
    assert_eq!(
        point(&v, "A1")["status"],
        "pending",
        "one item is still ungraded"
    );
    assert_eq!(grade(e2, json!("excellent")).await.0, StatusCode::OK);
    let v = ok(&app, t, Method::GET, &path, None, StatusCode::OK).await;
    assert_eq!(
        (
            point(&v, "A1")["grade"].as_str(),
            point(&v, "A1")["grade_name"].as_str()
        ),
        (Some("excellent"), Some("优秀"))
    );
    // 优秀 + 合格 → 合格; then one 不合格 fails the point.
    grade(e2, json!("pass")).await;
    let v = ok(&app, t, Method::GET, &path, None, StatusCode::OK).await;
    assert_eq!(point(&v, "A1")["grade"], "pass");
    grade(e2, json!("fail")).await;
    grade(e3, json!("pass")).await;
    let v = ok(&app, t, Method::GET, &path, None, StatusCode::OK).await;
    assert_eq!(point(&v, "A1")["grade"], "fail");
    assert_eq!(point(&v, "A1")["grade_name"], "不合格");
    assert_eq!(point(&v, "A3")["grade"], "pass");
    assert_eq!(
        v["abilities"]["meets_minimum"], false,
        "2 of at least 3 points"
    );
    // The teacher cannot grade (role rule); a graded item no longer changes.
    let (s, v) = app
        .call(
            Some(t),
            Method::PUT,
            &format!("/api/evidence/{e1}/grade"),
            Some(json!({"grade": "excellent"})),
        )
        .await;
    assert_eq!((s, kind(&v)), (StatusCode::FORBIDDEN, "role-forbidden"));
    let (s, v) = app
        .call(
            Some(t),
            Method::DELETE,
            &format!("/api/evidence/{e1}"),
            None,
        )
        .await;
    assert_eq!((s, kind(&v)), (StatusCode::CONFLICT, "evidence-graded"));
    let (s, v) = upload(&app, t, e3, "more.pdf", pdf.clone()).await;
    assert_eq!((s, kind(&v)), (409, "evidence-graded"));
    // An ungraded item is withdrawn, with its files.
    let e4 = ok(
        &app,
        t,
        Method::POST,
        &add,
        Some(json!({"term": "2026秋", "point": "B6"})),
        StatusCode::CREATED,
    )
    .await["id"]
        .as_i64()
        .unwrap();
    let (s, v) = upload(&app, t, e4, "slides.pdf", pdf.clone()).await;
    assert_eq!(s, 201);
    let file = app.dir.path().join(format!("evidence/{e4}/{}", v["id"]));
    assert!(file.exists(), "{file:?}");
    ok(
        &app,
        t,
        Method::DELETE,
        &format!("/api/evidence/{e4}"),
        None,
        StatusCode::NO_CONTENT,
    )
    .await;
    assert!(!file.exists());
    let v = ok(&app, t, Method::GET, &path, None, StatusCode::OK).await;
    assert!(v["abilities"]["points"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["code"] != "B6"));
    // Taking a grade back makes the point wait again.
    grade(e2, Value::Null).await;
    let v = ok(&app, t, Method::GET, &path, None, StatusCode::OK).await;
    assert_eq!(point(&v, "A1")["status"], "pending");
    // Every grade and change of grade is in the audit log, with who made it and what it was.
    let pool = app.server.state().school.store.pool().clone();
    let rows = sqlx::query(
        "SELECT actor, object, detail FROM audit_log WHERE action = 'evidence.grade' ORDER BY id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    use sqlx::Row;
    let log: Vec<(String, String)> = rows
        .iter()
        .map(|r| (r.get::<String, _>("object"), r.get::<String, _>("detail")))
        .collect();
    assert_eq!(log.len(), 6, "{log:?}");
    assert!(rows
        .iter()
        .all(|r| r.get::<String, _>("actor").starts_with("u:")));
    assert_eq!(log[0].0, format!("evidence:{e1}"));
    assert!(
        log[0]
            .1
            .ends_with("point A1 term 2026秋: ungraded → excellent"),
        "{log:?}"
    );
    assert!(log[5].1.ends_with("fail → ungraded"), "{log:?}");
}
both_backends!(evidence_and_grades, evidence);

async fn bad_input(app: App) {
    let f = fixture(&app).await;
    let l1 = lesson(&app, &f, "delivery", "08:00", "08:40").await;
    let rec = recording(&app, l1, at("08:00"), 40).await;
    let t = &f.teacher_login;
    let rec_path = |q: &str| format!("/api/teachers/{}/record{q}", f.teacher);
    let cases: Vec<(Method, String, Option<Value>, StatusCode, &str)> = vec![
        (
            Method::GET,
            rec_path(""),
            None,
            StatusCode::UNPROCESSABLE_ENTITY,
            "term is needed",
        ),
        (
            Method::GET,
            rec_path("?term=2031春"),
            None,
            StatusCode::NOT_FOUND,
            "no term",
        ),
        (
            Method::GET,
            "/api/teachers/abc/record?term=2026秋".into(),
            None,
            StatusCode::NOT_FOUND,
            "not an id",
        ),
        (
            Method::GET,
            "/api/teachers/99999/record?term=2026秋".into(),
            None,
            StatusCode::NOT_FOUND,
            "",
        ),
        (
            Method::POST,
            format!("/api/teachers/{}/evidence", f.teacher),
            Some(json!({"term": "2026秋", "point": "Z9"})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "not a configured point",
        ),
        (
            Method::POST,
            format!("/api/teachers/{}/evidence", f.teacher),
            Some(json!({"term": "2031春", "point": "A1"})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "no term",
        ),
        (
            Method::POST,
            format!("/api/teachers/{}/evidence", f.teacher),
            Some(json!({"term": "2026秋", "point": "A1", "recording_id": rec})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "together",
        ),
        (
            Method::POST,
            format!("/api/teachers/{}/evidence", f.teacher),
            Some(
                json!({"term": "2026秋", "point": "A1", "recording_id": rec, "in_ms": 5000, "out_ms": 5000}),
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "below out_ms",
        ),
        (
            Method::POST,
            format!("/api/teachers/{}/evidence", f.teacher),
            Some(
                json!({"term": "2026秋", "point": "A1", "recording_id": rec, "in_ms": 0, "out_ms": 41 * 60_000}),
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "past the recording's end",
        ),
        (
            Method::POST,
            format!("/api/teachers/{}/evidence", f.teacher),
            Some(
                json!({"term": "2026秋", "point": "A1", "recording_id": 4242, "in_ms": 0, "out_ms": 1}),
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "no recording",
        ),
        (
            Method::POST,
            format!("/api/teachers/{}/evidence", f.teacher),
            Some(json!({"term": "2026秋", "point": "A1", "note": "长".repeat(2001)})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "2000",
        ),
        (
            Method::POST,
            format!("/api/teachers/{}/evidence", f.teacher),
            Some(json!({"term": "2026秋", "point": "A1", "colour": "red"})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "",
        ),
        (
            Method::PUT,
            "/api/evidence/777/grade".into(),
            Some(json!({"grade": "pass"})),
            StatusCode::NOT_FOUND,
            "",
        ),
        (
            Method::GET,
            "/api/evidence/777/files/1".into(),
            None,
            StatusCode::NOT_FOUND,
            "",
        ),
    ];
    for (m, path, body, want, says) in cases {
        let who = if m == Method::PUT {
            &f.observer_login
        } else {
            t
        };
        let (s, v) = app.call(Some(who), m.clone(), &path, body).await;
        assert_eq!(s, want, "{m} {path}: {v}");
        assert!(
            v["detail"].as_str().unwrap_or("").contains(says),
            "{m} {path}: {v}"
        );
        assert!(
            v["type"]
                .as_str()
                .unwrap_or("")
                .starts_with("urn:classrelay:problem:"),
            "{v}"
        );
    }
    // A clip of a recording of someone else's lesson is refused.
    let other = app
        .create("/api/lessons", json!({"mode": "delivery", "subject": "英语", "grade": "三年级", "hub_teacher_id": f.other_teacher,
            "hub_classroom_id": f.hub_room, "starts_at": at("10:00"), "ends_at": at("10:40"), "sites": [{"classroom_id": f.room_a}]}))
        .await;
    let theirs = recording(&app, other, at("10:00"), 40).await;
    let (s, v) = app.call(Some(t), Method::POST, &format!("/api/teachers/{}/evidence", f.teacher),
        Some(json!({"term": "2026秋", "point": "A1", "recording_id": theirs, "in_ms": 0, "out_ms": 1000}))).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(
        v["detail"].as_str().unwrap().contains("not of a lesson"),
        "{v}"
    );
    // A grade that is not one of the three.
    let e = ok(
        &app,
        t,
        Method::POST,
        &format!("/api/teachers/{}/evidence", f.teacher),
        Some(json!({"term": "2026秋", "point": "A1"})),
        StatusCode::CREATED,
    )
    .await["id"]
        .as_i64()
        .unwrap();
    let (s, v) = app
        .call(
            Some(&f.observer_login),
            Method::PUT,
            &format!("/api/evidence/{e}/grade"),
            Some(json!({"grade": "优秀"})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    // The configured list is served.
    let v = ok(
        &app,
        t,
        Method::GET,
        "/api/ability-points",
        None,
        StatusCode::OK,
    )
    .await;
    assert_eq!(v["point"].as_array().unwrap().len(), 30);
    assert_eq!(v["min_points"], 3);
}
both_backends!(bad_input_is_refused_with_a_reason, bad_input);
