//! An independent WebRTC test client for the SFU, built on the `webrtc` crate (webrtc-rs 0.21,
//! the sans-IO rewrite) rather than on `str0m`, so that the tests exercise the server with a
//! different WebRTC stack than the one it is written with.
//!
//! * [`whip_publish`] / [`whip_publish_with`] publish a VP8 + Opus stream read from the fixture
//!   files (IVF and Ogg) at real-time pace, and record every frame sent, byte for byte.
//! * [`whep_subscribe`] receives a stream, reassembles VP8 frames and Opus frames from RTP and
//!   records them with their RTP sequence numbers and timestamps.
//! * [`match_video`] / [`match_audio`] compare the two records byte for byte.
//! * [`connect_in_process`] wires a [`Publisher`] straight to a [`Subscriber`] without any
//!   server, which is how the client checks itself (`tests/webrtc_client_selftest.rs`).
//!
//! Every peer connection binds its UDP socket to `127.0.0.1`: the crate skips loopback
//! addresses when it expands a wildcard bind, so binding `0.0.0.0` would gather no candidate
//! the server on 127.0.0.1 could reach.

use std::collections::VecDeque;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use rtc::interceptor::{Attribute, Interceptor, Packet, Slot, StreamInfo, TaggedPacket};
use rtc::media::io::ivf_reader::IVFReader;
use rtc::media::io::ogg_reader::{OggReader, COMMENT_PAGE_SIGNATURE};
use rtc::media::Sample;
use rtc::peer_connection::configuration::media_engine::{MIME_TYPE_OPUS, MIME_TYPE_VP8};
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::sender_report::SenderReport;
use rtc::rtp::codec::opus::OpusPacket;
use rtc::rtp::codec::vp8::Vp8Packet;
use rtc::rtp::packetizer::Depacketizer;
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters,
    RTCRtpEncodingParameters, RtpCodecKind,
};
use rtc::sansio::Protocol;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use webrtc::media_stream::track_local::static_sample::TrackLocalStaticSample;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::media_stream::{MediaStreamTrack, Track};
use webrtc::peer_connection::{
    register_default_interceptors, MediaEngine, PeerConnection, PeerConnectionBuilder,
    PeerConnectionEventHandler, RTCConfigurationBuilder, RTCIceGatheringState,
    RTCPeerConnectionState, RTCSessionDescription, Registry,
};
use webrtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit, RtpSender};

/// Payload type the client offers for VP8.
pub const VP8_PAYLOAD_TYPE: u8 = 96;
/// Payload type the client offers for Opus.
pub const OPUS_PAYLOAD_TYPE: u8 = 111;

const GATHER_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
const HTTP_TIMEOUT: Duration = Duration::from_secs(15);
/// Opus frames in the fixture are 20 ms long: 960 samples at 48 kHz.
const OPUS_FRAME_SAMPLES: u64 = 960;

// ── Fixtures ──────────────────────────────────────────────────────────────────────────────────

/// Path of a file under `tests/fixtures/`.
pub fn fixture_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fixtures")
        .join(name)
}

/// The VP8 fixture: 320x240, 30 fps, 3 s (90 frames), a keyframe every 30 frames.
pub fn video_fixture() -> PathBuf {
    fixture_path("video_vp8.ivf")
}

/// The Opus fixture: 48 kHz stereo, 3 s, one 20 ms frame per Ogg page.
pub fn audio_fixture() -> PathBuf {
    fixture_path("audio_opus.ogg")
}

/// One encoded frame read from a fixture file.
#[derive(Clone, Debug)]
pub struct MediaFrame {
    pub data: Bytes,
    /// VP8 keyframe (always `true` for audio, where every frame stands alone).
    pub keyframe: bool,
    /// How long the frame plays: the pace at which it is sent.
    pub duration: Duration,
}

/// True when `frame` is a VP8 keyframe: bit 0 of the first byte of the VP8 frame tag is the
/// inverse keyframe flag (RFC 6386, section 9.1).
pub fn is_vp8_keyframe(frame: &[u8]) -> bool {
    frame.first().is_some_and(|b| b & 0x01 == 0)
}

/// Reads every frame of an IVF file (VP8) with the `rtc` crate's IVF reader.
pub fn load_ivf(path: &Path) -> Result<Vec<MediaFrame>> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let (mut reader, header) = IVFReader::new(BufReader::new(file))?;
    if &header.four_cc != b"VP80" {
        bail!(
            "{} is not VP8 (fourcc {:?})",
            path.display(),
            header.four_cc
        );
    }
    if header.timebase_denominator == 0 {
        bail!("{} has a zero timebase", path.display());
    }
    let tick_secs = f64::from(header.timebase_numerator) / f64::from(header.timebase_denominator);
    let mut raw = Vec::new();
    // The reader reports end of file as an error; a truncated frame is one as well, but the
    // frame count check below catches that.
    while let Ok((frame, frame_header)) = reader.parse_next_frame() {
        raw.push((frame.freeze(), frame_header.timestamp));
    }
    if raw.is_empty() {
        bail!("{} holds no frames", path.display());
    }
    if header.num_frames != 0 && header.num_frames as usize != raw.len() {
        bail!(
            "{}: header says {} frames, read {}",
            path.display(),
            header.num_frames,
            raw.len()
        );
    }
    let mut frames = Vec::with_capacity(raw.len());
    for (i, (data, ts)) in raw.iter().enumerate() {
        let ticks = match raw.get(i + 1) {
            Some((_, next)) if next > ts => u32::try_from(next - ts).unwrap_or(1),
            _ => 1,
        };
        frames.push(MediaFrame {
            keyframe: is_vp8_keyframe(data),
            data: data.clone(),
            duration: vp8_frame_duration(tick_secs * f64::from(ticks)),
        });
    }
    Ok(frames)
}

/// The duration to hand the sample writer for a frame lasting `secs`: a whole number of
/// 90 kHz RTP ticks, rounded up by under a nanosecond so that the packetizer, which truncates
/// `duration * 90000`, advances the RTP timestamp by exactly that number (3000 at 30 fps).
fn vp8_frame_duration(secs: f64) -> Duration {
    let ticks = (secs * 90_000.0).round().max(1.0);
    Duration::from_nanos((ticks * 1e9 / 90_000.0).ceil() as u64)
}

/// Reads every Opus packet of an Ogg file with the `rtc` crate's Ogg reader.
///
/// That reader returns whole page payloads, not packets, so the file must carry exactly one
/// Opus packet per page (ffmpeg's `-page_duration 20000` does that for 20 ms frames). This
/// checks it through the granule positions: a page holding two 20 ms packets would advance the
/// granule by more than 960 samples.
pub fn load_ogg_opus(path: &Path) -> Result<Vec<MediaFrame>> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let (mut reader, header) = OggReader::new(BufReader::new(file), true)?;
    if header.channels == 0 {
        bail!("{}: OpusHead has no channels", path.display());
    }
    let mut frames = Vec::new();
    let mut last_granule = 0u64;
    while let Ok((payload, page)) = reader.parse_next_page() {
        if payload.starts_with(COMMENT_PAGE_SIGNATURE) {
            continue;
        }
        let samples = page.granule_position.saturating_sub(last_granule);
        last_granule = page.granule_position;
        if samples > OPUS_FRAME_SAMPLES {
            bail!(
                "{}: an Ogg page spans {samples} samples; expected one 20 ms Opus packet per page",
                path.display()
            );
        }
        if payload.is_empty() {
            continue;
        }
        frames.push(MediaFrame {
            data: payload.freeze(),
            keyframe: true,
            // Pace by the nominal frame length; the last page may be trimmed shorter.
            duration: Duration::from_millis(20),
        });
    }
    if frames.is_empty() {
        bail!("{} holds no Opus packets", path.display());
    }
    Ok(frames)
}

// ── Records ───────────────────────────────────────────────────────────────────────────────────

/// Audio or video.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MediaKind {
    Audio,
    Video,
}

/// A frame the publisher handed to its track, in send order.
#[derive(Clone, Debug)]
pub struct SentFrame {
    /// Position in the send order of this kind, from 0.
    pub index: usize,
    /// Which pass over the file this frame belongs to, from 0.
    pub loop_index: u32,
    /// Position of the frame in the fixture file.
    pub file_index: usize,
    pub data: Bytes,
    pub keyframe: bool,
    pub sent_at: Instant,
}

/// A whole frame reassembled from RTP by the subscriber, in arrival order.
#[derive(Clone, Debug)]
pub struct ReceivedFrame {
    pub data: Bytes,
    pub keyframe: bool,
    pub ssrc: u32,
    pub rtp_timestamp: u32,
    /// Sequence number of the first RTP packet of the frame.
    pub first_seq: u16,
    /// Sequence number of the last RTP packet of the frame (the one with the marker bit for
    /// video; the same as `first_seq` for audio).
    pub last_seq: u16,
    pub received_at: Instant,
}

/// One RTP packet as the subscriber's track delivered it (after SRTP and the crate's
/// interceptors), in arrival order, duplicates included.
#[derive(Clone, Debug)]
pub struct ReceivedPacket {
    pub ssrc: u32,
    pub payload_type: u8,
    pub seq: u16,
    pub timestamp: u32,
    pub marker: bool,
    pub payload_len: usize,
    pub received_at: Instant,
}

/// A sender report (RFC 3550 §6.4.1) as a subscriber received it, next to the RTP timestamp
/// of the last packet of that SSRC received before it.
#[derive(Clone, Debug)]
pub struct SeenSenderReport {
    pub ssrc: u32,
    pub ntp_time: u64,
    pub rtp_time: u32,
    pub packet_count: u32,
    pub octet_count: u32,
    /// RTP timestamp of the latest packet of `ssrc` received before the report, and how long
    /// before the report it came.
    pub last_rtp_timestamp: Option<(u32, Duration)>,
    pub received_at: Instant,
}

/// Places where consecutive packets of one SSRC do not have consecutive sequence numbers:
/// `(previous, next)` pairs. A repeated or older sequence number counts too.
pub fn sequence_gaps(packets: &[ReceivedPacket]) -> Vec<(u16, u16)> {
    let mut gaps = Vec::new();
    let mut last: Option<(u32, u16)> = None;
    for p in packets {
        if let Some((ssrc, seq)) = last {
            if ssrc == p.ssrc && seq.wrapping_add(1) != p.seq {
                gaps.push((seq, p.seq));
            }
        }
        last = Some((p.ssrc, p.seq));
    }
    gaps
}

/// Video frames received whole, whatever the order their packets came in (a retransmitted
/// packet comes late): per SSRC, the packets with one RTP timestamp whose sequence numbers
/// have no gap, whose last one carries the marker, and whose first one follows the previous
/// frame's marker packet (so nothing of the frame can be missing before it). Duplicates
/// count once.
pub fn complete_frames(packets: &[ReceivedPacket]) -> usize {
    use std::collections::BTreeMap;
    let mut by_ssrc: BTreeMap<u32, BTreeMap<i64, &ReceivedPacket>> = BTreeMap::new();
    let mut last: BTreeMap<u32, (u16, i64)> = BTreeMap::new();
    for p in packets {
        // Extend the 16-bit sequence number from the one seen before on that SSRC.
        let ext = match last.get(&p.ssrc) {
            Some(&(seq, ext)) => ext + i64::from(p.seq.wrapping_sub(seq) as i16),
            None => i64::from(p.seq),
        };
        last.insert(p.ssrc, (p.seq, ext));
        by_ssrc.entry(p.ssrc).or_default().insert(ext, p);
    }
    let mut complete = 0;
    for pkts in by_ssrc.values() {
        let list: Vec<(i64, &ReceivedPacket)> = pkts.iter().map(|(s, p)| (*s, *p)).collect();
        let mut i = 0;
        while i < list.len() {
            let (first, p0) = list[i];
            let mut j = i;
            while j + 1 < list.len() && list[j + 1].1.timestamp == p0.timestamp {
                j += 1;
            }
            let (end, pe) = list[j];
            let contiguous = end - first == (j - i) as i64;
            let starts_clean = i > 0 && list[i - 1].0 == first - 1 && list[i - 1].1.marker;
            if contiguous && pe.marker && starts_clean {
                complete += 1;
            }
            i = j + 1;
        }
    }
    complete
}

// ── Comparison ────────────────────────────────────────────────────────────────────────────────

/// Where a received sequence of frames sits in the sent sequence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrameMatch {
    /// Index in the sent frames of the first compared received frame.
    pub sent_offset: usize,
    /// Number of received frames compared (all equal byte for byte).
    pub matched: usize,
    /// Received frames before the first keyframe, which were not compared.
    pub skipped_before_keyframe: usize,
}

/// Finds the first offset in `sent` at which all of `received` appears contiguously, byte for
/// byte. An empty `received` matches at 0.
pub fn find_contiguous<S: AsRef<[u8]>, R: AsRef<[u8]>>(
    sent: &[S],
    received: &[R],
) -> Option<usize> {
    if received.len() > sent.len() {
        return None;
    }
    (0..=sent.len() - received.len()).find(|&start| {
        received
            .iter()
            .zip(&sent[start..])
            .all(|(r, s)| r.as_ref() == s.as_ref())
    })
}

/// Checks that the received video frames, from the first received keyframe on, are a
/// contiguous run of the sent frames, equal byte for byte. At least one keyframe must have
/// been received.
pub fn match_video(sent: &[SentFrame], received: &[ReceivedFrame]) -> Result<FrameMatch> {
    let first_key = received
        .iter()
        .position(|f| f.keyframe)
        .ok_or_else(|| anyhow!("no keyframe among {} received video frames", received.len()))?;
    let tail: Vec<&[u8]> = received[first_key..].iter().map(|f| &f.data[..]).collect();
    let sent_bytes: Vec<&[u8]> = sent.iter().map(|f| &f.data[..]).collect();
    match find_contiguous(&sent_bytes, &tail) {
        Some(sent_offset) => Ok(FrameMatch {
            sent_offset,
            matched: tail.len(),
            skipped_before_keyframe: first_key,
        }),
        None => Err(mismatch_error("video", &sent_bytes, &tail)),
    }
}

/// Checks that the received audio frames are a contiguous run of the sent frames, equal byte
/// for byte.
pub fn match_audio(sent: &[SentFrame], received: &[ReceivedFrame]) -> Result<FrameMatch> {
    let recv: Vec<&[u8]> = received.iter().map(|f| &f.data[..]).collect();
    let sent_bytes: Vec<&[u8]> = sent.iter().map(|f| &f.data[..]).collect();
    match find_contiguous(&sent_bytes, &recv) {
        Some(sent_offset) => Ok(FrameMatch {
            sent_offset,
            matched: recv.len(),
            skipped_before_keyframe: 0,
        }),
        None => Err(mismatch_error("audio", &sent_bytes, &recv)),
    }
}

/// Explains a failed match: how far the best alignment of the first received frame got.
fn mismatch_error(kind: &str, sent: &[&[u8]], received: &[&[u8]]) -> anyhow::Error {
    let mut best = (0usize, None::<usize>);
    for start in 0..sent.len() {
        let n = received
            .iter()
            .zip(&sent[start..])
            .take_while(|(r, s)| r == s)
            .count();
        if n > best.0 {
            best = (n, Some(start));
        }
    }
    match best.1 {
        Some(start) => anyhow!(
            "{kind}: {} received frames are not a contiguous run of the {} sent; the longest \
             prefix match is {} frames at sent index {start}, then received frame {} ({} bytes) \
             differs",
            received.len(),
            sent.len(),
            best.0,
            best.0,
            received.get(best.0).map_or(0, |f| f.len()),
        ),
        None => anyhow!(
            "{kind}: the first of {} received frames matches none of the {} sent",
            received.len(),
            sent.len()
        ),
    }
}

// ── HTTP (WHIP / WHEP) ────────────────────────────────────────────────────────────────────────

// The POST itself is the load generator's (one WHIP/WHEP client for both): the test client
// differs from it in the WebRTC stack, not in how an offer is posted.
use classrelay_loadtest::netem::{LinkProfile, LinkRelay};
use classrelay_loadtest::whip::{host_candidate, post_offer, redirect_answer};

/// The resource a session was given, for `DELETE`.
#[derive(Debug, Clone)]
struct Resource {
    client: reqwest::Client,
    url: String,
    token: String,
}

impl Resource {
    async fn delete(&self) -> Result<u16> {
        let resp = self
            .client
            .delete(&self.url)
            .bearer_auth(&self.token)
            .send()
            .await
            .with_context(|| format!("DELETE {}", self.url))?;
        Ok(resp.status().as_u16())
    }
}

fn http_client() -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder().timeout(HTTP_TIMEOUT).build()?)
}

// ── Peer connection plumbing ──────────────────────────────────────────────────────────────────

fn vp8_codec() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_TYPE_VP8.to_owned(),
        clock_rate: 90000,
        channels: 0,
        sdp_fmtp_line: String::new(),
        rtcp_feedback: [("nack", ""), ("nack", "pli"), ("ccm", "fir")]
            .into_iter()
            .map(|(typ, parameter)| RTCPFeedback {
                typ: typ.to_owned(),
                parameter: parameter.to_owned(),
            })
            .collect(),
    }
}

fn opus_codec() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_TYPE_OPUS.to_owned(),
        clock_rate: 48000,
        channels: 2,
        sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
        rtcp_feedback: vec![],
    }
}

/// Observes a peer connection's state and, for a receiving one, its tracks.
struct Handler {
    gathering: watch::Sender<RTCIceGatheringState>,
    connection: watch::Sender<RTCPeerConnectionState>,
    recv: Option<Arc<RecvShared>>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        self.gathering.send_replace(state);
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        self.connection.send_replace(state);
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        if let Some(recv) = &self.recv {
            tokio::spawn(read_track(Arc::clone(recv), track));
        }
    }
}

/// True for a PLI or FIR.
fn is_keyframe_request(packet: &dyn rtc::rtcp::Packet) -> bool {
    let any = packet.as_any();
    any.is::<PictureLossIndication>() || any.is::<FullIntraRequest>()
}

/// Lets inbound RTCP compounds that hold a keyframe request (PLI or FIR) reach the application,
/// where a [`Publisher`] counts them (the crate stops all inbound RTCP at the end of the
/// interceptor chain unless a packet is marked [`Attribute::DeliverToApplication`]). Passes
/// everything through unchanged otherwise.
#[derive(Default)]
struct KeyframeRequestTap {
    read: VecDeque<TaggedPacket>,
    write: VecDeque<TaggedPacket>,
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for KeyframeRequestTap {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = Instant;

    fn handle_read(&mut self, mut msg: TaggedPacket) -> Result<(), Self::Error> {
        if let Packet::Rtcp(packets) = &msg.message.packet {
            // Sender reports too: a subscriber records them (`Subscriber::sender_reports`).
            if packets
                .iter()
                .any(|p| is_keyframe_request(p.as_ref()) || p.as_any().is::<SenderReport>())
            {
                msg.message.add(Attribute::DeliverToApplication);
            }
        }
        self.read.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<TaggedPacket> {
        self.read.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.write.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<TaggedPacket> {
        self.write.pop_front()
    }
}

impl Interceptor for KeyframeRequestTap {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

/// A peer connection with only VP8 and Opus registered, bound to 127.0.0.1.
struct Peer {
    pc: Arc<dyn PeerConnection>,
    gathering: watch::Receiver<RTCIceGatheringState>,
    connection: watch::Receiver<RTCPeerConnectionState>,
}

impl Peer {
    async fn new(recv: Option<Arc<RecvShared>>) -> Result<Self> {
        let mut media_engine = MediaEngine::default();
        media_engine.register_codec(
            RTCRtpCodecParameters {
                rtp_codec: vp8_codec(),
                payload_type: VP8_PAYLOAD_TYPE,
            },
            RtpCodecKind::Video,
        )?;
        media_engine.register_codec(
            RTCRtpCodecParameters {
                rtp_codec: opus_codec(),
                payload_type: OPUS_PAYLOAD_TYPE,
            },
            RtpCodecKind::Audio,
        )?;
        let registry = register_default_interceptors(Registry::new(), &mut media_engine)?
            // Application-most: every other interceptor has read the RTCP before.
            .with(Slot::from(14_000), KeyframeRequestTap::default());
        let (gathering_tx, gathering) = watch::channel(RTCIceGatheringState::default());
        let (connection_tx, connection) = watch::channel(RTCPeerConnectionState::default());
        let handler = Arc::new(Handler {
            gathering: gathering_tx,
            connection: connection_tx,
            recv,
        });
        let pc = PeerConnectionBuilder::new()
            .with_configuration(RTCConfigurationBuilder::new().build())
            .with_media_engine(media_engine)
            .with_interceptor_registry(registry)
            .with_handler(handler)
            .with_udp_addrs(vec!["127.0.0.1:0".to_owned()])
            .build()
            .await?;
        Ok(Self {
            pc: Arc::new(pc),
            gathering,
            connection,
        })
    }

    /// Waits for ICE gathering to complete and returns the local description (non-trickle).
    async fn gathered_local_sdp(&mut self) -> Result<String> {
        tokio::time::timeout(
            GATHER_TIMEOUT,
            self.gathering
                .wait_for(|s| *s == RTCIceGatheringState::Complete),
        )
        .await
        .context("ICE gathering did not complete")??;
        let desc = self
            .pc
            .local_description()
            .await
            .ok_or_else(|| anyhow!("no local description"))?;
        Ok(desc.sdp)
    }

    async fn create_offer(&mut self) -> Result<String> {
        let offer = self.pc.create_offer(None).await?;
        self.pc.set_local_description(offer).await?;
        self.gathered_local_sdp().await
    }

    async fn answer(&mut self, offer_sdp: String) -> Result<String> {
        self.pc
            .set_remote_description(RTCSessionDescription::offer(offer_sdp)?)
            .await?;
        let answer = self.pc.create_answer(None).await?;
        self.pc.set_local_description(answer).await?;
        self.gathered_local_sdp().await
    }

    async fn apply_answer(&self, answer_sdp: String) -> Result<()> {
        self.pc
            .set_remote_description(RTCSessionDescription::answer(answer_sdp)?)
            .await?;
        Ok(())
    }

    async fn wait_connected(&mut self) -> Result<()> {
        wait_connected(&mut self.connection, CONNECT_TIMEOUT).await
    }
}

async fn wait_connected(
    rx: &mut watch::Receiver<RTCPeerConnectionState>,
    limit: Duration,
) -> Result<()> {
    let state = tokio::time::timeout(
        limit,
        rx.wait_for(|s| {
            matches!(
                s,
                RTCPeerConnectionState::Connected
                    | RTCPeerConnectionState::Failed
                    | RTCPeerConnectionState::Closed
            )
        }),
    )
    .await
    .with_context(|| format!("peer connection not connected within {limit:?}"))??;
    if *state != RTCPeerConnectionState::Connected {
        bail!("peer connection ended up {}", *state);
    }
    Ok(())
}

// ── Publisher ─────────────────────────────────────────────────────────────────────────────────

/// How a [`Publisher`] sends.
#[derive(Clone, Debug)]
pub struct PublishOptions {
    /// Passes over the files: `None` loops until the publisher is closed or dropped.
    pub loops: Option<u32>,
    /// Send the video file.
    pub video: bool,
    /// Send the audio file.
    pub audio: bool,
    /// On a PLI or FIR, skip ahead to the next keyframe of the file, as an encoder would make
    /// one. Off by default, so the frames go out in file order. Requests are counted either way
    /// ([`SendProgress::keyframe_requests`]).
    pub keyframe_on_request: bool,
}

impl Default for PublishOptions {
    fn default() -> Self {
        Self {
            loops: None,
            video: true,
            audio: true,
            keyframe_on_request: false,
        }
    }
}

impl PublishOptions {
    /// Send each file `loops` times, then stop (see [`Publisher::wait_done`]).
    pub fn loops(loops: u32) -> Self {
        Self {
            loops: Some(loops),
            ..Self::default()
        }
    }
}

/// How far sending has got.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SendProgress {
    pub video_frames: usize,
    pub audio_frames: usize,
    pub video_done: bool,
    pub audio_done: bool,
    /// The first write error, if any (sending of that kind stopped there).
    pub error: Option<String>,
    /// PLI / FIR packets received for the video track.
    pub keyframe_requests: usize,
}

#[derive(Default)]
struct SentLog {
    video: Vec<SentFrame>,
    audio: Vec<SentFrame>,
}

struct MediaInput {
    video: Vec<MediaFrame>,
    audio: Vec<MediaFrame>,
}

impl MediaInput {
    fn load(video_ivf: &Path, audio_ogg: &Path, opts: &PublishOptions) -> Result<Self> {
        Ok(Self {
            video: if opts.video {
                load_ivf(video_ivf)?
            } else {
                vec![]
            },
            audio: if opts.audio {
                load_ogg_opus(audio_ogg)?
            } else {
                vec![]
            },
        })
    }
}

/// A publisher whose offer is made but whose answer is not applied yet.
struct PendingPublisher {
    peer: Peer,
    tracks: Vec<(MediaKind, Arc<TrackLocalStaticSample>, Arc<dyn RtpSender>)>,
    input: MediaInput,
    opts: PublishOptions,
    offer_sdp: String,
}

impl PendingPublisher {
    async fn new(video_ivf: &Path, audio_ogg: &Path, opts: PublishOptions) -> Result<Self> {
        let input = MediaInput::load(video_ivf, audio_ogg, &opts)?;
        let mut peer = Peer::new(None).await?;
        let stream_id = format!("classrelay-test-{:08x}", rand::random::<u32>());
        let mut tracks = Vec::new();
        for (kind, wanted) in [
            (MediaKind::Video, opts.video),
            (MediaKind::Audio, opts.audio),
        ] {
            if !wanted {
                continue;
            }
            let (codec_kind, codec, name) = match kind {
                MediaKind::Video => (RtpCodecKind::Video, vp8_codec(), "video"),
                MediaKind::Audio => (RtpCodecKind::Audio, opus_codec(), "audio"),
            };
            let track = Arc::new(TrackLocalStaticSample::new(
                Instant::now(),
                MediaStreamTrack::new(
                    stream_id.clone(),
                    format!("{stream_id}-{name}"),
                    name.to_owned(),
                    codec_kind,
                    vec![RTCRtpEncodingParameters {
                        rtp_coding_parameters: RTCRtpCodingParameters {
                            ssrc: Some(rand::random::<u32>()),
                            ..Default::default()
                        },
                        codec,
                        ..Default::default()
                    }],
                ),
            )?);
            let transceiver = peer
                .pc
                .add_transceiver_from_track(
                    Arc::clone(&track) as Arc<dyn TrackLocal>,
                    Some(RTCRtpTransceiverInit {
                        direction: RTCRtpTransceiverDirection::Sendonly,
                        streams: vec![],
                        send_encodings: vec![],
                    }),
                )
                .await?;
            let sender = transceiver
                .sender()
                .await?
                .ok_or_else(|| anyhow!("{name} transceiver has no sender"))?;
            tracks.push((kind, track, sender));
        }
        let offer_sdp = peer.create_offer().await?;
        Ok(Self {
            peer,
            tracks,
            input,
            opts,
            offer_sdp,
        })
    }

    /// Applies the answer and waits for the connection.
    async fn connect(&mut self, answer_sdp: &str) -> Result<()> {
        self.peer.apply_answer(answer_sdp.to_owned()).await?;
        if let Err(e) = self.peer.wait_connected().await {
            let _ = self.peer.pc.close().await;
            return Err(e);
        }
        Ok(())
    }

    /// Starts sending (once connected).
    async fn start(self, answer_sdp: String, resource: Option<Resource>) -> Result<Publisher> {
        let log = Arc::new(Mutex::new(SentLog::default()));
        let (progress_tx, progress) = watch::channel(SendProgress {
            video_done: !self.opts.video,
            audio_done: !self.opts.audio,
            ..SendProgress::default()
        });
        let progress_tx = Arc::new(progress_tx);
        let mut tasks = Vec::new();
        let mut input = self.input;
        for (kind, track, sender) in self.tracks {
            let payload_type = sender
                .get_parameters()
                .await?
                .rtp_parameters
                .codecs
                .first()
                .map(|c| c.payload_type)
                .ok_or_else(|| anyhow!("{kind:?} sender has no negotiated codec"))?;
            let ssrc = *track
                .ssrcs()
                .await
                .first()
                .ok_or_else(|| anyhow!("{kind:?} track has no SSRC"))?;
            let frames = match kind {
                MediaKind::Video => std::mem::take(&mut input.video),
                MediaKind::Audio => std::mem::take(&mut input.audio),
            };
            let keyframe_wanted = Arc::new(AtomicBool::new(false));
            if kind == MediaKind::Video {
                tasks.push(tokio::spawn(watch_keyframe_requests(
                    Arc::clone(&track),
                    Arc::clone(&keyframe_wanted),
                    Arc::clone(&progress_tx),
                )));
            }
            tasks.push(tokio::spawn(send_frames(SendJob {
                keyframe_wanted: self.opts.keyframe_on_request.then_some(keyframe_wanted),
                kind,
                track,
                ssrc,
                payload_type,
                frames,
                loops: self.opts.loops,
                log: Arc::clone(&log),
                progress: Arc::clone(&progress_tx),
            })));
        }
        Ok(Publisher {
            pc: self.peer.pc,
            connection: self.peer.connection,
            resource,
            answer_sdp,
            log,
            progress,
            tasks,
        })
    }
}

struct SendJob {
    kind: MediaKind,
    track: Arc<TrackLocalStaticSample>,
    ssrc: u32,
    payload_type: u8,
    frames: Vec<MediaFrame>,
    loops: Option<u32>,
    log: Arc<Mutex<SentLog>>,
    progress: Arc<watch::Sender<SendProgress>>,
    /// Set when a keyframe was requested and the job should skip to the next one.
    keyframe_wanted: Option<Arc<AtomicBool>>,
}

/// Counts the keyframe requests the remote sends for a track.
async fn watch_keyframe_requests(
    track: Arc<TrackLocalStaticSample>,
    wanted: Arc<AtomicBool>,
    progress: Arc<watch::Sender<SendProgress>>,
) {
    while let Some(event) = track.poll().await {
        if let TrackLocalEvent::OnRtcpPacket(packets) = event {
            let n = packets
                .iter()
                .filter(|p| is_keyframe_request(p.as_ref()))
                .count();
            if n > 0 {
                wanted.store(true, Ordering::SeqCst);
                progress.send_modify(|p| p.keyframe_requests += n);
            }
        }
    }
}

/// Sends the frames at real-time pace, recording each one *before* it is written, so that
/// anything a subscriber can receive is already in the log.
async fn send_frames(job: SendJob) {
    let SendJob {
        kind,
        track,
        ssrc,
        payload_type,
        frames,
        loops,
        log,
        progress,
        keyframe_wanted,
    } = job;
    let mut next_due = tokio::time::Instant::now();
    let mut index = 0usize;
    let mut loop_index = 0u32;
    let result: Result<()> = async {
        while loops.is_none_or(|n| loop_index < n) {
            let mut file_index = 0;
            while file_index < frames.len() {
                tokio::time::sleep_until(next_due).await;
                if keyframe_wanted
                    .as_ref()
                    .is_some_and(|w| w.swap(false, Ordering::SeqCst))
                {
                    match frames[file_index..].iter().position(|f| f.keyframe) {
                        Some(ahead) => file_index += ahead,
                        // The next pass starts with one.
                        None => break,
                    }
                }
                let frame = &frames[file_index];
                next_due += frame.duration;
                {
                    let mut log = lock(&log);
                    let list = match kind {
                        MediaKind::Video => &mut log.video,
                        MediaKind::Audio => &mut log.audio,
                    };
                    list.push(SentFrame {
                        index,
                        loop_index,
                        file_index,
                        data: frame.data.clone(),
                        keyframe: frame.keyframe,
                        sent_at: Instant::now(),
                    });
                }
                track
                    .sample_writer(ssrc, payload_type)
                    .write_sample(&Sample {
                        data: frame.data.clone(),
                        duration: frame.duration,
                        ..Sample::new(Instant::now())
                    })
                    .await
                    .with_context(|| format!("writing {kind:?} frame {index}"))?;
                index += 1;
                file_index += 1;
                progress.send_modify(|p| match kind {
                    MediaKind::Video => p.video_frames = index,
                    MediaKind::Audio => p.audio_frames = index,
                });
            }
            loop_index += 1;
        }
        Ok(())
    }
    .await;
    progress.send_modify(|p| {
        match kind {
            MediaKind::Video => p.video_done = true,
            MediaKind::Audio => p.audio_done = true,
        }
        if let Err(e) = &result {
            p.error.get_or_insert_with(|| format!("{e:#}"));
        }
    });
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere must not hide what was recorded.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A publishing peer: connected, and sending the fixture frames.
pub struct Publisher {
    pc: Arc<dyn PeerConnection>,
    connection: watch::Receiver<RTCPeerConnectionState>,
    resource: Option<Resource>,
    answer_sdp: String,
    log: Arc<Mutex<SentLog>>,
    progress: watch::Receiver<SendProgress>,
    tasks: Vec<JoinHandle<()>>,
}

/// Publishes the two files to `{base_url}/whip/{room}` and starts sending them in a loop until
/// the publisher is closed or dropped. See [`whip_publish_with`].
pub async fn whip_publish(
    base_url: &str,
    room: &str,
    token: &str,
    video_ivf: &Path,
    audio_ogg: &Path,
) -> Result<Publisher> {
    whip_publish_with(
        base_url,
        room,
        token,
        video_ivf,
        audio_ogg,
        PublishOptions::default(),
    )
    .await
}

/// Publishes over WHIP: offers sendonly VP8 + Opus (non-trickle, after gathering completes),
/// POSTs the offer with the bearer token, expects `201 Created` with a `Location` and the
/// answer, applies the answer, waits until connected, then sends the files at real-time pace.
pub async fn whip_publish_with(
    base_url: &str,
    room: &str,
    token: &str,
    video_ivf: &Path,
    audio_ogg: &Path,
    opts: PublishOptions,
) -> Result<Publisher> {
    let files = (video_ivf, audio_ogg);
    Ok(whip_publish_via(base_url, room, token, files, opts, None)
        .await?
        .0)
}

/// [`whip_publish_with`] through an impaired link: the answer's server address is replaced
/// by a [`LinkRelay`] that shapes the publisher's uplink (`up`) and downlink (`down`).
pub async fn whip_publish_through(
    base_url: &str,
    room: &str,
    token: &str,
    files: (&Path, &Path),
    opts: PublishOptions,
    up: LinkProfile,
    down: LinkProfile,
) -> Result<(Publisher, LinkRelay)> {
    let (p, relay) = whip_publish_via(base_url, room, token, files, opts, Some((up, down))).await?;
    Ok((p, relay.expect("a relay was asked for")))
}

async fn whip_publish_via(
    base_url: &str,
    room: &str,
    token: &str,
    (video_ivf, audio_ogg): (&Path, &Path),
    opts: PublishOptions,
    link: Option<(LinkProfile, LinkProfile)>,
) -> Result<(Publisher, Option<LinkRelay>)> {
    let mut pending = PendingPublisher::new(video_ivf, audio_ogg, opts).await?;
    let client = http_client()?;
    let url = format!("{}/whip/{room}", base_url.trim_end_matches('/'));
    let answer = match post_offer(&client, &url, token, &pending.offer_sdp).await {
        Ok(answer) => answer,
        Err(e) => {
            let _ = pending.peer.pc.close().await;
            return Err(e);
        }
    };
    let resource = Resource {
        client,
        url: answer.url,
        token: token.to_owned(),
    };
    let (applied, relay) = match link {
        None => (answer.answer.clone(), None),
        Some((up, down)) => {
            let server = host_candidate(&answer.answer)
                .ok_or_else(|| anyhow!("the answer has no UDP host candidate"))?;
            let relay = LinkRelay::start(server, up, down)?;
            (redirect_answer(&answer.answer, relay.addr())?, Some(relay))
        }
    };
    pending.connect(&applied).await?;
    let publisher = pending.start(answer.answer, Some(resource)).await?;
    Ok((publisher, relay))
}

impl Publisher {
    /// The resource URL from `Location` (absolute), if published over WHIP.
    pub fn resource_url(&self) -> Option<&str> {
        self.resource.as_ref().map(|r| r.url.as_str())
    }

    /// The SDP answer applied.
    pub fn answer_sdp(&self) -> &str {
        &self.answer_sdp
    }

    /// Frames sent so far, in order.
    pub fn sent_video(&self) -> Vec<SentFrame> {
        lock(&self.log).video.clone()
    }

    /// Frames sent so far, in order.
    pub fn sent_audio(&self) -> Vec<SentFrame> {
        lock(&self.log).audio.clone()
    }

    pub fn progress(&self) -> SendProgress {
        self.progress.borrow().clone()
    }

    pub fn connection_state(&self) -> RTCPeerConnectionState {
        *self.connection.borrow()
    }

    /// Waits until `pred` holds for the send progress.
    pub async fn wait_progress(
        &self,
        limit: Duration,
        pred: impl FnMut(&SendProgress) -> bool,
    ) -> Result<SendProgress> {
        let mut rx = self.progress.clone();
        let p = tokio::time::timeout(limit, rx.wait_for(pred))
            .await
            .with_context(|| {
                format!(
                    "publisher progress condition not met within {limit:?}: {:?}",
                    self.progress()
                )
            })??
            .clone();
        Ok(p)
    }

    /// Waits until all loops are sent (only ends with [`PublishOptions::loops`] set). Fails if a
    /// write failed.
    pub async fn wait_done(&self, limit: Duration) -> Result<SendProgress> {
        let p = self
            .wait_progress(limit, |p| p.video_done && p.audio_done)
            .await?;
        if let Some(e) = &p.error {
            bail!("publisher stopped on an error: {e}");
        }
        Ok(p)
    }

    /// Waits until at least `n` video frames have been sent.
    pub async fn wait_video_sent(&self, n: usize, limit: Duration) -> Result<SendProgress> {
        self.wait_progress(limit, |p| p.video_frames >= n || p.video_done)
            .await
    }

    /// Waits for the connection to reach `state`.
    pub async fn wait_connection_state(
        &self,
        state: RTCPeerConnectionState,
        limit: Duration,
    ) -> Result<()> {
        let mut rx = self.connection.clone();
        tokio::time::timeout(limit, rx.wait_for(|s| *s == state))
            .await
            .with_context(|| format!("publisher connection did not become {state}"))??;
        Ok(())
    }

    /// Stops sending (what was sent stays recorded).
    pub fn stop_sending(&self) {
        for t in &self.tasks {
            t.abort();
        }
    }

    /// `DELETE` of the WHIP resource; returns the HTTP status.
    pub async fn delete(&self) -> Result<u16> {
        match &self.resource {
            Some(r) => r.delete().await,
            None => bail!("not published over WHIP: no resource to delete"),
        }
    }

    /// Stops sending and closes the peer connection (without `DELETE`).
    pub async fn close(&self) -> Result<()> {
        self.stop_sending();
        self.pc.close().await?;
        Ok(())
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.stop_sending();
    }
}

// ── Subscriber ────────────────────────────────────────────────────────────────────────────────

/// Counters of what a subscriber has received, for waiting on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecvCounts {
    pub video_tracks: usize,
    pub audio_tracks: usize,
    pub video_packets: usize,
    pub audio_packets: usize,
    pub video_frames: usize,
    pub video_keyframes: usize,
    pub audio_frames: usize,
    /// Partial video frames thrown away because a packet was missing or out of order.
    pub video_frames_dropped: usize,
    /// Video packets that could not be depacketized.
    pub video_bad_packets: usize,
    /// Tracks whose event stream ended.
    pub tracks_ended: usize,
}

#[derive(Default)]
struct RecvLog {
    video_frames: Vec<ReceivedFrame>,
    audio_frames: Vec<ReceivedFrame>,
    video_packets: Vec<ReceivedPacket>,
    audio_packets: Vec<ReceivedPacket>,
    video_track: Option<Arc<dyn TrackRemote>>,
    assembler: Vp8Assembler,
    sender_reports: Vec<SeenSenderReport>,
}

struct RecvShared {
    log: Mutex<RecvLog>,
    counts: watch::Sender<RecvCounts>,
}

impl RecvShared {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            log: Mutex::new(RecvLog::default()),
            counts: watch::channel(RecvCounts::default()).0,
        })
    }

    fn on_rtcp(&self, packets: &[Box<dyn rtc::rtcp::Packet>]) {
        let now = Instant::now();
        let mut log = lock(&self.log);
        for p in packets {
            let Some(sr) = p.as_any().downcast_ref::<SenderReport>() else {
                continue;
            };
            let last_rtp_timestamp = log
                .video_packets
                .iter()
                .chain(log.audio_packets.iter())
                .filter(|r| r.ssrc == sr.ssrc)
                .max_by_key(|r| r.received_at)
                .map(|r| (r.timestamp, now.saturating_duration_since(r.received_at)));
            log.sender_reports.push(SeenSenderReport {
                ssrc: sr.ssrc,
                ntp_time: sr.ntp_time,
                rtp_time: sr.rtp_time,
                packet_count: sr.packet_count,
                octet_count: sr.octet_count,
                last_rtp_timestamp,
                received_at: now,
            });
        }
    }

    fn on_packet(&self, kind: MediaKind, pkt: rtc::rtp::Packet) {
        let now = Instant::now();
        let record = ReceivedPacket {
            ssrc: pkt.header.ssrc,
            payload_type: pkt.header.payload_type,
            seq: pkt.header.sequence_number,
            timestamp: pkt.header.timestamp,
            marker: pkt.header.marker,
            payload_len: pkt.payload.len(),
            received_at: now,
        };
        let mut log = lock(&self.log);
        match kind {
            MediaKind::Audio => {
                log.audio_packets.push(record);
                // One Opus frame per RTP packet (RFC 7587); empty payloads are padding.
                let frame = if pkt.payload.is_empty() {
                    None
                } else {
                    OpusPacket.depacketize(&pkt.payload).ok()
                };
                if let Some(data) = frame {
                    log.audio_frames.push(ReceivedFrame {
                        data,
                        keyframe: true,
                        ssrc: pkt.header.ssrc,
                        rtp_timestamp: pkt.header.timestamp,
                        first_seq: pkt.header.sequence_number,
                        last_seq: pkt.header.sequence_number,
                        received_at: now,
                    });
                }
                let (packets, frames) = (log.audio_packets.len(), log.audio_frames.len());
                self.counts.send_modify(|c| {
                    c.audio_packets = packets;
                    c.audio_frames = frames;
                });
            }
            MediaKind::Video => {
                log.video_packets.push(record);
                let outcome = log.assembler.push(&pkt, now);
                let keyframe = outcome.frame.as_ref().is_some_and(|f| f.keyframe);
                if let Some(frame) = outcome.frame {
                    log.video_frames.push(frame);
                }
                let packets = log.video_packets.len();
                let frames = log.video_frames.len();
                self.counts.send_modify(|c| {
                    c.video_packets = packets;
                    c.video_frames = frames;
                    c.video_keyframes += usize::from(keyframe);
                    c.video_frames_dropped += outcome.dropped;
                    c.video_bad_packets += usize::from(outcome.bad_packet);
                });
            }
        }
    }
}

async fn read_track(recv: Arc<RecvShared>, track: Arc<dyn TrackRemote>) {
    let kind = match track.kind().await {
        RtpCodecKind::Video => MediaKind::Video,
        RtpCodecKind::Audio => MediaKind::Audio,
        _ => return,
    };
    if kind == MediaKind::Video {
        lock(&recv.log).video_track = Some(Arc::clone(&track));
    }
    recv.counts.send_modify(|c| match kind {
        MediaKind::Video => c.video_tracks += 1,
        MediaKind::Audio => c.audio_tracks += 1,
    });
    while let Some(event) = track.poll().await {
        match event {
            TrackRemoteEvent::OnRtpPacket(pkt) => recv.on_packet(kind, pkt),
            TrackRemoteEvent::OnRtcpPacket(packets) => recv.on_rtcp(&packets),
            TrackRemoteEvent::OnEnded => break,
            _ => {}
        }
    }
    recv.counts.send_modify(|c| c.tracks_ended += 1);
}

/// What pushing one packet into the [`Vp8Assembler`] gave.
#[derive(Default)]
struct AssembleOutcome {
    frame: Option<ReceivedFrame>,
    /// Partial frames discarded.
    dropped: usize,
    bad_packet: bool,
}

/// Reassembles VP8 frames (RFC 7741) from RTP packets in arrival order: a frame starts at a
/// packet with the S bit set and partition index 0, continues with consecutive sequence numbers
/// and the same RTP timestamp, and ends at the marker bit. The payload descriptor is parsed by
/// the `rtc` crate's `Vp8Packet` depacketizer.
///
/// This does not use the crate's `SampleBuilder`: that one silently drops incomplete samples,
/// only emits a frame once the next one begins, and does not report the sequence numbers a
/// frame spanned, all of which the tests want to see. Here a missing or reordered packet
/// discards the partial frame and is counted, so a test can assert there were none.
#[derive(Default)]
struct Vp8Assembler {
    current: Option<PartialFrame>,
}

struct PartialFrame {
    ssrc: u32,
    timestamp: u32,
    first_seq: u16,
    last_seq: u16,
    data: Vec<u8>,
}

impl Vp8Assembler {
    fn push(&mut self, pkt: &rtc::rtp::Packet, now: Instant) -> AssembleOutcome {
        let mut out = AssembleOutcome::default();
        if pkt.payload.is_empty() {
            // Padding only: it takes a sequence number but carries no media.
            if let Some(cur) = &mut self.current {
                if cur.ssrc == pkt.header.ssrc
                    && cur.last_seq.wrapping_add(1) == pkt.header.sequence_number
                {
                    // Padding in the middle of a frame is not legal; drop the frame.
                    self.current = None;
                    out.dropped += 1;
                }
            }
            return out;
        }
        let mut descriptor = Vp8Packet::default();
        let Ok(payload) = descriptor.depacketize(&pkt.payload) else {
            out.bad_packet = true;
            if self.current.take().is_some() {
                out.dropped += 1;
            }
            return out;
        };
        let h = &pkt.header;
        let starts_frame = descriptor.s == 1 && descriptor.pid == 0;
        if starts_frame {
            if self.current.take().is_some() {
                out.dropped += 1;
            }
            self.current = Some(PartialFrame {
                ssrc: h.ssrc,
                timestamp: h.timestamp,
                first_seq: h.sequence_number,
                last_seq: h.sequence_number,
                data: payload.to_vec(),
            });
        } else {
            match &mut self.current {
                Some(cur)
                    if cur.ssrc == h.ssrc
                        && cur.timestamp == h.timestamp
                        && cur.last_seq.wrapping_add(1) == h.sequence_number =>
                {
                    cur.last_seq = h.sequence_number;
                    cur.data.extend_from_slice(&payload);
                }
                Some(_) => {
                    // A gap or a packet from another frame: the partial frame cannot be
                    // completed.
                    self.current = None;
                    out.dropped += 1;
                    return out;
                }
                // The middle of a frame whose start we never saw (joined mid-frame): skip.
                None => return out,
            }
        }
        if h.marker {
            if let Some(cur) = self.current.take() {
                let data = Bytes::from(cur.data);
                out.frame = Some(ReceivedFrame {
                    keyframe: is_vp8_keyframe(&data),
                    data,
                    ssrc: cur.ssrc,
                    rtp_timestamp: cur.timestamp,
                    first_seq: cur.first_seq,
                    last_seq: cur.last_seq,
                    received_at: now,
                });
            }
        }
        out
    }
}

/// A receiving peer: collects whole frames and every RTP packet.
pub struct Subscriber {
    pc: Arc<dyn PeerConnection>,
    connection: watch::Receiver<RTCPeerConnectionState>,
    resource: Option<Resource>,
    answer_sdp: Option<String>,
    recv: Arc<RecvShared>,
}

/// Subscribes over WHEP: offers recvonly VP8 video + Opus audio (non-trickle), POSTs the offer
/// to `{base_url}/whep/{room}` with the bearer token, expects `201 Created` with a `Location`
/// and the answer, applies the answer and waits until connected. Media is collected from then
/// on.
pub async fn whep_subscribe(base_url: &str, room: &str, token: &str) -> Result<Subscriber> {
    let recv = RecvShared::new();
    let mut peer = Peer::new(Some(Arc::clone(&recv))).await?;
    for kind in [RtpCodecKind::Video, RtpCodecKind::Audio] {
        peer.pc
            .add_transceiver_from_kind(
                kind,
                Some(RTCRtpTransceiverInit {
                    direction: RTCRtpTransceiverDirection::Recvonly,
                    streams: vec![],
                    send_encodings: vec![],
                }),
            )
            .await?;
    }
    let offer = peer.create_offer().await?;
    let client = http_client()?;
    let url = format!("{}/whep/{room}", base_url.trim_end_matches('/'));
    let answer = match post_offer(&client, &url, token, &offer).await {
        Ok(answer) => answer,
        Err(e) => {
            let _ = peer.pc.close().await;
            return Err(e);
        }
    };
    let resource = Resource {
        client,
        url: answer.url,
        token: token.to_owned(),
    };
    peer.apply_answer(answer.answer.clone()).await?;
    if let Err(e) = peer.wait_connected().await {
        let _ = peer.pc.close().await;
        return Err(e);
    }
    Ok(Subscriber {
        pc: peer.pc,
        connection: peer.connection,
        resource: Some(resource),
        answer_sdp: Some(answer.answer),
        recv,
    })
}

impl Subscriber {
    /// The resource URL from `Location` (absolute), if subscribed over WHEP.
    pub fn resource_url(&self) -> Option<&str> {
        self.resource.as_ref().map(|r| r.url.as_str())
    }

    /// The SDP answer applied, if this side made the offer.
    pub fn answer_sdp(&self) -> Option<&str> {
        self.answer_sdp.as_deref()
    }

    pub fn counts(&self) -> RecvCounts {
        self.recv.counts.borrow().clone()
    }

    pub fn connection_state(&self) -> RTCPeerConnectionState {
        *self.connection.borrow()
    }

    /// Whole video frames received so far, in order.
    pub fn video_frames(&self) -> Vec<ReceivedFrame> {
        lock(&self.recv.log).video_frames.clone()
    }

    /// Opus frames received so far, in order.
    pub fn audio_frames(&self) -> Vec<ReceivedFrame> {
        lock(&self.recv.log).audio_frames.clone()
    }

    /// Every video RTP packet received so far, in arrival order.
    pub fn sender_reports(&self) -> Vec<SeenSenderReport> {
        lock(&self.recv.log).sender_reports.clone()
    }

    pub fn video_packets(&self) -> Vec<ReceivedPacket> {
        lock(&self.recv.log).video_packets.clone()
    }

    /// Every audio RTP packet received so far, in arrival order.
    pub fn audio_packets(&self) -> Vec<ReceivedPacket> {
        lock(&self.recv.log).audio_packets.clone()
    }

    /// Waits until `pred` holds for the receive counters; returns them.
    pub async fn wait_for(
        &self,
        limit: Duration,
        pred: impl FnMut(&RecvCounts) -> bool,
    ) -> Result<RecvCounts> {
        let mut rx = self.recv.counts.subscribe();
        let counts = tokio::time::timeout(limit, rx.wait_for(pred))
            .await
            .with_context(|| {
                format!(
                    "subscriber condition not met within {limit:?}: {:?}",
                    self.counts()
                )
            })??
            .clone();
        Ok(counts)
    }

    /// Waits until at least `n` whole video frames have been received.
    pub async fn wait_video_frames(&self, n: usize, limit: Duration) -> Result<RecvCounts> {
        self.wait_for(limit, |c| c.video_frames >= n).await
    }

    /// Waits until at least `n` audio frames have been received.
    pub async fn wait_audio_frames(&self, n: usize, limit: Duration) -> Result<RecvCounts> {
        self.wait_for(limit, |c| c.audio_frames >= n).await
    }

    /// Waits for the first whole VP8 keyframe and returns it.
    pub async fn wait_first_keyframe(&self, limit: Duration) -> Result<ReceivedFrame> {
        self.wait_for(limit, |c| c.video_keyframes >= 1).await?;
        lock(&self.recv.log)
            .video_frames
            .iter()
            .find(|f| f.keyframe)
            .cloned()
            .ok_or_else(|| anyhow!("keyframe counted but not recorded"))
    }

    /// Waits for the connection to reach `state`.
    pub async fn wait_connection_state(
        &self,
        state: RTCPeerConnectionState,
        limit: Duration,
    ) -> Result<()> {
        let mut rx = self.connection.clone();
        tokio::time::timeout(limit, rx.wait_for(|s| *s == state))
            .await
            .with_context(|| format!("subscriber connection did not become {state}"))??;
        Ok(())
    }

    /// Sends a PLI for the video track (which must have arrived).
    pub async fn request_keyframe(&self) -> Result<()> {
        let track = lock(&self.recv.log)
            .video_track
            .clone()
            .ok_or_else(|| anyhow!("no video track yet"))?;
        let media_ssrc = *track
            .ssrcs()
            .await
            .first()
            .ok_or_else(|| anyhow!("video track has no SSRC"))?;
        track
            .write_rtcp(vec![Box::new(PictureLossIndication {
                sender_ssrc: 0,
                media_ssrc,
            })])
            .await?;
        Ok(())
    }

    /// `DELETE` of the WHEP resource; returns the HTTP status.
    pub async fn delete(&self) -> Result<u16> {
        match &self.resource {
            Some(r) => r.delete().await,
            None => bail!("not subscribed over WHEP: no resource to delete"),
        }
    }

    /// Closes the peer connection (without `DELETE`).
    pub async fn close(&self) -> Result<()> {
        self.pc.close().await?;
        Ok(())
    }
}

// ── In-process loopback (no server) ───────────────────────────────────────────────────────────

/// Connects a [`Publisher`] directly to a [`Subscriber`] in this process: the publisher's offer
/// is answered by the subscriber's peer connection, over UDP on 127.0.0.1. No HTTP is involved,
/// so neither has a resource to `DELETE`. This is how the client checks itself.
pub async fn connect_in_process(
    video_ivf: &Path,
    audio_ogg: &Path,
    opts: PublishOptions,
) -> Result<(Publisher, Subscriber)> {
    let mut pending = PendingPublisher::new(video_ivf, audio_ogg, opts).await?;
    let recv = RecvShared::new();
    let mut answerer = Peer::new(Some(Arc::clone(&recv))).await?;
    let answer_sdp = answerer.answer(pending.offer_sdp.clone()).await?;
    pending.connect(&answer_sdp).await?;
    // Both ends must be up before the first frame goes out, or it could be lost.
    answerer.wait_connected().await?;
    let publisher = pending.start(answer_sdp, None).await?;
    let subscriber = Subscriber {
        pc: answerer.pc,
        connection: answerer.connection,
        resource: None,
        answer_sdp: None,
        recv,
    };
    Ok((publisher, subscriber))
}
