//! Prometheus metrics: one registry, typed handles shared by the HTTP edge and the media workers.
//!
//! Handles are atomics shared by every thread. What a media worker counts per packet it
//! counts in its own [`Tally`] (plain integers) and adds to the shared handles once per loop
//! turn, so the packet path does no atomic operation and takes no lock on a cache line
//! another worker's core writes too.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use prometheus_client::encoding::{
    EncodeLabelSet, EncodeLabelValue, EncodeMetric, MetricEncoder, NoLabelSet,
};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::{MetricType, TypedMetric};
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

/// Which login rate limit refused an attempt (see `auth::limit`).
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
pub enum LoginLimit {
    /// Too many attempts from the client's address.
    Address,
    /// The username is backing off after failures.
    Username,
}

/// Label set `{by=…}` of refused logins.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LoginLimitLabels {
    /// The limit.
    pub by: LoginLimit,
}

/// Label set for HTTP responses.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    /// The endpoint family (whip, whep, …).
    pub endpoint: String,
    /// The status code.
    pub status: u16,
}

/// Why a WHIP/WHEP session was refused before it was set up.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
pub enum RefusalReason {
    /// Its principal holds `media.max_sessions_per_principal` sessions.
    PerPrincipal,
    /// Its token holds `media.max_sessions_per_token` sessions.
    PerToken,
    /// The server holds `media.max_peers` peers.
    MaxPeers,
    /// The room holds `media.max_room_share_percent` of `media.max_peers`.
    RoomShare,
}

/// Label set `{reason=…}`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusalLabels {
    /// The reason.
    pub reason: RefusalReason,
}

/// Password hashes being computed right now, in the whole process (the hash pool of
/// `auth::limit` is process-wide).
static HASHES_IN_FLIGHT: std::sync::LazyLock<Gauge> = std::sync::LazyLock::new(Gauge::default);

/// The process-wide gauge of password hashes being computed (registered by [`Metrics`]).
pub fn hashes_in_flight() -> Gauge {
    HASHES_IN_FLIGHT.clone()
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
    /// Datagrams dropped because a media socket's send buffer was full (`EAGAIN`).
    pub udp_send_dropped: Counter,
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
    /// TURN credentials minted for authenticated WHIP/WHEP callers (`[turn]`).
    pub turn_credentials: Counter,
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
    /// Keyframe requests raised because a viewer asked for a packet the server never
    /// received and no retransmission filled the hole in time (`sfu/core/repair.rs`).
    pub keyframe_requests_for_holes: Counter,
    /// Media workers started again after a panic.
    pub sfu_worker_restarts: Counter,
    /// Publisher packets dropped for exceeding `media.max_publish_kbps` / `_pps`.
    pub publish_dropped_packets: Counter,
    /// Round-trip time samples per peer.
    pub rtt_seconds: Histogram,
    /// Per sent datagram: kernel arrival of the earliest datagram read in the same loop turn
    /// → hand-off to the kernel (what the server adds to a packet's trip, an upper bound).
    pub forward_residence_seconds: BulkHistogram,
    /// HTTP signalling responses.
    pub http_responses: Family<HttpLabels, Counter>,
    /// Lessons refused because their hub teacher reached the daily limit.
    pub lessons_refused_quota: Counter,
    /// Logins refused by a rate limit, by limit.
    pub logins_refused: Family<LoginLimitLabels, Counter>,
    /// Logins shed because the password-hash pool and its queue were full.
    pub logins_shed: Counter,
    /// Password hashes being computed in the process (the pool is process-wide).
    pub password_hashes_in_flight: Gauge,
    /// WHIP/WHEP sessions refused by a cap, by reason.
    pub sessions_refused: Family<RefusalLabels, Counter>,
    /// Lesson capture (the recording tap and its writer thread, `record::writer`).
    pub capture: CaptureMetrics,
}

/// The capture writer's figures (`record::writer`) and the tap's drops (`sfu::core`).
#[derive(Debug, Clone, Default)]
pub struct CaptureMetrics {
    /// Capture files open for writing.
    pub open: Gauge,
    /// Bytes handed to the kernel for capture files.
    pub bytes: Counter,
    /// Records (packets, sender reports, track changes) written.
    pub records: Counter,
    /// Packets a media worker could not hand to the writer (its channel was full).
    pub dropped_packets: Counter,
    /// Write or sync errors; each stops its recording.
    pub write_errors: Counter,
    /// Recordings stopped by an error.
    pub failed: Counter,
    /// The oldest record's wait between the media worker and the kernel, at the last write.
    pub writer_lag_seconds: Gauge<f64, AtomicU64>,
    /// Messages waiting in the writer's channel at its last turn.
    pub writer_queue: Gauge,
}

impl CaptureMetrics {
    fn register(r: &mut Registry) -> Self {
        let m = CaptureMetrics::default();
        let sub = r.sub_registry_with_prefix("capture");
        sub.register(
            "open_files",
            "Capture files open for writing",
            m.open.clone(),
        );
        sub.register(
            "bytes",
            "Bytes handed to the kernel for capture files",
            m.bytes.clone(),
        );
        sub.register(
            "records",
            "Capture records (RTP packets, sender reports, track changes) written",
            m.records.clone(),
        );
        sub.register(
            "dropped_packets",
            "Recorded packets a media worker could not hand to the capture writer (channel full)",
            m.dropped_packets.clone(),
        );
        sub.register(
            "write_errors",
            "Capture write or sync errors (each stops its recording; disk full)",
            m.write_errors.clone(),
        );
        sub.register("failed", "Recordings stopped by an error", m.failed.clone());
        sub.register(
            "writer_lag_seconds",
            "Oldest record's wait from the media worker to the kernel at the writer's last write",
            m.writer_lag_seconds.clone(),
        );
        sub.register(
            "writer_queue",
            "Messages waiting in the capture writer's channel",
            m.writer_queue.clone(),
        );
        m
    }
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
        let udp_send_dropped = c(
            &mut r,
            "udp_send_dropped",
            "UDP datagrams dropped because the media socket's send buffer was full",
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
        let turn_credentials = c(
            &mut r,
            "turn_credentials",
            "TURN credentials minted for authenticated WHIP/WHEP callers",
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
        let keyframe_requests_for_holes = c(
            &mut r,
            "keyframe_requests_for_holes",
            "Keyframe requests for packets viewers asked for that the server never received",
        );
        let sfu_worker_restarts = c(
            &mut r,
            "sfu_worker_restarts",
            "Media workers started again after a panic (their peers were dropped)",
        );
        let publish_dropped_packets = c(
            &mut r,
            "publish_dropped_packets",
            "Publisher RTP packets dropped, not forwarded: over media.max_publish_kbps or _pps",
        );
        let forward_residence_seconds = BulkHistogram::new([
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
        let lessons_refused_quota = Counter::default();
        r.register(
            "lessons_refused_quota",
            "Lessons refused because the hub teacher reached school.max_lessons_per_teacher_day",
            lessons_refused_quota.clone(),
        );
        let logins_refused = Family::<LoginLimitLabels, Counter>::default();
        r.register(
            "logins_refused",
            "Logins refused with 429 by a rate limit, by limit (address or username)",
            logins_refused.clone(),
        );
        let logins_shed = c(
            &mut r,
            "logins_shed",
            "Logins refused with 503 because the password-hash pool and its queue were full",
        );
        let password_hashes_in_flight = hashes_in_flight();
        r.register(
            "password_hashes_in_flight",
            "Password hashes (argon2) being computed in the process",
            password_hashes_in_flight.clone(),
        );
        let sessions_refused = Family::<RefusalLabels, Counter>::default();
        r.register(
            "sessions_refused",
            "WHIP/WHEP sessions refused by a cap (per principal, per token, room share, max peers)",
            sessions_refused.clone(),
        );
        let capture = CaptureMetrics::register(&mut r);
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
            udp_send_dropped,
            udp_unroutable,
            nacks_received,
            nacks_sent,
            keyframe_requests_in,
            keyframe_requests_sent,
            keyframe_requests_coalesced,
            layer_switches,
            gop_replays,
            frame_rereads,
            turn_credentials,
            fanout_looks,
            fanout_joined_packets,
            pipe_packets,
            pipe_drops,
            nack_history_resets,
            direct_srtp_packets_out,
            retransmissions_out,
            keyframe_requests_for_holes,
            sfu_worker_restarts,
            publish_dropped_packets,
            rtt_seconds,
            forward_residence_seconds,
            http_responses,
            lessons_refused_quota,
            logins_refused,
            logins_shed,
            password_hashes_in_flight,
            sessions_refused,
            capture,
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

/// A histogram filled in bulk: a media worker counts observations into its own
/// [`LocalHistogram`] and adds them here once per loop turn ([`Tally::flush`]).
///
/// prometheus-client's `Histogram` takes a mutex for every observation; for a value observed
/// per sent datagram (hundreds of thousands a second, from every worker at once) that is a
/// contended lock on the packet path. This one takes its lock once per merge.
#[derive(Debug, Clone)]
pub struct BulkHistogram {
    bounds: Arc<[f64]>,
    inner: Arc<Mutex<Counts>>,
}

/// Observations: their sum and count, and how many fell in each bucket (not cumulative;
/// one more than the bounds, for +Inf).
#[derive(Debug, Clone, Default)]
struct Counts {
    sum: f64,
    count: u64,
    buckets: Vec<u64>,
}

impl Counts {
    fn new(buckets: usize) -> Self {
        Counts {
            sum: 0.0,
            count: 0,
            buckets: vec![0; buckets + 1],
        }
    }
}

impl BulkHistogram {
    /// A histogram with these upper bounds (ascending), and +Inf.
    pub fn new(bounds: impl IntoIterator<Item = f64>) -> Self {
        let bounds: Arc<[f64]> = bounds.into_iter().collect();
        BulkHistogram {
            inner: Arc::new(Mutex::new(Counts::new(bounds.len()))),
            bounds,
        }
    }

    /// An empty local histogram with the same buckets, for one thread to count into.
    pub fn local(&self) -> LocalHistogram {
        LocalHistogram {
            bounds: self.bounds.clone(),
            counts: Counts::new(self.bounds.len()),
        }
    }

    /// Adds what `local` counted, and empties it.
    pub fn merge(&self, local: &mut LocalHistogram) {
        if local.counts.count == 0 {
            return;
        }
        let mut c = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        c.sum += local.counts.sum;
        c.count += local.counts.count;
        for (total, n) in c.buckets.iter_mut().zip(&mut local.counts.buckets) {
            *total += std::mem::take(n);
        }
        local.counts.sum = 0.0;
        local.counts.count = 0;
    }

    /// Observations so far: (count, sum).
    pub fn totals(&self) -> (u64, f64) {
        let c = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        (c.count, c.sum)
    }
}

impl TypedMetric for BulkHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for BulkHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let c = self.inner.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let buckets: Vec<(f64, u64)> = self
            .bounds
            .iter()
            .copied()
            .chain(std::iter::once(f64::INFINITY))
            .zip(c.buckets)
            .collect();
        encoder.encode_histogram::<NoLabelSet>(c.sum, c.count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

/// One thread's observations for a [`BulkHistogram`], not yet merged.
#[derive(Debug, Clone)]
pub struct LocalHistogram {
    bounds: Arc<[f64]>,
    counts: Counts,
}

impl LocalHistogram {
    /// Counts `n` observations of `v`.
    pub fn observe_n(&mut self, v: f64, n: u64) {
        // The first bucket whose bound holds `v`; past the last bound, +Inf.
        let i = self.bounds.partition_point(|&b| b < v);
        self.counts.buckets[i] += n;
        self.counts.sum += v * n as f64;
        self.counts.count += n;
    }
}

/// What a media worker counts per packet and per send, added to the shared [`Metrics`] once
/// per loop turn. Two workers incrementing the same atomic counters for every copy they
/// send move those counters' cache lines between their cores on every increment (perf put
/// 85 % of the forwarding function's samples on four such increments at 1 000 sites).
#[derive(Debug)]
pub struct Tally {
    /// `rtp_packets_out`.
    pub rtp_packets_out: u64,
    /// `rtp_bytes_out`.
    pub rtp_bytes_out: u64,
    /// `direct_srtp_packets_out`.
    pub direct_srtp_packets_out: u64,
    /// `rtp_padding_bytes_out`.
    pub rtp_padding_bytes_out: u64,
    /// `udp_datagrams_out`.
    pub udp_datagrams_out: u64,
    /// `udp_gso_datagrams_out`.
    pub udp_gso_datagrams_out: u64,
    /// `udp_gso_sends`.
    pub udp_gso_sends: u64,
    /// `udp_send_calls`.
    pub udp_send_calls: u64,
    /// `udp_gso_run_breaks`.
    pub udp_gso_run_breaks: u64,
    /// `udp_send_dropped`.
    pub udp_send_dropped: u64,
    /// `forward_residence_seconds`.
    pub residence: LocalHistogram,
}

impl Tally {
    /// An empty tally for `m`'s handles.
    pub fn new(m: &Metrics) -> Self {
        Tally {
            rtp_packets_out: 0,
            rtp_bytes_out: 0,
            direct_srtp_packets_out: 0,
            rtp_padding_bytes_out: 0,
            udp_datagrams_out: 0,
            udp_gso_datagrams_out: 0,
            udp_gso_sends: 0,
            udp_send_calls: 0,
            udp_gso_run_breaks: 0,
            udp_send_dropped: 0,
            residence: m.forward_residence_seconds.local(),
        }
    }

    /// Adds everything counted to `m`'s handles, and starts again from zero.
    pub fn flush(&mut self, m: &Metrics) {
        for (n, c) in [
            (&mut self.rtp_packets_out, &m.rtp_packets_out),
            (&mut self.rtp_bytes_out, &m.rtp_bytes_out),
            (
                &mut self.direct_srtp_packets_out,
                &m.direct_srtp_packets_out,
            ),
            (&mut self.rtp_padding_bytes_out, &m.rtp_padding_bytes_out),
            (&mut self.udp_datagrams_out, &m.udp_datagrams_out),
            (&mut self.udp_gso_datagrams_out, &m.udp_gso_datagrams_out),
            (&mut self.udp_gso_sends, &m.udp_gso_sends),
            (&mut self.udp_send_calls, &m.udp_send_calls),
            (&mut self.udp_gso_run_breaks, &m.udp_gso_run_breaks),
            (&mut self.udp_send_dropped, &m.udp_send_dropped),
        ] {
            let n = std::mem::take(n);
            if n > 0 {
                c.inc_by(n);
            }
        }
        m.forward_residence_seconds.merge(&mut self.residence);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line<'a>(text: &'a str, name: &str) -> &'a str {
        text.lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name} in {text}"))
    }

    #[test]
    fn a_tally_reaches_the_shared_counters_and_histogram_only_when_flushed() {
        let m = Metrics::new();
        let mut t = Tally::new(&m);
        t.rtp_packets_out += 3;
        t.udp_send_calls += 1;
        t.residence.observe_n(0.0004, 5); // the 0.0005 bucket
        t.residence.observe_n(0.0005, 1); // on a bound: that bucket too
        t.residence.observe_n(7.0, 2); // +Inf
        assert_eq!(m.rtp_packets_out.get(), 0);
        assert_eq!(m.forward_residence_seconds.totals().0, 0);
        t.flush(&m);
        assert_eq!(m.rtp_packets_out.get(), 3);
        assert_eq!(m.udp_send_calls.get(), 1);
        let text = m.encode();
        assert!(line(&text, "classrelay_forward_residence_seconds_count").ends_with(" 8"));
        // Cumulative counts per upper bound, as Prometheus reads them.
        for (le, count) in [("0.0003", 0), ("0.0005", 6), ("0.1", 6), ("+Inf", 8)] {
            let name = format!("classrelay_forward_residence_seconds_bucket{{le=\"{le}\"}}");
            assert!(line(&text, &name).ends_with(&format!(" {count}")), "{name}");
        }
        let sum: f64 = line(&text, "classrelay_forward_residence_seconds_sum")
            .rsplit(' ')
            .next()
            .and_then(|v| v.parse().ok())
            .expect("a sum");
        assert!((sum - (0.002 + 0.0005 + 14.0)).abs() < 1e-9, "{sum}");
        // Flushed means empty: a second flush adds nothing.
        t.flush(&m);
        assert_eq!(m.rtp_packets_out.get(), 3);
        assert_eq!(m.forward_residence_seconds.totals().0, 8);
    }
}
