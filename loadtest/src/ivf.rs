//! IVF reading (the container `vpxenc`/ffmpeg write VP8 into) on `rtc-media`'s reader: the
//! whole file's frames, each marked keyframe or not; never paces or packetizes them.

use anyhow::{anyhow, bail, Result};
use rtc_media::io::ivf_reader::IVFReader;

/// IVF's file header and per-frame header sizes.
const FILE_HEADER: usize = 32;
const FRAME_HEADER: usize = 12;

/// One encoded frame.
#[derive(Debug, Clone)]
pub struct Frame {
    /// The encoded bytes.
    pub data: Vec<u8>,
    /// Whether the frame is a keyframe (VP8: bit 0 of the first byte is 0).
    pub keyframe: bool,
}

/// Parses a whole IVF file: its FourCC and frames.
pub fn parse(bytes: &[u8]) -> Result<(String, Vec<Frame>)> {
    let (mut reader, header) =
        IVFReader::new(bytes).map_err(|e| anyhow!("not an IVF file: {e}"))?;
    let fourcc = String::from_utf8_lossy(&header.four_cc).to_string();
    let mut pos = FILE_HEADER;
    let mut frames = Vec::new();
    // The reader cannot tell the end of the file from a truncated frame header; what is
    // left can.
    while pos + FRAME_HEADER <= bytes.len() {
        let (data, h) = reader
            .parse_next_frame()
            .map_err(|e| anyhow!("truncated IVF frame at byte {pos}: {e}"))?;
        pos += FRAME_HEADER + h.frame_size as usize;
        let keyframe = fourcc == "VP80" && data.first().is_some_and(|b| b & 1 == 0);
        frames.push(Frame {
            data: data.to_vec(),
            keyframe,
        });
    }
    if frames.is_empty() {
        bail!("IVF file holds no frames");
    }
    Ok((fourcc, frames))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ivf(frames: &[&[u8]]) -> Vec<u8> {
        let mut v = b"DKIF".to_vec();
        v.extend_from_slice(&[0, 0, 32, 0]);
        v.extend_from_slice(b"VP80");
        v.extend_from_slice(&[0; 20]);
        for (i, f) in frames.iter().enumerate() {
            v.extend_from_slice(&(f.len() as u32).to_le_bytes());
            v.extend_from_slice(&(i as u64).to_le_bytes());
            v.extend_from_slice(f);
        }
        v
    }

    #[test]
    fn parses_frames_and_keyframes() {
        let (cc, f) = parse(&ivf(&[&[0x10, 1, 2], &[0x11, 3]])).unwrap();
        assert_eq!(cc, "VP80");
        assert_eq!(f.len(), 2);
        assert!(f[0].keyframe && !f[1].keyframe);
    }

    #[test]
    fn rejects_truncated_and_garbage() {
        let mut b = ivf(&[&[0x10, 1, 2]]);
        b.truncate(b.len() - 1);
        assert!(parse(&b).is_err());
        assert!(parse(b"hello").is_err());
        assert!(parse(&ivf(&[])).is_err());
    }
}
