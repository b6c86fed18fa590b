//! The publisher leg's repair: NACKs toward publishers that negotiated no RTX (RFC 4585
//! plain retransmission), and a keyframe request when a viewer asks for a packet the server
//! never received and no retransmission filled the hole in time. It must never send or hold
//! media itself, nor add work per forwarded packet: it acts once per publisher stream and
//! once per viewer NACK.
//!
//! What str0m 0.25 does, and why the hooks here are needed:
//!
//! - A receive stream is created with `suppress_nack = payload.resend.is_none()`
//!   (`streams/mod.rs`, `change/sdp.rs`): an m-line whose codec has no RTX payload type never
//!   gets a NACK from str0m, although RFC 4585 lets a sender answer a plain `nack` by
//!   resending the packet on its own SSRC with its own sequence number, which is what OBS,
//!   GStreamer's webrtcbin and the `webrtc` crate do when they offer no RTX. The flag is set
//!   once, at creation, and str0m exposes `StreamRx::suppress_nack(false)` through its direct
//!   API: [`nack_without_rtx`] calls it when the stream's first packet arrives (the core looks
//!   the stream up there anyway). str0m's receive register then finds the gaps, its NACK
//!   timer asks for them (retries paced by the stream's RTT) and its duplicate check
//!   (`is_new_packet`) hands a resent packet on once and drops any further copy, so a plain
//!   retransmission reaches the fan-out exactly once, late, and each viewer's `Rewriter` maps
//!   it onto the hole it left (same offset as its neighbours).
//! - str0m decides a stream's report cadence by `is_audio() == rtx.is_none()`: an RTX-less
//!   video stream gets audio's receiver report interval, 5 s by default, and with it the
//!   RRTR that yields the RTT its NACK timing uses. `prepare_peer` sets the audio interval of
//!   publishers to 1 s ([`PUBLISHER_REPORT_INTERVAL`]), which gives every publisher stream,
//!   audio included (a few dozen bytes a second), a report per second.

use super::*;

/// Receiver reports to publishers: every second for every stream (see the module doc).
pub(crate) const PUBLISHER_REPORT_INTERVAL: Duration = Duration::from_secs(1);

/// How long a viewer's hole may wait for the publisher's retransmission before a keyframe
/// is asked for, when the publisher's round-trip time is not known.
const HOLE_WAIT_DEFAULT: Duration = Duration::from_millis(300);
/// The least and most such a wait may be.
const HOLE_WAIT_MIN: Duration = Duration::from_millis(100);
const HOLE_WAIT_MAX: Duration = Duration::from_secs(1);

/// Turns str0m's NACK generation on for a publisher's video stream `ssrc` whatever RTX was
/// negotiated (a no-op where RTX is: str0m already NACKs those). Called once per stream, at
/// its first packet.
pub(super) fn nack_without_rtx(rtc: &mut str0m::Rtc, ssrc: Ssrc) {
    if let Some(rx) = rtc.direct_api().stream_rx(&ssrc) {
        rx.suppress_nack(false);
    }
}

/// How long a hole in a viewer's stream may wait for the upstream retransmission: two
/// publisher round trips (the server's NACK, its answer, one retry) and a little, within
/// [`HOLE_WAIT_MIN`]..[`HOLE_WAIT_MAX`].
#[must_use]
pub(crate) fn hole_wait(publisher_rtt: Option<Duration>) -> Duration {
    match publisher_rtt {
        Some(rtt) => (rtt * 2 + Duration::from_millis(50)).clamp(HOLE_WAIT_MIN, HOLE_WAIT_MAX),
        None => HOLE_WAIT_DEFAULT,
    }
}

/// The holes viewers asked about, per lane: the one watched (the first asked while none
/// was, and when), and up to which sequence number a keyframe was already asked for (the
/// viewer's NACKs for older holes go on for a while; the keyframe answers them all). One
/// watch per lane at most, so a burst of NACKs from many viewers costs one timer per viewer,
/// not one per sequence number. An entry names its viewer: a lane index reused by another
/// viewer starts afresh.
#[derive(Debug, Default)]
pub(crate) struct Holes {
    lanes: Map<usize, LaneHoles>,
}

#[derive(Debug, Clone, Copy)]
struct LaneHoles {
    peer: PeerId,
    pending: Option<(u16, Instant)>,
    settled: Option<u16>,
}

impl Holes {
    fn entry(&mut self, lane: usize, peer: PeerId) -> &mut LaneHoles {
        let fresh = LaneHoles {
            peer,
            pending: None,
            settled: None,
        };
        let e = self.lanes.entry(lane).or_insert(fresh);
        if e.peer != peer {
            *e = fresh;
        }
        e
    }

    /// Starts watching hole `seq` of lane `lane` (viewer `peer`), asked about at `now`;
    /// false if one is watched already (its outcome answers for this one too) or a keyframe
    /// was asked for after `seq` already.
    pub(crate) fn watch(&mut self, lane: usize, peer: PeerId, seq: u16, now: Instant) -> bool {
        let e = self.entry(lane, peer);
        let answered = e
            .settled
            .is_some_and(|upto| (seq.wrapping_sub(upto) as i16) <= 0);
        if e.pending.is_some() || answered {
            return false;
        }
        e.pending = Some((seq, now));
        true
    }

    /// The hole watched for `lane` of viewer `peer`, if any.
    pub(crate) fn pending(&self, lane: usize, peer: PeerId) -> Option<(u16, Instant)> {
        self.lanes
            .get(&lane)
            .filter(|e| e.peer == peer)
            .and_then(|e| e.pending)
    }

    /// The watched hole needs nothing more (filled, or the slot moved on).
    pub(crate) fn done(&mut self, lane: usize, peer: PeerId) {
        self.entry(lane, peer).pending = None;
    }

    /// A keyframe was asked for the lane, whose output had reached `upto`: holes up to there
    /// are answered.
    pub(crate) fn settle(&mut self, lane: usize, peer: PeerId, upto: u16) {
        let e = self.entry(lane, peer);
        e.pending = None;
        e.settled = Some(upto);
    }

    /// Forgets `lane` (its viewer left).
    pub(crate) fn forget(&mut self, lane: usize) {
        self.lanes.remove(&lane);
    }
}

/// Notes that viewer `peer` asked (lane `lane`) for `seq`, which its stream never sent (the
/// server never received it): the hole is watched, and its timer set.
pub(super) fn viewer_asked_for_hole(
    io: &mut Outbox<impl Outside>,
    lane: usize,
    peer: PeerId,
    seq: u16,
    now: Instant,
) {
    if io.holes.watch(lane, peer, seq, now) {
        // The publisher's RTT is not known here: the timer re-arms itself for the rest of
        // its wait once it is (`WorkerCore::hole_due`).
        io.timers
            .push(Reverse((now + HOLE_WAIT_MIN, Timer::Hole(lane))));
    }
}

impl<O: Outside> WorkerCore<O> {
    /// A watched hole's timer: if the hole is filled (a retransmission came and went to the
    /// viewer), nothing; if its wait is not over, the timer is set again; else a keyframe is
    /// asked for the viewer's track and layer, through the layer's gate (so as rate-limited
    /// as every other request).
    pub(super) fn hole_due(&mut self, lane_id: usize, now: Instant) {
        let Some(lane) = self.io.lanes.get(lane_id) else {
            // The viewer left (its lanes went with it).
            self.io.holes.forget(lane_id);
            return;
        };
        let (sid, si) = (lane.peer, lane.slot);
        let Some((seq, asked)) = self.io.holes.pending(lane_id, sid) else {
            return;
        };
        let filled = lane.out.as_ref().is_none_or(|s| !s.never_sent(seq));
        let upto = lane
            .rewriter
            .as_ref()
            .map_or(seq, |r| r.last_sent_seq() as u16);
        let bound = self
            .peers
            .get(&sid)
            .and_then(|p| p.slots.get(si))
            .and_then(|s| s.track.map(|t| (t, s.switch.layer)));
        let Some((tid, layer)) = bound.filter(|_| !filled) else {
            self.io.holes.done(lane_id, sid);
            return;
        };
        let rtt = self
            .tracks
            .get(&tid)
            .and_then(|t| self.peers.get(&t.publisher))
            .and_then(|p| p.link.rtt);
        let due = asked + hole_wait(rtt);
        if now < due {
            self.io.timers.push(Reverse((due, Timer::Hole(lane_id))));
            return;
        }
        self.io.holes.settle(lane_id, sid, upto);
        self.io.metrics.keyframe_requests_for_holes.inc();
        self.request_keyframe(tid, layer, now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hole_waits_two_publisher_round_trips_within_bounds() {
        assert_eq!(hole_wait(None), HOLE_WAIT_DEFAULT);
        assert_eq!(
            hole_wait(Some(Duration::from_millis(150))),
            Duration::from_millis(350)
        );
        assert_eq!(hole_wait(Some(Duration::ZERO)), HOLE_WAIT_MIN);
        // A satellite uplink (600 ms): a second at most, then the keyframe.
        assert_eq!(hole_wait(Some(Duration::from_millis(600))), HOLE_WAIT_MAX);
    }

    #[test]
    fn one_hole_is_watched_per_lane_and_a_keyframe_answers_the_older_ones() {
        let t0 = Instant::now();
        let mut h = Holes::default();
        assert!(h.watch(3, 1, 100, t0));
        assert!(
            !h.watch(3, 1, 101, t0 + Duration::from_millis(5)),
            "one per lane"
        );
        assert!(h.watch(4, 2, 100, t0), "another lane");
        assert_eq!(h.pending(3, 1), Some((100, t0)));
        assert_eq!(h.pending(3, 9), None, "not another viewer's");
        // Filled: the next hole is watched.
        h.done(3, 1);
        assert_eq!(h.pending(3, 1), None);
        assert!(h.watch(3, 1, 120, t0));
        // A keyframe asked for when the output had reached 130: holes up to it are answered,
        // with the sequence numbers wrapping.
        h.settle(3, 1, 130);
        assert!(!h.watch(3, 1, 120, t0) && !h.watch(3, 1, 130, t0));
        assert!(h.watch(3, 1, 131, t0), "a newer hole is watched");
        h.settle(3, 1, 65_530);
        assert!(!h.watch(3, 1, 65_500, t0));
        assert!(h.watch(3, 1, 4, t0), "past the wrap");
        // The lane index reused by another viewer starts afresh.
        assert!(h.watch(3, 7, 1, t0));
        h.forget(3);
        assert_eq!(h.pending(3, 7), None);
    }
}
