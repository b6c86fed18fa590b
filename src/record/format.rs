//! What a capture holds, in memory: the contract between the capture writer (which encodes these
//! records into the versioned on-disk format, docs/CAPTURE.md) and the processor (which reads
//! them back and muxes WebM/Matroska). Plain data; must never do I/O or know about sockets.

use serde::{Deserialize, Serialize};

/// The capture format version this build writes (and the highest it reads).
pub const FORMAT_VERSION: u16 = 1;

/// What a recorded source is, as the manifest names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// The hub teacher's camera.
    TeacherCamera,
    /// The courseware screen the hub teacher shares.
    Courseware,
    /// A remote (or the hub) classroom's camera.
    ClassroomCamera,
    /// A microphone (the teacher's or a classroom's; [`TrackInfo::owner`] says whose).
    Audio,
}

/// The codec of a recorded track.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Codec {
    /// VP8 video.
    Vp8,
    /// VP9 video.
    Vp9,
    /// H.264 video.
    H264,
    /// Opus audio.
    Opus,
}

impl Codec {
    /// Whether the codec carries audio.
    pub fn is_audio(self) -> bool {
        matches!(self, Codec::Opus)
    }
}

/// The file's header: which lesson (or room) it captures and when it began.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaptureHeader {
    /// [`FORMAT_VERSION`] when written.
    pub version: u16,
    /// The room recorded (`lesson-{id}` for timetable lessons).
    pub room: String,
    /// The lesson, when the room is a timetable lesson's.
    pub lesson_id: Option<i64>,
    /// Wall-clock time of capture time zero ([`Record`] arrivals count from here), Unix ms.
    pub started_unix_ms: i64,
}

/// A track declared in the capture; tracks appear at any point of a lesson (a classroom joins
/// late, the teacher starts sharing the screen), so they are records, not only header fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackInfo {
    /// Unique within one capture; [`Record`]s refer to it.
    pub track: u32,
    /// What the source is.
    pub kind: SourceKind,
    /// Its codec.
    pub codec: Codec,
    /// The RTP payload type the packets carry.
    pub payload_type: u8,
    /// The RTP clock rate (90 000 for video, 48 000 for Opus).
    pub clock_rate: u32,
    /// Who publishes it: the teacher's name, the classroom's name, or the room participant id.
    pub owner: String,
    /// Whether the owner is the hub (teacher or hub classroom): the automatic S-T draft listens
    /// to the hub teacher's audio.
    pub hub: bool,
}

/// One entry of a capture, in arrival order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Record {
    /// A track starts.
    Track(TrackInfo),
    /// One RTP packet as the server received it (decrypted, header included), for simulcast the
    /// top layer only, with its arrival time in microseconds since capture time zero.
    Rtp {
        /// The [`TrackInfo::track`] it belongs to.
        track: u32,
        /// Arrival, microseconds since capture time zero.
        arrival_us: u64,
        /// The whole RTP packet.
        packet: Vec<u8>,
    },
    /// An RTCP sender report of the track's publisher: maps its RTP clock to NTP wall time
    /// (the one source of audio/video alignment).
    SenderReport {
        /// The track whose publisher sent it.
        track: u32,
        /// Arrival, microseconds since capture time zero.
        arrival_us: u64,
        /// 64-bit NTP timestamp (seconds << 32 | fraction).
        ntp: u64,
        /// The RTP time that corresponds to `ntp`.
        rtp_time: u32,
    },
    /// The capture lost packets before the disk (writer behind, channel full): counted so the
    /// processor can report a gap that is the recorder's, not the network's.
    Dropped {
        /// The track that lost them.
        track: u32,
        /// When the loss was noticed, microseconds since capture time zero.
        arrival_us: u64,
        /// How many packets were lost.
        packets: u32,
    },
    /// The track ends (its publisher left, or recording stopped).
    TrackEnd {
        /// The track.
        track: u32,
        /// When, microseconds since capture time zero.
        arrival_us: u64,
    },
}

impl Record {
    /// The track the record is about.
    pub fn track(&self) -> u32 {
        match self {
            Record::Track(t) => t.track,
            Record::Rtp { track, .. }
            | Record::SenderReport { track, .. }
            | Record::Dropped { track, .. }
            | Record::TrackEnd { track, .. } => *track,
        }
    }
}

/// A whole capture read back: its header and every record up to the end or the first damage.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Capture {
    /// The header, unless the file was damaged before it ended.
    pub header: Option<CaptureHeader>,
    /// Every record read, in file order.
    pub records: Vec<Record>,
}
