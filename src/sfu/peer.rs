//! One str0m `Rtc` and the worker's bookkeeping around it: its role, room, routing keys,
//! the tracks it publishes and the slots it receives into.

use std::collections::HashMap;
use std::time::Instant;

use str0m::format::PayloadParams;
use str0m::media::{MediaKind, Mid, Pt};
use str0m::rtp::Ssrc;
use str0m::Rtc;

use super::forward::Rewriter;
use super::room::{PeerId, TrackId};
use super::{MediaInfo, Role};

/// A subscriber m-line and what it is bound to.
#[derive(Debug)]
pub struct Slot {
    /// The subscriber's mid.
    pub mid: Mid,
    /// Audio or video.
    pub kind: MediaKind,
    /// The track feeding it.
    pub track: Option<TrackId>,
    /// The layer currently chosen (index into the track's layers).
    pub layer: usize,
    /// Requested rid (API), `None` for automatic.
    pub wanted_rid: Option<String>,
    /// Output sequence/timestamp continuity; created at the first packet (needs clock rate).
    pub rewriter: Option<Rewriter>,
    /// Cached payload-type mapping: publisher pt -> (our pt, is video).
    pub pt_map: Vec<(Pt, Pt)>,
    /// Since when this slot waits for a keyframe to start or switch, if it does.
    pub waiting_keyframe: Option<Instant>,
    /// When the server last asked for a keyframe on this slot's behalf.
    pub last_kf_request: Option<Instant>,
}

impl Slot {
    /// An unbound slot.
    pub fn new(mid: Mid, kind: MediaKind) -> Self {
        Slot {
            mid,
            kind,
            track: None,
            layer: 0,
            wanted_rid: None,
            rewriter: None,
            pt_map: Vec::new(),
            waiting_keyframe: None,
            last_kf_request: None,
        }
    }
}

/// Cumulative RTCP counters last seen in str0m stats, to turn them into metric increments.
#[derive(Debug, Default, Clone, Copy)]
pub struct StatsSeen {
    /// NACKs.
    pub nacks: u64,
}

/// One WebRTC peer on a worker.
pub struct Peer {
    /// Worker-local id.
    pub id: PeerId,
    /// The WHIP/WHEP session id.
    pub session: String,
    /// The room it belongs to.
    pub room: String,
    /// Publisher or subscriber.
    pub role: Role,
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
    pub slots: Vec<Slot>,
    /// The participant (lesson tokens), for source selection and the spotlight.
    pub part: Option<String>,
    /// Subscriber: which publishers it receives.
    pub follow: super::Follow,
    /// Per (mid, rid) cumulative counters from stats.
    pub stats_seen: HashMap<(Mid, Option<str0m::media::Rid>, bool), StatsSeen>,
}

impl Peer {
    /// The slot index for `mid`.
    pub fn slot_by_mid(&self, mid: Mid) -> Option<usize> {
        self.slots.iter().position(|s| s.mid == mid)
    }

    /// Negotiated parameters for an incoming payload type (cached).
    pub fn rx_params(&mut self, pt: Pt) -> Option<PayloadParams> {
        if let Some((_, p)) = self.rx_params.iter().find(|(p, _)| *p == pt) {
            return Some(*p);
        }
        let p = *self.rtc.codec_config().find(|p| p.pt() == pt)?;
        self.rx_params.push((pt, p));
        Some(p)
    }
}
