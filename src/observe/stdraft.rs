//! The automatic S-T draft's decision: from the hub teacher's voice activity (20 ms frames on
//! the lesson timeline, `record::voice`) propose a code at each S-T sample instant — T when the
//! teacher's track carries speech around the instant, S otherwise — and compare a draft with
//! the observer's codes. Pure functions over frames and times (no clock, no file, no
//! database); must never decide from anything but the frames handed in.
//!
//! The sample instants are the ones the coding page prompts at: `k · interval` for
//! k = 1, 2, … up to the recording's end (the first prompt comes one interval in).
//! At an instant the detector's frames in a window around it are counted (speech has short
//! pauses between words and sentences, so one 20 ms frame at the instant would often land in
//! one); missing frames (before the track starts, after it ends, a loss) count as silence.

use serde::Serialize;

use super::st::StCode;
use crate::record::voice::{VoicedFrame, FRAME_MS};

/// How much speech around an instant makes it T.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct DraftRule {
    /// The window is `[instant − half_window_ms, instant + half_window_ms)`.
    pub half_window_ms: u64,
    /// T when at least this many thousandths of the window's frames are voiced.
    pub min_voiced_permille: u32,
}

impl Default for DraftRule {
    fn default() -> Self {
        // Two seconds around the instant, a fifth of it voiced: a sentence going on across
        // the instant (with its pauses) counts, a cough or a single word does not.
        Self {
            half_window_ms: 1_000,
            min_voiced_permille: 200,
        }
    }
}

/// One proposed sample.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct DraftSample {
    /// The instant on the lesson timeline, ms.
    pub at_ms: u64,
    /// `T` or `S`.
    #[schema(value_type = String, pattern = "^[TS]$")]
    #[serde(serialize_with = "letter")]
    pub code: StCode,
    /// Thousandths of the window the teacher's track carried speech.
    pub teacher_voiced: u32,
    /// Thousandths of the window any classroom's track carried speech (shown, not decided on).
    pub class_voiced: u32,
}

fn letter<S: serde::Serializer>(c: &StCode, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_char(c.letter())
}

/// The sample instants of a recording `duration_ms` long at `interval_s`.
pub fn instants(duration_ms: u64, interval_s: u32) -> Vec<u64> {
    let step = u64::from(interval_s.max(1)) * 1_000;
    (1..=duration_ms / step).map(|k| k * step).collect()
}

/// Thousandths of `[from_ms, to_ms)` covered by voiced frames of `frames` (sorted by time); a
/// frame counts when it starts inside the window, and the window's frame count is
/// `(to − from) / FRAME_MS`, so missing frames are silence.
pub fn voiced_permille(frames: &[VoicedFrame], from_ms: u64, to_ms: u64) -> u32 {
    let slots = to_ms.saturating_sub(from_ms) / FRAME_MS;
    if slots == 0 {
        return 0;
    }
    let lo = frames.partition_point(|f| f.at_ms < from_ms);
    let hi = frames.partition_point(|f| f.at_ms < to_ms);
    let voiced = frames[lo..hi.max(lo)].iter().filter(|f| f.voiced).count() as u64;
    // Overlapping frames (a damaged file) can never make more than the whole window.
    (voiced.min(slots) * 1_000 / slots) as u32
}

/// The draft: one sample per instant of a recording `duration_ms` long. `teacher` and each of
/// `classes` must be sorted by time (as `record::voice` returns them).
pub fn draft(
    teacher: &[VoicedFrame],
    classes: &[&[VoicedFrame]],
    duration_ms: u64,
    interval_s: u32,
    rule: DraftRule,
) -> Vec<DraftSample> {
    instants(duration_ms, interval_s)
        .into_iter()
        .map(|at| {
            let from = at.saturating_sub(rule.half_window_ms);
            let to = at.saturating_add(rule.half_window_ms);
            let teacher_voiced = voiced_permille(teacher, from, to);
            let class_voiced = classes
                .iter()
                .map(|c| voiced_permille(c, from, to))
                .max()
                .unwrap_or(0);
            DraftSample {
                at_ms: at,
                code: if teacher_voiced >= rule.min_voiced_permille {
                    StCode::T
                } else {
                    StCode::S
                },
                teacher_voiced,
                class_voiced,
            }
        })
        .collect()
}

/// How a draft and the observer's codes line up, sample by sample (sample i of each is the
/// same instant).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Comparison {
    /// Samples both have.
    pub compared: usize,
    /// Of those, where they give the same code.
    pub agree: usize,
    /// `agree / compared`; `null` when nothing is compared.
    pub agreement: Option<f64>,
    /// The 0-based sample numbers where they differ.
    pub disagree: Vec<usize>,
    /// Samples the draft has beyond the observer's codes.
    pub draft_only: usize,
    /// Samples the observer coded beyond the draft.
    pub observer_only: usize,
}

/// Compares `draft` with `observer`.
pub fn compare(draft: &[StCode], observer: &[StCode]) -> Comparison {
    let compared = draft.len().min(observer.len());
    let disagree: Vec<usize> = (0..compared).filter(|&i| draft[i] != observer[i]).collect();
    let agree = compared - disagree.len();
    Comparison {
        compared,
        agree,
        agreement: (compared > 0).then(|| agree as f64 / compared as f64),
        disagree,
        draft_only: draft.len() - compared,
        observer_only: observer.len() - compared,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Frames every 20 ms from `from` to `to` (ms), voiced where `voiced(t)`.
    fn frames(from: u64, to: u64, voiced: impl Fn(u64) -> bool) -> Vec<VoicedFrame> {
        (from / FRAME_MS..to / FRAME_MS)
            .map(|i| VoicedFrame {
                at_ms: i * FRAME_MS,
                voiced: voiced(i * FRAME_MS),
            })
            .collect()
    }

    #[test]
    fn instants_are_the_prompts() {
        // 30 s interval over 95 s: prompts at 30, 60, 90 s (none at 0, none past the end).
        assert_eq!(instants(95_000, 30), vec![30_000, 60_000, 90_000]);
        assert_eq!(instants(90_000, 30), vec![30_000, 60_000, 90_000]);
        assert_eq!(instants(29_999, 30), Vec::<u64>::new());
        assert_eq!(instants(0, 5), Vec::<u64>::new());
    }

    #[test]
    fn permille_counts_missing_frames_as_silence() {
        // Voiced 0–1000 ms only: the window 0–2000 ms has 100 slots, 50 voiced = 500 ‰.
        let f = frames(0, 1_000, |_| true);
        assert_eq!(voiced_permille(&f, 0, 2_000), 500);
        // 1 000–2 000 ms: no frame at all.
        assert_eq!(voiced_permille(&f, 1_000, 2_000), 0);
        // An empty window.
        assert_eq!(voiced_permille(&f, 500, 500), 0);
        assert_eq!(voiced_permille(&[], 0, 2_000), 0);
    }

    #[test]
    fn a_worked_lesson() {
        // 40 s at 10 s: instants 10, 20, 30, 40 s; windows of ±1 s (100 slots each).
        // The teacher speaks 0–15 s and 33–35 s; at 40 s the track has ended (38 s).
        //  10 s: 9–11 s all voiced, 1000 ‰ → T
        //  20 s: silence → S
        //  30 s: 29–31 s silent → S
        //  40 s: 39–41 s no frames → 0 ‰ → S
        let t = frames(0, 38_000, |t| t < 15_000 || (33_000..35_000).contains(&t));
        // A classroom speaking 18–22 s.
        let c = frames(0, 40_000, |t| (18_000..22_000).contains(&t));
        let d = draft(&t, &[&c], 40_000, 10, DraftRule::default());
        let codes: String = d.iter().map(|s| s.code.letter()).collect();
        assert_eq!(codes, "TSSS");
        assert_eq!(d[0].teacher_voiced, 1000);
        assert_eq!(d[1].class_voiced, 1000);
        assert_eq!(d[3].at_ms, 40_000);
        // At the threshold: 20 voiced frames of 100 (200 ‰) is T, 19 (190 ‰) is S.
        let edge = |n: u64| {
            frames(0, 20_000, move |t| {
                (9_000..9_000 + n * FRAME_MS).contains(&t)
            })
        };
        assert_eq!(
            draft(&edge(20), &[], 10_000, 10, DraftRule::default())[0].code,
            StCode::T
        );
        assert_eq!(
            draft(&edge(19), &[], 10_000, 10, DraftRule::default())[0].code,
            StCode::S
        );
    }

    #[test]
    fn comparison_worked() {
        use StCode::{S, T};
        // Draft TTSS T, observer TSSS: compared 4, agree 3 (sample 1 differs), 0.75.
        let c = compare(&[T, T, S, S, T], &[T, S, S, S]);
        assert_eq!(c.compared, 4);
        assert_eq!(c.agree, 3);
        assert_eq!(c.agreement, Some(0.75));
        assert_eq!(c.disagree, vec![1]);
        assert_eq!((c.draft_only, c.observer_only), (1, 0));
        let none = compare(&[], &[T]);
        assert_eq!(none.agreement, None);
        assert_eq!(none.observer_only, 1);
    }

    fn code() -> impl Strategy<Value = StCode> {
        prop_oneof![Just(StCode::T), Just(StCode::S)]
    }

    proptest! {
        /// Any frames (unsorted, overlapping, far out): one sample per instant, per-mille in
        /// [0, 1000], and T exactly when the teacher's share reaches the rule.
        #[test]
        fn draft_is_bounded_and_follows_the_rule(
            raw in proptest::collection::vec((0u64..200_000, any::<bool>()), 0..400),
            duration in 0u64..200_000,
            interval in 5u32..60,
            half in 0u64..5_000,
            min in 0u32..1_001,
        ) {
            let mut t: Vec<VoicedFrame> = raw.iter().map(|&(at_ms, voiced)| VoicedFrame { at_ms, voiced }).collect();
            t.sort_by_key(|f| f.at_ms);
            let rule = DraftRule { half_window_ms: half, min_voiced_permille: min };
            let d = draft(&t, &[&t], duration, interval, rule);
            prop_assert_eq!(d.len() as u64, duration / (u64::from(interval) * 1_000));
            for s in &d {
                prop_assert!(s.teacher_voiced <= 1_000 && s.class_voiced <= 1_000);
                prop_assert_eq!(s.code == StCode::T, s.teacher_voiced >= min);
            }
        }

        /// More speech never turns a T into an S.
        #[test]
        fn more_speech_is_never_less_teacher(
            voiced in proptest::collection::vec(any::<bool>(), 500),
            extra in proptest::collection::vec(any::<bool>(), 500),
        ) {
            let a: Vec<VoicedFrame> = voiced.iter().enumerate()
                .map(|(i, &v)| VoicedFrame { at_ms: i as u64 * FRAME_MS, voiced: v }).collect();
            let b: Vec<VoicedFrame> = voiced.iter().zip(&extra).enumerate()
                .map(|(i, (&v, &x))| VoicedFrame { at_ms: i as u64 * FRAME_MS, voiced: v || x }).collect();
            let da = draft(&a, &[], 10_000, 5, DraftRule::default());
            let db = draft(&b, &[], 10_000, 5, DraftRule::default());
            for (x, y) in da.iter().zip(&db) {
                prop_assert!(y.teacher_voiced >= x.teacher_voiced);
                prop_assert!(!(x.code == StCode::T && y.code == StCode::S));
            }
        }

        /// The comparison's counts add up and agreement stays in [0, 1].
        #[test]
        fn comparison_adds_up(
            a in proptest::collection::vec(code(), 0..100),
            b in proptest::collection::vec(code(), 0..100),
        ) {
            let c = compare(&a, &b);
            prop_assert_eq!(c.compared + c.draft_only, a.len());
            prop_assert_eq!(c.compared + c.observer_only, b.len());
            prop_assert_eq!(c.agree + c.disagree.len(), c.compared);
            if let Some(x) = c.agreement { prop_assert!((0.0..=1.0).contains(&x)); }
            prop_assert_eq!(compare(&a, &a).disagree.len(), 0);
        }
    }
}
