//! The synced player (/player) and the observer's workspace playing a recorded lesson, in
//! headless Chromium, on a recording the real processor made (teacher camera with sound,
//! courseware from 0.5 s, a classroom camera from 1 s): every source plays; after a seek
//! (by the API of the page, by keyboard) they stay within one frame of each other on the lesson
//! timeline; a click swaps a side picture into the large tile; the English page shows no
//! untranslated key; and in /observe a click on a time-stamped comment seeks the recording to
//! that moment (issue 21 item 2). Issue 20's pages: a recording still waiting to be processed
//! becomes playable on the open page without a reload (its processing's events), with its
//! losses marked on the timeline and the lesson's other part linked with the gap between them;
//! and the admin page sets a school's recording settings (on/off, days kept) for the schools in
//! the admin's place only, a bad value refused with the server's reason.
//!
//! Run: `cargo test --test browser_player` (needs `chromium` and `chromium-driver`).

mod support;

use std::time::Duration;

use anyhow::Result;
use fantoccini::Locator;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use support::browser::{Browser, Page};
use support::recorded::{insert, insert_unprocessed, three_sources};
use support::school::{at, fixture, lesson, App, Backend};

const WAIT: Duration = Duration::from_secs(30);
/// One frame at 30 fps, ms.
const FRAME_MS: f64 = 1000.0 / 30.0;

async fn log_in(page: &Page, base: &str, user: &str) -> Result<()> {
    page.goto(&format!("{base}/login")).await?;
    page.eval(&format!(
        "document.getElementById('username').value = '{user}';
         document.getElementById('password').value = 'password-123';
         document.getElementById('submit').click(); return true;"
    ))
    .await?;
    page.wait_until(
        "location.pathname !== '/login'",
        WAIT,
        "document.body.innerText",
    )
    .await?;
    Ok(())
}

/// The sources' places on the lesson timeline (ms), sampled `n` times `every_ms` apart while
/// playing: for each sample, (spread between the active sources, the sources' positions).
async fn spreads(page: &Page, handle: &str, n: u32, every_ms: u32) -> Result<Vec<(f64, Value)>> {
    let v = page
        .eval(&format!(
            "const p = {handle}; const out = [];
             for (let i = 0; i < {n}; i++) {{
               await new Promise((r) => setTimeout(r, {every_ms}));
               out.push(p.positions());
             }}
             return out;"
        ))
        .await?;
    Ok(v.as_array()
        .expect("samples")
        .iter()
        .map(|s| {
            let act: Vec<f64> = s
                .as_array()
                .unwrap()
                .iter()
                .filter(|x| x["active"] == true)
                .map(|x| x["timeline_ms"].as_f64().unwrap())
                .collect();
            let spread = act.iter().cloned().fold(f64::MIN, f64::max)
                - act.iter().cloned().fold(f64::MAX, f64::min);
            (spread, s.clone())
        })
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_sources_play_and_stay_within_a_frame_after_a_seek() -> Result<()> {
    let Some(browser) = Browser::start_or_skip().await else {
        return Ok(());
    };
    let app = App::start(Backend::Sqlite).await.expect("server");
    let f = fixture(&app).await;
    let l = lesson(&app, &f, "delivery", "08:00", "08:40").await;
    let rid = insert(
        &app.server,
        Some(l),
        at("08:00"),
        at("08:40"),
        Some(&three_sources(10)),
    )
    .await;
    let page = browser
        .new_page_with_flags(&[
            "--window-size=1280,900",
            "--autoplay-policy=no-user-gesture-required",
        ])
        .await?;
    log_in(&page, &app.base, "observer1").await?;
    page.goto(&format!("{}/player?recording={rid}", app.base))
        .await?;
    page.wait_until(
        "window.classrelayPlayer && window.classrelayPlayer.player && window.classrelayPlayer.player.positions().every((x) => x.ready >= 1)",
        WAIT,
        "document.body.innerText",
    )
    .await?;
    const P: &str = "window.classrelayPlayer.player";
    // Chinese first; the lesson's metadata in the heading.
    let text = page.eval_expr("document.body.innerText").await?;
    let text = text.as_str().unwrap().to_string();
    assert!(
        text.contains("播放") && text.contains("王老师") && text.contains("人教版PEP"),
        "{text}"
    );
    let n = page.eval_expr(&format!("{P}.sources.length")).await?;
    assert_eq!(n, 3);

    // A seek while paused puts every source exactly on the moment.
    page.eval(&format!("await {P}.seek(3000); return true;"))
        .await?;
    let pos = page.eval_expr(&format!("{P}.positions()")).await?;
    for x in pos.as_array().unwrap() {
        let t = x["timeline_ms"].as_f64().unwrap();
        assert!((t - 3000.0).abs() < FRAME_MS, "{pos}");
    }

    // Play: every source moves, and they keep within one frame of each other.
    page.eval(&format!("{P}.play(); return true;")).await?;
    page.wait_until(
        &format!("{P}.time() > 3600 && {P}.positions().every((x) => !x.paused) && {P}.spread() <= {FRAME_MS}"),
        WAIT,
        &format!("{P}.positions()"),
    )
    .await?;
    let before = page.eval_expr(&format!("{P}.positions()")).await?;
    for (spread, s) in spreads(&page, P, 12, 100).await? {
        assert!(spread <= FRAME_MS, "spread {spread:.1} ms: {s}");
    }
    let after = page.eval_expr(&format!("{P}.positions()")).await?;
    for (b, a) in before
        .as_array()
        .unwrap()
        .iter()
        .zip(after.as_array().unwrap())
    {
        assert!(
            a["current"].as_f64().unwrap() > b["current"].as_f64().unwrap() + 0.5,
            "{} did not play: {b} → {a}",
            a["file"]
        );
    }
    // Every source decoded pictures.
    let frames = page
        .eval_expr("[...document.querySelectorAll('.pl-tile video')].map((v) => v.getVideoPlaybackQuality().totalVideoFrames)")
        .await?;
    assert!(
        frames
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n.as_u64().unwrap() > 10),
        "{frames}"
    );

    // A seek by keyboard while playing: "2" jumps to two tenths of the lesson; back in step.
    let player = page.client().find(Locator::Css(".player")).await?;
    player.send_keys("2").await?;
    let duration = page
        .eval_expr(&format!("{P}.duration"))
        .await?
        .as_f64()
        .unwrap();
    let target = duration * 0.2;
    page.wait_until(
        &format!(
            "{P}.time() >= {target} && {P}.time() < {target} + 3000 && {P}.positions().every((x) => !x.active || !x.paused) && {P}.spread() <= {FRAME_MS}"
        ),
        WAIT,
        &format!("[{P}.time(), {P}.positions()]"),
    )
    .await?;
    for (spread, s) in spreads(&page, P, 12, 100).await? {
        assert!(
            spread <= FRAME_MS,
            "after a keyboard seek: spread {spread:.1} ms: {s}"
        );
    }
    // Arrow keys step 5 s.
    page.eval(&format!("{P}.pause(); await {P}.seek(1000); return true;"))
        .await?;
    player.send_keys("\u{E014}").await?; // ArrowRight
    page.wait_until(
        &format!("Math.abs({P}.time() - 6000) < 1"),
        WAIT,
        &format!("{P}.time()"),
    )
    .await?;

    // A click on a side picture swaps it into the large tile.
    let side = page
        .eval_expr("document.querySelector('.pl-side .pl-tile').dataset.file")
        .await?;
    page.eval("document.querySelector('.pl-side .pl-tile video').click(); return true;")
        .await?;
    let big = page
        .eval_expr("document.querySelector('.pl-main .pl-tile').dataset.file")
        .await?;
    assert_eq!(big, side);

    // The list links to it; English shows no untranslated key.
    page.goto(&format!("{}/player?lang=en", app.base)).await?;
    page.wait_until(
        &format!("document.querySelector('#recordings tr[data-id=\"{rid}\"] a')"),
        WAIT,
        "document.body.innerText",
    )
    .await?;
    page.goto(&format!("{}/player?recording={rid}&lang=en", app.base))
        .await?;
    page.wait_until(
        "window.classrelayPlayer && window.classrelayPlayer.ready",
        WAIT,
        "document.body.innerText",
    )
    .await?;
    let text = page.eval_expr("document.body.innerText").await?;
    let text = text.as_str().unwrap();
    assert!(text.contains("Play") && text.contains("Teacher"), "{text}");
    assert!(!text.contains("pl_"), "untranslated key: {text}");
    page.close().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_time_stamped_comment_seeks_the_recording_in_the_observers_workspace() -> Result<()> {
    let Some(browser) = Browser::start_or_skip().await else {
        return Ok(());
    };
    let app = App::start(Backend::Sqlite).await.expect("server");
    let f = fixture(&app).await;
    let l = lesson(&app, &f, "delivery", "08:00", "08:40").await;
    insert(
        &app.server,
        Some(l),
        at("08:00"),
        at("08:40"),
        Some(&three_sources(10)),
    )
    .await;
    // An observation of the recorded lesson with two comments at 2 s and 7.5 s.
    let (s, o) = app
        .call(
            Some(&f.observer_login),
            Method::POST,
            "/api/observations",
            Some(json!({"lesson_id": l, "methods": ["st"]})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{o}");
    let oid = o["id"].as_i64().unwrap();
    for (at_ms, body) in [(2000, "导入自然"), (7500, "学生回答积极")] {
        let (s, v) = app
            .call(
                Some(&f.observer_login),
                Method::POST,
                &format!("/api/observations/{oid}/comments"),
                Some(json!({"at_ms": at_ms, "body": body})),
            )
            .await;
        assert!(s.is_success(), "{s} {v}");
    }
    let page = browser
        .new_page_with_flags(&[
            "--window-size=1280,900",
            "--autoplay-policy=no-user-gesture-required",
        ])
        .await?;
    log_in(&page, &app.base, "observer1").await?;
    page.goto(&format!("{}/observe?observation={oid}", app.base))
        .await?;
    page.wait_until(
        "window.classrelayObserve && !document.getElementById('recordingCard').hidden && document.querySelector('.player') && document.querySelector('#comments li[data-at=\"7500\"] button.seek')",
        WAIT,
        "document.body.innerText",
    )
    .await?;
    const P: &str = "document.querySelector('.player').player";
    page.wait_until(
        &format!("{P}.positions().every((x) => x.ready >= 1)"),
        WAIT,
        &format!("{P}.positions()"),
    )
    .await?;
    // Click the 7.5 s comment: every source lands on 7.5 s, and the lesson clock says 00:07.
    page.client()
        .find(Locator::Css("#comments li[data-at=\"7500\"] button.seek"))
        .await?
        .click()
        .await?;
    page.wait_until(
        &format!("Math.abs({P}.time() - 7500) < 1 && {P}.positions().every((x) => Math.abs(x.timeline_ms - 7500) < {FRAME_MS})"),
        WAIT,
        &format!("[{P}.time(), {P}.positions()]"),
    )
    .await?;
    page.wait_until(
        "document.getElementById('clock').textContent === '00:07'",
        WAIT,
        "document.getElementById('clock').textContent",
    )
    .await?;
    // And back to 2 s, while playing: in step again within a frame.
    page.eval(&format!("{P}.play(); return true;")).await?;
    page.client()
        .find(Locator::Css("#comments li[data-at=\"2000\"] button.seek"))
        .await?
        .click()
        .await?;
    page.wait_until(
        &format!("{P}.time() >= 2000 && {P}.time() < 5000 && {P}.positions().every((x) => !x.active || !x.paused) && {P}.spread() <= {FRAME_MS}"),
        WAIT,
        &format!("[{P}.time(), {P}.positions()]"),
    )
    .await?;
    for (spread, s) in spreads(&page, P, 8, 100).await? {
        assert!(spread <= FRAME_MS, "spread {spread:.1} ms: {s}");
    }
    // A comment made now is stamped with the recording's time.
    page.eval(&format!("{P}.pause(); await {P}.seek(5000); return true;"))
        .await?;
    page.wait_until(
        "document.getElementById('clock').textContent === '00:05'",
        WAIT,
        "document.getElementById('clock').textContent",
    )
    .await?;
    page.eval(
        "document.getElementById('comment').value = '板书清楚';
         document.querySelector('#commentForm button').click(); return true;",
    )
    .await?;
    page.wait_until(
        "document.querySelector('#comments li[data-at=\"5000\"]')",
        WAIT,
        "document.getElementById('comments').innerHTML",
    )
    .await?;
    let (_, v) = app
        .call(
            Some(&f.observer_login),
            Method::GET,
            &format!("/api/observations/{oid}"),
            None,
        )
        .await;
    let stamped: Vec<i64> = v["comments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c: &Value| c["at_ms"].as_i64().unwrap())
        .collect();
    assert!(stamped.contains(&5000), "{v}");
    page.close().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_becomes_playable_without_a_reload_with_its_gaps_and_parts() -> Result<()> {
    let Some(browser) = Browser::start_or_skip().await else {
        return Ok(());
    };
    let app = App::start(Backend::Sqlite).await.expect("server");
    let f = fixture(&app).await;
    let l = lesson(&app, &f, "delivery", "08:00", "08:40").await;
    // The lesson's first part (processed), and its second after a two-minute gap, whose
    // teacher camera lost half a second of packets from 1 s; not processed yet.
    let first = insert(
        &app.server,
        Some(l),
        at("08:00"),
        at("08:10"),
        Some(&three_sources(3)),
    )
    .await;
    let rid = insert_unprocessed(
        &app.server,
        Some(l),
        at("08:12"),
        at("08:40"),
        &three_sources(3),
        Some(1_000_000..1_500_000),
    )
    .await;
    let page = browser.new_page().await?;
    log_in(&page, &app.base, "observer1").await?;
    page.goto(&format!("{}/player?recording={rid}", app.base))
        .await?;
    page.wait_until(
        "window.classrelayPlayer && window.classrelayPlayer.processing === 'waiting'",
        WAIT,
        "document.body.innerText",
    )
    .await?;
    let text = page.eval_expr("document.body.innerText").await?;
    assert!(text.as_str().unwrap_or("").contains("等待处理"), "{text}");
    // Both parts, this one not a link, and the gap between them.
    let parts = page
        .eval_expr(
            "[...document.querySelectorAll('#parts [data-part]')].map((e) => [Number(e.dataset.part), e.tagName])",
        )
        .await?;
    assert_eq!(parts, json!([[first, "A"], [rid, "STRONG"]]));
    let gap = page
        .eval_expr("document.querySelector('#parts [data-gap]').dataset.gap")
        .await?;
    assert_eq!(gap, json!("120000"));
    // The processor runs (as at a lesson's end): the page plays it without a reload.
    page.eval("window.samePage = true; return true;").await?;
    let school = &app.server.state().school;
    classrelay::school::recording_files::process_announced(
        &school.store,
        &school.recording_events,
        rid,
    )
    .await
    .expect("processed");
    page.wait_until(
        "window.samePage === true && window.classrelayPlayer.player && window.classrelayPlayer.player.sources.length === 3",
        WAIT,
        "document.body.innerText",
    )
    .await?;
    // Both parts play as one lesson (issue 20, recfin): one timeline from the first part's
    // start, the second part twelve minutes on (its row's start), the gap between them marked.
    let parts = page
        .eval_expr("window.classrelayPlayer.player.parts")
        .await?;
    assert_eq!(parts.as_array().map(Vec::len), Some(2), "{parts}");
    assert_eq!(
        (&parts[0]["recording"], &parts[0]["start_ms"]),
        (&json!(first), &json!(0)),
        "{parts}"
    );
    assert_eq!(parts[1]["recording"], json!(rid), "{parts}");
    let p2 = parts[1]["start_ms"].as_f64().expect("a start");
    assert!((720_000.0..=722_000.0).contains(&p2), "{parts}");
    let p1_end = parts[0]["duration_ms"].as_f64().unwrap();
    let num = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
    let duration = page
        .eval_expr("window.classrelayPlayer.player.duration")
        .await?;
    assert_eq!(
        num(&duration),
        p2 + num(&parts[1]["duration_ms"]),
        "{duration} {parts}"
    );
    let mark = page
        .eval_expr("[...document.querySelectorAll('.pl-restart')].map((m) => [Number(m.dataset.from), Number(m.dataset.to)])")
        .await?;
    assert_eq!(mark.as_array().map(Vec::len), Some(1), "{mark}");
    assert_eq!(
        (num(&mark[0][0]), num(&mark[0][1])),
        (p1_end, p2),
        "{mark} {parts}"
    );
    // Opened on the second part: its pictures.
    assert_eq!(
        page.eval_expr("window.classrelayPlayer.player.root.dataset.part")
            .await?,
        json!(rid.to_string())
    );
    // The loss is marked where it sits on the lesson timeline (inside the second part).
    let gaps = page
        .eval("await window.classrelayPlayer.player.gapsLoaded; return [...document.querySelectorAll('.pl-gap')].map((g) => Number(g.dataset.at));")
        .await?;
    let at: Vec<f64> = gaps
        .as_array()
        .expect("marks")
        .iter()
        .map(|v| v.as_f64().unwrap() - p2)
        .collect();
    assert!(
        !at.is_empty() && at.iter().all(|a| (900.0..=1600.0).contains(a)),
        "{gaps} (second part from {p2})"
    );
    // A seek into the first part loads the first part's files and shows them, large the same
    // kind (the teacher camera).
    page.eval("await window.classrelayPlayer.player.seek(1000); return true;")
        .await?;
    page.wait_until(
        &format!(
            "(() => {{ const p = window.classrelayPlayer.player; const v = document.querySelector('.pl-main video');
               return p.root.dataset.part === '{first}' && v.dataset.part === '{first}' && v.dataset.kind === 'teacher_camera'
                 && v.readyState >= 2 && Math.abs(v.currentTime - 1) < 0.05
                 && [...document.querySelectorAll('.pl-side video')].every((s) => s.dataset.part === '{first}'); }})()"
        ),
        WAIT,
        "JSON.stringify(window.classrelayPlayer.player.positions())",
    )
    .await?;
    assert_eq!(
        page.eval_expr("document.querySelector('.pl-note').hidden")
            .await?,
        json!(true)
    );
    // A seek into the gap: "not recorded (server restart)", and on at the second part's start.
    page.eval(&format!(
        "await window.classrelayPlayer.player.seek({}); return true;",
        p2 - 60_000.0
    ))
    .await?;
    let after = page
        .eval_expr("[window.classrelayPlayer.player.time(), window.classrelayPlayer.player.root.dataset.part, document.querySelector('.pl-note').hidden, document.querySelector('.pl-note').innerText]")
        .await?;
    assert_eq!(num(&after[0]), p2, "{after} {parts}");
    assert_eq!(
        after.as_array().unwrap()[1..],
        [
            json!(rid.to_string()),
            json!(false),
            json!("未录制（服务器重启）")
        ],
        "{after}"
    );
    // The zip of every file is linked.
    assert_eq!(
        page.eval_expr("document.querySelector('#downloads a.pl-zip').getAttribute('href')")
            .await?,
        json!(format!("/api/recordings/{rid}/download.zip"))
    );
    page.close().await?;
    Ok(())
}

/// The admin page's recording settings: (school, whether it cannot be changed) per row.
async fn settings_rows(page: &Page, base: &str) -> Result<Value> {
    page.goto(&format!("{base}/admin#schools")).await?;
    page.wait_until(
        "document.body.dataset.ready === 'schools' && document.getElementById('recSettings')",
        WAIT,
        "document.body.innerText",
    )
    .await?;
    page.eval_expr(
        "[...document.querySelectorAll('#recSettings tr[data-school]')].map((r) => [Number(r.dataset.school), !r.querySelector('button')])",
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_page_sets_recording_settings_for_the_schools_in_its_place() -> Result<()> {
    let Some(browser) = Browser::start_or_skip().await else {
        return Ok(());
    };
    let app = App::start(Backend::Sqlite).await.expect("server");
    let f = fixture(&app).await;
    // A school in another county: not in the county admin's place.
    let other_region = app
        .create(
            "/api/regions",
            json!({"province": "四川省", "city": "凉山彝族自治州", "county": "美姑县"}),
        )
        .await;
    let elsewhere = app
        .create(
            "/api/schools",
            json!({"code": "MG01", "name": "美姑县小学", "kind": "partner", "region_id": other_region}),
        )
        .await;
    for (name, scope) in [("countyadmin", "county"), ("hubadmin", "school")] {
        app.create(
            "/api/users",
            json!({"username": name, "display_name": name, "role": "admin",
                   "password": "password-123", "scope": scope,
                   "school_id": (scope == "school").then_some(f.hub_school),
                   "region_id": f.region}),
        )
        .await;
    }
    // The school's own admin sees its settings and may not change them.
    let page = browser.new_page().await?;
    log_in(&page, &app.base, "hubadmin").await?;
    assert_eq!(
        settings_rows(&page, &app.base).await?,
        json!([[f.hub_school, true]])
    );
    page.close().await?;

    // The county admin: the county's three schools, changeable; not the other county's.
    let page = browser.new_page().await?;
    log_in(&page, &app.base, "countyadmin").await?;
    let rows = settings_rows(&page, &app.base).await?;
    let mut shown: Vec<i64> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            assert_eq!(r[1], false, "changeable: {rows}");
            r[0].as_i64().unwrap()
        })
        .collect();
    shown.sort_unstable();
    let mut want = vec![f.hub_school, f.partner_a, f.partner_b];
    want.sort_unstable();
    assert_eq!(shown, want, "not {elsewhere}");
    let text = page
        .eval_expr("document.getElementById('recSettings').innerText")
        .await?;
    assert!(text.as_str().unwrap_or("").contains("录制设置"), "{text}");
    let row = format!("#recSettings tr[data-school=\"{}\"]", f.hub_school);
    // A bad value: refused, with the server's reason, and nothing changed.
    page.eval(&format!(
        "const r = document.querySelector('{row}');
         r.querySelector('input[name=retention_days]').value = '0';
         r.querySelector('button').click(); return true;"
    ))
    .await?;
    page.wait_until(
        &format!("document.querySelector('{row}').dataset.saved === 'error'"),
        WAIT,
        "document.getElementById('recSettings').innerText",
    )
    .await?;
    let text = page
        .eval_expr(&format!("document.querySelector('{row}').innerText"))
        .await?;
    assert!(
        text.as_str().unwrap_or("").contains("retention_days"),
        "{text}"
    );
    // Off, kept 30 days.
    page.eval(&format!(
        "const r = document.querySelector('{row}');
         r.querySelector('input[name=record_lessons]').checked = false;
         r.querySelector('input[name=retention_days]').value = '30';
         r.querySelector('button').click(); return true;"
    ))
    .await?;
    page.wait_until(
        &format!("document.querySelector('{row}').dataset.saved === '1'"),
        WAIT,
        "document.getElementById('recSettings').innerText",
    )
    .await?;
    let (s, v) = app
        .call(
            Some(&app.admin),
            Method::GET,
            &format!("/api/schools/{}", f.hub_school),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["record_lessons"], false, "{v}");
    assert_eq!(v["retention_days"], 30, "{v}");
    page.close().await?;
    Ok(())
}

/// Inserts an export job of recording `rid` as the runner leaves it (the encoder itself is
/// `tests/gst_export.rs`'s); its id.
async fn export_row(
    app: &App,
    rid: i64,
    preset: &str,
    state: &str,
    progress: i64,
    outcome: Option<Value>,
    error: Option<&str>,
) -> i64 {
    let (id,): (i64,) = sqlx::query_as(
        "INSERT INTO export_jobs (recording_id, preset, state, progress, outcome, error, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, 0) RETURNING id",
    )
    .bind(rid)
    .bind(preset)
    .bind(state)
    .bind(progress)
    .bind(outcome.map(|o| o.to_string()))
    .bind(error)
    .fetch_one(app.server.state().school.store.pool())
    .await
    .expect("export job");
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_player_page_shows_exports_live_with_downloads_and_failures() -> Result<()> {
    let Some(browser) = Browser::start_or_skip().await else {
        return Ok(());
    };
    let app = App::start(Backend::Sqlite).await.expect("server");
    let f = fixture(&app).await;
    let l = lesson(&app, &f, "delivery", "08:00", "08:40").await;
    let rid = insert(
        &app.server,
        Some(l),
        at("08:00"),
        at("08:40"),
        Some(&three_sources(2)),
    )
    .await;
    // A finished export's files beside the recording's, as the runner writes them.
    let school = &app.server.state().school;
    let dir = school
        .config
        .recording
        .dir_in(&school.config.data.dir)
        .join(rid.to_string());
    std::fs::write(dir.join("export-showcase.mp4"), b"not really an mp4")?;
    std::fs::write(dir.join("export-showcase.jpg"), b"not really a jpeg")?;
    let outcome = json!({"preset": "showcase", "file": "export-showcase.mp4",
        "thumbnail": "export-showcase.jpg", "width": 1280, "height": 720, "video_kbps": 900,
        "duration_ms": 2000, "elapsed_ms": 500, "speed": 4.0});
    let done = export_row(&app, rid, "showcase", "done", 1000, Some(outcome), None).await;
    let failed = export_row(
        &app,
        rid,
        "composite",
        "failed",
        300,
        None,
        Some("no classroom camera to compose"),
    )
    .await;
    let running = export_row(&app, rid, "premium", "running", 400, None, None).await;

    // An observer may play the recording but not export it: no exports box.
    let page = browser.new_page().await?;
    log_in(&page, &app.base, "observer1").await?;
    page.goto(&format!("{}/player?recording={rid}", app.base))
        .await?;
    page.wait_until(
        "window.classrelayPlayer && window.classrelayPlayer.player",
        WAIT,
        "document.body.innerText",
    )
    .await?;
    assert_eq!(
        page.eval_expr("document.getElementById('exports').hidden")
            .await?,
        json!(true)
    );
    page.close().await?;

    // The lesson's teacher: every job with its state, progress, downloads and reason.
    let page = browser.new_page().await?;
    log_in(&page, &app.base, "wang").await?;
    page.goto(&format!("{}/player?recording={rid}", app.base))
        .await?;
    page.wait_until(
        "window.classrelayPlayer && window.classrelayPlayer.player && document.querySelectorAll('#exportJobs li').length === 3",
        WAIT,
        "document.body.innerText",
    )
    .await?;
    let jobs = page
        .eval_expr(
            "[...document.querySelectorAll('#exportJobs li')].map((li) => [Number(li.dataset.job), li.dataset.state, li.innerText])",
        )
        .await?;
    let by_id = |id: i64| -> (String, String) {
        let j = jobs
            .as_array()
            .unwrap()
            .iter()
            .find(|j| j[0] == id)
            .unwrap_or_else(|| panic!("job {id}: {jobs}"));
        (
            j[1].as_str().unwrap().to_string(),
            j[2].as_str().unwrap().to_string(),
        )
    };
    let (s, text) = by_id(running);
    assert_eq!(s, "running");
    assert!(text.contains("导出中") && text.contains("40%"), "{text}");
    let (s, text) = by_id(failed);
    assert_eq!(s, "failed");
    assert!(
        text.contains("失败") && text.contains("no classroom camera to compose"),
        "{text}"
    );
    let (s, text) = by_id(done);
    assert_eq!(s, "done");
    assert!(
        text.contains("下载 MP4") && text.contains("1280×720"),
        "{text}"
    );
    // The downloads are the export's files.
    let links = page
        .eval_expr(&format!(
            "[...document.querySelectorAll('#exportJobs li[data-job=\"{done}\"] a')].map((a) => a.getAttribute('href'))"
        ))
        .await?;
    for (href, want) in links
        .as_array()
        .unwrap()
        .iter()
        .zip([&b"not really an mp4"[..], &b"not really a jpeg"[..]])
    {
        let resp = app
            .http
            .get(format!("{}{}", app.base, href.as_str().unwrap()))
            .bearer_auth(&f.teacher_login)
            .send()
            .await?;
        assert_eq!(resp.status(), StatusCode::OK, "{href}");
        assert!(resp.headers()["content-disposition"]
            .to_str()?
            .starts_with("attachment"));
        assert_eq!(&resp.bytes().await?[..], want, "{href}");
    }
    // The buttons say whether this build can export.
    let (_, list) = app
        .call(
            Some(&f.teacher_login),
            Method::GET,
            &format!("/api/lessons/{l}/exports"),
            None,
        )
        .await;
    let disabled = page
        .eval_expr("[...document.querySelectorAll('#exportAsk button')].map((b) => b.disabled)")
        .await?;
    let off = list["available"] != true;
    assert_eq!(disabled, json!([off, off, off]), "{list}");
    if !off {
        // A build with GStreamer (`.ci/run`'s gst step): a click exports for real, the job's
        // progress shows live, and its MP4 downloads.
        page.eval("document.querySelector('#exportAsk button[data-preset=showcase]').click(); return true;")
            .await?;
        // The new job is the one after the three made above (the made-up `done` one already
        // has its MP4 link: waiting on any showcase job would not wait at all).
        let seeded = done.max(failed).max(running);
        page.wait_until(
            &format!(
                "[...document.querySelectorAll('#exportJobs li[data-preset=showcase]')].some((li) => li.dataset.state === 'done' && Number(li.dataset.job) > {seeded} && li.querySelector('a.ex-mp4'))
                 && document.querySelectorAll('#exportJobs li').length === 4"
            ),
            Duration::from_secs(120),
            "document.getElementById('exportJobs').innerText",
        )
        .await?;
        let href = page
            .eval_expr(&format!(
                "[...document.querySelectorAll('#exportJobs li[data-preset=showcase]')].find((li) => Number(li.dataset.job) > {seeded}).querySelector('a.ex-mp4').getAttribute('href')"
            ))
            .await?;
        let mp4 = app
            .http
            .get(format!("{}{}", app.base, href.as_str().unwrap()))
            .bearer_auth(&f.teacher_login)
            .send()
            .await?
            .bytes()
            .await?;
        assert_eq!(&mp4[4..8], b"ftyp", "an MP4");
    }
    // The running job moves on and fails: the page shows both without a reload, pushed on the
    // recording's event stream, with no further read of the jobs route (no polling).
    page.eval("window.samePage = true; return true;").await?;
    let reads = "performance.getEntriesByType('resource').filter((e) => e.name.includes('/exports')).length";
    let before = page.eval_expr(reads).await?;
    classrelay::school::exports::set_progress(school, running, 700).await?;
    page.wait_until(
        &format!("window.samePage === true && document.querySelector('#exportJobs li[data-job=\"{running}\"]').innerText.includes('70%')"),
        WAIT,
        "document.getElementById('exportJobs').innerText",
    )
    .await?;
    classrelay::school::exports::finish(school, running, Err("encoder stopped")).await?;
    page.wait_until(
        &format!("window.samePage === true && document.querySelector('#exportJobs li[data-job=\"{running}\"]').dataset.state === 'failed'"),
        WAIT,
        "document.getElementById('exportJobs').innerText",
    )
    .await?;
    assert_eq!(
        page.eval_expr(reads).await?,
        before,
        "the jobs route is not read again"
    );
    assert_eq!(
        page.eval_expr("window.exportStreams").await?,
        json!(1),
        "one event stream followed the jobs"
    );
    let text = page
        .eval_expr(&format!(
            "document.querySelector('#exportJobs li[data-job=\"{running}\"]').innerText"
        ))
        .await?;
    assert!(text.as_str().unwrap().contains("encoder stopped"), "{text}");
    page.close().await?;
    Ok(())
}
