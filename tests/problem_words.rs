//! What a refusal tells a client, on a SQLite file and on a real PostgreSQL server: a
//! database refusal leaves as its problem kind and a fixed sentence (the driver's words, table
//! and constraint names only in the log), a clash names the teacher and classroom (王老师,
//! not "teacher 1"), and a lesson that is not open yet carries its opening time as a member
//! the pages word in their own language. It must never accept a body that quotes the database.
//!
//! Run: `cargo test --test problem_words`.

mod support;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use support::school::{fixture, lesson, App, Backend};

fn kind(v: &Value) -> &str {
    v["type"]
        .as_str()
        .unwrap_or("")
        .trim_start_matches("urn:classrelay:problem:")
}

/// Words only a database says (SQLite's and PostgreSQL's own messages).
const DB_WORDS: &[&str] = &[
    "constraint",
    "UNIQUE",
    "FOREIGN",
    "violates",
    "duplicate key",
    "schools.",
    "SQLSTATE",
    "sqlite",
    "postgres",
];

fn quotes_the_database(v: &Value) -> Option<&'static str> {
    let text = v.to_string();
    DB_WORDS
        .iter()
        .find(|w| text.to_lowercase().contains(&w.to_lowercase()))
        .copied()
}

async fn words(app: App) {
    let f = fixture(&app).await;
    // A duplicate school code: 409 `duplicate`, nothing from the database.
    let (s, v) = app
        .call(
            Some(&app.admin),
            Method::POST,
            "/api/schools",
            Some(json!({"code": "HUB01", "name": "另一所学校", "kind": "hub"})),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert_eq!(kind(&v), "duplicate", "{v}");
    assert_eq!(quotes_the_database(&v), None, "{v}");
    // A school still in use: 409 `reference`, nothing from the database.
    let (s, v) = app
        .call(
            Some(&app.admin),
            Method::DELETE,
            &format!("/api/schools/{}", f.partner_a),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert_eq!(kind(&v), "reference", "{v}");
    assert_eq!(quotes_the_database(&v), None, "{v}");

    // A clashing ad hoc lesson names the teacher.
    let first = lesson(&app, &f, "delivery", "09:00", "09:40").await;
    let (s, v) = app
        .call(
            Some(&app.admin),
            Method::POST,
            "/api/lessons",
            Some(json!({
                "mode": "master", "subject": "英语", "grade": "三年级",
                "hub_teacher_id": f.teacher, "hub_classroom_id": f.hub_room,
                "starts_at": support::school::at("09:20"), "ends_at": support::school::at("10:00"),
                "sites": [{"classroom_id": f.room_a}],
            })),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert_eq!(kind(&v), "lesson-conflict", "{v}");
    let detail = v["detail"].as_str().unwrap_or("");
    assert!(
        detail.contains(&format!("王老师 ({})", f.teacher)) && detail.contains(&first.to_string()),
        "{v}"
    );

    // Too early to join (07:00, the lesson opens at 08:50): the opening time as a member.
    let dev = app.device(f.room_a).await;
    let (s, v) = app
        .call(
            Some(&dev),
            Method::POST,
            &format!("/api/lessons/{first}/join"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(kind(&v), "lesson-not-open", "{v}");
    let opens = v["opens_at"].as_str().unwrap_or("");
    assert!(
        opens.starts_with("2026-09-07T08:") && opens.ends_with("+08:00"),
        "{v}"
    );
    assert_eq!(v["starts_at"], "2026-09-07T09:00:00+08:00", "{v}");
}

mod sqlite {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_refusal_says_its_kind_not_the_database() {
        let app = super::App::start_in_process(super::Backend::Sqlite)
            .await
            .expect("sqlite always works");
        super::words(app).await;
    }
}

mod postgres {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_refusal_says_its_kind_not_the_database() {
        if let Some(app) = super::App::start_in_process(super::Backend::Postgres).await {
            super::words(app).await;
        }
    }
}
