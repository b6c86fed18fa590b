//! Exports as background jobs (issue 20 item 4): the `export_jobs` table (queued → running →
//! done/failed with progress and the failure's reason), the runner that takes queued jobs one
//! at a time and encodes on a blocking thread (`record::export`, GStreamer under feature
//! `gst`), and the title card's fields from the lesson. A job a restart found running is queued
//! again. Must never encode on an async worker or decide who may export (the routes do).

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use serde::Serialize;

use super::SchoolState;
use crate::record::export::{self, ExportOutcome, ExportRequest, TitleCard};
use crate::store::{Store, StoreError};

/// Why an export could not be queued or run.
#[derive(Debug, thiserror::Error)]
pub enum ExportJobError {
    /// No such recording.
    #[error("no recording {0}")]
    NoRecording(i64),
    /// The recording has no playable files yet.
    #[error("recording {0} is not processed yet (its files are made when it stops)")]
    NotReady(i64),
    /// Not a preset, or no GStreamer in this build.
    #[error(transparent)]
    Export(#[from] export::ExportFail),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn db(e: sqlx::Error) -> ExportJobError {
    ExportJobError::Store(e.into())
}

/// One export job as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ExportJob {
    /// The job's id.
    pub id: i64,
    /// The recording exported.
    pub recording: i64,
    /// `showcase`, `premium` or `composite`.
    pub preset: String,
    /// `queued`, `running`, `done` or `failed`.
    pub state: String,
    /// Fraction done, 0 … 1.
    pub progress: f64,
    /// The title card's fields.
    pub title: TitleCard,
    /// What the finished export produced.
    pub outcome: Option<ExportOutcome>,
    /// Why it failed.
    pub error: Option<String>,
    /// When it was asked for (Unix ms).
    pub created_at: i64,
    /// When it started running (Unix ms).
    pub started_at: Option<i64>,
    /// When it ended (Unix ms).
    pub finished_at: Option<i64>,
}

type JobRow = (
    i64,
    i64,
    String,
    String,
    i64,
    String,
    Option<String>,
    Option<String>,
    i64,
    Option<i64>,
    Option<i64>,
);

macro_rules! job_columns {
    () => {
        "id, recording_id, preset, state, progress, title, outcome, error, \
         created_at, started_at, finished_at"
    };
}

fn job(r: JobRow) -> ExportJob {
    ExportJob {
        id: r.0,
        recording: r.1,
        preset: r.2,
        state: r.3,
        progress: r.4 as f64 / 1000.0,
        title: serde_json::from_str(&r.5).unwrap_or_default(),
        outcome: r.6.and_then(|o| serde_json::from_str(&o).ok()),
        error: r.7,
        created_at: r.8,
        started_at: r.9,
        finished_at: r.10,
    }
}

/// The title card's fields for recording `id`'s lesson: its title (else subject), grade and
/// textbook edition, its hub school and hub teacher. A plain room's recording has none.
pub async fn title_card(store: &Store, id: i64) -> Result<TitleCard, ExportJobError> {
    let row: Option<(String, String, String, String, String, String)> = sqlx::query_as(
        "SELECT l.title, l.subject, l.grade, l.textbook, s.name, t.name FROM recordings r \
         JOIN lessons l ON l.id = r.lesson_id \
         JOIN teachers t ON t.id = l.hub_teacher_id \
         JOIN classrooms c ON c.id = l.hub_classroom_id \
         JOIN schools s ON s.id = c.school_id WHERE r.id = $1",
    )
    .bind(id)
    .fetch_optional(store.pool())
    .await
    .map_err(db)?;
    Ok(row
        .map(
            |(title, subject, grade, textbook, school, teacher)| TitleCard {
                course: if title.trim().is_empty() {
                    subject
                } else {
                    title
                },
                grade,
                volume: String::new(),
                edition: textbook,
                school,
                teacher,
            },
        )
        .unwrap_or_default())
}

/// The directory holding recording `id`'s processed files (refused until it is processed).
pub async fn recording_dir(store: &Store, id: i64) -> Result<PathBuf, ExportJobError> {
    let row: Option<(Option<String>, Option<String>)> =
        sqlx::query_as("SELECT processing, manifest_path FROM recordings WHERE id = $1")
            .bind(id)
            .fetch_optional(store.pool())
            .await
            .map_err(db)?;
    let Some((processing, manifest)) = row else {
        return Err(ExportJobError::NoRecording(id));
    };
    match (processing.as_deref(), manifest) {
        (Some("ready"), Some(m)) => Path::new(&m)
            .parent()
            .map(Path::to_path_buf)
            .ok_or(ExportJobError::NotReady(id)),
        _ => Err(ExportJobError::NotReady(id)),
    }
}

/// Wakes the runners (a job was queued). One per process: every server's runner looks.
fn wake() -> &'static tokio::sync::Notify {
    static WAKE: OnceLock<tokio::sync::Notify> = OnceLock::new();
    WAKE.get_or_init(tokio::sync::Notify::new)
}

/// Queues an export of recording `id`: the preset is checked, the recording must be processed,
/// and a build without GStreamer says so before anything is queued. `volume` completes the
/// lesson's title card (the lesson has no such field).
pub async fn enqueue(
    store: &Store,
    id: i64,
    preset: &str,
    volume: Option<&str>,
    by: &str,
    now: i64,
) -> Result<ExportJob, ExportJobError> {
    if !export::PRESETS.contains(&preset) {
        return Err(export::ExportFail::Preset(preset.to_string()).into());
    }
    if !export::available() {
        return Err(export::ExportFail::NeedsGst.into());
    }
    recording_dir(store, id).await?;
    let mut title = title_card(store, id).await?;
    if let Some(v) = volume {
        title.volume = v.trim().to_string();
    }
    let title = serde_json::to_string(&title).unwrap_or_else(|_| "{}".into());
    let (job_id,): (i64,) = sqlx::query_as(
        "INSERT INTO export_jobs (recording_id, preset, title, requested_by, created_at) \
         VALUES ($1, $2, $3, $4, $5) RETURNING id",
    )
    .bind(id)
    .bind(preset)
    .bind(title)
    .bind(by)
    .bind(now)
    .fetch_one(store.pool())
    .await
    .map_err(db)?;
    wake().notify_waiters();
    get(store, job_id)
        .await?
        .ok_or(ExportJobError::NoRecording(id))
}

/// Job `id`.
pub async fn get(store: &Store, id: i64) -> Result<Option<ExportJob>, ExportJobError> {
    let row: Option<JobRow> = sqlx::query_as(concat!(
        "SELECT ",
        job_columns!(),
        " FROM export_jobs WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(store.pool())
    .await
    .map_err(db)?;
    Ok(row.map(job))
}

/// Every export job of lesson `lesson`'s recordings, newest first.
pub async fn of_lesson(store: &Store, lesson: i64) -> Result<Vec<ExportJob>, ExportJobError> {
    let rows: Vec<JobRow> = sqlx::query_as(concat!(
        "SELECT ",
        job_columns!(),
        " FROM export_jobs WHERE recording_id IN \
         (SELECT id FROM recordings WHERE lesson_id = $1) ORDER BY id DESC"
    ))
    .bind(lesson)
    .fetch_all(store.pool())
    .await
    .map_err(db)?;
    Ok(rows.into_iter().map(job).collect())
}

/// Runs one export now on a blocking thread (the command line's path): the outcome or the
/// reason it failed.
pub async fn export_now(
    dir: PathBuf,
    req: ExportRequest,
    mut progress: impl FnMut(f32) + Send + 'static,
) -> Result<ExportOutcome, ExportJobError> {
    tokio::task::spawn_blocking(move || export::export_recording(&dir, &req, &mut progress))
        .await
        .map_err(|e| export::ExportFail::Export(format!("the export thread failed: {e}")))?
        .map_err(ExportJobError::from)
}

/// Claims the oldest queued job (none when another runner took it first).
async fn claim(store: &Store, now: i64) -> Result<Option<ExportJob>, ExportJobError> {
    let next: Option<(i64,)> =
        sqlx::query_as("SELECT id FROM export_jobs WHERE state = 'queued' ORDER BY id LIMIT 1")
            .fetch_optional(store.pool())
            .await
            .map_err(db)?;
    let Some((id,)) = next else { return Ok(None) };
    let taken = sqlx::query(
        "UPDATE export_jobs SET state = 'running', progress = 0, started_at = $1, error = NULL \
         WHERE id = $2 AND state = 'queued'",
    )
    .bind(now)
    .bind(id)
    .execute(store.pool())
    .await
    .map_err(db)?;
    if taken.rows_affected() == 0 {
        return Ok(None);
    }
    get(store, id).await
}

/// Runs job `j` to its end and writes the result.
async fn run_job(st: &Arc<SchoolState>, j: ExportJob) -> Result<(), ExportJobError> {
    // Claimed: the page shows it running.
    announce(st, j.id).await;
    let store = st.store.clone();
    let result = match recording_dir(&store, j.recording).await {
        Err(e) => Err(e),
        Ok(dir) => {
            let req = ExportRequest {
                preset: j.preset.clone(),
                title: j.title.clone(),
                size: None,
                video_kbps: None,
            };
            // Progress goes to the table (and out as an event) at most twice a second, never
            // from the encoder's thread.
            let (tx, mut rx) = tokio::sync::watch::channel(0u16);
            let writer = {
                let st = Arc::clone(st);
                let id = j.id;
                tokio::spawn(async move {
                    while rx.changed().await.is_ok() {
                        let p = i64::from(*rx.borrow_and_update());
                        if let Err(e) = set_progress(&st, id, p).await {
                            tracing::warn!(job = id, "export progress: {e}");
                        }
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                })
            };
            let r = export_now(dir, req, move |f| {
                let _ = tx.send((f.clamp(0.0, 1.0) * 1000.0) as u16);
            })
            .await;
            let _ = writer.await;
            r
        }
    };
    match result {
        Ok(outcome) => {
            finish(st, j.id, Ok(&outcome)).await?;
            tracing::info!(job = j.id, recording = j.recording, preset = %j.preset, speed = outcome.speed, "export done");
        }
        Err(e) => {
            let why = e.to_string();
            finish(st, j.id, Err(&why)).await?;
            tracing::warn!(job = j.id, recording = j.recording, preset = %j.preset, "export failed: {why}");
        }
    }
    Ok(())
}

/// Recording `id`'s jobs still queued or running, oldest first.
pub async fn open_of_recording(store: &Store, id: i64) -> Result<Vec<ExportJob>, ExportJobError> {
    let rows: Vec<JobRow> = sqlx::query_as(concat!(
        "SELECT ",
        job_columns!(),
        " FROM export_jobs WHERE recording_id = $1 AND state IN ('queued', 'running') ORDER BY id"
    ))
    .bind(id)
    .fetch_all(store.pool())
    .await
    .map_err(db)?;
    Ok(rows.into_iter().map(job).collect())
}

/// Announces job `id` as it is now on `SchoolState::export_events` (the recording's event
/// stream pushes it); nobody listening is fine.
pub async fn announce(st: &SchoolState, id: i64) {
    match get(&st.store, id).await {
        Ok(Some(j)) => {
            let _ = st.export_events.send(j);
        }
        Ok(None) => {}
        Err(e) => tracing::warn!(job = id, "export job not announced: {e}"),
    }
}

/// Ends job `id` (running) as the runner does: `done` with its outcome or `failed` with the
/// reason, announced.
pub async fn finish(
    st: &SchoolState,
    id: i64,
    result: Result<&ExportOutcome, &str>,
) -> Result<(), ExportJobError> {
    let now = st.now();
    match result {
        Ok(outcome) => {
            sqlx::query(
                "UPDATE export_jobs SET state = 'done', progress = 1000, outcome = $1, \
                 finished_at = $2 WHERE id = $3",
            )
            .bind(serde_json::to_string(outcome).unwrap_or_default())
            .bind(now)
            .bind(id)
            .execute(st.store.pool())
            .await
            .map_err(db)?;
        }
        Err(why) => {
            sqlx::query(
                "UPDATE export_jobs SET state = 'failed', error = $1, finished_at = $2 WHERE id = $3",
            )
            .bind(why)
            .bind(now)
            .bind(id)
            .execute(st.store.pool())
            .await
            .map_err(db)?;
        }
    }
    announce(st, id).await;
    Ok(())
}

/// Sets running job `id`'s progress (per mille) as the runner does, announced.
pub async fn set_progress(st: &SchoolState, id: i64, per_mille: i64) -> Result<(), ExportJobError> {
    sqlx::query("UPDATE export_jobs SET progress = $1 WHERE id = $2 AND state = 'running'")
        .bind(per_mille)
        .bind(id)
        .execute(st.store.pool())
        .await
        .map_err(db)?;
    announce(st, id).await;
    Ok(())
}

/// Queues again every job a stopped server left running (called once at start-up).
pub async fn requeue_interrupted(store: &Store) -> Result<u64, ExportJobError> {
    let r = sqlx::query(
        "UPDATE export_jobs SET state = 'queued', progress = 0, started_at = NULL \
         WHERE state = 'running'",
    )
    .execute(store.pool())
    .await
    .map_err(db)?;
    Ok(r.rows_affected())
}

/// The runner: one export at a time (an encode takes the machine's cores), woken when a job is
/// queued and every few seconds. Ends when the server's state is gone.
pub async fn run(st: Weak<SchoolState>) {
    if let Some(s) = st.upgrade() {
        match requeue_interrupted(&s.store).await {
            Ok(0) => {}
            Ok(n) => tracing::info!("{n} export job(s) interrupted by a restart queued again"),
            Err(e) => tracing::warn!("re-queueing interrupted exports: {e}"),
        }
    }
    loop {
        let Some(s) = st.upgrade() else { return };
        let notified = wake().notified();
        match claim(&s.store, s.now()).await {
            Ok(Some(j)) => {
                if let Err(e) = run_job(&s, j).await {
                    tracing::warn!("export job bookkeeping failed: {e}");
                }
                continue;
            }
            Ok(None) => {}
            Err(e) => tracing::warn!("looking for export jobs: {e}"),
        }
        drop(s);
        let _ = tokio::time::timeout(Duration::from_secs(3), notified).await;
    }
}

/// Shares the runner's entry for `lib.rs` (kept beside it so the state type stays private).
pub fn spawn(st: &Arc<SchoolState>) {
    tokio::spawn(run(Arc::downgrade(st)));
}
