//! Unit tests of the processor's pieces: sequence and timestamp unwrapping, the reorder
//! window, codec header reading, the H.264 aggregation guard, NTP arithmetic, and the muxer's
//! layout. Test-only.

use super::codec;
use super::timeline::ntp_us;
use super::track::{unwrap_seq, unwrap_ts, TrackBuilder, REORDER_WINDOW};
use crate::record::format::{Codec, SourceKind, TrackInfo};

fn info(codec: Codec) -> TrackInfo {
    TrackInfo {
        track: 1,
        kind: SourceKind::Audio,
        codec,
        payload_type: 111,
        clock_rate: 48_000,
        owner: "o".into(),
        hub: false,
    }
}

fn rtp(seq: u16, ts: u32, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x80, 0x80 | 111];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&ts.to_be_bytes());
    p.extend_from_slice(&7u32.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

#[test]
fn sequence_numbers_unwrap_across_the_wrap_both_ways() {
    let a = unwrap_seq(65_535, None);
    let b = unwrap_seq(0, Some(a));
    assert_eq!(b, a + 1);
    // A reordered packet from before the wrap.
    assert_eq!(unwrap_seq(65_534, Some(b)), a - 1);
    // The first packet leaves room for earlier ones.
    assert!(unwrap_seq(0, None) > u64::from(u16::MAX));
}

#[test]
fn rtp_timestamps_unwrap_across_the_wrap() {
    let a = unwrap_ts(u32::MAX - 1_000, None);
    let b = unwrap_ts(2_000, Some(a));
    assert_eq!(b - a, 3_001);
    assert_eq!(unwrap_ts(u32::MAX - 5_000, Some(b)) - a, -4_000);
}

#[test]
fn a_packet_behind_the_reorder_window_is_counted_late_not_used() {
    let mut t = TrackBuilder::new(info(Codec::Opus));
    for seq in 0..(REORDER_WINDOW as u16 + 10) {
        t.rtp(
            u64::from(seq) * 20_000,
            &rtp(seq, u32::from(seq) * 960, &[0xfc, 1, 2]),
        );
    }
    // Seq 5 again, long after it was handed on: late.
    t.rtp(99_000_000, &rtp(5, 5 * 960, &[0xfc, 9]));
    // A duplicate still inside the window.
    t.rtp(99_000_001, &rtp(REORDER_WINDOW as u16 + 5, 0, &[0xfc, 9]));
    let out = t.finish();
    assert_eq!(out.late_packets, 1);
    assert_eq!(out.duplicate_packets, 1);
    assert_eq!(out.frames.len(), REORDER_WINDOW as usize + 10);
    assert!(out.gaps.is_empty());
}

#[test]
fn an_audio_loss_is_a_gap_with_its_packet_count() {
    let mut t = TrackBuilder::new(info(Codec::Opus));
    for seq in [1u16, 2, 3, 7, 8] {
        t.rtp(
            u64::from(seq) * 20_000,
            &rtp(seq, u32::from(seq) * 960, &[0xfc, 1]),
        );
    }
    let out = t.finish();
    assert_eq!(out.frames.len(), 5);
    assert_eq!(out.gaps.len(), 1);
    assert_eq!(out.gaps[0].lost_packets, 3);
    assert_eq!(out.gaps[0].next_frame, 3);
}

#[test]
fn vp8_and_vp9_keyframes_and_sizes() {
    // VP8 keyframe tag (bit 0 = 0), start code, 320x240.
    let vp8 = [0x50, 0x2a, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00];
    assert!(codec::is_keyframe(Codec::Vp8, &vp8));
    assert_eq!(codec::picture_size(Codec::Vp8, &vp8), Some((320, 240)));
    assert!(!codec::is_keyframe(Codec::Vp8, &[0x51]));
    // VP9 profile 0 keyframe: marker 10, profile 00, show_existing 0, frame_type 0, show 1,
    // error_res 0, sync code, color_space 001 + range 0, then 16-bit width-1 and height-1.
    let mut bits = String::from("10" /* marker */);
    bits += "00"; // profile 0
    bits += "0"; // show_existing_frame
    bits += "0"; // key frame
    bits += "1"; // show_frame
    bits += "0"; // error_resilient
    bits += "010010011000001101000010"; // sync code 0x498342
    bits += "001"; // color space BT.601
    bits += "0"; // color range
    bits += &format!("{:016b}", 640 - 1);
    bits += &format!("{:016b}", 360 - 1);
    while bits.len() % 8 != 0 {
        bits.push('0');
    }
    let vp9: Vec<u8> = bits
        .as_bytes()
        .chunks(8)
        .map(|c| u8::from_str_radix(std::str::from_utf8(c).unwrap(), 2).unwrap())
        .collect();
    assert!(codec::is_keyframe(Codec::Vp9, &vp9));
    assert_eq!(codec::picture_size(Codec::Vp9, &vp9), Some((640, 360)));
    // An inter frame (frame_type 1).
    assert!(!codec::is_keyframe(Codec::Vp9, &[0b1000_0100]));
    assert!(!codec::is_keyframe(Codec::Vp9, &[]));
}

#[test]
fn a_truncated_stap_a_is_refused_before_the_depacketizer_sees_it() {
    // rtc-rtp 0.21's H264Packet indexes the next unit's length without a bounds check: this
    // payload (STAP-A, one empty unit, then one byte of a length) would panic there.
    assert!(!codec::h264_payload_sound(&[24, 0, 0, 5]));
    assert!(!codec::h264_payload_sound(&[24, 0, 9, 1, 2]));
    assert!(codec::h264_payload_sound(&[24, 0, 2, 0x67, 1, 0, 1, 0x68]));
    assert!(codec::h264_payload_sound(&[0x65, 1, 2, 3]));
}

#[test]
fn ntp_timestamps_convert_to_microseconds() {
    assert_eq!(ntp_us(0), 0);
    assert_eq!(ntp_us(5 << 32), 5_000_000);
    assert_eq!(ntp_us((7 << 32) | (1 << 31)), 7_500_000);
}

#[test]
fn the_opus_head_is_rfc_7845s() {
    let h = codec::opus_head();
    assert_eq!(&h[..8], b"OpusHead");
    assert_eq!(h.len(), 19);
    assert_eq!(h[9], 2);
    assert_eq!(u32::from_le_bytes([h[12], h[13], h[14], h[15]]), 48_000);
}
