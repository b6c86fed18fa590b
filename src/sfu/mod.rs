//! The media plane: UDP workers that own str0m `Rtc`s and forward RTP between them.
//!
//! Signalling (WHIP/WHEP) talks to workers only through [`Command`]s on a channel; the packet
//! path never touches the database, never awaits, and takes no lock. Expensive per-peer setup
//! (SDP parsing, answer generation) runs on the caller's thread in [`prepare_peer`], and the
//! finished `Rtc` is handed to its worker.

pub mod core;
pub(crate) mod dtls_tap;
pub(crate) mod egress;
pub(crate) mod forward;
pub(crate) mod keyframe;
pub(crate) mod layer;
pub mod limit;
pub(crate) mod peer;
pub mod pipe;
pub(crate) mod recvq;
pub(crate) mod red;
pub(crate) mod room;
pub(crate) mod routing;
pub mod sendq;
pub(crate) mod srtp;
pub(crate) mod worker;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::change::{SdpAnswer, SdpOffer};
use str0m::config::DtlsCert;
use str0m::format::{Codec, CodecConfig, FormatParams, PayloadParams};
use str0m::media::{Direction, MediaKind, Mid, Rid, Rids};
use str0m::rtp::{Extension, ExtensionMap};
use str0m::{Candidate, Output, Rtc};

use crate::metrics::Metrics;

/// RTP header extension id used for abs-capture-time (unused by str0m's default map).
pub const ABS_CAPTURE_TIME_ID: u8 = 7;

/// Whether a peer sends media into a room or receives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PeerKind {
    /// WHIP: sends media in.
    Publisher,
    /// WHEP: receives media.
    Subscriber,
}

/// One m-line of a negotiated peer, as seen from the server.
#[derive(Debug, Clone)]
pub struct MediaInfo {
    /// The m-line's mid.
    pub mid: Mid,
    /// Audio or video.
    pub kind: MediaKind,
    /// Direction from the server's point of view.
    pub direction: Direction,
    /// Simulcast layers the publisher announced (empty: no simulcast).
    pub rids: Vec<Rid>,
}

/// A peer whose offer has been accepted, ready to be handed to a worker.
pub struct PreparedPeer {
    /// The str0m instance, answer already applied.
    pub rtc: Rtc,
    /// Negotiated m-lines.
    pub medias: Vec<MediaInfo>,
    /// The SDP answer to return to the client.
    pub answer: String,
    /// The server's ICE username fragment for this peer (routes STUN to it).
    pub local_ufrag: String,
    /// The participant this peer belongs to ("c:12", "t:3"), from its lesson token.
    pub part: Option<String>,
    /// Subscribers: which publishers' tracks it receives.
    pub follow: Follow,
    /// Where the DTLS handshake leaves the SRTP keys (the forwarding fast path).
    pub keys: dtls_tap::KeySlot,
}

/// Which publishers a subscriber receives.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Follow {
    /// Every publisher of the room, in publish order.
    #[default]
    Any,
    /// Only publishers that belong to one of these participants (a classroom, the hub).
    Parts(Vec<String>),
    /// Whoever the room's spotlight names (同步课堂 "big screen"); nobody while unset.
    Spotlight,
}

impl Follow {
    /// Whether a publisher with participant id `part` feeds this subscriber, in a room
    /// whose spotlight is `spotlight`.
    pub fn accepts(&self, part: Option<&str>, spotlight: Option<&str>) -> bool {
        match self {
            Follow::Any => true,
            Follow::Parts(parts) => part.is_some_and(|p| parts.iter().any(|x| x == p)),
            Follow::Spotlight => part.is_some() && part == spotlight,
        }
    }
}

/// Why an offer could not be accepted.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// Not parseable SDP.
    #[error("the offer is not valid SDP: {0}")]
    BadSdp(String),
    /// Parsed, but str0m refused it (e.g. missing fingerprint or ICE credentials).
    #[error("the offer cannot be accepted: {0}")]
    Rejected(String),
    /// No m-line with a codec and direction this endpoint can use.
    #[error("the offer has no usable media: {0}")]
    NoUsableMedia(String),
}

/// Settings shared by every peer a worker creates.
#[derive(Clone)]
pub struct PeerSetup {
    /// One DTLS certificate for the process (generating one per peer costs milliseconds).
    pub cert: DtlsCert,
    /// The candidate address announced for the worker this peer will live on.
    pub candidate: SocketAddr,
    /// Whether subscribers take the forwarding fast path (`media.direct_srtp`).
    pub direct_srtp: bool,
}

/// Builds an `Rtc` for `role` from a client's SDP offer and produces the answer.
///
/// Runs on a signalling thread, not on a media worker.
pub fn prepare_peer(
    role: PeerKind,
    offer_text: &str,
    setup: &PeerSetup,
) -> Result<PreparedPeer, SetupError> {
    prepare_peer_at(role, offer_text, setup, Instant::now())
}

/// [`prepare_peer`] at `now` (the simulated-time tests' clock, `tests/sim`).
#[doc(hidden)]
pub fn prepare_peer_at(
    role: PeerKind,
    offer_text: &str,
    setup: &PeerSetup,
    now: Instant,
) -> Result<PreparedPeer, SetupError> {
    let offer =
        SdpOffer::from_sdp_string(offer_text).map_err(|e| SetupError::BadSdp(e.to_string()))?;
    let mut config = Rtc::builder()
        .set_ice_lite(true)
        .set_rtp_mode(true)
        .set_dtls_cert(setup.cert.clone())
        .set_stats_interval(Some(Duration::from_secs(1)))
        .clear_codecs()
        .enable_vp8(true)
        .enable_h264(true)
        .enable_vp9(true)
        // Opus with RED (RFC 2198) where the other end offers it (`sfu::red`): forwarded as
        // RED to viewers that have it, as its primary block to those that do not.
        .enable_opus(true, true)
        // Capture timestamps pass through unchanged (A/V sync at the receiver, and the load
        // generator's end-to-end latency figures).
        .set_extension(ABS_CAPTURE_TIME_ID, Extension::AbsoluteCaptureTime);
    if role == PeerKind::Publisher {
        // str0m reports on an RTX-less video stream at its audio cadence (5 s): publishers get
        // a receiver report (and an RTT for NACK timing) every second on every stream
        // (`core/repair.rs`).
        config = config.set_rtcp_report_interval_audio(core::PUBLISHER_REPORT_INTERVAL);
    }
    if role == PeerKind::Subscriber && setup.direct_srtp {
        // The subscriber's NACKs and reports arrive as raw RTCP events: the fast path
        // (`egress`) answers them, since str0m never saw those packets. A viewer sends only
        // RTCP, a few packets a second, so the copies this makes are cheap. (str0m also copies
        // every RTP packet it sends into such an event, which is why this is off when the
        // fast path is: then str0m sends everything.)
        config = config.enable_raw_packets(true);
    }
    if role == PeerKind::Subscriber {
        // Toward viewers the server does no bandwidth estimation (the simulcast layer follows
        // the viewer's request and the publisher's layers), so transport-wide sequence numbers
        // and abs-send-time would only cost: a register entry per packet sent and a TWCC
        // feedback packet from every viewer every ~100 ms. Measured in BENCHMARKS.md.
        let mut exts = ExtensionMap::empty();
        for (id, ext) in ExtensionMap::standard().iter() {
            if !matches!(
                ext,
                Extension::TransportSequenceNumber | Extension::AbsoluteSendTime
            ) {
                exts.set(id, ext.clone());
            }
        }
        exts.set(ABS_CAPTURE_TIME_ID, Extension::AbsoluteCaptureTime);
        config = config.set_extension_map(exts);
    }
    // str0m answers in its own codec order; put ours in the client's order so the encoder
    // (the teacher's browser, OBS) uses the codec and H.264 profile it prefers.
    let prefs = offer_preferences(offer_text);
    let mut params = config.codec_config().params().to_vec();
    params.sort_by_key(|p| preference_rank(&prefs, p));
    *config.codec_config() = CodecConfig::new_from_payload_params(params);
    let (mut rtc, keys) = dtls_tap::build_tapped(config, now);
    let cand = Candidate::host(setup.candidate, "udp")
        .map_err(|e| SetupError::Rejected(format!("bad local candidate: {e}")))?;
    rtc.add_local_candidate(cand);
    let answer: SdpAnswer = rtc
        .sdp_api()
        .accept_offer(offer)
        .map_err(|e| SetupError::Rejected(e.to_string()))?;
    // Drain once so the instance is settled before it moves to its worker.
    loop {
        match rtc.poll_output() {
            Ok(Output::Timeout(_)) => break,
            Ok(_) => {}
            Err(e) => return Err(SetupError::Rejected(e.to_string())),
        }
    }
    let answer = answer.to_sdp_string();
    // The answer lists every m-line's mid in order; str0m knows the rest about each.
    let mut medias: Vec<MediaInfo> = answer
        .lines()
        .filter_map(|l| l.trim_end().strip_prefix("a=mid:"))
        .filter_map(|mid| {
            let media = rtc.media(Mid::from(mid))?;
            let rids = match media.rids_rx() {
                Rids::Specific(r) => r.clone(),
                _ => Vec::new(),
            };
            Some(MediaInfo {
                mid: media.mid(),
                kind: media.kind(),
                direction: media.direction(),
                rids,
            })
        })
        .collect();
    // Keep only m-lines in the role's direction with at least one negotiated codec.
    medias.retain(|m| {
        let dir_ok = match role {
            PeerKind::Publisher => matches!(m.direction, Direction::RecvOnly | Direction::SendRecv),
            PeerKind::Subscriber => {
                matches!(m.direction, Direction::SendOnly | Direction::SendRecv)
            }
        };
        let has_codec = rtc
            .media(m.mid)
            .map(|media| !media.remote_pts().is_empty() && !media.disabled())
            .unwrap_or(false);
        dir_ok && has_codec
    });
    if medias.is_empty() {
        let want = match role {
            PeerKind::Publisher => "sendonly or sendrecv",
            PeerKind::Subscriber => "recvonly or sendrecv",
        };
        return Err(SetupError::NoUsableMedia(format!(
            "need at least one {want} audio/video m-line with a supported codec \
             (Opus, VP8, VP9, H.264)"
        )));
    }
    let local_ufrag = rtc.direct_api().local_ice_credentials().ufrag;
    Ok(PreparedPeer {
        part: None,
        follow: Follow::Any,
        rtc,
        medias,
        answer,
        local_ufrag,
        keys,
    })
}

/// Something the media plane tells signalling (sent without blocking the worker).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SfuEvent {
    /// A peer connected (DTLS up).
    PeerConnected {
        /// Its session id.
        session: String,
    },
    /// A peer left: DELETE, ICE failure, timeout or close. Its session is over.
    PeerGone {
        /// Its session id.
        session: String,
    },
    /// A viewer's link cannot carry even the lowest video layer: its video is paused and
    /// it keeps the audio ("audio only, weak network"), or it got video back.
    WeakNetwork {
        /// The viewer's session id.
        session: String,
        /// True: audio only now; false: video back.
        audio_only: bool,
    },
    /// A viewer's link report so far (issue 19 item 6): cumulative totals, every few seconds
    /// and once more (`last`) when its session ends.
    LinkReport {
        /// The viewer's session id.
        session: String,
        /// Its participant (lesson tokens).
        part: Option<String>,
        /// Its totals since the session started.
        report: core::LinkReport,
        /// The session ended: these are its final totals.
        last: bool,
    },
}

/// The codecs of an offer in the client's order of preference (m-line by m-line, payload
/// types in the order the m-line lists them). Only what classrelay relays is returned.
fn offer_preferences(sdp: &str) -> Vec<(Codec, FormatParams)> {
    let mut order: Vec<String> = Vec::new();
    let mut names: std::collections::HashMap<String, String> = Default::default();
    let mut fmtps: std::collections::HashMap<String, String> = Default::default();
    for line in sdp.lines().map(str::trim) {
        if let Some(m) = line.strip_prefix("m=") {
            order.extend(m.split(' ').skip(3).map(str::to_string));
        } else if let Some(r) = line.strip_prefix("a=rtpmap:") {
            if let Some((pt, rest)) = r.split_once(' ') {
                let name = rest.split('/').next().unwrap_or("").to_ascii_lowercase();
                names.insert(pt.to_string(), name);
            }
        } else if let Some(f) = line.strip_prefix("a=fmtp:") {
            if let Some((pt, rest)) = f.split_once(' ') {
                fmtps.insert(pt.to_string(), rest.to_string());
            }
        }
    }
    order
        .iter()
        .filter_map(|pt| {
            let codec = match names.get(pt)?.as_str() {
                "opus" => Codec::Opus,
                "vp8" => Codec::Vp8,
                "vp9" => Codec::Vp9,
                "h264" => Codec::H264,
                _ => return None,
            };
            let fmtp = fmtps.get(pt).map(|f| FormatParams::parse_line(f));
            Some((codec, fmtp.unwrap_or_default()))
        })
        .collect()
}

/// Where `p` first appears among the offer's preferences (unlisted codecs go last).
fn preference_rank(prefs: &[(Codec, FormatParams)], p: &PayloadParams) -> usize {
    let spec = p.spec();
    let f = spec.format;
    prefs
        .iter()
        .position(|(codec, o)| {
            *codec == spec.codec
                && match codec {
                    Codec::H264 => {
                        o.packetization_mode.unwrap_or(0) == f.packetization_mode.unwrap_or(0)
                            && o.profile_level_id.map(|v| v >> 8)
                                == f.profile_level_id.map(|v| v >> 8)
                    }
                    Codec::Vp9 => o.profile_id.unwrap_or(0) == f.profile_id.unwrap_or(0),
                    _ => true,
                }
        })
        .unwrap_or(usize::MAX)
}

/// Why a worker refused a prepared peer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddError {
    /// A viewer that can receive none of the codecs the room's publishers are sending.
    #[error("{0}")]
    IncompatibleCodec(String),
}

/// One peer's link figures, as the worker last saw them (see [`Command::LinkStats`]).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LinkStat {
    /// The WHIP/WHEP session id.
    pub session: String,
    /// The participant ("c:12"), for peers opened with a lesson token.
    pub part: Option<String>,
    /// Publisher or subscriber.
    pub role: PeerKind,
    /// Round-trip time in milliseconds, when known.
    pub rtt_ms: Option<f64>,
    /// Loss in percent, when known: what the server receives from a publisher (its own
    /// receiver reports), or what a subscriber reports receiving from the server.
    pub loss_pct: Option<f64>,
    /// Media the server receives from this peer, kbit/s over the last second.
    pub kbps_in: f64,
    /// Media the server sends this peer, kbit/s over the last second.
    pub kbps_out: f64,
    /// A viewer's best video now, as layer rank from the top (0: the top layer or a video
    /// without simulcast, 2: the lowest); `None`: no video (or not a viewer).
    pub video_layer: Option<u8>,
    /// A viewer whose every video is paused for its link: audio only.
    pub audio_only: bool,
}

/// A request from signalling to a media worker.
pub enum Command {
    /// Add a prepared peer to a room.
    Add {
        /// The session id (also the WHIP/WHEP resource id).
        session: String,
        /// The room.
        room: String,
        /// Publisher or subscriber.
        role: PeerKind,
        /// The peer.
        peer: Box<PreparedPeer>,
        /// A viewer placed away from the room's home worker: that worker, which pipes the
        /// room here (opened with [`Command::OpenPipe`] first; closed when the viewer goes).
        piped_from: Option<usize>,
        /// Whether the worker took it.
        reply: tokio::sync::oneshot::Sender<Result<(), AddError>>,
    },
    /// To a room's home worker: pipe the room to worker `to`, for one more viewer there.
    /// Replies once the room's tracks (and their cached GOPs) are in `to`'s pipe inbox.
    OpenPipe {
        /// The room.
        room: String,
        /// The worker the viewer is on.
        to: usize,
        /// Told when the tracks are on their way.
        reply: tokio::sync::oneshot::Sender<()>,
    },
    /// To a room's home worker: one viewer on worker `to` is gone (or was never added).
    ClosePipe {
        /// The room.
        room: String,
        /// The worker the viewer was on.
        to: usize,
    },
    /// To a room's home worker, from a worker the room is piped to: a keyframe request that
    /// passed that worker's gate.
    PipeKeyframe {
        /// The track's id on the home worker.
        tid: room::TrackId,
        /// The layer.
        layer: usize,
    },
    /// Remove a peer (DELETE, or its session expired).
    Remove {
        /// The session id.
        session: String,
        /// Told once the peer is gone (its place counted free again).
        reply: Option<tokio::sync::oneshot::Sender<()>>,
    },
    /// An ICE restart: apply the re-offer and return the answer.
    IceRestart {
        /// The session id.
        session: String,
        /// The client's offer with new ICE credentials.
        offer: Box<SdpOffer>,
        /// Where the answer (or an error message) goes.
        reply: tokio::sync::oneshot::Sender<Result<String, String>>,
    },
    /// Trickled remote candidates.
    AddCandidates {
        /// The session id.
        session: String,
        /// The candidates.
        candidates: Vec<Candidate>,
    },
    /// Choose the simulcast layer for a subscriber (`None`: automatic).
    SetLayer {
        /// The subscriber's session id.
        session: String,
        /// The rid wanted.
        rid: Option<String>,
        /// Whether the session was found.
        reply: tokio::sync::oneshot::Sender<bool>,
    },
    /// Cap a subscriber's video layers at rank `cap` (0: the lowest; `None`: no cap), from its
    /// school's or classroom's policy (`core/adapt.rs`).
    SetLayerCap {
        /// The subscriber's session id.
        session: String,
        /// The highest layer rank.
        cap: Option<u8>,
    },
    /// Put a participant on the room's big screen (or nobody): subscribers that follow the
    /// spotlight switch to its tracks at their next keyframe.
    SetSpotlight {
        /// The room.
        room: String,
        /// The participant id, or `None`.
        part: Option<String>,
    },
    /// The link figures of every peer of a room (empty for a room the worker doesn't have).
    LinkStats {
        /// The room.
        room: String,
        /// Where the figures go.
        reply: tokio::sync::oneshot::Sender<Vec<LinkStat>>,
    },
    /// Start (`tap: Some`) or stop (`None`) recording a room (send it to the room's home
    /// worker, where its publishers are). `reply` is answered once a stop's `TrackEnd`s are
    /// in the writer's channel, so the file can be closed after it.
    Record {
        /// The room.
        room: String,
        /// Where its records go.
        tap: Option<Box<core::Tap>>,
        /// Told when done.
        reply: Option<tokio::sync::oneshot::Sender<()>>,
    },
    /// Stop the worker thread.
    Shutdown,
    /// Tests only (debug builds): make the worker panic, to see it restart.
    #[cfg(debug_assertions)]
    Panic,
}

/// Handle to one worker thread.
pub struct WorkerHandle {
    tx: crossbeam_channel::Sender<Command>,
    waker: Arc<mio::Waker>,
    /// The worker's UDP address (as bound).
    pub local_addr: SocketAddr,
    /// The address put in ICE candidates.
    pub candidate_addr: SocketAddr,
    /// Taken by the first [`WorkerHandle::join`] ([`Sfu::stop`] or the drop).
    join: std::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl WorkerHandle {
    /// Sends a command and wakes the worker. False if the worker is gone (true once the
    /// command is queued: it will be handled, so the caller must not undo what it asks).
    pub fn send(&self, cmd: Command) -> bool {
        if self.tx.send(cmd).is_err() {
            return false;
        }
        // A failed wake (never seen) only delays the command to the worker's next timer.
        let _ = self.waker.wake();
        true
    }

    /// Waits for the worker thread to end (at once if it was joined before). Blocks.
    fn join(&self) {
        // A poisoned lock only means another join panicked; the handle is still there.
        let join = self
            .join
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(j) = join {
            let _ = j.join();
        }
    }
}

impl Drop for WorkerHandle {
    /// A worker not stopped by [`Sfu::stop`] is stopped here (blocking whatever thread drops
    /// the last handle: `Server::shutdown` stops them first, off the runtime's threads).
    fn drop(&mut self) {
        let _ = self.tx.send(Command::Shutdown);
        let _ = self.waker.wake();
        self.join();
    }
}

/// How to start the media plane.
#[derive(Debug, Clone, Copy)]
pub struct SfuSettings {
    /// Worker threads (at least one is started).
    pub workers: usize,
    /// IP the sockets bind.
    pub bind: std::net::IpAddr,
    /// First port; worker `i` binds `port + i` (0: any free port).
    pub port: u16,
    /// IP announced in ICE candidates.
    pub announce: std::net::IpAddr,
    /// Keyframe request spacing per publisher layer.
    pub keyframe_interval: Duration,
    /// How long a disconnected peer waits for an ICE restart.
    pub disconnect_grace: Duration,
    /// Subscribers' media protected by the worker itself (`egress`), not through str0m.
    pub direct_srtp: bool,
    /// Viewers' layers follow their downlink estimates (`media.downlink_adaptation`).
    pub downlink_adaptation: bool,
    /// Viewers stay on their room's home worker until it holds this many peers; later
    /// ones go to the least loaded worker, which the room is piped to (see [`pipe`]).
    pub spread_after: usize,
    /// UDP GSO sends (`media.udp_gso`; see [`sendq`]).
    pub udp_gso: bool,
    /// Packets queued to another worker's pipe before drops (`media.pipe_backlog`).
    pub pipe_backlog: usize,
    /// Viewers served between looks for a frame's rest (`media.fanout_chunk`).
    pub fanout_chunk: usize,
    /// A peer not connected this long after its offer is dropped (`media.connect_timeout_ms`).
    pub connect_timeout: Duration,
    /// Each publisher's incoming cap (`media.max_publish_kbps`, `media.max_publish_pps`).
    pub publish_cap: limit::PublishCap,
}

/// Where a new peer goes (see [`Sfu::place`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    /// The worker that takes the peer.
    pub worker: usize,
    /// The room's home worker (where its publishers are).
    pub home: usize,
}

impl Placement {
    /// The home worker, if the peer is not on it (its room is piped to it from there).
    pub fn piped_from(&self) -> Option<usize> {
        (self.worker != self.home).then_some(self.home)
    }
}

/// All media workers of the process.
pub struct Sfu {
    workers: Vec<WorkerHandle>,
    /// Peers placed on each worker (see [`Sfu::place`]).
    loads: Vec<Arc<AtomicUsize>>,
    /// Per worker: down (restarting after a panic, or gone).
    down: Vec<Arc<AtomicBool>>,
    spread_after: usize,
    /// Live peers across workers (checked against `media.max_peers`).
    pub peer_count: Arc<AtomicUsize>,
    /// Shared DTLS certificate.
    pub cert: DtlsCert,
    /// Whether subscribers take the forwarding fast path.
    pub direct_srtp: bool,
}

impl Sfu {
    /// Starts the workers described by `settings`.
    pub fn start(
        settings: &SfuSettings,
        metrics: Metrics,
        events: tokio::sync::mpsc::UnboundedSender<SfuEvent>,
    ) -> std::io::Result<Sfu> {
        let SfuSettings {
            workers: n,
            bind,
            port,
            announce,
            ..
        } = *settings;
        let provider = str0m::crypto::from_feature_flags();
        let cert = provider
            .dtls_provider
            .generate_certificate()
            .ok_or_else(|| std::io::Error::other("crypto provider cannot make a certificate"))?;
        let peer_count = Arc::new(AtomicUsize::new(0));
        let n = n.max(1);
        let mut built = Vec::with_capacity(n);
        let mut links = Vec::with_capacity(n);
        let mut loads = Vec::with_capacity(n);
        let mut down = Vec::with_capacity(n);
        for i in 0..n {
            let p = if port == 0 { 0 } else { port + i as u16 };
            let socket = std::net::UdpSocket::bind(SocketAddr::new(bind, p))?;
            let local_addr = socket.local_addr()?;
            let candidate_addr = SocketAddr::new(announce, local_addr.port());
            let (tx, rx) = crossbeam_channel::unbounded();
            let (pipe_tx, pipe_rx) = crossbeam_channel::unbounded();
            let load = Arc::new(AtomicUsize::new(0));
            let is_down = Arc::new(AtomicBool::new(false));
            let shared = worker::Shared {
                connect_timeout: settings.connect_timeout,
                publish_cap: settings.publish_cap,
                down: is_down.clone(),
                keyframe_interval: settings.keyframe_interval,
                disconnect_grace: settings.disconnect_grace,
                direct_srtp: settings.direct_srtp,
                downlink_adaptation: settings.downlink_adaptation,
                udp_gso: settings.udp_gso,
                pipe_backlog: settings.pipe_backlog,
                fanout_chunk: settings.fanout_chunk,
                metrics: metrics.clone(),
                peer_count: peer_count.clone(),
                load: load.clone(),
                events: events.clone(),
            };
            let w = worker::Worker::new(i, socket, rx, pipe_rx, shared)?;
            links.push(pipe::Link {
                cmd: tx.clone(),
                pipe: pipe_tx,
                waker: w.waker(),
            });
            loads.push(load);
            down.push(is_down);
            built.push((w, tx, local_addr, candidate_addr));
        }
        let links: Arc<[pipe::Link]> = links.into();
        let mut workers = Vec::with_capacity(n);
        for (i, (mut w, tx, local_addr, candidate_addr)) in built.into_iter().enumerate() {
            w.set_links(links.clone());
            let waker = w.waker();
            let join = std::thread::Builder::new()
                .name(format!("media-{i}"))
                .spawn(move || w.run())?;
            workers.push(WorkerHandle {
                tx,
                waker,
                local_addr,
                candidate_addr,
                join: std::sync::Mutex::new(Some(join)),
            });
        }
        Ok(Sfu {
            workers,
            loads,
            down,
            spread_after: settings.spread_after,
            peer_count,
            cert,
            direct_srtp: settings.direct_srtp,
        })
    }

    /// Stops every worker and waits for its thread to end: its socket is closed and its peers
    /// are gone when this returns, and later commands are refused ([`WorkerHandle::send`]
    /// returns false). Blocks: call it from `spawn_blocking` inside a runtime. Stopping
    /// twice is harmless.
    pub fn stop(&self) {
        for w in &self.workers {
            let _ = w.tx.send(Command::Shutdown);
            let _ = w.waker.wake();
        }
        for w in &self.workers {
            w.join();
        }
    }

    /// An SFU with no workers: it binds no socket and starts no thread, and the media service
    /// refuses every peer (503). For driving the HTTP app in-process (`tower::ServiceExt`).
    pub fn without_workers() -> std::io::Result<Sfu> {
        let cert = str0m::crypto::from_feature_flags()
            .dtls_provider
            .generate_certificate()
            .ok_or_else(|| std::io::Error::other("crypto provider cannot make a certificate"))?;
        Ok(Sfu {
            workers: Vec::new(),
            loads: Vec::new(),
            down: Vec::new(),
            spread_after: 0,
            peer_count: Arc::new(AtomicUsize::new(0)),
            cert,
            direct_srtp: false,
        })
    }

    /// The worker a room lives on (stable for the room's name).
    pub fn worker_for_room(&self, room: &str) -> usize {
        // FNV-1a: stable across runs and cheap; the std hasher is randomly seeded.
        let mut h: u64 = 0xcbf29ce484222325;
        for b in room.as_bytes() {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x100000001b3);
        }
        (h % self.workers.len() as u64) as usize
    }

    /// Chooses the worker for a new peer of `room` and counts it there (give it back with
    /// [`Sfu::unplace`] if the peer is not added; the worker counts it down when it goes).
    ///
    /// Publishers go to the room's home worker. Viewers too, while that worker holds fewer
    /// than `spread_after` peers; after that each goes to the least loaded worker (the home
    /// worker on a tie), so a broadcast to many sites is fanned out by every core at once.
    pub fn place(&self, room: &str, role: PeerKind) -> Placement {
        let home = self.worker_for_room(room);
        let load = |i: usize| self.loads[i].load(Ordering::Relaxed);
        let worker = if role == PeerKind::Publisher || load(home) < self.spread_after {
            home
        } else {
            (0..self.loads.len())
                .min_by_key(|&i| (load(i), i != home))
                .unwrap_or(home)
        };
        self.loads[worker].fetch_add(1, Ordering::Relaxed);
        Placement { worker, home }
    }

    /// Gives back a place taken by [`Sfu::place`] for a peer that was not added.
    pub fn unplace(&self, p: Placement) {
        self.loads[p.worker].fetch_sub(1, Ordering::Relaxed);
    }

    /// Peers on each worker.
    pub fn loads(&self) -> Vec<usize> {
        self.loads
            .iter()
            .map(|l| l.load(Ordering::Relaxed))
            .collect()
    }

    /// The worker handle at `i`.
    pub fn worker(&self, i: usize) -> &WorkerHandle {
        &self.workers[i]
    }

    /// Number of workers.
    pub fn len(&self) -> usize {
        self.workers.len()
    }

    /// True when there are no workers (only [`Sfu::without_workers`]).
    pub fn is_empty(&self) -> bool {
        self.workers.is_empty()
    }

    /// Workers down right now: restarting after a panic, or gone for good.
    pub fn workers_down(&self) -> usize {
        self.down
            .iter()
            .filter(|d| d.load(Ordering::SeqCst))
            .count()
    }

    /// Current peer count.
    pub fn peers(&self) -> usize {
        self.peer_count.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests;

/// Property tests: `offer_preferences` reads any offer text without panicking.
#[cfg(test)]
mod prop_tests {
    use super::*;
    use proptest::prelude::*;

    /// SDP lines: media lines, rtpmap and fmtp (valid and broken), and other text.
    const LINES: [&str; 20] = [
        "m=video 9 UDP/TLS/RTP/SAVPF 96 97 98 102",
        "m=audio 9 UDP/TLS/RTP/SAVPF 111",
        "m=video 9",
        "m=",
        "a=rtpmap:96 VP8/90000",
        "a=rtpmap:98 VP9/90000",
        "a=rtpmap:102 H264/90000",
        "a=rtpmap:111 opus/48000/2",
        "a=rtpmap:97 rtx/90000",
        "a=rtpmap:96",
        "a=rtpmap: /",
        "a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
        "a=fmtp:102 profile-level-id=zzzzzz;packetization-mode=99999999999",
        "a=fmtp:98 profile-id=2",
        "a=fmtp:98 profile-id=-1;;=;x",
        "a=fmtp:111 minptime=10;useinbandfec=1;stereo=2",
        "a=fmtp:97 apt=96",
        "a=fmtp:96 ",
        "a=fmtp:",
        "v=0",
    ];

    fn offer() -> impl Strategy<Value = String> {
        let line = prop_oneof![
            4 => prop::sample::select(&LINES[..]).prop_map(str::to_string),
            1 => "a=fmtp:(96|98|102|111) [a-z0-9=;-]{0,30}",
            1 => "m=[a-z0-9 /]{0,30}",
            1 => "[ -~\u{80}-\u{10ffff}]{0,20}",
        ];
        prop::collection::vec(line, 0..16).prop_map(|l| l.join("\r\n"))
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: std::env::var("PROPTEST_CASES").map_or(100_000, |_| ProptestConfig::default().cases),
            ..ProptestConfig::default()
        })]

        #[test]
        fn offer_preferences_takes_any_offer(sdp in prop_oneof![offer(), "\\PC{0,200}"]) {
            let listed: usize = sdp
                .lines()
                .filter_map(|l| l.trim().strip_prefix("m="))
                .map(|m| m.split(' ').skip(3).count())
                .sum();
            prop_assert!(offer_preferences(&sdp).len() <= listed);
        }
    }
}
