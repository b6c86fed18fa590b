//! A simulated viewer's frame accounting: which video frames arrived complete, which
//! simulcast layer each one carried (the tag the simulated publisher appends), and the
//! freezes between complete frames. Pure (the arrival time is passed in); it never decodes,
//! never reads a clock and never blocks.
//!
//! A frame is every sequence number after the previous frame's marker packet up to its own
//! marker (the SFU rewrites each viewer's video onto one continuous sequence, so this holds
//! across layer switches and republishes). It is complete once all of them arrived, NACK
//! repairs included, within [`PENDING_AGE`] of its marker. A freeze is a gap of more than
//! [`FREEZE`] between two complete frames.

use std::collections::{BTreeSet, VecDeque};
use std::time::{Duration, Instant};

/// What the simulated publisher appends to every simulcast frame: these bytes, then the
/// layer's index (0 = the highest rid). The SFU never decodes, so the extra bytes cost it
/// nothing but their size; a viewer reads them at the end of a frame's marker packet.
pub const LAYER_TAG: [u8; 3] = *b"CRL";
/// Layers a viewer tells apart (indexes `0..MAX_LAYERS`).
pub const MAX_LAYERS: usize = 4;
/// A gap between complete frames longer than this is a freeze.
pub const FREEZE: Duration = Duration::from_millis(500);
/// A frame still incomplete this long after its marker counts as lost.
pub const PENDING_AGE: Duration = Duration::from_secs(2);

/// Appends the layer tag for layer `layer` to a frame's bytes.
pub fn tag(data: &mut Vec<u8>, layer: usize) {
    data.extend_from_slice(&LAYER_TAG);
    data.push(layer.min(MAX_LAYERS - 1) as u8);
}

/// The layer a frame's marker packet names, if it ends with the tag.
pub fn layer_of(payload: &[u8]) -> Option<usize> {
    let n = payload.len();
    if n < LAYER_TAG.len() + 1 || payload[n - 4..n - 1] != LAYER_TAG {
        return None;
    }
    let layer = usize::from(payload[n - 1]);
    (layer < MAX_LAYERS).then_some(layer)
}

/// A frame that just became complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Complete {
    /// Its layer, if it was tagged.
    pub layer: Option<usize>,
    /// The gap since the previous complete frame, if longer than [`FREEZE`].
    pub freeze: Option<Duration>,
}

#[derive(Debug)]
struct Pending {
    first: u64,
    last: u64,
    layer: Option<usize>,
    marked_at: Instant,
}

/// One video stream's frames (see the module docs).
#[derive(Debug, Default)]
pub struct FrameTracker {
    received: BTreeSet<u64>,
    last_marker: Option<u64>,
    pending: VecDeque<Pending>,
    last_complete: Option<Instant>,
}

impl FrameTracker {
    /// Takes one received packet (`seq` extended to 64 bits); calls `done` for every frame it
    /// completes.
    pub fn on_packet(
        &mut self,
        seq: u64,
        marker: bool,
        layer: Option<usize>,
        now: Instant,
        mut done: impl FnMut(Complete),
    ) {
        if !self.received.insert(seq) {
            return; // a duplicate completes nothing
        }
        if marker && self.last_marker.is_none_or(|m| seq > m) {
            if let Some(m) = self.last_marker {
                self.pending.push_back(Pending {
                    first: m + 1,
                    last: seq,
                    layer,
                    marked_at: now,
                });
            }
            self.last_marker = Some(seq);
        }
        // Only a frame whose range holds `seq` can have been completed by it.
        let mut i = 0;
        while i < self.pending.len() {
            let p = &self.pending[i];
            let holds = p.first <= seq && seq <= p.last;
            let whole = holds
                && self.received.range(p.first..=p.last).count() as u64 == p.last - p.first + 1;
            if whole {
                let p = self.pending.remove(i).expect("index checked");
                let freeze = self
                    .last_complete
                    .map(|t| now.saturating_duration_since(t))
                    .filter(|gap| *gap > FREEZE);
                self.last_complete = Some(self.last_complete.map_or(now, |t| t.max(now)));
                done(Complete {
                    layer: p.layer,
                    freeze,
                });
            } else {
                i += 1;
            }
        }
        while self
            .pending
            .front()
            .is_some_and(|p| now.saturating_duration_since(p.marked_at) > PENDING_AGE)
        {
            self.pending.pop_front();
        }
        // Keep only what an open frame (or the next one) can still need.
        let keep_from = self
            .pending
            .front()
            .map(|p| p.first)
            .or(self.last_marker.map(|m| m + 1))
            .unwrap_or(0);
        if self.received.first().is_some_and(|&f| f < keep_from) {
            self.received = self.received.split_off(&keep_from);
        }
    }

    /// When the last complete frame arrived.
    pub fn last_complete(&self) -> Option<Instant> {
        self.last_complete
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(
        t: &mut FrameTracker,
        seq: u64,
        marker: bool,
        layer: Option<usize>,
        at: Instant,
    ) -> Vec<Complete> {
        let mut out = Vec::new();
        t.on_packet(seq, marker, layer, at, |c| out.push(c));
        out
    }

    #[test]
    fn tags_round_trip_and_untagged_frames_have_no_layer() {
        let mut f = vec![0x10, 0x02, 0x9d];
        tag(&mut f, 2);
        assert_eq!(layer_of(&f), Some(2));
        assert_eq!(layer_of(b"CRL"), None);
        assert_eq!(layer_of(b"xxCRL\x09"), None, "out of range");
        assert_eq!(layer_of(&[1, 2, 3, 4, 5]), None);
    }

    #[test]
    fn frames_complete_when_every_number_is_there_and_repairs_count() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let mut t = FrameTracker::default();
        // The first marker only starts the count.
        assert!(run(&mut t, 10, true, Some(0), ms(0)).is_empty());
        // Frame 11..=13 whole.
        assert!(run(&mut t, 11, false, None, ms(33)).is_empty());
        assert!(run(&mut t, 12, false, None, ms(33)).is_empty());
        let c = run(&mut t, 13, true, Some(1), ms(33));
        assert_eq!(
            c,
            vec![Complete {
                layer: Some(1),
                freeze: None
            }]
        );
        // Frame 14..=16 misses 15 until a resend 700 ms later: complete then, a freeze.
        run(&mut t, 14, false, None, ms(66));
        assert!(run(&mut t, 16, true, Some(1), ms(66)).is_empty());
        let c = run(&mut t, 15, false, None, ms(733));
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].freeze, Some(Duration::from_millis(700)));
        // A duplicate completes nothing.
        assert!(run(&mut t, 15, false, None, ms(740)).is_empty());
        assert_eq!(t.last_complete(), Some(ms(733)));
    }

    #[test]
    fn a_frame_never_repaired_is_dropped_and_memory_stays_bounded() {
        let t0 = Instant::now();
        let mut t = FrameTracker::default();
        run(&mut t, 0, true, None, t0);
        // Frame 1..=3 loses 2 for good; later frames complete around it.
        run(&mut t, 1, false, None, t0);
        run(&mut t, 3, true, None, t0);
        let mut complete = 0;
        for i in 0..300u64 {
            let at = t0 + Duration::from_millis(33 * (i + 1));
            complete += run(&mut t, 4 + i, true, Some(0), at).len();
        }
        assert_eq!(complete, 300);
        assert!(t.pending.is_empty(), "the lost frame aged out");
        assert!(
            t.received.len() < 10,
            "old numbers are forgotten: {}",
            t.received.len()
        );
    }
}
