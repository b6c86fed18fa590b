//! Writes one source's frames into a WebM/Matroska file: EBML header, SeekHead, Info (with
//! duration), Tracks, clusters that start at video keyframes, and Cues pointing at them, so the
//! file is seekable. Builds bytes only; must never touch the filesystem.
//!
//! Elements are encoded with `webm-iterable` (0.7, the Matroska specification over
//! `ebml-iterable`'s writer): it is maintained, pure Rust, knows every Matroska element and its
//! type and validates where each one goes. Clusters and their SimpleBlocks, nearly all of a
//! file's bytes, are the exception: written by hand in one copy (see `ClusterWriter`). The
//! crate has no notion of positions, so this module lays the segment out itself: clusters are
//! sized first, then the header is re-encoded until the SeekHead's positions (which depend on
//! its own size) are stable, and the Segment is written with its known size, the clusters
//! streamed after it. Alternatives looked at: `mkvdump` (a reader), `matroska-demuxer` (a
//! reader, used by the tests to check these files independently), `webm` (libwebm bindings, a
//! C++ library).

use std::io::Write;

use webm_iterable::matroska_spec::{Master, MatroskaSpec};
use webm_iterable::{WebmWriter, WriteOptions};

use super::codec;
use crate::record::format::Codec;

/// A track to mux: its frames with their times in ms from the file's zero, in order.
pub(super) struct MuxTrack<'a> {
    pub codec: Codec,
    pub frames: Vec<MuxFrame<'a>>,
    /// Picture size for video (taken from the first keyframe).
    pub size: Option<(u32, u32)>,
    pub codec_private: Option<Vec<u8>>,
}

pub(super) struct MuxFrame<'a> {
    pub time_ms: u64,
    pub keyframe: bool,
    pub data: &'a [u8],
}

/// Why a file could not be written.
#[derive(Debug, thiserror::Error)]
pub(super) enum MuxError {
    /// The destination refused the bytes.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The element writer or the layout failed.
    #[error("matroska writer: {0}")]
    Layout(String),
}

fn err(e: impl std::fmt::Display) -> MuxError {
    MuxError::Layout(e.to_string())
}

/// A cluster longer than this starts a new one even without a keyframe (block timestamps are
/// 16-bit signed ms relative to the cluster).
const MAX_CLUSTER_MS: u64 = 30_000;
/// Audio-only files get a cluster (and a cue) every 5 s.
const AUDIO_CLUSTER_MS: u64 = 5_000;

const ID_INFO: [u8; 4] = [0x15, 0x49, 0xA9, 0x66];
const ID_TRACKS: [u8; 4] = [0x16, 0x54, 0xAE, 0x6B];
const ID_CUES: [u8; 4] = [0x1C, 0x53, 0xBB, 0x6B];
const ID_SEGMENT: u64 = 0x1853_8067;

fn codec_id(c: Codec) -> &'static str {
    match c {
        Codec::Vp8 => "V_VP8",
        Codec::Vp9 => "V_VP9",
        Codec::H264 => "V_MPEG4/ISO/AVC",
        Codec::Opus => "A_OPUS",
    }
}

/// Encodes elements that live inside a Segment; returns their bytes and each one's length.
fn encode_in_segment(tags: &[MatroskaSpec]) -> Result<(Vec<u8>, Vec<usize>), MuxError> {
    let start = |w: &mut WebmWriter<Vec<u8>>| {
        w.write_advanced(
            &MatroskaSpec::Segment(Master::Start),
            WriteOptions::is_unknown_sized_element(),
        )
        .map_err(err)
    };
    // The writer holds the open Segment's header until a child completes: measure it alone.
    let mut probe = WebmWriter::new(Vec::new());
    start(&mut probe)?;
    let base = probe.into_inner().map_err(err)?.len();
    let mut w = WebmWriter::new(Vec::new());
    start(&mut w)?;
    let mut lens = Vec::with_capacity(tags.len());
    let mut at = base;
    for t in tags {
        w.write(t).map_err(err)?;
        let now = w.get_ref().len();
        lens.push(now - at);
        at = now;
    }
    let mut bytes = w.into_inner().map_err(err)?;
    bytes.drain(..base);
    Ok((bytes, lens))
}

fn track_entry(number: u64, t: &MuxTrack<'_>) -> MatroskaSpec {
    let mut children = vec![
        MatroskaSpec::TrackNumber(number),
        MatroskaSpec::TrackUID(number),
        MatroskaSpec::TrackType(if t.codec.is_audio() { 2 } else { 1 }),
        MatroskaSpec::FlagLacing(0),
        MatroskaSpec::CodecID(codec_id(t.codec).to_string()),
    ];
    if let Some(p) = &t.codec_private {
        children.push(MatroskaSpec::CodecPrivate(p.clone()));
    }
    if t.codec.is_audio() {
        // RFC 7845 / Matroska Opus: pre-skip as CodecDelay (ns), 80 ms SeekPreRoll.
        children.push(MatroskaSpec::CodecDelay(
            u64::from(codec::OPUS_PRE_SKIP) * 1_000_000_000 / 48_000,
        ));
        children.push(MatroskaSpec::SeekPreRoll(80_000_000));
        children.push(MatroskaSpec::Audio(Master::Full(vec![
            MatroskaSpec::SamplingFrequency(48_000.0),
            MatroskaSpec::Channels(2),
        ])));
    } else {
        // A nominal size when the bitstream did not say (decoders use the bitstream's).
        let (w, h) = t.size.unwrap_or((640, 480));
        children.push(MatroskaSpec::Video(Master::Full(vec![
            MatroskaSpec::PixelWidth(u64::from(w)),
            MatroskaSpec::PixelHeight(u64::from(h)),
        ])));
    }
    MatroskaSpec::TrackEntry(Master::Full(children))
}

/// A cluster as laid out before it is written: its time, whether it starts at a keyframe,
/// its offset among the clusters and size, and its frames (`order[first..end]`).
struct Plan {
    time: u64,
    key: bool,
    offset: usize,
    size: usize,
    first: usize,
    end: usize,
}

/// Bytes of an EBML data size `n` as a variable-size integer of the shortest length (all ones
/// is reserved for "unknown", hence the `- 1`).
fn size_len(n: u64) -> usize {
    let mut len = 1;
    while len < 8 && n >= (1u64 << (7 * len)) - 1 {
        len += 1;
    }
    len
}

fn put_size(out: &mut Vec<u8>, n: u64) {
    let len = size_len(n);
    let v = n | (1u64 << (7 * len));
    out.extend_from_slice(&v.to_be_bytes()[8 - len..]);
}

/// Bytes of an unsigned integer element's value (at least one).
fn uint_len(v: u64) -> usize {
    8 - (v.leading_zeros() / 8).min(7) as usize
}

/// Bytes of a cluster before its blocks: ID, 8-byte size, its Timestamp element.
fn cluster_head_len(time: u64) -> usize {
    let n = uint_len(time);
    4 + 8 + 1 + size_len(n as u64) + n
}

/// Bytes of a SimpleBlock element of a `n`-byte frame.
fn block_len(n: usize) -> usize {
    1 + size_len(4 + n as u64) + 4 + n
}

/// A Cluster being written into the segment's buffer. Clusters and their SimpleBlocks are
/// the one part of the file written here by hand (the header, Tracks and Cues go through
/// `webm-iterable`): the crate builds a block as its own `Vec`, then the cluster as an
/// element tree it serializes into another, which this layout then copied twice more, so
/// each frame's bytes were copied four times, and a file's clusters were all held in memory;
/// here they are copied once, into one cluster's buffer on its way out. The element layout is the Matroska specification's and the files are read back
/// by an independent demuxer in the tests.
struct ClusterWriter {
    /// Where the cluster's 8-byte size goes, and where its body starts.
    size_at: usize,
}

/// Cluster's element ID; Timestamp's and SimpleBlock's.
const ID_CLUSTER: [u8; 4] = [0x1F, 0x43, 0xB6, 0x75];
const ID_CLUSTER_TIMESTAMP: u8 = 0xE7;
const ID_SIMPLE_BLOCK: u8 = 0xA3;

impl ClusterWriter {
    /// Starts a cluster at `time` ms (its size is filled in by [`ClusterWriter::close`]).
    fn open(out: &mut Vec<u8>, time: u64) -> Self {
        out.extend_from_slice(&ID_CLUSTER);
        let size_at = out.len();
        out.extend_from_slice(&[0x01, 0, 0, 0, 0, 0, 0, 0]);
        // Timestamp: an unsigned integer in as few bytes as it needs (at least one).
        let n = uint_len(time);
        out.push(ID_CLUSTER_TIMESTAMP);
        put_size(out, n as u64);
        out.extend_from_slice(&time.to_be_bytes()[8 - n..]);
        ClusterWriter { size_at }
    }

    /// Writes the cluster's size (8-byte form: marker 0x01, then 7 bytes big-endian).
    fn close(self, out: &mut [u8]) {
        let size = (out.len() - self.size_at - 8) as u64;
        let mut v = size.to_be_bytes();
        v[0] = 0x01;
        out[self.size_at..self.size_at + 8].copy_from_slice(&v);
    }
}

/// One SimpleBlock (no lacing): track number, timestamp relative to the cluster, flags
/// (keyframe), the frame.
fn simple_block(out: &mut Vec<u8>, track: u64, rel: i16, keyframe: bool, data: &[u8]) {
    // Track numbers here are 1 and 2: a one-byte vint.
    debug_assert!(track < 127);
    out.push(ID_SIMPLE_BLOCK);
    put_size(out, 4 + data.len() as u64);
    out.push(0x80 | track as u8);
    out.extend_from_slice(&rel.to_be_bytes());
    out.push(if keyframe { 0x80 } else { 0 });
    out.extend_from_slice(data);
}

/// Muxes the tracks (video first, if any) into `out`; returns the duration in ms.
pub(super) fn mux(
    tracks: &[MuxTrack<'_>],
    title: &str,
    out: &mut impl Write,
) -> Result<u64, MuxError> {
    let webm = tracks
        .iter()
        .all(|t| matches!(t.codec, Codec::Vp8 | Codec::Vp9 | Codec::Opus));
    let video = tracks.iter().position(|t| !t.codec.is_audio());

    // All frames in time order (video before audio at equal times).
    let mut order: Vec<(u64, bool, usize, usize)> = Vec::new();
    for (ti, t) in tracks.iter().enumerate() {
        for (fi, f) in t.frames.iter().enumerate() {
            order.push((f.time_ms, t.codec.is_audio(), ti, fi));
        }
    }
    order.sort_unstable();

    // Clusters are laid out first (their sizes only) and written after the header straight
    // to `out` (see `ClusterWriter`), so a file's clusters are never all in memory at once.
    let mut plans: Vec<Plan> = Vec::new();
    let mut cur: Option<Plan> = None;
    let mut end_ms = 0u64;
    for (oi, &(time, _, ti, fi)) in order.iter().enumerate() {
        let f = &tracks[ti].frames[fi];
        let is_video_key = Some(ti) == video && f.keyframe;
        let new_cluster = cur.as_ref().is_none_or(|p| {
            is_video_key
                || time - p.time >= MAX_CLUSTER_MS
                || (video.is_none() && time - p.time >= AUDIO_CLUSTER_MS)
        });
        if new_cluster {
            let mut offset = 0;
            if let Some(p) = cur.take() {
                offset = p.offset + p.size;
                plans.push(p);
            }
            cur = Some(Plan {
                time,
                key: is_video_key || video.is_none(),
                offset,
                size: cluster_head_len(time),
                first: oi,
                end: oi,
            });
        }
        if let Some(p) = cur.as_mut() {
            i16::try_from(time - p.time).map_err(err)?;
            p.size += block_len(f.data.len());
            p.end = oi + 1;
        }
        end_ms = end_ms.max(time);
    }
    plans.extend(cur);
    let clusters_len = plans.last().map_or(0, |p| p.offset + p.size);
    // (cluster time, offset among the clusters, starts at a key).
    let starts: Vec<(u64, usize, bool)> = plans.iter().map(|p| (p.time, p.offset, p.key)).collect();

    // Duration: the last frame plus one frame period of its track.
    let mut duration_ms = end_ms;
    for t in tracks {
        if let [.., a, b] = t.frames.as_slice() {
            duration_ms = duration_ms.max(
                b.time_ms
                    .saturating_add(b.time_ms.saturating_sub(a.time_ms)),
            );
        }
    }
    let first_ms = order.first().map(|o| o.0).unwrap_or(0);
    let duration_ms = duration_ms.saturating_sub(first_ms);

    let cue_track = video.unwrap_or(0) as u64 + 1;
    let cue_points: Vec<(u64, usize)> = starts.iter().filter(|s| s.2).map(|s| (s.0, s.1)).collect();

    let info = MatroskaSpec::Info(Master::Full(vec![
        MatroskaSpec::TimestampScale(1_000_000),
        MatroskaSpec::Duration(duration_ms as f64),
        MatroskaSpec::Title(title.to_string()),
        MatroskaSpec::MuxingApp("classrelay".to_string()),
        MatroskaSpec::WritingApp("classrelay record::process".to_string()),
    ]));
    let track_entries = MatroskaSpec::Tracks(Master::Full(
        tracks
            .iter()
            .enumerate()
            .map(|(i, t)| track_entry(i as u64 + 1, t))
            .collect(),
    ));

    // Lay out: SeekHead, Info, Tracks, clusters, Cues; iterate until positions are stable.
    let mut positions = (0u64, 0u64, 0u64); // info, tracks, cues
    let mut header;
    let mut rounds = 0;
    loop {
        let seek = |id: &[u8; 4], pos: u64| {
            MatroskaSpec::Seek(Master::Full(vec![
                MatroskaSpec::SeekID(id.to_vec()),
                MatroskaSpec::SeekPosition(pos),
            ]))
        };
        let seek_head = MatroskaSpec::SeekHead(Master::Full(vec![
            seek(&ID_INFO, positions.0),
            seek(&ID_TRACKS, positions.1),
            seek(&ID_CUES, positions.2),
        ]));
        let (bytes, lens) = encode_in_segment(&[seek_head, info.clone(), track_entries.clone()])?;
        header = bytes;
        let next = (
            lens[0] as u64,
            (lens[0] + lens[1]) as u64,
            (header.len() + clusters_len) as u64,
        );
        if next == positions {
            break;
        }
        positions = next;
        rounds += 1;
        if rounds > 8 {
            return Err(err("segment layout did not settle"));
        }
    }
    let cues = MatroskaSpec::Cues(Master::Full(
        cue_points
            .iter()
            .map(|&(time, off)| {
                MatroskaSpec::CuePoint(Master::Full(vec![
                    MatroskaSpec::CueTime(time),
                    MatroskaSpec::CueTrackPositions(Master::Full(vec![
                        MatroskaSpec::CueTrack(cue_track),
                        MatroskaSpec::CueClusterPosition((header.len() + off) as u64),
                    ])),
                ]))
            })
            .collect(),
    ));
    let (cue_bytes, _) = encode_in_segment(&[cues])?;

    let mut w = WebmWriter::new(Vec::new());
    w.write(&MatroskaSpec::Ebml(Master::Full(vec![
        MatroskaSpec::EbmlVersion(1),
        MatroskaSpec::EbmlReadVersion(1),
        MatroskaSpec::EbmlMaxIdLength(4),
        MatroskaSpec::EbmlMaxSizeLength(8),
        MatroskaSpec::DocType(if webm { "webm" } else { "matroska" }.to_string()),
        MatroskaSpec::DocTypeVersion(4),
        MatroskaSpec::DocTypeReadVersion(2),
    ])))
    .map_err(err)?;
    out.write_all(&w.into_inner().map_err(err)?)?;
    // The Segment's own header is written here, not through the element writer, so that the
    // clusters stream straight to `out` instead of being copied into one more buffer: its ID
    // and an 8-byte size (EBML VINT: marker 0x01, then 7 bytes big-endian).
    let size = (header.len() + clusters_len + cue_bytes.len()) as u64;
    if size >= 1 << 56 {
        return Err(err("segment too large"));
    }
    out.write_all(&ID_SEGMENT.to_be_bytes()[4..])?;
    let mut vint = size.to_be_bytes();
    vint[0] = 0x01;
    out.write_all(&vint)?;
    out.write_all(&header)?;
    let mut buf = Vec::new();
    for p in &plans {
        buf.clear();
        let c = ClusterWriter::open(&mut buf, p.time);
        for &(time, _, ti, fi) in &order[p.first..p.end] {
            let f = &tracks[ti].frames[fi];
            let rel = i16::try_from(time - p.time).map_err(err)?;
            simple_block(&mut buf, ti as u64 + 1, rel, f.keyframe, f.data);
        }
        c.close(&mut buf);
        if buf.len() != p.size {
            return Err(err("a cluster's size differs from its layout"));
        }
        out.write_all(&buf)?;
    }
    out.write_all(&cue_bytes)?;
    Ok(duration_ms)
}
