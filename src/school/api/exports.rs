//! Exports of a lesson's recordings (issue 20 item 4): queue one (showcase, premium or the
//! composite 一屏三画面) and read the jobs' progress. The lesson's hub teacher or an
//! administrator over its hub school only. Must never encode here (the runner in
//! `school::exports` does, on a blocking thread) and never queue what this build cannot make.

#[allow(unused_imports)]
use super::*;
use crate::school::exports::{self as jobs, ExportJob, ExportJobError};

/// `POST /api/lessons/{id}/exports` body.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ExportAsk {
    /// `showcase` (1280×720, 900 kbit/s), `premium` (1920×1080, 8 Mbit/s) or `composite`.
    preset: String,
    /// The recording to export (default: the lesson's latest processed one).
    #[serde(default)]
    recording: Option<i64>,
    /// The title card's volume (上册, 下册, …), which the lesson does not hold.
    #[serde(default)]
    volume: Option<String>,
}

/// `GET /api/lessons/{id}/exports` answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct ExportList {
    /// The lesson.
    lesson: i64,
    /// Whether this build can export (`--features gst`).
    available: bool,
    /// Its export jobs, newest first.
    jobs: Vec<ExportJob>,
}

fn job_error(e: ExportJobError) -> ApiError {
    use crate::record::export::ExportFail;
    match e {
        ExportJobError::NoRecording(_) => ApiError::not_found("no-such-recording", e.to_string()),
        ExportJobError::NotReady(_) => {
            ApiError::new(StatusCode::CONFLICT, "recording-not-ready", e.to_string())
        }
        ExportJobError::Export(ExportFail::NeedsGst) => ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            "exports-unavailable",
            e.to_string(),
        ),
        ExportJobError::Export(ExportFail::Preset(_)) => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "bad-preset",
            e.to_string(),
        ),
        ExportJobError::Export(other) => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "export-failed",
            other.to_string(),
        ),
        ExportJobError::Store(s) => s.into(),
    }
}

/// Queues an export of one of the lesson's recordings; the job runs in the background.
#[utoipa::path(
    post, path = "/api/lessons/{id}/exports", params(("id" = i64, Path, description = "the lesson's id")), request_body = ExportAsk,
    // The 202 body is an `ExportJob`, as listed (and checked) by GET /api/lessons/{id}/exports;
    // left out here because only a `--features gst` build with a processed recording makes one.
    responses((status = 202, description = "the queued job, an ExportJob as GET /api/lessons/{id}/exports lists it; 409 while the recording is not processed, 501 in a build without `--features gst`"))
)]
pub(super) async fn lessons_exports_create(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<ExportAsk>,
) -> Result<(StatusCode, Json<ExportJob>), ApiError> {
    let l = model::get_lesson(&st.store, parse_id(&id)?).await?;
    own_lesson(&st, &p, &l).await?;
    // What the build cannot make is said before anything is looked up.
    if !crate::record::export::PRESETS.contains(&b.preset.as_str()) {
        return Err(job_error(
            crate::record::export::ExportFail::Preset(b.preset).into(),
        ));
    }
    if !crate::record::export::available() {
        return Err(job_error(
            crate::record::export::ExportFail::NeedsGst.into(),
        ));
    }
    let recordings = crate::school::recording::of_lesson(&st.store, l.id).await?;
    let chosen = match b.recording {
        Some(r) => recordings.iter().find(|x| x.id == r).ok_or_else(|| {
            ApiError::not_found(
                "no-such-recording",
                format!("lesson {} has no recording {r}", l.id),
            )
        })?,
        None => recordings
            .iter()
            .rev()
            .find(|x| x.processing.as_deref() == Some("ready"))
            .or(recordings.last())
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::CONFLICT,
                    "recording-not-ready",
                    format!("lesson {} has no recording to export", l.id),
                )
            })?,
    };
    let job = jobs::enqueue(
        &st.store,
        chosen.id,
        &b.preset,
        b.volume.as_deref(),
        &p.ident(),
        st.now(),
    )
    .await
    .map_err(job_error)?;
    // Queued: pushed to the recording's event stream (issue 20, recfin).
    let _ = st.export_events.send(job.clone());
    Ok((StatusCode::ACCEPTED, Json(job)))
}

/// The lesson's export jobs with their state, progress and, for a failed one, the reason.
#[utoipa::path(
    get, path = "/api/lessons/{id}/exports", params(("id" = i64, Path, description = "the lesson's id")),
    responses((status = 200, description = "the lesson's export jobs, newest first", body = ExportList))
)]
pub(super) async fn lessons_exports_list(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult {
    let l = model::get_lesson(&st.store, parse_id(&id)?).await?;
    own_lesson(&st, &p, &l).await?;
    let jobs = jobs::of_lesson(&st.store, l.id).await.map_err(job_error)?;
    Ok(Json(ExportList {
        lesson: l.id,
        available: crate::record::export::available(),
        jobs,
    })
    .into_response())
}
