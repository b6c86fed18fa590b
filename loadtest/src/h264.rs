//! H.264 for the load generator: access units from an Annex B elementary stream (what
//! `ffmpeg -f h264` and `x264` write) and RFC 6184 payloads for the plain-RTP feeder, on
//! `rtc-media`'s NAL reader and `rtc-rtp`'s payloader; never paces or sends them. Grouping
//! NAL units into access units (ITU-T H.264 §7.4.1.2.3) is the one part done here.

use anyhow::{anyhow, bail, Result};
use bytes::Bytes;
use rtc_media::io::h26x_reader::H26xReader;
use rtc_rtp::codec::h264::H264Payloader;
use rtc_rtp::packetizer::Payloader;
use str0m::format::Codec;

use crate::ivf::Frame;

/// NAL unit types that matter here.
const SLICE: u8 = 1;
const IDR: u8 = 5;
const SEI: u8 = 6;
const SPS: u8 = 7;
const PPS: u8 = 8;
const AUD: u8 = 9;

/// The NAL units of an Annex B byte stream, without their start codes. `rtc-media`'s reader
/// leaves SEI units out (WebRTC receivers do not need them).
pub fn nal_units(stream: &[u8]) -> Vec<Vec<u8>> {
    let mut reader = H26xReader::new(stream, 1 << 20, false);
    let mut out = Vec::new();
    // The reader ends with an error at the end of the stream, or on one that does not start
    // with a start code; either way there are no more units.
    while let Ok(nal) = reader.next_nal() {
        out.push(nal.data().to_vec());
    }
    out
}

/// Whether `stream` looks like Annex B H.264 (starts with a start code).
pub fn is_annexb(stream: &[u8]) -> bool {
    stream.starts_with(&[0, 0, 0, 1]) || stream.starts_with(&[0, 0, 1])
}

/// Splits an Annex B stream into access units (one per picture), each as Annex B bytes with
/// four-byte start codes. A new unit starts at an AUD, SPS, PPS or SEI that follows a slice,
/// or at a slice whose `first_mb_in_slice` is 0 that follows a slice.
pub fn access_units(stream: &[u8]) -> Result<Vec<Frame>> {
    if !is_annexb(stream) {
        bail!("not an H.264 Annex B stream (no start code at the beginning)");
    }
    let mut frames = Vec::new();
    let mut cur: Vec<u8> = Vec::new();
    let mut has_slice = false;
    let mut keyframe = false;
    for nal in nal_units(stream) {
        let t = nal[0] & 0x1f;
        let is_slice = t == SLICE || t == IDR;
        // first_mb_in_slice is ue(v); it is 0 exactly when the first bit after the header is 1.
        let first_slice = is_slice && nal.get(1).is_some_and(|b| b & 0x80 != 0);
        let starts_unit = matches!(t, AUD | SPS | PPS | SEI) || first_slice;
        if has_slice && starts_unit {
            frames.push(Frame {
                data: std::mem::take(&mut cur),
                keyframe,
            });
            has_slice = false;
            keyframe = false;
        }
        cur.extend_from_slice(&[0, 0, 0, 1]);
        cur.extend_from_slice(&nal);
        has_slice |= is_slice;
        keyframe |= t == IDR;
    }
    if has_slice {
        frames.push(Frame {
            data: cur,
            keyframe,
        });
    }
    if frames.is_empty() {
        bail!("H.264 stream holds no pictures");
    }
    Ok(frames)
}

/// RTP payloads (packetization-mode 1) for one access unit, by `rtc-rtp`: a NAL unit that
/// fits goes as a single NAL unit packet, a larger one as FU-A fragments, SPS and PPS
/// together as one STAP-A; AUDs are left out (RFC 6184 §5.4 leaves them optional and WebRTC
/// receivers ignore them).
pub fn payloads(access_unit: &[u8], max_payload: usize) -> Result<Vec<Vec<u8>>> {
    let mut p = H264Payloader::default();
    let out = p
        .payload(max_payload, &Bytes::copy_from_slice(access_unit))
        .map_err(|e| anyhow!("H.264 payloads: {e}"))?;
    Ok(out.into_iter().map(|b| b.to_vec()).collect())
}

/// The codec of a video file, from its first bytes: IVF with VP8, or Annex B H.264.
pub fn codec_of(path: &std::path::Path) -> Result<Codec> {
    use anyhow::Context;
    use std::io::Read;
    let mut head = [0u8; 12];
    let mut f = std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let n = f.read(&mut head)?;
    let head = &head[..n];
    if is_annexb(head) {
        Ok(Codec::H264)
    } else if head.starts_with(b"DKIF") && head.get(8..12) == Some(b"VP80") {
        Ok(Codec::Vp8)
    } else {
        bail!("{}: neither VP8 in IVF nor H.264 Annex B", path.display())
    }
}

/// The codec and frames of a video file: IVF (VP8) or Annex B H.264, told by content.
pub fn load_video(path: &std::path::Path) -> Result<(Codec, Vec<Frame>)> {
    use anyhow::Context;
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    if is_annexb(&bytes) {
        let frames = access_units(&bytes).with_context(|| path.display().to_string())?;
        return Ok((Codec::H264, frames));
    }
    let (fourcc, frames) = crate::ivf::parse(&bytes).with_context(|| path.display().to_string())?;
    match fourcc.as_str() {
        "VP80" => Ok((Codec::Vp8, frames)),
        other => bail!(
            "{}: IVF with {other}; the load generator sends VP8 (IVF) or H.264 (Annex B)",
            path.display()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(nals: &[&[u8]]) -> Vec<u8> {
        let mut s = Vec::new();
        for (i, n) in nals.iter().enumerate() {
            // Mix three- and four-byte start codes, as encoders do.
            if i % 2 == 0 {
                s.extend_from_slice(&[0, 0, 0, 1]);
            } else {
                s.extend_from_slice(&[0, 0, 1]);
            }
            s.extend_from_slice(n);
        }
        s
    }

    const AUD_NAL: &[u8] = &[0x09, 0xf0];
    const SPS_NAL: &[u8] = &[0x67, 0x42, 0xc0, 0x1f];
    const PPS_NAL: &[u8] = &[0x68, 0xce, 0x3c, 0x80];
    // A NAL unit never ends in a zero byte (rbsp_trailing_bits end in the stop bit).
    const IDR_NAL: &[u8] = &[0x65, 0x88, 0x84, 0x21];
    // first_mb_in_slice = 0 (first bit 1), then a second slice of the same picture (bit 0).
    const P_FIRST: &[u8] = &[0x41, 0x9a, 0x02];
    const P_SECOND: &[u8] = &[0x41, 0x05, 0x03];

    #[test]
    fn nal_units_drop_start_codes_and_trailing_zeros() {
        let s = stream(&[SPS_NAL, PPS_NAL, IDR_NAL]);
        assert_eq!(nal_units(&s), vec![SPS_NAL, PPS_NAL, IDR_NAL]);
        assert!(nal_units(&[1, 2, 3]).is_empty());
    }

    #[test]
    fn access_units_start_at_parameter_sets_and_first_slices() {
        let s = stream(&[
            AUD_NAL, SPS_NAL, PPS_NAL, IDR_NAL, // picture 1: keyframe
            P_FIRST, P_SECOND, // picture 2: two slices
            AUD_NAL, P_FIRST, // picture 3
        ]);
        let aus = access_units(&s).unwrap();
        assert_eq!(aus.len(), 3);
        assert_eq!(
            aus.iter().map(|a| a.keyframe).collect::<Vec<_>>(),
            [true, false, false]
        );
        assert_eq!(nal_units(&aus[0].data).len(), 4);
        assert_eq!(nal_units(&aus[1].data), vec![P_FIRST, P_SECOND]);
        assert_eq!(nal_units(&aus[2].data), vec![AUD_NAL, P_FIRST]);
        assert!(access_units(b"DKIF").is_err());
        assert!(access_units(&stream(&[SPS_NAL])).is_err(), "no picture");
    }

    #[test]
    fn small_nal_units_go_whole_and_large_ones_as_fu_a() {
        let big: Vec<u8> = std::iter::once(0x65)
            .chain((0..2500u32).map(|i| (i % 251) as u8 | 1))
            .collect();
        let au = stream(&[AUD_NAL, SPS_NAL, PPS_NAL, &big]);
        let p = payloads(&au, 1000).unwrap();
        // AUD left out; SPS and PPS whole in one STAP-A (type 24), each after its size.
        let mut stap = vec![0x78, 0, 4];
        stap.extend_from_slice(SPS_NAL);
        stap.extend_from_slice(&[0, 4]);
        stap.extend_from_slice(PPS_NAL);
        assert_eq!(p[0], stap);
        let fus = &p[1..];
        assert_eq!(fus.len(), 3, "2 499 body bytes in 998-byte chunks");
        for (i, f) in fus.iter().enumerate() {
            assert!(f.len() <= 1000);
            assert_eq!(f[0], 0x60 | 28, "NRI kept, type 28 (FU-A)");
            assert_eq!(f[1] & 0x1f, IDR);
            assert_eq!(f[1] & 0x80 != 0, i == 0, "S bit on the first");
            assert_eq!(f[1] & 0x40 != 0, i == 2, "E bit on the last");
        }
        let body: Vec<u8> = fus.iter().flat_map(|f| f[2..].to_vec()).collect();
        assert_eq!(body, big[1..], "the fragments carry the NAL unit whole");
        assert!(str0m::format::detect_h264_keyframe(&fus[0]), "an IDR start");
    }

    #[test]
    fn the_committed_fixture_parses() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fixtures/h264_720p30_1200k.h264"
        );
        let (codec, frames) = load_video(std::path::Path::new(path)).unwrap();
        assert_eq!(codec, Codec::H264);
        assert_eq!(frames.len(), 120, "4 s at 30 fps");
        let keys: Vec<usize> = (0..frames.len()).filter(|&i| frames[i].keyframe).collect();
        assert_eq!(keys, [0, 60], "a keyframe every 2 s");
        assert_eq!(codec_of(std::path::Path::new(path)).unwrap(), Codec::H264);
        let vp8 = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/vp8_720p30_1200k.ivf");
        assert_eq!(codec_of(std::path::Path::new(vp8)).unwrap(), Codec::Vp8);
        assert!(codec_of(std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/Cargo.toml"
        )))
        .is_err());
    }
}
