//! The automatic S-T draft in the observer's workspace (/observe), headless Chromium: the
//! lesson has a processed recording (the hub teacher silent for 30 s, made by the server's
//! own processor); the observer codes six samples with the keyboard, asks for the draft with
//! the page's button, and the page shows the draft beside the codes with exactly the samples
//! where they differ marked, and the server's agreement; the English page shows no
//! untranslated key. On a second observation the observer adopts the draft as their own
//! codes and corrects the last sample. The draft is a background job the page follows to its
//! end; on a lesson whose recording has no teacher audio the job fails and the page says why
//! in Chinese. The draft's agreement with real speech is `tests/st_draft_truth.rs`.
//!
//! Run: `cargo test --test browser_st_draft` (needs `chromium` and `chromium-driver`).

mod support;

use std::time::Duration;

use anyhow::Result;
use fantoccini::Locator;
use reqwest::Method;
use serde_json::json;
use support::browser::Browser;
use support::school::{fixture, lesson, App, Backend};
use support::stdraft::{recording_of, silent_recording, SILENT_OPUS};

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_workspace_shows_the_draft_and_marks_where_it_differs() -> Result<()> {
    let Some(browser) = Browser::start_or_skip().await else {
        return Ok(());
    };
    let app = App::start(Backend::Sqlite).await.expect("server");
    let f = fixture(&app).await;
    let l = lesson(&app, &f, "delivery", "08:00", "08:40").await;
    let rec = silent_recording(&app, l, 30).await;
    let (s, o) = app
        .call(
            Some(&f.observer_login),
            Method::POST,
            "/api/observations",
            Some(json!({"lesson_id": l, "methods": ["st"], "interval_s": 5})),
        )
        .await;
    assert!(s.is_success(), "{o}");
    let id = o["id"].as_i64().unwrap();

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
    page.goto(&format!("{}/observe?observation={id}", app.base))
        .await?;
    page.wait_until(
        "window.classrelayObserve && document.getElementById('draftStatus').textContent",
        WAIT,
        "document.body.innerText",
    )
    .await?;
    // Chinese first; no draft yet.
    let status = page
        .eval_expr("document.getElementById('draftStatus').textContent")
        .await?;
    assert_eq!(status, "尚未生成草稿。");

    // Six samples (30 s at 5 s): T S S T S S, with the keyboard.
    let coder = page.client().find(Locator::Id("stCoder")).await?;
    coder.send_keys("tsstss").await?;
    page.wait_until(
        "document.getElementById('stFigures').dataset.n === '6'",
        WAIT,
        "document.getElementById('stCodes').textContent",
    )
    .await?;
    // The draft from the recording: the teacher is silent, so every sample is S; it differs
    // from the observer's at samples 0 and 3.
    page.eval("document.getElementById('draftMake').click(); return true;")
        .await?;
    page.wait_until(
        "document.getElementById('draftTable').dataset.codes === 'SSSSSS'",
        WAIT,
        "document.getElementById('draftStatus').textContent",
    )
    .await?;
    // Made by the server's background job; the page followed it to its end.
    assert_eq!(
        page.eval_expr("[document.getElementById('draftJob').dataset.state, document.getElementById('draftJob').textContent, document.getElementById('draftMake').disabled].join('|')")
            .await?,
        "done|草稿已生成。|false"
    );
    let differs = page
        .eval_expr("document.getElementById('draftTable').dataset.differs")
        .await?;
    assert_eq!(differs, "0,3");
    // Marked in both rows (draft and the observer's), and nowhere else.
    let marked = page
        .eval_expr(
            "[...document.querySelectorAll('#draftTable td.differs')].map((c) => c.textContent).join('')",
        )
        .await?;
    assert_eq!(marked, "SSTT");
    let status = page
        .eval_expr("document.getElementById('draftStatus').textContent")
        .await?;
    let status = status.as_str().unwrap();
    assert!(status.contains(&format!("#{rec}")), "{status}");
    assert!(status.contains("4/6"), "{status}");
    assert!(status.contains("2 处不一致"), "{status}");
    // The server holds the observer's codes, untouched by the draft.
    let (_, v) = app
        .call(
            Some(&f.observer_login),
            Method::GET,
            &format!("/api/observations/{id}/st-draft"),
            None,
        )
        .await;
    assert_eq!(v["observer_codes"], "TSSTSS", "{v}");
    assert_eq!(v["comparison"]["disagree"], json!([0, 3]), "{v}");

    // English: every draft label translated (no key shown).
    page.goto(&format!("{}/observe?observation={id}&lang=en", app.base))
        .await?;
    page.wait_until(
        "window.classrelayObserve && document.getElementById('draftTable').dataset.codes === 'SSSSSS'",
        WAIT,
        "document.body.innerText",
    )
    .await?;
    let text = page.eval_expr("document.body.innerText").await?;
    let text = text.as_str().unwrap();
    assert!(!text.contains("obs_"), "an untranslated key: {text}");
    assert!(text.contains("Automatic S-T draft"), "{text}");
    assert!(text.contains("Agrees with your codes 4/6"), "{text}");

    // A second observation: the observer adopts the draft as their own codes (shown only
    // while they have none), then corrects the last sample with the keyboard.
    let (s, o2) = app
        .call(
            Some(&f.observer_login),
            Method::POST,
            "/api/observations",
            Some(json!({"lesson_id": l, "methods": ["st"], "interval_s": 5})),
        )
        .await;
    assert!(s.is_success(), "{o2}");
    let id2 = o2["id"].as_i64().unwrap();
    page.goto(&format!("{}/observe?observation={id2}", app.base))
        .await?;
    page.wait_until(
        "window.classrelayObserve && document.getElementById('draftStatus').textContent",
        WAIT,
        "document.body.innerText",
    )
    .await?;
    assert_eq!(
        page.eval_expr("document.getElementById('draftAdopt').hidden")
            .await?,
        true,
        "nothing to adopt before a draft"
    );
    page.eval("document.getElementById('draftMake').click(); return true;")
        .await?;
    page.wait_until(
        "!document.getElementById('draftAdopt').hidden",
        WAIT,
        "document.getElementById('draftStatus').textContent",
    )
    .await?;
    page.eval("document.getElementById('draftAdopt').click(); return true;")
        .await?;
    page.wait_until(
        "document.getElementById('stFigures').dataset.n === '6' && document.getElementById('draftAdopt').hidden",
        WAIT,
        "document.getElementById('stCodes').textContent",
    )
    .await?;
    let coder = page.client().find(Locator::Id("stCoder")).await?;
    coder
        .send_keys(&fantoccini::key::Key::Backspace.to_string())
        .await?;
    coder.send_keys("t").await?;
    page.wait_until(
        "document.getElementById('draftTable').dataset.differs === '5'",
        WAIT,
        "document.getElementById('draftTable').dataset.differs",
    )
    .await?;
    let (_, v) = app
        .call(
            Some(&f.observer_login),
            Method::GET,
            &format!("/api/observations/{id2}"),
            None,
        )
        .await;
    assert_eq!(v["codes"]["st"], "SSSSST", "{v}");

    // A lesson whose recording holds only a classroom's audio: the job fails, and the page
    // says why in Chinese (never the server's English reason).
    let l2 = lesson(&app, &f, "delivery", "09:00", "09:40").await;
    recording_of(&app, l2, "c:12", false, &vec![SILENT_OPUS.to_vec(); 600]).await;
    let (s, o3) = app
        .call(
            Some(&f.observer_login),
            Method::POST,
            "/api/observations",
            Some(json!({"lesson_id": l2, "methods": ["st"], "interval_s": 5})),
        )
        .await;
    assert!(s.is_success(), "{o3}");
    page.goto(&format!(
        "{}/observe?observation={}&lang=zh",
        app.base, o3["id"]
    ))
    .await?;
    page.wait_until(
        "window.classrelayObserve && document.getElementById('draftStatus').textContent",
        WAIT,
        "document.body.innerText",
    )
    .await?;
    page.eval("document.getElementById('draftMake').click(); return true;")
        .await?;
    page.wait_until(
        "document.getElementById('draftJob').dataset.state === 'failed'",
        WAIT,
        "document.getElementById('draftJob').textContent",
    )
    .await?;
    assert_eq!(
        page.eval_expr("document.getElementById('draftJob').textContent")
            .await?,
        "草稿生成失败: 录像中没有授课教师的声音，无法生成草稿"
    );
    Ok(())
}
