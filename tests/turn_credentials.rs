//! Short-lived TURN credentials (`[turn]`, the TURN REST API scheme of coturn's
//! `use-auth-secret`) over a real server: minted per authenticated caller in the `Link`
//! headers of an admitted WHIP/WHEP POST and from `GET /{whip|whep}/{room}/ice-servers`, never
//! in anything an unauthenticated client can get. Static credentials keep working beside them.
//! That coturn accepts what is minted is `tests/turn_relay.rs`.
//!
//! Run: `cargo test --test turn_credentials`.

mod support;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use classrelay::auth::turn::credential;
use classrelay::auth::Grant;
use classrelay::config::{IceServer, TurnConfig};
use classrelay::{Config, Server};
use reqwest::{Client, Method, Response, StatusCode};
use serde_json::Value;
use str0m::media::{Direction, MediaKind};
use str0m::Rtc;
use support::school::{at, fixture, lesson, App, Backend};

const TURN_SECRET: &str = "turn-shared-secret-for-tests-0123";
const STATIC_PASS: &str = "static-turn-pass-9876";

struct Env {
    _dir: tempfile::TempDir,
    server: Server,
    base: String,
    http: Client,
}

async fn start() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = Config::for_tests(dir.path());
    cfg.ice_servers = vec![
        IceServer {
            urls: vec!["turn:static.example:3478?transport=udp".into()],
            username: Some("classrelay".into()),
            credential: Some(STATIC_PASS.into()),
        },
        IceServer {
            urls: vec!["stun:127.0.0.1:3478".into()],
            username: None,
            credential: None,
        },
    ];
    cfg.turn = TurnConfig {
        secret: TURN_SECRET.into(),
        secret_file: None,
        urls: vec![
            "turn:127.0.0.1:3478?transport=udp".into(),
            "turn:127.0.0.1:3478?transport=tcp".into(),
            "turns:turn.example:443?transport=tcp".into(),
        ],
        ttl: "2h".into(),
    };
    cfg.validate().unwrap();
    let server = Server::start(cfg).await.unwrap();
    let base = format!("http://{}", server.http_addr());
    Env {
        _dir: dir,
        server,
        base,
        http: Client::new(),
    }
}

fn offer(dir: Direction) -> String {
    let mut rtc = Rtc::builder().build(Instant::now());
    let mut api = rtc.sdp_api();
    api.add_media(MediaKind::Audio, dir, None, None, None);
    api.add_media(MediaKind::Video, dir, None, None, None);
    let (offer, _pending) = api.apply().expect("offer");
    offer.to_sdp_string()
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A correctly signed publish token for `room` that expired a minute ago.
fn expired_token(room: &str) -> String {
    let now = unix_now();
    let claims = classrelay::auth::Claims {
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
        // Config::for_tests's signing secret.
        &jsonwebtoken::EncodingKey::from_secret(b"test-secret-test-secret-test-secret"),
    )
    .unwrap()
}

fn links(r: &Response) -> Vec<String> {
    r.headers()
        .get_all("link")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect()
}

/// The minted credential in `links` for `url`: (username, credential).
fn minted(links: &[String], url: &str) -> (String, String) {
    let l = links
        .iter()
        .find(|l| l.starts_with(&format!("<{url}>")))
        .unwrap_or_else(|| panic!("no Link for {url} in {links:?}"));
    let param = |name: &str| {
        let start = l.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
        let end = l[start..].find('"').unwrap() + start;
        l[start..end].to_string()
    };
    assert!(l.contains("credential-type=\"password\""), "{l}");
    (param("username"), param("credential"))
}

/// Checks a minted (username, credential): `<expiry>:<principal>`, expiry now + ttl, and the
/// HMAC-SHA1 of the username under the shared secret (the function is pinned to an
/// openssl-computed example in `auth::turn`'s unit tests).
fn check_minted(user: &str, cred: &str, principal: &str, before: u64) {
    let (exp, who) = user.split_once(':').unwrap();
    assert_eq!(who, principal, "{user}");
    let exp: u64 = exp.parse().unwrap();
    let after = unix_now();
    assert!(
        (before + 7200..=after + 7200).contains(&exp),
        "expiry {exp} is not now + 2h ({before}..{after})"
    );
    assert_eq!(cred, credential(TURN_SECRET.as_bytes(), user));
}

#[tokio::test]
async fn an_admitted_post_gets_a_credential_minted_for_its_principal() {
    let env = start().await;
    for (grant, kind, dir, sub) in [
        (Grant::Publish, "whip", Direction::SendOnly, "pub"),
        (Grant::Subscribe, "whep", Direction::RecvOnly, "sub"),
    ] {
        let t = env
            .server
            .state()
            .keys
            .mint(sub, "r1", &[grant], Duration::from_secs(60));
        let before = unix_now();
        let r = env
            .http
            .post(format!("{}/{kind}/r1", env.base))
            .bearer_auth(&t)
            .header("content-type", "application/sdp")
            .body(offer(dir))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        let l = links(&r);
        // Static credentials keep working; STUN is still announced.
        assert!(
            l.iter().any(
                |l| l.starts_with("<turn:static.example:3478?transport=udp>")
                    && l.contains(&format!("credential=\"{STATIC_PASS}\""))
            ),
            "{l:?}"
        );
        assert!(
            l.iter()
                .any(|l| l == "<stun:127.0.0.1:3478>; rel=\"ice-server\""),
            "{l:?}"
        );
        // One minted credential, the same on every URL of the service.
        let first = minted(&l, "turn:127.0.0.1:3478?transport=udp");
        check_minted(&first.0, &first.1, sub, before);
        for url in [
            "turn:127.0.0.1:3478?transport=tcp",
            "turns:turn.example:443?transport=tcp",
        ] {
            assert_eq!(minted(&l, url), first);
        }
        assert!(!format!("{:?}", r.headers()).contains(TURN_SECRET));
    }
    let m = env.server.state().metrics.encode();
    assert!(m.contains("classrelay_turn_credentials_total 2"), "{m}");
    env.server.shutdown().await;
}

#[tokio::test]
async fn the_pages_get_ice_servers_for_their_token() {
    let env = start().await;
    let t = env.server.state().keys.mint(
        "kiosk-7",
        "r1",
        &[Grant::Subscribe],
        Duration::from_secs(60),
    );
    let before = unix_now();
    let r = env
        .http
        .get(format!("{}/whep/r1/ice-servers", env.base))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let v: Value = r.json().await.unwrap();
    let servers = v["ice_servers"].as_array().unwrap();
    assert_eq!(servers.len(), 3, "{v}");
    assert_eq!(servers[0]["credential"], STATIC_PASS);
    assert!(servers[1].get("username").is_none(), "{v}");
    let m = &servers[2];
    assert_eq!(m["urls"].as_array().unwrap().len(), 3, "{v}");
    let (user, cred) = (
        m["username"].as_str().unwrap(),
        m["credential"].as_str().unwrap(),
    );
    check_minted(user, cred, "kiosk-7", before);
    assert_eq!(
        v["expires_at"].as_u64().unwrap(),
        user.split_once(':').unwrap().0.parse::<u64>().unwrap()
    );
    env.server.shutdown().await;
}

/// Every request an unauthenticated or wrongly authenticated client can make about ICE,
/// and the pages: no `credential` anywhere in headers or bodies, no secret, no static
/// password, no TURN URL of the minted service.
#[tokio::test]
async fn unauthenticated_requests_get_no_turn_credentials() {
    let env = start().await;
    let sub = env
        .server
        .state()
        .keys
        .mint("v", "r1", &[Grant::Subscribe], Duration::from_secs(60));
    let other_room =
        env.server
            .state()
            .keys
            .mint("v", "r2", &[Grant::Publish], Duration::from_secs(60));
    let expired = expired_token("r1");
    let mut seen = Vec::new();
    let mut check = |what: String, r: Response, body: String| {
        let all = format!("{:?}\n{body}", r.headers());
        for bad in [
            "credential",
            TURN_SECRET,
            STATIC_PASS,
            "127.0.0.1:3478?transport",
        ] {
            assert!(!all.contains(bad), "{what}: `{bad}` in {all}");
        }
        seen.push((what, r.status()));
    };
    for kind in ["whip", "whep"] {
        for preflight in [false, true] {
            for path in [format!("/{kind}/r1"), format!("/{kind}/r1/ice-servers")] {
                let mut rb = env
                    .http
                    .request(Method::OPTIONS, format!("{}{path}", env.base));
                if preflight {
                    rb = rb
                        .header("origin", "https://school.example")
                        .header("access-control-request-method", "GET")
                        .header("access-control-request-headers", "authorization");
                }
                let r = rb.send().await.unwrap();
                let l = links(&r).join(", ");
                if path.ends_with(&format!("/{kind}/r1")) {
                    assert!(l.contains("<stun:127.0.0.1:3478>"), "{l}");
                }
                let body = String::new();
                check(format!("OPTIONS {path} preflight={preflight}"), r, body);
            }
        }
        // GET ice-servers and POST: without a token, with garbage, expired, for another
        // room, and (for whip) with a subscribe-only token.
        let tokens: Vec<(&str, Option<&str>)> = vec![
            ("none", None),
            ("garbage", Some("not-a-token")),
            ("expired", Some(&expired)),
            ("other room", Some(&other_room)),
        ];
        let mut tokens = tokens;
        if kind == "whip" {
            tokens.push(("subscribe-only", Some(&sub)));
        }
        for (name, t) in tokens {
            let mut rb = env.http.get(format!("{}/{kind}/r1/ice-servers", env.base));
            if let Some(t) = t {
                rb = rb.bearer_auth(t);
            }
            let r = rb.send().await.unwrap();
            let status = r.status();
            assert!(
                status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN,
                "GET ice-servers with {name}: {status}"
            );
            assert_eq!(r.headers()["content-type"], "application/problem+json");
            let h = r.headers().clone();
            let body = r.text().await.unwrap();
            let all = format!("{h:?}\n{body}");
            assert!(!all.contains("credential"), "{all}");
            let mut rb = env
                .http
                .post(format!("{}/{kind}/r1", env.base))
                .header("content-type", "application/sdp")
                .body(offer(Direction::SendOnly));
            if let Some(t) = t {
                rb = rb.bearer_auth(t);
            }
            let r = rb.send().await.unwrap();
            assert!(r.status().is_client_error(), "POST with {name}");
            let h = r.headers().clone();
            let body = r.text().await.unwrap();
            let all = format!("{h:?}\n{body}");
            assert!(!all.contains("credential"), "POST with {name}: {all}");
        }
    }
    // Not an endpoint kind, and the pages and scripts anyone can load.
    for path in [
        "/foo/r1/ice-servers",
        "/publish",
        "/watch",
        "/teach",
        "/classroom",
        "/whip.js",
        "/app.js",
        "/api/me",
        "/api/today",
    ] {
        let r = env
            .http
            .get(format!("{}{path}", env.base))
            .send()
            .await
            .unwrap();
        let h = r.headers().clone();
        let status = r.status();
        let body = r.text().await.unwrap();
        let all = format!("{h:?}\n{body}");
        for bad in [
            TURN_SECRET,
            STATIC_PASS,
            "127.0.0.1:3478?transport",
            "username=\"",
        ] {
            assert!(!all.contains(bad), "GET {path} ({status}): `{bad}`");
        }
    }
    assert!(seen.len() >= 8);
    let m = env.server.state().metrics.encode();
    assert!(!m.contains("classrelay_turn_credentials_total 1"), "{m}");
    assert!(m.contains("classrelay_turn_credentials_total 0"), "{m}");
    env.server.shutdown().await;
}

#[test]
fn check_config_refuses_a_bad_turn_block() {
    for (toml, key) in [
        ("[turn]\nurls = [\"turn:x:3478\"]\n", "turn.secret"),
        (
            "[turn]\nurls = [\"turn:x:3478\"]\nsecret = \"short\"\n",
            "turn.secret",
        ),
        (
            "[turn]\nurls = [\"stun:x:3478\"]\nsecret = \"0123456789abcdef0\"\n",
            "turn.urls",
        ),
        ("[turn]\nsecret = \"0123456789abcdef0\"\n", "turn.urls"),
        (
            "[turn]\nurls = [\"turn:x:3478\"]\nsecret = \"0123456789abcdef0\"\nttl = \"9d\"\n",
            "turn.ttl",
        ),
        (
            "[turn]\nurls = [\"turn:x:3478\"]\nsecret_file = \"/nonexistent/turn-secret\"\n",
            "turn.secret_file",
        ),
    ] {
        let e = Config::from_toml_over_defaults(toml, "t.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains(key), "{toml}: {e}");
    }
    let ok = Config::from_toml_over_defaults(
        "[turn]\nurls = [\"turn:x:3478\", \"turns:x:443?transport=tcp\"]\nsecret = \"0123456789abcdef0\"\nttl = \"45m\"\n",
        "t.toml",
    )
    .unwrap();
    assert!(ok.turn.enabled());
}

/// `classrelay check-config` reads `turn.secret_file` and names the key at fault.
#[test]
fn check_config_reads_the_turn_secret_file() {
    let dir = tempfile::tempdir().unwrap();
    let run = |toml: String| {
        let file = dir.path().join("c.toml");
        std::fs::write(&file, toml).unwrap();
        std::process::Command::new(env!("CARGO_BIN_EXE_classrelay"))
            .current_dir(dir.path())
            .env_remove("CLASSRELAY_TURN__SECRET")
            .arg("check-config")
            .arg(&file)
            .output()
            .unwrap()
    };
    let secret = dir.path().join("turn-secret");
    let block = format!(
        "[turn]\nurls = [\"turn:t.example:3478?transport=tcp\"]\nsecret_file = \"{}\"\n",
        secret.display()
    );
    let out = run(block.clone());
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("turn.secret_file"), "{err}");
    std::fs::write(&secret, "short\n").unwrap();
    let err = String::from_utf8_lossy(&run(block.clone()).stderr).into_owned();
    assert!(
        err.contains("turn.secret_file") && err.contains("16"),
        "{err}"
    );
    std::fs::write(&secret, format!("{TURN_SECRET}\n")).unwrap();
    let out = run(block);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("config OK"));
}

fn turn_for_tests() -> TurnConfig {
    TurnConfig {
        secret: TURN_SECRET.into(),
        secret_file: None,
        urls: vec!["turn:127.0.0.1:3478?transport=tcp".into()],
        ttl: "2h".into(),
    }
}

/// Lesson tokens: the credential is minted for the lesson API's principal (`d:<device>`,
/// `u:<user>`), only while the lesson admits the caller; a login session or device token
/// (not a WHIP/WHEP token) gets nothing, nor does anyone once the lesson has ended.
#[tokio::test]
async fn lesson_tokens_get_credentials_for_their_principal_while_the_lesson_admits_them() {
    let app = App::start_with(Backend::Sqlite, |c| c.turn = turn_for_tests())
        .await
        .expect("server");
    let f = fixture(&app).await;
    let id = lesson(&app, &f, "master", "07:30", "08:10").await;
    app.clock.set(at("07:35"));
    let dev = app.device(f.room_a).await;
    let join = |who: String| {
        let app = &app;
        async move {
            let (s, v) = app
                .call(
                    Some(&who),
                    Method::POST,
                    &format!("/api/lessons/{id}/join"),
                    None,
                )
                .await;
            assert_eq!(s, StatusCode::OK, "{v}");
            (
                v["token"].as_str().unwrap().to_string(),
                v["room"].as_str().unwrap().to_string(),
            )
        }
    };
    let get = |kind: &'static str, room: String, token: String| {
        let app = &app;
        async move {
            app.http
                .get(format!("{}/{kind}/{room}/ice-servers", app.base))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
        }
    };
    let (dev_token, room) = join(dev.clone()).await;
    let (teacher_token, _) = join(f.teacher_login.clone()).await;
    for (kind, token, prefix) in [("whep", &dev_token, "d:"), ("whip", &teacher_token, "u:")] {
        let before = unix_now();
        let r = get(kind, room.clone(), token.clone()).await;
        assert_eq!(r.status(), StatusCode::OK, "{kind}");
        let v: Value = r.json().await.unwrap();
        let m = &v["ice_servers"][0];
        let user = m["username"].as_str().unwrap();
        let (_, who) = user.split_once(':').unwrap();
        assert!(who.starts_with(prefix), "{user}");
        check_minted(user, m["credential"].as_str().unwrap(), who, before);
    }
    // A device token or login session is not a WHIP/WHEP token.
    for t in [&dev, &f.teacher_login] {
        let r = get("whep", room.clone(), t.clone()).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert!(!r.text().await.unwrap().contains("credential"));
    }
    // The lesson ends: its tokens open no session, and get no credential.
    let (s, v) = app
        .call(
            Some(&f.teacher_login),
            Method::POST,
            &format!("/api/lessons/{id}/end"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    for (kind, token) in [("whep", &dev_token), ("whip", &teacher_token)] {
        let r = get(kind, room.clone(), token.clone()).await;
        let status = r.status();
        assert!(status.is_client_error(), "{kind} after the end: {status}");
        let all = format!("{:?}\n{}", r.headers().clone(), r.text().await.unwrap());
        assert!(!all.contains("credential"), "{all}");
    }
}
