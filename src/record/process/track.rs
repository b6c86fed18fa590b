//! One recorded track's RTP packets → frames: orders packets by sequence number (wrap-aware,
//! in a bounded window), finds losses, depacketizes with `rtc-rtp`, marks keyframes, and drops
//! video frames after a loss until the next keyframe so that the file decodes cleanly. Pure:
//! must never do I/O, and never panic on any packet.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use rtc_rtp::codec::{h264::H264Packet, opus::OpusPacket, vp8::Vp8Packet, vp9::Vp9Packet};
use rtc_rtp::packetizer::Depacketizer;
use rtc_shared::marshal::Unmarshal;

use super::codec;
use super::GapCause;
use crate::record::format::{Codec, TrackInfo};

/// How far (in sequence numbers) a packet may arrive behind the newest one and still be put in
/// order; older ones are counted late and left out. 1 024 packets is about 3 s of 2.5 Mbit/s
/// video, far beyond any NACK retransmission that is still useful.
pub(super) const REORDER_WINDOW: u64 = 1024;

/// An assembled frame of one SSRC segment.
#[derive(Debug, Clone)]
pub(super) struct Frame {
    /// The SSRC segment (a publisher that reconnects sends a new SSRC with new clocks).
    pub segment: usize,
    /// Unwrapped RTP timestamp within the segment.
    pub rtp_ts: i64,
    /// Arrival of its first packet, µs since capture time zero.
    pub arrival_us: u64,
    pub data: Vec<u8>,
    pub keyframe: bool,
}

/// A loss: the frames from `next_frame` on (an index into [`TrackFrames::frames`]) follow it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Gap {
    pub next_frame: usize,
    pub lost_packets: u64,
    /// Frames left out after the loss (incomplete, or waiting for a keyframe).
    pub dropped_frames: u64,
    pub cause: GapCause,
    /// For a loss nothing decodable followed: the last packet's arrival, µs.
    pub until_arrival_us: Option<u64>,
}

/// A sender report, its RTP time unwrapped in the segment it belongs to.
#[derive(Debug, Clone, Copy)]
pub(super) struct Sr {
    pub segment: usize,
    pub arrival_us: u64,
    pub ntp: u64,
    pub rtp_ts: i64,
}

/// What one track became.
#[derive(Debug, Default)]
pub(super) struct TrackFrames {
    pub frames: Vec<Frame>,
    pub gaps: Vec<Gap>,
    pub srs: Vec<Sr>,
    /// Frames before the first keyframe (undecodable), left out.
    pub leading_dropped: u64,
    pub malformed_packets: u64,
    pub late_packets: u64,
    pub duplicate_packets: u64,
    pub other_payload_type: u64,
    pub ssrc_changes: u64,
    pub ended: bool,
}

struct Pkt {
    rtp_ts: i64,
    marker: bool,
    payload: Bytes,
    arrival_us: u64,
    /// A `Dropped` record (recorder loss) came just before it.
    recorder_loss: bool,
}

struct Building {
    rtp_ts: i64,
    arrival_us: u64,
    data: Vec<u8>,
    broken: bool,
}

/// One SSRC's packets: the reorder buffer and the frame assembler.
struct Segment {
    ssrc: u32,
    max_seq: Option<u64>,
    ts_ref: Option<i64>,
    /// Everything below this has been handed to the assembler.
    flushed_to: Option<u64>,
    buffer: BTreeMap<u64, Pkt>,
    asm: Assembler,
}

struct Assembler {
    codec: Codec,
    segment: usize,
    depack: Box<dyn Depacketizer>,
    expected: Option<u64>,
    cur: Option<Building>,
    need_key: bool,
    gap: Option<Gap>,
    frames: Vec<Frame>,
    gaps: Vec<(usize, Gap)>,
    leading_dropped: u64,
    last_arrival_us: u64,
}

fn depacketizer(codec: Codec) -> Box<dyn Depacketizer> {
    match codec {
        Codec::Vp8 => Box::<Vp8Packet>::default(),
        Codec::Vp9 => Box::<Vp9Packet>::default(),
        Codec::H264 => {
            // AVCC (length-prefixed) units: what Matroska's V_MPEG4/ISO/AVC carries.
            let mut p = H264Packet::default();
            p.is_avc = true;
            Box::new(p)
        }
        Codec::Opus => Box::new(OpusPacket),
    }
}

impl Assembler {
    fn new(codec: Codec, segment: usize) -> Self {
        Assembler {
            codec,
            segment,
            depack: depacketizer(codec),
            expected: None,
            cur: None,
            need_key: !codec.is_audio(),
            gap: None,
            frames: Vec::new(),
            gaps: Vec::new(),
            leading_dropped: 0,
            last_arrival_us: 0,
        }
    }

    fn loss(&mut self, lost: u64, cause: GapCause) {
        let dropped = u64::from(self.cur.take().is_some());
        let gap = self.gap.get_or_insert(Gap {
            next_frame: 0,
            lost_packets: 0,
            dropped_frames: 0,
            cause,
            until_arrival_us: None,
        });
        gap.lost_packets += lost;
        gap.dropped_frames += dropped;
        if cause == GapCause::Recorder {
            gap.cause = GapCause::Recorder;
        }
        if !self.codec.is_audio() {
            self.need_key = true;
        }
    }

    fn push(&mut self, seq: u64, p: Pkt) {
        if let Some(exp) = self.expected {
            if seq > exp {
                let cause = if p.recorder_loss {
                    GapCause::Recorder
                } else {
                    GapCause::Network
                };
                self.loss(seq - exp, cause);
            }
        }
        self.expected = Some(seq + 1);
        self.last_arrival_us = self.last_arrival_us.max(p.arrival_us);
        if self.cur.as_ref().is_some_and(|c| c.rtp_ts != p.rtp_ts) {
            // A new picture without the marker on the last one: it ended all the same.
            self.finish();
        }
        if self.cur.is_none() {
            // Fresh depacketizer state per frame: a half-received H.264 FU-A must not leak
            // into the next picture.
            self.depack = depacketizer(self.codec);
            let head = self.depack.is_partition_head(&p.payload);
            self.cur = Some(Building {
                rtp_ts: p.rtp_ts,
                arrival_us: p.arrival_us,
                data: Vec::new(),
                broken: !head,
            });
        }
        let sound = self.codec != Codec::H264 || codec::h264_payload_sound(&p.payload);
        let part = if sound {
            self.depack.depacketize(&p.payload).ok()
        } else {
            None
        };
        if let Some(cur) = self.cur.as_mut() {
            match part {
                Some(b) => cur.data.extend_from_slice(&b),
                None => cur.broken = true,
            }
        }
        if self.codec.is_audio() || p.marker {
            self.finish();
        }
    }

    fn finish(&mut self) {
        let Some(b) = self.cur.take() else {
            return;
        };
        if b.broken || b.data.is_empty() {
            // A frame the network (or the sender) damaged without a sequence gap.
            let gap = self.gap.get_or_insert(Gap {
                next_frame: 0,
                lost_packets: 0,
                dropped_frames: 0,
                cause: GapCause::Network,
                until_arrival_us: None,
            });
            gap.dropped_frames += 1;
            if !self.codec.is_audio() {
                self.need_key = true;
            }
            return;
        }
        let keyframe = codec::is_keyframe(self.codec, &b.data);
        if self.need_key && !keyframe {
            match self.gap.as_mut() {
                Some(g) => g.dropped_frames += 1,
                None => self.leading_dropped += 1,
            }
            return;
        }
        self.need_key = false;
        if let Some(mut gap) = self.gap.take() {
            gap.next_frame = self.frames.len();
            self.gaps.push((self.frames.len(), gap));
        }
        self.frames.push(Frame {
            segment: self.segment,
            rtp_ts: b.rtp_ts,
            arrival_us: b.arrival_us,
            data: b.data,
            keyframe,
        });
    }
}

/// The sequence number `seq` unwrapped next to `reference` (the closest candidate).
pub(super) fn unwrap_seq(seq: u16, reference: Option<u64>) -> u64 {
    const BASE: u64 = 1 << 20; // room below the first packet for reordered earlier ones
    match reference {
        None => BASE + u64::from(seq),
        Some(r) => {
            let diff = i64::from(seq.wrapping_sub(r as u16) as i16);
            r.saturating_add_signed(diff)
        }
    }
}

pub(super) fn unwrap_ts(ts: u32, reference: Option<i64>) -> i64 {
    match reference {
        None => i64::from(ts),
        Some(r) => r + i64::from(ts.wrapping_sub(r as u32) as i32),
    }
}

/// Builds a track's frames from its records (all of one track, in capture order).
pub(super) struct TrackBuilder {
    info: TrackInfo,
    segments: Vec<Segment>,
    by_ssrc: HashMap<u32, usize>,
    current: Option<usize>,
    pending_srs: Vec<(u64, u64, u32)>,
    recorder_loss: bool,
    out: TrackFrames,
}

impl TrackBuilder {
    pub(super) fn new(info: TrackInfo) -> Self {
        TrackBuilder {
            info,
            segments: Vec::new(),
            by_ssrc: HashMap::new(),
            current: None,
            pending_srs: Vec::new(),
            recorder_loss: false,
            out: TrackFrames::default(),
        }
    }

    pub(super) fn info(&self) -> &TrackInfo {
        &self.info
    }

    pub(super) fn rtp(&mut self, arrival_us: u64, packet: &[u8]) {
        let Ok(p) = rtc_rtp::Packet::unmarshal(&mut &packet[..]) else {
            self.out.malformed_packets += 1;
            return;
        };
        if p.header.payload_type != self.info.payload_type {
            self.out.other_payload_type += 1;
            return;
        }
        if p.payload.is_empty() {
            // Padding-only probes carry no media.
            return;
        }
        let ssrc = p.header.ssrc;
        let created = !self.by_ssrc.contains_key(&ssrc);
        let idx = match self.by_ssrc.get(&ssrc) {
            Some(&i) => i,
            None => {
                let i = self.segments.len();
                if i > 0 {
                    self.out.ssrc_changes += 1;
                }
                self.segments.push(Segment {
                    ssrc,
                    max_seq: None,
                    ts_ref: None,
                    flushed_to: None,
                    buffer: BTreeMap::new(),
                    asm: Assembler::new(self.info.codec, i),
                });
                self.by_ssrc.insert(ssrc, i);
                i
            }
        };
        self.current = Some(idx);
        let recorder_loss = std::mem::take(&mut self.recorder_loss);
        let seg = &mut self.segments[idx];
        debug_assert_eq!(seg.ssrc, ssrc);
        let seq = unwrap_seq(p.header.sequence_number, seg.max_seq);
        let rtp_ts = unwrap_ts(p.header.timestamp, seg.ts_ref);
        if seg.flushed_to.is_some_and(|f| seq < f) {
            self.out.late_packets += 1;
            return;
        }
        if seg.buffer.contains_key(&seq) {
            self.out.duplicate_packets += 1;
            return;
        }
        if seg.max_seq.is_none_or(|m| seq > m) {
            seg.max_seq = Some(seq);
            seg.ts_ref = Some(rtp_ts);
        }
        seg.buffer.insert(
            seq,
            Pkt {
                rtp_ts,
                marker: p.header.marker,
                payload: p.payload,
                arrival_us,
                recorder_loss,
            },
        );
        let max = seg.max_seq.unwrap_or(seq);
        if created && !self.pending_srs.is_empty() {
            let pending = std::mem::take(&mut self.pending_srs);
            for (arrival_us, ntp, rtp_time) in pending {
                match self.attach(idx, arrival_us, ntp, rtp_time) {
                    Some(sr) => self.out.srs.push(sr),
                    None => self.pending_srs.push((arrival_us, ntp, rtp_time)),
                }
            }
        }
        let seg = &mut self.segments[idx];
        while let Some(entry) = seg.buffer.first_entry() {
            if *entry.key() + REORDER_WINDOW > max {
                break;
            }
            let (s, pkt) = entry.remove_entry();
            seg.flushed_to = Some(s + 1);
            seg.asm.push(s, pkt);
        }
    }

    pub(super) fn sender_report(&mut self, arrival_us: u64, ntp: u64, rtp_time: u32) {
        if ntp == 0 {
            return;
        }
        // The report names no SSRC (the capture keeps the track's): it belongs to the segment
        // that was current when it came, unless its RTP time is far from that segment's clock,
        // which is a report of a new SSRC whose first packet is still to come.
        match self
            .current
            .and_then(|i| self.attach(i, arrival_us, ntp, rtp_time))
        {
            Some(sr) => self.out.srs.push(sr),
            None => {
                // Bounded: only the latest few wait for a segment to come.
                if self.pending_srs.len() >= 8 {
                    self.pending_srs.remove(0);
                }
                self.pending_srs.push((arrival_us, ntp, rtp_time));
            }
        }
    }

    /// The report as one of segment `i`'s, if its RTP time is plausible there (within a
    /// minute of the segment's newest packet).
    fn attach(&self, i: usize, arrival_us: u64, ntp: u64, rtp_time: u32) -> Option<Sr> {
        let seg = &self.segments[i];
        let reference = seg.ts_ref?;
        let rtp_ts = unwrap_ts(rtp_time, Some(reference));
        let limit = 60 * i64::from(self.info.clock_rate.max(1));
        ((rtp_ts - reference).abs() <= limit).then_some(Sr {
            segment: i,
            arrival_us,
            ntp,
            rtp_ts,
        })
    }

    pub(super) fn dropped(&mut self) {
        self.recorder_loss = true;
    }

    pub(super) fn end(&mut self) {
        self.out.ended = true;
    }

    /// Flushes every buffer and returns the frames of all segments, segment after segment.
    pub(super) fn finish(mut self) -> TrackFrames {
        let mut out = std::mem::take(&mut self.out);
        for seg in &mut self.segments {
            let buffer = std::mem::take(&mut seg.buffer);
            for (s, pkt) in buffer {
                seg.asm.push(s, pkt);
            }
            // A last picture without its marker is incomplete: left out, and a loss nothing
            // decodable followed lasts to the segment's last packet.
            if seg.asm.cur.take().is_some() && !self.info.codec.is_audio() {
                if let Some(g) = seg.asm.gap.as_mut() {
                    g.dropped_frames += 1;
                }
            }
            if let Some(mut g) = seg.asm.gap.take() {
                g.until_arrival_us = Some(seg.asm.last_arrival_us);
                seg.asm.gaps.push((seg.asm.frames.len(), g));
            }
            let base = out.frames.len();
            out.leading_dropped += seg.asm.leading_dropped;
            out.gaps.extend(seg.asm.gaps.drain(..).map(|(i, mut g)| {
                g.next_frame = base + i;
                g
            }));
            out.frames.append(&mut seg.asm.frames);
        }
        out
    }
}
