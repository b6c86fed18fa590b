//! The HTTP edge against a real server on loopback: header-read and request timeouts, the
//! connection limit, HTTPS from certificate files, reverse-proxy mode, the origin check on
//! cookie-authenticated writes, CSV content types, HEAD on the API, `/metrics` behind a token,
//! TURN credentials only for admitted offers, the pages' security headers, and the login
//! page's redirect in headless Chromium.
//!
//! Run: `cargo test --test http_hardening` (the browser test needs `chromium` and
//! `chromium-driver`).

mod support;

use std::time::{Duration, Instant};

use classrelay::auth::Grant;
use classrelay::{Config, Server};
use reqwest::{Client, Method, Response, StatusCode};
use serde_json::{json, Value};
use str0m::media::{Direction, MediaKind};
use str0m::Rtc;
use support::browser::Browser;
use support::school::{fixture, lesson, App, Backend};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct Plain {
    _dir: tempfile::TempDir,
    server: Server,
    base: String,
    http: Client,
}

async fn start(adjust: impl FnOnce(&mut Config)) -> Plain {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = Config::for_tests(dir.path());
    adjust(&mut cfg);
    let server = Server::start(cfg).await.unwrap();
    let base = format!("http://{}", server.http_addr());
    Plain {
        _dir: dir,
        server,
        base,
        http: Client::new(),
    }
}

async fn problem(r: Response, status: StatusCode, kind: &str) -> Value {
    assert_eq!(r.status(), status);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let v: Value = r.json().await.unwrap();
    assert!(
        v["type"].as_str().unwrap().rsplit(':').next() == Some(kind),
        "want {kind}, got {v}"
    );
    v
}

/// Reads until the server closes the connection (or it errors); returns what was read.
async fn read_to_close(s: &mut TcpStream) -> Vec<u8> {
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => return all,
            Ok(n) => all.extend_from_slice(&buf[..n]),
        }
    }
}

/// A client trickling one header line every 200 ms is closed once the header-read timeout
/// (here 1 s) has passed, long before it would have finished; a normal request still works.
#[tokio::test]
async fn a_trickled_header_is_cut_off() {
    let env = start(|c| c.http.header_read_timeout_ms = 1000).await;
    let mut s = TcpStream::connect(env.server.http_addr()).await.unwrap();
    let t0 = Instant::now();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let (mut rd, mut wr) = s.into_split();
    let trickle = tokio::spawn(async move {
        // Up to 20 s of header lines; stops when the server has closed the socket.
        for i in 0..100 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if wr
                .write_all(format!("X-Slow-{i}: 1\r\n").as_bytes())
                .await
                .is_err()
            {
                return;
            }
        }
    });
    let mut buf = [0u8; 1024];
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {} // hyper may answer 408 before closing
            }
        }
    })
    .await;
    let took = t0.elapsed();
    assert!(closed.is_ok(), "still open after 10 s");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "closed after {took:?}, want about 1 s"
    );
    trickle.abort();
    // An idle connection that never sends a byte is closed the same way.
    let mut idle = TcpStream::connect(env.server.http_addr()).await.unwrap();
    let t0 = Instant::now();
    tokio::time::timeout(Duration::from_secs(10), read_to_close(&mut idle))
        .await
        .expect("idle connection closed");
    assert!(t0.elapsed() < Duration::from_secs(3));
    let r = env
        .http
        .get(format!("{}/healthz", env.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    env.server.shutdown().await;
}

/// A request whose body never finishes gets 408 `request-timeout` after
/// `http.request_timeout_ms`, and the connection is closed.
#[tokio::test]
async fn a_stalled_body_gets_408() {
    let env = start(|c| c.http.request_timeout_ms = 1000).await;
    let mut s = TcpStream::connect(env.server.http_addr()).await.unwrap();
    let t0 = Instant::now();
    s.write_all(
        b"POST /api/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
          Content-Length: 100\r\n\r\n{\"username\":",
    )
    .await
    .unwrap();
    let out = tokio::time::timeout(Duration::from_secs(10), read_to_close(&mut s))
        .await
        .expect("answered and closed");
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("request-timeout"), "{text}");
    assert!(text
        .to_ascii_lowercase()
        .contains("application/problem+json"));
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "{took:?}"
    );
    env.server.shutdown().await;
}

/// A lesson's event stream stays open and keeps delivering past the request timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_streams_are_exempt_from_the_request_timeout() {
    let app = App::start_with(Backend::Sqlite, |c| c.http.request_timeout_ms = 500)
        .await
        .unwrap();
    let f = fixture(&app).await;
    let id = lesson(&app, &f, "master", "08:00", "08:45").await;
    let mut resp = app
        .http
        .get(format!("{}/api/lessons/{id}/events", app.base))
        .bearer_auth(&app.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    // Wait well past the timeout, then make an event happen and read it.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (s, v) = app
        .call(
            Some(&app.admin),
            Method::POST,
            &format!("/api/lessons/{id}/end"),
            None,
        )
        .await;
    assert!(s.is_success(), "{s} {v}");
    let mut seen = String::new();
    let got = tokio::time::timeout(Duration::from_secs(10), async {
        while let Ok(Some(chunk)) = resp.chunk().await {
            seen.push_str(&String::from_utf8_lossy(&chunk));
            if seen.contains("state") {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(got, Ok(true), "stream so far: {seen}");
    // Shutdown does not wait for the open stream for ever (it gets a few seconds' grace).
    tokio::time::timeout(Duration::from_secs(15), app.server.shutdown())
        .await
        .expect("shutdown with an event stream open");
    drop(resp);
}

/// Past `http.max_connections` a new connection gets 503 `too-many-connections` with
/// Retry-After; when a connection closes there is room again.
#[tokio::test]
async fn connections_over_the_limit_are_refused() {
    let env = start(|c| c.http.max_connections = 2).await;
    let addr = env.server.http_addr();
    let held1 = TcpStream::connect(addr).await.unwrap();
    let held2 = TcpStream::connect(addr).await.unwrap();
    // A fresh client (no pooled connection) is the third.
    let r = Client::new()
        .get(format!("{}/healthz", env.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["retry-after"], "1");
    problem(r, StatusCode::SERVICE_UNAVAILABLE, "too-many-connections").await;
    drop(held1);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r = Client::new()
            .get(format!("{}/healthz", env.base))
            .send()
            .await
            .unwrap();
        if r.status() == StatusCode::OK {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no room after a connection closed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(held2);
    env.server.shutdown().await;
}

fn cookie_of(r: &Response) -> String {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|c| c.starts_with("cr_session="))
        .expect("session cookie")
}

/// HTTPS from PEM files made by rcgen: the client trusts that certificate only; the session
/// cookie is `Secure` and responses carry HSTS. Plain HTTP to the same port gets nowhere.
#[tokio::test]
async fn tls_from_certificate_files() {
    let dir = tempfile::tempdir().unwrap();
    let key = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert_pem = key.cert.pem();
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, &cert_pem).unwrap();
    std::fs::write(&key_path, key.signing_key.serialize_pem()).unwrap();
    let mut cfg = Config::for_tests(&dir.path().join("data"));
    cfg.http.tls_cert = Some(cert_path);
    cfg.http.tls_key = Some(key_path);
    cfg.http.header_read_timeout_ms = 1000;
    let server = Server::start(cfg).await.unwrap();
    let addr = server.http_addr();
    assert!(server.base_url().starts_with("https://"));
    let client = Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(cert_pem.as_bytes()).unwrap())
        .resolve("localhost", addr)
        .build()
        .unwrap();
    let base = format!("https://localhost:{}", addr.port());
    let (user, password) = server.first_admin().cloned().unwrap();
    let r = client
        .post(format!("{base}/api/login"))
        .json(&json!({"username": user, "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let cookie = cookie_of(&r);
    assert!(cookie.contains("; Secure"), "{cookie}");
    assert_eq!(r.headers()["strict-transport-security"], "max-age=31536000");
    let token = r.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let r = client
        .post(format!("{base}/api/logout"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert!(cookie_of(&r).contains("; Secure"));
    // Plain HTTP on the TLS port: no answer.
    let plain = Client::new()
        .get(format!("http://{addr}/healthz"))
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    assert!(plain.is_err() || !plain.unwrap().status().is_success());
    // A connection that never starts its TLS handshake is closed after the header timeout.
    let mut idle = TcpStream::connect(addr).await.unwrap();
    let t0 = Instant::now();
    tokio::time::timeout(Duration::from_secs(10), read_to_close(&mut idle))
        .await
        .expect("idle TLS connection closed");
    assert!(t0.elapsed() < Duration::from_secs(3));
    // A client that does not trust the certificate cannot connect.
    let untrusting = Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .resolve("localhost", addr)
        .build()
        .unwrap();
    assert!(untrusting
        .get(format!("{base}/healthz"))
        .send()
        .await
        .is_err());
    server.shutdown().await;
}

/// A certificate without its key, or a file that is not PEM, stops the start with an error.
#[tokio::test]
async fn bad_tls_files_stop_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = Config::for_tests(dir.path());
    cfg.http.tls_cert = Some(dir.path().join("cert.pem"));
    assert!(
        Server::start(cfg.clone()).await.is_err(),
        "cert without key"
    );
    std::fs::write(dir.path().join("cert.pem"), "not pem").unwrap();
    std::fs::write(dir.path().join("key.pem"), "not pem").unwrap();
    cfg.http.tls_key = Some(dir.path().join("key.pem"));
    let err = Server::start(cfg).await.err().expect("refused");
    assert!(err.to_string().contains("cert.pem"), "{err}");
}

async fn login_as_admin(env: &Plain, headers: &[(&str, &str)]) -> Response {
    let (user, password) = env.server.first_admin().cloned().unwrap();
    let mut rb = env
        .http
        .post(format!("{}/api/login", env.base))
        .json(&json!({"username": user, "password": password}));
    for (k, v) in headers {
        rb = rb.header(*k, *v);
    }
    rb.send().await.unwrap()
}

/// Behind a trusted reverse proxy, `X-Forwarded-Proto: https` makes the cookie `Secure` and
/// adds HSTS; from an untrusted address the same header changes nothing.
#[tokio::test]
async fn reverse_proxy_mode_believes_only_trusted_proxies() {
    let env = start(|c| c.http.trusted_proxies = vec!["127.0.0.1/32".into()]).await;
    let r = login_as_admin(
        &env,
        &[
            ("x-forwarded-proto", "https"),
            ("x-forwarded-for", "203.0.113.9"),
        ],
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(cookie_of(&r).contains("; Secure"));
    assert!(r.headers().contains_key("strict-transport-security"));
    let r = login_as_admin(&env, &[]).await;
    assert!(!cookie_of(&r).contains("Secure"));
    assert!(!r.headers().contains_key("strict-transport-security"));
    env.server.shutdown().await;

    let env = start(|c| c.http.trusted_proxies = vec!["10.0.0.0/8".into()]).await;
    let r = login_as_admin(&env, &[("x-forwarded-proto", "https")]).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(!cookie_of(&r).contains("Secure"));
    assert!(!r.headers().contains_key("strict-transport-security"));
    env.server.shutdown().await;

    // An https public URL makes the cookie Secure whatever the hop says.
    let env = start(|c| c.http.public_url = Some("https://relay.example.edu.cn".into())).await;
    let r = login_as_admin(&env, &[]).await;
    assert!(cookie_of(&r).contains("; Secure"));
    env.server.shutdown().await;

    // A trusted_proxies entry that is not an address is a config error.
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = Config::for_tests(dir.path());
    cfg.http.trusted_proxies = vec!["proxy.local".into()];
    let err = Server::start(cfg).await.err().expect("refused");
    assert!(err.to_string().contains("http.trusted_proxies"), "{err}");
}

/// Cookie-authenticated writes under /api must come from our own origin (or
/// `http.public_url`, or a configured CORS origin); bearer-authenticated ones are not affected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookie_writes_need_the_same_origin() {
    let env = start(|c| {
        c.http.public_url = Some("http://relay.example.edu.cn".into());
        c.http.cors_origins = vec!["https://portal.example.edu.cn".into()];
    })
    .await;
    let r = login_as_admin(&env, &[]).await;
    let token = r.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let cookie = format!("cr_session={token}");
    let own = env.base.clone();
    let send = |method: Method, path: &str, hdrs: Vec<(&'static str, String)>| {
        let mut rb = env.http.request(method, format!("{}{path}", env.base));
        for (k, v) in hdrs {
            rb = rb.header(k, v);
        }
        rb.send()
    };
    let is_cross = |r: &Response| r.status() == StatusCode::FORBIDDEN;

    // Another origin, with the cookie: refused, for a body-less POST, a JSON POST and DELETE.
    for (m, path) in [
        (Method::POST, "/api/lessons/999/end"),
        (Method::POST, "/api/regions"),
        (Method::DELETE, "/api/regions/999"),
        (Method::POST, "/api/logout"),
    ] {
        let r = send(
            m.clone(),
            path,
            vec![
                ("cookie", cookie.clone()),
                ("origin", "http://evil.example".into()),
                ("content-type", "application/json".into()),
            ],
        )
        .await
        .unwrap();
        problem(r, StatusCode::FORBIDDEN, "cross-origin").await;
    }
    // The refused logout did not end the session.
    let r = send(Method::GET, "/api/me", vec![("cookie", cookie.clone())])
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // A sibling site without Origin but with fetch metadata: refused. `Origin: null` too.
    for (k, v) in [("sec-fetch-site", "same-site"), ("origin", "null")] {
        let r = send(
            Method::POST,
            "/api/lessons/999/end",
            vec![("cookie", cookie.clone()), (k, v.into())],
        )
        .await
        .unwrap();
        problem(r, StatusCode::FORBIDDEN, "cross-origin").await;
    }
    // Our own origin, the public URL, a CORS origin, same-origin fetch metadata, or no
    // browser headers at all: through to the handler (404: no such lesson).
    for (k, v) in [
        ("origin", own.clone()),
        ("origin", "http://relay.example.edu.cn".to_string()),
        ("origin", "https://portal.example.edu.cn".to_string()),
        ("sec-fetch-site", "same-origin".to_string()),
        ("x-nothing", String::new()),
    ] {
        let r = send(
            Method::POST,
            "/api/lessons/999/end",
            vec![("cookie", cookie.clone()), (k, v.clone())],
        )
        .await
        .unwrap();
        assert!(!is_cross(&r), "{k}: {v} refused");
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{k}: {v}");
    }
    // Bearer credentials are not what a forged form can send: no origin check.
    let r = send(
        Method::POST,
        "/api/lessons/999/end",
        vec![
            ("authorization", format!("Bearer {token}")),
            ("origin", "http://evil.example".into()),
        ],
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // Reads are not checked.
    let r = send(
        Method::GET,
        "/api/me",
        vec![
            ("cookie", cookie.clone()),
            ("origin", "http://evil.example".into()),
        ],
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    // CSV imports must say text/csv (what a form cannot send), cookie or bearer.
    for auth in [
        ("cookie", cookie.clone()),
        ("authorization", format!("Bearer {token}")),
    ] {
        for ct in ["text/plain", "application/x-www-form-urlencoded"] {
            let r = env
                .http
                .post(format!("{}/api/pairings/import", env.base))
                .header(auth.0, auth.1.clone())
                .header("origin", own.clone())
                .header("content-type", ct)
                .body("hub_school,partner_school\n")
                .send()
                .await
                .unwrap();
            problem(
                r,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
            )
            .await;
        }
    }
    let r = env
        .http
        .post(format!("{}/api/pairings/import", env.base))
        .header("cookie", cookie.clone())
        .header("origin", own.clone())
        .header("content-type", "text/csv; charset=utf-8")
        .body("not,a,pairings,header\n")
        .send()
        .await
        .unwrap();
    assert_ne!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_ne!(r.status(), StatusCode::FORBIDDEN);
    env.server.shutdown().await;
}

/// HEAD on the API follows the GET rule (no 500); a method a path does not take is 405 with
/// Allow.
#[tokio::test]
async fn head_and_wrong_methods_on_the_api() {
    let env = start(|_| {}).await;
    let head = |path: &str| env.http.head(format!("{}{path}", env.base)).send();
    let r = head("/api/openapi.json").await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.bytes().await.unwrap().is_empty());
    let r = head("/api/me").await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = head("/api/login").await.unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.headers()["allow"], "POST");
    let r = env
        .http
        .get(format!("{}/api/login", env.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["allow"], "POST");
    problem(r, StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed").await;
    let r = env
        .http
        .delete(format!("{}/api/today", env.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["allow"], "GET, HEAD");
    env.server.shutdown().await;
}

/// `/metrics` is open by default, and needs the bearer token when one is configured.
#[tokio::test]
async fn metrics_token() {
    let env = start(|_| {}).await;
    let r = env
        .http
        .get(format!("{}/metrics", env.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    env.server.shutdown().await;

    let env = start(|c| c.http.metrics_token = "scrape-me-0123".into()).await;
    let get = |t: Option<&str>| {
        let mut rb = env.http.get(format!("{}/metrics", env.base));
        if let Some(t) = t {
            rb = rb.bearer_auth(t);
        }
        rb.send()
    };
    let r = get(None).await.unwrap();
    assert!(r.headers().contains_key("www-authenticate"));
    problem(r, StatusCode::UNAUTHORIZED, "metrics-token").await;
    let r = get(Some("scrape-me-0124")).await.unwrap();
    problem(r, StatusCode::UNAUTHORIZED, "metrics-token").await;
    let r = get(Some("scrape-me-0123")).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.text().await.unwrap().contains("# EOF"));
    env.server.shutdown().await;
}

/// An offer made by an independent str0m instance (the client side).
fn offer() -> String {
    let mut rtc = Rtc::builder().build(Instant::now());
    let mut api = rtc.sdp_api();
    api.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
    api.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
    let (offer, _pending) = api.apply().expect("offer");
    offer.to_sdp_string()
}

fn links(r: &Response) -> String {
    r.headers()
        .get_all("link")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect::<Vec<_>>()
        .join(", ")
}

/// TURN credentials go only with an admitted offer (201): not to an anonymous OPTIONS, nor
/// with any error. STUN servers (no credential) are still announced on OPTIONS.
#[tokio::test]
async fn turn_credentials_only_for_admitted_offers() {
    let env = start(|c| {
        c.ice_servers = vec![
            classrelay::config::IceServer {
                urls: vec!["turn:127.0.0.1:3478?transport=udp".into()],
                username: Some("classrelay".into()),
                credential: Some("s3cret-turn-pass".into()),
            },
            classrelay::config::IceServer {
                urls: vec!["stun:127.0.0.1:3478".into()],
                username: None,
                credential: None,
            },
        ]
    })
    .await;
    for path in ["/whip/r1", "/whep/r1"] {
        for preflight in [false, true] {
            let mut rb = env
                .http
                .request(Method::OPTIONS, format!("{}{path}", env.base));
            if preflight {
                rb = rb
                    .header("origin", "https://school.example")
                    .header("access-control-request-method", "POST");
            }
            let r = rb.send().await.unwrap();
            assert!(r.status().is_success());
            let l = links(&r);
            assert!(l.contains("<stun:127.0.0.1:3478>"), "{l}");
            assert!(!l.contains("turn:"), "{l}");
            assert!(!l.contains("credential"), "{l}");
            assert!(!l.contains("s3cret"), "{l}");
        }
    }
    let post = |token: Option<String>, body: String| {
        let mut rb = env
            .http
            .post(format!("{}/whip/r1", env.base))
            .header("content-type", "application/sdp")
            .body(body);
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        rb.send()
    };
    let no_secret = |r: &Response| {
        let all = format!("{:?}", r.headers());
        assert!(!all.contains("s3cret"), "{all}");
        assert!(!all.contains("credential"), "{all}");
    };
    let r = post(None, offer()).await.unwrap();
    no_secret(&r);
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = post(Some("not-a-token".into()), offer()).await.unwrap();
    no_secret(&r);
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let t = env
        .server
        .mint_token("r1", Grant::Publish, Duration::from_secs(60));
    let r = post(Some(t.clone()), "v=0 not sdp".into()).await.unwrap();
    no_secret(&r);
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = post(Some(t), offer()).await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let l = links(&r);
    assert!(
        l.contains("username=\"classrelay\"; credential=\"s3cret-turn-pass\""),
        "{l}"
    );
    env.server.shutdown().await;
}

/// Every page carries a CSP without 'unsafe-inline' scripts and with frame-ancestors 'none',
/// plus X-Frame-Options, nosniff and a Referrer-Policy.
#[tokio::test]
async fn pages_carry_security_headers() {
    let env = start(|_| {}).await;
    for p in [
        "/",
        "/login",
        "/today",
        "/teach",
        "/classroom",
        "/admin",
        "/publish",
        "/watch",
    ] {
        let r = env
            .http
            .get(format!("{}{p}", env.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{p}");
        let h = r.headers();
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("frame-ancestors 'none'"), "{p}: {csp}");
        assert!(csp.contains("script-src 'self'"), "{p}: {csp}");
        assert!(csp.contains("connect-src 'self'"), "{p}: {csp}");
        assert!(!csp.contains("unsafe"), "{p}: {csp}");
        assert_eq!(h["x-frame-options"], "DENY", "{p}");
        assert_eq!(h["x-content-type-options"], "nosniff", "{p}");
        assert_eq!(h["referrer-policy"], "same-origin", "{p}");
        assert!(
            !h.contains_key("strict-transport-security"),
            "{p}: no HSTS on http"
        );
    }
    env.server.shutdown().await;
}

/// In Chromium, with the CSP on: `/login?next=/%5Cevil.example/x` logs in and stays on this
/// server (`/\evil.example` is another host to a browser); a same-origin `next` is followed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_redirect_stays_on_this_origin() -> anyhow::Result<()> {
    let Some(browser) = Browser::start_or_skip().await else {
        return Ok(());
    };
    let app = App::start(Backend::Sqlite).await.expect("server");
    let (user, password) = app.server.first_admin().cloned().unwrap();
    let origin = app.base.clone();
    let page = browser.new_page().await?;
    // The pages with inline scripts run them under the CSP (allowed by hash).
    for p in ["publish", "watch"] {
        page.goto(&format!("{origin}/{p}?room=csp-{p}")).await?;
        page.wait_until(
            &format!("document.getElementById('room').textContent === 'csp-{p}'"),
            Duration::from_secs(20),
            "document.body.innerHTML",
        )
        .await?;
    }
    for (next, want_path) in [
        ("/%5Cevil.example/x", "/today"),
        ("/%09/evil.example/x", "/today"),
        ("https://evil.example/", "/today"),
        ("javascript:alert(1)", "/today"),
        ("/admin%3Ftab%3Dpairings", "/admin"),
    ] {
        page.goto(&format!("{origin}/login?next={next}")).await?;
        // The inline module ran under the CSP: the language switch got its label.
        page.wait_until(
            "document.getElementById('lang').textContent.length > 0",
            Duration::from_secs(20),
            "document.body.innerHTML",
        )
        .await?;
        page.eval_with(
            "document.getElementById('username').value = arguments[0];
             document.getElementById('password').value = arguments[1];
             document.getElementById('submit').click(); return true;",
            vec![json!(user), json!(password)],
        )
        .await?;
        let at = page
            .wait_until(
                &format!("location.pathname === '{want_path}' && location.href"),
                Duration::from_secs(20),
                "location.href",
            )
            .await?;
        let at = at.as_str().unwrap_or_default();
        assert!(at.starts_with(&origin), "next={next} went to {at}");
        if want_path == "/today" {
            page.wait_until(
                "document.getElementById('date').textContent.length > 0",
                Duration::from_secs(20),
                "document.body.innerHTML",
            )
            .await?;
        }
        // Log out for the next round (same origin, so the origin check lets it through).
        page.eval(
            "return fetch('/api/logout', {method: 'POST', credentials: 'same-origin'})
               .then((r) => r.status);",
        )
        .await
        .map(|v| assert_eq!(v, json!(204)))?;
    }
    Ok(())
}
