//! The admin pages (issue 22 item 1) in headless Chromium, as a county's administrator: edits a
//! timetable slot through its single-item form (the API then holds the change), revokes a
//! device with the two-click confirmation (the kiosk's token is refused as revoked at once),
//! generates the week's lessons from the timetable and sees the count and the lessons, cancels
//! one; every list searches and pages; a success message says what happened. A device's last
//! use shows in the devices list and its label is edited there. A cancelled lesson reads
//! 已停课 (never 已结束) in the lessons tab, on /today, /lesson, the teacher console and
//! the kiosk, whose full-screen state says so and never joins; a kiosk waiting for its next
//! lesson shows when the room opens, not the bell.
//!
//! Run: `cargo test --test browser_admin` (needs `chromium` and `chromium-driver`).

mod support;

use std::time::Duration;

use anyhow::Result;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use support::browser::{open_console, Browser, Page};
use support::school::{at, fixture, lesson, pair, App, Backend};

const WAIT: Duration = Duration::from_secs(60);

fn kind(v: &Value) -> &str {
    v["type"]
        .as_str()
        .unwrap_or("")
        .trim_start_matches("urn:classrelay:problem:")
}

/// Opens tab `hash` and waits until it is drawn.
async fn tab(page: &Page, app: &App, hash: &str) -> Result<()> {
    let name = hash.split('?').next().unwrap_or(hash);
    page.goto(&format!("{}/admin#{hash}", app.base)).await?;
    // A hash change on the same page does not reload it: ask for a fresh draw.
    page.eval("location.reload(); return true;").await?;
    page.wait_until(
        &format!("document.body.dataset.ready === '{name}' && document.readyState === 'complete'"),
        WAIT,
        "document.body.innerText",
    )
    .await?;
    Ok(())
}

/// Waits for the success line and returns it.
async fn done(page: &Page) -> Result<String> {
    let v = page
        .wait_until(
            "document.getElementById('done') && document.getElementById('done').innerText",
            WAIT,
            "document.body.innerText",
        )
        .await?;
    Ok(v.as_str().unwrap_or("").to_string())
}

/// Clicks a two-click button twice (arming, then confirming).
async fn confirm(page: &Page, selector: &str) -> Result<()> {
    let armed = page
        .eval_with(
            "document.getElementById('done')?.remove();
             const b = document.querySelector(arguments[0]); b.click(); return [b.dataset.armed, b.innerText];",
            vec![json!(selector)],
        )
        .await?;
    assert_eq!(armed[0], "1", "the first click only arms: {armed}");
    assert_eq!(armed[1], "再点一次确认", "{armed}");
    page.eval_with(
        "document.querySelector(arguments[0]).click(); return true;",
        vec![json!(selector)],
    )
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_county_admin_edits_a_slot_revokes_a_device_and_generates_lessons() -> Result<()> {
    let Some(browser) = Browser::start_or_skip().await else {
        return Ok(());
    };
    let app = App::start(Backend::Sqlite).await.expect("server");
    let f = fixture(&app).await;
    pair(&app, &f).await;
    app.create(
        "/api/users",
        json!({"username": "county", "display_name": "县电教馆", "role": "admin",
               "password": "password-123", "scope": "county", "region_id": f.region}),
    )
    .await;
    // Monday period 1 in the term.
    let slot = app
        .create(
            "/api/slots",
            json!({"term_id": f.term, "weekday": 1, "period": 1, "starts": "08:00", "ends": "08:40",
                   "subject": "英语", "grade": "三年级", "mode": "delivery",
                   "hub_teacher_id": f.teacher, "hub_classroom_id": f.hub_room,
                   "sites": [{"classroom_id": f.room_a}]}),
        )
        .await;
    let kiosk = app.device(f.room_a).await;
    let (s, _) = app.call(Some(&kiosk), Method::GET, "/api/me", None).await;
    assert_eq!(s, StatusCode::OK);

    let page = browser.new_page().await?;
    page.log_in(&app.base, "county", "password-123").await?;

    // 1. The slot: edit through its form.
    tab(&page, &app, "timetable").await?;
    page.eval_with(
        "document.querySelector(`#slotList tr[data-id=\"${arguments[0]}\"] [data-act=edit]`).click(); return true;",
        vec![json!(slot)],
    )
    .await?;
    page.eval(
        "const f = document.querySelector('#editor form');
         f.querySelector('[name=ends]').value = '08:45';
         f.querySelector('[name=subject]').value = '英语口语';
         f.requestSubmit(); return true;",
    )
    .await?;
    assert_eq!(done(&page).await?, "已保存");
    let (_, v) = app
        .call(
            Some(&app.admin),
            Method::GET,
            &format!("/api/slots/{slot}"),
            None,
        )
        .await;
    assert_eq!(
        (v["ends"].as_str(), v["subject"].as_str()),
        (Some("08:45"), Some("英语口语")),
        "{v}"
    );
    let grid = page
        .eval_with(
            "return document.querySelector(`[data-slot=\"${arguments[0]}\"]`).innerText;",
            vec![json!(slot)],
        )
        .await?;
    assert!(
        grid.as_str().unwrap_or("").contains("08:00–08:45"),
        "{grid}"
    );

    // 2. The device: listed, revoked with two clicks; the kiosk is refused at once.
    tab(&page, &app, "devices").await?;
    let rows = page
        .eval("return [...document.querySelectorAll('#deviceList tbody tr')].map((r) => r.innerText);")
        .await?;
    assert_eq!(rows.as_array().unwrap().len(), 1, "{rows}");
    assert!(
        rows[0].as_str().unwrap().contains("三年级1班")
            && rows[0].as_str().unwrap().contains("讲台电脑"),
        "{rows}"
    );
    // Last seen (issue 22 item 1): the kiosk used its token at 07:00; the list says when.
    let seen = page
        .eval("const c = document.querySelector('#deviceList [data-last-seen]'); return [c.dataset.lastSeen, c.innerText];")
        .await?;
    assert_eq!(seen[0], at("07:00").to_string(), "{seen}");
    let seen_text = seen[1].as_str().unwrap_or("");
    assert!(
        !seen_text.is_empty() && seen_text != "尚未使用" && seen_text.contains(':'),
        "a time: {seen}"
    );
    let head = page
        .eval("return document.querySelector('#deviceList thead').innerText;")
        .await?;
    assert!(head.as_str().unwrap_or("").contains("最近在线"), "{head}");
    // Relabel it through its form: the API holds the new label, the list shows it.
    page.eval("document.querySelector('#deviceList [data-act=rename]').click(); return true;")
        .await?;
    page.eval(
        "const f = document.querySelector('#editor form');
         f.querySelector('[name=label]').value = '教室一体机';
         f.requestSubmit(); return true;",
    )
    .await?;
    assert_eq!(done(&page).await?, "已保存");
    page.wait_until(
        "document.querySelector('#deviceList tbody tr').innerText.includes('教室一体机')",
        WAIT,
        "document.body.innerText",
    )
    .await?;
    let (_, me) = app.call(Some(&kiosk), Method::GET, "/api/me", None).await;
    assert_eq!(me["label"], "教室一体机", "{me}");
    confirm(&page, "#deviceList tbody tr button.danger").await?;
    assert_eq!(done(&page).await?, "已吊销，该设备立即下线");
    let (s, v) = app.call(Some(&kiosk), Method::GET, "/api/me", None).await;
    assert_eq!(
        (s, kind(&v)),
        (StatusCode::UNAUTHORIZED, "device-revoked"),
        "{v}"
    );
    let state = page
        .eval("return document.querySelector('#deviceList [data-revoked]').dataset.revoked;")
        .await?;
    assert_eq!(state, "1");

    // 3. Lessons: generate the week from the timetable.
    tab(&page, &app, "manage?from=2026-09-07&to=2026-09-13").await?;
    page.eval(
        "const f = document.getElementById('generate');
         f.querySelector('[name=from]').value = '2026-09-07';
         f.querySelector('[name=to]').value = '2026-09-13';
         f.requestSubmit(); return true;",
    )
    .await?;
    assert_eq!(done(&page).await?, "已生成 1 节课");
    let (_, ls) = app
        .call(
            Some(&app.admin),
            Method::GET,
            "/api/lessons?from=2026-09-07&to=2026-09-13",
            None,
        )
        .await;
    let ls = ls.as_array().unwrap().clone();
    assert_eq!(ls.len(), 1, "{ls:?}");
    assert_eq!(ls[0]["slot_id"], slot);
    assert_eq!(ls[0]["subject"], "英语口语");
    let id = ls[0]["id"].as_i64().unwrap();
    page.wait_until(
        &format!("document.querySelector('#lessonList [data-lesson=\"{id}\"]')"),
        WAIT,
        "document.body.innerText",
    )
    .await?;
    // Search narrows the list; nothing matches nonsense.
    let count = page
        .eval(
            "const s = document.querySelector('#lessonList input.search'); s.value = '没有这门课';
             s.dispatchEvent(new Event('input'));
             return document.querySelectorAll('#lessonList tbody tr').length;",
        )
        .await?;
    assert_eq!(count, 0);
    page.eval(
        "const s = document.querySelector('#lessonList input.search'); s.value = '口语';
         s.dispatchEvent(new Event('input')); return true;",
    )
    .await?;
    // Cancel it: two clicks; it is then ended and the reports count it as cancelled.
    confirm(
        &page,
        &format!("#lessonList tr[data-id=\"{id}\"] button.danger"),
    )
    .await?;
    assert_eq!(done(&page).await?, "已停课（统计报表中计为取消）");
    let (_, r) = app
        .call(
            Some(&app.admin),
            Method::GET,
            "/api/reports?from=2026-09-07&to=2026-09-13",
            None,
        )
        .await;
    assert_eq!(r["rate"][0]["cancelled"], 1, "{r}");
    page.close().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_lesson_reads_cancelled_everywhere_and_the_kiosk_stays_out() -> Result<()> {
    let Some(browser) = Browser::start_or_skip().await else {
        return Ok(());
    };
    let app = App::start(Backend::Sqlite).await.expect("server");
    let f = fixture(&app).await;
    let off = lesson(&app, &f, "delivery", "08:00", "08:40").await;
    let next = lesson(&app, &f, "delivery", "10:00", "10:40").await;
    let page = browser.new_page().await?;
    let (user, password) = app.server.first_admin().cloned().expect("the first admin");
    page.log_in(&app.base, &user, &password).await?;

    // The admin cancels it in the lessons tab: two clicks; the row says 已停课.
    tab(&page, &app, "manage?from=2026-09-07&to=2026-09-07").await?;
    confirm(
        &page,
        &format!("#lessonList tr[data-id=\"{off}\"] button.danger"),
    )
    .await?;
    assert_eq!(done(&page).await?, "已停课（统计报表中计为取消）");
    let shown = page
        .wait_until(
            &format!(
                "(() => {{ const c = document.querySelector('#lessonList [data-lesson=\"{off}\"]'); \
                   return c && c.innerText === '已停课' && c.innerText; }})()"
            ),
            WAIT,
            "document.getElementById('lessonList').innerText",
        )
        .await?;
    assert_eq!(shown, "已停课");
    // Today's tab and /today.
    tab(&page, &app, "lessons").await?;
    let state = page
        .eval_with(
            "return document.querySelector(`[data-lesson=\"${arguments[0]}\"]`).innerText;",
            vec![json!(off)],
        )
        .await?;
    assert_eq!(state, "已停课");
    for (lang, want) in [("zh", "已停课"), ("en", "Cancelled")] {
        page.goto(&format!("{}/today?lang={lang}", app.base))
            .await?;
        let cell = page
            .wait_until(
                &format!(
                    "(() => {{ const r = document.querySelector('#lessons tr[data-lesson=\"{off}\"]'); \
                       return r && r.dataset.state === 'cancelled' && r.querySelector('.state').innerText; }})()"
                ),
                WAIT,
                "document.body.innerText",
            )
            .await?;
        assert_eq!(cell, want, "{lang}");
    }
    page.goto(&format!("{}/today?lang=zh", app.base)).await?;
    // The /lesson page.
    page.goto(&format!("{}/lesson?id={off}", app.base)).await?;
    let state = page
        .wait_until(
            "document.getElementById('state').dataset.state && document.getElementById('state').innerText",
            WAIT,
            "document.body.innerText",
        )
        .await?;
    assert_eq!(state, "已停课");
    page.close().await?;

    // The teacher's console: 已停课, nothing started.
    let console = open_console(&browser, &app.base, "wang", off).await?;
    let said = console
        .wait_until(
            "document.getElementById('lessonState').innerText === '已停课' && \
             !document.getElementById('ended').hidden && document.getElementById('ended').innerText",
            WAIT,
            "[window.classrelay.log, document.body.innerText]",
        )
        .await?;
    assert_eq!(said, "已停课");
    assert_eq!(
        console.eval_expr("window.classrelay.cameraStarted").await?,
        false
    );
    console.close().await?;

    // The kiosk at its time: a full-screen dark state that says so and names the next
    // lesson by when the room opens (09:50), and it never joins.
    app.clock.set(at("07:55"));
    let kiosk = browser.new_page().await?;
    kiosk
        .goto(&format!(
            "{}/classroom?device={}&width=320&height=240",
            app.base,
            app.device(f.room_a).await
        ))
        .await?;
    let text = kiosk
        .wait_until(
            "window.classrelay.screen === 'cancelled' && !document.getElementById('cancelled').hidden && \
             document.getElementById('cancelled').innerText",
            WAIT,
            "[window.classrelay.log, document.body.innerText]",
        )
        .await?;
    let text = text.as_str().unwrap_or("");
    for want in [
        "本节课已停课",
        "08:00–08:40",
        "09:50 开放进入",
        "10:00 上课",
    ] {
        assert!(text.contains(want), "{want} missing: {text}");
    }
    assert!(!text.contains("已结束"), "{text}");
    let (_, live) = app
        .call(
            Some(&app.admin),
            Method::GET,
            &format!("/api/lessons/{off}/live"),
            None,
        )
        .await;
    assert_eq!(
        live["present"],
        json!([]),
        "the kiosk joined a cancelled lesson: {live}"
    );
    assert_eq!(
        kiosk.eval_expr("window.classrelay.lesson").await?,
        Value::Null
    );
    // After it, waiting for the next one: the screen says when the room opens, not the bell
    // as if it were the time to come.
    app.clock.set(at("08:50"));
    let text = kiosk
        .wait_until(
            "window.classrelay.screen === 'waiting' && document.getElementById('nextLesson').innerText",
            WAIT,
            "[window.classrelay.log, document.body.innerText]",
        )
        .await?;
    assert_eq!(
        text, "下一节：09:50 开放进入 · 英语 · 三年级（10:00 上课）",
        "lesson {next}"
    );
    kiosk.close().await?;
    Ok(())
}
