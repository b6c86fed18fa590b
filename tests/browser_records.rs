//! End to end in headless Chromium (issue 21): an observer codes ten minutes of S-T on a
//! lesson with the keyboard — 20 samples at the default 30 s interval, each pressed when the
//! workspace prompts at its tick, with the page's clock driven forward 30 s per tick instead
//! of waiting ten real minutes — scores the rubric and submits; the lesson's teacher then
//! opens their record page (/record), which shows the new result in its table and charts,
//! and clicking its link loads the observer's page on that observation. Drawn in a county
//! inspection (抽检) and failed there, the result shows the round and the outcome, and the
//! teacher appeals it from the page. The English page shows no untranslated key.
//!
//! Run: `cargo test --test browser_records` (needs `chromium` and `chromium-driver`).

mod support;

use std::time::Duration;

use anyhow::Result;
use fantoccini::Locator;
use support::browser::{Browser, Page};
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
