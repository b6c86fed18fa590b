//! When subscribers get a picture: a new or newly connected slot replays its layer's cached
//! GOP or asks for a keyframe; requests pass the layer's coalescing gate (`sfu::keyframe`)
//! and reach the publisher as a PLI or the home worker as a command. It must never forward
//! live media (`fanout`).

use super::*;

impl<O: Outside> WorkerCore<O> {
    pub(super) fn on_connected(&mut self, pid: PeerId, now: Instant) {
        let Some(peer) = self.peers.get_mut(&pid) else {
            return;
        };
        let mut video = Vec::new();
        for (si, slot) in peer.slots.iter_mut().enumerate() {
            if let (Some(tid), MediaKind::Video) = (slot.track, slot.kind) {
                slot.switch.waiting_keyframe = Some(now);
                video.push((si, tid, slot.switch.layer));
            }
        }
        for (si, tid, layer) in video {
            self.start_video(pid, si, tid, layer, now);
        }
    }

    /// A connected subscriber's video slot needs a picture: the layer's cached GOP if there
    /// is one, else a keyframe request (through the gate).
    pub(super) fn start_video(
        &mut self,
        sid: PeerId,
        si: usize,
        tid: TrackId,
        layer: usize,
        now: Instant,
    ) {
        if self.replay_gop(sid, si, now) {
            return;
        }
        if let Some(slot) = self.peers.get_mut(&sid).and_then(|p| p.slots.get_mut(si)) {
            slot.switch.last_kf_request = Some(now);
        }
        self.request_keyframe(tid, layer, now);
    }

    /// Sends slot `si` of `sid` its layer's current GOP, keyframe first. True if it did.
    pub(super) fn replay_gop(&mut self, sid: PeerId, si: usize, now: Instant) -> bool {
        let Some(sub) = self.peers.get(&sid) else {
            return false;
        };
        let Some(slot) = sub.slots.get(si) else {
            return false;
        };
        let lane = slot.lane;
        // On the fast path every copy leaves at once and str0m keeps no history for it.
        let direct = sub.egress.is_some() && sub.remote.is_some();
        let Some(track) = slot.track.and_then(|t| self.tracks.get(&t)) else {
            return false;
        };
        let Some(layer) = track.layers.get(slot.switch.layer) else {
            return false;
        };
        let (Some(gop), Some(params), Some(ssrc)) = (layer.gop.replay(), track.params, layer.ssrc)
        else {
            return false;
        };
        let source = source_id(track.publisher, *ssrc);
        let clock_rate = params.spec().clock_rate.get();
        // The replay is a burst: on a slow link (or a full socket buffer) some of it is lost,
        // so all of it stays retransmittable; the history it grows is shrunk back once the
        // replay has aged out (`history_reset_at`, see `fresh_history`).
        let mut sent = false;
        for (i, p) in gop.iter().enumerate() {
            let f = SlotWrite {
                source,
                pkt: p,
                params: &params,
                nackable: true,
                kept: direct.then(|| {
                    self.io
                        .recent
                        .keep(&out_packet(p, 0, 0, 0), &p.payload, now)
                }),
                may_start: i == 0,
                clock_rate,
                pad_to: None,
            };
            let ok = write_slot(lane, &mut self.peers, &mut self.io, &f, now);
            if !direct && i % REPLAY_FLUSH == REPLAY_FLUSH - 1 {
                // str0m releases written packets at its next timeout; let a few out at a time
                // so a replay never queues the whole GOP per viewer (memory per subscriber).
                if let Some(sub) = self.peers.get_mut(&sid) {
                    if sub.rtc.handle_input(Input::Timeout(now)).is_ok() {
                        drain(sub, &mut self.io, now);
                    }
                }
            }
            if i == 0 {
                if !ok {
                    // The rewriter did not take the keyframe (no payload type matches, say):
                    // fall back to a keyframe request.
                    return false;
                }
                // Counted before the rest goes out, so whoever sees the keyframe sees this.
                self.io.metrics.gop_replays.inc();
                if direct {
                    // The whole burst stays retransmittable (shrunk back after it aged out).
                    if let Some(out) = self.io.lanes.get_mut(lane).and_then(|l| l.out.as_mut()) {
                        out.reserve_history(gop.len());
                    }
                }
            }
            sent |= ok;
        }
        if sent {
            if let Some(slot) = self.peers.get_mut(&sid).and_then(|p| p.slots.get_mut(si)) {
                slot.history_reset_at = Some(now + RTX_CACHE_AGE);
            }
        }
        sent
    }

    /// Asks for a keyframe on layer `layer` of `tid` (its gate let the request through):
    /// a PLI to its publisher, or for a piped-in track a request to its home worker.
    pub(super) fn ask_keyframe(&mut self, tid: TrackId, layer: usize, now: Instant) {
        let Some(track) = self.tracks.get(&tid) else {
            return;
        };
        if let Some((home, home_tid)) = track.origin {
            let cmd = Command::PipeKeyframe {
                tid: home_tid,
                layer,
            };
            let _ = self.io.out.command(home, cmd);
            return;
        }
        let (publisher, ssrc) = (
            track.publisher,
            track.layers.get(layer).and_then(|l| l.ssrc),
        );
        self.send_pli(publisher, ssrc, now);
    }

    pub(super) fn subscriber_wants_keyframe(&mut self, sid: PeerId, mid: Mid, now: Instant) {
        let Some(sub) = self.peers.get(&sid) else {
            return;
        };
        let Some(slot) = sub.slot_by_mid(mid).map(|i| &sub.slots[i]) else {
            return;
        };
        if let Some(tid) = slot.track {
            let layer = slot.switch.layer;
            self.request_keyframe(tid, layer, now);
        }
    }

    /// Asks the publisher of `tid` for a keyframe on `layer`, through the coalescing gate.
    pub(super) fn request_keyframe(&mut self, tid: TrackId, layer: usize, now: Instant) {
        self.io.metrics.keyframe_requests_in.inc();
        self.gate_keyframe(tid, layer, now);
    }

    /// [`WorkerCore::request_keyframe`] without counting it.
    pub(super) fn gate_keyframe(&mut self, tid: TrackId, layer: usize, now: Instant) {
        let Some(track) = self.tracks.get_mut(&tid) else {
            return;
        };
        let Some(l) = track.layers.get_mut(layer) else {
            return;
        };
        match l.gate.request(now) {
            Decision::SendNow => self.ask_keyframe(tid, layer, now),
            Decision::Coalesced => {
                self.io.metrics.keyframe_requests_coalesced.inc();
            }
            Decision::Deferred(at) => {
                self.io.metrics.keyframe_requests_coalesced.inc();
                self.io.timers.push(Reverse((at, Timer::Gate(tid, layer))));
            }
        }
    }

    pub(super) fn send_pli(&mut self, publisher: PeerId, ssrc: Option<Ssrc>, now: Instant) {
        // Before the first packet there is no stream to ask; the first frame is a keyframe.
        let Some(ssrc) = ssrc else {
            return;
        };
        let Some(peer) = self.peers.get_mut(&publisher) else {
            return;
        };
        if !peer.connected {
            return;
        }
        {
            let mut api = peer.rtc.direct_api();
            let Some(rx) = api.stream_rx(&ssrc) else {
                return;
            };
            rx.request_keyframe(KeyframeRequestKind::Pli);
        }
        self.io.metrics.keyframe_requests_sent.inc();
        drain(peer, &mut self.io, now);
    }
}

/// Packets of a GOP replay written to a viewer between releases (see `replay_gop`).
pub(super) const REPLAY_FLUSH: usize = 16;
