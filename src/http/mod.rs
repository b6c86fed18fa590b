//! The HTTP edge: router assembly, shared state, the embedded pages, health and metrics.
//!
//! `app(state)` builds the whole `Router`, so tests can drive it directly; `Server` in the crate
//! root binds it with [`serve::serve`] (timeouts, connection limit, TLS). Every error leaves as
//! `application/problem+json` (see [`crate::problem`]); [`edge`] and [`proxy`] wrap every request.

pub mod edge;
pub mod proxy;
pub mod serve;

use std::sync::Arc;

use axum::extract::{FromRef, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::auth::TokenKeys;
use crate::config::Config;
use crate::media::Media;
use crate::metrics::Metrics;
use crate::problem::ApiError;
use crate::school::SchoolState;
use crate::sfu::Sfu;
use crate::signal::{self, SignalState};
use crate::store::Store;
use crate::time::Clock;

/// The whole server state; only this module (router assembly) sees all of it. Handlers take
/// their area's part through [`FromRef`]: `State<Arc<SignalState>>` for WHIP/WHEP,
/// `State<Arc<SchoolState>>` for the school API. Cloning it clones handles.
#[derive(Clone)]
pub struct AppState {
    /// The configuration in force.
    pub config: Arc<Config>,
    /// Token signing keys.
    pub keys: TokenKeys,
    /// Metrics registry and handles.
    pub metrics: Metrics,
    /// The media workers and the live WHIP/WHEP sessions.
    pub media: Arc<Media>,
    /// What the WHIP/WHEP handlers need.
    pub signal: Arc<SignalState>,
    /// Schools, timetable, lessons.
    pub school: Arc<SchoolState>,
    /// The HTTP edge's settings (deadline, origins, trusted proxies), from `config.http`.
    pub edge: Arc<edge::EdgeSettings>,
}

impl AppState {
    /// Assembles the state: the media service over `sfu`, the school side listening to its
    /// session events, and signalling asking the school side for admission.
    pub fn new(
        config: Config,
        keys: TokenKeys,
        sfu: Sfu,
        metrics: Metrics,
        store: Store,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let media = Arc::new(Media::new(sfu, metrics.clone(), config.media.clone()));
        let school = Arc::new(SchoolState::new(
            &config,
            store,
            clock,
            keys.clone(),
            metrics.clone(),
            media.clone(),
        ));
        school.listen_to_sessions();
        let signal = Arc::new(SignalState {
            config: config.clone(),
            keys: keys.clone(),
            metrics: metrics.clone(),
            media: media.clone(),
            admission: school.clone(),
            // Config::load validated `[turn]` (the secret file was read then).
            turn: crate::auth::turn::TurnMinter::from_config(&config.turn).unwrap_or_else(|e| {
                tracing::error!("TURN credentials off: {e}");
                None
            }),
        });
        AppState {
            edge: Arc::new(edge::EdgeSettings::new(&config)),
            config: Arc::new(config),
            keys,
            metrics,
            media,
            signal,
            school,
        }
    }
}

impl FromRef<AppState> for Arc<SignalState> {
    fn from_ref(s: &AppState) -> Self {
        s.signal.clone()
    }
}

impl FromRef<AppState> for Arc<SchoolState> {
    fn from_ref(s: &AppState) -> Self {
        s.school.clone()
    }
}

/// The page assets, embedded so the binary is self-contained: (path, content type, body).
pub const PAGES: &[(&str, &str, &str)] = &[
    (
        "/publish",
        "text/html; charset=utf-8",
        include_str!("../../web/publish.html"),
    ),
    (
        "/watch",
        "text/html; charset=utf-8",
        include_str!("../../web/watch.html"),
    ),
    (
        "/login",
        "text/html; charset=utf-8",
        include_str!("../../web/login.html"),
    ),
    (
        "/today",
        "text/html; charset=utf-8",
        include_str!("../../web/today.html"),
    ),
    (
        "/teach",
        "text/html; charset=utf-8",
        include_str!("../../web/teach.html"),
    ),
    (
        "/classroom",
        "text/html; charset=utf-8",
        include_str!("../../web/classroom.html"),
    ),
    (
        "/admin",
        "text/html; charset=utf-8",
        include_str!("../../web/admin.html"),
    ),
    (
        "/whip.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web/whip.js"),
    ),
    (
        "/app.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web/app.js"),
    ),
    (
        "/teach.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web/teach.js"),
    ),
    (
        "/classroom.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web/classroom.js"),
    ),
    (
        "/admin.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web/admin.js"),
    ),
    (
        "/style.css",
        "text/css; charset=utf-8",
        include_str!("../../web/style.css"),
    ),
    // The observer's workspace (issue 21).
    (
        "/observe",
        "text/html; charset=utf-8",
        include_str!("../../web/observe.html"),
    ),
    (
        "/observe.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web/observe.js"),
    ),
    (
        "/observe.css",
        "text/css; charset=utf-8",
        include_str!("../../web/observe.css"),
    ),
    // The teacher record page (issue 21 item 5).
    (
        "/record",
        "text/html; charset=utf-8",
        include_str!("../../web/record.html"),
    ),
    (
        "/record.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web/record.js"),
    ),
    (
        "/record.css",
        "text/css; charset=utf-8",
        include_str!("../../web/record.css"),
    ),
    // The sampling-inspection dashboard (抽检, issue 21 item 6).
    (
        "/inspect",
        "text/html; charset=utf-8",
        include_str!("../../web/inspect.html"),
    ),
    (
        "/inspect.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web/inspect.js"),
    ),
    // The 巡课 patrol wall and the reports (issue 22 items 6 and 7).
    (
        "/patrol",
        "text/html; charset=utf-8",
        include_str!("../../web/patrol.html"),
    ),
    (
        "/patrol.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web/patrol.js"),
    ),
    (
        "/reports",
        "text/html; charset=utf-8",
        include_str!("../../web/reports.html"),
    ),
    (
        "/reports.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web/reports.js"),
    ),
    // One lesson, read-only: where lesson links on /record and /observe go (recgap).
    (
        "/lesson",
        "text/html; charset=utf-8",
        include_str!("../../web/lesson.html"),
    ),
    (
        "/lesson.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web/lesson.js"),
    ),
    // Recordings and the synced player (issue 20 item 3).
    (
        "/player",
        "text/html; charset=utf-8",
        include_str!("../../web/player.html"),
    ),
    (
        "/player.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web/player.js"),
    ),
    (
        "/player-page.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web/player-page.js"),
    ),
    (
        "/player.css",
        "text/css; charset=utf-8",
        include_str!("../../web/player.css"),
    ),
    // Words and page scripts (issue 22 item 5): the favicon, the scripts moved out of
    // today/login, and the pure modules app.js imports (node-tested, see web/test/).
    (
        "/today.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web/today.js"),
    ),
    (
        "/login.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web/login.js"),
    ),
    (
        "/favicon.svg",
        "image/svg+xml",
        include_str!("../../web/favicon.svg"),
    ),
    (
        "/lib/i18n.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web/lib/i18n.js"),
    ),
    (
        "/lib/sse.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web/lib/sse.js"),
    ),
    (
        "/lib/reconnect.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web/lib/reconnect.js"),
    ),
    (
        "/lib/timefmt.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web/lib/timefmt.js"),
    ),
    (
        "/lib/problems.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web/lib/problems.js"),
    ),
    (
        "/lib/words.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web/lib/words.js"),
    ),
    // The lesson clock (issue 22 items 3 and 4).
    (
        "/lib/clock.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web/lib/clock.js"),
    ),
    // The page's link figures (issue 19 item 6).
    (
        "/lib/linkstats.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web/lib/linkstats.js"),
    ),
];

fn page(path: &'static str) -> Response {
    match PAGES.iter().find(|(p, _, _)| *p == path) {
        Some((_, ct, body)) => {
            let mut r = (*body).into_response();
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
            r.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            if ct.starts_with("text/html") {
                r.headers_mut()
                    .insert(header::CONTENT_SECURITY_POLICY, edge::page_csp(path));
            }
            r
        }
        None => ApiError::not_found("not-found", "no such page").into_response(),
    }
}

async fn index() -> Response {
    let body = "<!doctype html><meta charset=utf-8><title>classrelay</title>\
        <h1>classrelay · 三个课堂</h1><ul>\
        <li><a href=/today>/today</a> 今日课程 (today's lessons; log in first)</li>\
        <li><a href=/login>/login</a> 登录 (log in)</li>\
        <li><a href=/admin>/admin</a> 管理 (admin)</li>\
        <li><a href=/observe>/observe</a> 听评课 (lesson observation)</li>\
        <li><a href=/record>/record</a> 教师数字档案 (teacher record)</li>\
        <li><a href=/player>/player</a> 录像回放 (recordings)</li>\
        <li><a href=/classroom>/classroom</a> 教室一体机 (classroom kiosk)</li>\
        <li><a href=/publish>/publish</a> 发布课堂 (publish a lesson)</li>\
        <li><a href=/watch>/watch</a> 观看课堂 (watch a lesson)</li>\
        <li><a href=/metrics>/metrics</a></li></ul>";
    let mut r = body.into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    r.headers_mut()
        .insert(header::CONTENT_SECURITY_POLICY, edge::page_csp("/"));
    r
}

/// Whether `/metrics` may be read: open when `http.metrics_token` is empty, else only with
/// `Authorization: Bearer <that token>`.
fn metrics_allowed(state: &AppState, headers: &axum::http::HeaderMap) -> bool {
    let want = state.config.http.metrics_token.as_bytes();
    if want.is_empty() {
        return true;
    }
    let got = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(|t| t.trim().as_bytes())
        .unwrap_or_default();
    // Compare digests, so the time taken says nothing about how much of the token matched.
    use sha2::{Digest, Sha256};
    Sha256::digest(got) == Sha256::digest(want)
}

async fn metrics(State(state): State<AppState>, headers: axum::http::HeaderMap) -> Response {
    if !metrics_allowed(&state, &headers) {
        return ApiError::unauthorized(
            "metrics-token",
            "/metrics needs `Authorization: Bearer` with the configured http.metrics_token",
        )
        .into_response();
    }
    let mut r = state.metrics.encode().into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    r
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(state): State<AppState>) -> Response {
    if state.media.sfu.is_empty() {
        return ApiError::unavailable("no media workers", 5).into_response();
    }
    if state.media.sfu.workers_down() > 0 {
        return ApiError::unavailable("a media worker is restarting", 1).into_response();
    }
    (StatusCode::OK, "ready").into_response()
}

/// `Link: rel="ice-server"` values anyone may see: the configured servers without a
/// username or credential (STUN). TURN credentials go only to an admitted POST (see
/// `signal::ice_server_links`), never to an anonymous `OPTIONS`.
fn public_ice_links(state: &AppState) -> Vec<HeaderValue> {
    state
        .config
        .ice_servers
        .iter()
        .filter(|s| s.username.is_none() && s.credential.is_none())
        .flat_map(|s| s.urls.iter())
        .filter_map(|u| HeaderValue::from_str(&format!("<{u}>; rel=\"ice-server\"")).ok())
        .collect()
}

/// Adds what a WHIP/WHEP client learns from `OPTIONS` (accepted type, public ICE servers) to
/// the response, including CORS preflights, which the CORS layer answers before routing.
async fn options_headers(
    State(state): State<Arc<AppState>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let is_endpoint = req.method() == Method::OPTIONS
        && (req.uri().path().starts_with("/whip/") || req.uri().path().starts_with("/whep/"));
    let mut resp = next.run(req).await;
    if is_endpoint {
        let h = resp.headers_mut();
        h.insert("accept-post", HeaderValue::from_static("application/sdp"));
        h.insert(
            "accept-patch",
            HeaderValue::from_static("application/trickle-ice-sdpfrag"),
        );
        for link in public_ice_links(&state) {
            h.append(header::LINK, link);
        }
    }
    resp
}

/// The [`SIGNALLING`] routes (a route without a handler stops the start).
fn signalling_router() -> Router<AppState> {
    crate::school::api::route_table(SIGNALLING.iter().copied(), signalling_handler)
}

async fn fallback() -> Response {
    ApiError::not_found("not-found", "no such resource").into_response()
}

/// The signalling routes (WHIP/WHEP and their ICE servers) as (method, path): `app` mounts
/// exactly these, and the OpenAPI document must describe exactly these (the test below).
pub(crate) const SIGNALLING: &[(&str, &str)] = &[
    ("POST", "/whip/{room}"),
    ("POST", "/whep/{room}"),
    ("PATCH", "/{kind}/{room}/{id}"),
    ("DELETE", "/{kind}/{room}/{id}"),
    ("POST", "/whep/{room}/{id}/layer"),
    ("GET", "/{kind}/{room}/ice-servers"),
];

fn signalling_handler(method: &str, path: &str) -> Option<axum::routing::MethodRouter<AppState>> {
    Some(match (method, path) {
        ("POST", "/whip/{room}") => post(signal::whip_post),
        ("POST", "/whep/{room}") => post(signal::whep_post),
        ("PATCH", "/{kind}/{room}/{id}") => axum::routing::patch(signal::patch_session),
        ("DELETE", "/{kind}/{room}/{id}") => axum::routing::delete(signal::delete_session),
        ("POST", "/whep/{room}/{id}/layer") => post(signal::whep_layer),
        ("GET", "/{kind}/{room}/ice-servers") => get(signal::ice_servers_get),
        _ => return None,
    })
}

/// The whole API's OpenAPI document: the school side's, with the observation API's
/// operations and route table. `GET /api/openapi.json` serves it.
pub(crate) fn api_document() -> serde_json::Value {
    crate::school::openapi::document_with(vec![
        crate::school::openapi::Part {
            ops: <crate::observe::api::Operations as utoipa::OpenApi>::openapi(),
            routes: crate::observe::api::ROUTES,
        },
        // Teacher records (issue 21 item 5).
        crate::school::openapi::Part {
            ops: <crate::observe::records::api::Operations as utoipa::OpenApi>::openapi(),
            routes: crate::observe::records::api::ROUTES,
        },
    ])
}

/// Builds the router.
pub fn app(state: Arc<AppState>) -> Router {
    let origins = &state.config.http.cors_origins;
    let allow_origin = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    let cors = CorsLayer::new()
        .allow_origin(allow_origin)
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PATCH,
            Method::DELETE,
            Method::OPTIONS,
        ])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::IF_MATCH,
        ])
        .expose_headers([
            header::LOCATION,
            header::ETAG,
            header::LINK,
            header::HeaderName::from_static("accept-patch"),
        ]);
    Router::new()
        .merge(crate::school::api::router(state.school.clone()).with_state(state.school.clone()))
        .merge(crate::observe::api::router(state.school.clone()).with_state(state.school.clone()))
        .merge(
            crate::observe::records::api::router(state.school.clone())
                .with_state(state.school.clone()),
        )
        .route("/", get(index))
        .route("/publish", get(|| async { page("/publish") }))
        .route("/watch", get(|| async { page("/watch") }))
        .route("/login", get(|| async { page("/login") }))
        .route("/today", get(|| async { page("/today") }))
        .route("/teach", get(|| async { page("/teach") }))
        .route("/classroom", get(|| async { page("/classroom") }))
        .route("/admin", get(|| async { page("/admin") }))
        .route("/whip.js", get(|| async { page("/whip.js") }))
        .route("/app.js", get(|| async { page("/app.js") }))
        .route("/teach.js", get(|| async { page("/teach.js") }))
        .route("/classroom.js", get(|| async { page("/classroom.js") }))
        .route("/admin.js", get(|| async { page("/admin.js") }))
        .route("/style.css", get(|| async { page("/style.css") }))
        .route("/observe", get(|| async { page("/observe") }))
        .route("/observe.js", get(|| async { page("/observe.js") }))
        .route("/observe.css", get(|| async { page("/observe.css") }))
        .route("/record", get(|| async { page("/record") }))
        .route("/record.js", get(|| async { page("/record.js") }))
        .route("/record.css", get(|| async { page("/record.css") }))
        .route("/inspect", get(|| async { page("/inspect") }))
        .route("/inspect.js", get(|| async { page("/inspect.js") }))
        // The 巡课 patrol wall and the reports (issue 22 items 6 and 7).
        .route("/patrol", get(|| async { page("/patrol") }))
        .route("/patrol.js", get(|| async { page("/patrol.js") }))
        .route("/reports", get(|| async { page("/reports") }))
        .route("/reports.js", get(|| async { page("/reports.js") }))
        .route("/lesson", get(|| async { page("/lesson") }))
        .route("/lesson.js", get(|| async { page("/lesson.js") }))
        .route("/player", get(|| async { page("/player") }))
        .route("/player.js", get(|| async { page("/player.js") }))
        .route("/player-page.js", get(|| async { page("/player-page.js") }))
        .route("/player.css", get(|| async { page("/player.css") }))
        .route("/today.js", get(|| async { page("/today.js") }))
        .route("/login.js", get(|| async { page("/login.js") }))
        .route("/favicon.svg", get(|| async { page("/favicon.svg") }))
        .route("/lib/i18n.js", get(|| async { page("/lib/i18n.js") }))
        .route("/lib/sse.js", get(|| async { page("/lib/sse.js") }))
        .route(
            "/lib/reconnect.js",
            get(|| async { page("/lib/reconnect.js") }),
        )
        .route("/lib/timefmt.js", get(|| async { page("/lib/timefmt.js") }))
        .route(
            "/lib/problems.js",
            get(|| async { page("/lib/problems.js") }),
        )
        .route("/lib/words.js", get(|| async { page("/lib/words.js") }))
        .route("/lib/clock.js", get(|| async { page("/lib/clock.js") }))
        .route(
            "/lib/linkstats.js",
            get(|| async { page("/lib/linkstats.js") }),
        )
        .merge(signalling_router())
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .fallback(fallback)
        .layer(axum::Extension(crate::school::openapi::Served(Arc::new(
            api_document(),
        ))))
        .layer(cors)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            options_headers,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            edge::edge,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            proxy::forwarded,
        ))
        .with_state((*state).clone())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::json;

    use super::*;
    use crate::school::openapi::tests::{documented, route_mismatches};

    /// The served document lists exactly the routes of both API route tables (school and
    /// observation), with each route's summary and `x-classrelay-allow`: an observation route
    /// without an operation fails here, and so does an operation without a route.
    #[test]
    fn the_document_lists_exactly_the_api_routes() {
        let doc = api_document();
        let bad = route_mismatches(
            &doc,
            &[
                crate::school::api::ROUTES,
                crate::observe::api::ROUTES,
                crate::observe::records::api::ROUTES,
            ],
        );
        assert!(bad.is_empty(), "{bad:#?}");
        // The observation table is really in it (not vacuously empty).
        let api = documented(&doc);
        for (m, p) in crate::observe::routes() {
            assert!(api.contains(&(m.to_string(), p.to_string())), "{m} {p}");
        }
        for (m, p) in crate::observe::records::routes() {
            assert!(api.contains(&(m.to_string(), p.to_string())), "{m} {p}");
        }
    }

    /// The operations outside `/api` are exactly the [`SIGNALLING`] routes `app` mounts.
    #[test]
    fn the_document_lists_exactly_the_signalling_routes() {
        let doc = api_document();
        let mut docs = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, _) in item.as_object().unwrap() {
                if !path.starts_with("/api/") {
                    docs.insert((method.to_uppercase(), path.clone()));
                }
            }
        }
        let routes: BTreeSet<(String, String)> = SIGNALLING
            .iter()
            .map(|(m, p)| (m.to_string(), p.to_string()))
            .collect();
        assert_eq!(docs, routes, "documented ≠ mounted signalling routes");
    }

    /// What `app` may mount besides the route tables: the index, the embedded pages and the
    /// operator endpoints (none of them is part of the API).
    const NOT_API: &[&str] = &["/", "/metrics", "/healthz", "/readyz"];

    /// `app` mounts nothing the document could miss: every `.route(` in this file's
    /// production code names a page or an operator endpoint, and every `.merge(` is one of
    /// the API routers built from their tables (school, observation, [`SIGNALLING`]). A
    /// route added to `app` by hand, outside the tables, fails here.
    #[test]
    fn app_mounts_no_route_outside_the_tables() {
        let src = include_str!("mod.rs");
        let code = &src[..src
            .find("#[cfg(test)]\nmod tests")
            .expect("the test module")];
        let app = &code[code.find("pub fn app(").expect("fn app")..];
        let pages: BTreeSet<&str> = PAGES.iter().map(|(p, _, _)| *p).collect();
        let mut bad = Vec::new();
        for (i, _) in app.match_indices(".route(") {
            let arg = app[i + ".route(".len()..].trim_start();
            let path = arg
                .strip_prefix('"')
                .and_then(|a| a.split('"').next())
                .unwrap_or(arg.lines().next().unwrap_or(""));
            if !(pages.contains(path) || NOT_API.contains(&path)) {
                bad.push(format!(".route({path}…)"));
            }
        }
        let routers = [
            "crate::school::api::router(",
            "crate::observe::api::router(",
            "crate::observe::records::api::router(",
            "signalling_router()",
        ];
        for what in [".merge(", ".nest(", ".nest_service(", ".route_service("] {
            for (i, _) in app.match_indices(what) {
                let arg = app[i + what.len()..].trim_start();
                if what != ".merge(" || !routers.iter().any(|r| arg.starts_with(r)) {
                    bad.push(format!("{what}{}…", arg.lines().next().unwrap_or("")));
                }
            }
        }
        assert!(
            bad.is_empty(),
            "app mounts routes outside ROUTES, observe::api::ROUTES and SIGNALLING, which the \
             OpenAPI document is checked against: {bad:?}"
        );
        // The check reads the real router code (it found the tables' routers).
        assert_eq!(app.matches(".merge(").count(), routers.len());
    }

    /// Every `$ref` of the whole document (observation schemas included) resolves, and every
    /// operation has its own `operationId`.
    #[test]
    fn every_reference_of_the_whole_document_resolves() {
        let doc = api_document();
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        let text = doc.to_string();
        let mut bad = Vec::new();
        for (i, _) in text.match_indices("\"$ref\":\"#/components/schemas/") {
            let rest = &text[i + "\"$ref\":\"#/components/schemas/".len()..];
            let name = &rest[..rest.find('"').unwrap()];
            if !schemas.contains_key(name) {
                bad.push(name.to_string());
            }
        }
        assert!(bad.is_empty(), "unresolved: {bad:?}");
        // Every operation has an id, and no two share one (client generators need both).
        let mut ids = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let id = op["operationId"].as_str();
                assert!(
                    id.is_some_and(|i| ids.insert(i.to_string())),
                    "{method} {path}: {id:?}"
                );
            }
        }
        for name in [
            "ObservationView",
            "StResult",
            "FiasResult",
            "RubricRow",
            "IceServers",
        ] {
            assert!(schemas.contains_key(name), "{name}");
        }
    }

    /// The charts answer SVG; the ice-servers answer is described with its header.
    #[test]
    fn observation_charts_and_ice_servers_are_described() {
        let doc = api_document();
        for chart in ["st", "rt-ch", "fias"] {
            let op = &doc["paths"][format!("/api/observations/{{id}}/{chart}.svg")]["get"];
            assert!(
                op["responses"]["200"]["content"]["image/svg+xml"].is_object(),
                "{chart}: {op}"
            );
        }
        let ice = &doc["paths"]["/{kind}/{room}/ice-servers"]["get"];
        let ok = &ice["responses"]["200"];
        assert_eq!(
            ok["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/IceServers"
        );
        assert!(ok["headers"]["cache-control"].is_object(), "{ice}");
        assert_eq!(ice["security"], json!([{"bearer": []}]));
        let schemas = &doc["components"]["schemas"];
        assert_eq!(
            schemas["ObservationView"]["additionalProperties"],
            json!(false)
        );
    }
}
