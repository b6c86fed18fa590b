//! The load generator's own IVF, Annex B, Ogg and RTP code as it was before `rtc-media` and
//! `rtc-rtp` replaced it, kept only to compare their output on the fixtures; never used
//! outside this comparison.

use anyhow::{bail, Context, Result};

use crate::ivf::Frame;

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

/// NAL unit types that matter here.
const SLICE: u8 = 1;
const IDR: u8 = 5;
const SEI: u8 = 6;
const SPS: u8 = 7;
const PPS: u8 = 8;
const AUD: u8 = 9;
/// Fragmentation unit A (RFC 6184 §5.8).
const FU_A: u8 = 28;

/// The NAL units of an Annex B byte stream, without their start codes.
pub fn nal_units(stream: &[u8]) -> Vec<&[u8]> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= stream.len() {
        if stream[i] == 0 && stream[i + 1] == 0 && stream[i + 2] == 1 {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut out = Vec::with_capacity(starts.len());
    for (k, &s) in starts.iter().enumerate() {
        let mut end = starts.get(k + 1).map(|&n| n - 3).unwrap_or(stream.len());
        // A four-byte start code's leading zero (and any trailing_zero_8bits) is not payload.
        while end > s && stream[end - 1] == 0 {
            end -= 1;
        }
        if end > s {
            out.push(&stream[s..end]);
        }
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
        cur.extend_from_slice(nal);
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

/// RTP payloads (packetization-mode 1) for one access unit: a NAL unit that fits goes as a
/// single NAL unit packet, a larger one as FU-A fragments; AUDs are left out (RFC 6184
/// §5.4 leaves them optional and WebRTC receivers ignore them).
pub fn payloads(access_unit: &[u8], max_payload: usize) -> Vec<Vec<u8>> {
    let max = max_payload.max(3);
    let mut out = Vec::new();
    for nal in nal_units(access_unit) {
        let header = nal[0];
        if header & 0x1f == AUD {
            continue;
        }
        if nal.len() <= max {
            out.push(nal.to_vec());
            continue;
        }
        let indicator = (header & 0xe0) | FU_A;
        let body = &nal[1..];
        let chunk = max - 2;
        let n = body.len().div_ceil(chunk);
        for (i, c) in body.chunks(chunk).enumerate() {
            let mut fu = (header & 0x1f) & 0x1f;
            if i == 0 {
                fu |= 0x80;
            }
            if i + 1 == n {
                fu |= 0x40;
            }
            let mut p = Vec::with_capacity(2 + c.len());
            p.push(indicator);
            p.push(fu);
            p.extend_from_slice(c);
            out.push(p);
        }
    }
    out
}

/// Splits one VP8 frame into RTP payloads per RFC 7741: each payload starts with a payload
/// descriptor (X=1, S=1 on the first packet, partition index 0, then I=1 with a 15-bit
/// PictureID, M=1), followed by a chunk of the frame.
///
/// Hand-written because str0m exposes its `Vp8Packetizer` only behind its `unversioned`
/// feature (no semver promise), and turning that on would change str0m's feature set for the
/// whole workspace; the descriptor is four bytes.
pub fn vp8_payloads(frame: &[u8], picture_id: u16, max_payload: usize) -> Vec<Vec<u8>> {
    const DESC: usize = 4;
    let chunk = max_payload.saturating_sub(DESC).max(1);
    let pid = picture_id & 0x7fff;
    frame
        .chunks(chunk)
        .enumerate()
        .map(|(i, c)| {
            let mut p = Vec::with_capacity(DESC + c.len());
            p.push(0x80 | if i == 0 { 0x10 } else { 0 });
            p.push(0x80);
            p.push(0x80 | (pid >> 8) as u8);
            p.push(pid as u8);
            p.extend_from_slice(c);
            p
        })
        .collect()
}

/// A 12-byte RTP header (no CSRCs, no extensions) followed by `payload`.
pub fn rtp_packet(pt: u8, marker: bool, seq: u16, ts: u32, ssrc: u32, payload: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(12 + payload.len());
    p.push(0x80);
    p.push((u8::from(marker) << 7) | (pt & 0x7f));
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&ts.to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

/// Opus packets of an Ogg Opus file, in order (the `OpusHead`/`OpusTags` headers dropped).
/// Packets spanning pages are joined. Hand-written: Ogg framing is a 27-byte page header and
/// a lacing table.
pub fn ogg_opus_packets(bytes: &[u8]) -> Result<Vec<Vec<u8>>> {
    let mut pos = 0;
    let mut packets = Vec::new();
    let mut partial: Vec<u8> = Vec::new();
    while pos < bytes.len() {
        let h = bytes
            .get(pos..pos + 27)
            .context("truncated Ogg page header")?;
        if &h[0..4] != b"OggS" {
            bail!("no Ogg page at byte {pos}");
        }
        let nseg = h[26] as usize;
        let table = bytes
            .get(pos + 27..pos + 27 + nseg)
            .context("truncated lacing table")?;
        let mut body = pos + 27 + nseg;
        for &lace in table {
            let seg = bytes
                .get(body..body + lace as usize)
                .context("truncated Ogg page body")?;
            partial.extend_from_slice(seg);
            body += lace as usize;
            if lace < 255 {
                packets.push(std::mem::take(&mut partial));
            }
        }
        pos = body;
    }
    packets.retain(|p| !p.starts_with(b"OpusHead") && !p.starts_with(b"OpusTags"));
    if packets.is_empty() {
        bail!("no Opus packets in the Ogg file");
    }
    Ok(packets)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtc_rtp::codec::h264::STAPA_NALU_TYPE;

    /// The Janus feeder's payload size.
    const MAX: usize = 1100;

    fn fixture(path: &str) -> Vec<u8> {
        std::fs::read(format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap()
    }

    #[test]
    fn ivf_frames_are_the_same() {
        for path in [
            "fixtures/vp8_720p30_1200k.ivf",
            "../tests/fixtures/video_vp8.ivf",
        ] {
            let bytes = fixture(path);
            let (old_cc, old) = parse(&bytes).unwrap();
            let (new_cc, new) = crate::ivf::parse(&bytes).unwrap();
            assert_eq!(old_cc, new_cc);
            assert_eq!(old.len(), new.len(), "{path}");
            for (o, n) in old.iter().zip(&new) {
                assert_eq!((&o.data, o.keyframe), (&n.data, n.keyframe));
            }
        }
    }

    #[test]
    fn h264_access_units_are_the_same_but_for_sei() {
        let bytes = fixture("fixtures/h264_720p30_1200k.h264");
        let old = access_units(&bytes).unwrap();
        let new = crate::h264::access_units(&bytes).unwrap();
        assert_eq!(old.len(), new.len());
        let mut sei_bytes = 0;
        for (o, n) in old.iter().zip(&new) {
            assert_eq!(o.keyframe, n.keyframe);
            let kept: Vec<&[u8]> = nal_units(&o.data)
                .into_iter()
                .filter(|u| {
                    let sei = u[0] & 0x1f == SEI;
                    sei_bytes += if sei { 4 + u.len() } else { 0 };
                    !sei
                })
                .collect();
            assert_eq!(kept, nal_units(&n.data));
        }
        println!(
            "SEI bytes left out over {} access units: {sei_bytes}",
            old.len()
        );
    }

    #[test]
    fn h264_payloads_are_the_same_but_sps_and_pps_in_one_stap_a() {
        let bytes = fixture("fixtures/h264_720p30_1200k.h264");
        for au in crate::h264::access_units(&bytes).unwrap() {
            let old = payloads(&au.data, MAX);
            let new = crate::h264::payloads(&au.data, MAX).unwrap();
            assert!(new.iter().all(|p| p.len() <= MAX));
            let is_ps = |p: &Vec<u8>| matches!(p[0] & 0x1f, SPS | PPS);
            let is_stap = |p: &Vec<u8>| p[0] & 0x1f == STAPA_NALU_TYPE;
            let old_rest: Vec<&Vec<u8>> = old.iter().filter(|p| !is_ps(p)).collect();
            let new_rest: Vec<&Vec<u8>> = new.iter().filter(|p| !is_stap(p)).collect();
            assert_eq!(old_rest, new_rest, "slices: the same packets");
            let stap: Vec<&Vec<u8>> = new.iter().filter(|p| is_stap(p)).collect();
            let ps: Vec<&Vec<u8>> = old.iter().filter(|p| is_ps(p)).collect();
            if ps.is_empty() {
                assert!(stap.is_empty());
                continue;
            }
            // STAP-A: header, then each unit after its 16-bit size.
            assert_eq!(stap.len(), 1);
            let mut units = Vec::new();
            let mut at = 1;
            while at < stap[0].len() {
                let n = usize::from(u16::from_be_bytes([stap[0][at], stap[0][at + 1]]));
                units.push(stap[0][at + 2..at + 2 + n].to_vec());
                at += 2 + n;
            }
            assert_eq!(units.iter().collect::<Vec<_>>(), ps);
        }
    }

    #[test]
    fn vp8_payloads_are_the_same_from_picture_128() {
        let (_, frames) = crate::ivf::parse(&fixture("fixtures/vp8_720p30_1200k.ivf")).unwrap();
        let mut p = crate::janus::vp8_payloader();
        for n in 0..300usize {
            let frame = &frames[n % frames.len()].data;
            let old = vp8_payloads(frame, n as u16, MAX);
            let new = crate::janus::vp8_payloads(&mut p, frame, MAX);
            if n >= 128 {
                assert_eq!(old, new, "picture {n}");
                continue;
            }
            // A 7-bit PictureID: a descriptor one byte shorter.
            assert!(new.iter().all(|x| x.len() <= MAX));
            assert_eq!(&new[0][..3], &[0x90, 0x80, n as u8]);
            let joined: Vec<u8> = new.iter().flat_map(|x| x[3..].to_vec()).collect();
            assert_eq!(&joined, frame, "picture {n}");
            assert!(old.len() - new.len() <= 1);
        }
    }

    #[test]
    fn rtp_packets_are_the_same() {
        for (pt, marker, seq, ts, ssrc, payload) in [
            (96, true, 0x0102, 0x0304_0506, 0x0708_090a, &[0xff][..]),
            (111, false, 65_535, u32::MAX, 1, &[1, 2, 3][..]),
            (96, false, 0, 0, 0x5eed_0001, &[][..]),
        ] {
            assert_eq!(
                rtp_packet(pt, marker, seq, ts, ssrc, payload),
                crate::janus::rtp_packet(pt, marker, seq, ts, ssrc, payload)
            );
        }
    }

    #[test]
    fn ogg_opus_packets_are_the_same() {
        let bytes = fixture("../tests/fixtures/audio_opus.ogg");
        let old = ogg_opus_packets(&bytes).unwrap();
        assert_eq!(old, crate::janus::ogg_opus_packets(&bytes).unwrap());
        assert!(old.len() > 100);
    }
}
