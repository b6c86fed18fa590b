//! The automatic S-T draft as a background job (issue 21): the `st_draft_jobs` table (one job
//! per observation: pending → running → done/failed, with progress and the failure's problem
//! kind and reason), the runner that claims pending jobs (at most one per recording at a time,
//! so two observers of one lesson never decode the same files at once) and listens to the
//! recording on a blocking thread, and the stored draft (`st_drafts`) it writes when done. A
//! job a restart found pending or running runs again. Must never decode on an async worker,
//! never write the observer's own codes, and never decide who may ask for a draft (the routes
//! in `api/stdraft.rs` do).

use std::path::{Path as FsPath, PathBuf};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use axum::http::StatusCode;
use serde::Serialize;

use super::st;
use super::stdraft::{self, DraftRule, DraftSample};
use crate::problem::ApiError;
use crate::record::process::Manifest;
use crate::record::voice::{self, VoicedFrame};
use crate::school::SchoolState;
use crate::store::{col, Store, StoreError, StoreResult};

/// One draft job as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct StDraftJob {
    /// The recording listened to.
    pub recording_id: i64,
    /// `pending`, `running`, `done` or `failed`.
    pub state: String,
    /// Fraction done, 0 … 1.
    pub progress: f64,
    /// Why it failed: a problem kind (`no-teacher-audio`, `recording-unreadable`, …).
    pub error_kind: Option<String>,
    /// Why it failed, in words.
    pub error: Option<String>,
    /// When it was asked for (Unix ms).
    pub requested_at: i64,
    /// When it started running (Unix ms).
    pub started_at: Option<i64>,
    /// When it ended (Unix ms).
    pub finished_at: Option<i64>,
}

type JobRow = (
    i64,
    String,
    i64,
    Option<String>,
    Option<String>,
    i64,
    Option<i64>,
    Option<i64>,
);

fn job(r: JobRow) -> StDraftJob {
    StDraftJob {
        recording_id: r.0,
        state: r.1,
        progress: r.2 as f64 / 1000.0,
        error_kind: r.3,
        error: r.4,
        requested_at: r.5,
        started_at: r.6,
        finished_at: r.7,
    }
}

/// Observation `observation`'s draft job, if one was ever asked for.
pub async fn get(store: &Store, observation: i64) -> StoreResult<Option<StDraftJob>> {
    let r: Option<JobRow> = sqlx::query_as(
        "SELECT recording_id, state, progress, error_kind, error, requested_at, started_at, \
         finished_at FROM st_draft_jobs WHERE observation_id = $1",
    )
    .bind(observation)
    .fetch_optional(store.pool())
    .await?;
    Ok(r.map(job))
}

/// Wakes the runners (a job was asked for, or one ended and freed its recording).
fn wake() -> &'static tokio::sync::Notify {
    static WAKE: OnceLock<tokio::sync::Notify> = OnceLock::new();
    WAKE.get_or_init(tokio::sync::Notify::new)
}

/// Asks for a draft of observation `observation` from recording `recording`: a new pending
/// job, unless one is already pending or running for it (then that one stands, unchanged).
/// Returns the job as it now is.
pub async fn request(
    store: &Store,
    observation: i64,
    recording: i64,
    now: i64,
) -> StoreResult<StDraftJob> {
    let mut tx = store.pool().begin().await?;
    let busy: Option<(String,)> =
        sqlx::query_as("SELECT state FROM st_draft_jobs WHERE observation_id = $1")
            .bind(observation)
            .fetch_optional(&mut *tx)
            .await?;
    match busy.as_ref().map(|b| b.0.as_str()) {
        Some("pending" | "running") => {}
        Some(_) => {
            sqlx::query(
                "UPDATE st_draft_jobs SET recording_id = $1, state = 'pending', progress = 0, \
                 error_kind = NULL, error = NULL, requested_at = $2, started_at = NULL, \
                 finished_at = NULL WHERE observation_id = $3",
            )
            .bind(recording)
            .bind(now)
            .bind(observation)
            .execute(&mut *tx)
            .await?;
        }
        None => {
            sqlx::query(
                "INSERT INTO st_draft_jobs (observation_id, recording_id, requested_at) \
                 VALUES ($1, $2, $3)",
            )
            .bind(observation)
            .bind(recording)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
    }
    tx.commit().await?;
    wake().notify_waiters();
    get(store, observation)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("S-T draft job {observation}")))
}

/// A stored draft.
pub(crate) struct DraftRow {
    pub recording_id: i64,
    pub interval_s: i64,
    pub codes: String,
    pub samples: Vec<DraftSample>,
    pub teacher: String,
    pub rule: DraftRule,
    pub created_at: i64,
}

/// The samples and rule as stored (JSON in `st_drafts.samples`).
#[derive(serde::Serialize, serde::Deserialize)]
struct Stored {
    rule: StoredRule,
    samples: Vec<(u64, char, u32, u32)>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct StoredRule {
    half_window_ms: u64,
    min_voiced_permille: u32,
}

/// Observation `observation`'s finished draft, if one was made.
pub(crate) async fn load(store: &Store, observation: i64) -> StoreResult<Option<DraftRow>> {
    let r = sqlx::query(
        "SELECT recording_id, interval_s, codes, samples, teacher, created_at \
         FROM st_drafts WHERE observation_id = $1",
    )
    .bind(observation)
    .fetch_optional(store.pool())
    .await?;
    let Some(r) = r else { return Ok(None) };
    let stored: String = col(&r, "samples")?;
    // Written by `save` below; a row that does not read back is shown without its samples.
    let stored: Stored = serde_json::from_str(&stored).unwrap_or(Stored {
        rule: StoredRule {
            half_window_ms: DraftRule::default().half_window_ms,
            min_voiced_permille: DraftRule::default().min_voiced_permille,
        },
        samples: Vec::new(),
    });
    Ok(Some(DraftRow {
        recording_id: col(&r, "recording_id")?,
        interval_s: col(&r, "interval_s")?,
        codes: col(&r, "codes")?,
        samples: stored
            .samples
            .into_iter()
            .filter_map(|(at_ms, c, t, k)| {
                Some(DraftSample {
                    at_ms,
                    code: st::StCode::from_letter(c)?,
                    teacher_voiced: t,
                    class_voiced: k,
                })
            })
            .collect(),
        teacher: col(&r, "teacher")?,
        rule: DraftRule {
            half_window_ms: stored.rule.half_window_ms,
            min_voiced_permille: stored.rule.min_voiced_permille,
        },
        created_at: col(&r, "created_at")?,
    }))
}

/// Stores a finished draft (replacing an earlier one) and marks the job done, together.
async fn save(store: &Store, observation: i64, d: &DraftRow) -> StoreResult<()> {
    let stored = Stored {
        rule: StoredRule {
            half_window_ms: d.rule.half_window_ms,
            min_voiced_permille: d.rule.min_voiced_permille,
        },
        samples: d
            .samples
            .iter()
            .map(|s| (s.at_ms, s.code.letter(), s.teacher_voiced, s.class_voiced))
            .collect(),
    };
    let samples = serde_json::to_string(&stored).unwrap_or_else(|_| "{}".into());
    let mut tx = store.pool().begin().await?;
    sqlx::query("DELETE FROM st_drafts WHERE observation_id = $1")
        .bind(observation)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO st_drafts (observation_id, recording_id, interval_s, codes, samples, \
         teacher, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(observation)
    .bind(d.recording_id)
    .bind(d.interval_s)
    .bind(&d.codes)
    .bind(samples)
    .bind(&d.teacher)
    .bind(d.created_at)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE st_draft_jobs SET state = 'done', progress = 1000, finished_at = $1 \
         WHERE observation_id = $2",
    )
    .bind(d.created_at)
    .bind(observation)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

async fn fail(store: &Store, observation: i64, e: &ApiError, now: i64) -> StoreResult<()> {
    sqlx::query(
        "UPDATE st_draft_jobs SET state = 'failed', error_kind = $1, error = $2, \
         finished_at = $3 WHERE observation_id = $4",
    )
    .bind(e.kind)
    .bind(&e.detail)
    .bind(now)
    .bind(observation)
    .execute(store.pool())
    .await?;
    Ok(())
}

/// No processed recording to draft from (409 `no-recording`).
pub(crate) fn no_recording(detail: String) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, "no-recording", detail)
}

fn unreadable(detail: String) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, "recording-unreadable", detail)
}

/// What listening found.
pub struct Heard {
    /// The hub teacher's frames, in time order.
    pub teacher: Vec<VoicedFrame>,
    /// Every other audio source's frames.
    pub classes: Vec<Vec<VoicedFrame>>,
    /// The recording's length, ms.
    pub duration_ms: u64,
}

/// Reads the manifest and the voice of every Opus source: the hub teacher's (owner named
/// `teacher`) and the others'. `progress` hears the fraction of sources listened to. Blocking:
/// call it on a blocking thread.
pub fn listen(
    manifest_path: &FsPath,
    teacher: &str,
    mut progress: impl FnMut(f64),
) -> Result<Heard, ApiError> {
    let bytes = std::fs::read(manifest_path).map_err(|e| {
        no_recording(format!(
            "the recording's manifest {} cannot be read: {e}",
            manifest_path.display()
        ))
    })?;
    let m: Manifest = serde_json::from_slice(&bytes)
        .map_err(|e| unreadable(format!("the recording's manifest.json does not read: {e}")))?;
    let dir = manifest_path.parent().unwrap_or(FsPath::new("."));
    let mut heard = Heard {
        teacher: Vec::new(),
        classes: Vec::new(),
        duration_ms: m.duration_ms,
    };
    let audio: Vec<_> = m
        .sources
        .iter()
        .filter(|s| {
            s.tracks
                .iter()
                .any(|t| t.codec == crate::record::format::Codec::Opus)
        })
        .collect();
    if !audio.iter().any(|s| s.hub && s.owner == teacher) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "no-teacher-audio",
            format!("the recording holds no audio of the hub teacher ({teacher})"),
        ));
    }
    for (i, s) in audio.iter().enumerate() {
        let v = voice::voice_of_file(&dir.join(&s.file), s.start_ms).map_err(|e| {
            unreadable(format!(
                "the recording's {} cannot be listened to: {e}",
                s.file
            ))
        })?;
        if s.hub && s.owner == teacher {
            heard.teacher.extend(v.frames);
        } else {
            heard.classes.push(v.frames);
        }
        progress((i + 1) as f64 / audio.len() as f64);
    }
    heard.teacher.sort_by_key(|f| f.at_ms);
    Ok(heard)
}

/// Listens to `manifest` and drafts at `interval_s` with `rule` (blocking; what the job and the
/// measurement run).
pub fn make(
    manifest: &FsPath,
    teacher: &str,
    interval_s: u32,
    rule: DraftRule,
    progress: impl FnMut(f64),
) -> Result<Vec<DraftSample>, ApiError> {
    let h = listen(manifest, teacher, progress)?;
    let classes: Vec<&[VoicedFrame]> = h.classes.iter().map(Vec::as_slice).collect();
    Ok(stdraft::draft(
        &h.teacher,
        &classes,
        h.duration_ms,
        interval_s,
        rule,
    ))
}

/// The processed manifest of recording `id`, or why there is none.
async fn manifest_of(store: &Store, id: i64) -> Result<PathBuf, ApiError> {
    let row: Option<(Option<String>, Option<String>)> =
        sqlx::query_as("SELECT processing, manifest_path FROM recordings WHERE id = $1")
            .bind(id)
            .fetch_optional(store.pool())
            .await
            .map_err(StoreError::from)?;
    match row {
        Some((Some(p), Some(m))) if p == "ready" => Ok(PathBuf::from(m)),
        Some((p, _)) => Err(no_recording(format!(
            "recording {id} is not processed yet ({})",
            p.as_deref().unwrap_or("not started")
        ))),
        None => Err(no_recording(format!("recording {id} is gone"))),
    }
}

/// Runs claimed job (`observation`, `recording`) to its end and writes the result.
async fn run_job(st: &SchoolState, observation: i64, recording: i64) -> StoreResult<()> {
    let store = st.store.clone();
    let result = async {
        let manifest = manifest_of(&store, recording).await?;
        let (interval_s, teacher): (i64, Option<String>) = sqlx::query_as(
            "SELECT o.interval_s, t.name FROM observations o JOIN lessons l ON l.id = o.lesson_id \
             LEFT JOIN teachers t ON t.id = l.hub_teacher_id WHERE o.id = $1",
        )
        .bind(observation)
        .fetch_one(store.pool())
        .await
        .map_err(StoreError::from)?;
        let teacher = teacher.unwrap_or_default();
        let rule = DraftRule::default();
        // Progress goes to the table at most twice a second, never from the decoding thread.
        let (tx, mut rx) = tokio::sync::watch::channel(0u16);
        let writer = {
            let store = store.clone();
            tokio::spawn(async move {
                while rx.changed().await.is_ok() {
                    let p = i64::from(*rx.borrow_and_update());
                    let _ = sqlx::query(
                        "UPDATE st_draft_jobs SET progress = $1 \
                         WHERE observation_id = $2 AND state = 'running'",
                    )
                    .bind(p)
                    .bind(observation)
                    .execute(store.pool())
                    .await;
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            })
        };
        let who = teacher.clone();
        let interval = u32::try_from(interval_s).unwrap_or(30);
        let samples = tokio::task::spawn_blocking(move || {
            make(&manifest, &who, interval, rule, |f| {
                // Listening is most of the work; the last thousandths are the draft's saving.
                let _ = tx.send((f.clamp(0.0, 1.0) * 990.0) as u16);
            })
        })
        .await
        .map_err(ApiError::internal)??;
        let _ = writer.await;
        Ok::<_, ApiError>(DraftRow {
            recording_id: recording,
            interval_s,
            codes: samples.iter().map(|s| s.code.letter()).collect(),
            samples,
            teacher,
            rule,
            created_at: 0,
        })
    }
    .await;
    match result {
        Ok(mut row) => {
            row.created_at = st.now();
            save(&store, observation, &row).await?;
            tracing::info!(observation, recording, codes = %row.codes, "S-T draft made");
        }
        Err(e) => {
            fail(&store, observation, &e, st.now()).await?;
            tracing::warn!(observation, recording, "S-T draft failed: {}", e.detail);
        }
    }
    Ok(())
}

/// Claims the oldest pending job whose recording no other job is listening to.
async fn claim(store: &Store, now: i64) -> StoreResult<Option<(i64, i64)>> {
    let next: Option<(i64, i64)> = sqlx::query_as(
        "SELECT j.observation_id, j.recording_id FROM st_draft_jobs j WHERE j.state = 'pending' \
         AND NOT EXISTS (SELECT 1 FROM st_draft_jobs r WHERE r.state = 'running' \
         AND r.recording_id = j.recording_id) ORDER BY j.requested_at, j.observation_id LIMIT 1",
    )
    .fetch_optional(store.pool())
    .await?;
    let Some((observation, recording)) = next else {
        return Ok(None);
    };
    let taken = sqlx::query(
        "UPDATE st_draft_jobs SET state = 'running', progress = 0, started_at = $1 \
         WHERE observation_id = $2 AND state = 'pending'",
    )
    .bind(now)
    .bind(observation)
    .execute(store.pool())
    .await?;
    Ok((taken.rows_affected() == 1).then_some((observation, recording)))
}

/// Sets every job a stopped server left running back to pending (called once at start-up).
pub async fn requeue_interrupted(store: &Store) -> StoreResult<u64> {
    let r = sqlx::query(
        "UPDATE st_draft_jobs SET state = 'pending', progress = 0, started_at = NULL \
         WHERE state = 'running'",
    )
    .execute(store.pool())
    .await?;
    Ok(r.rows_affected())
}

/// How many drafts run at once (each decodes on one blocking thread).
const PARALLEL: usize = 2;

/// The runner: claims pending jobs (one per recording at a time, [`PARALLEL`] at most) and runs
/// each in its own task; woken when a job is asked for or ends, and every few seconds. Ends
/// when the server's state is gone.
pub async fn run(st: Weak<SchoolState>) {
    if let Some(s) = st.upgrade() {
        match requeue_interrupted(&s.store).await {
            Ok(0) => {}
            Ok(n) => tracing::info!("{n} S-T draft job(s) interrupted by a restart run again"),
            Err(e) => tracing::warn!("re-queueing interrupted S-T drafts: {e}"),
        }
    }
    let slots = Arc::new(tokio::sync::Semaphore::new(PARALLEL));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let Some(s) = st.upgrade() else { return };
        let notified = wake().notified();
        match claim(&s.store, s.now()).await {
            Ok(Some((observation, recording))) => {
                tokio::spawn(async move {
                    if let Err(e) = run_job(&s, observation, recording).await {
                        tracing::warn!(observation, "S-T draft job bookkeeping failed: {e}");
                    }
                    drop(slot);
                    // Its recording is free again: a job waiting for it may start.
                    wake().notify_waiters();
                });
                continue;
            }
            Ok(None) => {}
            Err(e) => tracing::warn!("looking for S-T draft jobs: {e}"),
        }
        drop((s, slot));
        let _ = tokio::time::timeout(Duration::from_secs(3), notified).await;
    }
}

/// Starts the runner (`lib.rs`, at start-up, both the served and the in-process server).
pub fn spawn(st: &Arc<SchoolState>) {
    tokio::spawn(run(Arc::downgrade(st)));
}
