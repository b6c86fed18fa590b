//! Unit tests of `egress` (the fast path's packets, histories and sender reports), in
//! their own file to keep `egress.rs` short. They must never open a socket.

use super::*;
use rtc::shared::marshal::Unmarshal;

fn exts() -> ExtensionMap {
    let mut m = ExtensionMap::empty();
    m.set(1, Extension::AudioLevel);
    m.set(4, Extension::RtpMid);
    m.set(7, Extension::AbsoluteCaptureTime);
    m.set(13, Extension::VideoOrientation);
    m
}

fn packet(payload: &[u8]) -> OutPacket<'_> {
    OutPacket {
        pt: 96,
        seq: (3 << 16) | 65_535,
        ts: 0xdead_beef,
        marker: true,
        payload,
        audio_level: None,
        orientation: Some(1),
        capture: Some((0x0102_0304_0506_0708, Some(-5))),
        padding: 0,
    }
}

/// Notes video packets `seqs` sent on `s` at `t0` (kept in `recent`).
fn send_all(
    s: &mut Stream,
    recent: &mut Recent,
    seqs: std::ops::Range<u64>,
    payload: &Arc<[u8]>,
    t0: Instant,
) {
    for seq in seqs {
        let p = OutPacket {
            seq,
            ..packet(payload)
        };
        let kept = recent.keep(&p, payload, t0);
        s.sent(&p, Some(kept), t0);
    }
}

#[test]
fn header_carries_the_negotiated_extensions() {
    let s = Stream::new(0x1234_5678, Mid::from("v0"), &exts(), 90_000);
    let payload = [9u8; 100];
    let mut buf = Vec::new();
    let header_len = write_header(&s, &packet(&payload), &mut buf);
    buf.extend_from_slice(&payload);
    // An independent parser (the webrtc crate's) reads it back.
    let p = rtc::rtp::Packet::unmarshal(&mut &buf[..]).unwrap();
    assert_eq!(p.header.ssrc, 0x1234_5678);
    assert_eq!(p.header.sequence_number, 65_535);
    assert_eq!(p.header.timestamp, 0xdead_beef);
    assert!(p.header.marker);
    assert_eq!(p.header.payload_type, 96);
    assert_eq!(p.header.extension_profile, 0xbede);
    assert_eq!(&p.header.get_extension(4).unwrap()[..], b"v0");
    assert_eq!(&p.header.get_extension(13).unwrap()[..], &[1]);
    let capture = p.header.get_extension(7).unwrap();
    assert_eq!(&capture[..8], &0x0102_0304_0506_0708u64.to_be_bytes());
    assert_eq!(&capture[8..], &(-5i64).to_be_bytes());
    assert!(p.header.get_extension(1).is_none(), "no level on video");
    assert_eq!(&p.payload[..], &payload[..]);
    assert_eq!(header_len, buf.len() - payload.len());
    assert_eq!(header_len % 4, 0);
}

#[test]
fn header_len_counts_what_write_header_writes() {
    let maps = [exts(), ExtensionMap::empty(), {
        let mut m = ExtensionMap::empty();
        m.set(2, Extension::AbsoluteCaptureTime);
        m
    }];
    let payload = [0u8; 10];
    for map in &maps {
        for mid in ["", "v", "a1b2c3d4e5f6g7h8i9"] {
            let s = Stream::new(1, Mid::from(mid), map, 90_000);
            for level in [None, Some((-20, false))] {
                for orientation in [None, Some(3)] {
                    for capture in [None, Some((5, None)), Some((5, Some(-1)))] {
                        let p = OutPacket {
                            audio_level: level,
                            orientation,
                            capture,
                            ..packet(&payload)
                        };
                        let mut buf = Vec::new();
                        assert_eq!(
                            header_len(&s, &p),
                            write_header(&s, &p, &mut buf),
                            "mid {mid:?} {level:?} {orientation:?} {capture:?}"
                        );
                        // The mid element comes first: id 4, length − 1, the mid.
                        if map.id_of(Extension::RtpMid).is_some() && !mid.is_empty() {
                            let m = &mid.as_bytes()[..mid.len().min(16)];
                            assert_eq!(buf[16], (4 << 4) | (m.len() as u8 - 1));
                            assert_eq!(&buf[17..17 + m.len()], m, "mid {mid:?}");
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn without_negotiated_extensions_the_header_is_plain() {
    let s = Stream::new(7, Mid::from("a"), &ExtensionMap::empty(), 48_000);
    let mut buf = Vec::new();
    let p = OutPacket {
        audio_level: Some((-30, true)),
        ..packet(&[1, 2, 3])
    };
    assert_eq!(write_header(&s, &p, &mut buf), 12);
    assert_eq!(buf[0], 0x80, "version 2, no extension bit");
}

#[test]
fn audio_level_is_written_as_rfc_6464() {
    let s = Stream::new(7, Mid::from("a"), &exts(), 48_000);
    let mut buf = Vec::new();
    let p = OutPacket {
        orientation: None,
        capture: None,
        audio_level: Some((-37, true)),
        ..packet(&[])
    };
    write_header(&s, &p, &mut buf);
    let parsed = rtc::rtp::Packet::unmarshal(&mut &buf[..]).unwrap();
    assert_eq!(&parsed.header.get_extension(1).unwrap()[..], &[0x80 | 37]);
}

#[test]
fn history_resends_recent_packets_a_few_times() {
    let mut s = Stream::new(7, Mid::from("v"), &exts(), 90_000);
    let t0 = Instant::now();
    let payload: Arc<[u8]> = Arc::from(&[5u8; 50][..]);
    let mut recent = Recent::default();
    send_all(&mut s, &mut recent, 100..110, &payload, t0);
    assert_eq!(s.packets, 10);
    assert_eq!(s.octets, 500);
    let again = s.resend(105, t0, &recent).expect("in the history");
    assert_eq!(again.seq, 105);
    assert_eq!(again.payload, &payload[..]);
    assert!(s.resend(111, t0, &recent).is_none(), "never sent");
    assert!(s.resend(105, t0, &recent).is_some());
    assert!(s.resend(105, t0, &recent).is_some());
    assert!(
        s.resend(105, t0, &recent).is_none(),
        "resent three times already"
    );
    assert!(
        s.resend(106, t0 + HISTORY_AGE + Duration::from_millis(1), &recent)
            .is_none(),
        "too old"
    );
    // A ring slot reused by a later sequence number no longer answers for the old one.
    let p = OutPacket {
        seq: 100 + HISTORY as u64,
        ..packet(&payload)
    };
    let kept = recent.keep(&p, &payload, t0);
    s.sent(&p, Some(kept), t0);
    assert!(s.resend(100, t0, &recent).is_none());
    // Audio (not nackable) keeps no history.
    let mut a = Stream::new(8, Mid::from("a"), &exts(), 48_000);
    a.sent(&packet(&payload), None, t0);
    assert!(a.resend(65_535, t0, &recent).is_none());
    // A packet no longer kept cannot be resent, even if the viewer's ring still has it.
    let later = t0 + HISTORY_AGE + Duration::from_millis(1);
    recent.keep(&packet(&payload), &payload, later);
    assert_eq!(recent.len(), 1, "the old ones went");
    let mut fresh = Stream::new(9, Mid::from("v"), &exts(), 90_000);
    fresh.sent(&p, Some(kept), later);
    assert!(fresh.resend(p.seq as u16, later, &recent).is_none());
}

/// A hole (a packet the server never received, so never sent) is told apart from a packet
/// sent and since pushed out of the ring by a newer one (`sfu/core/repair.rs`).
#[test]
fn a_hole_is_never_sent_and_an_aged_out_packet_is_not_a_hole() {
    let mut s = Stream::new(7, Mid::from("v"), &exts(), 90_000);
    let t0 = Instant::now();
    let payload: Arc<[u8]> = Arc::from(&[5u8; 50][..]);
    let mut recent = Recent::default();
    assert!(!s.never_sent(3), "no history yet (audio keeps none)");
    send_all(&mut s, &mut recent, 100..110, &payload, t0);
    send_all(&mut s, &mut recent, 113..120, &payload, t0);
    assert!(s.never_sent(110) && s.never_sent(112), "lost upstream");
    assert!(!s.never_sent(105) && !s.never_sent(113), "sent");
    // Far past: the ring's slots hold newer packets by now.
    send_all(&mut s, &mut recent, 120..120 + HISTORY as u64, &payload, t0);
    assert!(!s.never_sent(100), "aged out, not a hole");
    assert!(!s.never_sent(110), "nor is an old hole a lap back");
    // Across the 16-bit wrap.
    let mut w = Stream::new(8, Mid::from("v"), &exts(), 90_000);
    send_all(&mut w, &mut recent, 65_530..65_534, &payload, t0);
    send_all(&mut w, &mut recent, 65_537..65_540, &payload, t0);
    assert!(w.never_sent(65_535) && w.never_sent(0));
    assert!(!w.never_sent(1) && !w.never_sent(65_531));
}

#[test]
fn the_history_grows_for_a_replay_and_shrinks_back() {
    let mut s = Stream::new(7, Mid::from("v"), &exts(), 90_000);
    let t0 = Instant::now();
    let payload: Arc<[u8]> = Arc::from(&[1u8; 10][..]);
    let mut recent = Recent::default();
    send_all(&mut s, &mut recent, 5..6, &payload, t0);
    // A 400-packet GOP replay: the ring grows first, so its keyframe (seq 10) survives.
    s.reserve_history(400);
    send_all(&mut s, &mut recent, 10..410, &payload, t0);
    assert!(
        s.resend(10, t0, &recent).is_some(),
        "the replay's first packet"
    );
    assert!(
        s.resend(5, t0, &recent).is_some(),
        "what was there before the growth"
    );
    // Later, back to the usual size, keeping the latest packets.
    assert!(s.shrink_history());
    assert!(!s.shrink_history(), "once");
    assert!(s.resend(409, t0, &recent).is_some());
    assert!(s.resend(409 - HISTORY as u16 + 1, t0, &recent).is_some());
    assert!(
        s.resend(409 - HISTORY as u16, t0, &recent).is_none(),
        "older than the ring"
    );
    // Never beyond the most.
    s.reserve_history(100_000);
    assert_eq!(s.history.as_ref().unwrap().ring.len(), HISTORY_MAX);
}

#[test]
fn retransmissions_spend_at_most_a_share_of_the_stream() {
    let mut s = Stream::new(7, Mid::from("v"), &exts(), 90_000);
    let t0 = Instant::now();
    let payload: Arc<[u8]> = Arc::from(&[5u8; 1000][..]);
    let mut recent = Recent::default();
    send_all(&mut s, &mut recent, 0..200, &payload, t0);
    // 64 KiB to start with, plus 15 % of 200 kB: 95 resends of 1000 bytes, fewer than
    // the 600 the NACKs ask for.
    let granted = (0..200u16)
        .flat_map(|q| [q, q, q])
        .filter(|&q| s.resend(q, t0, &recent).is_some())
        .count();
    assert_eq!(granted, (64 * 1024 + 200 * 1000 * 15 / 100) / 1000);
}

#[test]
fn round_trip_from_the_sender_reports_echoed() {
    let mut s = Stream::new(7, Mid::from("v"), &exts(), 90_000);
    let t0 = Instant::now();
    for i in 0..6u64 {
        s.report_sent((i + 1) << 32 | 0x8000_0000, t0 + Duration::from_secs(i));
    }
    // LSR is the middle 32 bits of the NTP time: seconds' low 16, fraction's high 16.
    assert_eq!(
        s.report_sent_at(0x0006_8000),
        Some(t0 + Duration::from_secs(5))
    );
    assert_eq!(
        s.report_sent_at(0x0003_8000),
        Some(t0 + Duration::from_secs(2))
    );
    assert_eq!(
        s.report_sent_at(0x0001_8000),
        None,
        "only the latest four are kept"
    );
    assert_eq!(s.report_sent_at(0x0009_8000), None, "never sent");
}

#[test]
fn rtcp_and_rtp_are_told_apart() {
    assert!(is_rtcp(&[0x80, 200, 0, 6, 0, 0, 0, 1]));
    assert!(is_rtcp(&[0x81, 205, 0, 3, 0, 0, 0, 1]));
    assert!(
        !is_rtcp(&[0x80, 0x80 | 35, 0, 1, 0, 0, 0, 1]),
        "marker + PT 35"
    );
    assert!(
        !is_rtcp(&[0x80, 195, 0, 1, 0, 0, 0, 1]),
        "not a type str0m sends"
    );
    assert!(!is_rtcp(&[0x80, 96, 0, 1, 0, 0, 0, 1]));
    assert!(!is_rtcp(&[0x80, 0xe0, 0, 1, 0, 0, 0, 1]), "marker + PT 96");
    assert!(!is_rtcp(&[22, 254, 253, 0, 0, 0, 0, 0]), "DTLS");
    assert!(!is_rtcp(&[0x80, 200]), "too short");
}

#[test]
fn ntp_time_of_the_unix_epoch_and_a_half_second() {
    assert_eq!(ntp64(UNIX_EPOCH), NTP_UNIX_OFFSET << 32);
    let t = UNIX_EPOCH + Duration::from_millis(1500);
    assert_eq!(ntp64(t), ((NTP_UNIX_OFFSET + 1) << 32) | (1 << 31));
}

/// DTLS-SRTP keying material for AEAD_AES_128_GCM: two 16-byte keys, two 12-byte salts.
fn material() -> Vec<u8> {
    (0..56u8).collect()
}

/// A compound RTCP packet as str0m sends a subscriber: an SR for `ssrc` with nothing
/// counted, then an SDES with a CNAME.
fn compound(ssrc: u32) -> Vec<u8> {
    let mut b = vec![0x80, 200, 0, 6];
    b.extend_from_slice(&ssrc.to_be_bytes());
    b.extend_from_slice(&0x1111_2222_3333_4444u64.to_be_bytes());
    b.extend_from_slice(&[0; 12]);
    b.extend_from_slice(&[0x81, 202, 0, 3]);
    b.extend_from_slice(&ssrc.to_be_bytes());
    b.extend_from_slice(&[1, 2, b'a', b'b', 0, 0, 0, 0]);
    b
}

#[test]
fn keys_of_the_wrong_length_give_no_fast_path() {
    use str0m::crypto::dtls::SrtpProfile;
    let keys = Keys {
        profile: SrtpProfile::AEAD_AES_128_GCM,
        material: vec![0; 40],
        local_is_client: true,
    };
    assert!(matches!(
        Egress::new(&keys),
        Err(SrtpError::Material(40, 56))
    ));
}

#[test]
fn padding_makes_a_packet_the_size_of_its_run_and_a_resend_the_same_bytes() {
    use str0m::crypto::dtls::SrtpProfile;
    let profile = SrtpProfile::AEAD_AES_128_GCM;
    let keys = Keys {
        profile,
        material: material(),
        local_is_client: false,
    };
    let egress = Egress::new(&keys).unwrap();
    // What `group_size` plans with is what `seal` makes (no padding asked).
    {
        let s = Stream::new(9, Mid::from("v"), &exts(), 90_000);
        let payload = [7u8; 300];
        let mut p = packet(&payload);
        let mut buf = Vec::new();
        assert!(egress.seal(&s, &mut p, None, &mut buf));
        assert_eq!(egress.sealed_len(&s, &packet(&payload)), buf.len());
    }
    let mut rx = crate::sfu::srtp::tests::rtc_context(profile, &material(), false);
    let now = Instant::now();
    let mut s = Stream::new(0xabcd, Mid::from("v"), &exts(), 90_000);
    let payload: Arc<[u8]> = vec![7u8; 1000].into();
    let later = |seq: u64, payload| OutPacket {
        seq,
        marker: false,
        orientation: None,
        capture: None,
        ..packet(payload)
    };
    // A frame's first packet carries abs-capture-time, so it is longer than the next.
    let mut first = OutPacket {
        seq: 10,
        marker: false,
        ..packet(&payload)
    };
    let mut a = Vec::new();
    assert!(egress.seal(&s, &mut first, None, &mut a));
    let mut natural = Vec::new();
    assert!(egress.seal(&s, &mut later(11, &payload), None, &mut natural));
    assert!(natural.len() < a.len());

    let mut second = later(11, &payload);
    let mut b = Vec::new();
    assert!(egress.seal(&s, &mut second, Some(a.len()), &mut b));
    assert_eq!(b.len(), a.len(), "padded to the run's size");
    assert_eq!(usize::from(second.padding), a.len() - natural.len());
    let plain = rx.decrypt_rtp(&b).unwrap();
    let parsed = rtc::rtp::Packet::unmarshal(&mut &plain[..]).unwrap();
    assert!(parsed.header.padding);
    assert_eq!(&parsed.payload[..], &payload[..], "the receiver strips it");
    assert_eq!(parsed.header.sequence_number, 11);

    // A resend is the same bytes (same SRTP index, so it must be).
    let mut recent = Recent::default();
    let kept = recent.keep(&second, &payload, now);
    s.sent(&second, Some(kept), now);
    let mut again = s.resend(11, now, &recent).unwrap();
    let mut c = Vec::new();
    assert!(egress.seal(&s, &mut again, None, &mut c));
    assert_eq!(c, b);
    // So is one with every extension this path writes (the viewers' shared fields come
    // back from `recent`, the viewer's own from its history).
    for (seq, mut p) in [
        (10, first),
        (
            14,
            OutPacket {
                seq: 14,
                audio_level: Some((-30, true)),
                ..packet(&payload)
            },
        ),
    ] {
        let mut sealed = Vec::new();
        assert!(egress.seal(&s, &mut p, None, &mut sealed));
        let kept = recent.keep(&p, &payload, now);
        s.sent(&p, Some(kept), now);
        let mut again = s.resend(seq, now, &recent).unwrap();
        let mut resealed = Vec::new();
        assert!(egress.seal(&s, &mut again, None, &mut resealed));
        assert_eq!(resealed, sealed, "seq {seq}");
    }

    // Far shorter (a frame's last packet, audio) or longer than the run: no padding.
    let short: Arc<[u8]> = vec![1u8; 300].into();
    let mut last = later(12, &short);
    let mut d = Vec::new();
    assert!(egress.seal(&s, &mut last, Some(a.len()), &mut d));
    assert_eq!((last.padding, d[0] & 0x20), (0, 0));
    let mut longer = later(13, &payload);
    assert!(egress.seal(&s, &mut longer, Some(natural.len() - 1), &mut d));
    assert_eq!((longer.padding, d.len()), (0, natural.len()));
}

#[test]
fn sender_reports_get_this_paths_figures() {
    use str0m::crypto::dtls::SrtpProfile;
    let keys = Keys {
        profile: SrtpProfile::AEAD_AES_128_GCM,
        material: material(),
        local_is_client: false,
    };
    let egress = Egress::new(&keys).unwrap();
    let now = Instant::now();
    let mut s = Stream::new(0xabcd, Mid::from("v"), &exts(), 90_000);
    s.packets = 10;
    s.octets = 12_000;
    s.last = Some((1_000, now - Duration::from_millis(100)));
    let plain = compound(0xabcd);
    let mut data = plain.clone();
    let len = data.len();
    data.resize(len + 64, 0);
    let n = egress.srtp.protect_rtcp(&mut data, len, 5);
    data.truncate(n);
    let protected_len = data.len();

    egress.patch_sender_reports(&mut data, &mut [&mut s], now);
    assert_eq!(
        s.report_sent_at(0x2222_3333),
        Some(now),
        "its send time noted"
    );
    assert_eq!(data.len(), protected_len);
    let (plain_len, index) = egress
        .srtp
        .unprotect_rtcp(&mut data, protected_len)
        .unwrap();
    assert_eq!(index, 5, "same SRTCP index");
    assert_eq!(plain_len, plain.len());
    let rtp = u32::from_be_bytes(data[16..20].try_into().unwrap());
    assert!(
        (9_990..=10_010).contains(&rtp),
        "1000 + 100 ms at 90 kHz: {rtp}"
    );
    assert_eq!(u32::from_be_bytes(data[20..24].try_into().unwrap()), 10);
    assert_eq!(u32::from_be_bytes(data[24..28].try_into().unwrap()), 12_000);
    assert_eq!(&data[..16], &plain[..16], "header, SSRC and NTP time kept");
    assert_eq!(&data[28..plain_len], &plain[28..], "the SDES untouched");

    // Another stream's report is left alone (and still decrypts).
    let mut other = plain.clone();
    other.resize(len + 64, 0);
    let n = egress.srtp.protect_rtcp(&mut other, len, 6);
    other.truncate(n);
    let mut elsewhere = Stream::new(0x9999, Mid::from("v"), &exts(), 90_000);
    elsewhere.last = s.last;
    egress.patch_sender_reports(&mut other, &mut [&mut elsewhere], now);
    let (l, _) = egress.srtp.unprotect_rtcp(&mut other, n).unwrap();
    assert_eq!(&other[..l], &plain[..]);

    // Garbage is left as it was.
    let mut junk = vec![0x80, 200, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8];
    let before = junk.clone();
    egress.patch_sender_reports(&mut junk, &mut [&mut s], now);
    assert_eq!(junk, before);
    // So is a packet whose tag does not check out (a failed GCM open must not leave it
    // half decrypted).
    let mut bad = plain.clone();
    bad.resize(len + 64, 0);
    let n = egress.srtp.protect_rtcp(&mut bad, len, 7);
    bad.truncate(n);
    bad[n - 6] ^= 1;
    let before = bad.clone();
    egress.patch_sender_reports(&mut bad, &mut [&mut s], now);
    assert_eq!(bad, before);
}

mod props {
    use super::*;
    use proptest::prelude::*;
    use str0m::crypto::dtls::SrtpProfile;

    fn egress() -> Egress {
        Egress::new(&Keys {
            profile: SrtpProfile::AEAD_AES_128_GCM,
            material: material(),
            local_is_client: false,
        })
        .unwrap()
    }

    /// A compound RTCP-like plaintext: `parts` of (packet type, length word, body).
    fn plaintext() -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(
            (
                prop_oneof![Just(200u8), Just(201), Just(202), any::<u8>()],
                0u16..12,
                prop::collection::vec(any::<u8>(), 0..48),
            ),
            1..4,
        )
        .prop_map(|parts| {
            let mut b = Vec::new();
            for (pt, words, body) in parts {
                b.extend_from_slice(&[0x80, pt]);
                b.extend_from_slice(&words.to_be_bytes());
                b.extend_from_slice(&body);
            }
            // The SRTCP header needs the sender's SSRC.
            b.resize(b.len().max(8), 0);
            b
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(100_000))]

        /// Whatever str0m's outgoing RTCP holds, patching it never panics, and a packet
        /// it cannot read leaves as it came.
        #[test]
        fn patching_arbitrary_bytes_never_panics(
            data in prop::collection::vec(any::<u8>(), 0..200),
            ssrc in any::<u32>(),
        ) {
            let e = egress();
            let now = Instant::now();
            let mut s = Stream::new(ssrc, Mid::from("v"), &exts(), 90_000);
            s.last = Some((7, now));
            let mut d = data.clone();
            e.patch_sender_reports(&mut d, &mut [&mut s], now);
            prop_assert_eq!(d, data);
        }

        /// Arbitrary (often malformed) compound RTCP protected with the right keys:
        /// reports are walked without panics and the packet still opens, as long.
        #[test]
        fn patching_arbitrary_rtcp_never_panics(
            plain in plaintext(),
            index in 0u32..0x7fff_ffff,
            ssrc_from_packet in any::<bool>(),
        ) {
            let e = egress();
            let now = Instant::now();
            let ssrc = if ssrc_from_packet {
                u32::from_be_bytes(plain[4..8].try_into().unwrap())
            } else {
                1
            };
            let mut s = Stream::new(ssrc, Mid::from("v"), &exts(), 90_000);
            s.last = Some((7, now));
            let mut d = plain.clone();
            let len = d.len();
            d.resize(len + 64, 0);
            let n = e.srtp.protect_rtcp(&mut d, len, index);
            d.truncate(n);
            e.patch_sender_reports(&mut d, &mut [&mut s], now);
            prop_assert_eq!(d.len(), n);
            let (l, i) = e.srtp.unprotect_rtcp(&mut d, n).unwrap();
            prop_assert_eq!((l, i), (len, index));
        }

        /// NACKs name any sequence number: a resend never panics, and only packets
        /// that went out come back.
        #[test]
        fn resending_any_sequence_number_never_panics(
            sent in 0u64..600,
            first in any::<u16>(),
            asked in prop::collection::vec(any::<u16>(), 1..40),
        ) {
            let now = Instant::now();
            let mut s = Stream::new(0xabcd, Mid::from("v"), &exts(), 90_000);
            s.reserve_history(0);
            let mut recent = Recent::default();
            let payload: Arc<[u8]> = vec![7u8; 100].into();
            let mut seqs = Vec::new();
            for i in 0..sent {
                let seq = u64::from(first) + i;
                let mut p = packet(&payload);
                p.seq = seq;
                let kept = recent.keep(&p, &payload, now);
                s.sent(&p, Some(kept), now);
                seqs.push(seq as u16);
            }
            for seq in asked {
                if let Some(p) = s.resend(seq, now, &recent) {
                    prop_assert!(seqs.contains(&(p.seq as u16)));
                    prop_assert_eq!(p.seq as u16, seq);
                }
            }
        }
    }
}
