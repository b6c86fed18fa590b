//! Processing: a [`Capture`] read back → one browser-playable file per source (WebM for VP8,
//! VP9 and Opus; Matroska for H.264) on one lesson timeline, and the lesson's `manifest.json`.
//! Pure Rust; runs off the media path (lesson end, start-up recovery). Must never panic on any
//! capture, never read the capture file itself (the reader hands it a [`Capture`], or its
//! records one by one into [`Tracks`]), and never know about sockets, rooms or the database.
//!
//! - [`track`]: RTP → frames per track (ordering, losses, depacketizing, keyframes).
//! - [`timeline`]: RTP time → the lesson timeline (sender reports, else arrival).
//! - [`mux`]: frames → WebM/Matroska bytes (clusters at keyframes, Cues, duration).
//! - [`codec`]: the little the processor reads of each codec's bitstream.
//!
//! Sources: every video track is a source; a camera (teacher's or classroom's) takes its
//! owner's first unpaired audio track into the same file; the courseware screen is muxed alone
//! and every audio track left over is a source of its own. Each file's timestamps count from the
//! source's own start, which the manifest gives as `start_ms` on the lesson timeline (zero = the
//! earliest frame of any source). A source without a playable frame gets no file and a note.

mod codec;
mod mux;
#[cfg(test)]
mod tests;
mod timeline;
mod track;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::record::file::RecordRef;
use crate::record::format::{Capture, CaptureHeader, Codec, Record, SourceKind, TrackInfo};
use timeline::Basis;
use track::{TrackBuilder, TrackFrames};

/// The manifest's version.
pub const MANIFEST_VERSION: u32 = 1;

/// The lesson's recording as processed: `manifest.json` beside the files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`MANIFEST_VERSION`].
    pub version: u32,
    /// The room recorded (`None` when the capture's header was lost).
    pub room: Option<String>,
    /// The lesson, when the room is a timetable lesson's.
    pub lesson_id: Option<i64>,
    /// Wall-clock time of capture time zero, Unix ms.
    pub started_unix_ms: Option<i64>,
    /// Wall-clock time of the lesson timeline's zero (the earliest frame of any source), Unix ms.
    pub timeline_zero_unix_ms: Option<i64>,
    /// The lesson timeline's length: the end of the last source, ms.
    pub duration_ms: u64,
    /// False when the capture was cut off (no header, or a track without its end record): the
    /// files hold everything up to the cut, and `notes` says what.
    pub complete: bool,
    /// What a person should know: cut-off tracks, sources without frames, packets left out.
    pub notes: Vec<String>,
    /// One entry per file.
    pub sources: Vec<Source>,
    /// A lesson recorded in parts (a server restart cut it): every part, this one among them,
    /// on one lesson timeline, by start. Empty for a lesson recorded in one piece; written by
    /// the school side once a part is processed (`school::recording_files::link_parts`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<LessonPart>,
}

/// One part of a lesson recorded in parts: where its own timeline's zero sits on the lesson's
/// (the first part's zero is 0) and how long it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LessonPart {
    /// The part's recording id.
    pub recording: i64,
    /// Its timeline's zero on the lesson timeline, ms.
    pub start_ms: u64,
    /// Its length, ms (its manifest's once processed, else from its start and end).
    pub duration_ms: u64,
    /// Nothing was recorded for this long before it (none for the first part), ms.
    pub gap_before_ms: Option<u64>,
}

/// One file of the recording.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Source {
    /// File name inside the recording's directory.
    pub file: String,
    /// What the source is (the video track's kind; `audio` for an audio-only file).
    pub kind: SourceKind,
    /// Codecs as a `codecs=` parameter lists them: `vp8,opus`, `h264`, `opus`.
    pub codec: String,
    /// MIME type for the player: `video/webm`, `audio/webm` or `video/x-matroska`.
    pub mime: String,
    /// Who published it.
    pub owner: String,
    /// Whether the owner is the hub.
    pub hub: bool,
    /// Where the file's time zero sits on the lesson timeline, ms.
    pub start_ms: u64,
    /// The file's duration, ms.
    pub duration_ms: u64,
    /// Frames in the file, all tracks.
    pub frames: u64,
    /// Losses, every track's, on the lesson timeline.
    pub gaps: Vec<Gap>,
    /// Hex SHA-256 of the file.
    pub sha256: String,
    /// `sender_reports` when every track's times come from RTCP sender reports, else `arrival`.
    pub timeline: Timeline,
    /// The tracks muxed into the file.
    pub tracks: Vec<SourceTrack>,
}

/// A track inside a source's file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceTrack {
    /// The capture's track id.
    pub track: u32,
    /// Its codec.
    pub codec: Codec,
    /// Frames written.
    pub frames: u64,
    /// Keyframes among them.
    pub keyframes: u64,
    /// Its first frame on the lesson timeline, ms.
    pub start_ms: u64,
    /// How its times were found.
    pub timeline: Timeline,
    /// Whether the capture holds the track's end (false: cut off).
    pub ended: bool,
    /// Frames left out: undecodable ones before the first keyframe or after a loss.
    pub dropped_frames: u64,
    /// Packets left out: arrived too late to be put in order, duplicated, unparsable, or of
    /// another payload type.
    pub discarded_packets: u64,
    /// Times the publisher's SSRC changed (a reconnect).
    pub ssrc_changes: u64,
}

/// How a track was put on the lesson timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Timeline {
    /// RTCP sender reports (NTP ↔ RTP): audio and video of one publisher aligned as it sent them.
    SenderReports,
    /// No sender report: packet arrival times (alignment only as good as the network's jitter).
    Arrival,
}

/// Whose loss a gap is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GapCause {
    /// Packets the server never received (or received damaged).
    Network,
    /// Packets the recorder dropped before the disk (a `Dropped` record came with them).
    Recorder,
}

/// A loss in a source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gap {
    /// The last good frame before the loss, on the lesson timeline, ms.
    pub at_ms: u64,
    /// Until the next frame written (for video: the next keyframe), ms.
    pub dur_ms: u64,
    /// Whose loss.
    pub cause: GapCause,
    /// The track it is in.
    pub track: u32,
    /// RTP packets missing.
    pub lost_packets: u64,
    /// Frames left out because of it.
    pub dropped_frames: u64,
}

/// Why processing failed (bad input never fails it: it is reported in the manifest).
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// Writing a file failed.
    #[error("writing {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The muxer could not lay a file out.
    #[error("muxing {file}: {reason}")]
    Mux {
        /// The file.
        file: String,
        /// Why.
        reason: String,
    },
}

/// A track's frames with their lesson-timeline times.
struct Timed {
    info: TrackInfo,
    frames: TrackFrames,
    /// µs on the capture clock, per frame.
    times: Vec<i64>,
    basis: Basis,
}

fn kind_name(k: SourceKind) -> &'static str {
    match k {
        SourceKind::TeacherCamera => "teacher_camera",
        SourceKind::Courseware => "courseware",
        SourceKind::ClassroomCamera => "classroom_camera",
        SourceKind::Audio => "audio",
    }
}

fn codec_name(c: Codec) -> &'static str {
    match c {
        Codec::Vp8 => "vp8",
        Codec::Vp9 => "vp9",
        Codec::H264 => "h264",
        Codec::Opus => "opus",
    }
}

/// `a - b` in ms (rounded), clamped into u64.
fn ms_between(a: i64, b: i64) -> u64 {
    let d = (i128::from(a) - i128::from(b) + 500) / 1000;
    u64::try_from(d.max(0)).unwrap_or(u64::MAX)
}

/// A capture's records taken in one by one, in capture order, into per-track frames: from a
/// [`Capture`] in memory ([`process`]) or straight from the file's reader
/// ([`Tracks::push`] from `record::file::read_capture_with`), so a long lesson's packets need
/// not all be in memory as records first.
#[derive(Default)]
pub struct Tracks {
    builders: BTreeMap<u32, TrackBuilder>,
    orphans: u64,
}

impl Tracks {
    /// No tracks yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes the next record (an RTP packet borrowed from the reader).
    pub fn push(&mut self, r: RecordRef<'_>) {
        match r {
            RecordRef::Rtp {
                track,
                arrival_us,
                packet,
            } => match self.builders.get_mut(&track) {
                Some(b) => b.rtp(arrival_us, packet),
                None => self.orphans += 1,
            },
            RecordRef::Other(r) => self.push_record(&r),
        }
    }

    /// Takes the next record.
    pub fn push_record(&mut self, r: &Record) {
        if let Record::Track(info) = r {
            self.builders
                .entry(info.track)
                .or_insert_with(|| TrackBuilder::new(info.clone()));
            return;
        }
        let Some(b) = self.builders.get_mut(&r.track()) else {
            self.orphans += 1;
            return;
        };
        match r {
            Record::Track(_) => {}
            Record::Rtp {
                arrival_us, packet, ..
            } => b.rtp(*arrival_us, packet),
            Record::SenderReport {
                arrival_us,
                ntp,
                rtp_time,
                ..
            } => b.sender_report(*arrival_us, *ntp, *rtp_time),
            Record::Dropped { .. } => b.dropped(),
            Record::TrackEnd { .. } => b.end(),
        }
    }

    /// Every track's frames (flushing the reorder buffers).
    fn finish(self, notes: &mut Vec<String>) -> Vec<(TrackInfo, TrackFrames)> {
        let orphans = self.orphans;
        if orphans > 0 {
            notes.push(format!(
                "{orphans} records named a track the capture never declared; left out"
            ));
        }
        self.builders
            .into_values()
            .map(|b| {
                let info = b.info().clone();
                (info, b.finish())
            })
            .collect()
    }
}

/// Processes a capture into `out_dir` (created if missing): one file per source and
/// `manifest.json`, which is also returned.
pub fn process(capture: &Capture, out_dir: &Path) -> Result<Manifest, ProcessError> {
    let mut tracks = Tracks::new();
    for r in &capture.records {
        tracks.push_record(r);
    }
    process_tracks(capture.header.as_ref(), tracks, out_dir)
}

/// [`process`] of records already taken in (see [`Tracks`]); `header` is the capture's.
pub fn process_tracks(
    header: Option<&CaptureHeader>,
    tracks: Tracks,
    out_dir: &Path,
) -> Result<Manifest, ProcessError> {
    let mut notes = Vec::new();
    let mut complete = true;
    if header.is_none() {
        complete = false;
        notes.push("the capture's header is missing: lesson and room unknown".to_string());
    }
    let tracks = tracks.finish(&mut notes);

    let offsets = timeline::owner_offsets(tracks.iter().map(|(i, t)| (i.owner.as_str(), t)));
    let mut timed: Vec<Timed> = tracks
        .into_iter()
        .map(|(info, frames)| {
            let (times, basis) =
                timeline::frame_times(&frames, info.clock_rate, offsets.get(&info.owner).copied());
            Timed {
                info,
                frames,
                times,
                basis,
            }
        })
        .collect();

    for t in &timed {
        let f = &t.frames;
        if !f.ended {
            complete = false;
            notes.push(format!(
                "track {} ({} of {}) has no end record: the capture was cut off; processed up to the last packet",
                t.info.track,
                kind_name(t.info.kind),
                t.info.owner
            ));
        }
        if t.frames.frames.is_empty() {
            notes.push(format!(
                "track {} ({} of {}) holds no playable frame; no file",
                t.info.track,
                kind_name(t.info.kind),
                t.info.owner
            ));
        }
        let discarded = f.late_packets + f.duplicate_packets + f.malformed_packets;
        if discarded > 0 || f.other_payload_type > 0 {
            notes.push(format!(
                "track {}: {} packets arrived too late to order, {} duplicated, {} unparsable, {} of another payload type",
                t.info.track, f.late_packets, f.duplicate_packets, f.malformed_packets, f.other_payload_type
            ));
        }
    }
    timed.retain(|t| !t.frames.frames.is_empty());

    let zero = timed.iter().filter_map(|t| t.times.first().copied()).min();

    // Pair cameras with their owner's audio.
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut used = vec![false; timed.len()];
    for (i, t) in timed.iter().enumerate() {
        if t.info.codec.is_audio() {
            continue;
        }
        used[i] = true;
        let mut g = vec![i];
        if matches!(
            t.info.kind,
            SourceKind::TeacherCamera | SourceKind::ClassroomCamera
        ) {
            if let Some(a) = timed.iter().enumerate().position(|(j, a)| {
                !used[j] && a.info.codec.is_audio() && a.info.owner == t.info.owner
            }) {
                used[a] = true;
                g.push(a);
            }
        }
        groups.push(g);
    }
    for (i, u) in used.iter().enumerate() {
        if !u {
            groups.push(vec![i]);
        }
    }

    std::fs::create_dir_all(out_dir).map_err(|source| ProcessError::Io {
        path: out_dir.to_path_buf(),
        source,
    })?;

    let zero_us = zero.unwrap_or(0);
    let room = header.map(|h| h.room.as_str()).unwrap_or("?");
    // One source's file: its tracks muxed, written, synced and hashed.
    let one = |g: &[usize]| -> Result<Source, ProcessError> {
        let lead = &timed[g[0]];
        let file_zero = g
            .iter()
            .filter_map(|&i| timed[i].times.first().copied())
            .min()
            .unwrap_or(zero_us);
        let start_ms = ms_between(file_zero, zero_us);
        let webm = g.iter().all(|&i| timed[i].info.codec != Codec::H264);
        let ext = if webm { "webm" } else { "mkv" };
        let file = format!("{}-{}.{ext}", kind_name(lead.info.kind), lead.info.track);

        let mut mux_tracks = Vec::new();
        let mut entries = Vec::new();
        let mut gaps = Vec::new();
        for &i in g {
            let t = &timed[i];
            let frames: Vec<mux::MuxFrame<'_>> = t
                .frames
                .frames
                .iter()
                .zip(&t.times)
                .map(|(f, &us)| mux::MuxFrame {
                    time_ms: ms_between(us, file_zero),
                    keyframe: f.keyframe,
                    data: &f.data,
                })
                .collect();
            let codec = t.info.codec;
            let size = t
                .frames
                .frames
                .iter()
                .filter(|f| f.keyframe)
                .find_map(|f| codec::picture_size(codec, &f.data));
            let codec_private = match codec {
                Codec::Opus => Some(codec::opus_head()),
                Codec::H264 => codec::avc_config(t.frames.frames.iter().map(|f| f.data.as_slice())),
                _ => None,
            };
            let ms_at = |idx: usize| ms_between(t.times[idx], zero_us);
            for gap in &t.frames.gaps {
                let at = if gap.next_frame > 0 {
                    ms_at(gap.next_frame - 1)
                } else {
                    start_ms
                };
                let next = match (t.times.get(gap.next_frame), gap.until_arrival_us) {
                    (Some(&us), _) => ms_between(us, zero_us),
                    // Nothing decodable after it: until the last packet, on the timeline as
                    // the last frame was.
                    (None, Some(until)) => match t.frames.frames.last() {
                        Some(last) => {
                            let last_us = t.times[t.times.len() - 1];
                            ms_between(last_us, zero_us).saturating_add(ms_between(
                                i64::try_from(until).unwrap_or(i64::MAX),
                                i64::try_from(last.arrival_us).unwrap_or(i64::MAX),
                            ))
                        }
                        None => at,
                    },
                    (None, None) => at,
                };
                gaps.push(Gap {
                    at_ms: at,
                    dur_ms: next.saturating_sub(at),
                    cause: gap.cause,
                    track: t.info.track,
                    lost_packets: gap.lost_packets,
                    dropped_frames: gap.dropped_frames,
                });
            }
            let f = &t.frames;
            entries.push(SourceTrack {
                track: t.info.track,
                codec,
                frames: f.frames.len() as u64,
                keyframes: f.frames.iter().filter(|x| x.keyframe).count() as u64,
                start_ms: t
                    .times
                    .first()
                    .map(|&us| ms_between(us, zero_us))
                    .unwrap_or(0),
                timeline: match t.basis {
                    Basis::SenderReports => Timeline::SenderReports,
                    Basis::Arrival => Timeline::Arrival,
                },
                ended: f.ended,
                dropped_frames: f.leading_dropped
                    + f.gaps.iter().map(|g| g.dropped_frames).sum::<u64>(),
                discarded_packets: f.late_packets
                    + f.duplicate_packets
                    + f.malformed_packets
                    + f.other_payload_type,
                ssrc_changes: f.ssrc_changes,
            });
            mux_tracks.push(mux::MuxTrack {
                codec,
                frames,
                size,
                codec_private,
            });
        }
        gaps.sort_by_key(|g| (g.at_ms, g.track));
        let title = format!("{room} {}", lead.info.owner);
        let path = out_dir.join(&file);
        let (duration_ms, sha256) = write_file(&path, |w| mux::mux(&mux_tracks, &title, w))?;
        let has_video = g.iter().any(|&i| !timed[i].info.codec.is_audio());
        Ok(Source {
            file,
            kind: lead.info.kind,
            codec: g
                .iter()
                .map(|&i| codec_name(timed[i].info.codec))
                .collect::<Vec<_>>()
                .join(","),
            mime: match (webm, has_video) {
                (true, true) => "video/webm",
                (true, false) => "audio/webm",
                (false, _) => "video/x-matroska",
            }
            .to_string(),
            owner: lead.info.owner.clone(),
            hub: lead.info.hub,
            start_ms,
            duration_ms,
            frames: entries.iter().map(|e| e.frames).sum(),
            gaps,
            sha256,
            timeline: if entries
                .iter()
                .all(|e| e.timeline == Timeline::SenderReports)
            {
                Timeline::SenderReports
            } else {
                Timeline::Arrival
            },
            tracks: entries,
        })
    };
    let sources = in_parallel(&groups, one)?;
    let lesson_end = sources
        .iter()
        .map(|s| s.start_ms.saturating_add(s.duration_ms))
        .max()
        .unwrap_or(0);

    let started = header.map(|h| h.started_unix_ms);
    let manifest = Manifest {
        version: MANIFEST_VERSION,
        room: header.map(|h| h.room.clone()),
        lesson_id: header.and_then(|h| h.lesson_id),
        started_unix_ms: started,
        timeline_zero_unix_ms: match (started, zero) {
            (Some(s), Some(z)) => Some(s.saturating_add(z.div_euclid(1000))),
            _ => None,
        },
        duration_ms: lesson_end,
        complete,
        notes,
        sources,
        parts: Vec::new(),
    };
    let json = serde_json::to_vec_pretty(&manifest).map_err(|e| ProcessError::Io {
        path: out_dir.join("manifest.json"),
        source: e.into(),
    })?;
    write_atomic(&out_dir.join("manifest.json"), &json)?;
    Ok(manifest)
}

/// `one` of every group, on up to as many threads as there are cores (a lesson's sources are
/// independent files: muxing one overlaps another's hashing and disk sync); the results in
/// group order, or the first group's error in that order.
fn in_parallel<T: Send>(
    groups: &[Vec<usize>],
    one: impl Fn(&[usize]) -> Result<T, ProcessError> + Sync,
) -> Result<Vec<T>, ProcessError> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(groups.len());
    if threads <= 1 {
        return groups.iter().map(|g| one(g.as_slice())).collect();
    }
    let next = AtomicUsize::new(0);
    let mut done: Vec<(usize, Result<T, ProcessError>)> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(g) = groups.get(i) else { break };
                        mine.push((i, one(g)));
                    }
                    mine
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    done.sort_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, r)| r).collect()
}

/// Writes through a temporary file and a rename, so a crash never leaves half a file under the
/// final name.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ProcessError> {
    let io = |source| ProcessError::Io {
        path: path.to_path_buf(),
        source,
    };
    let tmp = path.with_extension("part");
    std::fs::write(&tmp, bytes).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

/// Hashes what passes through on its way to the file.
struct Hashing<W> {
    inner: W,
    sha: Sha256,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.sha.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Muxes into `path` (through a temporary file and a rename, synced); returns the duration
/// and the file's hex SHA-256.
fn write_file(
    path: &Path,
    mux: impl FnOnce(&mut Hashing<BufWriter<File>>) -> Result<u64, mux::MuxError>,
) -> Result<(u64, String), ProcessError> {
    let io = |source| ProcessError::Io {
        path: path.to_path_buf(),
        source,
    };
    let tmp = path.with_extension("part");
    let mut w = Hashing {
        inner: BufWriter::new(File::create(&tmp).map_err(io)?),
        sha: Sha256::new(),
    };
    let duration = match mux(&mut w) {
        Ok(d) => d,
        Err(mux::MuxError::Io(e)) => return Err(io(e)),
        Err(e) => {
            return Err(ProcessError::Mux {
                file: path.display().to_string(),
                reason: e.to_string(),
            })
        }
    };
    let sha = hex::encode(w.sha.finalize());
    let file = w.inner.into_inner().map_err(|e| io(e.into_error()))?;
    file.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)?;
    Ok((duration, sha))
}
