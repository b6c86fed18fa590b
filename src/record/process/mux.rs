//! Writes one source's frames into a WebM/Matroska file: EBML header, SeekHead, Info (with
//! duration), Tracks, clusters that start at video keyframes, and Cues pointing at them, so the
//! file is seekable. Builds bytes only; must never touch the filesystem.
//!
//! Elements are encoded with `webm-iterable` (0.7, the Matroska specification over
//! `ebml-iterable`'s writer): it is maintained, pure Rust, knows every Matroska element and its
//! type and validates where each one goes. It has no notion of positions, so this module lays
//! the segment out itself: clusters are encoded first, then the header is re-encoded until the
//! SeekHead's positions (which depend on its own size) are stable, and the Segment is written
//! with its known size. Alternatives looked at: `mkvdump` (a reader), `matroska-demuxer` (a
//! reader, used by the tests to check these files independently), `webm` (libwebm bindings, a
//! C++ library).

use std::io::Write;

use webm_iterable::matroska_spec::{Master, MatroskaSpec, SimpleBlock};
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

    // Clusters, encoded one at a time; (cluster time, offset in `clusters`, starts at a key).
    let mut clusters = Vec::new();
    let mut starts: Vec<(u64, usize, bool)> = Vec::new();
    let mut blocks: Vec<MatroskaSpec> = Vec::new();
    let mut cluster_time = 0u64;
    let mut cluster_key = false;
    let mut end_ms = 0u64;
    let flush = |blocks: &mut Vec<MatroskaSpec>,
                 time: u64,
                 key: bool,
                 clusters: &mut Vec<u8>,
                 starts: &mut Vec<(u64, usize, bool)>|
     -> Result<(), MuxError> {
        if blocks.is_empty() {
            return Ok(());
        }
        let mut children = vec![MatroskaSpec::Timestamp(time)];
        children.append(blocks);
        let (bytes, _) = encode_in_segment(&[MatroskaSpec::Cluster(Master::Full(children))])?;
        starts.push((time, clusters.len(), key));
        clusters.extend_from_slice(&bytes);
        Ok(())
    };
    for &(time, _, ti, fi) in &order {
        let t = &tracks[ti];
        let f = &t.frames[fi];
        let is_video_key = Some(ti) == video && f.keyframe;
        let new_cluster = blocks.is_empty()
            || is_video_key
            || time - cluster_time >= MAX_CLUSTER_MS
            || (video.is_none() && time - cluster_time >= AUDIO_CLUSTER_MS);
        if new_cluster {
            flush(
                &mut blocks,
                cluster_time,
                cluster_key,
                &mut clusters,
                &mut starts,
            )?;
            cluster_time = time;
            cluster_key = is_video_key || video.is_none();
        }
        let rel = i16::try_from(time - cluster_time).map_err(err)?;
        let block =
            SimpleBlock::new_uncheked(f.data, ti as u64 + 1, rel, false, None, false, f.keyframe);
        blocks.push(block.into());
        end_ms = end_ms.max(time);
    }
    flush(
        &mut blocks,
        cluster_time,
        cluster_key,
        &mut clusters,
        &mut starts,
    )?;

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
            (header.len() + clusters.len()) as u64,
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
    let size = (header.len() + clusters.len() + cue_bytes.len()) as u64;
    if size >= 1 << 56 {
        return Err(err("segment too large"));
    }
    out.write_all(&ID_SEGMENT.to_be_bytes()[4..])?;
    let mut vint = size.to_be_bytes();
    vint[0] = 0x01;
    out.write_all(&vint)?;
    out.write_all(&header)?;
    out.write_all(&clusters)?;
    out.write_all(&cue_bytes)?;
    Ok(duration_ms)
}
