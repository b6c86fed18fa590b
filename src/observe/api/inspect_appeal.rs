//! Appeals in sampling inspection (抽检): a round manager's appeal of a decided sample and a
//! teacher's appeal of their own drawn item, each once, each adding one review assigned as
//! the draw's were and written to the audit log. Must never let anyone but the managers or
//! that teacher appeal, nor a sample be appealed twice.

use super::*;
use crate::observe::inspect::{Outcome, Reason};
use crate::observe::inspect_store::{self as istore, ReviewRow, RoundRow};
use crate::observe::records::record::{self as trecord, InspectionStatus};

/// An appeal.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AppealBody {
    /// Why (1 to 2000 characters; logged).
    reason: String,
}

#[utoipa::path(
    post, path = "/api/inspections/samples/{id}/appeal", params(("id" = i64, Path, description = "the sample's id")), request_body = AppealBody,
    responses((status = 201, description = "appealed: one more review was created (audited)", body = RoundDetail, headers(("location" = String, description = "the round"))))
)]
pub(super) async fn samples_appeal(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<AppealBody>,
) -> ApiResult {
    let sample = istore::sample(&st.store, parse_id(&id)?).await?;
    let r = managed(&st, &p, sample.round_id).await?;
    appeal(&st, &p, &r, &sample, &b.reason).await?;
    let r = istore::round(&st.store, r.id).await?;
    let id = r.id;
    Ok(created(
        format!("/api/inspections/rounds/{id}"),
        json!(detail(&st, r).await?),
    ))
}

/// Appeals a decided sample once (a reason of 1 to 2000 characters): one more review,
/// assigned as the draw's were (audited with the reason).
pub(super) async fn appeal(
    st: &SchoolState,
    p: &Principal,
    r: &RoundRow,
    sample: &istore::SampleRow,
    reason: &str,
) -> Result<(), ApiError> {
    let reason = reason.trim();
    if reason.is_empty() || reason.chars().count() > 2_000 {
        return Err(ApiError::invalid(
            "an appeal needs a reason (1 to 2000 characters)",
        ));
    }
    let appealed = || {
        ApiError::new(
            StatusCode::CONFLICT,
            "sample-appealed",
            format!("sample {} was appealed already", sample.pseudonym),
        )
    };
    if sample.appealed {
        return Err(appealed());
    }
    let reviews = istore::sample_reviews(&st.store, sample.id).await?;
    let refs: Vec<&ReviewRow> = reviews.iter().collect();
    if outcome_of(&refs, r.pass_mark) == Outcome::Pending {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "sample-pending",
            format!(
                "sample {} is not decided yet: appeal its result once every review is graded",
                sample.pseudonym
            ),
        ));
    }
    if extra_review(st, p, r, sample.id, Reason::Appeal, reason)
        .await?
        .is_none()
    {
        return Err(appealed());
    }
    Ok(())
}

/// The teacher whose drawn item a sample is: an observation's lesson's hub teacher, an
/// ability point's teacher.
pub(super) async fn owner_of(
    st: &SchoolState,
    r: &RoundRow,
    sample: &istore::SampleRow,
) -> Result<i64, ApiError> {
    Ok(if of_points(r) {
        istore::submission(&st.store, sample.source_id)
            .await?
            .teacher_id
    } else {
        ostore::observation(&st.store, sample.source_id)
            .await?
            .hub_teacher_id
    })
}

/// A teacher's appeal of the outcome of their own drawn item.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TeacherAppealBody {
    /// The sample (`inspections[].sample_id` in the teacher's record).
    sample_id: i64,
    /// Why (1 to 2000 characters; logged in the round's audit log).
    reason: String,
}

#[utoipa::path(
    post, path = "/api/inspections/appeals", request_body = TeacherAppealBody,
    responses((status = 201, description = "appealed: one more review was created (audited); the item's inspection as the teacher's record shows it", body = InspectionStatus, headers(("location" = String, description = "the teacher's record"))),
        (status = 409, description = "not decided yet (`sample-pending`) or appealed before (`sample-appealed`)", body = crate::problem::Problem, content_type = "application/problem+json"))
)]
pub(super) async fn appeals_create(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    JsonBody(b): JsonBody<TeacherAppealBody>,
) -> ApiResult {
    let sample = istore::sample(&st.store, b.sample_id).await?;
    let r = istore::round(&st.store, sample.round_id).await?;
    let owner = owner_of(&st, &r, &sample).await?;
    let Some(teacher) = p
        .teacher_id()
        .filter(|t| p.role() == Role::Teacher && *t == owner)
    else {
        return Err(out_of_scope(format!("inspection sample {}", sample.id)));
    };
    appeal(&st, &p, &r, &sample, &b.reason).await?;
    let sample = istore::sample(&st.store, sample.id).await?;
    let reviews = istore::sample_reviews(&st.store, sample.id).await?;
    let status = trecord::inspection_status(&sample, &r, &reviews);
    Ok(created(
        format!("/api/teachers/{teacher}/record"),
        json!(status),
    ))
}
