//! Prometheus metrics: one registry, typed handles shared by the HTTP edge and the media workers.
//!
//! Handles are atomics; the media loop only does relaxed increments on them (no locks).

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Direction of a peer's media relative to the server.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
pub enum RoleLabel {
    /// A WHIP peer sending media in.
    Publisher,
    /// A WHEP peer receiving media.
    Subscriber,
}

/// Label set `{role=…}`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RoleLabels {
    /// The role.
    pub role: RoleLabel,
}

/// Label set for HTTP responses.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    /// The endpoint family (whip, whep, …).
    pub endpoint: String,
    /// The status code.
    pub status: u16,
}

/// All metrics of the process.
#[derive(Clone)]
pub struct Metrics {
    /// The registry `/metrics` encodes.
    pub registry: Arc<Registry>,
    /// Connected or connecting peers by role.
    pub peers: Family<RoleLabels, Gauge>,
    /// Published tracks (one per m-line, simulcast layers count once).
    pub tracks: Gauge,
    /// Rooms with a peer or a piped-in track, summed over the media workers (a room spread
    /// over several workers counts once on each).
    pub rooms: Gauge,
    /// Rooms piped from their home worker to another worker (counted per receiving worker).
    pub pipes: Gauge,
    /// RTP packets received from publishers.
    pub rtp_packets_in: Counter,
    /// RTP payload bytes received from publishers.
    pub rtp_bytes_in: Counter,
    /// RTP packets forwarded to subscribers.
    pub rtp_packets_out: Counter,
    /// RTP payload bytes forwarded to subscribers.
    pub rtp_bytes_out: Counter,
    /// UDP datagrams received on media sockets.
    pub udp_datagrams_in: Counter,
    /// UDP datagrams sent on media sockets.
    pub udp_datagrams_out: Counter,
    /// Of those, datagrams that left inside UDP GSO sends (runs to one address).
    pub udp_gso_datagrams_out: Counter,
    /// UDP GSO sends (`udp_gso_datagrams_out / udp_gso_sends` datagrams per send).
    pub udp_gso_sends: Counter,
    /// Send system calls on media sockets (`udp_datagrams_out / udp_send_calls` per call).
    pub udp_send_calls: Counter,
    /// RTP padding bytes added so that a packet could join a GSO run (the cost of the runs).
    pub rtp_padding_bytes_out: Counter,
    /// Runs to one viewer cut because the next datagram to it was longer (what the padding
    /// prevents).
    pub udp_gso_run_breaks: Counter,
    /// Datagrams that matched no peer (unknown address or ufrag) and were dropped.
    pub udp_unroutable: Counter,
    /// NACKs received from subscribers (answered from the RTX cache).
    pub nacks_received: Counter,
    /// NACKs sent to publishers for packets lost upstream.
    pub nacks_sent: Counter,
    /// Keyframe requests (PLI/FIR) received from subscribers or raised by the server.
    pub keyframe_requests_in: Counter,
    /// Keyframe requests actually sent to publishers.
    pub keyframe_requests_sent: Counter,
    /// Keyframe requests absorbed by coalescing.
    pub keyframe_requests_coalesced: Counter,
    /// Simulcast layer switches done for subscribers.
    pub layer_switches: Counter,
    /// Viewers started from a cached group of pictures instead of a keyframe request.
    pub gop_replays: Counter,
    /// Extra socket reads for the rest of a frame that was read only in part.
    pub frame_rereads: Counter,
    /// Looks for a frame's rest made between chunks of viewers while its first part went out.
    pub fanout_looks: Counter,
    /// Packets that joined the fan-out of their frame's first part while it went out.
    pub fanout_joined_packets: Counter,
    /// Packets a room's home worker piped to other workers holding some of its viewers.
    pub pipe_packets: Counter,
    /// Packets not piped because the receiving worker had too many waiting.
    pub pipe_drops: Counter,
    /// Viewer retransmission histories replaced after a GOP replay burst aged out.
    pub nack_history_resets: Counter,
    /// RTP packets the worker protected itself (the fast path, `sfu::egress`).
    pub direct_srtp_packets_out: Counter,
    /// Packets resent by the fast path in answer to subscribers' NACKs.
    pub retransmissions_out: Counter,
    /// Round-trip time samples per peer.
    pub rtt_seconds: Histogram,
    /// Per sent datagram: kernel arrival of the earliest datagram read in the same loop turn
    /// → hand-off to the kernel (what the server adds to a packet's trip, an upper bound).
    pub forward_residence_seconds: Histogram,
    /// HTTP signalling responses.
    pub http_responses: Family<HttpLabels, Counter>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics(..)")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Self {
        let mut r = Registry::with_prefix("classrelay");
        let peers = Family::<RoleLabels, Gauge>::default();
        r.register("peers", "WebRTC peers by role", peers.clone());
        let tracks = Gauge::default();
        r.register("tracks", "Published media tracks", tracks.clone());
        let rooms = Gauge::default();
        r.register(
            "rooms",
            "Rooms with a peer or piped-in track, summed over media workers",
            rooms.clone(),
        );
        let pipes = Gauge::default();
        r.register(
            "pipes",
            "Rooms piped from their home media worker to another (per receiving worker)",
            pipes.clone(),
        );
        let c = |r: &mut Registry, name: &str, help: &str| {
            let c: Counter<u64, AtomicU64> = Counter::default();
            r.register(name, help, c.clone());
            c
        };
        let rtp_packets_in = c(
            &mut r,
            "rtp_packets_in",
            "RTP packets received from publishers",
        );
        let rtp_bytes_in = c(&mut r, "rtp_bytes_in", "RTP payload bytes received");
        let rtp_packets_out = c(&mut r, "rtp_packets_out", "RTP packets forwarded");
        let rtp_bytes_out = c(&mut r, "rtp_bytes_out", "RTP payload bytes forwarded");
        let udp_datagrams_in = c(&mut r, "udp_datagrams_in", "UDP datagrams received");
        let udp_datagrams_out = c(&mut r, "udp_datagrams_out", "UDP datagrams sent");
        let udp_gso_sends = c(
            &mut r,
            "udp_gso_sends",
            "UDP GSO sends (each one message carrying a run of datagrams to one viewer)",
        );
        let udp_send_calls = c(
            &mut r,
            "udp_send_calls",
            "sendmmsg calls on media sockets (each carries datagrams and GSO runs to many viewers)",
        );
        let udp_gso_datagrams_out = c(
            &mut r,
            "udp_gso_datagrams_out",
            "UDP datagrams sent inside GSO sends (several to one address in one call)",
        );
        let rtp_padding_bytes_out = c(
            &mut r,
            "rtp_padding_bytes_out",
            "RTP padding bytes added to make a packet the size of the GSO run it joins",
        );
        let udp_gso_run_breaks = c(
            &mut r,
            "udp_gso_run_breaks",
            "GSO runs to one viewer cut because the next datagram to it was longer than the run's",
        );
        let udp_unroutable = c(
            &mut r,
            "udp_unroutable",
            "UDP datagrams that matched no peer and were dropped",
        );
        let nacks_received = c(&mut r, "nacks_received", "NACKs received from subscribers");
        let nacks_sent = c(&mut r, "nacks_sent", "NACKs sent to publishers");
        let keyframe_requests_in = c(
            &mut r,
            "keyframe_requests_in",
            "Keyframe requests from subscribers or the server",
        );
        let keyframe_requests_sent = c(
            &mut r,
            "keyframe_requests_sent",
            "Keyframe requests (PLI) sent to publishers",
        );
        let keyframe_requests_coalesced = c(
            &mut r,
            "keyframe_requests_coalesced",
            "Keyframe requests absorbed by coalescing",
        );
        let layer_switches = c(&mut r, "layer_switches", "Simulcast layer switches");
        let gop_replays = c(
            &mut r,
            "gop_replays",
            "Viewers started from the cached group of pictures (no keyframe request)",
        );
        let frame_rereads = c(
            &mut r,
            "frame_rereads",
            "Extra socket reads made because the media read so far ended mid-frame",
        );
        let fanout_looks = c(
            &mut r,
            "fanout_looks",
            "Looks for a frame's rest made between chunks of viewers while its first part went out",
        );
        let fanout_joined_packets = c(
            &mut r,
            "fanout_joined_packets",
            "Packets that joined the fan-out of their frame's first part while it went out",
        );
        let pipe_packets = c(
            &mut r,
            "pipe_packets",
            "Packets piped from a room's home worker to other workers holding its viewers",
        );
        let pipe_drops = c(
            &mut r,
            "pipe_drops",
            "Packets not piped: the receiving worker had too many waiting",
        );
        let nack_history_resets = c(
            &mut r,
            "nack_history_resets",
            "Viewer retransmission histories shrunk back after a GOP replay burst",
        );
        let direct_srtp_packets_out = c(
            &mut r,
            "direct_srtp_packets_out",
            "RTP packets to subscribers SRTP-protected by the worker's fast path",
        );
        let retransmissions_out = c(
            &mut r,
            "retransmissions_out",
            "Packets resent to subscribers by the fast path after a NACK",
        );
        let forward_residence_seconds = Histogram::new([
            0.00005, 0.0001, 0.0002, 0.0003, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.003, 0.005,
            0.0075, 0.01, 0.02, 0.05, 0.1,
        ]);
        r.register(
            "forward_residence_seconds",
            "Time from a datagram's arrival (kernel timestamp) to the sending of what it caused, \
             per sent datagram, from the earliest arrival of the worker's loop turn",
            forward_residence_seconds.clone(),
        );
        let rtt_seconds =
            Histogram::new([0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.4, 0.8, 1.6]);
        r.register("rtt_seconds", "Peer round-trip time", rtt_seconds.clone());
        let http_responses = Family::<HttpLabels, Counter>::default();
        r.register(
            "http_responses",
            "Signalling HTTP responses by endpoint and status",
            http_responses.clone(),
        );
        Metrics {
            registry: Arc::new(r),
            peers,
            tracks,
            rooms,
            pipes,
            rtp_packets_in,
            rtp_bytes_in,
            rtp_packets_out,
            rtp_bytes_out,
            udp_datagrams_in,
            udp_datagrams_out,
            udp_gso_datagrams_out,
            udp_gso_sends,
            udp_send_calls,
            rtp_padding_bytes_out,
            udp_gso_run_breaks,
            udp_unroutable,
            nacks_received,
            nacks_sent,
            keyframe_requests_in,
            keyframe_requests_sent,
            keyframe_requests_coalesced,
            layer_switches,
            gop_replays,
            frame_rereads,
            fanout_looks,
            fanout_joined_packets,
            pipe_packets,
            pipe_drops,
            nack_history_resets,
            direct_srtp_packets_out,
            retransmissions_out,
            rtt_seconds,
            forward_residence_seconds,
            http_responses,
        }
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("encoding into a String cannot fail");
        out
    }
}
