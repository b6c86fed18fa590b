//! WHIP (RFC 9725) and WHEP signalling: offers in, answers out, sessions as HTTP resources.
//!
//! `POST /whip/{room}` publishes and `POST /whep/{room}` watches; each returns `201` with the
//! session's unguessable URL in `Location`, an `ETag`, and the SDP answer. `PATCH` on that URL
//! carries trickled candidates or an ICE restart, `DELETE` ends the session. This module checks
//! tokens and bodies, builds the peer off the media loop, and hands it to the room's worker.
//!
//! Every session belongs to a principal (the lesson participant of its token, or the token's
//! `sub` in its room) and was opened with one token; both are capped
//! (`media.max_sessions_per_principal`, `media.max_sessions_per_token`: 429 past them), and
//! only the principal that owns a session may PATCH or DELETE it. One room holds at most
//! `media.max_room_share_percent` of `media.max_peers` (503 past it), so one lesson cannot
//! crowd out the others. [`Media::kick_where`] ends a principal's sessions everywhere, for
//! revocation. A lesson participant's new WHIP session replaces its stale one in the room,
//! and a WHEP session its stale one of the same `?source=` ([`Media::replace_stale`]): by
//! default for a lesson seat (a classroom, the hub teacher), only with `?replace=1` for
//! anyone else ([`replaces_by_default`]).
//!
//! What it needs to know about lessons it asks through [`Admission`], implemented by the
//! school side and injected: this module must never import school or http.

pub mod sdpfrag;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::auth::turn::{TurnCredential, TurnMinter};
use crate::auth::{Claims, Grant, TokenKeys};
use crate::config::Config;
use crate::ids::RoomName;
use crate::media::{random_id, Media, NewSession, Quota, Session};
use crate::metrics::Metrics;
use crate::problem::ApiError;
use crate::sfu::{Command, Follow, PeerKind};

/// A boxed future, for the methods of [`Admission`] (a trait object).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What signalling asks the side that issues lesson tokens (the school), before any media
/// work. Implemented by the school side and injected as `Arc<dyn Admission>`.
pub trait Admission: Send + Sync {
    /// Called for every WHIP/WHEP POST with a valid token: may `claims` join, and publish?
    fn admit<'a>(
        &'a self,
        claims: &'a Claims,
        publish: bool,
    ) -> BoxFuture<'a, Result<(), ApiError>>;
    /// `?source=hub` for a lesson token: the participants to follow.
    fn hub_parts(&self, lesson: i64) -> BoxFuture<'_, Result<Vec<String>, ApiError>>;
    /// Sessions `claims` may hold beyond the caps (a hub teacher watches each class on a
    /// session of its own).
    fn extra_sessions<'a>(&'a self, claims: &'a Claims) -> BoxFuture<'a, Result<usize, ApiError>>;
    /// Whether access issued to principal `who` at version `ver` still holds.
    fn token_current<'a>(
        &'a self,
        who: &'a str,
        ver: Option<i64>,
    ) -> BoxFuture<'a, Result<bool, ApiError>>;
    /// The participant on the big screen of `lesson`, if any.
    fn spotlight(&self, lesson: i64) -> Option<String>;
    /// The highest video layer rank a viewer with `claims` receives (its classroom's or
    /// school's cap; 0: the lowest layer), `None`: no cap.
    fn layer_cap<'a>(&'a self, claims: &'a Claims) -> BoxFuture<'a, Result<Option<u8>, ApiError>> {
        let _ = claims;
        Box::pin(async { Ok(None) })
    }
}

/// What the WHIP/WHEP handlers need.
pub struct SignalState {
    /// The configuration in force (`media` caps, `http.max_body_bytes`, ICE servers).
    pub config: Config,
    /// Token signing keys.
    pub keys: TokenKeys,
    /// Metrics registry and handles.
    pub metrics: Metrics,
    /// The sessions and the media workers.
    pub media: Arc<Media>,
    /// The school side's answers.
    pub admission: Arc<dyn Admission>,
    /// Mints TURN credentials (`[turn]`), for authenticated callers only; `None`: off.
    pub turn: Option<TurnMinter>,
}

/// The principal a token speaks for: its lesson participant ("c:12", "t:3", "u:7") for a
/// lesson token, else its `sub` in its room ("viewer@demo"). Every token a participant gets
/// for any lesson names the same principal.
pub fn principal(claims: &Claims) -> String {
    match (&claims.lesson, &claims.part) {
        (Some(_), Some(part)) => part.clone(),
        _ => format!("{}@{}", claims.sub, claims.room),
    }
}

/// A token's identity: a digest of its signature (kept instead of the token, which is a
/// bearer secret). Tokens signed over the same claims are the same token.
pub fn token_id(token: &str) -> String {
    let signature = token.trim().rsplit('.').next().unwrap_or("");
    hex::encode(&Sha256::digest(signature.as_bytes())[..16])
}

/// The caps for `claims`. A lesson's hub teacher watches each class on a session of its own
/// (web/teach.js), so gets one more per site of the lesson on both caps.
async fn quota(state: &SignalState, claims: &Claims, token: &str) -> Result<Quota, ApiError> {
    let media = &state.config.media;
    let extra = state.admission.extra_sessions(claims).await?;
    Ok(Quota {
        owner: principal(claims),
        token: token_id(token),
        per_principal: media.max_sessions_per_principal.saturating_add(extra),
        per_token: media.max_sessions_per_token.saturating_add(extra),
    })
}

/// Refuses unless `claims` speak for the principal that owns `session`.
fn check_owner(session: &Session, claims: &Claims) -> Result<(), ApiError> {
    if principal(claims) == session.owner {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "not-session-owner",
            "this session belongs to another participant; only its owner may change or end it",
        ))
    }
}

fn endpoint(role: PeerKind) -> &'static str {
    match role {
        PeerKind::Publisher => "whip",
        PeerKind::Subscriber => "whep",
    }
}

fn role_of(kind: &str) -> Option<PeerKind> {
    match kind {
        "whip" => Some(PeerKind::Publisher),
        "whep" => Some(PeerKind::Subscriber),
        _ => None,
    }
}

fn grant(role: PeerKind) -> Grant {
    match role {
        PeerKind::Publisher => Grant::Publish,
        PeerKind::Subscriber => Grant::Subscribe,
    }
}

fn check_content_type(headers: &HeaderMap, want: &str) -> Result<(), ApiError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let base = ct.split(';').next().unwrap_or("").trim();
    if base.eq_ignore_ascii_case(want) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            format!("Content-Type must be {want}, got `{ct}`"),
        ))
    }
}

async fn read_body(state: &SignalState, body: Body) -> Result<String, ApiError> {
    let limit = state.config.http.max_body_bytes;
    let bytes: Bytes = axum::body::to_bytes(body, limit).await.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body-too-large",
            format!("request body larger than {limit} bytes"),
        )
    })?;
    String::from_utf8(bytes.to_vec())
        .map_err(|_| ApiError::bad_request("bad-encoding", "body is not UTF-8"))
}

fn authorize(
    state: &SignalState,
    headers: &HeaderMap,
    room: &str,
    role: PeerKind,
) -> Result<Claims, ApiError> {
    Ok(authorize_token(state, headers, room, role)?.0)
}

/// [`authorize`], also returning the token itself.
fn authorize_token<'h>(
    state: &SignalState,
    headers: &'h HeaderMap,
    room: &str,
    role: PeerKind,
) -> Result<(Claims, &'h str), ApiError> {
    let h = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let claims = state.keys.authorize(h, room, grant(role))?;
    // `authorize` accepted a `Bearer <token>` header, so it is there.
    let token = h.unwrap_or("").get(7..).unwrap_or("");
    Ok((claims, token))
}

/// The principal a TURN credential is minted for: the lesson API's principal ("u:12",
/// "d:3"), else the lesson participant, else the token's subject.
fn turn_principal(claims: &Claims) -> &str {
    claims
        .who
        .as_deref()
        .or(claims.part.as_deref())
        .unwrap_or(&claims.sub)
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A credential minted now for the authenticated `claims`, when `[turn]` is on.
fn mint_for(state: &SignalState, claims: &Claims) -> Option<TurnCredential> {
    let c = state
        .turn
        .as_ref()?
        .mint(turn_principal(claims), unix_now());
    state.metrics.turn_credentials.inc();
    Some(c)
}

fn link_value(url: &str, user_cred: Option<(&str, &str)>) -> Option<HeaderValue> {
    let mut v = format!("<{url}>; rel=\"ice-server\"");
    if let Some((user, cred)) = user_cred {
        v.push_str(&format!(
            "; username=\"{user}\"; credential=\"{cred}\"; credential-type=\"password\""
        ));
    }
    HeaderValue::from_str(&v).ok()
}

/// `Link: <url>; rel="ice-server"` values for an authenticated, admitted caller: the
/// configured STUN/TURN servers (static credentials included) and, with `[turn]`, the TURN
/// service with the credential minted for this caller.
pub fn ice_server_links(state: &SignalState, minted: Option<&TurnCredential>) -> Vec<HeaderValue> {
    let configured = state.config.ice_servers.iter().flat_map(|s| {
        let cred = s.username.as_deref().zip(s.credential.as_deref());
        s.urls.iter().filter_map(move |u| link_value(u, cred))
    });
    let minted = minted.into_iter().flat_map(|c| {
        c.urls
            .iter()
            .filter_map(|u| link_value(u, Some((&c.username, &c.credential))))
    });
    configured.chain(minted).collect()
}

/// One entry of `GET /{whip|whep}/{room}/ice-servers`, shaped like WebRTC's `RTCIceServer`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[schema(as = IceServer)]
struct IceServerJson<'a> {
    /// `stun:`, `turn:` or `turns:` URLs of one server.
    #[schema(value_type = Vec<String>)]
    urls: &'a [String],
    /// The TURN username (a minted one is `<expiry unix seconds>:<who>`); absent for STUN.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    username: Option<&'a str>,
    /// The TURN password (a minted one is valid until `expires_at`); absent for STUN.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    credential: Option<&'a str>,
}

/// The body of `GET /{whip|whep}/{room}/ice-servers`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[schema(as = IceServers)]
struct IceServersJson<'a> {
    /// The configured STUN/TURN servers, then (with `[turn]`) the TURN service with the
    /// credential minted for this caller.
    ice_servers: Vec<IceServerJson<'a>>,
    /// When the minted credential expires (Unix seconds); `null` when none was minted.
    expires_at: Option<u64>,
}

/// `GET /whip/{room}/ice-servers` and `GET /whep/{room}/ice-servers`: the ICE servers a page
/// puts in its `RTCPeerConnection` before it makes the offer, with a TURN credential minted
/// for the caller. Authorized exactly as the POST it precedes (the same token, room, grant
/// and lesson admission), so nobody gets a credential who could not open the session.
/// Body: `{"ice_servers": [RTCIceServer...], "expires_at": <unix seconds or null>}`.
#[utoipa::path(
    get, path = "/{kind}/{room}/ice-servers", tag = "media",
    summary = "The ICE servers for the session this token may open, with a TURN credential minted for the caller",
    description = "Authorized exactly as the POST it precedes (the lesson media token of the room, with the grant \
        `kind` needs, and the lesson's admission), so nobody gets a TURN credential who could not open the session. \
        Never cached (`Cache-Control: no-store`): each call mints a fresh credential.",
    params(("kind" = String, Path, description = "`whip` (publish) or `whep` (watch)"), ("room" = String, Path, description = "the room (a lesson's room name from its join answer)")),
    responses((status = 200, description = "the servers for `RTCPeerConnection`'s `iceServers`", body = IceServersJson,
        headers(("cache-control" = String, description = "`no-store`: the body holds a credential")))),
    security(("bearer" = []))
)]
pub async fn ice_servers_get(
    State(state): State<Arc<SignalState>>,
    Path((kind, room)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let Some(role) = role_of(&kind) else {
        return ApiError::not_found("not-found", "no such resource").into_response();
    };
    let r = ice_servers_inner(&state, role, &room, &headers).await;
    finish(&state, role, r)
}

async fn ice_servers_inner(
    state: &SignalState,
    role: PeerKind,
    room: &str,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    RoomName::parse(room)?;
    let claims = authorize(state, headers, room, role)?;
    state
        .admission
        .admit(&claims, role == PeerKind::Publisher)
        .await?;
    let minted = mint_for(state, &claims);
    let mut servers: Vec<IceServerJson<'_>> = state
        .config
        .ice_servers
        .iter()
        .map(|s| IceServerJson {
            urls: &s.urls,
            username: s.username.as_deref(),
            credential: s.credential.as_deref(),
        })
        .collect();
    if let Some(c) = &minted {
        servers.push(IceServerJson {
            urls: &c.urls,
            username: Some(&c.username),
            credential: Some(&c.credential),
        });
    }
    let body = IceServersJson {
        ice_servers: servers,
        expires_at: minted.as_ref().map(|c| c.expires_at),
    };
    let mut resp = axum::Json(body).into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

fn record(state: &SignalState, role: PeerKind, status: StatusCode) {
    state
        .metrics
        .http_responses
        .get_or_create(&crate::metrics::HttpLabels {
            endpoint: endpoint(role).to_string(),
            status: status.as_u16(),
        })
        .inc();
}

/// `POST /whip/{room}`.
#[utoipa::path(
    post, path = "/whip/{room}", tag = "media", params(("room" = String, Path, description = "the room (a lesson's room name from its join answer)")), request_body(content = String, content_type = "application/sdp", description = "the SDP offer"),
    responses((status = 201, description = "the SDP answer; the session's resource is at `Location`", body = String, content_type = "application/sdp",
        headers(("location" = String, description = "the session resource (`/{kind}/{room}/{id}`) for PATCH and DELETE"),
            ("etag" = String, description = "the ICE session's entity tag, for If-Match on PATCH"),
            ("accept-patch" = String, description = "`application/trickle-ice-sdpfrag`"),
            ("link" = String, description = "one `<turn:…>; rel=\"ice-server\"` per configured STUN/TURN server, with credentials")))),
    security(("bearer" = []))
)]
pub async fn whip_post(
    State(state): State<Arc<SignalState>>,
    Path(room): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let r = create_session(&state, PeerKind::Publisher, room, headers, body).await;
    finish(&state, PeerKind::Publisher, r)
}

/// `POST /whep/{room}` (`?source=hub|spotlight|c:<id>|t:<id>` picks what to receive).
#[utoipa::path(
    post, path = "/whep/{room}", tag = "media",
    params(("room" = String, Path, description = "the room (a lesson's room name from its join answer)"),
        ("source" = Option<String>, Query, description = "what to receive: `hub`, `spotlight`, `c:<id>` or `t:<id>` (default: the room's usual view)"),
        ("replace" = Option<String>, Query, description = "`1`: a lesson participant coming back closes its previous viewing session of the same `source` in this room; `0`: keeps it. Default: `1` for a classroom or the hub teacher, `0` for anyone else")),
    request_body(content = String, content_type = "application/sdp", description = "the SDP offer"),
    responses((status = 201, description = "the SDP answer; the session's resource is at `Location`", body = String, content_type = "application/sdp",
        headers(("location" = String, description = "the session resource (`/{kind}/{room}/{id}`) for PATCH and DELETE"),
            ("etag" = String, description = "the ICE session's entity tag, for If-Match on PATCH"),
            ("accept-patch" = String, description = "`application/trickle-ice-sdpfrag`"),
            ("link" = String, description = "one `<turn:…>; rel=\"ice-server\"` per configured STUN/TURN server, with credentials")))),
    security(("bearer" = []))
)]
pub async fn whep_post(
    State(state): State<Arc<SignalState>>,
    Path(room): Path<String>,
    axum::extract::Query(q): axum::extract::Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let source = q.get("source").map(String::as_str);
    // A lesson participant's viewer that comes back (a reloaded page, a reconnect whose
    // DELETE was lost) closes its old session of the same `source` (see `Media::replace_stale`):
    // by default for a seat of the lesson, asked for by anyone else (`replaces_by_default`).
    let replace = match q.get("replace").map(String::as_str) {
        Some("1") => Some(true),
        Some("0") => Some(false),
        _ => None,
    };
    let r = create_session_following(
        &state,
        PeerKind::Subscriber,
        room,
        headers,
        body,
        source,
        replace,
    )
    .await;
    finish(&state, PeerKind::Subscriber, r)
}

fn finish(state: &SignalState, role: PeerKind, r: Result<Response, ApiError>) -> Response {
    let resp = match r {
        Ok(resp) => resp,
        Err(e) => {
            tracing::debug!(endpoint = endpoint(role), "refused: {e}");
            e.into_response()
        }
    };
    record(state, role, resp.status());
    resp
}

/// What `?source=` asks for, resolved against the lesson (for `hub`).
async fn resolve_source(
    state: &SignalState,
    claims: &crate::auth::Claims,
    source: Option<&str>,
) -> Result<Follow, ApiError> {
    let Some(src) = source else {
        return Ok(Follow::Any);
    };
    let bad = |m: &str| ApiError::bad_request("bad-source", m.to_string());
    match src {
        "spotlight" => Ok(Follow::Spotlight),
        "hub" => {
            let lesson = claims.lesson.ok_or_else(|| {
                bad("source=hub needs a lesson token (POST /api/lessons/{id}/join)")
            })?;
            Ok(Follow::Parts(state.admission.hub_parts(lesson).await?))
        }
        other => {
            if is_part_source(other) {
                Ok(Follow::Parts(vec![other.to_string()]))
            } else {
                Err(bad(
                    "source must be hub, spotlight, or a participant id such as c:12",
                ))
            }
        }
    }
}

async fn create_session(
    state: &Arc<SignalState>,
    role: PeerKind,
    room: String,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    // A lesson participant publishes once per room: its new WHIP session replaces the old.
    let replace = Some(role == PeerKind::Publisher);
    create_session_following(state, role, room, headers, body, None, replace).await
}

/// Whether a new WHEP session replaces its principal's stale one of the same `source`
/// when `?replace=` does not say. "The same viewer" is a seat of the lesson: a classroom
/// (`c:<id>`, its device or its login: one screen per source) or the hub teacher (`t:<id>`,
/// one console): coming back with the same follow target is that screen again (a reloaded
/// page, a crash, a pulled cable), and the stale session would only hold a place and the
/// estimate's share until the disconnect grace. An observer, an inspector's patrol watcher
/// (`p:`) or any other principal may watch in several tabs at once on purpose: a second
/// tab keeps the first.
pub fn replaces_by_default(claims: &Claims) -> bool {
    claims.lesson.is_some()
        && claims
            .part
            .as_deref()
            .is_some_and(|p| p.starts_with("c:") || p.starts_with("t:"))
}

async fn create_session_following(
    state: &Arc<SignalState>,
    role: PeerKind,
    room: String,
    headers: HeaderMap,
    body: Body,
    source: Option<&str>,
    replace: Option<bool>,
) -> Result<Response, ApiError> {
    RoomName::parse(&room)?;
    let (claims, token) = authorize_token(state, &headers, &room, role)?;
    let replace = replace.unwrap_or_else(|| replaces_by_default(&claims));
    state
        .admission
        .admit(&claims, role == PeerKind::Publisher)
        .await?;
    let follow = resolve_source(state, &claims, source).await?;
    let layer_cap = if role == PeerKind::Subscriber {
        state.admission.layer_cap(&claims).await?
    } else {
        None
    };
    check_content_type(&headers, "application/sdp")?;
    let quota = quota(state, &claims, token).await?;
    let offer = read_body(state, body).await?;
    if offer.trim().is_empty() {
        return Err(ApiError::bad_request("bad-sdp", "empty SDP offer"));
    }
    // The admission runs to its end in a task of its own: a client that hangs up mid-way
    // drops this handler, and with it any cleanup still to come (the peer count, the
    // worker's place, a pipe opened for the viewer). A peer added for a client that left
    // never connects, and its worker removes it (and closes its pipe) after the connect
    // timeout.
    let issued = (claims.who.clone(), claims.ver);
    let new = NewSession {
        room: room.clone(),
        role,
        remote_ufrag: remote_ufrag(&offer),
        offer,
        lesson: claims.lesson,
        part: claims.part.clone(),
        who: claims.who.clone(),
        follow,
        quota,
    };
    let (id, etag, answer) = tokio::spawn(admit(state.clone(), new, replace, layer_cap))
        .await
        .map_err(|e| {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
        })??;
    if let (Some(who), ver) = issued {
        // A revocation between the check above and the session entering the map would have
        // found nothing to end: look again now that the session is there.
        if !state.admission.token_current(&who, ver).await? {
            state.media.kick_principal(&who).await;
            return Err(ApiError::unauthorized(
                "token-revoked",
                format!("access of {who} was revoked while this session was set up"),
            ));
        }
    }
    let location = format!("/{}/{room}/{id}", endpoint(role));
    let mut resp = sdp_response(StatusCode::CREATED, "application/sdp", answer, &etag);
    let h = resp.headers_mut();
    h.insert(
        header::LOCATION,
        HeaderValue::from_str(&location).expect("room and id are checked ASCII"),
    );
    h.insert(
        "accept-patch",
        HeaderValue::from_static("application/trickle-ice-sdpfrag"),
    );
    for link in ice_server_links(state, mint_for(state, &claims).as_ref()) {
        h.append(header::LINK, link);
    }
    Ok(resp)
}

/// Takes a checked offer into a media worker ([`Media::admit_peer`]), after ending the stale
/// session it replaces if `replace` ([`Media::replace_stale`]), and, for a viewer of the spotlight, tells
/// its worker who is on the big screen now. Returns the session id, its ETag and the SDP
/// answer.
async fn admit(
    state: Arc<SignalState>,
    new: NewSession,
    replace: bool,
    layer_cap: Option<u8>,
) -> Result<(String, String, String), ApiError> {
    let follows_spotlight = new.follow == Follow::Spotlight;
    let (lesson, room) = (new.lesson, new.room.clone());
    if replace && lesson.is_some() {
        // Republish (issue 19): the participant's stale session of this kind goes first (in
        // this task, so it ends even if the client hangs up meanwhile).
        let owner = &new.quota.owner;
        let replaced = state
            .media
            .replace_stale(&room, new.role, owner, &new.follow)
            .await;
        if replaced > 0 {
            tracing::info!(%room, %owner, role = ?new.role, replaced, "a new session replaced a stale one");
        }
    }
    let a = state.media.admit_peer(new).await?;
    if layer_cap.is_some() {
        // After the `Add` on the same queue: the worker has the peer when this arrives.
        state.media.sfu.worker(a.worker).send(Command::SetLayerCap {
            session: a.id.clone(),
            cap: layer_cap,
        });
    }
    if let (true, Some(lesson)) = (follows_spotlight, lesson) {
        // The worker's room may be new (or was empty when the spotlight moved): tell it.
        let part = state.admission.spotlight(lesson);
        state.media.tell_spotlight(a.worker, &room, part);
    }
    Ok((a.id, a.etag, a.answer))
}

fn lookup(state: &SignalState, role: PeerKind, room: &str, id: &str) -> Result<Session, ApiError> {
    let sessions = state.media.sessions.lock().expect("sessions lock");
    match sessions.get(id) {
        Some(s) if s.role == role && s.room == room && s.admitted => Ok(s.clone()),
        _ => Err(ApiError::not_found(
            "session-not-found",
            format!("no {} session `{id}` in room `{room}`", endpoint(role)),
        )),
    }
}

/// `PATCH /whip/{room}/{id}` and `PATCH /whep/{room}/{id}`.
#[utoipa::path(
    patch, path = "/{kind}/{room}/{id}", tag = "media",
    params(("kind" = String, Path, description = "`whip` or `whep`"), ("room" = String, Path, description = "the room (a lesson's room name from its join answer)"), ("id" = String, Path, description = "the session"),
        ("if-match" = String, Header, description = "the ETag of the ICE session")),
    request_body(content = String, content_type = "application/trickle-ice-sdpfrag", description = "trickled candidates, or new credentials for an ICE restart"),
    responses((status = 204, description = "candidates taken"),
        (status = 200, description = "ICE restarted: the answer fragment", body = String, content_type = "application/trickle-ice-sdpfrag",
            headers(("etag" = String, description = "the new ICE session's entity tag"))),
        (status = 412, description = "If-Match names another ICE session", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 428, description = "If-Match is missing", body = crate::problem::Problem, content_type = "application/problem+json")),
    security(("bearer" = []))
)]
pub async fn patch_session(
    State(state): State<Arc<SignalState>>,
    Path((kind, room, id)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some(role) = role_of(&kind) else {
        return ApiError::not_found("not-found", "no such resource").into_response();
    };
    let r = patch_inner(&state, role, &room, &id, headers, body).await;
    finish(&state, role, r)
}

async fn patch_inner(
    state: &Arc<SignalState>,
    role: PeerKind,
    room: &str,
    id: &str,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let claims = authorize(state, &headers, room, role)?;
    let session = lookup(state, role, room, id)?;
    check_owner(&session, &claims)?;
    check_content_type(&headers, "application/trickle-ice-sdpfrag")?;
    let if_match = headers
        .get(header::IF_MATCH)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_string())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::PRECONDITION_REQUIRED,
                "if-match-required",
                "PATCH needs If-Match with the session's ETag (or * for an ICE restart)",
            )
        })?;
    let text = read_body(state, body).await?;
    let frag = sdpfrag::parse(&text).map_err(|e| ApiError::bad_request("bad-sdpfrag", e))?;
    let restart = match (&frag.ice_ufrag, &session.remote_ufrag) {
        (Some(new), Some(old)) => new != old,
        (Some(_), None) => true,
        _ => false,
    };
    let current = format!("\"{}\"", session.etag);
    let etag_ok = if_match == "*" || if_match == current;
    if !etag_ok {
        return Err(ApiError::new(
            StatusCode::PRECONDITION_FAILED,
            "etag-mismatch",
            format!("If-Match {if_match} does not match the session's current ETag"),
        ));
    }
    let worker = state.media.sfu.worker(session.worker);
    if !restart {
        if !frag.candidates.is_empty() {
            worker.send(Command::AddCandidates {
                session: id.to_string(),
                candidates: frag.candidates,
            });
        }
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    // ICE restart: re-offer the original media with the new credentials.
    let (ufrag, pwd) = match (frag.ice_ufrag, frag.ice_pwd) {
        (Some(u), Some(p)) => (u, p),
        _ => unreachable!("parse() guarantees ufrag and pwd together"),
    };
    let offer_text = sdpfrag::replace_ice_credentials(&session.offer, &ufrag, &pwd);
    let offer = str0m::change::SdpOffer::from_sdp_string(&offer_text).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "ice-restart-failed",
            e.to_string(),
        )
    })?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    if !worker.send(Command::IceRestart {
        session: id.to_string(),
        offer: Box::new(offer),
        reply: tx,
    }) {
        return Err(ApiError::unavailable("media worker unavailable", 5));
    }
    let answer = match rx.await {
        Ok(Ok(a)) => a,
        Ok(Err(e)) => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "ice-restart-failed",
                e,
            ))
        }
        Err(_) => return Err(ApiError::not_found("session-not-found", "session ended")),
    };
    let new_etag = random_id();
    {
        let mut sessions = state.media.sessions.lock().expect("sessions lock");
        if let Some(s) = sessions.get_mut(id) {
            s.etag = new_etag.clone();
            s.remote_ufrag = Some(ufrag);
            s.offer = offer_text;
        }
    }
    Ok(sdp_response(
        StatusCode::OK,
        "application/trickle-ice-sdpfrag",
        sdpfrag::answer_fragment(&answer),
        &new_etag,
    ))
}

/// An SDP (or SDP fragment) answer: `status`, `body` as `content_type`, and the session's
/// current `etag` (a hex id, quoted) for the client's next `If-Match`.
fn sdp_response(
    status: StatusCode,
    content_type: &'static str,
    body: String,
    etag: &str,
) -> Response {
    let mut resp = (status, body).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::ETAG,
        HeaderValue::from_str(&format!("\"{etag}\"")).expect("hex etag"),
    );
    resp
}

/// `DELETE /whip/{room}/{id}` and `DELETE /whep/{room}/{id}`. Answers once the peer is gone.
#[utoipa::path(
    delete, path = "/{kind}/{room}/{id}", tag = "media",
    params(("kind" = String, Path, description = "`whip` or `whep`"), ("room" = String, Path, description = "the room (a lesson's room name from its join answer)"), ("id" = String, Path, description = "the session")),
    responses((status = 200, description = "the session has ended")),
    security(("bearer" = []))
)]
pub async fn delete_session(
    State(state): State<Arc<SignalState>>,
    Path((kind, room, id)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    let Some(role) = role_of(&kind) else {
        return ApiError::not_found("not-found", "no such resource").into_response();
    };
    let r = async {
        let claims = authorize(&state, &headers, &room, role)?;
        let session = lookup(&state, role, &room, &id)?;
        check_owner(&session, &claims)?;
        state.media.remove(&id, session.worker).await;
        Ok(StatusCode::OK.into_response())
    }
    .await;
    finish(&state, role, r)
}

/// Body of `POST /whep/{room}/{id}/layer`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct LayerRequest {
    /// The simulcast rid wanted, or null for automatic.
    pub rid: Option<String>,
}

/// `POST /whep/{room}/{id}/layer`: choose the simulcast layer a subscriber receives.
#[utoipa::path(
    post, path = "/whep/{room}/{id}/layer", tag = "media",
    params(("room" = String, Path, description = "the room (a lesson's room name from its join answer)"), ("id" = String, Path, description = "the WHEP session")),
    request_body = LayerRequest,
    responses((status = 204, description = "the layer is chosen")),
    security(("bearer" = []))
)]
pub async fn whep_layer(
    State(state): State<Arc<SignalState>>,
    Path((room, id)): Path<(String, String)>,
    headers: HeaderMap,
    // A problem document for a bad body, like every other endpoint.
    crate::problem::JsonBody(req): crate::problem::JsonBody<LayerRequest>,
) -> Response {
    let r = async {
        let claims = authorize(&state, &headers, &room, PeerKind::Subscriber)?;
        let session = lookup(&state, PeerKind::Subscriber, &room, &id)?;
        check_owner(&session, &claims)?;
        if let Some(rid) = &req.rid {
            if rid.is_empty() || rid.len() > 16 || !rid.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Err(ApiError::bad_request(
                    "bad-rid",
                    "rid must be 1-16 letters/digits",
                ));
            }
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        state
            .media
            .sfu
            .worker(session.worker)
            .send(Command::SetLayer {
                session: id.clone(),
                rid: req.rid,
                reply: tx,
            });
        match rx.await {
            Ok(true) => Ok(StatusCode::NO_CONTENT.into_response()),
            _ => Err(ApiError::not_found("session-not-found", "session ended")),
        }
    }
    .await;
    finish(&state, PeerKind::Subscriber, r)
}

/// The offer's ICE username fragment (its first `a=ice-ufrag:` line).
fn remote_ufrag(offer: &str) -> Option<String> {
    offer
        .lines()
        .find_map(|l| l.trim().strip_prefix("a=ice-ufrag:").map(|s| s.to_string()))
}

/// Whether `?source=` names one participant: `c:`, `t:`, `u:` or `d:` and digits.
fn is_part_source(s: &str) -> bool {
    s.len() <= 24
        && matches!(s.split_once(':'), Some((k, n))
            if matches!(k, "c" | "t" | "u" | "d") && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Property tests: the offer's ufrag and `?source=` are read from any text without panics.
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
        fn remote_ufrag_takes_any_offer(
            lines in prop::collection::vec(prop_oneof![
                "[ \t]{0,2}a=ice-ufrag:[ -~\u{80}-\u{10ffff}]{0,12}\r?",
                "a=ice-pwd:[A-Za-z0-9]{0,30}",
                "\\PC{0,20}",
            ], 0..8),
        ) {
            let offer = lines.join("\n");
            if let Some(u) = remote_ufrag(&offer) {
                prop_assert!(!u.contains('\n'));
                let line = format!("a=ice-ufrag:{u}");
                prop_assert!(offer.contains(&line));
            } else {
                prop_assert!(!offer.lines().any(|l| l.trim().starts_with("a=ice-ufrag:")));
            }
        }

        #[test]
        fn part_source_takes_any_text(s in "[cdtux]:[0-9]{0,30}|\\PC{0,30}") {
            if is_part_source(&s) {
                prop_assert!(s.len() <= 24 && s.is_ascii());
                prop_assert!(s[2..].bytes().all(|b| b.is_ascii_digit()) && s.len() > 2);
            }
        }
    }
}
