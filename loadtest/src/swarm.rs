//! A swarm of simulated WebRTC peers on one thread: publishers that send encoded frames from a
//! file (answering keyframe requests the way an encoder does, by jumping to the next keyframe),
//! and subscribers that count what they receive without decoding it.
//!
//! Each peer has its own UDP socket on 127.0.0.1 (the SFU tells peers apart by address); one
//! mio poll drives them all. Results are published through [`PeerStats`] (atomics plus a
//! `Notify`), so a test can await "first keyframe received" instead of sleeping.

use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use crossbeam_channel::{Receiver, Sender};
use mio::{Events, Interest, Poll, Token, Waker};
use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::format::{detect_h264_keyframe, detect_vp8_keyframe, Codec};
use str0m::media::{Frequency, MediaKind, MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::rtp::{AbsCaptureTime, Extension};
use str0m::{Candidate, Event, Input, Output, Rtc};

use crate::hist::Histogram;

use crate::ivf::Frame;

// Answering subscribers (the server offers, as Janus does): `Swarm::subscriber_answer`.
mod answer;

const WAKER: Token = Token(usize::MAX);
/// Extension id for abs-capture-time (the SFU uses the same and forwards it unchanged).
const ABS_CAPTURE_TIME_ID: u8 = 7;

/// Counters one simulated peer publishes. Read them from any thread.
#[derive(Debug)]
pub struct PeerStats {
    epoch: Instant,
    /// DTLS connected.
    pub connected: AtomicBool,
    /// Microseconds after the epoch at which the peer connected (0 = not yet).
    pub connected_at_us: AtomicU64,
    /// Microseconds after the epoch of the first video keyframe packet (0 = none yet).
    pub first_keyframe_us: AtomicU64,
    /// Video RTP packets received.
    pub video_packets: AtomicU64,
    /// Audio RTP packets received.
    pub audio_packets: AtomicU64,
    /// RTP payload bytes received.
    pub bytes: AtomicU64,
    /// Video keyframe starts received.
    pub keyframes: AtomicU64,
    /// Missing video sequence numbers (jumps forward by more than one).
    pub video_seq_gaps: AtomicU64,
    /// Video packets whose sequence number went backwards (reorder or restart).
    pub video_seq_backwards: AtomicU64,
    /// Video packets that came right after missing sequence numbers and do not start a
    /// keyframe: the stream resumed in the middle of a GOP, which the viewer cannot decode.
    pub video_resumed_mid_gop: AtomicU64,
    /// Distinct video SSRCs seen.
    pub video_ssrcs: AtomicU64,
    /// Keyframe requests (PLI/FIR) a publisher received.
    pub keyframe_requests: AtomicU64,
    /// Video frames a publisher wrote.
    pub frames_sent: AtomicU64,
    /// Distinct video sequence numbers received: a retransmission fills a hole, a duplicate
    /// counts once (see [`crate::seqs`]).
    pub video_seq_distinct: AtomicU64,
    /// Video sequence numbers from the lowest to the highest received, summed over SSRCs;
    /// `video_seq_span - video_seq_distinct` are still missing.
    pub video_seq_span: AtomicU64,
    /// Datagrams that arrived as part of a run the kernel handed over whole (the sender's
    /// UDP GSO send, received with `UDP_GRO`).
    pub datagrams_in_runs: AtomicU64,
    /// Video frames received complete (see [`crate::frames`]).
    pub frames_complete: AtomicU64,
    /// Complete frames per simulcast layer (0 = the highest rid), from the publisher's tag.
    pub frames_by_layer: [AtomicU64; crate::frames::MAX_LAYERS],
    /// Gaps of more than [`crate::frames::FREEZE`] between complete frames.
    pub freezes: AtomicU64,
    /// Those gaps' total length, microseconds.
    pub frozen_us: AtomicU64,
    /// Microseconds after the epoch of the last complete frame (0 = none yet).
    pub last_complete_us: AtomicU64,
    video_seqs: std::sync::Mutex<crate::seqs::SeqTracker>,
    notify: tokio::sync::Notify,
}

impl PeerStats {
    fn new(epoch: Instant) -> Self {
        PeerStats {
            epoch,
            connected: AtomicBool::new(false),
            connected_at_us: AtomicU64::new(0),
            first_keyframe_us: AtomicU64::new(0),
            video_packets: AtomicU64::new(0),
            audio_packets: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            keyframes: AtomicU64::new(0),
            video_seq_gaps: AtomicU64::new(0),
            video_seq_backwards: AtomicU64::new(0),
            video_resumed_mid_gop: AtomicU64::new(0),
            video_ssrcs: AtomicU64::new(0),
            keyframe_requests: AtomicU64::new(0),
            frames_sent: AtomicU64::new(0),
            video_seq_distinct: AtomicU64::new(0),
            video_seq_span: AtomicU64::new(0),
            datagrams_in_runs: AtomicU64::new(0),
            frames_complete: AtomicU64::new(0),
            frames_by_layer: Default::default(),
            freezes: AtomicU64::new(0),
            frozen_us: AtomicU64::new(0),
            last_complete_us: AtomicU64::new(0),
            video_seqs: Default::default(),
            notify: tokio::sync::Notify::new(),
        }
    }

    fn us(&self, t: Instant) -> u64 {
        (t.saturating_duration_since(self.epoch).as_micros() as u64).max(1)
    }

    /// When DTLS connected, if it did.
    pub fn connected_at(&self) -> Option<Instant> {
        match self.connected_at_us.load(Ordering::Acquire) {
            0 => None,
            us => Some(self.epoch + Duration::from_micros(us)),
        }
    }

    /// Time of the first keyframe, if one arrived.
    pub fn first_keyframe_at(&self) -> Option<Instant> {
        match self.first_keyframe_us.load(Ordering::Acquire) {
            0 => None,
            us => Some(self.epoch + Duration::from_micros(us)),
        }
    }

    /// When the last complete video frame arrived, if one did.
    pub fn last_complete_at(&self) -> Option<Instant> {
        match self.last_complete_us.load(Ordering::Acquire) {
            0 => None,
            us => Some(self.epoch + Duration::from_micros(us)),
        }
    }

    /// Video sequence numbers within the received range that have not arrived (yet).
    pub fn video_seq_missing(&self) -> u64 {
        let span = self.video_seq_span.load(Ordering::Acquire);
        span.saturating_sub(self.video_seq_distinct.load(Ordering::Acquire))
    }

    fn record_video_seq(&self, ssrc: u32, seq: u64) {
        let mut seqs = self.video_seqs.lock().unwrap_or_else(|e| e.into_inner());
        seqs.insert(ssrc, seq);
        // A reader may see the two a packet apart; `video_seq_missing` saturates.
        self.video_seq_span.store(seqs.span(), Ordering::Release);
        self.video_seq_distinct
            .store(seqs.distinct(), Ordering::Release);
    }

    /// Waits until `pred` holds or `limit` passes (woken by the swarm on every change).
    pub async fn wait_for(&self, limit: Duration, pred: impl Fn(&PeerStats) -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let notified = self.notify.notified();
            if pred(self) {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return pred(self);
            }
        }
    }
}

/// What a simulated publisher sends.
#[derive(Clone)]
pub struct Source {
    /// Encoded video frames, looped.
    pub frames: Arc<Vec<Frame>>,
    /// Frames per second.
    pub fps: u32,
    /// Video codec of the frames.
    pub codec: Codec,
    /// Also send Opus silence (20 ms frames).
    pub audio: bool,
    /// Simulcast rids, highest quality first (empty: no simulcast). Layer `i` carries each
    /// frame cut to 1/2^i of its size, so layers differ in bitrate as real ones do (the SFU
    /// never decodes, it only needs the keyframe marker at the start).
    pub simulcast: Vec<String>,
}

enum Role {
    Publisher {
        source: Source,
        video_mid: Mid,
        audio_mid: Option<Mid>,
        next_frame: usize,
        frame_count: u64,
        next_frame_at: Instant,
        audio_count: u64,
        next_audio_at: Instant,
        jump_to_keyframe: bool,
    },
    Subscriber {
        video_mids: Vec<Mid>,
        last_video_seq: HashMap<u32, u64>,
        /// Per video SSRC: the RTP timestamp and capture time of the frame being received
        /// (abs-capture-time rides on a frame's first packet only, as libwebrtc sends it).
        frame_capture: HashMap<u32, (u32, std::time::SystemTime)>,
        /// Per video SSRC: complete frames, their layers and freezes.
        frames: HashMap<u32, crate::frames::FrameTracker>,
    },
}

struct SimPeer {
    rtc: Rtc,
    socket: mio::net::UdpSocket,
    local: SocketAddr,
    next_timeout: Instant,
    role: Role,
    stats: Arc<PeerStats>,
    pending_restart: Option<SdpPendingOffer>,
    /// (old, new) local candidates of an ICE restart in progress.
    restart_candidates: Option<(Candidate, Candidate)>,
    blackhole_until: Option<Instant>,
    alive: bool,
    latency: Arc<Histogram>,
    /// The kernel's arrival stamp of the datagram being handled (`SO_TIMESTAMPNS`).
    arrived: Option<std::time::SystemTime>,
}

enum Cmd {
    Add(Box<SimPeer>, Sender<usize>),
    RestartIce(usize, Sender<Result<(String, String)>>),
    FinishRestart(usize, String, Sender<Result<()>>),
    Blackhole(usize, Duration),
    Close(usize),
    Stop,
}

/// A set of simulated peers driven by one thread.
pub struct Swarm {
    /// Publisher capture → subscriber arrival, for every video packet received (same clock).
    pub latency: Arc<Histogram>,
    tx: Sender<Cmd>,
    waker: Arc<Waker>,
    epoch: Instant,
    join: Option<std::thread::JoinHandle<()>>,
    /// Whether its sockets get `UDP_GRO` (see `enable_gro`).
    gro: bool,
    /// The swarm thread's kernel thread id (0 if it could not be read).
    tid: u32,
}

/// A peer in the swarm, as the test sees it.
#[derive(Clone)]
pub struct PeerHandle {
    /// Index in the swarm.
    pub index: usize,
    /// Its counters.
    pub stats: Arc<PeerStats>,
    /// The WHIP/WHEP session URL.
    pub session_url: String,
    /// The session's current ETag.
    pub etag: String,
    /// The server's answer SDP.
    pub answer: String,
}

/// A peer being set up (offer made, answer not yet applied).
pub struct Offer {
    rtc: Rtc,
    pending: SdpPendingOffer,
    socket: std::net::UdpSocket,
    /// The offer SDP to send.
    pub sdp: String,
    role: Role,
}

impl Swarm {
    /// Starts the swarm thread; its peers' sockets take UDP GSO runs whole (`UDP_GRO`).
    pub fn start() -> Result<Swarm> {
        Swarm::start_with(true, false)
    }

    /// Starts the swarm thread, with or without `UDP_GRO` on its peers' sockets; with
    /// `spin` it polls without ever sleeping (for viewers only: a spinning publisher thread
    /// run `SCHED_FIFO` would hold its core).
    pub fn start_with(gro: bool, spin: bool) -> Result<Swarm> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let (tx, rx) = crossbeam_channel::unbounded();
        let epoch = Instant::now();
        let (tid_tx, tid_rx) = std::sync::mpsc::channel();
        let join = std::thread::Builder::new()
            .name("swarm".into())
            .spawn(move || {
                let _ = tid_tx.send(thread_id());
                run(poll, rx, spin)
            })?;
        Ok(Swarm {
            latency: Arc::new(Histogram::default()),
            tx,
            waker,
            epoch,
            join: Some(join),
            gro,
            tid: tid_rx.recv().unwrap_or(0),
        })
    }

    /// Runs the swarm thread `SCHED_FIFO` at `priority` (`chrt`), so threads at normal
    /// priority never delay it: a publisher whose sends are delayed by the generator's own
    /// viewer threads would count that delay as the server's latency.
    pub fn realtime(&self, priority: u8) -> Result<()> {
        make_realtime(self.tid, priority)
    }

    fn send(&self, cmd: Cmd) -> Result<()> {
        self.tx.send(cmd).map_err(|_| anyhow!("swarm stopped"))?;
        self.waker.wake()?;
        Ok(())
    }

    /// Makes a subscriber offer: `audio` audio m-lines and `video` video m-lines, recvonly.
    pub fn subscriber_offer(&self, audio: usize, video: usize) -> Result<Offer> {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0")?;
        let now = Instant::now();
        let mut rtc = Rtc::builder()
            .set_rtp_mode(true)
            .set_extension(ABS_CAPTURE_TIME_ID, Extension::AbsoluteCaptureTime)
            .build(now);
        rtc.add_local_candidate(Candidate::host(socket.local_addr()?, "udp")?);
        let mut api = rtc.sdp_api();
        for _ in 0..audio {
            api.add_media(
                MediaKind::Audio,
                str0m::media::Direction::RecvOnly,
                None,
                None,
                None,
            );
        }
        let mut video_mids = Vec::new();
        for _ in 0..video {
            video_mids.push(api.add_media(
                MediaKind::Video,
                str0m::media::Direction::RecvOnly,
                None,
                None,
                None,
            ));
        }
        let (offer, pending) = api.apply().context("no media in offer")?;
        Ok(Offer {
            rtc,
            pending,
            socket,
            sdp: offer.to_sdp_string(),
            role: Role::Subscriber {
                video_mids,
                last_video_seq: HashMap::new(),
                frame_capture: HashMap::new(),
                frames: HashMap::new(),
            },
        })
    }

    /// Makes a publisher offer sending `source` (video, and Opus if asked).
    pub fn publisher_offer(&self, source: Source) -> Result<Offer> {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0")?;
        let now = Instant::now();
        let mut builder = Rtc::builder()
            .clear_codecs()
            .enable_opus(true, false)
            .set_extension(ABS_CAPTURE_TIME_ID, Extension::AbsoluteCaptureTime);
        builder = match source.codec {
            Codec::H264 => builder.enable_h264(true),
            _ => builder.enable_vp8(true),
        };
        let mut rtc = builder.build(now);
        rtc.add_local_candidate(Candidate::host(socket.local_addr()?, "udp")?);
        let mut api = rtc.sdp_api();
        let audio_mid = source.audio.then(|| {
            api.add_media(
                MediaKind::Audio,
                str0m::media::Direction::SendOnly,
                None,
                None,
                None,
            )
        });
        let simulcast = (!source.simulcast.is_empty()).then(|| {
            let mut sc = str0m::media::Simulcast::new();
            for rid in &source.simulcast {
                sc.add_send_layer(str0m::media::SimulcastLayer::new(rid));
            }
            sc
        });
        let video_mid = api.add_media(
            MediaKind::Video,
            str0m::media::Direction::SendOnly,
            None,
            None,
            simulcast,
        );
        let (offer, pending) = api.apply().context("no media in offer")?;
        Ok(Offer {
            rtc,
            pending,
            socket,
            sdp: offer.to_sdp_string(),
            role: Role::Publisher {
                source,
                video_mid,
                audio_mid,
                next_frame: 0,
                frame_count: 0,
                next_frame_at: now,
                audio_count: 0,
                next_audio_at: now,
                jump_to_keyframe: false,
            },
        })
    }

    /// Applies the server's answer and hands the peer to the swarm thread.
    pub fn add(
        &self,
        offer: Offer,
        answer: &str,
        session_url: String,
        etag: String,
    ) -> Result<PeerHandle> {
        let Offer {
            mut rtc,
            pending,
            socket,
            role,
            ..
        } = offer;
        let ans = SdpAnswer::from_sdp_string(answer).context("answer is not SDP")?;
        rtc.sdp_api().accept_answer(pending, ans)?;
        let (index, stats) = self.adopt(rtc, socket, role)?;
        Ok(PeerHandle {
            index,
            stats,
            session_url,
            etag,
            answer: answer.to_string(),
        })
    }

    /// Hands a negotiated peer and its socket to the swarm thread; its index and counters.
    fn adopt(
        &self,
        rtc: Rtc,
        socket: std::net::UdpSocket,
        role: Role,
    ) -> Result<(usize, Arc<PeerStats>)> {
        socket.set_nonblocking(true)?;
        if self.gro {
            enable_gro(&socket);
        }
        stamp_arrivals(&socket);
        let local = socket.local_addr()?;
        let stats = Arc::new(PeerStats::new(self.epoch));
        let peer = SimPeer {
            rtc,
            socket: mio::net::UdpSocket::from_std(socket),
            local,
            next_timeout: Instant::now(),
            role,
            stats: stats.clone(),
            pending_restart: None,
            restart_candidates: None,
            blackhole_until: None,
            alive: true,
            latency: self.latency.clone(),
            arrived: None,
        };
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.send(Cmd::Add(Box::new(peer), tx))?;
        let index = rx.recv_timeout(Duration::from_secs(5))?;
        Ok((index, stats))
    }

    /// Moves the peer to a new UDP port and starts an ICE restart. Returns the new ICE
    /// credentials to PATCH to the server.
    pub fn restart_ice(&self, peer: &PeerHandle) -> Result<(String, String)> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.send(Cmd::RestartIce(peer.index, tx))?;
        rx.recv_timeout(Duration::from_secs(5))?
    }

    /// Completes an ICE restart with the server's answer fragment (ufrag, pwd, candidates).
    pub fn finish_restart(&self, peer: &PeerHandle, answer_frag: &str) -> Result<()> {
        // Rebuild a full answer: the original with the new ICE credentials and candidates.
        let mut ufrag = None;
        let mut pwd = None;
        let mut cands = Vec::new();
        for l in answer_frag.lines() {
            let l = l.trim_end();
            if let Some(v) = l.strip_prefix("a=ice-ufrag:") {
                ufrag = Some(v.to_string());
            } else if let Some(v) = l.strip_prefix("a=ice-pwd:") {
                pwd = Some(v.to_string());
            } else if l.starts_with("a=candidate:") {
                cands.push(l.to_string());
            }
        }
        let (ufrag, pwd) = ufrag
            .zip(pwd)
            .context("answer fragment lacks ICE credentials")?;
        let mut sdp = String::new();
        for l in peer.answer.lines() {
            let l = l.trim_end();
            if l.starts_with("a=ice-ufrag:") {
                sdp.push_str(&format!("a=ice-ufrag:{ufrag}\r\n"));
            } else if l.starts_with("a=ice-pwd:") {
                sdp.push_str(&format!("a=ice-pwd:{pwd}\r\n"));
            } else if l.starts_with("a=candidate:") {
                for c in &cands {
                    sdp.push_str(c);
                    sdp.push_str("\r\n");
                }
            } else {
                sdp.push_str(l);
                sdp.push_str("\r\n");
            }
        }
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.send(Cmd::FinishRestart(peer.index, sdp, tx))?;
        rx.recv_timeout(Duration::from_secs(5))?
    }

    /// Drops everything the peer sends or receives for `dur` (a link outage).
    pub fn blackhole(&self, peer: &PeerHandle, dur: Duration) -> Result<()> {
        self.send(Cmd::Blackhole(peer.index, dur))
    }

    /// Closes a peer.
    pub fn close(&self, peer: &PeerHandle) -> Result<()> {
        self.send(Cmd::Close(peer.index))
    }
}

impl Drop for Swarm {
    fn drop(&mut self) {
        let _ = self.send(Cmd::Stop);
        if let Some(j) = self.join.take() {
            let _ = j.join();
        }
    }
}

/// Opus silence: one 20 ms frame (TOC: CELT FB 20 ms, mono), valid for any decoder.
pub(crate) const OPUS_SILENCE: [u8; 3] = [0xf8, 0xff, 0xfe];

fn run(mut poll: Poll, rx: Receiver<Cmd>, spin: bool) {
    let mut peers: Vec<SimPeer> = Vec::new();
    let mut events = Events::with_capacity(256);
    // Room for a coalesced run of datagrams (UDP GRO: up to 64 KB).
    let mut buf = vec![0u8; 65_536];
    loop {
        let now = Instant::now();
        let mut next = now + Duration::from_millis(100);
        for p in peers.iter().filter(|p| p.alive) {
            next = next.min(p.next_timeout);
            if let Role::Publisher {
                next_frame_at,
                next_audio_at,
                source,
                ..
            } = &p.role
            {
                if p.stats.connected.load(Ordering::Relaxed) {
                    next = next.min(*next_frame_at);
                    if source.audio {
                        next = next.min(*next_audio_at);
                    }
                }
            }
        }
        let wait = if spin {
            Duration::ZERO
        } else {
            next.saturating_duration_since(now)
        };
        let _ = poll.poll(&mut events, Some(wait));
        let mut readable = Vec::new();
        for ev in events.iter() {
            if ev.token() != WAKER {
                readable.push(ev.token().0);
            }
        }
        while let Ok(cmd) = rx.try_recv() {
            match cmd {
                Cmd::Stop => return,
                Cmd::Add(mut p, reply) => {
                    let idx = peers.len();
                    if poll
                        .registry()
                        .register(&mut p.socket, Token(idx), Interest::READABLE)
                        .is_ok()
                    {
                        drain(&mut p, Instant::now());
                        peers.push(*p);
                        // A fresh socket may already hold data.
                        readable.push(idx);
                    }
                    let _ = reply.send(idx);
                }
                Cmd::RestartIce(idx, reply) => {
                    let r = peers
                        .get_mut(idx)
                        .ok_or_else(|| anyhow!("no such peer"))
                        .and_then(|p| restart(p, &poll, idx));
                    let _ = reply.send(r);
                }
                Cmd::FinishRestart(idx, sdp, reply) => {
                    let r = (|| {
                        let p = peers.get_mut(idx).ok_or_else(|| anyhow!("no such peer"))?;
                        let pending = p.pending_restart.take().context("no restart pending")?;
                        let ans = SdpAnswer::from_sdp_string(&sdp)?;
                        p.rtc.sdp_api().accept_answer(pending, ans)?;
                        drain(p, Instant::now());
                        if let Some((old, new)) = p.restart_candidates.take() {
                            p.rtc.direct_api().invalidate_candidate(&old);
                            drain(p, Instant::now());
                            p.rtc.add_local_candidate(new);
                            drain(p, Instant::now());
                        }
                        Ok(())
                    })();
                    let _ = reply.send(r);
                }
                Cmd::Blackhole(idx, dur) => {
                    if let Some(p) = peers.get_mut(idx) {
                        p.blackhole_until = Some(Instant::now() + dur);
                    }
                }
                Cmd::Close(idx) => {
                    if let Some(p) = peers.get_mut(idx) {
                        p.rtc.disconnect();
                        p.alive = false;
                        let _ = poll.registry().deregister(&mut p.socket);
                    }
                }
            }
        }
        for idx in readable {
            let Some(p) = peers.get_mut(idx) else {
                continue;
            };
            if !p.alive {
                continue;
            }
            loop {
                match recv_run(&p.socket, &mut buf) {
                    Ok((n, source, segment, arrived)) => {
                        let now = Instant::now();
                        if p.blackhole_until.is_some_and(|t| now < t) {
                            continue;
                        }
                        p.arrived = arrived;
                        if n > segment {
                            p.stats
                                .datagrams_in_runs
                                .fetch_add(n.div_ceil(segment) as u64, Ordering::Relaxed);
                        }
                        for datagram in buf[..n].chunks(segment) {
                            if let Ok(r) = Receive::new(Protocol::Udp, source, p.local, datagram) {
                                let _ = p.rtc.handle_input(Input::Receive(now, r));
                                drain(p, now);
                            }
                        }
                        p.arrived = None;
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(_) => break,
                }
            }
        }
        let now = Instant::now();
        for p in peers.iter_mut().filter(|p| p.alive) {
            if p.next_timeout <= now {
                let _ = p.rtc.handle_input(Input::Timeout(now));
                drain(p, now);
            }
            send_media(p, now);
        }
    }
}

/// Asks the kernel to hand over a run of datagrams a server sent as one UDP GSO send as one
/// buffer (`UDP_GRO`), as a viewer on another machine would receive it from its NIC: on
/// loopback the receive side runs on the sender's core, and without this the kernel cuts the
/// run back into datagrams there, charging the server for the viewers' work. Best effort.
/// The calling thread's kernel id, from `/proc/thread-self` (no unsafe `gettid` call).
/// Makes thread `tid` of this process `SCHED_FIFO` at `priority` (`chrt`; needs root).
pub(crate) fn make_realtime(tid: u32, priority: u8) -> Result<()> {
    if tid == 0 {
        bail!("the thread's id is unknown");
    }
    let st = std::process::Command::new("chrt")
        .args(["-f", "-p", &priority.to_string(), &tid.to_string()])
        .status()
        .context("running chrt")?;
    if !st.success() {
        bail!("chrt -f -p {priority} {tid} failed (needs root)");
    }
    Ok(())
}

pub(crate) fn thread_id() -> u32 {
    std::fs::read_link("/proc/thread-self")
        .ok()
        .and_then(|p| p.file_name()?.to_str()?.parse().ok())
        .unwrap_or(0)
}

pub(crate) fn enable_gro(socket: &std::net::UdpSocket) {
    use nix::sys::socket::{setsockopt, sockopt::UdpGroSegment};
    if let Err(e) = setsockopt(socket, UdpGroSegment, &true) {
        tracing::debug!("UDP_GRO not available: {e}");
    }
}

/// Asks the kernel to stamp each datagram's arrival (`SO_TIMESTAMPNS`): latency is measured
/// to when a packet reached the viewer's socket, not to when this thread, busy with the
/// other viewers of its swarm, got to it. Best effort (without it, the time of handling).
pub(crate) fn stamp_arrivals(socket: &std::net::UdpSocket) {
    use nix::sys::socket::{setsockopt, sockopt::ReceiveTimestampns};
    if let Err(e) = setsockopt(socket, ReceiveTimestampns, &true) {
        tracing::debug!("SO_TIMESTAMPNS not available: {e}");
    }
}

/// Reads one datagram, or one run of them coalesced by UDP GRO. Returns the bytes read, the
/// source, the datagram size within the run (the last one may be shorter) and the kernel's
/// arrival stamp.
pub(crate) fn recv_run(
    socket: &mio::net::UdpSocket,
    buf: &mut [u8],
) -> std::io::Result<(usize, SocketAddr, usize, Option<std::time::SystemTime>)> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags, SockaddrStorage};
    use std::os::fd::AsRawFd;
    let mut iov = [std::io::IoSliceMut::new(buf)];
    let mut space = nix::cmsg_space!(i32, nix::sys::time::TimeSpec);
    let msg = recvmsg::<SockaddrStorage>(
        socket.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_DONTWAIT,
    )
    .map_err(std::io::Error::from)?;
    let n = msg.bytes;
    let mut segment = n;
    let mut arrived = None;
    if let Ok(cmsgs) = msg.cmsgs() {
        for c in cmsgs {
            match c {
                ControlMessageOwned::UdpGroSegments(s) => {
                    segment = usize::try_from(s).unwrap_or(n);
                }
                ControlMessageOwned::ScmTimestampns(t) => {
                    let since_epoch = Duration::new(
                        u64::try_from(t.tv_sec()).unwrap_or(0),
                        u32::try_from(t.tv_nsec()).unwrap_or(0),
                    );
                    arrived = std::time::UNIX_EPOCH.checked_add(since_epoch);
                }
                _ => {}
            }
        }
    }
    let source = msg
        .address
        .and_then(|a| {
            a.as_sockaddr_in()
                .map(|s| SocketAddr::from(std::net::SocketAddrV4::from(*s)))
        })
        .ok_or_else(|| std::io::Error::new(ErrorKind::InvalidData, "no IPv4 source"))?;
    Ok((n, source, segment.clamp(1, n.max(1)), arrived))
}

fn restart(p: &mut SimPeer, poll: &Poll, idx: usize) -> Result<(String, String)> {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0")?;
    socket.set_nonblocking(true)?;
    // The new socket takes runs whole if the old one did.
    let gro = nix::sys::socket::getsockopt(&p.socket, nix::sys::socket::sockopt::UdpGroSegment);
    if gro.unwrap_or(false) {
        enable_gro(&socket);
    }
    stamp_arrivals(&socket);
    let local = socket.local_addr()?;
    let mut socket = mio::net::UdpSocket::from_std(socket);
    let _ = poll.registry().deregister(&mut p.socket);
    poll.registry()
        .register(&mut socket, Token(idx), Interest::READABLE)?;
    let old = Candidate::host(p.local, "udp")?;
    p.socket = socket;
    p.restart_candidates = Some((old, Candidate::host(local, "udp")?));
    p.local = local;
    let mut api = p.rtc.sdp_api();
    // str0m performs the restart when the answer is accepted; the candidates are swapped then
    // (a candidate added now would be discarded with the old generation).
    let creds = api.ice_restart(false);
    let (_offer, pending) = api.apply().context("ICE restart produced no offer")?;
    p.pending_restart = Some(pending);
    drain(p, Instant::now());
    Ok((creds.ufrag, creds.pass))
}

/// Writes a frame through str0m's frame-level writer (str0m packetizes it).
fn write_frame(
    rtc: &mut Rtc,
    mid: Mid,
    rid: Option<&str>,
    codec: Codec,
    time: MediaTime,
    now: Instant,
    data: Vec<u8>,
) -> bool {
    let Some(mut w) = rtc.writer(mid) else {
        return false;
    };
    if let Some(r) = rid {
        w = w.rid(r.into());
    }
    w = w.abs_capture_time(AbsCaptureTime {
        capture_time: std::time::SystemTime::now(),
        clock_offset: None,
    });
    let Some(pt) = w
        .payload_params()
        .find(|pp| pp.spec().codec == codec)
        .map(|pp| pp.pt())
    else {
        return false;
    };
    w.write(pt, now, time, data).is_ok()
}

fn send_media(p: &mut SimPeer, now: Instant) {
    if !p.stats.connected.load(Ordering::Relaxed) {
        return;
    }
    // During an outage the sender produces nothing (as a browser whose link is down would
    // lose it anyway); afterwards it carries on where it stopped.
    if p.blackhole_until.is_some_and(|b| now < b) {
        return;
    }
    let Role::Publisher {
        source,
        video_mid,
        next_frame,
        frame_count,
        next_frame_at,
        jump_to_keyframe,
        ..
    } = &mut p.role
    else {
        return;
    };
    if now >= *next_frame_at {
        let frames = source.frames.clone();
        if *jump_to_keyframe {
            // An encoder answers a keyframe request with its next frame; so does the file.
            *jump_to_keyframe = false;
            if let Some(k) = (0..frames.len())
                .map(|i| (*next_frame + i) % frames.len())
                .find(|&i| frames[i].keyframe)
            {
                *next_frame = k;
            }
        }
        let ticks = *frame_count * 90_000 / u64::from(source.fps.max(1));
        let time = MediaTime::new(ticks, Frequency::NINETY_KHZ);
        let index = *next_frame;
        let (mid, codec, rids) = (*video_mid, source.codec, source.simulcast.clone());
        *next_frame = (*next_frame + 1) % frames.len();
        *frame_count += 1;
        *next_frame_at += Duration::from_secs(1) / source.fps.max(1);
        if *next_frame_at < now {
            *next_frame_at = now;
        }
        let data = &frames[index].data;
        if rids.is_empty() {
            if write_frame(&mut p.rtc, mid, None, codec, time, now, data.clone()) {
                p.stats.frames_sent.fetch_add(1, Ordering::Relaxed);
                p.stats.notify.notify_waiters();
            }
        } else {
            for (i, rid) in rids.iter().enumerate() {
                let len = (data.len() >> i).max(data.len().min(32));
                // Tagged with its layer, so a viewer can tell which one it was sent.
                let mut layer = data[..len].to_vec();
                crate::frames::tag(&mut layer, i);
                if write_frame(&mut p.rtc, mid, Some(rid), codec, time, now, layer) {
                    p.stats.frames_sent.fetch_add(1, Ordering::Relaxed);
                    p.stats.notify.notify_waiters();
                }
                // Every write is a mutation: drain before the next one.
                drain(p, now);
            }
        }
    }
    // str0m wants a full drain after every mutation, so video and audio are drained apart.
    drain(p, now);
    let Role::Publisher {
        audio_mid,
        audio_count,
        next_audio_at,
        ..
    } = &mut p.role
    else {
        return;
    };
    if let Some(mid) = *audio_mid {
        if now >= *next_audio_at {
            let time = MediaTime::new(*audio_count * 960, Frequency::FORTY_EIGHT_KHZ);
            *audio_count += 1;
            *next_audio_at += Duration::from_millis(20);
            if *next_audio_at < now {
                *next_audio_at = now;
            }
            write_frame(
                &mut p.rtc,
                mid,
                None,
                Codec::Opus,
                time,
                now,
                OPUS_SILENCE.to_vec(),
            );
        }
    }
    drain(p, now);
}

fn drain(p: &mut SimPeer, now: Instant) {
    loop {
        match p.rtc.poll_output() {
            Ok(Output::Timeout(t)) => {
                p.next_timeout = t;
                return;
            }
            Ok(Output::Transmit(t)) => {
                if p.blackhole_until.is_some_and(|b| now < b) {
                    continue;
                }
                let _ = p.socket.send_to(&t.contents, t.destination);
            }
            Ok(Output::Event(e)) => on_event(p, e, now),
            Err(e) => {
                tracing::debug!("sim peer failed: {e}");
                p.alive = false;
                p.stats.notify.notify_waiters();
                return;
            }
        }
    }
}

fn on_event(p: &mut SimPeer, e: Event, now: Instant) {
    let stats = &p.stats;
    match e {
        Event::Connected => {
            stats.connected.store(true, Ordering::Release);
            stats
                .connected_at_us
                .store(stats.us(now), Ordering::Release);
            stats.notify.notify_waiters();
        }
        Event::KeyframeRequest(_) => {
            stats.keyframe_requests.fetch_add(1, Ordering::Relaxed);
            if let Role::Publisher {
                jump_to_keyframe, ..
            } = &mut p.role
            {
                *jump_to_keyframe = true;
            }
            stats.notify.notify_waiters();
        }
        Event::RtpPacket(pkt) => {
            let Role::Subscriber {
                video_mids,
                last_video_seq,
                frame_capture,
                frames,
            } = &mut p.role
            else {
                return;
            };
            stats
                .bytes
                .fetch_add(pkt.payload.len() as u64, Ordering::Relaxed);
            let ssrc = pkt.header.ssrc;
            let mid = p.rtc.direct_api().stream_rx(&ssrc).map(|s| s.mid());
            let is_video = mid.is_some_and(|m| video_mids.contains(&m));
            if !is_video {
                stats.audio_packets.fetch_add(1, Ordering::Relaxed);
                stats.notify.notify_waiters();
                return;
            }
            stats.video_packets.fetch_add(1, Ordering::Relaxed);
            // Every packet of a frame is timed from the frame's capture: the publisher sends a
            // frame's packets in one burst when it is captured, so that is each packet's send
            // time (to within microseconds), and the frame's last packet gives the time at
            // which the viewer can decode it.
            let ts = pkt.header.timestamp;
            if let Some(act) = pkt.header.ext_vals.abs_capture_time {
                // A late retransmission of an older frame's first packet does not take over.
                let newer = frame_capture
                    .get(&*ssrc)
                    .is_none_or(|(t, _)| ts.wrapping_sub(*t) as i32 >= 0);
                if newer {
                    frame_capture.insert(*ssrc, (ts, act.capture_time));
                }
            }
            if let Some(&(_, captured)) = frame_capture.get(&*ssrc).filter(|(t, _)| *t == ts) {
                let arrived = p.arrived.unwrap_or_else(std::time::SystemTime::now);
                if let Ok(d) = arrived.duration_since(captured) {
                    p.latency.record(d);
                }
            }
            let seq = *pkt.seq_no;
            stats.record_video_seq(*ssrc, seq);
            let marker = pkt.header.marker;
            let layer = marker
                .then(|| crate::frames::layer_of(&pkt.payload))
                .flatten();
            frames
                .entry(*ssrc)
                .or_default()
                .on_packet(seq, marker, layer, now, |c| {
                    stats.frames_complete.fetch_add(1, Ordering::Relaxed);
                    if let Some(l) = c.layer {
                        stats.frames_by_layer[l].fetch_add(1, Ordering::Relaxed);
                    }
                    if let Some(gap) = c.freeze {
                        stats.freezes.fetch_add(1, Ordering::Relaxed);
                        stats
                            .frozen_us
                            .fetch_add(gap.as_micros() as u64, Ordering::Relaxed);
                    }
                    stats
                        .last_complete_us
                        .store(stats.us(now), Ordering::Release);
                });
            let kf = detect_vp8_keyframe(&pkt.payload) || detect_h264_keyframe(&pkt.payload);
            match last_video_seq.get(&*ssrc) {
                None => {
                    stats.video_ssrcs.fetch_add(1, Ordering::Relaxed);
                    last_video_seq.insert(*ssrc, seq);
                }
                Some(&last) => {
                    if seq > last + 1 {
                        stats
                            .video_seq_gaps
                            .fetch_add(seq - last - 1, Ordering::Relaxed);
                        if !kf {
                            stats.video_resumed_mid_gop.fetch_add(1, Ordering::Relaxed);
                        }
                    } else if seq <= last {
                        stats.video_seq_backwards.fetch_add(1, Ordering::Relaxed);
                    }
                    if seq > last {
                        last_video_seq.insert(*ssrc, seq);
                    }
                }
            }
            if kf {
                stats.keyframes.fetch_add(1, Ordering::Relaxed);
                let _ = stats.first_keyframe_us.compare_exchange(
                    0,
                    stats.us(now),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                );
            }
            stats.notify.notify_waiters();
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A viewer's socket hands over a sender's UDP GSO run whole, with its segment size, and
    /// stamps every read with the kernel's arrival time.
    #[test]
    fn a_gso_run_arrives_whole_with_its_segment_size_and_arrival_stamp() {
        use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags, SockaddrStorage};
        use std::os::fd::AsRawFd;
        let viewer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        enable_gro(&viewer);
        stamp_arrivals(&viewer);
        let to = viewer.local_addr().unwrap();
        let viewer = mio::net::UdpSocket::from_std(viewer);
        let server = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut buf = vec![0u8; 65_536];

        let before = std::time::SystemTime::now();
        let run: Vec<u8> = (0..3u8).flat_map(|i| [i; 500]).chain([9u8; 200]).collect();
        let size: u16 = 500;
        sendmsg(
            server.as_raw_fd(),
            &[std::io::IoSlice::new(&run)],
            &[ControlMessage::UdpGsoSegments(&size)],
            MsgFlags::empty(),
            Some(&SockaddrStorage::from(to)),
        )
        .unwrap();
        let (n, source, segment, arrived) = recv_run(&viewer, &mut buf).unwrap();
        assert_eq!((n, segment), (1700, 500), "one read, four datagrams");
        assert_eq!(source, server.local_addr().unwrap());
        let parts: Vec<&[u8]> = buf[..n].chunks(segment).collect();
        assert_eq!(parts.len(), 4);
        assert_eq!((parts[1][0], parts[3].len()), (1, 200));
        let arrived = arrived.expect("kernel arrival stamp");
        assert!(arrived >= before - Duration::from_millis(5));
        assert!(arrived <= std::time::SystemTime::now());

        // A plain datagram is one segment.
        server.send_to(&[7; 40], to).unwrap();
        let (n, _, segment, arrived) = recv_run(&viewer, &mut buf).unwrap();
        assert_eq!((n, segment), (40, 40));
        assert!(arrived.is_some());
        // Nothing more: would block.
        assert_eq!(
            recv_run(&viewer, &mut buf).unwrap_err().kind(),
            ErrorKind::WouldBlock
        );
    }
}
