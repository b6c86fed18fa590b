//! A school whose firewall lets no UDP out: Debian's coturn on loopback (`use-auth-secret`,
//! TURN over TCP, no TLS), started and stopped by the test; a Chromium publisher and a
//! Chromium viewer on `/publish` and `/watch` with `&relay=1` (`iceTransportPolicy: "relay"`)
//! and only a `turn:…?transport=tcp` server, whose credentials classrelay mints (`[turn]`).
//! Media must flow through coturn: the viewer decodes frames, both selected candidate pairs
//! are relayed over TCP, and coturn's log shows the allocations made with the minted
//! usernames. This test must never leave coturn running (it is killed on drop).
//!
//! Run: `cargo test --test turn_relay` (needs `coturn`, `chromium`, `chromium-driver`).

mod support;

use std::time::Duration;

use anyhow::{bail, Result};
use serde_json::Value;

use support::browser::{num, Browser, Page, DEFAULT_DEADLINE};
use support::school::{at, fixture, lesson, App, Backend};
use support::turn::Coturn;

/// The selected candidate pair of a page: (local candidate type, how it reaches the TURN
/// server).
fn pair(stats: &Value) -> (String, String) {
    let p = &stats["candidatePair"];
    (
        p["localType"].as_str().unwrap_or("").to_string(),
        p["localRelayProtocol"].as_str().unwrap_or("").to_string(),
    )
}

fn decoded_camera(stats: &Value) -> f64 {
    stats["inboundVideo"]
        .as_array()
        .and_then(|v| v.iter().find(|v| v["role"] == "camera"))
        .map_or(0.0, |v| num(v, "/framesDecoded"))
}

async fn describe(page: &Page) -> String {
    format!(
        "stats: {}\nlog:\n{}",
        page.stats().await.unwrap_or_default(),
        page.page_log().await
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_publisher_and_viewer_exchange_media_through_coturn_over_tcp() -> Result<()> {
    let Some(coturn) = Coturn::start()? else {
        return Ok(());
    };
    let Some(browser) = Browser::start_or_skip().await else {
        return Ok(());
    };
    let dir = tempfile::tempdir()?;
    let mut cfg = classrelay::Config::for_tests(dir.path());
    cfg.turn = coturn.config();
    cfg.validate()?;
    let server = classrelay::Server::start(cfg).await?;
    let base = format!("http://{}", server.http_addr());
    let ttl = Duration::from_secs(3600);
    let pub_token = server.mint_token("turn1", classrelay::auth::Grant::Publish, ttl);
    let sub_token = server.mint_token("turn1", classrelay::auth::Grant::Subscribe, ttl);
    let light = "&simulcast=0&width=640&height=360&relay=1";

    let publisher = browser.new_page().await?;
    publisher
        .goto(&format!(
            "{base}/publish?room=turn1&token={pub_token}{light}"
        ))
        .await?;
    if let Err(e) = publisher
        .wait_for_state("connected", DEFAULT_DEADLINE)
        .await
    {
        bail!(
            "publisher: {e}\n{}\ncoturn:\n{}",
            describe(&publisher).await,
            coturn.log()
        );
    }
    let watcher = browser.new_page().await?;
    watcher
        .goto(&format!(
            "{base}/watch?room=turn1&token={sub_token}&relay=1"
        ))
        .await?;
    if let Err(e) = watcher.wait_for_state("connected", DEFAULT_DEADLINE).await {
        bail!(
            "watcher: {e}\n{}\ncoturn:\n{}",
            describe(&watcher).await,
            coturn.log()
        );
    }
    let stats = watcher
        .wait_for_stats(
            DEFAULT_DEADLINE,
            "30 camera frames decoded and audio",
            |s| decoded_camera(s) >= 30.0 && num(s, "/inboundAudio/0/packetsReceived") > 0.0,
        )
        .await?;
    // The viewer's media came over a relayed candidate reached by TCP.
    assert_eq!(
        pair(&stats),
        ("relay".to_string(), "tcp".to_string()),
        "watcher's selected pair: {}",
        stats["candidatePair"]
    );
    let sent = publisher.stats().await?;
    assert_eq!(
        pair(&sent),
        ("relay".to_string(), "tcp".to_string()),
        "publisher's selected pair: {}",
        sent["candidatePair"]
    );
    // classrelay saw both peers at coturn's relay addresses, not at a host candidate.
    for (who, s) in [("watcher", &stats), ("publisher", &sent)] {
        let local = s["candidatePair"]["local"].as_str().unwrap_or("");
        assert!(local.starts_with("127.0.0.1:"), "{who}: {local}");
    }
    // coturn allocated for the usernames classrelay minted (`<expiry>:<principal>`).
    let log = coturn.log();
    for principal in ["publisher", "viewer"] {
        let allocated = log.lines().any(|l| {
            l.contains("ALLOCATE processed, success") && l.contains(&format!(":{principal}>"))
        });
        assert!(
            allocated,
            "no allocation for {principal} in coturn's log:\n{log}"
        );
    }
    assert!(
        server
            .state()
            .metrics
            .encode()
            .lines()
            .any(|l| l.starts_with("classrelay_turn_credentials_total ")
                && l.split(' ').nth(1).and_then(|n| n.parse::<u64>().ok()) >= Some(2)),
        "two credentials minted at least"
    );
    publisher.close().await?;
    watcher.close().await?;
    server.shutdown().await;
    drop(coturn);
    Ok(())
}

/// The school pages through coturn: the teacher console and a classroom kiosk (device token)
/// with `&relay=1` get their credentials from `GET /{whip|whep}/{room}/ice-servers` with their
/// lesson tokens (the pages' `Link` class), and the classroom decodes the teacher over a relay
/// reached by TCP. The minted usernames carry the lesson API's principals (`u:<user>`,
/// `d:<device>`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lesson_pages_relay_through_coturn_with_their_principals() -> Result<()> {
    let Some(coturn) = Coturn::start()? else {
        return Ok(());
    };
    let Some(browser) = Browser::start_or_skip().await else {
        return Ok(());
    };
    let app = App::start_with(Backend::Sqlite, |c| c.turn = coturn.config())
        .await
        .expect("server");
    let f = fixture(&app).await;
    let id = lesson(&app, &f, "master", "07:30", "08:10").await;
    app.clock.set(at("07:35"));

    let teacher = browser.new_page().await?;
    teacher
        .goto(&format!(
            "{}/login?next=/teach%3Flesson%3D{id}%26screen%3D1%26width%3D640%26height%3D360%26relay%3D1",
            app.base
        ))
        .await?;
    teacher
        .eval(
            "document.getElementById('username').value = 'wang';
             document.getElementById('password').value = 'password-123';
             document.getElementById('submit').click(); return true;",
        )
        .await?;
    if let Err(e) = teacher.wait_for_state("connected", DEFAULT_DEADLINE).await {
        bail!(
            "teacher: {e}\n{}\ncoturn:\n{}",
            teacher.page_log().await,
            coturn.log()
        );
    }
    let a = browser.new_page().await?;
    a.goto(&format!(
        "{}/classroom?device={}&lesson={id}&width=320&height=240&relay=1",
        app.base,
        app.device(f.room_a).await
    ))
    .await?;
    if let Err(e) = a.wait_for_state("connected", DEFAULT_DEADLINE).await {
        bail!(
            "classroom: {e}\n{}\ncoturn:\n{}",
            a.page_log().await,
            coturn.log()
        );
    }
    let hub = a
        .wait_for_stats(
            DEFAULT_DEADLINE,
            "the classroom decoding the teacher",
            |s| decoded_camera(&s["hub"]) > 10.0,
        )
        .await?["hub"]
        .clone();
    assert_eq!(
        pair(&hub),
        ("relay".to_string(), "tcp".to_string()),
        "classroom's hub pair: {}",
        hub["candidatePair"]
    );
    let published = teacher.stats().await?["publish"].clone();
    assert_eq!(
        pair(&published),
        ("relay".to_string(), "tcp".to_string()),
        "teacher's publish pair: {}",
        published["candidatePair"]
    );
    for prefix in ["u:", "d:"] {
        assert!(
            coturn.allocated_for(prefix),
            "no allocation for a {prefix} principal in coturn's log:\n{}",
            coturn.log()
        );
    }
    teacher.close().await?;
    a.close().await?;
    drop(coturn);
    Ok(())
}
