//! Who sees whom: peers joining and leaving rooms, subscriber slots bound to the tracks
//! they may receive (kind, not their own, the follow rule, the spotlight), tracks ending.
//! It must never send media or decide about layers or keyframes beyond starting a
//! newly bound slot (`keyframes`).

use super::*;

impl<O: Outside> WorkerCore<O> {
    /// A viewer must be able to receive at least one live video codec of the room (if the
    /// room has live video), or it would connect and show nothing.
    pub(super) fn check_compatible(
        &self,
        room: &str,
        role: PeerKind,
        peer: &PreparedPeer,
    ) -> Result<(), AddError> {
        if role != PeerKind::Subscriber {
            return Ok(());
        }
        let Some(room) = self.rooms.get(room) else {
            return Ok(());
        };
        let live: Vec<PayloadParams> = room
            .tracks
            .iter()
            .filter_map(|t| self.tracks.get(t))
            .filter(|t| t.kind == MediaKind::Video)
            .filter_map(|t| t.params)
            .collect();
        if live.is_empty() {
            return Ok(());
        }
        let video_mids: Vec<Mid> = peer
            .medias
            .iter()
            .filter(|m| m.kind == MediaKind::Video)
            .map(|m| m.mid)
            .collect();
        let ok = live.iter().any(|p| {
            video_mids
                .iter()
                .any(|mid| out_payload_type(&peer.rtc, *mid, p).is_some())
        });
        if ok {
            Ok(())
        } else {
            let names: Vec<String> = live
                .iter()
                .map(|p| {
                    let s = p.spec();
                    match s.format.profile_level_id {
                        Some(pl) if s.codec == Codec::H264 => format!("H264 ({pl:06x})"),
                        _ => format!("{:?}", s.codec),
                    }
                })
                .collect();
            Err(AddError::IncompatibleCodec(format!(
                "this room is sending {}; the offer cannot receive it",
                names.join(", ")
            )))
        }
    }

    pub(super) fn add_peer(
        &mut self,
        session: String,
        room_name: String,
        role: PeerKind,
        prepared: PreparedPeer,
        piped_from: Option<usize>,
        now: Instant,
    ) {
        let id = self.next_id;
        self.next_id += 1;
        let PreparedPeer {
            rtc,
            medias,
            local_ufrag,
            part,
            follow,
            keys,
            ..
        } = prepared;
        let slots = if role == PeerKind::Subscriber {
            medias
                .iter()
                .enumerate()
                .map(|(si, m)| {
                    RecvSlot::new(m.mid, m.kind, self.io.lanes.insert(Lane::new(id, si)))
                })
                .collect()
        } else {
            Vec::new()
        };
        let mut peer = Peer {
            id,
            session: session.clone(),
            room: room_name.clone(),
            role,
            rtc,
            medias,
            next_timeout: now,
            connected: false,
            disconnected_since: None,
            tracks: Vec::new(),
            rx_streams: HashMap::new(),
            rx_params: Vec::new(),
            slots,
            part,
            follow,
            stats_seen: HashMap::new(),
            link: LinkFigures::new(now),
            keys,
            egress: None,
            egress_tried: false,
            remote: None,
            piped_from,
            limit: TokenBucket::new(self.publish_cap, now),
            adapt: Default::default(),
            tally: Default::default(),
        };
        let room = self.rooms.entry(room_name.clone()).or_default();
        room.peers.push(id);
        let mut new_tracks = Vec::new();
        if role == PeerKind::Publisher {
            for m in &peer.medias {
                let tid = self.next_id;
                self.next_id += 1;
                let layers = if m.rids.is_empty() {
                    vec![Layer::new(None, self.keyframe_interval)]
                } else {
                    m.rids
                        .iter()
                        .map(|r| Layer::new(Some(*r), self.keyframe_interval))
                        .collect()
                };
                self.tracks.insert(
                    tid,
                    Track {
                        publisher: id,
                        mid: m.mid,
                        kind: m.kind,
                        layers,
                        subscribers: Vec::new(),
                        params: None,
                        part: peer.part.clone(),
                        origin: None,
                        pipes: Vec::new(),
                    },
                );
                room.tracks.push(tid);
                peer.tracks.push((m.mid, tid));
                new_tracks.push(tid);
            }
            self.io.metrics.tracks.inc_by(new_tracks.len() as i64);
        }
        // Workers holding viewers of this room get the new tracks too.
        let pipes: Vec<usize> = self
            .pipes_out
            .get(&room_name)
            .map(|p| p.iter().map(|(w, _)| *w).collect())
            .unwrap_or_default();
        for &tid in &new_tracks {
            for &to in &pipes {
                self.pipe_track(&room_name, tid, to);
            }
        }
        self.wake_pipes();
        self.by_session.insert(session, id);
        self.router.add_ufrag(id, local_ufrag);
        if role == PeerKind::Subscriber {
            // Keep one second of sent packets for NACKs (rural RTTs are well under that);
            // str0m's default of three seconds triples the per-subscriber memory.
            let mids: Vec<Mid> = peer.slots.iter().map(|s| s.mid).collect();
            for mid in mids {
                fresh_history(&mut peer, mid);
            }
        }
        self.created.insert(id, now);
        drain(&mut peer, &mut self.io, now);
        self.peers.insert(id, peer);
        self.io
            .metrics
            .peers
            .get_or_create(&RoleLabels {
                role: role_label(role),
            })
            .inc();
        self.count_rooms();
        // Bind free subscriber slots in the room (or this subscriber's slots) to tracks.
        let room_peers = self.rooms.get(&room_name).map(|r| r.peers.clone());
        for pid in room_peers.unwrap_or_default() {
            self.bind_free_slots(pid, now);
        }
        tracing::info!(worker = self.index, peer = id, room = %room_name, ?role, "peer added");
    }

    /// Binds each unbound slot of subscriber `sid` to a track of its kind it doesn't get yet.
    pub(super) fn bind_free_slots(&mut self, sid: PeerId, now: Instant) {
        let Some(sub) = self.peers.get(&sid) else {
            return;
        };
        if sub.role != PeerKind::Subscriber {
            return;
        }
        let Some(room) = self.rooms.get(&sub.room) else {
            return;
        };
        let slots: Vec<_> = sub.slots.iter().map(|s| (s.kind, s.track)).collect();
        let offered: Vec<_> = room
            .tracks
            .iter()
            .filter_map(|tid| {
                self.tracks.get(tid).map(|t| Offered {
                    id: *tid,
                    kind: t.kind,
                    publisher: t.publisher,
                    part: t.part.as_deref(),
                })
            })
            .collect();
        let bindings = choose_bindings(
            sid,
            &sub.follow,
            room.spotlight.as_deref(),
            &slots,
            &offered,
        );
        for (si, tid) in bindings {
            let Some(track) = self.tracks.get_mut(&tid) else {
                broken!("a track just found in the table is still there");
                continue;
            };
            let sub = self.peers.get_mut(&sid).expect("looked up at the top");
            let slot = &mut sub.slots[si];
            track.subscribers.push((sid, si, slot.lane));
            let kind = track.kind;
            slot.track = Some(tid);
            slot.switch.layer = track.choose_layer(slot.wanted_rid.as_deref(), now);
            if let Some(lane) = self.io.lanes.get_mut(slot.lane) {
                lane.clear_pts();
            }
            let connected = sub.connected;
            if kind == MediaKind::Video {
                slot.switch.waiting_keyframe = Some(now);
                if connected {
                    let layer = slot.switch.layer;
                    self.start_video(sid, si, tid, layer, now);
                }
            }
        }
    }

    /// Moves the room's spotlight: subscribers following it drop the tracks of the previous
    /// participant and bind the new one's. Their rewriters stay, so each keeps one
    /// continuous output stream that switches at the next keyframe.
    pub(super) fn set_spotlight(&mut self, room_name: &str, part: Option<String>, now: Instant) {
        let Some(room) = self.rooms.get_mut(room_name) else {
            return;
        };
        if room.spotlight == part {
            return;
        }
        room.spotlight = part;
        let followers: Vec<PeerId> = room
            .peers
            .iter()
            .copied()
            .filter(|p| {
                self.peers
                    .get(p)
                    .is_some_and(|p| p.follow == crate::sfu::Follow::Spotlight)
            })
            .collect();
        for sid in followers {
            let bound: Vec<(usize, TrackId)> = self.peers[&sid]
                .slots
                .iter()
                .enumerate()
                .filter_map(|(i, s)| s.track.map(|t| (i, t)))
                .collect();
            for (si, tid) in bound {
                if let Some(t) = self.tracks.get_mut(&tid) {
                    t.subscribers.retain(|(s, i, _)| !(*s == sid && *i == si));
                }
                if let Some(slot) = self.peers.get_mut(&sid).and_then(|p| p.slots.get_mut(si)) {
                    unbind(slot, &mut self.io.lanes);
                }
            }
            self.bind_free_slots(sid, now);
        }
    }

    pub(super) fn remove_peer(&mut self, pid: PeerId, now: Instant) {
        let Some(mut peer) = self.peers.remove(&pid) else {
            return;
        };
        self.created.remove(&pid);
        self.by_session.remove(&peer.session);
        self.router.remove(pid);
        if let Some(room) = self.rooms.get_mut(&peer.room) {
            room.peers.retain(|p| *p != pid);
            for (_, tid) in &peer.tracks {
                room.tracks.retain(|t| t != tid);
            }
        }
        let mut rebind = Vec::new();
        for (_, tid) in &peer.tracks {
            rebind.extend(self.drop_track(*tid));
        }
        self.forget_room_if_empty(&peer.room);
        for slot in &peer.slots {
            if let Some(tid) = slot.track {
                if let Some(t) = self.tracks.get_mut(&tid) {
                    t.subscribers.retain(|(s, _, _)| *s != pid);
                }
            }
            self.io.lanes.try_remove(slot.lane);
        }
        peer.rtc.disconnect();
        rebind.sort_unstable();
        rebind.dedup();
        for sid in rebind {
            self.bind_free_slots(sid, now);
        }
        if let Some(home) = peer.piped_from {
            let _ = self.io.out.command(
                home,
                Command::ClosePipe {
                    room: peer.room.clone(),
                    to: self.index,
                },
            );
        }
        self.load.fetch_sub(1, Ordering::Relaxed);
        self.io
            .metrics
            .peers
            .get_or_create(&RoleLabels {
                role: role_label(peer.role),
            })
            .dec();
        self.count_rooms();
        self.peer_count.fetch_sub(1, Ordering::Relaxed);
        // The viewer's link report's last totals go out before it is gone.
        if let Some(report) = peer.tally.finish(now) {
            self.io.out.event(SfuEvent::LinkReport {
                session: peer.session.clone(),
                part: peer.part.clone(),
                report,
                last: true,
            });
        }
        // Unbounded send never blocks; a closed receiver (shutdown) is fine to ignore.
        self.io.out.event(SfuEvent::PeerGone {
            session: peer.session.clone(),
        });
        tracing::info!(worker = self.index, peer = pid, session = %peer.session, "peer removed");
    }

    pub(super) fn ice_restart(
        &mut self,
        session: &str,
        offer: str0m::change::SdpOffer,
        now: Instant,
    ) -> Result<String, String> {
        let pid = *self.by_session.get(session).ok_or("unknown session")?;
        let peer = self.peers.get_mut(&pid).ok_or("unknown session")?;
        let answer = peer
            .rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| e.to_string())?;
        let ufrag = peer.rtc.direct_api().local_ice_credentials().ufrag;
        tracing::debug!(session, ufrag = %ufrag, "ICE restart applied");
        self.router.add_ufrag(pid, ufrag);
        // The client may come back on another address: the fast path waits until str0m has
        // sent DTLS or SRTP on the new pair (media goes through str0m until then).
        set_remote(peer, &mut self.io.lanes, None);
        drain(peer, &mut self.io, now);
        Ok(answer.to_sdp_string())
    }

    /// Removes track `tid` (already out of its room's list): its subscribers' slots are
    /// freed (returned, to be bound again), and the workers it was piped to are told.
    pub(super) fn drop_track(&mut self, tid: TrackId) -> Vec<PeerId> {
        let Some(track) = self.tracks.remove(&tid) else {
            return Vec::new();
        };
        self.track_gone(tid, &track);
        self.wake_pipes();
        let mut freed = Vec::new();
        for (sid, si, _) in track.subscribers {
            if let Some(sub) = self.peers.get_mut(&sid) {
                if let Some(slot) = sub.slots.get_mut(si) {
                    unbind(slot, &mut self.io.lanes);
                }
                freed.push(sid);
            }
        }
        freed
    }

    /// Track `tid`, already out of `self.tracks`, is gone: the `tracks` gauge stops counting
    /// it (when it was published here) and the workers it was piped to are told (woken by the
    /// next `wake_pipes`).
    pub(super) fn track_gone(&mut self, tid: TrackId, track: &Track) {
        if track.origin.is_none() {
            self.io.metrics.tracks.dec();
        }
        for &to in &track.pipes {
            self.send_pipe(
                to,
                PipeMsg::TrackGone {
                    home: self.index,
                    tid,
                },
            );
        }
    }

    /// Brings the `rooms` gauge (a sum over workers) up to date with this worker's rooms.
    pub(super) fn count_rooms(&mut self) {
        let now = self.rooms.len() as i64;
        self.io.metrics.rooms.inc_by(now - self.rooms_counted);
        self.rooms_counted = now;
    }

    /// Forgets a room with neither peers nor tracks.
    pub(super) fn forget_room_if_empty(&mut self, room: &str) {
        if self
            .rooms
            .get(room)
            .is_some_and(|r| r.peers.is_empty() && r.tracks.is_empty())
        {
            self.rooms.remove(room);
        }
        self.count_rooms();
    }
}

/// A track of the room as the binding decision sees it (`K`: its kind, str0m's
/// `MediaKind` in the core, anything comparable in tests).
#[derive(Debug, Clone, Copy)]
pub(super) struct Offered<'a, K> {
    /// The track.
    pub id: TrackId,
    /// Audio or video.
    pub kind: K,
    /// Who publishes it (a viewer never receives its own).
    pub publisher: PeerId,
    /// Its publisher's participant id, for the follow rule.
    pub part: Option<&'a str>,
}

/// Who receives whom, decided on the tables alone: for each slot of subscriber `sub`
/// without a track (`slots[i]` is its kind and what it receives now), the first of the
/// room's `tracks` (in publish order) of that kind, not published by `sub`, that `follow`
/// accepts under `spotlight`, and that no slot of `sub` receives yet. Returns the new
/// `(slot index, track)` pairs in slot order.
pub(super) fn choose_bindings<K: PartialEq + Copy>(
    sub: PeerId,
    follow: &crate::sfu::Follow,
    spotlight: Option<&str>,
    slots: &[(K, Option<TrackId>)],
    tracks: &[Offered<'_, K>],
) -> Vec<(usize, TrackId)> {
    let mut taken: Vec<TrackId> = slots.iter().filter_map(|(_, t)| *t).collect();
    let mut bindings = Vec::new();
    for (si, (kind, track)) in slots.iter().enumerate() {
        if track.is_some() {
            continue;
        }
        let found = tracks.iter().find(|t| {
            !taken.contains(&t.id)
                && t.kind == *kind
                && t.publisher != sub
                && follow.accepts(t.part, spotlight)
        });
        if let Some(t) = found {
            taken.push(t.id);
            bindings.push((si, t.id));
        }
    }
    bindings
}

/// Frees a subscriber slot of its track. The slot's output stream continues with whatever
/// it gets next, from the next sequence number: its rewriter forgets the old source, so even
/// the same source bound again (a spotlight that comes back, replaying its cached GOP) can
/// never reuse a sequence number, and so an SRTP index, for different bytes.
pub(super) fn unbind(slot: &mut RecvSlot, lanes: &mut slab::Slab<Lane>) {
    slot.track = None;
    slot.switch.waiting_keyframe = None;
    slot.auto = None;
    slot.paused = false;
    if let Some(lane) = lanes.get_mut(slot.lane) {
        lane.paused = false;
    }
    if let Some(r) = lanes.get_mut(slot.lane).and_then(|l| l.rewriter.as_mut()) {
        r.source_gone();
    }
}

pub(super) fn role_label(role: PeerKind) -> RoleLabel {
    match role {
        PeerKind::Publisher => RoleLabel::Publisher,
        PeerKind::Subscriber => RoleLabel::Subscriber,
    }
}

/// The binding decision on plain data: no str0m, no peers, no sockets.
#[cfg(test)]
mod decision_tests {
    use super::{choose_bindings, Offered};
    use crate::sfu::Follow;

    #[derive(Debug, Clone, Copy, PartialEq)]
    enum K {
        Audio,
        Video,
    }

    /// The room of these tests: teacher 1 (`t:1`) publishes audio 10 and video 11, classroom
    /// 2 (`c:2`) audio 20 and video 21, in that order.
    fn room() -> Vec<Offered<'static, K>> {
        let t = |id, kind, publisher, part| Offered {
            id,
            kind,
            publisher,
            part: Some(part),
        };
        vec![
            t(10, K::Audio, 1, "t:1"),
            t(11, K::Video, 1, "t:1"),
            t(20, K::Audio, 2, "c:2"),
            t(21, K::Video, 2, "c:2"),
        ]
    }

    const FREE_AV: &[(K, Option<u64>)] = &[(K::Audio, None), (K::Video, None)];

    #[test]
    fn free_slots_take_the_first_track_of_their_kind() {
        let b = choose_bindings(9, &Follow::Any, None, FREE_AV, &room());
        assert_eq!(b, vec![(0, 10), (1, 11)]);
    }

    #[test]
    fn a_viewer_never_receives_its_own_tracks() {
        // Classroom 1 as a viewer too: it gets classroom 2's, not its own.
        let b = choose_bindings(1, &Follow::Any, None, FREE_AV, &room());
        assert_eq!(b, vec![(0, 20), (1, 21)]);
    }

    #[test]
    fn a_track_is_received_once_per_viewer() {
        // The audio slot already has track 10: a second audio slot gets the next one, and a
        // third finds nothing.
        let slots = [(K::Audio, Some(10)), (K::Audio, None), (K::Audio, None)];
        let b = choose_bindings(9, &Follow::Any, None, &slots, &room());
        assert_eq!(b, vec![(1, 20)]);
    }

    #[test]
    fn bound_slots_are_left_alone() {
        let slots = [(K::Audio, Some(20)), (K::Video, Some(21))];
        assert!(choose_bindings(9, &Follow::Any, None, &slots, &room()).is_empty());
    }

    #[test]
    fn follow_rules_pick_the_participants() {
        let parts = Follow::Parts(vec!["c:2".into()]);
        let b = choose_bindings(9, &parts, None, FREE_AV, &room());
        assert_eq!(b, vec![(0, 20), (1, 21)], "only c:2");
        let nobody = Follow::Parts(vec!["c:3".into()]);
        assert!(choose_bindings(9, &nobody, None, FREE_AV, &room()).is_empty());
    }

    #[test]
    fn spotlight_followers_receive_the_spotlit_participant_only() {
        let b = choose_bindings(9, &Follow::Spotlight, Some("c:2"), FREE_AV, &room());
        assert_eq!(b, vec![(0, 20), (1, 21)]);
        let b = choose_bindings(9, &Follow::Spotlight, Some("t:1"), FREE_AV, &room());
        assert_eq!(b, vec![(0, 10), (1, 11)]);
        assert!(
            choose_bindings(9, &Follow::Spotlight, None, FREE_AV, &room()).is_empty(),
            "nobody spotlit: nothing"
        );
        // A track without a participant id is never the spotlight's.
        let anon = [Offered {
            id: 30,
            kind: K::Video,
            publisher: 3,
            part: None,
        }];
        let b = choose_bindings(9, &Follow::Spotlight, None, &[(K::Video, None)], &anon);
        assert!(b.is_empty());
    }
}
