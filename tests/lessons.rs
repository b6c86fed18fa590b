//! Lessons as schools run them: who may call what (a role × route matrix over every API
//! route), a lesson that opens and ends by the (hand-driven) clock with its events, and the
//! 名师课堂 rule that a viewing site publishes only while the teacher grants it, checked at
//! WHIP time with real WebRTC peers (str0m, from `classrelay-loadtest`).
//!
//! Run: `cargo test --test lessons`.

mod support;

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::time::Duration;

use classrelay_loadtest::swarm::Swarm;
use classrelay_loadtest::whip;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use support::media::{hd_source, sent_more_than, vp8_source};
use support::school::{at, fixture, lesson, App, Backend, Fixture};
use support::sse::Sse;

fn kind(v: &Value) -> &str {
    v["type"]
        .as_str()
        .unwrap_or("")
        .trim_start_matches("urn:classrelay:problem:")
}

/// The access rules, written out independently of the server's table. Roles in order:
/// admin, teacher, classroom, observer, inspector; `anon` = callable without credentials.
struct Expect {
    method: &'static str,
    path: &'static str,
    anon: bool,
    roles: &'static str,
}

const A: &str = "admin";
const ALL: &str = "admin teacher classroom observer inspector";
const PEOPLE: &str = "admin teacher observer inspector";
const STAFF: &str = "admin teacher";

fn expectations() -> Vec<Expect> {
    let mut v = vec![
        ("GET", "/api/openapi.json", true, ALL),
        ("POST", "/api/login", true, ALL),
        ("GET", "/api/me", false, ALL),
        ("GET", "/api/users", false, A),
        ("POST", "/api/users", false, A),
        ("PATCH", "/api/users/{id}", false, A),
        ("DELETE", "/api/users/{id}", false, A),
        ("POST", "/api/qr.svg", false, A),
        ("GET", "/api/users.csv", false, A),
        ("POST", "/api/users/import", false, A),
        ("GET", "/api/classrooms/{id}/devices", false, A),
        ("POST", "/api/classrooms/{id}/devices", false, A),
        ("DELETE", "/api/devices/{id}", false, A),
        ("PATCH", "/api/devices/{id}", false, A),
        ("GET", "/api/pairings.csv", false, A),
        ("POST", "/api/pairings/import", false, A),
        ("GET", "/api/timetable.csv", false, A),
        ("POST", "/api/timetable/import", false, A),
        ("POST", "/api/schools/import", false, A),
        ("POST", "/api/classrooms/import", false, A),
        ("POST", "/api/teachers/import", false, A),
        ("GET", "/api/templates/{file}", false, A),
        ("GET", "/api/slots", false, PEOPLE),
        ("POST", "/api/slots", false, A),
        ("GET", "/api/slots/{id}", false, PEOPLE),
        ("PUT", "/api/slots/{id}", false, A),
        ("DELETE", "/api/slots/{id}", false, A),
        ("GET", "/api/lessons", false, ALL),
        ("POST", "/api/lessons", false, STAFF),
        ("POST", "/api/lessons/generate", false, A),
        ("GET", "/api/lessons/{id}", false, ALL),
        ("PUT", "/api/lessons/{id}", false, STAFF),
        ("DELETE", "/api/lessons/{id}", false, STAFF),
        ("POST", "/api/lessons/{id}/join", false, ALL),
        ("POST", "/api/lessons/{id}/end", false, STAFF),
        ("POST", "/api/lessons/{id}/recording", false, STAFF),
        ("POST", "/api/lessons/{id}/hand", false, "classroom"),
        ("POST", "/api/lessons/{id}/speak", false, STAFF),
        ("POST", "/api/lessons/{id}/spotlight", false, STAFF),
        ("GET", "/api/lessons/{id}/live", false, ALL),
        ("GET", "/api/lessons/{id}/events", false, ALL),
        ("GET", "/api/today", false, ALL),
        // Reports, cancellation and the patrol wall (issue 22 items 6 and 7).
        ("GET", "/api/reports", false, "admin inspector"),
        ("GET", "/api/reports.csv", false, "admin inspector"),
        ("POST", "/api/lessons/{id}/cancel", false, STAFF),
        ("GET", "/api/patrol", false, "admin inspector"),
        ("POST", "/api/lessons/{id}/patrol", false, "admin inspector"),
        // The teacher console and attendance (issue 22 items 3 and 8).
        ("POST", "/api/lessons/{id}/mute", false, STAFF),
        ("POST", "/api/lessons/{id}/lower-hand", false, STAFF),
        ("GET", "/api/lessons/{id}/attendance", false, PEOPLE),
        // Link reports (issue 19 item 6).
        (
            "POST",
            "/api/lessons/{id}/link-stats",
            false,
            "teacher classroom",
        ),
        ("GET", "/api/lessons/{id}/link-report", false, PEOPLE),
        ("GET", "/api/lessons/{id}/link-report.csv", false, PEOPLE),
        // Last: it ends the caller's session.
        ("POST", "/api/logout", false, ALL),
    ];
    for (entity, read) in [
        // A classroom device reads its own classroom (and its lessons'), never the directory.
        ("regions", PEOPLE),
        ("schools", PEOPLE),
        ("classrooms", ALL),
        ("teachers", PEOPLE),
        ("pairings", PEOPLE),
        ("terms", PEOPLE),
    ] {
        let base: &'static str = Box::leak(format!("/api/{entity}").into_boxed_str());
        let one: &'static str = Box::leak(format!("/api/{entity}/{{id}}").into_boxed_str());
        v.insert(0, ("GET", base, false, read));
        v.insert(0, ("POST", base, false, A));
        v.insert(0, ("GET", one, false, read));
        v.insert(0, ("PUT", one, false, A));
        v.insert(0, ("DELETE", one, false, A));
    }
    v.into_iter()
        .map(|(method, path, anon, roles)| Expect {
            method,
            path,
            anon,
            roles,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn role_by_route_matrix() {
    let app = App::start(Backend::Sqlite).await.unwrap();
    let f = fixture(&app).await;
    let device = app.device(f.room_a).await;
    let callers: Vec<(&str, Option<String>)> = vec![
        ("anonymous", None),
        ("admin", Some(app.admin.clone())),
        ("teacher", Some(f.teacher_login.clone())),
        ("classroom", Some(device)),
        ("observer", Some(f.observer_login.clone())),
        ("inspector", Some(f.inspector_login.clone())),
    ];
    let exp = expectations();
    // Every route the server documents is in the table above, and nothing else.
    let (_, doc) = app.call(None, Method::GET, "/api/openapi.json", None).await;
    let mut documented = BTreeSet::new();
    // (The WHIP/WHEP operations are documented too; they are not the school API's.)
    for (path, ops) in doc["paths"].as_object().unwrap() {
        // The observation API, teacher records, inspection, recordings and exports have their
        // own matrices in tests/scope_matrix.rs (observation_, record_, inspection_,
        // recording_routes_by_role_and_object and the exports rows).
        if !path.starts_with("/api/")
            || path.starts_with("/api/observations")
            || path.starts_with("/api/rubrics")
            || path.starts_with("/api/evidence")
            || path.starts_with("/api/ability-points")
            || path.starts_with("/api/inspections")
            || path.starts_with("/api/recordings")
            || path.starts_with("/api/teachers/{id}/")
            || path.ends_with("/exports")
        {
            continue;
        }
        for m in ops.as_object().unwrap().keys() {
            documented.insert((m.to_uppercase(), path.clone()));
        }
    }
    let expected: BTreeSet<_> = exp
        .iter()
        .map(|e| (e.method.to_string(), e.path.to_string()))
        .collect();
    assert_eq!(
        documented, expected,
        "the OpenAPI document lists exactly the routes of the matrix"
    );
    let mut checked = 0;
    for (who, token) in &callers {
        for e in &exp {
            // Ids that exist nowhere: an allowed caller reaches the handler (404/422/...),
            // a refused one is stopped by the rule first.
            let path = e.path.replace("{id}", "999999");
            let body = matches!(e.method, "POST" | "PUT" | "PATCH").then(|| json!({}));
            let method = Method::from_bytes(e.method.as_bytes()).unwrap();
            let (s, v) = app.call(token.as_deref(), method, &path, body).await;
            let allowed = match token {
                None => e.anon,
                Some(_) => e.roles.split(' ').any(|r| r == *who),
            };
            if allowed {
                assert!(
                    !(s == StatusCode::UNAUTHORIZED || kind(&v) == "role-forbidden"),
                    "{who} may {} {}: got {s} {v}",
                    e.method,
                    e.path
                );
            } else if token.is_none() {
                assert_eq!(
                    s,
                    StatusCode::UNAUTHORIZED,
                    "anonymous {} {}: {v}",
                    e.method,
                    e.path
                );
                assert_eq!(kind(&v), "login-required");
            } else {
                assert_eq!(
                    s,
                    StatusCode::FORBIDDEN,
                    "{who} may not {} {}: {v}",
                    e.method,
                    e.path
                );
                assert_eq!(kind(&v), "role-forbidden");
            }
            checked += 1;
        }
    }
    assert_eq!(checked, callers.len() * exp.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timetabled_lesson_opens_and_ends_by_the_clock() {
    let app = App::start(Backend::Sqlite).await.unwrap();
    let f = fixture(&app).await;
    app.create(
        "/api/slots",
        json!({"term_id": f.term, "weekday": 1, "period": 1, "starts": "08:00", "ends": "08:40",
               "subject": "英语", "grade": "三年级", "mode": "delivery",
               "hub_teacher_id": f.teacher, "hub_classroom_id": f.hub_room,
               "sites": [{"classroom_id": f.room_a}, {"classroom_id": f.room_b}]}),
    )
    .await;
    app.admin_ok(
        Method::POST,
        "/api/lessons/generate",
        json!({"from": "2026-09-07", "to": "2026-09-07"}),
        StatusCode::OK,
    )
    .await;
    let dev = app.device(f.room_a).await;
    // The kiosk asks what is on for its classroom.
    let (_, today) = app.call(Some(&dev), Method::GET, "/api/today", None).await;
    assert!(today["current"].is_null(), "{today}");
    let id = today["next"]["id"].as_i64().expect("the lesson is next");
    assert_eq!(today["next"]["state"], "scheduled");
    // 07:00: too early, with the opening time in the reason.
    let (s, v) = app
        .call(
            Some(&dev),
            Method::POST,
            &format!("/api/lessons/{id}/join"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(kind(&v), "lesson-not-open");
    assert!(
        v["detail"].as_str().unwrap().contains("07:50:00+08:00"),
        "{v}"
    );
    let mut ev = Sse::open(&app, &f.teacher_login, id, None).await;
    let (k, snap) = ev.next().await;
    assert_eq!(k, "resync", "a new follower starts from a snapshot: {snap}");
    // 07:50: open.
    app.clock.set(at("07:50"));
    let v = ev.until("state").await;
    assert_eq!(v["data"]["state"], "open");
    let (s, join) = app
        .call(
            Some(&dev),
            Method::POST,
            &format!("/api/lessons/{id}/join"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{join}");
    assert_eq!(
        join["publish"], true,
        "专递课堂: an interactive site publishes"
    );
    assert_eq!(join["part"], format!("c:{}", f.room_a));
    let (_, today) = app.call(Some(&dev), Method::GET, "/api/today", None).await;
    assert_eq!(today["current"]["id"], id);
    // A classroom that is not in the lesson cannot join it.
    let stranger = app
        .create(
            "/api/classrooms",
            json!({"school_id": f.partner_a, "name": "五年级1班", "kind": "interactive"}),
        )
        .await;
    let sdev = app.device(stranger).await;
    let (s, v) = app
        .call(
            Some(&sdev),
            Method::POST,
            &format!("/api/lessons/{id}/join"),
            None,
        )
        .await;
    assert_eq!((s, kind(&v)), (StatusCode::FORBIDDEN, "not-in-lesson"));
    // The classroom publishes with the lesson token: presence shows in the events.
    let swarm = Swarm::start().unwrap();
    let token = join["token"].as_str().unwrap();
    let offer = swarm.publisher_offer(vp8_source()).unwrap();
    let p = whip::join(
        &swarm,
        &app.http,
        &format!("{}{}", app.base, join["whip"].as_str().unwrap()),
        token,
        offer,
    )
    .await
    .unwrap();
    assert_eq!(
        ev.until("joined").await["data"]["part"],
        format!("c:{}", f.room_a)
    );
    assert!(
        p.stats
            .wait_for(Duration::from_secs(20), |s| s
                .connected
                .load(Ordering::Relaxed))
            .await
    );
    // 08:00 live; 08:45 (08:40 + 5 min grace) ended, and the room is emptied.
    app.clock.set(at("08:00"));
    assert_eq!(ev.until("state").await["data"]["state"], "live");
    let seen = {
        let (_, v) = app
            .call(
                Some(&f.teacher_login),
                Method::GET,
                &format!("/api/lessons/{id}/live"),
                None,
            )
            .await;
        assert_eq!(v["present"][0]["publishing"], 1, "{v}");
        v["seq"].as_u64().unwrap()
    };
    app.clock.set(at("08:45"));
    assert_eq!(ev.until("state").await["data"]["state"], "ended");
    assert_eq!(
        ev.until("left").await["data"]["part"],
        format!("c:{}", f.room_a)
    );
    let (s, v) = app
        .call(
            Some(&dev),
            Method::POST,
            &format!("/api/lessons/{id}/join"),
            None,
        )
        .await;
    assert_eq!((s, kind(&v)), (StatusCode::FORBIDDEN, "lesson-ended"));
    // The token issued earlier no longer opens a session either.
    let offer = swarm.publisher_offer(vp8_source()).unwrap();
    let r = whip::post_offer(
        &app.http,
        &format!("{}{}", app.base, join["whip"].as_str().unwrap()),
        token,
        &offer.sdp,
    )
    .await;
    assert!(format!("{:#}", r.unwrap_err()).contains("403"));
    // A follower that reconnects with Last-Event-ID gets exactly what it missed.
    let mut again = Sse::open(&app, &f.teacher_login, id, Some(seen)).await;
    let (k, v) = again.next().await;
    assert_eq!(v["seq"].as_u64().unwrap(), seen + 1);
    // A link-quality report, or the recording's stop at the lesson's end (and its
    // processing), may come first; the state change follows.
    let v = if k == "state" {
        v
    } else {
        assert!(
            matches!(&*k, "quality" | "recording" | "processing"),
            "{k}: {v}"
        );
        again.until("state").await
    };
    assert_eq!(v["data"]["state"], "ended");
    let (_, l) = app
        .call(
            Some(&app.admin),
            Method::GET,
            &format!("/api/lessons/{id}"),
            None,
        )
        .await;
    assert_eq!(l["state"], "ended");
}

async fn metric(app: &App, name: &str) -> f64 {
    let text = support::metrics::scrape(&app.http, &app.base).await;
    support::metrics::value(&text, name).unwrap_or(0.0)
}

async fn join(app: &App, token: &str, lesson: i64) -> Value {
    let (s, v) = app
        .call(
            Some(token),
            Method::POST,
            &format!("/api/lessons/{lesson}/join"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn master_class_sites_publish_only_while_granted() {
    let app = App::start(Backend::Sqlite).await.unwrap();
    let f: Fixture = fixture(&app).await;
    let id = lesson(&app, &f, "master", "07:30", "08:10").await;
    app.clock.set(at("07:35"));
    let dev = app.device(f.room_a).await;
    let viewer = app.device(f.room_view).await;
    let site = join(&app, &dev, id).await;
    assert_eq!(site["publish"], true);
    assert_eq!(site["needs_speak_grant"], true);
    assert_eq!(
        join(&app, &viewer, id).await["publish"],
        false,
        "a receive-only room never publishes"
    );
    let hub = join(&app, &f.teacher_login, id).await;
    let swarm = Swarm::start().unwrap();
    let whip_url = format!("{}{}", app.base, site["whip"].as_str().unwrap());
    let site_token = site["token"].as_str().unwrap().to_string();
    // Not granted: refused at WHIP time.
    let offer = swarm.publisher_offer(vp8_source()).unwrap();
    let e = whip::post_offer(&app.http, &whip_url, &site_token, &offer.sdp)
        .await
        .unwrap_err();
    assert!(
        format!("{e:#}").contains("403") && format!("{e:#}").contains("speak-not-granted"),
        "{e:#}"
    );
    // The teacher watches the room (no one else publishes in this test).
    let sub = whip::join(
        &swarm,
        &app.http,
        &format!("{}{}", app.base, hub["whep"].as_str().unwrap()),
        hub["token"].as_str().unwrap(),
        swarm.subscriber_offer(1, 1).unwrap(),
    )
    .await
    .unwrap();
    let mut ev = Sse::open(&app, &f.teacher_login, id, None).await;
    ev.until("resync").await;
    // Raise hand → the teacher sees it; grant → the site publishes and the teacher receives.
    let (s, v) = app
        .call(
            Some(&dev),
            Method::POST,
            &format!("/api/lessons/{id}/hand"),
            Some(json!({"raised": true})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        ev.until("hand").await["data"],
        json!({"classroom": f.room_a, "raised": true})
    );
    // Only the lesson's own teacher grants.
    let (s, v) = app
        .call(
            Some(&f.other_teacher_login),
            Method::POST,
            &format!("/api/lessons/{id}/speak"),
            Some(json!({"classroom_id": f.room_a, "granted": true})),
        )
        .await;
    assert_eq!((s, kind(&v)), (StatusCode::FORBIDDEN, "not-your-lesson"));
    let (s, v) = app
        .call(
            Some(&f.teacher_login),
            Method::POST,
            &format!("/api/lessons/{id}/speak"),
            Some(json!({"classroom_id": f.room_a, "granted": true})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["speakers"], json!([f.room_a]));
    assert_eq!(v["hands"], json!([]), "granting lowers the hand");
    assert_eq!(
        ev.until("speak").await["data"],
        json!({"classroom": f.room_a, "granted": true})
    );
    let p = whip::join(
        &swarm,
        &app.http,
        &whip_url,
        &site_token,
        swarm.publisher_offer(vp8_source()).unwrap(),
    )
    .await
    .unwrap();
    assert!(
        sub.stats
            .wait_for(Duration::from_secs(30), |s| s
                .video_packets
                .load(Ordering::Relaxed)
                > 30)
            .await,
        "the teacher receives the granted site"
    );
    // Revoke: the session ends at once; what the site still sends is no longer routed.
    let (s, _) = app
        .call(
            Some(&f.teacher_login),
            Method::POST,
            &format!("/api/lessons/{id}/speak"),
            Some(json!({"classroom_id": f.room_a, "granted": false})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let after_revoke = sub.stats.video_packets.load(Ordering::Relaxed);
    let unroutable = metric(&app, "classrelay_udp_unroutable_total").await;
    let sent_then = p.stats.frames_sent.load(Ordering::Relaxed);
    // Wait until the site has sent 30 more frames into the void.
    assert!(sent_more_than(&p, sent_then + 30, Duration::from_secs(20)).await);
    assert!(
        metric(&app, "classrelay_udp_unroutable_total").await > unroutable,
        "the revoked site's packets are dropped"
    );
    let got = sub.stats.video_packets.load(Ordering::Relaxed) - after_revoke;
    assert!(
        got <= 5,
        "at most what was in flight reached the teacher after the revoke ({got} packets)"
    );
    let e = whip::post_offer(
        &app.http,
        &whip_url,
        &site_token,
        &swarm.publisher_offer(vp8_source()).unwrap().sdp,
    )
    .await
    .unwrap_err();
    assert!(format!("{e:#}").contains("speak-not-granted"), "{e:#}");
    // Grants are for sites of a 名师课堂 only.
    let (s, v) = app
        .call(
            Some(&f.teacher_login),
            Method::POST,
            &format!("/api/lessons/{id}/spotlight"),
            Some(json!({"classroom_id": f.room_a})),
        )
        .await;
    assert_eq!((s, kind(&v)), (StatusCode::CONFLICT, "wrong-mode"));
    let (s, _) = app
        .call(
            Some(&f.teacher_login),
            Method::POST,
            &format!("/api/lessons/{id}/speak"),
            Some(json!({"classroom_id": 424242, "granted": true})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    // The teacher ends the lesson: everyone is out, and it stays ended.
    let (s, v) = app
        .call(
            Some(&f.teacher_login),
            Method::POST,
            &format!("/api/lessons/{id}/end"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["state"], "ended");
    let (_, live) = app
        .call(
            Some(&f.teacher_login),
            Method::GET,
            &format!("/api/lessons/{id}/live"),
            None,
        )
        .await;
    assert_eq!(live["present"], json!([]), "{live}");
    let (s, _) = app
        .call(
            Some(&f.teacher_login),
            Method::POST,
            &format!("/api/lessons/{id}/end"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
}

/// Width and height from a VP8 keyframe header.
fn vp8_size(frame: &[u8]) -> Option<(u16, u16)> {
    if frame.len() < 10 || frame[0] & 1 != 0 || frame[3..6] != [0x9d, 0x01, 0x2a] {
        return None;
    }
    let w = u16::from_le_bytes([frame[6], frame[7]]) & 0x3fff;
    let h = u16::from_le_bytes([frame[8], frame[9]]) & 0x3fff;
    Some((w, h))
}

/// Waits until `sub` has received a keyframe of `size` after the first `skip` frames.
async fn keyframe_of(
    sub: &support::webrtc_client::Subscriber,
    skip: usize,
    size: (u16, u16),
) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let frames = sub.video_frames();
        if frames
            .iter()
            .skip(skip)
            .any(|f| f.keyframe && vp8_size(&f.data) == Some(size))
        {
            return true;
        }
        let seen = frames.len();
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() || sub.wait_for(left, |c| c.video_frames > seen).await.is_err() {
            return false;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_class_spotlight_and_source_selection() {
    spotlight_and_sources(App::start(Backend::Sqlite).await.unwrap()).await;
}

/// The same with the viewers spread over two media workers (`media.spread_after = 0`):
/// the spotlight and each viewer's source reach the worker away from the classes'
/// publishers, whose tracks are piped there with their classroom.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_class_spotlight_and_source_selection_over_two_workers() {
    let app = App::start_with(Backend::Sqlite, |c| {
        c.media.workers = 2;
        c.media.spread_after = 0;
    })
    .await
    .unwrap();
    spotlight_and_sources(app).await;
}

async fn spotlight_and_sources(app: App) {
    let f = fixture(&app).await;
    let id = lesson(&app, &f, "sync", "07:30", "08:10").await;
    app.clock.set(at("07:40"));
    let (dev_a, dev_b, dev_view) = (
        app.device(f.room_a).await,
        app.device(f.room_b).await,
        app.device(f.room_view).await,
    );
    let (ja, jb, jv) = (
        join(&app, &dev_a, id).await,
        join(&app, &dev_b, id).await,
        join(&app, &dev_view, id).await,
    );
    assert_eq!(
        (
            ja["publish"].as_bool(),
            jb["publish"].as_bool(),
            ja["needs_speak_grant"].as_bool()
        ),
        (Some(true), Some(true), Some(false))
    );
    let room = jv["room"].as_str().unwrap();
    let view_token = jv["token"].as_str().unwrap();
    // The receive-only room follows the big screen; another viewer follows classroom B only.
    // (In that order on two workers, the big screen is the viewer away from home.)
    let only_b = support::webrtc_client::whep_subscribe(
        &app.base,
        &format!("{room}?source=c:{}", f.room_b),
        view_token,
    )
    .await
    .unwrap();
    let big = support::webrtc_client::whep_subscribe(
        &app.base,
        &format!("{room}?source=spotlight"),
        view_token,
    )
    .await
    .unwrap();
    // Bad sources are refused.
    for bad in ["everyone", "c:", "x:1", "c:1;drop"] {
        let e = support::webrtc_client::whep_subscribe(
            &app.base,
            &format!("{room}?source={bad}"),
            view_token,
        )
        .await;
        assert!(
            format!("{:#}", e.err().expect("refused")).contains("400"),
            "{bad}"
        );
    }
    // A sends 320×240, B 1280×720.
    let swarm = Swarm::start().unwrap();
    let pa = whip::join(
        &swarm,
        &app.http,
        &format!("{}{}", app.base, ja["whip"].as_str().unwrap()),
        ja["token"].as_str().unwrap(),
        swarm.publisher_offer(vp8_source()).unwrap(),
    )
    .await
    .unwrap();
    let pb = whip::join(
        &swarm,
        &app.http,
        &format!("{}{}", app.base, jb["whip"].as_str().unwrap()),
        jb["token"].as_str().unwrap(),
        swarm.publisher_offer(hd_source()).unwrap(),
    )
    .await
    .unwrap();
    assert!(
        keyframe_of(&only_b, 0, (1280, 720)).await,
        "source=c:B receives B"
    );
    assert!(sent_more_than(&pa, 60, Duration::from_secs(20)).await);
    assert!(sent_more_than(&pb, 60, Duration::from_secs(20)).await);
    assert_eq!(big.counts().video_frames, 0, "nobody on the big screen yet");
    assert!(
        only_b
            .video_frames()
            .iter()
            .filter_map(|f| vp8_size(&f.data))
            .all(|s| s == (1280, 720)),
        "never A"
    );
    // The teacher puts A on the big screen, then B.
    let mut ev = Sse::open(&app, &f.teacher_login, id, None).await;
    ev.until("resync").await;
    let (s, v) = app
        .call(
            Some(&f.teacher_login),
            Method::POST,
            &format!("/api/lessons/{id}/spotlight"),
            Some(json!({"classroom_id": f.room_a})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["spotlight"], f.room_a);
    assert_eq!(ev.until("spotlight").await["data"]["classroom"], f.room_a);
    assert!(
        keyframe_of(&big, 0, (320, 240)).await,
        "A appears on the big screen"
    );
    let before = big.video_frames().len();
    app.call(
        Some(&f.teacher_login),
        Method::POST,
        &format!("/api/lessons/{id}/spotlight"),
        Some(json!({"classroom_id": f.room_b})),
    )
    .await;
    assert!(keyframe_of(&big, before, (1280, 720)).await, "B replaces A");
    assert_eq!(ev.until("spotlight").await["data"]["classroom"], f.room_b);
    // One output stream throughout: the switch is seamless for the classroom's decoder.
    let ssrcs: BTreeSet<u32> = big.video_packets().iter().map(|p| p.ssrc).collect();
    assert_eq!(ssrcs.len(), 1, "{ssrcs:?}");
    assert_eq!(big.counts().video_frames_dropped, 0);
    // Spotlight off: the big screen stops getting new frames from either.
    app.call(
        Some(&f.teacher_login),
        Method::POST,
        &format!("/api/lessons/{id}/spotlight"),
        Some(json!({"classroom_id": null})),
    )
    .await;
    assert_eq!(
        ev.until("spotlight").await["data"]["classroom"],
        Value::Null
    );
    // After the switch has reached the worker (the publishers have sent 30 more frames),
    // the big screen gets nothing new.
    let sent = pb.stats.frames_sent.load(Ordering::Relaxed);
    assert!(sent_more_than(&pb, sent + 30, Duration::from_secs(20)).await);
    let off = big.video_frames().len();
    let sent = pb.stats.frames_sent.load(Ordering::Relaxed);
    assert!(sent_more_than(&pb, sent + 30, Duration::from_secs(20)).await);
    assert_eq!(
        big.video_frames().len(),
        off,
        "spotlight off: nothing on the big screen"
    );
    let (s, v) = app
        .call(
            Some(&f.teacher_login),
            Method::POST,
            &format!("/api/lessons/{id}/spotlight"),
            Some(json!({"classroom_id": f.hub_room})),
        )
        .await;
    assert_eq!(
        s,
        StatusCode::UNPROCESSABLE_ENTITY,
        "only sites go on the big screen: {v}"
    );
    big.close().await.unwrap();
    only_b.close().await.unwrap();
}

/// The link of participant `part` in a `quality` event's or live state's `links`.
fn link_of<'a>(links: &'a Value, part: &str) -> Option<&'a Value> {
    links
        .as_array()?
        .iter()
        .find(|l| l["part"].as_str() == Some(part))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn link_quality_of_a_classroom_reaches_the_teacher() {
    link_quality(App::start(Backend::Sqlite).await.unwrap()).await;
}

/// The same with the classroom's preview on the other media worker than its publisher
/// (`media.spread_after = 0`): the link figures are gathered from every worker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn link_quality_gathers_a_classrooms_sessions_from_both_workers() {
    let app = App::start_with(Backend::Sqlite, |c| {
        c.media.workers = 2;
        c.media.spread_after = 0;
    })
    .await
    .unwrap();
    link_quality(app).await;
}

async fn link_quality(app: App) {
    let f = fixture(&app).await;
    let id = lesson(&app, &f, "delivery", "07:30", "08:10").await;
    app.clock.set(at("07:40"));
    let dev_a = app.device(f.room_a).await;
    let ja = join(&app, &dev_a, id).await;
    assert_eq!(ja["publish"], true);
    let part = format!("c:{}", f.room_a);
    let room = ja["room"].as_str().unwrap();
    let token = ja["token"].as_str().unwrap();
    let mut ev = Sse::open(&app, &f.teacher_login, id, None).await;
    ev.until("resync").await;
    // Classroom A publishes (str0m, loadtest swarm) and watches itself (webrtc crate), as a
    // classroom's own preview screen does: one participant, two sessions.
    let swarm = Swarm::start().unwrap();
    let p = whip::join(
        &swarm,
        &app.http,
        &format!("{}{}", app.base, ja["whip"].as_str().unwrap()),
        token,
        swarm.publisher_offer(vp8_source()).unwrap(),
    )
    .await
    .unwrap();
    let watch =
        support::webrtc_client::whep_subscribe(&app.base, &format!("{room}?source={part}"), token)
            .await
            .unwrap();
    assert!(
        p.stats
            .wait_for(Duration::from_secs(20), |s| s
                .connected
                .load(Ordering::Relaxed))
            .await
    );
    // `quality` events come when a grade or what is known changes; wait for the one that has
    // both sessions with media flowing both ways, a measured RTT and a measured loss (the
    // receiver reports of both legs have arrived by then).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let link = loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no complete quality event within 60 s"
        );
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let v = tokio::time::timeout(left, ev.until("quality"))
            .await
            .expect("a complete quality event within 60 s");
        let Some(l) = link_of(&v["data"]["links"], &part) else {
            continue;
        };
        assert!(l["kbps_in"].is_number() && l["kbps_out"].is_number(), "{l}");
        if l["sessions"] == 2
            && l["rtt_ms"].is_number()
            && l["loss_pct"].is_number()
            && l["kbps_in"].as_f64().unwrap() > 0.0
            && l["kbps_out"].as_f64().unwrap() > 0.0
        {
            break l.clone();
        }
    };
    // Loopback: nothing lost, and the round trip well under the 150 ms a good grade allows
    // (`quality::GOOD_RTT_MS`), so the grade is good.
    let rtt = link["rtt_ms"].as_f64().unwrap();
    assert!((0.0..150.0).contains(&rtt), "loopback RTT: {link}");
    let loss = link["loss_pct"].as_f64().unwrap();
    assert!((0.0..2.0).contains(&loss), "loopback loss: {link}");
    assert_eq!(link["grade"], "good", "{link}");
    // The live state carries the latest summary too.
    let (s, live) = app
        .call(
            Some(&f.teacher_login),
            Method::GET,
            &format!("/api/lessons/{id}/live"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{live}");
    let l = link_of(&live["links"], &part).unwrap_or_else(|| panic!("{live}"));
    assert_eq!(l["sessions"], 2, "{l}");
    assert!(l["grade"].is_string() && l["rtt_ms"].is_number(), "{l}");
    watch.close().await.unwrap();
}
