//! Voice activity in a processed recording's audio: reads one source's WebM/Matroska file back
//! (`matroska-demuxer`), decodes its Opus track (libopus, through the `opus` crate) and runs
//! the WebRTC voice activity detector (`webrtc-vad`) over 20 ms frames placed on the lesson
//! timeline. It feeds the automatic S-T draft (`observe::stdraft` makes the decision). Must
//! never run on the media path (it reads files and decodes: call it on a blocking thread),
//! never panic on any file, and never decide anything about S-T itself.

use std::io::{Read, Seek};
use std::path::Path;

use matroska_demuxer::{Frame, MatroskaFile};

/// The length of one voice decision, ms (one Opus frame as browsers send them).
pub const FRAME_MS: u64 = 20;

/// 48 kHz samples in [`FRAME_MS`].
const FRAME_SAMPLES: usize = 960;

/// The most samples one Opus packet decodes to (120 ms at 48 kHz).
const MAX_PACKET_SAMPLES: usize = 5_760;

/// One [`FRAME_MS`] of audio and whether it carries speech.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VoicedFrame {
    /// Its start on the lesson timeline, ms.
    pub at_ms: u64,
    /// Whether the detector heard speech in it.
    pub voiced: bool,
}

/// What one source's audio holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Voice {
    /// Every decoded 20 ms frame in time order (lost packets leave holes: no frame there).
    pub frames: Vec<VoicedFrame>,
    /// Opus packets libopus refused (damaged); their time has no frame.
    pub undecodable: u64,
}

/// Why a file's voice could not be read at all.
#[derive(Debug, thiserror::Error)]
pub enum VoiceError {
    /// The file could not be opened.
    #[error("opening {path}: {source}")]
    Open {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// Not a readable Matroska/WebM file.
    #[error("not a readable WebM/Matroska file: {0}")]
    Container(String),
    /// The file has no Opus track.
    #[error("the file has no Opus audio track")]
    NoOpus,
    /// libopus could not make a decoder.
    #[error("Opus decoder: {0}")]
    Decoder(String),
}

/// The voice activity of the file at `path`, whose time zero sits at `start_ms` on the lesson
/// timeline (the manifest's `start_ms`).
pub fn voice_of_file(path: &Path, start_ms: u64) -> Result<Voice, VoiceError> {
    let f = std::fs::File::open(path).map_err(|source| VoiceError::Open {
        path: path.display().to_string(),
        source,
    })?;
    voice_of(std::io::BufReader::new(f), start_ms)
}

/// The voice activity of a WebM/Matroska stream (see [`voice_of_file`]).
pub fn voice_of<R: Read + Seek>(r: R, start_ms: u64) -> Result<Voice, VoiceError> {
    let mut mkv = MatroskaFile::open(r).map_err(|e| VoiceError::Container(e.to_string()))?;
    let track = mkv
        .tracks()
        .iter()
        .find(|t| t.codec_id() == "A_OPUS")
        .map(|t| t.track_number().get())
        .ok_or(VoiceError::NoOpus)?;
    // Block timestamps count in units of `timestamp_scale` ns.
    let scale = mkv.info().timestamp_scale().get();
    let mut decoder = opus::Decoder::new(48_000, opus::Channels::Mono)
        .map_err(|e| VoiceError::Decoder(e.to_string()))?;
    let mut vad = webrtc_vad::Vad::new_with_rate_and_mode(
        webrtc_vad::SampleRate::Rate48kHz,
        webrtc_vad::VadMode::Aggressive,
    );
    let mut out = Voice::default();
    let mut pcm = vec![0i16; MAX_PACKET_SAMPLES];
    // Decoded samples not yet in a whole 20 ms frame, and where they start (ms).
    let mut carry: Vec<i16> = Vec::with_capacity(2 * MAX_PACKET_SAMPLES);
    let mut carry_at = 0u64;
    let mut f = Frame::default();
    loop {
        match mkv.next_frame(&mut f) {
            Ok(true) => {}
            Ok(false) => break,
            // A file cut short: what was read so far stands.
            Err(_) => break,
        }
        if f.track != track {
            continue;
        }
        let at_ms = start_ms.saturating_add(
            u64::try_from(u128::from(f.timestamp) * u128::from(scale) / 1_000_000)
                .unwrap_or(u64::MAX),
        );
        let n = match decoder.decode(&f.data, &mut pcm, false) {
            Ok(n) => n.min(pcm.len()),
            Err(_) => {
                out.undecodable += 1;
                continue;
            }
        };
        // A packet that does not follow the carried samples (a loss, a new segment) starts
        // afresh: the carried part of a frame is dropped.
        let carried_ms = (carry.len() / 48) as u64;
        if carry.is_empty() || carry_at.saturating_add(carried_ms).abs_diff(at_ms) > 2 {
            carry.clear();
            carry_at = at_ms;
        }
        carry.extend_from_slice(&pcm[..n]);
        let whole = carry.len() / FRAME_SAMPLES;
        for (i, chunk) in carry.chunks_exact(FRAME_SAMPLES).enumerate() {
            out.frames.push(VoicedFrame {
                at_ms: carry_at + i as u64 * FRAME_MS,
                voiced: vad.is_voice_segment(chunk).unwrap_or(false),
            });
        }
        carry.drain(..whole * FRAME_SAMPLES);
        carry_at += whole as u64 * FRAME_MS;
    }
    // Timestamps only ever go forward within a track, but a damaged file may not: keep the
    // promise of time order.
    out.frames.sort_by_key(|v| v.at_ms);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        /// Any bytes: an error or some frames, never a panic.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = voice_of(std::io::Cursor::new(bytes), 0);
        }

        /// A WebM header followed by anything: the reader stops at the damage.
        #[test]
        fn a_damaged_tail_never_panics(tail in proptest::collection::vec(any::<u8>(), 0..1024)) {
            let mut bytes = vec![0x1A, 0x45, 0xDF, 0xA3];
            bytes.extend(tail);
            let _ = voice_of(std::io::Cursor::new(bytes), 0);
        }
    }

    #[test]
    fn not_a_file() {
        let e = voice_of_file(Path::new("/nonexistent/x.webm"), 0).unwrap_err();
        assert!(matches!(e, VoiceError::Open { .. }), "{e}");
        let e = voice_of(std::io::Cursor::new(b"hello".to_vec()), 0).unwrap_err();
        assert!(matches!(e, VoiceError::Container(_)), "{e}");
    }
}
