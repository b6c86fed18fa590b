//! A recording's capture becomes playable files by itself: when it stops (lesson end, the API,
//! a write failure) and at start-up for every recording a crash left behind (recovery). Keeps
//! the `recordings` row's processing state (`processing`, `ready`, `failed` + error) and manifest
//! path. Must never do file work on an async worker (`spawn_blocking` runs `record::recover`)
//! and never touch the media path.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::SchoolState;
use crate::record::recover::{process_recording, RecoverError, Report};
use crate::store::{Store, StoreError};

/// Why `recordings process ID` could not process a recording.
#[derive(Debug, thiserror::Error)]
pub enum ProcessFail {
    /// No such recording.
    #[error("no recording {0}")]
    NotFound(i64),
    /// It is being recorded (or a crash left it so and the server has not recovered it yet).
    #[error("recording {0} is still being recorded (a crashed server recovers it at start-up)")]
    StillRecording(i64),
    /// Reading or processing the capture failed.
    #[error(transparent)]
    Recover(#[from] RecoverError),
    /// The processing thread died.
    #[error("the processing thread failed: {0}")]
    Thread(String),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn db(e: sqlx::Error) -> ProcessFail {
    ProcessFail::Store(e.into())
}

/// Processes recording `id` now: marks it `processing`, reads and processes its capture on a
/// blocking thread into the capture's directory, and marks it `ready` (with the manifest path)
/// or `failed` (with the error). Re-running it re-processes.
pub async fn process(store: &Store, id: i64) -> Result<Report, ProcessFail> {
    let row: Option<(String, String)> =
        sqlx::query_as("SELECT state, capture_path FROM recordings WHERE id = $1")
            .bind(id)
            .fetch_optional(store.pool())
            .await
            .map_err(db)?;
    let Some((state, capture)) = row else {
        return Err(ProcessFail::NotFound(id));
    };
    if state == "recording" {
        return Err(ProcessFail::StillRecording(id));
    }
    sqlx::query(
        "UPDATE recordings SET processing = 'processing', processing_error = NULL WHERE id = $1",
    )
    .bind(id)
    .execute(store.pool())
    .await
    .map_err(db)?;
    let capture = PathBuf::from(capture);
    // The recording's files go beside its capture (record::storage: `<root>/<id>/`).
    let out_dir = capture
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(Path::to_path_buf);
    let result = match out_dir {
        None => Err(ProcessFail::Recover(RecoverError::NoCapture(capture))),
        Some(dir) => tokio::task::spawn_blocking(move || process_recording(&capture, &dir))
            .await
            .map_err(|e| ProcessFail::Thread(e.to_string()))
            .and_then(|r| r.map_err(ProcessFail::from)),
    };
    match &result {
        Ok(report) => {
            sqlx::query(
                "UPDATE recordings SET processing = 'ready', processing_error = NULL, \
                 manifest_path = $1 WHERE id = $2",
            )
            .bind(report.manifest_path.display().to_string())
            .bind(id)
            .execute(store.pool())
            .await
            .map_err(db)?;
            // A lesson recorded in parts: every processed part's manifest names them all.
            if let Some(lesson) = report.manifest.lesson_id {
                if let Err(e) = link_parts(store, lesson).await {
                    tracing::warn!(recording = id, lesson, "parts not linked: {e}");
                }
            }
        }
        Err(e) => {
            sqlx::query(
                "UPDATE recordings SET processing = 'failed', processing_error = $1 WHERE id = $2",
            )
            .bind(e.to_string())
            .bind(id)
            .execute(store.pool())
            .await
            .map_err(db)?;
        }
    }
    result
}

/// What [`lesson_timeline`] needs of one part: its row's start and end, and once processed
/// where its timeline's zero (its first frame) fell after the capture started, and its length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartRow {
    /// The recording.
    pub id: i64,
    /// Its row's start, Unix ms (the capture's start: the same instant goes to both).
    pub started_at: i64,
    /// Its row's end, once it has ended.
    pub ended_at: Option<i64>,
    /// Processed: (first frame after the capture's start, length), ms.
    pub processed: Option<(i64, u64)>,
}

/// A lesson's parts (by start) on one lesson timeline: the first part's timeline zero is 0;
/// each part starts where its own zero (its row's start plus its first frame's offset) falls
/// after that, lasts its processed length (else its row's), and the gap before it is what lies
/// between the previous part's end and its start.
pub fn lesson_timeline(rows: &[PartRow]) -> Vec<crate::record::process::LessonPart> {
    let zero = |r: &PartRow| r.started_at + r.processed.map_or(0, |(off, _)| off.max(0));
    let Some(base) = rows.first().map(zero) else {
        return Vec::new();
    };
    let mut prev_end: Option<u64> = None;
    rows.iter()
        .map(|r| {
            let start_ms = (zero(r) - base).max(0) as u64;
            let duration_ms = match r.processed {
                Some((_, d)) => d,
                None => (r.ended_at.unwrap_or(r.started_at) - r.started_at).max(0) as u64,
            };
            let gap_before_ms = prev_end.map(|e| start_ms.saturating_sub(e));
            prev_end = Some(prev_end.map_or(0, |e: u64| e).max(start_ms + duration_ms));
            crate::record::process::LessonPart {
                recording: r.id,
                start_ms,
                duration_ms,
                gap_before_ms,
            }
        })
        .collect()
}

#[cfg(test)]
mod timeline_tests {
    use super::{lesson_timeline, PartRow};

    #[test]
    fn parts_sit_on_one_timeline_with_the_gaps_between_them() {
        let rows = [
            // Processed: first frame 200 ms after its start, 10 s long.
            PartRow {
                id: 1,
                started_at: 1_000_000,
                ended_at: Some(1_010_500),
                processed: Some((200, 10_000)),
            },
            // Processed: first frame 700 ms after its start (15 s after the first's).
            PartRow {
                id: 2,
                started_at: 1_014_500,
                ended_at: Some(1_030_000),
                processed: Some((700, 5_000)),
            },
            // Still recording: its row says how long so far.
            PartRow {
                id: 3,
                started_at: 1_040_000,
                ended_at: None,
                processed: None,
            },
        ];
        let t = lesson_timeline(&rows);
        let got: Vec<(i64, u64, u64, Option<u64>)> = t
            .iter()
            .map(|p| (p.recording, p.start_ms, p.duration_ms, p.gap_before_ms))
            .collect();
        assert_eq!(
            got,
            vec![
                (1, 0, 10_000, None),
                (2, 15_000, 5_000, Some(5_000)),
                (3, 39_800, 0, Some(19_800)),
            ]
        );
        assert!(lesson_timeline(&[]).is_empty());
    }
}

/// Writes lesson `lesson`'s parts (when it has more than one) into the manifest of each of its
/// processed parts, through a temporary file and a rename. One lesson at a time, so two parts
/// processed together never leave an older list behind.
pub async fn link_parts(store: &Store, lesson: i64) -> Result<(), ProcessFail> {
    static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _one = ONE_AT_A_TIME.lock().await;
    // id, started_at, ended_at, processing, manifest_path.
    type Row = (i64, i64, Option<i64>, Option<String>, Option<String>);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT id, started_at, ended_at, processing, manifest_path FROM recordings \
         WHERE lesson_id = $1 AND deleted_at IS NULL ORDER BY started_at, id",
    )
    .bind(lesson)
    .fetch_all(store.pool())
    .await
    .map_err(db)?;
    if rows.len() < 2 {
        return Ok(());
    }
    tokio::task::spawn_blocking(move || -> Result<(), ProcessFail> {
        use crate::record::process::Manifest;
        let mut manifests: Vec<Option<(PathBuf, Manifest)>> = Vec::new();
        let mut parts = Vec::new();
        for (id, started_at, ended_at, processing, path) in &rows {
            let m = match (processing.as_deref(), path) {
                (Some("ready"), Some(p)) => std::fs::read(p)
                    .ok()
                    .and_then(|b| serde_json::from_slice::<Manifest>(&b).ok())
                    .map(|m| (PathBuf::from(p), m)),
                _ => None,
            };
            parts.push(PartRow {
                id: *id,
                started_at: *started_at,
                ended_at: *ended_at,
                processed: m.as_ref().map(|(_, m)| {
                    let off = match (m.timeline_zero_unix_ms, m.started_unix_ms) {
                        (Some(z), Some(s)) => z - s,
                        _ => 0,
                    };
                    (off, m.duration_ms)
                }),
            });
            manifests.push(m);
        }
        let timeline = lesson_timeline(&parts);
        for (path, mut m) in manifests.into_iter().flatten() {
            if m.parts == timeline {
                continue;
            }
            m.parts = timeline.clone();
            let json = serde_json::to_vec_pretty(&m).map_err(|e| {
                ProcessFail::Recover(RecoverError::Manifest {
                    path: path.clone(),
                    source: e.into(),
                })
            })?;
            let tmp = path.with_extension("parts");
            std::fs::write(&tmp, json)
                .and_then(|()| std::fs::rename(&tmp, &path))
                .map_err(|source| ProcessFail::Recover(RecoverError::Manifest { path, source }))?;
        }
        Ok(())
    })
    .await
    .map_err(|e| ProcessFail::Thread(e.to_string()))?
}

/// A change of a recording's processing, announced to `GET /api/recordings/{id}/events` and,
/// while its lesson has live state, to the lesson's event stream (`processing`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct ProcessingEvent {
    /// The recording.
    pub recording: i64,
    /// Its lesson, for a lesson's recording.
    pub lesson: Option<i64>,
    /// `processing`, `ready` or `failed`.
    pub processing: String,
    /// Why it failed.
    pub error: Option<String>,
}

/// [`process`], announcing its start and its outcome on `events` (nobody listening is fine).
pub async fn process_announced(
    store: &Store,
    events: &tokio::sync::broadcast::Sender<ProcessingEvent>,
    id: i64,
) -> Result<Report, ProcessFail> {
    let lesson: Option<i64> =
        sqlx::query_as::<_, (Option<i64>,)>("SELECT lesson_id FROM recordings WHERE id = $1")
            .bind(id)
            .fetch_optional(store.pool())
            .await
            .map_err(db)?
            .and_then(|(l,)| l);
    let ev = |processing: &str, error: Option<String>| ProcessingEvent {
        recording: id,
        lesson,
        processing: processing.to_string(),
        error,
    };
    let _ = events.send(ev("processing", None));
    let result = process(store, id).await;
    let _ = match &result {
        Ok(_) => events.send(ev("ready", None)),
        // Not processed because it is still recording or gone: no change to announce.
        Err(ProcessFail::StillRecording(_) | ProcessFail::NotFound(_)) => Ok(0),
        Err(e) => events.send(ev("failed", Some(e.to_string()))),
    };
    result
}

/// Processes recording `id` in the background (it has just stopped); the outcome is logged,
/// kept in its row and announced (`SchoolState::recording_events`).
pub(crate) fn spawn_processing(app: &SchoolState, id: i64) {
    let store = app.store.clone();
    let events = app.recording_events.clone();
    tokio::spawn(async move {
        match process_announced(&store, &events, id).await {
            Ok(r) => tracing::info!(
                recording = id,
                manifest = %r.manifest_path.display(),
                sources = r.manifest.sources.len(),
                "recording processed; {}",
                r.read
            ),
            Err(e) => tracing::warn!(recording = id, "recording not processed: {e}"),
        }
    });
}

/// When a capture a crash cut off last got data: its file's modification time (the writer
/// hands data to the kernel at least every 100 ms), if that lies between `started` and `now`
/// (a test's simulated clock may not agree with the file system's); else `now`.
async fn cut_at(capture: &str, started: i64, now: i64) -> i64 {
    if capture.is_empty() {
        return now;
    }
    let modified = tokio::fs::metadata(capture)
        .await
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_millis() as i64);
    match modified {
        Some(m) if m >= started && m <= now => m,
        _ => now,
    }
}

/// Start-up recovery (before the scheduler's first bell, so no recording is running yet):
/// every recording a crash left in `recording` is marked stopped (ended when its capture
/// last got data), and every stopped or failed recording not yet processed (or whose
/// processing a crash cut) is processed, one after the other in the background. Returns the
/// lessons whose recording the crash cut (issue 20: they are recorded again if still live).
pub(crate) async fn recover(app: &Arc<SchoolState>) -> Vec<i64> {
    let now = app.now();
    let crashed: Vec<(i64, Option<i64>, i64, String)> = sqlx::query_as(
        "SELECT id, lesson_id, started_at, capture_path FROM recordings \
         WHERE state = 'recording' ORDER BY id",
    )
    .fetch_all(app.store.pool())
    .await
    .unwrap_or_else(|e| {
        tracing::warn!("recovery: {e}");
        Vec::new()
    });
    let mut cut = Vec::new();
    for (id, lesson, started, capture) in &crashed {
        let ended = cut_at(capture, *started, now).await;
        let r = sqlx::query(
            "UPDATE recordings SET state = 'stopped', ended_at = COALESCE(ended_at, $1) \
             WHERE id = $2 AND state = 'recording'",
        )
        .bind(ended)
        .bind(id)
        .execute(app.store.pool())
        .await;
        if let Err(e) = r {
            tracing::warn!(recording = id, "recovery: {e}");
        }
        cut.extend(*lesson);
    }
    if !crashed.is_empty() {
        tracing::warn!(
            recordings = crashed.len(),
            "recordings left open by a crash: recovering them"
        );
    }
    let todo: Vec<(i64,)> = match sqlx::query_as(
        "SELECT id FROM recordings WHERE state <> 'recording' AND capture_path <> '' \
         AND deleted_at IS NULL AND (processing IS NULL OR processing = 'processing') ORDER BY id",
    )
    .fetch_all(app.store.pool())
    .await
    {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!("recovery: {e}");
            return cut;
        }
    };
    if todo.is_empty() {
        return cut;
    }
    let store = app.store.clone();
    let events = app.recording_events.clone();
    tokio::spawn(async move {
        for (id,) in todo {
            match process_announced(&store, &events, id).await {
                Ok(r) => tracing::info!(recording = id, "recovered; {}", r.read),
                Err(e) => tracing::warn!(recording = id, "recovery: not processed: {e}"),
            }
        }
    });
    cut
}
