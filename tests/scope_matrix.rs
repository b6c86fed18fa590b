//! Every school sees only its own: a role × route × object matrix over two counties with two
//! schools each (one pair of them paired, the other not), every role in and out of scope,
//! and the security review's reproductions (cross-school lesson injection, overflowing
//! times, ad hoc clashes, revocation that reaches a live kiosk's media and event stream).
//! The expected outcomes are written out here, independently of the server's rules.
//!
//! Run: `cargo test --test scope_matrix`.

mod support;

use std::time::{Duration, Instant};

use classrelay_loadtest::swarm::Swarm;
use classrelay_loadtest::whip;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use support::school::{at, App, Backend};

fn kind(v: &Value) -> &str {
    v["type"]
        .as_str()
        .unwrap_or("")
        .trim_start_matches("urn:classrelay:problem:")
}

/// Two counties of one city; in each a hub school and a partner school. Hub 1 is paired
/// with partner 1 (英语 三年级 2026秋); nothing else is paired.
struct World {
    r1: i64,
    r2: i64,
    h1: i64,
    p1: i64,
    h2: i64,
    p2: i64,
    h1_room: i64,
    h1_view: i64,
    p1_room: i64,
    h2_room: i64,
    p2_room: i64,
    t1: i64,
    t2: i64,
    /// Logins by name: county admin 1, school admin of hub 1, teacher 1 (hub 1), teacher 2
    /// (hub 2), observer of county 1, inspector of county 2, city admin.
    logins: std::collections::HashMap<&'static str, String>,
    dev_p1: String,
    dev_p2: String,
    dev_p1_id: i64,
}

async fn world(app: &App) -> World {
    let region = |county: &'static str| json!({"province": "四川省", "city": "凉山彝族自治州", "county": county});
    let r1 = app.create("/api/regions", region("昭觉县")).await;
    let r2 = app.create("/api/regions", region("布拖县")).await;
    let school = |code: &str, kind: &str, r: i64| json!({"code": code, "name": code, "kind": kind, "region_id": r});
    let h1 = app.create("/api/schools", school("H1", "hub", r1)).await;
    let p1 = app
        .create("/api/schools", school("P1", "partner", r1))
        .await;
    let h2 = app.create("/api/schools", school("H2", "hub", r2)).await;
    let p2 = app
        .create("/api/schools", school("P2", "partner", r2))
        .await;
    let room = |s: i64, name: &str, kind: &str| json!({"school_id": s, "name": name, "kind": kind});
    let h1_room = app
        .create("/api/classrooms", room(h1, "录播教室", "hub"))
        .await;
    let h1_view = app
        .create("/api/classrooms", room(h1, "多媒体教室", "receive_only"))
        .await;
    let p1_room = app
        .create("/api/classrooms", room(p1, "三年级1班", "interactive"))
        .await;
    let h2_room = app
        .create("/api/classrooms", room(h2, "录播教室", "hub"))
        .await;
    let p2_room = app
        .create("/api/classrooms", room(p2, "三年级1班", "interactive"))
        .await;
    let teacher = |code: &str, s: i64| json!({"code": code, "name": code, "school_id": s});
    let t1 = app.create("/api/teachers", teacher("T1", h1)).await;
    let t2 = app.create("/api/teachers", teacher("T2", h2)).await;
    app.create(
        "/api/terms",
        json!({"name": "2026秋", "starts_on": "2026-09-01", "ends_on": "2027-01-20"}),
    )
    .await;
    app.create(
        "/api/pairings",
        json!({"hub_school_id": h1, "partner_school_id": p1, "subject": "英语",
               "grade": "三年级", "term": "2026秋"}),
    )
    .await;
    let mut logins = std::collections::HashMap::new();
    for (name, body) in [
        (
            "county_admin_1",
            json!({"role": "admin", "scope": "county", "region_id": r1}),
        ),
        (
            "city_admin",
            json!({"role": "admin", "scope": "city", "region_id": r1}),
        ),
        (
            "school_admin_h1",
            json!({"role": "admin", "scope": "school", "school_id": h1}),
        ),
        ("teacher_1", json!({"role": "teacher", "teacher_id": t1})),
        ("teacher_2", json!({"role": "teacher", "teacher_id": t2})),
        (
            "observer_1",
            json!({"role": "observer", "scope": "county", "region_id": r1}),
        ),
        (
            "inspector_2",
            json!({"role": "inspector", "scope": "county", "region_id": r2}),
        ),
    ] {
        let mut b = body;
        b["username"] = json!(name);
        b["display_name"] = json!(name);
        b["password"] = json!("password-123");
        app.create("/api/users", b).await;
        logins.insert(name, app.login(name, "password-123").await);
    }
    let dev = |c: i64| async move {
        app.admin_ok(
            Method::POST,
            &format!("/api/classrooms/{c}/devices"),
            json!({"label": "讲台电脑"}),
            StatusCode::CREATED,
        )
        .await
    };
    let d1 = dev(p1_room).await;
    let d2 = dev(p2_room).await;
    World {
        r1,
        r2,
        h1,
        p1,
        h2,
        p2,
        h1_room,
        h1_view,
        p1_room,
        h2_room,
        p2_room,
        t1,
        t2,
        logins,
        dev_p1: d1["token"].as_str().unwrap().into(),
        dev_p2: d2["token"].as_str().unwrap().into(),
        dev_p1_id: d1["device"]["id"].as_i64().unwrap(),
    }
}

/// A request: method, path, JSON body.
type Req = (Method, String, Option<Value>);

fn lesson_body(teacher: i64, hub: i64, sites: &[i64], start: &str, end: &str) -> Value {
    json!({
        "mode": "delivery", "subject": "英语", "grade": "三年级", "title": "Unit 3",
        "hub_teacher_id": teacher, "hub_classroom_id": hub,
        "starts_at": at(start), "ends_at": at(end),
        "sites": sites.iter().map(|c| json!({"classroom_id": c})).collect::<Vec<_>>(),
    })
}

/// What a refusal for the object (not the route) looks like.
fn refused(s: StatusCode, v: &Value) -> bool {
    s == StatusCode::FORBIDDEN
        && matches!(
            kind(v),
            "out-of-scope" | "not-in-lesson" | "not-your-lesson" | "role-forbidden"
        )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn role_by_route_by_object_matrix() {
    let app = App::start_in_process(Backend::Sqlite).await.unwrap();
    let w = world(&app).await;
    // The lesson everything below is about: teacher 1 at hub 1 with partner 1's class.
    let l1 = app
        .create(
            "/api/lessons",
            lesson_body(w.t1, w.h1_room, &[w.p1_room], "08:00", "08:40"),
        )
        .await;
    // Open it (the room opens 10 minutes before the bell).
    app.clock.set(at("07:55"));
    let global = app.admin.clone();
    let who = |n: &str| w.logins[n].clone();
    // (caller name, token) in a fixed order.
    let callers: Vec<(&str, String)> = vec![
        ("global_admin", global.clone()),
        ("city_admin", who("city_admin")),
        ("county_admin_1", who("county_admin_1")),
        ("school_admin_h1", who("school_admin_h1")),
        ("teacher_1", who("teacher_1")),
        ("teacher_2", who("teacher_2")),
        ("observer_1", who("observer_1")),
        ("inspector_2", who("inspector_2")),
        ("device_p1", w.dev_p1.clone()),
        ("device_p2", w.dev_p2.clone()),
    ];
    // Who may watch lesson 1 (hub 1 and partner 1 are both in county 1).
    let watchers = [
        "global_admin",
        "city_admin",
        "county_admin_1",
        "school_admin_h1",
        "teacher_1",
        "observer_1",
        "device_p1",
    ];
    // Who may read its attendance: the people among them (a device reads no attendance).
    let people_watchers: Vec<&str> = watchers
        .iter()
        .copied()
        .filter(|w| !w.starts_with("device"))
        .collect();
    let people_watchers = people_watchers.as_slice();
    // Who runs it: its hub teacher and admins over hub 1.
    let runners = [
        "global_admin",
        "city_admin",
        "county_admin_1",
        "school_admin_h1",
        "teacher_1",
    ];
    let lesson_routes: Vec<(Method, String, Option<Value>, &[&str])> = vec![
        (Method::GET, format!("/api/lessons/{l1}"), None, &watchers),
        (
            Method::GET,
            format!("/api/lessons/{l1}/live"),
            None,
            &watchers,
        ),
        (
            Method::POST,
            format!("/api/lessons/{l1}/join"),
            None,
            &watchers,
        ),
        (
            Method::PUT,
            format!("/api/lessons/{l1}"),
            Some(lesson_body(w.t1, w.h1_room, &[w.p1_room], "08:00", "08:40")),
            &runners,
        ),
        (
            Method::POST,
            format!("/api/lessons/{l1}/speak"),
            Some(json!({"classroom_id": w.p1_room, "granted": true})),
            &runners,
        ),
        (
            Method::POST,
            format!("/api/lessons/{l1}/spotlight"),
            Some(json!({"classroom_id": w.p1_room})),
            &runners,
        ),
        (
            Method::POST,
            format!("/api/lessons/{l1}/recording"),
            Some(json!({"on": false})),
            &runners,
        ),
        // Exports (issue 20 item 4): allowed callers reach the handler (no recording yet: 409).
        (
            Method::POST,
            format!("/api/lessons/{l1}/exports"),
            Some(json!({"preset": "showcase"})),
            &runners,
        ),
        (
            Method::GET,
            format!("/api/lessons/{l1}/exports"),
            None,
            &runners,
        ),
        // The teacher console's controls and attendance (issue 22 items 3 and 8).
        (
            Method::POST,
            format!("/api/lessons/{l1}/mute"),
            Some(json!({"classroom_id": w.p1_room, "muted": true})),
            &runners,
        ),
        (
            Method::POST,
            format!("/api/lessons/{l1}/lower-hand"),
            Some(json!({"classroom_id": w.p1_room})),
            &runners,
        ),
        (
            Method::GET,
            format!("/api/lessons/{l1}/attendance"),
            None,
            people_watchers,
        ),
        // Link reports (issue 19 item 6): a participant's page posts its own figures (the
        // lesson's classroom and its hub teacher); the people who may watch read the report.
        (
            Method::POST,
            format!("/api/lessons/{l1}/link-stats"),
            Some(json!({"conn": "pc-1", "duration_ms": 10_000, "frames_decoded": 300})),
            &["teacher_1", "device_p1"],
        ),
        (
            Method::GET,
            format!("/api/lessons/{l1}/link-report"),
            None,
            people_watchers,
        ),
        (
            Method::GET,
            format!("/api/lessons/{l1}/link-report.csv"),
            None,
            people_watchers,
        ),
        (Method::DELETE, format!("/api/lessons/{l1}"), None, &runners),
    ];
    let mut checked = 0;
    for (name, token) in &callers {
        for (m, path, body, allowed) in &lesson_routes {
            let (s, v) = app.call(Some(token), m.clone(), path, body.clone()).await;
            let role_ok = !(s == StatusCode::FORBIDDEN && kind(&v) == "role-forbidden");
            if !role_ok {
                // The route's role rule refused first (devices may not PUT, say): a refusal.
                assert!(!allowed.contains(name), "{name} {m} {path}: {s} {v}");
                checked += 1;
                continue;
            }
            if allowed.contains(name) {
                assert!(!refused(s, &v), "{name} may {m} {path}: {s} {v}");
                assert!(s != StatusCode::UNAUTHORIZED, "{name} {m} {path}: {s} {v}");
            } else {
                assert!(refused(s, &v), "{name} may not {m} {path}: {s} {v}");
            }
            checked += 1;
        }
        // The event stream: allowed callers get the stream, others a refusal.
        let r = app
            .oneshot_request(
                Some(token),
                Method::GET,
                &format!("/api/lessons/{l1}/events"),
                None,
            )
            .await;
        assert_eq!(
            r.status() == StatusCode::OK,
            watchers.contains(name),
            "{name} events: {}",
            r.status()
        );
        // Lists show only what the caller may watch.
        let (s, v) = app
            .call(Some(token), Method::GET, "/api/lessons", None)
            .await;
        assert_eq!(s, StatusCode::OK);
        let listed = v.as_array().unwrap().iter().any(|l| l["id"] == l1);
        assert_eq!(listed, watchers.contains(name), "{name} /api/lessons: {v}");
        let (_, v) = app.call(Some(token), Method::GET, "/api/today", None).await;
        let listed = v["lessons"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["id"] == l1);
        assert_eq!(listed, watchers.contains(name), "{name} /api/today: {v}");
        checked += 3;
    }

    // The directory, object by object: (caller, method, path, body, allowed).
    let g = |p: String| (Method::GET, p, None::<Value>);
    let cases: Vec<(&str, Req, bool)> = vec![
        // Schools: own scope, or paired with a school in scope.
        ("teacher_1", g(format!("/api/schools/{}", w.p1)), true),
        ("teacher_1", g(format!("/api/schools/{}", w.p2)), false),
        ("teacher_2", g(format!("/api/schools/{}", w.p1)), false),
        ("observer_1", g(format!("/api/schools/{}", w.h2)), false),
        ("inspector_2", g(format!("/api/schools/{}", w.h2)), true),
        ("county_admin_1", g(format!("/api/schools/{}", w.p2)), false),
        ("city_admin", g(format!("/api/schools/{}", w.p2)), true),
        // Classrooms and teachers follow their school.
        (
            "teacher_2",
            g(format!("/api/classrooms/{}", w.h1_room)),
            false,
        ),
        (
            "teacher_1",
            g(format!("/api/classrooms/{}", w.p1_room)),
            true,
        ),
        ("observer_1", g(format!("/api/teachers/{}", w.t2)), false),
        ("inspector_2", g(format!("/api/teachers/{}", w.t2)), true),
        // A kiosk: its own classroom and its lessons' classrooms, nothing else.
        (
            "device_p1",
            g(format!("/api/classrooms/{}", w.p1_room)),
            true,
        ),
        (
            "device_p1",
            g(format!("/api/classrooms/{}", w.h1_room)),
            true,
        ),
        (
            "device_p1",
            g(format!("/api/classrooms/{}", w.p2_room)),
            false,
        ),
        ("device_p1", g(format!("/api/schools/{}", w.p1)), false),
        ("device_p1", g(format!("/api/teachers/{}", w.t1)), false),
        ("device_p1", g("/api/users".into()), false),
        // Pairings: either school in scope.
        ("inspector_2", g("/api/pairings/1".into()), false),
        ("observer_1", g("/api/pairings/1".into()), true),
        // Devices of a classroom: admins over its school.
        (
            "school_admin_h1",
            g(format!("/api/classrooms/{}/devices", w.h1_room)),
            true,
        ),
        (
            "school_admin_h1",
            g(format!("/api/classrooms/{}/devices", w.p1_room)),
            false,
        ),
        (
            "county_admin_1",
            (
                Method::POST,
                format!("/api/classrooms/{}/devices", w.p2_room),
                Some(json!({"label": "x"})),
            ),
            false,
        ),
        (
            "county_admin_1",
            (
                Method::POST,
                format!("/api/classrooms/{}/devices", w.p1_room),
                Some(json!({"label": "x"})),
            ),
            true,
        ),
        // Writing the directory: inside the admin's scope and at the entity's level.
        (
            "county_admin_1",
            (
                Method::POST,
                "/api/classrooms".into(),
                Some(json!({"school_id": w.p2, "name": "新教室", "kind": "interactive"})),
            ),
            false,
        ),
        (
            "school_admin_h1",
            (
                Method::POST,
                "/api/classrooms".into(),
                Some(json!({"school_id": w.h1, "name": "新教室", "kind": "interactive"})),
            ),
            true,
        ),
        (
            "school_admin_h1",
            (
                Method::POST,
                "/api/schools".into(),
                Some(json!({"code": "NEW1", "name": "x", "kind": "partner", "region_id": w.r1})),
            ),
            false,
        ),
        (
            "county_admin_1",
            (
                Method::POST,
                "/api/schools".into(),
                Some(json!({"code": "NEW2", "name": "x", "kind": "partner", "region_id": w.r1})),
            ),
            true,
        ),
        (
            "county_admin_1",
            (
                Method::PUT,
                format!("/api/schools/{}", w.p1),
                Some(json!({"code": "P1", "name": "P1", "kind": "partner", "region_id": w.r2})),
            ),
            false,
        ),
        (
            "county_admin_1",
            (
                Method::PUT,
                format!("/api/regions/{}", w.r1),
                Some(json!({"province": "四川省", "city": "凉山彝族自治州", "county": "x"})),
            ),
            false,
        ),
        (
            "city_admin",
            (
                Method::POST,
                "/api/regions".into(),
                Some(json!({"province": "四川省", "city": "凉山彝族自治州", "county": "美姑县"})),
            ),
            true,
        ),
        (
            "city_admin",
            (
                Method::POST,
                "/api/regions".into(),
                Some(json!({"province": "四川省", "city": "成都市", "county": "金牛区"})),
            ),
            false,
        ),
        (
            "county_admin_1",
            (
                Method::POST,
                "/api/pairings".into(),
                Some(json!({"hub_school_id": w.h1, "partner_school_id": w.p2,
                            "subject": "数学", "grade": "三年级", "term": "2026秋"})),
            ),
            false,
        ),
        (
            "city_admin",
            (
                Method::POST,
                "/api/pairings".into(),
                Some(json!({"hub_school_id": w.h1, "partner_school_id": w.p2,
                            "subject": "数学", "grade": "三年级", "term": "2026秋"})),
            ),
            true,
        ),
        (
            "city_admin",
            (
                Method::POST,
                "/api/terms".into(),
                Some(json!({"name": "x", "starts_on": "2027-02-01", "ends_on": "2027-06-30"})),
            ),
            false,
        ),
        // The people spreadsheet: any admin, holding only the people of their scope (the
        // rows are checked in `scopes_are_exported_and_imported_inside_the_admins_scope`).
        ("county_admin_1", g("/api/users.csv".into()), true),
        ("observer_1", g("/api/users.csv".into()), false),
        ("device_p1", g("/api/users.csv".into()), false),
        ("county_admin_1", g("/api/pairings.csv".into()), false),
        ("global_admin", g("/api/pairings.csv".into()), true),
        // Users: admins manage people inside their own scope only.
        (
            "county_admin_1",
            (
                Method::POST,
                "/api/users".into(),
                Some(
                    json!({"username": "o2", "display_name": "o2", "role": "observer",
                            "password": "password-123", "scope": "county", "region_id": w.r2}),
                ),
            ),
            false,
        ),
        (
            "county_admin_1",
            (
                Method::POST,
                "/api/users".into(),
                Some(
                    json!({"username": "o1b", "display_name": "o1b", "role": "observer",
                            "password": "password-123", "scope": "county", "region_id": w.r1}),
                ),
            ),
            true,
        ),
        (
            "school_admin_h1",
            (
                Method::POST,
                "/api/users".into(),
                Some(
                    json!({"username": "a1b", "display_name": "a1b", "role": "admin",
                            "password": "password-123", "scope": "county", "region_id": w.r1}),
                ),
            ),
            false,
        ),
        (
            "county_admin_1",
            (
                Method::PATCH,
                "/api/users/1".into(),
                Some(json!({"disabled": true})),
            ),
            false,
        ),
        // Running a term (issue 22 rest). Roles: only inside the admin's scope.
        (
            "county_admin_1",
            (
                Method::PATCH,
                "/api/users/1".into(),
                Some(json!({"role": "observer"})),
            ),
            false,
        ),
        (
            "teacher_1",
            (
                Method::PATCH,
                "/api/users/1".into(),
                Some(json!({"role": "observer"})),
            ),
            false,
        ),
        // Device labels: an admin over the device's classroom's school.
        (
            "school_admin_h1",
            (
                Method::PATCH,
                format!("/api/devices/{}", w.dev_p1_id),
                Some(json!({"label": "x"})),
            ),
            false,
        ),
        (
            "observer_1",
            (
                Method::PATCH,
                format!("/api/devices/{}", w.dev_p1_id),
                Some(json!({"label": "x"})),
            ),
            false,
        ),
        (
            "device_p1",
            (
                Method::PATCH,
                format!("/api/devices/{}", w.dev_p1_id),
                Some(json!({"label": "x"})),
            ),
            false,
        ),
        (
            "county_admin_1",
            (
                Method::PATCH,
                format!("/api/devices/{}", w.dev_p1_id),
                Some(json!({"label": "讲台电脑"})),
            ),
            true,
        ),
        // Generating lessons: any admin, for the slots in their scope only (which slots:
        // `school_api::lesson_generation_is_scoped`); nobody else.
        (
            "school_admin_h1",
            (
                Method::POST,
                "/api/lessons/generate".into(),
                Some(json!({"from": "2026-09-07", "to": "2026-09-07"})),
            ),
            true,
        ),
        (
            "teacher_1",
            (
                Method::POST,
                "/api/lessons/generate".into(),
                Some(json!({"from": "2026-09-07", "to": "2026-09-07"})),
            ),
            false,
        ),
        (
            "inspector_2",
            (
                Method::POST,
                "/api/lessons/generate".into(),
                Some(json!({"from": "2026-09-07", "to": "2026-09-07"})),
            ),
            false,
        ),
    ];
    for (name, (m, path, body), allowed) in cases {
        let token = &callers.iter().find(|(n, _)| *n == name).unwrap().1;
        let (s, v) = app.call(Some(token), m.clone(), &path, body).await;
        if allowed {
            assert!(s.is_success(), "{name} may {m} {path}: {s} {v}");
        } else {
            assert!(refused(s, &v), "{name} may not {m} {path}: {s} {v}");
        }
        checked += 1;
    }
    // Lists are filtered, not refused.
    let (_, v) = app
        .call(Some(&who("teacher_1")), Method::GET, "/api/schools", None)
        .await;
    let ids: Vec<i64> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_i64().unwrap())
        .collect();
    assert!(ids.contains(&w.h1) && ids.contains(&w.p1), "{v}");
    assert!(!ids.contains(&w.h2), "{v}");
    // Partner 2 became visible to hub 1's staff when the city admin paired them above.
    assert!(ids.contains(&w.p2), "{v}");
    let (_, v) = app
        .call(Some(&w.dev_p1), Method::GET, "/api/classrooms", None)
        .await;
    let rooms: Vec<i64> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_i64().unwrap())
        .collect();
    assert_eq!(
        rooms,
        vec![w.h1_room, w.p1_room],
        "a kiosk lists its lessons' rooms"
    );
    let (_, v) = app
        .call(
            Some(&who("county_admin_1")),
            Method::GET,
            "/api/users",
            None,
        )
        .await;
    let names: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"observer_1") && names.contains(&"teacher_1"));
    assert!(
        !names.contains(&"inspector_2")
            && !names.contains(&"admin")
            && !names.contains(&"city_admin")
    );
    assert!(checked > 100, "{checked} cases");
    let _ = (w.r2, w.h1_view, w.t2, w.dev_p1_id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lessons_are_refused_across_schools_overflow_and_clashes() {
    let app = App::start(Backend::Sqlite).await.unwrap();
    let w = world(&app).await;
    let t2 = w.logins["teacher_2"].clone();
    let t1 = w.logins["teacher_1"].clone();
    let post = |token: String, body: Value| {
        let app = &app;
        async move {
            app.call(Some(&token), Method::POST, "/api/lessons", Some(body))
                .await
        }
    };
    // Review #1: teacher 2 puts partner 1's classroom (not paired with hub 2) into a lesson.
    let (s, v) = post(
        t2.clone(),
        lesson_body(w.t2, w.h2_room, &[w.p1_room], "07:59", "18:00"),
    )
    .await;
    assert_eq!(
        (s, kind(&v)),
        (StatusCode::UNPROCESSABLE_ENTITY, "site-not-paired"),
        "{v}"
    );
    // ... or uses hub 1's classroom as the hub, or leads a lesson as someone else.
    let (s, v) = post(
        t2.clone(),
        lesson_body(w.t2, w.h1_room, &[], "08:00", "08:40"),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let (s, v) = post(
        t2.clone(),
        lesson_body(w.t1, w.h1_room, &[w.p1_room], "08:00", "08:40"),
    )
    .await;
    assert_eq!(
        (s, kind(&v)),
        (StatusCode::FORBIDDEN, "not-your-lesson"),
        "{v}"
    );
    // A receive-only classroom never leads.
    let (s, v) = post(
        t1.clone(),
        lesson_body(w.t1, w.h1_view, &[], "08:00", "08:40"),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    // Partner 1's kiosk sees nothing it could be pulled into.
    let (_, v) = app
        .call(Some(&w.dev_p1), Method::GET, "/api/today", None)
        .await;
    assert!(
        v["current"].is_null() && v["lessons"].as_array().unwrap().is_empty(),
        "{v}"
    );
    // Review #2: times that overflow i64 arithmetic are refused (no panic, no endless lesson).
    let mut b = lesson_body(w.t1, w.h1_room, &[w.p1_room], "08:00", "08:40");
    b["starts_at"] = json!(-4611686018427387904i64);
    b["ends_at"] = json!(4611686018427387904i64);
    let (s, v) = post(t1.clone(), b.clone()).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    b["starts_at"] = json!(i64::MIN);
    b["ends_at"] = json!(i64::MAX);
    let (s, v) = post(t1.clone(), b).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    // A start in the past, a lesson over 12 h.
    let (s, _) = post(
        t1.clone(),
        lesson_body(w.t1, w.h1_room, &[], "06:00", "06:40"),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let (s, _) = post(
        t1.clone(),
        lesson_body(w.t1, w.h1_room, &[], "08:00", "20:30"),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    // Site count per mode: 专递 at most 6.
    let mut rooms = Vec::new();
    for i in 0..7 {
        rooms.push(
            app.create(
                "/api/classrooms",
                json!({"school_id": w.p1, "name": format!("班{i}"), "kind": "interactive"}),
            )
            .await,
        );
    }
    let (s, v) = post(
        t1.clone(),
        lesson_body(w.t1, w.h1_room, &rooms, "08:00", "08:40"),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("at most 6"), "{v}");
    // The first good lesson; then an ad hoc clash on the same site is refused, naming it.
    let (s, v) = post(
        t1.clone(),
        lesson_body(w.t1, w.h1_room, &[w.p1_room], "08:00", "08:40"),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let first = v["id"].as_i64().unwrap();
    let (s, v) = post(
        t1.clone(),
        lesson_body(w.t1, w.h1_room, &[rooms[0]], "08:20", "09:00"),
    )
    .await;
    assert_eq!(
        (s, kind(&v)),
        (StatusCode::CONFLICT, "lesson-conflict"),
        "{v}"
    );
    assert!(
        v["detail"]
            .as_str()
            .unwrap()
            .contains(&format!("lesson {first}")),
        "{v}"
    );
    // The city admin over both counties may override pairings explicitly; it is audited.
    let city = w.logins["city_admin"].clone();
    let mut b = lesson_body(w.t1, w.h1_room, &[w.p2_room], "10:00", "10:40");
    let (s, v) = post(city.clone(), b.clone()).await;
    assert_eq!(
        (s, kind(&v)),
        (StatusCode::UNPROCESSABLE_ENTITY, "site-not-paired"),
        "{v}"
    );
    b["override_pairing"] = json!(true);
    let (s, v) = post(w.logins["county_admin_1"].clone(), b.clone()).await;
    assert_eq!(
        s,
        StatusCode::UNPROCESSABLE_ENTITY,
        "a county admin is not over partner 2: {v}"
    );
    let (s, v) = post(city, b).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let store = &app.server.state().school.store;
    let row = sqlx::query("SELECT COUNT(*) AS n FROM audit_log WHERE action = 'pairing-override'")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(classrelay::store::col::<i64>(&row, "n").unwrap(), 1);
    // A scheduled lesson can be moved and deleted by its teacher, not by another.
    let (s, v) = app
        .call(
            Some(&t2),
            Method::DELETE,
            &format!("/api/lessons/{first}"),
            None,
        )
        .await;
    assert!(refused(s, &v), "{s} {v}");
    let (s, v) = app
        .call(
            Some(&t1),
            Method::PUT,
            &format!("/api/lessons/{first}"),
            Some(lesson_body(w.t1, w.h1_room, &[w.p1_room], "11:00", "11:40")),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["starts_at"], json!(at("11:00")));
    let (s, _) = app
        .call(
            Some(&t1),
            Method::DELETE,
            &format!("/api/lessons/{first}"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = app
        .call(
            Some(&t1),
            Method::GET,
            &format!("/api/lessons/{first}"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let _ = (w.r1, w.r2, w.h1, w.h2, w.p2, w.dev_p2, w.dev_p1_id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lessons_per_teacher_per_day_are_bounded() {
    let app = App::start_with(Backend::Sqlite, |c| {
        c.school.max_lessons_per_teacher_day = 2
    })
    .await
    .unwrap();
    let w = world(&app).await;
    let t1 = w.logins["teacher_1"].clone();
    for (i, (a, b)) in [("08:00", "08:40"), ("09:00", "09:40"), ("10:00", "10:40")]
        .into_iter()
        .enumerate()
    {
        let r = app
            .http
            .post(format!("{}/api/lessons", app.base))
            .bearer_auth(&t1)
            .json(&lesson_body(w.t1, w.h1_room, &[w.p1_room], a, b))
            .send()
            .await
            .unwrap();
        if i < 2 {
            assert_eq!(r.status(), StatusCode::CREATED);
        } else {
            assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
            assert!(r.headers().contains_key("retry-after"));
            let v: Value = r.json().await.unwrap();
            assert_eq!(kind(&v), "too-many-lessons");
        }
    }
    assert!(app
        .server
        .metrics()
        .encode()
        .contains("classrelay_lessons_refused_quota_total 1"));
}

/// Reads the SSE stream until it ends; returns when it did.
async fn until_closed(mut r: reqwest::Response) -> Instant {
    while let Ok(Some(_)) = r.chunk().await {}
    Instant::now()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_a_kiosk_cuts_its_media_events_and_tokens_within_a_second() {
    let app = App::start(Backend::Sqlite).await.unwrap();
    let w = world(&app).await;
    let l1 = app
        .create(
            "/api/lessons",
            lesson_body(w.t1, w.h1_room, &[w.p1_room], "08:00", "08:40"),
        )
        .await;
    app.clock.set(at("08:00"));
    let (s, join) = app
        .call(
            Some(&w.dev_p1),
            Method::POST,
            &format!("/api/lessons/{l1}/join"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{join}");
    let token = join["token"].as_str().unwrap().to_string();
    let whep = format!("{}{}", app.base, join["whep"].as_str().unwrap());
    // The kiosk watches (a real WebRTC peer) and follows the events.
    let swarm = Swarm::start().unwrap();
    let peer = whip::join(
        &swarm,
        &app.http,
        &whep,
        &token,
        swarm.subscriber_offer(1, 1).unwrap(),
    )
    .await
    .unwrap();
    assert!(
        peer.stats
            .wait_for(Duration::from_secs(10), |s| s.connected_at().is_some())
            .await,
        "the kiosk's WHEP peer connects"
    );
    let events = app
        .http
        .get(format!("{}/api/lessons/{l1}/events", app.base))
        .bearer_auth(&w.dev_p1)
        .send()
        .await
        .unwrap();
    assert_eq!(events.status(), StatusCode::OK);
    let closed = tokio::spawn(until_closed(events));
    let sessions = |app: &App| {
        app.server
            .state()
            .media
            .sessions
            .lock()
            .unwrap()
            .values()
            .filter(|s| s.who.as_deref() == Some(&format!("d:{}", w.dev_p1_id)))
            .count()
    };
    assert_eq!(sessions(&app), 1);
    let peers_before = app.server.peer_count();
    // Revoke.
    let t0 = Instant::now();
    app.admin_ok(
        Method::DELETE,
        &format!("/api/devices/{}", w.dev_p1_id),
        json!(null),
        StatusCode::OK,
    )
    .await;
    let ended = tokio::time::timeout(Duration::from_secs(1), closed)
        .await
        .expect("the event stream closes within a second")
        .unwrap();
    assert!(ended.duration_since(t0) < Duration::from_secs(1));
    assert_eq!(sessions(&app), 0, "its WHEP session is gone");
    assert!(
        app.server.peer_count() < peers_before,
        "its peer is removed"
    );
    assert!(t0.elapsed() < Duration::from_secs(2));
    // The token issued before is refused now.
    let e = whip::post_offer(
        &app.http,
        &whep,
        &token,
        &swarm.subscriber_offer(1, 1).unwrap().sdp,
    )
    .await
    .unwrap_err();
    assert!(format!("{e:#}").contains("token-revoked"), "{e:#}");
    // A disabled user's media token goes the same way.
    let (_, j) = app
        .call(
            Some(&w.logins["observer_1"]),
            Method::POST,
            &format!("/api/lessons/{l1}/join"),
            None,
        )
        .await;
    let obs_token = j["token"].as_str().unwrap().to_string();
    let (_, users) = app
        .call(Some(&app.admin), Method::GET, "/api/users", None)
        .await;
    let obs_id = users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == "observer_1")
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    app.admin_ok(
        Method::PATCH,
        &format!("/api/users/{obs_id}"),
        json!({"disabled": true}),
        StatusCode::OK,
    )
    .await;
    let e = whip::post_offer(
        &app.http,
        &whep,
        &obs_token,
        &swarm.subscriber_offer(1, 1).unwrap().sdp,
    )
    .await
    .unwrap_err();
    assert!(format!("{e:#}").contains("token-revoked"), "{e:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ending_a_lesson_closes_its_streams_and_frees_its_live_state() {
    let app = App::start(Backend::Sqlite).await.unwrap();
    let w = world(&app).await;
    let t1 = w.logins["teacher_1"].clone();
    let l1 = app
        .create(
            "/api/lessons",
            lesson_body(w.t1, w.h1_room, &[w.p1_room], "08:00", "08:40"),
        )
        .await;
    app.clock.set(at("08:00"));
    let live = || app.server.state().school.live.len();
    let events = app
        .http
        .get(format!("{}/api/lessons/{l1}/events", app.base))
        .bearer_auth(&w.dev_p1)
        .send()
        .await
        .unwrap();
    assert_eq!(events.status(), StatusCode::OK);
    let body = tokio::spawn(async move { events.text().await.unwrap() });
    assert_eq!(live(), 1);
    let (s, v) = app
        .call(
            Some(&t1),
            Method::POST,
            &format!("/api/lessons/{l1}/end"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let text = tokio::time::timeout(Duration::from_secs(1), body)
        .await
        .expect("the kiosk's event stream ends within a second of the lesson's end")
        .unwrap();
    assert!(
        text.contains("\"ended\""),
        "the stream said why first: {text}"
    );
    // Reading an ended lesson does not bring its live state back once it is freed.
    app.clock.advance(3 * 60_000);
    let t0 = Instant::now();
    while live() != 0 {
        assert!(t0.elapsed() < Duration::from_secs(10), "live state freed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (s, _) = app
        .call(
            Some(&t1),
            Method::GET,
            &format!("/api/lessons/{l1}/live"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let r = app
        .http
        .get(format!("{}/api/lessons/{l1}/events", app.base))
        .bearer_auth(&t1)
        .send()
        .await
        .unwrap();
    assert!(
        r.text().await.unwrap().contains("resync"),
        "one picture, then the end"
    );
    assert_eq!(live(), 0);
}

/// Posts a CSV as `token`.
async fn post_csv(app: &App, token: &str, path: &str, csv: &str) -> (StatusCode, Value) {
    let r = app
        .http
        .post(format!("{}{path}", app.base))
        .bearer_auth(token)
        .header("content-type", "text/csv")
        .body(csv.to_string())
        .send()
        .await
        .unwrap();
    let s = r.status();
    (s, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scopes_are_exported_and_imported_inside_the_admins_scope() {
    let app = App::start(Backend::Sqlite).await.unwrap();
    let w = world(&app).await;
    let county1 = w.logins["county_admin_1"].clone();
    let get_csv = |token: String| {
        let app = &app;
        async move {
            let r = app
                .http
                .get(format!("{}/api/users.csv", app.base))
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::OK);
            r.text().await.unwrap()
        }
    };
    // A county admin exports the people of their county only, with their scopes.
    let csv = get_csv(county1.clone()).await;
    assert!(csv.starts_with("username,display_name,role,scope,school_code,province,city,county,teacher_code,disabled"), "{csv}");
    assert!(
        csv.contains("observer_1,observer_1,observer,county,,四川省,凉山彝族自治州,昭觉县,,0"),
        "{csv}"
    );
    assert!(
        csv.contains("teacher_1,teacher_1,teacher,school,H1,,,,T1,0"),
        "{csv}"
    );
    assert!(
        !csv.contains("inspector_2") && !csv.contains("teacher_2") && !csv.contains("city_admin"),
        "{csv}"
    );
    // Exported and imported again, nothing changes.
    let (s, v) = post_csv(&app, &county1, "/api/users/import", &csv).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        (
            v["updated"].as_u64(),
            v["created"].as_array().unwrap().len()
        ),
        (Some(0), 0),
        "{v}"
    );
    // A new observer in the county: created, with a first password that logs in.
    let header =
        "username,display_name,role,scope,school_code,province,city,county,teacher_code,disabled\n";
    let (s, v) = post_csv(
        &app,
        &county1,
        "/api/users/import",
        &format!("{header}obs_new,新观察员,observer,county,,四川省,凉山彝族自治州,昭觉县,,0\n"),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let pw = v["created"][0]["password"].as_str().unwrap().to_string();
    let obs = app.login("obs_new", &pw).await;
    let (_, me) = app.call(Some(&obs), Method::GET, "/api/me", None).await;
    assert_eq!(me["scope"]["level"], "county");
    assert_eq!(me["scope"]["region_id"], json!(w.r1));
    // Moving someone to the other county is outside a county admin's scope: nothing happens.
    let move_obs =
        format!("{header}obs_new,新观察员,observer,county,,四川省,凉山彝族自治州,布拖县,,0\n");
    let (s, v) = post_csv(&app, &county1, "/api/users/import", &move_obs).await;
    assert_eq!(
        (s, kind(&v)),
        (StatusCode::UNPROCESSABLE_ENTITY, "csv-rejected"),
        "{v}"
    );
    assert_eq!(v["errors"][0]["row"], 2);
    assert_eq!(v["errors"][0]["column"], "scope");
    // ... and a user of the other county cannot be touched at all.
    let (s, v) = post_csv(
        &app,
        &county1,
        "/api/users/import",
        &format!("{header}inspector_2,x,inspector,county,,四川省,凉山彝族自治州,昭觉县,,1\n"),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    // The city admin above both may move them; the old login session and tokens end.
    let (s, v) = post_csv(
        &app,
        &w.logins["city_admin"],
        "/api/users/import",
        &move_obs,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["updated"], 1);
    let (s, _) = app.call(Some(&obs), Method::GET, "/api/me", None).await;
    assert_eq!(
        s,
        StatusCode::UNAUTHORIZED,
        "a new scope ends the old login session"
    );
    let obs = app.login("obs_new", &pw).await;
    let (_, me) = app.call(Some(&obs), Method::GET, "/api/me", None).await;
    assert_eq!(me["scope"]["region_id"], json!(w.r2));
    let _ = (w.h2, w.p2);
}

/// The spreadsheet routes (issue 22 item 2) for every role, and each importer's rows in and
/// out of the importing admin's scope: any admin may import, each row must lie where the
/// single-item route would let them write it (schools: county level or above over its
/// region; classrooms and teachers: over their school; pairings: over both schools; slots:
/// over the hub school), and a file with one row outside is refused whole, naming that row.
/// The expected outcomes are written out here, independently of the server's rules.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spreadsheet_imports_by_role_and_scope() {
    let app = App::start(Backend::Sqlite).await.unwrap();
    let w = world(&app).await;
    let who = |n: &str| w.logins[n].clone();
    let (zj, bt) = (
        "四川省,凉山彝族自治州,昭觉县",
        "四川省,凉山彝族自治州,布拖县",
    );
    let timetable =
        "学期,星期,节次,开始时间,结束时间,学科,年级,模式,主讲教师编号,主讲教室,接收教室";
    // (caller, route, file, Some(rows imported) or None: refused for its row 2's scope).
    let cases: Vec<(String, &str, String, Option<u64>)> = vec![
        (who("county_admin_1"), "/api/schools/import", format!("学校代码,学校名称,类型,省,市,县\nN1,新校一,接收学校,{zj}\n"), Some(1)),
        (who("county_admin_1"), "/api/schools/import", format!("学校代码,学校名称,类型,省,市,县\nN2,新校二,接收学校,{bt}\n"), None),
        (who("school_admin_h1"), "/api/schools/import", format!("学校代码,学校名称,类型,省,市,县\nN3,新校三,接收学校,{zj}\n"), None),
        (who("city_admin"), "/api/schools/import", format!("学校代码,学校名称,类型,省,市,县\nN4,新校四,接收学校,{bt}\n"), Some(1)),
        (who("school_admin_h1"), "/api/classrooms/import", "学校代码,教室名称,类型\nH1,二号录播室,主讲教室\n".into(), Some(1)),
        (who("school_admin_h1"), "/api/classrooms/import", "学校代码,教室名称,类型\nP1,四年级1班,互动教室\n".into(), None),
        (who("county_admin_1"), "/api/classrooms/import", "学校代码,教室名称,类型\nH2,四年级1班,互动教室\n".into(), None),
        (who("school_admin_h1"), "/api/teachers/import", "工号,姓名,学校代码\nT10,甲,H1\n".into(), Some(1)),
        (who("school_admin_h1"), "/api/teachers/import", "工号,姓名,学校代码\nT11,乙,H2\n".into(), None),
        (who("county_admin_1"), "/api/pairings/import", "主讲学校,接收学校,学科,年级,学期\nH1,P1,数学,三年级,2026秋\n".into(), Some(1)),
        (who("county_admin_1"), "/api/pairings/import", "主讲学校,接收学校,学科,年级,学期\nH1,P2,数学,三年级,2026秋\n".into(), None),
        (who("city_admin"), "/api/pairings/import", "主讲学校,接收学校,学科,年级,学期\nH1,P2,数学,三年级,2026秋\n".into(), Some(1)),
        (who("county_admin_1"), "/api/timetable/import", format!("{timetable}\n2026秋,周二,1,08:00,08:40,英语,三年级,专递,T1,H1/录播教室,P1/三年级1班\n"), Some(1)),
        (who("county_admin_1"), "/api/timetable/import", format!("{timetable}\n2026秋,周二,2,09:00,09:40,英语,三年级,专递,T2,H2/录播教室,P2/三年级1班\n"), None),
    ];
    for (token, path, csv, want) in cases {
        let (s, v) = post_csv(&app, &token, path, &csv).await;
        match want {
            Some(n) => {
                assert_eq!(s, StatusCode::OK, "{path} {csv}: {v}");
                assert_eq!(v["imported"], n, "{path}: {v}");
            }
            None => {
                assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{path} {csv}: {v}");
                assert_eq!(v["errors"][0]["row"], 2, "{path}: {v}");
                let m = v["errors"][0]["message"].as_str().unwrap_or("");
                assert!(
                    m.contains("outside your organisation scope") || m.contains("level or above"),
                    "{path}: {v}"
                );
            }
        }
    }
    // Nothing of a refused file was stored.
    let (_, schools) = app
        .call(Some(&app.admin), Method::GET, "/api/schools", None)
        .await;
    let codes: Vec<&str> = schools
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["code"].as_str().unwrap())
        .collect();
    assert!(codes.contains(&"N1") && codes.contains(&"N4"), "{codes:?}");
    assert!(
        !codes.contains(&"N2") && !codes.contains(&"N3"),
        "{codes:?}"
    );
    // People who are not admins, and devices, may not import or fetch templates.
    let routes = [
        "/api/schools/import",
        "/api/classrooms/import",
        "/api/teachers/import",
        "/api/pairings/import",
        "/api/timetable/import",
        "/api/users/import",
    ];
    for token in [
        who("teacher_1"),
        who("observer_1"),
        who("inspector_2"),
        w.dev_p1.clone(),
    ] {
        for path in routes {
            let (s, v) = post_csv(&app, &token, path, "学校代码\nx\n").await;
            assert_eq!(s, StatusCode::FORBIDDEN, "{path}: {v}");
            assert_eq!(kind(&v), "role-forbidden", "{path}: {v}");
        }
        let (s, _) = app
            .call(
                Some(&token),
                Method::GET,
                "/api/templates/schools.csv",
                None,
            )
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
    }
    let (s, _) = app
        .call(None, Method::GET, "/api/templates/schools.csv", None)
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    for admin in ["school_admin_h1", "county_admin_1", "city_admin"] {
        let (s, v) = app
            .call(
                Some(&who(admin)),
                Method::GET,
                "/api/templates/timetable.xlsx",
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{admin}: {v}");
    }
}

/// The observation routes (issue 21), every one of them, for every role in and out of scope:
/// an observer observes lessons whose hub school lies in their scope and owns their
/// observations; admins covering the hub school read them; the lesson's hub teacher reads
/// them once submitted; devices never; only a global admin edits rubrics. The expected
/// callers are written out here, independently of the server's rules.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observation_routes_by_role_and_object() {
    let app = App::start_in_process(Backend::Sqlite).await.unwrap();
    let w = world(&app).await;
    let l1 = app
        .create(
            "/api/lessons",
            lesson_body(w.t1, w.h1_room, &[w.p1_room], "08:00", "08:40"),
        )
        .await;
    // A second observer of county 1 (in scope, not the owner) and one of county 2.
    for (name, r) in [("observer_1b", w.r1), ("observer_2", w.r2)] {
        app.create(
            "/api/users",
            json!({"username": name, "display_name": name, "role": "observer",
                   "password": "password-123", "scope": "county", "region_id": r}),
        )
        .await;
    }
    let who = |n: &str| w.logins[n].clone();
    let callers: Vec<(&str, String)> = vec![
        ("global_admin", app.admin.clone()),
        ("city_admin", who("city_admin")),
        ("county_admin_1", who("county_admin_1")),
        ("school_admin_h1", who("school_admin_h1")),
        ("teacher_1", who("teacher_1")),
        ("teacher_2", who("teacher_2")),
        ("observer_1", who("observer_1")),
        (
            "observer_1b",
            app.login("observer_1b", "password-123").await,
        ),
        ("observer_2", app.login("observer_2", "password-123").await),
        ("inspector_2", who("inspector_2")),
        ("device_p1", w.dev_p1.clone()),
        ("device_p2", w.dev_p2.clone()),
    ];
    let token = |n: &str| callers.iter().find(|(c, _)| *c == n).unwrap().1.clone();
    let (s, v) = app
        .call(
            Some(&token("observer_1")),
            Method::POST,
            "/api/observations",
            Some(json!({"lesson_id": l1, "methods": ["rubric", "st", "fias"]})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let o = v["id"].as_i64().unwrap();
    let rubric = v["rubric_id"].as_i64().unwrap();
    // A processed recording of the lesson, for the automatic S-T draft.
    support::stdraft::silent_recording(&app, l1, 12).await;
    let (_, rv) = app
        .call(
            Some(&app.admin),
            Method::GET,
            &format!("/api/rubrics/{rubric}"),
            None,
        )
        .await;
    let people = [
        "global_admin",
        "city_admin",
        "county_admin_1",
        "school_admin_h1",
        "teacher_1",
        "teacher_2",
        "observer_1",
        "observer_1b",
        "observer_2",
        "inspector_2",
    ];
    // Readers of the draft: its observer and the admins covering hub 1.
    let draft_readers = [
        "global_admin",
        "city_admin",
        "county_admin_1",
        "school_admin_h1",
        "observer_1",
    ];
    let owner = ["observer_1"];
    let observers_in_scope = ["observer_1", "observer_1b"];
    let global = ["global_admin"];
    let obs = |s: &str| format!("/api/observations/{o}{s}");
    let mut rubric_keys = 0;
    let mut new_rubric = |_: &str| {
        rubric_keys += 1;
        json!({"key": format!("k{rubric_keys}"), "rubric": rv["rubric"].clone()})
    };
    // (method, path template it exercises, concrete path, body, allowed callers); the
    // submit and the amendment come last, in that order (they change the state).
    let mut cases: Vec<Case> = vec![
        (
            Method::GET,
            "/api/rubrics",
            "/api/rubrics".into(),
            None,
            &people,
        ),
        (
            Method::GET,
            "/api/rubrics/{id}",
            format!("/api/rubrics/{rubric}"),
            None,
            &people,
        ),
        (
            Method::GET,
            "/api/observations/{id}",
            obs(""),
            None,
            &draft_readers,
        ),
        (
            Method::GET,
            "/api/observations/{id}/st.svg",
            obs("/st.svg"),
            None,
            &draft_readers,
        ),
        (
            Method::GET,
            "/api/observations/{id}/rt-ch.svg",
            obs("/rt-ch.svg"),
            None,
            &draft_readers,
        ),
        (
            Method::GET,
            "/api/observations/{id}/fias.svg",
            obs("/fias.svg"),
            None,
            &draft_readers,
        ),
        (
            Method::POST,
            "/api/observations",
            "/api/observations".into(),
            Some(json!({"lesson_id": l1, "methods": ["st"]})),
            &observers_in_scope,
        ),
        (
            Method::POST,
            "/api/observations/{id}/codes",
            obs("/codes"),
            Some(json!({"method": "st", "codes": "TS"})),
            &owner,
        ),
        (
            Method::DELETE,
            "/api/observations/{id}/codes",
            obs("/codes?method=st&last=1"),
            None,
            &owner,
        ),
        (
            Method::PUT,
            "/api/observations/{id}/scores",
            obs("/scores"),
            Some(json!({"scores": [{"item": "objectives", "score": 9}]})),
            &owner,
        ),
        (
            Method::POST,
            "/api/observations/{id}/comments",
            obs("/comments"),
            Some(json!({"at_ms": 60_000, "body": "导入自然"})),
            &owner,
        ),
        // The automatic S-T draft: its observer makes it, the draft's readers read it.
        (
            Method::POST,
            "/api/observations/{id}/st-draft",
            obs("/st-draft"),
            None,
            &owner,
        ),
        (
            Method::GET,
            "/api/observations/{id}/st-draft",
            obs("/st-draft"),
            None,
            &draft_readers,
        ),
    ];
    let mut checked = 0;
    let mut covered = std::collections::BTreeSet::new();
    let refused_here = |s: StatusCode, v: &Value| {
        s == StatusCode::FORBIDDEN
            && matches!(
                kind(v),
                "out-of-scope" | "not-your-observation" | "role-forbidden"
            )
    };
    let (n, seen) = run_cases(&app, &callers, std::mem::take(&mut cases)).await;
    checked += n;
    covered.extend(seen);
    // Rubric writes: one allowed caller each, with a fresh body for it.
    for (name, t) in &callers {
        let (s, v) = app
            .call(
                Some(t),
                Method::POST,
                "/api/rubrics",
                Some(new_rubric(name)),
            )
            .await;
        assert_eq!(
            s.is_success(),
            global.contains(name),
            "{name} POST /api/rubrics: {s} {v}"
        );
        if !s.is_success() {
            assert!(refused_here(s, &v), "{name}: {s} {v}");
        }
        let (s, v) = app
            .call(
                Some(t),
                Method::PUT,
                &format!("/api/rubrics/{rubric}"),
                Some(rv["rubric"].clone()),
            )
            .await;
        assert_eq!(
            s.is_success(),
            global.contains(name),
            "{name} PUT rubric: {s} {v}"
        );
        if !s.is_success() {
            assert!(refused_here(s, &v), "{name}: {s} {v}");
        }
        checked += 2;
    }
    covered.insert(("POST".into(), "/api/rubrics"));
    covered.insert(("PUT".into(), "/api/rubrics/{id}"));
    // Lists are filtered, not refused.
    for (name, t) in &callers {
        let (s, v) = app
            .call(Some(t), Method::GET, "/api/observations", None)
            .await;
        if name.starts_with("device") {
            assert!(refused_here(s, &v), "{name}: {s} {v}");
        } else {
            assert_eq!(s, StatusCode::OK, "{name}: {v}");
            let listed = v.as_array().unwrap().iter().any(|x| x["id"] == o);
            assert_eq!(listed, draft_readers.contains(name), "{name}: {v}");
        }
        checked += 1;
    }
    covered.insert(("GET".into(), "/api/observations"));
    // Submit (finish it first), then the submitted observation's readers and amendments.
    let (s, v) = app
        .call(
            Some(&token("observer_1")),
            Method::PUT,
            &obs("/scores"),
            Some(
                json!({"scores": rv["rubric"]["items"].as_array().unwrap().iter()
                .map(|i| json!({"item": i["key"], "score": 5})).collect::<Vec<_>>()}),
            ),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    for (m, c) in [("st", "TTS"), ("fias", "5548")] {
        app.call(
            Some(&token("observer_1")),
            Method::POST,
            &obs("/codes"),
            Some(json!({"method": m, "codes": c})),
        )
        .await;
    }
    let submitted_readers = [
        "global_admin",
        "city_admin",
        "county_admin_1",
        "school_admin_h1",
        "observer_1",
        "teacher_1",
    ];
    // Submit is refused to everyone but its observer, who then gets it once.
    for (name, t) in callers.iter().filter(|(n, _)| *n != "observer_1") {
        let (s, v) = app.call(Some(t), Method::POST, &obs("/submit"), None).await;
        assert!(refused_here(s, &v), "{name} may not submit: {s} {v}");
        checked += 1;
    }
    let (s, v) = app
        .call(
            Some(&token("observer_1")),
            Method::POST,
            &obs("/submit"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    covered.insert(("POST".into(), "/api/observations/{id}/submit"));
    let (n, _) = run_cases(
        &app,
        &callers,
        vec![
            (
                Method::GET,
                "/api/observations/{id}",
                obs(""),
                None,
                &submitted_readers,
            ),
            (
                Method::GET,
                "/api/observations/{id}/st-draft",
                obs("/st-draft"),
                None,
                &submitted_readers,
            ),
            (
                Method::POST,
                "/api/observations/{id}/amendments",
                obs("/amendments"),
                Some(json!({"reason": "复核", "scores": [{"item": "content", "score": 6}]})),
                &owner,
            ),
        ],
    )
    .await;
    checked += n;
    covered.insert(("POST".into(), "/api/observations/{id}/amendments"));
    // Every observation route is in this matrix (the inspection routes have their own,
    // `inspection_routes_by_role_and_object`).
    for (m, p) in classrelay::observe::routes()
        .into_iter()
        .filter(|(_, p)| !p.starts_with("/api/inspections"))
    {
        assert!(
            covered.contains(&(m.to_string(), p)),
            "{m} {p} is not in the observation matrix"
        );
    }
    assert!(checked > 150, "{checked} cases");
}

/// Sampling inspection (抽检): a county round over county 1 is managed by the admins and
/// inspectors whose scope contains county 1 (global, city, county 1), never by a school admin,
/// another county's inspector, teachers, observers or devices; a review is read and graded
/// by its reviewer only. Mutating calls by a second allowed manager may meet the round's
/// state (409: drawn, appealed), never a 403. The expected callers are written out here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspection_routes_by_role_and_object() {
    let app = App::start_in_process(Backend::Sqlite).await.unwrap();
    let w = world(&app).await;
    let l1 = app
        .create(
            "/api/lessons",
            lesson_body(w.t1, w.h1_room, &[w.p1_room], "08:00", "08:40"),
        )
        .await;
    // An inspector of county 1 (a manager) and a reviewer at partner 2 (county 2).
    for (name, body) in [
        ("inspector_1", json!({"scope": "county", "region_id": w.r1})),
        ("reviewer_p2", json!({"scope": "school", "school_id": w.p2})),
    ] {
        let mut b = body;
        b["username"] = json!(name);
        b["display_name"] = json!(name);
        b["password"] = json!("password-123");
        b["role"] = json!("inspector");
        app.create("/api/users", b).await;
    }
    let who = |n: &str| w.logins[n].clone();
    let callers: Vec<(&str, String)> = vec![
        ("global_admin", app.admin.clone()),
        ("city_admin", who("city_admin")),
        ("county_admin_1", who("county_admin_1")),
        ("school_admin_h1", who("school_admin_h1")),
        ("teacher_1", who("teacher_1")),
        ("teacher_2", who("teacher_2")),
        ("observer_1", who("observer_1")),
        (
            "inspector_1",
            app.login("inspector_1", "password-123").await,
        ),
        ("inspector_2", who("inspector_2")),
        (
            "reviewer_p2",
            app.login("reviewer_p2", "password-123").await,
        ),
        ("device_p1", w.dev_p1.clone()),
        ("device_p2", w.dev_p2.clone()),
    ];
    let token = |n: &str| callers.iter().find(|(c, _)| *c == n).unwrap().1.clone();
    // A submitted observation of hub 1's lesson: what the round draws.
    let (s, v) = app
        .call(
            Some(&token("observer_1")),
            Method::POST,
            "/api/observations",
            Some(json!({"lesson_id": l1, "methods": ["st"]})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let o = v["id"].as_i64().unwrap();
    for (path, body) in [
        ("codes", Some(json!({"method": "st", "codes": "TTSS"}))),
        ("submit", None),
    ] {
        let (s, v) = app
            .call(
                Some(&token("observer_1")),
                Method::POST,
                &format!("/api/observations/{o}/{path}"),
                body,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }
    let (s, v) = app
        .call(
            Some(&token("inspector_1")),
            Method::POST,
            "/api/inspections/rounds",
            Some(
                json!({"name": "matrix", "level": "county", "region_id": w.r1,
                        "seed": 1, "reviews_per_sample": 1}),
            ),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let round = v["round"]["id"].as_i64().unwrap();
    let (_, me) = app
        .call(Some(&token("reviewer_p2")), Method::GET, "/api/me", None)
        .await;
    let reviewer = me["id"].as_i64().unwrap();
    let managers: &[&str] = &[
        "global_admin",
        "city_admin",
        "county_admin_1",
        "inspector_1",
    ];
    let listers: &[&str] = &[
        "global_admin",
        "city_admin",
        "county_admin_1",
        "school_admin_h1",
        "inspector_1",
        "inspector_2",
        "reviewer_p2",
    ];
    let inspectors: &[&str] = &["inspector_1", "inspector_2", "reviewer_p2"];
    let the_reviewer: &[&str] = &["reviewer_p2"];
    let r = |p: &str| format!("/api/inspections/rounds/{round}{p}");
    let mut n = 0;
    let mut seen = std::collections::BTreeSet::new();
    let run = |cases: Vec<Case<'static>>| {
        let app = &app;
        let callers = &callers;
        async move {
            let mut got = Vec::new();
            for (m, template, path, body, allowed) in cases {
                got.push((m.to_string(), template));
                for (name, t) in callers {
                    let (s, v) = app.call(Some(t), m.clone(), &path, body.clone()).await;
                    if allowed.contains(name) {
                        assert!(
                            s.is_success()
                                || (s == StatusCode::CONFLICT
                                    && matches!(kind(&v), "round-drawn" | "sample-appealed")),
                            "{name} may {m} {path}: {s} {v}"
                        );
                    } else {
                        assert!(
                            s == StatusCode::FORBIDDEN
                                && matches!(
                                    kind(&v),
                                    "out-of-scope" | "not-your-review" | "role-forbidden"
                                ),
                            "{name} may not {m} {path}: {s} {v}"
                        );
                    }
                }
            }
            got
        }
    };
    let pool = json!({"reviewers": [{"user_id": reviewer, "expert": true}]});
    let cases: Vec<Case<'static>> = vec![
        (
            Method::GET,
            "/api/inspections/rounds",
            "/api/inspections/rounds".into(),
            None,
            listers,
        ),
        (
            Method::POST,
            "/api/inspections/rounds",
            "/api/inspections/rounds".into(),
            Some(json!({"name": "再抽", "level": "county", "region_id": w.r1})),
            managers,
        ),
        (
            Method::GET,
            "/api/inspections/rounds/{id}",
            r(""),
            None,
            managers,
        ),
        (
            Method::PUT,
            "/api/inspections/rounds/{id}/reviewers",
            r("/reviewers"),
            Some(pool),
            managers,
        ),
        (
            Method::GET,
            "/api/inspections/rounds/{id}/audit",
            r("/audit"),
            None,
            managers,
        ),
        (
            Method::POST,
            "/api/inspections/rounds/{id}/draw",
            r("/draw"),
            None,
            managers,
        ),
        (
            Method::GET,
            "/api/inspections/reviews",
            "/api/inspections/reviews".into(),
            None,
            inspectors,
        ),
    ];
    for c in &cases {
        n += callers.len();
        seen.insert((c.0.to_string(), c.1));
    }
    run(cases).await;
    // The draw gave the one sample its one review, to the reviewer.
    let (_, d) = app
        .call(Some(&token("inspector_1")), Method::GET, &r(""), None)
        .await;
    let sample = d["samples"][0]["id"].as_i64().unwrap();
    let review = d["samples"][0]["reviews"][0]["id"].as_i64().unwrap();
    assert_eq!(
        d["samples"][0]["reviews"][0]["reviewer_id"], reviewer,
        "{d}"
    );
    let rv = format!("/api/inspections/reviews/{review}");
    // The lesson's processed recording: the review's media.
    support::stdraft::stored_recording(&app, l1, 2).await;
    let cases: Vec<Case<'static>> = vec![
        (
            Method::GET,
            "/api/inspections/reviews/{id}/media",
            format!("{rv}/media"),
            None,
            the_reviewer,
        ),
        (
            Method::GET,
            "/api/inspections/reviews/{id}/media/{index}",
            format!("{rv}/media/0"),
            None,
            the_reviewer,
        ),
        (
            Method::GET,
            "/api/inspections/reviews/{id}",
            rv.clone(),
            None,
            the_reviewer,
        ),
        (
            Method::PUT,
            "/api/inspections/reviews/{id}",
            rv,
            Some(json!({"score": 70})),
            the_reviewer,
        ),
        (
            Method::POST,
            "/api/inspections/samples/{id}/appeal",
            format!("/api/inspections/samples/{sample}/appeal"),
            Some(json!({"reason": "申诉"})),
            managers,
        ),
    ];
    for c in &cases {
        n += callers.len();
        seen.insert((c.0.to_string(), c.1));
    }
    run(cases).await;
    // An ability-point round (微能力点): teacher 1's graded A1 with a file, drawn; its
    // reviewer reads the renamed file and grades it 合格; only teacher 1 may appeal it.
    let (s, v) = app
        .call(
            Some(&token("teacher_1")),
            Method::POST,
            &format!("/api/teachers/{}/evidence", w.t1),
            Some(json!({"term": "2026秋", "point": "A1"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let ev = v["id"].as_i64().unwrap();
    let (s, v) = upload(
        &app,
        &token("teacher_1"),
        ev,
        b"%PDF-1.4\n1 0 obj <<>> endobj\n%%EOF\n".to_vec(),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let (s, v) = app
        .call(
            Some(&token("observer_1")),
            Method::PUT,
            &format!("/api/evidence/{ev}/grade"),
            Some(json!({"grade": "pass"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = app
        .call(
            Some(&token("inspector_1")),
            Method::POST,
            "/api/inspections/rounds",
            Some(
                json!({"name": "微能力点", "level": "county", "region_id": w.r1, "seed": 1,
                        "reviews_per_sample": 1, "ratio": 1.0, "source": "ability_point",
                        "term": "2026秋"}),
            ),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let points = v["round"]["id"].as_i64().unwrap();
    for p in ["reviewers", "draw"] {
        let (m, body) = if p == "reviewers" {
            (
                Method::PUT,
                Some(json!({"reviewers": [{"user_id": reviewer, "expert": true}]})),
            )
        } else {
            (Method::POST, None)
        };
        let (s, v) = app
            .call(
                Some(&token("inspector_1")),
                m,
                &format!("/api/inspections/rounds/{points}/{p}"),
                body,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }
    let (_, d) = app
        .call(
            Some(&token("inspector_1")),
            Method::GET,
            &format!("/api/inspections/rounds/{points}"),
            None,
        )
        .await;
    let point_sample = d["samples"][0]["id"].as_i64().unwrap();
    let point_review = d["samples"][0]["reviews"][0]["id"].as_i64().unwrap();
    let herself: &[&str] = &["teacher_1"];
    let cases: Vec<Case<'static>> = vec![
        (
            Method::GET,
            "/api/inspections/reviews/{id}/files/{index}",
            format!("/api/inspections/reviews/{point_review}/files/0"),
            None,
            the_reviewer,
        ),
        (
            Method::PUT,
            "/api/inspections/reviews/{id}",
            format!("/api/inspections/reviews/{point_review}"),
            Some(json!({"grade": "pass"})),
            the_reviewer,
        ),
        (
            Method::POST,
            "/api/inspections/appeals",
            "/api/inspections/appeals".into(),
            Some(json!({"sample_id": point_sample, "reason": "申诉"})),
            herself,
        ),
    ];
    for c in &cases {
        n += callers.len();
        seen.insert((c.0.to_string(), c.1));
    }
    run(cases).await;
    // Another county's inspector lists no round of county 1.
    let (_, l) = app
        .call(
            Some(&token("inspector_2")),
            Method::GET,
            "/api/inspections/rounds",
            None,
        )
        .await;
    assert_eq!(l, json!([]));
    // Every inspection route is in this matrix.
    for (m, p) in classrelay::observe::routes() {
        if p.starts_with("/api/inspections") {
            assert!(
                seen.contains(&(m.to_string(), p)),
                "{m} {p} is not in the inspection matrix"
            );
        }
    }
    assert!(n >= 120, "{n} cases");
}

/// One observation-matrix case: method, the route template it exercises, the concrete path,
/// the body, and who may call it.
type Case<'a> = (Method, &'static str, String, Option<Value>, &'a [&'a str]);

/// A refusal of an observation route: the role rule, the scope, or not the owner.
fn refused_here(s: StatusCode, v: &Value) -> bool {
    s == StatusCode::FORBIDDEN
        && matches!(
            kind(v),
            "out-of-scope" | "not-your-observation" | "role-forbidden"
        )
}

/// Runs every case for every caller; returns how many calls were checked and which route
/// templates were exercised.
async fn run_cases(
    app: &App,
    callers: &[(&str, String)],
    cases: Vec<Case<'_>>,
) -> (usize, Vec<(String, &'static str)>) {
    let mut n = 0;
    let mut seen = Vec::new();
    for (m, template, path, body, allowed) in cases {
        seen.push((m.to_string(), template));
        for (name, t) in callers {
            let (s, v) = app.call(Some(t), m.clone(), &path, body.clone()).await;
            if allowed.contains(name) {
                assert!(s.is_success(), "{name} may {m} {path}: {s} {v}");
            } else {
                assert!(refused_here(s, &v), "{name} may not {m} {path}: {s} {v}");
            }
            n += 1;
        }
    }
    (n, seen)
}

/// The teacher-record routes (教师数字档案, micro-ability evidence) for every kind of caller
/// against a record in scope and out of it: a teacher's record is read by the teacher
/// themself and by admins and observers whose scope covers the teacher's school; evidence is
/// given (and withdrawn, and files added) only by that teacher; graded only by those admins
/// and observers, never the teacher; inspectors (blinded, round-assigned), other teachers and
/// devices never reach it. The expected callers are written out here, independently of the
/// server's rules.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_routes_by_role_and_object() {
    let app = App::start_in_process(Backend::Sqlite).await.unwrap();
    let w = world(&app).await;
    for (name, r) in [("observer_1b", w.r1), ("observer_2", w.r2)] {
        app.create(
            "/api/users",
            json!({"username": name, "display_name": name, "role": "observer",
                   "password": "password-123", "scope": "county", "region_id": r}),
        )
        .await;
    }
    let who = |n: &str| w.logins[n].clone();
    let callers: Vec<(&str, String)> = vec![
        ("global_admin", app.admin.clone()),
        ("city_admin", who("city_admin")),
        ("county_admin_1", who("county_admin_1")),
        ("school_admin_h1", who("school_admin_h1")),
        ("teacher_1", who("teacher_1")),
        ("teacher_2", who("teacher_2")),
        ("observer_1", who("observer_1")),
        (
            "observer_1b",
            app.login("observer_1b", "password-123").await,
        ),
        ("observer_2", app.login("observer_2", "password-123").await),
        ("inspector_2", who("inspector_2")),
        ("device_p1", w.dev_p1.clone()),
        ("device_p2", w.dev_p2.clone()),
    ];
    let token = |n: &str| callers.iter().find(|(c, _)| *c == n).unwrap().1.clone();
    let people = [
        "global_admin",
        "city_admin",
        "county_admin_1",
        "school_admin_h1",
        "teacher_1",
        "teacher_2",
        "observer_1",
        "observer_1b",
        "observer_2",
        "inspector_2",
    ];
    // Teacher 1 teaches at hub 1 (county 1).
    let readers = [
        "global_admin",
        "city_admin",
        "county_admin_1",
        "school_admin_h1",
        "teacher_1",
        "observer_1",
        "observer_1b",
    ];
    let graders = [
        "global_admin",
        "city_admin",
        "county_admin_1",
        "school_admin_h1",
        "observer_1",
        "observer_1b",
    ];
    let herself = ["teacher_1"];
    let t1 = w.t1;
    let add = |point: &str| {
        let (app, t) = (&app, token("teacher_1"));
        let point = point.to_string();
        async move {
            let (s, v) = app
                .call(
                    Some(&t),
                    Method::POST,
                    &format!("/api/teachers/{t1}/evidence"),
                    Some(json!({"term": "2026秋", "point": point})),
                )
                .await;
            assert_eq!(s, StatusCode::CREATED, "{v}");
            v["id"].as_i64().unwrap()
        }
    };
    let graded = add("A1").await;
    let pdf = b"%PDF-1.4\n1 0 obj <<>> endobj\n%%EOF\n".to_vec();
    let (s, f) = upload(&app, &token("teacher_1"), graded, pdf.clone()).await;
    assert_eq!(s, 201, "{f}");
    let file = f["id"].as_i64().unwrap();
    let cases: Vec<Case> = vec![
        (
            Method::GET,
            "/api/ability-points",
            "/api/ability-points".into(),
            None,
            &people,
        ),
        (
            Method::GET,
            "/api/teachers/{id}/record",
            format!("/api/teachers/{t1}/record?term=2026秋"),
            None,
            &readers,
        ),
        (
            Method::GET,
            "/api/teachers/{id}/record.csv",
            format!("/api/teachers/{t1}/record.csv?term=2026秋"),
            None,
            &readers,
        ),
        (
            Method::GET,
            "/api/evidence/{id}/files/{file}",
            format!("/api/evidence/{graded}/files/{file}"),
            None,
            &readers,
        ),
        (
            Method::POST,
            "/api/teachers/{id}/evidence",
            format!("/api/teachers/{t1}/evidence"),
            Some(json!({"term": "2026秋", "point": "A3"})),
            &herself,
        ),
    ];
    let (mut checked, seen) = run_cases(&app, &callers, cases).await;
    let mut covered: std::collections::BTreeSet<(String, &str)> = seen.into_iter().collect();
    // Files: only the teacher adds them (to an ungraded item of theirs).
    for (name, t) in &callers {
        let (s, v) = upload(&app, t, graded, pdf.clone()).await;
        if herself.contains(name) {
            assert_eq!(s, 201, "{name}: {v}");
        } else {
            assert_eq!(s, 403, "{name}: {v}");
            assert!(
                matches!(kind(&v), "out-of-scope" | "role-forbidden"),
                "{name}: {v}"
            );
        }
        checked += 1;
    }
    covered.insert(("POST".into(), "/api/evidence/{id}/files"));
    // Withdrawing: refused to everyone else, then the teacher withdraws it.
    let doomed = add("B6").await;
    for (name, t) in callers.iter().filter(|(n, _)| !herself.contains(n)) {
        let (s, v) = app
            .call(
                Some(t),
                Method::DELETE,
                &format!("/api/evidence/{doomed}"),
                None,
            )
            .await;
        assert!(refused_here(s, &v), "{name} may not withdraw: {s} {v}");
        checked += 1;
    }
    let (s, v) = app
        .call(
            Some(&token("teacher_1")),
            Method::DELETE,
            &format!("/api/evidence/{doomed}"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    checked += 1;
    covered.insert(("DELETE".into(), "/api/evidence/{id}"));
    // Grading (last: a graded item takes no more files).
    let (n, seen) = run_cases(
        &app,
        &callers,
        vec![(
            Method::PUT,
            "/api/evidence/{id}/grade",
            format!("/api/evidence/{graded}/grade"),
            Some(json!({"grade": "pass"})),
            &graders,
        )],
    )
    .await;
    checked += n;
    covered.extend(seen);
    // Every record route is in this matrix.
    for (m, p) in classrelay::observe::records::routes() {
        assert!(
            covered.contains(&(m.to_string(), p)),
            "{m} {p} is not in the record matrix"
        );
    }
    // Eight routes, twelve callers each.
    assert_eq!(checked, 8 * 12, "{checked} cases");
}

/// Uploads `bytes` as a file of evidence `id` (raw body, in-process); status and JSON body.
async fn upload(app: &App, token: &str, id: i64, bytes: Vec<u8>) -> (u16, Value) {
    use tower::ServiceExt;
    let req = axum::http::Request::builder()
        .method("POST")
        .uri(format!("/api/evidence/{id}/files?name=plan.pdf"))
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/octet-stream")
        .body(axum::body::Body::from(bytes))
        .unwrap();
    let r = app
        .oneshot
        .clone()
        .expect("in-process")
        .oneshot(req)
        .await
        .unwrap();
    let s = r.status().as_u16();
    let b = axum::body::to_bytes(r.into_body(), usize::MAX)
        .await
        .unwrap();
    (s, serde_json::from_slice(&b).unwrap_or(Value::Null))
}

/// Recordings (issue 20 item 3): a recording is seen by the admins, teachers and observers who
/// may watch its lesson; a plain room's only by a global admin; inspectors and devices never
/// (the route rule). Every `/api/recordings` route of the served document is in this matrix,
/// and lists show exactly what the caller may open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recording_routes_by_role_and_object() {
    let app = App::start_in_process(Backend::Sqlite).await.unwrap();
    let w = world(&app).await;
    let l1 = app
        .create(
            "/api/lessons",
            lesson_body(w.t1, w.h1_room, &[w.p1_room], "08:00", "08:40"),
        )
        .await;
    let l2 = app
        .create(
            "/api/lessons",
            lesson_body(w.t2, w.h2_room, &[], "09:00", "09:40"),
        )
        .await;
    let src = support::recorded::three_sources(2);
    let rec = |l: Option<i64>, start: &'static str| {
        let app = &app;
        let src = &src;
        async move {
            support::recorded::insert(&app.server, l, at(start), at(start) + 60_000, Some(src))
                .await
        }
    };
    let r1 = rec(Some(l1), "08:00").await;
    let r2 = rec(Some(l2), "09:00").await;
    let r3 = rec(None, "10:00").await;
    let (_, m) = app
        .call(
            Some(&app.admin),
            Method::GET,
            &format!("/api/recordings/{r1}/manifest"),
            None,
        )
        .await;
    let file = m["sources"][0]["file"].as_str().unwrap().to_string();
    let who = |n: &str| w.logins[n].clone();
    let callers: Vec<(&str, String)> = vec![
        ("global_admin", app.admin.clone()),
        ("city_admin", who("city_admin")),
        ("county_admin_1", who("county_admin_1")),
        ("school_admin_h1", who("school_admin_h1")),
        ("teacher_1", who("teacher_1")),
        ("teacher_2", who("teacher_2")),
        ("observer_1", who("observer_1")),
        ("inspector_2", who("inspector_2")),
        ("device_p1", w.dev_p1.clone()),
        ("device_p2", w.dev_p2.clone()),
    ];
    let sees: [(i64, &[&str]); 3] = [
        (
            r1,
            &[
                "global_admin",
                "city_admin",
                "county_admin_1",
                "school_admin_h1",
                "teacher_1",
                "observer_1",
            ],
        ),
        (r2, &["global_admin", "city_admin", "teacher_2"]),
        (r3, &["global_admin"]),
    ];
    let listers = [
        "global_admin",
        "city_admin",
        "county_admin_1",
        "school_admin_h1",
        "teacher_1",
        "teacher_2",
        "observer_1",
    ];
    let mut covered = std::collections::BTreeSet::new();
    let mut checked = 0;
    for (name, token) in &callers {
        // The list: exactly the recordings this caller may open.
        let (s, v) = app
            .call(Some(token), Method::GET, "/api/recordings", None)
            .await;
        if listers.contains(name) {
            assert_eq!(s, StatusCode::OK, "{name}: {v}");
            let mut listed: Vec<i64> = v["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["id"].as_i64().unwrap())
                .collect();
            listed.sort_unstable();
            let want: Vec<i64> = sees
                .iter()
                .filter(|(_, who)| who.contains(name))
                .map(|(r, _)| *r)
                .collect();
            assert_eq!(listed, want, "{name} /api/recordings");
        } else {
            assert!(refused(s, &v), "{name} may not list recordings: {s} {v}");
        }
        covered.insert("/api/recordings".to_string());
        checked += 1;
        for (r, allowed) in &sees {
            for (template, path) in [
                ("/api/recordings/{id}", format!("/api/recordings/{r}")),
                (
                    "/api/recordings/{id}/manifest",
                    format!("/api/recordings/{r}/manifest"),
                ),
                (
                    "/api/recordings/{id}/files/{file}",
                    format!("/api/recordings/{r}/files/{file}"),
                ),
                // Its processing's events (issue 20, recctl).
                (
                    "/api/recordings/{id}/events",
                    format!("/api/recordings/{r}/events"),
                ),
                // All its files as one zip (issue 20, recfin).
                (
                    "/api/recordings/{id}/download.zip",
                    format!("/api/recordings/{r}/download.zip"),
                ),
            ] {
                let resp = app
                    .oneshot_request(Some(token), Method::GET, &path, None)
                    .await;
                let s = StatusCode::from_u16(resp.status().as_u16()).unwrap();
                let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
                    .await
                    .unwrap();
                let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                if allowed.contains(name) {
                    assert_eq!(s, StatusCode::OK, "{name} may GET {path}: {v}");
                } else {
                    assert!(refused(s, &v), "{name} may not GET {path}: {s} {v}");
                }
                covered.insert(template.to_string());
                checked += 1;
            }
        }
    }
    // Every recordings route the API documents is in this matrix.
    let (_, doc) = app.call(None, Method::GET, "/api/openapi.json", None).await;
    let documented: Vec<&String> = doc["paths"]
        .as_object()
        .unwrap()
        .keys()
        .filter(|p| p.starts_with("/api/recordings"))
        .collect();
    assert_eq!(documented.len(), 6, "{documented:?}");
    for p in documented {
        assert!(covered.contains(p), "{p} is not in the recordings matrix");
    }
    assert_eq!(checked, callers.len() * 16);
}

// ---- Reports, cancellation and the patrol wall (issue 22 items 6 and 7) ----

/// The ids of a JSON list of lessons (or of a report's `lessons`).
fn lesson_ids(v: &Value) -> Vec<i64> {
    let mut ids: Vec<i64> = v
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| l["id"].as_i64())
        .collect();
    ids.sort_unstable();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_cancel_and_patrol_routes_by_role_and_object() {
    let app = App::start_in_process(Backend::Sqlite).await.unwrap();
    let w = world(&app).await;
    let mut body2 = lesson_body(w.t2, w.h2_room, &[w.p2_room], "08:00", "08:40");
    body2["override_pairing"] = json!(true);
    let l1 = app
        .create(
            "/api/lessons",
            lesson_body(w.t1, w.h1_room, &[w.p1_room], "08:00", "08:40"),
        )
        .await;
    let l2 = app.create("/api/lessons", body2.clone()).await;
    let l3 = app
        .create(
            "/api/lessons",
            lesson_body(w.t1, w.h1_room, &[w.p1_room], "09:00", "09:40"),
        )
        .await;
    body2["starts_at"] = json!(at("09:00"));
    body2["ends_at"] = json!(at("09:40"));
    let l4 = app.create("/api/lessons", body2).await;
    app.clock.set(at("07:55"));
    let who = |n: &str| -> String {
        if n == "global_admin" {
            app.admin.clone()
        } else {
            w.logins[n].clone()
        }
    };
    let call = |token: String, m: Method, path: String, body: Option<Value>| {
        let app = &app;
        async move { app.call(Some(&token), m, &path, body).await }
    };
    let overseers = [
        ("global_admin", vec![l1, l2]),
        ("city_admin", vec![l1, l2]),
        ("county_admin_1", vec![l1]),
        ("school_admin_h1", vec![l1]),
        ("inspector_2", vec![l2]),
    ];
    let mut checked = 0;
    // The wall: each sees the lessons open now in their scope, no other.
    for (name, want) in &overseers {
        let name: &str = name;
        let (s, v) = call(who(name), Method::GET, "/api/patrol".into(), None).await;
        assert_eq!(s, StatusCode::OK, "{name}: {v}");
        assert_eq!(&lesson_ids(&v), want, "{name}'s wall");
        for l in [l1, l2] {
            let (s, v) = call(
                who(name),
                Method::POST,
                format!("/api/lessons/{l}/patrol"),
                None,
            )
            .await;
            if want.contains(&l) {
                assert_eq!(s, StatusCode::OK, "{name} patrols {l}: {v}");
                assert!(v["part"].as_str().unwrap().starts_with("p:"), "{v}");
            } else {
                assert!(
                    refused(s, &v) && kind(&v) == "out-of-scope",
                    "{name} patrols {l}: {s} {v}"
                );
            }
            checked += 1;
        }
        // The reports: the lessons of their scope only, and only their schools' rows.
        let (s, v) = call(
            who(name),
            Method::GET,
            "/api/reports?from=2026-09-07&to=2026-09-07".into(),
            None,
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{name}: {v}");
        let mut want_all: Vec<i64> = want
            .iter()
            .flat_map(|l| if *l == l1 { [l1, l3] } else { [l2, l4] })
            .collect();
        want_all.sort_unstable();
        assert_eq!(lesson_ids(&v["lessons"]), want_all, "{name}'s report");
        checked += 3;
    }
    let others = [
        who("teacher_1"),
        who("teacher_2"),
        who("observer_1"),
        w.dev_p1.clone(),
        w.dev_p2.clone(),
    ];
    for token in &others {
        for (m, path) in [
            (Method::GET, "/api/patrol".to_string()),
            (Method::POST, format!("/api/lessons/{l1}/patrol")),
            (Method::GET, "/api/reports".to_string()),
            (Method::GET, "/api/reports.csv?table=rate".to_string()),
        ] {
            let (s, v) = call(token.clone(), m.clone(), path.clone(), None).await;
            assert!(
                refused(s, &v) && kind(&v) == "role-forbidden",
                "{m} {path}: {s} {v}"
            );
            checked += 1;
        }
    }
    // Cancelling: the hub teacher or an admin over the hub school, before the bell.
    let cancel = |l: i64| format!("/api/lessons/{l}/cancel");
    for (name, l, ok) in [
        ("teacher_2", l3, false),
        ("observer_1", l3, false),
        ("county_admin_1", l4, false),
        ("school_admin_h1", l4, false),
        ("inspector_2", l4, false),
        ("teacher_1", l3, true),
        ("city_admin", l4, true),
    ] {
        let (s, v) = call(who(name), Method::POST, cancel(l), Some(json!({}))).await;
        if ok {
            assert_eq!(s, StatusCode::OK, "{name} cancels {l}: {v}");
        } else {
            assert!(refused(s, &v), "{name} cancels {l}: {s} {v}");
        }
        checked += 1;
    }
    let (s, v) = call(w.dev_p1.clone(), Method::POST, cancel(l1), Some(json!({}))).await;
    assert!(refused(s, &v), "{s} {v}");
    // Once the bell has rung it is too late.
    app.clock.set(at("08:05"));
    let (s, v) = call(
        who("global_admin"),
        Method::POST,
        cancel(l1),
        Some(json!({})),
    )
    .await;
    assert_eq!(
        (s, kind(&v)),
        (StatusCode::CONFLICT, "lesson-started"),
        "{v}"
    );
    // The cancelled lessons are counted as cancelled in each scope's report.
    let (_, v) = call(
        who("county_admin_1"),
        Method::GET,
        "/api/reports?from=2026-09-07&to=2026-09-07".into(),
        None,
    )
    .await;
    assert_eq!(v["rate"][0]["cancelled"], 1, "{v}");
    assert_eq!(v["rate"][0]["scheduled"], 2, "{v}");

    // Deleting users (admin pages): inside the caller's scope, never themselves.
    let (_, users) = call(who("global_admin"), Method::GET, "/api/users".into(), None).await;
    let user = |n: &str| {
        users
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["username"] == n)
            .map(|u| u["id"].as_i64().unwrap())
            .unwrap()
    };
    for (name, target, want) in [
        ("county_admin_1", "inspector_2", "out-of-scope"),
        ("school_admin_h1", "observer_1", "out-of-scope"),
        ("teacher_1", "observer_1", "role-forbidden"),
        ("county_admin_1", "county_admin_1", "self-delete"),
    ] {
        let (s, v) = call(
            who(name),
            Method::DELETE,
            format!("/api/users/{}", user(target)),
            None,
        )
        .await;
        assert_eq!(kind(&v), want, "{name} deletes {target}: {s} {v}");
        checked += 1;
    }
    let (s, v) = call(
        who("county_admin_1"),
        Method::DELETE,
        format!("/api/users/{}", user("observer_1")),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    let (s, _) = call(who("observer_1"), Method::GET, "/api/me".into(), None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "a deleted user's session ends");
    // The QR code: admins only; it draws what it is given, or says why not.
    let (s, v) = call(
        who("school_admin_h1"),
        Method::POST,
        "/api/qr.svg".into(),
        Some(json!({"text": "http://x/classroom?device=crd_1"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = call(
        who("school_admin_h1"),
        Method::POST,
        "/api/qr.svg".into(),
        Some(json!({"text": ""})),
    )
    .await;
    assert_eq!((s, kind(&v)), (StatusCode::BAD_REQUEST, "bad-query"), "{v}");
    let (s, v) = call(
        who("inspector_2"),
        Method::POST,
        "/api/qr.svg".into(),
        Some(json!({"text": "x"})),
    )
    .await;
    assert_eq!(kind(&v), "role-forbidden", "{s} {v}");
    assert!(checked > 40, "{checked} cases");
}
