//! The sampling-inspection dashboard (/inspect) in headless Chromium: a county round is drawn
//! through the API and its two reviews straddle the pass mark, so the server adds a third;
//! the round's manager then sees the seed, the dispute, the progress and the pass rate per
//! unit on the page, Chinese first and in English with no untranslated key; a reviewer's
//! page lists their review under its pseudonym, shows no school name, and plays the lesson's
//! blinded recording; the manager edits an open round's reviewer pool on the page (adds,
//! removes, flags experts) and the server's pool follows.
//!
//! Run: `cargo test --test browser_inspect` (needs `chromium` and `chromium-driver`).

mod support;

use std::time::Duration;

use anyhow::Result;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use support::browser::{Browser, Page};
use support::school::{fixture, lesson, App, Backend};

const WAIT: Duration = Duration::from_secs(30);

async fn ok(app: &App, token: &str, m: Method, path: &str, body: Option<Value>) -> Value {
    let (s, v) = app.call(Some(token), m.clone(), path, body).await;
    assert!(s.is_success(), "{m} {path}: {s} {v}");
    v
}

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
async fn the_dashboard_shows_progress_disputes_and_pass_rates() -> Result<()> {
    let Some(browser) = Browser::start_or_skip().await else {
        return Ok(());
    };
    let app = App::start(Backend::Sqlite).await.expect("server");
    let f = fixture(&app).await;
    // One submitted S-T observation at the hub school.
    let l = lesson(&app, &f, "delivery", "08:00", "08:40").await;
    let o = ok(
        &app,
        &f.observer_login,
        Method::POST,
        "/api/observations",
        Some(json!({"lesson_id": l, "methods": ["st"]})),
    )
    .await["id"]
        .as_i64()
        .unwrap();
    for (p, b) in [
        ("codes", Some(json!({"method": "st", "codes": "TTSSTTTS"}))),
        ("submit", None),
    ] {
        ok(
            &app,
            &f.observer_login,
            Method::POST,
            &format!("/api/observations/{o}/{p}"),
            b,
        )
        .await;
    }
    // Three reviewers of another county; a round drawn by the county's inspector.
    let r2 = app
        .create(
            "/api/regions",
            json!({"province": "四川省", "city": "成都市", "county": "武侯区"}),
        )
        .await;
    let mut reviewers = Vec::new();
    for name in ["rev_1", "rev_2", "rev_3"] {
        let id = app
            .create(
                "/api/users",
                json!({"username": name, "display_name": name, "role": "inspector",
                       "password": "password-123", "scope": "county", "region_id": r2}),
            )
            .await;
        reviewers.push((id, app.login(name, "password-123").await, name));
    }
    let round = ok(
        &app,
        &f.inspector_login,
        Method::POST,
        "/api/inspections/rounds",
        Some(json!({"name": "2026秋 县级抽检", "level": "county", "region_id": f.region, "seed": 424242})),
    )
    .await["round"]["id"]
        .as_i64()
        .unwrap();
    let pool: Vec<Value> = reviewers
        .iter()
        .map(|(id, _, _)| json!({"user_id": id}))
        .collect();
    ok(
        &app,
        &f.inspector_login,
        Method::PUT,
        &format!("/api/inspections/rounds/{round}/reviewers"),
        Some(json!({ "reviewers": pool })),
    )
    .await;
    let d = ok(
        &app,
        &f.inspector_login,
        Method::POST,
        &format!("/api/inspections/rounds/{round}/draw"),
        None,
    )
    .await;
    // The two reviews straddle 60: a third is created; it decides (pass).
    let mut scores = [75.0, 50.0].into_iter();
    for r in d["samples"][0]["reviews"].as_array().unwrap() {
        let (_, tok, _) = reviewers
            .iter()
            .find(|(id, _, _)| r["reviewer_id"] == *id)
            .unwrap();
        ok(
            &app,
            tok,
            Method::PUT,
            &format!("/api/inspections/reviews/{}", r["id"]),
            Some(json!({"score": scores.next().unwrap()})),
        )
        .await;
    }
    let (s, d) = app
        .call(
            Some(&f.inspector_login),
            Method::GET,
            &format!("/api/inspections/rounds/{round}"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let third = &d["samples"][0]["reviews"][2];
    assert_eq!(third["reason"], "dispute", "{d}");
    let (_, _, name3) = reviewers
        .iter()
        .find(|(id, _, _)| third["reviewer_id"] == *id)
        .unwrap()
        .clone();

    // The lesson's processed recording: the reviewer plays it blinded (its Title blanked).
    support::stdraft::stored_recording(&app, l, 3).await;

    // The third reviewer's page: the review under its pseudonym, no school name.
    let page = browser
        .new_page_with_flags(&["--window-size=1280,900"])
        .await?;
    log_in(&page, &app, name3, "/inspect").await?;
    page.goto(&format!("{}/inspect", app.base)).await?;
    page.wait_until(
        "window.classrelayInspect && document.querySelector('#reviewList tbody tr')",
        WAIT,
        "document.body.innerText",
    )
    .await?;
    let text = page.eval_expr("document.body.innerText").await?;
    let text = text.as_str().unwrap();
    assert!(
        text.contains("S-001") && text.contains("争议复检"),
        "{text}"
    );
    for secret in ["成都七中", "昭觉县", "王老师", "Unit 3 Colours"] {
        assert!(
            !text.contains(secret),
            "{secret} shown to a reviewer: {text}"
        );
    }
    // The blinded recording plays in the page: Chromium reads the served file's metadata
    // (its duration), so the blanked copy is still a good WebM.
    let src = page
        .wait_until(
            "(() => { const a = document.querySelector('#reviewList tbody tr audio');
               return a && a.readyState >= 1 && Number.isFinite(a.duration) && a.duration > 1 && a.getAttribute('src'); })()",
            WAIT,
            "document.querySelector('#reviewList tbody tr').innerHTML",
        )
        .await?;
    let src = src.as_str().unwrap();
    assert!(
        src.starts_with("/api/inspections/reviews/") && src.ends_with("/media/0"),
        "{src}"
    );
    page.eval(
        "const r = document.querySelector('#reviewList tbody tr');
         r.querySelector('input').value = '70'; r.querySelector('button').click(); return true;",
    )
    .await?;
    page.wait_until(
        "document.querySelector('#reviewList tbody tr button').textContent.includes('70')",
        WAIT,
        "document.body.innerText",
    )
    .await?;
    page.close().await?;

    // The manager's dashboard, Chinese first.
    let page = browser
        .new_page_with_flags(&["--window-size=1280,900"])
        .await?;
    log_in(&page, &app, "inspector1", "/inspect").await?;
    page.goto(&format!("{}/inspect?round={round}", app.base))
        .await?;
    page.wait_until(
        "window.classrelayInspect && document.querySelector('#progress tr[data-key=\"disputes\"]')",
        WAIT,
        "document.body.innerText",
    )
    .await?;
    let cell = |key: &str| {
        format!(
            "document.querySelector('#progress tr[data-key=\"{key}\"] td:last-child').textContent"
        )
    };
    assert_eq!(page.eval_expr(&cell("disputes")).await?, "1");
    assert_eq!(page.eval_expr(&cell("passed")).await?, "1");
    assert_eq!(page.eval_expr(&cell("graded")).await?, "3");
    assert_eq!(
        page.eval_expr("document.getElementById('roundSeed').textContent")
            .await?,
        "424242"
    );
    assert_eq!(
        page.eval_expr("document.querySelector('#units td.rate').textContent")
            .await?,
        "100.0%"
    );
    let text = page.eval_expr("document.body.innerText").await?;
    let text = text.as_str().unwrap();
    assert!(
        text.contains("各单位合格率") && text.contains("成都七中") && text.contains("有争议"),
        "{text}"
    );
    // English: every label translated.
    page.goto(&format!("{}/inspect?round={round}&lang=en", app.base))
        .await?;
    page.wait_until(
        "window.classrelayInspect && document.querySelector('#progress tr')",
        WAIT,
        "document.body.innerText",
    )
    .await?;
    let text = page.eval_expr("document.body.innerText").await?;
    let text = text.as_str().unwrap();
    assert!(
        text.contains("Pass rate per unit") && text.contains("Dispute re-check"),
        "{text}"
    );
    assert!(
        !text.contains("ins_") && !text.contains("obs_"),
        "untranslated key: {text}"
    );

    // The reviewer-pool editor of an open round: the manager adds two reviewers by user id
    // (one an expert), saves, then removes one and makes the other an expert; the server's
    // pool follows each save. The manager cannot put themself in the pool (not blind): the
    // page shows the refusal and the pool stays.
    let open = ok(
        &app,
        &f.inspector_login,
        Method::POST,
        "/api/inspections/rounds",
        Some(json!({"name": "补充抽检", "level": "county", "region_id": f.region})),
    )
    .await["round"]["id"]
        .as_i64()
        .unwrap();
    let pool_of = |round: i64| {
        let app = &app;
        let tok = f.inspector_login.clone();
        async move {
            let d = ok(
                app,
                &tok,
                Method::GET,
                &format!("/api/inspections/rounds/{round}"),
                None,
            )
            .await;
            d["reviewers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| {
                    (
                        m["user_id"].as_i64().unwrap(),
                        m["expert"].as_bool().unwrap(),
                    )
                })
                .collect::<Vec<_>>()
        }
    };
    page.goto(&format!("{}/inspect?round={open}&lang=zh", app.base))
        .await?;
    page.wait_until(
        "window.classrelayInspect && !document.getElementById('poolAdd').hidden",
        WAIT,
        "document.body.innerText",
    )
    .await?;
    let text = page.eval_expr("document.body.innerText").await?;
    assert!(text.as_str().unwrap().contains("评审专家库"), "{text}");
    let (r1, r2) = (reviewers[0].0, reviewers[1].0);
    for (id, expert) in [(r1, true), (r2, false)] {
        page.eval(&format!(
            "document.getElementById('poolId').value = '{id}';
             document.getElementById('poolExpert').checked = {expert};
             document.querySelector('#poolAdd button[type=submit]').click(); return true;"
        ))
        .await?;
    }
    page.eval("document.getElementById('poolSave').click(); return true;")
        .await?;
    page.wait_until(
        "document.getElementById('poolState').textContent === '已保存'",
        WAIT,
        "document.body.innerText",
    )
    .await?;
    assert_eq!(pool_of(open).await, vec![(r1, true), (r2, false)]);
    page.eval(&format!(
        "document.querySelector('#pool tr[data-user=\"{r2}\"] input.expert').click();
         document.querySelector('#pool tr[data-user=\"{r1}\"] button.remove').click();
         document.getElementById('poolSave').click(); return true;"
    ))
    .await?;
    page.wait_until(
        &format!(
            "document.getElementById('poolState').textContent === '已保存'
             && document.querySelectorAll('#pool tbody tr').length === 1
             && document.querySelector('#pool tr[data-user=\"{r2}\"] input.expert').checked"
        ),
        WAIT,
        "document.body.innerText",
    )
    .await?;
    assert_eq!(pool_of(open).await, vec![(r2, true)]);
    let me = ok(&app, &f.inspector_login, Method::GET, "/api/me", None).await;
    let manager = me["id"].as_i64().unwrap();
    page.eval(&format!(
        "document.getElementById('poolId').value = '{manager}';
         document.querySelector('#poolAdd button[type=submit]').click();
         document.getElementById('poolSave').click(); return true;"
    ))
    .await?;
    page.wait_until(
        "!document.getElementById('error').hidden",
        WAIT,
        "document.body.innerText",
    )
    .await?;
    assert_eq!(pool_of(open).await, vec![(r2, true)], "refused, unchanged");
    page.close().await?;
    Ok(())
}
