//! The media service: the live WHIP/WHEP sessions over the media workers (admission of a
//! peer, removal, kicks, the spotlight, link figures) and the [`SessionEvent`]s others learn
//! presence from. It must never import http, signal or school: it knows sessions, not
//! lessons, and tells whoever listens.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::Ordering;
use std::sync::Mutex;

use axum::http::StatusCode;

mod recording;
pub use recording::{PlainRoom, PlainRoomListener, RecordError, Recorder};

use crate::config::MediaConfig;
use crate::metrics::{Metrics, RefusalLabels, RefusalReason};
use crate::problem::ApiError;
use crate::sfu::{
    prepare_peer, AddError, Command, Follow, LinkStat, PeerKind, PeerSetup, Placement, SetupError,
    Sfu,
};

/// One live WHIP/WHEP session, as signalling knows it.
#[derive(Debug, Clone)]
pub struct Session {
    /// Its room.
    pub room: String,
    /// Publisher or subscriber.
    pub role: PeerKind,
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
    /// Who owns it (see `signal::principal`): only they may PATCH or DELETE it.
    pub owner: String,
    /// The token it was opened with (see `signal::token_id`), for the per-token cap.
    pub token: String,
    /// What a subscriber receives (a publisher's is `Follow::Any`): a lesson participant's
    /// new session replaces its old one with the same role and follow
    /// ([`Media::replace_stale`]).
    pub follow: Follow,
    /// Whether its peer is in its worker and the lesson was told. `false` while the session
    /// is being set up: it is in the map from before its peer is built, so that it counts
    /// against the caps and [`Media::kick_where`] finds it.
    pub admitted: bool,
}

/// Sessions by id. The media service only; the media plane never sees this lock.
pub type Sessions = Mutex<HashMap<String, Session>>;

/// A lesson participant's session started or ended (sessions without a lesson say nothing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEvent {
    /// A session was admitted: its peer is in its worker.
    Started {
        /// The lesson.
        lesson: i64,
        /// The participant ("c:12", "t:3", "u:7").
        part: String,
        /// Publisher or subscriber.
        role: PeerKind,
    },
    /// An admitted session ended (DELETE, kick, or the media side gave up on it).
    Ended {
        /// The lesson.
        lesson: i64,
        /// The participant.
        part: String,
        /// Publisher or subscriber.
        role: PeerKind,
    },
    /// A viewer's link went to audio only (its video paused for the link) or got video back.
    WeakNetwork {
        /// The lesson.
        lesson: i64,
        /// The viewer's participant.
        part: String,
        /// True: audio only now.
        audio_only: bool,
    },
    /// A viewer's link report so far (cumulative since its session started; `last` when
    /// the session ended), from the media side's tally (issue 19 item 6).
    LinkReport {
        /// The lesson.
        lesson: i64,
        /// The viewer's participant.
        part: String,
        /// Its session id (the totals are per session).
        session: String,
        /// The totals.
        report: crate::sfu::core::LinkReport,
        /// Its final totals.
        last: bool,
    },
}

/// How many ended lesson sessions are remembered, so that a final link report the media
/// side sends after a DELETE forgot its session still finds its lesson.
const ENDED_KEPT: usize = 1024;

/// Who hears [`SessionEvent`]s. Called synchronously, under the sessions lock, so a start is
/// always heard before the end of the same session; it must not call back into [`Media`].
pub type SessionListener = Box<dyn Fn(&SessionEvent) + Send + Sync>;

/// `Retry-After` of a 429 for too many sessions: a session its client forgot ends after the
/// media side's connect timeout or disconnect grace (30 s by default).
const CAP_RETRY_AFTER_SECS: u64 = 10;

/// The caps a new session is held to.
#[derive(Debug, Clone)]
pub struct Quota {
    /// The principal it speaks for.
    pub owner: String,
    /// Its token's identity.
    pub token: String,
    /// Most sessions of that principal.
    pub per_principal: usize,
    /// Most sessions opened with that token.
    pub per_token: usize,
}

/// What a new session is, before it has a peer.
#[derive(Debug)]
pub struct NewSession {
    /// Its room (checked by the caller).
    pub room: String,
    /// Publisher or subscriber.
    pub role: PeerKind,
    /// The client's SDP offer.
    pub offer: String,
    /// The client's ICE ufrag in that offer.
    pub remote_ufrag: Option<String>,
    /// The lesson of its token, if any.
    pub lesson: Option<i64>,
    /// The participant of its token, if any.
    pub part: Option<String>,
    /// The principal its token was issued to, if any.
    pub who: Option<String>,
    /// What a subscriber receives.
    pub follow: Follow,
    /// Its caps.
    pub quota: Quota,
}

/// A session admitted by [`Media::admit_peer`].
#[derive(Debug)]
pub struct Admitted {
    /// The session id.
    pub id: String,
    /// Its ETag.
    pub etag: String,
    /// The SDP answer.
    pub answer: String,
    /// The worker holding its peer.
    pub worker: usize,
}

/// The media workers and the sessions on them.
pub struct Media {
    /// The media workers.
    pub sfu: Sfu,
    /// Live WHIP/WHEP sessions.
    pub sessions: Sessions,
    metrics: Metrics,
    limits: MediaConfig,
    listeners: Mutex<Vec<SessionListener>>,
    /// Recently ended lesson sessions: (session id, lesson), newest last (see [`ENDED_KEPT`]).
    ended: Mutex<std::collections::VecDeque<(String, i64)>>,
    /// The recording side (`recording.rs`), when this server records.
    recorder: std::sync::OnceLock<Recorder>,
    /// Told about rooms without a lesson (`recording.rs`).
    plain_rooms: std::sync::OnceLock<PlainRoomListener>,
}

impl std::fmt::Debug for Media {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Media")
            .field("workers", &self.sfu.len())
            .finish_non_exhaustive()
    }
}

/// A place on a worker, a peer count and a session, held for a peer being set up. Dropped
/// before [`Reservation::commit`], it gives all of them back (and closes the pipe it opened),
/// so no failure path can forget one.
struct Reservation<'a> {
    media: &'a Media,
    place: Placement,
    id: String,
    room: String,
    /// The pipe opened from the room's home worker to this one.
    pipe: Option<usize>,
    committed: bool,
}

impl Reservation<'_> {
    /// The peer is in its worker: from now on the worker gives back the count and the place.
    fn commit(mut self) {
        self.committed = true;
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        let sfu = &self.media.sfu;
        sfu.peer_count.fetch_sub(1, Ordering::AcqRel);
        sfu.unplace(self.place);
        if let Some(home) = self.pipe {
            sfu.worker(home).send(Command::ClosePipe {
                room: self.room.clone(),
                to: self.place.worker,
            });
        }
        self.media
            .sessions
            .lock()
            .expect("sessions lock")
            .remove(&self.id);
    }
}

/// 128 random bits in hex: session ids and ETags.
pub fn random_id() -> String {
    let b: [u8; 16] = rand::random();
    hex::encode(b)
}

impl Media {
    /// The service over `sfu`, held to `limits` (`max_peers`, `max_room_share_percent`).
    pub fn new(sfu: Sfu, metrics: Metrics, limits: MediaConfig) -> Media {
        Media {
            sfu,
            sessions: Mutex::new(HashMap::new()),
            metrics,
            limits,
            listeners: Mutex::new(Vec::new()),
            ended: Mutex::new(std::collections::VecDeque::new()),
            recorder: std::sync::OnceLock::new(),
            plain_rooms: std::sync::OnceLock::new(),
        }
    }

    /// Adds a listener of [`SessionEvent`]s.
    pub fn listen(&self, f: SessionListener) {
        self.listeners.lock().expect("listeners lock").push(f);
    }

    fn tell(&self, ev: SessionEvent) {
        for l in self.listeners.lock().expect("listeners lock").iter() {
            l(&ev);
        }
    }

    /// Counts a refused session.
    pub fn refused(&self, reason: RefusalReason) {
        self.metrics
            .sessions_refused
            .get_or_create(&RefusalLabels { reason })
            .inc();
    }

    /// Most sessions one room may hold: its share of `max_peers` (at least 1).
    fn room_share(&self) -> usize {
        let share = usize::from(self.limits.max_room_share_percent.min(100));
        (self.limits.max_peers.saturating_mul(share) / 100).max(1)
    }

    /// Takes a checked offer into a media worker: reserves a place and the session (against
    /// the caps of its quota), builds the peer, opens the room's pipe if the peer is placed
    /// away from its home worker, and adds it. On every failure the reservation is given
    /// back.
    pub async fn admit_peer(&self, new: NewSession) -> Result<Admitted, ApiError> {
        let NewSession {
            room,
            role,
            offer,
            remote_ufrag,
            lesson,
            part,
            who,
            follow,
            quota,
        } = new;
        if self.sfu.is_empty() {
            // An SFU without workers (the HTTP app driven in-process) takes no media.
            return Err(ApiError::unavailable("no media workers", 5));
        }
        // Reserve a place before doing any work.
        let max = self.limits.max_peers;
        let count = &self.sfu.peer_count;
        if count.fetch_add(1, Ordering::AcqRel) >= max {
            count.fetch_sub(1, Ordering::AcqRel);
            self.refused(RefusalReason::MaxPeers);
            return Err(ApiError::unavailable(
                format!("this server is at its limit of {max} peers"),
                5,
            ));
        }
        let place = self.sfu.place(&room, role);
        let worker = place.worker;
        let id = random_id();
        let etag = random_id();
        let mut reservation = Reservation {
            media: self,
            place,
            id: id.clone(),
            room: room.clone(),
            pipe: None,
            committed: false,
        };
        // Reserve the session: counted against the caps (and found by `kick_where`) from
        // here on. The count and the insert are under one lock, so concurrent offers cannot
        // overshoot.
        let room_share = self.room_share();
        let over = {
            let mut sessions = self.sessions.lock().expect("sessions lock");
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
                        lesson,
                        part: part.clone(),
                        who,
                        owner: quota.owner.clone(),
                        token: quota.token.clone(),
                        follow: follow.clone(),
                        admitted: false,
                    },
                );
                None
            }
        };
        if let Some((reason, held)) = over {
            drop(reservation);
            self.refused(reason);
            return Err(self.over_cap(reason, held, &room, &quota, room_share));
        }
        let setup = PeerSetup {
            cert: self.sfu.cert.clone(),
            candidate: self.sfu.worker(worker).candidate_addr,
            direct_srtp: self.sfu.direct_srtp,
        };
        let offer_copy = offer.clone();
        let mut prepared = match tokio::task::spawn_blocking(move || {
            prepare_peer(role, &offer_copy, &setup)
        })
        .await
        {
            Ok(Ok(p)) => p,
            Ok(Err(e)) => return Err(setup_refused(role, e)),
            Err(e) => {
                return Err(ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    e.to_string(),
                ))
            }
        };
        prepared.part = part.clone();
        prepared.follow = follow;
        let answer = prepared.answer.clone();
        // A viewer away from the room's home worker: the room's tracks (and their cached
        // pictures) must be on this worker before the viewer is, so it binds them at once.
        let piped = match place.piped_from() {
            None => true,
            Some(home) => {
                let (tx, rx) = tokio::sync::oneshot::channel();
                let opened = self.sfu.worker(home).send(Command::OpenPipe {
                    room: room.clone(),
                    to: worker,
                    reply: tx,
                }) && rx.await.is_ok();
                if opened {
                    reservation.pipe = Some(home);
                }
                opened
            }
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        let sent = piped
            && self.sfu.worker(worker).send(Command::Add {
                session: id.clone(),
                room: room.clone(),
                role,
                peer: Box::new(prepared),
                piped_from: place.piped_from(),
                reply: tx,
            });
        if !sent {
            return Err(ApiError::unavailable("media worker unavailable", 5));
        }
        match rx.await {
            Ok(Ok(())) => reservation.commit(),
            Ok(Err(AddError::IncompatibleCodec(detail))) => {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "incompatible-codec",
                    detail,
                ))
            }
            Err(_) => return Err(ApiError::unavailable("media worker unavailable", 5)),
        }
        // The peer is in its worker. Unless the session was ended meanwhile (`kick_where`),
        // it is admitted now, and the listeners told under the same lock, so that an end that
        // comes right after is told after it.
        let admitted = {
            let mut sessions = self.sessions.lock().expect("sessions lock");
            match sessions.get_mut(&id) {
                Some(s) => {
                    s.admitted = true;
                    if let (Some(lesson), Some(part)) = (lesson, part) {
                        self.tell(SessionEvent::Started { lesson, part, role });
                    }
                    true
                }
                None => false,
            }
        };
        if admitted && lesson.is_none() && role == PeerKind::Publisher {
            self.tell_plain(PlainRoom::Published(room.clone()));
        }
        if !admitted {
            self.remove_peer(worker, &id).await;
            return Err(ApiError::forbidden(
                "session-ended",
                "the session was ended while it was being set up (revoked, kicked, or its \
                 lesson ended)",
            ));
        }
        Ok(Admitted {
            id,
            etag,
            answer,
            worker,
        })
    }

    fn over_cap(
        &self,
        reason: RefusalReason,
        held: usize,
        room: &str,
        quota: &Quota,
        room_share: usize,
    ) -> ApiError {
        if reason == RefusalReason::RoomShare {
            return ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "room-full",
                format!(
                    "room `{room}` holds {held} sessions, its share of this server \
                     (media.max_room_share_percent = {}% of {} peers)",
                    self.limits.max_room_share_percent, self.limits.max_peers
                ),
            )
            .with("limit", serde_json::json!(room_share))
            .with_retry_after(5);
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
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too-many-sessions",
            format!(
                "{what} already holds {held} WHIP/WHEP sessions, the most allowed ({key} = \
                 {limit}); end one (DELETE its URL) or wait for an unused one to time out"
            ),
        )
        .with("limit", serde_json::json!(limit))
        .with_retry_after(CAP_RETRY_AFTER_SECS)
    }

    /// Asks `worker` to remove the peer of session `id` and waits until it is gone.
    async fn remove_peer(&self, worker: usize, id: &str) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if self.sfu.worker(worker).send(Command::Remove {
            session: id.to_string(),
            reply: Some(tx),
        }) {
            let _ = rx.await;
        }
    }

    /// Ends session `id` (a DELETE): forgets it, waits until its peer is gone, tells the
    /// listeners.
    pub async fn remove(&self, id: &str, worker: usize) {
        let removed = self.sessions.lock().expect("sessions lock").remove(id);
        if let Some(s) = &removed {
            self.remember_ended(id, s);
        }
        self.remove_peer(worker, id).await;
        if let Some(s) = removed {
            self.closed(&s);
        }
    }

    /// The media side paused a viewer's video for its link, or resumed it
    /// (`SfuEvent::WeakNetwork`): the lesson is told.
    pub fn weak_network(&self, id: &str, audio_only: bool) {
        let who = {
            let sessions = self.sessions.lock().expect("sessions lock");
            sessions
                .get(id)
                .filter(|s| s.admitted)
                .and_then(|s| Some((s.lesson?, s.part.clone()?)))
        };
        if let Some((lesson, part)) = who {
            self.tell(SessionEvent::WeakNetwork {
                lesson,
                part,
                audio_only,
            });
        }
    }

    /// Remembers that lesson session `id` ended (see [`ENDED_KEPT`]); before its peer goes,
    /// so the final link report its worker sends finds the lesson.
    fn remember_ended(&self, id: &str, s: &Session) {
        let Some(lesson) = s.lesson else { return };
        let mut ended = self.ended.lock().expect("ended lock");
        if ended.len() >= ENDED_KEPT {
            ended.pop_front();
        }
        ended.push_back((id.to_string(), lesson));
    }

    /// A viewer's link totals from the media side (`SfuEvent::LinkReport`): the lesson is
    /// told, also for a session a DELETE already forgot (its final totals come after).
    pub fn link_report(
        &self,
        id: &str,
        part: Option<String>,
        report: crate::sfu::core::LinkReport,
        last: bool,
    ) {
        let lesson = {
            let sessions = self.sessions.lock().expect("sessions lock");
            sessions.get(id).and_then(|s| s.lesson)
        }
        .or_else(|| {
            let ended = self.ended.lock().expect("ended lock");
            ended.iter().rev().find(|(s, _)| s == id).map(|(_, l)| *l)
        });
        if let (Some(lesson), Some(part)) = (lesson, part) {
            self.tell(SessionEvent::LinkReport {
                lesson,
                part,
                session: id.to_string(),
                report,
                last,
            });
        }
    }

    /// The media side ended session `id` (ICE failure, timeouts): forget it.
    pub fn peer_gone(&self, id: &str) {
        let gone = self.sessions.lock().expect("sessions lock").remove(id);
        if let Some(s) = gone {
            self.remember_ended(id, &s);
            self.closed(&s);
        }
    }

    /// Tells the listeners that a session ended (one still being set up was never started).
    fn closed(&self, s: &Session) {
        if !s.admitted {
            return;
        }
        if s.lesson.is_none() {
            let empty = !self
                .sessions
                .lock()
                .expect("sessions lock")
                .values()
                .any(|x| x.room == s.room);
            if empty {
                self.tell_plain(PlainRoom::Empty(s.room.clone()));
            }
        }
        if let (Some(lesson), Some(part)) = (s.lesson, &s.part) {
            self.tell(SessionEvent::Ended {
                lesson,
                part: part.clone(),
                role: s.role,
            });
        }
    }

    /// Ends the sessions of `room` that `which` selects, and waits until their peers are gone.
    pub async fn kick(&self, room: &str, which: impl Fn(&Session) -> bool) {
        self.kick_where(|s| s.room == room && which(s)).await;
    }

    /// Ends the sessions a new one replaces: those of lesson participant `owner` in `room`
    /// with the same role (and, for a viewer, the same follow). A teacher whose page died
    /// without hanging up (a crash, a pulled cable) and who comes back, or a classroom that
    /// comes back, takes over at once instead of leaving everyone frozen on the stale
    /// session for the disconnect grace: the stale peer is removed, its viewers' slots take
    /// the new session's tracks and switch at its first keyframe, their output sequence
    /// numbers and timestamps continuing (`sfu::forward::Rewriter`). Signalling calls it for
    /// every WHIP session of a lesson participant and for WHEP sessions that ask
    /// (`?replace=1`: a participant may watch in several sessions at once); never for other
    /// principals (a token's `sub`, such as every `viewer` of a script). Returns how many it
    /// ended.
    pub async fn replace_stale(
        &self,
        room: &str,
        role: PeerKind,
        owner: &str,
        follow: &Follow,
    ) -> usize {
        self.kick_where(|s| {
            s.lesson.is_some()
                && s.room == room
                && s.role == role
                && s.owner == owner
                && (role == PeerKind::Publisher || s.follow == *follow)
        })
        .await
    }

    /// Ends the sessions in every room that `which` selects (e.g. `|s| s.owner == "c:12"` when
    /// that classroom's device is revoked) and waits until their peers are gone; returns how
    /// many it ended. A selected session still being set up is refused when its setup ends
    /// (its peer, if already added by then, is removed at once).
    pub async fn kick_where(&self, which: impl Fn(&Session) -> bool) -> usize {
        let gone: Vec<(String, Session)> = {
            let mut sessions = self.sessions.lock().expect("sessions lock");
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
            self.remember_ended(id, s);
            let (tx, rx) = tokio::sync::oneshot::channel();
            if self.sfu.worker(s.worker).send(Command::Remove {
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
            self.closed(s);
        }
        gone.len()
    }

    /// Ends every session opened with a token issued to principal `who` ("d:3", "u:7"), in
    /// every room, sessions still being set up included, and waits until their peers are
    /// gone. Returns how many ended.
    pub async fn kick_principal(&self, who: &str) -> usize {
        self.kick_where(|s| s.who.as_deref() == Some(who)).await
    }

    /// Puts participant `part` (or nobody) on the big screen of `room`: subscribers that
    /// follow the spotlight switch to its tracks at the next keyframe.
    pub fn set_spotlight(&self, room: &str, part: Option<String>) {
        // Every worker: the room's viewers may be on any of them (see `Sfu::place`).
        for w in 0..self.sfu.len() {
            self.sfu.worker(w).send(Command::SetSpotlight {
                room: room.to_string(),
                part: part.clone(),
            });
        }
    }

    /// Tells only `worker` who is on the big screen of `room` (its room may be new, or was
    /// empty when the spotlight moved).
    pub fn tell_spotlight(&self, worker: usize, room: &str, part: Option<String>) {
        self.sfu.worker(worker).send(Command::SetSpotlight {
            room: room.to_string(),
            part,
        });
    }

    /// The rooms with sessions, by lesson.
    pub fn lesson_rooms(&self) -> BTreeMap<i64, BTreeSet<String>> {
        let mut rooms: BTreeMap<i64, BTreeSet<String>> = BTreeMap::new();
        let sessions = self.sessions.lock().expect("sessions lock");
        for s in sessions.values() {
            if let Some(lesson) = s.lesson {
                rooms.entry(lesson).or_default().insert(s.room.clone());
            }
        }
        rooms
    }

    /// Asks every worker for the link figures of `room`'s peers; one answer per worker that
    /// took the question (a room's viewers may be on any worker, see `Sfu::place`).
    pub fn link_stats(&self, room: &str) -> Vec<tokio::sync::oneshot::Receiver<Vec<LinkStat>>> {
        let mut asked = Vec::new();
        for w in 0..self.sfu.len() {
            let (tx, rx) = tokio::sync::oneshot::channel();
            if self.sfu.worker(w).send(Command::LinkStats {
                room: room.to_string(),
                reply: tx,
            }) {
                asked.push(rx);
            }
        }
        asked
    }
}

/// The problem for an offer the peer could not be built from.
fn setup_refused(role: PeerKind, e: SetupError) -> ApiError {
    match e {
        SetupError::BadSdp(_) | SetupError::Rejected(_) => {
            ApiError::bad_request("bad-sdp", e.to_string())
        }
        SetupError::NoUsableMedia(_) => match role {
            PeerKind::Publisher => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "no-usable-media",
                e.to_string(),
            ),
            PeerKind::Subscriber => {
                ApiError::new(StatusCode::NOT_ACCEPTABLE, "no-usable-media", e.to_string())
            }
        },
    }
}
