//! In-process pipes: a room's media from its home worker to the other workers that hold some
//! of its viewers.
//!
//! One worker (one core) sends a frame to its viewers one after another, so a big broadcast
//! on one worker is late for its last viewers and tops out at one core's worth of them. A
//! viewer can therefore be placed on another worker (`Sfu::place`): the room's home worker,
//! where the publishers are, then pipes every packet of the room, already decrypted and
//! parsed, to that worker, which fans it out to its own viewers in parallel with the home
//! worker (mediasoup's pipe transports, inside one process). The receiving worker keeps a
//! copy of the room's tracks: its own keyframe gates, GOP caches and layer choice, so joins,
//! layer switches and NACKs stay local; only keyframe requests that pass its gate go back to
//! the home worker ([`super::Command::PipeKeyframe`]).
//!
//! Packets cross as [`CachedPacket`]s, each with a payload copy of its own
//! ([`CachedPacket::for_another_worker`]: a reference count shared by two workers would bounce
//! its cache line between their cores for every viewer's copy). The channel
//! is unbounded, but a worker never queues more than `media.pipe_backlog` packets (default
//! [`BACKLOG`]) to a worker that does not keep up; past that it drops them (counted) rather
//! than let memory grow, and holds back that video layer until its next keyframe.

use std::sync::Arc;

use crossbeam_channel::Sender;
use mio::Waker;
use str0m::format::PayloadParams;
use str0m::media::{MediaKind, Mid, Rid};
use str0m::rtp::Ssrc;

use super::room::{CachedPacket, TrackId};
use super::Command;

/// Packets a worker may have waiting in another worker's pipe inbox before it drops (the
/// default of `media.pipe_backlog`).
pub const BACKLOG: usize = 8192;

/// What goes through a pipe, in order.
pub enum PipeMsg {
    /// A track of the room (published, or already there when the pipe opened).
    Track {
        /// The room.
        room: String,
        /// The home worker.
        home: usize,
        /// The track's id on the home worker.
        tid: TrackId,
        /// The publisher's mid.
        mid: Mid,
        /// Audio or video.
        kind: MediaKind,
        /// The publisher's participant id.
        part: Option<String>,
        /// The layers' rids (one `None` without simulcast).
        rids: Vec<Option<Rid>>,
        /// The codec, once known.
        params: Option<PayloadParams>,
    },
    /// A packet of a track.
    Rtp {
        /// The home worker.
        home: usize,
        /// The packet; its `tid` is the track's id on the home worker.
        packet: PipedPacket,
        /// When the home worker's socket received the earliest datagram of the turn the
        /// packet came in (the receiving worker times its copies from it).
        arrived: Option<std::time::SystemTime>,
    },
    /// A track ended.
    TrackGone {
        /// The home worker.
        home: usize,
        /// The track's id on the home worker.
        tid: TrackId,
    },
    /// The home worker stopped piping the room here (the last viewer here left).
    Closed {
        /// The room.
        room: String,
        /// The home worker.
        home: usize,
    },
}

/// A packet of one layer of a track, as piped.
pub struct PipedPacket {
    /// The track (the home worker's id in a pipe, the receiving worker's once taken in).
    pub tid: TrackId,
    /// The layer's index on the home worker.
    pub layer: usize,
    /// The layer's rid.
    pub rid: Option<Rid>,
    /// The publisher's SSRC of the layer.
    pub ssrc: Ssrc,
    /// The packet's codec.
    pub params: PayloadParams,
    /// The packet.
    pub pkt: CachedPacket,
}

/// How one worker reaches another.
pub struct Link {
    /// Its commands.
    pub cmd: Sender<Command>,
    /// Its pipe inbox.
    pub pipe: Sender<PipeMsg>,
    /// Wakes it.
    pub waker: Arc<Waker>,
}
