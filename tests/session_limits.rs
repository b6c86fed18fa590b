//! WHIP/WHEP session caps and ownership against a real server on loopback (review findings 4
//! and 17): one token cannot fill the server, a principal's tokens share one budget, a cap's
//! refusal is a 429 problem with `Retry-After`, one room holds at most its share of the
//! server (503 `room-full`), sessions that end by any path (DELETE, a kick,
//! the media side) free their place, only a session's owner may PATCH or DELETE it, and
//! `Media::kick_where` ends a principal's sessions in every room.
//!
//! Offers come from independent str0m instances: raw ones never driven (peers that never
//! connect, as in the review's flood), and the load generator's simulated peers where media
//! has to flow.
//!
//! Run: `cargo test --test session_limits`.

mod support;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use classrelay::auth::{now_secs, Claims, Grant};
use classrelay::{Config, Server};
use classrelay_loadtest::swarm::{PeerHandle, Swarm};
use classrelay_loadtest::whip;
use reqwest::{Method, Response, StatusCode};
use serde_json::Value;
use str0m::media::{Direction, MediaKind};
use str0m::Rtc;
use support::media::vp8_source;
use support::school::{at, fixture, lesson, App, Backend};

const TTL: Duration = Duration::from_secs(600);

struct Env {
    _dir: tempfile::TempDir,
    server: Server,
    http: reqwest::Client,
    base: String,
}

/// The caps as shipped (`Config::for_tests` lifts them for the other tests' shared tokens).
fn shipped_caps(c: &mut Config) {
    let d = Config::default();
    c.media.max_sessions_per_principal = d.media.max_sessions_per_principal;
    c.media.max_sessions_per_token = d.media.max_sessions_per_token;
}

async fn start(adjust: impl FnOnce(&mut Config)) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = Config::for_tests(dir.path());
    adjust(&mut cfg);
    let server = Server::start(cfg).await.unwrap();
    let base = format!("http://{}", server.http_addr());
    Env {
        _dir: dir,
        server,
        http: reqwest::Client::new(),
        base,
    }
}

/// A token for `sub` in `room`, issued `age` seconds ago (so two tokens of one principal
/// differ).
fn token(server: &Server, sub: &str, room: &str, grants: &[Grant], age: u64) -> String {
    let now = now_secs();
    server.state().keys.mint_claims(&Claims {
        sub: sub.into(),
        room: room.into(),
        grants: grants.to_vec(),
        exp: now + TTL.as_secs(),
        iat: now - age,
        lesson: None,
        part: None,
        who: None,
        ver: None,
    })
}

/// An offer from a str0m instance that is never driven: its peer never connects.
fn raw_offer(dir: Direction) -> String {
    let mut rtc = Rtc::builder().build(Instant::now());
    let mut api = rtc.sdp_api();
    api.add_media(MediaKind::Audio, dir, None, None, None);
    api.add_media(MediaKind::Video, dir, None, None, None);
    let (offer, _pending) = api.apply().unwrap();
    offer.to_sdp_string()
}

async fn post_offer(http: &reqwest::Client, url: &str, token: &str) -> Response {
    let dir = if url.contains("/whip/") {
        Direction::SendOnly
    } else {
        Direction::RecvOnly
    };
    http.post(url)
        .bearer_auth(token)
        .header("content-type", "application/sdp")
        .body(raw_offer(dir))
        .send()
        .await
        .unwrap()
}

fn location(r: &Response) -> String {
    r.headers()["location"].to_str().unwrap().to_string()
}

/// Posts offers to `url` with `token` until one is refused; returns the session URLs
/// (relative) made and the refusal.
async fn flood(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    most: usize,
) -> (Vec<String>, Response) {
    let mut made = Vec::new();
    for _ in 0..most {
        let r = post_offer(http, url, token).await;
        if r.status() != StatusCode::CREATED {
            return (made, r);
        }
        made.push(location(&r));
    }
    panic!("{most} sessions made with one token and no refusal");
}

/// Asserts a problem+json answer of `status` and `kind`; returns its body.
async fn assert_problem(resp: Response, status: StatusCode, kind: &str) -> Value {
    let got = resp.status();
    let ct = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string());
    let text = resp.text().await.unwrap();
    assert_eq!(got, status, "{kind}: {text}");
    assert_eq!(ct.as_deref(), Some("application/problem+json"), "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["type"], format!("urn:classrelay:problem:{kind}"), "{v}");
    v
}

/// Asserts a cap's refusal: 429 `too-many-sessions` with `Retry-After` and the limit.
async fn assert_cap(resp: Response, limit: usize, names: &str) {
    let retry = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().parse::<u64>().unwrap());
    assert!(retry.is_some_and(|s| s > 0), "Retry-After: {retry:?}");
    let v = assert_problem(resp, StatusCode::TOO_MANY_REQUESTS, "too-many-sessions").await;
    assert_eq!(v["limit"], limit, "{v}");
    let detail = v["detail"].as_str().unwrap();
    assert!(detail.contains(names), "`{names}` not in: {detail}");
}

fn metric(env: &Env, name: &str) -> f64 {
    support::metrics::value(&env.server.metrics().encode(), name).unwrap_or(0.0)
}

fn session_id(url: &str) -> String {
    url.rsplit('/').next().unwrap().to_string()
}

fn has_session(server: &Server, url: &str) -> bool {
    server
        .state()
        .media
        .sessions
        .lock()
        .unwrap()
        .contains_key(&session_id(url))
}

/// The review's reproduction (finding 4): one subscribe token posting offers in a loop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_token_cannot_fill_the_server() {
    let env = start(shipped_caps).await;
    let media = &env.server.state().config.media;
    let (per_token, per_principal) = (
        media.max_sessions_per_token,
        media.max_sessions_per_principal,
    );
    let url = format!("{}/whep/flood", env.base);
    let first = token(&env.server, "viewer", "flood", &[Grant::Subscribe], 0);

    let (mine, refusal) = flood(&env.http, &url, &first, 10 * per_principal).await;
    assert_eq!(mine.len(), per_token, "sessions one token got");
    assert_cap(refusal, per_token, "this token").await;

    // Another principal is not crowded out.
    let other = token(&env.server, "someone-else", "flood", &[Grant::Subscribe], 0);
    let r = post_offer(&env.http, &url, &other).await;
    assert_eq!(r.status(), StatusCode::CREATED);

    // A second token of the same principal gets what the principal has left.
    let second = token(&env.server, "viewer", "flood", &[Grant::Subscribe], 100);
    let (more, refusal) = flood(&env.http, &url, &second, 10 * per_principal).await;
    assert_eq!(
        mine.len() + more.len(),
        per_principal,
        "sessions the principal got"
    );
    assert_cap(refusal, per_principal, "`viewer@flood`").await;

    // Refused offers took no place.
    assert_eq!(env.server.peer_count(), per_principal + 1);

    // Ending a session frees its place.
    let r = env
        .http
        .delete(format!("{}{}", env.base, mine[0]))
        .bearer_auth(&first)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = post_offer(&env.http, &url, &first).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = post_offer(&env.http, &url, &first).await;
    assert_cap(r, per_principal, "`viewer@flood`").await;

    // Publishing is capped by the same budget (its own principal: the token's name).
    let publisher = token(&env.server, "viewer", "flood", &[Grant::Publish], 200);
    let r = post_offer(&env.http, &format!("{}/whip/flood", env.base), &publisher).await;
    assert_cap(r, per_principal, "`viewer@flood`").await;

    let refused = |reason: &str| {
        metric(
            &env,
            &format!("classrelay_sessions_refused_total{{reason=\"{reason}\"}}"),
        )
    };
    assert_eq!((refused("PerToken"), refused("PerPrincipal")), (1.0, 3.0));
}

/// One lesson cannot crowd out the others: a room holds at most its share of `max_peers`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_room_cannot_take_the_whole_server() {
    let env = start(|c| {
        shipped_caps(c);
        c.media.max_peers = 10;
        c.media.max_room_share_percent = 50;
    })
    .await;
    let url = format!("{}/whep/big", env.base);
    for i in 0..5 {
        let t = token(
            &env.server,
            &format!("site-{i}"),
            "big",
            &[Grant::Subscribe],
            0,
        );
        let r = post_offer(&env.http, &url, &t).await;
        assert_eq!(r.status(), StatusCode::CREATED, "site {i}");
    }
    let t = token(&env.server, "site-5", "big", &[Grant::Subscribe], 0);
    let r = post_offer(&env.http, &url, &t).await;
    let retry = r.headers().get("retry-after").cloned();
    assert!(retry.is_some(), "Retry-After");
    let v = assert_problem(r, StatusCode::SERVICE_UNAVAILABLE, "room-full").await;
    assert_eq!(v["limit"], 5, "{v}");
    // Another lesson still gets in.
    let t = token(&env.server, "site-0", "small", &[Grant::Subscribe], 0);
    let r = post_offer(&env.http, &format!("{}/whep/small", env.base), &t).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(env.server.peer_count(), 6);
    assert_eq!(
        metric(
            &env,
            "classrelay_sessions_refused_total{reason=\"RoomShare\"}"
        ),
        1.0
    );
}

async fn video_beyond(peer: &PeerHandle, n: u64) -> bool {
    peer.stats
        .wait_for(Duration::from_secs(30), |s| {
            s.video_packets.load(Ordering::Relaxed) > n
        })
        .await
}

/// Review finding 17: another participant with the same grant cannot end, ICE-restart or
/// re-layer a session; the owner can, with any token of theirs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_owner_changes_or_ends_a_session() {
    let env = start(shipped_caps).await;
    let swarm = Swarm::start().unwrap();
    let room = "own";
    let hub = token(&env.server, "hub", room, &[Grant::Publish], 0);
    let publisher = whip::join(
        &swarm,
        &env.http,
        &format!("{}/whip/{room}", env.base),
        &hub,
        swarm.publisher_offer(vp8_source()).unwrap(),
    )
    .await
    .unwrap();
    let class_a = token(&env.server, "class-a", room, &[Grant::Subscribe], 0);
    let viewer = whip::join(
        &swarm,
        &env.http,
        &format!("{}/whep/{room}", env.base),
        &class_a,
        swarm.subscriber_offer(1, 1).unwrap(),
    )
    .await
    .unwrap();
    assert!(video_beyond(&viewer, 20).await, "media flows to the viewer");

    let intruder = token(
        &env.server,
        "class-b",
        room,
        &[Grant::Publish, Grant::Subscribe],
        0,
    );
    for url in [&viewer.session_url, &publisher.session_url] {
        let r = env
            .http
            .delete(url)
            .bearer_auth(&intruder)
            .send()
            .await
            .unwrap();
        assert_problem(r, StatusCode::FORBIDDEN, "not-session-owner").await;
        // An ICE restart would move the session's route to the intruder.
        let r = env
            .http
            .patch(url)
            .bearer_auth(&intruder)
            .header("content-type", "application/trickle-ice-sdpfrag")
            .header("if-match", "*")
            .body("a=ice-ufrag:intr\r\na=ice-pwd:intruderintruderintruder\r\n")
            .send()
            .await
            .unwrap();
        assert_problem(r, StatusCode::FORBIDDEN, "not-session-owner").await;
    }
    let r = env
        .http
        .post(format!("{}/layer", viewer.session_url))
        .bearer_auth(&intruder)
        .json(&serde_json::json!({"rid": null}))
        .send()
        .await
        .unwrap();
    assert_problem(r, StatusCode::FORBIDDEN, "not-session-owner").await;

    // Untouched: both sessions are there, their ETags unchanged, and media keeps flowing.
    for peer in [&viewer, &publisher] {
        let sessions = env.server.state().media.sessions.lock().unwrap();
        let s = &sessions[&session_id(&peer.session_url)];
        assert_eq!(format!("\"{}\"", s.etag), peer.etag);
    }
    let now = viewer.stats.video_packets.load(Ordering::Relaxed);
    assert!(video_beyond(&viewer, now + 60).await, "media still flows");

    // The owner with a newer token of theirs: an ICE restart goes through, and DELETE.
    let class_a_again = token(&env.server, "class-a", room, &[Grant::Subscribe], 100);
    assert_ne!(class_a_again, class_a);
    whip::ice_restart(&swarm, &env.http, &class_a_again, &viewer)
        .await
        .unwrap();
    let r = env
        .http
        .delete(&viewer.session_url)
        .bearer_auth(&class_a_again)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(!has_session(&env.server, &viewer.session_url));
    let r = env
        .http
        .delete(&publisher.session_url)
        .bearer_auth(&hub)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(env.server.peer_count(), 0);
}

/// A session its peer left (ended on the media side: `PeerGone`) frees its place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_gone_on_the_media_side_frees_its_place() {
    let env = start(|c| {
        c.media.max_sessions_per_principal = 1;
        c.media.max_sessions_per_token = 1;
        c.media.disconnect_grace_ms = 200;
    })
    .await;
    let swarm = Swarm::start().unwrap();
    let url = format!("{}/whep/gone", env.base);
    let t = token(&env.server, "viewer", "gone", &[Grant::Subscribe], 0);
    let viewer = whip::join(
        &swarm,
        &env.http,
        &url,
        &t,
        swarm.subscriber_offer(1, 1).unwrap(),
    )
    .await
    .unwrap();
    assert!(
        viewer
            .stats
            .wait_for(Duration::from_secs(30), |s| s
                .connected
                .load(Ordering::Relaxed))
            .await
    );
    assert_cap(post_offer(&env.http, &url, &t).await, 1, "`viewer@gone`").await;
    // The viewer goes without a DELETE; the worker drops it after the disconnect grace.
    swarm.close(&viewer).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while has_session(&env.server, &viewer.session_url) {
        assert!(Instant::now() < deadline, "the gone peer's session stayed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = post_offer(&env.http, &url, &t).await;
    assert_eq!(r.status(), StatusCode::CREATED);
}

/// A session ended while it is being set up (a revocation racing the offer) leaves no peer
/// behind: its offer is refused once the setup ends, and its peer removed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_kicked_during_setup_leaves_no_peer() {
    let env = start(shipped_caps).await;
    let t = token(&env.server, "revoked", "race", &[Grant::Subscribe], 0);
    let post = tokio::spawn({
        let (http, url) = (env.http.clone(), format!("{}/whep/race", env.base));
        async move { post_offer(&http, &url, &t).await }
    });
    // The session is in the map from before its peer is built: catch it there.
    let mut ended = 0;
    while ended == 0 && !post.is_finished() {
        ended = env
            .server
            .state()
            .media
            .kick_where(|s| s.owner == "revoked@race" && !s.admitted)
            .await;
        tokio::task::yield_now().await;
    }
    assert_eq!(ended, 1, "the session was kicked while being set up");
    let r = post.await.unwrap();
    assert_problem(r, StatusCode::FORBIDDEN, "session-ended").await;
    assert_eq!(env.server.peer_count(), 0, "no peer left behind");
    assert!(env.server.state().media.sessions.lock().unwrap().is_empty());
}

async fn join(app: &App, login: &str, lesson: i64) -> Value {
    let (s, v) = app
        .call(
            Some(login),
            Method::POST,
            &format!("/api/lessons/{lesson}/join"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v
}

/// A fresh join, then a WHEP offer with its token: (response, token). Each session is kept
/// on purpose (`?replace=0`): a seat's new session of the same source would otherwise
/// replace its old one (`signal::replaces_by_default`), and the caps would never be reached.
async fn watch(app: &App, login: &str, lesson: i64) -> (Response, String) {
    let j = join(app, login, lesson).await;
    let t = j["token"].as_str().unwrap().to_string();
    let url = format!("{}{}?replace=0", app.base, j["whep"].as_str().unwrap());
    (post_offer(&app.http, &url, &t).await, t)
}

/// Lesson tokens: the participant is the principal over all its tokens and lessons; the hub
/// teacher also watches each site; another participant cannot end a session; and
/// `kick_where` ends a participant's sessions in every room at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lesson_participants_are_principals() {
    let app = App::start_with(Backend::Sqlite, |c| {
        c.media.max_sessions_per_principal = 4;
        c.media.max_sessions_per_token = 100;
    })
    .await
    .unwrap();
    let f = fixture(&app).await;
    // Back to back (one teacher and classroom cannot be in two lessons at once): at 07:35
    // the first is live and the second open.
    let id = lesson(&app, &f, "sync", "07:30", "07:40").await;
    let other_lesson = lesson(&app, &f, "sync", "07:40", "08:20").await;
    app.clock.set(at("07:35"));
    let dev_a = app.device(f.room_a).await;
    let dev_b = app.device(f.room_b).await;
    let part_a = format!("c:{}", f.room_a);

    // Classroom A: four sessions over fresh joins, then refused.
    let mut a_sessions = Vec::new();
    for _ in 0..4 {
        let (r, t) = watch(&app, &dev_a, id).await;
        assert_eq!(r.status(), StatusCode::CREATED);
        a_sessions.push((location(&r), t));
    }
    let (r, _) = watch(&app, &dev_a, id).await;
    assert_cap(r, 4, &format!("`{part_a}`")).await;
    // In the other lesson too: the classroom is one principal.
    let (r, _) = watch(&app, &dev_a, other_lesson).await;
    assert_cap(r, 4, &format!("`{part_a}`")).await;

    // Classroom B is another participant: admitted, and it cannot end A's session.
    let (r, b_token) = watch(&app, &dev_b, id).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let b_session = location(&r);
    let (a_url, a_token) = &a_sessions[0];
    let r = app
        .http
        .delete(format!("{}{a_url}", app.base))
        .bearer_auth(&b_token)
        .send()
        .await
        .unwrap();
    assert_problem(r, StatusCode::FORBIDDEN, "not-session-owner").await;
    assert!(has_session(&app.server, a_url));

    // The hub teacher: the cap plus one per site (3).
    for i in 0..7 {
        let (r, _) = watch(&app, &f.teacher_login, id).await;
        assert_eq!(r.status(), StatusCode::CREATED, "teacher session {i}");
    }
    let (r, _) = watch(&app, &f.teacher_login, id).await;
    assert_cap(r, 7, &format!("`t:{}`", f.teacher)).await;

    // Revocation: every session of classroom A ends at once; nobody else's.
    let peers = app.server.peer_count();
    let ended = app
        .server
        .state()
        .media
        .kick_where(|s| s.owner == part_a)
        .await;
    assert_eq!(ended, 4);
    assert_eq!(app.server.peer_count(), peers - 4);
    assert!(a_sessions.iter().all(|(u, _)| !has_session(&app.server, u)));
    assert!(has_session(&app.server, &b_session));
    let r = app
        .http
        .delete(format!("{}{a_url}", app.base))
        .bearer_auth(a_token)
        .send()
        .await
        .unwrap();
    assert_problem(r, StatusCode::NOT_FOUND, "session-not-found").await;
    let (r, _) = watch(&app, &dev_a, id).await;
    assert_eq!(r.status(), StatusCode::CREATED, "the kick freed A's places");

    // An observer watching two lessons: one principal, ended in both rooms by one call.
    let observer = join(&app, &f.observer_login, id).await["part"]
        .as_str()
        .unwrap()
        .to_string();
    for l in [id, other_lesson] {
        let (r, _) = watch(&app, &f.observer_login, l).await;
        assert_eq!(r.status(), StatusCode::CREATED);
    }
    let ended = app
        .server
        .state()
        .media
        .kick_where(|s| s.owner == observer)
        .await;
    assert_eq!(ended, 2);
}
