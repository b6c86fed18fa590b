//! IVF reading (the container `vpxenc`/ffmpeg write VP8 into): a 32-byte file header, then per
//! frame a 12-byte header (size, timestamp) and the frame. Hand-written because the format is
//! two fixed headers and a load generator should not pull a media framework for it.

use anyhow::{bail, Context, Result};

/// One encoded frame.
#[derive(Debug, Clone)]
pub struct Frame {
    /// The encoded bytes.
    pub data: Vec<u8>,
    /// Whether the frame is a keyframe (VP8: bit 0 of the first byte is 0).
    pub keyframe: bool,
}

/// Parses a whole IVF file.
pub fn parse(bytes: &[u8]) -> Result<(String, Vec<Frame>)> {
    if bytes.len() < 32 || &bytes[0..4] != b"DKIF" {
        bail!("not an IVF file (no DKIF signature)");
    }
    let header_len = u16::from_le_bytes([bytes[6], bytes[7]]) as usize;
    let fourcc = String::from_utf8_lossy(&bytes[8..12]).to_string();
    let mut pos = header_len.max(32);
    let mut frames = Vec::new();
    while pos + 12 <= bytes.len() {
        let size =
            u32::from_le_bytes(bytes[pos..pos + 4].try_into().context("frame header")?) as usize;
        pos += 12;
        if pos + size > bytes.len() {
            bail!("truncated IVF frame at byte {pos}: {size} bytes announced");
        }
        let data = bytes[pos..pos + size].to_vec();
        let keyframe = fourcc == "VP80" && data.first().is_some_and(|b| b & 1 == 0);
        frames.push(Frame { data, keyframe });
        pos += size;
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
