//! The recordings list costs a bounded number of database queries however many recordings
//! and lessons it shows (issue 20 item 5: no query per row): 50 recordings of 50 lessons in
//! one page, the statements counted from sqlx's own statement log (`sqlx::query` tracing
//! events). The only test in its binary, so it never counts another test's queries.
//!
//! Run: `cargo test --test recordings_queries -- --nocapture` (prints the count).

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use reqwest::{Method, StatusCode};
use support::recorded::insert;
use support::school::{at, fixture, lesson, App, Backend};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Counts the statements sqlx runs.
struct Statements(Arc<AtomicUsize>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Statements {
    fn on_event(&self, e: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        if e.metadata().target() == "sqlx::query" {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_recordings_of_fifty_lessons_are_listed_in_a_bounded_number_of_queries() {
    let statements = Arc::new(AtomicUsize::new(0));
    tracing_subscriber::registry()
        .with(Statements(statements.clone()))
        .try_init()
        .expect("the only subscriber");
    let app = App::start_in_process(Backend::Sqlite).await.unwrap();
    let f = fixture(&app).await;
    let first = lesson(&app, &f, "delivery", "08:00", "08:40").await;
    let store = &app.server.state().school.store;
    let template = classrelay::school::model::get_lesson(store, first)
        .await
        .expect("the lesson");
    const DAY: i64 = 86_400_000;
    for i in 0..50i64 {
        // The same lesson on 50 days (stored directly: the API's daily limit is not the point).
        let l = if i == 0 {
            first
        } else {
            let mut next = template.clone();
            next.starts_at += i * DAY;
            next.ends_at += i * DAY;
            classrelay::school::model::insert_lesson(store, &next)
                .await
                .expect("a lesson")
                .id
        };
        insert(
            &app.server,
            Some(l),
            at("08:00") + i * DAY,
            at("08:40") + i * DAY,
            None,
        )
        .await;
    }
    // A look first, so what a first request does once (sessions, caches) is not counted.
    let (s, _) = app
        .call(
            Some(&app.admin),
            Method::GET,
            "/api/recordings?per_page=1",
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    statements.store(0, Ordering::SeqCst);
    let (s, v) = app
        .call(
            Some(&app.admin),
            Method::GET,
            "/api/recordings?per_page=50",
            None,
        )
        .await;
    let n = statements.load(Ordering::SeqCst);
    assert_eq!(s, StatusCode::OK, "{v}");
    let items = v["items"].as_array().expect("a page");
    assert_eq!(items.len(), 50);
    let lessons: std::collections::BTreeSet<i64> = items
        .iter()
        .map(|r| r["lesson"]["id"].as_i64().expect("its lesson"))
        .collect();
    assert_eq!(lessons.len(), 50, "every row names its own lesson");
    println!("GET /api/recordings?per_page=50 (50 lessons): {n} statements");
    // A query per row (the lesson, its sites, its school's retention) would be 100 or more.
    assert!(n > 0, "sqlx's statement log is counted");
    assert!(n <= 25, "{n} statements for one page of 50");
}
