//! Everything one media worker decides, with no socket, thread, channel or clock of its own.
//!
//! `WorkerCore` owns every `Rtc` of the rooms placed on its worker, routes each datagram to
//! its peer in O(1) (STUN by ICE ufrag, everything else by remote address), drives only the
//! peers whose deadline passed (a min-heap of deadlines, lazily invalidated), and forwards
//! RTP from publishers to subscribers without depacketizing. Time is always an argument
//! (`now`): it must never read a clock, block, await, take a shared lock or touch a socket
//! or channel except through the [`Outside`] its shell gives it. The shell (`worker.rs`)
//! owns the thread, the socket, mio and the channels; a test gives it [`Queued`] and drives
//! it on simulated time.

use std::cmp::Reverse;
use std::collections::hash_map::DefaultHasher;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::hash::BuildHasherDefault;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use str0m::format::{Codec, PayloadParams};
use str0m::media::{KeyframeRequestKind, MediaKind, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::rtp::rtcp::{Nack, ReceptionReport, Rtcp};
use str0m::rtp::{ExtensionValues, RawPacket, RtpPacket, RtpWrite, Ssrc};
use str0m::{Event, IceConnectionState, Input, Output};

use super::egress::{is_rtcp, ntp64, Egress, OutPacket, Recent, Stream, MAX_PADDING};
use super::forward::{pick_payload_type, source_id, starts_keyframe, Rewriter, SourceId};
use super::keyframe::Decision;
use super::limit::{PublishCap, TokenBucket};
use super::peer::{Lane, LinkFigures, Peer, Slot};
use super::pipe::{PipeMsg, PipedPacket};
use super::recvq;
use super::room::{CachedPacket, Layer, PeerId, Room, Track, TrackId};
use super::routing::{self, Router};
use super::{AddError, Command, LinkStat, PreparedPeer, Role, SfuEvent};
use crate::metrics::{Metrics, RoleLabel, RoleLabels, Tally};

/// Viewers served between two looks for the rest of a frame whose first part goes out
/// (see `WorkerCore::fan_out`; default of `media.fanout_chunk`): about a `sendmmsg` batch, a
/// few hundred microseconds of work.
pub const FAN_OUT_CHUNK: usize = 32;
/// Most datagrams (or pipe messages) one such look takes in.
const LOOK_BUDGET: usize = 32;
const HOUSEKEEPING: Duration = Duration::from_millis(250);
/// A subscriber still without a keyframe after this long asks again.
const KEYFRAME_RETRY: Duration = Duration::from_secs(1);
/// Sent packets kept per subscriber stream for answering NACKs.
const RTX_CACHE_PACKETS: usize = 512;
/// How old a packet may be and still be resent.
const RTX_CACHE_AGE: Duration = Duration::from_secs(1);
/// A peer that has not connected (ICE and DTLS done) this long after its offer is dropped
/// (the default of `media.connect_timeout_ms`; see there why 10 s).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The core's maps: std's hasher with fixed keys, so that walking a map (housekeeping, a
/// restart) goes in the same order on every run and a simulated run is repeatable. Keys are
/// the worker's own ids and room names signalling checked, not chosen by a remote peer.
type Map<K, V> = HashMap<K, V, BuildHasherDefault<DefaultHasher>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    Peer(PeerId),
    Gate(TrackId, usize),
}

/// What the core asks of the world around it: everything that leaves it, and the two inboxes
/// a look for a frame's rest reads during a fan-out (see `WorkerCore::fan_out`). The worker
/// thread implements it over its socket and channels (`worker::Wire`); a test uses
/// [`Queued`].
///
/// Datagrams are pushed one by one while they are made, as into a `SendQueue`: the shell may
/// send a full batch at once (in the middle of a fan-out), so nothing per packet is copied or
/// queued twice. Pipe messages to other workers go at once as well, and those workers are
/// woken before a fan-out starts, so they serve their viewers in parallel with this one.
pub trait Outside {
    /// An empty buffer for a datagram (reused from one already sent when there is one).
    fn buffer(&mut self) -> Vec<u8>;
    /// Queues datagram `data` to `to` (the shell may send what is queued at once).
    fn send(&mut self, to: SocketAddr, data: Vec<u8>, tally: &mut Tally);
    /// The size a datagram to `to` queued next must have to join the run of equal-sized
    /// datagrams at the end of the queue (UDP GSO), if there is one it can still join.
    fn run_size(&self, to: SocketAddr) -> Option<usize>;
    /// Whether runs may leave as UDP GSO sends.
    fn gso(&self) -> bool;
    /// Notes when a datagram (or piped packet) handled in this turn arrived: what leaves until
    /// [`Outside::end_turn`] is timed from the earliest such arrival.
    fn note_arrival(&mut self, at: SystemTime);
    /// The earliest arrival noted in this turn.
    fn arrival(&self) -> Option<SystemTime>;
    /// Sends everything queued and closes the turn.
    fn end_turn(&mut self, tally: &mut Tally);
    /// Messages waiting in worker `to`'s pipe inbox (`None`: no such worker).
    fn pipe_len(&self, to: usize) -> Option<usize>;
    /// Sends a pipe message to worker `to` (woken by [`Outside::wake`]); false if it cannot.
    fn pipe(&mut self, to: usize, msg: PipeMsg) -> bool;
    /// Wakes worker `to` (it was sent pipe messages).
    fn wake(&mut self, to: usize);
    /// Sends a command to worker `to` and wakes it; false if it cannot.
    fn command(&mut self, to: usize, cmd: Command) -> bool;
    /// Tells signalling.
    fn event(&mut self, ev: SfuEvent);
    /// During a fan-out: the next datagram that came to this worker's socket meanwhile, read
    /// into `buf` (its length and source), `WouldBlock` when there is none.
    fn recv(&mut self, buf: &mut [u8]) -> std::io::Result<(usize, SocketAddr)>;
    /// The next message of this worker's pipe inbox, if there is one.
    fn piped(&mut self) -> Option<PipeMsg>;
    /// Whether this worker's pipe inbox holds messages.
    fn piped_waiting(&self) -> bool;
}

/// Everything the per-peer drain writes besides the peer itself: the datagrams and messages
/// that leave (`out`), the timers and follow-ups it queues for the core's next step, and the
/// subscriber lanes and sent-packet history the fast path writes through.
struct Outbox<O> {
    out: O,
    metrics: Metrics,
    timers: BinaryHeap<Reverse<(Instant, Timer)>>,
    /// Peers whose str0m deadline has already passed (it asks for that after every written
    /// packet): driven once per loop turn without a trip through the timer heap.
    due: Vec<PeerId>,
    pending_rtp: Vec<(PeerId, RtpPacket)>,
    pending_kf: Vec<(PeerId, Mid)>,
    connected: Vec<PeerId>,
    dead: Vec<PeerId>,
    /// Addresses str0m answered a connectivity check from (see `WorkerCore::commit_verified`).
    verified: Vec<(PeerId, SocketAddr)>,
    /// Whether subscribers get the fast path (`egress`) once their keys are known.
    direct_srtp: bool,
    /// Every subscriber slot's forwarding state (`Slot::lane`, the tracks' subscriber lists).
    lanes: slab::Slab<Lane>,
    /// What the packet path counted this loop turn, added to `metrics` at its end.
    tally: Tally,
    /// The video packets sent on the fast path lately, once each: what viewers' histories
    /// resend from.
    recent: Recent,
    /// Where a subscriber stream's first sequence number comes from (seeded: a simulated
    /// run is repeatable).
    rng: SmallRng,
}

/// Settings and handles a core gets.
pub struct Settings {
    /// Keyframe request spacing per publisher layer.
    pub keyframe_interval: Duration,
    /// How long a disconnected peer waits for an ICE restart.
    pub disconnect_grace: Duration,
    /// Metrics handles.
    pub metrics: Metrics,
    /// Process-wide peer count (decremented here when a peer goes).
    pub peer_count: Arc<AtomicUsize>,
    /// Peers placed on this worker (`Sfu::place`; decremented here when a peer goes).
    pub load: Arc<AtomicUsize>,
    /// Subscribers' media protected here (`egress`) rather than through str0m.
    pub direct_srtp: bool,
    /// Packets queued to another worker's pipe before drops (`media.pipe_backlog`).
    pub pipe_backlog: usize,
    /// Viewers served between looks for a frame's rest (`media.fanout_chunk`).
    pub fanout_chunk: usize,
    /// A peer not connected this long after it was added is dropped
    /// (`media.connect_timeout_ms`).
    pub connect_timeout: Duration,
    /// The cap on each publisher's incoming media (`media.max_publish_kbps` / `_pps`).
    pub publish_cap: PublishCap,
    /// Seeds the random first sequence numbers of subscriber streams.
    pub seed: u64,
}

/// One worker's media state and decisions (see the module doc).
pub struct WorkerCore<O: Outside> {
    index: usize,
    local_addr: SocketAddr,
    /// Home rooms piped to other workers: room -> (worker, viewers there).
    pipes_out: Map<String, Vec<(usize, u32)>>,
    /// Tracks piped in: (home worker, its track id) -> (room, our track id).
    piped: Map<(usize, TrackId), (String, TrackId)>,
    /// Workers sent media since they were last woken.
    pipe_wake: Vec<usize>,
    /// Piped packets of this turn: (our track id, layer, rid, SSRC, codec, packet).
    pipe_in: Vec<PipedPacket>,
    /// Pipe messages handed in (`handle_pipe`) or taken from the inbox by a look for a
    /// frame's rest during a fan-out and not used by it: read before the inbox
    /// (`next_pipe_msg`).
    pipe_stash: VecDeque<PipeMsg>,
    /// A datagram read by a look for a frame's rest during a fan-out.
    look_buf: Vec<u8>,
    /// A look during a fan-out stopped at its budget: the socket may hold more.
    left_unread: bool,
    /// This worker's rooms as last added to the `rooms` gauge.
    rooms_counted: i64,
    io: Outbox<O>,
    peers: Map<PeerId, Peer>,
    created: Map<PeerId, Instant>,
    by_session: Map<String, PeerId>,
    router: Router,
    rooms: Map<String, Room>,
    tracks: Map<TrackId, Track>,
    next_id: u64,
    keyframe_interval: Duration,
    disconnect_grace: Duration,
    /// See `Settings::pipe_backlog`.
    pipe_backlog: usize,
    /// See `Settings::fanout_chunk` (at least 1).
    fanout_chunk: usize,
    peer_count: Arc<AtomicUsize>,
    load: Arc<AtomicUsize>,
    next_housekeeping: Instant,
    next_rate_window: Instant,
    /// The latest `now` handed in: what [`WorkerCore::poll_timeout`] answers when work is
    /// already due.
    last_now: Instant,
    /// Scratch for `forward_group` (kept for its allocation).
    preps: Vec<Prep>,
    /// See `Settings::connect_timeout`.
    connect_timeout: Duration,
    /// See `Settings::publish_cap`.
    publish_cap: PublishCap,
}

impl<O: Outside> WorkerCore<O> {
    /// A core with no peers for worker `index`, whose socket is bound to `local_addr`.
    pub fn new(
        index: usize,
        local_addr: SocketAddr,
        settings: Settings,
        out: O,
        now: Instant,
    ) -> Self {
        let Settings {
            keyframe_interval,
            disconnect_grace,
            metrics,
            peer_count,
            load,
            direct_srtp,
            pipe_backlog,
            fanout_chunk,
            connect_timeout,
            publish_cap,
            seed,
        } = settings;
        WorkerCore {
            index,
            local_addr,
            pipes_out: Map::default(),
            piped: Map::default(),
            pipe_wake: Vec::new(),
            pipe_in: Vec::new(),
            pipe_stash: VecDeque::new(),
            // One byte more than any datagram taken: a longer one shows as truncated.
            look_buf: vec![0; recvq::MAX_DATAGRAM + 1],
            left_unread: false,
            rooms_counted: 0,
            io: Outbox {
                out,
                tally: Tally::new(&metrics),
                recent: Recent::default(),
                metrics,
                timers: BinaryHeap::new(),
                due: Vec::new(),
                pending_rtp: Vec::with_capacity(64),
                pending_kf: Vec::new(),
                connected: Vec::new(),
                dead: Vec::new(),
                verified: Vec::new(),
                direct_srtp,
                lanes: slab::Slab::new(),
                rng: SmallRng::seed_from_u64(seed),
            },
            peers: Map::default(),
            created: Map::default(),
            by_session: Map::default(),
            router: Router::default(),
            rooms: Map::default(),
            tracks: Map::default(),
            next_id: 1,
            keyframe_interval,
            disconnect_grace,
            pipe_backlog,
            fanout_chunk: fanout_chunk.max(1),
            peer_count,
            load,
            next_housekeeping: now + HOUSEKEEPING,
            next_rate_window: now + Duration::from_secs(1),
            last_now: now,
            preps: Vec::new(),
            connect_timeout,
            publish_cap,
        }
    }

    /// What the core sends through (the shell's socket and channels, or a test's queues).
    pub fn outside(&mut self) -> &mut O {
        &mut self.io.out
    }

    /// Sends what this turn queued (see [`Outside::end_turn`]) and adds what the packet
    /// path counted to the metrics. Call before waiting for more input.
    pub fn end_turn(&mut self) {
        self.io.out.end_turn(&mut self.io.tally);
        self.io.tally.flush(&self.io.metrics);
    }

    /// When [`WorkerCore::handle_timeout`] must be called next: the earliest timer, or the
    /// latest `now` handed in if work is already due (a peer str0m asked to be driven, pipe
    /// messages handed in). Call after every `handle_*` and `forward`.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        if !self.io.due.is_empty() || !self.pipe_stash.is_empty() {
            return Some(self.last_now);
        }
        let mut deadline = self.next_housekeeping;
        if let Some(Reverse((t, _))) = self.io.timers.peek() {
            deadline = deadline.min(*t);
        }
        Some(deadline)
    }

    /// Whether a look during a fan-out stopped at its budget since the last call: the socket
    /// may hold more datagrams (the shell reads again without waiting).
    #[must_use]
    pub fn take_left_unread(&mut self) -> bool {
        std::mem::take(&mut self.left_unread)
    }

    /// Drives what is due at `now`: peers' str0m timers, keyframe gates, housekeeping
    /// (rates, keyframe retries, history shrinking, connect and disconnect timeouts), then
    /// removes the peers found dead. The shell calls it once per loop turn.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.last_now = now;
        self.fire_timers(now);
        if now >= self.next_housekeeping {
            self.housekeeping(now);
            self.next_housekeeping = now + HOUSEKEEPING;
        }
        self.reap(now);
    }

    /// Takes one message of another worker's pipe in (the shell reads its inbox through
    /// [`Outside::piped`] in [`WorkerCore::handle_pipes`]; a test may hand messages in here).
    pub fn handle_pipe(&mut self, now: Instant, msg: PipeMsg) {
        self.pipe_stash.push_back(msg);
        self.handle_pipes(now);
    }

    /// Reads the pipe inbox (up to a turn's worth) and forwards what it brought.
    pub fn handle_pipes(&mut self, now: Instant) {
        self.last_now = now;
        self.drain_pipe(now);
    }

    /// Forwards the media the datagrams handed in since the last call brought, and answers
    /// the keyframe requests they carried.
    pub fn forward(&mut self, now: Instant) {
        self.last_now = now;
        self.process_pending(now);
    }

    /// After a panic: drops every peer (each as a normal removal where that still works) and
    /// forgets the rest of the state. What stays: the outside (socket, channels), the rooms
    /// piped out to viewers on other workers (those viewers are still there), and the id
    /// counter (ids stay unique across the restart, as other workers know this one's tracks
    /// by id). The shell then waits and calls [`WorkerCore::resume`].
    pub fn reset(&mut self, now: Instant) {
        let pids: Vec<PeerId> = self.peers.keys().copied().collect();
        for pid in pids {
            let _ = panic::catch_unwind(AssertUnwindSafe(|| self.remove_peer(pid, now)));
        }
        // Peers whose removal itself panicked: signalling must still learn they are gone,
        // and their places are given back (once: `remove_peer` forgets the session before
        // it gives the places back, so a session still here was not counted down).
        for (session, pid) in std::mem::take(&mut self.by_session) {
            if let Some(peer) = self.peers.remove(&pid) {
                self.io
                    .metrics
                    .peers
                    .get_or_create(&RoleLabels {
                        role: role_label(peer.role),
                    })
                    .dec();
                if let Some(home) = peer.piped_from {
                    let _ = self.io.out.command(
                        home,
                        Command::ClosePipe {
                            room: peer.room.clone(),
                            to: self.index,
                        },
                    );
                }
            }
            self.load.fetch_sub(1, Ordering::Relaxed);
            self.peer_count.fetch_sub(1, Ordering::Relaxed);
            self.io.out.event(SfuEvent::PeerGone { session });
        }
        // Tracks left over: other workers holding them are told they are gone.
        let left: Vec<(TrackId, Track)> = self.tracks.drain().collect();
        for (tid, track) in left {
            if track.origin.is_none() {
                self.io.metrics.tracks.dec();
                for &to in &track.pipes {
                    self.send_pipe(
                        to,
                        PipeMsg::TrackGone {
                            home: self.index,
                            tid,
                        },
                    );
                }
            }
        }
        self.wake_pipes();
        self.peers.clear();
        self.created.clear();
        self.router = Router::default();
        self.rooms.clear();
        self.count_rooms();
        self.piped.clear();
        self.pipe_in.clear();
        self.pipe_stash.clear();
        self.left_unread = false;
        self.preps.clear();
        let io = &mut self.io;
        io.timers.clear();
        io.due.clear();
        io.pending_rtp.clear();
        io.pending_kf.clear();
        io.connected.clear();
        io.dead.clear();
        io.verified.clear();
        io.lanes.clear();
        io.tally = Tally::new(&io.metrics);
        io.recent = Recent::default();
    }

    /// After [`WorkerCore::reset`] and the restart delay: housekeeping starts over from `now`.
    pub fn resume(&mut self, now: Instant) {
        self.last_now = now;
        self.next_housekeeping = now + HOUSEKEEPING;
    }

    /// The metrics handles (the shell counts the datagrams it reads).
    pub fn metrics(&self) -> &Metrics {
        &self.io.metrics
    }
    /// Whether the media read but not yet forwarded ends in the middle of a frame: its
    /// last packet has no marker (a video frame's last packet has it; so does an audio
    /// talkspurt's first, so most audio packets look unfinished too, which costs only a
    /// look).
    #[must_use]
    pub fn frame_unfinished(&self) -> bool {
        self.io
            .pending_rtp
            .last()
            .is_some_and(|(_, p)| !p.header.marker)
    }

    /// Takes one datagram from `source` in: routes it to its peer and drives that peer's
    /// `Rtc`. The media it brings waits for [`WorkerCore::forward`].
    pub fn handle_datagram(&mut self, now: Instant, source: SocketAddr, data: &[u8]) {
        self.last_now = now;
        let Some(pid) = self.router.route(data, source) else {
            self.io.metrics.udp_unroutable.inc();
            tracing::trace!(worker = self.index, %source, len = data.len(), first = data.first().copied().unwrap_or(0), "unroutable datagram");
            return;
        };
        let Ok(recv) = Receive::new(Protocol::Udp, source, self.local_addr, data) else {
            self.io.metrics.udp_unroutable.inc();
            return;
        };
        let Some(peer) = self.peers.get_mut(&pid) else {
            return;
        };
        if let Err(e) = peer.rtc.handle_input(Input::Receive(now, recv)) {
            tracing::debug!(session = %peer.session, "input rejected: {e}");
        }
        drain(peer, &mut self.io, now);
        if !self.io.verified.is_empty() {
            self.commit_verified();
        }
    }

    /// Learns the addresses of connectivity checks str0m accepted (it answered them with a
    /// binding success, so their MESSAGE-INTEGRITY matched the peer's ICE password): only
    /// now may the router send that address's DTLS and SRTP to the peer. An address that
    /// is the live path of another connected peer is not taken from it: such a check can
    /// only come from a client spoofing that peer's address with its own credentials.
    fn commit_verified(&mut self) {
        for (pid, addr) in std::mem::take(&mut self.io.verified) {
            if !self.peers.contains_key(&pid) {
                // Gone since (an answer drained on a timer, committed at the next datagram).
                continue;
            }
            if let Some(owner) = self.router.owner(addr).filter(|o| *o != pid) {
                let live = self.peers.get(&owner).is_some_and(|o| {
                    o.connected && o.disconnected_since.is_none() && o.remote == Some(addr)
                });
                if live {
                    tracing::info!(worker = self.index, peer = pid, %addr, owner, "check from another peer's live address ignored");
                    continue;
                }
            }
            self.router.learn(pid, addr);
            let Some(peer) = self.peers.get_mut(&pid) else {
                continue;
            };
            if peer.remote.is_some_and(|r| r != addr) {
                // A verified check from another address (NAT rebinding, another candidate
                // pair): str0m may move the nominated pair there. The fast path waits until
                // str0m has sent DTLS or SRTP again and so named the pair it uses (media
                // goes through str0m meanwhile; a check on a pair not chosen costs only that).
                set_remote(peer, &mut self.io.lanes, None);
            }
        }
    }

    /// Carries out one command from signalling or another worker (the shell takes
    /// [`Command::Shutdown`] itself), then forwards what it brought.
    pub fn handle_command(&mut self, now: Instant, cmd: Command) {
        self.last_now = now;
        match cmd {
            // The shell's: it stops its loop.
            Command::Shutdown => {}
            #[cfg(debug_assertions)]
            Command::Panic => panic!("media worker {}: panic asked for by a test", self.index),
            Command::Add {
                session,
                room,
                role,
                peer,
                piped_from,
                reply,
            } => {
                if piped_from.is_some() {
                    // The room's tracks were in the inbox before OpenPipe was answered,
                    // so before this command was sent; take them all in first, so the
                    // codec check and the slots see them.
                    while self.io.out.piped_waiting() || !self.pipe_stash.is_empty() {
                        self.drain_pipe(now);
                    }
                }
                let r = self.check_compatible(&room, role, &peer);
                if r.is_ok() {
                    self.add_peer(session, room, role, *peer, piped_from, now);
                } else {
                    // The refused peer is dropped here; its place is freed by signalling.
                    drop(peer);
                }
                let _ = reply.send(r);
            }
            Command::Remove { session, reply } => {
                if let Some(&pid) = self.by_session.get(&session) {
                    self.remove_peer(pid, now);
                }
                if let Some(r) = reply {
                    let _ = r.send(());
                }
            }
            Command::IceRestart {
                session,
                offer,
                reply,
            } => {
                let res = self.ice_restart(&session, *offer, now);
                let _ = reply.send(res);
            }
            Command::AddCandidates {
                session,
                candidates,
            } => {
                if let Some(peer) = self
                    .by_session
                    .get(&session)
                    .and_then(|pid| self.peers.get_mut(pid))
                {
                    for c in candidates {
                        peer.rtc.add_remote_candidate(c);
                        drain(peer, &mut self.io, now);
                    }
                }
            }
            Command::SetSpotlight { room, part } => {
                self.set_spotlight(&room, part, now);
            }
            Command::OpenPipe { room, to, reply } => {
                self.open_pipe(room, to);
                let _ = reply.send(());
            }
            Command::ClosePipe { room, to } => self.close_pipe(&room, to),
            // Counted in `keyframe_requests_in` where it was asked for.
            Command::PipeKeyframe { tid, layer } => self.gate_keyframe(tid, layer, now),
            Command::LinkStats { room, reply } => {
                // A oneshot send never blocks; a caller that gave up is fine to ignore.
                let _ = reply.send(self.link_stats(&room));
            }
            Command::SetLayer {
                session,
                rid,
                reply,
            } => {
                let found = match self
                    .by_session
                    .get(&session)
                    .and_then(|pid| self.peers.get_mut(pid))
                {
                    Some(peer) if peer.role == Role::Subscriber => {
                        for slot in peer.slots.iter_mut() {
                            if slot.kind == MediaKind::Video {
                                slot.wanted_rid = rid.clone();
                            }
                        }
                        true
                    }
                    _ => false,
                };
                let _ = reply.send(found);
            }
        }
        self.process_pending(now);
    }

    /// The latest link figures of every peer of `room` (a few per lesson, every few seconds).
    #[must_use]
    pub fn link_stats(&self, room: &str) -> Vec<LinkStat> {
        let Some(room) = self.rooms.get(room) else {
            return Vec::new();
        };
        room.peers
            .iter()
            .filter_map(|pid| self.peers.get(pid))
            .map(|p| LinkStat {
                session: p.session.clone(),
                part: p.part.clone(),
                role: p.role,
                rtt_ms: p.link.rtt.map(|d| d.as_secs_f64() * 1000.0),
                loss_pct: p.link.loss.map(|l| f64::from(l) * 100.0),
                kbps_in: f64::from(p.link.kbps_in),
                kbps_out: f64::from(p.link.kbps_out),
            })
            .collect()
    }

    /// A viewer must be able to receive at least one live video codec of the room (if the
    /// room has live video), or it would connect and show nothing.
    fn check_compatible(
        &self,
        room: &str,
        role: Role,
        peer: &PreparedPeer,
    ) -> Result<(), AddError> {
        if role != Role::Subscriber {
            return Ok(());
        }
        let Some(room) = self.rooms.get(room) else {
            return Ok(());
        };
        let live: Vec<PayloadParams> = room
            .tracks
            .iter()
            .filter_map(|t| self.tracks.get(t))
            .filter(|t| t.kind == MediaKind::Video)
            .filter_map(|t| t.params)
            .collect();
        if live.is_empty() {
            return Ok(());
        }
        let video_mids: Vec<Mid> = peer
            .medias
            .iter()
            .filter(|m| m.kind == MediaKind::Video)
            .map(|m| m.mid)
            .collect();
        let ok = live.iter().any(|p| {
            video_mids
                .iter()
                .any(|mid| out_payload_type(&peer.rtc, *mid, p).is_some())
        });
        if ok {
            Ok(())
        } else {
            let names: Vec<String> = live
                .iter()
                .map(|p| {
                    let s = p.spec();
                    match s.format.profile_level_id {
                        Some(pl) if s.codec == Codec::H264 => format!("H264 ({pl:06x})"),
                        _ => format!("{:?}", s.codec),
                    }
                })
                .collect();
            Err(AddError::IncompatibleCodec(format!(
                "this room is sending {}; the offer cannot receive it",
                names.join(", ")
            )))
        }
    }

    fn add_peer(
        &mut self,
        session: String,
        room_name: String,
        role: Role,
        prepared: PreparedPeer,
        piped_from: Option<usize>,
        now: Instant,
    ) {
        let id = self.next_id;
        self.next_id += 1;
        let PreparedPeer {
            rtc,
            medias,
            local_ufrag,
            part,
            follow,
            keys,
            ..
        } = prepared;
        let slots = if role == Role::Subscriber {
            medias
                .iter()
                .enumerate()
                .map(|(si, m)| Slot::new(m.mid, m.kind, self.io.lanes.insert(Lane::new(id, si))))
                .collect()
        } else {
            Vec::new()
        };
        let mut peer = Peer {
            id,
            session: session.clone(),
            room: room_name.clone(),
            role,
            rtc,
            medias,
            next_timeout: now,
            connected: false,
            disconnected_since: None,
            tracks: Vec::new(),
            rx_streams: HashMap::new(),
            rx_params: Vec::new(),
            slots,
            part,
            follow,
            stats_seen: HashMap::new(),
            link: LinkFigures::new(now),
            keys,
            egress: None,
            egress_tried: false,
            remote: None,
            piped_from,
            limit: TokenBucket::new(self.publish_cap, now),
        };
        let room = self.rooms.entry(room_name.clone()).or_default();
        room.peers.push(id);
        let mut new_tracks = Vec::new();
        if role == Role::Publisher {
            for m in &peer.medias {
                let tid = self.next_id;
                self.next_id += 1;
                let layers = if m.rids.is_empty() {
                    vec![Layer::new(None, self.keyframe_interval)]
                } else {
                    m.rids
                        .iter()
                        .map(|r| Layer::new(Some(*r), self.keyframe_interval))
                        .collect()
                };
                self.tracks.insert(
                    tid,
                    Track {
                        publisher: id,
                        mid: m.mid,
                        kind: m.kind,
                        layers,
                        subscribers: Vec::new(),
                        params: None,
                        part: peer.part.clone(),
                        origin: None,
                        pipes: Vec::new(),
                    },
                );
                room.tracks.push(tid);
                peer.tracks.push((m.mid, tid));
                new_tracks.push(tid);
            }
            self.io.metrics.tracks.inc_by(new_tracks.len() as i64);
        }
        // Workers holding viewers of this room get the new tracks too.
        let pipes: Vec<usize> = self
            .pipes_out
            .get(&room_name)
            .map(|p| p.iter().map(|(w, _)| *w).collect())
            .unwrap_or_default();
        for &tid in &new_tracks {
            for &to in &pipes {
                self.pipe_track(&room_name, tid, to);
            }
        }
        self.wake_pipes();
        self.by_session.insert(session, id);
        self.router.add_ufrag(id, local_ufrag);
        if role == Role::Subscriber {
            // Keep one second of sent packets for NACKs (rural RTTs are well under that);
            // str0m's default of three seconds triples the per-subscriber memory.
            let mids: Vec<Mid> = peer.slots.iter().map(|s| s.mid).collect();
            for mid in mids {
                fresh_history(&mut peer, mid);
            }
        }
        self.created.insert(id, now);
        drain(&mut peer, &mut self.io, now);
        self.peers.insert(id, peer);
        self.io
            .metrics
            .peers
            .get_or_create(&RoleLabels {
                role: role_label(role),
            })
            .inc();
        self.count_rooms();
        // Bind free subscriber slots in the room (or this subscriber's slots) to tracks.
        let room_peers = self.rooms.get(&room_name).map(|r| r.peers.clone());
        for pid in room_peers.unwrap_or_default() {
            self.bind_free_slots(pid, now);
        }
        tracing::info!(worker = self.index, peer = id, room = %room_name, ?role, "peer added");
    }

    /// Binds each unbound slot of subscriber `sid` to a track of its kind it doesn't get yet.
    fn bind_free_slots(&mut self, sid: PeerId, now: Instant) {
        let Some(sub) = self.peers.get(&sid) else {
            return;
        };
        if sub.role != Role::Subscriber {
            return;
        }
        let Some(room) = self.rooms.get(&sub.room) else {
            return;
        };
        let mut bindings = Vec::new();
        let mut taken: Vec<TrackId> = sub.slots.iter().filter_map(|s| s.track).collect();
        let spotlight = room.spotlight.as_deref();
        for (si, slot) in sub.slots.iter().enumerate() {
            if slot.track.is_some() {
                continue;
            }
            let found = room.tracks.iter().copied().find(|tid| {
                !taken.contains(tid)
                    && self
                        .tracks
                        .get(tid)
                        .map(|t| {
                            t.kind == slot.kind
                                && t.publisher != sid
                                && sub.follow.accepts(t.part.as_deref(), spotlight)
                        })
                        .unwrap_or(false)
            });
            if let Some(tid) = found {
                taken.push(tid);
                bindings.push((si, tid));
            }
        }
        for (si, tid) in bindings {
            let Some(track) = self.tracks.get_mut(&tid) else {
                continue;
            };
            let Some(sub) = self.peers.get_mut(&sid) else {
                return;
            };
            let slot = &mut sub.slots[si];
            track.subscribers.push((sid, si, slot.lane));
            let kind = track.kind;
            slot.track = Some(tid);
            slot.layer = track.choose_layer(slot.wanted_rid.as_deref(), now);
            if let Some(lane) = self.io.lanes.get_mut(slot.lane) {
                lane.clear_pts();
            }
            let connected = sub.connected;
            if kind == MediaKind::Video {
                slot.waiting_keyframe = Some(now);
                if connected {
                    let layer = slot.layer;
                    self.start_video(sid, si, tid, layer, now);
                }
            }
        }
    }

    /// Moves the room's spotlight: subscribers following it drop the tracks of the previous
    /// participant and bind the new one's. Their rewriters stay, so each keeps one
    /// continuous output stream that switches at the next keyframe.
    fn set_spotlight(&mut self, room_name: &str, part: Option<String>, now: Instant) {
        let Some(room) = self.rooms.get_mut(room_name) else {
            return;
        };
        if room.spotlight == part {
            return;
        }
        room.spotlight = part;
        let followers: Vec<PeerId> = room
            .peers
            .iter()
            .copied()
            .filter(|p| {
                self.peers
                    .get(p)
                    .is_some_and(|p| p.follow == super::Follow::Spotlight)
            })
            .collect();
        for sid in followers {
            let bound: Vec<(usize, TrackId)> = self.peers[&sid]
                .slots
                .iter()
                .enumerate()
                .filter_map(|(i, s)| s.track.map(|t| (i, t)))
                .collect();
            for (si, tid) in bound {
                if let Some(t) = self.tracks.get_mut(&tid) {
                    t.subscribers.retain(|(s, i, _)| !(*s == sid && *i == si));
                }
                if let Some(slot) = self.peers.get_mut(&sid).and_then(|p| p.slots.get_mut(si)) {
                    unbind(slot, &mut self.io.lanes);
                }
            }
            self.bind_free_slots(sid, now);
        }
    }

    fn remove_peer(&mut self, pid: PeerId, now: Instant) {
        let Some(mut peer) = self.peers.remove(&pid) else {
            return;
        };
        self.created.remove(&pid);
        self.by_session.remove(&peer.session);
        self.router.remove(pid);
        if let Some(room) = self.rooms.get_mut(&peer.room) {
            room.peers.retain(|p| *p != pid);
            for (_, tid) in &peer.tracks {
                room.tracks.retain(|t| t != tid);
            }
        }
        let mut rebind = Vec::new();
        for (_, tid) in &peer.tracks {
            rebind.extend(self.drop_track(*tid));
        }
        self.forget_room_if_empty(&peer.room);
        for slot in &peer.slots {
            if let Some(tid) = slot.track {
                if let Some(t) = self.tracks.get_mut(&tid) {
                    t.subscribers.retain(|(s, _, _)| *s != pid);
                }
            }
            self.io.lanes.try_remove(slot.lane);
        }
        peer.rtc.disconnect();
        rebind.sort_unstable();
        rebind.dedup();
        for sid in rebind {
            self.bind_free_slots(sid, now);
        }
        if let Some(home) = peer.piped_from {
            let _ = self.io.out.command(
                home,
                Command::ClosePipe {
                    room: peer.room.clone(),
                    to: self.index,
                },
            );
        }
        self.load.fetch_sub(1, Ordering::Relaxed);
        self.io
            .metrics
            .peers
            .get_or_create(&RoleLabels {
                role: role_label(peer.role),
            })
            .dec();
        self.count_rooms();
        self.peer_count.fetch_sub(1, Ordering::Relaxed);
        // Unbounded send never blocks; a closed receiver (shutdown) is fine to ignore.
        self.io.out.event(SfuEvent::PeerGone {
            session: peer.session.clone(),
        });
        tracing::info!(worker = self.index, peer = pid, session = %peer.session, "peer removed");
    }

    fn ice_restart(
        &mut self,
        session: &str,
        offer: str0m::change::SdpOffer,
        now: Instant,
    ) -> Result<String, String> {
        let pid = *self.by_session.get(session).ok_or("unknown session")?;
        let peer = self.peers.get_mut(&pid).ok_or("unknown session")?;
        let answer = peer
            .rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| e.to_string())?;
        let ufrag = peer.rtc.direct_api().local_ice_credentials().ufrag;
        tracing::debug!(session, ufrag = %ufrag, "ICE restart applied");
        self.router.add_ufrag(pid, ufrag);
        // The client may come back on another address: the fast path waits until str0m has
        // sent DTLS or SRTP on the new pair (media goes through str0m until then).
        set_remote(peer, &mut self.io.lanes, None);
        drain(peer, &mut self.io, now);
        Ok(answer.to_sdp_string())
    }

    /// Forwards queued RTP and handles queued keyframe requests until both queues are empty.
    fn process_pending(&mut self, now: Instant) {
        if self.io.pending_rtp.is_empty()
            && self.io.pending_kf.is_empty()
            && self.io.connected.is_empty()
        {
            return;
        }
        let mut rtp = Vec::new();
        let mut kf = Vec::new();
        let mut streams: Vec<(PeerId, Ssrc)> = Vec::new();
        loop {
            for pid in std::mem::take(&mut self.io.connected) {
                self.on_connected(pid, now);
            }
            std::mem::swap(&mut rtp, &mut self.io.pending_rtp);
            std::mem::swap(&mut kf, &mut self.io.pending_kf);
            if rtp.is_empty() && kf.is_empty() && self.io.connected.is_empty() {
                break;
            }
            // One publisher stream's packets together (each stream's order kept, streams in
            // the order their first packet arrived), so each subscriber gets a stream's share
            // of the turn as a run (`forward_group`).
            streams.clear();
            for (pid, pkt) in &rtp {
                if !streams.contains(&(*pid, pkt.header.ssrc)) {
                    streams.push((*pid, pkt.header.ssrc));
                }
            }
            if streams.len() > 1 {
                rtp.sort_by_key(|(pid, pkt)| {
                    streams.iter().position(|k| *k == (*pid, pkt.header.ssrc))
                });
            }
            for group in rtp.chunk_by(|a, b| a.0 == b.0 && a.1.header.ssrc == b.1.header.ssrc) {
                self.forward_group(group, now);
            }
            rtp.clear();
            for (sid, mid) in kf.drain(..) {
                self.subscriber_wants_keyframe(sid, mid, now);
            }
        }
        // Keep the allocation of the larger buffer for the next round.
        if self.io.pending_rtp.capacity() < rtp.capacity() {
            self.io.pending_rtp = rtp;
        }
    }

    fn on_connected(&mut self, pid: PeerId, now: Instant) {
        let Some(peer) = self.peers.get_mut(&pid) else {
            return;
        };
        let mut video = Vec::new();
        for (si, slot) in peer.slots.iter_mut().enumerate() {
            if let (Some(tid), MediaKind::Video) = (slot.track, slot.kind) {
                slot.waiting_keyframe = Some(now);
                video.push((si, tid, slot.layer));
            }
        }
        for (si, tid, layer) in video {
            self.start_video(pid, si, tid, layer, now);
        }
    }

    /// A connected subscriber's video slot needs a picture: the layer's cached GOP if there
    /// is one, else a keyframe request (through the gate).
    fn start_video(&mut self, sid: PeerId, si: usize, tid: TrackId, layer: usize, now: Instant) {
        if self.replay_gop(sid, si, now) {
            return;
        }
        if let Some(slot) = self.peers.get_mut(&sid).and_then(|p| p.slots.get_mut(si)) {
            slot.last_kf_request = Some(now);
        }
        self.request_keyframe(tid, layer, now);
    }

    /// Sends slot `si` of `sid` its layer's current GOP, keyframe first. True if it did.
    fn replay_gop(&mut self, sid: PeerId, si: usize, now: Instant) -> bool {
        let Some(sub) = self.peers.get(&sid) else {
            return false;
        };
        let Some(slot) = sub.slots.get(si) else {
            return false;
        };
        let lane = slot.lane;
        // On the fast path every copy leaves at once and str0m keeps no history for it.
        let direct = sub.egress.is_some() && sub.remote.is_some();
        let Some(track) = slot.track.and_then(|t| self.tracks.get(&t)) else {
            return false;
        };
        let Some(layer) = track.layers.get(slot.layer) else {
            return false;
        };
        let (Some(gop), Some(params), Some(ssrc)) = (layer.gop.replay(), track.params, layer.ssrc)
        else {
            return false;
        };
        let source = source_id(track.publisher, *ssrc);
        let clock_rate = params.spec().clock_rate.get();
        // The replay is a burst: on a slow link (or a full socket buffer) some of it is lost,
        // so all of it stays retransmittable; the history it grows is shrunk back once the
        // replay has aged out (`history_reset_at`, see `fresh_history`).
        let mut sent = false;
        for (i, p) in gop.iter().enumerate() {
            let f = Fwd {
                source,
                pkt: p,
                params: &params,
                nackable: true,
                kept: direct.then(|| {
                    self.io
                        .recent
                        .keep(&out_packet(p, 0, 0, 0), &p.payload, now)
                }),
                may_start: i == 0,
                clock_rate,
                pad_to: None,
            };
            let ok = write_slot(lane, &mut self.peers, &mut self.io, &f, now);
            if !direct && i % REPLAY_FLUSH == REPLAY_FLUSH - 1 {
                // str0m releases written packets at its next timeout; let a few out at a time
                // so a replay never queues the whole GOP per viewer (memory per subscriber).
                if let Some(sub) = self.peers.get_mut(&sid) {
                    if sub.rtc.handle_input(Input::Timeout(now)).is_ok() {
                        drain(sub, &mut self.io, now);
                    }
                }
            }
            if i == 0 {
                if !ok {
                    // The rewriter did not take the keyframe (no payload type matches, say):
                    // fall back to a keyframe request.
                    return false;
                }
                // Counted before the rest goes out, so whoever sees the keyframe sees this.
                self.io.metrics.gop_replays.inc();
                if direct {
                    // The whole burst stays retransmittable (shrunk back after it aged out).
                    if let Some(out) = self.io.lanes.get_mut(lane).and_then(|l| l.out.as_mut()) {
                        out.reserve_history(gop.len());
                    }
                }
            }
            sent |= ok;
        }
        if sent {
            if let Some(slot) = self.peers.get_mut(&sid).and_then(|p| p.slots.get_mut(si)) {
                slot.history_reset_at = Some(now + RTX_CACHE_AGE);
            }
        }
        sent
    }

    /// Forwards `pkts`, packets of one publisher's stream (one SSRC) that arrived in this
    /// loop turn, in their order. Each subscriber gets all of them before the next
    /// subscriber is served: its state stays in cache for the run, and its datagrams queue
    /// next to each other, so a frame's equal-sized packets leave as one UDP GSO send.
    fn forward_group(&mut self, pkts: &[(PeerId, RtpPacket)], now: Instant) {
        let Some(&(pid, ref first)) = pkts.first() else {
            return;
        };
        let kf_interval = self.keyframe_interval;
        count_in(&self.io.metrics, pkts);
        let Some(publisher) = self.peers.get_mut(&pid) else {
            return;
        };
        let ssrc = first.header.ssrc;
        let (tid, li) = match publisher.rx_streams.get(&ssrc) {
            Some(v) => *v,
            None => {
                let (mid, rid) = {
                    let mut api = publisher.rtc.direct_api();
                    let Some(s) = api.stream_rx(&ssrc) else {
                        return;
                    };
                    (s.mid(), s.rid())
                };
                let Some(&(_, tid)) = publisher.tracks.iter().find(|(m, _)| *m == mid) else {
                    return;
                };
                let Some(track) = self.tracks.get_mut(&tid) else {
                    return;
                };
                let li = track.layer_for(rid, kf_interval);
                track.layers[li].ssrc = Some(ssrc);
                publisher.rx_streams.insert(ssrc, (tid, li));
                (tid, li)
            }
        };
        let source = source_id(pid, *ssrc);
        let mut preps = std::mem::take(&mut self.preps);
        preps.clear();
        self.prepare(pid, tid, li, ssrc, pkts, &mut preps, now);
        // Other workers holding viewers start on their share while this one does its own.
        self.wake_pipes();
        self.fan_out(tid, li, source, &mut preps, Rest::Socket { pid, ssrc }, now);
        self.preps = preps;
    }

    /// Takes packets of publisher `pid`'s stream `ssrc` (layer `li` of track `tid`) in
    /// (`ingest`), appending them to `preps`.
    #[allow(clippy::too_many_arguments)]
    fn prepare(
        &mut self,
        pid: PeerId,
        tid: TrackId,
        li: usize,
        ssrc: Ssrc,
        pkts: &[(PeerId, RtpPacket)],
        preps: &mut Vec<Prep>,
        now: Instant,
    ) {
        for (_, pkt) in pkts {
            let Some(params) = self
                .peers
                .get_mut(&pid)
                .and_then(|p| p.rx_params(pkt.header.payload_type))
            else {
                continue;
            };
            let h = &pkt.header.ext_vals;
            let cached = CachedPacket {
                seq: *pkt.seq_no,
                ts: pkt.header.timestamp,
                arrival: pkt.timestamp,
                pt: pkt.header.payload_type,
                marker: pkt.header.marker,
                // Shares the payload buffer: one refcount per packet, no copy.
                payload: pkt.payload.clone(),
                ext: ExtensionValues {
                    audio_level: h.audio_level,
                    voice_activity: h.voice_activity,
                    video_orientation: h.video_orientation,
                    abs_capture_time: h.abs_capture_time,
                    ..Default::default()
                },
            };
            match self.ingest(tid, li, ssrc, params, cached, now) {
                Some(p) => preps.push(p),
                None => break,
            }
        }
    }

    /// Takes packet `pkt` of layer `li` of track `tid` in: the track's codec and the layer's
    /// rate, keyframe gate and GOP cache, and a copy into the pipe of every worker the
    /// track is piped to. `None` if the track is gone.
    fn ingest(
        &mut self,
        tid: TrackId,
        li: usize,
        ssrc: Ssrc,
        params: PayloadParams,
        pkt: CachedPacket,
        now: Instant,
    ) -> Option<Prep> {
        let track = self.tracks.get_mut(&tid)?;
        if track.params.map(|p| p.pt()) != Some(params.pt()) {
            if track.params.is_some() {
                // Another codec: what was cached no longer matches the track's parameters.
                for l in &mut track.layers {
                    l.gop.clear();
                }
            }
            track.params = Some(params);
        }
        let is_video = track.kind == MediaKind::Video;
        let keyframe = is_video && starts_keyframe(params.spec().codec, &pkt.payload);
        let layer = track.layers.get_mut(li)?;
        layer.window_bytes += pkt.payload.len() as u64;
        layer.last_packet = Some(now);
        if keyframe {
            layer.gate.keyframe_arrived();
        }
        if is_video {
            layer.gop.push(keyframe, pkt.clone());
        }
        if !track.pipes.is_empty() {
            let rid = layer.rid;
            if keyframe {
                layer.pipe_gaps.clear();
            }
            for &to in &track.pipes {
                let Some(backlog) = self.io.out.pipe_len(to) else {
                    continue;
                };
                if layer.pipe_gaps.contains(&to) {
                    self.io.metrics.pipe_drops.inc();
                    continue;
                }
                if backlog >= self.pipe_backlog {
                    self.io.metrics.pipe_drops.inc();
                    if is_video {
                        layer.pipe_gaps.push(to);
                    }
                    continue;
                }
                let msg = PipeMsg::Rtp {
                    home: self.index,
                    packet: PipedPacket {
                        tid,
                        layer: li,
                        rid,
                        ssrc,
                        params,
                        pkt: pkt.for_another_worker(),
                    },
                    arrived: self.io.out.arrival(),
                };
                if self.io.out.pipe(to, msg) {
                    self.io.metrics.pipe_packets.inc();
                    if !self.pipe_wake.contains(&to) {
                        self.pipe_wake.push(to);
                    }
                }
            }
        }
        let kept = is_video.then(|| {
            self.io
                .recent
                .keep(&out_packet(&pkt, 0, 0, 0), &pkt.payload, now)
        });
        Some(Prep {
            pkt,
            params,
            is_video,
            keyframe,
            clock_rate: params.spec().clock_rate.get(),
            kept,
        })
    }

    /// Sends `preps`, packets of layer `li` of track `tid` from stream `source`, to the
    /// track's subscribers on this worker, one subscriber after the other.
    ///
    /// A group that ends in the middle of a video frame (its last packet has no marker) was
    /// read while the publisher was still sending the frame; its rest comes a few
    /// microseconds later, while this fan-out runs (milliseconds for hundreds of viewers).
    /// Left for the next turn, that rest would wait for the whole fan-out and then go out
    /// viewer by viewer again: the frame's latency for the last viewer doubles (session 10 in
    /// BENCHMARKS.md). So between chunks of viewers the worker looks where the rest comes
    /// from (`rest`); what it finds goes at once to the viewers already served, and with the
    /// first part to the others.
    fn fan_out(
        &mut self,
        tid: TrackId,
        li: usize,
        source: SourceId,
        preps: &mut Vec<Prep>,
        rest: Rest,
        now: Instant,
    ) {
        let mut kf_needed: Vec<(TrackId, usize)> = Vec::new();
        let mut served = 0;
        while let Some(viewers) = self.tracks.get(&tid).map(|t| t.subscribers.len()) {
            let end = (served + self.fanout_chunk).min(viewers);
            self.serve(tid, li, source, preps, served..end, &mut kf_needed, now);
            served = end;
            if served >= viewers {
                break;
            }
            if frame_open(preps) {
                let from = preps.len();
                self.look_for_rest(tid, li, rest, preps, now);
                if preps.len() > from {
                    // The viewers already served get the rest now; the others get the
                    // whole group in one run.
                    self.serve(
                        tid,
                        li,
                        source,
                        &preps[from..],
                        0..served,
                        &mut kf_needed,
                        now,
                    );
                }
            }
        }
        for (tid, layer) in kf_needed {
            self.request_keyframe(tid, layer, now);
        }
    }

    /// Sends `preps` to the track's subscribers `viewers` (indices in its list).
    #[allow(clippy::too_many_arguments)]
    fn serve(
        &mut self,
        tid: TrackId,
        li: usize,
        source: SourceId,
        preps: &[Prep],
        viewers: std::ops::Range<usize>,
        kf_needed: &mut Vec<(TrackId, usize)>,
        now: Instant,
    ) {
        let Some(track) = self.tracks.get(&tid) else {
            return;
        };
        let Some(list) = track.subscribers.get(viewers) else {
            return;
        };
        let simulcast = track.kind == MediaKind::Video && track.layers.len() > 1;
        // The automatic choice is the same for every subscriber: compute it once.
        let auto_layer = if simulcast {
            track.choose_layer(None, now)
        } else {
            0
        };
        // Per viewer only its lane is read (one record, in join order), not its `Peer`,
        // except for simulcast's layer choice.
        for &(sid, si, lid) in list {
            let Some(lane) = self.io.lanes.get(lid) else {
                continue;
            };
            // A lane is freed only with its peer, after the peer left every track's list.
            debug_assert!(lane.peer == sid && lane.slot == si, "stale lane {lid}");
            if !lane.live {
                continue;
            }
            let pad_to = group_size(lane, source, preps);
            for prep in preps {
                if simulcast {
                    let Some(slot) = self.peers.get_mut(&sid).and_then(|p| p.slots.get_mut(si))
                    else {
                        break;
                    };
                    let want = match slot.wanted_rid.as_deref() {
                        None => auto_layer,
                        wanted => track.choose_layer(wanted, now),
                    };
                    if want != slot.layer {
                        slot.layer = want;
                        slot.waiting_keyframe = Some(now);
                        slot.last_kf_request = Some(now);
                        kf_needed.push((tid, want));
                    }
                    let current = self
                        .io
                        .lanes
                        .get(lid)
                        .and_then(|l| l.rewriter.as_ref())
                        .and_then(|r| r.current_source());
                    if li != slot.layer && current != Some(source) {
                        continue;
                    }
                }
                let f = Fwd {
                    source,
                    pkt: &prep.pkt,
                    params: &prep.params,
                    nackable: prep.is_video,
                    kept: prep.kept,
                    may_start: !prep.is_video || prep.keyframe,
                    clock_rate: prep.clock_rate,
                    pad_to,
                };
                write_slot(lid, &mut self.peers, &mut self.io, &f, now);
            }
        }
    }

    /// During a fan-out of an unfinished frame: takes in the packets of its rest that came
    /// meanwhile (read from the socket, or from the pipe for a piped-in track), appending
    /// them to `preps`. Whatever else a look reads waits for the fan-out to end, in order.
    fn look_for_rest(
        &mut self,
        tid: TrackId,
        li: usize,
        rest: Rest,
        preps: &mut Vec<Prep>,
        now: Instant,
    ) {
        self.io.metrics.fanout_looks.inc();
        let from = preps.len();
        match rest {
            Rest::Socket { pid, ssrc } => {
                let mut buf = std::mem::take(&mut self.look_buf);
                let mut read = 0;
                while read < LOOK_BUDGET {
                    match self.io.out.recv(&mut buf) {
                        Ok((n, from)) => {
                            read += 1;
                            self.io.metrics.udp_datagrams_in.inc();
                            if n > recvq::MAX_DATAGRAM {
                                // Longer than any WebRTC datagram: not ours (as in a batch).
                                self.io.metrics.udp_unroutable.inc();
                            } else {
                                self.handle_datagram(now, from, &buf[..n]);
                            }
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == ErrorKind::Interrupted => {}
                        // ICMP errors (port unreachable) surface here on Linux; not fatal.
                        Err(_) => read += 1,
                    }
                }
                if read == LOOK_BUDGET {
                    self.left_unread = true;
                }
                self.look_buf = buf;
                let found = take_stream(&mut self.io.pending_rtp, pid, ssrc);
                if !found.is_empty() {
                    count_in(&self.io.metrics, &found);
                    self.prepare(pid, tid, li, ssrc, &found, preps, now);
                }
            }
            Rest::Pipe => {
                for _ in 0..LOOK_BUDGET {
                    let Some(msg) = self.io.out.piped() else {
                        break;
                    };
                    self.pipe_stash.push_back(msg);
                }
                let piped = &self.piped;
                let found = take_piped(&mut self.pipe_stash, |home, their| {
                    piped.get(&(home, their.tid)).map(|(_, ours)| *ours) == Some(tid)
                        && their.layer == li
                });
                for (mut p, arrived) in found {
                    if let Some(t) = arrived {
                        self.io.out.note_arrival(t);
                    }
                    p.tid = tid;
                    match self.ingest(tid, li, p.ssrc, p.params, p.pkt, now) {
                        Some(prep) => preps.push(prep),
                        None => break,
                    }
                }
            }
        }
        if preps.len() > from {
            self.io
                .metrics
                .fanout_joined_packets
                .inc_by((preps.len() - from) as u64);
            self.wake_pipes();
        }
    }

    /// Forwards piped packets of one layer of one piped-in track (see `drain_pipe`).
    fn forward_piped(&mut self, group: &[PipedPacket], now: Instant) {
        let Some(first) = group.first() else {
            return;
        };
        let (tid, li, ssrc) = (first.tid, first.layer, first.ssrc);
        let kf_interval = self.keyframe_interval;
        let Some(track) = self.tracks.get_mut(&tid) else {
            return;
        };
        // The home worker's layer indices, rids and SSRCs.
        while track.layers.len() <= li {
            track.layers.push(Layer::new(None, kf_interval));
        }
        let layer = &mut track.layers[li];
        layer.rid = first.rid;
        layer.ssrc = Some(ssrc);
        let source = source_id(track.publisher, *ssrc);
        let mut preps = std::mem::take(&mut self.preps);
        preps.clear();
        for p in group {
            match self.ingest(tid, li, ssrc, p.params, p.pkt.clone(), now) {
                Some(prep) => preps.push(prep),
                None => break,
            }
        }
        self.fan_out(tid, li, source, &mut preps, Rest::Pipe, now);
        self.preps = preps;
    }

    /// Reads the pipe inbox: tracks and packets of rooms whose home is another worker.
    /// Messages are taken in order; packets are forwarded in runs, like a socket batch.
    fn drain_pipe(&mut self, now: Instant) {
        let mut pending = std::mem::take(&mut self.pipe_in);
        for _ in 0..PIPE_TURN {
            let Some(msg) = self.next_pipe_msg() else {
                break;
            };
            match msg {
                PipeMsg::Rtp {
                    home,
                    mut packet,
                    arrived,
                } => {
                    if let Some(t) = arrived {
                        // Copies sent this turn are timed from the home worker's arrival.
                        self.io.out.note_arrival(t);
                    }
                    if let Some((_, ours)) = self.piped.get(&(home, packet.tid)) {
                        packet.tid = *ours;
                        pending.push(packet);
                    }
                    continue;
                }
                other => {
                    // A change of tracks applies after the packets before it. It waits at
                    // the head of the stash while they go out, so that a look for a frame's
                    // rest during their fan-out (`take_piped`) takes nothing past it.
                    self.pipe_stash.push_front(other);
                    self.forward_pipe_batch(&mut pending, now);
                    if let Some(other) = self.pipe_stash.pop_front() {
                        self.on_pipe_change(other, now);
                    }
                }
            }
        }
        self.forward_pipe_batch(&mut pending, now);
        self.pipe_in = pending;
    }

    /// The next pipe message: one a look during a fan-out set aside, else the inbox's.
    fn next_pipe_msg(&mut self) -> Option<PipeMsg> {
        self.pipe_stash.pop_front().or_else(|| self.io.out.piped())
    }

    fn forward_pipe_batch(&mut self, pending: &mut Vec<PipedPacket>, now: Instant) {
        if pending.is_empty() {
            return;
        }
        // One group per track layer, each layer's order kept (as `process_pending` does), so
        // a look during a group's fan-out never takes a later packet of its layer past one
        // still waiting here.
        let mut order: Vec<(TrackId, usize)> = Vec::new();
        for p in pending.iter() {
            if !order.contains(&(p.tid, p.layer)) {
                order.push((p.tid, p.layer));
            }
        }
        if order.len() > 1 {
            pending.sort_by_key(|p| order.iter().position(|k| *k == (p.tid, p.layer)));
        }
        for group in pending.chunk_by(|a, b| a.tid == b.tid && a.layer == b.layer) {
            self.forward_piped(group, now);
        }
        pending.clear();
        self.process_pending(now);
    }

    /// A piped-in track came, went, or the whole room's pipe closed.
    fn on_pipe_change(&mut self, msg: PipeMsg, now: Instant) {
        let mut rebind = Vec::new();
        let mut room_name = None;
        match msg {
            PipeMsg::Rtp { .. } => {}
            PipeMsg::Track {
                room,
                home,
                tid,
                mid,
                kind,
                part,
                rids,
                params,
            } => {
                if self.piped.contains_key(&(home, tid)) {
                    return;
                }
                let ours = self.next_id;
                self.next_id += 1;
                let layers = rids
                    .into_iter()
                    .map(|r| Layer::new(r, self.keyframe_interval))
                    .collect();
                self.tracks.insert(
                    ours,
                    Track {
                        publisher: ours,
                        mid,
                        kind,
                        layers,
                        subscribers: Vec::new(),
                        params,
                        part,
                        origin: Some((home, tid)),
                        pipes: Vec::new(),
                    },
                );
                let r = self.rooms.entry(room.clone()).or_default();
                r.tracks.push(ours);
                rebind.extend(r.peers.iter().copied());
                self.piped.insert((home, tid), (room, ours));
                self.count_rooms();
            }
            PipeMsg::TrackGone { home, tid } => {
                if let Some((room, ours)) = self.piped.remove(&(home, tid)) {
                    if let Some(r) = self.rooms.get_mut(&room) {
                        r.tracks.retain(|t| *t != ours);
                    }
                    rebind.extend(self.drop_track(ours));
                    room_name = Some(room);
                }
            }
            PipeMsg::Closed { room, home } => {
                let gone: Vec<(usize, TrackId)> = self
                    .piped
                    .iter()
                    .filter(|(k, (r, _))| k.0 == home && *r == room)
                    .map(|(k, _)| *k)
                    .collect();
                for key in gone {
                    if let Some((_, ours)) = self.piped.remove(&key) {
                        if let Some(r) = self.rooms.get_mut(&room) {
                            r.tracks.retain(|t| *t != ours);
                        }
                        rebind.extend(self.drop_track(ours));
                    }
                }
                room_name = Some(room);
            }
        }
        if let Some(room) = room_name {
            self.forget_room_if_empty(&room);
        }
        rebind.sort_unstable();
        rebind.dedup();
        for sid in rebind {
            self.bind_free_slots(sid, now);
        }
    }

    /// Removes track `tid` (already out of its room's list): its subscribers' slots are
    /// freed (returned, to be bound again), and the workers it was piped to are told.
    fn drop_track(&mut self, tid: TrackId) -> Vec<PeerId> {
        let Some(track) = self.tracks.remove(&tid) else {
            return Vec::new();
        };
        if track.origin.is_none() {
            self.io.metrics.tracks.dec();
        }
        for &to in &track.pipes {
            self.send_pipe(
                to,
                PipeMsg::TrackGone {
                    home: self.index,
                    tid,
                },
            );
        }
        self.wake_pipes();
        let mut freed = Vec::new();
        for (sid, si, _) in track.subscribers {
            if let Some(sub) = self.peers.get_mut(&sid) {
                if let Some(slot) = sub.slots.get_mut(si) {
                    unbind(slot, &mut self.io.lanes);
                }
                freed.push(sid);
            }
        }
        freed
    }

    /// Brings the `rooms` gauge (a sum over workers) up to date with this worker's rooms.
    fn count_rooms(&mut self) {
        let now = self.rooms.len() as i64;
        self.io.metrics.rooms.inc_by(now - self.rooms_counted);
        self.rooms_counted = now;
    }

    /// Forgets a room with neither peers nor tracks.
    fn forget_room_if_empty(&mut self, room: &str) {
        if self
            .rooms
            .get(room)
            .is_some_and(|r| r.peers.is_empty() && r.tracks.is_empty())
        {
            self.rooms.remove(room);
        }
        self.count_rooms();
    }

    /// A pipe message to worker `to` (woken by the next `wake_pipes`).
    fn send_pipe(&mut self, to: usize, msg: PipeMsg) {
        if self.io.out.pipe(to, msg) && !self.pipe_wake.contains(&to) {
            self.pipe_wake.push(to);
        }
    }

    /// Wakes the workers that were sent something.
    fn wake_pipes(&mut self) {
        for to in self.pipe_wake.drain(..) {
            self.io.out.wake(to);
        }
    }

    /// Starts piping track `tid` of `room` to worker `to`: announces it, then its layers'
    /// cached GOPs, so a viewer there starts from a picture at once.
    fn pipe_track(&mut self, room: &str, tid: TrackId, to: usize) {
        let Some(track) = self.tracks.get_mut(&tid) else {
            return;
        };
        if track.pipes.contains(&to) {
            return;
        }
        track.pipes.push(to);
        // A pipe opened again starts whole (its GOP follows below).
        for l in &mut track.layers {
            l.pipe_gaps.retain(|w| *w != to);
        }
        let mut msgs = vec![PipeMsg::Track {
            room: room.to_string(),
            home: self.index,
            tid,
            mid: track.mid,
            kind: track.kind,
            part: track.part.clone(),
            rids: track.layers.iter().map(|l| l.rid).collect(),
            params: track.params,
        }];
        if let Some(params) = track.params {
            for (li, layer) in track.layers.iter().enumerate() {
                let (Some(gop), Some(ssrc)) = (layer.gop.replay(), layer.ssrc) else {
                    continue;
                };
                msgs.extend(gop.iter().map(|p| PipeMsg::Rtp {
                    home: self.index,
                    packet: PipedPacket {
                        tid,
                        layer: li,
                        rid: layer.rid,
                        ssrc,
                        params,
                        pkt: p.for_another_worker(),
                    },
                    arrived: None,
                }));
            }
        }
        for msg in msgs {
            self.send_pipe(to, msg);
        }
    }

    /// One more viewer of `room` on worker `to`: the first one opens the pipe.
    fn open_pipe(&mut self, room: String, to: usize) {
        let pipes = self.pipes_out.entry(room.clone()).or_default();
        if let Some((_, n)) = pipes.iter_mut().find(|(w, _)| *w == to) {
            *n += 1;
            return;
        }
        pipes.push((to, 1));
        self.io.metrics.pipes.inc();
        let tids = self
            .rooms
            .get(&room)
            .map(|r| r.tracks.clone())
            .unwrap_or_default();
        for tid in tids {
            self.pipe_track(&room, tid, to);
        }
        self.wake_pipes();
    }

    /// One viewer of `room` on worker `to` gone: the last one closes the pipe.
    fn close_pipe(&mut self, room: &str, to: usize) {
        let Some(pipes) = self.pipes_out.get_mut(room) else {
            return;
        };
        let Some(i) = pipes.iter().position(|(w, _)| *w == to) else {
            return;
        };
        pipes[i].1 -= 1;
        if pipes[i].1 > 0 {
            return;
        }
        pipes.swap_remove(i);
        self.io.metrics.pipes.dec();
        if pipes.is_empty() {
            self.pipes_out.remove(room);
        }
        if let Some(r) = self.rooms.get(room) {
            for tid in &r.tracks {
                if let Some(t) = self.tracks.get_mut(tid) {
                    t.pipes.retain(|w| *w != to);
                }
            }
        }
        self.send_pipe(
            to,
            PipeMsg::Closed {
                room: room.to_string(),
                home: self.index,
            },
        );
        self.wake_pipes();
    }

    /// Asks for a keyframe on layer `layer` of `tid` (its gate let the request through):
    /// a PLI to its publisher, or for a piped-in track a request to its home worker.
    fn ask_keyframe(&mut self, tid: TrackId, layer: usize, now: Instant) {
        let Some(track) = self.tracks.get(&tid) else {
            return;
        };
        if let Some((home, home_tid)) = track.origin {
            let cmd = Command::PipeKeyframe {
                tid: home_tid,
                layer,
            };
            let _ = self.io.out.command(home, cmd);
            return;
        }
        let (publisher, ssrc) = (
            track.publisher,
            track.layers.get(layer).and_then(|l| l.ssrc),
        );
        self.send_pli(publisher, ssrc, now);
    }

    fn subscriber_wants_keyframe(&mut self, sid: PeerId, mid: Mid, now: Instant) {
        let Some(sub) = self.peers.get(&sid) else {
            return;
        };
        let Some(slot) = sub.slot_by_mid(mid).map(|i| &sub.slots[i]) else {
            return;
        };
        if let Some(tid) = slot.track {
            let layer = slot.layer;
            self.request_keyframe(tid, layer, now);
        }
    }

    /// Asks the publisher of `tid` for a keyframe on `layer`, through the coalescing gate.
    fn request_keyframe(&mut self, tid: TrackId, layer: usize, now: Instant) {
        self.io.metrics.keyframe_requests_in.inc();
        self.gate_keyframe(tid, layer, now);
    }

    /// [`WorkerCore::request_keyframe`] without counting it.
    fn gate_keyframe(&mut self, tid: TrackId, layer: usize, now: Instant) {
        let Some(track) = self.tracks.get_mut(&tid) else {
            return;
        };
        let Some(l) = track.layers.get_mut(layer) else {
            return;
        };
        match l.gate.request(now) {
            Decision::SendNow => self.ask_keyframe(tid, layer, now),
            Decision::Coalesced => {
                self.io.metrics.keyframe_requests_coalesced.inc();
            }
            Decision::Deferred(at) => {
                self.io.metrics.keyframe_requests_coalesced.inc();
                self.io.timers.push(Reverse((at, Timer::Gate(tid, layer))));
            }
        }
    }

    fn send_pli(&mut self, publisher: PeerId, ssrc: Option<Ssrc>, now: Instant) {
        // Before the first packet there is no stream to ask; the first frame is a keyframe.
        let Some(ssrc) = ssrc else {
            return;
        };
        let Some(peer) = self.peers.get_mut(&publisher) else {
            return;
        };
        if !peer.connected {
            return;
        }
        {
            let mut api = peer.rtc.direct_api();
            let Some(rx) = api.stream_rx(&ssrc) else {
                return;
            };
            rx.request_keyframe(KeyframeRequestKind::Pli);
        }
        self.io.metrics.keyframe_requests_sent.inc();
        drain(peer, &mut self.io, now);
    }

    fn fire_timers(&mut self, now: Instant) {
        let mut due = std::mem::take(&mut self.io.due);
        for pid in due.drain(..) {
            let Some(peer) = self.peers.get_mut(&pid) else {
                continue;
            };
            if peer.next_timeout > now {
                // Driven since (input or a replay flush): its next deadline is later.
                continue;
            }
            if let Err(e) = peer.rtc.handle_input(Input::Timeout(now)) {
                tracing::debug!(session = %peer.session, "timeout input failed: {e}");
            }
            drain(peer, &mut self.io, now);
            self.process_pending(now);
        }
        if self.io.due.is_empty() {
            // Keep the allocation.
            self.io.due = due;
        }
        while let Some(Reverse((t, timer))) = self.io.timers.peek().copied() {
            if t > now {
                break;
            }
            self.io.timers.pop();
            match timer {
                Timer::Peer(pid) => {
                    let Some(peer) = self.peers.get_mut(&pid) else {
                        continue;
                    };
                    if peer.next_timeout != t {
                        // Stale entry: the peer's deadline moved since it was queued.
                        continue;
                    }
                    if let Err(e) = peer.rtc.handle_input(Input::Timeout(now)) {
                        tracing::debug!(session = %peer.session, "timeout input failed: {e}");
                    }
                    drain(peer, &mut self.io, now);
                }
                Timer::Gate(tid, layer) => {
                    let Some(track) = self.tracks.get_mut(&tid) else {
                        continue;
                    };
                    let Some(l) = track.layers.get_mut(layer) else {
                        continue;
                    };
                    if l.gate.poll(now) {
                        self.ask_keyframe(tid, layer, now);
                    }
                }
            }
            self.process_pending(now);
        }
    }

    fn housekeeping(&mut self, now: Instant) {
        if now >= self.next_rate_window {
            let secs = (now - self.next_rate_window + Duration::from_secs(1)).as_secs_f64();
            for t in self.tracks.values_mut() {
                for l in t.layers.iter_mut() {
                    l.bitrate = (l.window_bytes as f64 * 8.0 / secs) as u64;
                    l.window_bytes = 0;
                }
            }
            self.next_rate_window = now + Duration::from_secs(1);
        }
        let mut retry = Vec::new();
        for peer in self.peers.values_mut() {
            try_fast_path(peer, &mut self.io.lanes, self.io.direct_srtp);
            if peer.role == Role::Subscriber {
                let due: Vec<Mid> = peer
                    .slots
                    .iter_mut()
                    .filter(|s| s.history_reset_at.is_some_and(|t| t <= now))
                    .map(|s| {
                        s.history_reset_at = None;
                        s.mid
                    })
                    .collect();
                for mid in due {
                    let direct = peer
                        .slot_by_mid(mid)
                        .and_then(|i| self.io.lanes.get_mut(peer.slots[i].lane))
                        .and_then(|l| l.out.as_mut())
                        .map(|out| out.shrink_history());
                    let reset = direct.unwrap_or_else(|| {
                        fresh_history(peer, mid);
                        true
                    });
                    if reset {
                        self.io.metrics.nack_history_resets.inc();
                    }
                }
            }
            if peer.role == Role::Subscriber && peer.connected {
                for slot in peer.slots.iter_mut() {
                    let (Some(tid), Some(_)) = (slot.track, slot.waiting_keyframe) else {
                        continue;
                    };
                    let due = slot
                        .last_kf_request
                        .map(|t| now.saturating_duration_since(t) >= KEYFRAME_RETRY)
                        .unwrap_or(true);
                    if due {
                        slot.last_kf_request = Some(now);
                        retry.push((tid, slot.layer));
                    }
                }
            }
            let gone = match peer.disconnected_since {
                Some(t) => now.saturating_duration_since(t) >= self.disconnect_grace,
                None => false,
            };
            let never = !peer.connected
                && self
                    .created
                    .get(&peer.id)
                    .map(|c| now.saturating_duration_since(*c) >= self.connect_timeout)
                    .unwrap_or(false);
            if peer.role == Role::Publisher {
                peer.limit.refill(now);
            }
            if gone || never || !peer.rtc.is_alive() {
                self.io.dead.push(peer.id);
            }
        }
        for (tid, layer) in retry {
            self.request_keyframe(tid, layer, now);
        }
        self.process_pending(now);
    }

    fn reap(&mut self, now: Instant) {
        if self.io.dead.is_empty() {
            return;
        }
        let mut dead = std::mem::take(&mut self.io.dead);
        dead.sort_unstable();
        dead.dedup();
        for pid in dead {
            self.remove_peer(pid, now);
        }
        self.process_pending(now);
    }
}

/// A datagram the core sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Where it goes.
    pub destination: SocketAddr,
    /// What goes (an SRTP, SRTCP, DTLS or STUN datagram).
    pub contents: Vec<u8>,
}

/// An [`Outside`] made of queues, for driving a core without a socket or threads (tests,
/// simulations): what leaves waits here for `poll_*`, and what a look for a frame's rest
/// reads during a fan-out is what the driver put in `arriving` and `inbox` beforehand.
/// No UDP GSO (every datagram is its own transmit).
#[derive(Default)]
pub struct Queued {
    /// Datagrams sent, oldest first.
    pub transmits: VecDeque<Transmit>,
    /// Pipe messages to other workers, oldest first.
    pub pipes: VecDeque<(usize, PipeMsg)>,
    /// Commands to other workers, oldest first.
    pub commands: VecDeque<(usize, Command)>,
    /// Events to signalling, oldest first.
    pub events: VecDeque<SfuEvent>,
    /// Datagrams a look during a fan-out finds on the socket: (source, datagram).
    pub arriving: VecDeque<(SocketAddr, Vec<u8>)>,
    /// Messages a look during a fan-out (and `handle_pipes`) finds in the pipe inbox.
    pub inbox: VecDeque<PipeMsg>,
    /// How many workers there are (pipes and commands to others fail past it).
    pub workers: usize,
    arrived: Option<SystemTime>,
}

impl Queued {
    /// Queues for a core among `workers` workers (a pipe or command to a worker past them
    /// fails).
    pub fn new(workers: usize) -> Self {
        Queued {
            workers,
            ..Default::default()
        }
    }
}

impl Outside for Queued {
    fn buffer(&mut self) -> Vec<u8> {
        Vec::with_capacity(1500)
    }

    fn send(&mut self, to: SocketAddr, data: Vec<u8>, _tally: &mut Tally) {
        self.transmits.push_back(Transmit {
            destination: to,
            contents: data,
        });
    }

    fn run_size(&self, _to: SocketAddr) -> Option<usize> {
        None
    }

    fn gso(&self) -> bool {
        false
    }

    fn note_arrival(&mut self, at: SystemTime) {
        self.arrived = Some(self.arrived.map_or(at, |a| a.min(at)));
    }

    fn arrival(&self) -> Option<SystemTime> {
        self.arrived
    }

    fn end_turn(&mut self, _tally: &mut Tally) {
        self.arrived = None;
    }

    /// What this core queued to `to` and the driver has not taken yet.
    fn pipe_len(&self, to: usize) -> Option<usize> {
        (to < self.workers).then(|| self.pipes.iter().filter(|(w, _)| *w == to).count())
    }

    fn pipe(&mut self, to: usize, msg: PipeMsg) -> bool {
        if to >= self.workers {
            return false;
        }
        self.pipes.push_back((to, msg));
        true
    }

    fn wake(&mut self, _to: usize) {}

    fn command(&mut self, to: usize, cmd: Command) -> bool {
        if to >= self.workers {
            return false;
        }
        self.commands.push_back((to, cmd));
        true
    }

    fn event(&mut self, ev: SfuEvent) {
        self.events.push_back(ev);
    }

    fn recv(&mut self, buf: &mut [u8]) -> std::io::Result<(usize, SocketAddr)> {
        let Some((from, d)) = self.arriving.pop_front() else {
            return Err(ErrorKind::WouldBlock.into());
        };
        // As a socket does: a longer datagram is cut to the buffer.
        let n = d.len().min(buf.len());
        buf[..n].copy_from_slice(&d[..n]);
        Ok((n, from))
    }

    fn piped(&mut self) -> Option<PipeMsg> {
        self.inbox.pop_front()
    }

    fn piped_waiting(&self) -> bool {
        !self.inbox.is_empty()
    }
}

impl WorkerCore<Queued> {
    /// The next datagram to send. Call after every `handle_*` and `forward` until `None`.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.io.out.transmits.pop_front()
    }

    /// The next pipe message for another worker (its index first): hand it to that worker's
    /// [`WorkerCore::handle_pipe`]. Call after every `handle_*` and `forward` until `None`.
    #[must_use]
    pub fn poll_pipe(&mut self) -> Option<(usize, PipeMsg)> {
        self.io.out.pipes.pop_front()
    }

    /// The next command for another worker (`PipeKeyframe`, `ClosePipe`; its index first):
    /// hand it to that worker's [`WorkerCore::handle_command`].
    #[must_use]
    pub fn poll_command(&mut self) -> Option<(usize, Command)> {
        self.io.out.commands.pop_front()
    }

    /// The next event for signalling.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<SfuEvent> {
        self.io.out.events.pop_front()
    }
}

/// Packets of a GOP replay written to a viewer between releases (see `replay_gop`).
const REPLAY_FLUSH: usize = 16;

/// Piped messages read per loop turn before the socket gets a turn again.
const PIPE_TURN: usize = 1024;

/// Where the rest of a group being fanned out comes from (see `WorkerCore::fan_out`).
#[derive(Debug, Clone, Copy)]
enum Rest {
    /// This worker's socket: publisher `pid`'s stream `ssrc`.
    Socket { pid: PeerId, ssrc: Ssrc },
    /// The pipe from the track's home worker.
    Pipe,
}

/// Whether a group ends in the middle of a video frame: its last packet is video and has no
/// marker.
fn frame_open(preps: &[Prep]) -> bool {
    preps.last().is_some_and(|p| p.is_video && !p.pkt.marker)
}

/// Counts publisher packets taken in.
fn count_in(metrics: &Metrics, pkts: &[(PeerId, RtpPacket)]) {
    metrics.rtp_packets_in.inc_by(pkts.len() as u64);
    let bytes: usize = pkts.iter().map(|(_, p)| p.payload.len()).sum();
    metrics.rtp_bytes_in.inc_by(bytes as u64);
}

/// Takes publisher `pid`'s stream `ssrc` out of `pending` (media read but not yet
/// forwarded), in order; the rest stays, in order.
fn take_stream(
    pending: &mut Vec<(PeerId, RtpPacket)>,
    pid: PeerId,
    ssrc: Ssrc,
) -> Vec<(PeerId, RtpPacket)> {
    if !pending
        .iter()
        .any(|(p, pkt)| *p == pid && pkt.header.ssrc == ssrc)
    {
        return Vec::new();
    }
    let (found, kept) = std::mem::take(pending)
        .into_iter()
        .partition(|(p, pkt)| *p == pid && pkt.header.ssrc == ssrc);
    *pending = kept;
    found
}

/// Takes the piped packets `wanted` (given the home worker and the packet as piped) out of
/// `stash`, in order, up to the first message that is not a packet: a change of tracks
/// applies after the packets before it, so none after it may pass it. Everything else stays,
/// in order.
fn take_piped(
    stash: &mut VecDeque<PipeMsg>,
    wanted: impl Fn(usize, &PipedPacket) -> bool,
) -> Vec<(PipedPacket, Option<std::time::SystemTime>)> {
    let mut found = Vec::new();
    let mut i = 0;
    while i < stash.len() {
        match &stash[i] {
            PipeMsg::Rtp { home, packet, .. } if wanted(*home, packet) => {
                if let Some(PipeMsg::Rtp {
                    packet, arrived, ..
                }) = stash.remove(i)
                {
                    found.push((packet, arrived));
                }
            }
            PipeMsg::Rtp { .. } => i += 1,
            _ => break,
        }
    }
    found
}

/// What `ingest` works out once per packet, before the copies.
struct Prep {
    pkt: CachedPacket,
    params: PayloadParams,
    is_video: bool,
    keyframe: bool,
    clock_rate: u32,
    /// A video packet's number in `Outbox::recent`, for the viewers' histories.
    kept: Option<u64>,
}

/// One packet on its way to one subscriber slot.
struct Fwd<'a> {
    source: SourceId,
    /// The packet as the publisher sent it (payload shared).
    pkt: &'a CachedPacket,
    params: &'a PayloadParams,
    /// Whether the subscriber's str0m keeps it for retransmission.
    nackable: bool,
    /// Where the fast path's history finds it for a resend (`Outbox::recent`), if it may be
    /// resent.
    kept: Option<u64>,
    /// Whether a new source may start here (audio: always; video: at a keyframe).
    may_start: bool,
    clock_rate: u32,
    /// The size the viewer's copies of this packet's group are made, and the smallest of
    /// them but the last (see `group_size`).
    pad_to: Option<(usize, usize)>,
}

/// `pkt` as the fast path serializes it toward one viewer.
fn out_packet(pkt: &CachedPacket, pt: u8, seq: u64, ts: u32) -> OutPacket<'_> {
    OutPacket {
        pt,
        seq,
        ts,
        marker: pkt.marker,
        payload: &pkt.payload,
        audio_level: pkt.ext.audio_level.zip(pkt.ext.voice_activity),
        orientation: pkt.ext.video_orientation.map(|o| o as u8),
        capture: pkt
            .ext
            .abs_capture_time
            .map(|a| (ntp64(a.capture_time), a.clock_offset)),
        padding: 0,
    }
}

/// The size to make a viewer's copies of a group of video packets (one publisher stream,
/// read in one turn; usually a frame), so they leave as one UDP GSO run: the largest
/// sealed size among them, if every packet but the last is at most `MAX_PADDING` short of
/// it (a run's last datagram may be shorter); returned with the smallest of those.
/// libwebrtc makes a frame's first packet shorter (room for its header extensions) and an
/// even split makes later packets a byte longer; padding toward the run already open (what
/// `write_slot` does without this) only lengthens packets that follow a longer one, so the
/// run broke at the first longer packet. `None` for audio, a single packet, a viewer not on
/// the fast path yet, or sizes too far apart (the run then breaks where it must).
fn group_size(lane: &Lane, source: SourceId, preps: &[Prep]) -> Option<(usize, usize)> {
    if preps.len() < 2 || !preps[0].is_video {
        return None;
    }
    let (egress, stream) = (lane.egress.as_ref()?, lane.out.as_ref()?);
    // A slot between layers (simulcast) or sources gets only some of them: no group.
    if lane.rewriter.as_ref()?.current_source() != Some(source) {
        return None;
    }
    // The run's last datagram may be shorter than the others (a frame's remainder): it
    // does not count toward the smallest.
    let (mut min, mut max) = (usize::MAX, 0);
    for (i, prep) in preps.iter().enumerate() {
        let len = egress.sealed_len(stream, &out_packet(&prep.pkt, 0, 0, 0));
        if i + 1 < preps.len() {
            min = min.min(len);
        }
        max = max.max(len);
    }
    (max - min <= MAX_PADDING).then_some((max, min))
}

/// Writes `f` to lane `id`: payload type mapping, sequence/timestamp rewriting, then
/// the fast path's datagram, or str0m's send path. Returns false if the packet was not
/// written (no common payload type, or the rewriter holds it back until a keyframe).
///
/// On the fast path only the lane is touched; the subscriber's `Peer` is looked up for a
/// stream's first packet (its payload type and SSRC come from str0m) and a layer switch.
fn write_slot(
    id: usize,
    peers: &mut Map<PeerId, Peer>,
    io: &mut Outbox<impl Outside>,
    f: &Fwd,
    now: Instant,
) -> bool {
    let Some(lane) = io.lanes.get_mut(id) else {
        return false;
    };
    let (pid, si) = (lane.peer, lane.slot);
    let out_pt = match lane.mapped_pt(f.pkt.pt) {
        Some(pt) => pt,
        None => {
            let Some(pt) = peers
                .get(&pid)
                .and_then(|sub| out_payload_type(&sub.rtc, sub.slots.get(si)?.mid, f.params))
            else {
                return false;
            };
            lane.map_pt(f.pkt.pt, pt);
            pt
        }
    };
    let rewriter = lane
        .rewriter
        .get_or_insert_with(|| Rewriter::new(f.clock_rate, io.rng.random::<u16>() & 0x3fff));
    let previous = rewriter.current_source();
    let Some(rw) = rewriter.rewrite(f.source, f.pkt.seq, f.pkt.ts, f.may_start, now) else {
        return false;
    };
    if rw.switched {
        if let Some(slot) = peers.get_mut(&pid).and_then(|p| p.slots.get_mut(si)) {
            slot.waiting_keyframe = None;
        }
        if previous.is_some() {
            io.metrics.layer_switches.inc();
        }
    }
    if let (Some(egress), Some(remote)) = (&lane.egress, lane.remote) {
        if lane.out.is_none() {
            lane.out = peers.get_mut(&pid).and_then(|sub| {
                let mid = sub.slots.get(si)?.mid;
                direct_stream(&mut sub.rtc, mid, f.clock_rate)
            });
        }
        if let Some(stream) = lane.out.as_mut() {
            let mut p = out_packet(f.pkt, *out_pt, rw.seq, rw.ts);
            let mut buf = io.out.buffer();
            // The group's size, or the size of the run still open to this viewer if that is
            // a little larger (the packet may then join it).
            let run = io.out.run_size(remote);
            let pad_to = match (f.pad_to.filter(|_| io.out.gso()), run) {
                (Some((t, low)), Some(r)) if r >= t && r - low <= MAX_PADDING => Some(r),
                (Some((t, _)), _) => Some(t),
                (None, r) => r,
            };
            if egress.seal(stream, &mut p, pad_to, &mut buf) {
                stream.sent(&p, f.kept, f.pkt.arrival);
                lane.direct_bytes_out += f.pkt.payload.len() as u64;
                io.out.send(remote, buf, &mut io.tally);
                let t = &mut io.tally;
                t.rtp_padding_bytes_out += u64::from(p.padding);
                t.direct_srtp_packets_out += 1;
                t.rtp_packets_out += 1;
                t.rtp_bytes_out += f.pkt.payload.len() as u64;
                return true;
            }
        }
    }
    let Some(sub) = peers.get_mut(&pid) else {
        return false;
    };
    let Some(mid) = sub.slots.get(si).map(|s| s.mid) else {
        return false;
    };
    {
        let mut api = sub.rtc.direct_api();
        let Some(tx) = api.stream_tx_by_mid(mid, None) else {
            return false;
        };
        tx.write_rtp(
            RtpWrite::new(
                out_pt,
                rw.seq.into(),
                rw.ts,
                f.pkt.arrival,
                f.pkt.payload.clone(),
            )
            .marker(f.pkt.marker)
            .nackable(f.nackable)
            .ext_vals(f.pkt.ext.clone()),
        );
    }
    io.tally.rtp_packets_out += 1;
    io.tally.rtp_bytes_out += f.pkt.payload.len() as u64;
    drain(sub, io, now);
    true
}

/// Puts a connected subscriber on the fast path once its DTLS keys are known (they come
/// with the handshake, before `Connected`; housekeeping retries in case they did not). One
/// attempt: a profile the fast path cannot do leaves the peer on str0m's send path.
fn try_fast_path(peer: &mut Peer, lanes: &mut slab::Slab<Lane>, direct_srtp: bool) {
    if !direct_srtp || peer.role != Role::Subscriber || !peer.connected || peer.egress_tried {
        return;
    }
    let Some(keys) = peer.keys.get() else {
        return;
    };
    peer.egress_tried = true;
    // One context for the peer's RTCP and one per lane for its media: the same keys.
    let made = Egress::new(keys).and_then(|e| {
        let mine = peer
            .slots
            .iter()
            .map(|s| Ok((s.lane, Egress::new(keys)?)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((e, mine))
    });
    match made {
        Ok((e, mine)) => {
            peer.egress = Some(e);
            for (lane, e) in mine {
                if let Some(l) = lanes.get_mut(lane) {
                    l.egress = Some(e);
                }
            }
        }
        Err(e) => tracing::info!(session = %peer.session, "no fast path: {e}"),
    }
}

/// Sets where the fast path sends, for the peer and its lanes.
fn set_remote(peer: &mut Peer, lanes: &mut slab::Slab<Lane>, remote: Option<SocketAddr>) {
    peer.remote = remote;
    for s in &peer.slots {
        if let Some(l) = lanes.get_mut(s.lane) {
            l.remote = remote;
        }
    }
}

/// Frees a subscriber slot of its track. The slot's output stream continues with whatever
/// it gets next, from the next sequence number: its rewriter forgets the old source, so even
/// the same source bound again (a spotlight that comes back, replaying its cached GOP) can
/// never reuse a sequence number, and so an SRTP index, for different bytes.
fn unbind(slot: &mut Slot, lanes: &mut slab::Slab<Lane>) {
    slot.track = None;
    slot.waiting_keyframe = None;
    if let Some(r) = lanes.get_mut(slot.lane).and_then(|l| l.rewriter.as_mut()) {
        r.source_gone();
    }
}

/// The fast path's stream for a subscriber's `mid`: str0m's SSRC for it and the extension
/// ids the subscriber negotiated.
fn direct_stream(rtc: &mut str0m::Rtc, mid: Mid, clock_rate: u32) -> Option<Stream> {
    let ssrc = *rtc.direct_api().stream_tx_by_mid(mid, None)?.ssrc();
    let exts = rtc.media(mid)?.remote_extmap();
    Some(Stream::new(ssrc, mid, exts, clock_rate))
}

/// Answers a subscriber's NACK on the fast path: each packet asked for that is still in the
/// stream's history goes again, as it went the first time (same sequence number, same SRTP
/// index: RFC 4585 retransmission without RTX).
fn answer_nack(peer: &Peer, io: &mut Outbox<impl Outside>, nack: &Nack, now: Instant) {
    let Some(id) = peer.slots.iter().map(|s| s.lane).find(|&l| {
        io.lanes
            .get(l)
            .and_then(|l| l.out.as_ref())
            .is_some_and(|o| o.ssrc == *nack.ssrc)
    }) else {
        return;
    };
    let Some(lane) = io.lanes.get_mut(id) else {
        return;
    };
    let (Some(egress), Some(remote), Some(stream)) = (&lane.egress, lane.remote, lane.out.as_mut())
    else {
        return;
    };
    for entry in nack.reports.iter() {
        let lost = std::iter::once(entry.pid).chain(
            (0..16u16)
                .filter(|b| entry.blp & (1 << b) != 0)
                .map(|b| entry.pid.wrapping_add(b + 1)),
        );
        for seq in lost {
            let Some(mut p) = stream.resend(seq, now, &io.recent) else {
                continue;
            };
            let mut buf = io.out.buffer();
            if egress.seal(stream, &mut p, None, &mut buf) {
                lane.direct_bytes_out += p.payload.len() as u64;
                io.out.send(remote, buf, &mut io.tally);
                io.metrics.retransmissions_out.inc();
            }
        }
    }
}

/// Loss and round-trip time from a subscriber's reception reports on fast-path streams
/// (RFC 3550 §6.4.1: the fraction lost, and the RTT from the echoed sender report time and
/// the delay since it, both in 1/65536 s).
fn on_reports<'a>(
    peer: &mut Peer,
    lanes: &slab::Slab<Lane>,
    reports: impl Iterator<Item = &'a ReceptionReport>,
    now: Instant,
) {
    // The streams are the lanes' (they borrow the slab, not the peer, whose link changes).
    let streams: Vec<&Stream> = peer
        .slots
        .iter()
        .filter_map(|s| lanes.get(s.lane)?.out.as_ref())
        .collect();
    for r in reports {
        if !streams.iter().any(|o| o.ssrc == *r.ssrc) {
            continue;
        }
        peer.link.on_loss(f32::from(r.fraction_lost) / 256.0);
        // RTT: now, less when the echoed report left, less how long the receiver held it
        // (both on this process's monotonic clock; DLSR in 1/65536 s).
        let sent = streams
            .iter()
            .find_map(|s| s.report_sent_at(r.last_sr_time));
        if let (Some(sent), true) = (sent, r.last_sr_time != 0) {
            let held = Duration::from_secs_f64(f64::from(r.last_sr_delay) / 65_536.0);
            if let Some(rtt) = now.saturating_duration_since(sent).checked_sub(held) {
                peer.link.on_rtt(rtt);
            }
        }
    }
}

/// The payload type a subscriber's `mid` carries media of `params` in: among the codecs it
/// negotiated for that m-line, the one `pick_payload_type` matches.
fn out_payload_type(rtc: &str0m::Rtc, mid: Mid, params: &PayloadParams) -> Option<Pt> {
    let remote = rtc
        .media(mid)
        .map(|m| m.remote_pts().to_vec())
        .unwrap_or_default();
    let candidates = rtc
        .codec_config()
        .params()
        .iter()
        .filter(|c| remote.contains(&c.pt()));
    pick_payload_type(params, candidates)
}

/// Gives a subscriber slot a new, empty retransmission history: one second of sent packets
/// for NACKs (rural RTTs are well under that; str0m's default of three seconds triples the
/// per-subscriber memory). Also how a history grown by a GOP replay burst is shrunk back:
/// str0m's history only grows (its slots are ~430 bytes each, payloads aside), so after the
/// replayed packets have aged out it is replaced. What the old one held is then lost to
/// NACKs: at worst one lost packet becomes a keyframe request, once per join.
fn fresh_history(peer: &mut Peer, mid: Mid) {
    if let Some(tx) = peer.rtc.direct_api().stream_tx_by_mid(mid, None) {
        tx.set_rtx_cache(RTX_CACHE_PACKETS, RTX_CACHE_AGE, Some(0.15));
    }
}

fn role_label(role: Role) -> RoleLabel {
    match role {
        Role::Publisher => RoleLabel::Publisher,
        Role::Subscriber => RoleLabel::Subscriber,
    }
}

/// Drives one peer's `Rtc` until it has nothing more to say, sending its datagrams and
/// queueing its events. Must follow every mutation of the `Rtc` (str0m's contract).
fn drain(peer: &mut Peer, io: &mut Outbox<impl Outside>, now: Instant) {
    loop {
        match peer.rtc.poll_output() {
            Ok(Output::Timeout(t)) => {
                if t != peer.next_timeout {
                    peer.next_timeout = t;
                    if t <= now {
                        io.due.push(peer.id);
                    } else {
                        io.timers.push(Reverse((t, Timer::Peer(peer.id))));
                    }
                }
                return;
            }
            Ok(Output::Transmit(t)) => {
                let mut data: Vec<u8> = t.contents.into();
                if routing::is_binding_success(&data) {
                    // str0m accepted a check from there (see `WorkerCore::commit_verified`).
                    io.verified.push((peer.id, t.destination));
                }
                // DTLS and SRTP (not STUN, which also answers other candidate pairs) go to
                // the nominated pair: where the fast path sends.
                if data.first().is_some_and(|b| *b >= 20) && peer.remote != Some(t.destination) {
                    set_remote(peer, &mut io.lanes, Some(t.destination));
                }
                if let Some(egress) = &peer.egress {
                    if is_rtcp(&data) {
                        // A few RTCP packets a second per peer: the streams are lent out of
                        // their lanes for it and put back.
                        let mut lent: Vec<(usize, Stream)> = peer
                            .slots
                            .iter()
                            .filter_map(|s| {
                                let out = io.lanes.get_mut(s.lane)?.out.take()?;
                                Some((s.lane, out))
                            })
                            .collect();
                        let mut streams: Vec<&mut Stream> =
                            lent.iter_mut().map(|(_, s)| s).collect();
                        egress.patch_sender_reports(&mut data, &mut streams, now);
                        for (lane, out) in lent {
                            if let Some(l) = io.lanes.get_mut(lane) {
                                l.out = Some(out);
                            }
                        }
                    }
                }
                if !data.is_empty() {
                    io.out.send(t.destination, data, &mut io.tally);
                }
            }
            Ok(Output::Event(ev)) => on_event(peer, io, ev, now),
            Err(e) => {
                tracing::warn!(session = %peer.session, "rtc failed: {e}");
                io.dead.push(peer.id);
                return;
            }
        }
    }
}

fn on_event(peer: &mut Peer, io: &mut Outbox<impl Outside>, ev: Event, now: Instant) {
    match ev {
        Event::Connected => {
            peer.connected = true;
            for s in &peer.slots {
                if let Some(l) = io.lanes.get_mut(s.lane) {
                    l.live = true;
                }
            }
            try_fast_path(peer, &mut io.lanes, io.direct_srtp);
            io.connected.push(peer.id);
            io.out.event(SfuEvent::PeerConnected {
                session: peer.session.clone(),
            });
            tracing::info!(session = %peer.session, "connected");
        }
        Event::IceConnectionStateChange(state) => match state {
            IceConnectionState::Disconnected => {
                peer.disconnected_since.get_or_insert(now);
            }
            IceConnectionState::Connected | IceConnectionState::Completed => {
                peer.disconnected_since = None;
            }
            _ => {}
        },
        Event::RtpPacket(p) if peer.role == Role::Publisher => {
            if peer.limit.admit(p.payload.len(), now) {
                io.pending_rtp.push((peer.id, p));
            } else {
                // Over `media.max_publish_kbps` / `_pps`: not forwarded (nor cached).
                io.metrics.publish_dropped_packets.inc();
            }
        }
        Event::KeyframeRequest(k) if peer.role == Role::Subscriber => {
            io.pending_kf.push((peer.id, k.mid));
        }
        Event::MediaEgressStats(s) => {
            if let Some(rtt) = s.rtt {
                peer.link.on_rtt(rtt);
            }
            // What a subscriber's receiver reports say it lost of what the server sent.
            if let (Role::Subscriber, Some(loss)) = (peer.role, s.loss) {
                peer.link.on_loss(loss);
            }
            let seen = peer.stats_seen.entry((s.mid, s.rid, true)).or_default();
            // On the fast path the raw RTCP events count them (see below).
            if peer.egress.is_none() {
                io.metrics
                    .nacks_received
                    .inc_by(s.nacks.saturating_sub(seen.nacks));
            }
            seen.nacks = s.nacks;
        }
        Event::MediaIngressStats(s) => {
            if let Some(rtt) = s.rtt {
                peer.link.on_rtt(rtt);
            }
            // What the server lost of a publisher's media (its own receiver reports).
            if let (Role::Publisher, Some(loss)) = (peer.role, s.loss) {
                peer.link.on_loss(loss);
            }
            let seen = peer.stats_seen.entry((s.mid, s.rid, false)).or_default();
            io.metrics
                .nacks_sent
                .inc_by(s.nacks.saturating_sub(seen.nacks));
            seen.nacks = s.nacks;
        }
        Event::PeerStats(s) => {
            if let Some(rtt) = s.rtt {
                io.metrics.rtt_seconds.observe(rtt.as_secs_f64());
            }
            let direct: u64 = peer
                .slots
                .iter()
                .filter_map(|s| io.lanes.get(s.lane))
                .map(|l| l.direct_bytes_out)
                .sum();
            peer.link
                .on_peer_stats(s.bytes_rx, s.bytes_tx + direct, s.rtt, s.timestamp);
        }
        // A subscriber's RTCP about the streams of the fast path, which str0m's own send
        // statistics do not cover (it counts only what it sent).
        Event::RawPacket(raw) if peer.egress.is_some() => match &*raw {
            RawPacket::RtcpRx(Rtcp::Nack(nack)) => {
                io.metrics.nacks_received.inc();
                answer_nack(peer, io, nack, now);
            }
            RawPacket::RtcpRx(Rtcp::ReceiverReport(rr)) => {
                on_reports(peer, &io.lanes, rr.reports.iter(), now)
            }
            RawPacket::RtcpRx(Rtcp::SenderReport(sr)) => {
                on_reports(peer, &io.lanes, sr.reports.iter(), now)
            }
            _ => {}
        },
        Event::Closed => io.dead.push(peer.id),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use str0m::format::{CodecSpec, FormatParams};

    fn vp8() -> PayloadParams {
        PayloadParams::new(
            96.into(),
            None,
            CodecSpec {
                codec: Codec::Vp8,
                clock_rate: str0m::media::Frequency::NINETY_KHZ,
                channels: None,
                format: FormatParams::default(),
            },
        )
    }

    fn packet(tid: u64, layer: usize, seq: u64, marker: bool) -> PipedPacket {
        PipedPacket {
            tid,
            layer,
            rid: None,
            ssrc: Ssrc::from(7),
            params: vp8(),
            pkt: CachedPacket {
                seq,
                ts: 0,
                arrival: Instant::now(),
                pt: Pt::from(96),
                marker,
                payload: vec![0u8; 10].into(),
                ext: ExtensionValues::default(),
            },
        }
    }

    fn rtp(home: usize, tid: u64, layer: usize, seq: u64) -> PipeMsg {
        PipeMsg::Rtp {
            home,
            packet: packet(tid, layer, seq, false),
            arrived: None,
        }
    }

    /// What is left: (tid, seq) of packets, `None` for any other message.
    fn left(stash: &VecDeque<PipeMsg>) -> Vec<Option<(u64, u64)>> {
        stash
            .iter()
            .map(|m| match m {
                PipeMsg::Rtp { packet, .. } => Some((packet.tid, packet.pkt.seq)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_look_takes_the_frames_rest_from_the_pipe_in_order_and_stops_at_a_change_of_tracks() {
        let mut stash: VecDeque<PipeMsg> = VecDeque::from(vec![
            rtp(1, 5, 0, 10),
            rtp(1, 6, 0, 500), // another track: stays
            rtp(1, 5, 1, 90),  // another layer of the track: stays
            rtp(1, 5, 0, 11),
            rtp(2, 5, 0, 12), // the same id from another home worker: stays
            rtp(1, 5, 0, 13),
            PipeMsg::TrackGone { home: 1, tid: 5 },
            rtp(1, 5, 0, 14), // after the change: must not pass it
        ]);
        let found = take_piped(&mut stash, |home, p| {
            home == 1 && p.tid == 5 && p.layer == 0
        });
        let seqs: Vec<u64> = found.iter().map(|(p, _)| p.pkt.seq).collect();
        assert_eq!(seqs, vec![10, 11, 13]);
        assert_eq!(
            left(&stash),
            vec![
                Some((6, 500)),
                Some((5, 90)),
                Some((5, 12)),
                None,
                Some((5, 14))
            ]
        );
        // A change of tracks at the head (as `drain_pipe` leaves one while the packets
        // before it go out): nothing passes it.
        stash.push_front(PipeMsg::TrackGone { home: 1, tid: 6 });
        assert!(take_piped(&mut stash, |_, _| true).is_empty());
        stash.pop_front();
        // Nothing wanted: nothing moves.
        let before = left(&stash);
        assert!(take_piped(&mut stash, |_, _| false).is_empty());
        assert_eq!(left(&stash), before);
    }

    /// A core with no peers over queues, at simulated time `now`.
    fn queued_core(now: Instant) -> WorkerCore<Queued> {
        let settings = Settings {
            keyframe_interval: Duration::from_millis(300),
            disconnect_grace: Duration::from_secs(5),
            metrics: Metrics::new(),
            peer_count: Arc::default(),
            load: Arc::default(),
            direct_srtp: true,
            pipe_backlog: super::super::pipe::BACKLOG,
            fanout_chunk: FAN_OUT_CHUNK,
            connect_timeout: CONNECT_TIMEOUT,
            publish_cap: PublishCap::new(10_000, 2_000),
            seed: 7,
        };
        let local = SocketAddr::from(([127, 0, 0, 1], 3478));
        WorkerCore::new(0, local, settings, Queued::new(1), now)
    }

    #[test]
    fn a_core_runs_on_the_time_it_is_given_without_a_socket() {
        // An arbitrary origin: the core reads no clock, so simulated time is any Instant.
        let t0 = Instant::now();
        let mut core = queued_core(t0);
        assert_eq!(core.poll_timeout(), Some(t0 + HOUSEKEEPING));
        // A datagram nobody's: counted, dropped, nothing sent.
        core.handle_datagram(t0, SocketAddr::from(([10, 0, 0, 9], 5000)), &[0x80; 40]);
        core.forward(t0);
        assert_eq!(core.metrics().udp_unroutable.get(), 1);
        assert!(core.poll_transmit().is_none());
        // Commands are answered at the time given; an unknown room has no links.
        let (tx, mut rx) = tokio::sync::oneshot::channel();
        let later = t0 + Duration::from_secs(3600);
        core.handle_command(
            later,
            Command::LinkStats {
                room: "lesson-1".into(),
                reply: tx,
            },
        );
        assert_eq!(rx.try_recv().map(|v| v.len()), Ok(0));
        // Housekeeping runs when the time handed in says so, then is due a period later.
        core.handle_timeout(later);
        assert_eq!(core.poll_timeout(), Some(later + HOUSEKEEPING));
        assert!(core.poll_event().is_none() && core.poll_pipe().is_none());
        assert!(core.poll_command().is_none());
    }

    #[test]
    fn only_a_video_group_without_its_marker_is_an_open_frame() {
        let prep = |video: bool, marker: bool| Prep {
            pkt: packet(1, 0, 1, marker).pkt,
            params: vp8(),
            is_video: video,
            keyframe: false,
            clock_rate: 90_000,
            kept: None,
        };
        assert!(frame_open(&[prep(true, false), prep(true, false)]));
        assert!(!frame_open(&[prep(true, false), prep(true, true)]));
        // Audio has no frames to finish (its marker starts a talkspurt).
        assert!(!frame_open(&[prep(false, false)]));
        assert!(!frame_open(&[]));
    }
}
