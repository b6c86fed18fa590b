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
pub(crate) const HISTORY: usize = 256;

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
pub(crate) const HISTORY_AGE: Duration = Duration::from_secs(1);

/// Times one packet is resent at most (a NACK repeated after a lost retransmission).
const MAX_RESENDS: u8 = 3;

/// Most RTP padding added to make a packet the size of the run it joins (see
/// [`Egress::seal`]): a frame's first packet is 12–20 bytes longer for its abs-capture-time,
/// packetizers that split frames evenly differ by a byte; anything shorter than this ends
/// the run instead (a frame's last packet, audio).
pub(crate) const MAX_PADDING: usize = 24;

/// Seconds from the NTP epoch (1900) to the Unix epoch.
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

/// The sending half of a subscriber's SRTP session.
#[derive(Debug)]
pub(crate) struct Egress {
    srtp: SrtpTx,
}

impl Egress {
    /// From the keys of a completed DTLS handshake.
    pub(crate) fn new(keys: &Keys) -> Result<Self, SrtpError> {
        Ok(Egress {
            srtp: SrtpTx::new(keys.profile, &keys.material, keys.local_is_client)?,
        })
    }

    /// The size `p` would have sealed without padding: so the worker can make a viewer's
    /// whole share of a frame one size before the first packet of it goes out (see
    /// `WorkerCore::fan_out`).
    pub(crate) fn sealed_len(&self, stream: &Stream, p: &OutPacket<'_>) -> usize {
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
    pub(crate) fn seal(
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
    pub(crate) fn patch_sender_reports(
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
pub(crate) struct OutPacket<'a> {
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
pub(crate) struct Stream {
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
    pub(crate) fn new(ssrc: u32, mid: Mid, exts: &ExtensionMap, clock_rate: u32) -> Self {
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
    pub(crate) fn reserve_history(&mut self, packets: usize) {
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
    pub(crate) fn shrink_history(&mut self) -> bool {
        match self.history.as_mut() {
            Some(h) if h.ring.len() > HISTORY => {
                h.resized(HISTORY);
                true
            }
            _ => false,
        }
    }

    /// Notes a sender report for this stream leaving at `at` with NTP time `ntp`.
    pub(crate) fn report_sent(&mut self, ntp: u64, at: Instant) {
        let lsr = (ntp >> 16) as u32;
        let i = self
            .reports
            .iter()
            .position(|r| r.1.is_none())
            .unwrap_or_else(|| (0..4).min_by_key(|&i| self.reports[i].1).unwrap_or(0));
        self.reports[i] = (lsr, Some(at));
    }

    /// When the sender report a reception report echoes (`lsr`, RFC 3550 §6.4.1) left.
    pub(crate) fn report_sent_at(&self, lsr: u32) -> Option<Instant> {
        self.reports
            .iter()
            .find(|r| r.0 == lsr && r.1.is_some())
            .and_then(|r| r.1)
    }

    /// Notes a packet sent (not a resend): counters, report timing, and, if it may be asked
    /// for again, the history entry that finds it in `kept` (its number in [`Recent`]).
    pub(crate) fn sent(&mut self, p: &OutPacket<'_>, kept: Option<u64>, wallclock: Instant) {
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

    /// Whether packet `seq16` never went on this stream although later ones did: a hole the
    /// server's input left (lost upstream, not yet retransmitted), as opposed to a packet
    /// sent and since aged out of the history (its slot holds a newer one). Video streams
    /// only (the ones with a history); O(1).
    pub(crate) fn never_sent(&self, seq16: u16) -> bool {
        let Some(h) = self.history.as_ref() else {
            return false;
        };
        let e = &h.ring[usize::from(seq16) % h.ring.len()];
        // An empty slot, or one holding an older packet: `seq16` was never pushed there.
        e.kept == 0 || (seq16.wrapping_sub(e.seq as u16) as i16) > 0
    }

    /// The packet with sequence number `seq16`, as it went the first time, if it can still
    /// be resent (still in `recent`, recent enough, not resent too often); counts the
    /// resend.
    pub(crate) fn resend<'a>(
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
pub(crate) struct Recent {
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
    pub(crate) fn keep(&mut self, p: &OutPacket<'_>, payload: &Arc<[u8]>, now: Instant) -> u64 {
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

    #[cfg(test)]
    /// Packets kept now.
    pub(crate) fn len(&self) -> usize {
        self.kept.len()
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
pub(crate) fn is_rtcp(data: &[u8]) -> bool {
    data.len() >= 8 && data[0] >> 6 == 2 && (200..=207).contains(&data[1])
}

/// The NTP form of a wallclock time (RFC 5905: seconds since 1900, 32.32 fixed point).
pub(crate) fn ntp64(t: SystemTime) -> u64 {
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
mod tests;
