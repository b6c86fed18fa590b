//! A lesson's link reports (issue 19 item 6): a participant's page posts its own `getStats`
//! figures, and the report per classroom is read as JSON or CSV. Must never accept figures
//! for anyone but the caller's own participant, nor wait for the store on a page's post (it
//! only queues for `school::linkreport`'s writer).

#[allow(unused_imports)]
use super::*;

use crate::school::linkreport::{self, LessonLinkReport, PageStats};

#[utoipa::path(
    post, path = "/api/lessons/{id}/link-stats", params(("id" = i64, Path, description = "the lesson's id")),
    request_body = PageStats,
    responses((status = 204, description = "queued for the lesson's link report"))
)]
pub(super) async fn lessons_link_stats(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult {
    let l = lesson_for(&st, &p, &id).await?;
    let g = policy::decide(&st, &p, &l).await?;
    // Participants only: the lesson's classrooms and its hub teacher, each for itself.
    if policy::part_classroom(&g.part).is_none() && !g.part.starts_with("t:") {
        return Err(ApiError::forbidden(
            "not-in-lesson",
            format!("only a participant of lesson {} reports its link", l.id),
        ));
    }
    policy::check_window(&st, &l, st.now())?;
    let stats = linkreport::parse_page_stats(&body).map_err(|why| {
        if body.len() > linkreport::MAX_PAGE_BODY {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "body-too-large", why)
        } else {
            ApiError::new(StatusCode::BAD_REQUEST, "bad-json", why)
        }
    })?;
    st.link_reports.page(l.id, &g.part, stats);
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[utoipa::path(
    get, path = "/api/lessons/{id}/link-report", params(("id" = i64, Path, description = "the lesson's id")),
    responses((status = 200, description = "each participant's link over the lesson", body = LessonLinkReport))
)]
pub(super) async fn lessons_link_report(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult {
    let l = lesson_for(&st, &p, &id).await?;
    Ok(Json(linkreport::of_lesson(&st.store, l.id).await?).into_response())
}

#[utoipa::path(
    get, path = "/api/lessons/{id}/link-report.csv", params(("id" = i64, Path, description = "the lesson's id")),
    responses((status = 200, description = "the link report as CSV (UTF-8 with BOM, Chinese headers)", body = String, content_type = "text/csv"))
)]
pub(super) async fn lessons_link_report_csv(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult {
    let l = lesson_for(&st, &p, &id).await?;
    let r = linkreport::of_lesson(&st.store, l.id).await?;
    let body = linkreport::csv(&r).map_err(|e| ApiError::internal(format!("csv: {e}")))?;
    let mut resp = ([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], body).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!(
        "attachment; filename=\"lesson-{}-links.csv\"",
        l.id
    )) {
        resp.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}
