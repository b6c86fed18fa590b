//! The HTTP app driven in-process (`tower::ServiceExt::oneshot` over `http::app(state)`): no
//! TCP listener, no UDP socket, no media worker (`Server::in_process`). WHIP/WHEP status
//! codes that are decided before any media work, the problem+json shape, and the school API's
//! answers to anonymous and signed-in callers. What needs media (an SDP the SFU must read, a
//! session that lives) stays in `tests/signalling.rs` over real sockets.
//!
//! Run: `cargo test --test app_oneshot`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use axum::response::Response;
use classrelay::auth::{Claims, Grant};
use classrelay::time::ManualClock;
use classrelay::{Config, Server};
use serde_json::{json, Value};
use tower::ServiceExt;

const SECRET: &str = "test-secret-test-secret-test-secret";

struct Env {
    _dir: tempfile::TempDir,
    app: Server,
}

async fn start() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = Config::for_tests(dir.path());
    cfg.auth.secret = SECRET.into();
    let app = Server::in_process(cfg, ManualClock::new(1_790_000_000_000))
        .await
        .unwrap();
    Env { _dir: dir, app }
}

impl Env {
    fn token(&self, room: &str, grant: Grant) -> String {
        let sub = if grant == Grant::Publish {
            "publisher"
        } else {
            "viewer"
        };
        self.app
            .state()
            .keys
            .mint(sub, room, &[grant], Duration::from_secs(60))
    }

    async fn send(&self, req: Request<Body>) -> Response {
        self.app.app().oneshot(req).await.unwrap()
    }

    async fn post(&self, path: &str, token: Option<&str>, ct: &str, body: String) -> Response {
        let mut req = Request::post(path).header("content-type", ct);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        self.send(req.body(Body::from(body)).unwrap()).await
    }
}

async fn json_of(r: Response) -> Value {
    let bytes = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
    serde_json::from_slice(&bytes).unwrap_or(Value::Null)
}

/// Asserts status and a problem+json body with the given type suffix.
async fn assert_problem(r: Response, status: StatusCode, kind: &str) -> Value {
    assert_eq!(r.status(), status, "status for {kind}");
    assert_eq!(
        r.headers()["content-type"],
        "application/problem+json",
        "content type for {kind}"
    );
    if status == StatusCode::UNAUTHORIZED {
        let h = r.headers()["www-authenticate"].to_str().unwrap();
        assert!(h.starts_with("Bearer"), "{kind}: WWW-Authenticate {h}");
    }
    let v = json_of(r).await;
    assert_eq!(v["type"], format!("urn:classrelay:problem:{kind}"), "{v}");
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

/// Any SDP-looking text: these requests are refused before the SDP is read.
const SDP: &str = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n";

#[tokio::test]
async fn whip_whep_refusals_before_media_are_problems() {
    let env = start().await;
    let pubt = env.token("r1", Grant::Publish);
    let subt = env.token("r1", Grant::Subscribe);
    let other = env.token("r2", Grant::Publish);
    let expired = expired_token("r1");
    let huge = format!("{SDP}{}", "a=x-filler:0123456789\r\n".repeat(10_000));
    let sdp = "application/sdp";
    // (what, path, token, content type, body, status, problem kind)
    #[allow(clippy::type_complexity)]
    let cases: Vec<(&str, &str, Option<&str>, &str, String, StatusCode, &str)> = vec![
        (
            "empty body",
            "/whip/r1",
            Some(&pubt),
            sdp,
            String::new(),
            StatusCode::BAD_REQUEST,
            "bad-sdp",
        ),
        (
            "huge body",
            "/whip/r1",
            Some(&pubt),
            sdp,
            huge,
            StatusCode::PAYLOAD_TOO_LARGE,
            "body-too-large",
        ),
        (
            "wrong content type",
            "/whip/r1",
            Some(&pubt),
            "text/plain",
            SDP.into(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
        ),
        (
            "no token",
            "/whip/r1",
            None,
            sdp,
            SDP.into(),
            StatusCode::UNAUTHORIZED,
            "token-missing",
        ),
        (
            "garbage token",
            "/whip/r1",
            Some("not.a.jwt"),
            sdp,
            SDP.into(),
            StatusCode::UNAUTHORIZED,
            "token-invalid",
        ),
        (
            "token for another room",
            "/whip/r1",
            Some(&other),
            sdp,
            SDP.into(),
            StatusCode::FORBIDDEN,
            "token-wrong-room",
        ),
        (
            "subscribe token used to publish",
            "/whip/r1",
            Some(&subt),
            sdp,
            SDP.into(),
            StatusCode::FORBIDDEN,
            "grant-missing",
        ),
        (
            "expired token",
            "/whip/r1",
            Some(&expired),
            sdp,
            SDP.into(),
            StatusCode::UNAUTHORIZED,
            "token-expired",
        ),
        (
            "bad room name",
            "/whip/bad%20room",
            Some(&pubt),
            sdp,
            SDP.into(),
            StatusCode::BAD_REQUEST,
            "bad-room-name",
        ),
        (
            "bad source",
            "/whep/r1?source=everyone",
            Some(&subt),
            sdp,
            SDP.into(),
            StatusCode::BAD_REQUEST,
            "bad-source",
        ),
        (
            "hub source without a lesson",
            "/whep/r1?source=hub",
            Some(&subt),
            sdp,
            SDP.into(),
            StatusCode::BAD_REQUEST,
            "bad-source",
        ),
        // Everything checked: the media service has no worker here, so it refuses.
        (
            "no media workers",
            "/whip/r1",
            Some(&pubt),
            sdp,
            SDP.into(),
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
        ),
    ];
    for (what, path, token, ct, body, status, kind) in cases {
        println!("{what}: {status}");
        let r = env.post(path, token, ct, body).await;
        assert_problem(r, status, kind).await;
    }
    // Nothing was left behind by the refusals.
    assert!(env.app.state().media.sessions.lock().unwrap().is_empty());
    assert_eq!(
        env.app
            .state()
            .media
            .sfu
            .peer_count
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );

    // PATCH, DELETE and layer of sessions that do not exist; an unknown endpoint kind.
    let unknown = "/whip/r1/00000000000000000000000000000000";
    let req = Request::delete(unknown)
        .header("authorization", format!("Bearer {pubt}"))
        .body(Body::empty())
        .unwrap();
    assert_problem(
        env.send(req).await,
        StatusCode::NOT_FOUND,
        "session-not-found",
    )
    .await;
    let req = Request::patch(unknown)
        .header("authorization", format!("Bearer {pubt}"))
        .header("content-type", "application/trickle-ice-sdpfrag")
        .header("if-match", "*")
        .body(Body::from("a=end-of-candidates\r\n"))
        .unwrap();
    assert_problem(
        env.send(req).await,
        StatusCode::NOT_FOUND,
        "session-not-found",
    )
    .await;
    let req = Request::post("/whep/r1/00000000000000000000000000000000/layer")
        .header("authorization", format!("Bearer {subt}"))
        .header("content-type", "application/json")
        .body(Body::from(r#"{"rid":"h"}"#))
        .unwrap();
    assert_problem(
        env.send(req).await,
        StatusCode::NOT_FOUND,
        "session-not-found",
    )
    .await;
    let req = Request::delete("/nonsense/r1/abc")
        .body(Body::empty())
        .unwrap();
    assert_problem(env.send(req).await, StatusCode::NOT_FOUND, "not-found").await;
}

#[tokio::test]
async fn health_readiness_and_options_without_sockets() {
    let env = start().await;
    let r = env
        .send(Request::get("/healthz").body(Body::empty()).unwrap())
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    // No media worker: not ready, and it says so.
    let r = env
        .send(Request::get("/readyz").body(Body::empty()).unwrap())
        .await;
    assert_problem(r, StatusCode::SERVICE_UNAVAILABLE, "overloaded").await;
    let r = env
        .send(
            Request::builder()
                .method(Method::OPTIONS)
                .uri("/whip/r1")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(r.headers()["accept-post"], "application/sdp");
    assert_eq!(
        r.headers()["accept-patch"],
        "application/trickle-ice-sdpfrag"
    );
}

/// A CORS preflight from a page on another origin is answered (the test config allows any
/// origin), and WHEP says what it takes as WHIP does.
#[tokio::test]
async fn cors_preflight_and_whep_options_without_sockets() {
    let env = start().await;
    let req = Request::builder()
        .method(Method::OPTIONS)
        .uri("/whip/r1")
        .header("origin", "https://school.example")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, content-type",
        )
        .body(Body::empty())
        .unwrap();
    let r = env.send(req).await;
    assert!(r.status().is_success(), "{}", r.status());
    assert_eq!(r.headers()["access-control-allow-origin"], "*");
    let req = Request::builder()
        .method(Method::OPTIONS)
        .uri("/whep/r1")
        .body(Body::empty())
        .unwrap();
    let r = env.send(req).await;
    assert!(r.status().is_success(), "{}", r.status());
    assert_eq!(r.headers()["accept-post"], "application/sdp");
}

#[tokio::test]
async fn school_api_answers_by_caller() {
    let env = start().await;
    let (user, password) = env
        .app
        .first_admin()
        .cloned()
        .expect("first start makes an admin");
    // Anonymous: refused with a problem, the route's rule applied by the guard.
    let r = env
        .send(Request::get("/api/schools").body(Body::empty()).unwrap())
        .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // Log in through the app, then use the token.
    let r = env
        .send(
            Request::post("/api/login")
                .header("content-type", "application/json")
                .body(Body::from(
                    json!({"username": user, "password": password}).to_string(),
                ))
                .unwrap(),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let token = json_of(r).await["token"].as_str().unwrap().to_string();
    let r = env
        .send(
            Request::get("/api/me")
                .header("authorization", format!("Bearer {token}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(json_of(r).await["username"], user);
    let r = env
        .send(
            Request::post("/api/regions")
                .header("authorization", format!("Bearer {token}"))
                .header("content-type", "application/json")
                .body(Body::from(r#"{"name": 5"#))
                .unwrap(),
        )
        .await;
    assert_problem(r, StatusCode::BAD_REQUEST, "bad-json").await;
}
