//! RTP forwarding state per subscriber track: sequence-number and timestamp rewriting, the
//! keyframe rule for starting or switching a video source, and keyframe detection per codec.
//!
//! A subscriber's outgoing stream must look like one continuous stream even when the source
//! under it changes: a simulcast layer switch, or the teacher's browser reconnecting with new
//! SSRCs. The [`Rewriter`] maps each source's sequence numbers and timestamps onto one output
//! space, starting a new source only where the receiver can decode from (a keyframe for video).
//! Pure logic on simulated time; it never touches sockets or `Rtc`s.

use std::time::Instant;

use str0m::format::{
    detect_av1_keyframe, detect_h264_nalu, detect_vp8_keyframe, detect_vp9_keyframe, Codec,
    PayloadParams,
};
use str0m::media::Pt;

/// Opaque identity of one incoming RTP stream (publisher peer + SSRC).
pub(crate) type SourceId = u64;

/// Builds a [`SourceId`] from a publisher's id and the stream's SSRC.
pub(crate) fn source_id(peer: u64, ssrc: u32) -> SourceId {
    (peer << 32) ^ u64::from(ssrc)
}

/// Whether an RTP payload begins something a decoder can start from.
///
/// For H.264 a packet carrying an SPS counts (browsers send SPS/PPS in a STAP-A just before the
/// IDR; starting at the IDR alone would leave the decoder without parameter sets).
pub(crate) fn starts_keyframe(codec: Codec, payload: &[u8]) -> bool {
    const H264_IDR: u8 = 5;
    const H264_SPS: u8 = 7;
    match codec {
        Codec::Vp8 => detect_vp8_keyframe(payload),
        Codec::Vp9 => detect_vp9_keyframe(payload),
        Codec::H264 => detect_h264_nalu(payload, H264_SPS) || detect_h264_nalu(payload, H264_IDR),
        Codec::Av1 => detect_av1_keyframe(payload),
        _ => false,
    }
}

/// Chooses the subscriber's payload type for a publisher's codec among the subscriber's
/// negotiated `candidates`: same codec and clock rate; for H.264 the same packetization mode
/// and the same profile (profile_idc and constraint flags; the level may differ), for VP9 the
/// same profile. `None` if the subscriber cannot receive this stream.
pub(crate) fn pick_payload_type<'a>(
    publisher: &PayloadParams,
    candidates: impl Iterator<Item = &'a PayloadParams>,
) -> Option<Pt> {
    let want = publisher.spec();
    let fmt = want.format;
    let mut fallback = None;
    for c in candidates {
        let spec = c.spec();
        if spec.codec != want.codec || spec.clock_rate != want.clock_rate {
            continue;
        }
        let exact = match want.codec {
            Codec::H264 => {
                let profile = |p: Option<u32>| p.map(|v| v >> 8);
                spec.format.packetization_mode.unwrap_or(0) == fmt.packetization_mode.unwrap_or(0)
                    && profile(spec.format.profile_level_id) == profile(fmt.profile_level_id)
            }
            Codec::Vp9 => spec.format.profile_id.unwrap_or(0) == fmt.profile_id.unwrap_or(0),
            _ => true,
        };
        if exact {
            return Some(c.pt());
        }
        // H.264 and VP9 profiles are different bitstreams; Opus or VP8 parameters (stereo,
        // FEC, DTX) are ones a receiver adapts to, so any such payload type will do.
        if fallback.is_none() && !matches!(want.codec, Codec::H264 | Codec::Vp9) {
            fallback = Some(c.pt());
        }
    }
    fallback
}

#[derive(Debug, Clone, Copy)]
struct Mapping {
    source: SourceId,
    seq_delta: i64,
    ts_delta: u32,
    first_in_seq: u64,
}

/// Output of [`Rewriter::rewrite`] for a packet that is forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rewritten {
    /// Extended output sequence number.
    pub seq: u64,
    /// Output RTP timestamp.
    pub ts: u32,
    /// True when this packet began a new source (start or switch).
    pub switched: bool,
}

/// Maps packets of changing sources onto one continuous outgoing stream.
#[derive(Debug, Clone)]
pub(crate) struct Rewriter {
    clock_rate: u32,
    current: Option<Mapping>,
    /// Highest output sequence number sent so far.
    last_seq: u64,
    last_ts: u32,
    last_at: Option<Instant>,
}

impl Rewriter {
    /// A rewriter for a stream with `clock_rate` Hz timestamps, whose first output sequence
    /// number will be `first_seq` (keep it below 65536 so no ROC has to be signalled).
    pub(crate) fn new(clock_rate: u32, first_seq: u16) -> Self {
        Rewriter {
            clock_rate: clock_rate.max(1),
            current: None,
            last_seq: u64::from(first_seq).wrapping_sub(1),
            last_ts: 0,
            last_at: None,
        }
    }

    /// The source currently mapped, if any.
    pub(crate) fn current_source(&self) -> Option<SourceId> {
        self.current.map(|m| m.source)
    }

    /// The highest output sequence number sent so far (extended).
    pub(crate) fn last_sent_seq(&self) -> u64 {
        self.last_seq
    }

    /// Forgets the current source (its publisher left); the next source starts seamlessly.
    pub(crate) fn source_gone(&mut self) {
        self.current = None;
    }

    /// Maps one packet. `may_start` says whether the packet can begin a stream (audio: always;
    /// video: the first packet of a keyframe). Returns `None` when the packet must not be
    /// forwarded: a new source's packets before its start point, or stale packets of an old one.
    pub(crate) fn rewrite(
        &mut self,
        source: SourceId,
        in_seq: u64,
        in_ts: u32,
        may_start: bool,
        now: Instant,
    ) -> Option<Rewritten> {
        let mut switched = false;
        let mapping = match self.current {
            Some(m) if m.source == source => {
                if in_seq < m.first_in_seq {
                    // Retransmission or reordering from before the switch point.
                    return None;
                }
                m
            }
            _ => {
                if !may_start {
                    return None;
                }
                let out_first = self.last_seq.wrapping_add(1);
                let out_ts = match self.last_at {
                    Some(at) => {
                        // Advance the timeline by the wall time since the last packet sent, so
                        // the receiver's jitter buffer sees a plausible gap, never a step back.
                        let ticks = (now.saturating_duration_since(at).as_secs_f64()
                            * f64::from(self.clock_rate))
                            as u64;
                        self.last_ts
                            .wrapping_add(ticks.clamp(1, u64::from(u32::MAX)) as u32)
                    }
                    None => in_ts,
                };
                let m = Mapping {
                    source,
                    seq_delta: out_first as i64 - in_seq as i64,
                    ts_delta: out_ts.wrapping_sub(in_ts),
                    first_in_seq: in_seq,
                };
                self.current = Some(m);
                switched = true;
                m
            }
        };
        let seq = (in_seq as i64 + mapping.seq_delta) as u64;
        let ts = in_ts.wrapping_add(mapping.ts_delta);
        if seq > self.last_seq || switched {
            self.last_seq = seq;
            self.last_ts = ts;
            self.last_at = Some(now);
        }
        Some(Rewritten { seq, ts, switched })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn continuous_across_source_switch() {
        let t0 = Instant::now();
        let mut r = Rewriter::new(90_000, 1000);
        let a = source_id(1, 0xaaaa);
        let b = source_id(2, 0xbbbb);
        // Video must start at a keyframe.
        assert_eq!(r.rewrite(a, 50, 3000, false, t0), None);
        let first = r.rewrite(a, 51, 6000, true, t0).unwrap();
        assert_eq!((first.seq, first.ts, first.switched), (1000, 6000, true));
        let mut last = first;
        for i in 1..10u64 {
            last = r
                .rewrite(a, 51 + i, 6000 + 3000 * i as u32, false, t0)
                .unwrap();
        }
        assert_eq!(last.seq, 1009);
        // Publisher reconnects: new SSRC, random seq/ts. Non-keyframes are held back.
        let t1 = t0 + Duration::from_millis(500);
        assert_eq!(r.rewrite(b, 40_000, 123, false, t1), None);
        let sw = r.rewrite(b, 40_001, 3123, true, t1).unwrap();
        assert_eq!(sw.seq, 1010, "sequence continues without a gap");
        assert!(sw.switched);
        // 500 ms at 90 kHz = 45000 ticks after the last timestamp.
        assert_eq!(sw.ts, last.ts + 45_000);
        let next = r.rewrite(b, 40_002, 6123, false, t1).unwrap();
        assert_eq!((next.seq, next.ts), (1011, sw.ts + 3000));
        // Late packets of the old source are dropped.
        assert_eq!(r.rewrite(a, 70, 9999, false, t1), None);
    }

    /// A spotlight that leaves a class and comes back replays that class's cached GOP: once
    /// the source is gone, its packets start after everything already sent, never on
    /// sequence numbers (SRTP indexes) already used.
    #[test]
    fn the_same_source_bound_again_continues_after_the_last_number() {
        let t0 = Instant::now();
        let mut r = Rewriter::new(90_000, 500);
        let a = source_id(1, 0xaaaa);
        for i in 0..10u64 {
            r.rewrite(a, 100 + i, 3000 * i as u32, i == 0, t0).unwrap();
        }
        r.source_gone();
        assert_eq!(r.current_source(), None);
        // The GOP again, from its keyframe at 100.
        let again = r.rewrite(a, 100, 0, true, t0).unwrap();
        assert_eq!(again.seq, 510, "after the ten already sent");
        assert!(again.switched);
        assert_eq!(r.rewrite(a, 101, 3000, false, t0).unwrap().seq, 511);
    }

    #[test]
    fn gaps_are_preserved_and_retransmissions_pass() {
        let t0 = Instant::now();
        let mut r = Rewriter::new(48_000, 10);
        let a = source_id(1, 1);
        r.rewrite(a, 100, 0, true, t0).unwrap();
        let gap = r.rewrite(a, 103, 2880, true, t0).unwrap();
        assert_eq!(
            gap.seq, 13,
            "a loss upstream stays visible so the receiver can NACK"
        );
        let late = r.rewrite(a, 101, 960, true, t0).unwrap();
        assert_eq!(late.seq, 11);
        assert!(!late.switched);
    }

    #[test]
    fn before_switch_point_is_dropped() {
        let t0 = Instant::now();
        let mut r = Rewriter::new(90_000, 0);
        let a = source_id(1, 1);
        r.rewrite(a, 500, 0, true, t0).unwrap();
        assert_eq!(r.rewrite(a, 499, 0, true, t0), None);
    }

    #[test]
    fn sequence_wraps_through_u16() {
        let t0 = Instant::now();
        let mut r = Rewriter::new(90_000, 65_534);
        let a = source_id(1, 1);
        let s: Vec<u64> = (0..4)
            .map(|i| r.rewrite(a, 10 + i, 0, true, t0).unwrap().seq)
            .collect();
        assert_eq!(s, vec![65_534, 65_535, 65_536, 65_537]);
    }

    fn h264(pt: u8, plid: u32, mode: u8) -> PayloadParams {
        use str0m::format::{CodecSpec, FormatParams};
        PayloadParams::new(
            pt.into(),
            None,
            CodecSpec {
                codec: Codec::H264,
                clock_rate: str0m::media::Frequency::NINETY_KHZ,
                channels: None,
                format: FormatParams {
                    packetization_mode: Some(mode),
                    profile_level_id: Some(plid),
                    ..Default::default()
                },
            },
        )
    }

    #[test]
    fn payload_type_follows_h264_profile_and_mode() {
        let sub = [
            h264(127, 0x42001f, 1),
            h264(108, 0x42e01f, 1),
            h264(124, 0x42e01f, 0),
            h264(123, 0x4d001f, 1),
            h264(114, 0x64001f, 1),
        ];
        let pick = |p: PayloadParams| pick_payload_type(&p, sub.iter()).map(|pt| *pt);
        assert_eq!(pick(h264(96, 0x4d0028, 1)), Some(123), "main, other level");
        assert_eq!(pick(h264(96, 0x42e01f, 1)), Some(108));
        assert_eq!(
            pick(h264(96, 0x42e01f, 0)),
            Some(124),
            "packetization mode 0"
        );
        assert_eq!(pick(h264(96, 0x640032, 1)), Some(114));
        assert_eq!(pick(h264(96, 0xf4001f, 1)), None, "no such profile offered");
    }

    #[test]
    fn keyframe_detection() {
        // VP8: S=1, PID=0, no extension; payload header P bit = 0 → keyframe.
        assert!(starts_keyframe(Codec::Vp8, &[0x10, 0x00, 0x00, 0x9d]));
        assert!(!starts_keyframe(Codec::Vp8, &[0x10, 0x01, 0x00, 0x9d]));
        assert!(!starts_keyframe(Codec::Vp8, &[]));
        // H.264: STAP-A (24) holding an SPS (7) then a PPS (8).
        let stap = [24u8, 0, 2, 0x67, 0x42, 0, 2, 0x68, 0xce];
        assert!(starts_keyframe(Codec::H264, &stap));
        // FU-A start of an IDR.
        assert!(starts_keyframe(Codec::H264, &[0x7c, 0x85, 0x88]));
        // FU-A start of a non-IDR slice.
        assert!(!starts_keyframe(Codec::H264, &[0x7c, 0x81, 0x88]));
        assert!(!starts_keyframe(Codec::Opus, &[0xff; 10]));
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(100_000))]

            /// Keyframe detection reads publishers' payloads as they come: any bytes, any
            /// codec, no panic.
            #[test]
            fn keyframe_detection_never_panics(
                codec in prop_oneof![
                    Just(Codec::Vp8), Just(Codec::Vp9), Just(Codec::H264), Just(Codec::Av1),
                    Just(Codec::Opus),
                ],
                payload in prop::collection::vec(any::<u8>(), 0..64),
            ) {
                let _ = starts_keyframe(codec, &payload);
            }
        }
    }
}
