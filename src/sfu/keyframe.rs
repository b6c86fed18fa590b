//! Keyframe request coalescing: at most one PLI per publisher layer per interval.
//!
//! At the bell fifty classrooms join a lesson within seconds; each needs a keyframe, and each
//! browser may also send its own PLIs. Forwarding them all would make the teacher's encoder emit
//! a keyframe storm. The gate lets the first request through, folds the rest of the interval into
//! at most one deferred request, and drops the deferred one if a keyframe arrives meanwhile.
//! Sans-IO: time is an argument; the worker owns the timer.

use std::time::{Duration, Instant};

/// What to do with one keyframe request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Send a PLI upstream now.
    SendNow,
    /// A request is already scheduled; this one is absorbed.
    Coalesced,
    /// Absorbed now; one request will go upstream at the given time unless a keyframe comes first.
    Deferred(Instant),
}

/// The per-layer gate.
#[derive(Debug, Clone)]
pub(crate) struct KeyframeGate {
    interval: Duration,
    last_sent: Option<Instant>,
    pending: bool,
}

impl KeyframeGate {
    /// A gate allowing one request per `interval`.
    pub(crate) fn new(interval: Duration) -> Self {
        KeyframeGate {
            interval,
            last_sent: None,
            pending: false,
        }
    }

    /// A subscriber (or the server, for a new subscriber) wants a keyframe.
    #[must_use]
    pub(crate) fn request(&mut self, now: Instant) -> Decision {
        match self.last_sent {
            Some(last) if now.saturating_duration_since(last) < self.interval => {
                if self.pending {
                    Decision::Coalesced
                } else {
                    self.pending = true;
                    Decision::Deferred(last + self.interval)
                }
            }
            _ => {
                self.last_sent = Some(now);
                self.pending = false;
                Decision::SendNow
            }
        }
    }

    /// Call when the deferred deadline passes; true means send the deferred request now.
    #[must_use]
    pub(crate) fn poll(&mut self, now: Instant) -> bool {
        match (self.pending, self.last_sent) {
            (true, Some(last)) if now >= last + self.interval => {
                self.pending = false;
                self.last_sent = Some(now);
                true
            }
            _ => false,
        }
    }

    /// A keyframe arrived from the publisher: whoever was waiting has it, drop the deferred one.
    pub(crate) fn keyframe_arrived(&mut self) {
        self.pending = false;
    }

    #[cfg(test)]
    /// When the deferred request is due, if any.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        if self.pending {
            self.last_sent.map(|l| l + self.interval)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifty_requests_in_a_second_make_at_most_four_plis() {
        let t0 = Instant::now();
        let mut g = KeyframeGate::new(Duration::from_millis(300));
        let mut sent = 0;
        // 50 requests spread over one second, timer polled every 10 ms.
        let mut next_req = 0;
        for ms in 0..=1000u64 {
            let now = t0 + Duration::from_millis(ms);
            if g.poll(now) {
                sent += 1;
            }
            while next_req < 50 && next_req * 20 <= ms {
                if g.request(now) == Decision::SendNow {
                    sent += 1;
                }
                next_req += 1;
            }
        }
        assert!(sent <= 4, "sent {sent}");
        assert!(
            sent >= 3,
            "every window with requests gets one PLI, sent {sent}"
        );
    }

    #[test]
    fn keyframe_cancels_deferred() {
        let t0 = Instant::now();
        let mut g = KeyframeGate::new(Duration::from_millis(300));
        assert_eq!(g.request(t0), Decision::SendNow);
        let d = g.request(t0 + Duration::from_millis(10));
        assert_eq!(d, Decision::Deferred(t0 + Duration::from_millis(300)));
        assert_eq!(
            g.request(t0 + Duration::from_millis(20)),
            Decision::Coalesced
        );
        g.keyframe_arrived();
        assert_eq!(g.deadline(), None);
        assert!(!g.poll(t0 + Duration::from_millis(400)));
        // After the interval a new request goes straight through.
        assert_eq!(
            g.request(t0 + Duration::from_millis(400)),
            Decision::SendNow
        );
    }

    #[test]
    fn deferred_fires_once_at_deadline() {
        let t0 = Instant::now();
        let mut g = KeyframeGate::new(Duration::from_millis(300));
        assert_eq!(g.request(t0), Decision::SendNow);
        let _ = g.request(t0 + Duration::from_millis(100));
        assert!(!g.poll(t0 + Duration::from_millis(299)));
        assert!(g.poll(t0 + Duration::from_millis(300)));
        assert!(!g.poll(t0 + Duration::from_millis(301)));
    }
}
