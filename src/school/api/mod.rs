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
use axum::routing::{get, post, MethodRouter};
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

macro_rules! route_rule {
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
    route_rule!(
        "GET",
        "/api/openapi.json",
        Allow::Anyone,
        "meta",
        "This document",
        None,
        None
    ),
    route_rule!(
        "POST",
        "/api/login",
        Allow::Anyone,
        "auth",
        "Log in with username and password; sets the session cookie",
        Some("Login"),
        Some("LoginResult")
    ),
    route_rule!(
        "POST",
        "/api/logout",
        Allow::Roles(ALL),
        "auth",
        "End the current login session",
        None,
        None
    ),
    route_rule!(
        "GET",
        "/api/me",
        Allow::Roles(ALL),
        "auth",
        "Who the caller is",
        None,
        Some("Principal")
    ),
    route_rule!(
        "GET",
        "/api/users",
        Allow::Roles(ADMIN),
        "people",
        "List users",
        None,
        Some("[User]")
    ),
    route_rule!(
        "POST",
        "/api/users",
        Allow::Roles(ADMIN),
        "people",
        "Create a user",
        Some("NewUser"),
        Some("User")
    ),
    route_rule!(
        "GET",
        "/api/users.csv",
        Allow::Roles(ADMIN),
        "people",
        "The users inside the caller's scope, with their scopes, as CSV (no passwords)",
        None,
        Some("csv")
    ),
    route_rule!(
        "POST",
        "/api/users/import",
        Allow::Roles(ADMIN),
        "people",
        "Create and update users (and their scopes) from CSV; new users' first passwords are in the answer",
        Some("csv"),
        Some("UsersImported")
    ),
    route_rule!(
        "PATCH",
        "/api/users/{id}",
        Allow::Roles(ADMIN),
        "people",
        "Set a user's password or disable them",
        Some("UserPatch"),
        Some("User")
    ),
    route_rule!(
        "GET",
        "/api/classrooms/{id}/devices",
        Allow::Roles(ADMIN),
        "people",
        "A classroom's device tokens",
        None,
        Some("[DeviceToken]")
    ),
    route_rule!(
        "POST",
        "/api/classrooms/{id}/devices",
        Allow::Roles(ADMIN),
        "people",
        "Issue a device token (the secret is shown once)",
        Some("NewDevice"),
        Some("IssuedDevice")
    ),
    route_rule!(
        "DELETE",
        "/api/devices/{id}",
        Allow::Roles(ADMIN),
        "people",
        "Revoke a device token",
        None,
        Some("DeviceToken")
    ),
    route_rule!(
        "GET",
        "/api/regions",
        Allow::Roles(PEOPLE),
        "schools",
        "List regions",
        None,
        Some("[Region]")
    ),
    route_rule!(
        "POST",
        "/api/regions",
        Allow::Roles(ADMIN),
        "schools",
        "Create a region",
        Some("Region"),
        Some("Region")
    ),
    route_rule!(
        "GET",
        "/api/regions/{id}",
        Allow::Roles(PEOPLE),
        "schools",
        "One region",
        None,
        Some("Region")
    ),
    route_rule!(
        "PUT",
        "/api/regions/{id}",
        Allow::Roles(ADMIN),
        "schools",
        "Replace a region",
        Some("Region"),
        Some("Region")
    ),
    route_rule!(
        "DELETE",
        "/api/regions/{id}",
        Allow::Roles(ADMIN),
        "schools",
        "Delete a region",
        None,
        None
    ),
    route_rule!(
        "GET",
        "/api/schools",
        Allow::Roles(PEOPLE),
        "schools",
        "List schools",
        None,
        Some("[School]")
    ),
    route_rule!(
        "POST",
        "/api/schools",
        Allow::Roles(ADMIN),
        "schools",
        "Create a school",
        Some("School"),
        Some("School")
    ),
    route_rule!(
        "GET",
        "/api/schools/{id}",
        Allow::Roles(PEOPLE),
        "schools",
        "One school",
        None,
        Some("School")
    ),
    route_rule!(
        "PUT",
        "/api/schools/{id}",
        Allow::Roles(ADMIN),
        "schools",
        "Replace a school",
        Some("School"),
        Some("School")
    ),
    route_rule!(
        "DELETE",
        "/api/schools/{id}",
        Allow::Roles(ADMIN),
        "schools",
        "Delete a school",
        None,
        None
    ),
    route_rule!(
        "GET",
        "/api/classrooms",
        Allow::Roles(ALL),
        "schools",
        "List classrooms (?school_id=)",
        None,
        Some("[Classroom]")
    ),
    route_rule!(
        "POST",
        "/api/classrooms",
        Allow::Roles(ADMIN),
        "schools",
        "Create a classroom",
        Some("Classroom"),
        Some("Classroom")
    ),
    route_rule!(
        "GET",
        "/api/classrooms/{id}",
        Allow::Roles(ALL),
        "schools",
        "One classroom",
        None,
        Some("Classroom")
    ),
    route_rule!(
        "PUT",
        "/api/classrooms/{id}",
        Allow::Roles(ADMIN),
        "schools",
        "Replace a classroom",
        Some("Classroom"),
        Some("Classroom")
    ),
    route_rule!(
        "DELETE",
        "/api/classrooms/{id}",
        Allow::Roles(ADMIN),
        "schools",
        "Delete a classroom",
        None,
        None
    ),
    route_rule!(
        "GET",
        "/api/teachers",
        Allow::Roles(PEOPLE),
        "schools",
        "List teachers (?school_id=)",
        None,
        Some("[Teacher]")
    ),
    route_rule!(
        "POST",
        "/api/teachers",
        Allow::Roles(ADMIN),
        "schools",
        "Create a teacher",
        Some("Teacher"),
        Some("Teacher")
    ),
    route_rule!(
        "GET",
        "/api/teachers/{id}",
        Allow::Roles(PEOPLE),
        "schools",
        "One teacher",
        None,
        Some("Teacher")
    ),
    route_rule!(
        "PUT",
        "/api/teachers/{id}",
        Allow::Roles(ADMIN),
        "schools",
        "Replace a teacher",
        Some("Teacher"),
        Some("Teacher")
    ),
    route_rule!(
        "DELETE",
        "/api/teachers/{id}",
        Allow::Roles(ADMIN),
        "schools",
        "Delete a teacher",
        None,
        None
    ),
    route_rule!(
        "GET",
        "/api/pairings",
        Allow::Roles(PEOPLE),
        "timetable",
        "List pairings",
        None,
        Some("[Pairing]")
    ),
    route_rule!(
        "POST",
        "/api/pairings",
        Allow::Roles(ADMIN),
        "timetable",
        "Create a pairing",
        Some("Pairing"),
        Some("Pairing")
    ),
    route_rule!(
        "GET",
        "/api/pairings/{id}",
        Allow::Roles(PEOPLE),
        "timetable",
        "One pairing",
        None,
        Some("Pairing")
    ),
    route_rule!(
        "PUT",
        "/api/pairings/{id}",
        Allow::Roles(ADMIN),
        "timetable",
        "Replace a pairing",
        Some("Pairing"),
        Some("Pairing")
    ),
    route_rule!(
        "DELETE",
        "/api/pairings/{id}",
        Allow::Roles(ADMIN),
        "timetable",
        "Delete a pairing",
        None,
        None
    ),
    route_rule!(
        "GET",
        "/api/pairings.csv",
        Allow::Roles(ADMIN),
        "timetable",
        "Export pairings as CSV",
        None,
        Some("csv")
    ),
    route_rule!(
        "POST",
        "/api/pairings/import",
        Allow::Roles(ADMIN),
        "timetable",
        "Import pairings from CSV (all rows or none)",
        Some("csv"),
        Some("ImportResult")
    ),
    route_rule!(
        "GET",
        "/api/terms",
        Allow::Roles(PEOPLE),
        "timetable",
        "List terms",
        None,
        Some("[Term]")
    ),
    route_rule!(
        "POST",
        "/api/terms",
        Allow::Roles(ADMIN),
        "timetable",
        "Create a term",
        Some("Term"),
        Some("Term")
    ),
    route_rule!(
        "GET",
        "/api/terms/{id}",
        Allow::Roles(PEOPLE),
        "timetable",
        "One term",
        None,
        Some("Term")
    ),
    route_rule!(
        "PUT",
        "/api/terms/{id}",
        Allow::Roles(ADMIN),
        "timetable",
        "Replace a term",
        Some("Term"),
        Some("Term")
    ),
    route_rule!(
        "DELETE",
        "/api/terms/{id}",
        Allow::Roles(ADMIN),
        "timetable",
        "Delete a term",
        None,
        None
    ),
    route_rule!(
        "GET",
        "/api/slots",
        Allow::Roles(PEOPLE),
        "timetable",
        "Timetable slots of a term (?term_id=)",
        None,
        Some("[Slot]")
    ),
    route_rule!(
        "POST",
        "/api/slots",
        Allow::Roles(ADMIN),
        "timetable",
        "Add a slot (conflicts are refused, naming the clashing slot)",
        Some("Slot"),
        Some("Slot")
    ),
    route_rule!(
        "GET",
        "/api/slots/{id}",
        Allow::Roles(PEOPLE),
        "timetable",
        "One slot",
        None,
        Some("Slot")
    ),
    route_rule!(
        "PUT",
        "/api/slots/{id}",
        Allow::Roles(ADMIN),
        "timetable",
        "Replace a slot",
        Some("Slot"),
        Some("Slot")
    ),
    route_rule!(
        "DELETE",
        "/api/slots/{id}",
        Allow::Roles(ADMIN),
        "timetable",
        "Delete a slot",
        None,
        None
    ),
    route_rule!(
        "GET",
        "/api/timetable.csv",
        Allow::Roles(ADMIN),
        "timetable",
        "Export a term's timetable as CSV (?term_id=)",
        None,
        Some("csv")
    ),
    route_rule!(
        "POST",
        "/api/timetable/import",
        Allow::Roles(ADMIN),
        "timetable",
        "Import timetable slots from CSV (all rows or none)",
        Some("csv"),
        Some("ImportResult")
    ),
    route_rule!(
        "GET",
        "/api/lessons",
        Allow::Roles(ALL),
        "lessons",
        "Lessons in a window (?from=&to= dates, default today)",
        None,
        Some("[Lesson]")
    ),
    route_rule!(
        "POST",
        "/api/lessons",
        Allow::Roles(STAFF),
        "lessons",
        "Create an ad hoc lesson",
        Some("Lesson"),
        Some("Lesson")
    ),
    route_rule!(
        "POST",
        "/api/lessons/generate",
        Allow::Roles(ADMIN),
        "lessons",
        "Make the lessons of a date range from the timetable",
        Some("DateRange"),
        Some("Generated")
    ),
    route_rule!(
        "GET",
        "/api/lessons/{id}",
        Allow::Roles(ALL),
        "lessons",
        "One lesson",
        None,
        Some("Lesson")
    ),
    route_rule!(
        "PUT",
        "/api/lessons/{id}",
        Allow::Roles(STAFF),
        "lessons",
        "Change a lesson that has not opened yet (its hub teacher or an admin over its hub school; audited)",
        Some("Lesson"),
        Some("Lesson")
    ),
    route_rule!(
        "DELETE",
        "/api/lessons/{id}",
        Allow::Roles(STAFF),
        "lessons",
        "Delete a lesson that has not opened yet (its hub teacher or an admin over its hub school; audited)",
        None,
        None
    ),
    route_rule!(
        "POST",
        "/api/lessons/{id}/join",
        Allow::Roles(ALL),
        "lessons",
        "Join: get the media token and endpoints this caller may use",
        None,
        Some("Join")
    ),
    route_rule!(
        "POST",
        "/api/lessons/{id}/end",
        Allow::Roles(STAFF),
        "lessons",
        "End the lesson now (its hub teacher or an admin)",
        None,
        Some("Lesson")
    ),
    route_rule!(
        "POST",
        "/api/lessons/{id}/hand",
        Allow::Roles(DEVICE),
        "lessons",
        "Raise or lower the classroom's hand",
        Some("Hand"),
        Some("LiveState")
    ),
    route_rule!(
        "POST",
        "/api/lessons/{id}/speak",
        Allow::Roles(STAFF),
        "lessons",
        "Grant or revoke speaking for a classroom (名师课堂)",
        Some("Speak"),
        Some("LiveState")
    ),
    route_rule!(
        "POST",
        "/api/lessons/{id}/spotlight",
        Allow::Roles(STAFF),
        "lessons",
        "Put a classroom on everyone's big screen, or nobody (同步课堂)",
        Some("Spotlight"),
        Some("LiveState")
    ),
    route_rule!(
        "GET",
        "/api/lessons/{id}/live",
        Allow::Roles(ALL),
        "lessons",
        "Hands, speakers, spotlight, who is connected and their link quality",
        None,
        Some("LiveState")
    ),
    route_rule!(
        "GET",
        "/api/lessons/{id}/events",
        Allow::Roles(ALL),
        "lessons",
        "Server-sent events of the lesson (joined, left, published, unpublished, hand, speak, \
         spotlight, state, quality; see LessonEvent); resumes from Last-Event-ID",
        None,
        Some("event-stream")
    ),
    route_rule!(
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
        ("GET", "/api/users.csv") => get(users_csv),
        ("POST", "/api/users/import") => post(users_import),
        ("GET", "/api/classrooms/{id}/devices") => get(devices_list),
        ("POST", "/api/classrooms/{id}/devices") => post(devices_create),
        ("DELETE", "/api/devices/{id}") => delete(devices_revoke),
        ("GET", "/api/slots") => get(slots_list),
        ("POST", "/api/slots") => post(slots_create),
        ("GET", "/api/slots/{id}") => get(slots_get),
        ("PUT", "/api/slots/{id}") => put(slots_put),
        ("DELETE", "/api/slots/{id}") => delete(slots_delete),
        ("GET", "/api/pairings.csv") | ("GET", "/api/timetable.csv") => get(csv_route),
        ("POST", "/api/pairings/import") | ("POST", "/api/timetable/import") => post(csv_route),
        ("GET", "/api/lessons") => get(lessons_list),
        ("POST", "/api/lessons") => post(lessons_create),
        ("POST", "/api/lessons/generate") => post(lessons_generate),
        ("GET", "/api/lessons/{id}") => get(lessons_get),
        ("PUT", "/api/lessons/{id}") => put(lessons_put),
        ("DELETE", "/api/lessons/{id}") => delete(lessons_delete),
        ("POST", "/api/lessons/{id}/join") => post(lessons_join),
        ("POST", "/api/lessons/{id}/end") => post(lessons_end),
        ("POST", "/api/lessons/{id}/hand") => post(lessons_hand),
        ("POST", "/api/lessons/{id}/speak") => post(lessons_speak),
        ("POST", "/api/lessons/{id}/spotlight") => post(lessons_spotlight),
        ("GET", "/api/lessons/{id}/live") => get(lessons_live),
        ("GET", "/api/lessons/{id}/events") => get(lessons_events),
        ("GET", "/api/today") => get(today),
        _ => return None,
    })
}

/// The school API's router, built from [`ROUTES`]: every route is a rule of the table (so a
/// route without an access rule cannot exist), every rule must have a handler (checked here,
/// at start), and the guard applies the rule to every request.
pub fn router(state: Arc<SchoolState>) -> Router<Arc<SchoolState>> {
    let mut by_path: Vec<(&'static str, MethodRouter<Arc<SchoolState>>)> = Vec::new();
    for rule in ROUTES {
        let h = handler(rule.method, rule.path, &state)
            .unwrap_or_else(|| panic!("no handler for {} {}", rule.method, rule.path));
        match by_path.iter_mut().find(|(p, _)| *p == rule.path) {
            Some((_, m)) => *m = std::mem::take(m).merge(h),
            None => by_path.push((rule.path, h)),
        }
    }
    let mut r: Router<Arc<SchoolState>> = Router::new();
    for (path, m) in by_path {
        r = r.route(path, m);
    }
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
