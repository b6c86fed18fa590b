//! A cap on what one publisher sends in: media bytes and packets per second (a token bucket
//! each), so one token cannot multiply an unbounded upload by the number of viewers.
//!
//! Sans-IO: time is passed in. On the packet path a packet costs a multiplication, one
//! branch and two subtractions while the buckets hold enough; they are topped up when they
//! run short and
//! by the worker's housekeeping (every 250 ms), so a bucket is never more than one tick
//! (or one refill) behind a continuously refilled one. It never touches a socket or a clock.

use std::time::{Duration, Instant};

/// The allowed rates of one publisher (`media.max_publish_kbps`, `media.max_publish_pps`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublishCap {
    /// Media payload bytes per second.
    pub bytes_per_sec: u64,
    /// RTP packets per second.
    pub packets_per_sec: u64,
}

impl PublishCap {
    /// From the configured kbit/s and packets/s.
    pub fn new(kbps: u64, pps: u64) -> Self {
        PublishCap {
            bytes_per_sec: kbps.saturating_mul(1000) / 8,
            packets_per_sec: pps,
        }
    }
}

/// How much a bucket may hold: one second at the allowed rate (a 1080p keyframe, a few
/// hundred kB, arrives as a burst well within it).
const BURST: Duration = Duration::from_secs(1);

/// The longest gap credited at once (a refill after a long silence fills the bucket anyway).
const MAX_CREDIT_US: u64 = 10_000_000;

/// Tokens are kept in millionths, so a refill credits `rate × µs` exactly (no rounding
/// loss however often it runs).
const SCALE: i64 = 1_000_000;

/// One publisher's two buckets (in millionths of a byte and of a packet).
#[derive(Debug, Clone)]
pub struct TokenBucket {
    cap: PublishCap,
    bytes: i64,
    packets: i64,
    last: Instant,
}

impl TokenBucket {
    /// Full buckets at `now`.
    pub fn new(cap: PublishCap, now: Instant) -> Self {
        TokenBucket {
            cap,
            bytes: Self::burst(cap.bytes_per_sec),
            packets: Self::burst(cap.packets_per_sec),
            last: now,
        }
    }

    fn burst(rate: u64) -> i64 {
        i64::try_from(rate.saturating_mul(BURST.as_secs()))
            .unwrap_or(i64::MAX)
            .saturating_mul(SCALE)
    }

    /// Whether a packet of `len` payload bytes arriving at `now` may pass; takes its
    /// tokens if so. A refused packet takes nothing.
    #[inline]
    pub fn admit(&mut self, len: usize, now: Instant) -> bool {
        // A datagram is at most 64 KiB: no overflow.
        let len = len as i64 * SCALE;
        if self.bytes >= len && self.packets >= SCALE {
            self.bytes -= len;
            self.packets -= SCALE;
            return true;
        }
        self.refill(now);
        if self.bytes >= len && self.packets >= SCALE {
            self.bytes -= len;
            self.packets -= SCALE;
            return true;
        }
        false
    }

    /// Adds what the rates allow since the last refill, up to the burst.
    pub fn refill(&mut self, now: Instant) {
        let us = now.saturating_duration_since(self.last).as_micros();
        let us = u64::try_from(us).unwrap_or(u64::MAX).min(MAX_CREDIT_US);
        if us == 0 {
            return;
        }
        let add = |tokens: i64, rate: u64| {
            // rate × µs is the credit in millionths; saturating keeps absurd configs safe.
            let credit = i64::try_from(rate.saturating_mul(us)).unwrap_or(i64::MAX);
            tokens.saturating_add(credit).min(Self::burst(rate))
        };
        self.bytes = add(self.bytes, self.cap.bytes_per_sec);
        self.packets = add(self.packets, self.cap.packets_per_sec);
        self.last = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Sends `pps` packets of `len` bytes per second for `secs` seconds (housekeeping
    /// refills every 250 ms, as the worker does) and counts what passed.
    fn run(cap: PublishCap, len: usize, pps: u64, secs: u64) -> u64 {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(cap, t0);
        let mut passed = 0;
        let step_us = 1_000_000 / pps;
        let mut next_tick = t0 + ms(250);
        for i in 0..pps * secs {
            let now = t0 + Duration::from_micros(i * step_us);
            if now >= next_tick {
                b.refill(now);
                next_tick = now + ms(250);
            }
            if b.admit(len, now) {
                passed += 1;
            }
        }
        passed
    }

    #[test]
    fn traffic_under_the_cap_always_passes() {
        // 1080p simulcast plus a screen share: ~6 Mbit/s in ~1100-byte packets.
        let cap = PublishCap::new(10_000, 2_500);
        assert_eq!(run(cap, 1100, 700, 10), 7_000);
    }

    #[test]
    fn the_byte_rate_is_held_after_the_first_burst() {
        // 2 Mbit/s allowed; 8 Mbit/s sent for 10 s: the first second's burst, then the rate.
        let cap = PublishCap::new(2_000, 100_000);
        let passed = run(cap, 1000, 1000, 10);
        let bytes = passed * 1000;
        let allowed = 250_000 * 10 + 250_000;
        assert!(bytes <= allowed, "{bytes} > {allowed}");
        assert!(bytes >= allowed * 95 / 100, "{bytes} far below {allowed}");
    }

    #[test]
    fn the_packet_rate_is_held_with_tiny_packets() {
        let cap = PublishCap::new(100_000, 500);
        let passed = run(cap, 10, 5_000, 4);
        assert!(passed <= 500 * 4 + 500, "{passed}");
        assert!(passed >= 500 * 4, "{passed}");
    }

    #[test]
    fn a_refused_packet_takes_nothing_and_silence_refills_to_the_burst_only() {
        let t0 = Instant::now();
        let cap = PublishCap::new(8, 1_000); // 1000 bytes/s
        let mut b = TokenBucket::new(cap, t0);
        assert!(b.admit(1000, t0));
        assert!(!b.admit(1, t0));
        assert!(!b.admit(600, t0 + ms(500)), "500 bytes credited so far");
        assert!(b.admit(500, t0 + ms(500)), "the refusal took nothing");
        // An hour of silence fills the bucket to one second's worth, no more.
        let later = t0 + Duration::from_secs(3600);
        assert!(b.admit(1000, later));
        assert!(!b.admit(1, later));
    }

    #[test]
    fn time_going_backwards_changes_nothing() {
        let t0 = Instant::now() + Duration::from_secs(10);
        let mut b = TokenBucket::new(PublishCap::new(8, 10), t0);
        assert!(b.admit(1000, t0));
        b.refill(t0 - Duration::from_secs(5));
        assert!(!b.admit(1, t0 - Duration::from_secs(5)));
    }
}
