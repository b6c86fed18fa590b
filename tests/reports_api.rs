//! The reports a county sends upward (issue 22 item 7), on a real server with a real WebRTC
//! publisher and a real kiosk watching: of three lessons one is held (the teacher publishes
//! with the independent client, site A's kiosk watches), one is cancelled before its bell and
//! one is never started. 开课率 counts the cancelled one as cancelled, not as due; 到课率
//! counts site A present and the other sites absent; minutes taught come from the publish
//! session; the CSV carries a BOM and Chinese headers; the page shows the same figures in
//! both languages.
//!
//! Run: `cargo test --test reports_api` (the page part needs `chromium` and `chromium-driver`).

mod support;

use std::time::{Duration, Instant};

use anyhow::Result;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use support::browser::Browser;
use support::recording::teacher_publishes;
use support::school::{at, fixture, lesson, App, Backend};
use support::webrtc_client::whep_subscribe;

const DAY: &str = "from=2026-09-07&to=2026-09-07";

fn kind(v: &Value) -> &str {
    v["type"]
        .as_str()
        .unwrap_or("")
        .trim_start_matches("urn:classrelay:problem:")
}

/// Asks for the day's report until `done` holds (the session log is written off the media
/// path, a moment after the session opens or closes).
async fn report_when(app: &App, token: &str, done: impl Fn(&Value) -> bool) -> Value {
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let (s, v) = app
            .call(
                Some(token),
                Method::GET,
                &format!("/api/reports?{DAY}"),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        if done(&v) {
            return v;
        }
        assert!(Instant::now() < end, "the report never got there: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lesson_rate_counts_a_cancelled_lesson_as_cancelled() -> Result<()> {
    let app = App::start(Backend::Sqlite).await.expect("server");
    let f = fixture(&app).await;
    let held = lesson(&app, &f, "delivery", "08:00", "08:40").await;
    let cancelled = lesson(&app, &f, "delivery", "09:00", "09:40").await;
    let missed = lesson(&app, &f, "delivery", "10:00", "10:40").await;

    // Cancelled before its bell, by its own teacher; not twice; a teacher cannot cancel
    // another's lesson.
    let (s, v) = app
        .call(
            Some(&f.other_teacher_login),
            Method::POST,
            &format!("/api/lessons/{cancelled}/cancel"),
            Some(json!({})),
        )
        .await;
    assert_eq!(
        (s, kind(&v)),
        (StatusCode::FORBIDDEN, "not-your-lesson"),
        "{v}"
    );
    let (s, v) = app
        .call(
            Some(&f.teacher_login),
            Method::POST,
            &format!("/api/lessons/{cancelled}/cancel"),
            Some(json!({"reason": "运动会"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["state"], "ended", "{v}");
    let (s, v) = app
        .call(
            Some(&f.teacher_login),
            Method::POST,
            &format!("/api/lessons/{cancelled}/cancel"),
            Some(json!({})),
        )
        .await;
    assert_eq!(
        (s, kind(&v)),
        (StatusCode::CONFLICT, "lesson-cancelled"),
        "{v}"
    );

    // The bell of the first lesson: the teacher publishes, site A's kiosk watches.
    app.clock.set(at("08:00"));
    let room = format!("lesson-{held}");
    let publisher = teacher_publishes(&app, &f, held, &room).await;
    let kiosk = app.device(f.room_a).await;
    let (s, j) = app
        .call(
            Some(&kiosk),
            Method::POST,
            &format!("/api/lessons/{held}/join"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{j}");
    let watcher = whep_subscribe(&app.base, &room, j["token"].as_str().unwrap()).await?;
    // The cancelled lesson cannot be joined.
    let (s, v) = app
        .call(
            Some(&kiosk),
            Method::POST,
            &format!("/api/lessons/{cancelled}/join"),
            None,
        )
        .await;
    assert!(s.is_client_error(), "{s} {v}");

    let sites_present = |v: &Value| {
        v["lessons"]
            .as_array()
            .and_then(|ls| ls.iter().find(|l| l["id"] == held))
            .is_some_and(|l| l["outcome"] == "held" && l["sites_present"] == 1)
    };
    report_when(&app, &app.admin, sites_present).await;

    // Half an hour in the teacher hangs up; the class stops watching.
    app.clock.set(at("08:30"));
    publisher.close().await?;
    drop(watcher);
    // The session's end is stamped by the school clock when the media service reports it:
    // wait for that before the clock moves on.
    let teacher = format!("t:{}", f.teacher);
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, live) = app
            .call(
                Some(&app.admin),
                Method::GET,
                &format!("/api/lessons/{held}/live"),
                None,
            )
            .await;
        let publishing = live["present"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|p| p["part"] == teacher.as_str() && p["publishing"].as_u64() > Some(0));
        if !publishing {
            break;
        }
        assert!(Instant::now() < end, "the teacher still publishes: {live}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    app.clock.set(at("11:00"));
    let v = report_when(&app, &app.admin, |v| {
        v["lessons"]
            .as_array()
            .and_then(|ls| ls.iter().find(|l| l["id"] == held))
            .is_some_and(|l| l["minutes"] == 30.0)
    })
    .await;

    let rate = &v["rate"][0];
    assert_eq!(rate["period"], "2026-09-07", "{v}");
    assert_eq!(
        [
            &rate["scheduled"],
            &rate["cancelled"],
            &rate["upcoming"],
            &rate["due"],
            &rate["held"]
        ],
        [&json!(3), &json!(1), &json!(0), &json!(2), &json!(1)],
        "{v}"
    );
    assert_eq!(rate["rate"], 0.5, "{v}");
    let outcome = |id: i64| {
        v["lessons"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["id"] == id)
            .map(|l| l["outcome"].as_str().unwrap_or("").to_string())
    };
    assert_eq!(outcome(held).as_deref(), Some("held"));
    assert_eq!(outcome(cancelled).as_deref(), Some("cancelled"));
    assert_eq!(outcome(missed).as_deref(), Some("missed"));
    // 到课率 per site: A was there, B and the receive-only room were not.
    let site = |c: i64| {
        v["sites"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["classroom_id"] == c)
            .map(|s| {
                (
                    s["present"].as_i64().unwrap(),
                    s["expected"].as_i64().unwrap(),
                )
            })
    };
    assert_eq!(site(f.room_a), Some((1, 1)), "{v}");
    assert_eq!(site(f.room_b), Some((0, 1)), "{v}");
    assert_eq!(site(f.room_view), Some((0, 1)), "{v}");
    // Per school: partner B has two sites, neither present.
    let school = |s: i64| {
        v["schools"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["school_id"] == s)
            .map(|x| {
                (
                    x["present"].as_i64().unwrap(),
                    x["expected"].as_i64().unwrap(),
                )
            })
    };
    assert_eq!(school(f.partner_a), Some((1, 1)), "{v}");
    assert_eq!(school(f.partner_b), Some((0, 2)), "{v}");
    // Minutes taught, by name.
    assert_eq!(v["teachers"][0]["teacher"], "王老师", "{v}");
    assert_eq!(v["teachers"][0]["lessons"], 1, "{v}");
    assert_eq!(v["teachers"][0]["minutes"], 30.0, "{v}");

    // The county inspector sees the same figures; a teacher reads no reports.
    let (s, w) = app
        .call(
            Some(&f.inspector_login),
            Method::GET,
            &format!("/api/reports?{DAY}"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{w}");
    assert_eq!(w["rate"], v["rate"]);
    let (s, w) = app
        .call(
            Some(&f.teacher_login),
            Method::GET,
            &format!("/api/reports?{DAY}"),
            None,
        )
        .await;
    assert_eq!((s, kind(&w)), (StatusCode::FORBIDDEN, "role-forbidden"));
    // Bad input is a clear 400.
    for q in [
        "by=month",
        "from=2026-13-01",
        "from=2026-09-07&to=2026-09-01",
        "from=2025-01-01&to=2026-09-07",
    ] {
        let (s, w) = app
            .call(
                Some(&app.admin),
                Method::GET,
                &format!("/api/reports?{q}"),
                None,
            )
            .await;
        assert_eq!(
            (s, kind(&w)),
            (StatusCode::BAD_REQUEST, "bad-query"),
            "{q}: {w}"
        );
    }

    // CSV: a BOM, Chinese headers, the same numbers.
    let csv = |table: &str| {
        let url = format!("{}/api/reports.csv?table={table}&{DAY}", app.base);
        let http = app.http.clone();
        let admin = app.admin.clone();
        async move {
            let r = http.get(url).bearer_auth(admin).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::OK);
            assert!(r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/csv"));
            r.bytes().await.unwrap().to_vec()
        }
    };
    let rate_csv = csv("rate").await;
    assert!(rate_csv.starts_with(b"\xEF\xBB\xBF"), "a BOM");
    let text = String::from_utf8(rate_csv[3..].to_vec())?;
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("周期,排课,停课,未到时间,应开,已开,开课率")
    );
    assert_eq!(lines.next(), Some("2026-09-07,3,1,0,2,1,50.0%"));
    let lessons_csv = String::from_utf8(csv("lessons").await[3..].to_vec())?;
    assert!(
        lessons_csv.contains(&format!(
            "{cancelled},2026-09-07,2026-09-07,英语,三年级,王老师,已停课,0,0,0.0"
        )),
        "{lessons_csv}"
    );

    // The page shows the same, in both languages.
    let Some(browser) = Browser::start_or_skip().await else {
        return Ok(());
    };
    let page = browser.new_page().await?;
    let (user, password) = app.server.first_admin().cloned().unwrap();
    page.log_in(&app.base, &user, &password).await?;
    for (lang, words) in [
        ("zh", ["已开课", "已停课", "未开课"]),
        ("en", ["Held", "Cancelled", "Not held"]),
    ] {
        page.goto(&format!("{}/reports?{DAY}&lang={lang}", app.base))
            .await?;
        page.wait_until(
            "document.body.dataset.ready === 'reports' && document.querySelector('#rate tbody tr')",
            Duration::from_secs(30),
            "document.body.innerText",
        )
        .await?;
        let cells = page
            .eval("return [...document.querySelectorAll('#rate tbody tr:first-child td')].map((c) => c.innerText);")
            .await?;
        assert_eq!(
            cells.as_array().unwrap()[1..],
            [
                json!("3"),
                json!("1"),
                json!("0"),
                json!("2"),
                json!("1"),
                json!("50.0%")
            ],
            "{lang}: {cells}"
        );
        let shown = page
            .eval("return Object.fromEntries([...document.querySelectorAll('[data-outcome]')].map((e) => [e.dataset.lesson, e.innerText]));")
            .await?;
        assert_eq!(shown[held.to_string()], words[0], "{lang}: {shown}");
        assert_eq!(shown[cancelled.to_string()], words[1], "{lang}: {shown}");
        assert_eq!(shown[missed.to_string()], words[2], "{lang}: {shown}");
        // The chart draws the rate: a bar half as long as its background.
        let bar = page
            .eval("const r = document.querySelectorAll('#rate svg.chart rect'); return [Number(r[0].getAttribute('width')), Number(r[1].getAttribute('width'))];")
            .await?;
        assert_eq!(
            bar[1].as_f64().unwrap() * 2.0,
            bar[0].as_f64().unwrap(),
            "{bar}"
        );
        if lang == "zh" {
            page.screenshot_for_docs("report-lesson-rate").await?;
        }
        // The CSV links carry the page's window.
        let href = page
            .eval("return document.querySelector('#rate a[data-table]').getAttribute('href');")
            .await?;
        assert!(
            href.as_str().unwrap().contains("table=rate")
                && href.as_str().unwrap().contains("from=2026-09-07"),
            "{href}"
        );
    }
    page.close().await?;
    Ok(())
}
