//! One str0m `Rtc` and the worker's bookkeeping around it: its role, room, routing keys,
//! the tracks it publishes and the slots it receives into.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use str0m::format::PayloadParams;
use str0m::media::{MediaKind, Mid, Pt};
use str0m::rtp::Ssrc;
use str0m::Rtc;

use super::dtls_tap::KeySlot;
use super::egress::{Egress, Stream};
use super::forward::Rewriter;
use super::layer::LayerSwitch;
use super::room::{PeerId, TrackId};
use super::{MediaInfo, PeerKind};

/// A subscriber m-line and what it is bound to.
#[derive(Debug)]
pub(crate) struct RecvSlot {
    /// The subscriber's mid.
    pub mid: Mid,
    /// Audio or video.
    pub kind: MediaKind,
    /// The track feeding it.
    pub track: Option<TrackId>,
    /// The layer chosen and the wait for a keyframe (see [`LayerSwitch`]).
    pub switch: LayerSwitch,
    /// Requested rid (API), `None` for automatic.
    pub wanted_rid: Option<String>,
    /// The layer the viewer's downlink policy chose (`core/adapt.rs`), `None`: the best.
    pub auto: Option<usize>,
    /// Video paused for the viewer's link (audio only; `core/downlink.rs`).
    pub paused: bool,
    /// Its forwarding state in the worker's lanes (see [`Lane`]).
    pub lane: usize,
    /// When to replace this slot's retransmission history with a fresh one: a GOP replay
    /// grew it to hold the whole burst, and str0m's history never shrinks by itself.
    pub history_reset_at: Option<Instant>,
}

impl RecvSlot {
    /// An unbound slot whose forwarding state is lane `lane`.
    pub(crate) fn new(mid: Mid, kind: MediaKind, lane: usize) -> Self {
        RecvSlot {
            mid,
            kind,
            track: None,
            switch: LayerSwitch::default(),
            wanted_rid: None,
            auto: None,
            paused: false,
            lane,
            history_reset_at: None,
        }
    }
}

/// Payload types a lane remembers mapping (a publisher's media pts on one track: one per
/// codec it switches between). Beyond that the mapping is looked up again each packet.
const PT_MAP: usize = 4;

/// What forwarding one packet to one subscriber slot reads and writes, kept apart from the
/// `Peer` in the worker's slab of lanes.
///
/// A frame fanned out to N viewers touches N of these, one after the other, and a viewer's
/// cold state is what the fan-out costs beyond the kernel's send (BENCHMARKS.md, session 9).
/// Reached through the peer map, the same state sat behind a hash probe into 10 KB
/// entries (`Peer` holds str0m's `Rtc` inline), then the slot array, then the payload-type
/// map: a chain of dependent cache misses per viewer. A lane is one record reached by
/// index from the track's subscriber list, in join order, with its own SRTP context; only
/// the first packet of a stream and the str0m fallback go back to the `Peer`.
#[derive(Debug)]
pub(crate) struct Lane {
    /// The subscriber.
    pub peer: PeerId,
    /// Its slot (index into `Peer::slots`).
    pub slot: usize,
    /// The subscriber is connected (`Peer::connected`).
    pub live: bool,
    /// Where the fast path sends (`Peer::remote`).
    pub remote: Option<std::net::SocketAddr>,
    /// The fast path's SRTP context, once the peer's keys are known (the same keys as
    /// `Peer::egress`, its own copy so the send reads no other record).
    pub egress: Option<Egress>,
    /// Output sequence/timestamp continuity; created at the first packet (needs clock rate).
    pub rewriter: Option<Rewriter>,
    /// Cached payload-type mapping: publisher pt -> our pt (the first `pt_len` entries).
    pt_map: [(Pt, Pt); PT_MAP],
    pt_len: u8,
    /// Bit `i`: entry `i` of `pt_map` is RED cut to its primary block (`sfu::red`).
    pt_strip: u8,
    /// The fast path's state for this m-line, made at its first packet on that path.
    pub out: Option<Stream>,
    /// Media bytes the fast path sent (str0m's own counters do not see them).
    pub direct_bytes_out: u64,
    /// Video paused for the viewer's link (`RecvSlot::paused`): the fan-out skips it.
    pub paused: bool,
}

impl Lane {
    /// Slot `slot` of subscriber `peer`, before it is connected.
    pub(crate) fn new(peer: PeerId, slot: usize) -> Self {
        Lane {
            peer,
            slot,
            live: false,
            remote: None,
            egress: None,
            rewriter: None,
            pt_map: [(Pt::from(0), Pt::from(0)); PT_MAP],
            pt_len: 0,
            pt_strip: 0,
            out: None,
            direct_bytes_out: 0,
            paused: false,
        }
    }

    /// Our payload type for the publisher's `pt`, if mapped, and whether such a packet is
    /// cut to its RED primary block (`sfu::red::out_pt`).
    pub(crate) fn mapped_pt(&self, pt: Pt) -> Option<(Pt, bool)> {
        self.pt_map[..usize::from(self.pt_len)]
            .iter()
            .position(|(i, _)| *i == pt)
            .map(|k| (self.pt_map[k].1, self.pt_strip & (1 << k) != 0))
    }

    /// Remembers `pt` -> `ours` (`strip`: cut RED to its primary), while there is room.
    pub(crate) fn map_pt(&mut self, pt: Pt, ours: Pt, strip: bool) {
        if let Some(e) = self.pt_map.get_mut(usize::from(self.pt_len)) {
            *e = (pt, ours);
            if strip {
                self.pt_strip |= 1 << self.pt_len;
            }
            self.pt_len += 1;
        }
    }

    /// Forgets the payload-type mapping (the slot is bound to another track).
    pub(crate) fn clear_pts(&mut self) {
        self.pt_len = 0;
        self.pt_strip = 0;
    }
}

/// Cumulative RTCP counters last seen in str0m stats, to turn them into metric increments.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct StatsSeen {
    /// NACKs.
    pub nacks: u64,
}

/// The latest link figures of a peer, from str0m's once-a-second stats events.
///
/// Updated in place from `Event::PeerStats`, `Event::MediaIngressStats` and
/// `Event::MediaEgressStats`: no allocation, no lock, a few arithmetic operations per second
/// per peer. str0m emits one `PeerStats` and then the media stats of every stream in one
/// batch, so a "round" starts at each `PeerStats`; within a round the worst stream counts, and a
/// round without a figure keeps the previous one.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LinkFigures {
    round: u32,
    rtt_round: u32,
    loss_round: u32,
    /// Round-trip time: TWCC (subscribers), receiver reports (subscribers) or XR DLRR
    /// (publishers that answer RRTR); `None` until one is known.
    pub rtt: Option<Duration>,
    /// Loss fraction (0..1): from the receiver reports the server sends a publisher, or the
    /// ones a subscriber sends the server. `None` until known.
    pub loss: Option<f32>,
    bytes_rx: u64,
    bytes_tx: u64,
    at: Instant,
    /// Media the server received from the peer over the last stats interval (kbit/s).
    pub kbps_in: f32,
    /// Media the server sent to the peer over the last stats interval (kbit/s).
    pub kbps_out: f32,
}

impl LinkFigures {
    /// Nothing known yet; rates are counted from `now` (the peer's creation).
    pub(crate) fn new(now: Instant) -> Self {
        LinkFigures {
            round: 0,
            rtt_round: 0,
            loss_round: 0,
            rtt: None,
            loss: None,
            bytes_rx: 0,
            bytes_tx: 0,
            at: now,
            kbps_in: 0.0,
            kbps_out: 0.0,
        }
    }

    /// A `PeerStats` event: cumulative media bytes at `at`, and maybe an RTT. Starts a round.
    pub(crate) fn on_peer_stats(
        &mut self,
        bytes_rx: u64,
        bytes_tx: u64,
        rtt: Option<Duration>,
        at: Instant,
    ) {
        self.round = self.round.wrapping_add(1);
        let secs = at.saturating_duration_since(self.at).as_secs_f32();
        if secs > 0.0 {
            let kbps =
                |now: u64, before: u64| now.saturating_sub(before) as f32 * 8.0 / 1000.0 / secs;
            self.kbps_in = kbps(bytes_rx, self.bytes_rx);
            self.kbps_out = kbps(bytes_tx, self.bytes_tx);
            self.bytes_rx = bytes_rx;
            self.bytes_tx = bytes_tx;
            self.at = at;
        }
        if let Some(r) = rtt {
            self.on_rtt(r);
        }
    }

    /// An RTT figure of the current round (the largest of the round wins).
    pub(crate) fn on_rtt(&mut self, rtt: Duration) {
        if self.rtt_round != self.round {
            self.rtt_round = self.round;
            self.rtt = Some(rtt);
        } else {
            self.rtt = Some(self.rtt.map_or(rtt, |r| r.max(rtt)));
        }
    }

    /// A loss fraction of the current round (the largest of the round wins).
    pub(crate) fn on_loss(&mut self, loss: f32) {
        let loss = if loss.is_finite() {
            loss.clamp(0.0, 1.0)
        } else {
            0.0
        };
        if self.loss_round != self.round {
            self.loss_round = self.round;
            self.loss = Some(loss);
        } else {
            self.loss = Some(self.loss.map_or(loss, |l| l.max(loss)));
        }
    }
}

/// One WebRTC peer on a worker.
pub(crate) struct Peer {
    /// Worker-local id.
    pub id: PeerId,
    /// The WHIP/WHEP session id.
    pub session: String,
    /// The room it belongs to.
    pub room: String,
    /// Publisher or subscriber.
    pub role: PeerKind,
    /// The str0m instance.
    pub rtc: Rtc,
    /// Negotiated m-lines.
    pub medias: Vec<MediaInfo>,
    /// When str0m next wants a timeout.
    pub next_timeout: Instant,
    /// DTLS is up and media may flow.
    pub connected: bool,
    /// Since when ICE has been disconnected (awaiting a restart).
    pub disconnected_since: Option<Instant>,
    /// Publisher: its tracks by mid.
    pub tracks: Vec<(Mid, TrackId)>,
    /// Publisher: SSRC -> (track, layer) cache, filled on first packet of each stream.
    pub rx_streams: HashMap<Ssrc, (TrackId, usize)>,
    /// Publisher: pt -> negotiated parameters cache.
    pub rx_params: Vec<(Pt, PayloadParams)>,
    /// Subscriber: its slots.
    pub slots: Vec<RecvSlot>,
    /// The participant (lesson tokens), for source selection and the spotlight.
    pub part: Option<String>,
    /// Subscriber: which publishers it receives.
    pub follow: super::Follow,
    /// Per (mid, rid) cumulative counters from stats.
    pub stats_seen: HashMap<(Mid, Option<str0m::media::Rid>, bool), StatsSeen>,
    /// Latest link figures (RTT, loss, rates) for link-quality summaries.
    pub link: LinkFigures,
    /// Where the DTLS handshake leaves the SRTP keys.
    pub keys: KeySlot,
    /// Subscriber: the fast path's SRTP context, once the keys are known (see `egress`),
    /// for its RTCP (each lane has its own for media).
    pub egress: Option<Egress>,
    /// Whether making `egress` was tried (once).
    pub egress_tried: bool,
    /// Where str0m last sent DTLS or SRTP (the nominated ICE pair's remote address): where
    /// the fast path sends.
    pub remote: Option<std::net::SocketAddr>,
    /// A viewer away from its room's home worker: that worker (told when the viewer goes).
    pub piped_from: Option<usize>,
    /// Publisher: the cap on what it sends in (`media.max_publish_kbps` / `_pps`).
    pub limit: super::limit::TokenBucket,
    /// Subscriber: its downlink estimate and layer policy (`core/adapt.rs`).
    pub adapt: super::core::Adapt,
    /// Subscriber: what its link carried, for the lesson's link report (`core/linkreport.rs`).
    pub tally: super::core::LinkTally,
}

impl Peer {
    /// The slot index for `mid`.
    pub(crate) fn slot_by_mid(&self, mid: Mid) -> Option<usize> {
        self.slots.iter().position(|s| s.mid == mid)
    }

    /// Negotiated parameters for an incoming payload type (cached).
    pub(crate) fn rx_params(&mut self, pt: Pt) -> Option<PayloadParams> {
        if let Some((_, p)) = self.rx_params.iter().find(|(p, _)| *p == pt) {
            return Some(*p);
        }
        // A RED packet (RFC 2198) is its primary codec's, under its own payload type.
        let p = *self
            .rtc
            .codec_config()
            .find(|p| p.pt() == pt || p.red() == Some(pt))?;
        self.rx_params.push((pt, p));
        Some(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lane_remembers_a_few_payload_types_and_forgets_them_on_rebind() {
        let mut lane = Lane::new(7, 1);
        assert_eq!(lane.mapped_pt(Pt::from(96)), None);
        for i in 0..6u8 {
            lane.map_pt(Pt::from(96 + i), Pt::from(100 + i), i == 1);
        }
        // The first PT_MAP are kept; the rest are looked up again each time (not wrongly).
        for i in 0..6u8 {
            let want = (usize::from(i) < PT_MAP).then(|| (Pt::from(100 + i), i == 1));
            assert_eq!(lane.mapped_pt(Pt::from(96 + i)), want, "pt {}", 96 + i);
        }
        lane.clear_pts();
        assert_eq!(lane.mapped_pt(Pt::from(96)), None);
        lane.map_pt(Pt::from(111), Pt::from(109), false);
        assert_eq!(lane.mapped_pt(Pt::from(111)), Some((Pt::from(109), false)));
        lane.map_pt(Pt::from(63), Pt::from(109), true);
        assert_eq!(lane.mapped_pt(Pt::from(63)), Some((Pt::from(109), true)));
    }

    #[test]
    fn link_figures_rates_rounds_and_worst_stream() {
        let t0 = Instant::now();
        let mut l = LinkFigures::new(t0);
        assert_eq!((l.rtt, l.loss), (None, None));
        // 125 000 bytes in over 1 s = 1000 kbit/s; 62 500 out = 500 kbit/s.
        l.on_peer_stats(125_000, 62_500, None, t0 + Duration::from_secs(1));
        assert!((l.kbps_in - 1000.0).abs() < 0.01, "{}", l.kbps_in);
        assert!((l.kbps_out - 500.0).abs() < 0.01, "{}", l.kbps_out);
        l.on_rtt(Duration::from_millis(40));
        l.on_rtt(Duration::from_millis(90));
        l.on_loss(0.01);
        l.on_loss(0.05);
        assert_eq!(
            l.rtt,
            Some(Duration::from_millis(90)),
            "worst stream of the round"
        );
        assert_eq!(l.loss, Some(0.05));
        // Next round: the new figures replace the old; a round without loss keeps it.
        l.on_peer_stats(
            250_000,
            62_500,
            Some(Duration::from_millis(30)),
            t0 + Duration::from_secs(2),
        );
        assert!((l.kbps_in - 1000.0).abs() < 0.01);
        assert_eq!(l.kbps_out, 0.0);
        assert_eq!(l.rtt, Some(Duration::from_millis(30)));
        assert_eq!(l.loss, Some(0.05));
        l.on_loss(0.0);
        assert_eq!(l.loss, Some(0.0));
        l.on_loss(f32::NAN);
        assert_eq!(l.loss, Some(0.0));
    }
}
