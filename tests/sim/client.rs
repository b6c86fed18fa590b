//! Simulated clients: str0m `Rtc`s that publish synthetic VP8 (optionally simulcast) and Opus
//! with keyframes the test controls, or view and record every RTP packet they receive. They
//! run on the virtual time they are given and must never read the wall clock or own a socket.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::format::{Codec, FormatParams};
use str0m::media::{Direction, Frequency, MediaKind, MediaTime, Mid, Simulcast, SimulcastLayer};
use str0m::net::{Protocol, Receive};
use str0m::rtp::rtcp::Rtcp;
use str0m::rtp::RawPacket;
use str0m::{Candidate, Event, Input, Output, Rtc};

/// Offset in a synthetic frame of its tag: the publisher's source id (1 byte), the layer
/// (1 byte), then the frame number (4 bytes).
const TAG_AT: usize = 10;
const TAG_LEN: usize = 6;
/// The frame's number on the publisher's clock of frames.
pub type FrameNo = u32;

/// A synthetic VP8 frame: a real VP8 frame header (so keyframe detection works on it), a tag
/// saying which layer and frame it is, then filler up to `len` bytes.
pub fn vp8_frame(keyframe: bool, source: u8, layer: u8, frame: FrameNo, len: usize) -> Vec<u8> {
    let len = len.max(TAG_AT + TAG_LEN);
    let mut d = vec![0u8; len];
    // Frame tag (RFC 6386 9.1): bit 0 is 0 for a key frame; show_frame set.
    d[0] = 0x10 | u8::from(!keyframe);
    if keyframe {
        d[3..6].copy_from_slice(&[0x9d, 0x01, 0x2a]);
        d[6..10].copy_from_slice(&[0x40, 0x01, 0xb4, 0x00]); // 320 × 180
    }
    d[TAG_AT] = source;
    d[TAG_AT + 1] = layer;
    d[TAG_AT + 2..TAG_AT + TAG_LEN].copy_from_slice(&frame.to_be_bytes());
    for (i, b) in d.iter_mut().enumerate().skip(TAG_AT + TAG_LEN) {
        *b = (i as u8) ^ (frame as u8);
    }
    d
}

/// The VP8 payload descriptor's length (RFC 7741 4.2), or `None` if it is cut short.
pub fn vp8_descriptor_len(p: &[u8]) -> Option<usize> {
    let b0 = *p.first()?;
    let mut i = 1;
    if b0 & 0x80 != 0 {
        let x = *p.get(i)?;
        i += 1;
        if x & 0x80 != 0 {
            i += if *p.get(i)? & 0x80 != 0 { 2 } else { 1 };
        }
        if x & 0x40 != 0 {
            i += 1;
        }
        if x & 0x30 != 0 {
            i += 1;
        }
    }
    (i <= p.len()).then_some(i)
}

/// What a viewer makes of the first packet of a VP8 frame (S bit set, partition 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FrameStart {
    pub keyframe: bool,
    pub source: u8,
    pub layer: u8,
    pub frame: FrameNo,
}

/// Reads the frame start in a VP8 RTP payload written by [`vp8_frame`].
pub fn frame_start(payload: &[u8]) -> Option<FrameStart> {
    let b0 = *payload.first()?;
    if b0 & 0x10 == 0 || b0 & 0x07 != 0 {
        return None;
    }
    let f = &payload[vp8_descriptor_len(payload)?..];
    let tag = f.get(TAG_AT..TAG_AT + TAG_LEN)?;
    Some(FrameStart {
        keyframe: f[0] & 1 == 0,
        source: tag[0],
        layer: tag[1],
        frame: u32::from_be_bytes([tag[2], tag[3], tag[4], tag[5]]),
    })
}

/// One RTP packet a viewer received.
#[derive(Debug, Clone)]
pub struct RxPacket {
    /// Virtual time of arrival.
    pub at: Instant,
    pub kind: MediaKind,
    pub ssrc: u32,
    /// Extended sequence number (str0m unrolls it).
    pub seq: u64,
    pub ts: u32,
    pub marker: bool,
    /// Set on the first packet of a VP8 frame.
    pub start: Option<FrameStart>,
    pub payload_len: usize,
    /// FNV of the payload.
    pub payload_hash: u64,
}

/// How a publisher sends.
#[derive(Debug, Clone)]
pub struct Publish {
    /// Simulcast rids, best first (empty: one layer).
    pub rids: Vec<String>,
    pub fps: u32,
    /// A keyframe every this many frames (0: only the first one and when asked).
    pub gop: u32,
    /// Bytes of a frame of the best layer (layer i is 1/2^i of it).
    pub frame_bytes: usize,
    pub audio: bool,
    /// The participant id its lesson token would carry.
    pub part: Option<String>,
    /// Written into every frame, so viewers know whose picture they got.
    pub source: u8,
    /// How long the encoder takes to answer a keyframe request.
    pub key_delay: Duration,
    /// Offer RTX for VP8 (false: plain VP8, as OBS or GStreamer offer by default; str0m's
    /// sender then cannot answer NACKs at all).
    pub rtx: bool,
}

impl Default for Publish {
    fn default() -> Self {
        Publish {
            rids: Vec::new(),
            fps: 30,
            gop: 60,
            frame_bytes: 3000,
            audio: true,
            part: None,
            source: 0,
            key_delay: Duration::ZERO,
            rtx: true,
        }
    }
}

/// A publisher's state.
pub struct Sender {
    pub opts: Publish,
    pub video: Mid,
    pub audio: Option<Mid>,
    frame: FrameNo,
    next_frame: Instant,
    next_audio: Instant,
    audio_n: u64,
    /// Per layer: a keyframe was asked for, to be sent from this instant on.
    key_wanted: Vec<Option<Instant>>,
    /// Keyframe requests received (PLI or FIR), per layer.
    pub keyframe_requests: Vec<u32>,
    /// Frame numbers sent as keyframes, per layer.
    pub keyframes_sent: Vec<Vec<FrameNo>>,
    /// While set, sends nothing (a muted camera or a stalled encoder).
    pub paused: bool,
    /// When the server's reception reports came, per SSRC reported on (recorded for a
    /// publisher without RTX only: see [`Publish::rtx`]).
    pub reports_in: BTreeMap<u32, Vec<Instant>>,
}

/// A viewer's state.
#[derive(Default)]
pub struct Viewer {
    pub rx: Vec<RxPacket>,
}

pub enum Role {
    Publisher(Box<Sender>),
    Viewer(Viewer),
}

/// One simulated client.
pub struct Client {
    pub name: String,
    /// The address it sends from (changes on an ICE restart from a new port).
    pub addr: SocketAddr,
    pub rtc: Rtc,
    pub role: Role,
    pub connected_at: Option<Instant>,
    pub alive: bool,
    rtc_timeout: Instant,
    pending: Option<SdpPendingOffer>,
    /// (old, new) local candidate of an ICE restart waiting for its answer.
    restart: Option<(Candidate, Candidate)>,
}

/// A frame to hand to str0m's writer: mid, rid, media time, data, codec.
type FrameWrite = (Mid, Option<String>, MediaTime, Vec<u8>, Codec);

/// A datagram a client wants sent.
pub type Out = Vec<(SocketAddr, SocketAddr, Vec<u8>)>;

impl Client {
    /// A publisher at `addr` and its offer.
    pub fn publisher(
        name: &str,
        addr: SocketAddr,
        now: Instant,
        opts: Publish,
    ) -> (Client, String) {
        let mut b = Rtc::builder().clear_codecs().enable_opus(true, false);
        if opts.rtx {
            b = b.enable_vp8(true);
        } else {
            b.codec_config().add_config(
                96.into(),
                None,
                Codec::Vp8,
                Frequency::NINETY_KHZ,
                None,
                FormatParams::default(),
            );
            // The server's RTCP as raw packets: its reception reports are counted.
            b = b.enable_raw_packets(true);
        }
        let mut rtc = b.build(now);
        rtc.add_local_candidate(Candidate::host(addr, "udp").expect("a host candidate"));
        let mut api = rtc.sdp_api();
        let audio = opts
            .audio
            .then(|| api.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None));
        let simulcast = (!opts.rids.is_empty()).then(|| {
            let mut sc = Simulcast::new();
            for rid in &opts.rids {
                sc.add_send_layer(SimulcastLayer::new(rid));
            }
            sc
        });
        let video = api.add_media(MediaKind::Video, Direction::SendOnly, None, None, simulcast);
        let (offer, pending) = api.apply().expect("an offer");
        let layers = opts.rids.len().max(1);
        let sender = Sender {
            video,
            audio,
            frame: 0,
            next_frame: now,
            next_audio: now,
            audio_n: 0,
            key_wanted: vec![Some(now); layers],
            keyframe_requests: vec![0; layers],
            keyframes_sent: vec![Vec::new(); layers],
            paused: false,
            reports_in: BTreeMap::new(),
            opts,
        };
        let c = Client::new(
            name,
            addr,
            rtc,
            Role::Publisher(Box::new(sender)),
            now,
            pending,
        );
        (c, offer.to_sdp_string())
    }

    /// A viewer at `addr` receiving `audio` + `video` m-lines with the given video codecs
    /// (empty: str0m's defaults), and its offer.
    pub fn viewer(
        name: &str,
        addr: SocketAddr,
        now: Instant,
        video_codecs: &[Codec],
    ) -> (Client, String) {
        let mut b = Rtc::builder().set_rtp_mode(true);
        if !video_codecs.is_empty() {
            b = b.clear_codecs().enable_opus(true, false);
            for c in video_codecs {
                b = match c {
                    Codec::H264 => b.enable_h264(true),
                    Codec::Vp9 => b.enable_vp9(true),
                    _ => b.enable_vp8(true),
                };
            }
        }
        let mut rtc = b.build(now);
        rtc.add_local_candidate(Candidate::host(addr, "udp").expect("a host candidate"));
        let mut api = rtc.sdp_api();
        api.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
        api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
        let (offer, pending) = api.apply().expect("an offer");
        let c = Client::new(
            name,
            addr,
            rtc,
            Role::Viewer(Viewer::default()),
            now,
            pending,
        );
        (c, offer.to_sdp_string())
    }

    /// A viewer that answers `offer` itself (no server between: the harness's self-test).
    pub fn answering_viewer(
        name: &str,
        addr: SocketAddr,
        now: Instant,
        offer: &str,
    ) -> (Client, String) {
        let mut rtc = Rtc::builder().set_rtp_mode(true).build(now);
        rtc.add_local_candidate(Candidate::host(addr, "udp").expect("a host candidate"));
        let offer = SdpOffer::from_sdp_string(offer).expect("the offer is SDP");
        let answer = rtc.sdp_api().accept_offer(offer).expect("an answer");
        let c = Client {
            name: name.to_string(),
            addr,
            rtc,
            role: Role::Viewer(Viewer::default()),
            connected_at: None,
            alive: true,
            rtc_timeout: now,
            pending: None,
            restart: None,
        };
        (c, answer.to_sdp_string())
    }

    fn new(
        name: &str,
        addr: SocketAddr,
        rtc: Rtc,
        role: Role,
        now: Instant,
        pending: SdpPendingOffer,
    ) -> Client {
        Client {
            name: name.to_string(),
            addr,
            rtc,
            role,
            connected_at: None,
            alive: true,
            rtc_timeout: now,
            pending: Some(pending),
            restart: None,
        }
    }

    /// Applies the server's answer (to the offer, or to an ICE restart's re-offer).
    pub fn accept_answer(&mut self, answer: &str, now: Instant, out: &mut Out) {
        let pending = self.pending.take().expect("an offer waits for its answer");
        let ans = SdpAnswer::from_sdp_string(answer).expect("the answer is SDP");
        self.rtc
            .sdp_api()
            .accept_answer(pending, ans)
            .expect("the answer fits the offer");
        self.drain(now, out);
        if let Some((old, new)) = self.restart.take() {
            self.rtc.direct_api().invalidate_candidate(&old);
            self.drain(now, out);
            self.rtc.add_local_candidate(new);
            self.drain(now, out);
        }
    }

    /// Starts an ICE restart with new credentials from `new_addr`: the re-offer to send
    /// (see [`Client::accept_answer`]).
    pub fn ice_restart(&mut self, new_addr: SocketAddr, now: Instant, out: &mut Out) -> SdpOffer {
        let old = Candidate::host(self.addr, "udp").expect("a host candidate");
        let new = Candidate::host(new_addr, "udp").expect("a host candidate");
        self.restart = Some((old, new));
        self.addr = new_addr;
        let mut api = self.rtc.sdp_api();
        api.ice_restart(false);
        let (offer, pending) = api.apply().expect("an ICE restart offer");
        self.pending = Some(pending);
        self.drain(now, out);
        offer
    }

    /// When this client next wants [`Client::handle_timeout`].
    pub fn poll_timeout(&self) -> Option<Instant> {
        if !self.alive {
            return None;
        }
        let mut t = self.rtc_timeout;
        if let (Role::Publisher(s), Some(_)) = (&self.role, self.connected_at) {
            if !s.paused {
                t = t.min(s.next_frame);
                if s.audio.is_some() {
                    t = t.min(s.next_audio);
                }
            }
        }
        Some(t)
    }

    /// A datagram for this client arrived.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        to: SocketAddr,
        data: &[u8],
        out: &mut Out,
    ) {
        if !self.alive {
            return;
        }
        let Ok(contents) = data.try_into() else {
            return;
        };
        let input = Input::Receive(
            now,
            Receive {
                proto: Protocol::Udp,
                source: from,
                destination: to,
                contents,
            },
        );
        if self.rtc.accepts(&input) {
            if let Err(e) = self.rtc.handle_input(input) {
                panic!("{}: str0m refused a datagram: {e}", self.name);
            }
        }
        self.drain(now, out);
    }

    /// Time passed: str0m's timers, and a publisher's next frame.
    pub fn handle_timeout(&mut self, now: Instant, out: &mut Out) {
        if !self.alive {
            return;
        }
        if now >= self.rtc_timeout {
            self.rtc
                .handle_input(Input::Timeout(now))
                .expect("str0m takes a timeout");
            self.drain(now, out);
        }
        if self.connected_at.is_some() {
            self.send_media(now, out);
        }
    }

    fn send_media(&mut self, now: Instant, out: &mut Out) {
        let Role::Publisher(s) = &mut self.role else {
            return;
        };
        if s.paused {
            return;
        }
        let mut writes: Vec<FrameWrite> = Vec::new();
        if now >= s.next_frame {
            let f = s.frame;
            let due_key = s.opts.gop > 0 && f % s.opts.gop == 0;
            let layers = s.opts.rids.len().max(1);
            let time = MediaTime::new(
                u64::from(f) * 90_000 / u64::from(s.opts.fps),
                Frequency::NINETY_KHZ,
            );
            for li in 0..layers {
                let asked = s.key_wanted[li].is_some_and(|t| now >= t);
                let key = due_key || asked;
                if key {
                    s.key_wanted[li] = None;
                }
                if key {
                    s.keyframes_sent[li].push(f);
                }
                let len = (s.opts.frame_bytes >> li).max(64);
                let rid = s.opts.rids.get(li).cloned();
                writes.push((
                    s.video,
                    rid,
                    time,
                    vp8_frame(key, s.opts.source, li as u8, f, len),
                    Codec::Vp8,
                ));
            }
            s.frame += 1;
            s.next_frame += Duration::from_secs(1) / s.opts.fps;
        }
        if let Some(mid) = s.audio {
            if now >= s.next_audio {
                let time = MediaTime::new(s.audio_n * 960, Frequency::FORTY_EIGHT_KHZ);
                let mut opus = vec![0xf8, 0xff, 0xfe];
                opus.extend((s.audio_n as u32).to_be_bytes());
                writes.push((mid, None, time, opus, Codec::Opus));
                s.audio_n += 1;
                s.next_audio += Duration::from_millis(20);
            }
        }
        for (mid, rid, time, data, codec) in writes {
            let Some(mut w) = self.rtc.writer(mid) else {
                continue;
            };
            if let Some(r) = rid {
                w = w.rid(r.as_str().into());
            }
            let pt = w
                .payload_params()
                .find(|p| p.spec().codec == codec)
                .map(|p| p.pt())
                .expect("the codec was negotiated");
            w.write(pt, now, time, data).expect("str0m takes the frame");
            // Every write is a mutation: drain before the next one.
            self.drain(now, out);
        }
    }

    fn drain(&mut self, now: Instant, out: &mut Out) {
        loop {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(t)) => {
                    self.rtc_timeout = t.max(now + Duration::from_micros(100)).min(
                        // str0m may say "far future" when idle; wake at least once a second.
                        now + Duration::from_secs(1),
                    );
                    return;
                }
                Ok(Output::Transmit(t)) => {
                    out.push((t.source, t.destination, t.contents.to_vec()));
                }
                Ok(Output::Event(e)) => self.on_event(e, now),
                Err(e) => {
                    self.alive = false;
                    eprintln!("{}: str0m failed: {e}", self.name);
                    return;
                }
            }
        }
    }

    fn on_event(&mut self, e: Event, now: Instant) {
        match e {
            Event::Connected => {
                self.connected_at.get_or_insert(now);
                if let Role::Publisher(s) = &mut self.role {
                    s.next_frame = s.next_frame.max(now);
                    s.next_audio = s.next_audio.max(now);
                }
            }
            Event::KeyframeRequest(req) => {
                if let Role::Publisher(s) = &mut self.role {
                    let li = match &req.rid {
                        Some(rid) => s.opts.rids.iter().position(|r| **rid == **r).unwrap_or(0),
                        None => 0,
                    };
                    s.keyframe_requests[li] += 1;
                    let at = now + s.opts.key_delay;
                    s.key_wanted[li] = Some(s.key_wanted[li].map_or(at, |t| t.min(at)));
                }
            }
            Event::RtpPacket(p) => {
                let Role::Viewer(v) = &mut self.role else {
                    return;
                };
                let pt = p.header.payload_type;
                let video = self
                    .rtc
                    .codec_config()
                    .params()
                    .iter()
                    .any(|pp| pp.pt() == pt && pp.spec().codec.is_video());
                let kind = if video {
                    MediaKind::Video
                } else {
                    MediaKind::Audio
                };
                let start = (kind == MediaKind::Video)
                    .then(|| frame_start(&p.payload))
                    .flatten();
                v.rx.push(RxPacket {
                    at: now,
                    kind,
                    ssrc: *p.header.ssrc,
                    seq: *p.seq_no,
                    ts: p.header.timestamp,
                    marker: p.header.marker,
                    start,
                    payload_len: p.payload.len(),
                    // The VP8 descriptor's picture id starts at random: not hashed.
                    payload_hash: crate::net::mix(
                        &p.payload[if video {
                            vp8_descriptor_len(&p.payload).unwrap_or(0)
                        } else {
                            0
                        }..]
                            .iter()
                            .map(|b| u64::from(*b))
                            .collect::<Vec<_>>(),
                    ),
                });
            }
            Event::RawPacket(raw) => {
                let (Role::Publisher(s), RawPacket::RtcpRx(Rtcp::ReceiverReport(rr))) =
                    (&mut self.role, &*raw)
                else {
                    return;
                };
                for r in rr.reports.iter() {
                    s.reports_in.entry(*r.ssrc).or_default().push(now);
                }
            }
            Event::IceConnectionStateChange(str0m::IceConnectionState::Disconnected) => {}
            _ => {}
        }
    }

    /// A viewer's received packets.
    pub fn rx(&self) -> &[RxPacket] {
        match &self.role {
            Role::Viewer(v) => &v.rx,
            Role::Publisher(_) => &[],
        }
    }

    /// A publisher's state.
    /// Video frames the publisher has sent (the next frame's number).
    pub fn frames_sent(&self) -> FrameNo {
        match &self.role {
            Role::Publisher(s) => s.frame,
            Role::Viewer(_) => panic!("{} is a viewer", self.name),
        }
    }

    pub fn sender(&mut self) -> &mut Sender {
        match &mut self.role {
            Role::Publisher(s) => s,
            Role::Viewer(_) => panic!("{} is a viewer", self.name),
        }
    }
}

/// Video packets of a viewer, grouped per SSRC in arrival order.
pub fn video_by_ssrc(rx: &[RxPacket]) -> BTreeMap<u32, Vec<&RxPacket>> {
    let mut m: BTreeMap<u32, Vec<&RxPacket>> = BTreeMap::new();
    for p in rx.iter().filter(|p| p.kind == MediaKind::Video) {
        m.entry(p.ssrc).or_default().push(p);
    }
    m
}

/// A video frame as a viewer got it (packets with one timestamp, in sequence order).
#[derive(Debug, Clone)]
pub struct RxFrame {
    pub ts: u32,
    pub last_seq: u64,
    /// What its first packet says, if the viewer got the packet that starts it.
    pub start: Option<FrameStart>,
    /// It starts, ends with a marker, and no sequence number in between is missing.
    pub complete: bool,
    /// When its first packet (in arrival order) came.
    pub at: Instant,
}

/// A viewer's video frames: per SSRC in sequence order (duplicates dropped), SSRCs in order
/// of first appearance.
pub fn frames(rx: &[RxPacket]) -> Vec<RxFrame> {
    let mut order: Vec<u32> = Vec::new();
    for p in rx.iter().filter(|p| p.kind == MediaKind::Video) {
        if !order.contains(&p.ssrc) {
            order.push(p.ssrc);
        }
    }
    let mut out = Vec::new();
    for ssrc in order {
        let mut pkts: BTreeMap<u64, &RxPacket> = BTreeMap::new();
        for p in rx
            .iter()
            .filter(|p| p.kind == MediaKind::Video && p.ssrc == ssrc)
        {
            pkts.entry(p.seq).or_insert(p);
        }
        let mut cur: Option<(RxFrame, bool, u64)> = None; // (frame, contiguous, last seq)
        let close = |f: Option<(RxFrame, bool, u64)>, out: &mut Vec<RxFrame>| {
            if let Some((mut f, contiguous, _)) = f {
                f.complete = f.complete && contiguous && f.start.is_some();
                out.push(f);
            }
        };
        for (seq, p) in pkts {
            let same = cur.as_ref().is_some_and(|(f, _, _)| f.ts == p.ts);
            if !same {
                close(cur.take(), &mut out);
                cur = Some((
                    RxFrame {
                        ts: p.ts,
                        last_seq: seq,
                        start: p.start,
                        complete: false,
                        at: p.at,
                    },
                    true,
                    seq,
                ));
            } else if let Some((f, contiguous, last)) = cur.as_mut() {
                *contiguous &= seq == *last + 1;
                *last = seq;
                f.last_seq = seq;
                f.at = f.at.min(p.at);
                if f.start.is_none() {
                    // The frame's first packet is missing: what we got does not start it.
                    *contiguous = false;
                }
            }
            if let Some((f, _, _)) = cur.as_mut() {
                f.complete = p.marker;
            }
        }
        close(cur, &mut out);
    }
    out
}
