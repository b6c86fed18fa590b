//! Which lessons are recorded and when: at a lesson's bell when `[recording] rooms` and its
//! school's `record_lessons` say so, on and off by hand through the API, stopped at the
//! lesson's end; the `recordings` rows and the `recording` lesson event pages show as 录制中.
//! It must never touch capture files or the media path (`media` starts and stops the tap).

use std::sync::{Arc, Weak};

use serde::Serialize;

use super::SchoolState;
use crate::config::RecordRooms;
use crate::media::RecordError;
use crate::record::storage::DirStorage;
use crate::record::writer::{Writer, WriterEvent, DEFAULT_CAPACITY};
use crate::sfu::core::TapPart;
use crate::store::{Store, StoreResult};

/// A row of `recordings`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Recording {
    /// Id (also the directory under the recordings root).
    pub id: i64,
    /// The room recorded.
    pub room: String,
    /// The lesson, for a lesson's room.
    pub lesson_id: Option<i64>,
    /// Started (ms since the Unix epoch).
    pub started_at: i64,
    /// Ended, once it has.
    pub ended_at: Option<i64>,
    /// `recording`, `stopped` or `failed`.
    pub state: String,
    /// The capture file.
    pub capture_path: String,
    /// Why it failed.
    pub error: Option<String>,
    /// Processing into playable files (`recording_files`): `processing`, `ready` or `failed`;
    /// none before it starts.
    pub processing: Option<String>,
    /// Why processing failed.
    pub processing_error: Option<String>,
    /// The processed recording's `manifest.json`, once ready.
    pub manifest_path: Option<String>,
    /// When the retention sweep deleted its files (ms since the Unix epoch).
    pub deleted_at: Option<i64>,
}

/// The columns of [`Recording`], in its order.
pub(crate) const COLS: &str = "id, room, lesson_id, started_at, ended_at, state, capture_path, \
                    error, processing, processing_error, manifest_path, deleted_at";

/// Every recording, newest first.
pub async fn list(store: &Store) -> StoreResult<Vec<Recording>> {
    let sql = format!("SELECT {COLS} FROM recordings ORDER BY id DESC");
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .fetch_all(store.pool())
        .await?)
}

/// A lesson's recordings, oldest first.
pub async fn of_lesson(store: &Store, lesson: i64) -> StoreResult<Vec<Recording>> {
    let sql = format!("SELECT {COLS} FROM recordings WHERE lesson_id = $1 ORDER BY id");
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(lesson)
        .fetch_all(store.pool())
        .await?)
}

/// Where recordings live: the recorder's storage, or (a server without media workers) the
/// configured directory. Every read and delete of a recording's files goes through it.
pub fn storage(app: &SchoolState) -> Arc<dyn crate::record::storage::RecordingStorage> {
    match app.media.recorder() {
        Some(r) => r.storage.clone(),
        None => Arc::new(DirStorage::new(
            app.config.recording.dir_in(&app.config.data.dir),
        )),
    }
}

/// Starts the capture writer and the recorder (storage under `[recording] dir`), and the task
/// that turns the writer's events into recording states and lesson events.
pub(crate) fn start(app: &Arc<SchoolState>) {
    let root = app.config.recording.dir_in(&app.config.data.dir);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let writer = Writer::start(
        DEFAULT_CAPACITY,
        app.metrics.capture.clone(),
        Box::new(move |e| {
            let _ = tx.send(e);
        }),
    );
    app.media.set_recorder(crate::media::Recorder::new(
        writer,
        Arc::new(DirStorage::new(root)),
    ));
    if app.config.recording.rooms == RecordRooms::All {
        // Plain token rooms: recorded from their first publisher until their last session.
        let weak = Arc::downgrade(app);
        app.media
            .listen_plain_rooms(Box::new(move |ev: crate::media::PlainRoom| {
                let weak = weak.clone();
                tokio::spawn(async move {
                    let Some(app) = weak.upgrade() else { return };
                    let res = match &ev {
                        crate::media::PlainRoom::Published(room) => {
                            start_room(&app, room, None).await.map(|_| ())
                        }
                        crate::media::PlainRoom::Empty(room) => {
                            stop_room(&app, room).await.map(|_| ())
                        }
                    };
                    if let Err(e) = res {
                        tracing::warn!("recording {ev:?}: {e}");
                    }
                });
            }));
    }
    // Expired recordings are deleted (issue 20 item 3: retention).
    super::retention::start(app);
    // Processing changes reach the lesson's followers while it has live state (`processing`).
    let mut processing = app.recording_events.subscribe();
    let weak: Weak<SchoolState> = Arc::downgrade(app);
    tokio::spawn(async move {
        use tokio::sync::broadcast::error::RecvError;
        loop {
            let ev = match processing.recv().await {
                Ok(ev) => ev,
                Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => break,
            };
            let Some(app) = weak.upgrade() else { break };
            if let Some(l) = ev.lesson {
                let data = serde_json::to_value(&ev).unwrap_or_default();
                app.live.emit_existing(l, "processing", app.now(), data);
            }
        }
    });
    let weak: Weak<SchoolState> = Arc::downgrade(app);
    tokio::spawn(async move {
        while let Some(ev) = rx.recv().await {
            let Some(app) = weak.upgrade() else { break };
            on_writer_event(&app, ev).await;
        }
    });
}

async fn on_writer_event(app: &Arc<SchoolState>, ev: WriterEvent) {
    match ev {
        WriterEvent::Failed { id, error } => {
            tracing::error!(recording = id, %error, "recording failed; the lesson goes on");
            let now = app.now();
            let row: Option<(String, Option<i64>)> = sqlx::query_as(
                "UPDATE recordings SET state = 'failed', error = $1, ended_at = $2 \
                 WHERE id = $3 RETURNING room, lesson_id",
            )
            .bind(&error)
            .bind(now)
            .bind(id)
            .fetch_optional(app.store.pool())
            .await
            .unwrap_or_else(|e| {
                tracing::warn!("recording {id}: {e}");
                None
            });
            if let Some((room, lesson)) = row {
                // The worker stops copying (the writer already closed the file).
                app.media.stop_recording(&room).await;
                // What was captured before the failure becomes playable files.
                super::recording_files::spawn_processing(app, id);
                if let Some(l) = lesson {
                    app.live.emit(
                        l,
                        "recording",
                        now,
                        serde_json::json!({"lesson": l, "recording": id, "state": "failed", "error": error}),
                    );
                }
            }
        }
        WriterEvent::Lagging { id, lag } => {
            tracing::warn!(
                recording = id,
                lag_ms = lag.as_millis() as u64,
                "capture writer behind"
            );
        }
        WriterEvent::Dropped { id, track, packets } => {
            tracing::warn!(
                recording = id,
                track,
                packets,
                "capture dropped packets (writer channel full)"
            );
        }
        WriterEvent::Opened { .. } | WriterEvent::Closed(_) => {}
    }
}

/// Whether lesson `lesson` is recorded by default (at its bell).
async fn wanted(app: &SchoolState, lesson: i64) -> StoreResult<bool> {
    Ok(match app.config.recording.rooms {
        RecordRooms::None => false,
        RecordRooms::All => true,
        RecordRooms::Lessons => {
            let on: Option<(i64,)> = sqlx::query_as(
                "SELECT s.record_lessons FROM lessons l \
                 JOIN classrooms c ON c.id = l.hub_classroom_id \
                 JOIN schools s ON s.id = c.school_id WHERE l.id = $1",
            )
            .bind(lesson)
            .fetch_optional(app.store.pool())
            .await?;
            on.is_some_and(|(v,)| v != 0)
        }
    })
}

/// The lesson's hub teacher and hub classroom, as the capture names their tracks.
async fn parts(app: &SchoolState, lesson: i64) -> StoreResult<Vec<TapPart>> {
    let row: Option<(i64, String, i64, String)> = sqlx::query_as(
        "SELECT t.id, t.name, c.id, c.name FROM lessons l \
         JOIN teachers t ON t.id = l.hub_teacher_id \
         JOIN classrooms c ON c.id = l.hub_classroom_id WHERE l.id = $1",
    )
    .bind(lesson)
    .fetch_optional(app.store.pool())
    .await?;
    Ok(row
        .map(|(t, tn, c, cn)| {
            vec![
                TapPart {
                    part: format!("t:{t}"),
                    name: tn,
                    hub: true,
                },
                TapPart {
                    part: format!("c:{c}"),
                    name: cn,
                    hub: true,
                },
            ]
        })
        .unwrap_or_default())
}

/// Why a recording could not be switched.
#[derive(Debug, thiserror::Error)]
pub enum SwitchError {
    /// The media side refused.
    #[error(transparent)]
    Media(#[from] RecordError),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// Starts recording lesson `lesson`'s room (a new `recordings` row). `Ok(None)` if it is
/// being recorded already.
pub async fn start_lesson(
    app: &SchoolState,
    lesson: i64,
) -> Result<Option<Recording>, SwitchError> {
    start_room(
        app,
        crate::ids::RoomName::lesson(lesson).as_str(),
        Some(lesson),
    )
    .await
}

/// Starts recording `room` (of `lesson`, if it is a lesson's). `Ok(None)` if it is being
/// recorded already.
async fn start_room(
    app: &SchoolState,
    room: &str,
    lesson: Option<i64>,
) -> Result<Option<Recording>, SwitchError> {
    if app
        .media
        .recorder()
        .is_some_and(|r| r.recording_of(room).is_some())
    {
        return Ok(None);
    }
    let now = app.now();
    let (id,): (i64,) = sqlx::query_as(
        "INSERT INTO recordings (room, lesson_id, started_at, state) \
         VALUES ($1, $2, $3, 'recording') RETURNING id",
    )
    .bind(room)
    .bind(lesson)
    .bind(now)
    .fetch_one(app.store.pool())
    .await
    .map_err(crate::store::StoreError::from)?;
    let parts = match lesson {
        Some(l) => parts(app, l).await?,
        None => Vec::new(),
    };
    match app
        .media
        .start_recording(id, room, lesson, now, parts)
        .await
    {
        Ok(path) => {
            sqlx::query("UPDATE recordings SET capture_path = $1 WHERE id = $2")
                .bind(path.display().to_string())
                .bind(id)
                .execute(app.store.pool())
                .await
                .map_err(crate::store::StoreError::from)?;
            if let Some(lesson) = lesson {
                app.live.emit(
                    lesson,
                    "recording",
                    now,
                    serde_json::json!({"lesson": lesson, "recording": id, "state": "recording"}),
                );
            }
            tracing::info!(room, recording = id, path = %path.display(), "recording");
            Ok(list(&app.store).await?.into_iter().find(|r| r.id == id))
        }
        Err(e) => {
            sqlx::query(
                "UPDATE recordings SET state = 'failed', error = $1, ended_at = $2 WHERE id = $3",
            )
            .bind(e.to_string())
            .bind(now)
            .bind(id)
            .execute(app.store.pool())
            .await
            .map_err(crate::store::StoreError::from)?;
            Err(e.into())
        }
    }
}

/// Stops recording lesson `lesson`'s room; whether it was being recorded.
pub async fn stop_lesson(app: &SchoolState, lesson: i64) -> Result<bool, SwitchError> {
    let Some(id) = stop_room(app, crate::ids::RoomName::lesson(lesson).as_str()).await? else {
        return Ok(false);
    };
    app.live.emit(
        lesson,
        "recording",
        app.now(),
        serde_json::json!({"lesson": lesson, "recording": id, "state": "stopped"}),
    );
    Ok(true)
}

/// Stops recording `room`; the recording, if it was being recorded.
async fn stop_room(app: &SchoolState, room: &str) -> Result<Option<i64>, SwitchError> {
    let Some(id) = app.media.recorder().and_then(|r| r.recording_of(room)) else {
        return Ok(None);
    };
    let closed = app.media.stop_recording(room).await;
    let now = app.now();
    let error = closed.and_then(|c| c.error);
    sqlx::query(
        "UPDATE recordings SET state = CASE WHEN state = 'failed' THEN 'failed' ELSE 'stopped' END, \
         ended_at = COALESCE(ended_at, $1) WHERE id = $2",
    )
    .bind(now)
    .bind(id)
    .execute(app.store.pool())
    .await
    .map_err(crate::store::StoreError::from)?;
    if let Some(e) = error {
        tracing::warn!(room, recording = id, "recording closed after an error: {e}");
    }
    // The closed capture becomes playable files, off the async workers.
    super::recording_files::spawn_processing(app, id);
    Ok(Some(id))
}

/// Switches lesson `lesson`'s recording by hand (the API, caller `by`): a stop is stored so
/// that neither the bell nor a restart (`resume`) records the lesson again by itself; a start
/// clears it (issue 20: a recording stopped by hand stays stopped).
pub async fn switch_by_hand(
    app: &SchoolState,
    lesson: i64,
    on: bool,
    by: &str,
) -> Result<(), SwitchError> {
    let db = |e: sqlx::Error| SwitchError::Store(e.into());
    if on {
        sqlx::query("DELETE FROM recording_stops WHERE lesson_id = $1")
            .bind(lesson)
            .execute(app.store.pool())
            .await
            .map_err(db)?;
        start_lesson(app, lesson).await.map(|_| ())
    } else {
        // Stored before the capture stops: a crash in between must not record it again.
        sqlx::query(
            "INSERT INTO recording_stops (lesson_id, stopped_at, stopped_by) VALUES ($1, $2, $3) \
             ON CONFLICT (lesson_id) DO UPDATE SET stopped_at = $2, stopped_by = $3",
        )
        .bind(lesson)
        .bind(app.now())
        .bind(by)
        .execute(app.store.pool())
        .await
        .map_err(db)?;
        stop_lesson(app, lesson).await.map(|_| ())
    }
}

/// Whether lesson `lesson`'s recording was stopped by hand (and not started by hand since).
pub async fn stopped_by_hand(store: &Store, lesson: i64) -> StoreResult<bool> {
    let row: Option<(i64,)> =
        sqlx::query_as("SELECT lesson_id FROM recording_stops WHERE lesson_id = $1")
            .bind(lesson)
            .fetch_optional(store.pool())
            .await?;
    Ok(row.is_some())
}

/// The scheduler's bell: a lesson that went live is recorded if it should be (and its
/// recording was not stopped by hand while it was open).
pub(crate) async fn at_bell(app: &SchoolState, lesson: i64) {
    if stopped_by_hand(&app.store, lesson).await.unwrap_or(false) {
        tracing::info!(lesson, "recording stopped by hand: not started at the bell");
        return;
    }
    match wanted(app, lesson).await {
        Ok(true) => {
            if let Err(e) = start_lesson(app, lesson).await {
                tracing::warn!(lesson, "recording did not start: {e}");
            }
        }
        Ok(false) => {}
        Err(e) => tracing::warn!(lesson, "recording: {e}"),
    }
}

/// After a restart: every lesson live now whose recording a crash cut (`cut`), or that its
/// school records by default, gets a new capture; media joins it as the participants come
/// back. The lesson then has two recordings (`GET /api/recordings/{id}` lists its parts and
/// the gap between them). A lesson whose recording was stopped by hand is left alone.
pub(crate) async fn resume(app: &SchoolState, cut: &[i64]) {
    if app.config.recording.rooms == RecordRooms::None {
        return;
    }
    let lessons = match super::model::unfinished_lessons(&app.store).await {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!("recording after a restart: {e}");
            return;
        }
    };
    let now = app.now();
    for l in lessons {
        if l.state_at(now, app.open_before, app.grace) != super::model::LessonState::Live {
            continue;
        }
        let again = cut.contains(&l.id) || wanted(app, l.id).await.unwrap_or(false);
        if !again {
            continue;
        }
        match stopped_by_hand(&app.store, l.id).await {
            Ok(false) => {}
            Ok(true) => {
                tracing::info!(
                    lesson = l.id,
                    "lesson live at the restart: its recording was stopped by hand, not resumed"
                );
                continue;
            }
            Err(e) => {
                tracing::warn!(lesson = l.id, "recording after a restart: {e}");
                continue;
            }
        }
        match start_lesson(app, l.id).await {
            Ok(Some(r)) => tracing::info!(
                lesson = l.id,
                recording = r.id,
                "lesson live at the restart: recorded again"
            ),
            Ok(None) => {}
            Err(e) => tracing::warn!(lesson = l.id, "recording after a restart: {e}"),
        }
    }
}

/// Whether lesson `lesson`'s room is being recorded now (the pages' 录制中).
pub fn is_recording(app: &SchoolState, lesson: i64) -> bool {
    app.media.recorder().is_some_and(|r| {
        r.recording_of(crate::ids::RoomName::lesson(lesson).as_str())
            .is_some()
    })
}

/// At shutdown (media workers stopped): every capture written, synced and closed, and the
/// recordings still running marked stopped.
pub(crate) async fn shutdown(app: &Arc<SchoolState>) {
    let a = app.clone();
    let _ = tokio::task::spawn_blocking(move || {
        if let Some(r) = a.media.recorder() {
            r.stop_writer();
        }
    })
    .await;
    let _ = sqlx::query(
        "UPDATE recordings SET state = 'stopped', ended_at = $1 WHERE state = 'recording'",
    )
    .bind(app.now())
    .execute(app.store.pool())
    .await;
}
