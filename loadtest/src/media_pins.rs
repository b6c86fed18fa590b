//! Pins what the publisher's files become — frames, and the Janus feeder's RTP packets — to
//! fingerprints of what the load generator's hand-written IVF/Annex B/Ogg/RTP code made before
//! `rtc-media` and `rtc-rtp` replaced it (the differences are listed on each test), so that a
//! crate update that changes the benchmark's streams fails here; test-only, never used by the
//! generator.

use crate::ivf::Frame;

/// The Janus feeder's payload size.
const MAX: usize = 1100;

/// FNV-1a over each item's length and bytes.
fn fingerprint<'a>(items: impl IntoIterator<Item = &'a [u8]>) -> (usize, usize, u64) {
    let (mut n, mut bytes, mut h) = (0, 0, 0xcbf2_9ce4_8422_2325u64);
    for item in items {
        n += 1;
        bytes += item.len();
        for &b in (item.len() as u64).to_le_bytes().iter().chain(item) {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    (n, bytes, h)
}

fn fixture(path: &str) -> Vec<u8> {
    std::fs::read(format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn frames(fs: &[Frame]) -> (usize, usize, u64) {
    fingerprint(fs.iter().map(|f| &f.data[..]))
}

/// The feeder's RTP packets for `n` pictures of `fs` (looped), as `janus::feed` builds them.
fn feeder_packets(fs: &[Frame], h264: bool, n: usize) -> Vec<Vec<u8>> {
    let mut vp8 = crate::janus::vp8_payloader();
    let mut seq = 0u16;
    let mut out = Vec::new();
    for i in 0..n {
        let frame = &fs[i % fs.len()].data;
        let payloads = if h264 {
            crate::h264::payloads(frame, MAX).unwrap()
        } else {
            crate::janus::vp8_payloads(&mut vp8, frame, MAX)
        };
        let last = payloads.len().saturating_sub(1);
        let ts = (i * 3000) as u32;
        for (k, p) in payloads.iter().enumerate() {
            out.push(crate::janus::rtp_packet(
                96,
                k == last,
                seq,
                ts,
                0x5eed_0001,
                p,
            ));
            seq = seq.wrapping_add(1);
        }
    }
    out
}

// The figures below were taken from the output of `rtc-media` and `rtc-rtp` in the commit
// that compared it, fixture by fixture, with the hand-written code's (`old_media.rs` in
// e035c7a): equal but for the differences named on each test.

#[test]
fn ivf_frames_are_those_of_the_hand_written_reader() {
    let (_, vp8) = crate::ivf::parse(&fixture("fixtures/vp8_720p30_1200k.ivf")).unwrap();
    assert_eq!(frames(&vp8), (120, 600_037, 14_978_166_626_626_396_341));
    let (_, small) = crate::ivf::parse(&fixture("../tests/fixtures/video_vp8.ivf")).unwrap();
    assert_eq!(frames(&small), (90, 93_788, 8_324_867_182_301_831_246));
}

/// Differs from the hand-written splitter in one way: `rtc-media` leaves SEI units out
/// (1 930 bytes over the fixture's 120 access units: x264's 700-byte banner, then 6-9 bytes
/// per picture).
#[test]
fn h264_access_units_are_those_of_the_hand_written_splitter_without_sei() {
    let h264 = crate::h264::access_units(&fixture("fixtures/h264_720p30_1200k.h264")).unwrap();
    assert_eq!(frames(&h264), (120, 630_621, 9_446_041_008_288_065_455));
}

#[test]
fn ogg_packets_are_those_of_the_hand_written_reader() {
    let ogg = crate::janus::ogg_opus_packets(&fixture("../tests/fixtures/audio_opus.ogg")).unwrap();
    assert_eq!(
        fingerprint(ogg.iter().map(|p| &p[..])),
        (151, 16_745, 9_652_162_895_135_799_887)
    );
}

/// Differs from the hand-written packetizer for pictures 0-127 only: `rtc-rtp` writes their
/// PictureID in 7 bits (a descriptor one byte shorter); from picture 128 the packets are
/// byte for byte the same.
#[test]
fn vp8_feeder_packets_are_those_of_the_hand_written_packetizer() {
    let (_, vp8) = crate::ivf::parse(&fixture("fixtures/vp8_720p30_1200k.ivf")).unwrap();
    let p = feeder_packets(&vp8, false, 300);
    assert!(p.iter().all(|p| p.len() <= 12 + MAX));
    assert_eq!(
        fingerprint(p.iter().map(|p| &p[..])),
        (1513, 1_516_813, 2_901_251_770_001_140_605)
    );
}

/// Differs from the hand-written packetizer in one way: SPS and PPS go together as one
/// STAP-A (and the access units have no SEI, above); slices are fragmented the same.
#[test]
fn h264_feeder_packets_are_those_of_the_hand_written_packetizer() {
    let h264 = crate::h264::access_units(&fixture("fixtures/h264_720p30_1200k.h264")).unwrap();
    let p = feeder_packets(&h264, true, 120);
    assert!(p.iter().all(|p| p.len() <= 12 + MAX));
    assert_eq!(
        fingerprint(p.iter().map(|p| &p[..])),
        (636, 638_195, 15_161_971_037_857_079_638)
    );
}
