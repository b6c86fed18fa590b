//! The automatic S-T draft routes (`/api/observations/{id}/st-draft`): the observer asks for a
//! draft of the S-T coding made from the lesson's processed recording (voice activity on the
//! hub teacher's track at each sample instant), made by a background job
//! (`observe::stdraft_job`) and stored beside the observation; anyone who may read the
//! observation reads it, the job's state, and its comparison against the observer's own codes.
//! Must never write the observer's codes (the draft is a proposal the observer reviews), and
//! never decode in the request (the job does, on a blocking thread).

use super::*;
use crate::observe::stdraft::{self, Comparison};
use crate::observe::stdraft_job::{self as job, load, no_recording};
use crate::school::recording;

/// The answer: the draft (if made), its S-T figures, and where it and the observer differ.
async fn draft_view(st: &SchoolState, o: &ObservationRow) -> Result<Value, ApiError> {
    // The job first: a job read as done had its draft committed with it, so the draft read
    // after it is that one (read the other way round, a job ending in between showed `done`
    // beside no draft).
    let job = job::get(&st.store, o.id).await?;
    let d = load(&st.store, o.id).await?;
    let observer = ostore::codes(&st.store, o.id, Method::St).await?;
    let codes = d.as_ref().map(|d| d.codes.clone()).unwrap_or_default();
    let cmp: Comparison = stdraft::compare(&ostore::st_codes(&codes), &ostore::st_codes(&observer));
    Ok(json!({
        "observation_id": o.id,
        "made": d.is_some(),
        "recording_id": d.as_ref().map(|d| d.recording_id),
        "interval_s": d.as_ref().map_or(o.interval_s, |d| d.interval_s),
        "teacher": d.as_ref().map(|d| d.teacher.clone()),
        "rule": d.as_ref().map(|d| d.rule),
        "created_at": d.as_ref().map(|d| d.created_at),
        "codes": codes,
        "samples": d.as_ref().map(|d| d.samples.clone()).unwrap_or_default(),
        "st": d.as_ref().map(|_| st::analyse(&ostore::st_codes(&codes))),
        "observer_codes": observer,
        "comparison": cmp,
        "job": job,
    }))
}

/// The recording to listen to: the one asked for (of this lesson), else the lesson's newest
/// processed one.
async fn pick_recording(
    st: &SchoolState,
    o: &ObservationRow,
    asked: Option<i64>,
) -> Result<i64, ApiError> {
    let all = recording::of_lesson(&st.store, o.lesson_id).await?;
    let rec = match asked {
        Some(id) => all.into_iter().find(|r| r.id == id).ok_or_else(|| {
            ApiError::not_found(
                "not-found",
                format!(
                    "recording {id} is not a recording of lesson {}",
                    o.lesson_id
                ),
            )
        })?,
        None => all
            .into_iter()
            .rev()
            .find(|r| r.processing.as_deref() == Some("ready"))
            .ok_or_else(|| {
                no_recording(format!(
                    "lesson {} has no processed recording to draft from",
                    o.lesson_id
                ))
            })?,
    };
    match (rec.processing.as_deref(), rec.manifest_path) {
        (Some("ready"), Some(_)) => Ok(rec.id),
        (p, _) => Err(no_recording(format!(
            "recording {} is not processed yet ({})",
            rec.id,
            p.unwrap_or("not started")
        ))),
    }
}

#[utoipa::path(
    post, path = "/api/observations/{id}/st-draft",
    params(("id" = i64, Path, description = "the observation's id"),
        ("recording_id" = Option<i64>, Query, description = "this recording of the lesson (default: its newest processed one)")),
    responses((status = 202, description = "a draft job asked for (or the one already pending or running for this observation): `job` shows its state; the draft made earlier, if any, stays until it is done", body = crate::observe::views::StDraftView))
)]
pub(super) async fn st_draft_make(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    let o = own(&st, &p, &id).await?;
    not_coded(&o, Method::St)?;
    if o.state != "draft" {
        return Err(submitted(o.id));
    }
    let asked = q
        .get("recording_id")
        .map(|v| {
            v.parse::<i64>()
                .map_err(|_| ApiError::invalid(format!("recording_id must be an id, not `{v}`")))
        })
        .transpose()?;
    let rec = pick_recording(&st, &o, asked).await?;
    job::request(&st.store, o.id, rec, st.now()).await?;
    Ok((StatusCode::ACCEPTED, Json(draft_view(&st, &o).await?)).into_response())
}

#[utoipa::path(
    get, path = "/api/observations/{id}/st-draft", params(("id" = i64, Path, description = "the observation's id")),
    responses((status = 200, description = "the draft (`made: false` before one is made), its job's state (`pending|running|done|failed`, with the reason) and where it and the observer's codes differ", body = crate::observe::views::StDraftView))
)]
pub(super) async fn st_draft_get(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult {
    let o = readable(&st, &p, &id).await?;
    not_coded(&o, Method::St)?;
    Ok(Json(draft_view(&st, &o).await?).into_response())
}
