//! The layer policy for one viewer: given its downlink estimate (`bwe.rs`) and every track
//! it receives, which simulcast layer each video track gets, or whether it is paused. Pure
//! and sans-IO (time is an argument): it must never touch a socket, an `Rtc`, a lane or the
//! track table; the core's glue (`downlink.rs`) builds its input and carries out its answer.
//!
//! Priorities are the classroom's (三个课堂): audio first (always sent, its rate comes off the
//! budget before anything else), then the courseware screen (a slide is what students learn
//! from), then the teacher's camera, then other classrooms. The budget is handed out in two
//! passes: every video track its lowest layer in priority order (a track that does not fit is
//! paused, and so is every track below it: the teacher's face never shows while the slide is
//! paused; a lowest layer is kept while 70 % of it is left, so a spike just under a single
//! layer does not pause it), then upgrades in priority order, each track as high as the rest
//! allows.
//!
//! Down fast, up carefully: a track goes down as soon as the estimate's allocation is below
//! what it gets; it goes up only if the allocation from 87 % of the estimate is above it (a
//! 15 % hysteresis band, so an estimate wobbling at a layer's edge does not flap). Beyond
//! the estimate the policy learns only by trying: after the link has been clean for a while
//! (8 s; 1.5 s to resume a paused track) one track goes one step up (a trial switch), with the
//! estimate raised to what that needs. An overuse within 4 s, or a keyframe request from the
//! viewer (it could not decode: known before the next report), undoes it through the normal
//! down path and doubles the wait before the next trial (up to 120 s; 2.5 s for a resume, so
//! video is back within about 3 s of a link's recovery, at the cost of a short probe every
//! few seconds while it is down); a trial that holds resets the wait. Switches take effect at the new layer's keyframe (`layer::LayerSwitch`,
//! the keyframe gate): this file only says what is wanted.
//!
//! A layer cap (a satellite school gets the lowest layer at most) bounds every video track;
//! an explicit layer the API asked for (`Command::SetLayer`) overrides the policy for that
//! track, whose rate is then counted as it is.

use std::time::{Duration, Instant};

use super::bwe::DownlinkEstimate;

/// Most simulcast layers a track has (browsers send three).
pub(crate) const MAX_LAYERS: usize = 4;
/// A track keeps its lowest layer while the budget left holds this share of it (percent):
/// pausing is for a link that clearly cannot carry video, not for an estimate a random loss
/// spike put just under a single-layer stream.
const PAUSE_BELOW_PCT: i64 = 70;
/// Hysteresis: an upgrade must fit in this share of the estimate (percent).
const UP_SHARE_PCT: u64 = 87;
/// A trial needs the link clean this long (at first; doubled per failed trial).
const TRIAL_BASE: Duration = Duration::from_secs(8);
/// The same for resuming a paused track.
const RESUME_BASE: Duration = Duration::from_millis(1500);
/// The longest wait before resuming a paused track (video back soon after a collapse).
const RESUME_MAX: Duration = Duration::from_millis(2500);
/// The longest wait between trials.
const TRIAL_MAX: Duration = Duration::from_secs(120);
/// An overuse this soon after a trial fails it.
const TRIAL_WINDOW: Duration = Duration::from_secs(4);

/// What a track is to the classroom, most important first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Priority {
    /// Sound: never paused, never dropped for video.
    Audio,
    /// The courseware screen (a teacher's second video m-line).
    Courseware,
    /// The teacher's camera (a teacher's first video m-line).
    TeacherCamera,
    /// Another classroom's camera.
    Other,
}

/// What a video track gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Choice {
    /// The best layer the publisher sends, as without estimation (no estimate yet, no cap).
    Top,
    /// This layer (index into the track's layers).
    Layer(usize),
    /// Nothing: the viewer keeps the audio.
    Paused,
}

/// One of the viewer's tracks as the policy sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TrackView {
    /// What it is.
    pub priority: Priority,
    /// Bits/s of each layer (by the track's layer index; 0: not sending now).
    pub rates: [u64; MAX_LAYERS],
    /// How many layers the track has (at most `MAX_LAYERS` are considered).
    pub layers: usize,
    /// What the viewer gets now (`Layer`, or `Paused`).
    pub current: Choice,
    /// The API chose its layer: left alone, counted at its current rate.
    pub overridden: bool,
}

impl TrackView {
    /// Its active layers' indices, lowest rate first, at most `cap + 1` of them.
    fn ranked(&self, cap: Option<u8>) -> ([usize; MAX_LAYERS], usize) {
        let mut idx = [0usize; MAX_LAYERS];
        let mut n = 0;
        for (i, r) in self
            .rates
            .iter()
            .enumerate()
            .take(self.layers.min(MAX_LAYERS))
        {
            if *r > 0 {
                idx[n] = i;
                n += 1;
            }
        }
        idx[..n].sort_by_key(|i| self.rates[*i]);
        if let Some(c) = cap {
            n = n.min(usize::from(c) + 1);
        }
        (idx, n)
    }

    fn rate(&self, c: Choice) -> u64 {
        match c {
            Choice::Layer(i) => self.rates.get(i).copied().unwrap_or(0),
            Choice::Top => self.rates.iter().copied().max().unwrap_or(0),
            Choice::Paused => 0,
        }
    }

    /// Where `c` stands among the layers: 0 paused, 1 the lowest, …
    fn rank(&self, c: Choice) -> usize {
        let (idx, n) = self.ranked(None);
        match c {
            Choice::Paused => 0,
            Choice::Top => n,
            Choice::Layer(i) => idx[..n].iter().position(|x| *x == i).map_or(1, |p| p + 1),
        }
    }
}

/// Hands out `budget` bits/s over `tracks` (see the module doc), into `out` (one per track).
pub(crate) fn allocate(budget: u64, tracks: &[TrackView], cap: Option<u8>, out: &mut Vec<Choice>) {
    out.clear();
    let mut left = budget as i64;
    let mut order: Vec<usize> = Vec::with_capacity(tracks.len());
    for (i, t) in tracks.iter().enumerate() {
        out.push(t.current);
        if t.priority == Priority::Audio || t.overridden {
            left -= t.rate(t.current).min(i64::MAX as u64) as i64;
        } else if t.ranked(cap).1 > 0 {
            order.push(i);
        }
    }
    // Stable: tracks of one priority keep their order (publish order).
    order.sort_by_key(|i| tracks[*i].priority);
    let mut starved = false;
    for &i in &order {
        let t = &tracks[i];
        let (idx, _) = t.ranked(cap);
        let lowest = t.rates[idx[0]] as i64;
        if !starved && lowest / 100 * PAUSE_BELOW_PCT <= left {
            out[i] = Choice::Layer(idx[0]);
            left -= lowest;
        } else {
            starved = true;
            out[i] = Choice::Paused;
        }
    }
    for &i in &order {
        let t = &tracks[i];
        let Choice::Layer(mut at) = out[i] else {
            continue;
        };
        let (idx, n) = t.ranked(cap);
        for &next in &idx[1..n] {
            let more = t.rates[next] as i64 - t.rates[at] as i64;
            if more > left {
                break;
            }
            left -= more;
            at = next;
        }
        out[i] = Choice::Layer(at);
    }
}

/// One viewer's estimate and the policy's memory (trials, the audio-only state).
#[derive(Debug, Clone)]
pub(crate) struct Adapt {
    /// Its downlink estimate.
    pub est: DownlinkEstimate,
    /// The highest layer rank any video track may get (0: the lowest), from the school's or
    /// classroom's policy.
    pub cap: Option<u8>,
    /// A trial switch: when, the overuse count then, the estimate before it.
    trial: Option<(Instant, u32, u64)>,
    backoff: Duration,
    resume_backoff: Duration,
    audio_only: bool,
    down: Vec<Choice>,
    up: Vec<Choice>,
}

impl Default for Adapt {
    fn default() -> Self {
        Adapt {
            est: DownlinkEstimate::new(),
            cap: None,
            trial: None,
            backoff: TRIAL_BASE,
            resume_backoff: RESUME_BASE,
            audio_only: false,
            down: Vec::new(),
            up: Vec::new(),
        }
    }
}

impl Adapt {
    /// Whether the viewer gets audio only (every video track it could get is paused).
    pub(crate) fn audio_only(&self) -> bool {
        self.audio_only
    }

    /// What each of `tracks` should get now, into `out`; returns the new audio-only state
    /// when it changed (the viewer's page and the teacher are told).
    pub(crate) fn decide(
        &mut self,
        now: Instant,
        tracks: &[TrackView],
        out: &mut Vec<Choice>,
    ) -> Option<bool> {
        out.clear();
        let Some(budget) = self.est.bps() else {
            for t in tracks {
                out.push(match (t.overridden, t.priority, self.cap) {
                    (true, _, _) | (_, Priority::Audio, _) => t.current,
                    (false, _, None) => Choice::Top,
                    (false, _, Some(c)) => {
                        let (idx, n) = t.ranked(Some(c));
                        if n == 0 {
                            t.current
                        } else {
                            Choice::Layer(idx[n - 1])
                        }
                    }
                });
            }
            return self.set_audio_only(tracks, out);
        };
        if let Some((at, overuses, _)) = self.trial {
            if self.est.overuses() != overuses {
                // Failed: the down path below takes it back.
                self.trial = None;
                self.backoff = (self.backoff * 2).min(TRIAL_MAX);
                self.resume_backoff = (self.resume_backoff * 2).min(RESUME_MAX);
            } else if now.saturating_duration_since(at) >= TRIAL_WINDOW {
                self.trial = None;
                self.backoff = TRIAL_BASE;
                self.resume_backoff = RESUME_BASE;
            }
        }
        let mut down = std::mem::take(&mut self.down);
        let mut up = std::mem::take(&mut self.up);
        allocate(budget, tracks, self.cap, &mut down);
        allocate(budget / 100 * UP_SHARE_PCT, tracks, self.cap, &mut up);
        let mut raised = false;
        for (i, t) in tracks.iter().enumerate() {
            let cur = t.rank(t.current);
            let c = if t.overridden || t.priority == Priority::Audio {
                t.current
            } else if t.rank(down[i]) < cur {
                down[i]
            } else if t.rank(up[i]) > cur {
                // Never above the full estimate's allocation: per track, both allocations
                // are greedy by priority, so `up` may give a lower track more than `down`.
                let c = if t.rank(up[i]) <= t.rank(down[i]) {
                    up[i]
                } else {
                    down[i]
                };
                raised |= t.rank(c) > cur;
                c
            } else {
                t.current
            };
            out.push(c);
        }
        if !raised && self.trial.is_none() {
            self.try_one_up(now, tracks, out);
        }
        self.down = down;
        self.up = up;
        self.set_audio_only(tracks, out)
    }

    /// A trial switch: the first track (by priority) that can go one step up does, if the
    /// link has been clean long enough.
    fn try_one_up(&mut self, now: Instant, tracks: &[TrackView], out: &mut [Choice]) {
        let clean = self.est.clean_for(now);
        let mut order: Vec<usize> = (0..tracks.len())
            .filter(|i| !tracks[*i].overridden && tracks[*i].priority != Priority::Audio)
            .collect();
        order.sort_by_key(|i| tracks[*i].priority);
        for i in order {
            let t = &tracks[i];
            let (idx, n) = t.ranked(self.cap);
            let r = t.rank(out[i]);
            if r >= n {
                continue;
            }
            let wait = if out[i] == Choice::Paused {
                self.resume_backoff
            } else {
                self.backoff
            };
            if clean < wait {
                // A lower track must not jump the queue past this one.
                return;
            }
            out[i] = Choice::Layer(idx[r]);
            let need: u64 = tracks.iter().zip(out.iter()).map(|(t, c)| t.rate(*c)).sum();
            let before = self.est.bps().unwrap_or(0);
            if r == 0 {
                // A resume: the next report's loss still counts the pause's drops.
                self.est
                    .forgive_loss_until(now + Duration::from_millis(1500));
            }
            self.est.raise_to(need);
            self.trial = Some((now, self.est.overuses(), before));
            return;
        }
    }

    /// The viewer asked for a keyframe (it could not decode). During a trial switch that is
    /// the trial failing, known before the next report: the estimate goes back to what it
    /// was before the trial, and the next decision undoes the switch.
    pub(crate) fn on_keyframe_request(&mut self, now: Instant) {
        if let Some((at, overuses, before)) = self.trial {
            if now.saturating_duration_since(at) < TRIAL_WINDOW && self.est.overuses() == overuses {
                self.est.fail_trial(now, before);
            }
        }
    }

    fn set_audio_only(&mut self, tracks: &[TrackView], out: &[Choice]) -> Option<bool> {
        let mut video = tracks
            .iter()
            .zip(out)
            .filter(|(t, _)| t.priority != Priority::Audio && !t.overridden)
            .peekable();
        let now_only = video.peek().is_some() && video.all(|(_, c)| *c == Choice::Paused);
        (now_only != self.audio_only).then(|| {
            self.audio_only = now_only;
            now_only
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: Duration = Duration::from_secs(1);
    /// A browser's three simulcast layers (rid order q, h, f) and Opus.
    const SIM: [u64; MAX_LAYERS] = [150_000, 500_000, 1_500_000, 0];

    fn video(priority: Priority, current: Choice) -> TrackView {
        TrackView {
            priority,
            rates: SIM,
            layers: 3,
            current,
            overridden: false,
        }
    }

    fn audio() -> TrackView {
        TrackView {
            priority: Priority::Audio,
            rates: [40_000, 0, 0, 0],
            layers: 1,
            current: Choice::Layer(0),
            overridden: false,
        }
    }

    #[test]
    fn the_budget_goes_to_audio_then_courseware_then_the_teacher_then_others() {
        let tracks = [
            video(Priority::Other, Choice::Layer(2)),
            video(Priority::TeacherCamera, Choice::Layer(2)),
            audio(),
            video(Priority::Courseware, Choice::Layer(2)),
        ];
        let mut out = vec![];
        // Everything fits.
        allocate(10_000_000, &tracks, None, &mut out);
        assert_eq!(out[0], Choice::Layer(2));
        assert_eq!(out[3], Choice::Layer(2));
        // 1.2 Mbit/s: audio, the slide at its best that leaves the rest their lowest...
        allocate(1_200_000, &tracks, None, &mut out);
        assert_eq!(out[2], Choice::Layer(0), "audio untouched");
        assert_eq!(
            out[3],
            Choice::Layer(1),
            "courseware first: 710k left after audio + 3 × 150k"
        );
        assert_eq!(out[1], Choice::Layer(1), "then the teacher: 360k left");
        assert_eq!(out[0], Choice::Layer(0), "others last");
        // 400 kbit/s: the slide and the teacher at their lowest, the other classroom paused.
        allocate(400_000, &tracks, None, &mut out);
        assert_eq!(
            (out[3], out[1], out[0]),
            (Choice::Layer(0), Choice::Layer(0), Choice::Paused)
        );
        // 150 kbit/s: 110k left after audio, over 70 % of the slide's lowest layer: it stays,
        // and nothing else fits.
        allocate(150_000, &tracks, None, &mut out);
        assert_eq!(
            (out[3], out[1], out[0]),
            (Choice::Layer(0), Choice::Paused, Choice::Paused)
        );
        // 100 kbit/s: 60k left, the slide pauses, and so does everything below it.
        allocate(100_000, &tracks, None, &mut out);
        assert_eq!(
            (out[3], out[1], out[0]),
            (Choice::Paused, Choice::Paused, Choice::Paused),
            "nothing below a paused slide"
        );
        // A cap at the lowest layer bounds everything, whatever the budget.
        allocate(10_000_000, &tracks, Some(0), &mut out);
        assert!(out.iter().all(|c| *c == Choice::Layer(0)), "{out:?}");
    }

    #[test]
    fn inactive_layers_are_skipped_and_overrides_are_counted_as_they_are() {
        let mut cam = video(Priority::TeacherCamera, Choice::Layer(0));
        cam.rates[2] = 0; // the top layer stopped (the publisher's uplink)
        let mut slide = video(Priority::Courseware, Choice::Layer(2));
        slide.overridden = true;
        let mut out = vec![];
        allocate(2_300_000, &[slide, cam], None, &mut out);
        assert_eq!(out[0], Choice::Layer(2), "the API's choice stays");
        assert_eq!(
            out[1],
            Choice::Layer(1),
            "800k left, the top is not sending"
        );
    }

    /// A viewer's tracks as they stand after `out` was carried out.
    fn apply(tracks: &mut [TrackView], out: &[Choice]) {
        for (t, c) in tracks.iter_mut().zip(out) {
            t.current = match *c {
                Choice::Top => Choice::Layer(2),
                c => c,
            };
        }
    }

    fn report(a: &mut Adapt, now: Instant, loss: f32, sent: f64) {
        a.est
            .on_report(now, loss, Some(Duration::from_millis(150)), sent);
    }

    fn sent(tracks: &[TrackView]) -> f64 {
        tracks.iter().map(|t| t.rate(t.current)).sum::<u64>() as f64
    }

    #[test]
    fn a_drop_takes_layers_down_at_once_and_recovery_comes_by_trials() {
        let t0 = Instant::now();
        let mut a = Adapt::default();
        let mut tracks = [
            audio(),
            video(Priority::TeacherCamera, Choice::Layer(2)),
            video(Priority::Courseware, Choice::Layer(2)),
        ];
        let mut out = vec![];
        // A clean link: no estimate, the best layers.
        for s in 0..5u32 {
            report(&mut a, t0 + SEC * s, 0.0, sent(&tracks));
            assert_eq!(a.decide(t0 + SEC * s, &tracks, &mut out), None);
            assert_eq!(out[1], Choice::Top);
            apply(&mut tracks, &out);
        }
        // The line drops to 1.2 Mbit/s (3.04 Mbit/s sent): the next report is an overuse,
        // the next decision (250 ms later at most) goes down.
        let t1 = t0 + SEC * 5;
        let s = sent(&tracks);
        report(&mut a, t1, ((s - 1_200_000.0) / s) as f32, s);
        a.decide(t1, &tracks, &mut out);
        apply(&mut tracks, &out);
        let after = sent(&tracks);
        assert!(
            after <= 1_200_000.0,
            "{after}: fits the link at once ({out:?})"
        );
        assert!(tracks[2].rank(tracks[2].current) >= tracks[1].rank(tracks[1].current));
        // The link carries that cleanly for a minute: at most one step per trial, and the
        // trials that overflow the line are undone and spaced further apart.
        let mut switches = 0;
        let mut last = out.clone();
        for q in 1..240u32 {
            let now = t1 + Duration::from_millis(250) * q;
            if q % 4 == 0 {
                let s = sent(&tracks);
                let loss = if s > 1_200_000.0 {
                    ((s - 1_200_000.0) / s) as f32
                } else {
                    0.0
                };
                report(&mut a, now, loss, s);
            }
            a.decide(now, &tracks, &mut out);
            apply(&mut tracks, &out);
            if out != last {
                switches += 1;
                last = out.clone();
            }
            assert!(!a.audio_only());
        }
        // Trials after 8 s clean, then 16, 32 after failures (each an up and a down).
        assert!(switches <= 8, "{switches} switches in a minute: flapping");
    }

    #[test]
    fn below_the_lowest_layer_video_pauses_and_resumes_when_the_link_allows() {
        let t0 = Instant::now();
        let mut a = Adapt::default();
        let mut tracks = [audio(), video(Priority::TeacherCamera, Choice::Layer(2))];
        let mut out = vec![];
        report(&mut a, t0, 0.0, 1_540_000.0);
        a.decide(t0, &tracks, &mut out);
        apply(&mut tracks, &out);
        // Collapse to 100 kbit/s for 10 s: a report a second, a decision every 250 ms.
        let tick = Duration::from_millis(250);
        let mut first = None;
        let mut paused = 0;
        let mut t = t0;
        for q in 1..=40u32 {
            t = t0 + tick * q;
            if q % 4 == 0 {
                let x = sent(&tracks);
                let loss = if x > 100_000.0 {
                    ((x - 100_000.0) / x) as f32
                } else {
                    0.0
                };
                report(&mut a, t, loss, x);
            }
            if let Some(on) = a.decide(t, &tracks, &mut out) {
                first.get_or_insert((q, on));
            }
            apply(&mut tracks, &out);
            assert_eq!(tracks[0].current, Choice::Layer(0), "audio never stops");
            if tracks[1].current == Choice::Paused {
                paused += 1;
            }
        }
        assert_eq!(first, Some((4, true)), "audio only at the first report");
        // A resume probe lasts until the second report after it (the first one's loss is
        // forgiven: it still counts the drops before the pause).
        assert!(
            paused >= 22,
            "paused {paused} of 40 ticks: the probes stay short"
        );
        // The link comes back: video flows again (lowest layer first) within 3 s.
        let mut back = None;
        for q in 1..40u32 {
            let now = t + tick * q;
            if q % 4 == 0 {
                report(&mut a, now, 0.0, sent(&tracks));
            }
            a.decide(now, &tracks, &mut out);
            if tracks[1].current == Choice::Paused && out[1] != Choice::Paused {
                assert_eq!(out[1], Choice::Layer(0), "the lowest layer first");
            }
            apply(&mut tracks, &out);
            if tracks[1].current != Choice::Paused {
                back.get_or_insert(now - t);
            }
        }
        let back = back.expect("video resumed");
        // Within the resume wait (at most 2.5 s of clean reports) and a report's spacing.
        assert!(back <= Duration::from_secs(4), "{back:?}");
        assert!(!a.audio_only());
    }

    #[test]
    fn a_viewer_that_cannot_decode_a_trial_fails_it_before_the_next_report() {
        let t0 = Instant::now();
        let mut a = Adapt::default();
        let mut tracks = [audio(), video(Priority::TeacherCamera, Choice::Layer(2))];
        let mut out = vec![];
        // Overuse at 1.2 Mbit/s: the middle layer.
        report(&mut a, t0, 0.3, 1_540_000.0);
        a.decide(t0, &tracks, &mut out);
        apply(&mut tracks, &out);
        assert_eq!(tracks[1].current, Choice::Layer(1));
        let before = a.est.bps().unwrap();
        // Clean reports until the trial.
        let mut trial_at = None;
        for s in 1..=12u32 {
            let now = t0 + SEC * s;
            report(&mut a, now, 0.0, sent(&tracks));
            a.decide(now, &tracks, &mut out);
            apply(&mut tracks, &out);
            if tracks[1].current == Choice::Layer(2) {
                trial_at = Some(now);
                break;
            }
        }
        let trial_at = trial_at.expect("a trial after the link was clean a while");
        assert!(trial_at >= t0 + SEC * 8, "not before 8 s clean");
        // The viewer asks for a keyframe 300 ms in: the trial is over.
        let t = trial_at + Duration::from_millis(300);
        a.on_keyframe_request(t);
        a.decide(t, &tracks, &mut out);
        apply(&mut tracks, &out);
        assert_eq!(tracks[1].current, Choice::Layer(1), "back at once");
        assert!(a.est.bps().unwrap() <= before.max(a.est.bps().unwrap()));
        // And no new trial for twice as long.
        for q in 1..=60u32 {
            let now = t + Duration::from_millis(250) * q;
            if q % 4 == 0 {
                report(&mut a, now, 0.0, sent(&tracks));
            }
            a.decide(now, &tracks, &mut out);
            apply(&mut tracks, &out);
            assert_eq!(tracks[1].current, Choice::Layer(1), "{q}: backing off");
        }
    }

    #[test]
    fn no_estimate_means_the_best_layer_or_the_cap() {
        let t0 = Instant::now();
        let mut a = Adapt::default();
        let mut slide = video(Priority::Courseware, Choice::Layer(0));
        let tracks = [audio(), slide];
        let mut out = vec![];
        a.decide(t0, &tracks, &mut out);
        assert_eq!(out, vec![Choice::Layer(0), Choice::Top]);
        a.cap = Some(0);
        a.decide(t0, &tracks, &mut out);
        assert_eq!(out[1], Choice::Layer(0));
        a.cap = Some(1);
        slide.rates = [400_000, 100_000, 900_000, 0]; // rid order need not be rate order
        a.decide(t0, &[audio(), slide], &mut out);
        assert_eq!(out[1], Choice::Layer(0), "the second lowest by rate");
        slide.overridden = true;
        a.decide(t0, &[audio(), slide], &mut out);
        assert_eq!(out[1], Choice::Layer(0), "an override stays what it is");
    }
}
