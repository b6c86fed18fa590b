//! One viewer's downlink estimate (bits/s the path from this server to it carries), from the
//! receiver reports it sends back: loss fraction and round-trip time. Sans-IO and O(1): time
//! is an argument; it must never read a clock, allocate, or touch a socket or an `Rtc`.
//!
//! Why this estimator, not str0m's. str0m 0.25's BWE (`RtcConfig::enable_bwe`,
//! `Event::EgressBitrateEstimate`) is a send-side GCC fed by transport-wide feedback on the
//! packets *str0m* sent: it keeps a send record per packet it wrote. Viewers' media here
//! leaves on the fast path (`egress`), which str0m never sees, so its estimator would need a
//! transport-wide sequence number written into every forwarded packet, a send record kept
//! per packet per viewer (an allocation-free ring, but one more cold write per copy on the
//! hottest loop), and TWCC feedback parsed from every viewer 10–20 times a second: the
//! per-viewer feedback cost the architecture turned off on purpose. What every receiver
//! (Chromium, the `webrtc` crate, str0m, GStreamer) already sends without negotiation is the
//! RFC 3550 receiver report, about once a second for video: its fraction lost, and the round
//! trip against our sender reports (`rtc_glue::on_reports`). That is enough for the decision
//! this server makes (which of three simulcast layers, or none), which is coarse: a layer is
//! a factor of 3–4 in rate, not the 5 % steps a sender's encoder takes.
//!
//! The rules are GCC's loss-based controller (draft-ietf-rmcat-gcc §6) with the delay signal
//! taken from the round trip instead of per-packet arrival deltas:
//! - **Overuse** when a report shows more than 10 % lost, or the smoothed queueing delay (the
//!   RTT above its 30 s minimum) exceeds 100 ms. The estimate then falls at once to the lesser
//!   of `A·(1 − loss/2)` and what reached the viewer (`sent·(1 − loss)`; 85 % of it when the
//!   queue, not loss, said so), at most once per round trip. One report after a link drops is
//!   enough: detected within about a second.
//! - **Silence** (no report for 2.5 s while video flows) counts as an overuse with half lost:
//!   a link that collapsed carries no reports either.
//! - **Underuse** (under 5 % lost and under 50 ms of queueing): the estimate grows by 8 % a
//!   second, but only 2 s after the last decrease, and never beyond 1.5 × what is being sent
//!   plus 150 kbit/s (it cannot know more of a link than it tried). Going further is the
//!   layer policy's trial switch (`adapt.rs`), which raises the estimate to what it tries.
//! - Between the two (5–10 % loss): hold. GCC's own line is 2 %, but a rural line loses 3 % at
//!   random whatever is sent, and with a 2 % line such a link would never count as clean
//!   again after one overuse: the queueing delay is what tells congestion here. Steady
//!   jitter moves the smoothed RTT by tens of milliseconds, well under the 100 ms threshold:
//!   no flapping.
//!
//! Until a first overuse there is no estimate (`None`): a viewer on a clean link gets what it
//! got before estimation existed, and a join is never held back by an estimate still warming
//! up. A REMB the receiver sends (only if it chose to) caps the estimate as well.

use std::time::{Duration, Instant};

/// More lost than this in one report: overuse.
const LOSS_HIGH: f32 = 0.10;
/// Less lost than this: the link may carry more (see the module doc for why not GCC's 2 %).
const LOSS_LOW: f32 = 0.05;
/// Smoothed queueing delay above this: overuse.
const QUEUE_HIGH: Duration = Duration::from_millis(100);
/// Smoothed queueing delay under this (with low loss): the link may carry more.
const QUEUE_LOW: Duration = Duration::from_millis(50);
/// Growth per second while the link carries everything.
const GROWTH_PER_SEC: f64 = 1.08;
/// No growth this long after a decrease.
const HOLD_AFTER_DECREASE: Duration = Duration::from_secs(2);
/// Decreases are at least this far apart (and at least one smoothed round trip).
const MIN_DECREASE_GAP: Duration = Duration::from_millis(300);
/// No report for this long while video flows: the link is treated as collapsed.
const SILENCE: Duration = Duration::from_millis(2500);
/// The round trip's minimum is forgotten after this long (a route that changed).
const MIN_RTT_WINDOW: Duration = Duration::from_secs(30);
/// The estimate never goes below this (audio and a thumbnail must still be tried).
pub(crate) const FLOOR_BPS: f64 = 60_000.0;
/// Growth stops at 1.5 × sent + this: room to find the next layer without a trial.
const GROWTH_HEADROOM_BPS: f64 = 150_000.0;
/// Weight of a new queueing-delay sample in its moving average.
const QUEUE_ALPHA: f64 = 0.4;

/// What one report did to the estimate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Signal {
    /// The link is overused: the estimate fell.
    Overuse,
    /// Between the thresholds: held.
    Hold,
    /// The link carried everything: the estimate may have grown.
    Underuse,
}

/// A viewer's downlink estimate (see the module doc).
#[derive(Debug, Clone)]
pub(crate) struct DownlinkEstimate {
    /// The estimate, once a first overuse set it.
    bps: Option<f64>,
    min_rtt: Option<(Duration, Instant)>,
    /// Smoothed queueing delay (seconds).
    queue: f64,
    last_report: Option<Instant>,
    last_decrease: Option<Instant>,
    last_growth: Option<Instant>,
    /// Since when every report was clean (underuse), if the last one was.
    clean_since: Option<Instant>,
    /// Overuses seen (the policy compares it across a trial).
    overuses: u32,
    remb: Option<f64>,
    /// Until then reports' loss is not counted (see [`DownlinkEstimate::forgive_loss_until`]).
    forgive_loss: Option<Instant>,
}

impl DownlinkEstimate {
    /// Nothing known: no estimate, every layer allowed.
    pub(crate) fn new() -> Self {
        DownlinkEstimate {
            bps: None,
            min_rtt: None,
            queue: 0.0,
            last_report: None,
            last_decrease: None,
            last_growth: None,
            clean_since: None,
            overuses: 0,
            remb: None,
            forgive_loss: None,
        }
    }

    /// Video resumes after a pause: the first report after it counts, as lost, the packets
    /// the congested line dropped before the pause (RFC 3550's "expected" spans the gap), so
    /// loss is not counted until `until` (the queueing delay still is).
    pub(crate) fn forgive_loss_until(&mut self, until: Instant) {
        self.forgive_loss = Some(until);
    }

    /// The estimate (bits/s), `None` while no overuse was ever seen; capped by a REMB.
    pub(crate) fn bps(&self) -> Option<u64> {
        let b = match (self.bps, self.remb) {
            (Some(b), Some(r)) => b.min(r),
            (b, r) => b.or(r)?,
        };
        Some(b.max(FLOOR_BPS) as u64)
    }

    /// How many overuses were seen so far.
    pub(crate) fn overuses(&self) -> u32 {
        self.overuses
    }

    /// How long every report has been clean (zero if the last one was not).
    pub(crate) fn clean_for(&self, now: Instant) -> Duration {
        self.clean_since
            .map_or(Duration::ZERO, |t| now.saturating_duration_since(t))
    }

    /// A receiver report at `now`: the worst fraction lost of its blocks, the round trip if
    /// one was measured, and what the server sent this viewer lately (bits/s).
    pub(crate) fn on_report(
        &mut self,
        now: Instant,
        loss: f32,
        rtt: Option<Duration>,
        sent_bps: f64,
    ) -> Signal {
        self.last_report = Some(now);
        let forgiven = self.forgive_loss.is_some_and(|t| now < t);
        let loss = if loss.is_finite() && !forgiven {
            loss.clamp(0.0, 1.0)
        } else {
            0.0
        };
        if let Some(rtt) = rtt {
            let stale = self.min_rtt.is_none_or(|(m, at)| {
                rtt <= m || now.saturating_duration_since(at) > MIN_RTT_WINDOW
            });
            if stale {
                self.min_rtt = Some((rtt, now));
            }
            let (min, _) = self.min_rtt.unwrap_or((rtt, now));
            let q = rtt.saturating_sub(min).as_secs_f64();
            self.queue += QUEUE_ALPHA * (q - self.queue);
        }
        let queue = Duration::from_secs_f64(self.queue.max(0.0));
        if loss > LOSS_HIGH || queue > QUEUE_HIGH {
            self.overuse(now, loss, sent_bps, loss <= LOSS_HIGH);
            Signal::Overuse
        } else if loss < LOSS_LOW && queue < QUEUE_LOW {
            self.clean_since.get_or_insert(now);
            self.grow(now, sent_bps);
            Signal::Underuse
        } else {
            self.clean_since = None;
            self.last_growth = None;
            Signal::Hold
        }
    }

    /// A REMB from the receiver: its own estimate caps ours.
    pub(crate) fn on_remb(&mut self, bps: f32) {
        if bps.is_finite() && bps > 0.0 {
            self.remb = Some(f64::from(bps));
        }
    }

    /// Called a few times a second: a viewer that stopped reporting while video flows to it
    /// is on a collapsed link.
    pub(crate) fn on_tick(&mut self, now: Instant, video_flowing: bool, sent_bps: f64) {
        let Some(last) = self.last_report else {
            return;
        };
        if video_flowing && now.saturating_duration_since(last) >= SILENCE {
            // Counted as a report, so the next silence is another SILENCE away.
            self.last_report = Some(now);
            self.overuse(now, 0.5, sent_bps, false);
        }
    }

    /// The policy tries more than the estimate allows (a trial switch): the estimate is
    /// raised to what is tried, and the next overuse takes it back down.
    pub(crate) fn raise_to(&mut self, bps: u64) {
        if let Some(b) = self.bps.as_mut() {
            *b = b.max(bps as f64);
        }
    }

    /// A trial switch failed before a report said so (the viewer could not decode): back to
    /// `bps`, the estimate before the trial, counted as an overuse.
    pub(crate) fn fail_trial(&mut self, now: Instant, bps: u64) {
        self.clean_since = None;
        self.last_growth = None;
        self.overuses = self.overuses.wrapping_add(1);
        self.last_decrease = Some(now);
        if let Some(b) = self.bps.as_mut() {
            *b = (bps as f64).max(FLOOR_BPS).min(*b);
        }
    }

    /// `by_delay`: the queue said so, not loss (what got through is then shaded by 15 %).
    fn overuse(&mut self, now: Instant, loss: f32, sent_bps: f64, by_delay: bool) {
        self.clean_since = None;
        self.last_growth = None;
        let gap = MIN_DECREASE_GAP.max(
            self.min_rtt.map_or(Duration::ZERO, |(m, _)| m)
                + Duration::from_secs_f64(self.queue.max(0.0)),
        );
        if self
            .last_decrease
            .is_some_and(|t| now.saturating_duration_since(t) < gap)
        {
            return;
        }
        self.overuses = self.overuses.wrapping_add(1);
        self.last_decrease = Some(now);
        let loss = f64::from(loss);
        let shade = if by_delay { 0.85 } else { 1.0 };
        let delivered = sent_bps.max(0.0) * (1.0 - loss) * shade;
        let before = self.bps.unwrap_or(sent_bps.max(FLOOR_BPS));
        let by_loss = before * (1.0 - loss / 2.0);
        let next = if delivered > 0.0 {
            by_loss.min(delivered)
        } else {
            by_loss
        };
        self.bps = Some(next.max(FLOOR_BPS));
    }

    fn grow(&mut self, now: Instant, sent_bps: f64) {
        let Some(b) = self.bps else {
            return;
        };
        if self
            .last_decrease
            .is_some_and(|t| now.saturating_duration_since(t) < HOLD_AFTER_DECREASE)
        {
            return;
        }
        let Some(since) = self.last_growth.replace(now) else {
            return;
        };
        let dt = now
            .saturating_duration_since(since)
            .min(Duration::from_secs(1))
            .as_secs_f64();
        let ceiling = (sent_bps.max(0.0) * 1.5 + GROWTH_HEADROOM_BPS).max(b);
        self.bps = Some((b * GROWTH_PER_SEC.powf(dt)).min(ceiling));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    /// Reports once a second from `from` for `secs` seconds, as a viewer behind a link of
    /// `capacity` bits/s would send them while the server sends `sent` bits/s: what does not
    /// fit is lost (the relay's queue is short), plus `random_loss`; RTT `rtt` plus
    /// `jitter(i)`.
    fn run(
        e: &mut DownlinkEstimate,
        from: Instant,
        secs: u64,
        sent: impl Fn(&DownlinkEstimate) -> f64,
        capacity: f64,
        random_loss: f32,
        jitter: impl Fn(u64) -> i64,
    ) -> Vec<Signal> {
        (0..secs)
            .map(|i| {
                let now = from + SEC * (i as u32 + 1);
                let s = sent(e);
                let over = if s > capacity {
                    ((s - capacity) / s) as f32
                } else {
                    0.0
                };
                let loss = 1.0 - (1.0 - over) * (1.0 - random_loss);
                let rtt = Duration::from_millis((150 + jitter(i)).max(1) as u64);
                e.on_report(now, loss, Some(rtt), s)
            })
            .collect()
    }

    #[test]
    fn a_clean_link_never_sets_an_estimate() {
        let t0 = Instant::now();
        let mut e = DownlinkEstimate::new();
        let sig = run(
            &mut e,
            t0,
            60,
            |_| 2_600_000.0,
            10e6,
            0.0,
            |i| (i % 3) as i64,
        );
        assert!(sig.iter().all(|s| *s == Signal::Underuse));
        assert_eq!(e.bps(), None, "no estimate: every layer stays allowed");
        assert!(e.clean_for(t0 + SEC * 60) >= SEC * 59);
    }

    #[test]
    fn a_link_that_drops_is_seen_at_the_first_report_and_the_estimate_fits_it() {
        let t0 = Instant::now();
        let mut e = DownlinkEstimate::new();
        run(&mut e, t0, 10, |_| 2_600_000.0, 10e6, 0.0, |_| 0);
        assert_eq!(e.bps(), None);
        // The line drops to 1.2 Mbit/s; the server still sends 2.6 Mbit/s.
        let t1 = t0 + SEC * 10;
        let s = run(&mut e, t1, 1, |_| 2_600_000.0, 1_200_000.0, 0.0, |_| 0);
        assert_eq!(
            s,
            vec![Signal::Overuse],
            "one report, within a second of the drop"
        );
        let b = e.bps().expect("an estimate now") as f64;
        assert!(b <= 1_200_001.0, "{b}: what the link carried, no more");
        assert!(b > 600_000.0, "{b}: not thrown to the floor");
        assert_eq!(e.overuses(), 1);
    }

    #[test]
    fn queueing_delay_alone_is_an_overuse() {
        let t0 = Instant::now();
        let mut e = DownlinkEstimate::new();
        run(&mut e, t0, 5, |_| 1_000_000.0, 10e6, 0.0, |_| 0);
        // No loss, but the round trip grows by 250 ms (a deep buffer filling).
        let s = run(&mut e, t0 + SEC * 5, 3, |_| 1_000_000.0, 10e6, 0.0, |_| 250);
        assert!(s.contains(&Signal::Overuse), "{s:?}");
        assert!(e.bps().is_some());
    }

    #[test]
    fn steady_jitter_and_rural_random_loss_do_not_flap() {
        let t0 = Instant::now();
        let mut e = DownlinkEstimate::new();
        // The rural profile: 3 % random loss, ±30 ms jitter each way, on a link that
        // carries what is sent.
        let jitter = |i: u64| [0i64, 55, -20, 40, -45, 60, 10, -30][(i % 8) as usize];
        let s = run(&mut e, t0, 120, |_| 900_000.0, 1_200_000.0, 0.03, jitter);
        assert!(!s.contains(&Signal::Overuse), "{s:?}");
        assert_eq!(e.bps(), None);
        assert_eq!(e.overuses(), 0);
    }

    #[test]
    fn recovery_grows_slowly_and_only_after_a_hold() {
        let t0 = Instant::now();
        let mut e = DownlinkEstimate::new();
        run(&mut e, t0, 1, |_| 2_600_000.0, 300_000.0, 0.0, |_| 0);
        let low = e.bps().unwrap() as f64;
        assert!(low <= 300_001.0, "{low}");
        // The link is back; the server sends what the estimate allows.
        let t1 = t0 + SEC;
        let mut seen = vec![];
        for i in 0..20u32 {
            let now = t1 + SEC * (i + 1);
            let b = e.bps().unwrap() as f64;
            e.on_report(now, 0.0, Some(Duration::from_millis(150)), b * 0.9);
            seen.push(e.bps().unwrap() as f64);
        }
        // Nothing for the hold, then at most 8 % a second.
        assert_eq!(seen[0], low, "held right after the decrease");
        for w in seen.windows(2) {
            assert!(w[1] <= w[0] * 1.081 + 1.0, "{seen:?}");
            assert!(w[1] >= w[0], "{seen:?}");
        }
        assert!(seen[19] > low * 1.5, "it does recover: {seen:?}");
        // Never beyond what was tried plus headroom.
        assert!(seen[19] <= seen[18] * 0.9 * 1.5 + 150_001.0);
    }

    #[test]
    fn silence_while_video_flows_is_a_collapse() {
        let t0 = Instant::now();
        let mut e = DownlinkEstimate::new();
        run(&mut e, t0, 3, |_| 1_000_000.0, 10e6, 0.0, |_| 0);
        e.on_tick(t0 + SEC * 4, true, 1_000_000.0);
        assert_eq!(e.bps(), None, "a second without a report is normal");
        e.on_tick(t0 + SEC * 6, false, 1_000_000.0);
        assert_eq!(e.bps(), None, "no video, no reports expected");
        e.on_tick(t0 + SEC * 6, true, 1_000_000.0);
        let b = e.bps().expect("collapsed") as f64;
        assert!(b <= 500_000.0, "{b}");
    }

    #[test]
    fn remb_caps_and_decreases_are_one_per_round_trip() {
        let t0 = Instant::now();
        let mut e = DownlinkEstimate::new();
        e.on_remb(500_000.0);
        assert_eq!(e.bps(), Some(500_000));
        e.on_remb(f32::NAN);
        assert_eq!(e.bps(), Some(500_000));
        let mut e = DownlinkEstimate::new();
        e.on_report(t0, 0.3, Some(Duration::from_millis(150)), 2_000_000.0);
        let first = e.bps().unwrap();
        e.on_report(t0 + Duration::from_millis(100), 0.3, None, 2_000_000.0);
        assert_eq!(
            e.bps().unwrap(),
            first,
            "a second report in the same round trip"
        );
        assert_eq!(e.overuses(), 1);
        e.on_report(t0 + SEC, 0.3, None, 1_000_000.0);
        assert!(e.bps().unwrap() < first);
        assert_eq!(e.overuses(), 2);
    }
}
