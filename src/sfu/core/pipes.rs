//! The worker side of pipes (`sfu::pipe`): rooms piped out to other workers (their tracks,
//! the GOP a pipe starts with) and what comes in from home workers (tracks, packets, closes).
//! It must never wait for another worker: sends are fire-and-forget, a full pipe drops.

use super::*;

impl<O: Outside> WorkerCore<O> {
    /// Forwards piped packets of one layer of one piped-in track (see `drain_pipe`).
    pub(super) fn forward_piped(&mut self, group: &[PipedPacket], now: Instant) {
        let Some(first) = group.first() else {
            return;
        };
        let (tid, li, ssrc) = (first.tid, first.layer, first.ssrc);
        let kf_interval = self.keyframe_interval;
        let Some(track) = self.tracks.get_mut(&tid) else {
            return;
        };
        // The home worker's layer indices, rids and SSRCs.
        while track.layers.len() <= li {
            track.layers.push(Layer::new(None, kf_interval));
        }
        let layer = &mut track.layers[li];
        layer.rid = first.rid;
        layer.ssrc = Some(ssrc);
        let source = source_id(track.publisher, *ssrc);
        let mut preps = std::mem::take(&mut self.preps);
        preps.clear();
        for p in group {
            match self.ingest(tid, li, ssrc, p.params, p.pkt.clone(), now) {
                Some(prep) => preps.push(prep),
                None => break,
            }
        }
        self.fan_out(tid, li, source, &mut preps, RestFrom::Pipe, now);
        self.preps = preps;
    }

    /// Reads the pipe inbox: tracks and packets of rooms whose home is another worker.
    /// Messages are taken in order; packets are forwarded in runs, like a socket batch.
    pub(super) fn drain_pipe(&mut self, now: Instant) {
        let mut pending = std::mem::take(&mut self.pipe_in);
        for _ in 0..PIPE_TURN {
            let Some(msg) = self.next_pipe_msg() else {
                break;
            };
            match msg {
                PipeMsg::Rtp {
                    home,
                    mut packet,
                    arrived,
                } => {
                    if let Some(t) = arrived {
                        // Copies sent this turn are timed from the home worker's arrival.
                        self.io.out.note_arrival(t);
                    }
                    if let Some((_, ours)) = self.piped.get(&(home, packet.tid)) {
                        packet.tid = *ours;
                        pending.push(packet);
                    }
                    continue;
                }
                other => {
                    // A change of tracks applies after the packets before it. It waits at
                    // the head of the stash while they go out, so that a look for a frame's
                    // rest during their fan-out (`take_piped`) takes nothing past it.
                    self.pipe_stash.push_front(other);
                    self.forward_pipe_batch(&mut pending, now);
                    if let Some(other) = self.pipe_stash.pop_front() {
                        self.on_pipe_change(other, now);
                    }
                }
            }
        }
        self.forward_pipe_batch(&mut pending, now);
        self.pipe_in = pending;
    }

    /// The next pipe message: one a look during a fan-out set aside, else the inbox's.
    pub(super) fn next_pipe_msg(&mut self) -> Option<PipeMsg> {
        self.pipe_stash.pop_front().or_else(|| self.io.out.piped())
    }

    pub(super) fn forward_pipe_batch(&mut self, pending: &mut Vec<PipedPacket>, now: Instant) {
        if pending.is_empty() {
            return;
        }
        // One group per track layer, each layer's order kept (as `process_pending` does), so
        // a look during a group's fan-out never takes a later packet of its layer past one
        // still waiting here.
        let mut order: Vec<(TrackId, usize)> = Vec::new();
        for p in pending.iter() {
            if !order.contains(&(p.tid, p.layer)) {
                order.push((p.tid, p.layer));
            }
        }
        if order.len() > 1 {
            pending.sort_by_key(|p| order.iter().position(|k| *k == (p.tid, p.layer)));
        }
        for group in pending.chunk_by(|a, b| a.tid == b.tid && a.layer == b.layer) {
            self.forward_piped(group, now);
        }
        pending.clear();
        self.process_pending(now);
    }

    /// A piped-in track came, went, or the whole room's pipe closed.
    pub(super) fn on_pipe_change(&mut self, msg: PipeMsg, now: Instant) {
        let mut rebind = Vec::new();
        let mut room_name = None;
        match msg {
            PipeMsg::Rtp { .. } => {}
            PipeMsg::Track {
                room,
                home,
                tid,
                mid,
                kind,
                part,
                rids,
                params,
            } => {
                if self.piped.contains_key(&(home, tid)) {
                    return;
                }
                let ours = self.next_id;
                self.next_id += 1;
                let layers = rids
                    .into_iter()
                    .map(|r| Layer::new(r, self.keyframe_interval))
                    .collect();
                self.tracks.insert(
                    ours,
                    Track {
                        publisher: ours,
                        mid,
                        kind,
                        layers,
                        subscribers: Vec::new(),
                        params,
                        part,
                        origin: Some((home, tid)),
                        pipes: Vec::new(),
                    },
                );
                let r = self.rooms.entry(room.clone()).or_default();
                r.tracks.push(ours);
                rebind.extend(r.peers.iter().copied());
                self.piped.insert((home, tid), (room, ours));
                self.count_rooms();
            }
            PipeMsg::TrackGone { home, tid } => {
                if let Some((room, ours)) = self.piped.remove(&(home, tid)) {
                    if let Some(r) = self.rooms.get_mut(&room) {
                        r.tracks.retain(|t| *t != ours);
                    }
                    rebind.extend(self.drop_track(ours));
                    room_name = Some(room);
                }
            }
            PipeMsg::Closed { room, home } => {
                let gone: Vec<(usize, TrackId)> = self
                    .piped
                    .iter()
                    .filter(|(k, (r, _))| k.0 == home && *r == room)
                    .map(|(k, _)| *k)
                    .collect();
                for key in gone {
                    if let Some((_, ours)) = self.piped.remove(&key) {
                        if let Some(r) = self.rooms.get_mut(&room) {
                            r.tracks.retain(|t| *t != ours);
                        }
                        rebind.extend(self.drop_track(ours));
                    }
                }
                room_name = Some(room);
            }
        }
        if let Some(room) = room_name {
            self.forget_room_if_empty(&room);
        }
        rebind.sort_unstable();
        rebind.dedup();
        for sid in rebind {
            self.bind_free_slots(sid, now);
        }
    }

    /// A pipe message to worker `to` (woken by the next `wake_pipes`).
    pub(super) fn send_pipe(&mut self, to: usize, msg: PipeMsg) {
        if self.io.out.pipe(to, msg) && !self.pipe_wake.contains(&to) {
            self.pipe_wake.push(to);
        }
    }

    /// Wakes the workers that were sent something.
    pub(super) fn wake_pipes(&mut self) {
        for to in self.pipe_wake.drain(..) {
            self.io.out.wake(to);
        }
    }

    /// Starts piping track `tid` of `room` to worker `to`: announces it, then its layers'
    /// cached GOPs, so a viewer there starts from a picture at once.
    pub(super) fn pipe_track(&mut self, room: &str, tid: TrackId, to: usize) {
        let Some(track) = self.tracks.get_mut(&tid) else {
            return;
        };
        if track.pipes.contains(&to) {
            return;
        }
        track.pipes.push(to);
        // A pipe opened again starts whole (its GOP follows below).
        for l in &mut track.layers {
            l.pipe_gaps.retain(|w| *w != to);
        }
        let mut msgs = vec![PipeMsg::Track {
            room: room.to_string(),
            home: self.index,
            tid,
            mid: track.mid,
            kind: track.kind,
            part: track.part.clone(),
            rids: track.layers.iter().map(|l| l.rid).collect(),
            params: track.params,
        }];
        if let Some(params) = track.params {
            for (li, layer) in track.layers.iter().enumerate() {
                let (Some(gop), Some(ssrc)) = (layer.gop.replay(), layer.ssrc) else {
                    continue;
                };
                msgs.extend(gop.iter().map(|p| PipeMsg::Rtp {
                    home: self.index,
                    packet: PipedPacket {
                        tid,
                        layer: li,
                        rid: layer.rid,
                        ssrc,
                        params,
                        pkt: p.for_another_worker(),
                    },
                    arrived: None,
                }));
            }
        }
        for msg in msgs {
            self.send_pipe(to, msg);
        }
    }

    /// One more viewer of `room` on worker `to`: the first one opens the pipe.
    pub(super) fn open_pipe(&mut self, room: String, to: usize) {
        let pipes = self.pipes_out.entry(room.clone()).or_default();
        if let Some((_, n)) = pipes.iter_mut().find(|(w, _)| *w == to) {
            *n += 1;
            return;
        }
        pipes.push((to, 1));
        self.io.metrics.pipes.inc();
        let tids = self
            .rooms
            .get(&room)
            .map(|r| r.tracks.clone())
            .unwrap_or_default();
        for tid in tids {
            self.pipe_track(&room, tid, to);
        }
        self.wake_pipes();
    }

    /// One viewer of `room` on worker `to` gone: the last one closes the pipe.
    pub(super) fn close_pipe(&mut self, room: &str, to: usize) {
        let Some(pipes) = self.pipes_out.get_mut(room) else {
            return;
        };
        let Some(i) = pipes.iter().position(|(w, _)| *w == to) else {
            return;
        };
        pipes[i].1 -= 1;
        if pipes[i].1 > 0 {
            return;
        }
        pipes.swap_remove(i);
        self.io.metrics.pipes.dec();
        if pipes.is_empty() {
            self.pipes_out.remove(room);
        }
        if let Some(r) = self.rooms.get(room) {
            for tid in &r.tracks {
                if let Some(t) = self.tracks.get_mut(tid) {
                    t.pipes.retain(|w| *w != to);
                }
            }
        }
        self.send_pipe(
            to,
            PipeMsg::Closed {
                room: room.to_string(),
                home: self.index,
            },
        );
        self.wake_pipes();
    }
}

/// Piped messages read per loop turn before the socket gets a turn again.
pub(super) const PIPE_TURN: usize = 1024;

/// Takes the piped packets `wanted` (given the home worker and the packet as piped) out of
/// `stash`, in order, up to the first message that is not a packet: a change of tracks
/// applies after the packets before it, so none after it may pass it. Everything else stays,
/// in order.
pub(super) fn take_piped(
    stash: &mut VecDeque<PipeMsg>,
    wanted: impl Fn(usize, &PipedPacket) -> bool,
) -> Vec<(PipedPacket, Option<std::time::SystemTime>)> {
    let mut found = Vec::new();
    let mut i = 0;
    while i < stash.len() {
        match &stash[i] {
            PipeMsg::Rtp { home, packet, .. } if wanted(*home, packet) => {
                if let Some(PipeMsg::Rtp {
                    packet, arrived, ..
                }) = stash.remove(i)
                {
                    found.push((packet, arrived));
                }
            }
            PipeMsg::Rtp { .. } => i += 1,
            _ => break,
        }
    }
    found
}
