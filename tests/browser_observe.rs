//! The observer's workspace (/observe) in headless Chromium: the observer logs in, picks the
//! lesson, opens a rubric + S-T observation, codes ten minutes of S-T with the keyboard
//! (20 samples at the default 30 s: T and S keys, Backspace correcting a wrong key), scores
//! the rubric, leaves a comment, and submits; the server's figures match the keys pressed,
//! the lesson's teacher then reads the submitted observation, and the English page shows no
//! untranslated key. Another observer who follows a link to that observation gets a page
//! saying it is not theirs, in the page's language, with a link to their own list.
//!
//! Run: `cargo test --test browser_observe` (needs `chromium` and `chromium-driver`).

mod support;

use std::time::Duration;

use anyhow::Result;
use fantoccini::key::Key;
use fantoccini::Locator;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use support::browser::Browser;
use support::school::{fixture, lesson, App, Backend};

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observer_codes_st_with_the_keyboard_and_submits() -> Result<()> {
    let Some(browser) = Browser::start_or_skip().await else {
        return Ok(());
    };
    let app = App::start(Backend::Sqlite).await.expect("server");
    let f = fixture(&app).await;
    let l = lesson(&app, &f, "delivery", "08:00", "08:40").await;
    let page = browser
        .new_page_with_flags(&["--window-size=1280,900"])
        .await?;
    page.goto(&format!("{}/login?next=/observe", app.base))
        .await?;
    page.eval(
        "document.getElementById('username').value = 'observer1';
         document.getElementById('password').value = 'password-123';
         document.getElementById('submit').click(); return true;",
    )
    .await?;
    page.wait_until(
        "location.pathname !== '/login'",
        WAIT,
        "document.body.innerText",
    )
    .await?;
    page.goto(&format!("{}/observe", app.base)).await?;
    page.wait_until(
        &format!("document.querySelector('#lesson option[value=\"{l}\"]')"),
        WAIT,
        "document.body.innerText",
    )
    .await?;
    // Chinese first.
    let title = page
        .eval_expr("document.getElementById('start').textContent")
        .await?;
    assert_eq!(title, "开始观察");
    page.eval(&format!(
        "document.getElementById('lesson').value = '{l}';
         document.getElementById('start').click(); return true;"
    ))
    .await?;
    let id = page
        .wait_until(
            "new URLSearchParams(location.search).get('observation') && window.classrelayObserve && document.getElementById('obsId').textContent",
            WAIT,
            "document.body.innerText",
        )
        .await?;
    let id: i64 = id.as_str().unwrap().parse()?;

    // Ten minutes of S-T at 30 s: 20 samples. One wrong key (an S where a T belongs) is
    // corrected with Backspace.
    let want = "TTTTSSTTSTTTSSSSTTTT";
    let coder = page.client().find(Locator::Id("stCoder")).await?;
    coder.send_keys(&want[..9]).await?;
    coder.send_keys("s").await?;
    page.wait_until(
        "document.getElementById('stFigures').dataset.n === '10'",
        WAIT,
        "document.getElementById('stCodes').textContent",
    )
    .await?;
    coder.send_keys(&Key::Backspace.to_string()).await?;
    page.wait_until(
        "document.getElementById('stFigures').dataset.n === '9'",
        WAIT,
        "document.getElementById('stCodes').textContent",
    )
    .await?;
    coder.send_keys(&want[9..]).await?;
    page.wait_until(
        "document.getElementById('stFigures').dataset.n === '20'",
        WAIT,
        "document.getElementById('stCodes').textContent",
    )
    .await?;
    let shown = page
        .eval_expr("document.getElementById('stCodes').textContent")
        .await?;
    assert_eq!(shown, want);
    // N = 20, N_T = 13, g = 7: Rt = 0.65, Ch = 0.3 → mixed (混合型), shown as the server says.
    let ty = page
        .eval_expr("document.getElementById('stFigures').dataset.type")
        .await?;
    assert_eq!(ty, "mixed");
    assert!(page
        .eval_expr("document.getElementById('stFigures').textContent")
        .await?
        .as_str()
        .unwrap()
        .contains("混合型"));
    // The charts load (same-origin, with the login cookie).
    page.wait_until(
        "document.getElementById('stSvg').complete && document.getElementById('stSvg').naturalWidth > 0",
        WAIT,
        "document.getElementById('stSvg').src",
    )
    .await?;

    // Score every rubric item 8 of its weight's worth, save, comment, submit.
    page.eval(
        "for (const i of document.querySelectorAll('#rubricItems input[data-item]')) i.value = Number(i.max) * 0.8;
         document.querySelector('#rubricForm button[type=submit]').click(); return true;",
    )
    .await?;
    page.wait_until(
        "document.getElementById('rubricTotal').textContent === '80'",
        WAIT,
        "document.getElementById('rubricTotal').textContent",
    )
    .await?;
    page.eval(
        "document.getElementById('comment').value = '提问后等待时间不足';
         document.querySelector('#commentForm button').click(); return true;",
    )
    .await?;
    page.wait_until(
        "document.querySelectorAll('#comments li').length === 1",
        WAIT,
        "document.body.innerText",
    )
    .await?;
    page.eval("document.getElementById('submit').click(); return true;")
        .await?;
    page.wait_until(
        "document.getElementById('state').dataset.state === 'submitted'",
        WAIT,
        "document.body.innerText",
    )
    .await?;
    // After submission the keys change nothing.
    coder.send_keys("TTT").await?;

    // What the server holds is what was pressed; the lesson's teacher reads it.
    let (s, v) = app
        .call(
            Some(&f.teacher_login),
            Method::GET,
            &format!("/api/observations/{id}"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["state"], "submitted");
    assert_eq!(v["codes"]["st"], want);
    assert_eq!(
        v["st"],
        json!({"n": 20, "n_t": 13, "runs": 7, "rt": 0.65, "ch": 0.3, "type": "mixed"})
    );
    assert_eq!(v["rubric"]["total"], 80.0);
    assert_eq!(v["rubric"]["band_name"], "良好");
    assert_eq!(v["comments"].as_array().map(Vec::len), Some(1));
    let (_, list) = app
        .call(
            Some(&f.teacher_login),
            Method::GET,
            &format!("/api/observations?teacher_id={}", f.teacher),
            None,
        )
        .await;
    assert!(list
        .as_array()
        .unwrap()
        .iter()
        .any(|o: &Value| o["id"] == id));

    // English: every label translated (no `obs_` key shown).
    page.goto(&format!("{}/observe?observation={id}&lang=en", app.base))
        .await?;
    page.wait_until(
        "window.classrelayObserve && document.getElementById('state').dataset.state",
        WAIT,
        "document.body.innerText",
    )
    .await?;
    let text = page.eval_expr("document.body.innerText").await?;
    let text = text.as_str().unwrap();
    assert!(
        text.contains("Submitted") && text.contains("Mixed"),
        "{text}"
    );
    assert!(!text.contains("obs_"), "untranslated key: {text}");
    page.close().await?;
    Ok(())
}

/// FIAS is coded every 3 s of the lesson: the workspace's FIAS prompt lights when the page's
/// clock passes each 3 s mark and goes out when a FIAS key (1–0) answers it; the server counts
/// the keys. The page's clock is driven as in `browser_records.rs` (Date.now moved on).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fias_prompt_lights_every_three_seconds_and_a_key_clears_it() -> Result<()> {
    let Some(browser) = Browser::start_or_skip().await else {
        return Ok(());
    };
    let app = App::start(Backend::Sqlite).await.expect("server");
    let f = fixture(&app).await;
    let l = lesson(&app, &f, "delivery", "08:00", "08:40").await;
    let page = browser
        .new_page_with_flags(&["--window-size=1280,900"])
        .await?;
    page.goto(&format!("{}/login?next=/observe", app.base))
        .await?;
    page.eval(
        "document.getElementById('username').value = 'observer1';
         document.getElementById('password').value = 'password-123';
         document.getElementById('submit').click(); return true;",
    )
    .await?;
    page.wait_until(
        "location.pathname !== '/login'",
        WAIT,
        "document.body.innerText",
    )
    .await?;
    page.goto(&format!("{}/observe", app.base)).await?;
    page.wait_until(
        &format!("document.querySelector('#lesson option[value=\"{l}\"]')"),
        WAIT,
        "document.body.innerText",
    )
    .await?;
    // FIAS alone.
    page.eval(&format!(
        "document.getElementById('lesson').value = '{l}';
         document.getElementById('m_rubric').checked = false;
         document.getElementById('m_st').checked = false;
         document.getElementById('m_fias').checked = true;
         document.getElementById('start').click(); return true;"
    ))
    .await?;
    let id = page
        .wait_until(
            "new URLSearchParams(location.search).get('observation') && window.classrelayObserve && document.getElementById('obsId').textContent",
            WAIT,
            "document.body.innerText",
        )
        .await?;
    let id: i64 = id.as_str().unwrap().parse()?;
    // Chinese first.
    let label = page
        .eval_expr("document.getElementById('fiasTick').textContent")
        .await?;
    assert_eq!(label, "请按类别");

    page.eval(
        "window.skew = 0; const real = Date.now.bind(Date);
         Date.now = () => real() + window.skew; return true;",
    )
    .await?;
    let want = "4480";
    let coder = page.client().find(Locator::Id("fiasCoder")).await?;
    for (i, key) in want.chars().enumerate() {
        page.eval("window.skew += 3000; return true;").await?;
        // 3 s of lesson time: the prompt lights…
        page.wait_until(
            "document.getElementById('fiasTick').classList.contains('due')",
            WAIT,
            "document.getElementById('clock').textContent",
        )
        .await?;
        // …and the category key puts it out; the server counts the key.
        coder.send_keys(&key.to_string()).await?;
        page.wait_until(
            &format!(
                "document.getElementById('fiasFigures').dataset.n === '{}' && !document.getElementById('fiasTick').classList.contains('due')",
                i + 1
            ),
            WAIT,
            "document.getElementById('fiasCodes').textContent",
        )
        .await?;
    }
    let (s, v) = app
        .call(
            Some(&f.observer_login),
            Method::GET,
            &format!("/api/observations/{id}"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["codes"]["fias"], want);

    // English: the prompt is translated.
    page.goto(&format!("{}/observe?observation={id}&lang=en", app.base))
        .await?;
    page.wait_until(
        "window.classrelayObserve && document.getElementById('state').dataset.state",
        WAIT,
        "document.body.innerText",
    )
    .await?;
    let label = page
        .eval_expr("document.getElementById('fiasTick').textContent")
        .await?;
    assert_eq!(label, "Code a category");
    page.close().await?;
    Ok(())
}

/// A second observer follows a link to the first observer's observation: not a bare 403 but a
/// page that says, in its language, that it is not theirs, with a working link to their own
/// list; a link to no observation at all says that.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_observers_link_shows_a_readable_refusal() -> Result<()> {
    let Some(browser) = Browser::start_or_skip().await else {
        return Ok(());
    };
    let app = App::start(Backend::Sqlite).await.expect("server");
    let f = fixture(&app).await;
    let l = lesson(&app, &f, "delivery", "08:00", "08:40").await;
    let (s, o) = app
        .call(
            Some(&f.observer_login),
            Method::POST,
            "/api/observations",
            Some(json!({"lesson_id": l, "methods": ["st"]})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{o}");
    let id = o["id"].as_i64().unwrap();
    app.create(
        "/api/users",
        json!({"username": "observer2", "display_name": "observer2", "role": "observer",
               "password": "password-123", "scope": "county", "region_id": f.region}),
    )
    .await;
    let page = browser.new_page().await?;
    page.login(&app.base, "observer2", "password-123").await?;
    for (lang, want) in [
        ("zh", format!("观课记录 #{id} 不是你的观察记录")),
        ("en", format!("Observation #{id} is not one of yours")),
    ] {
        page.goto(&format!(
            "{}/observe?observation={id}&lang={lang}",
            app.base
        ))
        .await?;
        page.wait_until(
            "window.classrelayObserve && window.classrelayObserve.ready",
            WAIT,
            "document.body.innerText",
        )
        .await?;
        let v = page
            .eval_expr(
                "({ shown: !document.getElementById('notYours').hidden, status: document.getElementById('notYours').dataset.status, work: !document.getElementById('work').hidden, error: !document.getElementById('error').hidden, text: document.body.innerText })",
            )
            .await?;
        assert_eq!(
            (&v["shown"], &v["status"], &v["work"], &v["error"]),
            (&json!(true), &json!("403"), &json!(false), &json!(false)),
            "{v}"
        );
        let text = v["text"].as_str().unwrap();
        assert!(text.contains(&want), "{lang}: {text}");
        assert!(
            !text.contains("obs_") && !text.contains("403"),
            "{lang}: {text}"
        );
    }
    // The link goes to their own list.
    page.client()
        .find(Locator::Id("notYoursMine"))
        .await?
        .click()
        .await?;
    page.wait_until(
        "location.search === '' && !document.getElementById('picker').hidden",
        WAIT,
        "location.href",
    )
    .await?;
    // An observation that does not exist.
    page.goto(&format!("{}/observe?observation=999999&lang=zh", app.base))
        .await?;
    page.wait_until(
        "window.classrelayObserve && !document.getElementById('notYours').hidden",
        WAIT,
        "document.body.innerText",
    )
    .await?;
    assert_eq!(
        page.eval_expr("document.getElementById('notYoursText').textContent")
            .await?,
        "没有编号为 #999999 的观课记录。"
    );
    Ok(())
}
