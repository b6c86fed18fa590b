//! A long lesson capture made up for the processing and export benchmarks (the hidden
//! `classrelay recordings synthesize`): real encoded VP8 frames from an IVF file, looped, and
//! real Opus from libopus, packetized as a publisher sends them (1 200-byte VP8 payloads,
//! 20 ms Opus, a sender report per second) and written with the capture file's own encoder
//! (`record::file`) in arrival order, streamed so a 45-minute lesson never sits in memory.
//! Must never be used by the server's recording path and never write anywhere but the path
//! it is given.

use std::io::{BufWriter, Write};
use std::path::Path;

use bytes::Bytes;
use rtc_rtp::codec::vp8::Vp8Payloader;
use rtc_rtp::packetizer::Payloader;

use super::file::{encode_header, encode_record, preamble};
use super::format::{CaptureHeader, Codec, Record, SourceKind, TrackInfo, FORMAT_VERSION};

/// What to make.
#[derive(Debug, Clone)]
pub struct SynthOptions {
    /// The lesson's length, ms (every source runs to it).
    pub duration_ms: u64,
    /// The VP8 frames every camera and the courseware loop (an IVF file's, see [`ivf_frames`]).
    pub video: Vec<Vec<u8>>,
    /// Their frame rate.
    pub fps: u32,
    /// The header's room.
    pub room: String,
    /// The header's wall-clock start, Unix ms.
    pub started_unix_ms: i64,
}

/// What was written.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SynthReport {
    /// Bytes of the capture file.
    pub bytes: u64,
    /// Records written.
    pub records: u64,
    /// RTP packets among them.
    pub packets: u64,
    /// Video frames (all sources).
    pub video_frames: u64,
    /// The lesson's length, ms.
    pub duration_ms: u64,
    /// The average bitrate of one video source, kbit/s.
    pub video_kbps: f64,
}

/// The frames of an IVF file (32-byte file header whose bytes 6–7 give its length, then
/// `size:u32 LE, pts:u64, data` per frame). Written here rather than taken from `rtc-media`
/// because the server does not otherwise depend on it and the format is three fields.
pub fn ivf_frames(bytes: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    if bytes.len() < 32 || &bytes[..4] != b"DKIF" {
        return Err("not an IVF file (no DKIF signature)".into());
    }
    let mut at = usize::from(u16::from_le_bytes([bytes[6], bytes[7]])).max(32);
    let mut frames = Vec::new();
    while let Some(head) = bytes.get(at..at + 12) {
        let size = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let Some(data) = bytes.get(at + 12..at + 12 + size) else {
            return Err(format!("IVF frame at byte {at} runs past the end"));
        };
        frames.push(data.to_vec());
        at += 12 + size;
    }
    if frames
        .first()
        .is_none_or(|f| f.first().is_none_or(|b| b & 1 != 0))
    {
        return Err("the IVF file does not start with a VP8 keyframe".into());
    }
    Ok(frames)
}

/// Five seconds of Opus (20 ms, mono, 32 kbit/s) of a gliding tone: real packets of a real
/// size, looped by the audio tracks.
fn opus_packets() -> Result<Vec<Vec<u8>>, String> {
    let mut enc = opus::Encoder::new(48_000, opus::Channels::Mono, opus::Application::Audio)
        .map_err(|e| format!("opus encoder: {e}"))?;
    enc.set_bitrate(opus::Bitrate::Bits(32_000))
        .map_err(|e| format!("opus bitrate: {e}"))?;
    let mut out = Vec::with_capacity(250);
    let mut phase = 0f64;
    let mut pcm = [0i16; 960];
    let mut buf = [0u8; 1500];
    for i in 0..250 {
        let hz = 220.0 + 2.0 * f64::from(i);
        for s in pcm.iter_mut() {
            phase += hz / 48_000.0;
            *s = ((phase * std::f64::consts::TAU).sin() * 8_000.0) as i16;
        }
        let n = enc
            .encode(&pcm, &mut buf)
            .map_err(|e| format!("opus encode: {e}"))?;
        out.push(buf[..n].to_vec());
    }
    Ok(out)
}

/// One track being generated.
struct Gen<'a> {
    info: TrackInfo,
    frames: &'a [Vec<u8>],
    start_us: u64,
    /// Frames per second (50 for Opus).
    rate: u64,
    count: u64,
    i: u64,
    seq: u16,
    ssrc: u32,
    ts0: u32,
}

/// NTP time of `us` after an arbitrary epoch (as a publisher's wall clock).
fn ntp(us: u64) -> u64 {
    let us = 3_900_000_000_000_000 + us;
    ((us / 1_000_000) << 32) | (((us % 1_000_000) << 32) / 1_000_000)
}

impl Gen<'_> {
    fn next_at(&self) -> Option<u64> {
        (self.i < self.count).then(|| self.start_us + self.i * 1_000_000 / self.rate)
    }

    /// The records of frame `i` (a sender report first when a second began).
    fn emit(&mut self, vp8: &mut Vp8Payloader, out: &mut Vec<Record>) -> Result<(), String> {
        let t = self.start_us + self.i * 1_000_000 / self.rate;
        let rtp_ts = self
            .ts0
            .wrapping_add((self.i * u64::from(self.info.clock_rate) / self.rate) as u32);
        let track = self.info.track;
        if self.i % self.rate == 0 {
            out.push(Record::SenderReport {
                track,
                arrival_us: t + 1_000,
                ntp: ntp(t),
                rtp_time: rtp_ts,
            });
        }
        let data = &self.frames[(self.i % self.frames.len() as u64) as usize];
        let payloads = if self.info.codec == Codec::Opus {
            vec![Bytes::copy_from_slice(data)]
        } else {
            vp8.payload(1200, &Bytes::copy_from_slice(data))
                .map_err(|e| format!("VP8 payloader: {e}"))?
        };
        let n = payloads.len();
        for (k, p) in payloads.into_iter().enumerate() {
            // A plain 12-byte RTP header, as the tap stores one (docs/CAPTURE.md).
            let mut packet = Vec::with_capacity(12 + p.len());
            packet.push(0x80);
            packet.push(self.info.payload_type | if k + 1 == n { 0x80 } else { 0 });
            packet.extend_from_slice(&self.seq.to_be_bytes());
            packet.extend_from_slice(&rtp_ts.to_be_bytes());
            packet.extend_from_slice(&self.ssrc.to_be_bytes());
            packet.extend_from_slice(&p);
            out.push(Record::Rtp {
                track,
                arrival_us: t + 2_000 + k as u64 * 20,
                packet,
            });
            self.seq = self.seq.wrapping_add(1);
        }
        self.i += 1;
        Ok(())
    }
}

/// Writes the capture to `path` (created; an existing file is an error): a teacher camera with
/// its Opus from 0, the courseware from 0.5 s and a classroom camera with its Opus from 1 s,
/// all to the end.
pub fn write_lesson(path: &Path, o: &SynthOptions) -> Result<SynthReport, String> {
    if o.video.is_empty() || o.fps == 0 {
        return Err("no video frames".into());
    }
    let audio = opus_packets()?;
    let fps = u64::from(o.fps);
    let track = |track: u32, kind: SourceKind, codec: Codec, owner: &str, hub: bool| TrackInfo {
        track,
        kind,
        codec,
        payload_type: if codec == Codec::Opus { 111 } else { 96 },
        clock_rate: if codec == Codec::Opus { 48_000 } else { 90_000 },
        owner: owner.to_string(),
        hub,
    };
    let plan = [
        (
            track(1, SourceKind::TeacherCamera, Codec::Vp8, "teacher", true),
            0,
        ),
        (track(2, SourceKind::Audio, Codec::Opus, "teacher", true), 0),
        (
            track(3, SourceKind::Courseware, Codec::Vp8, "teacher", true),
            500,
        ),
        (
            track(
                4,
                SourceKind::ClassroomCamera,
                Codec::Vp8,
                "classroom",
                false,
            ),
            1_000,
        ),
        (
            track(5, SourceKind::Audio, Codec::Opus, "classroom", false),
            1_000,
        ),
    ];
    let mut gens: Vec<Gen<'_>> = plan
        .into_iter()
        .map(|(info, start_ms)| {
            let opus = info.codec == Codec::Opus;
            let rate = if opus { 50 } else { fps };
            let ms = o.duration_ms.saturating_sub(start_ms);
            Gen {
                frames: if opus { &audio } else { &o.video },
                start_us: start_ms * 1_000,
                rate,
                count: ms * rate / 1_000,
                i: 0,
                seq: (info.track as u16).wrapping_mul(7_919),
                ssrc: 0x5EED_0000 + info.track,
                ts0: info.track.wrapping_mul(0x0101_0101),
                info,
            }
        })
        .collect();

    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| format!("creating {}: {e}", path.display()))?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    let io = |e: std::io::Error| format!("writing {}: {e}", path.display());
    let mut buf = preamble().to_vec();
    encode_header(
        &CaptureHeader {
            version: FORMAT_VERSION,
            room: o.room.clone(),
            lesson_id: None,
            started_unix_ms: o.started_unix_ms,
        },
        &mut buf,
    );
    let mut report = SynthReport {
        bytes: 0,
        records: 0,
        packets: 0,
        video_frames: 0,
        duration_ms: o.duration_ms,
        video_kbps: 0.0,
    };
    for g in &gens {
        encode_record(&Record::Track(g.info.clone()), &mut buf);
        report.records += 1;
    }
    let mut vp8 = Vp8Payloader::default();
    let mut records = Vec::new();
    let mut video_bytes = 0u64;
    let mut end_us = 0;
    // Frame by frame, the earliest next frame of any track first.
    while let Some((gi, at)) = gens
        .iter()
        .enumerate()
        .filter_map(|(i, g)| g.next_at().map(|t| (i, t)))
        .min_by_key(|&(_, t)| t)
    {
        let g = &mut gens[gi];
        g.emit(&mut vp8, &mut records)?;
        if g.info.codec != Codec::Opus {
            report.video_frames += 1;
        }
        end_us = end_us.max(at + 2_000);
        for r in records.drain(..) {
            if let Record::Rtp { packet, .. } = &r {
                report.packets += 1;
                if g.info.codec != Codec::Opus {
                    video_bytes += packet.len() as u64;
                }
            }
            encode_record(&r, &mut buf);
            report.records += 1;
        }
        if buf.len() >= 1 << 16 {
            w.write_all(&buf).map_err(io)?;
            report.bytes += buf.len() as u64;
            buf.clear();
        }
    }
    for g in &gens {
        encode_record(
            &Record::TrackEnd {
                track: g.info.track,
                arrival_us: end_us,
            },
            &mut buf,
        );
        report.records += 1;
    }
    w.write_all(&buf).map_err(io)?;
    report.bytes += buf.len() as u64;
    let file = w.into_inner().map_err(|e| io(e.into_error()))?;
    file.sync_all().map_err(io)?;
    report.video_kbps = video_bytes as f64 * 8.0 / 3.0 / o.duration_ms.max(1) as f64;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::file::read_capture;
    use crate::record::format::SourceKind;
    use crate::record::process::process;
    use crate::record::recover::process_recording;

    /// A six-second lesson from the test fixture: it reads back cleanly, holds every frame it
    /// was made of, and the streamed processing (`recover`, records straight from the reader,
    /// sources muxed in parallel) writes the same files as processing it from memory.
    #[test]
    fn a_made_up_lesson_processes_the_same_streamed_as_in_memory() {
        let dir = tempfile::tempdir().expect("temp dir");
        let ivf = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/video_vp8.ivf"
        ))
        .expect("fixture");
        let video = ivf_frames(&ivf).expect("IVF");
        assert_eq!(video.len(), 90);
        let path = dir.path().join("capture.crcap");
        let made = write_lesson(
            &path,
            &SynthOptions {
                duration_ms: 6_000,
                video,
                fps: 30,
                room: "bench".into(),
                started_unix_ms: 1_788_000_000_000,
            },
        )
        .expect("written");
        assert_eq!(made.bytes, std::fs::metadata(&path).expect("capture").len());
        let (capture, read) = read_capture(&path);
        assert_eq!(read.damage, None, "{}", read.describe());
        assert_eq!(capture.records.len() as u64, made.records);

        let in_memory = process(&capture, &dir.path().join("a")).expect("processed");
        let streamed = process_recording(&path, &dir.path().join("b"))
            .expect("processed")
            .manifest;
        assert_eq!(streamed.sources, in_memory.sources);
        let got: Vec<(SourceKind, &str, u64, u64)> = streamed
            .sources
            .iter()
            .map(|s| (s.kind, s.codec.as_str(), s.start_ms, s.frames))
            .collect();
        assert_eq!(
            got,
            vec![
                (SourceKind::TeacherCamera, "vp8,opus", 0, 180 + 300),
                (SourceKind::Courseware, "vp8", 500, 165),
                (SourceKind::ClassroomCamera, "vp8,opus", 1_000, 150 + 250),
            ]
        );
        assert!(streamed.sources.iter().all(|s| s.gaps.is_empty()));
    }

    proptest::proptest! {
        /// Any bytes (with or without the signature): frames or an error, never a panic.
        #[test]
        fn any_bytes_are_read_or_refused(
            mut bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512),
            signed in proptest::prelude::any::<bool>(),
        ) {
            if signed && bytes.len() >= 4 {
                bytes[..4].copy_from_slice(b"DKIF");
            }
            if let Ok(frames) = ivf_frames(&bytes) {
                proptest::prop_assert!(frames.iter().map(|f| f.len() + 12).sum::<usize>() <= bytes.len());
            }
        }
    }

    #[test]
    fn what_is_not_an_ivf_file_is_refused() {
        assert!(ivf_frames(b"not an ivf file at all, not even close....").is_err());
        let mut short = b"DKIF".to_vec();
        short.extend_from_slice(&[0, 0, 32, 0]);
        short.resize(32, 0);
        short.extend_from_slice(&100u32.to_le_bytes());
        short.extend_from_slice(&[0; 8]);
        short.extend_from_slice(&[0; 10]);
        assert!(ivf_frames(&short).unwrap_err().contains("past the end"));
    }
}
