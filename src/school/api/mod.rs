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
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::{Deserialize, Serialize};

use super::access::{self, admin_over, out_of_scope, Directory};
use super::model::{
    self, Classroom, Entity, Lesson, LessonMode, LessonState, Pairing, Region, School, Slot,
    SlotError, Teacher, Term,
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
mod timetable;
mod users;

use entities::*;
use lessons::*;
use live::*;
use timetable::*;
use users::*;

pub(crate) use users::cut_off;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allow {
    /// Anybody, signed in or not.
    Anyone,
    /// These roles.
    Roles(&'static [Role]),
}

/// One API route and its rule.
#[derive(Debug, Clone, Copy)]
pub struct RouteRule {
    /// HTTP method.
    pub method: &'static str,
    /// Path template as the router has it (`/api/schools/{id}`).
    pub path: &'static str,
    /// Who may call it.
    pub allow: Allow,
    /// One line for the OpenAPI document.
    pub summary: &'static str,
    /// OpenAPI tag.
    pub tag: &'static str,
    /// Request body schema (component name, or "csv").
    pub body: Option<&'static str>,
    /// Success response schema (component name; `[Name]` for an array).
    pub response: Option<&'static str>,
}

const ALL: &[Role] = &Role::ALL;
const ADMIN: &[Role] = &[Role::Admin];
const PEOPLE: &[Role] = &[Role::Admin, Role::Teacher, Role::Observer, Role::Inspector];
const STAFF: &[Role] = &[Role::Admin, Role::Teacher];
const DEVICE: &[Role] = &[Role::Classroom];

macro_rules! r {
    ($m:literal, $p:literal, $a:expr, $tag:literal, $s:literal, $body:expr, $resp:expr) => {
        RouteRule {
            method: $m,
            path: $p,
            allow: $a,
            summary: $s,
            tag: $tag,
            body: $body,
            response: $resp,
        }
    };
}

/// Every `/api` route with its rule.
pub const ROUTES: &[RouteRule] = &[
    r!(
        "GET",
        "/api/openapi.json",
        Allow::Anyone,
        "meta",
        "This document",
        None,
        None
    ),
    r!(
        "POST",
        "/api/login",
        Allow::Anyone,
        "auth",
        "Log in with username and password; sets the session cookie",
        Some("Login"),
        Some("LoginResult")
    ),
    r!(
        "POST",
        "/api/logout",
        Allow::Roles(ALL),
        "auth",
        "End the current login session",
        None,
        None
    ),
    r!(
        "GET",
        "/api/me",
        Allow::Roles(ALL),
        "auth",
        "Who the caller is",
        None,
        Some("Principal")
    ),
    r!(
        "GET",
        "/api/users",
        Allow::Roles(ADMIN),
        "people",
        "List users",
        None,
        Some("[User]")
    ),
    r!(
        "POST",
        "/api/users",
        Allow::Roles(ADMIN),
        "people",
        "Create a user",
        Some("NewUser"),
        Some("User")
    ),
    r!(
        "GET",
        "/api/users.csv",
        Allow::Roles(ADMIN),
        "people",
        "The users inside the caller's scope, with their scopes, as CSV (no passwords)",
        None,
        Some("csv")
    ),
    r!(
        "POST",
        "/api/users/import",
        Allow::Roles(ADMIN),
        "people",
        "Create and update users (and their scopes) from CSV; new users' first passwords are in the answer",
        Some("csv"),
        Some("UsersImported")
    ),
    r!(
        "PATCH",
        "/api/users/{id}",
        Allow::Roles(ADMIN),
        "people",
        "Set a user's password or disable them",
        Some("UserPatch"),
        Some("User")
    ),
    r!(
        "GET",
        "/api/classrooms/{id}/devices",
        Allow::Roles(ADMIN),
        "people",
        "A classroom's device tokens",
        None,
        Some("[DeviceToken]")
    ),
    r!(
        "POST",
        "/api/classrooms/{id}/devices",
        Allow::Roles(ADMIN),
        "people",
        "Issue a device token (the secret is shown once)",
        Some("NewDevice"),
        Some("IssuedDevice")
    ),
    r!(
        "DELETE",
        "/api/devices/{id}",
        Allow::Roles(ADMIN),
        "people",
        "Revoke a device token",
        None,
        Some("DeviceToken")
    ),
    r!(
        "GET",
        "/api/regions",
        Allow::Roles(PEOPLE),
        "schools",
        "List regions",
        None,
        Some("[Region]")
    ),
    r!(
        "POST",
        "/api/regions",
        Allow::Roles(ADMIN),
        "schools",
        "Create a region",
        Some("Region"),
        Some("Region")
    ),
    r!(
        "GET",
        "/api/regions/{id}",
        Allow::Roles(PEOPLE),
        "schools",
        "One region",
        None,
        Some("Region")
    ),
    r!(
        "PUT",
        "/api/regions/{id}",
        Allow::Roles(ADMIN),
        "schools",
        "Replace a region",
        Some("Region"),
        Some("Region")
    ),
    r!(
        "DELETE",
        "/api/regions/{id}",
        Allow::Roles(ADMIN),
        "schools",
        "Delete a region",
        None,
        None
    ),
    r!(
        "GET",
        "/api/schools",
        Allow::Roles(PEOPLE),
        "schools",
        "List schools",
        None,
        Some("[School]")
    ),
    r!(
        "POST",
        "/api/schools",
        Allow::Roles(ADMIN),
        "schools",
        "Create a school",
        Some("School"),
        Some("School")
    ),
    r!(
        "GET",
        "/api/schools/{id}",
        Allow::Roles(PEOPLE),
        "schools",
        "One school",
        None,
        Some("School")
    ),
    r!(
        "PUT",
        "/api/schools/{id}",
        Allow::Roles(ADMIN),
        "schools",
        "Replace a school",
        Some("School"),
        Some("School")
    ),
    r!(
        "DELETE",
        "/api/schools/{id}",
        Allow::Roles(ADMIN),
        "schools",
        "Delete a school",
        None,
        None
    ),
    r!(
        "GET",
        "/api/classrooms",
        Allow::Roles(ALL),
        "schools",
        "List classrooms (?school_id=)",
        None,
        Some("[Classroom]")
    ),
    r!(
        "POST",
        "/api/classrooms",
        Allow::Roles(ADMIN),
        "schools",
        "Create a classroom",
        Some("Classroom"),
        Some("Classroom")
    ),
    r!(
        "GET",
        "/api/classrooms/{id}",
        Allow::Roles(ALL),
        "schools",
        "One classroom",
        None,
        Some("Classroom")
    ),
    r!(
        "PUT",
        "/api/classrooms/{id}",
        Allow::Roles(ADMIN),
        "schools",
        "Replace a classroom",
        Some("Classroom"),
        Some("Classroom")
    ),
    r!(
        "DELETE",
        "/api/classrooms/{id}",
        Allow::Roles(ADMIN),
        "schools",
        "Delete a classroom",
        None,
        None
    ),
    r!(
        "GET",
        "/api/teachers",
        Allow::Roles(PEOPLE),
        "schools",
        "List teachers (?school_id=)",
        None,
        Some("[Teacher]")
    ),
    r!(
        "POST",
        "/api/teachers",
        Allow::Roles(ADMIN),
        "schools",
        "Create a teacher",
        Some("Teacher"),
        Some("Teacher")
    ),
    r!(
        "GET",
        "/api/teachers/{id}",
        Allow::Roles(PEOPLE),
        "schools",
        "One teacher",
        None,
        Some("Teacher")
    ),
    r!(
        "PUT",
        "/api/teachers/{id}",
        Allow::Roles(ADMIN),
        "schools",
        "Replace a teacher",
        Some("Teacher"),
        Some("Teacher")
    ),
    r!(
        "DELETE",
        "/api/teachers/{id}",
        Allow::Roles(ADMIN),
        "schools",
        "Delete a teacher",
        None,
        None
    ),
    r!(
        "GET",
        "/api/pairings",
        Allow::Roles(PEOPLE),
        "timetable",
        "List pairings",
        None,
        Some("[Pairing]")
    ),
    r!(
        "POST",
        "/api/pairings",
        Allow::Roles(ADMIN),
        "timetable",
        "Create a pairing",
        Some("Pairing"),
        Some("Pairing")
    ),
    r!(
        "GET",
        "/api/pairings/{id}",
        Allow::Roles(PEOPLE),
        "timetable",
        "One pairing",
        None,
        Some("Pairing")
    ),
    r!(
        "PUT",
        "/api/pairings/{id}",
        Allow::Roles(ADMIN),
        "timetable",
        "Replace a pairing",
        Some("Pairing"),
        Some("Pairing")
    ),
    r!(
        "DELETE",
        "/api/pairings/{id}",
        Allow::Roles(ADMIN),
        "timetable",
        "Delete a pairing",
        None,
        None
    ),
    r!(
        "GET",
        "/api/pairings.csv",
        Allow::Roles(ADMIN),
        "timetable",
        "Export pairings as CSV",
        None,
        Some("csv")
    ),
    r!(
        "POST",
        "/api/pairings/import",
        Allow::Roles(ADMIN),
        "timetable",
        "Import pairings from CSV (all rows or none)",
        Some("csv"),
        Some("ImportResult")
    ),
    r!(
        "GET",
        "/api/terms",
        Allow::Roles(PEOPLE),
        "timetable",
        "List terms",
        None,
        Some("[Term]")
    ),
    r!(
        "POST",
        "/api/terms",
        Allow::Roles(ADMIN),
        "timetable",
        "Create a term",
        Some("Term"),
        Some("Term")
    ),
    r!(
        "GET",
        "/api/terms/{id}",
        Allow::Roles(PEOPLE),
        "timetable",
        "One term",
        None,
        Some("Term")
    ),
    r!(
        "PUT",
        "/api/terms/{id}",
        Allow::Roles(ADMIN),
        "timetable",
        "Replace a term",
        Some("Term"),
        Some("Term")
    ),
    r!(
        "DELETE",
        "/api/terms/{id}",
        Allow::Roles(ADMIN),
        "timetable",
        "Delete a term",
        None,
        None
    ),
    r!(
        "GET",
        "/api/slots",
        Allow::Roles(PEOPLE),
        "timetable",
        "Timetable slots of a term (?term_id=)",
        None,
        Some("[Slot]")
    ),
    r!(
        "POST",
        "/api/slots",
        Allow::Roles(ADMIN),
        "timetable",
        "Add a slot (conflicts are refused, naming the clashing slot)",
        Some("Slot"),
        Some("Slot")
    ),
    r!(
        "GET",
        "/api/slots/{id}",
        Allow::Roles(PEOPLE),
        "timetable",
        "One slot",
        None,
        Some("Slot")
    ),
    r!(
        "PUT",
        "/api/slots/{id}",
        Allow::Roles(ADMIN),
        "timetable",
        "Replace a slot",
        Some("Slot"),
        Some("Slot")
    ),
    r!(
        "DELETE",
        "/api/slots/{id}",
        Allow::Roles(ADMIN),
        "timetable",
        "Delete a slot",
        None,
        None
    ),
    r!(
        "GET",
        "/api/timetable.csv",
        Allow::Roles(ADMIN),
        "timetable",
        "Export a term's timetable as CSV (?term_id=)",
        None,
        Some("csv")
    ),
    r!(
        "POST",
        "/api/timetable/import",
        Allow::Roles(ADMIN),
        "timetable",
        "Import timetable slots from CSV (all rows or none)",
        Some("csv"),
        Some("ImportResult")
    ),
    r!(
        "GET",
        "/api/lessons",
        Allow::Roles(ALL),
        "lessons",
        "Lessons in a window (?from=&to= dates, default today)",
        None,
        Some("[Lesson]")
    ),
    r!(
        "POST",
        "/api/lessons",
        Allow::Roles(STAFF),
        "lessons",
        "Create an ad hoc lesson",
        Some("Lesson"),
        Some("Lesson")
    ),
    r!(
        "POST",
        "/api/lessons/generate",
        Allow::Roles(ADMIN),
        "lessons",
        "Make the lessons of a date range from the timetable",
        Some("DateRange"),
        Some("Generated")
    ),
    r!(
        "GET",
        "/api/lessons/{id}",
        Allow::Roles(ALL),
        "lessons",
        "One lesson",
        None,
        Some("Lesson")
    ),
    r!(
        "PUT",
        "/api/lessons/{id}",
        Allow::Roles(STAFF),
        "lessons",
        "Change a lesson that has not opened yet (its hub teacher or an admin over its hub school; audited)",
        Some("Lesson"),
        Some("Lesson")
    ),
    r!(
        "DELETE",
        "/api/lessons/{id}",
        Allow::Roles(STAFF),
        "lessons",
        "Delete a lesson that has not opened yet (its hub teacher or an admin over its hub school; audited)",
        None,
        None
    ),
    r!(
        "POST",
        "/api/lessons/{id}/join",
        Allow::Roles(ALL),
        "lessons",
        "Join: get the media token and endpoints this caller may use",
        None,
        Some("Join")
    ),
    r!(
        "POST",
        "/api/lessons/{id}/end",
        Allow::Roles(STAFF),
        "lessons",
        "End the lesson now (its hub teacher or an admin)",
        None,
        Some("Lesson")
    ),
    r!(
        "POST",
        "/api/lessons/{id}/hand",
        Allow::Roles(DEVICE),
        "lessons",
        "Raise or lower the classroom's hand",
        Some("Hand"),
        Some("LiveState")
    ),
    r!(
        "POST",
        "/api/lessons/{id}/speak",
        Allow::Roles(STAFF),
        "lessons",
        "Grant or revoke speaking for a classroom (名师课堂)",
        Some("Speak"),
        Some("LiveState")
    ),
    r!(
        "POST",
        "/api/lessons/{id}/spotlight",
        Allow::Roles(STAFF),
        "lessons",
        "Put a classroom on everyone's big screen, or nobody (同步课堂)",
        Some("Spotlight"),
        Some("LiveState")
    ),
    r!(
        "GET",
        "/api/lessons/{id}/live",
        Allow::Roles(ALL),
        "lessons",
        "Hands, speakers, spotlight, who is connected and their link quality",
        None,
        Some("LiveState")
    ),
    r!(
        "GET",
        "/api/lessons/{id}/events",
        Allow::Roles(ALL),
        "lessons",
        "Server-sent events of the lesson (joined, left, published, unpublished, hand, speak, \
         spotlight, state, quality; see LessonEvent); resumes from Last-Event-ID",
        None,
        Some("event-stream")
    ),
    r!(
        "GET",
        "/api/today",
        Allow::Roles(ALL),
        "lessons",
        "What is on now and next for the caller",
        None,
        Some("Today")
    ),
];

/// The login session cookie.
pub const COOKIE: &str = "cr_session";

fn bearer_or_cookie(h: &HeaderMap) -> Option<String> {
    if let Some(v) = h.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let t = v
            .strip_prefix("Bearer ")
            .or_else(|| v.strip_prefix("bearer "))?;
        return Some(t.trim().to_string());
    }
    h.get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
}

/// Resolves the caller and applies the route's rule; puts the [`Principal`] in the request.
pub async fn guard(
    State(state): State<Arc<SchoolState>>,
    mut req: Request,
    next: Next,
) -> Response {
    let path = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_default();
    let method = req.method().as_str().to_string();
    // HEAD is GET without a body (axum answers it with the GET handler): same rule.
    let rule_method = if method == "HEAD" { "GET" } else { &method };
    let Some(rule) = ROUTES
        .iter()
        .find(|r| r.path == path && r.method == rule_method)
    else {
        let allow: Vec<&str> = ROUTES
            .iter()
            .filter(|r| r.path == path)
            .flat_map(|r| match r.method {
                "GET" => vec!["GET", "HEAD"],
                m => vec![m],
            })
            .collect();
        if !allow.is_empty() {
            let mut r = ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                format!("{path} does not take {method}"),
            )
            .into_response();
            if let Ok(v) = HeaderValue::from_str(&allow.join(", ")) {
                r.headers_mut().insert(header::ALLOW, v);
            }
            return r;
        }
        // A route without a rule is a bug; refuse rather than serve it unguarded.
        return ApiError::internal(format!("no access rule for {method} {path}")).into_response();
    };
    let token = bearer_or_cookie(req.headers());
    let principal = match &token {
        None => None,
        Some(t) => match people::resolve(&state.store, t, state.now()).await {
            Ok(Ok(p)) => Some(p),
            Ok(Err(e)) if rule.allow != Allow::Anyone => {
                let (kind, detail) = match e {
                    CredentialError::Unknown => {
                        ("credentials-invalid", "unknown session or device token")
                    }
                    CredentialError::Expired => (
                        "session-expired",
                        "the login session has expired; log in again",
                    ),
                    CredentialError::Revoked => (
                        "device-revoked",
                        "this device token was revoked by an administrator",
                    ),
                    CredentialError::Disabled => ("user-disabled", "this account is disabled"),
                };
                return ApiError::unauthorized(kind, detail).into_response();
            }
            Ok(Err(_)) => None,
            Err(e) => return ApiError::from(e).into_response(),
        },
    };
    if let Allow::Roles(roles) = rule.allow {
        let Some(p) = &principal else {
            return ApiError::unauthorized("login-required", "log in, or send a device token")
                .into_response();
        };
        if !roles.contains(&p.role()) {
            return ApiError::forbidden(
                "role-forbidden",
                format!("a {} may not {method} {path}", p.role().as_str()),
            )
            .into_response();
        }
    }
    if let Some(p) = principal {
        req.extensions_mut().insert(p);
    }
    next.run(req).await
}

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

async fn openapi_doc() -> Response {
    Json(super::openapi::document()).into_response()
}

async fn csv_route(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    method: Method,
    matched: MatchedPath,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> ApiResult {
    // The spreadsheets cover the whole district's pairings and timetable: only an
    // administrator of the whole installation imports or exports them.
    admin_over(
        &p,
        Level::Global,
        "the district's pairings and timetable",
        [],
    )?;
    if method == Method::POST {
        require_csv(&headers)?;
    }
    super::csvio::handle(&st, method, matched.as_str(), &q, body).await
}

/// The `/api` router (with the guard applied).
pub fn router(state: Arc<SchoolState>) -> Router<Arc<SchoolState>> {
    let mut r: Router<Arc<SchoolState>> = Router::new()
        .route("/api/openapi.json", get(openapi_doc))
        .route(
            "/api/login",
            post(login).layer(Extension(Arc::new(crate::auth::limit::LoginLimits::new(
                &state.config.auth,
                &state.metrics,
            )))),
        )
        .route("/api/logout", post(logout))
        .route("/api/me", get(me))
        .route("/api/users", get(users_list).post(users_create))
        .route("/api/users/{id}", axum::routing::patch(users_patch))
        .route("/api/users.csv", get(users_csv))
        .route("/api/users/import", post(users_import))
        .route(
            "/api/classrooms/{id}/devices",
            get(devices_list).post(devices_create),
        )
        .route("/api/devices/{id}", axum::routing::delete(devices_revoke))
        .route("/api/slots", get(slots_list).post(slots_create))
        .route(
            "/api/slots/{id}",
            get(slots_get).put(slots_put).delete(slots_delete),
        )
        .route("/api/pairings.csv", get(csv_route))
        .route("/api/pairings/import", post(csv_route))
        .route("/api/timetable.csv", get(csv_route))
        .route("/api/timetable/import", post(csv_route))
        .route("/api/lessons", get(lessons_list).post(lessons_create))
        .route("/api/lessons/generate", post(lessons_generate))
        .route(
            "/api/lessons/{id}",
            get(lessons_get).put(lessons_put).delete(lessons_delete),
        )
        .route("/api/lessons/{id}/join", post(lessons_join))
        .route("/api/lessons/{id}/end", post(lessons_end))
        .route("/api/lessons/{id}/hand", post(lessons_hand))
        .route("/api/lessons/{id}/speak", post(lessons_speak))
        .route("/api/lessons/{id}/spotlight", post(lessons_spotlight))
        .route("/api/lessons/{id}/live", get(lessons_live))
        .route("/api/lessons/{id}/events", get(lessons_events))
        .route("/api/today", get(today));
    r = entity_routes::<Region>(r);
    r = entity_routes::<School>(r);
    r = entity_routes::<Classroom>(r);
    r = entity_routes::<Teacher>(r);
    r = entity_routes::<Pairing>(r);
    r = entity_routes::<Term>(r);
    r.route_layer(axum::middleware::from_fn_with_state(state, guard))
}

/// Refuses a CSV upload that is not declared `text/csv` (what the admin page sends). A
/// cross-site HTML form can only send `text/plain`, urlencoded or multipart bodies, so this
/// keeps forms elsewhere from posting a timetable with an administrator's cookie.
fn require_csv(h: &HeaderMap) -> Result<(), ApiError> {
    let ct = h
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = ct.split(';').next().unwrap_or("").trim();
    if essence.eq_ignore_ascii_case("text/csv") {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            format!("send the file as Content-Type: text/csv (got `{ct}`)"),
        ))
    }
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
