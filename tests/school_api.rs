//! The school API on both database backends: every entity's create/read/update/delete and
//! its refusals, timetable conflicts, CSV import (all or nothing) and export, login, device
//! tokens, and lessons made from the timetable. Each test runs on a SQLite file and on a
//! real PostgreSQL server (started by the test, see `support/pg.rs`).
//!
//! Run: `cargo test --test school_api`.

mod support;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use support::school::{fixture, App, Backend};

/// Runs `$body(app)` as two tests, one per backend; `$start` is `start` (loopback and UDP) or
/// `start_in_process` (the router through oneshot, no sockets).
macro_rules! both_backends {
    ($name:ident, $body:ident) => {
        both_backends!($name, $body, start);
    };
    ($name:ident, $body:ident, $start:ident) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let app = App::$start(Backend::Sqlite)
                    .await
                    .expect("sqlite always works");
                $body(app).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(app) = App::$start(Backend::Postgres).await {
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

async fn entities(app: App) {
    let f = fixture(&app).await;
    // Read back, list, filter.
    let (s, v) = app
        .call(
            Some(&app.admin),
            Method::GET,
            &format!("/api/schools/{}", f.hub_school),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["name"], "成都七中");
    assert_eq!(v["kind"], "hub");
    let (_, v) = app
        .call(
            Some(&app.admin),
            Method::GET,
            &format!("/api/classrooms?school_id={}", f.partner_b),
            None,
        )
        .await;
    assert_eq!(v.as_array().unwrap().len(), 2);
    let (_, v) = app
        .call(Some(&app.admin), Method::GET, "/api/teachers", None)
        .await;
    assert_eq!(v.as_array().unwrap().len(), 3);
    // Update.
    let v = app
        .admin_ok(Method::PUT, &format!("/api/classrooms/{}", f.room_a), json!({"school_id": f.partner_a, "name": "三年级1班", "kind": "interactive", "device": "希沃 C86 (2026)"}), StatusCode::OK)
        .await;
    assert_eq!(v["device"], "希沃 C86 (2026)");
    let pairing = app
        .create("/api/pairings", json!({"hub_school_id": f.hub_school, "partner_school_id": f.partner_a, "subject": "英语", "grade": "三年级", "term": "2026秋", "owner": "昭觉县教育局"}))
        .await;
    let (_, v) = app
        .call(
            Some(&app.admin),
            Method::GET,
            &format!("/api/pairings/{pairing}"),
            None,
        )
        .await;
    assert_eq!(v["owner"], "昭觉县教育局");
    // Refusals, each with its problem type.
    let cases: Vec<(Method, String, Value, StatusCode, &str)> = vec![
        (
            Method::POST,
            "/api/schools".into(),
            json!({"code": "HUB01", "name": "重复", "kind": "hub"}),
            StatusCode::CONFLICT,
            "duplicate",
        ),
        (
            Method::POST,
            "/api/schools".into(),
            json!({"code": "X1", "name": "x", "kind": "village"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "bad-json",
        ),
        (
            Method::POST,
            "/api/schools".into(),
            json!({"code": "", "name": "x", "kind": "hub"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-field",
        ),
        (
            Method::POST,
            "/api/classrooms".into(),
            json!({"school_id": 9999, "name": "x", "kind": "hub"}),
            StatusCode::CONFLICT,
            "reference",
        ),
        (
            Method::POST,
            "/api/pairings".into(),
            json!({"hub_school_id": f.hub_school, "partner_school_id": f.partner_a, "subject": "英语", "grade": "三年级", "term": "2026秋"}),
            StatusCode::CONFLICT,
            "duplicate",
        ),
        (
            Method::POST,
            "/api/pairings".into(),
            json!({"hub_school_id": f.hub_school, "partner_school_id": f.hub_school, "subject": "英语", "grade": "三年级", "term": "2026秋"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-field",
        ),
        (
            Method::POST,
            "/api/terms".into(),
            json!({"name": "bad", "starts_on": "2026-13-01", "ends_on": "2027-01-01"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-field",
        ),
        (
            Method::GET,
            "/api/schools/9999".into(),
            Value::Null,
            StatusCode::NOT_FOUND,
            "not-found",
        ),
        (
            Method::GET,
            "/api/schools/abc".into(),
            Value::Null,
            StatusCode::NOT_FOUND,
            "not-found",
        ),
        (
            Method::PUT,
            "/api/schools/9999".into(),
            json!({"code": "Z", "name": "z", "kind": "hub"}),
            StatusCode::NOT_FOUND,
            "not-found",
        ),
        (
            Method::DELETE,
            format!("/api/schools/{}", f.hub_school),
            Value::Null,
            StatusCode::CONFLICT,
            "reference",
        ),
    ];
    for (m, path, body, want, want_kind) in cases {
        let body = (!body.is_null()).then_some(body);
        let (s, v) = app.call(Some(&app.admin), m.clone(), &path, body).await;
        assert_eq!(s, want, "{m} {path}: {v}");
        assert_eq!(kind(&v), want_kind, "{m} {path}: {v}");
    }
    // Garbage JSON is a problem document too.
    let r = app
        .http
        .post(format!("{}/api/schools", app.base))
        .bearer_auth(&app.admin)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    // Delete what nothing refers to.
    let (s, _) = app
        .call(
            Some(&app.admin),
            Method::DELETE,
            &format!("/api/pairings/{pairing}"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = app
        .call(
            Some(&app.admin),
            Method::GET,
            &format!("/api/pairings/{pairing}"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}
both_backends!(entities_crud_and_refusals, entities);

fn slot(
    f: &support::school::Fixture,
    weekday: i64,
    starts: &str,
    ends: &str,
    teacher: i64,
    hub_room: i64,
    sites: &[i64],
) -> Value {
    json!({
        "term_id": f.term, "weekday": weekday, "period": 3, "starts": starts, "ends": ends,
        "subject": "英语", "grade": "三年级", "mode": "delivery",
        "hub_teacher_id": teacher, "hub_classroom_id": hub_room,
        "sites": sites.iter().map(|c| json!({"classroom_id": c})).collect::<Vec<_>>(),
    })
}

async fn timetable(app: App) {
    let f = fixture(&app).await;
    let first = app
        .create(
            "/api/slots",
            slot(&f, 1, "09:00", "09:40", f.teacher, f.hub_room, &[f.room_a]),
        )
        .await;
    // Same teacher, overlapping time, other rooms: refused, naming the slot.
    let spare_hub = app
        .create(
            "/api/classrooms",
            json!({"school_id": f.hub_school, "name": "2号录播教室", "kind": "hub"}),
        )
        .await;
    let (s, v) = app
        .call(
            Some(&app.admin),
            Method::POST,
            "/api/slots",
            Some(slot(
                &f,
                1,
                "09:20",
                "10:00",
                f.teacher,
                spare_hub,
                &[f.room_b],
            )),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert_eq!(kind(&v), "timetable-conflict");
    let detail = v["detail"].as_str().unwrap();
    // The teacher by name, the id in brackets (王老师, not "teacher 1").
    assert!(
        detail.contains(&format!("teacher 王老师 ({})", f.teacher))
            && detail.contains(&format!("slot {first}")),
        "{detail}"
    );
    // Other teacher, same remote classroom, overlapping: refused for the classroom.
    let (s, v) = app
        .call(
            Some(&app.admin),
            Method::POST,
            "/api/slots",
            Some(slot(
                &f,
                1,
                "09:30",
                "10:10",
                f.other_teacher,
                spare_hub,
                &[f.room_a],
            )),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert!(
        v["detail"]
            .as_str()
            .unwrap()
            .contains(&format!("classroom 三年级1班 ({})", f.room_a)),
        "{v}"
    );
    // Back to back, or another day: fine.
    app.create(
        "/api/slots",
        slot(&f, 1, "09:40", "10:20", f.teacher, f.hub_room, &[f.room_a]),
    )
    .await;
    app.create(
        "/api/slots",
        slot(&f, 2, "09:00", "09:40", f.teacher, f.hub_room, &[f.room_a]),
    )
    .await;
    // A bad slot names its field.
    let (s, v) = app
        .call(
            Some(&app.admin),
            Method::POST,
            "/api/slots",
            Some(slot(
                &f,
                1,
                "11:00",
                "10:00",
                f.teacher,
                f.hub_room,
                &[f.room_a],
            )),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(v["detail"].as_str().unwrap().contains("ends"), "{v}");
    let (_, v) = app
        .call(
            Some(&f.teacher_login),
            Method::GET,
            &format!("/api/slots?term_id={}", f.term),
            None,
        )
        .await;
    assert_eq!(v.as_array().unwrap().len(), 3);
    // Lessons from the timetable: Monday 7 to Sunday 13 September holds 2 Mondays' worth? No: one
    // Monday (2 slots) and one Tuesday (1 slot).
    let v = app
        .admin_ok(
            Method::POST,
            "/api/lessons/generate",
            json!({"from": "2026-09-07", "to": "2026-09-13"}),
            StatusCode::OK,
        )
        .await;
    assert_eq!(v["created"], 3);
    let v = app
        .admin_ok(
            Method::POST,
            "/api/lessons/generate",
            json!({"from": "2026-09-07", "to": "2026-09-13"}),
            StatusCode::OK,
        )
        .await;
    assert_eq!(v["created"], 0, "generation is idempotent");
    let (_, v) = app
        .call(
            Some(&f.teacher_login),
            Method::GET,
            "/api/lessons?from=2026-09-07",
            None,
        )
        .await;
    let ls = v.as_array().unwrap();
    assert_eq!(ls.len(), 2);
    assert_eq!(ls[0]["starts"], "2026-09-07T09:00:00+08:00");
    assert_eq!(ls[0]["room"], format!("lesson-{}", ls[0]["id"]));
    assert_eq!(ls[0]["sites"][0]["classroom_id"], f.room_a);
}
both_backends!(
    timetable_conflicts_and_generation,
    timetable,
    start_in_process
);

const PAIRINGS_OK: &str = "hub_school_code,partner_school_code,subject,grade,term,owner\n\
HUB01,ZJ01,英语,三年级,2026秋,昭觉县教育局\n\
HUB01,ZJ02,音乐,四年级,2026秋,昭觉县教育局\n";

const TIMETABLE_OK: &str =
    "term,weekday,period,starts,ends,subject,grade,mode,hub_teacher_code,hub_classroom,sites\n\
2026秋,周一,1,08:00,08:40,英语,三年级,专递,T001,HUB01/录播教室,ZJ01/三年级1班@A001;ZJ02/三年级2班\n\
2026秋,2,1,08:00,08:40,音乐,四年级,名师课堂,T002,HUB01/录播教室,ZJ02/多媒体教室\n";

async fn csv(app: App) {
    let _f = fixture(&app).await;
    let (s, v) = app.post_csv("/api/pairings/import", PAIRINGS_OK).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["imported"], 2);
    let (s, v) = app.post_csv("/api/timetable/import", TIMETABLE_OK).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["imported"], 2);
    // One bad cell among good rows: nothing is imported, and the cell is named.
    let bad = "hub_school_code,partner_school_code,subject,grade,term,owner\n\
HUB01,ZJ01,数学,三年级,2026秋,x\n\
HUB01,NOPE,数学,三年级,2026秋,x\n\
HUB01,ZJ02,数学,三年级,2026秋,x\n";
    let (s, v) = app.post_csv("/api/pairings/import", bad).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(kind(&v), "csv-rejected");
    assert_eq!(
        v["errors"],
        json!([{"row": 3, "column": "partner_school_code", "message": "no school with code `NOPE`"}])
    );
    let (_, v) = app
        .call(Some(&app.admin), Method::GET, "/api/pairings", None)
        .await;
    assert_eq!(
        v.as_array().unwrap().len(),
        2,
        "no row of the bad file was imported"
    );
    // A row that clashes with the stored timetable: rejected, named, nothing imported.
    let clash =
        "term,weekday,period,starts,ends,subject,grade,mode,hub_teacher_code,hub_classroom,sites\n\
2026秋,3,2,09:00,09:40,英语,三年级,sync,T001,HUB01/录播教室,ZJ01/三年级1班\n\
2026秋,1,2,08:20,09:00,英语,三年级,sync,T001,HUB01/录播教室,ZJ01/三年级1班\n";
    let (s, v) = app.post_csv("/api/timetable/import", clash).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["errors"][0]["row"], 3);
    assert!(
        v["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("timetable conflict"),
        "{v}"
    );
    // Several bad cells are all reported.
    let many =
        "term,weekday,period,starts,ends,subject,grade,mode,hub_teacher_code,hub_classroom,sites\n\
2026冬,9,x,8,08:40,英语,三年级,lecture,T999,HUB01/没有,ZJ01\n";
    let (s, v) = app.post_csv("/api/timetable/import", many).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let cols: Vec<&str> = v["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["column"].as_str().unwrap())
        .collect();
    for c in [
        "term",
        "weekday",
        "period",
        "mode",
        "hub_teacher_code",
        "hub_classroom",
        "sites",
    ] {
        assert!(cols.contains(&c), "{c} reported in {v}");
    }
    let (s, _) = app.post_csv("/api/timetable/import", "weekday\n1\n").await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "missing columns");
    let (_, v) = app
        .call(
            Some(&app.admin),
            Method::GET,
            &format!("/api/slots?term_id={}", _f.term),
            None,
        )
        .await;
    assert_eq!(
        v.as_array().unwrap().len(),
        2,
        "rejected files left the timetable as it was"
    );
    // Export, then import the export into the same school: every row now clashes or repeats.
    let r = app
        .http
        .get(format!(
            "{}/api/timetable.csv?term_id={}",
            app.base, _f.term
        ))
        .bearer_auth(&app.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], "text/csv; charset=utf-8");
    let text = r.text().await.unwrap();
    assert!(
        text.contains("ZJ01/三年级1班@A001;ZJ02/三年级2班"),
        "{text}"
    );
    assert!(text.contains(",master,T002,"), "{text}");
    let r = app
        .http
        .get(format!("{}/api/pairings.csv", app.base))
        .bearer_auth(&app.admin)
        .send()
        .await
        .unwrap();
    let text = r.text().await.unwrap();
    assert_eq!(text.lines().count(), 3, "{text}");
    // Pairings already stored are skipped and reported per row, not stored twice.
    let (s, v) = app.post_csv("/api/pairings/import", &text).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["imported"], 0, "{v}");
    assert_eq!(v["skipped"].as_array().unwrap().len(), 2, "{v}");
    assert_eq!(v["skipped"][0]["row"], 2, "{v}");
}
both_backends!(csv_import_export, csv);

async fn logins(app: App) {
    let f = fixture(&app).await;
    let (s, v) = app
        .call(Some(&f.teacher_login), Method::GET, "/api/me", None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["role"], "teacher");
    assert_eq!(v["teacher_id"], f.teacher);
    // Wrong password, unknown user: the same answer.
    for (u, p) in [("wang", "nope-nope"), ("nobody", "password-123")] {
        let (s, v) = app
            .call(
                None,
                Method::POST,
                "/api/login",
                Some(json!({"username": u, "password": p})),
            )
            .await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        assert_eq!(kind(&v), "login-failed");
    }
    // The cookie works like the bearer.
    let r = app
        .http
        .post(format!("{}/api/login", app.base))
        .json(&json!({"username": "wang", "password": "password-123"}))
        .send()
        .await
        .unwrap();
    let cookie = r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    assert!(cookie.starts_with("cr_session=crs_"));
    let r = app
        .http
        .get(format!("{}/api/me", app.base))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // Logout ends that session only.
    let r = app
        .http
        .post(format!("{}/api/logout", app.base))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = app
        .http
        .get(format!("{}/api/me", app.base))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let (s, _) = app
        .call(Some(&f.teacher_login), Method::GET, "/api/me", None)
        .await;
    assert_eq!(s, StatusCode::OK);
    // Sessions expire by the clock.
    app.clock.advance(13 * 3_600_000);
    let (s, v) = app
        .call(Some(&f.teacher_login), Method::GET, "/api/me", None)
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(kind(&v), "session-expired");
    // Disabling a user ends their sessions and refuses login.
    let me = app.login("li", "password-123").await;
    let admin = app
        .login("admin", app.server.first_admin().unwrap().1.as_str())
        .await;
    let (_, users) = app
        .call(Some(&admin), Method::GET, "/api/users", None)
        .await;
    let li = users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == "li")
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let (s, v) = app
        .call(
            Some(&admin),
            Method::PATCH,
            &format!("/api/users/{li}"),
            Some(json!({"disabled": true})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, _) = app.call(Some(&me), Method::GET, "/api/me", None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = app
        .call(
            None,
            Method::POST,
            "/api/login",
            Some(json!({"username": "li", "password": "password-123"})),
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // Devices: a token per classroom, revocable.
    let (s, v) = app
        .call(
            Some(&admin),
            Method::POST,
            &format!("/api/classrooms/{}/devices", f.room_a),
            Some(json!({"label": "讲台电脑"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let dev = v["token"].as_str().unwrap().to_string();
    assert!(dev.starts_with("crd_"));
    let (s, v) = app.call(Some(&dev), Method::GET, "/api/me", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["kind"], "device");
    assert_eq!(v["classroom_id"], f.room_a);
    let (_, list) = app
        .call(
            Some(&admin),
            Method::GET,
            &format!("/api/classrooms/{}/devices", f.room_a),
            None,
        )
        .await;
    assert!(
        list.to_string().find("crd_").is_none(),
        "secrets are never listed"
    );
    let id = list[0]["id"].as_i64().unwrap();
    let (s, _) = app
        .call(
            Some(&admin),
            Method::DELETE,
            &format!("/api/devices/{id}"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = app.call(Some(&dev), Method::GET, "/api/me", None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(kind(&v), "device-revoked");
    // Garbage credentials.
    for t in ["crs_00", "crd_zz", "eyJhbGciOiJIUzI1NiJ9.e30.x", ""] {
        let (s, _) = app.call(Some(t), Method::GET, "/api/me", None).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{t:?}");
    }
    // A user with a role that is not a person's, or a weak password: refused.
    let (s, _) = app.call(Some(&admin), Method::POST, "/api/users", Some(json!({"username": "box", "display_name": "b", "role": "classroom", "password": "password-123"}))).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let (s, _) = app.call(Some(&admin), Method::POST, "/api/users", Some(json!({"username": "o2", "display_name": "b", "role": "observer", "password": "short"}))).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
}
both_backends!(logins_sessions_devices, logins);

/// Issue 19 item 2: a school's and a classroom's video layer cap (migration 0016) is set
/// through their own routes (whose scope rules and matrix rows already hold), read back, and
/// refused outside 0..=2 with the field named.
async fn layer_caps(app: App) {
    let f = fixture(&app).await;
    let (_, school) = app
        .call(
            Some(&app.admin),
            Method::GET,
            &format!("/api/schools/{}", f.partner_a),
            None,
        )
        .await;
    assert_eq!(school["max_video_layer"], Value::Null, "no cap by default");
    let mut capped = school.clone();
    capped["max_video_layer"] = json!(0);
    let v = app
        .admin_ok(
            Method::PUT,
            &format!("/api/schools/{}", f.partner_a),
            capped,
            StatusCode::OK,
        )
        .await;
    assert_eq!(
        v["max_video_layer"], 0,
        "a satellite school: the lowest layer"
    );
    let v = app
        .admin_ok(Method::PUT, &format!("/api/classrooms/{}", f.room_a), json!({"school_id": f.partner_a, "name": "三年级1班", "kind": "interactive", "max_video_layer": 1}), StatusCode::OK)
        .await;
    assert_eq!(v["max_video_layer"], 1);
    let (_, v) = app
        .call(
            Some(&app.admin),
            Method::GET,
            &format!("/api/classrooms/{}", f.room_a),
            None,
        )
        .await;
    assert_eq!(v["max_video_layer"], 1, "stored");
    for bad in [json!(3), json!(-1)] {
        let (s, v) = app
            .call(
                Some(&app.admin),
                Method::PUT,
                &format!("/api/classrooms/{}", f.room_a),
                Some(json!({"school_id": f.partner_a, "name": "三年级1班", "kind": "interactive", "max_video_layer": bad})),
            )
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
        assert_eq!(kind(&v), "invalid-field", "{v}");
        assert!(v.to_string().contains("max_video_layer"), "{v}");
    }
    // Cleared again: no cap.
    let v = app
        .admin_ok(
            Method::PUT,
            &format!("/api/classrooms/{}", f.room_a),
            json!({"school_id": f.partner_a, "name": "三年级1班", "kind": "interactive"}),
            StatusCode::OK,
        )
        .await;
    assert_eq!(v["max_video_layer"], Value::Null);
}
both_backends!(layer_caps_stored_and_checked, layer_caps);

// ---- Running a term (issue 22 rest): device labels and last seen, roles, scoped
// generation, cancelled lessons ----

/// Device `id` of classroom `room` as the admin's list shows it: (last seen, label).
async fn device_row(app: &App, room: i64, id: i64) -> (Option<i64>, String) {
    let path = format!("/api/classrooms/{room}/devices");
    let (s, v) = app.call(Some(&app.admin), Method::GET, &path, None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let d = v
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["id"] == id)
        .cloned()
        .unwrap();
    (
        d["last_seen_at"].as_i64(),
        d["label"].as_str().unwrap().to_string(),
    )
}

/// The slots of the lessons of the week of 7 September, in order.
async fn week_slots(app: &App) -> Vec<i64> {
    let (_, v) = app
        .call(
            Some(&app.admin),
            Method::GET,
            "/api/lessons?from=2026-09-07&to=2026-09-13",
            None,
        )
        .await;
    let mut s: Vec<i64> = v
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l["slot_id"].as_i64())
        .collect();
    s.sort();
    s
}

/// A device token's label can be changed by an admin over its classroom (the token keeps
/// working), and its last use is kept to the minute: written when the token is used, at most
/// once a minute.
async fn device_label_and_last_seen(app: App) {
    let f = fixture(&app).await;
    let v = app
        .admin_ok(
            Method::POST,
            &format!("/api/classrooms/{}/devices", f.room_a),
            json!({"label": "讲台电脑"}),
            StatusCode::CREATED,
        )
        .await;
    let (token, id) = (
        v["token"].as_str().unwrap().to_string(),
        v["device"]["id"].as_i64().unwrap(),
    );
    assert_eq!(v["device"]["last_seen_at"], Value::Null, "never used: {v}");
    let t0 = classrelay::time::Clock::now(&*app.clock);
    let (s, _) = app.call(Some(&token), Method::GET, "/api/me", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        device_row(&app, f.room_a, id).await.0,
        Some(t0),
        "the first use is recorded"
    );
    // Used again 30 s later: not written again (at most once a minute).
    app.clock.advance(30_000);
    app.call(Some(&token), Method::GET, "/api/today", None)
        .await;
    assert_eq!(
        device_row(&app, f.room_a, id).await.0,
        Some(t0),
        "throttled to once a minute"
    );
    // A minute after the last write: written.
    app.clock.advance(31_000);
    app.call(Some(&token), Method::GET, "/api/me", None).await;
    assert_eq!(device_row(&app, f.room_a, id).await.0, Some(t0 + 61_000));
    // Relabelled: trimmed, stored, and the token still signs in under the new label.
    let v = app
        .admin_ok(
            Method::PATCH,
            &format!("/api/devices/{id}"),
            json!({"label": "  教室一体机  "}),
            StatusCode::OK,
        )
        .await;
    assert_eq!(v["label"], "教室一体机", "{v}");
    assert_eq!(device_row(&app, f.room_a, id).await.1, "教室一体机");
    let (s, me) = app.call(Some(&token), Method::GET, "/api/me", None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(me.to_string().contains("教室一体机"), "{me}");
    for bad in [json!(""), json!("   "), json!("x".repeat(101))] {
        let (s, v) = app
            .call(
                Some(&app.admin),
                Method::PATCH,
                &format!("/api/devices/{id}"),
                Some(json!({"label": bad})),
            )
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
        assert_eq!(kind(&v), "invalid-field", "{v}");
    }
    let (s, v) = app
        .call(
            Some(&app.admin),
            Method::PATCH,
            "/api/devices/99999",
            Some(json!({"label": "x"})),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    // An admin of another school may not rename it.
    app.create(
        "/api/users",
        json!({"username": "adm_b", "display_name": "adm_b", "role": "admin",
        "password": "password-123", "scope": "school", "school_id": f.partner_b}),
    )
    .await;
    let other = app.login("adm_b", "password-123").await;
    let (s, v) = app
        .call(
            Some(&other),
            Method::PATCH,
            &format!("/api/devices/{id}"),
            Some(json!({"label": "x"})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(kind(&v), "out-of-scope", "{v}");
    assert_eq!(
        device_row(&app, f.room_a, id).await.1,
        "教室一体机",
        "unchanged"
    );
}
both_backends!(
    device_label_edit_and_last_seen,
    device_label_and_last_seen,
    start_in_process
);

/// An admin changes a person's role inside their own scope: never to a classroom device, a
/// teacher only with a teacher record, never above their own scope; the change ends the
/// person's sessions; the last admin over a scope cannot give up the role.
async fn user_roles(app: App) {
    let f = fixture(&app).await;
    let user = |name: &str, role: &str, scope: Value| {
        let mut b = json!({"username": name, "display_name": name, "role": role,
                           "password": "password-123"});
        for (k, v) in scope.as_object().unwrap() {
            b[k] = v.clone();
        }
        b
    };
    let county = json!({"scope": "county", "region_id": f.region});
    let ca = app
        .create("/api/users", user("ca", "admin", county.clone()))
        .await;
    let ca_login = app.login("ca", "password-123").await;
    let obs = app
        .create("/api/users", user("obs2", "observer", county.clone()))
        .await;
    let obs_login = app.login("obs2", "password-123").await;
    let patch = |who: String, id: i64, body: Value| {
        let app = &app;
        async move {
            app.call(
                Some(&who),
                Method::PATCH,
                &format!("/api/users/{id}"),
                Some(body),
            )
            .await
        }
    };
    // The county admin makes the observer an inspector: stored, and the old session ends.
    let (s, v) = patch(ca_login.clone(), obs, json!({"role": "inspector"})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["role"], "inspector");
    let (s, _) = app
        .call(Some(&obs_login), Method::GET, "/api/me", None)
        .await;
    assert_eq!(
        s,
        StatusCode::UNAUTHORIZED,
        "a role change ends the sessions"
    );
    let relogged = app.login("obs2", "password-123").await;
    let (_, me) = app
        .call(Some(&relogged), Method::GET, "/api/me", None)
        .await;
    assert!(me.to_string().contains("inspector"), "{me}");
    // Never a device; a teacher only with a teacher record.
    for (role, why) in [("classroom", "device"), ("teacher", "teacher record")] {
        let (s, v) = patch(ca_login.clone(), obs, json!({"role": role})).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{role}: {v}");
        assert_eq!(kind(&v), "invalid-field", "{v}");
        assert!(v["detail"].as_str().unwrap().contains(why), "{v}");
    }
    // A school admin may not touch a county-level person, nor make anyone an admin above
    // their own scope.
    app.create(
        "/api/users",
        user(
            "sa",
            "admin",
            json!({"scope": "school", "school_id": f.hub_school}),
        ),
    )
    .await;
    let sa_login = app.login("sa", "password-123").await;
    let (s, v) = patch(sa_login.clone(), obs, json!({"role": "observer"})).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(kind(&v), "out-of-scope", "{v}");
    let local = app
        .create(
            "/api/users",
            user(
                "local",
                "observer",
                json!({"scope": "school", "school_id": f.hub_school}),
            ),
        )
        .await;
    let (s, v) = patch(
        sa_login.clone(),
        local,
        json!({"role": "admin", "scope": "county", "region_id": f.region}),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(kind(&v), "out-of-scope", "{v}");
    let (_, v) = app
        .call(Some(&app.admin), Method::GET, "/api/users", None)
        .await;
    let row = |name: &str| {
        v.as_array()
            .unwrap()
            .iter()
            .find(|u| u["username"] == name)
            .cloned()
            .unwrap()
    };
    assert_eq!(row("local")["role"], "observer", "nothing changed: {v}");
    // Inside their own scope they may make an admin of their school.
    let (s, v) = patch(sa_login.clone(), local, json!({"role": "admin"})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        (v["role"].as_str(), v["scope"].as_str()),
        (Some("admin"), Some("school"))
    );
    // The county admin may step down: the installation's admin still covers the county.
    let (s, v) = patch(ca_login.clone(), ca, json!({"role": "observer"})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // The installation's only global admin may not.
    let (_, me) = app
        .call(Some(&app.admin), Method::GET, "/api/me", None)
        .await;
    let admin_id = me["id"].as_i64().unwrap();
    let (s, v) = patch(app.admin.clone(), admin_id, json!({"role": "observer"})).await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert_eq!(kind(&v), "last-admin", "{v}");
    // With a second global admin, the first may.
    let g2 = app
        .create(
            "/api/users",
            user("g2", "admin", json!({"scope": "global"})),
        )
        .await;
    let (s, v) = patch(app.admin.clone(), admin_id, json!({"role": "observer"})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // Now g2 is the last one.
    let g2_login = app.login("g2", "password-123").await;
    let (s, v) = patch(g2_login, g2, json!({"role": "inspector"})).await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert_eq!(kind(&v), "last-admin", "{v}");
}
both_backends!(user_role_changes, user_roles, start_in_process);

/// `POST /api/lessons/generate` makes lessons only for the slots whose hub school lies in the
/// caller's scope: two counties, each admin makes their own county's, none of the other's.
async fn scoped_generation(app: App) {
    let f = fixture(&app).await;
    // County 2: a hub school and a partner classroom of its own.
    let r2 = app
        .create(
            "/api/regions",
            json!({"province": "四川省", "city": "凉山彝族自治州", "county": "布拖县"}),
        )
        .await;
    let h2 = app
        .create(
            "/api/schools",
            json!({"code": "BT01", "name": "布拖中学", "kind": "hub", "region_id": r2}),
        )
        .await;
    let p2 = app
        .create(
            "/api/schools",
            json!({"code": "BT02", "name": "布拖小学", "kind": "partner", "region_id": r2}),
        )
        .await;
    let h2_room = app
        .create(
            "/api/classrooms",
            json!({"school_id": h2, "name": "录播教室", "kind": "hub"}),
        )
        .await;
    let p2_room = app
        .create(
            "/api/classrooms",
            json!({"school_id": p2, "name": "三年级1班", "kind": "interactive"}),
        )
        .await;
    let t2 = app
        .create(
            "/api/teachers",
            json!({"code": "BT-T1", "name": "吉克老师", "school_id": h2}),
        )
        .await;
    let s1 = app
        .create(
            "/api/slots",
            slot(&f, 1, "09:00", "09:40", f.teacher, f.hub_room, &[f.room_a]),
        )
        .await;
    let s2 = app
        .create(
            "/api/slots",
            slot(&f, 1, "09:00", "09:40", t2, h2_room, &[p2_room]),
        )
        .await;
    let mut admins = Vec::new();
    for (name, r) in [("gen1", f.region), ("gen2", r2)] {
        app.create(
            "/api/users",
            json!({"username": name, "display_name": name, "role": "admin",
            "password": "password-123", "scope": "county", "region_id": r}),
        )
        .await;
        admins.push(app.login(name, "password-123").await);
    }
    let week = json!({"from": "2026-09-07", "to": "2026-09-13"});
    let (s, v) = app
        .call(
            Some(&admins[0]),
            Method::POST,
            "/api/lessons/generate",
            Some(week.clone()),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["created"], 1, "county 1's Monday slot only: {v}");
    assert_eq!(week_slots(&app).await, vec![s1], "nothing made in county 2");
    let (s, v) = app
        .call(
            Some(&admins[1]),
            Method::POST,
            "/api/lessons/generate",
            Some(week.clone()),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["created"], 1, "county 2's own slot: {v}");
    assert_eq!(week_slots(&app).await, vec![s1, s2]);
    // The installation's admin finds nothing left to make.
    let v = app
        .admin_ok(Method::POST, "/api/lessons/generate", week, StatusCode::OK)
        .await;
    assert_eq!(v["created"], 0, "{v}");
    // Not an admin: refused by the route's rule.
    let (s, v) = app
        .call(
            Some(&f.teacher_login),
            Method::POST,
            "/api/lessons/generate",
            Some(json!({"from": "2026-09-14", "to": "2026-09-20"})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
}
both_backends!(
    lesson_generation_is_scoped,
    scoped_generation,
    start_in_process
);

/// A cancelled lesson says so in every view (`cancelled`, state `ended`), nobody joins it (the
/// refusal is `lesson-cancelled`, not `lesson-ended`), and every lesson says when it opens.
async fn cancelled_lessons(app: App) {
    let f = fixture(&app).await;
    let id = support::school::lesson(&app, &f, "delivery", "08:00", "08:40").await;
    let other = support::school::lesson(&app, &f, "delivery", "10:00", "10:40").await;
    let (_, v) = app
        .call(
            Some(&app.admin),
            Method::GET,
            &format!("/api/lessons/{id}"),
            None,
        )
        .await;
    assert_eq!(v["cancelled"], false, "{v}");
    assert_eq!(
        v["opens"], "2026-09-07T07:50:00+08:00",
        "ten minutes before the bell: {v}"
    );
    let v = app
        .admin_ok(
            Method::POST,
            &format!("/api/lessons/{id}/cancel"),
            json!({"reason": "运动会"}),
            StatusCode::OK,
        )
        .await;
    assert_eq!(
        (v["cancelled"].as_bool(), v["state"].as_str()),
        (Some(true), Some("ended")),
        "{v}"
    );
    let device = app.device(f.room_a).await;
    for who in [app.admin.clone(), f.teacher_login.clone(), device.clone()] {
        let (_, v) = app
            .call(Some(&who), Method::GET, &format!("/api/lessons/{id}"), None)
            .await;
        assert_eq!(v["cancelled"], true, "{v}");
        let (_, v) = app.call(Some(&who), Method::GET, "/api/today", None).await;
        let flags: Vec<(i64, bool)> = v["lessons"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| (l["id"].as_i64().unwrap(), l["cancelled"].as_bool().unwrap()))
            .collect();
        assert_eq!(flags, vec![(id, true), (other, false)], "{v}");
        assert_eq!(
            v["next"]["id"], other,
            "the cancelled lesson is not next: {v}"
        );
        let (_, v) = app
            .call(
                Some(&who),
                Method::GET,
                "/api/lessons?from=2026-09-07",
                None,
            )
            .await;
        assert!(
            v.as_array()
                .unwrap()
                .iter()
                .any(|l| l["id"] == id && l["cancelled"] == true),
            "{v}"
        );
    }
    // At its time, the kiosk and the teacher are refused as cancelled.
    app.clock.set(support::school::at("07:55"));
    for who in [device, f.teacher_login.clone()] {
        let (s, v) = app
            .call(
                Some(&who),
                Method::POST,
                &format!("/api/lessons/{id}/join"),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
        assert_eq!(kind(&v), "lesson-cancelled", "{v}");
    }
}
both_backends!(
    cancelled_lessons_shown_and_refused,
    cancelled_lessons,
    start_in_process
);
