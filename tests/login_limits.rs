//! Login abuse limits against a real server on loopback (review finding 3): a login flood keeps
//! the server's memory flat and is answered `429` with `Retry-After`; per-username backoff
//! follows the username across client addresses; per-address limits span usernames;
//! unknown-username checks never stall the async runtime; a full hash pool sheds with `503`.
//!
//! Run: `cargo test --test login_limits`. Client addresses other than 127.0.0.1 come from
//! binding the client socket to 127.0.0.x (all of 127/8 is loopback on Linux).

mod support;

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use classrelay::{Config, Server};
use reqwest::StatusCode;
use serde_json::{json, Value};

use support::metrics::{scrape, value};

/// The tests of this file share one process-wide password-hash pool and measure the
/// process's memory, so they run one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

struct Srv {
    _dir: tempfile::TempDir,
    server: Server,
    base: String,
    admin_password: String,
}

async fn start(adjust: impl FnOnce(&mut Config)) -> Srv {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = Config::for_tests(dir.path());
    adjust(&mut cfg);
    let server = Server::start(cfg).await.unwrap();
    let admin_password = server.first_admin().unwrap().1.clone();
    let base = server.base_url();
    Srv {
        _dir: dir,
        server,
        base,
        admin_password,
    }
}

/// A client whose connections come from 127.0.0.`last`.
fn client_from(last: u8) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)))
        .build()
        .unwrap()
}

/// One login's answer: status, `Retry-After` in seconds, problem `type`, body.
struct Answer {
    status: StatusCode,
    retry_after: Option<u64>,
    kind: String,
    body: Value,
}

async fn login(http: &reqwest::Client, base: &str, user: &str, password: &str) -> Answer {
    let r = http
        .post(format!("{base}/api/login"))
        .json(&json!({"username": user, "password": password}))
        .send()
        .await
        .unwrap();
    let status = r.status();
    let retry_after = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().parse::<u64>().unwrap());
    let problem = r
        .headers()
        .get("content-type")
        .is_some_and(|v| v.to_str().unwrap() == "application/problem+json");
    let body: Value = r.json().await.unwrap_or(Value::Null);
    let kind = if problem {
        body["type"]
            .as_str()
            .unwrap_or("")
            .trim_start_matches("urn:classrelay:problem:")
            .to_string()
    } else {
        String::new()
    };
    Answer {
        status,
        retry_after,
        kind,
        body,
    }
}

/// Resident memory of this process (the server runs in it), in bytes.
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .unwrap()
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap();
    kb * 1024
}

/// The review's flood: 40 clients in parallel, 3 logins each, most for `admin` with a wrong
/// password, some for unknown names. Unfixed, each admin check took 19 MiB on its own
/// blocking thread (40 × 19 MiB ≈ 760 MB, never given back); now the hash pool bounds the
/// memory, the limits answer most of the flood with 429, and the admin gets in after
/// waiting out the `Retry-After` they were given.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_flood_keeps_memory_flat_and_is_limited() {
    let _serial = SERIAL.lock().await;
    let s = start(|_| {}).await;
    let before = rss();
    let http = reqwest::Client::new();
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let http = http.clone();
            let base = s.base.clone();
            tokio::spawn(async move {
                let mut answers = Vec::new();
                for round in 0..3 {
                    let user = if i < 32 {
                        "admin".to_string()
                    } else {
                        format!("nobody-{i}-{round}")
                    };
                    answers.push(login(&http, &base, &user, "wrong-password").await);
                }
                answers
            })
        })
        .collect();
    let mut answers = Vec::new();
    for t in tasks {
        answers.extend(t.await.unwrap());
    }
    let after = rss();
    let grown = after.saturating_sub(before);
    eprintln!(
        "RSS {} MiB -> {} MiB (+{} MiB)",
        before >> 20,
        after >> 20,
        grown >> 20
    );
    assert!(
        grown < 100 << 20,
        "a login flood grew the process by {} MiB",
        grown >> 20
    );
    let mut limited = 0;
    for a in &answers {
        match a.status {
            StatusCode::UNAUTHORIZED => assert_eq!(a.kind, "login-failed", "{}", a.body),
            StatusCode::TOO_MANY_REQUESTS => {
                limited += 1;
                assert_eq!(a.kind, "too-many-logins", "{}", a.body);
                assert!(
                    a.retry_after.is_some_and(|s| s >= 1),
                    "429 without Retry-After"
                );
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_eq!(a.kind, "overloaded", "{}", a.body);
                assert!(
                    a.retry_after.is_some_and(|s| s >= 1),
                    "503 without Retry-After"
                );
            }
            other => panic!("unexpected {other}: {}", a.body),
        }
    }
    let count = |st| answers.iter().filter(|a| a.status == st).count();
    eprintln!(
        "{} answers: {} × 401, {} × 429, {} × 503",
        answers.len(),
        count(StatusCode::UNAUTHORIZED),
        limited,
        count(StatusCode::SERVICE_UNAVAILABLE)
    );
    assert!(limited > 0, "no login of the flood was refused with 429");
    // The right password, after waiting out what the server asked for, gets in.
    let mut waited = false;
    loop {
        let a = login(&http, &s.base, "admin", &s.admin_password).await;
        if a.status == StatusCode::OK {
            break;
        }
        assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS, "{}", a.body);
        assert!(
            !waited,
            "still refused after waiting out Retry-After: {}",
            a.body
        );
        tokio::time::sleep(Duration::from_secs(a.retry_after.unwrap())).await;
        waited = true;
    }
    let m = scrape(&http, &s.base).await;
    // A label appears once counted.
    let by_user = value(&m, "classrelay_logins_refused_total{by=\"Username\"}").unwrap_or(0.0);
    let by_addr = value(&m, "classrelay_logins_refused_total{by=\"Address\"}").unwrap_or(0.0);
    assert!(by_user > 0.0, "{m}");
    // The flood's 429s plus the admin's own while waiting.
    assert_eq!(by_user + by_addr, (limited + waited as usize) as f64, "{m}");
    assert!(value(&m, "classrelay_logins_shed_total").is_some(), "{m}");
    assert_eq!(
        value(&m, "classrelay_password_hashes_in_flight"),
        Some(0.0),
        "{m}"
    );
    s.server.shutdown().await;
}

/// Unknown usernames cost a dummy argon2 check (so they are not told apart by timing). It ran
/// on the async worker thread and stalled every other request; now it runs in the hash pool
/// and `/healthz` answers at once while a flood of such logins is checked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_usernames_do_not_stall_the_runtime() {
    let _serial = SERIAL.lock().await;
    let s = start(|_| {}).await;
    // Four client addresses, so more checks pass the per-address limit.
    let mut flood = tokio::task::JoinSet::new();
    for from in 1..=4u8 {
        let http = client_from(from);
        for i in 0..30 {
            let http = http.clone();
            let base = s.base.clone();
            flood.spawn(async move {
                login(&http, &base, &format!("ghost-{from}-{i}"), "password-123")
                    .await
                    .status
            });
        }
    }
    let http = client_from(9);
    let mut worst = Duration::ZERO;
    let mut probes = 0;
    while probes < 5 || (!flood.is_empty() && probes < 50) {
        let t = Instant::now();
        let r = http
            .get(format!("{}/healthz", s.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        worst = worst.max(t.elapsed());
        probes += 1;
        while let Some(done) = flood.try_join_next() {
            let status = done.unwrap();
            assert!(
                [
                    StatusCode::UNAUTHORIZED,
                    StatusCode::TOO_MANY_REQUESTS,
                    StatusCode::SERVICE_UNAVAILABLE
                ]
                .contains(&status),
                "{status}"
            );
        }
    }
    eprintln!("{probes} /healthz probes during the flood, slowest {worst:?}");
    assert!(
        worst < Duration::from_millis(750),
        "/healthz took {worst:?} while unknown-username logins were checked"
    );
    while flood.join_next().await.is_some() {}
    s.server.shutdown().await;
}

/// Failed logins for one username back off whichever address they come from; another
/// username from the same addresses is not held back; a success resets the count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn username_backoff_spans_addresses() {
    let _serial = SERIAL.lock().await;
    let s = start(|_| {}).await;
    let one = client_from(1);
    let two = client_from(2);
    for _ in 0..5 {
        let a = login(&one, &s.base, "admin", "wrong-password").await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{}", a.body);
    }
    let a = login(&one, &s.base, "admin", "wrong-password").await;
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS, "{}", a.body);
    assert_eq!(a.kind, "too-many-logins");
    // From another address, even with the right password: the username waits.
    let a = login(&two, &s.base, "admin", &s.admin_password).await;
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS, "{}", a.body);
    let wait = a.retry_after.expect("429 carries Retry-After");
    assert!((1..=5).contains(&wait), "Retry-After {wait}");
    // Other usernames from either address are not held back.
    let a = login(&one, &s.base, "someone-else", "wrong-password").await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{}", a.body);
    tokio::time::sleep(Duration::from_secs(wait)).await;
    let a = login(&two, &s.base, "admin", &s.admin_password).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    // The success forgave the failures: a typo now is a plain 401 again.
    for _ in 0..3 {
        let a = login(&one, &s.base, "admin", "wrong-password").await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{}", a.body);
    }
    s.server.shutdown().await;
}

/// One address gets a burst of attempts over any usernames, then waits; another address is
/// not affected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn address_limit_spans_usernames() {
    let _serial = SERIAL.lock().await;
    let s = start(|c| {
        c.auth.login_address_burst = 4;
        c.auth.login_address_interval = "10s".into();
    })
    .await;
    let one = client_from(3);
    let two = client_from(4);
    for i in 0..4 {
        let a = login(&one, &s.base, &format!("user-{i}"), "wrong-password").await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{}", a.body);
    }
    let a = login(&one, &s.base, "user-9", "wrong-password").await;
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS, "{}", a.body);
    assert_eq!(a.kind, "too-many-logins");
    let wait = a.retry_after.expect("429 carries Retry-After");
    assert!((1..=10).contains(&wait), "Retry-After {wait}");
    // Even the right password waits: the address is over its limit.
    let a = login(&one, &s.base, "admin", &s.admin_password).await;
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS, "{}", a.body);
    // Another address is not.
    let a = login(&two, &s.base, "admin", &s.admin_password).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let http = reqwest::Client::new();
    let m = scrape(&http, &s.base).await;
    assert_eq!(
        value(&m, "classrelay_logins_refused_total{by=\"Address\"}"),
        Some(2.0),
        "{m}"
    );
    s.server.shutdown().await;
}

/// With the rate limits opened wide, a burst of logins larger than the hash pool and its
/// queue is shed with `503` and `Retry-After` instead of queueing without bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_hash_pool_sheds_with_503() {
    let _serial = SERIAL.lock().await;
    let s = start(|c| {
        c.auth.login_address_burst = 10_000;
    })
    .await;
    let http = reqwest::Client::new();
    let mut flood = tokio::task::JoinSet::new();
    for i in 0..120 {
        let http = http.clone();
        let base = s.base.clone();
        flood
            .spawn(async move { login(&http, &base, &format!("ghost-{i}"), "password-123").await });
    }
    let mut shed = 0;
    while let Some(a) = flood.join_next().await {
        let a = a.unwrap();
        match a.status {
            StatusCode::UNAUTHORIZED => {}
            StatusCode::SERVICE_UNAVAILABLE => {
                shed += 1;
                assert_eq!(a.kind, "overloaded", "{}", a.body);
                assert!(a.retry_after.is_some_and(|s| s >= 1));
            }
            other => panic!("unexpected {other}: {}", a.body),
        }
    }
    assert!(shed > 0, "120 logins at once were all queued");
    let m = scrape(&http, &s.base).await;
    assert_eq!(
        value(&m, "classrelay_logins_shed_total"),
        Some(shed as f64),
        "{m}"
    );
    s.server.shutdown().await;
}
