//! The forwarding fast path toward subscribers: a copy of a packet is serialized and
//! SRTP-protected here and goes straight to the send queue.
//!
//! Through str0m, each copy is queued in the subscriber's `Rtc` and only leaves at its next
//! full timeout (ICE, DTLS, RTCP, stats and pacer polled), which moves a 408-byte packet
//! struct through a send queue into a retransmission history: about 5 µs per copy, half the
//! server's cost per forwarded packet (BENCHMARKS.md). Once a subscriber's DTLS handshake
//! has produced its keys (`dtls_tap`), the worker sends its media here instead, on the
//! SSRCs str0m negotiated, and str0m keeps everything else (ICE, DTLS, RTCP, stats,
//! keyframe requests). What str0m no longer sees is covered here:
//!
//! - **NACKs**: str0m's history for these streams is empty, so the worker answers the
//!   subscriber's NACKs (raw RTCP events) from a small history per stream ([`History`]).
//! - **Sender reports**: str0m still sends one per stream, but it counts no packets and has no
//!   RTP time to report; [`Egress::patch_sender_reports`] fills in this path's figures in
//!   str0m's outgoing SRTCP before it leaves (same keys, same SRTCP index).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use str0m::media::Mid;
use str0m::rtp::{Extension, ExtensionMap};

use super::dtls_tap::Keys;
use super::srtp::{SrtpError, SrtpTx};

/// Retransmittable packets kept per video stream (a power of two: the ring is indexed by
/// sequence number): about two seconds of a 1.2 Mbit/s 720p stream.
pub const HISTORY: usize = 256;

/// What the ring may grow to for a GOP replay to a joiner (`GopCache::MAX_REPLAY` is 400),
/// so the replayed keyframe stays retransmittable while the rest of the burst goes out; it
/// shrinks back once the replay has aged out ([`Stream::shrink_history`]). A larger ring
/// all the time costs memory and cache misses per copy (measured: BENCHMARKS.md).
const HISTORY_MAX: usize = 1024;

/// Retransmissions may spend this share of the bytes a stream sends (as str0m's 15 % cap),
/// so a viewer's NACKs can never make the server send much more than the stream itself.
const RTX_SHARE_PERCENT: i64 = 15;

/// Retransmission credit a stream starts with and can save up to (bytes).
const RTX_CREDIT_START: i64 = 64 * 1024;
const RTX_CREDIT_MAX: i64 = 256 * 1024;

/// How old a packet may be and still be resent.
pub const HISTORY_AGE: Duration = Duration::from_secs(1);

/// Times one packet is resent at most (a NACK repeated after a lost retransmission).
const MAX_RESENDS: u8 = 3;

/// Most RTP padding added to make a packet the size of the run it joins (see
/// [`Egress::seal`]): a frame's first packet is 12–20 bytes longer for its abs-capture-time,
/// packetizers that split frames evenly differ by a byte; anything shorter than this ends
/// the run instead (a frame's last packet, audio).
pub const MAX_PADDING: usize = 24;

/// Seconds from the NTP epoch (1900) to the Unix epoch.
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

/// The sending half of a subscriber's SRTP session.
#[derive(Debug)]
pub struct Egress {
    srtp: SrtpTx,
}

impl Egress {
    /// From the keys of a completed DTLS handshake.
    pub fn new(keys: &Keys) -> Result<Self, SrtpError> {
        Ok(Egress {
            srtp: SrtpTx::new(keys.profile, &keys.material, keys.local_is_client)?,
        })
    }

    /// The size `p` would have sealed without padding: so the worker can make a viewer's
    /// whole share of a frame one size before the first packet of it goes out (see
    /// `Worker::fan_out`).
    pub fn sealed_len(&self, stream: &Stream, p: &OutPacket<'_>) -> usize {
        header_len(stream, p) + p.payload.len() + self.srtp.tag_len()
    }

    /// Serializes `p` for `stream` into `buf` (cleared first) and protects it. False if the
    /// packet cannot be built (never for well-formed input; the caller falls back to str0m).
    ///
    /// With `pad_to`, the size of the run of datagrams this one would join, a packet up to
    /// `MAX_PADDING` bytes short of it gets RTP padding (RFC 3550 §5.1) to that size and is
    /// noted in `p.padding` (so a resend is the same bytes): equal sizes let a viewer's share
    /// of a frame leave as one UDP GSO send, where the frame's first packet (it alone carries
    /// abs-capture-time) or a packet a byte short from an even split would otherwise cut the
    /// run.
    pub fn seal(
        &self,
        stream: &Stream,
        p: &mut OutPacket<'_>,
        pad_to: Option<usize>,
        buf: &mut Vec<u8>,
    ) -> bool {
        buf.clear();
        let header_len = write_header(stream, p, buf);
        buf.extend_from_slice(p.payload);
        if let Some(target) = pad_to {
            let natural = buf.len() + self.srtp.tag_len();
            p.padding = match target.checked_sub(natural) {
                Some(short @ 1..=MAX_PADDING) => short as u8,
                _ => 0,
            };
        }
        if p.padding > 0 {
            buf[0] |= 0x20;
            buf.resize(buf.len() + usize::from(p.padding) - 1, 0);
            buf.push(p.padding);
        }
        let len = buf.len();
        buf.resize(len + self.srtp.tag_len(), 0);
        let roc = (p.seq >> 16) as u32;
        let n = self.srtp.protect_rtp(buf, len, header_len, roc);
        if n == 0 {
            return false;
        }
        buf.truncate(n);
        true
    }

    /// Rewrites the sender reports in one of str0m's outgoing SRTCP packets for the streams
    /// this path sends: RTP time, packet and octet counts. `now` is the time str0m stamped
    /// the report with. Leaves the packet as it was if it cannot read it. Each stream
    /// notes its report's send time (for the round trip, [`Stream::report_sent_at`]).
    pub fn patch_sender_reports(
        &self,
        data: &mut Vec<u8>,
        streams: &mut [&mut Stream],
        now: Instant,
    ) {
        let len = data.len();
        // A failed GCM open may leave the buffer half decrypted; RTCP is a few packets a
        // second, so keep the original to send as it was.
        let original = data.clone();
        let Some((plain, index)) = self.srtp.unprotect_rtcp(data, len) else {
            *data = original;
            return;
        };
        let mut o = 0;
        while o + 4 <= plain {
            let words = u16::from_be_bytes([data[o + 2], data[o + 3]]) as usize;
            let end = o + (words + 1) * 4;
            if end > plain {
                break;
            }
            // SR: header, SSRC, NTP (8), RTP time, packet count, octet count.
            if data[o + 1] == 200 && end >= o + 28 {
                let ssrc = u32::from_be_bytes([data[o + 4], data[o + 5], data[o + 6], data[o + 7]]);
                if let Some(s) = streams.iter_mut().find(|s| s.ssrc == ssrc) {
                    if let Some((ts, at)) = s.last {
                        let ahead = now.saturating_duration_since(at);
                        let ticks = (ahead.as_secs_f64() * f64::from(s.clock_rate)) as u64;
                        let rtp = ts.wrapping_add(ticks as u32);
                        data[o + 16..o + 20].copy_from_slice(&rtp.to_be_bytes());
                        data[o + 20..o + 24].copy_from_slice(&s.packets.to_be_bytes());
                        data[o + 24..o + 28].copy_from_slice(&s.octets.to_be_bytes());
                        let ntp =
                            u64::from_be_bytes(data[o + 8..o + 16].try_into().unwrap_or([0; 8]));
                        s.report_sent(ntp, now);
                    }
                }
            }
            o = end;
        }
        let n = self.srtp.protect_rtcp(data, plain, index);
        if n == 0 {
            // Cannot happen with the buffer it came in; never send a half-made packet.
            data.clear();
            return;
        }
        data.truncate(n);
    }
}

/// One outgoing packet, as the worker has it after rewriting.
#[derive(Debug, Clone, Copy)]
pub struct OutPacket<'a> {
    /// Payload type toward this subscriber.
    pub pt: u8,
    /// Extended output sequence number (its top bits are the SRTP rollover counter).
    pub seq: u64,
    /// Output RTP timestamp.
    pub ts: u32,
    /// Marker bit.
    pub marker: bool,
    /// The payload, shared with every other copy.
    pub payload: &'a [u8],
    /// Audio level and voice activity (RFC 6464).
    pub audio_level: Option<(i8, bool)>,
    /// Video orientation (CVO) byte.
    pub orientation: Option<u8>,
    /// abs-capture-time: NTP capture time and estimated clock offset.
    pub capture: Option<(u64, Option<i64>)>,
    /// RTP padding bytes (0: none); see [`Egress::seal`].
    pub padding: u8,
}

/// The longest mid a one-byte header extension element carries (RFC 8285 §4.2).
const MID_MAX: usize = 16;

/// A subscriber stream's sending state on this path.
#[derive(Debug)]
pub struct Stream {
    /// The SSRC str0m negotiated for the m-line.
    pub ssrc: u32,
    /// The m-line's mid as it goes in the header (str0m's `Mid` trims its padding and
    /// checks UTF-8 each time it is read: once per copy per viewer here).
    mid: ([u8; MID_MAX], u8),
    ids: ExtIds,
    clock_rate: u32,
    /// Packets sent (for sender reports; wraps as RTCP's counter does).
    pub packets: u32,
    /// Payload octets sent (for sender reports).
    pub octets: u32,
    /// RTP time and wallclock of the latest packet, to extrapolate a report's RTP time.
    pub last: Option<(u32, Instant)>,
    history: Option<History>,
    /// Bytes retransmissions may still spend (see `RTX_SHARE_PERCENT`).
    rtx_credit: i64,
    /// The latest sender reports sent for this stream: the middle 32 bits of their NTP time
    /// (what a reception report echoes as LSR) and when they left, for the round-trip time.
    reports: [(u32, Option<Instant>); 4],
}

/// The header extension ids the subscriber negotiated, for the extensions this path writes.
#[derive(Debug, Clone, Copy, Default)]
struct ExtIds {
    mid: Option<u8>,
    audio_level: Option<u8>,
    orientation: Option<u8>,
    capture: Option<u8>,
}

impl Stream {
    /// A stream on `ssrc` for m-line `mid`, with the extension ids of the subscriber's map.
    pub fn new(ssrc: u32, mid: Mid, exts: &ExtensionMap, clock_rate: u32) -> Self {
        let one_byte = |e: Extension| exts.id_of(e).filter(|id| (1..=14).contains(id));
        let mut mid_bytes = [0; MID_MAX];
        let len = mid.len().min(MID_MAX);
        mid_bytes[..len].copy_from_slice(&mid.as_bytes()[..len]);
        Stream {
            ssrc,
            mid: (mid_bytes, len as u8),
            ids: ExtIds {
                mid: one_byte(Extension::RtpMid),
                audio_level: one_byte(Extension::AudioLevel),
                orientation: one_byte(Extension::VideoOrientation),
                capture: one_byte(Extension::AbsoluteCaptureTime),
            },
            clock_rate,
            packets: 0,
            octets: 0,
            last: None,
            history: None,
            rtx_credit: RTX_CREDIT_START,
            reports: [(0, None); 4],
        }
    }

    /// Makes room for `packets` more retransmittable packets (a GOP replay about to go out),
    /// up to `HISTORY_MAX`.
    pub fn reserve_history(&mut self, packets: usize) {
        let want = (packets + HISTORY / 4)
            .next_power_of_two()
            .clamp(HISTORY, HISTORY_MAX);
        let h = self.history.get_or_insert_with(|| History::new(HISTORY));
        if h.ring.len() < want {
            h.resized(want);
        }
    }

    /// Shrinks a ring grown by [`Stream::reserve_history`] back to its usual size, keeping
    /// the latest packets. True if it was larger.
    pub fn shrink_history(&mut self) -> bool {
        match self.history.as_mut() {
            Some(h) if h.ring.len() > HISTORY => {
                h.resized(HISTORY);
                true
            }
            _ => false,
        }
    }

    /// Notes a sender report for this stream leaving at `at` with NTP time `ntp`.
    pub fn report_sent(&mut self, ntp: u64, at: Instant) {
        let lsr = (ntp >> 16) as u32;
        let i = self
            .reports
            .iter()
            .position(|r| r.1.is_none())
            .unwrap_or_else(|| (0..4).min_by_key(|&i| self.reports[i].1).unwrap_or(0));
        self.reports[i] = (lsr, Some(at));
    }

    /// When the sender report a reception report echoes (`lsr`, RFC 3550 §6.4.1) left.
    pub fn report_sent_at(&self, lsr: u32) -> Option<Instant> {
        self.reports
            .iter()
            .find(|r| r.0 == lsr && r.1.is_some())
            .and_then(|r| r.1)
    }

    /// Notes a packet sent (not a resend): counters, report timing, and, if it may be asked
    /// for again, the history entry that finds it in `kept` (its number in [`Recent`]).
    pub fn sent(&mut self, p: &OutPacket<'_>, kept: Option<u64>, wallclock: Instant) {
        self.packets = self.packets.wrapping_add(1);
        self.octets = self.octets.wrapping_add(p.payload.len() as u32);
        self.rtx_credit = (self.rtx_credit + p.payload.len() as i64 * RTX_SHARE_PERCENT / 100)
            .min(RTX_CREDIT_MAX);
        self.last = Some((p.ts, wallclock));
        if let Some(kept) = kept {
            self.history
                .get_or_insert_with(|| History::new(HISTORY))
                .push(p, kept);
        }
    }

    /// The packet with sequence number `seq16`, as it went the first time, if it can still
    /// be resent (still in `recent`, recent enough, not resent too often); counts the
    /// resend.
    pub fn resend<'a>(
        &mut self,
        seq16: u16,
        now: Instant,
        recent: &'a Recent,
    ) -> Option<OutPacket<'a>> {
        let h = self.history.as_mut()?;
        let len = h.ring.len();
        let e = &mut h.ring[usize::from(seq16) % len];
        if e.seq as u16 != seq16 {
            return None;
        }
        let k = recent.get(e.kept)?;
        if now.saturating_duration_since(k.at) > HISTORY_AGE
            || e.resends >= MAX_RESENDS
            || self.rtx_credit < k.payload.len() as i64
        {
            return None;
        }
        self.rtx_credit -= k.payload.len() as i64;
        e.resends += 1;
        Some(OutPacket {
            pt: e.pt,
            seq: e.seq,
            ts: e.ts,
            marker: k.marker,
            payload: &k.payload,
            audio_level: k.audio_level,
            orientation: k.orientation,
            capture: k.capture,
            padding: e.padding,
        })
    }
}

/// The video packets a worker sent on this path in the last [`HISTORY_AGE`], each kept once
/// however many viewers it went to, by number (from 1, in the order kept). A stream's
/// [`History`] holds only what differs per viewer and the number.
///
/// Each viewer's history held its own reference to the payload (an `Arc` cloned for every
/// copy sent and dropped when its slot was reused) and the header fields every copy shares:
/// 80 bytes per entry, two atomic operations on a count every viewer shares, and a cache
/// miss on the slot's old payload, per copy. Touched only by the worker thread.
#[derive(Debug)]
pub struct Recent {
    /// The number of `kept[0]`.
    first: u64,
    kept: VecDeque<Kept>,
}

/// A packet as every viewer got it: payload and the header fields the viewers share.
#[derive(Debug)]
struct Kept {
    payload: Arc<[u8]>,
    marker: bool,
    audio_level: Option<(i8, bool)>,
    orientation: Option<u8>,
    capture: Option<(u64, Option<i64>)>,
    /// When it was kept (its copies went out then, within a fan-out's milliseconds).
    at: Instant,
}

impl Default for Recent {
    fn default() -> Self {
        Recent {
            first: 1,
            kept: VecDeque::new(),
        }
    }
}

impl Recent {
    /// Keeps `p`'s payload and shared header fields (its per-viewer fields are not read);
    /// returns its number. What has grown too old to be resent goes.
    pub fn keep(&mut self, p: &OutPacket<'_>, payload: &Arc<[u8]>, now: Instant) -> u64 {
        while self
            .kept
            .front()
            .is_some_and(|k| now.saturating_duration_since(k.at) > HISTORY_AGE)
        {
            self.kept.pop_front();
            self.first += 1;
        }
        self.kept.push_back(Kept {
            payload: payload.clone(),
            marker: p.marker,
            audio_level: p.audio_level,
            orientation: p.orientation,
            capture: p.capture,
            at: now,
        });
        self.first + self.kept.len() as u64 - 1
    }

    /// Packets kept now.
    pub fn len(&self) -> usize {
        self.kept.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.kept.is_empty()
    }

    fn get(&self, n: u64) -> Option<&Kept> {
        let i = n.checked_sub(self.first)?;
        self.kept.get(usize::try_from(i).ok()?)
    }
}

/// A ring of recently sent video packets, indexed by sequence number.
#[derive(Debug)]
struct History {
    ring: Box<[Sent]>,
}

/// A sent packet as a viewer's history keeps it: what differs per viewer, and where the
/// rest is ([`Recent`]); enough to send it again byte for byte. 24 bytes.
#[derive(Debug, Clone, Copy, Default)]
struct Sent {
    seq: u64,
    /// Its number in [`Recent`]; 0 for an empty slot.
    kept: u64,
    ts: u32,
    pt: u8,
    resends: u8,
    padding: u8,
}

impl History {
    fn new(len: usize) -> Self {
        History {
            ring: vec![Sent::default(); len].into_boxed_slice(),
        }
    }

    /// The same entries in a ring of `len` slots (where two collide, the later packet stays).
    fn resized(&mut self, len: usize) {
        let mut next = History::new(len);
        let mut kept: Vec<Sent> = self.ring.iter().filter(|e| e.kept != 0).copied().collect();
        kept.sort_by_key(|e| e.seq);
        for e in kept {
            let i = (e.seq as u16 as usize) % len;
            next.ring[i] = e;
        }
        *self = next;
    }

    fn push(&mut self, p: &OutPacket<'_>, kept: u64) {
        let len = self.ring.len();
        self.ring[(p.seq as u16 as usize) % len] = Sent {
            seq: p.seq,
            kept,
            ts: p.ts,
            pt: p.pt,
            resends: 0,
            padding: p.padding,
        };
    }
}

/// Whether a datagram str0m sends is (S)RTCP rather than (S)RTP (RFC 5761 §4): the packet
/// types str0m writes (SR … XR, 200–207), which no RTP packet with a dynamic payload type
/// (96–127, or 35–63 as browsers now also use) can show, marker bit or not.
pub fn is_rtcp(data: &[u8]) -> bool {
    data.len() >= 8 && data[0] >> 6 == 2 && (200..=207).contains(&data[1])
}

/// The NTP form of a wallclock time (RFC 5905: seconds since 1900, 32.32 fixed point).
pub fn ntp64(t: SystemTime) -> u64 {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() + NTP_UNIX_OFFSET;
    let frac = (u64::from(d.subsec_nanos()) << 32) / 1_000_000_000;
    (secs << 32) | frac
}

/// The length [`write_header`] gives `p` on `s`, counted without writing it.
fn header_len(s: &Stream, p: &OutPacket<'_>) -> usize {
    let element = |id: Option<u8>, len: usize| match id {
        Some(_) if (1..=16).contains(&len) => 1 + len,
        _ => 0,
    };
    let ext = element(s.ids.mid, usize::from(s.mid.1))
        + p.audio_level.map_or(0, |_| element(s.ids.audio_level, 1))
        + p.orientation.map_or(0, |_| element(s.ids.orientation, 1))
        + p.capture.map_or(0, |(_, offset)| {
            element(s.ids.capture, if offset.is_some() { 16 } else { 8 })
        });
    match ext {
        0 => 12,
        n => 12 + 4 + n.next_multiple_of(4),
    }
}

/// Writes the RTP header (RFC 3550 §5.1) with one-byte header extensions (RFC 8285 §4.2);
/// returns its length.
fn write_header(s: &Stream, p: &OutPacket<'_>, buf: &mut Vec<u8>) -> usize {
    buf.extend_from_slice(&[0x80, (u8::from(p.marker) << 7) | (p.pt & 0x7f)]);
    buf.extend_from_slice(&(p.seq as u16).to_be_bytes());
    buf.extend_from_slice(&p.ts.to_be_bytes());
    buf.extend_from_slice(&s.ssrc.to_be_bytes());
    let start = buf.len();
    buf.extend_from_slice(&[0xbe, 0xde, 0, 0]);
    let mut element = |id: Option<u8>, data: &[u8]| {
        if let Some(id) = id {
            if (1..=16).contains(&data.len()) {
                buf.push((id << 4) | (data.len() as u8 - 1));
                buf.extend_from_slice(data);
            }
        }
    };
    element(s.ids.mid, &s.mid.0[..usize::from(s.mid.1)]);
    if let Some((level, voice)) = p.audio_level {
        element(
            s.ids.audio_level,
            &[u8::from(voice) << 7 | (level.unsigned_abs() & 0x7f)],
        );
    }
    if let Some(o) = p.orientation {
        element(s.ids.orientation, &[o]);
    }
    if let Some((ntp, offset)) = p.capture {
        let mut v = [0u8; 16];
        v[..8].copy_from_slice(&ntp.to_be_bytes());
        let n = match offset {
            Some(off) => {
                v[8..].copy_from_slice(&off.to_be_bytes());
                16
            }
            None => 8,
        };
        element(s.ids.capture, &v[..n]);
    }
    let ext_len = buf.len() - start - 4;
    if ext_len == 0 {
        // No extension after all.
        buf.truncate(start);
        return buf.len();
    }
    while (buf.len() - start) % 4 != 0 {
        buf.push(0);
    }
    let words = ((buf.len() - start - 4) / 4) as u16;
    buf[start + 2..start + 4].copy_from_slice(&words.to_be_bytes());
    buf[0] |= 0x10;
    buf.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtc::shared::marshal::Unmarshal;

    fn exts() -> ExtensionMap {
        let mut m = ExtensionMap::empty();
        m.set(1, Extension::AudioLevel);
        m.set(4, Extension::RtpMid);
        m.set(7, Extension::AbsoluteCaptureTime);
        m.set(13, Extension::VideoOrientation);
        m
    }

    fn packet(payload: &[u8]) -> OutPacket<'_> {
        OutPacket {
            pt: 96,
            seq: (3 << 16) | 65_535,
            ts: 0xdead_beef,
            marker: true,
            payload,
            audio_level: None,
            orientation: Some(1),
            capture: Some((0x0102_0304_0506_0708, Some(-5))),
            padding: 0,
        }
    }

    /// Notes video packets `seqs` sent on `s` at `t0` (kept in `recent`).
    fn send_all(
        s: &mut Stream,
        recent: &mut Recent,
        seqs: std::ops::Range<u64>,
        payload: &Arc<[u8]>,
        t0: Instant,
    ) {
        for seq in seqs {
            let p = OutPacket {
                seq,
                ..packet(payload)
            };
            let kept = recent.keep(&p, payload, t0);
            s.sent(&p, Some(kept), t0);
        }
    }

    #[test]
    fn header_carries_the_negotiated_extensions() {
        let s = Stream::new(0x1234_5678, Mid::from("v0"), &exts(), 90_000);
        let payload = [9u8; 100];
        let mut buf = Vec::new();
        let header_len = write_header(&s, &packet(&payload), &mut buf);
        buf.extend_from_slice(&payload);
        // An independent parser (the webrtc crate's) reads it back.
        let p = rtc::rtp::Packet::unmarshal(&mut &buf[..]).unwrap();
        assert_eq!(p.header.ssrc, 0x1234_5678);
        assert_eq!(p.header.sequence_number, 65_535);
        assert_eq!(p.header.timestamp, 0xdead_beef);
        assert!(p.header.marker);
        assert_eq!(p.header.payload_type, 96);
        assert_eq!(p.header.extension_profile, 0xbede);
        assert_eq!(&p.header.get_extension(4).unwrap()[..], b"v0");
        assert_eq!(&p.header.get_extension(13).unwrap()[..], &[1]);
        let capture = p.header.get_extension(7).unwrap();
        assert_eq!(&capture[..8], &0x0102_0304_0506_0708u64.to_be_bytes());
        assert_eq!(&capture[8..], &(-5i64).to_be_bytes());
        assert!(p.header.get_extension(1).is_none(), "no level on video");
        assert_eq!(&p.payload[..], &payload[..]);
        assert_eq!(header_len, buf.len() - payload.len());
        assert_eq!(header_len % 4, 0);
    }

    #[test]
    fn header_len_counts_what_write_header_writes() {
        let maps = [exts(), ExtensionMap::empty(), {
            let mut m = ExtensionMap::empty();
            m.set(2, Extension::AbsoluteCaptureTime);
            m
        }];
        let payload = [0u8; 10];
        for map in &maps {
            for mid in ["", "v", "a1b2c3d4e5f6g7h8i9"] {
                let s = Stream::new(1, Mid::from(mid), map, 90_000);
                for level in [None, Some((-20, false))] {
                    for orientation in [None, Some(3)] {
                        for capture in [None, Some((5, None)), Some((5, Some(-1)))] {
                            let p = OutPacket {
                                audio_level: level,
                                orientation,
                                capture,
                                ..packet(&payload)
                            };
                            let mut buf = Vec::new();
                            assert_eq!(
                                header_len(&s, &p),
                                write_header(&s, &p, &mut buf),
                                "mid {mid:?} {level:?} {orientation:?} {capture:?}"
                            );
                            // The mid element comes first: id 4, length − 1, the mid.
                            if map.id_of(Extension::RtpMid).is_some() && !mid.is_empty() {
                                let m = &mid.as_bytes()[..mid.len().min(16)];
                                assert_eq!(buf[16], (4 << 4) | (m.len() as u8 - 1));
                                assert_eq!(&buf[17..17 + m.len()], m, "mid {mid:?}");
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn without_negotiated_extensions_the_header_is_plain() {
        let s = Stream::new(7, Mid::from("a"), &ExtensionMap::empty(), 48_000);
        let mut buf = Vec::new();
        let p = OutPacket {
            audio_level: Some((-30, true)),
            ..packet(&[1, 2, 3])
        };
        assert_eq!(write_header(&s, &p, &mut buf), 12);
        assert_eq!(buf[0], 0x80, "version 2, no extension bit");
    }

    #[test]
    fn audio_level_is_written_as_rfc_6464() {
        let s = Stream::new(7, Mid::from("a"), &exts(), 48_000);
        let mut buf = Vec::new();
        let p = OutPacket {
            orientation: None,
            capture: None,
            audio_level: Some((-37, true)),
            ..packet(&[])
        };
        write_header(&s, &p, &mut buf);
        let parsed = rtc::rtp::Packet::unmarshal(&mut &buf[..]).unwrap();
        assert_eq!(&parsed.header.get_extension(1).unwrap()[..], &[0x80 | 37]);
    }

    #[test]
    fn history_resends_recent_packets_a_few_times() {
        let mut s = Stream::new(7, Mid::from("v"), &exts(), 90_000);
        let t0 = Instant::now();
        let payload: Arc<[u8]> = Arc::from(&[5u8; 50][..]);
        let mut recent = Recent::default();
        send_all(&mut s, &mut recent, 100..110, &payload, t0);
        assert_eq!(s.packets, 10);
        assert_eq!(s.octets, 500);
        let again = s.resend(105, t0, &recent).expect("in the history");
        assert_eq!(again.seq, 105);
        assert_eq!(again.payload, &payload[..]);
        assert!(s.resend(111, t0, &recent).is_none(), "never sent");
        assert!(s.resend(105, t0, &recent).is_some());
        assert!(s.resend(105, t0, &recent).is_some());
        assert!(
            s.resend(105, t0, &recent).is_none(),
            "resent three times already"
        );
        assert!(
            s.resend(106, t0 + HISTORY_AGE + Duration::from_millis(1), &recent)
                .is_none(),
            "too old"
        );
        // A ring slot reused by a later sequence number no longer answers for the old one.
        let p = OutPacket {
            seq: 100 + HISTORY as u64,
            ..packet(&payload)
        };
        let kept = recent.keep(&p, &payload, t0);
        s.sent(&p, Some(kept), t0);
        assert!(s.resend(100, t0, &recent).is_none());
        // Audio (not nackable) keeps no history.
        let mut a = Stream::new(8, Mid::from("a"), &exts(), 48_000);
        a.sent(&packet(&payload), None, t0);
        assert!(a.resend(65_535, t0, &recent).is_none());
        // A packet no longer kept cannot be resent, even if the viewer's ring still has it.
        let later = t0 + HISTORY_AGE + Duration::from_millis(1);
        recent.keep(&packet(&payload), &payload, later);
        assert_eq!(recent.len(), 1, "the old ones went");
        let mut fresh = Stream::new(9, Mid::from("v"), &exts(), 90_000);
        fresh.sent(&p, Some(kept), later);
        assert!(fresh.resend(p.seq as u16, later, &recent).is_none());
    }

    #[test]
    fn the_history_grows_for_a_replay_and_shrinks_back() {
        let mut s = Stream::new(7, Mid::from("v"), &exts(), 90_000);
        let t0 = Instant::now();
        let payload: Arc<[u8]> = Arc::from(&[1u8; 10][..]);
        let mut recent = Recent::default();
        send_all(&mut s, &mut recent, 5..6, &payload, t0);
        // A 400-packet GOP replay: the ring grows first, so its keyframe (seq 10) survives.
        s.reserve_history(400);
        send_all(&mut s, &mut recent, 10..410, &payload, t0);
        assert!(
            s.resend(10, t0, &recent).is_some(),
            "the replay's first packet"
        );
        assert!(
            s.resend(5, t0, &recent).is_some(),
            "what was there before the growth"
        );
        // Later, back to the usual size, keeping the latest packets.
        assert!(s.shrink_history());
        assert!(!s.shrink_history(), "once");
        assert!(s.resend(409, t0, &recent).is_some());
        assert!(s.resend(409 - HISTORY as u16 + 1, t0, &recent).is_some());
        assert!(
            s.resend(409 - HISTORY as u16, t0, &recent).is_none(),
            "older than the ring"
        );
        // Never beyond the most.
        s.reserve_history(100_000);
        assert_eq!(s.history.as_ref().unwrap().ring.len(), HISTORY_MAX);
    }

    #[test]
    fn retransmissions_spend_at_most_a_share_of_the_stream() {
        let mut s = Stream::new(7, Mid::from("v"), &exts(), 90_000);
        let t0 = Instant::now();
        let payload: Arc<[u8]> = Arc::from(&[5u8; 1000][..]);
        let mut recent = Recent::default();
        send_all(&mut s, &mut recent, 0..200, &payload, t0);
        // 64 KiB to start with, plus 15 % of 200 kB: 95 resends of 1000 bytes, fewer than
        // the 600 the NACKs ask for.
        let granted = (0..200u16)
            .flat_map(|q| [q, q, q])
            .filter(|&q| s.resend(q, t0, &recent).is_some())
            .count();
        assert_eq!(granted, (64 * 1024 + 200 * 1000 * 15 / 100) / 1000);
    }

    #[test]
    fn round_trip_from_the_sender_reports_echoed() {
        let mut s = Stream::new(7, Mid::from("v"), &exts(), 90_000);
        let t0 = Instant::now();
        for i in 0..6u64 {
            s.report_sent((i + 1) << 32 | 0x8000_0000, t0 + Duration::from_secs(i));
        }
        // LSR is the middle 32 bits of the NTP time: seconds' low 16, fraction's high 16.
        assert_eq!(
            s.report_sent_at(0x0006_8000),
            Some(t0 + Duration::from_secs(5))
        );
        assert_eq!(
            s.report_sent_at(0x0003_8000),
            Some(t0 + Duration::from_secs(2))
        );
        assert_eq!(
            s.report_sent_at(0x0001_8000),
            None,
            "only the latest four are kept"
        );
        assert_eq!(s.report_sent_at(0x0009_8000), None, "never sent");
    }

    #[test]
    fn rtcp_and_rtp_are_told_apart() {
        assert!(is_rtcp(&[0x80, 200, 0, 6, 0, 0, 0, 1]));
        assert!(is_rtcp(&[0x81, 205, 0, 3, 0, 0, 0, 1]));
        assert!(
            !is_rtcp(&[0x80, 0x80 | 35, 0, 1, 0, 0, 0, 1]),
            "marker + PT 35"
        );
        assert!(
            !is_rtcp(&[0x80, 195, 0, 1, 0, 0, 0, 1]),
            "not a type str0m sends"
        );
        assert!(!is_rtcp(&[0x80, 96, 0, 1, 0, 0, 0, 1]));
        assert!(!is_rtcp(&[0x80, 0xe0, 0, 1, 0, 0, 0, 1]), "marker + PT 96");
        assert!(!is_rtcp(&[22, 254, 253, 0, 0, 0, 0, 0]), "DTLS");
        assert!(!is_rtcp(&[0x80, 200]), "too short");
    }

    #[test]
    fn ntp_time_of_the_unix_epoch_and_a_half_second() {
        assert_eq!(ntp64(UNIX_EPOCH), NTP_UNIX_OFFSET << 32);
        let t = UNIX_EPOCH + Duration::from_millis(1500);
        assert_eq!(ntp64(t), ((NTP_UNIX_OFFSET + 1) << 32) | (1 << 31));
    }

    /// DTLS-SRTP keying material for AEAD_AES_128_GCM: two 16-byte keys, two 12-byte salts.
    fn material() -> Vec<u8> {
        (0..56u8).collect()
    }

    /// A compound RTCP packet as str0m sends a subscriber: an SR for `ssrc` with nothing
    /// counted, then an SDES with a CNAME.
    fn compound(ssrc: u32) -> Vec<u8> {
        let mut b = vec![0x80, 200, 0, 6];
        b.extend_from_slice(&ssrc.to_be_bytes());
        b.extend_from_slice(&0x1111_2222_3333_4444u64.to_be_bytes());
        b.extend_from_slice(&[0; 12]);
        b.extend_from_slice(&[0x81, 202, 0, 3]);
        b.extend_from_slice(&ssrc.to_be_bytes());
        b.extend_from_slice(&[1, 2, b'a', b'b', 0, 0, 0, 0]);
        b
    }

    #[test]
    fn keys_of_the_wrong_length_give_no_fast_path() {
        use str0m::crypto::dtls::SrtpProfile;
        let keys = Keys {
            profile: SrtpProfile::AEAD_AES_128_GCM,
            material: vec![0; 40],
            local_is_client: true,
        };
        assert!(matches!(
            Egress::new(&keys),
            Err(SrtpError::Material(40, 56))
        ));
    }

    #[test]
    fn padding_makes_a_packet_the_size_of_its_run_and_a_resend_the_same_bytes() {
        use str0m::crypto::dtls::SrtpProfile;
        let profile = SrtpProfile::AEAD_AES_128_GCM;
        let keys = Keys {
            profile,
            material: material(),
            local_is_client: false,
        };
        let egress = Egress::new(&keys).unwrap();
        // What `group_size` plans with is what `seal` makes (no padding asked).
        {
            let s = Stream::new(9, Mid::from("v"), &exts(), 90_000);
            let payload = [7u8; 300];
            let mut p = packet(&payload);
            let mut buf = Vec::new();
            assert!(egress.seal(&s, &mut p, None, &mut buf));
            assert_eq!(egress.sealed_len(&s, &packet(&payload)), buf.len());
        }
        let mut rx = crate::sfu::srtp::tests::rtc_context(profile, &material(), false);
        let now = Instant::now();
        let mut s = Stream::new(0xabcd, Mid::from("v"), &exts(), 90_000);
        let payload: Arc<[u8]> = vec![7u8; 1000].into();
        let later = |seq: u64, payload| OutPacket {
            seq,
            marker: false,
            orientation: None,
            capture: None,
            ..packet(payload)
        };
        // A frame's first packet carries abs-capture-time, so it is longer than the next.
        let mut first = OutPacket {
            seq: 10,
            marker: false,
            ..packet(&payload)
        };
        let mut a = Vec::new();
        assert!(egress.seal(&s, &mut first, None, &mut a));
        let mut natural = Vec::new();
        assert!(egress.seal(&s, &mut later(11, &payload), None, &mut natural));
        assert!(natural.len() < a.len());

        let mut second = later(11, &payload);
        let mut b = Vec::new();
        assert!(egress.seal(&s, &mut second, Some(a.len()), &mut b));
        assert_eq!(b.len(), a.len(), "padded to the run's size");
        assert_eq!(usize::from(second.padding), a.len() - natural.len());
        let plain = rx.decrypt_rtp(&b).unwrap();
        let parsed = rtc::rtp::Packet::unmarshal(&mut &plain[..]).unwrap();
        assert!(parsed.header.padding);
        assert_eq!(&parsed.payload[..], &payload[..], "the receiver strips it");
        assert_eq!(parsed.header.sequence_number, 11);

        // A resend is the same bytes (same SRTP index, so it must be).
        let mut recent = Recent::default();
        let kept = recent.keep(&second, &payload, now);
        s.sent(&second, Some(kept), now);
        let mut again = s.resend(11, now, &recent).unwrap();
        let mut c = Vec::new();
        assert!(egress.seal(&s, &mut again, None, &mut c));
        assert_eq!(c, b);
        // So is one with every extension this path writes (the viewers' shared fields come
        // back from `recent`, the viewer's own from its history).
        for (seq, mut p) in [
            (10, first),
            (
                14,
                OutPacket {
                    seq: 14,
                    audio_level: Some((-30, true)),
                    ..packet(&payload)
                },
            ),
        ] {
            let mut sealed = Vec::new();
            assert!(egress.seal(&s, &mut p, None, &mut sealed));
            let kept = recent.keep(&p, &payload, now);
            s.sent(&p, Some(kept), now);
            let mut again = s.resend(seq, now, &recent).unwrap();
            let mut resealed = Vec::new();
            assert!(egress.seal(&s, &mut again, None, &mut resealed));
            assert_eq!(resealed, sealed, "seq {seq}");
        }

        // Far shorter (a frame's last packet, audio) or longer than the run: no padding.
        let short: Arc<[u8]> = vec![1u8; 300].into();
        let mut last = later(12, &short);
        let mut d = Vec::new();
        assert!(egress.seal(&s, &mut last, Some(a.len()), &mut d));
        assert_eq!((last.padding, d[0] & 0x20), (0, 0));
        let mut longer = later(13, &payload);
        assert!(egress.seal(&s, &mut longer, Some(natural.len() - 1), &mut d));
        assert_eq!((longer.padding, d.len()), (0, natural.len()));
    }

    #[test]
    fn sender_reports_get_this_paths_figures() {
        use str0m::crypto::dtls::SrtpProfile;
        let keys = Keys {
            profile: SrtpProfile::AEAD_AES_128_GCM,
            material: material(),
            local_is_client: false,
        };
        let egress = Egress::new(&keys).unwrap();
        let now = Instant::now();
        let mut s = Stream::new(0xabcd, Mid::from("v"), &exts(), 90_000);
        s.packets = 10;
        s.octets = 12_000;
        s.last = Some((1_000, now - Duration::from_millis(100)));
        let plain = compound(0xabcd);
        let mut data = plain.clone();
        let len = data.len();
        data.resize(len + 64, 0);
        let n = egress.srtp.protect_rtcp(&mut data, len, 5);
        data.truncate(n);
        let protected_len = data.len();

        egress.patch_sender_reports(&mut data, &mut [&mut s], now);
        assert_eq!(
            s.report_sent_at(0x2222_3333),
            Some(now),
            "its send time noted"
        );
        assert_eq!(data.len(), protected_len);
        let (plain_len, index) = egress
            .srtp
            .unprotect_rtcp(&mut data, protected_len)
            .unwrap();
        assert_eq!(index, 5, "same SRTCP index");
        assert_eq!(plain_len, plain.len());
        let rtp = u32::from_be_bytes(data[16..20].try_into().unwrap());
        assert!(
            (9_990..=10_010).contains(&rtp),
            "1000 + 100 ms at 90 kHz: {rtp}"
        );
        assert_eq!(u32::from_be_bytes(data[20..24].try_into().unwrap()), 10);
        assert_eq!(u32::from_be_bytes(data[24..28].try_into().unwrap()), 12_000);
        assert_eq!(&data[..16], &plain[..16], "header, SSRC and NTP time kept");
        assert_eq!(&data[28..plain_len], &plain[28..], "the SDES untouched");

        // Another stream's report is left alone (and still decrypts).
        let mut other = plain.clone();
        other.resize(len + 64, 0);
        let n = egress.srtp.protect_rtcp(&mut other, len, 6);
        other.truncate(n);
        let mut elsewhere = Stream::new(0x9999, Mid::from("v"), &exts(), 90_000);
        elsewhere.last = s.last;
        egress.patch_sender_reports(&mut other, &mut [&mut elsewhere], now);
        let (l, _) = egress.srtp.unprotect_rtcp(&mut other, n).unwrap();
        assert_eq!(&other[..l], &plain[..]);

        // Garbage is left as it was.
        let mut junk = vec![0x80, 200, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8];
        let before = junk.clone();
        egress.patch_sender_reports(&mut junk, &mut [&mut s], now);
        assert_eq!(junk, before);
        // So is a packet whose tag does not check out (a failed GCM open must not leave it
        // half decrypted).
        let mut bad = plain.clone();
        bad.resize(len + 64, 0);
        let n = egress.srtp.protect_rtcp(&mut bad, len, 7);
        bad.truncate(n);
        bad[n - 6] ^= 1;
        let before = bad.clone();
        egress.patch_sender_reports(&mut bad, &mut [&mut s], now);
        assert_eq!(bad, before);
    }

    mod props {
        use super::*;
        use proptest::prelude::*;
        use str0m::crypto::dtls::SrtpProfile;

        fn egress() -> Egress {
            Egress::new(&Keys {
                profile: SrtpProfile::AEAD_AES_128_GCM,
                material: material(),
                local_is_client: false,
            })
            .unwrap()
        }

        /// A compound RTCP-like plaintext: `parts` of (packet type, length word, body).
        fn plaintext() -> impl Strategy<Value = Vec<u8>> {
            prop::collection::vec(
                (
                    prop_oneof![Just(200u8), Just(201), Just(202), any::<u8>()],
                    0u16..12,
                    prop::collection::vec(any::<u8>(), 0..48),
                ),
                1..4,
            )
            .prop_map(|parts| {
                let mut b = Vec::new();
                for (pt, words, body) in parts {
                    b.extend_from_slice(&[0x80, pt]);
                    b.extend_from_slice(&words.to_be_bytes());
                    b.extend_from_slice(&body);
                }
                // The SRTCP header needs the sender's SSRC.
                b.resize(b.len().max(8), 0);
                b
            })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(100_000))]

            /// Whatever str0m's outgoing RTCP holds, patching it never panics, and a packet
            /// it cannot read leaves as it came.
            #[test]
            fn patching_arbitrary_bytes_never_panics(
                data in prop::collection::vec(any::<u8>(), 0..200),
                ssrc in any::<u32>(),
            ) {
                let e = egress();
                let now = Instant::now();
                let mut s = Stream::new(ssrc, Mid::from("v"), &exts(), 90_000);
                s.last = Some((7, now));
                let mut d = data.clone();
                e.patch_sender_reports(&mut d, &mut [&mut s], now);
                prop_assert_eq!(d, data);
            }

            /// Arbitrary (often malformed) compound RTCP protected with the right keys:
            /// reports are walked without panics and the packet still opens, as long.
            #[test]
            fn patching_arbitrary_rtcp_never_panics(
                plain in plaintext(),
                index in 0u32..0x7fff_ffff,
                ssrc_from_packet in any::<bool>(),
            ) {
                let e = egress();
                let now = Instant::now();
                let ssrc = if ssrc_from_packet {
                    u32::from_be_bytes(plain[4..8].try_into().unwrap())
                } else {
                    1
                };
                let mut s = Stream::new(ssrc, Mid::from("v"), &exts(), 90_000);
                s.last = Some((7, now));
                let mut d = plain.clone();
                let len = d.len();
                d.resize(len + 64, 0);
                let n = e.srtp.protect_rtcp(&mut d, len, index);
                d.truncate(n);
                e.patch_sender_reports(&mut d, &mut [&mut s], now);
                prop_assert_eq!(d.len(), n);
                let (l, i) = e.srtp.unprotect_rtcp(&mut d, n).unwrap();
                prop_assert_eq!((l, i), (len, index));
            }

            /// NACKs name any sequence number: a resend never panics, and only packets
            /// that went out come back.
            #[test]
            fn resending_any_sequence_number_never_panics(
                sent in 0u64..600,
                first in any::<u16>(),
                asked in prop::collection::vec(any::<u16>(), 1..40),
            ) {
                let now = Instant::now();
                let mut s = Stream::new(0xabcd, Mid::from("v"), &exts(), 90_000);
                s.reserve_history(0);
                let mut recent = Recent::default();
                let payload: Arc<[u8]> = vec![7u8; 100].into();
                let mut seqs = Vec::new();
                for i in 0..sent {
                    let seq = u64::from(first) + i;
                    let mut p = packet(&payload);
                    p.seq = seq;
                    let kept = recent.keep(&p, &payload, now);
                    s.sent(&p, Some(kept), now);
                    seqs.push(seq as u16);
                }
                for seq in asked {
                    if let Some(p) = s.resend(seq, now, &recent) {
                        prop_assert!(seqs.contains(&(p.seq as u16)));
                        prop_assert_eq!(p.seq as u16, seq);
                    }
                }
            }
        }
    }
}
