//! Link reports per classroom per lesson (issue 19 item 6), on a real server with real sockets:
//! the hub teacher publishes simulcast (a str0m peer from the load generator), classroom A
//! watches over a clean line and classroom B over a thin, lossy one (the userspace relay,
//! `classrelay_loadtest::netem`). After the lesson, the stored report shows B's loss and a
//! smaller share of the top layer than A's; a page's `getStats` figures posted by A's kiosk
//! are merged into A's row; the CSV carries a BOM and Chinese headers; the reports page's
//! link quality per school counts the stored reports.
//!
//! Run: `cargo test --test link_reports -- --nocapture` (prints both rows).

mod support;

use std::time::{Duration, Instant};

use classrelay_loadtest::netem::LinkProfile;
use classrelay_loadtest::swarm::Swarm;
use classrelay_loadtest::whip;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use support::media::{hd_source, sent_more_than};
use support::school::{at, fixture, lesson, App, Backend};

/// How long both classrooms watch (by the stored report) before they hang up.
const WATCH: Duration = Duration::from_secs(15);

fn row<'a>(report: &'a Value, part: &str) -> Option<&'a Value> {
    report["rows"]
        .as_array()?
        .iter()
        .find(|r| r["part"] == part)
}

fn num(v: &Value, key: &str) -> f64 {
    v[key].as_f64().unwrap_or(f64::NAN)
}

/// Reads the lesson's report until `done` holds (rows are written in batches, off the media
/// path, a moment after the totals come).
async fn report_when(app: &App, id: i64, done: impl Fn(&Value) -> bool) -> Value {
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let (s, v) = app
            .call(
                Some(&app.admin),
                Method::GET,
                &format!("/api/lessons/{id}/link-report"),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        if done(&v) {
            return v;
        }
        assert!(Instant::now() < end, "the report never got there: {v}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn join_token(app: &App, who: &str, id: i64) -> String {
    let (s, j) = app
        .call(
            Some(who),
            Method::POST,
            &format!("/api/lessons/{id}/join"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{j}");
    j["token"].as_str().expect("a media token").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lossy_classroom_shows_its_loss_and_a_lower_layer_in_the_stored_report() {
    let app = App::start(Backend::Sqlite).await.expect("server");
    let f = fixture(&app).await;
    let id = lesson(&app, &f, "delivery", "08:00", "08:40").await;
    app.clock.set(at("08:00"));
    let room = format!("lesson-{id}");
    let swarm = Swarm::start().unwrap();

    // The hub teacher publishes three simulcast layers (1.2 Mbit/s, half, a quarter).
    let mut source = hd_source();
    source.simulcast = vec!["h".into(), "m".into(), "l".into()];
    let token = join_token(&app, &f.teacher_login, id).await;
    let publisher = whip::join(
        &swarm,
        &app.http,
        &format!("{}/whip/{room}", app.base),
        &token,
        swarm.publisher_offer(source).unwrap(),
    )
    .await
    .unwrap();
    assert!(
        sent_more_than(&publisher, 30, Duration::from_secs(30)).await,
        "the teacher publishes"
    );

    // Classroom A on a clean line, classroom B on 500 kbit/s losing 5 %.
    let kiosk_a = app.device(f.room_a).await;
    let kiosk_b = app.device(f.room_b).await;
    let mut viewers = Vec::new();
    for (kiosk, down) in [
        (
            &kiosk_a,
            LinkProfile {
                delay: Duration::from_millis(20),
                ..LinkProfile::default()
            },
        ),
        (
            &kiosk_b,
            LinkProfile {
                loss: 0.05,
                delay: Duration::from_millis(60),
                jitter: Duration::from_millis(10),
                rate_bps: Some(500_000),
                seed: 7,
            },
        ),
    ] {
        let token = join_token(&app, kiosk, id).await;
        let (peer, relay) = whip::join_through(
            &swarm,
            &app.http,
            &format!("{}/whep/{room}", app.base),
            &token,
            swarm.subscriber_offer(1, 1).unwrap(),
            LinkProfile {
                delay: Duration::from_millis(20),
                ..LinkProfile::default()
            },
            down,
        )
        .await
        .unwrap();
        assert!(
            peer.stats
                .wait_for(Duration::from_secs(30), |s| s.first_keyframe_at().is_some())
                .await,
            "classroom {} gets video",
            peer.index
        );
        viewers.push((peer, relay, token));
    }

    // A's page reports what its getStats said; garbage is a clear 400.
    let page = json!({"conn": "pc-1", "duration_ms": 10_000, "frames_decoded": 290,
                      "freeze_count": 1, "freeze_ms": 300, "concealed_samples": 480,
                      "total_samples": 480_000, "bytes_received": 1_500_000});
    let stats = format!("/api/lessons/{id}/link-stats");
    let (s, v) = app
        .call(Some(&kiosk_a), Method::POST, &stats, Some(page))
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    let (s, v) = app
        .call(
            Some(&kiosk_a),
            Method::POST,
            &stats,
            Some(json!({"conn": "pc-1", "duration_ms": "soon"})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(
        v["type"].as_str().unwrap_or("").ends_with("bad-json"),
        "{v}"
    );

    // Both watch, then hang up: the final totals go out as the sessions end.
    let a = format!("c:{}", f.room_a);
    let b = format!("c:{}", f.room_b);
    let secs = |v: &Value, part: &str| row(v, part).map(|r| num(r, "seconds")).unwrap_or(0.0);
    let watched = WATCH.as_secs_f64();
    let before = report_when(&app, id, |v| {
        secs(v, &a) >= watched && secs(v, &b) >= watched
    })
    .await;
    for (peer, _, token) in &viewers {
        let r = app
            .http
            .delete(&peer.session_url)
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "DELETE: {}", r.status());
        swarm.close(peer).unwrap();
    }
    let report = report_when(&app, id, |v| {
        secs(v, &a) > secs(&before, &a) && secs(v, &b) > secs(&before, &b)
    })
    .await;
    let (ra, rb) = (row(&report, &a).unwrap(), row(&report, &b).unwrap());
    println!("clean: {ra}\nlossy: {rb}");
    assert_eq!(ra["name"], "三年级1班", "{ra}");
    assert_eq!(ra["school"], "昭觉县民族小学", "{ra}");
    // B's line lost packets and queued; A's did not.
    assert!(
        num(rb, "loss_pct") > num(ra, "loss_pct") + 1.0,
        "loss: A {ra} B {rb}"
    );
    assert!(num(rb, "rtt_ms") > num(ra, "rtt_ms"), "RTT: A {ra} B {rb}");
    // A kept the top layer nearly all the time; B spent most of its time below it.
    let high = |r: &Value| num(&r["layers"], "high");
    assert!(high(ra) > 0.9, "A's top-layer share: {ra}");
    assert!(high(rb) < high(ra) - 0.3, "B's top-layer share: {rb}");
    assert!(
        num(rb, "kbps") < num(ra, "kbps"),
        "B got less: A {ra} B {rb}"
    );
    // A's page figures, merged into its row.
    assert_eq!(num(ra, "fps"), 29.0, "{ra}");
    assert_eq!(ra["freezes"], 1, "{ra}");
    assert_eq!(num(ra, "freeze_pct"), 3.0, "{ra}");
    assert_eq!(num(ra, "concealment_pct"), 0.1, "{ra}");
    assert_eq!(rb["fps"], Value::Null, "B's page said nothing: {rb}");

    // The CSV: a BOM, Chinese headers, one line per classroom.
    let r = app
        .http
        .get(format!("{}/api/lessons/{id}/link-report.csv", app.base))
        .bearer_auth(&app.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()[reqwest::header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let text = r.text().await.unwrap();
    assert!(
        text.starts_with("\u{feff}参与方,名称,学校,在线分钟,平均码率(kbit/s),丢包率(%)"),
        "{text}"
    );
    assert_eq!(text.lines().count(), 3, "{text}");
    assert!(
        text.contains(&format!("{a},三年级1班,昭觉县民族小学")),
        "{text}"
    );
    assert!(
        text.contains(&format!("{b},三年级2班,昭觉县城北小学")),
        "{text}"
    );

    // The reports' link quality per school counts the stored reports: A's school good.
    let (s, v) = app
        .call(
            Some(&app.admin),
            Method::GET,
            "/api/reports?from=2026-09-07&to=2026-09-07",
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let school = |id: i64| {
        v["links"]
            .as_array()
            .and_then(|ls| ls.iter().find(|l| l["school_id"] == id))
            .cloned()
            .unwrap_or(Value::Null)
    };
    let (sa, sb) = (school(f.partner_a), school(f.partner_b));
    println!("link quality: {sa} {sb}");
    assert_eq!(
        (
            sa["good"].as_u64(),
            sa["fair"].as_u64(),
            sa["poor"].as_u64()
        ),
        (Some(1), Some(0), Some(0)),
        "{v}"
    );
    assert_eq!(sb["good"].as_u64(), Some(0), "{v}");
    drop(publisher);
    app.server.shutdown().await;
}
