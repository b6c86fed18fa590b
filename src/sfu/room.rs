//! Rooms, published tracks and who receives what: the routing tables of one worker.
//!
//! A room holds its peers and the tracks its publishers send. A track is one publisher m-line
//! (audio, camera, screen); with simulcast it has several layers. Each subscriber m-line (a
//! "slot") is bound to at most one track of its kind: slots are filled in publish order, and a
//! slot whose track ends takes the next free track of the same kind, seamlessly (see
//! [`super::forward::Rewriter`]). Plain data; the worker applies it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::format::PayloadParams;
use str0m::media::{MediaKind, Mid, Pt, Rid};
use str0m::rtp::{ExtensionValues, Ssrc};

use super::keyframe::KeyframeGate;

/// Worker-local peer id (never reused within a worker).
pub(crate) type PeerId = u64;
/// Worker-local track id (never reused within a worker).
pub(crate) type TrackId = u64;

/// One simulcast layer (or the only layer) of a track.
#[derive(Debug)]
pub(crate) struct Layer {
    /// The rid, if simulcast.
    pub rid: Option<Rid>,
    /// The SSRC once packets arrived.
    pub ssrc: Option<Ssrc>,
    /// Keyframe request gate for this layer.
    pub gate: KeyframeGate,
    /// Bytes in the current rate window.
    pub window_bytes: u64,
    /// Estimated bitrate (bits/s) from the last full window.
    pub bitrate: u64,
    /// When a packet last arrived.
    pub last_packet: Option<Instant>,
    /// The packets since the last keyframe, for viewers that join mid-GOP.
    pub gop: GopCache,
    /// Workers this layer is piped to that missed a packet of it (their inbox was full):
    /// they get none of it until its next keyframe, so their GOP caches never hold a hole.
    pub pipe_gaps: Vec<usize>,
}

/// One packet kept in a [`GopCache`]. The payload is the publisher's own buffer (shared, not
/// copied).
#[derive(Debug, Clone)]
pub struct CachedPacket {
    /// Publisher sequence number (extended).
    pub seq: u64,
    /// RTP timestamp.
    pub ts: u32,
    /// Arrival time.
    pub arrival: Instant,
    /// Publisher payload type.
    pub pt: Pt,
    /// Marker bit.
    pub marker: bool,
    /// Payload.
    pub payload: Arc<[u8]>,
    /// Forwarded header extension values.
    pub ext: ExtensionValues,
}

impl CachedPacket {
    /// A copy for another worker, with a payload allocation of its own. Every viewer's
    /// retransmission history clones the payload's `Arc` and later drops it: a count shared
    /// by two workers would move its cache line between their cores for every copy either
    /// of them sends, where one copy of the bytes per worker costs nothing next to the
    /// hundreds of viewers it goes to.
    pub fn for_another_worker(&self) -> CachedPacket {
        CachedPacket {
            payload: Arc::from(&self.payload[..]),
            ..self.clone()
        }
    }
}

/// The current group of pictures of one video layer: its keyframe and every packet after it.
///
/// A viewer that joins (the bell: hundreds within seconds) gets this replayed at once and
/// decodes from it, instead of waiting for the next keyframe (a request per ~300 ms through
/// the gate, then the encoder's reaction). Bounded by packets and bytes: a GOP longer than
/// that (a publisher with a 10 s keyframe interval) stops being cached until the next
/// keyframe, and joiners fall back to asking for one. Touched only by the worker thread.
#[derive(Debug, Default)]
pub(crate) struct GopCache {
    packets: Vec<CachedPacket>,
    bytes: usize,
    /// False until a keyframe starts the cache, and after it overflowed.
    valid: bool,
}

impl GopCache {
    /// At most this many packets (~4 s of a 1.2 Mbit/s 720p stream).
    pub(crate) const MAX_PACKETS: usize = 2048;
    /// At most this many payload bytes.
    pub(crate) const MAX_BYTES: usize = 2 << 20;

    /// Takes a packet of the layer: a keyframe's first packet restarts the cache.
    pub(crate) fn push(&mut self, keyframe_start: bool, p: CachedPacket) {
        if keyframe_start {
            self.packets.clear();
            self.bytes = 0;
            self.valid = true;
        }
        if !self.valid {
            return;
        }
        if self.packets.len() >= Self::MAX_PACKETS || self.bytes + p.payload.len() > Self::MAX_BYTES
        {
            self.packets = Vec::new();
            self.bytes = 0;
            self.valid = false;
            return;
        }
        self.bytes += p.payload.len();
        // Upstream reordering: keep sequence order so the replay starts at the keyframe.
        let at = self.packets.partition_point(|q| q.seq < p.seq);
        if self.packets.get(at).is_some_and(|q| q.seq == p.seq) {
            self.bytes -= p.payload.len();
            return; // a retransmission of a packet we have
        }
        self.packets.insert(at, p);
    }

    /// At most this many packets are replayed to a joiner (~1.3 s of a 1.2 Mbit/s stream,
    /// ~400 KB): a longer burst would itself cause loss on a slow rural link. Beyond it the
    /// joiner asks for a keyframe, whose arrival restarts the cache short for those after it.
    pub(crate) const MAX_REPLAY: usize = 400;

    /// The cached GOP, keyframe first, or `None` when there is none (or too much) to replay.
    pub(crate) fn replay(&self) -> Option<&[CachedPacket]> {
        (self.valid && !self.packets.is_empty() && self.packets.len() <= Self::MAX_REPLAY)
            .then_some(&self.packets[..])
    }

    /// Forgets everything (the publisher changed codec or left).
    pub(crate) fn clear(&mut self) {
        *self = GopCache::default();
    }
}

impl Layer {
    /// A layer with no packets yet.
    pub(crate) fn new(rid: Option<Rid>, keyframe_interval: Duration) -> Self {
        Layer {
            rid,
            ssrc: None,
            gate: KeyframeGate::new(keyframe_interval),
            window_bytes: 0,
            bitrate: 0,
            last_packet: None,
            gop: GopCache::default(),
            pipe_gaps: Vec::new(),
        }
    }

    /// Whether the layer is sending (a packet within the last second).
    pub(crate) fn active(&self, now: Instant) -> bool {
        self.last_packet
            .map(|t| now.saturating_duration_since(t) < Duration::from_secs(1))
            .unwrap_or(false)
    }
}

/// One published m-line.
#[derive(Debug)]
pub(crate) struct Track {
    /// The publisher.
    pub publisher: PeerId,
    /// The publisher's mid.
    pub mid: Mid,
    /// Audio or video.
    pub kind: MediaKind,
    /// Layers (one unless simulcast).
    pub layers: Vec<Layer>,
    /// Subscriber slots bound to this track: (subscriber, slot index, its lane).
    pub subscribers: Vec<(PeerId, usize, usize)>,
    /// The codec the publisher is sending (known from the first packet).
    pub params: Option<PayloadParams>,
    /// The publisher's participant id (lesson tokens), for source selection.
    pub part: Option<String>,
    /// A track piped in from the room's home worker: (that worker, the track's id there).
    /// Its `publisher` is then an id no peer has.
    pub origin: Option<(usize, TrackId)>,
    /// Home track: the workers it is piped to (see `super::pipe`).
    pub pipes: Vec<usize>,
}

impl Track {
    /// The layer index for `rid`, adding a layer for a rid seen for the first time.
    pub(crate) fn layer_for(&mut self, rid: Option<Rid>, keyframe_interval: Duration) -> usize {
        if let Some(i) = self.layers.iter().position(|l| l.rid == rid) {
            return i;
        }
        // A single unnamed layer adopts the first rid it sees (publisher without a=simulcast
        // that still sends rid extensions).
        if self.layers.len() == 1 && self.layers[0].rid.is_none() && self.layers[0].ssrc.is_none() {
            self.layers[0].rid = rid;
            return 0;
        }
        self.layers.push(Layer::new(rid, keyframe_interval));
        self.layers.len() - 1
    }

    /// The layer a subscriber gets: the requested rid if it is sending, else the highest
    /// bitrate active layer, else the first layer.
    pub(crate) fn choose_layer(&self, wanted: Option<&str>, now: Instant) -> usize {
        if let Some(w) = wanted {
            if let Some(i) = self
                .layers
                .iter()
                .position(|l| l.rid.as_deref() == Some(w) && l.active(now))
            {
                return i;
            }
        }
        self.layers
            .iter()
            .enumerate()
            .filter(|(_, l)| l.active(now))
            .max_by_key(|(_, l)| l.bitrate)
            .map(|(i, _)| i)
            .unwrap_or(0)
    }
}

/// A room on this worker.
#[derive(Debug, Default)]
pub(crate) struct Room {
    /// Peers in the room.
    pub peers: Vec<PeerId>,
    /// Tracks in publish order.
    pub tracks: Vec<TrackId>,
    /// The participant on the big screen, if any.
    pub spotlight: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_packet_for_another_worker_has_the_same_bytes_in_its_own_allocation() {
        let pkt = CachedPacket {
            seq: 70_000,
            ts: 90_000,
            arrival: Instant::now(),
            pt: Pt::from(96),
            marker: true,
            payload: Arc::from(&[7u8; 1100][..]),
            ext: ExtensionValues::default(),
        };
        let copy = pkt.for_another_worker();
        assert_eq!(copy.payload, pkt.payload);
        assert!(!Arc::ptr_eq(&copy.payload, &pkt.payload), "no shared count");
        assert_eq!(Arc::strong_count(&pkt.payload), 1);
        assert_eq!(
            (copy.seq, copy.ts, copy.arrival, copy.pt, copy.marker),
            (pkt.seq, pkt.ts, pkt.arrival, pkt.pt, pkt.marker)
        );
    }

    #[test]
    fn choose_layer_prefers_request_then_bitrate() {
        let now = Instant::now();
        let iv = Duration::from_millis(300);
        let mut t = Track {
            publisher: 1,
            mid: Mid::from("0"),
            kind: MediaKind::Video,
            layers: vec![],
            subscribers: vec![],
            params: None,
            part: None,
            origin: None,
            pipes: vec![],
        };
        for (rid, rate) in [("l", 150_000u64), ("h", 2_500_000), ("m", 600_000)] {
            let i = t.layer_for(Some(Rid::from(rid)), iv);
            t.layers[i].bitrate = rate;
            t.layers[i].last_packet = Some(now);
        }
        assert_eq!(
            t.layers[t.choose_layer(None, now)].rid.as_deref(),
            Some("h")
        );
        assert_eq!(
            t.layers[t.choose_layer(Some("m"), now)].rid.as_deref(),
            Some("m")
        );
        // A requested layer that stopped sending falls back to the best active one.
        t.layers[2].last_packet = Some(now - Duration::from_secs(5));
        assert_eq!(
            t.layers[t.choose_layer(Some("m"), now)].rid.as_deref(),
            Some("h")
        );
    }

    fn cp(seq: u64, len: usize) -> CachedPacket {
        CachedPacket {
            seq,
            ts: seq as u32 * 3000,
            arrival: Instant::now(),
            pt: Pt::from(96),
            marker: false,
            payload: vec![0u8; len].into(),
            ext: ExtensionValues::default(),
        }
    }

    #[test]
    fn gop_cache_starts_at_a_keyframe_and_keeps_order() {
        let mut g = GopCache::default();
        g.push(false, cp(1, 100));
        assert!(g.replay().is_none(), "nothing before the first keyframe");
        g.push(true, cp(10, 100));
        g.push(false, cp(12, 100));
        g.push(false, cp(11, 100)); // reordered upstream
        g.push(false, cp(12, 100)); // retransmitted
        let seqs: Vec<u64> = g.replay().unwrap().iter().map(|p| p.seq).collect();
        assert_eq!(seqs, [10, 11, 12]);
        g.push(true, cp(20, 100));
        assert_eq!(g.replay().unwrap().len(), 1, "a new keyframe restarts it");
    }

    #[test]
    fn gop_cache_gives_up_when_too_long_until_the_next_keyframe() {
        let mut g = GopCache::default();
        g.push(true, cp(0, 1000));
        for i in 1..GopCache::MAX_PACKETS as u64 + 5 {
            g.push(false, cp(i, 1000));
        }
        assert!(g.replay().is_none(), "an overlong GOP is not replayed half");
        let mut g = GopCache::default();
        for i in 0..=GopCache::MAX_REPLAY as u64 {
            g.push(i == 0, cp(i, 100));
        }
        assert!(g.replay().is_none(), "kept, but too long a burst to replay");
        g.push(true, cp(5000, 1000));
        assert_eq!(g.replay().unwrap().len(), 1);
        let mut g = GopCache::default();
        g.push(true, cp(0, GopCache::MAX_BYTES));
        g.push(false, cp(1, 1));
        assert!(g.replay().is_none(), "bounded by bytes too");
    }
}
