//! Link reports (issue 19 item 6): per viewer session, what its link carried over time (the
//! time at each simulcast layer rank and audio only, the bytes sent it, loss, round trip and
//! jitter weighted by time), tallied at housekeeping (every 250 ms) and handed out as
//! `SfuEvent::LinkReport` every few seconds and once more when the session ends. Sans-IO:
//! time is an argument. It must never run per packet, allocate per tick, or wait on anything
//! (the event goes through the shell's unbounded channel, as every `SfuEvent` does).

use super::*;

/// How often a viewer's running totals go out (and once more at its end).
pub(crate) const REPORT_EVERY: Duration = Duration::from_secs(5);
/// A gap between two ticks longer than this is not counted (a stalled worker, a test that
/// jumps its clock): the tally counts only time it watched.
const MAX_TICK_GAP: Duration = Duration::from_secs(2);

/// What a viewer received, cumulative since its session started (all integers, so the event
/// compares exactly). Weighted sums are `figure × milliseconds`; divide by the matching
/// `*_known_ms` for the time-weighted mean.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct LinkReport {
    /// Connected time tallied (ms).
    pub ms: u64,
    /// Time with video at the top layer of its track (or a track without simulcast), the
    /// middle one, the lowest one (ms): `[high, middle, low]`.
    pub layer_ms: [u64; 3],
    /// Time with every video paused for the link: audio only (ms).
    pub audio_only_ms: u64,
    /// Media bytes sent to the viewer (from the 1 s rate, integrated over time).
    pub bytes: u64,
    /// Loss the viewer reported, in basis points (1/100 %) × ms.
    pub loss_bp_ms: u64,
    /// Time a loss figure was known (ms).
    pub loss_known_ms: u64,
    /// Round trip (ms) × ms.
    pub rtt_ms_ms: u64,
    /// Time a round trip was known (ms).
    pub rtt_known_ms: u64,
    /// Interarrival jitter the viewer reported (RFC 3550 §6.4.1, in µs) × ms.
    pub jitter_us_ms: u64,
    /// Time a jitter figure was known (ms).
    pub jitter_known_ms: u64,
    /// The latest downlink estimate (bit/s), when the viewer has one (`bwe.rs`).
    pub estimate_bps: Option<u64>,
}

/// What a viewer's link is doing at one tick.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct LinkSample {
    /// Its best unpaused video, as rank from the top (0: the top layer); `None`: no video.
    pub video_rank: Option<usize>,
    /// Every video track it has is paused for the link.
    pub audio_only: bool,
    /// Media rate sent to it (kbit/s).
    pub kbps_out: f32,
    /// Loss it last reported (0..1).
    pub loss: Option<f32>,
    /// Round trip.
    pub rtt: Option<Duration>,
    /// Jitter it last reported (µs).
    pub jitter_us: Option<u32>,
    /// Its downlink estimate (bit/s).
    pub estimate_bps: Option<u64>,
}

/// One viewer's running tally (see the module doc).
#[derive(Debug, Clone, Default)]
pub(crate) struct LinkTally {
    total: LinkReport,
    last_tick: Option<Instant>,
    last_sent: Option<Instant>,
    /// Latest jitter from a receiver report (µs), set by `rtc_glue::on_reports`.
    pub jitter_us: Option<u32>,
    /// Fractional bytes carried between ticks (the rate is in kbit/s).
    bytes_frac: f64,
    /// The state at the last tick (counted again for the tail at the session's end).
    last_sample: LinkSample,
}

impl LinkTally {
    /// Counts the time since the last tick with `s` as the link's state; returns the totals
    /// when they are due to go out ([`REPORT_EVERY`] since the last time).
    pub(crate) fn tick(&mut self, now: Instant, s: &LinkSample) -> Option<LinkReport> {
        let Some(last) = self.last_tick.replace(now) else {
            self.last_sent = Some(now);
            return None;
        };
        self.count(now.saturating_duration_since(last), s);
        self.last_sample = *s;
        self.total.estimate_bps = s.estimate_bps;
        let due = self
            .last_sent
            .is_none_or(|at| now.saturating_duration_since(at) >= REPORT_EVERY);
        if due {
            self.last_sent = Some(now);
            Some(self.total)
        } else {
            None
        }
    }

    /// The session ends at `now`: the time since the last tick is counted as it was then,
    /// and the final totals returned, if any time was counted.
    pub(crate) fn finish(&mut self, now: Instant) -> Option<LinkReport> {
        if let Some(last) = self.last_tick.replace(now) {
            let s = self.last_sample;
            self.count(now.saturating_duration_since(last), &s);
        }
        self.last()
    }

    fn count(&mut self, dt: Duration, s: &LinkSample) {
        if dt <= MAX_TICK_GAP {
            let ms = dt.as_millis() as u64;
            let t = &mut self.total;
            t.ms += ms;
            if s.audio_only {
                t.audio_only_ms += ms;
            } else if let Some(r) = s.video_rank {
                t.layer_ms[r.min(2)] += ms;
            }
            let bytes =
                f64::from(s.kbps_out.max(0.0)) * 1000.0 / 8.0 * dt.as_secs_f64() + self.bytes_frac;
            t.bytes += bytes as u64;
            self.bytes_frac = bytes.fract();
            if let Some(l) = s.loss {
                t.loss_bp_ms += (f64::from(l.clamp(0.0, 1.0)) * 10_000.0).round() as u64 * ms;
                t.loss_known_ms += ms;
            }
            if let Some(r) = s.rtt {
                t.rtt_ms_ms += r.as_millis() as u64 * ms;
                t.rtt_known_ms += ms;
            }
            if let Some(j) = s.jitter_us {
                t.jitter_us_ms += u64::from(j) * ms;
                t.jitter_known_ms += ms;
            }
        }
    }

    /// At the last tick: the best video's layer rank from the top, and whether audio only.
    pub(crate) fn current(&self) -> (Option<u8>, bool) {
        let s = &self.last_sample;
        (s.video_rank.map(|r| r.min(2) as u8), s.audio_only)
    }

    /// The totals so far (the last report, at the session's end), if any time was counted.
    pub(crate) fn last(&self) -> Option<LinkReport> {
        (self.total.ms > 0).then_some(self.total)
    }
}

impl<O: Outside> WorkerCore<O> {
    /// Housekeeping's turn: every connected viewer's link tallied; the totals due go out.
    pub(super) fn tally_links(&mut self, now: Instant) {
        for peer in self.peers.values_mut() {
            if peer.role != PeerKind::Subscriber || !peer.connected {
                continue;
            }
            let mut best: Option<usize> = None;
            let mut has_video = false;
            for slot in &peer.slots {
                if slot.kind != MediaKind::Video {
                    continue;
                }
                let Some(track) = slot.track.and_then(|t| self.tracks.get(&t)) else {
                    continue;
                };
                has_video = true;
                if slot.paused {
                    continue;
                }
                // Rank from the top by rate among the layers now sending: a track without
                // simulcast is at its top.
                let Some(mine) = track.layers.get(slot.switch.layer) else {
                    continue;
                };
                let above = track
                    .layers
                    .iter()
                    .filter(|l| l.active(now) && l.bitrate > mine.bitrate)
                    .count();
                best = Some(best.map_or(above, |b: usize| b.min(above)));
            }
            let sample = LinkSample {
                video_rank: best,
                audio_only: has_video && best.is_none() && peer.adapt.audio_only(),
                kbps_out: peer.link.kbps_out,
                loss: peer.link.loss,
                rtt: peer.link.rtt,
                jitter_us: peer.tally.jitter_us,
                estimate_bps: peer.adapt.est.bps(),
            };
            if let Some(report) = peer.tally.tick(now, &sample) {
                self.io.out.event(SfuEvent::LinkReport {
                    session: peer.session.clone(),
                    part: peer.part.clone(),
                    report,
                    last: false,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn run(t: &mut LinkTally, from: Instant, secs: u64, s: &LinkSample) -> Vec<LinkReport> {
        (1..=secs * 4)
            .filter_map(|i| t.tick(from + ms(i * 250), s))
            .collect()
    }

    #[test]
    fn time_is_shared_out_by_layer_and_audio_only_on_simulated_time() {
        let t0 = Instant::now();
        let mut t = LinkTally::default();
        assert_eq!(
            t.tick(t0, &LinkSample::default()),
            None,
            "the first tick starts it"
        );
        let high = LinkSample {
            video_rank: Some(0),
            kbps_out: 1200.0,
            loss: Some(0.01),
            rtt: Some(ms(40)),
            jitter_us: Some(2_000),
            ..Default::default()
        };
        let low = LinkSample {
            video_rank: Some(2),
            kbps_out: 300.0,
            loss: Some(0.12),
            rtt: Some(ms(240)),
            jitter_us: Some(30_000),
            estimate_bps: Some(350_000),
            ..Default::default()
        };
        let paused = LinkSample {
            audio_only: true,
            kbps_out: 40.0,
            loss: None,
            rtt: Some(ms(400)),
            ..Default::default()
        };
        let mut out = run(&mut t, t0, 10, &high);
        out.extend(run(&mut t, t0 + ms(10_000), 6, &low));
        out.extend(run(&mut t, t0 + ms(16_000), 4, &paused));
        // Every 5 s of simulated time: at 5, 10, 15 and 20 s.
        assert_eq!(out.len(), 4, "{out:?}");
        let r = t.last().unwrap();
        assert_eq!(r, *out.last().unwrap());
        assert_eq!(r.ms, 20_000);
        assert_eq!(r.layer_ms, [10_000, 0, 6_000]);
        assert_eq!(r.audio_only_ms, 4_000);
        // 1200 kbit/s for 10 s, 300 for 6, 40 for 4.
        assert_eq!(r.bytes, 1_500_000 + 225_000 + 20_000);
        // Loss is weighted by the time it was known: (1 % × 10 s + 12 % × 6 s) / 16 s.
        assert_eq!(r.loss_known_ms, 16_000);
        assert_eq!(r.loss_bp_ms, 100 * 10_000 + 1_200 * 6_000);
        assert_eq!(r.rtt_known_ms, 20_000);
        assert_eq!(
            r.rtt_ms_ms / r.rtt_known_ms,
            (40 * 10 + 240 * 6 + 400 * 4) / 20
        );
        assert_eq!(r.jitter_known_ms, 16_000);
        assert_eq!(r.estimate_bps, None, "the latest estimate, not a stale one");
        assert_eq!(out[2].estimate_bps, Some(350_000));
    }

    #[test]
    fn a_stall_is_not_counted_and_a_session_without_time_has_no_report() {
        let t0 = Instant::now();
        let mut t = LinkTally::default();
        assert_eq!(t.last(), None);
        let s = LinkSample {
            video_rank: Some(1),
            ..Default::default()
        };
        t.tick(t0, &s);
        assert_eq!(t.last(), None, "no time counted yet");
        t.tick(t0 + ms(250), &s);
        // The worker stalled for a minute: that minute is nobody's layer.
        t.tick(t0 + ms(60_250), &s);
        t.tick(t0 + ms(60_500), &s);
        let r = t.last().unwrap();
        assert_eq!(r.ms, 500);
        assert_eq!(r.layer_ms, [0, 500, 0]);
        // The session ends 100 ms after the last tick: counted as that tick's state.
        let r = t.finish(t0 + ms(60_600)).unwrap();
        assert_eq!(r.layer_ms, [0, 600, 0]);
    }

    #[test]
    fn no_video_counts_time_but_no_layer() {
        let t0 = Instant::now();
        let mut t = LinkTally::default();
        run(&mut t, t0, 3, &LinkSample::default());
        let r = t.last().unwrap();
        assert_eq!(r.ms, 2_750, "the first tick only starts the count");
        assert_eq!(r.layer_ms, [0, 0, 0]);
        assert_eq!(r.audio_only_ms, 0);
    }
}
