//! `GET /api/recordings/{id}/events`: a recording's processing (`processing` events) and its
//! export jobs (`export` events: queued, running with progress, done or failed with the
//! reason) as server-sent events, so pages follow both without polling. Must never poll the
//! database on a timer (changes come from `SchoolState::recording_events` and
//! `export_events`; the row is read again only after missed messages) nor show a recording
//! outside the caller's scope (`recording_for`).

#[allow(unused_imports)]
use super::*;

use std::collections::BTreeSet;

use crate::school::exports::ExportJob;
use crate::school::recording::{Recording, COLS};
use crate::school::recording_files::ProcessingEvent;

/// A recording's processing state as the events route names it: `recording` (still
/// capturing), `waiting` (stopped, not processed yet), `processing`, `ready`, `failed` or
/// `deleted`.
fn processing_now(r: &Recording) -> ProcessingEvent {
    let processing = if r.deleted_at.is_some() {
        "deleted"
    } else if let Some(p) = r.processing.as_deref() {
        p
    } else if r.state == "recording" {
        "recording"
    } else {
        "waiting"
    };
    ProcessingEvent {
        recording: r.id,
        lesson: r.lesson_id,
        processing: processing.to_string(),
        error: r.processing_error.clone(),
    }
}

/// Whether processing will change no more.
fn settled(ev: &ProcessingEvent) -> bool {
    matches!(ev.processing.as_str(), "ready" | "failed" | "deleted")
}

/// Whether an export job will change no more.
fn job_over(j: &ExportJob) -> bool {
    matches!(j.state.as_str(), "done" | "failed")
}

fn sse_processing(ev: &ProcessingEvent) -> SseEvent {
    SseEvent::default()
        .event("processing")
        .data(serde_json::to_string(ev).unwrap_or_default())
}

fn sse_export(j: &ExportJob) -> SseEvent {
    SseEvent::default()
        .event("export")
        .data(serde_json::to_string(j).unwrap_or_default())
}

/// What the stream waits for: processing to settle and the open jobs to end.
struct Follow {
    st: Arc<SchoolState>,
    rid: i64,
    who: String,
    processing: tokio::sync::broadcast::Receiver<ProcessingEvent>,
    exports: tokio::sync::broadcast::Receiver<ExportJob>,
    revoked: tokio::sync::broadcast::Receiver<crate::school::Revoked>,
    settled: bool,
    open: BTreeSet<i64>,
}

impl Follow {
    fn done(&self) -> bool {
        self.settled && self.open.is_empty()
    }

    /// The next event, or none when the stream ends (access revoked, server stopping).
    async fn next(&mut self) -> Option<SseEvent> {
        use tokio::sync::broadcast::error::RecvError;
        loop {
            tokio::select! {
                r = self.processing.recv() => match r {
                    Ok(ev) if ev.recording == self.rid => {
                        self.settled = settled(&ev);
                        return Some(sse_processing(&ev));
                    }
                    Ok(_) => continue,
                    // Missed changes: read the row again.
                    Err(RecvError::Lagged(_)) => {
                        let sql = format!("SELECT {COLS} FROM recordings WHERE id = $1");
                        let row: Option<Recording> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                            .bind(self.rid)
                            .fetch_optional(self.st.store.pool())
                            .await
                            .ok()
                            .flatten();
                        let ev = processing_now(&row?);
                        self.settled = settled(&ev);
                        return Some(sse_processing(&ev));
                    }
                    Err(RecvError::Closed) => return None,
                },
                r = self.exports.recv() => match r {
                    Ok(j) if j.recording == self.rid => {
                        if job_over(&j) {
                            self.open.remove(&j.id);
                        } else {
                            self.open.insert(j.id);
                        }
                        return Some(sse_export(&j));
                    }
                    Ok(_) => continue,
                    // Missed changes: the jobs still open are read again; the page reads the
                    // list once more on the `export` event that follows.
                    Err(RecvError::Lagged(_)) => {
                        let jobs = crate::school::exports::open_of_recording(&self.st.store, self.rid)
                            .await
                            .ok()?;
                        let before = std::mem::take(&mut self.open);
                        self.open = jobs.iter().map(|j| j.id).collect();
                        let ended = before.difference(&self.open).copied().next();
                        let id = ended.or_else(|| self.open.iter().next().copied())?;
                        let j = crate::school::exports::get(&self.st.store, id).await.ok()??;
                        return Some(sse_export(&j));
                    }
                    Err(RecvError::Closed) => return None,
                },
                r = self.revoked.recv() => match r {
                    Ok(crate::school::Revoked::Principal(x)) if x == self.who => return None,
                    Ok(_) => continue,
                    Err(RecvError::Lagged(_)) | Err(RecvError::Closed) => return None,
                },
            }
        }
    }
}

#[utoipa::path(
    get, path = "/api/recordings/{id}/events", params(("id" = i64, Path, description = "the recording's id")),
    responses((status = 200, description = "server-sent events. `processing`: each data line one ProcessingEvent, first the state now (recording, waiting, processing, ready, failed, deleted), then each change. `export`: each data line one ExportJob (queued, running with progress, done with its outcome, failed with the reason), first every job still queued or running, then each change. The stream ends once processing is ready, failed or deleted and no export job of the recording is queued or running", body = crate::school::recording_files::ProcessingEvent, content_type = "text/event-stream"))
)]
pub(super) async fn recordings_events(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult {
    // Subscribe before reading the row and the jobs, so no change falls between them.
    let processing = st.recording_events.subscribe();
    let exports = st.export_events.subscribe();
    let revoked = st.revoked.subscribe();
    let (r, _, _) = recording_for(&st, &p, &id).await?;
    let first = processing_now(&r);
    let jobs = crate::school::exports::open_of_recording(&st.store, r.id)
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let mut head = vec![sse_processing(&first)];
    head.extend(jobs.iter().map(sse_export));
    let follow = Follow {
        st: Arc::clone(&st),
        rid: r.id,
        who: p.ident(),
        processing,
        exports,
        revoked,
        settled: settled(&first),
        open: jobs.iter().map(|j| j.id).collect(),
    };
    use futures_util::StreamExt;
    let head = futures_util::stream::iter(head.into_iter().map(Ok::<_, std::convert::Infallible>));
    if follow.done() {
        return Ok(Sse::new(head).into_response());
    }
    let tail = futures_util::stream::unfold(Some(follow), |f| async move {
        let mut f = f?;
        let ev = f.next().await?;
        let next = (!f.done()).then_some(f);
        Some((Ok::<_, std::convert::Infallible>(ev), next))
    });
    Ok(Sse::new(head.chain(tail))
        .keep_alive(KeepAlive::new().interval(std::time::Duration::from_secs(15)))
        .into_response())
}
