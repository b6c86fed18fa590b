//! End to end in headless Chromium (issue 21): an observer codes ten minutes of S-T on a
//! lesson with the keyboard — 20 samples at the default 30 s interval, each pressed when the
//! workspace prompts at its tick, with the page's clock driven forward 30 s per tick instead
//! of waiting ten real minutes — scores the rubric and submits; the lesson's teacher then
//! opens their record page (/record), which shows the new result in its table and charts,
//! and clicking its link loads the observer's page on that observation. Drawn in a county
//! inspection (抽检) and failed there, the result shows the round and the outcome, and the
//! teacher appeals it from the page. The English page shows no untranslated key.
//! And the evidence form: the teacher adds ability-point evidence with a recording clip (in
//! and out picked on the player with the keyboard, never typed) and a file; the record shows
//! it, and its clip plays from the in point and pauses at the out point with every source there.
//!
//! Run: `cargo test --test browser_records` (needs `chromium` and `chromium-driver`).

mod support;

use std::time::Duration;

use anyhow::Result;
use fantoccini::Locator;
use support::browser::{Browser, Page};
use support::recorded::{insert, three_sources};
use support::school::{at, fixture, inspector, lesson, App, Backend};

const WAIT: Duration = Duration::from_secs(30);

async fn log_in(page: &Page, app: &App, user: &str, next: &str) -> Result<()> {
    page.goto(&format!("{}/login?next={next}", app.base))
        .await?;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observer_codes_ten_minutes_and_the_record_links_back() -> Result<()> {
    let Some(browser) = Browser::start_or_skip().await else {
        return Ok(());
    };
    let app = App::start(Backend::Sqlite).await.expect("server");
    let f = fixture(&app).await;
    let l = lesson(&app, &f, "delivery", "08:00", "08:40").await;

    // The observer opens a rubric + S-T observation of the lesson.
    let obs = browser
        .new_page_with_flags(&["--window-size=1280,900"])
        .await?;
    log_in(&obs, &app, "observer1", "/observe").await?;
    obs.goto(&format!("{}/observe", app.base)).await?;
    obs.wait_until(
        &format!(
            "window.classrelayObserve && document.querySelector('#lesson option[value=\"{l}\"]')"
        ),
        WAIT,
        "document.body.innerText",
    )
    .await?;
    obs.eval(&format!(
        "document.getElementById('lesson').value = '{l}';
         document.getElementById('interval').value = '30';
         document.getElementById('start').click(); return true;"
    ))
    .await?;
    let id = obs
        .wait_until(
            "window.classrelayObserve && document.getElementById('obsId').textContent",
            WAIT,
            "document.body.innerText",
        )
        .await?;
    let id: i64 = id.as_str().unwrap().parse()?;

    // Drive the page's clock: Date.now runs `skew` ms ahead of the real one, and each tick
    // moves it 30 s on; the workspace's 250 ms timer sees the interval pass and prompts.
    obs.eval(
        "window.skew = 0; const real = Date.now.bind(Date);
         Date.now = () => real() + window.skew; return true;",
    )
    .await?;
    let want = "TTTTSSTTSTTTSSSSTTTT";
    let coder = obs.client().find(Locator::Id("stCoder")).await?;
    for (i, key) in want.chars().enumerate() {
        obs.eval("window.skew += 30000; return true;").await?;
        // The prompt at this tick…
        obs.wait_until(
            "document.getElementById('tick').classList.contains('due')",
            WAIT,
            "document.getElementById('clock').textContent",
        )
        .await?;
        // …answered with the key, which the server counts.
        coder.send_keys(&key.to_string()).await?;
        obs.wait_until(
            &format!(
                "document.getElementById('stFigures').dataset.n === '{}' && !document.getElementById('tick').classList.contains('due')",
                i + 1
            ),
            WAIT,
            "document.getElementById('stCodes').textContent",
        )
        .await?;
    }
    // Ten minutes of lesson time have passed on the page's clock (plus the real seconds).
    let clock = obs
        .eval_expr("document.getElementById('clock').textContent")
        .await?;
    assert!(clock.as_str().unwrap().starts_with("10:"), "{clock}");
    assert_eq!(
        obs.eval_expr("document.getElementById('stCodes').textContent")
            .await?,
        want
    );
    // Every rubric item at 0.8 of its weight (80, 良好), then submit.
    obs.eval(
        "for (const i of document.querySelectorAll('#rubricItems input[data-item]')) i.value = Number(i.max) * 0.8;
         document.querySelector('#rubricForm button[type=submit]').click(); return true;",
    )
    .await?;
    obs.wait_until(
        "document.getElementById('rubricTotal').textContent === '80'",
        WAIT,
        "document.getElementById('rubricTotal').textContent",
    )
    .await?;
    obs.eval("document.getElementById('submit').click(); return true;")
        .await?;
    obs.wait_until(
        "document.getElementById('state').dataset.state === 'submitted'",
        WAIT,
        "document.body.innerText",
    )
    .await?;
    obs.close().await?;

    // After the lesson, its teacher opens their record.
    app.clock.set(at("09:00"));
    let rec = browser
        .new_page_with_flags(&["--window-size=1280,900"])
        .await?;
    log_in(&rec, &app, "wang", "/record").await?;
    rec.goto(&format!("{}/record?term=2026秋", app.base))
        .await?;
    rec.wait_until(
        "window.classrelayRecord && window.classrelayRecord.ready",
        WAIT,
        "document.body.innerText",
    )
    .await?;
    // Chinese first.
    assert_eq!(
        rec.eval_expr("document.querySelector('h1 [data-i18n=rec_title]').textContent")
            .await?,
        "教师数字档案"
    );
    assert_eq!(
        rec.eval_expr("document.getElementById('teacherName').textContent")
            .await?,
        "王老师（T001）"
    );
    // The new result: its row (混合型: N 20, N_T 13, g 7 → Rt 0.65, Ch 0.3), its point on
    // the rubric trend, its bar among the S-T types, and the lesson counted.
    let row = format!("#resultRows tr[data-obs=\"{id}\"]");
    assert_eq!(
        rec.eval_expr(&format!(
            "document.querySelector('{row} .stType').textContent"
        ))
        .await?,
        "混合型"
    );
    let cells = rec
        .eval_expr(&format!("document.querySelector('{row}').innerText"))
        .await?;
    let cells = cells.as_str().unwrap();
    assert!(
        cells.contains("80 良好") && cells.contains("0.650") && cells.contains("0.300"),
        "{cells}"
    );
    assert_eq!(
        rec.eval_expr(&format!(
            "!!document.querySelector('#chartRubric circle[data-obs=\"{id}\"]')"
        ))
        .await?,
        true
    );
    assert_eq!(
        rec.eval_expr("document.querySelector('#chartSt rect[data-type=mixed]').dataset.count")
            .await?,
        "1"
    );
    assert_eq!(
        rec.eval_expr(
            "document.querySelector('#teachingRows tr[data-role=hub] strong').textContent"
        )
        .await?,
        "1"
    );
    // Printable: the print button and the CSV link point where they should.
    assert_eq!(
        rec.eval_expr("document.getElementById('csv').getAttribute('href')")
            .await?,
        format!("/api/teachers/{}/record.csv?term=2026%E7%A7%8B", f.teacher)
    );

    // The link back: click it, and the observer's page loads that observation.
    let link = rec
        .client()
        .find(Locator::Css(&format!(
            "#resultRows a.obsLink[data-obs=\"{id}\"]"
        )))
        .await?;
    link.click().await?;
    rec.wait_until(
        &format!(
            "location.pathname === '/observe' && window.classrelayObserve && document.getElementById('obsId').textContent === '{id}' && document.getElementById('state').dataset.state === 'submitted'"
        ),
        WAIT,
        "location.href + ' ' + document.body.innerText",
    )
    .await?;
    assert_eq!(
        rec.eval_expr("document.getElementById('stCodes').textContent")
            .await?,
        want
    );

    // Drawn in a county inspection and failed (50 < 60): the row shows the round and the
    // outcome; the teacher appeals from the page and it is under review again.
    let call =
        |token: String, m: reqwest::Method, path: String, body: Option<serde_json::Value>| {
            let app = &app;
            async move {
                let (s, v) = app.call(Some(&token), m.clone(), &path, body).await;
                assert!(s.is_success(), "{m} {path}: {s} {v}");
                v
            }
        };
    let r2 = app
        .create(
            "/api/regions",
            serde_json::json!({"province": "四川省", "city": "成都市", "county": "武侯区"}),
        )
        .await;
    let (rev, rev_tok) = inspector(
        &app,
        "rev_b",
        serde_json::json!({"scope": "county", "region_id": r2}),
    )
    .await;
    let round = call(
        f.inspector_login.clone(),
        reqwest::Method::POST,
        "/api/inspections/rounds".into(),
        Some(
            serde_json::json!({"name": "县级抽检", "level": "county", "region_id": f.region,
                                "ratio": 1.0, "reviews_per_sample": 1}),
        ),
    )
    .await["round"]["id"]
        .as_i64()
        .unwrap();
    call(
        f.inspector_login.clone(),
        reqwest::Method::PUT,
        format!("/api/inspections/rounds/{round}/reviewers"),
        Some(serde_json::json!({"reviewers": [{"user_id": rev}]})),
    )
    .await;
    let d = call(
        f.inspector_login.clone(),
        reqwest::Method::POST,
        format!("/api/inspections/rounds/{round}/draw"),
        None,
    )
    .await;
    call(
        rev_tok,
        reqwest::Method::PUT,
        format!(
            "/api/inspections/reviews/{}",
            d["samples"][0]["reviews"][0]["id"]
        ),
        Some(serde_json::json!({"score": 50})),
    )
    .await;
    rec.goto(&format!("{}/record?term=2026秋&lang=zh", app.base))
        .await?;
    rec.wait_until(
        &format!("window.classrelayRecord && document.querySelector('{row} .inspection')"),
        WAIT,
        "document.body.innerText",
    )
    .await?;
    let cell = rec
        .eval_expr(&format!(
            "document.querySelector('{row} .inspections').innerText"
        ))
        .await?;
    let cell = cell.as_str().unwrap();
    assert!(
        cell.contains("县级") && cell.contains("县级抽检") && cell.contains("不合格"),
        "{cell}"
    );
    rec.eval(&format!(
        "window.prompt = () => '课堂以学生活动为主';
         document.querySelector('{row} button.appeal').click(); return true;"
    ))
    .await?;
    rec.wait_until(
        &format!(
            "document.querySelector('{row} .inspections').innerText.includes('已申诉')
             && !document.querySelector('{row} button.appeal')"
        ),
        WAIT,
        "document.body.innerText",
    )
    .await?;

    // English: every label translated (no `rec_` key shown).
    rec.goto(&format!("{}/record?term=2026秋&lang=en", app.base))
        .await?;
    rec.wait_until(
        "window.classrelayRecord && window.classrelayRecord.ready",
        WAIT,
        "document.body.innerText",
    )
    .await?;
    let text = rec.eval_expr("document.body.innerText").await?;
    let text = text.as_str().unwrap();
    assert!(
        text.contains("Teacher record") && text.contains("Mixed"),
        "{text}"
    );
    assert!(
        !text.contains("rec_") && !text.contains("obs_"),
        "untranslated key: {text}"
    );
    rec.close().await?;
    Ok(())
}

/// One frame at 30 fps, ms: how close a source's picture can be to a moment.
const FRAME_MS: f64 = 1000.0 / 30.0;

/// Every active source of a `positions()` answer is on `ms` of the lesson timeline (within a
/// frame).
fn all_at(positions: &serde_json::Value, ms: f64, what: &str) {
    let active: Vec<f64> = positions
        .as_array()
        .expect("positions")
        .iter()
        .filter(|x| x["active"] == true)
        .map(|x| x["timeline_ms"].as_f64().unwrap())
        .collect();
    assert!(!active.is_empty(), "{what}: no source active: {positions}");
    for t in active {
        assert!(
            (t - ms).abs() <= FRAME_MS,
            "{what}: a source at {t} ms, not {ms}: {positions}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn teacher_adds_clip_evidence_and_the_clip_plays_from_in_to_out() -> Result<()> {
    let Some(browser) = Browser::start_or_skip().await else {
        return Ok(());
    };
    let app = App::start(Backend::Sqlite).await.expect("server");
    let f = fixture(&app).await;
    let l = lesson(&app, &f, "delivery", "08:00", "08:40").await;
    // A processed recording of it (teacher camera with sound, courseware, classroom camera),
    // and the lesson over, so the record lists it.
    let rid = insert(
        &app.server,
        Some(l),
        at("08:00"),
        at("08:40"),
        Some(&three_sources(12)),
    )
    .await;
    app.clock.set(at("10:00"));
    let file = app.dir.path().join("jiaoan.pdf");
    std::fs::write(
        &file,
        b"%PDF-1.4\n% lesson plan\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n",
    )?;

    let page = browser
        .new_page_with_flags(&[
            "--window-size=1280,900",
            "--autoplay-policy=no-user-gesture-required",
        ])
        .await?;
    page.login(&app.base, "wang", "password-123").await?;
    page.goto(&format!("{}/record?term=2026秋", app.base))
        .await?;
    page.wait_until(
        "window.classrelayRecord && window.classrelayRecord.ready && !document.getElementById('evidenceForm').hidden",
        WAIT,
        "document.body.innerText",
    )
    .await?;
    // Chinese first: the pick buttons.
    assert_eq!(
        page.eval_expr("document.getElementById('setIn').textContent + '/' + document.getElementById('setOut').textContent")
            .await?,
        "设为入点/设为出点"
    );
    // The clip's recording, then in and out picked on its player with the keyboard: "2" goes
    // to two tenths of the lesson, I sets the in point; "6", O the out point.
    page.eval_with(
        "const s = document.getElementById('evPoint'); s.value = s.options[0].value;
         const r = document.getElementById('evRecording'); r.value = String(arguments[0]);
         r.dispatchEvent(new Event('change')); return true;",
        vec![rid.into()],
    )
    .await?;
    const P: &str = "window.classrelayRecord.player()";
    page.wait_until(
        &format!("{P} && {P}.positions().every((x) => x.ready >= 1)"),
        WAIT,
        "document.body.innerText",
    )
    .await?;
    let duration = page
        .eval_expr(&format!("{P}.duration"))
        .await?
        .as_f64()
        .unwrap();
    let player = page
        .client()
        .find(Locator::Css("#clipPlayer .player"))
        .await?;
    player.send_keys("2").await?;
    player.send_keys("i").await?;
    player.send_keys("6").await?;
    player.send_keys("o").await?;
    let (want_in, want_out) = ((duration * 0.2).round(), (duration * 0.6).round());
    page.wait_until(
        &format!("document.getElementById('outAt').dataset.ms === '{want_out}'"),
        WAIT,
        "[document.getElementById('inAt').dataset.ms, document.getElementById('outAt').dataset.ms]",
    )
    .await?;
    assert_eq!(
        page.eval_expr("document.getElementById('inAt').dataset.ms")
            .await?,
        format!("{want_in}")
    );
    // A note and a file, then the form's own button.
    page.client()
        .find(Locator::Id("evNote"))
        .await?
        .send_keys("课堂导入片段")
        .await?;
    page.client()
        .find(Locator::Id("evFile"))
        .await?
        .send_keys(&file.display().to_string())
        .await?;
    page.client()
        .find(Locator::Css("#evidenceForm button[type=submit]"))
        .await?
        .click()
        .await?;
    let ev = page
        .wait_until(
            "document.querySelector('#pointRows [data-evidence] button.clipPlay')?.dataset.evidence",
            WAIT,
            "document.getElementById('pointRows').innerText + document.getElementById('error').innerText",
        )
        .await?;
    let ev: i64 = ev.as_str().unwrap().parse()?;
    // Stored as picked: the clip on that recording, the file beside it.
    let (_, r) = app
        .call(
            Some(&f.teacher_login),
            reqwest::Method::GET,
            &format!("/api/teachers/{}/record?term=2026%E7%A7%8B", f.teacher),
            None,
        )
        .await;
    let e = r["abilities"]["points"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["evidence"].as_array().unwrap().iter())
        .find(|e| e["id"] == ev)
        .unwrap_or_else(|| panic!("evidence {ev} in {r}"))
        .clone();
    assert_eq!(
        (
            &e["recording_id"],
            e["in_ms"].as_f64(),
            e["out_ms"].as_f64()
        ),
        (&serde_json::json!(rid), Some(want_in), Some(want_out)),
        "{e}"
    );
    assert_eq!(e["note"], "课堂导入片段", "{e}");
    assert_eq!(e["files"][0]["name"], "jiaoan.pdf", "{e}");
    let shown = page
        .eval_expr(&format!(
            "document.querySelector('#pointRows [data-evidence=\"{ev}\"]').innerText"
        ))
        .await?;
    assert!(shown.as_str().unwrap().contains("jiaoan.pdf"), "{shown}");

    // The clip plays: from the in point (every source there), then pauses at the out point.
    page.eval_with(
        "document.querySelector(`#pointRows button.clipPlay[data-evidence=\"${arguments[0]}\"]`).click(); return true;",
        vec![ev.into()],
    )
    .await?;
    let log = page
        .wait_until(
            "window.classrelayRecord.clipLog.some((x) => x.event === 'end') && window.classrelayRecord.clipLog",
            WAIT,
            "window.classrelayRecord.clipLog",
        )
        .await?;
    let start = log
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["event"] == "start" && x["evidence"] == ev)
        .expect("the clip started");
    assert_eq!(start["time"].as_f64(), Some(want_in), "{log}");
    all_at(&start["positions"], want_in, "at the start");
    let end = log
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["event"] == "end" && x["evidence"] == ev)
        .expect("the clip ended");
    // It played through (stopped at or just past out, within a few frames), then was put on
    // the out point exactly, every source there and paused.
    let stopped = end["stopped_at"].as_f64().unwrap();
    assert!(
        stopped >= want_out && stopped < want_out + 250.0,
        "stopped at {stopped}: {log}"
    );
    assert_eq!(end["time"].as_f64(), Some(want_out), "{log}");
    all_at(&end["positions"], want_out, "at the end");
    assert!(
        end["positions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|x| x["paused"] == true),
        "{log}"
    );
    // And it stays paused there.
    let now = page.eval_expr(&format!("{P}.time()")).await?;
    assert_eq!(now.as_f64(), Some(want_out));
    page.close().await?;
    Ok(())
}
