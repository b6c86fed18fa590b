//! The school pages in headless Chromium, as a 同步课堂 runs: the teacher logs in on /login and
//! teaches from /teach; classroom A runs the kiosk page (device token, no lesson given: it
//! finds the lesson in the timetable) and classroom B opens the lesson's classroom page. Each
//! classroom decodes the teacher; the teacher decodes both classes; the big screen puts A's
//! picture on B's page; ending the lesson ends every page's media.
//!
//! The classes are told apart by their cameras' shape: A captures 4:3 (320×240), B and the
//! teacher 16:9. Chromium may scale a stream down under load but keeps its aspect ratio.
//!
//! Run: `cargo test --test browser_lessons` (needs `chromium` and `chromium-driver`).

mod support;

use std::time::Duration;

use anyhow::Result;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use support::browser::{num, teacher_console, Browser, Page};
use support::school::{at, fixture, lesson, App, Backend};

const WAIT: Duration = Duration::from_secs(60);

/// The first inbound video entry with `role` in a `summarizeStats` value.
fn video<'a>(stats: &'a Value, role: &str) -> Option<&'a Value> {
    stats["inboundVideo"]
        .as_array()?
        .iter()
        .find(|v| v["role"] == role)
}

fn decoding(stats: &Value, role: &str, frames: f64) -> bool {
    video(stats, role).is_some_and(|v| num(v, "/framesDecoded") > frames)
}

fn four_by_three(v: &Value) -> bool {
    let (w, h) = (num(v, "/frameWidth"), num(v, "/frameHeight"));
    w > 0.0 && (w * 3.0 - h * 4.0).abs() < 1.0
}

async fn stats(page: &Page) -> Result<Value> {
    page.eval(
        "return window.classrelay && window.classrelay.stats ? window.classrelay.stats() : null;",
    )
    .await
}

/// Polls the page's stats until `pred` holds; the error carries the stats and the page log.
async fn wait_stats(page: &Page, what: &str, pred: impl Fn(&Value) -> bool) -> Result<Value> {
    let end = std::time::Instant::now() + WAIT;
    loop {
        let s = stats(page).await?;
        if !s.is_null() && pred(&s) {
            return Ok(s);
        }
        if std::time::Instant::now() >= end {
            anyhow::bail!(
                "timed out waiting for {what}; stats: {}\nlog:\n{}",
                serde_json::to_string_pretty(&s).unwrap_or_default(),
                page.page_log().await
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_class_in_three_browsers() -> Result<()> {
    let Some(browser) = Browser::start_or_skip().await else {
        return Ok(());
    };
    let app = App::start(Backend::Sqlite).await.expect("server");
    let f = fixture(&app).await;
    let id = lesson(&app, &f, "sync", "07:30", "08:10").await;
    app.clock.set(at("07:35")); // open: 10 minutes before the bell
    let (dev_a, dev_b) = (app.device(f.room_a).await, app.device(f.room_b).await);

    // The teacher logs in on the page and lands on today's lessons.
    let size = ["--window-size=1280,800"];
    let teacher = browser.new_page_with_flags(&size).await?;
    teacher.goto(&format!("{}/login", app.base)).await?;
    teacher
        .eval(
            "document.getElementById('username').value = 'wang';
             document.getElementById('password').value = 'wrong-password';
             document.getElementById('submit').click(); return true;",
        )
        .await?;
    let err = teacher
        .wait_until(
            "!document.getElementById('error').hidden && document.getElementById('error').textContent",
            WAIT,
            "document.body.innerText",
        )
        .await?;
    // Worded from the message table (the status only in the tooltip), not the server's detail.
    let err = err.as_str().unwrap_or("");
    assert!(
        err.contains("用户名或密码错误") || err.contains("Wrong username or password"),
        "{err}"
    );
    let tip = teacher
        .eval_expr("document.getElementById('error').title")
        .await?;
    assert!(tip.as_str().unwrap_or("").contains("401"), "{tip}");
    teacher
        .eval(
            "document.getElementById('password').value = 'password-123';
             document.getElementById('submit').click(); return true;",
        )
        .await?;
    teacher
        .wait_until(
            "location.pathname === '/today' && document.querySelector(`#now a.button`)",
            WAIT,
            "document.body.innerText",
        )
        .await?;
    let href = teacher
        .eval_expr("document.querySelector('#now a.button').getAttribute('href')")
        .await?;
    assert_eq!(
        href,
        format!("/teach?lesson={id}"),
        "the hub teacher teaches"
    );
    teacher
        .goto(&format!(
            "{}/teach?lesson={id}&screen=1&width=640&height=360",
            app.base
        ))
        .await?;
    teacher.wait_for_state("connected", WAIT).await?;

    // A: the kiosk (no lesson in the address: it finds the current one); B: the lesson page.
    let a = browser.new_page_with_flags(&size).await?;
    a.goto(&format!(
        "{}/classroom?device={dev_a}&width=320&height=240",
        app.base
    ))
    .await?;
    let b = browser.new_page_with_flags(&size).await?;
    b.goto(&format!(
        "{}/classroom?device={dev_b}&lesson={id}&width=640&height=360",
        app.base
    ))
    .await?;
    assert!(
        !a.eval_expr("location.search")
            .await?
            .as_str()
            .unwrap_or("")
            .contains("crd_"),
        "the kiosk keeps its device token out of the address bar"
    );
    for (page, name) in [(&a, "A"), (&b, "B")] {
        page.wait_for_state("connected", WAIT).await?;
        let s = wait_stats(page, &format!("{name} decoding the teacher"), |s| {
            decoding(&s["hub"], "camera", 10.0) && decoding(&s["hub"], "screen", 10.0)
        })
        .await?;
        let cam = video(&s["hub"], "camera").unwrap();
        assert!(!four_by_three(cam), "{name} sees the teacher (16:9): {cam}");
        page.wait_until(
            "window.classrelay.publishing === 'connected'",
            WAIT,
            "window.classrelay.log",
        )
        .await
        .map_err(|e| anyhow::anyhow!("{name} publishes its class in 同步课堂: {e}"))?;
    }
    assert_eq!(a.eval_expr("window.classrelay.lesson").await?, json!(id));
    // B's link to the hub drops (as when a rural line goes down): the page shows it is
    // reconnecting, joins again and decodes the teacher again.
    b.eval("window.classrelay.links.hub.retry(); return window.classrelay.state;")
        .await?;
    b.wait_until(
        "document.body.dataset.conn === 'reconnecting'",
        WAIT,
        "window.classrelay.log",
    )
    .await?;
    b.wait_for_state("connected", WAIT).await?;
    wait_stats(&b, "B decoding the teacher after reconnecting", |s| {
        decoding(&s["hub"], "camera", 10.0)
    })
    .await?;
    assert!(
        b.eval_expr("window.classrelay.log.some(l => l.includes('[hub] negotiated'))")
            .await?
            == true
    );
    // The teacher shares the courseware, so the classrooms show it large.
    b.wait_until(
        "document.getElementById('stage').classList.contains('has-screen')",
        WAIT,
        "window.classrelay.log",
    )
    .await?;

    // Recorded from the bell (the default): 录制中 on the classroom page and the console;
    // the teacher stops it and the mark goes everywhere, then starts it again.
    let mark = |on: bool| {
        format!(
            "(() => {{ const m = document.getElementById('recMark'); \
             return m.hidden === {} && (m.hidden || (m.textContent === '录制中' && m.offsetWidth > 0)); }})()",
            !on
        )
    };
    for (page, name) in [(&b, "B"), (&teacher, "the teacher")] {
        page.wait_until(&mark(true), WAIT, "document.body.innerText")
            .await
            .map_err(|e| anyhow::anyhow!("{name} shows 录制中: {e}"))?;
    }
    teacher
        .eval("document.getElementById('recToggle').click(); return true;")
        .await?;
    for (page, name) in [(&b, "B"), (&teacher, "the teacher")] {
        page.wait_until(&mark(false), WAIT, "document.body.innerText")
            .await
            .map_err(|e| anyhow::anyhow!("{name} drops 录制中: {e}"))?;
    }
    teacher
        .eval("document.getElementById('recToggle').click(); return true;")
        .await?;
    b.wait_until(&mark(true), WAIT, "document.body.innerText")
        .await
        .map_err(|e| anyhow::anyhow!("B shows 录制中 again: {e}"))?;

    // The teacher decodes both classes, each in its own tile.
    let s = wait_stats(&teacher, "the teacher decoding both classes", |s| {
        [f.room_a, f.room_b]
            .iter()
            .all(|c| decoding(&s["classes"][c.to_string()], "camera", 10.0))
    })
    .await?;
    assert!(four_by_three(
        video(&s["classes"][f.room_a.to_string()], "camera").unwrap()
    ));
    assert!(!four_by_three(
        video(&s["classes"][f.room_b.to_string()], "camera").unwrap()
    ));
    // Each class's tile shows its link quality from the server's `quality` events.
    let q = teacher
        .wait_until(
            &format!("window.classrelay.classes()[{}].quality", f.room_a),
            WAIT,
            "window.classrelay.classes()",
        )
        .await?;
    // On loopback the link is good (nothing lost, a round trip of a few ms).
    assert_eq!(q["grade"], "good", "{q}");
    let tiles = teacher.eval_expr("window.classrelay.classes()").await?;
    assert_eq!(tiles[f.room_a.to_string()]["name"], "三年级1班", "{tiles}");

    // A raises a hand; the teacher's queue shows it.
    a.eval("return window.classrelay.raiseHand(true).then(() => true);")
        .await?;
    teacher
        .wait_until(
            &format!("window.classrelay.classes()[{}].hand", f.room_a),
            WAIT,
            "window.classrelay.classes()",
        )
        .await?;

    // Nobody on the big screen yet; then the teacher puts A there.
    assert_eq!(
        b.eval_expr("document.getElementById('spot').hidden")
            .await?,
        true
    );
    teacher
        .eval_with(
            "return window.classrelay.spotlight(arguments[0]).then(() => true);",
            vec![json!(f.room_a)],
        )
        .await?;
    b.wait_until(
        "!document.getElementById('spot').hidden",
        WAIT,
        "window.classrelay.spotlight",
    )
    .await?;
    let s = wait_stats(&b, "A's picture on B's big screen", |s| {
        video(&s["spotlight"], "camera")
            .is_some_and(|v| num(v, "/framesDecoded") > 5.0 && four_by_three(v))
    })
    .await?;
    eprintln!(
        "B's big screen: {}",
        video(&s["spotlight"], "camera").unwrap()
    );
    if let Some(dir) = std::env::var_os("CLASSRELAY_SCREENSHOTS") {
        let dir = std::path::PathBuf::from(dir);
        teacher.screenshot(&dir.join("teach.png")).await?;
        b.screenshot(&dir.join("classroom-b.png")).await?;
    }
    assert_eq!(
        a.eval_expr("document.getElementById('spot').hidden")
            .await?,
        true,
        "A does not see itself on its own big screen"
    );

    // The teacher ends the lesson: every page stops its media.
    teacher
        .eval("return window.classrelay.end().then(() => true);")
        .await?;
    for (page, name) in [(&teacher, "teacher"), (&a, "A"), (&b, "B")] {
        page.wait_until(
            "window.classrelay.lessonState === 'ended'",
            WAIT,
            "window.classrelay.log",
        )
        .await
        .map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
    }
    b.wait_until(
        "!document.getElementById('ended').hidden",
        WAIT,
        "document.body.innerText",
    )
    .await?;
    let (st, v) = app
        .call(
            Some(&f.teacher_login),
            Method::GET,
            &format!("/api/lessons/{id}/live"),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    // The kiosk goes back to waiting for the next lesson.
    a.wait_until(
        "!document.getElementById('waiting').hidden",
        WAIT,
        "document.body.innerText",
    )
    .await?;
    eprintln!("live after the end: {v}");
    for p in [teacher, a, b] {
        p.close().await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_are_served_in_chinese_and_english() -> Result<()> {
    let Some(browser) = Browser::start_or_skip().await else {
        return Ok(());
    };
    let app = App::start(Backend::Sqlite).await.expect("server");
    let page = browser.new_page().await?;
    // Not logged in: /today sends the browser to /login and back afterwards.
    page.goto(&format!("{}/today", app.base)).await?;
    page.wait_until("location.pathname === '/login'", WAIT, "location.href")
        .await?;
    assert_eq!(
        page.eval_expr("document.querySelector('h1').textContent")
            .await?,
        "登录"
    );
    page.goto(&format!("{}/login?lang=en&next=/admin", app.base))
        .await?;
    assert_eq!(
        page.eval_expr("document.querySelector('h1').textContent")
            .await?,
        "Log in"
    );
    let (user, password) = app.server.first_admin().cloned().unwrap();
    page.eval_with(
        "document.getElementById('username').value = arguments[0];
         document.getElementById('password').value = arguments[1];
         document.getElementById('submit').click(); return true;",
        vec![json!(user), json!(password)],
    )
    .await?;
    page.wait_until(
        "location.pathname === '/admin' && document.body.dataset.ready",
        WAIT,
        "document.body.innerText",
    )
    .await?;
    // English is remembered; the admin pages list what the API holds.
    let f = fixture(&app).await;
    page.goto(&format!("{}/admin#schools", app.base)).await?;
    page.wait_until(
        "document.body.dataset.ready === 'schools'",
        WAIT,
        "document.body.innerText",
    )
    .await?;
    let text = page.eval_expr("document.body.innerText").await?;
    let text = text.as_str().unwrap_or("");
    assert!(
        text.contains("Schools") && text.contains("成都七中"),
        "{text}"
    );
    // A bad CSV imports nothing and the page names the row and column.
    page.goto(&format!("{}/admin#pairings", app.base)).await?;
    page.wait_until(
        "document.body.dataset.ready === 'pairings'",
        WAIT,
        "document.body.innerText",
    )
    .await?;
    let before = app
        .call(Some(&app.admin), Method::GET, "/api/pairings", None)
        .await
        .1;
    page.eval(
        "const csv = 'hub_school_code,partner_school_code,subject,grade,term\\nHUB01,ZJ01,数学,三年级,2026秋\\nHUB01,NOPE,数学,三年级,2026秋\\n';
         const dt = new DataTransfer();
         dt.items.add(new File([csv], 'pairings.csv', { type: 'text/csv' }));
         const input = document.querySelector('input[type=file]');
         input.files = dt.files;
         [...document.querySelectorAll('button')].find(b => b.textContent === 'Import CSV').click();
         return true;",
    )
    .await?;
    let errors = page
        .wait_until(
            "document.querySelector('.csv-result table') && document.querySelector('.csv-result table').innerText",
            WAIT,
            "document.body.innerText",
        )
        .await?;
    let errors = errors.as_str().unwrap_or("");
    assert!(
        errors.contains("3") && errors.contains("partner_school_code"),
        "row 3, the bad column: {errors}"
    );
    // The problem worded in the page's language (English here), the status in the tooltip.
    assert!(page
        .eval_expr("document.getElementById('error').textContent")
        .await?
        .as_str()
        .unwrap_or("")
        .contains("no row was imported"));
    assert!(page
        .eval_expr("document.getElementById('error').title")
        .await?
        .as_str()
        .unwrap_or("")
        .contains("422"));
    let after = app
        .call(Some(&app.admin), Method::GET, "/api/pairings", None)
        .await
        .1;
    assert_eq!(before, after, "nothing half-imported");
    let _ = f;
    page.close().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn master_class_site_speaks_only_while_granted() -> Result<()> {
    let Some(browser) = Browser::start_or_skip().await else {
        return Ok(());
    };
    let app = App::start(Backend::Sqlite).await.expect("server");
    let f = fixture(&app).await;
    let id = lesson(&app, &f, "master", "07:30", "08:10").await;
    app.clock.set(at("07:35"));
    let teacher = teacher_console(&browser, &app, id).await?;
    let a = browser.new_page().await?;
    a.goto(&format!(
        "{}/classroom?device={}&lesson={id}&width=320&height=240",
        app.base,
        app.device(f.room_a).await
    ))
    .await?;
    a.wait_for_state("connected", WAIT).await?;
    wait_stats(&a, "A decoding the teacher", |s| {
        decoding(&s["hub"], "camera", 10.0)
    })
    .await?;
    assert_eq!(
        a.eval_expr("window.classrelay.publishing").await?,
        Value::Null,
        "a viewing site does not publish"
    );
    assert_eq!(
        a.eval_expr("document.getElementById('selfTile').hidden")
            .await?,
        true
    );

    // A raises its hand; the teacher grants it: A's page starts publishing and the teacher
    // decodes A.
    a.eval("return window.classrelay.raiseHand(true).then(() => true);")
        .await?;
    teacher
        .wait_until(
            &format!("window.classrelay.classes()[{}].hand", f.room_a),
            WAIT,
            "window.classrelay.classes()",
        )
        .await?;
    teacher
        .eval_with(
            "return window.classrelay.grant(arguments[0], true).then(() => true);",
            vec![json!(f.room_a)],
        )
        .await?;
    a.wait_until(
        "window.classrelay.publishing === 'connected'",
        WAIT,
        "window.classrelay.log",
    )
    .await?;
    wait_stats(&teacher, "the teacher decoding A", |s| {
        decoding(&s["classes"][f.room_a.to_string()], "camera", 10.0)
    })
    .await?;
    assert_eq!(
        a.eval_expr("window.classrelay.hand").await?,
        false,
        "the grant lowers the hand"
    );

    // Revoked: A's page stops publishing and the teacher's tile for A closes.
    teacher
        .eval_with(
            "return window.classrelay.grant(arguments[0], false).then(() => true);",
            vec![json!(f.room_a)],
        )
        .await?;
    a.wait_until(
        "window.classrelay.publishing === null",
        WAIT,
        "window.classrelay.log",
    )
    .await?;
    teacher
        .wait_until(
            &format!("window.classrelay.classes()[{}].state === 'idle'", f.room_a),
            WAIT,
            "window.classrelay.classes()",
        )
        .await?;
    let live = app
        .call(
            Some(&f.teacher_login),
            Method::GET,
            &format!("/api/lessons/{id}/live"),
            None,
        )
        .await
        .1;
    let a_part = format!("c:{}", f.room_a);
    assert!(
        live["present"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["part"] != a_part.as_str() || p["publishing"] == 0),
        "{live}"
    );
    teacher.close().await?;
    a.close().await?;
    Ok(())
}
