//! The 巡课 patrol wall (issue 22 item 6) in headless Chromium: two counties each have a
//! lesson on; the first county's inspector opens /patrol and sees exactly the lesson of their
//! county (its classrooms by name, its mode and state), its picture plays (the teacher
//! publishes with the independent client), and clicking it watches it full size, with the
//! lesson's classroom cameras beside it (a sending class's picture plays). The
//! watcher is in nobody's presence list and cannot publish; the other county's lesson is on
//! the wall of a global admin, not on theirs.
//!
//! Run: `cargo test --test browser_patrol` (needs `chromium` and `chromium-driver`).

mod support;

use std::time::Duration;

use anyhow::Result;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use support::browser::Browser;
use support::recording::{joins_and_publishes, teacher_publishes};
use support::school::{at, fixture, lesson, App, Backend};

const WAIT: Duration = Duration::from_secs(60);

fn ids(v: &Value) -> Vec<i64> {
    v.as_array()
        .map(|a| a.iter().filter_map(|l| l["id"].as_i64()).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wall_shows_every_live_classroom_in_scope_and_none_outside() -> Result<()> {
    let Some(browser) = Browser::start_or_skip().await else {
        return Ok(());
    };
    let app = App::start(Backend::Sqlite).await.expect("server");
    let f = fixture(&app).await;
    let ours = lesson(&app, &f, "delivery", "08:00", "08:40").await;
    // Another county with its own lesson at the same time.
    let region = app
        .create(
            "/api/regions",
            json!({"province": "四川省", "city": "凉山彝族自治州", "county": "布拖县"}),
        )
        .await;
    let hub = app
        .create(
            "/api/schools",
            json!({"code": "BT01", "name": "布拖县中心校", "kind": "hub", "region_id": region}),
        )
        .await;
    let partner = app
        .create(
            "/api/schools",
            json!({"code": "BT02", "name": "布拖县特木里小学", "kind": "partner", "region_id": region}),
        )
        .await;
    let hub_room = app
        .create(
            "/api/classrooms",
            json!({"school_id": hub, "name": "布拖录播教室", "kind": "hub"}),
        )
        .await;
    let site = app
        .create(
            "/api/classrooms",
            json!({"school_id": partner, "name": "特木里四年级", "kind": "interactive"}),
        )
        .await;
    let teacher = app
        .create(
            "/api/teachers",
            json!({"code": "BT-T1", "name": "吉克老师", "school_id": hub}),
        )
        .await;
    app.create(
        "/api/pairings",
        json!({"hub_school_id": hub, "partner_school_id": partner, "subject": "英语",
               "grade": "三年级", "term": "2026秋"}),
    )
    .await;
    let theirs = app
        .create(
            "/api/lessons",
            json!({"mode": "master", "subject": "英语", "grade": "三年级",
                   "hub_teacher_id": teacher, "hub_classroom_id": hub_room,
                   "starts_at": at("08:00"), "ends_at": at("08:40"),
                   "sites": [{"classroom_id": site}]}),
        )
        .await;
    // A lesson later today is not on any wall yet.
    let later = lesson(&app, &f, "delivery", "10:00", "10:40").await;

    app.clock.set(at("08:00"));
    let publisher = teacher_publishes(&app, &f, ours, &format!("lesson-{ours}")).await;

    // The API: each sees their scope.
    let (s, v) = app
        .call(Some(&f.inspector_login), Method::GET, "/api/patrol", None)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(ids(&v), vec![ours], "{v}");
    let (_, v) = app
        .call(Some(&app.admin), Method::GET, "/api/patrol", None)
        .await;
    let mut all = ids(&v);
    all.sort_unstable();
    assert_eq!(all, vec![ours, theirs], "{v}");
    assert!(!all.contains(&later));
    // Out of scope: no patrol token for the other county's lesson.
    let (s, v) = app
        .call(
            Some(&f.inspector_login),
            Method::POST,
            &format!("/api/lessons/{theirs}/patrol"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    // The patrol token watches and never publishes: WHIP with it is refused.
    let (s, j) = app
        .call(
            Some(&f.inspector_login),
            Method::POST,
            &format!("/api/lessons/{ours}/patrol"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{j}");
    assert!(j["part"].as_str().unwrap().starts_with("p:"), "{j}");
    let whip = app
        .http
        .post(format!("{}/whip/lesson-{ours}", app.base))
        .bearer_auth(j["token"].as_str().unwrap())
        .header("content-type", "application/sdp")
        .body("v=0\r\n")
        .send()
        .await?;
    assert!(
        whip.status() == StatusCode::FORBIDDEN || whip.status() == StatusCode::UNAUTHORIZED,
        "a patrol token publishes: {}",
        whip.status()
    );

    // The page, as the county inspector.
    let page = browser.new_page().await?;
    page.log_in(&app.base, "inspector1", "password-123").await?;
    page.goto(&format!("{}/patrol", app.base)).await?;
    page.wait_until(
        "document.body.dataset.ready === 'patrol' && window.classrelay.lessons().length > 0",
        WAIT,
        "document.body.innerText",
    )
    .await?;
    let shown = page.eval("return window.classrelay.lessons();").await?;
    assert_eq!(shown, json!([ours]));
    let text = page
        .eval(&format!(
            "return document.querySelector('[data-lesson=\"{ours}\"]').innerText;"
        ))
        .await?;
    let text = text.as_str().unwrap_or("");
    for want in [
        "录播教室",
        "三年级1班",
        "三年级2班",
        "专递课堂",
        "上课中",
        "王老师",
    ] {
        assert!(text.contains(want), "{want} missing from the tile: {text}");
    }
    let body = page.eval("return document.body.innerText;").await?;
    assert!(
        !body.as_str().unwrap_or("").contains("布拖"),
        "another county's lesson on the wall: {body}"
    );
    // The picture plays, muted.
    page.wait_until(
        &format!("(() => {{ const v = document.querySelector('[data-lesson=\"{ours}\"] video'); return v && v.muted && v.videoWidth > 0; }})()"),
        WAIT,
        "window.classrelay.stats(window.classrelay.lessons()[0])",
    )
    .await?;
    page.screenshot_for_docs("patrol-wall").await?;
    // Watching, the inspector is nobody in the lesson: only the teacher is present.
    let (_, live) = app
        .call(
            Some(&app.admin),
            Method::GET,
            &format!("/api/lessons/{ours}/live"),
            None,
        )
        .await;
    let parts: Vec<&str> = live["present"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["part"].as_str())
        .collect();
    assert_eq!(parts, vec![format!("t:{}", f.teacher).as_str()], "{live}");
    // A classroom sends too (its kiosk, with the independent client).
    let class_a = joins_and_publishes(
        &app,
        &app.device(f.room_a).await,
        ours,
        &format!("lesson-{ours}"),
    )
    .await;
    // Click: full size.
    page.eval(&format!(
        "document.querySelector('[data-lesson=\"{ours}\"]').click(); return true;"
    ))
    .await?;
    page.wait_until(
        "!document.getElementById('focus').hidden && document.getElementById('focusVideo').videoWidth > 0",
        WAIT,
        "document.body.innerText",
    )
    .await?;
    assert_eq!(
        page.eval("return window.classrelay.focused();").await?,
        json!(ours)
    );
    // The full-size view shows the lesson's classroom cameras too (issue 22 item 7): one
    // picture per site, named; the sending class's plays.
    let a = f.room_a;
    assert_eq!(
        page.eval("return window.classrelay.focusRooms();").await?,
        json!([f.room_a, f.room_b, f.room_view])
    );
    page.wait_until(
        &format!(
            "(() => {{ const v = document.querySelector('#focusRooms [data-focus-classroom=\"{a}\"] video'); \
               return v && v.muted && v.videoWidth > 0; }})()"
        ),
        WAIT,
        &format!("window.classrelay.focusStats({a})"),
    )
    .await?;
    let rooms_text = page
        .eval("return document.getElementById('focusRooms').innerText;")
        .await?;
    for want in ["三年级1班", "三年级2班", "多媒体教室"] {
        assert!(
            rooms_text.as_str().unwrap_or("").contains(want),
            "{want} missing beside the full-size view: {rooms_text}"
        );
    }
    // Still watch-only and uncounted: present are the teacher and the sending class only.
    let (_, live) = app
        .call(
            Some(&app.admin),
            Method::GET,
            &format!("/api/lessons/{ours}/live"),
            None,
        )
        .await;
    let mut parts: Vec<String> = live["present"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["part"].as_str().map(String::from))
        .collect();
    parts.sort();
    let mut want = vec![format!("c:{}", f.room_a), format!("t:{}", f.teacher)];
    want.sort();
    assert_eq!(parts, want, "{live}");
    // Back to the wall: the classroom links close.
    page.eval("document.getElementById('focusClose').click(); return true;")
        .await?;
    page.wait_until(
        "document.getElementById('focus').hidden && window.classrelay.focusRooms().length === 0 && \
         document.querySelectorAll('#focusRooms figure').length === 0",
        WAIT,
        "document.body.innerText",
    )
    .await?;
    page.close().await?;
    class_a.close().await?;
    publisher.close().await?;
    Ok(())
}
