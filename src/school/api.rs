//! The school API under `/api`: login, people and devices, the school entities, timetable,
//! lessons, and a lesson's live controls and event stream.
//!
//! Every route is listed once in [`ROUTES`] with who may call it. A guard in front of the
//! routes resolves the caller (login session cookie or bearer, or a classroom device token)
//! and applies that rule, so no handler can forget it; handlers add the rules that depend on
//! the row (a teacher controls only their own lessons, a device joins only its classroom's).
//! The same table feeds the OpenAPI document.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{FromRequest, MatchedPath, Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::model::{
    self, Classroom, Entity, Lesson, LessonMode, LessonState, Pairing, Region, School, Slot,
    SlotError, Teacher, Term,
};
use super::policy;
use super::time::{fmt_date, millis_to_local, parse_date, rfc3339};
use crate::auth::people::{self, CredentialError, NewUser, Principal, Role};
use crate::http::{ApiError, AppState};

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
        Allow::Roles(ALL),
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
        Allow::Roles(ALL),
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
        Allow::Roles(ALL),
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
        Allow::Roles(ALL),
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
        Allow::Roles(ALL),
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
        Allow::Roles(ALL),
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
pub async fn guard(State(state): State<Arc<AppState>>, mut req: Request, next: Next) -> Response {
    let path = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_default();
    let method = req.method().as_str().to_string();
    let Some(rule) = ROUTES.iter().find(|r| r.path == path && r.method == method) else {
        // A route without a rule is a bug; refuse rather than serve it unguarded.
        return ApiError::internal(format!("no access rule for {method} {path}")).into_response();
    };
    let token = bearer_or_cookie(req.headers());
    let principal = match &token {
        None => None,
        Some(t) => match people::resolve(&state.school.store, t, state.school.now()).await {
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

/// A JSON body whose rejections are problem documents.
pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(JsonBody(v)),
            Err(e) => Err(ApiError::new(e.status(), "bad-json", e.body_text())),
        }
    }
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

async fn list_h<E: Entity>(
    State(st): State<Arc<AppState>>,
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
    Ok(Json(model::list::<E>(&st.school.store, filter).await?).into_response())
}

async fn get_h<E: Entity>(State(st): State<Arc<AppState>>, Path(id): Path<String>) -> ApiResult {
    Ok(Json(model::get::<E>(&st.school.store, parse_id(&id)?).await?).into_response())
}

async fn create_h<E: Entity>(
    State(st): State<Arc<AppState>>,
    JsonBody(e): JsonBody<E>,
) -> ApiResult {
    e.validate().map_err(ApiError::invalid)?;
    let stored = model::insert(&st.school.store, &e).await?;
    let id = serde_json::to_value(&stored)
        .ok()
        .and_then(|v| v.get("id").and_then(|i| i.as_i64()))
        .unwrap_or(0);
    Ok(created(format!("/api/{}/{id}", plural::<E>()), &stored))
}

async fn update_h<E: Entity>(
    State(st): State<Arc<AppState>>,
    Path(id): Path<String>,
    JsonBody(e): JsonBody<E>,
) -> ApiResult {
    let id = parse_id(&id)?;
    e.validate().map_err(ApiError::invalid)?;
    Ok(Json(model::update(&st.school.store, id, &e).await?).into_response())
}

async fn delete_h<E: Entity>(State(st): State<Arc<AppState>>, Path(id): Path<String>) -> ApiResult {
    model::delete::<E>(&st.school.store, parse_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn entity_routes<E: Entity>(router: Router<Arc<AppState>>) -> Router<Arc<AppState>> {
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

async fn login(State(st): State<Arc<AppState>>, JsonBody(b): JsonBody<LoginBody>) -> ApiResult {
    if b.username.len() > 200 || b.password.len() > 1024 {
        return Err(ApiError::invalid("username or password too long"));
    }
    let now = st.school.now();
    let Some((token, user)) = people::login(
        &st.school.store,
        &b.username,
        &b.password,
        now,
        st.school.session_ttl,
    )
    .await?
    else {
        return Err(ApiError::unauthorized(
            "login-failed",
            "wrong username or password, or the account is disabled",
        ));
    };
    let expires_at = now + st.school.session_ttl;
    let mut r = Json(serde_json::json!({
        "token": token,
        "user": user,
        "expires_at": expires_at,
    }))
    .into_response();
    let cookie = format!(
        "{COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}",
        st.school.session_ttl / 1000
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(r)
}

async fn logout(State(st): State<Arc<AppState>>, headers: HeaderMap) -> ApiResult {
    if let Some(t) = bearer_or_cookie(&headers) {
        if t.starts_with(people::SESSION_PREFIX) {
            people::logout(&st.school.store, &t).await?;
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

async fn users_list(State(st): State<Arc<AppState>>) -> ApiResult {
    Ok(Json(people::list_users(&st.school.store).await?).into_response())
}

async fn users_create(
    State(st): State<Arc<AppState>>,
    JsonBody(u): JsonBody<NewUser>,
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
    let user = people::create_user(&st.school.store, &u, st.school.now()).await?;
    Ok(created(format!("/api/users/{}", user.id), &user))
}

#[derive(Deserialize)]
struct UserPatch {
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    disabled: Option<bool>,
}

async fn users_patch(
    State(st): State<Arc<AppState>>,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<UserPatch>,
) -> ApiResult {
    if b.password.as_ref().is_some_and(|p| p.chars().count() < 8) {
        return Err(ApiError::invalid("password must be at least 8 characters"));
    }
    let u = people::update_user(
        &st.school.store,
        parse_id(&id)?,
        b.password.as_deref(),
        b.disabled,
    )
    .await?;
    Ok(Json(u).into_response())
}

#[derive(Deserialize)]
struct NewDevice {
    label: String,
}

async fn devices_list(State(st): State<Arc<AppState>>, Path(id): Path<String>) -> ApiResult {
    let id = parse_id(&id)?;
    model::get::<Classroom>(&st.school.store, id).await?;
    Ok(Json(people::list_devices(&st.school.store, id).await?).into_response())
}

async fn devices_create(
    State(st): State<Arc<AppState>>,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<NewDevice>,
) -> ApiResult {
    let id = parse_id(&id)?;
    if b.label.trim().is_empty() || b.label.chars().count() > 100 {
        return Err(ApiError::invalid("label must be 1-100 characters"));
    }
    model::get::<Classroom>(&st.school.store, id).await?;
    let (token, d) = people::create_device(&st.school.store, id, &b.label, st.school.now()).await?;
    Ok(created(
        format!("/api/devices/{}", d.id),
        &serde_json::json!({"token": token, "device": d}),
    ))
}

async fn devices_revoke(State(st): State<Arc<AppState>>, Path(id): Path<String>) -> ApiResult {
    let d = people::revoke_device(&st.school.store, parse_id(&id)?, st.school.now()).await?;
    Ok(Json(d).into_response())
}

fn slot_err(e: SlotError) -> ApiError {
    match e {
        SlotError::Invalid(m) => ApiError::invalid(m),
        SlotError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "timetable-conflict", m),
        SlotError::Store(s) => s.into(),
    }
}

async fn slots_list(
    State(st): State<Arc<AppState>>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    let term = q
        .get("term_id")
        .ok_or_else(|| ApiError::bad_request("bad-query", "term_id is required"))?;
    let term = parse_id(term)?;
    let mut conn = st
        .school
        .store
        .pool()
        .acquire()
        .await
        .map_err(crate::store::StoreError::from)?;
    Ok(Json(model::list_slots_in(&mut conn, term, None).await?).into_response())
}

async fn slots_create(State(st): State<Arc<AppState>>, JsonBody(s): JsonBody<Slot>) -> ApiResult {
    let s = model::save_slot(&st.school.store, s, false)
        .await
        .map_err(slot_err)?;
    Ok(created(format!("/api/slots/{}", s.id), &s))
}

async fn slots_get(State(st): State<Arc<AppState>>, Path(id): Path<String>) -> ApiResult {
    Ok(Json(model::get_slot(&st.school.store, parse_id(&id)?).await?).into_response())
}

async fn slots_put(
    State(st): State<Arc<AppState>>,
    Path(id): Path<String>,
    JsonBody(mut s): JsonBody<Slot>,
) -> ApiResult {
    s.id = parse_id(&id)?;
    let s = model::save_slot(&st.school.store, s, true)
        .await
        .map_err(slot_err)?;
    Ok(Json(s).into_response())
}

async fn slots_delete(State(st): State<Arc<AppState>>, Path(id): Path<String>) -> ApiResult {
    model::delete_slot(&st.school.store, parse_id(&id)?).await?;
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

fn view(st: &AppState, l: Lesson) -> LessonView {
    LessonView {
        room: l.room(),
        starts: rfc3339(l.starts_at, st.school.offset),
        ends: rfc3339(l.ends_at, st.school.offset),
        lesson: l,
    }
}

fn day_window(
    st: &AppState,
    from: Option<&String>,
    to: Option<&String>,
) -> Result<(i64, i64), ApiError> {
    let off = st.school.offset;
    let today = millis_to_local(st.school.now(), off).date();
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
    let start = super::time::local_to_millis(from, time::Time::MIDNIGHT, off);
    let end = super::time::local_to_millis(to.next_day().unwrap_or(to), time::Time::MIDNIGHT, off);
    Ok((start, end))
}

fn visible(p: &Principal, l: &Lesson) -> bool {
    match p.classroom_id() {
        Some(c) => l.has_classroom(c),
        None => true,
    }
}

async fn lessons_list(
    State(st): State<Arc<AppState>>,
    Extension(p): Extension<Principal>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    let (from, to) = day_window(&st, q.get("from"), q.get("to"))?;
    let ls = model::lessons_between(&st.school.store, from, to).await?;
    let out: Vec<LessonView> = ls
        .into_iter()
        .filter(|l| visible(&p, l))
        .map(|l| view(&st, l))
        .collect();
    Ok(Json(out).into_response())
}

fn own_lesson(p: &Principal, l: &Lesson) -> Result<(), ApiError> {
    match p.role() {
        Role::Admin => Ok(()),
        Role::Teacher if p.teacher_id() == Some(l.hub_teacher_id) => Ok(()),
        _ => Err(ApiError::forbidden(
            "not-your-lesson",
            format!("only lesson {}'s hub teacher or an admin may do this", l.id),
        )),
    }
}

async fn lessons_create(
    State(st): State<Arc<AppState>>,
    Extension(p): Extension<Principal>,
    JsonBody(mut l): JsonBody<Lesson>,
) -> ApiResult {
    l.slot_id = None;
    l.lesson_date = None;
    l.ended_at = None;
    l.state = LessonState::Scheduled;
    l.validate().map_err(ApiError::invalid)?;
    own_lesson(&p, &l)?;
    let stored = model::insert_lesson(&st.school.store, &l).await?;
    st.school.poke.notify_one();
    Ok(created(
        format!("/api/lessons/{}", stored.id),
        &view(&st, stored),
    ))
}

#[derive(Deserialize)]
struct DateRange {
    from: String,
    to: String,
}

async fn lessons_generate(
    State(st): State<Arc<AppState>>,
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
    let n = model::generate_lessons(&st.school.store, from, to, st.school.offset).await?;
    st.school.poke.notify_one();
    Ok(
        Json(serde_json::json!({"created": n, "from": fmt_date(from), "to": fmt_date(to)}))
            .into_response(),
    )
}

async fn lesson_for(st: &AppState, p: &Principal, id: &str) -> Result<Lesson, ApiError> {
    let l = model::get_lesson(&st.school.store, parse_id(id)?).await?;
    if !visible(p, &l) {
        return Err(ApiError::forbidden(
            "not-in-lesson",
            format!("this classroom is not part of lesson {}", l.id),
        ));
    }
    Ok(l)
}

async fn lessons_get(
    State(st): State<Arc<AppState>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult {
    let l = lesson_for(&st, &p, &id).await?;
    Ok(Json(view(&st, l)).into_response())
}

async fn lessons_join(
    State(st): State<Arc<AppState>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult {
    let l = model::get_lesson(&st.school.store, parse_id(&id)?).await?;
    let g = policy::decide(&st.school, &p, &l).await?;
    let now = st.school.now();
    policy::check_window(&st.school, &l, now)?;
    let claims = policy::claims_for(&st.school, &l, &g, now);
    let token = st.keys.mint_claims(&claims);
    let room = l.room();
    Ok(Json(serde_json::json!({
        "lesson": l.id,
        "mode": l.mode,
        "state": l.state_at(now, st.school.open_before, st.school.grace),
        "room": room,
        "part": g.part,
        "publish": g.publish,
        "needs_speak_grant": g.needs_speak_grant,
        "token": token,
        "whip": format!("/whip/{room}"),
        "whep": format!("/whep/{room}"),
        "events": format!("/api/lessons/{}/events", l.id),
        "hub_classroom_id": l.hub_classroom_id,
        "spotlight": st.school.live.spotlit(l.id),
    }))
    .into_response())
}

async fn lessons_end(
    State(st): State<Arc<AppState>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult {
    let l = model::get_lesson(&st.school.store, parse_id(&id)?).await?;
    own_lesson(&p, &l)?;
    let now = st.school.now();
    if l.state_at(now, st.school.open_before, st.school.grace) == LessonState::Ended {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "lesson-ended",
            format!("lesson {} has already ended", l.id),
        ));
    }
    model::set_lesson_state(&st.school.store, l.id, LessonState::Ended, Some(now)).await?;
    st.school.live.emit(
        l.id,
        "state",
        now,
        serde_json::json!({"state": "ended", "lesson": l.id, "by": p.ident()}),
    );
    super::scheduler::end_room(&st, l.id).await;
    let l = model::get_lesson(&st.school.store, l.id).await?;
    Ok(Json(view(&st, l)).into_response())
}

#[derive(Deserialize)]
struct HandBody {
    raised: bool,
}

async fn lessons_hand(
    State(st): State<Arc<AppState>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<HandBody>,
) -> ApiResult {
    let l = lesson_for(&st, &p, &id).await?;
    policy::check_window(&st.school, &l, st.school.now())?;
    let c = p.classroom_id().unwrap_or_default();
    st.school.live.hand(l.id, c, b.raised, st.school.now());
    Ok(Json(st.school.live.snapshot(l.id)).into_response())
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
    State(st): State<Arc<AppState>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<SpeakBody>,
) -> ApiResult {
    let l = model::get_lesson(&st.school.store, parse_id(&id)?).await?;
    own_lesson(&p, &l)?;
    if l.mode != LessonMode::Master {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "wrong-mode",
            "speak grants apply to 名师课堂 (master) lessons; other modes let sites publish",
        ));
    }
    site_of(&l, b.classroom_id)?;
    policy::check_window(&st.school, &l, st.school.now())?;
    st.school
        .live
        .speak(l.id, b.classroom_id, b.granted, st.school.now());
    if !b.granted {
        // The grant is checked at WHIP time; a revoke also ends what is being sent.
        let part = policy::classroom_part(b.classroom_id);
        crate::signal::kick(&st, &l.room(), |s| {
            s.role == crate::sfu::Role::Publisher && s.part.as_deref() == Some(part.as_str())
        })
        .await;
    }
    Ok(Json(st.school.live.snapshot(l.id)).into_response())
}

#[derive(Deserialize)]
struct SpotlightBody {
    classroom_id: Option<i64>,
}

async fn lessons_spotlight(
    State(st): State<Arc<AppState>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<SpotlightBody>,
) -> ApiResult {
    let l = model::get_lesson(&st.school.store, parse_id(&id)?).await?;
    own_lesson(&p, &l)?;
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
    policy::check_window(&st.school, &l, st.school.now())?;
    if st
        .school
        .live
        .spotlight(l.id, b.classroom_id, st.school.now())
    {
        crate::signal::set_spotlight(&st, &l.room(), b.classroom_id.map(policy::classroom_part));
    }
    Ok(Json(st.school.live.snapshot(l.id)).into_response())
}

async fn lessons_live(
    State(st): State<Arc<AppState>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult {
    let l = lesson_for(&st, &p, &id).await?;
    Ok(Json(st.school.live.snapshot(l.id)).into_response())
}

fn sse_of(ev: &super::live::Event) -> SseEvent {
    SseEvent::default()
        .id(ev.seq.to_string())
        .event(ev.kind)
        .data(serde_json::to_string(ev).unwrap_or_default())
}

async fn lessons_events(
    State(st): State<Arc<AppState>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    let l = lesson_for(&st, &p, &id).await?;
    let last = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(|s| s.to_string())
        .or_else(|| q.get("last_event_id").cloned())
        .and_then(|s| s.trim().parse::<u64>().ok());
    let sub = st.school.live.subscribe(l.id, last);
    let mut first: Vec<SseEvent> = Vec::new();
    let mut seen = last.unwrap_or(0);
    if let Some(snap) = &sub.resync {
        seen = snap.seq;
        first.push(
            SseEvent::default()
                .id(snap.seq.to_string())
                .event("resync")
                .data(serde_json::to_string(&serde_json::json!({
                    "seq": snap.seq,
                    "kind": "resync",
                    "data": {
                        "live": snap,
                        "state": l.state_at(st.school.now(), st.school.open_before, st.school.grace),
                    }
                })).unwrap_or_default()),
        );
    }
    for ev in &sub.missed {
        seen = ev.seq;
        first.push(sse_of(ev));
    }
    let live = Arc::clone(&st);
    let lesson = l.id;
    let head = futures_util::stream::iter(first.into_iter().map(Ok::<_, std::convert::Infallible>));
    let tail = futures_util::stream::unfold(
        (sub.rx, seen, live),
        move |(mut rx, mut seen, st)| async move {
            loop {
                match rx.recv().await {
                    Ok(ev) if ev.seq <= seen => continue,
                    Ok(ev) => {
                        seen = ev.seq;
                        return Some((Ok(sse_of(&ev)), (rx, seen, st)));
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        // Too slow to follow: send the whole picture and carry on from it.
                        let snap = st.school.live.snapshot(lesson);
                        seen = snap.seq;
                        let e = SseEvent::default()
                        .id(snap.seq.to_string())
                        .event("resync")
                        .data(serde_json::to_string(&serde_json::json!({"seq": snap.seq, "kind": "resync", "data": {"live": snap}})).unwrap_or_default());
                        return Some((Ok(e), (rx, seen, st)));
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                }
            }
        },
    );
    use futures_util::StreamExt;
    Ok(Sse::new(head.chain(tail))
        .keep_alive(KeepAlive::new().interval(std::time::Duration::from_secs(15)))
        .into_response())
}

async fn today(State(st): State<Arc<AppState>>, Extension(p): Extension<Principal>) -> ApiResult {
    let (from, to) = day_window(&st, None, None)?;
    let now = st.school.now();
    let mine = |l: &Lesson| match &p {
        Principal::Device { classroom_id, .. } => l.has_classroom(*classroom_id),
        Principal::User {
            teacher_id: Some(t),
            role: Role::Teacher,
            ..
        } => l.hub_teacher_id == *t || l.sites.iter().any(|s| s.assisting_teacher_id == Some(*t)),
        _ => true,
    };
    let ls: Vec<Lesson> = model::lessons_between(&st.school.store, from, to)
        .await?
        .into_iter()
        .filter(|l| mine(l))
        .collect();
    let state = |l: &Lesson| l.state_at(now, st.school.open_before, st.school.grace);
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
        "date": fmt_date(millis_to_local(now, st.school.offset).date()),
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
    State(st): State<Arc<AppState>>,
    method: Method,
    matched: MatchedPath,
    Query(q): Query<HashMap<String, String>>,
    body: axum::body::Body,
) -> ApiResult {
    super::csvio::handle(&st, method, matched.as_str(), &q, body).await
}

/// The `/api` router (with the guard applied).
pub fn router(state: Arc<AppState>) -> Router<Arc<AppState>> {
    let mut r: Router<Arc<AppState>> = Router::new()
        .route("/api/openapi.json", get(openapi_doc))
        .route("/api/login", post(login))
        .route("/api/logout", post(logout))
        .route("/api/me", get(me))
        .route("/api/users", get(users_list).post(users_create))
        .route("/api/users/{id}", axum::routing::patch(users_patch))
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
        .route("/api/lessons/{id}", get(lessons_get))
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
