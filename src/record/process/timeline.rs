//! Puts every track's frames on the lesson timeline: the publisher's RTCP sender reports map its
//! RTP clocks to its NTP wall clock (the one truth for audio/video alignment of one publisher),
//! and the smallest arrival-minus-NTP of that publisher's reports maps its wall clock onto the
//! server's capture clock. A track without reports falls back to its packets' arrival times.
//! Pure arithmetic; must never do I/O.

use std::collections::HashMap;

use super::track::{Sr, TrackFrames};

/// How a track's times were found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Basis {
    SenderReports,
    Arrival,
}

/// µs of a 64-bit NTP timestamp (seconds << 32 | fraction).
pub(super) fn ntp_us(ntp: u64) -> i128 {
    let secs = i128::from(ntp >> 32);
    let frac = i128::from(ntp & 0xffff_ffff);
    secs * 1_000_000 + ((frac * 1_000_000) >> 32)
}

/// The offset (server capture µs − publisher NTP µs) per owner: the smallest over all its
/// reports, i.e. the one that travelled fastest.
pub(super) fn owner_offsets<'a>(
    tracks: impl Iterator<Item = (&'a str, &'a TrackFrames)>,
) -> HashMap<String, i128> {
    let mut out: HashMap<String, i128> = HashMap::new();
    for (owner, t) in tracks {
        for sr in &t.srs {
            let off = i128::from(sr.arrival_us) - ntp_us(sr.ntp);
            out.entry(owner.to_string())
                .and_modify(|o| *o = (*o).min(off))
                .or_insert(off);
        }
    }
    out
}

/// Each frame's time on the capture clock (µs), non-decreasing, and how it was found.
pub(super) fn frame_times(
    t: &TrackFrames,
    clock_rate: u32,
    owner_offset: Option<i128>,
) -> (Vec<i64>, Basis) {
    let clock = i128::from(clock_rate.max(1));
    let rtp_us = |ts: i64| i128::from(ts) * 1_000_000 / clock;
    // Reports per segment, in arrival order.
    let mut srs: HashMap<usize, Vec<&Sr>> = HashMap::new();
    for sr in &t.srs {
        srs.entry(sr.segment).or_default().push(sr);
    }
    let sorted: HashMap<usize, bool> = srs
        .iter()
        .map(|(seg, list)| (*seg, list.is_sorted_by_key(|s| s.arrival_us)))
        .collect();
    // Arrival fallback per segment: the least-delayed frame anchors the RTP clock.
    let mut arrival_anchor: HashMap<usize, i128> = HashMap::new();
    for f in &t.frames {
        let off = i128::from(f.arrival_us) - rtp_us(f.rtp_ts);
        arrival_anchor
            .entry(f.segment)
            .and_modify(|o| *o = (*o).min(off))
            .or_insert(off);
    }
    let mut basis = Basis::SenderReports;
    let mut last = i64::MIN;
    let times = t
        .frames
        .iter()
        .map(|f| {
            let t_us = match (srs.get(&f.segment), owner_offset) {
                (Some(list), Some(offset)) => {
                    // The latest report that had arrived with the frame, else the first. A
                    // binary search when the reports are in arrival order (they are, from one
                    // worker's tap): a scan from the end was a pass over an hour's reports
                    // for each early frame.
                    let sr = if sorted.get(&f.segment).copied().unwrap_or(false) {
                        let n = list.partition_point(|s| s.arrival_us <= f.arrival_us);
                        list[n.saturating_sub(1)]
                    } else {
                        list.iter()
                            .rev()
                            .find(|s| s.arrival_us <= f.arrival_us)
                            .copied()
                            .unwrap_or(list[0])
                    };
                    ntp_us(sr.ntp) + rtp_us(f.rtp_ts) - rtp_us(sr.rtp_ts) + offset
                }
                _ => {
                    basis = Basis::Arrival;
                    rtp_us(f.rtp_ts) + arrival_anchor.get(&f.segment).copied().unwrap_or(0)
                }
            };
            let t_us = i64::try_from(t_us).unwrap_or(if t_us < 0 { i64::MIN } else { i64::MAX });
            last = last.max(t_us);
            last
        })
        .collect();
    (times, basis)
}
