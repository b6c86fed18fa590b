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

/// Processes recording `id` in the background (it has just stopped); the outcome is logged and
/// kept in its row.
pub(crate) fn spawn_processing(app: &SchoolState, id: i64) {
    let store = app.store.clone();
    tokio::spawn(async move {
        match process(&store, id).await {
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

/// Start-up recovery (before the scheduler's first bell, so no recording is running yet):
/// every recording a crash left in `recording` is marked stopped, and every stopped or failed
/// recording not yet processed (or whose processing a crash cut) is processed, one after the
/// other in the background.
pub(crate) async fn recover(app: &Arc<SchoolState>) {
    let now = app.now();
    let crashed = sqlx::query(
        "UPDATE recordings SET state = 'stopped', ended_at = COALESCE(ended_at, $1) \
         WHERE state = 'recording'",
    )
    .bind(now)
    .execute(app.store.pool())
    .await;
    match crashed {
        Ok(r) if r.rows_affected() > 0 => tracing::warn!(
            recordings = r.rows_affected(),
            "recordings left open by a crash: recovering them"
        ),
        Ok(_) => {}
        Err(e) => tracing::warn!("recovery: {e}"),
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
            return;
        }
    };
    if todo.is_empty() {
        return;
    }
    let store = app.store.clone();
    tokio::spawn(async move {
        for (id,) in todo {
            match process(&store, id).await {
                Ok(r) => tracing::info!(recording = id, "recovered; {}", r.read),
                Err(e) => tracing::warn!(recording = id, "recovery: not processed: {e}"),
            }
        }
    });
}
