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
//! crowd out the others. [`kick_where`] ends a principal's sessions everywhere, for
//! revocation.

pub mod sdpfrag;

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::auth::{Claims, Grant};
use crate::http::{ApiError, AppState};
use crate::metrics::{RefusalLabels, RefusalReason};
use crate::sfu::{prepare_peer, AddError, Command, Follow, PeerSetup, Role, SetupError};

/// One live WHIP/WHEP session, as signalling knows it.
#[derive(Debug, Clone)]
pub struct Session {
    /// Its room.
    pub room: String,
    /// Publisher or subscriber.
    pub role: Role,
    /// The worker holding its peer.
    pub worker: usize,
    /// Current entity tag (changes on ICE restart).
    pub etag: String,
    /// The client's last full offer (basis for ICE restarts).
    pub offer: String,
    /// The client's current ICE ufrag.
    pub remote_ufrag: Option<String>,
    /// The lesson, for sessions opened with a lesson token.
    pub lesson: Option<i64>,
    /// The participant in that lesson ("c:12", "t:3", "u:7").
    pub part: Option<String>,
    /// The principal the lesson API issued the token to ("d:3", "u:7"), for revocation.
    pub who: Option<String>,
    /// Who owns it (see [`principal`]): only they may PATCH or DELETE it.
    pub owner: String,
    /// The token it was opened with (see [`token_id`]), for the per-token cap.
    pub token: String,
    /// Whether its peer is in its worker and the lesson was told. `false` while the session
    /// is being set up: it is in the map from before its peer is built, so that it counts
    /// against the caps and [`kick_where`] finds it.
    pub admitted: bool,
}

/// `Retry-After` of a 429 for too many sessions: a session its client forgot ends after the
/// media side's connect timeout or disconnect grace (30 s by default).
const CAP_RETRY_AFTER_SECS: u64 = 10;

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

/// The caps a new session of `claims` is held to: (per principal, per token).
#[derive(Debug, Clone)]
struct Quota {
    owner: String,
    token: String,
    per_principal: usize,
    per_token: usize,
}

/// The caps for `claims`. A lesson's hub teacher watches each class on a session of its own
/// (web/teach.js), so gets one more per site of the lesson on both caps.
async fn quota(state: &AppState, claims: &Claims, token: &str) -> Result<Quota, ApiError> {
    let media = &state.config.media;
    let mut extra = 0;
    if let (Some(lesson), Some(part)) = (claims.lesson, claims.part.as_deref()) {
        if part.starts_with("t:") {
            let l = crate::school::model::get_lesson(&state.school.store, lesson).await?;
            if part == format!("t:{}", l.hub_teacher_id) {
                extra = l.sites.len();
            }
        }
    }
    Ok(Quota {
        owner: principal(claims),
        token: token_id(token),
        per_principal: media.max_sessions_per_principal.saturating_add(extra),
        per_token: media.max_sessions_per_token.saturating_add(extra),
    })
}

/// Most sessions one room may hold: its share of `max_peers` (at least 1).
fn room_share(media: &crate::config::MediaConfig) -> usize {
    let share = usize::from(media.max_room_share_percent.min(100));
    (media.max_peers.saturating_mul(share) / 100).max(1)
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

fn refused(state: &AppState, reason: RefusalReason) {
    state
        .metrics
        .sessions_refused
        .get_or_create(&RefusalLabels { reason })
        .inc();
}

/// Sessions by id. Signalling only; the media plane never sees this lock.
pub type Sessions = Mutex<HashMap<String, Session>>;

fn random_id() -> String {
    let b: [u8; 16] = rand::random();
    hex::encode(b)
}

fn endpoint(role: Role) -> &'static str {
    match role {
        Role::Publisher => "whip",
        Role::Subscriber => "whep",
    }
}

fn role_of(kind: &str) -> Option<Role> {
    match kind {
        "whip" => Some(Role::Publisher),
        "whep" => Some(Role::Subscriber),
        _ => None,
    }
}

fn grant(role: Role) -> Grant {
    match role {
        Role::Publisher => Grant::Publish,
        Role::Subscriber => Grant::Subscribe,
    }
}

/// Room names: 1–64 characters of letters, digits, `-`, `_`, `.`.
pub fn check_room(room: &str) -> Result<(), ApiError> {
    let ok = !room.is_empty()
        && room.len() <= 64
        && room
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "bad-room-name",
            "room names are 1-64 characters of letters, digits, '-', '_' and '.'",
        ))
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

async fn read_body(state: &AppState, body: Body) -> Result<String, ApiError> {
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
    state: &AppState,
    headers: &HeaderMap,
    room: &str,
    role: Role,
) -> Result<Claims, ApiError> {
    Ok(authorize_token(state, headers, room, role)?.0)
}

/// [`authorize`], also returning the token itself.
fn authorize_token<'h>(
    state: &AppState,
    headers: &'h HeaderMap,
    room: &str,
    role: Role,
) -> Result<(Claims, &'h str), ApiError> {
    let h = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let claims = state.keys.authorize(h, room, grant(role))?;
    // `authorize` accepted a `Bearer <token>` header, so it is there.
    let token = h.unwrap_or("").get(7..).unwrap_or("");
    Ok((claims, token))
}

/// Ends the sessions of `room` that `which` selects, and waits until their peers are gone.
pub async fn kick(state: &AppState, room: &str, which: impl Fn(&Session) -> bool) {
    kick_where(state, |s| s.room == room && which(s)).await;
}

/// Ends the sessions in every room that `which` selects (e.g. `|s| s.owner == "c:12"` when
/// that classroom's device is revoked) and waits until their peers are gone; returns how
/// many it ended. A selected session still being set up is refused when its setup ends (its
/// peer, if already added by then, is removed at once).
pub async fn kick_where(state: &AppState, which: impl Fn(&Session) -> bool) -> usize {
    let gone: Vec<(String, Session)> = {
        let mut sessions = state.sessions.lock().expect("sessions lock");
        let ids: Vec<String> = sessions
            .iter()
            .filter(|(_, s)| which(s))
            .map(|(id, _)| id.clone())
            .collect();
        ids.into_iter()
            .filter_map(|id| sessions.remove(&id).map(|s| (id, s)))
            .collect()
    };
    // Ask every worker first, then wait: the peers go in parallel.
    let mut waits = Vec::new();
    for (id, s) in &gone {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if state.sfu.worker(s.worker).send(Command::Remove {
            session: id.clone(),
            reply: Some(tx),
        }) {
            waits.push(rx);
        }
    }
    for rx in waits {
        let _ = rx.await;
    }
    for (_, s) in &gone {
        session_closed(state, s);
    }
    gone.len()
}

/// Ends every session opened with a token issued to principal `who` ("d:3", "u:7"), in
/// every room, sessions still being set up included, and waits until their peers are gone.
/// Returns how many ended.
pub async fn kick_principal(state: &AppState, who: &str) -> usize {
    kick_where(state, |s| s.who.as_deref() == Some(who)).await
}

/// Puts participant `part` (or nobody) on the big screen of `room`: subscribers that follow
/// the spotlight switch to its tracks at the next keyframe.
pub fn set_spotlight(state: &AppState, room: &str, part: Option<String>) {
    // Every worker: the room's viewers may be on any of them (see `Sfu::place`).
    for w in 0..state.sfu.len() {
        state.sfu.worker(w).send(Command::SetSpotlight {
            room: room.to_string(),
            part: part.clone(),
        });
    }
}

/// Tells the lesson (if any) that a session ended (one still being set up was never started).
pub fn session_closed(state: &AppState, s: &Session) {
    if !s.admitted {
        return;
    }
    if let (Some(lesson), Some(part)) = (s.lesson, &s.part) {
        state.school.live.session_ended(
            lesson,
            part,
            s.role == Role::Publisher,
            state.school.now(),
        );
    }
}

/// `Link: <url>; rel="ice-server"` values for the configured STUN/TURN servers.
pub fn ice_server_links(state: &AppState) -> Vec<HeaderValue> {
    state
        .config
        .ice_servers
        .iter()
        .flat_map(|s| {
            s.urls.iter().filter_map(move |u| {
                let mut v = format!("<{u}>; rel=\"ice-server\"");
                if let (Some(user), Some(cred)) = (&s.username, &s.credential) {
                    v.push_str(&format!(
                        "; username=\"{user}\"; credential=\"{cred}\"; credential-type=\"password\""
                    ));
                }
                HeaderValue::from_str(&v).ok()
            })
        })
        .collect()
}

fn record(state: &AppState, role: Role, status: StatusCode) {
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
pub async fn whip_post(
    State(state): State<Arc<AppState>>,
    Path(room): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let r = create_session(&state, Role::Publisher, room, headers, body).await;
    finish(&state, Role::Publisher, r)
}

/// `POST /whep/{room}` (`?source=hub|spotlight|c:<id>|t:<id>` picks what to receive).
pub async fn whep_post(
    State(state): State<Arc<AppState>>,
    Path(room): Path<String>,
    axum::extract::Query(q): axum::extract::Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let r = match q.get("source") {
        Some(src) => {
            create_session_following(&state, Role::Subscriber, room, headers, body, Some(src)).await
        }
        None => create_session(&state, Role::Subscriber, room, headers, body).await,
    };
    finish(&state, Role::Subscriber, r)
}

fn finish(state: &AppState, role: Role, r: Result<Response, ApiError>) -> Response {
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
    state: &AppState,
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
            let l = crate::school::model::get_lesson(&state.school.store, lesson).await?;
            Ok(Follow::Parts(vec![
                format!("t:{}", l.hub_teacher_id),
                format!("c:{}", l.hub_classroom_id),
            ]))
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
    state: &Arc<AppState>,
    role: Role,
    room: String,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    create_session_following(state, role, room, headers, body, None).await
}

async fn create_session_following(
    state: &Arc<AppState>,
    role: Role,
    room: String,
    headers: HeaderMap,
    body: Body,
    source: Option<&str>,
) -> Result<Response, ApiError> {
    check_room(&room)?;
    let (claims, token) = authorize_token(state, &headers, &room, role)?;
    crate::school::policy::admit(&state.school, &claims, role == Role::Publisher).await?;
    let follow = resolve_source(state, &claims, source).await?;
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
    let (id, etag, answer) = tokio::spawn(admit(
        state.clone(),
        role,
        room.clone(),
        offer,
        claims,
        follow,
        quota,
    ))
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))??;
    if let (Some(who), ver) = issued {
        // A revocation between the check above and the session entering the map would have
        // found nothing to end: look again now that the session is there.
        let now = crate::auth::people::token_version(&state.school.store, &who).await?;
        if now.is_none() || now != ver {
            kick_principal(state, &who).await;
            return Err(ApiError::unauthorized(
                "token-revoked",
                format!("access of {who} was revoked while this session was set up"),
            ));
        }
    }
    let location = format!("/{}/{room}/{id}", endpoint(role));
    let mut resp = (StatusCode::CREATED, answer).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/sdp"),
    );
    h.insert(
        header::LOCATION,
        HeaderValue::from_str(&location).expect("room and id are checked ASCII"),
    );
    h.insert(
        header::ETAG,
        HeaderValue::from_str(&format!("\"{etag}\"")).expect("hex etag"),
    );
    h.insert(
        "accept-patch",
        HeaderValue::from_static("application/trickle-ice-sdpfrag"),
    );
    for link in ice_server_links(state) {
        h.append(header::LINK, link);
    }
    Ok(resp)
}

/// Takes a checked offer into a media worker: reserves a place and the session (against
/// the caps of `quota`), builds the peer, opens the room's pipe if the peer is placed away
/// from its home worker, and adds it. Returns the session id, its ETag and the SDP answer;
/// on every failure the place and the session are given back.
async fn admit(
    state: Arc<AppState>,
    role: Role,
    room: String,
    offer: String,
    claims: Claims,
    follow: Follow,
    quota: Quota,
) -> Result<(String, String, String), ApiError> {
    let state = &state;
    // Reserve a place before doing any work; give it back on every failure path below.
    let max = state.config.media.max_peers;
    let count = &state.sfu.peer_count;
    if count.fetch_add(1, Ordering::AcqRel) >= max {
        count.fetch_sub(1, Ordering::AcqRel);
        refused(state, RefusalReason::MaxPeers);
        return Err(ApiError::unavailable(
            format!("this server is at its limit of {max} peers"),
            5,
        ));
    }
    let place = state.sfu.place(&room, role);
    let worker = place.worker;
    let id = random_id();
    let etag = random_id();
    let remote_ufrag = remote_ufrag(&offer);
    // Reserve the session: counted against the caps (and found by `kick_where`) from here on.
    // The count and the insert are under one lock, so concurrent offers cannot overshoot.
    let room_share = room_share(&state.config.media);
    let over = {
        let mut sessions = state.sessions.lock().expect("sessions lock");
        let (mut mine, mut this_token, mut in_room) = (0, 0, 0);
        for s in sessions.values() {
            if s.room == room {
                in_room += 1;
            }
            if s.owner == quota.owner {
                mine += 1;
                if s.token == quota.token {
                    this_token += 1;
                }
            }
        }
        // The principal first: when both are full, another token would not help.
        if mine >= quota.per_principal {
            Some((RefusalReason::PerPrincipal, mine))
        } else if this_token >= quota.per_token {
            Some((RefusalReason::PerToken, this_token))
        } else if in_room >= room_share {
            Some((RefusalReason::RoomShare, in_room))
        } else {
            sessions.insert(
                id.clone(),
                Session {
                    room: room.clone(),
                    role,
                    worker,
                    etag: etag.clone(),
                    offer: offer.clone(),
                    remote_ufrag,
                    lesson: claims.lesson,
                    part: claims.part.clone(),
                    who: claims.who.clone(),
                    owner: quota.owner.clone(),
                    token: quota.token.clone(),
                    admitted: false,
                },
            );
            None
        }
    };
    if let Some((reason, held)) = over {
        count.fetch_sub(1, Ordering::AcqRel);
        state.sfu.unplace(place);
        refused(state, reason);
        if reason == RefusalReason::RoomShare {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "room-full",
                format!(
                    "room `{room}` holds {held} sessions, its share of this server \
                     (media.max_room_share_percent = {}% of {max} peers)",
                    state.config.media.max_room_share_percent
                ),
            )
            .with("limit", serde_json::json!(room_share))
            .with_retry_after(5));
        }
        let (what, key, limit) = match reason {
            RefusalReason::PerToken => (
                "this token".to_string(),
                "media.max_sessions_per_token",
                quota.per_token,
            ),
            _ => (
                format!("`{}`", quota.owner),
                "media.max_sessions_per_principal",
                quota.per_principal,
            ),
        };
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too-many-sessions",
            format!(
                "{what} already holds {held} WHIP/WHEP sessions, the most allowed ({key} = \
                 {limit}); end one (DELETE its URL) or wait for an unused one to time out"
            ),
        )
        .with("limit", serde_json::json!(limit))
        .with_retry_after(CAP_RETRY_AFTER_SECS));
    }
    let forget = |id: &str| {
        state.sessions.lock().expect("sessions lock").remove(id);
    };
    let setup = PeerSetup {
        cert: state.sfu.cert.clone(),
        candidate: state.sfu.worker(worker).candidate_addr,
        direct_srtp: state.sfu.direct_srtp,
    };
    let offer_copy = offer.clone();
    let prepared = tokio::task::spawn_blocking(move || prepare_peer(role, &offer_copy, &setup))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()));
    let mut prepared = match prepared {
        Ok(Ok(p)) => p,
        Ok(Err(e)) => {
            count.fetch_sub(1, Ordering::AcqRel);
            state.sfu.unplace(place);
            forget(&id);
            return Err(match e {
                SetupError::BadSdp(_) | SetupError::Rejected(_) => {
                    ApiError::bad_request("bad-sdp", e.to_string())
                }
                SetupError::NoUsableMedia(_) => match role {
                    Role::Publisher => ApiError::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "no-usable-media",
                        e.to_string(),
                    ),
                    Role::Subscriber => {
                        ApiError::new(StatusCode::NOT_ACCEPTABLE, "no-usable-media", e.to_string())
                    }
                },
            });
        }
        Err(e) => {
            count.fetch_sub(1, Ordering::AcqRel);
            state.sfu.unplace(place);
            forget(&id);
            return Err(e);
        }
    };
    prepared.part = claims.part.clone();
    let follows_spotlight = follow == Follow::Spotlight;
    prepared.follow = follow;
    let answer = prepared.answer.clone();
    // A viewer away from the room's home worker: the room's tracks (and their cached
    // pictures) must be on this worker before the viewer is, so it binds them at once.
    let piped = match place.piped_from() {
        None => true,
        Some(home) => {
            let (tx, rx) = tokio::sync::oneshot::channel();
            state.sfu.worker(home).send(Command::OpenPipe {
                room: room.clone(),
                to: worker,
                reply: tx,
            }) && rx.await.is_ok()
        }
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    let sent = piped
        && state.sfu.worker(worker).send(Command::Add {
            session: id.clone(),
            room: room.clone(),
            role,
            peer: Box::new(prepared),
            piped_from: place.piped_from(),
            reply: tx,
        });
    let refused = if sent {
        match rx.await {
            Ok(Ok(())) => None,
            Ok(Err(AddError::IncompatibleCodec(detail))) => Some(ApiError::new(
                StatusCode::CONFLICT,
                "incompatible-codec",
                detail,
            )),
            Err(_) => Some(ApiError::unavailable("media worker unavailable", 5)),
        }
    } else {
        Some(ApiError::unavailable("media worker unavailable", 5))
    };
    if let Some(e) = refused {
        count.fetch_sub(1, Ordering::AcqRel);
        state.sfu.unplace(place);
        if let (true, Some(home)) = (piped, place.piped_from()) {
            state.sfu.worker(home).send(Command::ClosePipe {
                room: room.clone(),
                to: worker,
            });
        }
        forget(&id);
        return Err(e);
    }
    // The peer is in its worker. Unless the session was ended meanwhile (`kick_where`), it is
    // admitted now, and the lesson told under the same lock, so that an end that comes
    // right after is told after it.
    let admitted = {
        let mut sessions = state.sessions.lock().expect("sessions lock");
        match sessions.get_mut(&id) {
            Some(s) => {
                s.admitted = true;
                if let (Some(lesson), Some(part)) = (claims.lesson, &claims.part) {
                    state.school.live.session_started(
                        lesson,
                        part,
                        role == Role::Publisher,
                        state.school.now(),
                    );
                }
                true
            }
            None => false,
        }
    };
    if !admitted {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if state.sfu.worker(worker).send(Command::Remove {
            session: id.clone(),
            reply: Some(tx),
        }) {
            let _ = rx.await;
        }
        return Err(ApiError::forbidden(
            "session-ended",
            "the session was ended while it was being set up (revoked, kicked, or its lesson \
             ended)",
        ));
    }
    if let (true, Some(lesson)) = (follows_spotlight, claims.lesson) {
        // The worker's room may be new (or was empty when the spotlight moved): tell it.
        state.sfu.worker(worker).send(Command::SetSpotlight {
            room: room.clone(),
            part: state
                .school
                .live
                .spotlit(lesson)
                .map(crate::school::policy::classroom_part),
        });
    }
    Ok((id, etag, answer))
}

fn lookup(state: &AppState, role: Role, room: &str, id: &str) -> Result<Session, ApiError> {
    let sessions = state.sessions.lock().expect("sessions lock");
    match sessions.get(id) {
        Some(s) if s.role == role && s.room == room && s.admitted => Ok(s.clone()),
        _ => Err(ApiError::not_found(
            "session-not-found",
            format!("no {} session `{id}` in room `{room}`", endpoint(role)),
        )),
    }
}

/// `PATCH /whip/{room}/{id}` and `PATCH /whep/{room}/{id}`.
pub async fn patch_session(
    State(state): State<Arc<AppState>>,
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
    state: &Arc<AppState>,
    role: Role,
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
    let worker = state.sfu.worker(session.worker);
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
        let mut sessions = state.sessions.lock().expect("sessions lock");
        if let Some(s) = sessions.get_mut(id) {
            s.etag = new_etag.clone();
            s.remote_ufrag = Some(ufrag);
            s.offer = offer_text;
        }
    }
    let mut resp = (StatusCode::OK, sdpfrag::answer_fragment(&answer)).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/trickle-ice-sdpfrag"),
    );
    h.insert(
        header::ETAG,
        HeaderValue::from_str(&format!("\"{new_etag}\"")).expect("hex etag"),
    );
    Ok(resp)
}

/// `DELETE /whip/{room}/{id}` and `DELETE /whep/{room}/{id}`. Answers once the peer is gone.
pub async fn delete_session(
    State(state): State<Arc<AppState>>,
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
        let removed = state.sessions.lock().expect("sessions lock").remove(&id);
        let (tx, rx) = tokio::sync::oneshot::channel();
        if state.sfu.worker(session.worker).send(Command::Remove {
            session: id.clone(),
            reply: Some(tx),
        }) {
            let _ = rx.await;
        }
        if let Some(s) = removed {
            session_closed(&state, &s);
        }
        Ok(StatusCode::OK.into_response())
    }
    .await;
    finish(&state, role, r)
}

/// Body of `POST /whep/{room}/{id}/layer`.
#[derive(Debug, Deserialize)]
pub struct LayerRequest {
    /// The simulcast rid wanted, or null for automatic.
    pub rid: Option<String>,
}

/// `POST /whep/{room}/{id}/layer`: choose the simulcast layer a subscriber receives.
pub async fn whep_layer(
    State(state): State<Arc<AppState>>,
    Path((room, id)): Path<(String, String)>,
    headers: HeaderMap,
    Json(req): Json<LayerRequest>,
) -> Response {
    let r = async {
        let claims = authorize(&state, &headers, &room, Role::Subscriber)?;
        let session = lookup(&state, Role::Subscriber, &room, &id)?;
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
        state.sfu.worker(session.worker).send(Command::SetLayer {
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
    finish(&state, Role::Subscriber, r)
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
