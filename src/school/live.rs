//! What happens in a lesson while it runs: who is in it, raised hands, who may speak (名师课堂),
//! who is on the big screen (同步课堂), and the event stream every participant follows.
//!
//! In memory, per server: the state is rebuilt by the people in the lesson when a server
//! restarts (they rejoin, raise hands again). Events carry a sequence number per lesson, and
//! the last [`KEEP`] are kept, so a page that reconnects with `Last-Event-ID` gets what it
//! missed; one that was gone longer gets a `resync` with the full picture.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Mutex;

use serde::Serialize;
use tokio::sync::broadcast;

use super::quality::LinkSummary;
use crate::time::Millis;

/// How many past events each lesson keeps for reconnecting clients.
pub(crate) const KEEP: usize = 256;

/// One event of a lesson: one server-sent event of `GET /api/lessons/{id}/events` (the SSE
/// `event:` is `kind`, `id:` is `seq`). `data` by kind: joined/left/published/unpublished
/// {part}; hand {classroom, raised}; speak {classroom, granted}; spotlight {classroom}; state
/// {state, lesson}; mute {classroom, muted} (the hub teacher's mute of a site's microphone);
/// processing {recording, lesson, processing, error} (a recording's processing started, is
/// ready or failed); quality {links: [LinkSummary]} (when a participant's link grade changes:
/// good = loss < 2 % and RTT < 150 ms, poor = loss >= 8 % or RTT >= 400 ms, else fair);
/// weak_network {part, audio_only} (a viewer's video paused for its line, or back); resync
/// {live: LiveState, state}.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = LessonEvent)]
pub struct Event {
    /// Sequence number within the lesson, from 1.
    pub seq: u64,
    /// Kind: joined, left, published, unpublished, hand, speak, spotlight, state, quality,
    /// mute, weak_network.
    pub kind: &'static str,
    /// When (epoch ms, the server's clock).
    #[schema(value_type = i64)]
    pub at: Millis,
    /// The details.
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

/// Someone connected to the lesson's media.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Presence {
    /// Participant id ("c:12", "t:3", "u:7").
    pub part: String,
    /// Open WHIP (publish) sessions.
    pub publishing: usize,
    /// Open WHEP (watch) sessions.
    pub watching: usize,
}

/// A lesson's live state, as a page needs it to draw itself.
#[derive(Debug, Clone, Serialize, Default, utoipa::ToSchema)]
#[schema(as = LiveState)]
pub struct Snapshot {
    /// The last event's sequence number.
    pub seq: u64,
    /// Classrooms with a raised hand, in raising order (oldest first).
    pub hands: Vec<i64>,
    /// Classrooms granted to speak (名师课堂).
    pub speakers: Vec<i64>,
    /// The classroom on the big screen (同步课堂).
    pub spotlight: Option<i64>,
    /// Who is connected.
    pub present: Vec<Presence>,
    /// Link quality per participant, as last measured (see [`super::quality`]).
    pub links: Vec<LinkSummary>,
    /// Whether the lesson is being recorded (录制中; from the `recording` events).
    pub recording: bool,
    /// Classrooms whose microphone the hub teacher muted.
    pub muted: Vec<i64>,
}

#[derive(Debug)]
struct LessonLive {
    seq: u64,
    past: VecDeque<Event>,
    tx: broadcast::Sender<Event>,
    // classroom -> order of raising
    hands: BTreeMap<i64, u64>,
    speakers: BTreeSet<i64>,
    spotlight: Option<i64>,
    // part -> (publishing, watching)
    present: BTreeMap<String, (usize, usize)>,
    links: Vec<LinkSummary>,
    // Recording now (the last `recording` event's state).
    recording: bool,
    // When the lesson ended (school clock), once it has.
    ended_at: Option<Millis>,
    // Classrooms the hub teacher muted.
    muted: BTreeSet<i64>,
}

impl LessonLive {
    fn new() -> Self {
        LessonLive {
            seq: 0,
            past: VecDeque::with_capacity(KEEP),
            tx: broadcast::channel(KEEP).0,
            hands: BTreeMap::new(),
            speakers: BTreeSet::new(),
            spotlight: None,
            present: BTreeMap::new(),
            links: Vec::new(),
            recording: false,
            ended_at: None,
            muted: BTreeSet::new(),
        }
    }

    fn emit(&mut self, kind: &'static str, at: Millis, data: serde_json::Value) -> Event {
        if kind == "recording" {
            self.recording = data["state"] == "recording";
        }
        self.seq += 1;
        let ev = Event {
            seq: self.seq,
            kind,
            at,
            data,
        };
        if self.past.len() == KEEP {
            self.past.pop_front();
        }
        self.past.push_back(ev.clone());
        // No receivers is fine: nobody is watching right now.
        let _ = self.tx.send(ev.clone());
        ev
    }

    fn snapshot(&self) -> Snapshot {
        let mut hands: Vec<(u64, i64)> = self.hands.iter().map(|(c, o)| (*o, *c)).collect();
        hands.sort();
        Snapshot {
            seq: self.seq,
            hands: hands.into_iter().map(|(_, c)| c).collect(),
            speakers: self.speakers.iter().copied().collect(),
            spotlight: self.spotlight,
            present: self
                .present
                .iter()
                .map(|(p, (publishing, watching))| Presence {
                    part: p.clone(),
                    publishing: *publishing,
                    watching: *watching,
                })
                .collect(),
            links: self.links.clone(),
            recording: self.recording,
            muted: self.muted.iter().copied().collect(),
        }
    }
}

/// What a subscriber gets: the events it missed (or a snapshot), then a live receiver.
#[derive(Debug)]
pub struct Subscription {
    /// A full picture, when the client is new or missed more than was kept.
    pub resync: Option<Snapshot>,
    /// Missed events, in order.
    pub missed: Vec<Event>,
    /// Events from now on (the caller skips any with `seq` already delivered).
    pub rx: broadcast::Receiver<Event>,
}

/// The live state of every lesson on this server.
#[derive(Debug, Default)]
pub struct Live {
    lessons: Mutex<HashMap<i64, LessonLive>>,
}

impl Live {
    fn with<R>(&self, lesson: i64, f: impl FnOnce(&mut LessonLive) -> R) -> R {
        let mut map = self.lessons.lock().expect("live lock");
        f(map.entry(lesson).or_insert_with(LessonLive::new))
    }

    /// Like `with`, but does nothing (and returns `None`) for a lesson without live state:
    /// for what must not bring an ended lesson's state back.
    fn with_existing<R>(&self, lesson: i64, f: impl FnOnce(&mut LessonLive) -> R) -> Option<R> {
        let mut map = self.lessons.lock().expect("live lock");
        map.get_mut(&lesson).map(f)
    }

    /// Notes that a lesson ended at `at`: [`Live::sweep`] drops its state `keep` later.
    pub fn mark_ended(&self, lesson: i64, at: Millis) {
        self.with_existing(lesson, |l| l.ended_at = Some(at));
    }

    /// Drops the state of lessons that ended at least `keep` before `now`.
    pub fn sweep(&self, now: Millis, keep: Millis) {
        self.lessons
            .lock()
            .expect("live lock")
            .retain(|_, l| l.ended_at.is_none_or(|e| now.saturating_sub(e) < keep));
    }

    /// Drops a lesson's live state (its room has ended; nobody follows it any more).
    pub fn forget(&self, lesson: i64) {
        self.lessons.lock().expect("live lock").remove(&lesson);
    }

    /// How many lessons have live state.
    pub fn len(&self) -> usize {
        self.lessons.lock().expect("live lock").len()
    }

    /// Whether no lesson has live state.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The current picture without creating state for a lesson that has none (an empty
    /// picture then).
    pub fn peek(&self, lesson: i64) -> Snapshot {
        self.with_existing(lesson, |l| l.snapshot())
            .unwrap_or_else(|| LessonLive::new().snapshot())
    }

    /// Emits an event to a lesson's followers.
    pub fn emit(&self, lesson: i64, kind: &'static str, at: Millis, data: serde_json::Value) {
        self.with(lesson, |l| l.emit(kind, at, data));
    }

    /// Emits an event only to a lesson that has live state (what happens after its end, such
    /// as a recording's processing, never brings it back).
    pub fn emit_existing(
        &self,
        lesson: i64,
        kind: &'static str,
        at: Millis,
        data: serde_json::Value,
    ) {
        self.with_existing(lesson, |l| l.emit(kind, at, data));
    }

    /// The current picture.
    pub fn snapshot(&self, lesson: i64) -> Snapshot {
        self.with(lesson, |l| l.snapshot())
    }

    /// Follows a lesson from after `last_seen` (None: from a fresh snapshot).
    pub fn subscribe(&self, lesson: i64, last_seen: Option<u64>) -> Subscription {
        self.with(lesson, |l| l.subscribe(last_seen))
    }

    /// Like [`Live::subscribe`], for a lesson that still has live state (an ended lesson's
    /// is kept a little while, so a follower that reconnects learns what it missed).
    pub fn subscribe_existing(&self, lesson: i64, last_seen: Option<u64>) -> Option<Subscription> {
        self.with_existing(lesson, |l| l.subscribe(last_seen))
    }
}

impl LessonLive {
    fn subscribe(&mut self, last_seen: Option<u64>) -> Subscription {
        {
            let l = self;
            let rx = l.tx.subscribe();
            let oldest = l.past.front().map(|e| e.seq).unwrap_or(l.seq + 1);
            match last_seen {
                Some(n) if n <= l.seq && n + 1 >= oldest => Subscription {
                    resync: None,
                    missed: l.past.iter().filter(|e| e.seq > n).cloned().collect(),
                    rx,
                },
                _ => Subscription {
                    resync: Some(l.snapshot()),
                    missed: Vec::new(),
                    rx,
                },
            }
        }
    }
}

impl Live {
    /// A classroom raises (true) or lowers its hand. Returns whether anything changed.
    pub fn hand(&self, lesson: i64, classroom: i64, raised: bool, at: Millis) -> bool {
        self.with(lesson, |l| {
            let changed = if raised {
                let order = l.seq + 1;
                match l.hands.entry(classroom) {
                    std::collections::btree_map::Entry::Occupied(_) => false,
                    std::collections::btree_map::Entry::Vacant(v) => {
                        v.insert(order);
                        true
                    }
                }
            } else {
                l.hands.remove(&classroom).is_some()
            };
            if changed {
                l.emit(
                    "hand",
                    at,
                    serde_json::json!({"classroom": classroom, "raised": raised}),
                );
            }
            changed
        })
    }

    /// The teacher grants (true) or revokes speaking for a classroom. A grant lowers its hand.
    pub fn speak(&self, lesson: i64, classroom: i64, granted: bool, at: Millis) -> bool {
        self.with(lesson, |l| {
            let changed = if granted {
                l.speakers.insert(classroom)
            } else {
                l.speakers.remove(&classroom)
            };
            if granted && l.hands.remove(&classroom).is_some() {
                l.emit(
                    "hand",
                    at,
                    serde_json::json!({"classroom": classroom, "raised": false}),
                );
            }
            if changed {
                l.emit(
                    "speak",
                    at,
                    serde_json::json!({"classroom": classroom, "granted": granted}),
                );
            }
            changed
        })
    }

    /// Whether a classroom may speak now.
    pub fn may_speak(&self, lesson: i64, classroom: i64) -> bool {
        self.with(lesson, |l| l.speakers.contains(&classroom))
    }

    /// Puts a classroom on the big screen (or nobody).
    pub fn spotlight(&self, lesson: i64, classroom: Option<i64>, at: Millis) -> bool {
        self.with(lesson, |l| {
            if l.spotlight == classroom {
                return false;
            }
            l.spotlight = classroom;
            l.emit("spotlight", at, serde_json::json!({"classroom": classroom}));
            true
        })
    }

    /// The classroom on the big screen.
    pub fn spotlit(&self, lesson: i64) -> Option<i64> {
        self.with(lesson, |l| l.spotlight)
    }

    /// A media session of `part` started (`publish`: WHIP, else WHEP). Returns whether it is
    /// the participant's first (it joined).
    pub fn session_started(&self, lesson: i64, part: &str, publish: bool, at: Millis) -> bool {
        self.with(lesson, |l| {
            let e = l.present.entry(part.to_string()).or_insert((0, 0));
            let first = e.0 + e.1 == 0;
            if publish {
                e.0 += 1;
            } else {
                e.1 += 1;
            }
            if first {
                l.emit("joined", at, serde_json::json!({"part": part}));
            }
            if publish {
                l.emit("published", at, serde_json::json!({"part": part}));
            }
            first
        })
    }

    /// A viewer of `part` went to audio only for its weak link, or got video back: the
    /// classroom page and the teacher hear it as `weak_network`.
    pub fn weak_network(&self, lesson: i64, part: &str, audio_only: bool, at: Millis) {
        self.with_existing(lesson, |l| {
            l.emit(
                "weak_network",
                at,
                serde_json::json!({"part": part, "audio_only": audio_only}),
            );
        });
    }

    /// A media session of `part` ended. Returns whether it was the participant's last (it
    /// left).
    pub fn session_ended(&self, lesson: i64, part: &str, publish: bool, at: Millis) -> bool {
        self.with_existing(lesson, |l| {
            let Some(e) = l.present.get_mut(part) else {
                return false;
            };
            if publish {
                e.0 = e.0.saturating_sub(1);
            } else {
                e.1 = e.1.saturating_sub(1);
            }
            let empty = e.0 + e.1 == 0;
            if publish {
                l.emit("unpublished", at, serde_json::json!({"part": part}));
            }
            if empty {
                l.present.remove(part);
                l.emit("left", at, serde_json::json!({"part": part}));
            }
            empty
        })
        .unwrap_or(false)
    }

    /// The hub teacher lowers (acknowledges) a classroom's raised hand, in any mode. Returns
    /// whether it was up.
    pub fn lower_hand(&self, lesson: i64, classroom: i64, at: Millis) -> bool {
        self.with(lesson, |l| {
            let changed = l.hands.remove(&classroom).is_some();
            if changed {
                l.emit(
                    "hand",
                    at,
                    serde_json::json!({"classroom": classroom, "raised": false, "by": "teacher"}),
                );
            }
            changed
        })
    }

    /// The hub teacher mutes (true) or unmutes classrooms' microphones: one `mute` event per
    /// classroom whose state changed. Returns those classrooms.
    pub fn mute(&self, lesson: i64, classrooms: &[i64], muted: bool, at: Millis) -> Vec<i64> {
        self.with(lesson, |l| {
            let mut changed = Vec::new();
            for &c in classrooms {
                let ch = if muted {
                    l.muted.insert(c)
                } else {
                    l.muted.remove(&c)
                };
                if ch {
                    changed.push(c);
                    l.emit(
                        "mute",
                        at,
                        serde_json::json!({"classroom": c, "muted": muted}),
                    );
                }
            }
            changed
        })
    }

    /// Keeps the latest link-quality summaries of a lesson; with `emit`, also tells its
    /// followers (a `quality` event `{"links": [...]}`).
    pub fn set_links(&self, lesson: i64, links: Vec<LinkSummary>, emit: bool, at: Millis) {
        self.with(lesson, |l| {
            if emit {
                l.emit("quality", at, serde_json::json!({ "links": &links }));
            }
            l.links = links;
        })
    }

    /// Forgets an ended lesson's hands, grants, spotlight and link figures (its events stay
    /// readable).
    pub fn clear(&self, lesson: i64) {
        self.with_existing(lesson, |l| {
            l.hands.clear();
            l.speakers.clear();
            l.spotlight = None;
            l.links.clear();
            l.muted.clear();
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hands_grants_and_resume() {
        let live = Live::default();
        assert!(live.hand(1, 10, true, 0));
        assert!(!live.hand(1, 10, true, 0), "raising twice changes nothing");
        assert!(live.hand(1, 11, true, 0));
        assert_eq!(live.snapshot(1).hands, vec![10, 11]);
        assert!(live.speak(1, 11, true, 0));
        assert!(live.may_speak(1, 11));
        assert_eq!(live.snapshot(1).hands, vec![10], "a grant lowers the hand");
        let seq = live.snapshot(1).seq;
        // A client that saw event 2 gets 3.. on resume.
        let sub = live.subscribe(1, Some(2));
        assert!(sub.resync.is_none());
        assert_eq!(sub.missed.first().map(|e| e.seq), Some(3));
        assert_eq!(sub.missed.last().map(|e| e.seq), Some(seq));
        // A client from the future, or without an id, gets a snapshot.
        assert!(live.subscribe(1, Some(seq + 5)).resync.is_some());
        assert!(live.subscribe(1, None).resync.is_some());
        assert!(live.speak(1, 11, false, 0));
        assert!(!live.may_speak(1, 11));
    }

    #[test]
    fn resume_past_the_kept_window_resyncs() {
        let live = Live::default();
        for i in 0..(KEEP as i64 + 10) {
            live.emit(1, "quality", i, serde_json::Value::Null);
        }
        assert!(live.subscribe(1, Some(3)).resync.is_some());
        let s = live.subscribe(1, Some(KEEP as u64));
        assert!(s.resync.is_none());
        assert_eq!(s.missed.len(), 10);
    }

    #[test]
    fn links_are_kept_and_emitted_on_request() {
        use super::super::quality::{summarize_all, Grade};
        let live = Live::default();
        let links = summarize_all(&[crate::sfu::LinkStat {
            session: "s1".into(),
            part: Some("c:5".into()),
            role: crate::sfu::PeerKind::Publisher,
            rtt_ms: Some(30.0),
            loss_pct: Some(0.0),
            kbps_in: 700.0,
            kbps_out: 0.0,
            video_layer: None,
            audio_only: false,
        }]);
        live.set_links(1, links.clone(), true, 0);
        live.set_links(1, links.clone(), false, 0);
        let snap = live.snapshot(1);
        assert_eq!(snap.links, links);
        assert_eq!(snap.links[0].grade, Grade::Good);
        let events = live.subscribe(1, Some(0)).missed;
        assert_eq!(events.len(), 1, "only the emitted update is an event");
        assert_eq!(events[0].kind, "quality");
        assert_eq!(events[0].data["links"][0]["part"], "c:5");
        let json = serde_json::to_value(&snap).unwrap();
        assert_eq!(json["links"][0]["grade"], "good");
        live.clear(1);
        assert!(live.snapshot(1).links.is_empty());
    }

    #[test]
    fn presence_counts_sessions() {
        let live = Live::default();
        live.session_started(1, "c:5", true, 0);
        live.session_started(1, "c:5", false, 0);
        live.session_ended(1, "c:5", true, 0);
        assert_eq!(live.snapshot(1).present.len(), 1);
        live.session_ended(1, "c:5", false, 0);
        assert!(live.snapshot(1).present.is_empty());
        let kinds: Vec<_> = live
            .subscribe(1, Some(0))
            .missed
            .iter()
            .map(|e| e.kind)
            .collect();
        assert_eq!(kinds, ["joined", "published", "unpublished", "left"]);
    }

    #[test]
    fn joining_and_leaving_are_told_once_per_participant() {
        let live = Live::default();
        assert!(
            live.session_started(1, "c:5", false, 0),
            "first session: joined"
        );
        assert!(
            !live.session_started(1, "c:5", true, 0),
            "second: already there"
        );
        assert!(!live.session_ended(1, "c:5", true, 0), "one session left");
        assert!(live.session_ended(1, "c:5", false, 0), "the last one: left");
        assert!(!live.session_ended(1, "c:5", false, 0), "gone already");
        assert!(!live.session_ended(2, "c:5", false, 0), "no such lesson");
    }

    #[test]
    fn the_teacher_mutes_and_lowers_hands() {
        let live = Live::default();
        assert_eq!(live.mute(1, &[5, 6], true, 0), vec![5, 6]);
        assert_eq!(
            live.mute(1, &[5, 6], true, 0),
            Vec::<i64>::new(),
            "no change"
        );
        assert_eq!(live.snapshot(1).muted, vec![5, 6]);
        assert_eq!(live.mute(1, &[6], false, 0), vec![6]);
        assert_eq!(live.snapshot(1).muted, vec![5]);
        assert!(live.hand(1, 5, true, 0));
        assert!(live.lower_hand(1, 5, 0));
        assert!(!live.lower_hand(1, 5, 0), "already down");
        assert!(live.snapshot(1).hands.is_empty());
        let events = live.subscribe(1, Some(0)).missed;
        let last = events.last().unwrap();
        assert_eq!(last.kind, "hand");
        assert_eq!(last.data["by"], "teacher");
        assert_eq!(
            events.iter().filter(|e| e.kind == "mute").count(),
            3,
            "one event per classroom changed"
        );
        live.clear(1);
        assert!(live.snapshot(1).muted.is_empty());
    }

    #[test]
    fn a_weak_network_is_an_event_of_a_live_lesson_only() {
        let live = Live::default();
        // A lesson nobody is in has no log to add to.
        live.weak_network(2, "c:5", true, 0);
        assert!(live.subscribe(2, Some(0)).missed.is_empty());
        live.session_started(1, "c:5", false, 0);
        live.weak_network(1, "c:5", true, 10);
        live.weak_network(1, "c:5", false, 20);
        let sub = live.subscribe(1, Some(0));
        let weak: Vec<_> = sub
            .missed
            .iter()
            .filter(|e| e.kind == "weak_network")
            .map(|e| (e.data["part"].clone(), e.data["audio_only"].clone()))
            .collect();
        assert_eq!(
            weak,
            [
                (serde_json::json!("c:5"), serde_json::json!(true)),
                (serde_json::json!("c:5"), serde_json::json!(false))
            ]
        );
    }
}
