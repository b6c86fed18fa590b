//! The synced player (/player) and the observer's workspace playing a recorded lesson, in
//! headless Chromium, on a recording the real processor made (teacher camera with sound,
//! courseware from 0.5 s, a classroom camera from 1 s): every source plays; after a seek
//! (by the API of the page, by keyboard) they stay within one frame of each other on the lesson
//! timeline; a click swaps a side picture into the large tile; the English page shows no
//! untranslated key; and in /observe a click on a time-stamped comment seeks the recording to
//! that moment (issue 21 item 2).
//!
//! Run: `cargo test --test browser_player` (needs `chromium` and `chromium-driver`).

mod support;

use std::time::Duration;

use anyhow::Result;
use fantoccini::Locator;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use support::browser::{Browser, Page};
use support::recorded::{insert, three_sources};
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
