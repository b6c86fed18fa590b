//! The school API under `/api`: login, people and devices, the school entities, timetable,
//! lessons, and a lesson's live controls and event stream.
//!
//! Every route is listed once in [`ROUTES`] with who may call it. A guard in front of the
//! routes resolves the caller (login session cookie or bearer, or a classroom device token)
//! and applies that rule, so no handler can forget it; handlers add the rules that depend on
//! the row, by the caller's organisation scope: the object-level table is in
//! [`super::access`] (a teacher runs only their own lessons, an admin acts inside their
//! school, county, city or province, a device reads only its classroom and its lessons).
//! The same route table feeds the OpenAPI document.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{MatchedPath, Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, MethodRouter};
use axum::{Extension, Json, Router};
use serde::{Deserialize, Serialize};

use super::access::{self, admin_over, out_of_scope, Directory};
use super::model::{
    self, Classroom, Entity, Lesson, LessonMode, LessonState, Pairing, Region, School, SlotError,
    Teacher, Term, TimetableSlot,
};
use super::policy;
use super::SchoolState;
use crate::auth::people::{self, CredentialError, NewUser, Principal, Role};
use crate::auth::scope::{Level, Place};
use crate::problem::{ApiError, JsonBody};
use crate::time::{fmt_date, millis_to_local, parse_date, rfc3339};

mod entities;
mod lessons;
mod live;
mod recordings;
mod rules;
mod timetable;
mod users;
// Exports of a lesson's recordings (issue 20 item 4).
mod exports;
use exports::*;
// Reports, lesson cancellation and the patrol wall (issue 22 items 6 and 7).
mod reports;
use reports::*;
// The kiosk link's QR code (issue 22 item 1).
mod qr;
use qr::*;
// Link reports per classroom per lesson (issue 19 item 6).
mod links;
use links::*;

// A recording's files as one zip (issue 20, recfin).
mod recordings_zip;
use recordings_zip::*;
// A recording's processing and export jobs as server-sent events (issue 20).
mod recordings_events;
use recordings_events::*;

use entities::*;
use lessons::*;
use live::*;
use recordings::*;
use rules::*;
use timetable::*;
use users::*;

pub(crate) use rules::{guard, guarded_table, route_table, Allow, RouteRule, COOKIE, ROUTES};
pub(crate) use timetable::admin_over_slot;
pub(crate) use users::cut_off;

fn parse_id(s: &str) -> Result<i64, ApiError> {
    s.parse::<i64>()
        .ok()
        .filter(|i| *i > 0)
        .ok_or_else(|| ApiError::not_found("not-found", format!("`{s}` is not an id")))
}

fn created<T: Serialize>(location: String, v: &T) -> Response {
    let mut r = (StatusCode::CREATED, Json(v)).into_response();
    if let Ok(h) = HeaderValue::from_str(&location) {
        r.headers_mut().insert(header::LOCATION, h);
    }
    r
}

type ApiResult = Result<Response, ApiError>;

#[utoipa::path(
    get, path = "/api/openapi.json",
    responses((status = 200, description = "this OpenAPI 3.1 document", body = Object))
)]
async fn openapi_doc(served: Option<Extension<super::openapi::Served>>) -> Response {
    match served {
        Some(Extension(d)) => Json(&*d.0).into_response(),
        None => Json(super::openapi::document()).into_response(),
    }
}

/// The operations of the handlers, derived from their `#[utoipa::path]` attributes (the
/// generic entity handlers are added per entity type by [`super::openapi`]).
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    openapi_doc,
    login,
    logout,
    me,
    users_list,
    users_create,
    users_patch,
    users_delete,
    kiosk_qr,
    users_csv,
    users_import,
    devices_list,
    devices_create,
    devices_revoke,
    // Device labels (issue 22 item 1).
    devices_patch,
    slots_list,
    slots_create,
    slots_get,
    slots_put,
    slots_delete,
    pairings_csv,
    timetable_csv,
    pairings_import,
    timetable_import,
    schools_import,
    classrooms_import,
    teachers_import,
    import_template,
    lessons_list,
    lessons_create,
    lessons_generate,
    lessons_get,
    lessons_put,
    lessons_delete,
    lessons_join,
    lessons_end,
    lessons_hand,
    lessons_speak,
    lessons_recording,
    lessons_spotlight,
    lessons_live,
    lessons_events,
    // The teacher console and attendance (issue 22 items 3 and 8).
    lessons_mute,
    lessons_lower_hand,
    lessons_attendance,
    recordings_list,
    recordings_get,
    recordings_manifest,
    recordings_file,
    recordings_events,
    recordings_zip,
    today,
    // Exports (issue 20 item 4).
    lessons_exports_create,
    lessons_exports_list,
    // Reports, cancellation, patrol (issue 22 items 6 and 7).
    reports_get,
    reports_csv,
    lessons_cancel,
    patrol_list,
    lessons_patrol,
    // Link reports (issue 19 item 6).
    lessons_link_stats,
    lessons_link_report,
    lessons_link_report_csv
))]
pub(super) struct Operations;

/// The spreadsheets cover the whole district's pairings and timetable: only an
/// administrator of the whole installation imports or exports them.
fn district_admin(p: &Principal) -> Result<(), ApiError> {
    admin_over(
        p,
        Level::Global,
        "the district's pairings and timetable",
        [],
    )
}

#[utoipa::path(
    get, path = "/api/pairings.csv",
    responses((status = 200, description = "the pairings as CSV", body = String, content_type = "text/csv"))
)]
async fn pairings_csv(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
) -> ApiResult {
    district_admin(&p)?;
    super::csvio::pairings_csv(&st).await
}

#[utoipa::path(
    get, path = "/api/timetable.csv",
    params(("term_id" = i64, Query, description = "the term")),
    responses((status = 200, description = "the term's slots as CSV", body = String, content_type = "text/csv"))
)]
async fn timetable_csv(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    district_admin(&p)?;
    super::csvio::timetable_csv(&st, &q).await
}

// ---- Spreadsheet imports (issue 22 item 2): any admin; each row inside their scope ----

/// What every spreadsheet import checks first: an administrator (each row is then checked
/// against their scope), sending a CSV or an `.xlsx`.
fn sheet_import_allowed(p: &Principal, headers: &HeaderMap) -> Result<(), ApiError> {
    access::admin_scope(p)?;
    super::sheet::require_sheet(headers)
}

#[utoipa::path(
    post, path = "/api/pairings/import",
    params(("dry_run" = Option<bool>, Query, description = "check and count only, store nothing")),
    request_body(content = String, content_type = "text/csv", description = "pairings as CSV (UTF-8 with or without BOM, or GBK) or .xlsx, English or Chinese headers: all rows are stored, or none; each row's schools must be inside the caller's scope"),
    responses((status = 200, description = "stored", body = crate::school::csvio::ImportResult))
)]
async fn pairings_import(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
    body: axum::body::Body,
) -> ApiResult {
    sheet_import_allowed(&p, &headers)?;
    super::csvio::pairings_import(&st, &p, body, super::sheet::dry_run(&q)).await
}

#[utoipa::path(
    post, path = "/api/timetable/import",
    params(("dry_run" = Option<bool>, Query, description = "check and count only, store nothing")),
    request_body(content = String, content_type = "text/csv", description = "timetable slots as CSV (UTF-8 with or without BOM, or GBK) or .xlsx, English or Chinese headers: all rows are stored, or none; each slot must be inside the caller's scope"),
    responses((status = 200, description = "stored", body = crate::school::csvio::ImportResult))
)]
async fn timetable_import(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
    body: axum::body::Body,
) -> ApiResult {
    sheet_import_allowed(&p, &headers)?;
    super::csvio::timetable_import(&st, &p, body, super::sheet::dry_run(&q)).await
}

#[utoipa::path(
    post, path = "/api/schools/import",
    params(("dry_run" = Option<bool>, Query, description = "check and count only, store nothing")),
    request_body(content = String, content_type = "text/csv", description = "schools as CSV or .xlsx (see the template): all rows are stored, or none; each school's region must be inside the caller's scope (county level or above)"),
    responses((status = 200, description = "stored", body = crate::school::csvio::ImportResult))
)]
async fn schools_import(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
    body: axum::body::Body,
) -> ApiResult {
    sheet_import_allowed(&p, &headers)?;
    super::orgsheets::import(&st, &p, "schools", body, super::sheet::dry_run(&q)).await
}

#[utoipa::path(
    post, path = "/api/classrooms/import",
    params(("dry_run" = Option<bool>, Query, description = "check and count only, store nothing")),
    request_body(content = String, content_type = "text/csv", description = "classrooms as CSV or .xlsx (see the template): all rows are stored, or none; each classroom's school must be inside the caller's scope"),
    responses((status = 200, description = "stored", body = crate::school::csvio::ImportResult))
)]
async fn classrooms_import(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
    body: axum::body::Body,
) -> ApiResult {
    sheet_import_allowed(&p, &headers)?;
    super::orgsheets::import(&st, &p, "classrooms", body, super::sheet::dry_run(&q)).await
}

#[utoipa::path(
    post, path = "/api/teachers/import",
    params(("dry_run" = Option<bool>, Query, description = "check and count only, store nothing")),
    request_body(content = String, content_type = "text/csv", description = "teachers as CSV or .xlsx (see the template): all rows are stored, or none; each teacher's school must be inside the caller's scope"),
    responses((status = 200, description = "stored", body = crate::school::csvio::ImportResult))
)]
async fn teachers_import(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
    body: axum::body::Body,
) -> ApiResult {
    sheet_import_allowed(&p, &headers)?;
    super::orgsheets::import(&st, &p, "teachers", body, super::sheet::dry_run(&q)).await
}

#[utoipa::path(
    get, path = "/api/templates/{file}",
    params(("file" = String, Path, description = "`{importer}.csv` or `{importer}.xlsx`; importers: schools, classrooms, teachers, users, pairings, timetable")),
    responses((status = 200, description = "an empty import template with Chinese headers (CSV with a UTF-8 BOM, or .xlsx with a notes sheet)", body = String, content_type = "text/csv"))
)]
async fn import_template(Path(file): Path<String>) -> ApiResult {
    super::sheet::template(&file)
}

// ---- end of spreadsheet imports ----

/// The handler of each `(method, path)` of [`ROUTES`]; `None` for a pair it does not know.
fn handler(
    method: &str,
    path: &str,
    state: &Arc<SchoolState>,
) -> Option<MethodRouter<Arc<SchoolState>>> {
    use axum::routing::{delete, patch, put};
    let entity = path
        .strip_prefix("/api/")
        .map(|p| p.trim_end_matches("/{id}"));
    if let Some(table) = entity.filter(|t| !t.contains('/')) {
        let item = path.ends_with("/{id}");
        let e = match table {
            t if t == plural::<Region>() => entity_handler::<Region>(method, item),
            t if t == plural::<School>() => entity_handler::<School>(method, item),
            t if t == plural::<Classroom>() => entity_handler::<Classroom>(method, item),
            t if t == plural::<Teacher>() => entity_handler::<Teacher>(method, item),
            t if t == plural::<Pairing>() => entity_handler::<Pairing>(method, item),
            t if t == plural::<Term>() => entity_handler::<Term>(method, item),
            _ => None,
        };
        if e.is_some() {
            return e;
        }
    }
    Some(match (method, path) {
        ("GET", "/api/openapi.json") => get(openapi_doc),
        ("POST", "/api/login") => post(login).layer(Extension(Arc::new(
            crate::auth::limit::LoginLimits::new(&state.config.auth, &state.metrics),
        ))),
        ("POST", "/api/logout") => post(logout),
        ("GET", "/api/me") => get(me),
        ("GET", "/api/users") => get(users_list),
        ("POST", "/api/users") => post(users_create),
        ("PATCH", "/api/users/{id}") => patch(users_patch),
        ("DELETE", "/api/users/{id}") => delete(users_delete),
        ("POST", "/api/qr.svg") => post(kiosk_qr),
        ("GET", "/api/users.csv") => get(users_csv),
        ("POST", "/api/users/import") => post(users_import),
        ("GET", "/api/classrooms/{id}/devices") => get(devices_list),
        ("POST", "/api/classrooms/{id}/devices") => post(devices_create),
        ("DELETE", "/api/devices/{id}") => delete(devices_revoke),
        ("PATCH", "/api/devices/{id}") => patch(devices_patch),
        ("GET", "/api/slots") => get(slots_list),
        ("POST", "/api/slots") => post(slots_create),
        ("GET", "/api/slots/{id}") => get(slots_get),
        ("PUT", "/api/slots/{id}") => put(slots_put),
        ("DELETE", "/api/slots/{id}") => delete(slots_delete),
        ("GET", "/api/pairings.csv") => get(pairings_csv),
        ("GET", "/api/timetable.csv") => get(timetable_csv),
        ("POST", "/api/pairings/import") => post(pairings_import),
        ("POST", "/api/timetable/import") => post(timetable_import),
        ("POST", "/api/schools/import") => post(schools_import),
        ("POST", "/api/classrooms/import") => post(classrooms_import),
        ("POST", "/api/teachers/import") => post(teachers_import),
        ("GET", "/api/templates/{file}") => get(import_template),
        ("GET", "/api/lessons") => get(lessons_list),
        ("POST", "/api/lessons") => post(lessons_create),
        ("POST", "/api/lessons/generate") => post(lessons_generate),
        ("GET", "/api/lessons/{id}") => get(lessons_get),
        ("PUT", "/api/lessons/{id}") => put(lessons_put),
        ("DELETE", "/api/lessons/{id}") => delete(lessons_delete),
        ("POST", "/api/lessons/{id}/join") => post(lessons_join),
        ("POST", "/api/lessons/{id}/end") => post(lessons_end),
        ("POST", "/api/lessons/{id}/recording") => post(lessons_recording),
        ("POST", "/api/lessons/{id}/hand") => post(lessons_hand),
        ("POST", "/api/lessons/{id}/speak") => post(lessons_speak),
        ("POST", "/api/lessons/{id}/spotlight") => post(lessons_spotlight),
        ("GET", "/api/lessons/{id}/live") => get(lessons_live),
        ("GET", "/api/lessons/{id}/events") => get(lessons_events),
        // The teacher console and attendance (issue 22 items 3 and 8).
        ("POST", "/api/lessons/{id}/mute") => post(lessons_mute),
        ("POST", "/api/lessons/{id}/lower-hand") => post(lessons_lower_hand),
        ("GET", "/api/lessons/{id}/attendance") => get(lessons_attendance),
        ("GET", "/api/recordings") => get(recordings_list),
        ("GET", "/api/recordings/{id}") => get(recordings_get),
        ("GET", "/api/recordings/{id}/manifest") => get(recordings_manifest),
        ("GET", "/api/recordings/{id}/files/{file}") => get(recordings_file),
        ("GET", "/api/recordings/{id}/events") => get(recordings_events),
        ("GET", "/api/recordings/{id}/download.zip") => get(recordings_zip),
        ("GET", "/api/today") => get(today),
        // Exports (issue 20 item 4).
        ("POST", "/api/lessons/{id}/exports") => post(lessons_exports_create),
        ("GET", "/api/lessons/{id}/exports") => get(lessons_exports_list),
        // Reports, cancellation, patrol (issue 22 items 6 and 7).
        ("GET", "/api/reports") => get(reports_get),
        ("GET", "/api/reports.csv") => get(reports_csv),
        ("POST", "/api/lessons/{id}/cancel") => post(lessons_cancel),
        ("GET", "/api/patrol") => get(patrol_list),
        ("POST", "/api/lessons/{id}/patrol") => post(lessons_patrol),
        // Link reports (issue 19 item 6).
        ("POST", "/api/lessons/{id}/link-stats") => post(lessons_link_stats),
        ("GET", "/api/lessons/{id}/link-report") => get(lessons_link_report),
        ("GET", "/api/lessons/{id}/link-report.csv") => get(lessons_link_report_csv),
        _ => return None,
    })
}

/// The school API's router, built from [`ROUTES`]: every route is a rule of the table (so a
/// route without an access rule cannot exist), every rule must have a handler (checked here,
/// at start), and the guard applies the rule to every request.
pub(crate) fn router(state: Arc<SchoolState>) -> Router<Arc<SchoolState>> {
    let st = state.clone();
    rules::route_table(ROUTES.iter().map(|r| (r.method, r.path)), |m, p| {
        handler(m, p, &st)
    })
    .route_layer(axum::middleware::from_fn_with_state(state, guard))
}

/// Property tests: `bearer_or_cookie` reads any header values without panicking.
#[cfg(test)]
mod prop_tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: std::env::var("PROPTEST_CASES").map_or(100_000, |_| ProptestConfig::default().cases),
            ..ProptestConfig::default()
        })]

        #[test]
        fn bearer_or_cookie_takes_any_headers(
            auth in prop::option::of(prop_oneof![
                "(Bearer |bearer |Basic |)[ -~\t\u{80}-\u{ff}]{0,40}".prop_map(String::into_bytes),
                prop::collection::vec(any::<u8>(), 0..40),
            ]),
            cookies in prop::collection::vec(prop_oneof![
                "((cr_session|other| cr_session)=[ -~]{0,20};?){0,3}".prop_map(String::into_bytes),
                prop::collection::vec(any::<u8>(), 0..40),
            ], 0..3),
        ) {
            let mut h = HeaderMap::new();
            let auth_ok = auth.as_deref().and_then(|a| HeaderValue::from_bytes(a).ok());
            if let Some(v) = &auth_ok {
                h.insert(header::AUTHORIZATION, v.clone());
            }
            for c in &cookies {
                if let Ok(v) = HeaderValue::from_bytes(c) {
                    h.append(header::COOKIE, v);
                }
            }
            let got = bearer_or_cookie(&h);
            if let Some(v) = auth_ok.as_ref().and_then(|v| v.to_str().ok()) {
                // An Authorization header that is text decides alone.
                let want = v
                    .strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
                    .map(|t| t.trim().to_string());
                prop_assert_eq!(got, want);
            } else if let Some(t) = got {
                prop_assert!(!t.contains(';'));
            }
        }
    }
}
