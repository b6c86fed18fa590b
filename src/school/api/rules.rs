//! The access table of the school API: every route with who may call it ([`ROUTES`]), and the
//! guard that resolves the caller and applies the route's rule before any handler runs. Must
//! never let a request through to a handler without a rule.

#[allow(unused_imports)]
use super::*;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Allow {
    /// Anybody, signed in or not.
    Anyone,
    /// These roles.
    Roles(&'static [Role]),
}

/// One API route and its rule.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RouteRule {
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
}

pub(super) const ALL: &[Role] = &Role::ALL;
pub(super) const ADMIN: &[Role] = &[Role::Admin];
pub(super) const PEOPLE: &[Role] = &[Role::Admin, Role::Teacher, Role::Observer, Role::Inspector];
pub(super) const STAFF: &[Role] = &[Role::Admin, Role::Teacher];
pub(super) const DEVICE: &[Role] = &[Role::Classroom];
/// Who reads reports and patrols (issue 22 items 6 and 7): administrators and inspectors
/// (督导), each in their scope.
pub(super) const OVERSEERS: &[Role] = &[Role::Admin, Role::Inspector];
/// Who may list and play recordings (inspectors only through an inspection round's blinded
/// assignment, devices never).
pub(super) const RECORDING_VIEWERS: &[Role] = &[Role::Admin, Role::Teacher, Role::Observer];

macro_rules! route_rule {
    ($m:literal, $p:literal, $a:expr, $tag:literal, $s:literal $(,)?) => {
        RouteRule {
            method: $m,
            path: $p,
            allow: $a,
            summary: $s,
            tag: $tag,
        }
    };
}

/// Every `/api` route with its rule.
pub(crate) const ROUTES: &[RouteRule] = &[
    route_rule!(
        "GET",
        "/api/openapi.json",
        Allow::Anyone,
        "meta",
        "This document",
    ),
    route_rule!(
        "POST",
        "/api/login",
        Allow::Anyone,
        "auth",
        "Log in with username and password; sets the session cookie",
    ),
    route_rule!(
        "POST",
        "/api/logout",
        Allow::Roles(ALL),
        "auth",
        "End the current login session",
    ),
    route_rule!(
        "GET",
        "/api/me",
        Allow::Roles(ALL),
        "auth",
        "Who the caller is",
    ),
    route_rule!(
        "GET",
        "/api/users",
        Allow::Roles(ADMIN),
        "people",
        "List users",
    ),
    route_rule!(
        "POST",
        "/api/users",
        Allow::Roles(ADMIN),
        "people",
        "Create a user",
    ),
    route_rule!(
        "GET",
        "/api/users.csv",
        Allow::Roles(ADMIN),
        "people",
        "The users inside the caller's scope, with their scopes, as CSV (no passwords)",
    ),
    route_rule!(
        "POST",
        "/api/users/import",
        Allow::Roles(ADMIN),
        "people",
        "Create and update users (and their scopes) from CSV; new users' first passwords are in the answer",
    ),
    route_rule!(
        "PATCH",
        "/api/users/{id}",
        Allow::Roles(ADMIN),
        "people",
        "Set a user's password, role or scope, or disable them (inside the caller's scope; the last admin over a scope keeps the role)",
    ),
    route_rule!(
        "DELETE",
        "/api/users/{id}",
        Allow::Roles(ADMIN),
        "people",
        "Delete a user inside the caller's scope (not themselves; one with observations or reviews is disabled instead)",
    ),
    // The kiosk link's QR code (issue 22 item 1).
    route_rule!(
        "POST",
        "/api/qr.svg",
        Allow::Roles(ADMIN),
        "people",
        "Draw a QR code of the text given (the kiosk link) as SVG; no object: nothing is stored or looked up",
    ),
    route_rule!(
        "GET",
        "/api/classrooms/{id}/devices",
        Allow::Roles(ADMIN),
        "people",
        "A classroom's device tokens",
    ),
    route_rule!(
        "POST",
        "/api/classrooms/{id}/devices",
        Allow::Roles(ADMIN),
        "people",
        "Issue a device token (the secret is shown once)",
    ),
    route_rule!(
        "DELETE",
        "/api/devices/{id}",
        Allow::Roles(ADMIN),
        "people",
        "Revoke a device token",
    ),
    // Device labels (issue 22 item 1): an admin over the device's classroom's school.
    route_rule!(
        "PATCH",
        "/api/devices/{id}",
        Allow::Roles(ADMIN),
        "people",
        "Relabel a device token (an admin over its classroom's school)",
    ),
    route_rule!(
        "GET",
        "/api/regions",
        Allow::Roles(PEOPLE),
        "schools",
        "List regions",
    ),
    route_rule!(
        "POST",
        "/api/regions",
        Allow::Roles(ADMIN),
        "schools",
        "Create a region",
    ),
    route_rule!(
        "GET",
        "/api/regions/{id}",
        Allow::Roles(PEOPLE),
        "schools",
        "One region",
    ),
    route_rule!(
        "PUT",
        "/api/regions/{id}",
        Allow::Roles(ADMIN),
        "schools",
        "Replace a region",
    ),
    route_rule!(
        "DELETE",
        "/api/regions/{id}",
        Allow::Roles(ADMIN),
        "schools",
        "Delete a region",
    ),
    route_rule!(
        "GET",
        "/api/schools",
        Allow::Roles(PEOPLE),
        "schools",
        "List schools",
    ),
    route_rule!(
        "POST",
        "/api/schools",
        Allow::Roles(ADMIN),
        "schools",
        "Create a school",
    ),
    route_rule!(
        "GET",
        "/api/schools/{id}",
        Allow::Roles(PEOPLE),
        "schools",
        "One school",
    ),
    route_rule!(
        "PUT",
        "/api/schools/{id}",
        Allow::Roles(ADMIN),
        "schools",
        "Replace a school",
    ),
    route_rule!(
        "DELETE",
        "/api/schools/{id}",
        Allow::Roles(ADMIN),
        "schools",
        "Delete a school",
    ),
    route_rule!(
        "GET",
        "/api/classrooms",
        Allow::Roles(ALL),
        "schools",
        "List classrooms (?school_id=)",
    ),
    route_rule!(
        "POST",
        "/api/classrooms",
        Allow::Roles(ADMIN),
        "schools",
        "Create a classroom",
    ),
    route_rule!(
        "GET",
        "/api/classrooms/{id}",
        Allow::Roles(ALL),
        "schools",
        "One classroom",
    ),
    route_rule!(
        "PUT",
        "/api/classrooms/{id}",
        Allow::Roles(ADMIN),
        "schools",
        "Replace a classroom",
    ),
    route_rule!(
        "DELETE",
        "/api/classrooms/{id}",
        Allow::Roles(ADMIN),
        "schools",
        "Delete a classroom",
    ),
    route_rule!(
        "GET",
        "/api/teachers",
        Allow::Roles(PEOPLE),
        "schools",
        "List teachers (?school_id=)",
    ),
    route_rule!(
        "POST",
        "/api/teachers",
        Allow::Roles(ADMIN),
        "schools",
        "Create a teacher",
    ),
    route_rule!(
        "GET",
        "/api/teachers/{id}",
        Allow::Roles(PEOPLE),
        "schools",
        "One teacher",
    ),
    route_rule!(
        "PUT",
        "/api/teachers/{id}",
        Allow::Roles(ADMIN),
        "schools",
        "Replace a teacher",
    ),
    route_rule!(
        "DELETE",
        "/api/teachers/{id}",
        Allow::Roles(ADMIN),
        "schools",
        "Delete a teacher",
    ),
    route_rule!(
        "GET",
        "/api/pairings",
        Allow::Roles(PEOPLE),
        "timetable",
        "List pairings",
    ),
    route_rule!(
        "POST",
        "/api/pairings",
        Allow::Roles(ADMIN),
        "timetable",
        "Create a pairing",
    ),
    route_rule!(
        "GET",
        "/api/pairings/{id}",
        Allow::Roles(PEOPLE),
        "timetable",
        "One pairing",
    ),
    route_rule!(
        "PUT",
        "/api/pairings/{id}",
        Allow::Roles(ADMIN),
        "timetable",
        "Replace a pairing",
    ),
    route_rule!(
        "DELETE",
        "/api/pairings/{id}",
        Allow::Roles(ADMIN),
        "timetable",
        "Delete a pairing",
    ),
    route_rule!(
        "GET",
        "/api/pairings.csv",
        Allow::Roles(ADMIN),
        "timetable",
        "Export pairings as CSV",
    ),
    route_rule!(
        "POST",
        "/api/pairings/import",
        Allow::Roles(ADMIN),
        "timetable",
        "Import pairings from CSV or .xlsx (all rows or none; both schools of each row inside the caller's scope)",
    ),
    route_rule!(
        "GET",
        "/api/terms",
        Allow::Roles(PEOPLE),
        "timetable",
        "List terms",
    ),
    route_rule!(
        "POST",
        "/api/terms",
        Allow::Roles(ADMIN),
        "timetable",
        "Create a term",
    ),
    route_rule!(
        "GET",
        "/api/terms/{id}",
        Allow::Roles(PEOPLE),
        "timetable",
        "One term",
    ),
    route_rule!(
        "PUT",
        "/api/terms/{id}",
        Allow::Roles(ADMIN),
        "timetable",
        "Replace a term",
    ),
    route_rule!(
        "DELETE",
        "/api/terms/{id}",
        Allow::Roles(ADMIN),
        "timetable",
        "Delete a term",
    ),
    route_rule!(
        "GET",
        "/api/slots",
        Allow::Roles(PEOPLE),
        "timetable",
        "Timetable slots of a term (?term_id=)",
    ),
    route_rule!(
        "POST",
        "/api/slots",
        Allow::Roles(ADMIN),
        "timetable",
        "Add a slot (conflicts are refused, naming the clashing slot)",
    ),
    route_rule!(
        "GET",
        "/api/slots/{id}",
        Allow::Roles(PEOPLE),
        "timetable",
        "One slot",
    ),
    route_rule!(
        "PUT",
        "/api/slots/{id}",
        Allow::Roles(ADMIN),
        "timetable",
        "Replace a slot",
    ),
    route_rule!(
        "DELETE",
        "/api/slots/{id}",
        Allow::Roles(ADMIN),
        "timetable",
        "Delete a slot",
    ),
    route_rule!(
        "GET",
        "/api/timetable.csv",
        Allow::Roles(ADMIN),
        "timetable",
        "Export a term's timetable as CSV (?term_id=)",
    ),
    route_rule!(
        "POST",
        "/api/timetable/import",
        Allow::Roles(ADMIN),
        "timetable",
        "Import timetable slots from CSV or .xlsx (all rows or none; each slot inside the caller's scope)",
    ),
    // Spreadsheets (issue 22 item 2): any admin imports; each row is refused outside their
    // scope (the object-level rule of the row's single-item route, applied per row).
    route_rule!(
        "POST",
        "/api/schools/import",
        Allow::Roles(ADMIN),
        "schools",
        "Import schools from CSV or .xlsx (all rows or none; rows outside the caller's scope are refused per row)",
    ),
    route_rule!(
        "POST",
        "/api/classrooms/import",
        Allow::Roles(ADMIN),
        "schools",
        "Import classrooms from CSV or .xlsx (all rows or none; rows outside the caller's scope are refused per row)",
    ),
    route_rule!(
        "POST",
        "/api/teachers/import",
        Allow::Roles(ADMIN),
        "schools",
        "Import teachers from CSV or .xlsx (all rows or none; rows outside the caller's scope are refused per row)",
    ),
    route_rule!(
        "GET",
        "/api/templates/{file}",
        Allow::Roles(ADMIN),
        "schools",
        "An empty import template with Chinese headers: {importer}.csv (UTF-8 BOM) or {importer}.xlsx",
    ),
    route_rule!(
        "GET",
        "/api/lessons",
        Allow::Roles(ALL),
        "lessons",
        "Lessons in a window (?from=&to= dates, default today)",
    ),
    route_rule!(
        "POST",
        "/api/lessons",
        Allow::Roles(STAFF),
        "lessons",
        "Create an ad hoc lesson",
    ),
    route_rule!(
        "POST",
        "/api/lessons/generate",
        Allow::Roles(ADMIN),
        "lessons",
        "Make the lessons of a date range from the timetable (only the slots whose hub school lies in the caller's scope)",
    ),
    route_rule!(
        "GET",
        "/api/lessons/{id}",
        Allow::Roles(ALL),
        "lessons",
        "One lesson",
    ),
    route_rule!(
        "PUT",
        "/api/lessons/{id}",
        Allow::Roles(STAFF),
        "lessons",
        "Change a lesson that has not opened yet (its hub teacher or an admin over its hub school; audited)",
    ),
    route_rule!(
        "DELETE",
        "/api/lessons/{id}",
        Allow::Roles(STAFF),
        "lessons",
        "Delete a lesson that has not opened yet (its hub teacher or an admin over its hub school; audited)",
    ),
    route_rule!(
        "POST",
        "/api/lessons/{id}/join",
        Allow::Roles(ALL),
        "lessons",
        "Join: get the media token and endpoints this caller may use",
    ),
    route_rule!(
        "POST",
        "/api/lessons/{id}/end",
        Allow::Roles(STAFF),
        "lessons",
        "End the lesson now (its hub teacher or an admin)",
    ),
    route_rule!(
        "POST",
        "/api/lessons/{id}/recording",
        Allow::Roles(STAFF),
        "lessons",
        "Start or stop recording the lesson (its hub teacher or an admin over its hub school)",
    ),
    // Exports (issue 20 item 4).
    route_rule!(
        "POST",
        "/api/lessons/{id}/exports",
        Allow::Roles(STAFF),
        "lessons",
        "Export one of the lesson's recordings as MP4: showcase, premium or composite (its hub teacher or an admin over its hub school; a background job)",
    ),
    route_rule!(
        "GET",
        "/api/lessons/{id}/exports",
        Allow::Roles(STAFF),
        "lessons",
        "The lesson's export jobs: state, progress, files, the reason of a failure (its hub teacher or an admin over its hub school)",
    ),
    route_rule!(
        "POST",
        "/api/lessons/{id}/hand",
        Allow::Roles(DEVICE),
        "lessons",
        "Raise or lower the classroom's hand",
    ),
    route_rule!(
        "POST",
        "/api/lessons/{id}/speak",
        Allow::Roles(STAFF),
        "lessons",
        "Grant or revoke speaking for a classroom (名师课堂)",
    ),
    route_rule!(
        "POST",
        "/api/lessons/{id}/spotlight",
        Allow::Roles(STAFF),
        "lessons",
        "Put a classroom on everyone's big screen, or nobody (同步课堂)",
    ),
    route_rule!(
        "GET",
        "/api/lessons/{id}/live",
        Allow::Roles(ALL),
        "lessons",
        "Hands, speakers, spotlight, who is connected and their link quality",
    ),
    route_rule!(
        "GET",
        "/api/lessons/{id}/events",
        Allow::Roles(ALL),
        "lessons",
        "Server-sent events of the lesson (joined, left, published, unpublished, hand, speak, \
         spotlight, state, quality, weak_network; see LessonEvent); resumes from Last-Event-ID",
    ),
    // The teacher console and attendance (issue 22 items 3 and 8).
    route_rule!(
        "POST",
        "/api/lessons/{id}/mute",
        Allow::Roles(STAFF),
        "lessons",
        "Mute or unmute one site's microphone, or every site's (its hub teacher or an admin over its hub school)",
    ),
    route_rule!(
        "POST",
        "/api/lessons/{id}/lower-hand",
        Allow::Roles(STAFF),
        "lessons",
        "Lower (acknowledge) a site's raised hand, in any mode (its hub teacher or an admin over its hub school)",
    ),
    route_rule!(
        "GET",
        "/api/lessons/{id}/attendance",
        Allow::Roles(PEOPLE),
        "lessons",
        "Attendance by classroom: each site's stays, time present and whether it came (到课), never people",
    ),
    // Recordings (issue 20 item 3); the object rule is `access::may_see_recording`.
    route_rule!(
        "GET",
        "/api/recordings",
        Allow::Roles(RECORDING_VIEWERS),
        "recordings",
        "Recordings the caller may see, by lesson, teacher, school and date (paged)",
    ),
    route_rule!(
        "GET",
        "/api/recordings/{id}",
        Allow::Roles(RECORDING_VIEWERS),
        "recordings",
        "One recording: its lesson's metadata (subject, grade, textbook, chapter, teacher, paired schools) and its playable sources",
    ),
    route_rule!(
        "GET",
        "/api/recordings/{id}/manifest",
        Allow::Roles(RECORDING_VIEWERS),
        "recordings",
        "A processed recording's manifest.json",
    ),
    route_rule!(
        "GET",
        "/api/recordings/{id}/files/{file}",
        Allow::Roles(RECORDING_VIEWERS),
        "recordings",
        "Play (HTTP range requests) or download (?download=1) one source file of a recording",
    ),
    // Reports, lesson cancellation and the patrol wall (issue 22 items 6 and 7); the object
    // rules: reports and the wall hold the lessons the caller may watch, site and school rows
    // only of schools their scope covers; cancelling is `access::may_run`.
    route_rule!(
        "GET",
        "/api/reports",
        Allow::Roles(OVERSEERS),
        "reports",
        "开课率, 到课率, minutes taught and link quality by week or term, over the lessons in the caller's scope",
    ),
    route_rule!(
        "GET",
        "/api/reports.csv",
        Allow::Roles(OVERSEERS),
        "reports",
        "One table of the report as CSV (UTF-8 with BOM, Chinese headers)",
    ),
    route_rule!(
        "POST",
        "/api/lessons/{id}/cancel",
        Allow::Roles(STAFF),
        "lessons",
        "Cancel a lesson before its bell (its hub teacher or an admin over its hub school; audited; the reports count it as cancelled)",
    ),
    route_rule!(
        "GET",
        "/api/patrol",
        Allow::Roles(OVERSEERS),
        "lessons",
        "The lessons open or live now in the caller's scope, for the 巡课 wall",
    ),
    route_rule!(
        "POST",
        "/api/lessons/{id}/patrol",
        Allow::Roles(OVERSEERS),
        "lessons",
        "A watch-only media token for the 巡课 wall: the watcher is neither seen, heard nor listed as present",
    ),
    // Link reports per classroom per lesson (issue 19 item 6); the object rules: a page
    // posts only its own participant's figures (a classroom of the lesson or its hub
    // teacher), the report is read by the people who may watch the lesson.
    route_rule!(
        "POST",
        "/api/lessons/{id}/link-stats",
        Allow::Roles(&[Role::Teacher, Role::Classroom]),
        "lessons",
        "A participant's page reports its own getStats figures (frames, freezes, audio concealment, bytes) for the lesson's link report",
    ),
    route_rule!(
        "GET",
        "/api/lessons/{id}/link-report",
        Allow::Roles(PEOPLE),
        "lessons",
        "Each classroom's link over the lesson: bitrate, loss, RTT, jitter, time per layer and audio only, frame rate, freezes, audio concealment",
    ),
    route_rule!(
        "GET",
        "/api/lessons/{id}/link-report.csv",
        Allow::Roles(PEOPLE),
        "lessons",
        "The lesson's link report as CSV (UTF-8 with BOM, Chinese headers)",
    ),
    route_rule!(
        "GET",
        "/api/recordings/{id}/events",
        Allow::Roles(RECORDING_VIEWERS),
        "recordings",
        "Server-sent events of the recording's processing (processing, ready, failed): a page shows it playable without a reload",
    ),
    // A recording's files as one zip (issue 20, recfin); the object rule is
    // `access::may_see_recording`, as for each file.
    route_rule!(
        "GET",
        "/api/recordings/{id}/download.zip",
        Allow::Roles(RECORDING_VIEWERS),
        "recordings",
        "Every processed file of a recording plus its manifest.json as one zip (stored entries, streamed)",
    ),
    route_rule!(
        "GET",
        "/api/today",
        Allow::Roles(ALL),
        "lessons",
        "What is on now and next for the caller",
    ),
];

/// The login session cookie.
pub(crate) const COOKIE: &str = "cr_session";

pub(super) fn bearer_or_cookie(h: &HeaderMap) -> Option<String> {
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

/// A router from a table of `(method, path)` pairs, each with the handler `handler` gives for
/// it, merged by path. Only the table's entries are routed, so a route without an entry cannot
/// exist; an entry without a handler stops the start (a programming error, found by every
/// test that builds the app).
pub(crate) fn route_table<S: Clone + Send + Sync + 'static>(
    table: impl IntoIterator<Item = (&'static str, &'static str)>,
    mut handler: impl FnMut(&str, &str) -> Option<axum::routing::MethodRouter<S>>,
) -> Router<S> {
    let mut by_path: Vec<(&'static str, axum::routing::MethodRouter<S>)> = Vec::new();
    for (method, path) in table {
        let h = handler(method, path).unwrap_or_else(|| panic!("no handler for {method} {path}"));
        match by_path.iter_mut().find(|(p, _)| *p == path) {
            Some((_, m)) => *m = std::mem::take(m).merge(h),
            None => by_path.push((path, h)),
        }
    }
    by_path
        .into_iter()
        .fold(Router::new(), |r, (path, m)| r.route(path, m))
}

/// An area's router from its own table of [`RouteRule`]s ([`route_table`]) behind
/// [`guard_routes`] over the same table: the observation and record APIs are built this way.
pub(crate) fn guarded_table(
    table: &'static [RouteRule],
    handler: impl FnMut(&str, &str) -> Option<axum::routing::MethodRouter<Arc<SchoolState>>>,
    state: Arc<SchoolState>,
) -> Router<Arc<SchoolState>> {
    route_table(table.iter().map(|r| (r.method, r.path)), handler).route_layer(
        axum::middleware::from_fn_with_state(
            state,
            move |State(st): State<Arc<SchoolState>>, req, next| async move {
                guard_routes(table, &st, req, next).await
            },
        ),
    )
}

/// Resolves the caller and applies the route's rule; puts the [`Principal`] in the request.
pub(crate) async fn guard(
    State(state): State<Arc<SchoolState>>,
    req: Request,
    next: Next,
) -> Response {
    guard_routes(ROUTES, &state, req, next).await
}

/// [`guard`] over another area's route table (the observation API keeps its own table of
/// [`RouteRule`]s, under the same rules and the same guard).
pub(crate) async fn guard_routes(
    routes: &'static [RouteRule],
    state: &SchoolState,
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
    let Some(rule) = routes
        .iter()
        .find(|r| r.path == path && r.method == rule_method)
    else {
        let allow: Vec<&str> = routes
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
