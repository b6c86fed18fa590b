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
use super::peer::{Lane, LinkFigures, Peer, RecvSlot};
use super::pipe::{PipeMsg, PipedPacket};
use super::recvq;
use super::room::{CachedPacket, Layer, PeerId, Room, Track, TrackId};
use super::routing::{self, Router};
use super::{AddError, Command, LinkStat, PeerKind, PreparedPeer, SfuEvent};
use crate::metrics::{Metrics, RoleLabel, RoleLabels, Tally};

/// An invariant of the core's tables broke, which is a bug: debug builds (every test) panic
/// with the invariant; a release build takes the quiet exit that follows it, since the restart
/// a panic causes would cost every peer on the worker.
macro_rules! broken {
    ($invariant:literal) => {
        debug_assert!(false, concat!("invariant broken: ", $invariant))
    };
}

mod adapt;
mod bwe;
mod downlink;
mod fanout;
mod keyframes;
mod linkreport;
mod membership;
mod pipes;
mod queued;
mod repair;
mod rtc_glue;
mod tap;

pub(crate) use adapt::Adapt;
use fanout::{out_packet, write_slot, Ingested, RestFrom, SlotWrite};
pub use linkreport::LinkReport;
pub(crate) use linkreport::LinkTally;
use membership::role_label;
use pipes::take_piped;
pub use queued::{Queued, Transmit};
pub(crate) use repair::PUBLISHER_REPORT_INTERVAL;
use rtc_glue::{
    direct_stream, drain, fresh_history, out_payload, out_payload_type, set_remote, try_fast_path,
};
pub use tap::{Tap, TapPart};

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
    /// A hole a viewer asked for, by lane (`repair.rs`).
    Hole(usize),
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
    /// Publishers' sender reports, for the recording tap (`tap.rs`).
    pending_sr: Vec<(PeerId, str0m::media::SenderFeedback)>,
    connected: Vec<PeerId>,
    dead: Vec<PeerId>,
    /// Addresses str0m answered a connectivity check from (see `WorkerCore::commit_verified`).
    verified: Vec<(PeerId, SocketAddr)>,
    /// Whether subscribers get the fast path (`egress`) once their keys are known.
    direct_srtp: bool,
    /// Every subscriber slot's forwarding state (`RecvSlot::lane`, the tracks' subscriber lists).
    lanes: slab::Slab<Lane>,
    /// What the packet path counted this loop turn, added to `metrics` at its end.
    tally: Tally,
    /// The video packets sent on the fast path lately, once each: what viewers' histories
    /// resend from.
    recent: Recent,
    /// Where a subscriber stream's first sequence number comes from (seeded: a simulated
    /// run is repeatable).
    rng: SmallRng,
    /// Holes viewers asked for that no retransmission has filled yet (`repair.rs`).
    holes: repair::Holes,
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
    preps: Vec<Ingested>,
    /// See `Settings::connect_timeout`.
    connect_timeout: Duration,
    /// See `Settings::publish_cap`.
    publish_cap: PublishCap,
    /// Rooms recorded on this worker (`tap.rs`).
    taps: Map<String, tap::RoomTap>,
    /// Viewers' layers follow their downlink estimates (`downlink.rs`).
    downlink: bool,
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
                pending_sr: Vec::new(),
                connected: Vec::new(),
                dead: Vec::new(),
                verified: Vec::new(),
                direct_srtp,
                lanes: slab::Slab::new(),
                rng: SmallRng::seed_from_u64(seed),
                holes: repair::Holes::default(),
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
            taps: Map::default(),
            downlink: true,
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
                self.track_gone(tid, &track);
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
        // The router forgets a peer's keys when the peer is removed.
        let Some(peer) = self.peers.get_mut(&pid) else {
            broken!("the router routes only to live peers");
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
            let peer = self.peers.get_mut(&pid).expect("checked at the loop's top");
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
            Command::Record { room, tap, reply } => {
                self.set_tap(room, tap.map(|t| *t), now);
                if let Some(r) = reply {
                    let _ = r.send(());
                }
            }
            Command::LinkStats { room, reply } => {
                // A oneshot send never blocks; a caller that gave up is fine to ignore.
                let _ = reply.send(self.link_stats(&room));
            }
            Command::SetLayerCap { session, cap } => {
                self.set_layer_cap(&session, cap);
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
                    Some(peer) if peer.role == PeerKind::Subscriber => {
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
                video_layer: p.tally.current().0,
                audio_only: p.tally.current().1,
            })
            .collect()
    }

    fn fire_timers(&mut self, now: Instant) {
        let mut due = std::mem::take(&mut self.io.due);
        for pid in due.drain(..) {
            // A race: the peer may have been removed since it was found due.
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
                    // Timers are invalidated lazily: the peer may be gone.
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
                    // Timers are invalidated lazily: the track may be gone.
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
                Timer::Hole(lane) => self.hole_due(lane, now),
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
            if peer.role == PeerKind::Subscriber {
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
            if peer.role == PeerKind::Subscriber && peer.connected {
                for slot in peer.slots.iter_mut() {
                    let (Some(tid), Some(_)) = (slot.track, slot.switch.waiting_keyframe) else {
                        continue;
                    };
                    let due = slot
                        .switch
                        .last_kf_request
                        .map(|t| now.saturating_duration_since(t) >= KEYFRAME_RETRY)
                        .unwrap_or(true);
                    if due {
                        slot.switch.last_kf_request = Some(now);
                        retry.push((tid, slot.switch.layer));
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
            if peer.role == PeerKind::Publisher {
                peer.limit.refill(now);
            }
            if gone || never || !peer.rtc.is_alive() {
                self.io.dead.push(peer.id);
            }
        }
        for (tid, layer) in retry {
            self.request_keyframe(tid, layer, now);
        }
        self.adapt_viewers(now);
        self.tally_links(now);
        self.tap_housekeeping(now);
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

#[cfg(test)]
mod tests;
