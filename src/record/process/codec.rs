//! What the processor needs to know about each codec's bitstream: keyframes, picture size, the
//! H.264 decoder configuration for Matroska's CodecPrivate, the Opus header, and a structural
//! check of H.264 aggregation packets. Pure functions on bytes; must never do I/O or panic on
//! any input.
//!
//! Written by hand because no crate fits: `rtc-rtp` depacketizes but does not inspect the
//! codec payload, and the codec crates that parse headers (libvpx, openh264 bindings) are system
//! libraries or full decoders, which the processor must not need.

use crate::record::format::Codec;

/// Whether an assembled frame is a keyframe (decodable on its own). H.264 frames are AVCC
/// (4-byte length prefixes), as the depacketizer is set to emit them.
pub(super) fn is_keyframe(codec: Codec, frame: &[u8]) -> bool {
    match codec {
        Codec::Opus => true,
        // RFC 6386 9.1: bit 0 of the frame tag is 0 for a keyframe.
        Codec::Vp8 => frame.first().is_some_and(|b| b & 1 == 0),
        Codec::Vp9 => vp9_keyframe(frame),
        Codec::H264 => avcc_units(frame).any(|nal| nal.first().is_some_and(|h| h & 0x1f == 5)),
    }
}

/// VP9 uncompressed header (VP9 bitstream spec 6.2): frame_marker (2 bits), profile (2 bits,
/// plus a reserved bit for profile 3), show_existing_frame, frame_type (0 = key).
fn vp9_keyframe(frame: &[u8]) -> bool {
    let Some(&b) = frame.first() else {
        return false;
    };
    if b >> 6 != 0b10 {
        return false;
    }
    let profile = ((b >> 5) & 1) | (((b >> 4) & 1) << 1);
    let mut bit = 4; // index from the MSB of the next field
    if profile == 3 {
        bit += 1;
    }
    let show_existing = (b >> (7 - bit)) & 1;
    if show_existing == 1 {
        return false;
    }
    bit += 1;
    if bit > 7 {
        return false;
    }
    (b >> (7 - bit)) & 1 == 0
}

/// The picture size a keyframe declares, when the codec's header says it plainly.
pub(super) fn picture_size(codec: Codec, frame: &[u8]) -> Option<(u32, u32)> {
    match codec {
        // RFC 6386 9.1: 3-byte frame tag, start code 9d 01 2a, then 14-bit width and height.
        Codec::Vp8 if frame.len() >= 10 && frame[3..6] == [0x9d, 0x01, 0x2a] => {
            let w = u32::from(u16::from_le_bytes([frame[6], frame[7]]) & 0x3fff);
            let h = u32::from(u16::from_le_bytes([frame[8], frame[9]]) & 0x3fff);
            (w > 0 && h > 0).then_some((w, h))
        }
        Codec::Vp9 => vp9_size(frame),
        Codec::H264 => avcc_units(frame)
            .find(|n| n.first().is_some_and(|h| h & 0x1f == 7))
            .and_then(sps_size),
        _ => None,
    }
}

/// Reads bits MSB first; `None` past the end.
struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Bits<'_> {
    fn bit(&mut self) -> Option<u32> {
        let byte = *self.data.get(self.pos / 8)?;
        let b = (byte >> (7 - self.pos % 8)) & 1;
        self.pos += 1;
        Some(u32::from(b))
    }
    fn bits(&mut self, n: u32) -> Option<u32> {
        let mut v = 0u32;
        for _ in 0..n {
            v = (v << 1) | self.bit()?;
        }
        Some(v)
    }
    /// Exp-Golomb ue(v).
    fn ue(&mut self) -> Option<u32> {
        let mut zeros = 0;
        while self.bit()? == 0 {
            zeros += 1;
            if zeros > 31 {
                return None;
            }
        }
        Some((1u32 << zeros) - 1 + self.bits(zeros)?)
    }
    fn se(&mut self) -> Option<i32> {
        let k = self.ue()?;
        let v = k.div_ceil(2) as i32;
        Some(if k % 2 == 1 { v } else { -v })
    }
}

fn vp9_size(frame: &[u8]) -> Option<(u32, u32)> {
    if !vp9_keyframe(frame) {
        return None;
    }
    let mut r = Bits {
        data: frame,
        pos: 2,
    };
    let profile = r.bit()? | (r.bit()? << 1);
    if profile == 3 {
        r.bit()?;
    }
    r.bits(3)?; // show_existing_frame, frame_type, show_frame
    r.bit()?; // error_resilient_mode
    if r.bits(24)? != 0x49_83_42 {
        return None;
    }
    // color_config
    if profile >= 2 {
        r.bit()?; // ten_or_twelve_bit
    }
    let color_space = r.bits(3)?;
    if color_space != 7 {
        r.bit()?; // color_range
        if profile == 1 || profile == 3 {
            r.bits(3)?; // subsampling_x, subsampling_y, reserved
        }
    } else if profile == 1 || profile == 3 {
        r.bit()?;
    }
    let w = r.bits(16)? + 1;
    let h = r.bits(16)? + 1;
    Some((w, h))
}

/// The emulation-prevention bytes removed (H.264 7.4.1).
fn rbsp(nal: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(nal.len());
    let mut zeros = 0;
    for &b in nal {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

/// Picture size from a sequence parameter set (H.264 7.3.2.1.1); `None` for what it does not
/// follow (scaling matrices), and the muxer then writes a nominal size.
fn sps_size(nal: &[u8]) -> Option<(u32, u32)> {
    let data = rbsp(nal.get(1..)?);
    let mut r = Bits {
        data: &data,
        pos: 0,
    };
    let profile = r.bits(8)?;
    r.bits(16)?; // constraint flags, level
    r.ue()?; // seq_parameter_set_id
    let mut chroma_format = 1;
    if matches!(
        profile,
        100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134
    ) {
        chroma_format = r.ue()?;
        if chroma_format == 3 {
            r.bit()?;
        }
        r.ue()?;
        r.ue()?;
        r.bit()?;
        if r.bit()? == 1 {
            return None; // seq_scaling_matrix_present_flag
        }
    }
    r.ue()?; // log2_max_frame_num_minus4
    let poc_type = r.ue()?;
    if poc_type == 0 {
        r.ue()?;
    } else if poc_type == 1 {
        r.bit()?;
        r.se()?;
        r.se()?;
        let n = r.ue()?;
        if n > 255 {
            return None;
        }
        for _ in 0..n {
            r.se()?;
        }
    }
    r.ue()?; // max_num_ref_frames
    r.bit()?;
    let w_mbs = r.ue()? + 1;
    let h_map = r.ue()? + 1;
    let frame_mbs_only = r.bit()?;
    if frame_mbs_only == 0 {
        r.bit()?;
    }
    r.bit()?; // direct_8x8_inference
    let (mut cl, mut cr, mut ct, mut cb) = (0, 0, 0, 0);
    if r.bit()? == 1 {
        cl = r.ue()?;
        cr = r.ue()?;
        ct = r.ue()?;
        cb = r.ue()?;
    }
    let (cx, cy) = match chroma_format {
        0 | 3 => (1, 2 - frame_mbs_only),
        2 => (2, 2 - frame_mbs_only),
        _ => (2, 2 * (2 - frame_mbs_only)),
    };
    let w = (w_mbs * 16).checked_sub(cx * (cl.checked_add(cr)?))?;
    let h = ((2 - frame_mbs_only) * h_map * 16).checked_sub(cy * (ct.checked_add(cb)?))?;
    (w > 0 && h > 0 && w <= 16384 && h <= 16384).then_some((w, h))
}

/// The NAL units of an AVCC frame (4-byte big-endian lengths); stops at the first bad length.
pub(super) fn avcc_units(frame: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = frame;
    std::iter::from_fn(move || {
        if rest.len() < 4 {
            return None;
        }
        let n = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let unit = rest.get(4..4 + n)?;
        rest = &rest[4 + n..];
        Some(unit)
    })
}

/// The AVCDecoderConfigurationRecord (ISO/IEC 14496-15 5.2.4.1) Matroska's `V_MPEG4/ISO/AVC`
/// needs as CodecPrivate, from the first SPS and PPS found in the frames.
pub(super) fn avc_config<'a>(frames: impl Iterator<Item = &'a [u8]>) -> Option<Vec<u8>> {
    let (mut sps, mut pps): (Option<&[u8]>, Option<&[u8]>) = (None, None);
    for frame in frames {
        for nal in avcc_units(frame) {
            match nal.first().map(|h| h & 0x1f) {
                Some(7) if sps.is_none() && nal.len() >= 4 => sps = Some(nal),
                Some(8) if pps.is_none() => pps = Some(nal),
                _ => {}
            }
        }
        if sps.is_some() && pps.is_some() {
            break;
        }
    }
    let (sps, pps) = (sps?, pps?);
    let mut out = vec![1, sps[1], sps[2], sps[3], 0xff, 0xe1];
    out.extend_from_slice(&u16::try_from(sps.len()).ok()?.to_be_bytes());
    out.extend_from_slice(sps);
    out.push(1);
    out.extend_from_slice(&u16::try_from(pps.len()).ok()?.to_be_bytes());
    out.extend_from_slice(pps);
    Some(out)
}

/// Whether an H.264 RTP payload is structurally sound where `rtc-rtp`'s depacketizer indexes
/// without checking (a STAP-A whose last unit is cut inside its length field).
pub(super) fn h264_payload_sound(payload: &[u8]) -> bool {
    if payload.first().is_none_or(|h| h & 0x1f != 24) {
        return true;
    }
    let mut at = 1;
    while at < payload.len() {
        let Some(len) = payload.get(at..at + 2) else {
            return false;
        };
        at += 2 + usize::from(u16::from_be_bytes([len[0], len[1]]));
        if at > payload.len() {
            return false;
        }
    }
    true
}

/// The Opus identification header (RFC 7845 5.1) WebM players expect as CodecPrivate:
/// WebRTC's Opus is 48 kHz stereo; pre-skip 312 samples (6.5 ms, libwebm's CodecDelay).
pub(super) fn opus_head() -> Vec<u8> {
    let mut h = b"OpusHead".to_vec();
    h.push(1); // version
    h.push(2); // channels
    h.extend_from_slice(&OPUS_PRE_SKIP.to_le_bytes());
    h.extend_from_slice(&48_000u32.to_le_bytes());
    h.extend_from_slice(&0i16.to_le_bytes());
    h.push(0); // mapping family
    h
}

/// Opus pre-skip in 48 kHz samples.
pub(super) const OPUS_PRE_SKIP: u16 = 312;
