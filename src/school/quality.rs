//! Link quality of the participants of running lessons, for the teacher's console.
//!
//! Every `school.quality_interval_sec` seconds one task asks every media worker, for each
//! lesson room that has sessions, for the room's peers' latest link figures
//! ([`crate::media::Media::link_stats`]: a room's viewers may be spread over several workers; each keeps
//! what str0m reports once a second), folds them per participant (a classroom may
//! publish and watch: several sessions) into a [`LinkSummary`] with a [`Grade`], keeps the
//! result in the lesson's live state (`links` in `GET /api/lessons/{id}/live`) and emits a
//! `quality` event `{"links": [...]}` when something meaningful changed (see [`changed`]; at
//! most one per [`MIN_PASSES_BETWEEN_EVENTS`] passes), so the 256 kept events are not flooded
//! with figures that move every second.

use std::collections::{BTreeMap, HashMap};
use std::sync::Weak;
use std::time::Duration;

use serde::Serialize;

use super::SchoolState;
use crate::sfu::LinkStat;

// Grading thresholds, on the worst session of a participant:
//
// - good: loss < 2 % and RTT < 150 ms (interactive lessons feel live, video is clean);
// - poor: loss ≥ 8 % or RTT ≥ 400 ms (frozen or blocky video, talking over each other);
// - fair: everything in between.
//
// A figure str0m has not measured yet (no receiver report or RTT sample so far) counts as
// fine: the grade says what is known to be wrong, and `rtt_ms`/`loss_pct` are then `null`.

/// Loss below this (percent) can be good.
pub(crate) const GOOD_LOSS_PCT: f64 = 2.0;
/// RTT below this (ms) can be good.
pub(crate) const GOOD_RTT_MS: f64 = 150.0;
/// Loss from this (percent) is poor.
pub(crate) const POOR_LOSS_PCT: f64 = 8.0;
/// RTT from this (ms) is poor.
pub(crate) const POOR_RTT_MS: f64 = 400.0;

/// How a participant's link is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Grade {
    /// Loss < 2 % and RTT < 150 ms.
    Good,
    /// Neither good nor poor.
    Fair,
    /// Loss ≥ 8 % or RTT ≥ 400 ms.
    Poor,
}

/// One participant's link, over all its media sessions.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct LinkSummary {
    /// Participant id ("c:12", "t:3").
    pub part: String,
    /// The grade of the worst figures.
    pub grade: Grade,
    /// The highest RTT of its sessions (ms), when one is known.
    pub rtt_ms: Option<f64>,
    /// The highest loss of its sessions (percent), when one is known.
    pub loss_pct: Option<f64>,
    /// Media the server receives from it (its upload), kbit/s.
    pub kbps_in: f64,
    /// Media the server sends it (its download), kbit/s.
    pub kbps_out: f64,
    /// Its open media sessions on the server.
    pub sessions: usize,
    /// The best video its viewer sessions get, as layer rank from the top (0: the top layer
    /// or a video without simulcast, 2: the lowest); `None`: no video reaches it.
    pub video_layer: Option<u8>,
    /// Its video is paused for its link: audio only.
    pub audio_only: bool,
}

/// The grade of a link with these figures (unknown figures count as fine).
pub(crate) fn grade(rtt_ms: Option<f64>, loss_pct: Option<f64>) -> Grade {
    let rtt = rtt_ms.unwrap_or(0.0);
    let loss = loss_pct.unwrap_or(0.0);
    if loss >= POOR_LOSS_PCT || rtt >= POOR_RTT_MS {
        Grade::Poor
    } else if loss < GOOD_LOSS_PCT && rtt < GOOD_RTT_MS {
        Grade::Good
    } else {
        Grade::Fair
    }
}

fn round(v: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (v * f).round() / f
}

fn worst(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// Folds one participant's sessions into its summary.
pub(crate) fn summarize(part: &str, stats: &[&LinkStat]) -> LinkSummary {
    let rtt = stats.iter().fold(None, |w, s| worst(w, s.rtt_ms));
    let loss = stats.iter().fold(None, |w, s| worst(w, s.loss_pct));
    let kbps_in: f64 = stats.iter().map(|s| s.kbps_in).sum();
    let kbps_out: f64 = stats.iter().map(|s| s.kbps_out).sum();
    LinkSummary {
        part: part.to_string(),
        grade: grade(rtt, loss),
        rtt_ms: rtt.map(|v| round(v, 1)),
        loss_pct: loss.map(|v| round(v, 2)),
        kbps_in: round(kbps_in, 1),
        kbps_out: round(kbps_out, 1),
        sessions: stats.len(),
        video_layer: stats.iter().filter_map(|s| s.video_layer).min(),
        audio_only: stats.iter().any(|s| s.audio_only)
            && stats.iter().all(|s| s.video_layer.is_none()),
    }
}

/// One summary per participant of a lesson's peers, ordered by participant id. Peers without
/// a participant (opened with a plain room token) are left out.
pub(crate) fn summarize_all(stats: &[LinkStat]) -> Vec<LinkSummary> {
    let mut by_part: BTreeMap<&str, Vec<&LinkStat>> = BTreeMap::new();
    for s in stats {
        if let Some(p) = s.part.as_deref() {
            by_part.entry(p).or_default().push(s);
        }
    }
    by_part
        .into_iter()
        .map(|(part, ss)| summarize(part, &ss))
        .collect()
}

/// What has to differ for a new `quality` event: who is there and with how many sessions, a
/// grade, whether an RTT is known, whether media flows to and from the server. Figures moving within a grade
/// only update the live state.
fn signature(l: &LinkSummary) -> (&str, Grade, usize, bool, bool, bool) {
    (
        &l.part,
        l.grade,
        l.sessions,
        l.rtt_ms.is_some(),
        l.kbps_in > 0.0,
        l.kbps_out > 0.0,
    )
}

/// Whether `next` is worth an event after `prev` (`None`: nothing sent yet for the lesson;
/// an empty first picture is not).
pub(crate) fn changed(prev: Option<&[LinkSummary]>, next: &[LinkSummary]) -> bool {
    match prev {
        None => !next.is_empty(),
        Some(prev) => {
            prev.len() != next.len()
                || prev
                    .iter()
                    .zip(next)
                    .any(|(a, b)| signature(a) != signature(b))
        }
    }
}

/// How long a pass waits for a worker's answer.
const ASK_TIMEOUT: Duration = Duration::from_secs(2);

/// A lesson gets at most one `quality` event per this many passes: a grade flapping at a
/// threshold costs one event every other pass, not one per pass. A change held back goes out
/// at the next allowed pass if it still stands (the live state is updated every pass anyway).
pub(crate) const MIN_PASSES_BETWEEN_EVENTS: u64 = 2;

/// What the task remembers between passes: the pass count, and per lesson the last
/// summaries sent and the pass they were sent in.
#[derive(Debug, Default)]
pub(crate) struct Tracker {
    pass: u64,
    sent: HashMap<i64, (u64, Vec<LinkSummary>)>,
}

impl Tracker {
    /// Starts a new pass.
    pub(crate) fn begin_pass(&mut self) {
        self.pass += 1;
    }

    /// Whether `links` of `lesson` are worth a `quality` event in this pass (see [`changed`]
    /// and [`MIN_PASSES_BETWEEN_EVENTS`]); if so they are remembered as sent.
    pub(crate) fn decide(&mut self, lesson: i64, links: &[LinkSummary]) -> bool {
        let prev = self.sent.get(&lesson);
        if !changed(prev.map(|(_, l)| l.as_slice()), links) {
            return false;
        }
        if let Some((at, _)) = prev {
            if self.pass < at + MIN_PASSES_BETWEEN_EVENTS {
                return false;
            }
        }
        if links.is_empty() {
            self.sent.remove(&lesson);
        } else {
            self.sent.insert(lesson, (self.pass, links.to_vec()));
        }
        true
    }

    /// Lessons that had participants in the last event sent (to report them leaving).
    fn lessons(&self) -> impl Iterator<Item = i64> + '_ {
        self.sent.keys().copied()
    }
}

/// One pass over the lessons with media sessions (and those that had some last time):
/// asks their workers, updates their live state, emits `quality` events where warranted.
pub(crate) async fn pass(app: &SchoolState, tracker: &mut Tracker) {
    let mut rooms = app.media.lesson_rooms();
    tracker.begin_pass();
    for lesson in tracker.lessons() {
        rooms.entry(lesson).or_default();
    }
    // Ask every worker first, then collect: one slow worker delays the pass once, not per room.
    let mut asked = Vec::new();
    for (lesson, names) in &rooms {
        for room in names {
            for rx in app.media.link_stats(room) {
                asked.push((*lesson, rx));
            }
        }
    }
    let mut stats: BTreeMap<i64, Vec<LinkStat>> = rooms.keys().map(|l| (*l, Vec::new())).collect();
    for (lesson, rx) in asked {
        if let Ok(Ok(s)) = tokio::time::timeout(ASK_TIMEOUT, rx).await {
            stats.entry(lesson).or_default().extend(s);
        }
    }
    let now = app.now();
    for (lesson, s) in stats {
        let mut links = summarize_all(&s);
        // Patrol watchers (巡课) are nobody's business in the lesson.
        links.retain(|l| !super::reports::is_patrol(&l.part));
        let emit = tracker.decide(lesson, &links);
        // The reports' link quality per school (issue 22 item 7) keeps each reported change.
        if emit {
            if let Err(e) = super::reports::keep_grades(&app.store, lesson, &links, now).await {
                tracing::warn!(lesson, "report link grades: {e}");
            }
        }
        app.live.set_links(lesson, links, emit, now);
    }
}

/// Runs until the server state is dropped (returns at once when the interval is 0).
pub(crate) async fn run(state: Weak<SchoolState>) {
    let secs = match state.upgrade() {
        Some(s) => s.config.school.quality_interval_sec,
        None => return,
    };
    if secs == 0 {
        return;
    }
    let mut tick = tokio::time::interval(Duration::from_secs(u64::from(secs)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut tracker = Tracker::default();
    loop {
        tick.tick().await;
        let Some(app) = state.upgrade() else { return };
        pass(&app, &mut tracker).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sfu::PeerKind;

    fn stat(
        part: &str,
        role: PeerKind,
        rtt: Option<f64>,
        loss: Option<f64>,
        kin: f64,
        kout: f64,
    ) -> LinkStat {
        LinkStat {
            session: format!("{part}-{role:?}"),
            part: Some(part.to_string()),
            role,
            rtt_ms: rtt,
            loss_pct: loss,
            kbps_in: kin,
            kbps_out: kout,
            video_layer: None,
            audio_only: false,
        }
    }

    #[test]
    fn grade_thresholds() {
        assert_eq!(grade(Some(20.0), Some(0.0)), Grade::Good);
        assert_eq!(grade(Some(149.9), Some(1.99)), Grade::Good);
        assert_eq!(grade(Some(150.0), Some(0.0)), Grade::Fair);
        assert_eq!(grade(Some(20.0), Some(2.0)), Grade::Fair);
        assert_eq!(grade(Some(399.0), Some(7.9)), Grade::Fair);
        assert_eq!(grade(Some(400.0), Some(0.0)), Grade::Poor);
        assert_eq!(grade(Some(10.0), Some(8.0)), Grade::Poor);
        assert_eq!(grade(None, None), Grade::Good, "unknown counts as fine");
        assert_eq!(grade(None, Some(9.0)), Grade::Poor);
        assert_eq!(grade(Some(500.0), None), Grade::Poor);
    }

    #[test]
    fn a_classroom_that_publishes_and_watches_is_graded_on_its_worst_session() {
        let stats = vec![
            stat("c:5", PeerKind::Publisher, None, Some(0.5), 900.04, 0.0),
            stat(
                "c:5",
                PeerKind::Subscriber,
                Some(180.0),
                Some(1.0),
                2.0,
                1500.0,
            ),
            stat(
                "t:1",
                PeerKind::Publisher,
                Some(12.34),
                Some(0.0),
                2500.0,
                0.0,
            ),
            LinkStat {
                part: None,
                ..stat(
                    "x",
                    PeerKind::Subscriber,
                    Some(900.0),
                    Some(50.0),
                    0.0,
                    10.0,
                )
            },
        ];
        let links = summarize_all(&stats);
        assert_eq!(links.len(), 2, "peers without a participant are left out");
        let c5 = &links[0];
        assert_eq!(c5.part, "c:5");
        assert_eq!(c5.sessions, 2);
        assert_eq!(c5.rtt_ms, Some(180.0));
        assert_eq!(c5.loss_pct, Some(1.0));
        assert_eq!(c5.kbps_in, 902.0);
        assert_eq!(c5.kbps_out, 1500.0);
        assert_eq!(c5.grade, Grade::Fair, "RTT 180 ms is not good");
        let t1 = &links[1];
        assert_eq!(
            (t1.grade, t1.rtt_ms, t1.sessions),
            (Grade::Good, Some(12.3), 1)
        );
        let json = serde_json::to_value(c5).unwrap();
        assert_eq!(json["grade"], "fair");
        assert_eq!(json["part"], "c:5");
        let none = summarize("c:9", &[]);
        assert_eq!(
            (none.grade, none.rtt_ms, none.sessions),
            (Grade::Good, None, 0)
        );
    }

    #[test]
    fn only_meaningful_changes_are_events() {
        let a = summarize_all(&[stat(
            "c:5",
            PeerKind::Publisher,
            Some(20.0),
            Some(0.0),
            800.0,
            0.0,
        )]);
        assert!(changed(None, &a), "the first picture");
        assert!(!changed(None, &[]), "nothing to say");
        let wiggle = summarize_all(&[stat(
            "c:5",
            PeerKind::Publisher,
            Some(35.0),
            Some(1.0),
            750.0,
            0.0,
        )]);
        assert!(!changed(Some(&a), &wiggle), "figures within a grade");
        let worse = summarize_all(&[stat(
            "c:5",
            PeerKind::Publisher,
            Some(35.0),
            Some(3.0),
            750.0,
            0.0,
        )]);
        assert!(changed(Some(&a), &worse), "good → fair");
        let unknown = summarize_all(&[stat(
            "c:5",
            PeerKind::Publisher,
            None,
            Some(0.0),
            800.0,
            0.0,
        )]);
        assert!(changed(Some(&unknown), &a), "an RTT became known");
        let more = summarize_all(&[
            stat(
                "c:5",
                PeerKind::Publisher,
                Some(20.0),
                Some(0.0),
                800.0,
                0.0,
            ),
            stat(
                "c:5",
                PeerKind::Subscriber,
                Some(20.0),
                Some(0.0),
                0.0,
                800.0,
            ),
        ]);
        assert!(changed(Some(&a), &more), "a second session");
        assert!(changed(Some(&a), &[]), "everyone left");
        let silent = summarize_all(&[stat(
            "c:5",
            PeerKind::Publisher,
            Some(20.0),
            Some(0.0),
            0.0,
            0.0,
        )]);
        assert!(changed(Some(&a), &silent), "media stopped");
    }

    #[test]
    fn events_are_spaced_and_held_back_changes_follow() {
        let good = summarize_all(&[stat(
            "c:5",
            PeerKind::Publisher,
            Some(20.0),
            Some(0.0),
            800.0,
            0.0,
        )]);
        let fair = summarize_all(&[stat(
            "c:5",
            PeerKind::Publisher,
            Some(20.0),
            Some(3.0),
            800.0,
            0.0,
        )]);
        let mut t = Tracker::default();
        t.begin_pass();
        assert!(t.decide(1, &good), "first picture");
        assert!(t.decide(2, &fair), "lessons are independent");
        assert!(!t.decide(1, &good), "unchanged");
        t.begin_pass();
        assert!(!t.decide(1, &fair), "too soon after the last event");
        t.begin_pass();
        assert!(t.decide(1, &fair), "the held-back change goes out");
        t.begin_pass();
        t.begin_pass();
        assert!(t.decide(1, &[]), "everyone left");
        assert_eq!(t.lessons().collect::<Vec<_>>(), vec![2]);
        t.begin_pass();
        assert!(t.decide(1, &good), "back: a first picture again");
    }
}
