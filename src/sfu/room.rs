//! Rooms, published tracks and who receives what: the routing tables of one worker.
//!
//! A room holds its peers and the tracks its publishers send. A track is one publisher m-line
//! (audio, camera, screen); with simulcast it has several layers. Each subscriber m-line (a
//! "slot") is bound to at most one track of its kind: slots are filled in publish order, and a
//! slot whose track ends takes the next free track of the same kind, seamlessly (see
//! [`super::forward::Rewriter`]). Plain data; the worker applies it.

use std::time::{Duration, Instant};

use str0m::format::PayloadParams;
use str0m::media::{MediaKind, Mid, Rid};
use str0m::rtp::Ssrc;

use super::keyframe::KeyframeGate;

/// Worker-local peer id (never reused within a worker).
pub type PeerId = u64;
/// Worker-local track id (never reused within a worker).
pub type TrackId = u64;

/// One simulcast layer (or the only layer) of a track.
#[derive(Debug)]
pub struct Layer {
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
}

impl Layer {
    /// A layer with no packets yet.
    pub fn new(rid: Option<Rid>, keyframe_interval: Duration) -> Self {
        Layer {
            rid,
            ssrc: None,
            gate: KeyframeGate::new(keyframe_interval),
            window_bytes: 0,
            bitrate: 0,
            last_packet: None,
        }
    }

    /// Whether the layer is sending (a packet within the last second).
    pub fn active(&self, now: Instant) -> bool {
        self.last_packet
            .map(|t| now.saturating_duration_since(t) < Duration::from_secs(1))
            .unwrap_or(false)
    }
}

/// One published m-line.
#[derive(Debug)]
pub struct Track {
    /// The publisher.
    pub publisher: PeerId,
    /// The publisher's mid.
    pub mid: Mid,
    /// Audio or video.
    pub kind: MediaKind,
    /// Layers (one unless simulcast).
    pub layers: Vec<Layer>,
    /// Subscriber slots bound to this track: (subscriber, slot index).
    pub subscribers: Vec<(PeerId, usize)>,
    /// The codec the publisher is sending (known from the first packet).
    pub params: Option<PayloadParams>,
}

impl Track {
    /// The layer index for `rid`, adding a layer for a rid seen for the first time.
    pub fn layer_for(&mut self, rid: Option<Rid>, keyframe_interval: Duration) -> usize {
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
    pub fn choose_layer(&self, wanted: Option<&str>, now: Instant) -> usize {
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
pub struct Room {
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
}
