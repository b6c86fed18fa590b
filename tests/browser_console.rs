//! The teacher console, the classroom page and attendance in headless Chromium (issue 22
//! items 3, 4 and 8), asserting what the pages show and what the media does: presence as
//! "watching" or "sending" in every mode, mute-all and per-class mute measured as the energy
//! of the audio the hub receives, a raised hand acknowledged by the teacher, the lesson clock,
//! attendance that counts classrooms (stays stored, minutes present, sites present / expected),
//! the 名师课堂 floor seen and heard by another site (two granted sites at once: a third site
//! decodes and hears both), a console that refuses a teacher who is
//! not the lesson's before any camera starts, the classroom's "waiting for the teacher", "on
//! air", its preview beside the courseware, and a revoked kiosk's full-screen state.
//! Must never pass on a page that merely loads: each step waits for what the page shows.
//!
//! Run: `cargo test --test browser_console` (needs `chromium` and `chromium-driver`).

mod support;

use std::time::Duration;

use anyhow::Result;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use support::browser::{num, open_console, teacher_console, Browser, Page};
use support::school::{at, fixture, lesson, App, Backend};

const WAIT: Duration = Duration::from_secs(60);

/// Classroom `room`'s page for lesson `id`, signed in with a new device token of the room.
async fn class_page(browser: &Browser, app: &App, room: i64, id: i64) -> Result<Page> {
    let page = browser.new_page().await?;
    page.goto(&format!(
        "{}/classroom?device={}&lesson={id}&width=320&height=240",
        app.base,
        app.device(room).await
    ))
    .await?;
    Ok(page)
}

/// How much audio energy the console received from each class in `ms` of real time (the
/// measure of a mute is a window of time: the fake microphone beeps about once a second).
async fn energy_over(teacher: &Page, rooms: &[i64], ms: u64) -> Result<Vec<f64>> {
    let v = teacher
        .eval_with(
            "const [rooms, ms] = arguments;
             const energy = async () => {
               const s = await window.classrelay.stats();
               return rooms.map((r) => {
                 const c = s.classes[String(r)];
                 return c && c.inboundAudio[0] ? c.inboundAudio[0].totalAudioEnergy : 0;
               });
             };
             return (async () => {
               const before = await energy();
               await new Promise((r) => setTimeout(r, ms));
               const after = await energy();
               return after.map((e, i) => e - before[i]);
             })();",
            vec![json!(rooms), json!(ms)],
        )
        .await?;
    Ok(v.as_array()
        .map(|a| a.iter().map(|x| x.as_f64().unwrap_or(0.0)).collect())
        .unwrap_or_default())
}

/// The attendance of lesson `id` as the API answers it to its teacher.
async fn attendance(app: &App, teacher: &str, id: i64) -> Value {
    let (s, v) = app
        .call(
            Some(teacher),
            Method::GET,
            &format!("/api/lessons/{id}/attendance"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v
}

fn site(att: &Value, room: i64) -> &Value {
    att["sites"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["classroom_id"] == room))
        .unwrap_or(&Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_console_shows_presence_mutes_classes_and_counts_attendance() -> Result<()> {
    let Some(browser) = Browser::start_or_skip().await else {
        return Ok(());
    };
    let app = App::start(Backend::Sqlite).await.expect("server");
    let f = fixture(&app).await;
    let id = lesson(&app, &f, "delivery", "07:30", "08:10").await;
    app.clock.set(at("07:35"));
    let teacher = teacher_console(&browser, &app, id).await?;
    // The lesson clock: the slot's end, and the time left by the server's clock.
    let clock = teacher
        .wait_until(
            "document.getElementById('clockLeft').textContent && document.getElementById('clock').textContent",
            WAIT,
            "document.getElementById('clock').outerHTML",
        )
        .await?;
    let clock = clock.as_str().unwrap_or("");
    assert!(clock.contains("下课 08:10"), "{clock}");
    assert!(
        clock.contains("还剩 3"),
        "35 minutes left at 07:35: {clock}"
    );

    let (a_id, b_id) = (f.room_a, f.room_b);
    let a = class_page(&browser, &app, a_id, id).await?;
    let b = class_page(&browser, &app, b_id, id).await?;
    for p in [&a, &b] {
        p.wait_until(
            "window.classrelay.publishing === 'connected' && window.classrelay.onAir",
            WAIT,
            "window.classrelay.log",
        )
        .await?;
    }
    // Both classes send: present and "sending" on the console, in words.
    teacher
        .wait_until(
            &format!(
                "window.classrelay.classes()[{a_id}].presence === 'publishing' && \
                 window.classrelay.classes()[{b_id}].presence === 'publishing'"
            ),
            WAIT,
            "window.classrelay.classes()",
        )
        .await?;
    let tile = teacher
        .eval_expr(&format!(
            "document.querySelector('[data-classroom=\"{a_id}\"]').innerText"
        ))
        .await?;
    assert!(
        tile.as_str().unwrap_or("").contains("在线·音视频上行"),
        "{tile}"
    );
    // Attendance counts the classrooms only: 2 of the 3 sites (the receive-only room never
    // came; the teacher is not a site).
    teacher
        .wait_until(
            "window.classrelay.attendance && window.classrelay.attendance.present === 2 && \
             document.getElementById('attendance').textContent.includes('2/3')",
            WAIT,
            "[window.classrelay.attendance, document.getElementById('attendance').textContent]",
        )
        .await?;
    teacher.screenshot_for_docs("teacher-console").await?;

    // Link reports (issue 19 item 6): each class's live link on its tile (rate, loss, round
    // trip, layer), and the classroom page's own getStats merged into the stored report.
    let fig = teacher
        .wait_until(
            &format!(
                "(document.querySelector('[data-classroom=\"{a_id}\"] [data-linkfig]') || {{}}).textContent"
            ),
            WAIT,
            "window.classrelay.classes()",
        )
        .await?;
    let fig = fig.as_str().unwrap_or("");
    assert!(fig.contains("kbit/s"), "{fig}");
    assert!(
        ["高清", "中等画质", "低画质", "仅音频"]
            .iter()
            .any(|w| fig.contains(w)),
        "the layer in words: {fig}"
    );
    let end = std::time::Instant::now() + WAIT;
    let row = loop {
        let (s, v) = app
            .call(
                Some(&f.teacher_login),
                reqwest::Method::GET,
                &format!("/api/lessons/{id}/link-report"),
                None,
            )
            .await;
        assert_eq!(s, reqwest::StatusCode::OK, "{v}");
        let row = v["rows"]
            .as_array()
            .and_then(|r| r.iter().find(|r| r["part"] == format!("c:{a_id}")))
            .cloned();
        if let Some(r) = row.filter(|r| r["fps"].as_f64().is_some_and(|x| x > 0.0)) {
            break r;
        }
        assert!(std::time::Instant::now() < end, "no page figures: {v}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(row["freezes"].is_number(), "{row}");
    assert!(row["concealment_pct"].is_number(), "{row}");
    assert!(row["seconds"].as_f64().unwrap_or(0.0) > 0.0, "{row}");

    // The hub hears both classes (the fake microphones beep)...
    teacher
        .wait_for_stats(WAIT, "audio from both classes", |s| {
            [a_id, b_id].iter().all(|r| {
                num(
                    &s["classes"][r.to_string()],
                    "/inboundAudio/0/totalAudioEnergy",
                ) > 0.0
            })
        })
        .await?;
    let heard = energy_over(&teacher, &[a_id, b_id], 3000).await?;
    assert!(heard.iter().all(|e| *e > 1e-4), "before mute: {heard:?}");

    // ...mute all: every class's page silences its microphone and says so, and the energy
    // the hub receives stops growing.
    teacher
        .eval("document.getElementById('muteAll').click(); return true;")
        .await?;
    for p in [&a, &b] {
        p.wait_until(
            "window.classrelay.muted && !window.classrelay.onAir && \
             !document.getElementById('mutedMark').hidden",
            WAIT,
            "window.classrelay.log",
        )
        .await?;
    }
    teacher
        .wait_until(
            &format!(
                "window.classrelay.classes()[{a_id}].muted && window.classrelay.classes()[{b_id}].muted"
            ),
            WAIT,
            "window.classrelay.classes()",
        )
        .await?;
    teacher
        .wait_for_stats(WAIT, "silence from both classes", |s| {
            [a_id, b_id]
                .iter()
                .all(|r| num(&s["classes"][r.to_string()], "/inboundAudio/0/audioLevel") < 0.001)
        })
        .await?;
    // What was already in the jitter buffers plays out first (about a second at most).
    energy_over(&teacher, &[a_id, b_id], 1000).await?;
    let silent = energy_over(&teacher, &[a_id, b_id], 3000).await?;
    for (i, e) in silent.iter().enumerate() {
        assert!(
            *e < heard[i] / 50.0,
            "after mute-all: {silent:?}, before: {heard:?}"
        );
    }
    // Per class: A unmuted is heard again, B stays silent.
    teacher
        .eval_with(
            "return window.classrelay.mute(arguments[0], false).then(() => true);",
            vec![json!(a_id)],
        )
        .await?;
    a.wait_until(
        "!window.classrelay.muted && window.classrelay.onAir",
        WAIT,
        "window.classrelay.log",
    )
    .await?;
    teacher
        .wait_for_stats(WAIT, "A heard again", |s| {
            num(
                &s["classes"][a_id.to_string()],
                "/inboundAudio/0/audioLevel",
            ) > 0.0
        })
        .await?;
    let one = energy_over(&teacher, &[a_id, b_id], 3000).await?;
    assert!(
        one[0] > 1e-4 && one[1] < heard[1] / 50.0,
        "A unmuted, B muted: {one:?}"
    );

    // A raises its hand; the teacher acknowledges it from the queue (专递课堂 too).
    a.eval("return window.classrelay.raiseHand(true).then(() => true);")
        .await?;
    teacher
        .wait_until(
            &format!("window.classrelay.classes()[{a_id}].hand"),
            WAIT,
            "window.classrelay.classes()",
        )
        .await?;
    teacher
        .eval("document.querySelector('#hands li button.secondary').click(); return true;")
        .await?;
    a.wait_until(
        "!window.classrelay.hand && window.classrelay.handSeen && \
         !document.getElementById('handSeen').hidden",
        WAIT,
        "window.classrelay.log",
    )
    .await?;

    // Five minutes on, B hangs up: its stay closes, A's runs on; both came.
    app.clock.set(at("07:40"));
    b.eval(
        "const l = window.classrelay.links; const p = l.publish();
         return Promise.all([l.hub.stop(), p ? p.stop() : null]).then(() => true);",
    )
    .await?;
    teacher
        .wait_until(
            &format!("window.classrelay.classes()[{b_id}].presence === 'absent'"),
            WAIT,
            "window.classrelay.classes()",
        )
        .await?;
    let end = std::time::Instant::now() + WAIT;
    let att = loop {
        let att = attendance(&app, &f.teacher_login, id).await;
        if site(&att, b_id)["stays"][0]["left"].is_string() || std::time::Instant::now() > end {
            break att;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(att["expected"], 3, "{att}");
    assert_eq!(att["present"], 2, "{att}");
    let (sa, sb) = (site(&att, a_id), site(&att, b_id));
    assert_eq!(sb["stays"].as_array().map(Vec::len), Some(1), "{att}");
    assert!(
        sb["stays"][0]["left"]
            .as_str()
            .unwrap_or("")
            .contains("07:40"),
        "{att}"
    );
    assert_eq!(sb["present_ms"], 5 * 60_000, "07:35 to 07:40: {att}");
    assert!(sa["stays"][0]["left"].is_null(), "A still there: {att}");
    assert_eq!(sa["present_ms"], 5 * 60_000, "to now: {att}");
    assert_eq!(site(&att, f.room_view)["present"], false, "{att}");
    for p in [teacher, a, b] {
        p.close().await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn master_class_floor_reaches_every_site_and_a_stranger_gets_no_console() -> Result<()> {
    let Some(browser) = Browser::start_or_skip().await else {
        return Ok(());
    };
    let app = App::start(Backend::Sqlite).await.expect("server");
    let f = fixture(&app).await;
    let id = lesson(&app, &f, "master", "07:30", "08:10").await;
    app.clock.set(at("07:35"));
    let (a_id, b_id) = (f.room_a, f.room_b);
    // The classes come first: connected, and the screen says they wait for the teacher
    // (not a black picture under "connected").
    let a = class_page(&browser, &app, a_id, id).await?;
    let b = class_page(&browser, &app, b_id, id).await?;
    for p in [&a, &b] {
        p.wait_for_state("connected", WAIT).await?;
        let said = p
            .wait_until(
                "window.classrelay.waitingForTeacher && \
                 !document.getElementById('waitTeacher').hidden && \
                 document.getElementById('waitTeacher').innerText",
                WAIT,
                "window.classrelay.log",
            )
            .await?;
        assert!(
            said.as_str().unwrap_or("").contains("等待主讲教师开始上课"),
            "{said}"
        );
    }
    let teacher = teacher_console(&browser, &app, id).await?;
    for p in [&a, &b] {
        p.wait_until(
            "!window.classrelay.waitingForTeacher && document.getElementById('waitTeacher').hidden",
            WAIT,
            "window.classrelay.log",
        )
        .await?;
    }
    // Sites that only watch are present ("watching"), not "not connected".
    teacher
        .wait_until(
            &format!(
                "window.classrelay.classes()[{a_id}].presence === 'watching' && \
                 window.classrelay.classes()[{b_id}].presence === 'watching' && \
                 document.querySelector('[data-classroom=\"{b_id}\"]').innerText.includes('在线·观看中')"
            ),
            WAIT,
            "window.classrelay.classes()",
        )
        .await?;

    // A raises its hand and gets the floor: it is on air, its preview beside (not over) the
    // courseware, and B sees and hears it.
    a.eval("return window.classrelay.raiseHand(true).then(() => true);")
        .await?;
    teacher
        .wait_until(
            &format!("window.classrelay.classes()[{a_id}].hand"),
            WAIT,
            "window.classrelay.classes()",
        )
        .await?;
    teacher
        .eval_with(
            "return window.classrelay.grant(arguments[0], true).then(() => true);",
            vec![json!(a_id)],
        )
        .await?;
    a.wait_until(
        "window.classrelay.publishing === 'connected' && window.classrelay.onAir && \
         !document.getElementById('onAir').hidden",
        WAIT,
        "window.classrelay.log",
    )
    .await?;
    let apart = a
        .eval(
            "const m = document.querySelector('.main-area').getBoundingClientRect();
             const s = document.getElementById('selfTile').getBoundingClientRect();
             return s.width > 0 && m.width > 0 &&
               (s.left >= m.right || s.right <= m.left || s.top >= m.bottom || s.bottom <= m.top);",
        )
        .await?;
    assert_eq!(apart, true, "the class's preview hides none of the stage");
    b.wait_until(
        &format!(
            "window.classrelay.speaker === {a_id} && !document.getElementById('floor').hidden && \
             document.querySelector('#floor figure[data-classroom=\"{a_id}\"]') !== null"
        ),
        WAIT,
        "window.classrelay.log",
    )
    .await?;
    b.wait_for_stats(WAIT, "B decoding and hearing A", |s| {
        let sp = &s["speaker"];
        sp["inboundVideo"]
            .as_array()
            .is_some_and(|v| v.iter().any(|x| num(x, "/framesDecoded") > 10.0))
            && num(sp, "/inboundAudio/0/packetsReceived") > 20.0
            && num(sp, "/inboundAudio/0/totalAudioEnergy") > 0.0
    })
    .await?;
    // Nobody muted B and B raised no hand: neither mark takes any room on its screen (not
    // only `hidden`: a class's `display` once brought both back).
    let shown = b
        .eval_expr(
            "['mutedMark', 'handSeen'].filter((id) => document.getElementById(id).getClientRects().length > 0)",
        )
        .await?;
    assert_eq!(shown, json!([]), "marks B's screen must not show");
    b.screenshot_for_docs("classroom-page").await?;

    // Several sites granted at once (issue 22 item 5): B gets the floor too. A third site (the
    // receive-only room) decodes and hears both A and B, and A decodes and hears B.
    let third = class_page(&browser, &app, f.room_view, id).await?;
    third.wait_for_state("connected", WAIT).await?;
    teacher
        .eval_with(
            "return window.classrelay.grant(arguments[0], true).then(() => true);",
            vec![json!(b_id)],
        )
        .await?;
    b.wait_until(
        "window.classrelay.publishing === 'connected' && window.classrelay.onAir",
        WAIT,
        "window.classrelay.log",
    )
    .await?;
    third
        .wait_until(
            &format!(
                "window.classrelay.speakers.length === 2 && \
                 window.classrelay.speakers.includes({a_id}) && window.classrelay.speakers.includes({b_id}) && \
                 document.querySelectorAll('#floor figure').length === 2 && !document.getElementById('floor').hidden"
            ),
            WAIT,
            "[window.classrelay.speakers, window.classrelay.log]",
        )
        .await?;
    let sees_and_hears = |s: &Value, room: i64| {
        let sp = &s["speakers"][room.to_string()];
        sp["inboundVideo"]
            .as_array()
            .is_some_and(|v| v.iter().any(|x| num(x, "/framesDecoded") > 10.0))
            && num(sp, "/inboundAudio/0/packetsReceived") > 20.0
            && num(sp, "/inboundAudio/0/totalAudioEnergy") > 0.0
    };
    third
        .wait_for_stats(WAIT, "the third site decoding and hearing A and B", |s| {
            sees_and_hears(s, a_id) && sees_and_hears(s, b_id)
        })
        .await?;
    a.wait_for_stats(WAIT, "A decoding and hearing B", |s| {
        sees_and_hears(s, b_id)
    })
    .await?;
    // B's floor is A only (never its own class).
    assert_eq!(
        b.eval_expr("window.classrelay.speakers").await?,
        json!([a_id])
    );
    // B's floor ends: the third site keeps A only.
    teacher
        .eval_with(
            "return window.classrelay.grant(arguments[0], false).then(() => true);",
            vec![json!(b_id)],
        )
        .await?;
    third
        .wait_until(
            &format!(
                "JSON.stringify(window.classrelay.speakers) === '[{a_id}]' && \
                 document.querySelectorAll('#floor figure').length === 1"
            ),
            WAIT,
            "[window.classrelay.speakers, window.classrelay.log]",
        )
        .await?;
    third.close().await?;
    // Revoked: B stops following A.
    teacher
        .eval_with(
            "return window.classrelay.grant(arguments[0], false).then(() => true);",
            vec![json!(a_id)],
        )
        .await?;
    b.wait_until(
        "window.classrelay.speaker === null && document.getElementById('floor').hidden && \
         document.querySelectorAll('#floor figure').length === 0",
        WAIT,
        "window.classrelay.log",
    )
    .await?;

    // Another teacher of the school opens this lesson's console: refused, in words, before
    // any camera or microphone started.
    let stranger = open_console(&browser, &app.base, "li", id).await?;
    let said = stranger
        .wait_until(
            "window.classrelay.refused && !document.getElementById('error').hidden && \
             document.getElementById('error').textContent",
            WAIT,
            "[window.classrelay.log, document.body.innerText]",
        )
        .await?;
    assert!(
        said.as_str().unwrap_or("").contains("不是本节课的主讲教师"),
        "{said}"
    );
    assert_eq!(
        stranger
            .eval_expr("window.classrelay.cameraStarted")
            .await?,
        false
    );
    for p in [teacher, a, b, stranger] {
        p.close().await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kiosk_says_what_is_true_full_screen_and_a_revoked_one_says_so() -> Result<()> {
    let Some(browser) = Browser::start_or_skip().await else {
        return Ok(());
    };
    let app = App::start(Backend::Sqlite).await.expect("server");
    let f = fixture(&app).await;
    let id = lesson(&app, &f, "delivery", "09:00", "09:40").await;
    app.clock.set(at("07:00"));
    let issued = app
        .admin_ok(
            Method::POST,
            &format!("/api/classrooms/{}/devices", f.room_a),
            json!({"label": "讲台电脑"}),
            StatusCode::CREATED,
        )
        .await;
    let token = issued["token"].as_str().unwrap().to_string();
    let device = issued["device"]["id"].as_i64().unwrap();
    let page = browser.new_page().await?;

    // The lesson's own page before it opens: when it opens, in local time.
    page.goto(&format!(
        "{}/classroom?device={token}&lesson={id}",
        app.base
    ))
    .await?;
    let said = page
        .wait_until(
            "window.classrelay.blocked === 'not_open' && !document.getElementById('blocked').hidden && \
             document.getElementById('blocked').innerText",
            WAIT,
            "[window.classrelay.log, document.body.innerText]",
        )
        .await?;
    let said = said.as_str().unwrap_or("");
    assert!(said.contains("本节课还没有开始"), "{said}");
    assert!(said.contains("08:50 开放进入（09:00 上课）"), "{said}");

    // The kiosk (token remembered): waiting for the next lesson, with its time, full screen.
    page.goto(&format!("{}/classroom", app.base)).await?;
    let said = page
        .wait_until(
            "window.classrelay.screen === 'waiting' && document.getElementById('waiting').innerText",
            WAIT,
            "[window.classrelay.log, document.body.innerText]",
        )
        .await?;
    let said = said.as_str().unwrap_or("");
    assert!(said.contains("等待下一节课"), "{said}");
    // When it opens (the bell less the open-before minutes), then what, then the bell.
    assert!(
        said.contains("下一节：08:50 开放进入 · 英语 · 三年级（09:00 上课）"),
        "{said}"
    );
    assert_eq!(
        page.eval_expr("document.getElementById('stage').hidden")
            .await?,
        true
    );

    // Revoked by an administrator: the kiosk says so, readable (light on dark).
    let (s, v) = app
        .call(
            Some(&app.admin),
            Method::DELETE,
            &format!("/api/devices/{device}"),
            None,
        )
        .await;
    assert!(s.is_success(), "{s} {v}");
    let said = page
        .wait_until(
            "window.classrelay.blocked === 'revoked' && document.getElementById('blocked').innerText",
            WAIT,
            "[window.classrelay.log, document.body.innerText]",
        )
        .await?;
    let said = said.as_str().unwrap_or("");
    assert!(said.contains("此教室设备已停用"), "{said}");
    assert!(said.contains("重新生成教室一体机链接"), "{said}");
    let light = page
        .eval(
            "const c = getComputedStyle(document.getElementById('blockedMain')).color;
             const bg = getComputedStyle(document.getElementById('blocked')).backgroundColor;
             const sum = (s) => s.match(/\\d+/g).slice(0, 3).map(Number).reduce((a, b) => a + b, 0);
             return sum(c) - sum(bg);",
        )
        .await?;
    assert!(
        light.as_f64().unwrap_or(0.0) > 400.0,
        "text much lighter than its background: {light}"
    );
    for key in ["waiting", "ended", "stage"] {
        assert_eq!(
            page.eval_expr(&format!("document.getElementById('{key}').hidden"))
                .await?,
            true,
            "only one state shows: {key}"
        );
    }
    page.close().await?;
    Ok(())
}
