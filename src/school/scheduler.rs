//! Moves lessons through scheduled → open → live → ended by the school clock, makes each
//! day's lessons from the timetable, and clears a lesson's room when it ends.
//!
//! One task. It sleeps until the next transition any unfinished lesson has (at most 30 s),
//! or until the clock is moved by hand (tests) or a lesson is created or ended (a poke).

use std::sync::{Arc, Weak};
use std::time::Duration;

use super::model::{self, LessonState};
use super::SchoolState;
use crate::time::{millis_to_local, Millis};

/// The longest the scheduler sleeps without looking.
const MAX_NAP: Duration = Duration::from_secs(30);

/// Runs until the server state is dropped.
pub(crate) async fn run(state: Weak<SchoolState>) {
    let mut changes = match state.upgrade() {
        Some(s) => s.clock.changes(),
        None => return,
    };
    let mut generated_for = None;
    loop {
        let Some(app) = state.upgrade() else { return };
        let next = match step(&app, &mut generated_for).await {
            Ok(next) => next,
            Err(e) => {
                tracing::warn!("scheduler: {e}");
                None
            }
        };
        let now = app.now();
        let nap = next
            .map(|t| {
                Duration::from_millis(
                    t.saturating_sub(now).clamp(0, MAX_NAP.as_millis() as i64) as u64
                )
            })
            .unwrap_or(MAX_NAP);
        let app2 = app.clone();
        drop(app);
        tokio::select! {
            _ = tokio::time::sleep(nap) => {}
            r = changes.changed() => if r.is_err() { return },
            _ = app2.poke.notified() => {}
        }
    }
}

/// One pass: generate today's lessons once a day, apply due transitions. Returns when the
/// next transition is due.
pub(crate) async fn step(
    app: &Arc<SchoolState>,
    generated_for: &mut Option<time::Date>,
) -> Result<Option<Millis>, crate::store::StoreError> {
    let school = &app;
    let now = school.now();
    school.live.sweep(now, KEEP_AFTER_END);
    let today = millis_to_local(now, school.offset).date();
    if *generated_for != Some(today) {
        let tomorrow = today.next_day().unwrap_or(today);
        let n = model::generate_lessons(&school.store, today, tomorrow, school.offset).await?;
        if n > 0 {
            tracing::info!("made {n} lessons from the timetable for {today} and {tomorrow}");
        }
        *generated_for = Some(today);
    }
    let mut next: Option<Millis> = None;
    for l in model::unfinished_lessons(&school.store).await? {
        let s = l.state_at(now, school.open_before, school.grace);
        if s != l.state {
            model::set_lesson_state(&school.store, l.id, s, None).await?;
            school.live.emit(
                l.id,
                "state",
                now,
                serde_json::json!({"state": s.as_str(), "lesson": l.id}),
            );
            tracing::info!(lesson = l.id, "lesson {}", s.as_str());
            if s == LessonState::Live {
                super::recording::at_bell(app, l.id).await;
            }
            if s == LessonState::Ended {
                if let Err(e) = super::recording::stop_lesson(app, l.id).await {
                    tracing::warn!(lesson = l.id, "recording: {e}");
                }
                end_room(app, l.id).await;
            }
        }
        let due = match s {
            LessonState::Scheduled => Some(l.starts_at.saturating_sub(school.open_before)),
            LessonState::Open => Some(l.starts_at),
            LessonState::Live => Some(l.ends_at.saturating_add(school.grace)),
            LessonState::Ended => None,
        };
        if let Some(d) = due {
            next = Some(next.map_or(d, |n: Millis| n.min(d)));
        }
    }
    Ok(next)
}

/// Ends every media session of a lesson, closes its event streams (after the `ended` event
/// already sent) and frees its live state.
pub(crate) async fn end_room(app: &Arc<SchoolState>, lesson: i64) {
    app.live.clear(lesson);
    app.media
        .kick(crate::ids::RoomName::lesson(lesson).as_str(), |_| true)
        .await;
    app.revoke(super::Revoked::Lesson(lesson));
    // Keep the ended lesson's events a little while for followers that reconnect; a later
    // pass frees them (`Live::sweep`), and nothing creates live state for it again.
    app.live.mark_ended(lesson, app.now());
}

/// How long an ended lesson's live state (its last events) is kept, by the school clock.
pub(crate) const KEEP_AFTER_END: Millis = 2 * 60_000;
