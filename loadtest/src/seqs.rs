//! Which RTP sequence numbers arrived, per SSRC, in bounded memory: tells how many are still
//! missing after retransmissions had their chance (late and duplicate arrivals included).

use std::collections::HashMap;

/// Sequence numbers remembered below the highest one seen, per SSRC (2 KiB of bits each):
/// at a few hundred packets a second, a repair arriving up to a minute late still counts.
pub const WINDOW: u64 = 1 << 14;

/// Arrival bitmap of one SSRC's recent (extended, 64-bit) sequence numbers.
#[derive(Debug, Clone)]
struct Window {
    lowest: u64,
    highest: u64,
    bits: Vec<u64>,
}

impl Window {
    fn new(seq: u64) -> Self {
        let mut w = Window {
            lowest: seq,
            highest: seq,
            bits: vec![0; (WINDOW / 64) as usize],
        };
        w.set(seq);
        w
    }

    fn slot(seq: u64) -> (usize, u64) {
        let i = seq % WINDOW;
        ((i / 64) as usize, 1 << (i % 64))
    }

    fn set(&mut self, seq: u64) -> bool {
        let (word, bit) = Self::slot(seq);
        let fresh = self.bits[word] & bit == 0;
        self.bits[word] |= bit;
        fresh
    }

    /// Marks `seq`; returns (first arrival, growth of lowest..=highest).
    fn insert(&mut self, seq: u64) -> (bool, u64) {
        if seq > self.highest {
            // Forget the numbers that slide out of the window: their slots are the new ones.
            if seq - self.highest >= WINDOW {
                self.bits.iter_mut().for_each(|w| *w = 0);
            } else {
                for s in self.highest + 1..seq {
                    let (word, bit) = Self::slot(s);
                    self.bits[word] &= !bit;
                }
                let (word, bit) = Self::slot(seq);
                self.bits[word] &= !bit;
            }
            let growth = seq - self.highest;
            self.highest = seq;
            self.set(seq);
            return (true, growth);
        }
        if seq + WINDOW <= self.highest {
            // Too old to tell a repair from a duplicate: ignored.
            return (false, 0);
        }
        let mut growth = 0;
        if seq < self.lowest {
            growth = self.lowest - seq;
            self.lowest = seq;
        }
        (self.set(seq), growth)
    }
}

/// Distinct sequence numbers received and the range they span, over all SSRCs.
#[derive(Debug, Clone, Default)]
pub struct SeqTracker {
    windows: HashMap<u32, Window>,
    distinct: u64,
    span: u64,
}

impl SeqTracker {
    /// Records the arrival of `seq` on `ssrc`; returns whether it was the first arrival.
    pub fn insert(&mut self, ssrc: u32, seq: u64) -> bool {
        let (fresh, growth) = match self.windows.get_mut(&ssrc) {
            Some(w) => w.insert(seq),
            None => {
                self.windows.insert(ssrc, Window::new(seq));
                (true, 1)
            }
        };
        self.span += growth;
        self.distinct += u64::from(fresh);
        fresh
    }

    /// Distinct sequence numbers received.
    pub fn distinct(&self) -> u64 {
        self.distinct
    }

    /// Sequence numbers from the lowest to the highest received, summed over SSRCs: what a
    /// lossless path would have delivered.
    pub fn span(&self) -> u64 {
        self.span
    }

    /// Numbers within the span that never arrived.
    pub fn missing(&self) -> u64 {
        self.span - self.distinct
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_holes_repairs_and_duplicates() {
        let mut t = SeqTracker::default();
        for s in [100, 101, 103, 106, 104] {
            assert!(t.insert(1, s));
        }
        assert_eq!((t.distinct(), t.span(), t.missing()), (5, 7, 2));
        assert!(!t.insert(1, 103), "duplicate");
        assert!(t.insert(1, 102), "repair");
        assert!(t.insert(1, 99), "late, before the first");
        assert_eq!((t.distinct(), t.span(), t.missing()), (7, 8, 1));
        // Another SSRC counts on its own.
        t.insert(2, 5);
        t.insert(2, 7);
        assert_eq!((t.distinct(), t.span(), t.missing()), (9, 11, 2));
    }

    #[test]
    fn window_slides_without_forgetting_recent_numbers() {
        let mut t = SeqTracker::default();
        let mut expected_missing = 0;
        for s in 0..5 * WINDOW {
            if s % 10 == 3 {
                expected_missing += 1;
                continue;
            }
            assert!(t.insert(7, s));
        }
        assert_eq!(t.missing(), expected_missing);
        // A repair inside the window fills its hole; one older than the window is ignored.
        let top = 5 * WINDOW - 1;
        let recent = top - 7 - (top - 7) % 10 + 3;
        assert!(t.insert(7, recent));
        assert!(!t.insert(7, 3));
        assert_eq!(t.missing(), expected_missing - 1);
        // Slots reused after the slide are clear: a jump far ahead leaves them empty.
        assert!(t.insert(7, top + 3 * WINDOW));
        assert!(t.insert(7, top + 3 * WINDOW - 1));
        assert_eq!(t.span(), top + 3 * WINDOW + 1);
    }
}
