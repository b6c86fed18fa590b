//! The core's glue between its viewers and their downlink estimates (`bwe.rs`) and layer
//! policy (`adapt.rs`): feeds each viewer's receiver reports in, and every housekeeping turn
//! (250 ms) asks the policy and carries out its answer on the viewer's slots: the layer each
//! simulcast slot wants (`RecvSlot::auto`, read by the fan-out), video paused or resumed
//! (`Lane::paused`, one flag the fan-out reads per viewer), a keyframe asked for through the
//! gate on a resume, and `SfuEvent::WeakNetwork` when a viewer goes to audio only or back.
//! It must never run per packet: the fan-out only reads what this file wrote.

use super::adapt::{Choice, Priority, TrackView, MAX_LAYERS};
use super::*;

impl<O: Outside> WorkerCore<O> {
    /// Whether viewers' layers follow their downlink estimates (`media.downlink_adaptation`;
    /// on by default). Off: every viewer gets the best layer, as before estimation existed.
    pub fn set_downlink_adaptation(&mut self, on: bool) {
        self.downlink = on;
        if !on {
            for peer in self.peers.values_mut() {
                for slot in peer.slots.iter_mut() {
                    slot.auto = None;
                    slot.paused = false;
                    if let Some(lane) = self.io.lanes.get_mut(slot.lane) {
                        lane.paused = false;
                    }
                }
            }
        }
    }

    /// Caps the layers of the viewer `session` at rank `cap` (0: the lowest; `None`: no
    /// cap), from the school's or classroom's policy. False if there is no such viewer.
    pub fn set_layer_cap(&mut self, session: &str, cap: Option<u8>) -> bool {
        match self
            .by_session
            .get(session)
            .and_then(|pid| self.peers.get_mut(pid))
        {
            Some(peer) if peer.role == PeerKind::Subscriber => {
                peer.adapt.cap = cap;
                true
            }
            _ => false,
        }
    }

    /// Whether the viewer `session` gets audio only (its video paused for its link).
    #[must_use]
    pub fn audio_only(&self, session: &str) -> Option<bool> {
        let peer = self.peers.get(self.by_session.get(session)?)?;
        Some(peer.adapt.audio_only())
    }

    /// Housekeeping's turn: every connected viewer's policy decision, carried out.
    pub(super) fn adapt_viewers(&mut self, now: Instant) {
        if !self.downlink {
            return;
        }
        let mut views: Vec<TrackView> = Vec::new();
        let mut at: Vec<usize> = Vec::new();
        let mut out: Vec<Choice> = Vec::new();
        let mut keyframes: Vec<(TrackId, usize)> = Vec::new();
        let mut events: Vec<SfuEvent> = Vec::new();
        let priorities = self.priorities();
        for peer in self.peers.values_mut() {
            if peer.role != PeerKind::Subscriber || !peer.connected {
                continue;
            }
            let sent = f64::from(peer.link.kbps_out) * 1000.0;
            let video_flowing = peer
                .slots
                .iter()
                .any(|s| s.kind == MediaKind::Video && s.track.is_some() && !s.paused);
            peer.adapt.est.on_tick(now, video_flowing, sent);
            views.clear();
            at.clear();
            for (si, slot) in peer.slots.iter().enumerate() {
                let Some(track) = slot.track.and_then(|t| self.tracks.get(&t)) else {
                    continue;
                };
                let mut rates = [0u64; MAX_LAYERS];
                for (r, l) in rates.iter_mut().zip(&track.layers) {
                    // A layer not sending now cannot be chosen; a sending one is never 0.
                    *r = if l.active(now) { l.bitrate.max(1) } else { 0 };
                }
                let priority = if slot.kind == MediaKind::Audio {
                    Priority::Audio
                } else {
                    slot.track
                        .and_then(|t| priorities.get(&t).copied())
                        .unwrap_or(Priority::Other)
                };
                views.push(TrackView {
                    priority,
                    rates,
                    layers: track.layers.len(),
                    current: if slot.paused {
                        Choice::Paused
                    } else {
                        Choice::Layer(slot.switch.layer)
                    },
                    overridden: slot.wanted_rid.is_some(),
                });
                at.push(si);
            }
            if let Some(on) = peer.adapt.decide(now, &views, &mut out) {
                events.push(SfuEvent::WeakNetwork {
                    session: peer.session.clone(),
                    audio_only: on,
                });
            }
            for (&si, (&choice, view)) in at.iter().zip(out.iter().zip(&views)) {
                let slot = &mut peer.slots[si];
                if slot.kind != MediaKind::Video {
                    continue;
                }
                let Some(tid) = slot.track else {
                    continue;
                };
                let lane = self.io.lanes.get_mut(slot.lane);
                let layer = match choice {
                    Choice::Paused if !view.overridden => {
                        if !slot.paused {
                            slot.paused = true;
                            slot.switch.waiting_keyframe = None;
                            if let Some(lane) = lane {
                                lane.paused = true;
                                // It starts again only at a keyframe, from the next sequence
                                // number (see `Rewriter::source_gone`).
                                if let Some(r) = lane.rewriter.as_mut() {
                                    r.source_gone();
                                }
                            }
                        }
                        continue;
                    }
                    Choice::Paused | Choice::Top => {
                        slot.auto = None;
                        None
                    }
                    Choice::Layer(l) => {
                        slot.auto = Some(l);
                        Some(l)
                    }
                };
                if slot.paused {
                    slot.paused = false;
                    if let Some(lane) = self.io.lanes.get_mut(slot.lane) {
                        lane.paused = false;
                    }
                    let l = layer.unwrap_or(slot.switch.layer);
                    slot.switch.layer = l;
                    slot.switch.waiting_keyframe = Some(now);
                    slot.switch.last_kf_request = Some(now);
                    keyframes.push((tid, l));
                }
            }
        }
        for ev in events {
            self.io.out.event(ev);
        }
        for (tid, layer) in keyframes {
            self.request_keyframe(tid, layer, now);
        }
    }

    /// What each video track is to a classroom: another classroom's camera (`c:` parts),
    /// else a teacher's (or a plain room's) first video m-line is the camera and the next
    /// one the courseware screen (web/teach.js adds them so; `tap.rs` reads them the same).
    fn priorities(&self) -> Map<TrackId, Priority> {
        let mut p = Map::default();
        for room in self.rooms.values() {
            for (i, tid) in room.tracks.iter().enumerate() {
                let Some(t) = self.tracks.get(tid) else {
                    continue;
                };
                if t.kind != MediaKind::Video {
                    continue;
                }
                let prio = if t.part.as_deref().is_some_and(|x| x.starts_with("c:")) {
                    Priority::Other
                } else {
                    let before = room.tracks[..i]
                        .iter()
                        .filter_map(|o| self.tracks.get(o))
                        .filter(|o| {
                            o.kind == MediaKind::Video
                                && o.publisher == t.publisher
                                && o.part == t.part
                        })
                        .count();
                    if before == 0 {
                        Priority::TeacherCamera
                    } else {
                        Priority::Courseware
                    }
                };
                p.insert(*tid, prio);
            }
        }
        p
    }
}
