//! Every page in both languages, as every role sees it, in headless Chromium: the visible text
//! holds no untranslated key (`mode_delivery`), no `null`/`undefined`/`NaN`/`[object Object]`,
//! no raw ISO time, and every page links the favicon. The pages come from the server's own
//! page table (`classrelay::http::PAGES`), so a page added there is walked without a change
//! here. It must never pass without looking: a page whose text stays empty fails.
//!
//! Run: `cargo test --test page_walk` (needs `chromium` and `chromium-driver`).

mod support;

use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::{json, Value};
use support::browser::{Browser, Page};
use support::school::{at, fixture, lesson, App, Backend};

/// Query parameters a page needs to show its real content; a page not named here is walked
/// without any (it must still show no raw value).
fn query_for(path: &str, lesson: i64) -> String {
    match path {
        "/teach" | "/classroom" | "/observe" => format!("lesson={lesson}&"),
        "/lesson" => format!("id={lesson}&"),
        _ => String::new(),
    }
}

/// What the walker reads from a page: its visible text (body, title, placeholders, tooltips)
/// and each offending match, found by the browser's own regular expressions.
const INSPECT: &str = r##"
const parts = [document.title, document.body ? document.body.innerText : ''];
for (const el of document.querySelectorAll('[placeholder]')) parts.push(el.getAttribute('placeholder'));
const text = parts.join('\n');
const found = (re) => [...new Set((text.match(re) || []))];
return {
  ready: document.readyState,
  text,
  keys: found(/\b[a-z][a-z0-9]*(?:_[a-z0-9]+)+\b/g),
  raw: found(/\b(?:null|undefined|NaN)\b|\[object \w+\]/g),
  iso: found(/\d{4}-\d{2}-\d{2}T\d{2}:\d{2}/g),
  favicon: !!document.querySelector('link[rel~="icon"][href="/favicon.svg"]'),
  alerts: [...document.querySelectorAll('[role=alert], #error')]
    .filter((el) => !el.hidden && el.offsetParent !== null).map((el) => el.innerText),
  tabs: [...new Set([...document.querySelectorAll('a[href^="#"]')].map((a) => a.getAttribute('href')))],
};
"##;

/// The text with every digit made alike: a ticking clock (the console's lesson clock, the
/// kiosk's time) is a settled page, not one still filling itself.
fn shape(v: &Value) -> String {
    v["text"]
        .as_str()
        .unwrap_or("")
        .chars()
        .map(|c| if c.is_ascii_digit() { '#' } else { c })
        .collect()
}

/// Reads the page until its text has stopped changing but for its digits (three reads in a
/// row alike, 250 ms apart, after the load event): the pages fill themselves from the API
/// after loading.
async fn settled(page: &Page) -> Result<Value> {
    let end = Instant::now() + Duration::from_secs(20);
    let mut last = String::new();
    let mut same = 0;
    loop {
        let v = page.eval(INSPECT).await?;
        let now = shape(&v);
        if v["ready"] == "complete" && now == last {
            same += 1;
            if same >= 2 {
                return Ok(v);
            }
        } else {
            same = 0;
        }
        last = now;
        if Instant::now() >= end {
            // A page that keeps changing is read as it is now (said, since it costs 20 s).
            eprintln!(
                "still changing after 20 s: {}",
                page.eval("return location.href").await?
            );
            return Ok(v);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A browser window signed in as `who`: a username (password login through the API from
/// the login page, so the session cookie is the browser's own) or a device token.
enum Who<'a> {
    Person(&'a str, &'a str),
    Device(&'a str),
}

async fn sign_in(page: &Page, base: &str, who: &Who<'_>) -> Result<()> {
    match who {
        Who::Person(user, password) => page.log_in(base, user, password).await?,
        Who::Device(token) => {
            // The kiosk link: the page keeps the token and takes it out of the address.
            page.goto(&format!("{base}/classroom?device={token}"))
                .await?;
            page.wait_until(
                "localStorage.getItem('classrelay.device') !== null",
                Duration::from_secs(10),
                "location.href",
            )
            .await?;
        }
    }
    Ok(())
}

/// What is wrong with one view, as read by [`INSPECT`] (empty: nothing).
fn problems(v: &Value, lang: &str) -> Vec<String> {
    let mut out = Vec::new();
    for what in ["keys", "raw", "iso"] {
        if v[what].as_array().is_some_and(|a| !a.is_empty()) {
            out.push(format!("{what}: {}", v[what]));
        }
    }
    if v["favicon"] != true {
        out.push("no favicon link".into());
    }
    if v["text"].as_str().unwrap_or("").trim().is_empty() {
        out.push("no visible text".into());
    }
    // A Chinese page words a refusal in Chinese: no English sentence (three English words in
    // a row) in an error box, as the server's `detail` would be.
    if lang == "zh" {
        for a in v["alerts"].as_array().into_iter().flatten() {
            let a = a.as_str().unwrap_or("");
            let mut run = 0;
            for w in a.split(|c: char| !c.is_ascii_alphabetic()) {
                if w.len() >= 3 {
                    run += 1;
                    if run >= 3 {
                        out.push(format!("English in a Chinese error box: {a:?}"));
                        break;
                    }
                } else if !w.is_empty() {
                    run = 0;
                }
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_in_both_languages_shows_only_words() -> Result<()> {
    let Some(browser) = Browser::start_or_skip().await else {
        return Ok(());
    };
    let app = App::start(Backend::Sqlite).await.expect("server");
    let f = fixture(&app).await;
    let id = lesson(&app, &f, "delivery", "07:30", "08:10").await;
    // A lesson without a title (the /today `null` of the first run).
    let untitled = app
        .create(
            "/api/lessons",
            json!({
                "mode": "master", "subject": "英语", "grade": "三年级",
                "hub_teacher_id": f.teacher, "hub_classroom_id": f.hub_room,
                "starts_at": at("09:00"), "ends_at": at("09:40"),
                "sites": [{"classroom_id": f.room_a}, {"classroom_id": f.room_b}],
            }),
        )
        .await;
    let _ = untitled;
    app.clock.set(at("07:35")); // the first lesson is open
    let device = app.device(f.room_a).await;
    let (admin_user, admin_password) = app.server.first_admin().cloned().expect("admin");

    let pages: Vec<&str> = classrelay::http::PAGES
        .iter()
        .filter(|(_, ct, _)| ct.starts_with("text/html"))
        .map(|(p, _, _)| *p)
        .collect();
    assert!(pages.len() >= 8, "the page table: {pages:?}");

    let roles = [
        ("admin", Who::Person(&admin_user, &admin_password)),
        ("teacher", Who::Person("wang", "password-123")),
        ("observer", Who::Person("observer1", "password-123")),
        ("inspector", Who::Person("inspector1", "password-123")),
        ("device", Who::Device(&device)),
    ];
    // The detector itself finds each kind of raw value (so a clean walk means something).
    {
        let page = browser.new_page().await?;
        page.goto(&format!("{}/login", app.base)).await?;
        page.eval(
            "document.body.append('mode_delivery · null · 2026-12-04T14:50:00+08:00'); \
             const e = document.getElementById('error'); e.hidden = false; \
             e.textContent = 'Conflict: already exists'; return null;",
        )
        .await?;
        let v = page.eval(INSPECT).await?;
        assert_eq!(v["keys"], json!(["mode_delivery"]), "{v}");
        assert_eq!(v["raw"], json!(["null"]), "{v}");
        assert_eq!(v["iso"], json!(["2026-12-04T14:50"]), "{v}");
        let found = problems(&v, "zh");
        assert!(
            found.iter().any(|p| p.starts_with("English in")),
            "{found:?}"
        );
        page.close().await?;
    }
    let mut bad = Vec::new();
    let mut visits = 0;
    for (role, who) in &roles {
        let page = browser.new_page().await?;
        sign_in(&page, &app.base, who).await?;
        for path in &pages {
            for lang in ["zh", "en"] {
                let url = format!("{}{path}?{}lang={lang}", app.base, query_for(path, id));
                page.goto(&url).await?;
                let v = settled(&page).await?;
                visits += 1;
                let mut views = vec![(String::new(), v.clone())];
                // The page's own views behind `#` links (the admin tabs): each is walked too.
                for tab in v["tabs"].as_array().into_iter().flatten() {
                    let tab = tab.as_str().unwrap_or("#");
                    if tab.len() > 1 {
                        page.goto(&format!("{url}{tab}")).await?;
                        views.push((tab.to_string(), settled(&page).await?));
                    }
                }
                for (tab, v) in views {
                    let found = problems(&v, lang);
                    if !found.is_empty() {
                        let text = v["text"].as_str().unwrap_or("");
                        bad.push(format!(
                            "{role} {path}{tab} ({lang}): {}\n--- text ---\n{}\n",
                            found.join("; "),
                            text.chars().take(600).collect::<String>()
                        ));
                    }
                }
                // The lesson page: the lesson by names (its teacher and classroom), its mode.
                if *path == "/lesson" && *role == "teacher" {
                    let text = v["text"].as_str().unwrap_or("");
                    let want = if lang == "zh" {
                        "专递课堂"
                    } else {
                        "Dedicated delivery"
                    };
                    assert!(
                        text.contains(want) && text.contains("王老师") && text.contains("录播教室"),
                        "/lesson ({lang}):\n{text}"
                    );
                }
                if *path == "/today" && *role == "teacher" {
                    let text = v["text"].as_str().unwrap_or("");
                    let want = if lang == "zh" {
                        "专递课堂"
                    } else {
                        "Dedicated delivery"
                    };
                    assert!(text.contains(want), "/today ({lang}) lacks {want}:\n{text}");
                    // Names, not ids: the hub teacher and the hub classroom.
                    assert!(
                        text.contains("王老师") && text.contains("录播教室"),
                        "{text}"
                    );
                }
            }
        }
        page.close().await?;
    }
    assert_eq!(visits, pages.len() * 2 * roles.len());
    assert!(
        bad.is_empty(),
        "{} page views show raw values:\n{}",
        bad.len(),
        bad.join("\n")
    );
    Ok(())
}
