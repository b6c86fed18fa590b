//! The capture file on disk (docs/CAPTURE.md): encodes a [`CaptureHeader`] and [`Record`]s
//! into versioned, append-only, self-delimiting frames with a checksum each, and reads them
//! back up to the first torn or corrupt frame, saying where. Must never panic on any input and
//! never touch a socket or the media path (the writer thread calls the encoder).
//!
//! Encoding: hand-written length-prefixed little-endian binary. Each frame is
//! `len: u32 | crc: u32 | body[len]` where `crc` is CRC-32C (Castagnoli, the `crc` crate) of
//! the four length bytes followed by the body, so a flipped length is caught as surely as a
//! flipped payload. Hand-written because the format must stay readable by a reader of a later
//! build and by other tools from docs/CAPTURE.md alone: serde binary encodings (bincode,
//! postcard) make the bytes a function of the Rust types and their crate's version, and
//! neither is in the tree; the format is six small record kinds.

use std::io::{self, Read};
use std::path::Path;

use super::format::{Capture, CaptureHeader, Codec, Record, SourceKind, TrackInfo, FORMAT_VERSION};

/// The first bytes of every capture file; the format version follows as a `u16` LE.
pub const MAGIC: &[u8; 6] = b"CRCAP\0";
/// Bytes before the first frame: the magic and the version.
pub const PREAMBLE_LEN: usize = MAGIC.len() + 2;
/// Bytes of a frame before its body: length and checksum.
pub const FRAME_OVERHEAD: usize = 8;
/// The longest body a frame may have. Datagrams over 2 KiB never reach the core, so a longer
/// length is corruption, not data (and the reader never allocates more than this for one).
pub const MAX_BODY: usize = 64 * 1024;

// Slice-by-16 tables (16 KiB, built at compile time): the checksum is on every byte the
// capture writer writes and the processor reads, and the crate's default one-table form did
// a byte at a time (a 45-minute three-source lesson is over a gigabyte). Same CRC either way.
const CRC: crc::Crc<u32, crc::Table<16>> = crc::Crc::<u32, crc::Table<16>>::new(&crc::CRC_32_ISCSI);

/// Body kinds (the body's first byte).
mod kind {
    pub(super) const HEADER: u8 = 0;
    pub(super) const TRACK: u8 = 1;
    pub(super) const RTP: u8 = 2;
    pub(super) const SENDER_REPORT: u8 = 3;
    pub(super) const DROPPED: u8 = 4;
    pub(super) const TRACK_END: u8 = 5;
}

/// Where and why reading stopped before the end of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    /// Byte offset of the frame (or preamble) that could not be read.
    pub offset: u64,
    /// What was wrong there.
    pub kind: DamageKind,
    /// Bytes from `offset` to the end of the file, not read.
    pub unread_bytes: u64,
}

/// What stopped a read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DamageKind {
    /// The file does not start with the capture magic.
    #[error("not a capture file (no CRCAP magic)")]
    NotACapture,
    /// Written by a newer build in a format this one does not know.
    #[error("capture format version {0} is newer than this build reads ({FORMAT_VERSION})")]
    NewerVersion(u16),
    /// The file ends inside a frame: the normal end of a capture whose writer was killed.
    #[error("torn frame: the file ends inside it (writer killed or disk full mid-write)")]
    Torn,
    /// A frame's checksum does not match its bytes.
    #[error("checksum mismatch")]
    Checksum,
    /// A frame claims a body longer than any record can be.
    #[error("frame length {0} exceeds the maximum")]
    TooLong(u32),
    /// A frame's checksum matched but its body does not decode.
    #[error("malformed record: {0}")]
    Malformed(&'static str),
    /// The first frame is not the header.
    #[error("the first frame is not the capture header")]
    NoHeader,
    /// The file could not be read.
    #[error("read error: {0}")]
    Io(String),
}

/// What a read found besides the records.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReadReport {
    /// Where reading stopped early, if it did.
    pub damage: Option<Damage>,
    /// Bytes of whole, valid frames (and the preamble) read.
    pub bytes_read: u64,
    /// Frames of a kind this build does not know, skipped (a later minor addition).
    pub skipped_unknown: u64,
}

impl ReadReport {
    /// One line for logs and the processor's report.
    pub fn describe(&self) -> String {
        match &self.damage {
            None => format!("clean: {} bytes", self.bytes_read),
            Some(d) => format!(
                "stopped at byte {}: {} ({} bytes after it not read)",
                d.offset, d.kind, d.unread_bytes
            ),
        }
    }
}

/// The preamble a capture file starts with.
pub fn preamble() -> [u8; PREAMBLE_LEN] {
    let mut p = [0u8; PREAMBLE_LEN];
    p[..MAGIC.len()].copy_from_slice(MAGIC);
    p[MAGIC.len()..].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    p
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    // Names longer than a u16 are cut at a character boundary: they are labels, and a frame
    // must stay under MAX_BODY.
    let mut end = s.len().min(u16::MAX as usize);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    out.extend_from_slice(&(end as u16).to_le_bytes());
    out.extend_from_slice(&s.as_bytes()[..end]);
}

fn frame(out: &mut Vec<u8>, body: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.extend_from_slice(&[0; FRAME_OVERHEAD]);
    body(out);
    let len = (out.len() - start - FRAME_OVERHEAD) as u32;
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    let mut d = CRC.digest();
    d.update(&len.to_le_bytes());
    d.update(&out[start + FRAME_OVERHEAD..]);
    out[start + 4..start + 8].copy_from_slice(&d.finalize().to_le_bytes());
}

/// Appends the header frame to `out` (after [`preamble`]).
pub fn encode_header(h: &CaptureHeader, out: &mut Vec<u8>) {
    frame(out, |b| {
        b.push(kind::HEADER);
        b.extend_from_slice(&h.version.to_le_bytes());
        b.extend_from_slice(&h.started_unix_ms.to_le_bytes());
        match h.lesson_id {
            Some(id) => {
                b.push(1);
                b.extend_from_slice(&id.to_le_bytes());
            }
            None => b.push(0),
        }
        put_str(b, &h.room);
    });
}

fn kind_byte(k: SourceKind) -> u8 {
    match k {
        SourceKind::TeacherCamera => 0,
        SourceKind::Courseware => 1,
        SourceKind::ClassroomCamera => 2,
        SourceKind::Audio => 3,
    }
}

fn codec_byte(c: Codec) -> u8 {
    match c {
        Codec::Vp8 => 0,
        Codec::Vp9 => 1,
        Codec::H264 => 2,
        Codec::Opus => 3,
    }
}

/// Appends one record's frame to `out`. An RTP packet longer than [`MAX_BODY`] allows is cut
/// there (it cannot come from the media path, whose datagrams are at most 2 KiB).
pub fn encode_record(r: &Record, out: &mut Vec<u8>) {
    frame(out, |b| match r {
        Record::Track(t) => {
            b.push(kind::TRACK);
            b.extend_from_slice(&t.track.to_le_bytes());
            b.push(kind_byte(t.kind));
            b.push(codec_byte(t.codec));
            b.push(t.payload_type);
            b.extend_from_slice(&t.clock_rate.to_le_bytes());
            b.push(u8::from(t.hub));
            put_str(b, &t.owner);
        }
        Record::Rtp {
            track,
            arrival_us,
            packet,
        } => {
            b.push(kind::RTP);
            b.extend_from_slice(&track.to_le_bytes());
            b.extend_from_slice(&arrival_us.to_le_bytes());
            let n = packet.len().min(MAX_BODY - 13);
            b.extend_from_slice(&packet[..n]);
        }
        Record::SenderReport {
            track,
            arrival_us,
            ntp,
            rtp_time,
        } => {
            b.push(kind::SENDER_REPORT);
            b.extend_from_slice(&track.to_le_bytes());
            b.extend_from_slice(&arrival_us.to_le_bytes());
            b.extend_from_slice(&ntp.to_le_bytes());
            b.extend_from_slice(&rtp_time.to_le_bytes());
        }
        Record::Dropped {
            track,
            arrival_us,
            packets,
        } => {
            b.push(kind::DROPPED);
            b.extend_from_slice(&track.to_le_bytes());
            b.extend_from_slice(&arrival_us.to_le_bytes());
            b.extend_from_slice(&packets.to_le_bytes());
        }
        Record::TrackEnd { track, arrival_us } => {
            b.push(kind::TRACK_END);
            b.extend_from_slice(&track.to_le_bytes());
            b.extend_from_slice(&arrival_us.to_le_bytes());
        }
    });
}

/// A whole capture file's bytes (preamble, header, records): what tests and tools write.
pub fn encode_capture(h: &CaptureHeader, records: &[Record]) -> Vec<u8> {
    let mut out = preamble().to_vec();
    encode_header(h, &mut out);
    for r in records {
        encode_record(r, &mut out);
    }
    out
}

/// A cursor over a frame's body that fails instead of panicking.
struct Body<'a>(&'a [u8]);

impl<'a> Body<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DamageKind> {
        if self.0.len() < n {
            return Err(DamageKind::Malformed("record shorter than its fields"));
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, DamageKind> {
        Ok(self.take(1)?[0])
    }
    fn arr<const N: usize>(&mut self) -> Result<[u8; N], DamageKind> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    fn u16(&mut self) -> Result<u16, DamageKind> {
        Ok(u16::from_le_bytes(self.arr()?))
    }
    fn u32(&mut self) -> Result<u32, DamageKind> {
        Ok(u32::from_le_bytes(self.arr()?))
    }
    fn u64(&mut self) -> Result<u64, DamageKind> {
        Ok(u64::from_le_bytes(self.arr()?))
    }
    fn i64(&mut self) -> Result<i64, DamageKind> {
        Ok(i64::from_le_bytes(self.arr()?))
    }
    fn string(&mut self) -> Result<String, DamageKind> {
        let n = self.u16()? as usize;
        let b = self.take(n)?;
        String::from_utf8(b.to_vec()).map_err(|_| DamageKind::Malformed("name is not UTF-8"))
    }
    fn end(&self) -> Result<(), DamageKind> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(DamageKind::Malformed("bytes after the record's fields"))
        }
    }
}

/// One decoded frame body.
enum Decoded {
    Header(CaptureHeader),
    Record(Record),
    Unknown,
}

fn decode_body(body: &[u8]) -> Result<Decoded, DamageKind> {
    let mut b = Body(body);
    let d = match b.u8()? {
        kind::HEADER => {
            let version = b.u16()?;
            let started_unix_ms = b.i64()?;
            let lesson_id = match b.u8()? {
                0 => None,
                1 => Some(b.i64()?),
                _ => return Err(DamageKind::Malformed("lesson flag")),
            };
            let room = b.string()?;
            b.end()?;
            Decoded::Header(CaptureHeader {
                version,
                room,
                lesson_id,
                started_unix_ms,
            })
        }
        kind::TRACK => {
            let track = b.u32()?;
            let kind = match b.u8()? {
                0 => SourceKind::TeacherCamera,
                1 => SourceKind::Courseware,
                2 => SourceKind::ClassroomCamera,
                3 => SourceKind::Audio,
                _ => return Err(DamageKind::Malformed("source kind")),
            };
            let codec = match b.u8()? {
                0 => Codec::Vp8,
                1 => Codec::Vp9,
                2 => Codec::H264,
                3 => Codec::Opus,
                _ => return Err(DamageKind::Malformed("codec")),
            };
            let payload_type = b.u8()?;
            let clock_rate = b.u32()?;
            let hub = match b.u8()? {
                0 => false,
                1 => true,
                _ => return Err(DamageKind::Malformed("hub flag")),
            };
            let owner = b.string()?;
            b.end()?;
            Decoded::Record(Record::Track(TrackInfo {
                track,
                kind,
                codec,
                payload_type,
                clock_rate,
                owner,
                hub,
            }))
        }
        kind::RTP => {
            let track = b.u32()?;
            let arrival_us = b.u64()?;
            Decoded::Record(Record::Rtp {
                track,
                arrival_us,
                packet: b.0.to_vec(),
            })
        }
        kind::SENDER_REPORT => {
            let r = Record::SenderReport {
                track: b.u32()?,
                arrival_us: b.u64()?,
                ntp: b.u64()?,
                rtp_time: b.u32()?,
            };
            b.end()?;
            Decoded::Record(r)
        }
        kind::DROPPED => {
            let r = Record::Dropped {
                track: b.u32()?,
                arrival_us: b.u64()?,
                packets: b.u32()?,
            };
            b.end()?;
            Decoded::Record(r)
        }
        kind::TRACK_END => {
            let r = Record::TrackEnd {
                track: b.u32()?,
                arrival_us: b.u64()?,
            };
            b.end()?;
            Decoded::Record(r)
        }
        _ => Decoded::Unknown,
    };
    Ok(d)
}

/// A record as [`CaptureReader::next_ref`] hands it out: an RTP packet borrowed from the
/// reader's buffer (no copy, no allocation: nearly every record is one), anything else owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordRef<'a> {
    /// [`Record::Rtp`], borrowed.
    Rtp {
        /// The track it belongs to.
        track: u32,
        /// Arrival, microseconds since capture time zero.
        arrival_us: u64,
        /// The whole RTP packet.
        packet: &'a [u8],
    },
    /// Every other record.
    Other(Record),
}

impl RecordRef<'_> {
    /// The owned record.
    pub fn into_owned(self) -> Record {
        match self {
            RecordRef::Rtp {
                track,
                arrival_us,
                packet,
            } => Record::Rtp {
                track,
                arrival_us,
                packet: packet.to_vec(),
            },
            RecordRef::Other(r) => r,
        }
    }
}

/// Reads a capture frame by frame from any reader (a file of many hundred megabytes need not
/// be in memory at once): [`CaptureReader::header`] first, then [`Iterator::next`] for each
/// record; when it returns `None`, [`CaptureReader::report`] says whether the end was clean.
pub struct CaptureReader<R> {
    src: R,
    offset: u64,
    total: Option<u64>,
    header: Option<CaptureHeader>,
    report: ReadReport,
    done: bool,
    buf: Vec<u8>,
}

impl<R: Read> CaptureReader<R> {
    /// Reads the preamble and the header frame. `total` (the file's length, when known) makes
    /// the report say how many bytes were left unread.
    pub fn new(src: R, total: Option<u64>) -> Self {
        let mut r = CaptureReader {
            src,
            offset: 0,
            total,
            header: None,
            report: ReadReport::default(),
            done: false,
            buf: Vec::new(),
        };
        r.start();
        r
    }

    /// The header, unless the file was damaged before it ended.
    pub fn header(&self) -> Option<&CaptureHeader> {
        self.header.as_ref()
    }

    /// What the read found so far (complete once the iterator returned `None`).
    pub fn report(&self) -> &ReadReport {
        &self.report
    }

    fn fail(&mut self, at: u64, kind: DamageKind) {
        self.done = true;
        let unread = self.total.map_or(0, |t| t.saturating_sub(at));
        self.report.damage = Some(Damage {
            offset: at,
            kind,
            unread_bytes: unread,
        });
    }

    /// Fills `n` bytes into `self.buf`; `Ok(false)` at a clean end of input before any byte,
    /// `Err(Torn)` at an end after some.
    fn fill(&mut self, n: usize) -> Result<bool, DamageKind> {
        self.buf.clear();
        let mut got = 0;
        self.buf.resize(n, 0);
        while got < n {
            match self.src.read(&mut self.buf[got..]) {
                Ok(0) if got == 0 => return Ok(false),
                Ok(0) => return Err(DamageKind::Torn),
                Ok(k) => got += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(DamageKind::Io(e.to_string())),
            }
        }
        Ok(true)
    }

    fn start(&mut self) {
        match self.fill(PREAMBLE_LEN) {
            Ok(true) => {}
            Ok(false) | Err(DamageKind::Torn) => return self.fail(0, DamageKind::NotACapture),
            Err(e) => return self.fail(0, e),
        }
        if &self.buf[..MAGIC.len()] != MAGIC {
            return self.fail(0, DamageKind::NotACapture);
        }
        let v = u16::from_le_bytes([self.buf[MAGIC.len()], self.buf[MAGIC.len() + 1]]);
        if v > FORMAT_VERSION || v == 0 {
            return self.fail(0, DamageKind::NewerVersion(v));
        }
        self.offset = PREAMBLE_LEN as u64;
        self.report.bytes_read = self.offset;
        match self.frame() {
            Some(Ok(Decoded::Header(h))) => self.header = Some(h),
            Some(Ok(_)) => self.fail(PREAMBLE_LEN as u64, DamageKind::NoHeader),
            Some(Err((at, e))) => self.fail(at, e),
            None => self.fail(PREAMBLE_LEN as u64, DamageKind::NoHeader),
        }
    }

    /// The next frame: `None` at a clean end, `Err((offset, why))` at damage.
    fn frame(&mut self) -> Option<Result<Decoded, (u64, DamageKind)>> {
        let at = match self.checked_frame()? {
            Ok(at) => at,
            Err(e) => return Some(Err(e)),
        };
        let decoded = match decode_body(&self.buf) {
            Ok(d) => d,
            Err(e) => return Some(Err((at, e))),
        };
        self.advance();
        Some(Ok(decoded))
    }

    /// Moves past the frame whose body is in `self.buf`.
    fn advance(&mut self) {
        self.offset += (FRAME_OVERHEAD + self.buf.len()) as u64;
        self.report.bytes_read = self.offset;
    }

    /// The next record, an RTP packet borrowed from the reader's buffer until the next call;
    /// `None` at the end or the first damage (then [`CaptureReader::report`] says which).
    /// The same records as the [`Iterator`], without a copy of each packet.
    pub fn next_ref(&mut self) -> Option<RecordRef<'_>> {
        while !self.done {
            let at = match self.checked_frame() {
                None => {
                    self.done = true;
                    break;
                }
                Some(Err((at, e))) => {
                    self.fail(at, e);
                    break;
                }
                Some(Ok(at)) => at,
            };
            // The common case, read in place: kind, track:u32, arrival_us:u64, the packet.
            if self.buf.len() >= 13 && self.buf[0] == kind::RTP {
                self.advance();
                let b = &self.buf;
                return Some(RecordRef::Rtp {
                    track: u32::from_le_bytes([b[1], b[2], b[3], b[4]]),
                    arrival_us: u64::from_le_bytes([
                        b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12],
                    ]),
                    packet: &b[13..],
                });
            }
            match decode_body(&self.buf) {
                Ok(Decoded::Record(r)) => {
                    self.advance();
                    return Some(RecordRef::Other(r));
                }
                Ok(Decoded::Unknown) => {
                    self.advance();
                    self.report.skipped_unknown += 1;
                }
                Ok(Decoded::Header(_)) => {
                    self.advance();
                    let at = self.offset;
                    self.fail(at, DamageKind::Malformed("a second header"));
                }
                Err(e) => self.fail(at, e),
            }
        }
        None
    }

    /// Reads the next frame's body into `self.buf` and checks its length and checksum; its
    /// offset (not yet moved past: [`CaptureReader::advance`]). `None` at a clean end.
    fn checked_frame(&mut self) -> Option<Result<u64, (u64, DamageKind)>> {
        let at = self.offset;
        match self.fill(FRAME_OVERHEAD) {
            Ok(true) => {}
            Ok(false) => return None,
            Err(e) => return Some(Err((at, e))),
        }
        let len_bytes = [self.buf[0], self.buf[1], self.buf[2], self.buf[3]];
        let len = u32::from_le_bytes(len_bytes);
        let crc = u32::from_le_bytes([self.buf[4], self.buf[5], self.buf[6], self.buf[7]]);
        if len as usize > MAX_BODY {
            return Some(Err((at, DamageKind::TooLong(len))));
        }
        match self.fill(len as usize) {
            Ok(true) => {}
            Ok(false) if len == 0 => {}
            Ok(false) => return Some(Err((at, DamageKind::Torn))),
            Err(e) => return Some(Err((at, e))),
        }
        let mut d = CRC.digest();
        d.update(&len_bytes);
        d.update(&self.buf);
        if d.finalize() != crc {
            return Some(Err((at, DamageKind::Checksum)));
        }
        Some(Ok(at))
    }
}

impl<R: Read> Iterator for CaptureReader<R> {
    type Item = Record;

    fn next(&mut self) -> Option<Record> {
        self.next_ref().map(RecordRef::into_owned)
    }
}

/// Reads a whole capture from bytes: every record up to the end or the first damage.
pub fn read_capture_bytes(bytes: &[u8]) -> (Capture, ReadReport) {
    collect(CaptureReader::new(bytes, Some(bytes.len() as u64)))
}

/// Reads a whole capture file: every record up to the end or the first damage (a torn last
/// frame is what a killed writer leaves; it is reported, and everything before it kept).
pub fn read_capture(path: &Path) -> (Capture, ReadReport) {
    let mut records = Vec::new();
    let (header, report) = read_capture_with(path, |r| records.push(r.into_owned()));
    (Capture { header, records }, report)
}

/// Reads a capture file record by record into `each` (RTP packets borrowed, never all in
/// memory at once): the header and how the read ended, as [`read_capture`] reports it.
pub fn read_capture_with(
    path: &Path,
    mut each: impl FnMut(RecordRef<'_>),
) -> (Option<CaptureHeader>, ReadReport) {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) => {
            let report = ReadReport {
                damage: Some(Damage {
                    offset: 0,
                    kind: DamageKind::Io(e.to_string()),
                    unread_bytes: 0,
                }),
                ..ReadReport::default()
            };
            return (None, report);
        }
    };
    let total = file.metadata().ok().map(|m| m.len());
    // Large reads: a frame is ~1.2 KB, and the default 8 KiB buffer was a system call per
    // six of them.
    let mut r = CaptureReader::new(io::BufReader::with_capacity(1 << 20, file), total);
    while let Some(rec) = r.next_ref() {
        each(rec);
    }
    (r.header.take(), r.report)
}

fn collect<R: Read>(mut r: CaptureReader<R>) -> (Capture, ReadReport) {
    let records: Vec<Record> = r.by_ref().collect();
    let header = r.header.take();
    (Capture { header, records }, r.report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn header() -> CaptureHeader {
        CaptureHeader {
            version: FORMAT_VERSION,
            room: "lesson-7".into(),
            lesson_id: Some(7),
            started_unix_ms: 1_700_000_000_000,
        }
    }

    fn sample() -> Vec<Record> {
        vec![
            Record::Track(TrackInfo {
                track: 1,
                kind: SourceKind::TeacherCamera,
                codec: Codec::Vp8,
                payload_type: 96,
                clock_rate: 90_000,
                owner: "王老师".into(),
                hub: true,
            }),
            Record::Rtp {
                track: 1,
                arrival_us: 10,
                packet: vec![0x80, 96, 0, 1, 0, 0, 0, 9, 1, 2, 3, 4, 5],
            },
            Record::SenderReport {
                track: 1,
                arrival_us: 20,
                ntp: 0xdead_beef_0000_0001,
                rtp_time: 9,
            },
            Record::Dropped {
                track: 1,
                arrival_us: 30,
                packets: 4,
            },
            Record::TrackEnd {
                track: 1,
                arrival_us: 40,
            },
        ]
    }

    #[test]
    fn a_capture_reads_back_exactly() {
        let bytes = encode_capture(&header(), &sample());
        let (c, rep) = read_capture_bytes(&bytes);
        assert_eq!(rep.damage, None, "{}", rep.describe());
        assert_eq!(c.header, Some(header()));
        assert_eq!(c.records, sample());
        assert_eq!(rep.bytes_read, bytes.len() as u64);
    }

    #[test]
    fn a_torn_tail_keeps_every_whole_record_and_says_where() {
        let bytes = encode_capture(&header(), &sample());
        let (_, full) = read_capture_bytes(&bytes);
        let cut = &bytes[..bytes.len() - 3];
        let (c, rep) = read_capture_bytes(cut);
        assert_eq!(c.records, sample()[..4]);
        let d = rep.damage.expect("damage");
        assert_eq!(d.kind, DamageKind::Torn);
        assert_eq!(d.offset, full.bytes_read - (FRAME_OVERHEAD as u64 + 13));
        assert_eq!(d.unread_bytes, cut.len() as u64 - d.offset);
    }

    #[test]
    fn a_flipped_bit_is_caught_by_the_checksum() {
        let mut bytes = encode_capture(&header(), &sample());
        let n = bytes.len();
        bytes[n - 2] ^= 0x10;
        let (c, rep) = read_capture_bytes(&bytes);
        assert_eq!(c.records.len(), 4);
        assert_eq!(rep.damage.map(|d| d.kind), Some(DamageKind::Checksum));
    }

    #[test]
    fn an_unknown_record_kind_is_skipped_not_fatal() {
        let mut bytes = preamble().to_vec();
        encode_header(&header(), &mut bytes);
        frame(&mut bytes, |b| b.extend_from_slice(&[200, 1, 2, 3]));
        encode_record(&sample()[1], &mut bytes);
        let (c, rep) = read_capture_bytes(&bytes);
        assert_eq!(rep.damage, None);
        assert_eq!(rep.skipped_unknown, 1);
        assert_eq!(c.records, vec![sample()[1].clone()]);
    }

    #[test]
    fn wrong_magic_and_newer_versions_are_named() {
        let (_, rep) = read_capture_bytes(b"hello world, not a capture");
        assert_eq!(rep.damage.map(|d| d.kind), Some(DamageKind::NotACapture));
        let mut bytes = encode_capture(&header(), &[]);
        bytes[MAGIC.len()] = 9;
        let (c, rep) = read_capture_bytes(&bytes);
        assert_eq!(c.header, None);
        assert_eq!(
            rep.damage.map(|d| d.kind),
            Some(DamageKind::NewerVersion(9))
        );
    }

    fn arb_record() -> impl Strategy<Value = Record> {
        prop_oneof![
            (
                any::<u32>(),
                0u8..4,
                0u8..4,
                any::<u8>(),
                any::<u32>(),
                ".{0,20}",
                any::<bool>()
            )
                .prop_map(|(track, k, c, pt, clock_rate, owner, hub)| {
                    Record::Track(TrackInfo {
                        track,
                        kind: [
                            SourceKind::TeacherCamera,
                            SourceKind::Courseware,
                            SourceKind::ClassroomCamera,
                            SourceKind::Audio,
                        ][k as usize],
                        codec: [Codec::Vp8, Codec::Vp9, Codec::H264, Codec::Opus][c as usize],
                        payload_type: pt,
                        clock_rate,
                        owner,
                        hub,
                    })
                }),
            (
                any::<u32>(),
                any::<u64>(),
                proptest::collection::vec(any::<u8>(), 0..1500)
            )
                .prop_map(|(track, arrival_us, packet)| Record::Rtp {
                    track,
                    arrival_us,
                    packet
                }),
            (any::<u32>(), any::<u64>(), any::<u64>(), any::<u32>()).prop_map(
                |(track, arrival_us, ntp, rtp_time)| Record::SenderReport {
                    track,
                    arrival_us,
                    ntp,
                    rtp_time
                }
            ),
            (any::<u32>(), any::<u64>(), any::<u32>()).prop_map(|(track, arrival_us, packets)| {
                Record::Dropped {
                    track,
                    arrival_us,
                    packets,
                }
            }),
            (any::<u32>(), any::<u64>())
                .prop_map(|(track, arrival_us)| Record::TrackEnd { track, arrival_us }),
        ]
    }

    proptest! {
        #[test]
        fn any_records_round_trip(records in proptest::collection::vec(arb_record(), 0..40)) {
            let bytes = encode_capture(&header(), &records);
            let (c, rep) = read_capture_bytes(&bytes);
            prop_assert_eq!(rep.damage, None);
            prop_assert_eq!(c.records, records);
        }

        /// Cut anywhere: the records read are exactly a prefix of those written, and the
        /// report names the cut (or the end is clean at a frame boundary).
        #[test]
        fn a_truncation_reads_a_prefix(
            records in proptest::collection::vec(arb_record(), 1..30),
            cut in any::<prop::sample::Index>(),
        ) {
            let bytes = encode_capture(&header(), &records);
            let n = cut.index(bytes.len() + 1);
            let (c, rep) = read_capture_bytes(&bytes[..n]);
            prop_assert!(c.records.len() <= records.len());
            prop_assert_eq!(&c.records[..], &records[..c.records.len()]);
            prop_assert!(rep.bytes_read <= n as u64);
            match rep.damage {
                None => prop_assert_eq!(rep.bytes_read, n as u64),
                Some(d) => prop_assert_eq!(d.offset + d.unread_bytes, n as u64),
            }
        }

        /// Random bytes overwritten: never a panic, and what is read before the damage is
        /// what was written (a corrupted frame is never returned as a record).
        #[test]
        fn corruption_stops_cleanly(
            records in proptest::collection::vec(arb_record(), 1..30),
            hits in proptest::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..6),
        ) {
            let mut bytes = encode_capture(&header(), &records);
            let first = hits.iter().map(|(i, _)| i.index(bytes.len())).min().unwrap_or(0);
            for (i, x) in &hits {
                let i = i.index(bytes.len());
                bytes[i] ^= x;
            }
            let (c, rep) = read_capture_bytes(&bytes);
            prop_assert!(c.records.len() <= records.len());
            prop_assert_eq!(&c.records[..], &records[..c.records.len()]);
            if let Some(d) = rep.damage {
                prop_assert!(d.offset as usize <= first, "damage at {} after first hit {}", d.offset, first);
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
            let (_, rep) = read_capture_bytes(&bytes);
            prop_assert!(rep.bytes_read <= bytes.len() as u64);
        }

        #[test]
        fn arbitrary_frames_after_a_good_header_never_panic(
            tail in proptest::collection::vec(any::<u8>(), 0..4096),
        ) {
            let mut bytes = encode_capture(&header(), &[]);
            bytes.extend_from_slice(&tail);
            let (c, _) = read_capture_bytes(&bytes);
            prop_assert_eq!(c.header, Some(header()));
        }
    }
}
