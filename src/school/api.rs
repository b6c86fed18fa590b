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

fn plural<E: Entity>() -> &'static str {
    E::TABLE
}

/// How a directory entity sits in the organisation tree (see [`access`]).
trait Scoped: Entity {
    /// The lowest admin level that may create, change or delete one.
    const WRITE_LEVEL: Level;
    /// The places the row is about (all must be in an admin's scope to change it).
    fn places(&self, d: &Directory) -> Vec<Place>;
    /// Whether a person with `scope` may read it.
    fn readable(&self, scope: &crate::auth::scope::Scope, d: &Directory) -> bool;
    /// Whether classroom device `classroom` may read it (never the directory by default).
    fn device_readable(&self, _classroom: i64, _shared: &[i64]) -> bool {
        false
    }
}

impl Scoped for Region {
    const WRITE_LEVEL: Level = Level::City;
    fn places(&self, _: &Directory) -> Vec<Place> {
        vec![Place {
            province: Some(self.province.clone()),
            city: Some(self.city.clone()),
            region_id: (self.id > 0).then_some(self.id),
            school_id: None,
        }]
    }
    fn readable(&self, _: &crate::auth::scope::Scope, _: &Directory) -> bool {
        true
    }
}

impl Scoped for School {
    const WRITE_LEVEL: Level = Level::County;
    fn places(&self, d: &Directory) -> Vec<Place> {
        let region = self
            .region_id
            .and_then(|r| d.regions.get(&r).cloned())
            .unwrap_or_default();
        vec![Place {
            school_id: (self.id > 0).then_some(self.id),
            ..region
        }]
    }
    fn readable(&self, scope: &crate::auth::scope::Scope, d: &Directory) -> bool {
        d.school_visible(scope, self.id)
    }
}

impl Scoped for Classroom {
    const WRITE_LEVEL: Level = Level::School;
    fn places(&self, d: &Directory) -> Vec<Place> {
        vec![d.school(self.school_id)]
    }
    fn readable(&self, scope: &crate::auth::scope::Scope, d: &Directory) -> bool {
        d.school_visible(scope, self.school_id)
    }
    fn device_readable(&self, classroom: i64, shared: &[i64]) -> bool {
        self.id == classroom || shared.contains(&self.id)
    }
}

impl Scoped for Teacher {
    const WRITE_LEVEL: Level = Level::School;
    fn places(&self, d: &Directory) -> Vec<Place> {
        vec![d.school(self.school_id)]
    }
    fn readable(&self, scope: &crate::auth::scope::Scope, d: &Directory) -> bool {
        d.school_visible(scope, self.school_id)
    }
}

impl Scoped for Pairing {
    const WRITE_LEVEL: Level = Level::School;
    fn places(&self, d: &Directory) -> Vec<Place> {
        vec![
            d.school(self.hub_school_id),
            d.school(self.partner_school_id),
        ]
    }
    fn readable(&self, scope: &crate::auth::scope::Scope, d: &Directory) -> bool {
        scope.covers_any(&self.places(d))
    }
}

impl Scoped for Term {
    // Terms are the installation's calendar: only a global admin changes them.
    const WRITE_LEVEL: Level = Level::Global;
    fn places(&self, _: &Directory) -> Vec<Place> {
        Vec::new()
    }
    fn readable(&self, _: &crate::auth::scope::Scope, _: &Directory) -> bool {
        true
    }
}

/// The classrooms that share a lesson with `classroom` (what its kiosk may name).
async fn classrooms_sharing_lessons(
    st: &SchoolState,
    classroom: i64,
) -> Result<Vec<i64>, ApiError> {
    let rows = sqlx::query(
        "SELECT DISTINCT x.classroom_id AS c FROM ( \
           SELECT l.id AS lesson_id, l.hub_classroom_id AS classroom_id FROM lessons l \
           UNION SELECT ls.lesson_id, ls.classroom_id FROM lesson_sites ls) x \
         WHERE x.lesson_id IN ( \
           SELECT id FROM lessons WHERE hub_classroom_id = $1 \
           UNION SELECT lesson_id FROM lesson_sites WHERE classroom_id = $1)",
    )
    .bind(classroom)
    .fetch_all(st.store.pool())
    .await
    .map_err(crate::store::StoreError::from)?;
    rows.iter()
        .map(|r| crate::store::col::<i64>(r, "c").map_err(ApiError::from))
        .collect()
}

/// Whether `p` may read row `e`.
async fn may_read<E: Scoped>(
    st: &SchoolState,
    p: &Principal,
    d: &Directory,
    e: &E,
) -> Result<bool, ApiError> {
    Ok(match p {
        Principal::Device { classroom_id, .. } => {
            let shared = classrooms_sharing_lessons(st, *classroom_id).await?;
            e.device_readable(*classroom_id, &shared)
        }
        Principal::User { scope, .. } => e.readable(scope, d),
    })
}

async fn list_h<E: Scoped>(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    let filter = E::FILTERS
        .iter()
        .find_map(|f| q.get(*f).map(|v| (*f, v)))
        .map(|(f, v)| {
            Ok::<_, ApiError>((
                f,
                v.parse::<i64>().map_err(|_| {
                    ApiError::bad_request("bad-query", format!("{f} must be an id"))
                })?,
            ))
        })
        .transpose()?;
    let d = Directory::load(&st.store).await?;
    let shared = match p.classroom_id() {
        Some(c) => classrooms_sharing_lessons(&st, c).await?,
        None => Vec::new(),
    };
    let rows: Vec<E> = model::list::<E>(&st.store, filter)
        .await?
        .into_iter()
        .filter(|e| match &p {
            Principal::Device { classroom_id, .. } => e.device_readable(*classroom_id, &shared),
            Principal::User { scope, .. } => e.readable(scope, &d),
        })
        .collect();
    Ok(Json(rows).into_response())
}

async fn get_h<E: Scoped>(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult {
    let e = model::get::<E>(&st.store, parse_id(&id)?).await?;
    let d = Directory::load(&st.store).await?;
    if !may_read(&st, &p, &d, &e).await? {
        return Err(out_of_scope(format!("{} {id}", E::NAME)));
    }
    Ok(Json(e).into_response())
}

async fn create_h<E: Scoped>(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    JsonBody(e): JsonBody<E>,
) -> ApiResult {
    e.validate().map_err(ApiError::invalid)?;
    let d = Directory::load(&st.store).await?;
    admin_over(
        &p,
        E::WRITE_LEVEL,
        format!("this {}", E::NAME),
        &e.places(&d),
    )?;
    let stored = model::insert(&st.store, &e).await?;
    let id = serde_json::to_value(&stored)
        .ok()
        .and_then(|v| v.get("id").and_then(|i| i.as_i64()))
        .unwrap_or(0);
    Ok(created(format!("/api/{}/{id}", plural::<E>()), &stored))
}

async fn update_h<E: Scoped>(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    JsonBody(e): JsonBody<E>,
) -> ApiResult {
    let id = parse_id(&id)?;
    e.validate().map_err(ApiError::invalid)?;
    let old = model::get::<E>(&st.store, id).await?;
    let d = Directory::load(&st.store).await?;
    let mut places = old.places(&d);
    places.extend(e.places(&d));
    admin_over(&p, E::WRITE_LEVEL, format!("{} {id}", E::NAME), &places)?;
    Ok(Json(model::update(&st.store, id, &e).await?).into_response())
}

async fn delete_h<E: Scoped>(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult {
    let id = parse_id(&id)?;
    let old = model::get::<E>(&st.store, id).await?;
    let d = Directory::load(&st.store).await?;
    admin_over(
        &p,
        E::WRITE_LEVEL,
        format!("{} {id}", E::NAME),
        &old.places(&d),
    )?;
    model::delete::<E>(&st.store, id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn entity_routes<E: Scoped>(router: Router<Arc<SchoolState>>) -> Router<Arc<SchoolState>> {
    let base = format!("/api/{}", plural::<E>());
    router
        .route(&base, get(list_h::<E>).post(create_h::<E>))
        .route(
            &format!("{base}/{{id}}"),
            get(get_h::<E>).put(update_h::<E>).delete(delete_h::<E>),
        )
}

#[derive(Deserialize)]
struct LoginBody {
    username: String,
    password: String,
}

/// The client's address comes from the serve loop's connect info; without it (a router
/// driven in-process) only the per-username limit applies.
async fn login(
    State(st): State<Arc<SchoolState>>,
    Extension(limits): Extension<Arc<crate::auth::limit::LoginLimits>>,
    peer: Option<Extension<axum::extract::ConnectInfo<std::net::SocketAddr>>>,
    JsonBody(b): JsonBody<LoginBody>,
) -> ApiResult {
    if b.username.len() > 200 || b.password.len() > 1024 {
        return Err(ApiError::invalid("username or password too long"));
    }
    let now = st.now();
    let client = peer.map(|Extension(axum::extract::ConnectInfo(a))| a.ip());
    let Some((token, user)) = people::login(
        &st.store,
        &limits,
        client,
        &b.username,
        &b.password,
        now,
        st.session_ttl,
    )
    .await
    .map_err(login_refused)?
    else {
        return Err(ApiError::unauthorized(
            "login-failed",
            "wrong username or password, or the account is disabled",
        ));
    };
    let expires_at = now + st.session_ttl;
    let mut r = Json(serde_json::json!({
        "token": token,
        "user": user,
        "expires_at": expires_at,
    }))
    .into_response();
    let cookie = format!(
        "{COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}",
        st.session_ttl / 1000
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(r)
}

/// 429 `too-many-logins` (with how long to wait), 503 when the hash pool is full.
fn login_refused(e: people::LoginError) -> ApiError {
    use crate::metrics::LoginLimit;
    match e {
        people::LoginError::Limited(r) => {
            let from = match r.by {
                LoginLimit::Address => "from this address",
                LoginLimit::Username => "for this username",
            };
            let s = r.retry_after_secs();
            ApiError::too_many_requests(
                "too-many-logins",
                format!("too many login attempts {from}; try again in {s} s"),
                s,
            )
        }
        people::LoginError::Busy => ApiError::unavailable(
            "too many logins are being checked at once; try again shortly",
            1,
        ),
        people::LoginError::CheckFailed => ApiError::internal("a password check failed"),
        people::LoginError::Store(e) => e.into(),
    }
}

async fn logout(State(st): State<Arc<SchoolState>>, headers: HeaderMap) -> ApiResult {
    if let Some(t) = bearer_or_cookie(&headers) {
        if t.starts_with(people::SESSION_PREFIX) {
            people::logout(&st.store, &t).await?;
        }
    }
    let mut r = StatusCode::NO_CONTENT.into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("cr_session=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0"),
    );
    Ok(r)
}

async fn me(Extension(p): Extension<Principal>) -> ApiResult {
    Ok(Json(p).into_response())
}

async fn users_csv(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
) -> ApiResult {
    super::userscsv::export(&st, &p).await
}

async fn users_import(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> ApiResult {
    require_csv(&headers)?;
    super::userscsv::import(&st, &p, body).await
}

/// A user's scope, for containment checks.
async fn user_scope(
    st: &SchoolState,
    u: &people::User,
) -> Result<crate::auth::scope::Scope, ApiError> {
    Ok(
        people::scope_of(&st.store, u.scope, u.school_id, u.region_id)
            .await?
            .unwrap_or(crate::auth::scope::Scope {
                level: u.scope,
                place: Place::default(),
            }),
    )
}

async fn users_list(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
) -> ApiResult {
    let mine = access::admin_scope(&p)?;
    let d = Directory::load(&st.store).await?;
    let out: Vec<people::User> = people::list_users(&st.store)
        .await?
        .into_iter()
        .filter(|u| mine.contains(&d.user_scope(u)))
        .collect();
    Ok(Json(out).into_response())
}

/// Works out and checks a new user's scope: a teacher acts in their teacher record's
/// school; others need a scope the creating admin contains.
async fn new_user_scope(st: &SchoolState, p: &Principal, u: &mut NewUser) -> Result<(), ApiError> {
    if let Some(t) = u.teacher_id {
        let teacher: Teacher = model::get(&st.store, t)
            .await
            .map_err(|_| ApiError::invalid(format!("teacher_id: no teacher {t}")))?;
        if u.school_id.is_some_and(|s| s != teacher.school_id) {
            return Err(ApiError::invalid(
                "school_id: a teacher's account belongs to their teacher record's school",
            ));
        }
        if u.scope.is_some_and(|l| l != Level::School) {
            return Err(ApiError::invalid(
                "scope: a teacher's account acts in their school (scope school)",
            ));
        }
        u.school_id = Some(teacher.school_id);
    }
    let level = match u.scope {
        Some(l) => l,
        None if u.school_id.is_some() => Level::School,
        None => {
            return Err(ApiError::invalid(
                "scope: say where this person acts (school with school_id; county, city or \
                 province with region_id; or global)",
            ))
        }
    };
    u.scope = Some(level);
    if level != Level::School {
        u.school_id = None;
    }
    if matches!(level, Level::School | Level::Global) {
        u.region_id = None;
    }
    let scope = people::scope_of(&st.store, level, u.school_id, u.region_id)
        .await?
        .map_err(ApiError::invalid)?;
    if !access::admin_scope(p)?.contains(&scope) {
        return Err(out_of_scope(format!(
            "a {} scope at {:?}",
            level.as_str(),
            scope.place
        )));
    }
    Ok(())
}

async fn users_create(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    JsonBody(mut u): JsonBody<NewUser>,
) -> ApiResult {
    if u.role == Role::Classroom {
        return Err(ApiError::invalid(
            "role: classroom devices sign in with device tokens (POST /api/classrooms/{id}/devices)",
        ));
    }
    if u.username.trim().is_empty() || u.username.len() > 64 {
        return Err(ApiError::invalid("username must be 1-64 characters"));
    }
    if u.password.chars().count() < 8 {
        return Err(ApiError::invalid("password must be at least 8 characters"));
    }
    if u.role == Role::Teacher && u.teacher_id.is_none() {
        return Err(ApiError::invalid(
            "teacher_id: a teacher account needs its teacher record",
        ));
    }
    new_user_scope(&st, &p, &mut u).await?;
    let user = people::create_user(&st.store, &u, st.now()).await?;
    Ok(created(format!("/api/users/{}", user.id), &user))
}

#[derive(Deserialize)]
struct UserPatch {
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    disabled: Option<bool>,
    #[serde(default)]
    scope: Option<Level>,
    #[serde(default)]
    school_id: Option<i64>,
    #[serde(default)]
    region_id: Option<i64>,
}

/// Ends what a principal holds right now: their media sessions and event streams.
pub(crate) async fn cut_off(st: &SchoolState, who: &str) {
    st.revoke(super::Revoked::Principal(who.to_string()));
    let n = st.media.kick_principal(who).await;
    tracing::info!(principal = who, sessions = n, "access revoked");
}

async fn users_patch(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<UserPatch>,
) -> ApiResult {
    if b.password.as_ref().is_some_and(|p| p.chars().count() < 8) {
        return Err(ApiError::invalid("password must be at least 8 characters"));
    }
    let id = parse_id(&id)?;
    let target = people::get_user(&st.store, id).await?;
    let mine = access::admin_scope(&p)?.clone();
    if !mine.contains(&user_scope(&st, &target).await?) {
        return Err(out_of_scope(format!("user {id}")));
    }
    let scope = match b.scope {
        None => None,
        Some(level) => {
            if target.role == Role::Teacher && level != Level::School {
                return Err(ApiError::invalid(
                    "scope: a teacher's account acts in their school (scope school)",
                ));
            }
            let school = (level == Level::School)
                .then_some(b.school_id.or(target.school_id))
                .flatten();
            let region = (!matches!(level, Level::School | Level::Global))
                .then_some(b.region_id)
                .flatten();
            let new = people::scope_of(&st.store, level, school, region)
                .await?
                .map_err(ApiError::invalid)?;
            if !mine.contains(&new) {
                return Err(out_of_scope(format!("a {} scope", level.as_str())));
            }
            Some((level, school, region))
        }
    };
    let change = people::UserChange {
        password: b.password.as_deref(),
        disabled: b.disabled,
        scope,
    };
    let u = people::update_user(&st.store, id, &change).await?;
    if b.password.is_some() || b.disabled == Some(true) || b.scope.is_some() {
        model::audit(
            &st.store,
            st.now(),
            &p.ident(),
            "user-access-changed",
            &format!("user {id}"),
            &format!(
                "password {}, disabled {:?}, scope {:?}",
                b.password.is_some(),
                b.disabled,
                b.scope
            ),
        )
        .await?;
        cut_off(&st, &format!("u:{id}")).await;
    }
    if b.password.is_some() {
        crate::auth::first_admin::password_set(&st.config.data.dir, &u);
    }
    Ok(Json(u).into_response())
}

#[derive(Deserialize)]
struct NewDevice {
    label: String,
}

/// Refuses unless `p` is an admin over classroom `id`'s school.
async fn admin_over_classroom(st: &SchoolState, p: &Principal, id: i64) -> Result<(), ApiError> {
    let c: Classroom = model::get(&st.store, id).await?;
    let place = people::school_place(&st.store, c.school_id)
        .await?
        .unwrap_or_default();
    admin_over(p, Level::School, format!("classroom {id}"), [&place])
}

async fn devices_list(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult {
    let id = parse_id(&id)?;
    admin_over_classroom(&st, &p, id).await?;
    Ok(Json(people::list_devices(&st.store, id).await?).into_response())
}

async fn devices_create(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<NewDevice>,
) -> ApiResult {
    let id = parse_id(&id)?;
    if b.label.trim().is_empty() || b.label.chars().count() > 100 {
        return Err(ApiError::invalid("label must be 1-100 characters"));
    }
    admin_over_classroom(&st, &p, id).await?;
    let (token, d) = people::create_device(&st.store, id, &b.label, st.now()).await?;
    Ok(created(
        format!("/api/devices/{}", d.id),
        &serde_json::json!({"token": token, "device": d}),
    ))
}

async fn devices_revoke(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult {
    let id = parse_id(&id)?;
    let d = people::get_device(&st.store, id).await?;
    admin_over_classroom(&st, &p, d.classroom_id).await?;
    let d = people::revoke_device(&st.store, id, st.now()).await?;
    model::audit(
        &st.store,
        st.now(),
        &p.ident(),
        "device-revoked",
        &format!("device {id}"),
        &format!("classroom {}", d.classroom_id),
    )
    .await?;
    cut_off(&st, &format!("d:{id}")).await;
    Ok(Json(d).into_response())
}

fn slot_err(e: SlotError) -> ApiError {
    match e {
        SlotError::Invalid(m) => ApiError::invalid(m),
        SlotError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "timetable-conflict", m),
        SlotError::Store(s) => s.into(),
    }
}

/// The places of a slot's hub and site classrooms.
fn slot_places(d: &Directory, s: &Slot) -> Vec<Place> {
    std::iter::once(s.hub_classroom_id)
        .chain(s.sites.iter().map(|x| x.classroom_id))
        .map(|c| d.classroom(c))
        .collect()
}

/// Refuses unless `p` is an admin over the slot's hub school and, for every site school not
/// paired with the hub school, over that school too.
fn admin_over_slot(p: &Principal, d: &Directory, s: &Slot) -> Result<(), ApiError> {
    let hub = d.classroom(s.hub_classroom_id);
    let mut places = vec![hub.clone()];
    for site in &s.sites {
        let pl = d.classroom(site.classroom_id);
        let paired = match (hub.school_id, pl.school_id) {
            (Some(h), Some(x)) => h == x || d.paired.get(&h).is_some_and(|o| o.contains(&x)),
            _ => false,
        };
        if !paired {
            places.push(pl);
        }
    }
    admin_over(p, Level::School, format!("slot {}", s.id), &places)
}

async fn slots_list(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    let term = q
        .get("term_id")
        .ok_or_else(|| ApiError::bad_request("bad-query", "term_id is required"))?;
    let term = parse_id(term)?;
    let mut conn = st
        .store
        .pool()
        .acquire()
        .await
        .map_err(crate::store::StoreError::from)?;
    let d = Directory::load(&st.store).await?;
    let scope = p.scope().cloned().ok_or_else(|| {
        ApiError::forbidden("role-forbidden", "devices do not read the timetable")
    })?;
    let slots: Vec<Slot> = model::list_slots_in(&mut conn, term, None)
        .await?
        .into_iter()
        .filter(|s| scope.covers_any(&slot_places(&d, s)))
        .collect();
    Ok(Json(slots).into_response())
}

async fn slots_create(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    JsonBody(s): JsonBody<Slot>,
) -> ApiResult {
    let d = Directory::load(&st.store).await?;
    admin_over_slot(&p, &d, &s)?;
    let s = model::save_slot(&st.store, s, false)
        .await
        .map_err(slot_err)?;
    Ok(created(format!("/api/slots/{}", s.id), &s))
}

async fn slots_get(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult {
    let s = model::get_slot(&st.store, parse_id(&id)?).await?;
    let d = Directory::load(&st.store).await?;
    if !p
        .scope()
        .is_some_and(|sc| sc.covers_any(&slot_places(&d, &s)))
    {
        return Err(out_of_scope(format!("slot {id}")));
    }
    Ok(Json(s).into_response())
}

async fn slots_put(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    JsonBody(mut s): JsonBody<Slot>,
) -> ApiResult {
    s.id = parse_id(&id)?;
    let old = model::get_slot(&st.store, s.id).await?;
    let d = Directory::load(&st.store).await?;
    admin_over_slot(&p, &d, &old)?;
    admin_over_slot(&p, &d, &s)?;
    let s = model::save_slot(&st.store, s, true)
        .await
        .map_err(slot_err)?;
    Ok(Json(s).into_response())
}

async fn slots_delete(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult {
    let id = parse_id(&id)?;
    let old = model::get_slot(&st.store, id).await?;
    let d = Directory::load(&st.store).await?;
    admin_over_slot(&p, &d, &old)?;
    model::delete_slot(&st.store, id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// A lesson as the API shows it: the row, plus its room and local times.
#[derive(Serialize)]
struct LessonView {
    #[serde(flatten)]
    lesson: Lesson,
    room: String,
    starts: String,
    ends: String,
}

fn view(st: &SchoolState, l: Lesson) -> LessonView {
    LessonView {
        room: l.room(),
        starts: rfc3339(l.starts_at, st.offset),
        ends: rfc3339(l.ends_at, st.offset),
        lesson: l,
    }
}

fn day_window(
    st: &SchoolState,
    from: Option<&String>,
    to: Option<&String>,
) -> Result<(i64, i64), ApiError> {
    let off = st.offset;
    let today = millis_to_local(st.now(), off).date();
    let parse = |s: Option<&String>, dflt| match s {
        None => Ok(dflt),
        Some(s) => parse_date(s).ok_or_else(|| {
            ApiError::bad_request("bad-query", format!("`{s}` is not a date (YYYY-MM-DD)"))
        }),
    };
    let from = parse(from, today)?;
    let to = parse(to, from)?;
    if to < from || (to - from).whole_days() > 62 {
        return Err(ApiError::bad_request(
            "bad-query",
            "to must be on or after from, at most 62 days later",
        ));
    }
    let start = crate::time::local_to_millis(from, time::Time::MIDNIGHT, off);
    let end = crate::time::local_to_millis(to.next_day().unwrap_or(to), time::Time::MIDNIGHT, off);
    Ok((start, end))
}

/// The lessons `p` may watch among `ls` (one directory load).
async fn watchable(
    st: &SchoolState,
    p: &Principal,
    ls: Vec<Lesson>,
) -> Result<Vec<Lesson>, ApiError> {
    if let Principal::Device { classroom_id, .. } = p {
        return Ok(ls
            .into_iter()
            .filter(|l| l.has_classroom(*classroom_id))
            .collect());
    }
    let d = Directory::load(&st.store).await?;
    Ok(ls
        .into_iter()
        .filter(|l| access::may_watch(p, l, &d.lesson(l)))
        .collect())
}

async fn lessons_list(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    let (from, to) = day_window(&st, q.get("from"), q.get("to"))?;
    let ls = model::lessons_between(&st.store, from, to).await?;
    let out: Vec<LessonView> = watchable(&st, &p, ls)
        .await?
        .into_iter()
        .map(|l| view(&st, l))
        .collect();
    Ok(Json(out).into_response())
}

/// Refuses unless `p` runs lesson `l` (its hub teacher, or an admin over its hub school).
async fn own_lesson(st: &SchoolState, p: &Principal, l: &Lesson) -> Result<(), ApiError> {
    let d = Directory::load(&st.store).await?;
    if access::may_run(p, l, &d.classroom(l.hub_classroom_id)) {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "not-your-lesson",
            format!(
                "only lesson {}'s hub teacher or an administrator over its hub school may do this",
                l.id
            ),
        ))
    }
}

/// How far in the past a new or moved lesson may start (a teacher creating a lesson at the
/// bell, a clock a little behind).
const PAST_START_SLACK: i64 = 5 * 60_000;

/// Sites a lesson of `mode` may have at most (`master` is the hub school's setting).
fn max_sites(mode: LessonMode, hub: &School) -> usize {
    match mode {
        LessonMode::Delivery => 6,
        LessonMode::Sync => 10,
        LessonMode::Master => hub.max_master_sites.max(0) as usize,
    }
}

/// A lesson as the API takes it: the row plus, for an admin over every school involved, the
/// explicit choice to include sites their pairings do not cover.
#[derive(Deserialize)]
struct LessonInput {
    #[serde(flatten)]
    lesson: Lesson,
    #[serde(default)]
    override_pairing: bool,
}

/// Checks a lesson that `p` creates (`existing` = 0) or changes: times, hub, sites,
/// pairings, clashes and the daily quota. Returns the audit note when an admin overrode
/// pairings.
async fn check_lesson(
    st: &SchoolState,
    p: &Principal,
    l: &Lesson,
    existing: i64,
    override_pairing: bool,
) -> Result<Option<String>, ApiError> {
    l.validate().map_err(ApiError::invalid)?;
    let now = st.now();
    if l.starts_at < now.saturating_sub(PAST_START_SLACK) {
        return Err(ApiError::invalid(format!(
            "starts_at: {} is in the past (a lesson may start at most {} minutes ago)",
            rfc3339(l.starts_at, st.offset),
            PAST_START_SLACK / 60_000
        )));
    }
    if l.starts_at > now.saturating_add(400 * 86_400_000) {
        return Err(ApiError::invalid(
            "starts_at: a lesson is planned at most 400 days ahead",
        ));
    }
    let store = &st.store;
    let hub_room: Classroom = model::get(store, l.hub_classroom_id).await.map_err(|_| {
        ApiError::invalid(format!(
            "hub_classroom_id: no classroom {}",
            l.hub_classroom_id
        ))
    })?;
    let teacher: Teacher = model::get(store, l.hub_teacher_id).await.map_err(|_| {
        ApiError::invalid(format!("hub_teacher_id: no teacher {}", l.hub_teacher_id))
    })?;
    if hub_room.kind == model::ClassroomKind::ReceiveOnly {
        return Err(ApiError::invalid(format!(
            "hub_classroom_id: classroom {} is receive-only and cannot lead a lesson",
            hub_room.id
        )));
    }
    if hub_room.school_id != teacher.school_id {
        return Err(ApiError::invalid(format!(
            "hub_classroom_id: classroom {} belongs to school {}, not to the hub teacher's school {}",
            hub_room.id, hub_room.school_id, teacher.school_id
        )));
    }
    let d = Directory::load(store).await?;
    let hub_place = d.school(hub_room.school_id);
    let is_admin = p.role() == Role::Admin;
    if !access::may_run(p, l, &hub_place) {
        return Err(if is_admin {
            out_of_scope(format!("school {}", hub_room.school_id))
        } else {
            ApiError::forbidden(
                "not-your-lesson",
                "a teacher creates lessons they lead themselves (hub_teacher_id is yours)",
            )
        });
    }
    let hub_school: School = model::get(store, hub_room.school_id).await?;
    let limit = max_sites(l.mode, &hub_school);
    if l.sites.len() > limit {
        return Err(ApiError::invalid(format!(
            "sites: a {} lesson has at most {limit} sites, this one has {}",
            l.mode.as_str(),
            l.sites.len()
        )));
    }
    let mut seen = std::collections::HashSet::new();
    let date = fmt_date(millis_to_local(l.starts_at, st.offset).date());
    let terms = model::terms_on(store, &date).await?;
    let mut overridden = Vec::new();
    for site in &l.sites {
        if !seen.insert(site.classroom_id) {
            return Err(ApiError::invalid(format!(
                "sites: classroom {} is listed twice",
                site.classroom_id
            )));
        }
        let room: Classroom = model::get(store, site.classroom_id)
            .await
            .map_err(|_| ApiError::invalid(format!("sites: no classroom {}", site.classroom_id)))?;
        if room.school_id == hub_room.school_id {
            continue;
        }
        let mut paired = false;
        for term in &terms {
            if model::is_paired(
                store,
                hub_room.school_id,
                room.school_id,
                &l.subject,
                &l.grade,
                term,
            )
            .await?
            {
                paired = true;
                break;
            }
        }
        if paired {
            continue;
        }
        let site_place = d.school(room.school_id);
        let admin_over_site = p.scope().is_some_and(|s| s.covers(&site_place)) && is_admin;
        if override_pairing && admin_over_site {
            overridden.push(format!("classroom {} (school {})", room.id, room.school_id));
            continue;
        }
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "site-not-paired",
            format!(
                "sites: classroom {} belongs to school {}, which is not paired with hub school {} \
                 for {} {} in the term of {date}{}",
                room.id,
                room.school_id,
                hub_room.school_id,
                l.subject,
                l.grade,
                if is_admin && admin_over_site {
                    " (an administrator over both schools may send override_pairing: true)"
                } else {
                    ""
                }
            ),
        ));
    }
    let mut rooms: Vec<i64> = vec![l.hub_classroom_id];
    rooms.extend(l.sites.iter().map(|s| s.classroom_id));
    let clashes = model::clashing_lessons(
        store,
        l.starts_at,
        l.ends_at,
        l.hub_teacher_id,
        &rooms,
        existing,
    )
    .await?;
    if let Some(c) = clashes.first() {
        let with = if c.hub_teacher_id == l.hub_teacher_id {
            format!("the same hub teacher {}", c.hub_teacher_id)
        } else {
            let shared: Vec<String> = rooms
                .iter()
                .filter(|r| c.has_classroom(**r))
                .map(|r| r.to_string())
                .collect();
            format!("classroom {}", shared.join(", "))
        };
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "lesson-conflict",
            format!(
                "lesson {} ({} to {}) already has {with} at that time",
                c.id,
                rfc3339(c.starts_at, st.offset),
                rfc3339(c.ends_at, st.offset)
            ),
        ));
    }
    let day = millis_to_local(l.starts_at, st.offset).date();
    let day_start = crate::time::local_to_millis(day, time::Time::MIDNIGHT, st.offset);
    let day_end = crate::time::local_to_millis(
        day.next_day().unwrap_or(day),
        time::Time::MIDNIGHT,
        st.offset,
    );
    let n =
        model::count_teacher_lessons(store, l.hub_teacher_id, day_start, day_end, existing).await?;
    if n >= st.max_lessons_per_teacher_day {
        st.metrics.lessons_refused_quota.inc();
        let wait = ((day_end.saturating_sub(now)) / 1000).clamp(60, 86_400) as u64;
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too-many-lessons",
            format!(
                "teacher {} already leads {n} lessons on {date}; the limit is {} a day \
                 (school.max_lessons_per_teacher_day)",
                l.hub_teacher_id, st.max_lessons_per_teacher_day
            ),
        )
        .with_retry_after(wait));
    }
    Ok((!overridden.is_empty()).then(|| {
        format!(
            "sites outside the hub school's pairings: {}",
            overridden.join(", ")
        )
    }))
}

async fn lessons_create(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    JsonBody(input): JsonBody<LessonInput>,
) -> ApiResult {
    let mut l = input.lesson;
    l.slot_id = None;
    l.lesson_date = None;
    l.ended_at = None;
    l.state = LessonState::Scheduled;
    let note = check_lesson(&st, &p, &l, 0, input.override_pairing).await?;
    let stored = model::insert_lesson(&st.store, &l).await?;
    if let Some(n) = note {
        model::audit(
            &st.store,
            st.now(),
            &p.ident(),
            "pairing-override",
            &format!("lesson {}", stored.id),
            &n,
        )
        .await?;
    }
    st.poke.notify_one();
    Ok(created(
        format!("/api/lessons/{}", stored.id),
        &view(&st, stored),
    ))
}

/// Loads lesson `id` for a change by `p`: it must be theirs to run and still scheduled.
async fn scheduled_lesson_for(
    st: &SchoolState,
    p: &Principal,
    id: &str,
) -> Result<Lesson, ApiError> {
    let l = model::get_lesson(&st.store, parse_id(id)?).await?;
    own_lesson(st, p, &l).await?;
    let s = l.state_at(st.now(), st.open_before, st.grace);
    if s != LessonState::Scheduled || l.state != LessonState::Scheduled {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "lesson-not-scheduled",
            format!(
                "lesson {} is {}; only a lesson that has not opened yet can be changed or deleted",
                l.id,
                s.as_str()
            ),
        ));
    }
    Ok(l)
}

async fn lessons_put(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    JsonBody(input): JsonBody<LessonInput>,
) -> ApiResult {
    let old = scheduled_lesson_for(&st, &p, &id).await?;
    let mut l = input.lesson;
    l.id = old.id;
    l.slot_id = old.slot_id;
    l.lesson_date = old.lesson_date.clone();
    l.ended_at = None;
    l.state = LessonState::Scheduled;
    let note = check_lesson(&st, &p, &l, old.id, input.override_pairing).await?;
    let stored = model::update_lesson(&st.store, old.id, &l).await?;
    model::audit(
        &st.store,
        st.now(),
        &p.ident(),
        "lesson-changed",
        &format!("lesson {}", old.id),
        &format!(
            "was {}..{} hub {} sites {:?}; now {}..{} hub {} sites {:?}{}",
            old.starts_at,
            old.ends_at,
            old.hub_classroom_id,
            old.sites.iter().map(|s| s.classroom_id).collect::<Vec<_>>(),
            l.starts_at,
            l.ends_at,
            l.hub_classroom_id,
            l.sites.iter().map(|s| s.classroom_id).collect::<Vec<_>>(),
            note.map(|n| format!("; {n}")).unwrap_or_default()
        ),
    )
    .await?;
    st.poke.notify_one();
    Ok(Json(view(&st, stored)).into_response())
}

async fn lessons_delete(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult {
    let l = scheduled_lesson_for(&st, &p, &id).await?;
    model::delete_lesson(&st.store, l.id).await?;
    model::audit(
        &st.store,
        st.now(),
        &p.ident(),
        "lesson-deleted",
        &format!("lesson {}", l.id),
        &format!(
            "{} {} {}..{} hub {}",
            l.subject, l.grade, l.starts_at, l.ends_at, l.hub_classroom_id
        ),
    )
    .await?;
    st.live.forget(l.id);
    st.poke.notify_one();
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
struct DateRange {
    from: String,
    to: String,
}

async fn lessons_generate(
    State(st): State<Arc<SchoolState>>,
    JsonBody(r): JsonBody<DateRange>,
) -> ApiResult {
    let (Some(from), Some(to)) = (parse_date(&r.from), parse_date(&r.to)) else {
        return Err(ApiError::invalid("from and to must be dates (YYYY-MM-DD)"));
    };
    if to < from || (to - from).whole_days() > 200 {
        return Err(ApiError::invalid(
            "to must be on or after from, at most 200 days later",
        ));
    }
    let n = model::generate_lessons(&st.store, from, to, st.offset).await?;
    st.poke.notify_one();
    Ok(
        Json(serde_json::json!({"created": n, "from": fmt_date(from), "to": fmt_date(to)}))
            .into_response(),
    )
}

/// Loads lesson `id` if `p` may watch it.
async fn lesson_for(st: &SchoolState, p: &Principal, id: &str) -> Result<Lesson, ApiError> {
    let l = model::get_lesson(&st.store, parse_id(id)?).await?;
    if let Principal::Device { classroom_id, .. } = p {
        if !l.has_classroom(*classroom_id) {
            return Err(ApiError::forbidden(
                "not-in-lesson",
                format!("this classroom is not part of lesson {}", l.id),
            ));
        }
        return Ok(l);
    }
    let d = Directory::load(&st.store).await?;
    if !access::may_watch(p, &l, &d.lesson(&l)) {
        return Err(out_of_scope(format!("lesson {}", l.id)));
    }
    Ok(l)
}

async fn lessons_get(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult {
    let l = lesson_for(&st, &p, &id).await?;
    Ok(Json(view(&st, l)).into_response())
}

async fn lessons_join(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult {
    let l = lesson_for(&st, &p, &id).await?;
    let g = policy::decide(&st, &p, &l).await?;
    let now = st.now();
    policy::check_window(&st, &l, now)?;
    let who = p.ident();
    let ver = people::token_version(&st.store, &who)
        .await?
        .ok_or_else(|| {
            ApiError::unauthorized("token-revoked", "this account or device was revoked")
        })?;
    let claims = policy::claims_for(&st, &l, &g, now, who, ver);
    let token = st.keys.mint_claims(&claims);
    let room = l.room();
    Ok(Json(serde_json::json!({
        "lesson": l.id,
        "mode": l.mode,
        "state": l.state_at(now, st.open_before, st.grace),
        "room": room,
        "part": g.part,
        "publish": g.publish,
        "needs_speak_grant": g.needs_speak_grant,
        "token": token,
        "whip": format!("/whip/{room}"),
        "whep": format!("/whep/{room}"),
        "events": format!("/api/lessons/{}/events", l.id),
        "hub_classroom_id": l.hub_classroom_id,
        "spotlight": st.live.spotlit(l.id),
    }))
    .into_response())
}

async fn lessons_end(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult {
    let l = model::get_lesson(&st.store, parse_id(&id)?).await?;
    own_lesson(&st, &p, &l).await?;
    let now = st.now();
    if l.state_at(now, st.open_before, st.grace) == LessonState::Ended {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "lesson-ended",
            format!("lesson {} has already ended", l.id),
        ));
    }
    model::set_lesson_state(&st.store, l.id, LessonState::Ended, Some(now)).await?;
    st.live.emit(
        l.id,
        "state",
        now,
        serde_json::json!({"state": "ended", "lesson": l.id, "by": p.ident()}),
    );
    super::scheduler::end_room(&st, l.id).await;
    let l = model::get_lesson(&st.store, l.id).await?;
    Ok(Json(view(&st, l)).into_response())
}

#[derive(Deserialize)]
struct HandBody {
    raised: bool,
}

async fn lessons_hand(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<HandBody>,
) -> ApiResult {
    let l = lesson_for(&st, &p, &id).await?;
    policy::check_window(&st, &l, st.now())?;
    let c = p.classroom_id().unwrap_or_default();
    st.live.hand(l.id, c, b.raised, st.now());
    Ok(Json(st.live.snapshot(l.id)).into_response())
}

#[derive(Deserialize)]
struct SpeakBody {
    classroom_id: i64,
    granted: bool,
}

fn site_of(l: &Lesson, c: i64) -> Result<(), ApiError> {
    if l.sites.iter().any(|s| s.classroom_id == c) {
        Ok(())
    } else {
        Err(ApiError::invalid(format!(
            "classroom_id: {c} is not a site of lesson {}",
            l.id
        )))
    }
}

async fn lessons_speak(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<SpeakBody>,
) -> ApiResult {
    let l = model::get_lesson(&st.store, parse_id(&id)?).await?;
    own_lesson(&st, &p, &l).await?;
    if l.mode != LessonMode::Master {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "wrong-mode",
            "speak grants apply to 名师课堂 (master) lessons; other modes let sites publish",
        ));
    }
    site_of(&l, b.classroom_id)?;
    policy::check_window(&st, &l, st.now())?;
    st.live.speak(l.id, b.classroom_id, b.granted, st.now());
    if !b.granted {
        // The grant is checked at WHIP time; a revoke also ends what is being sent.
        let part = policy::classroom_part(b.classroom_id);
        st.media
            .kick(&l.room(), |s| {
                s.role == crate::sfu::Role::Publisher && s.part.as_deref() == Some(part.as_str())
            })
            .await;
    }
    Ok(Json(st.live.snapshot(l.id)).into_response())
}

#[derive(Deserialize)]
struct SpotlightBody {
    classroom_id: Option<i64>,
}

async fn lessons_spotlight(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<SpotlightBody>,
) -> ApiResult {
    let l = model::get_lesson(&st.store, parse_id(&id)?).await?;
    own_lesson(&st, &p, &l).await?;
    if l.mode != LessonMode::Sync {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "wrong-mode",
            "the spotlight belongs to 同步课堂 (sync) lessons",
        ));
    }
    if let Some(c) = b.classroom_id {
        site_of(&l, c)?;
    }
    policy::check_window(&st, &l, st.now())?;
    if st.live.spotlight(l.id, b.classroom_id, st.now()) {
        st.media
            .set_spotlight(&l.room(), b.classroom_id.map(policy::classroom_part));
    }
    Ok(Json(st.live.snapshot(l.id)).into_response())
}

async fn lessons_live(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult {
    let l = lesson_for(&st, &p, &id).await?;
    // `peek`: reading an ended (or not yet open) lesson does not bring live state back.
    Ok(Json(st.live.peek(l.id)).into_response())
}

fn sse_of(ev: &super::live::Event) -> SseEvent {
    SseEvent::default()
        .id(ev.seq.to_string())
        .event(ev.kind)
        .data(serde_json::to_string(ev).unwrap_or_default())
}

async fn lessons_events(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    let l = lesson_for(&st, &p, &id).await?;
    let state = l.state_at(st.now(), st.open_before, st.grace);
    let last = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(|s| s.to_string())
        .or_else(|| q.get("last_event_id").cloned())
        .and_then(|s| s.trim().parse::<u64>().ok());
    // Subscribe to revocations before the lesson's events, so none falls between the two.
    let revoked = st.revoked.subscribe();
    let ended = state == LessonState::Ended;
    // An ended lesson: what the follower missed (its state is kept a little while after the
    // end) or one picture, and then the stream ends; it never brings live state back.
    let sub = if ended {
        st.live.subscribe_existing(l.id, last)
    } else {
        Some(st.live.subscribe(l.id, last))
    };
    let sub = match sub {
        Some(sub) => sub,
        None => super::live::Subscription {
            resync: Some(st.live.peek(l.id)),
            missed: Vec::new(),
            rx: tokio::sync::broadcast::channel(1).1,
        },
    };
    let mut first: Vec<SseEvent> = Vec::new();
    let mut seen = last.unwrap_or(0);
    if let Some(snap) = &sub.resync {
        seen = snap.seq;
        first.push(
            SseEvent::default()
                .id(snap.seq.to_string())
                .event("resync")
                .data(
                    serde_json::to_string(&serde_json::json!({
                        "seq": snap.seq,
                        "kind": "resync",
                        "data": {
                            "live": snap,
                            "state": state,
                        }
                    }))
                    .unwrap_or_default(),
                ),
        );
    }
    for ev in &sub.missed {
        seen = ev.seq;
        first.push(sse_of(ev));
    }
    let live = Arc::clone(&st);
    let lesson = l.id;
    let who = p.ident();
    let head = futures_util::stream::iter(first.into_iter().map(Ok::<_, std::convert::Infallible>));
    let tail = futures_util::stream::unfold(
        (sub.rx, revoked, seen, live, who),
        move |(mut rx, mut revoked, mut seen, st, who)| async move {
            use tokio::sync::broadcast::error::RecvError;
            loop {
                tokio::select! {
                    // The lesson's own events first: an `ended` event sent before the lesson's
                    // end is announced still reaches the client.
                    biased;
                    r = rx.recv() => match r {
                        Ok(ev) if ev.seq <= seen => continue,
                        Ok(ev) => {
                            seen = ev.seq;
                            return Some((Ok(sse_of(&ev)), (rx, revoked, seen, st, who)));
                        }
                        Err(RecvError::Lagged(_)) => {
                            // Too slow to follow: send the whole picture and carry on from it.
                            let snap = st.live.snapshot(lesson);
                            seen = snap.seq;
                            let e = SseEvent::default()
                            .id(snap.seq.to_string())
                            .event("resync")
                            .data(serde_json::to_string(&serde_json::json!({"seq": snap.seq, "kind": "resync", "data": {"live": snap}})).unwrap_or_default());
                            return Some((Ok(e), (rx, revoked, seen, st, who)));
                        }
                        Err(RecvError::Closed) => return None,
                    },
                    r = revoked.recv() => match r {
                        Ok(super::Revoked::Principal(x)) if x == who => return None,
                        Ok(super::Revoked::Lesson(x)) if x == lesson => return None,
                        Ok(_) => continue,
                        // Missed announcements might have been ours: end, and let the client
                        // come back through the access check.
                        Err(RecvError::Lagged(_)) | Err(RecvError::Closed) => return None,
                    },
                }
            }
        },
    );
    use futures_util::StreamExt;
    if ended {
        return Ok(Sse::new(head).into_response());
    }
    Ok(Sse::new(head.chain(tail))
        .keep_alive(KeepAlive::new().interval(std::time::Duration::from_secs(15)))
        .into_response())
}

async fn today(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
) -> ApiResult {
    let (from, to) = day_window(&st, None, None)?;
    let now = st.now();
    let mine = |l: &Lesson| match &p {
        Principal::Device { classroom_id, .. } => l.has_classroom(*classroom_id),
        Principal::User {
            teacher_id: Some(t),
            role: Role::Teacher,
            ..
        } => l.hub_teacher_id == *t || l.sites.iter().any(|s| s.assisting_teacher_id == Some(*t)),
        _ => true,
    };
    let ls: Vec<Lesson> = watchable(&st, &p, model::lessons_between(&st.store, from, to).await?)
        .await?
        .into_iter()
        .filter(|l| mine(l))
        .collect();
    let state = |l: &Lesson| l.state_at(now, st.open_before, st.grace);
    let current = ls
        .iter()
        .find(|l| matches!(state(l), LessonState::Open | LessonState::Live))
        .cloned();
    let next = ls
        .iter()
        .find(|l| state(l) == LessonState::Scheduled)
        .cloned();
    Ok(Json(serde_json::json!({
        "now": now,
        "date": fmt_date(millis_to_local(now, st.offset).date()),
        "current": current.map(|l| view(&st, l)),
        "next": next.map(|l| view(&st, l)),
        "lessons": ls.into_iter().map(|l| view(&st, l)).collect::<Vec<_>>(),
    }))
    .into_response())
}

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
