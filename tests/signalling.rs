//! WHIP/WHEP signalling against a real server on loopback: what needs media workers and real
//! sockets (sessions that live, SDP a worker reads, `Link` headers on a created session, a
//! full server), and that a burst of bad requests leaves a good session untouched. Refusals
//! decided before any media work, CORS and OPTIONS are checked in-process by
//! `tests/app_oneshot.rs`.
//!
//! Run: `cargo test --test signalling`.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use classrelay::auth::{Claims, Grant};
use classrelay::{Config, Server};
use reqwest::{Client, Response, StatusCode};
use str0m::media::{Direction, MediaKind};
use str0m::Rtc;

const SECRET: &str = "test-secret-test-secret-test-secret";

struct Env {
    _dir: tempfile::TempDir,
    server: Server,
    http: Client,
    base: String,
}

async fn start() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = Config::for_tests(dir.path());
    cfg.auth.secret = SECRET.into();
    let server = Server::start(cfg).await.unwrap();
    let base = format!("http://{}", server.http_addr());
    Env {
        _dir: dir,
        server,
        http: Client::new(),
        base,
    }
}

/// An offer made by an independent str0m instance (the client side).
fn offer(dir: Direction) -> String {
    let mut rtc = Rtc::builder().build(Instant::now());
    let mut api = rtc.sdp_api();
    api.add_media(MediaKind::Audio, dir, None, None, None);
    api.add_media(MediaKind::Video, dir, None, None, None);
    let (offer, _pending) = api.apply().unwrap();
    offer.to_sdp_string()
}

async fn post(env: &Env, path: &str, token: Option<&str>, ct: &str, body: String) -> Response {
    let mut req = env
        .http
        .post(format!("{}{path}", env.base))
        .header("content-type", ct)
        .body(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap()
}

/// Asserts status and a problem+json body with the given type suffix.
async fn assert_problem(resp: Response, status: StatusCode, kind: &str) -> serde_json::Value {
    let status_got = resp.status();
    if status_got != status {
        panic!(
            "status for {kind}: got {status_got}, body {}",
            resp.text().await.unwrap()
        );
    }
    let ct = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert_eq!(ct, "application/problem+json", "content type for {kind}");
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(
        v["type"],
        format!("urn:classrelay:problem:{kind}"),
        "problem type in {v}"
    );
    assert_eq!(v["status"], status.as_u16());
    assert!(v["detail"].as_str().is_some_and(|d| !d.is_empty()));
    v
}

fn expired_token(room: &str) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = Claims {
        sub: "late".into(),
        room: room.into(),
        grants: vec![Grant::Publish],
        exp: now - 60,
        iat: now - 3600,
        lesson: None,
        part: None,
        who: None,
        ver: None,
    };
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

#[tokio::test]
async fn whip_whep_create_patch_delete() {
    let env = start().await;
    let pubt = env
        .server
        .mint_token("r1", Grant::Publish, Duration::from_secs(60));
    let resp = post(
        &env,
        "/whip/r1",
        Some(&pubt),
        "application/sdp",
        offer(Direction::SendOnly),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let h = resp.headers().clone();
    assert_eq!(h["content-type"], "application/sdp");
    let location = h["location"].to_str().unwrap().to_string();
    assert!(location.starts_with("/whip/r1/"), "{location}");
    let id = location.rsplit('/').next().unwrap();
    assert_eq!(id.len(), 32, "128-bit session id");
    let etag = h["etag"].to_str().unwrap().to_string();
    assert!(etag.starts_with('"') && etag.ends_with('"'));
    let answer = resp.text().await.unwrap();
    assert!(answer.contains("a=ice-lite"), "{answer}");
    assert!(answer.contains("a=recvonly"), "{answer}");
    assert!(
        answer.contains("127.0.0.1"),
        "host candidate on loopback: {answer}"
    );

    // Trickle with the right ETag: accepted (204). That is all this shows: the server is
    // ICE-lite, so a trickled candidate changes nothing a client could observe.
    let resp = env
        .http
        .patch(format!("{}{location}", env.base))
        .bearer_auth(&pubt)
        .header("content-type", "application/trickle-ice-sdpfrag")
        .header("if-match", &etag)
        .body("a=candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host\r\na=end-of-candidates\r\n")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);

    // ICE restart with If-Match: * : 200 with new credentials and a new ETag.
    let resp = env
        .http
        .patch(format!("{}{location}", env.base))
        .bearer_auth(&pubt)
        .header("content-type", "application/trickle-ice-sdpfrag")
        .header("if-match", "*")
        .body("a=ice-ufrag:Zx9q\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\n")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let new_etag = resp.headers()["etag"].to_str().unwrap().to_string();
    assert_ne!(new_etag, etag);
    let frag = resp.text().await.unwrap();
    assert!(frag.contains("a=ice-ufrag:"), "{frag}");
    assert!(frag.contains("a=ice-pwd:"), "{frag}");
    assert!(frag.contains("a=candidate:"), "{frag}");
    assert!(
        !answer.contains(frag.lines().next().unwrap()),
        "server ufrag changed"
    );

    // WHEP subscriber in the same room.
    let subt = env
        .server
        .mint_token("r1", Grant::Subscribe, Duration::from_secs(60));
    let resp = post(
        &env,
        "/whep/r1",
        Some(&subt),
        "application/sdp",
        offer(Direction::RecvOnly),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let wloc = resp.headers()["location"].to_str().unwrap().to_string();
    assert!(wloc.starts_with("/whep/r1/"));
    let answer = resp.text().await.unwrap();
    assert!(answer.contains("a=sendonly"), "{answer}");

    // Layer choice on the subscriber.
    let resp = env
        .http
        .post(format!("{}{wloc}/layer", env.base))
        .bearer_auth(&subt)
        .json(&serde_json::json!({"rid": "h"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);

    // DELETE both; a second DELETE is 404.
    for (loc, tok) in [(&location, &pubt), (&wloc, &subt)] {
        let resp = env
            .http
            .delete(format!("{}{loc}", env.base))
            .bearer_auth(tok)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let resp = env
            .http
            .delete(format!("{}{loc}", env.base))
            .bearer_auth(tok)
            .send()
            .await
            .unwrap();
        assert_problem(resp, StatusCode::NOT_FOUND, "session-not-found").await;
    }
    env.server.shutdown().await;
}

/// Refusals that need the SDP read by a media worker, and PATCH refusals on a live session,
/// with their problem bodies; then a burst of every request refused before media work (their
/// problem bodies are checked in-process by `tests/app_oneshot.rs`) sent over loopback at
/// once. The good session made first must come through all of it.
#[tokio::test]
async fn bad_requests_over_loopback_leave_the_good_session_working() {
    let env = start().await;
    let pubt = env
        .server
        .mint_token("r1", Grant::Publish, Duration::from_secs(60));
    // A good session first; it must survive everything below.
    let resp = post(
        &env,
        "/whip/r1",
        Some(&pubt),
        "application/sdp",
        offer(Direction::SendOnly),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    let etag = resp.headers()["etag"].to_str().unwrap().to_string();
    let good = offer(Direction::SendOnly);

    let audio_only = good
        .lines()
        .take_while(|l| !l.starts_with("m=video"))
        .collect::<Vec<_>>()
        .join("\r\n");
    // An offer whose only codec is one the server does not take (PCMU).
    let pcmu = only_pcmu(&audio_only);
    let subt = env
        .server
        .mint_token("r1", Grant::Subscribe, Duration::from_secs(60));
    let other = env
        .server
        .mint_token("r2", Grant::Publish, Duration::from_secs(60));
    let expired = expired_token("r1");
    let sdp = "application/sdp";

    // What a media worker refuses: the problem body too.
    let cases: Vec<Case> = vec![
        (
            "garbage SDP",
            "/whip/r1",
            Some(&pubt),
            sdp,
            "hello\r\n".repeat(20),
            StatusCode::BAD_REQUEST,
            "bad-sdp",
        ),
        (
            "no usable codec",
            "/whip/r1",
            Some(&pubt),
            sdp,
            pcmu.clone(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "no-usable-media",
        ),
        (
            "WHEP, no usable codec",
            "/whep/r1",
            Some(&subt),
            sdp,
            pcmu.replace("a=sendonly", "a=recvonly"),
            StatusCode::NOT_ACCEPTABLE,
            "no-usable-media",
        ),
        (
            "WHIP offer that only receives",
            "/whip/r1",
            Some(&pubt),
            sdp,
            offer(Direction::RecvOnly),
            StatusCode::UNPROCESSABLE_ENTITY,
            "no-usable-media",
        ),
    ];
    for (what, path, token, ct, body, status, kind) in cases {
        println!("{what}: {status}");
        assert_problem(post(&env, path, token, ct, body).await, status, kind).await;
    }

    // PATCH of the live session: wrong ETag → 412, no If-Match → 428, garbage fragment → 400.
    let patch = |if_match: Option<&str>, body: &str| {
        let mut req = env
            .http
            .patch(format!("{}{location}", env.base))
            .bearer_auth(&pubt)
            .header("content-type", "application/trickle-ice-sdpfrag")
            .body(body.to_string());
        if let Some(m) = if_match {
            req = req.header("if-match", m);
        }
        req.send()
    };
    let cand = "a=candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host\r\n";
    let r = patch(Some("\"nope\""), cand).await.unwrap();
    assert_problem(r, StatusCode::PRECONDITION_FAILED, "etag-mismatch").await;
    let r = patch(None, cand).await.unwrap();
    assert_problem(r, StatusCode::PRECONDITION_REQUIRED, "if-match-required").await;
    let r = patch(Some(&etag), "complete garbage").await.unwrap();
    assert_problem(r, StatusCode::BAD_REQUEST, "bad-sdpfrag").await;

    // The burst: every request refused before media work, several times each, all at once.
    let huge = format!("{good}{}", "a=x-filler:0123456789\r\n".repeat(10_000));
    let burst: Vec<(&str, Option<&str>, &str, String, StatusCode)> = vec![
        (
            "/whip/r1",
            Some(&pubt),
            sdp,
            String::new(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/whip/r1",
            Some(&pubt),
            sdp,
            huge,
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        (
            "/whip/r1",
            Some(&pubt),
            "text/plain",
            good.clone(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            "/whip/r1",
            None,
            sdp,
            good.clone(),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "/whip/r1",
            Some("not.a.jwt"),
            sdp,
            good.clone(),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "/whip/r1",
            Some(&other),
            sdp,
            good.clone(),
            StatusCode::FORBIDDEN,
        ),
        (
            "/whip/r1",
            Some(&subt),
            sdp,
            good.clone(),
            StatusCode::FORBIDDEN,
        ),
        (
            "/whip/r1",
            Some(&expired),
            sdp,
            good.clone(),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "/whip/bad%20room",
            Some(&pubt),
            sdp,
            good.clone(),
            StatusCode::BAD_REQUEST,
        ),
    ];
    let mut sent = tokio::task::JoinSet::new();
    for (path, token, ct, body, status) in burst {
        for _ in 0..4 {
            let mut req = env
                .http
                .post(format!("{}{path}", env.base))
                .header("content-type", ct)
                .body(body.clone());
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            sent.spawn(async move { (path, req.send().await.unwrap().status(), status) });
        }
    }
    let unknown = format!("{}/whip/r1/00000000000000000000000000000000", env.base);
    for _ in 0..4 {
        let req = env.http.delete(&unknown).bearer_auth(&pubt);
        sent.spawn(async move {
            let got = req.send().await.unwrap().status();
            ("DELETE unknown session", got, StatusCode::NOT_FOUND)
        });
    }
    let mut n = 0;
    while let Some(r) = sent.join_next().await {
        let (what, got, want) = r.unwrap();
        assert_eq!(got, want, "{what}");
        n += 1;
    }
    assert_eq!(n, 40, "every request of the burst was answered");

    // The good session is still there and the server still takes new ones.
    let r = patch(Some(&etag), cand).await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = post(&env, "/whip/r1", Some(&pubt), "application/sdp", good).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let health = env
        .http
        .get(format!("{}/healthz", env.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    env.server.shutdown().await;
}

/// One refused request: what, path, token, content type, body, status, problem kind.
type Case<'a> = (
    &'a str,
    &'a str,
    Option<&'a str>,
    &'a str,
    String,
    StatusCode,
    &'a str,
);

/// Rewrites an audio-only offer so its m-line offers PCMU alone.
fn only_pcmu(sdp: &str) -> String {
    let mut out = Vec::new();
    let mid = sdp
        .lines()
        .find_map(|l| l.strip_prefix("a=mid:"))
        .unwrap()
        .to_string();
    for l in sdp.lines() {
        if l.starts_with("a=group:BUNDLE") {
            out.push(format!("a=group:BUNDLE {mid}"));
        } else if l.starts_with("m=audio") {
            let mut parts: Vec<&str> = l.split(' ').take(3).collect();
            parts.push("0");
            out.push(parts.join(" "));
        } else if l.starts_with("a=rtpmap") || l.starts_with("a=fmtp") || l.starts_with("a=rtcp-fb")
        {
            continue;
        } else {
            out.push(l.to_string());
        }
    }
    out.push("a=rtpmap:0 PCMU/8000".into());
    let mut s = out.join("\r\n");
    s.push_str("\r\n");
    s
}

#[tokio::test]
async fn ice_servers_are_advertised_in_link_headers() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = Config::for_tests(dir.path());
    cfg.ice_servers = vec![classrelay::config::IceServer {
        urls: vec!["turn:127.0.0.1:3478?transport=udp".into()],
        username: Some("u".into()),
        credential: Some("p".into()),
    }];
    let server = Server::start(cfg).await.unwrap();
    let base = format!("http://{}", server.http_addr());
    let t = server.mint_token("r1", Grant::Publish, Duration::from_secs(60));
    let r = Client::new()
        .post(format!("{base}/whip/r1"))
        .bearer_auth(&t)
        .header("content-type", "application/sdp")
        .body(offer(Direction::SendOnly))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let link = r.headers()["link"].to_str().unwrap();
    assert!(link.contains("<turn:127.0.0.1:3478?transport=udp>; rel=\"ice-server\""));
    assert!(link.contains("username=\"u\""));
    server.shutdown().await;
}

#[tokio::test]
async fn full_server_answers_503_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = Config::for_tests(dir.path());
    cfg.media.max_peers = 1;
    let server = Server::start(cfg).await.unwrap();
    let env = Env {
        base: format!("http://{}", server.http_addr()),
        _dir: dir,
        server,
        http: Client::new(),
    };
    let t = env
        .server
        .mint_token("r1", Grant::Publish, Duration::from_secs(60));
    let r = post(
        &env,
        "/whip/r1",
        Some(&t),
        "application/sdp",
        offer(Direction::SendOnly),
    )
    .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    let r = post(
        &env,
        "/whip/r1",
        Some(&t),
        "application/sdp",
        offer(Direction::SendOnly),
    )
    .await;
    assert_eq!(r.headers()["retry-after"], "5");
    assert_problem(r, StatusCode::SERVICE_UNAVAILABLE, "overloaded").await;
    // A refused offer must not leak its reservation: after DELETE there is room again.
    let r = post(
        &env,
        "/whip/r1",
        Some(&t),
        "application/sdp",
        "garbage".into(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    env.http
        .delete(format!("{}{loc}", env.base))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    let r = post(
        &env,
        "/whip/r1",
        Some(&t),
        "application/sdp",
        offer(Direction::SendOnly),
    )
    .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    env.server.shutdown().await;
}
