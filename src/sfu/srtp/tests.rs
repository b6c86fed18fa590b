//! The SRTP sender's tests: RFC and libsrtp vectors, interop with `rtc-srtp`, tamper and
//! truncation cases; in their own file to keep `srtp.rs` short. They must never weaken a
//! vector to make it pass.

use rtc_srtp::config::Config;
use rtc_srtp::context::Context;
use rtc_srtp::protection_profile::ProtectionProfile;

use super::*;

const PROFILES: [SrtpProfile; 3] = [
    SrtpProfile::AES128_CM_SHA1_80,
    SrtpProfile::AEAD_AES_128_GCM,
    SrtpProfile::AEAD_AES_256_GCM,
];

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    hex::decode(s).expect("test vector is hex")
}

/// A context straight from session keys (the RFC 7714 and RFC 3711 B.2 vectors are
/// stated below the key derivation), the same keys for RTP and RTCP.
fn gcm_session(key: &str, salt: &str) -> SrtpTx {
    let key = hex(key);
    let salt: [u8; GCM_SALT_LEN] = hex(salt).try_into().unwrap();
    let profile = match key.len() {
        16 => SrtpProfile::AEAD_AES_128_GCM,
        _ => SrtpProfile::AEAD_AES_256_GCM,
    };
    let rtp = GcmKeys::new(&key, salt).unwrap();
    let rtcp = GcmKeys::new(&key, salt).unwrap();
    SrtpTx {
        profile,
        suite: Suite::Gcm { rtp, rtcp },
    }
}

fn cm_session(key: &str, salt: &str, auth: &str) -> SrtpTx {
    let salt: [u8; CM_SALT_LEN] = hex(salt).try_into().unwrap();
    let rtp = Box::new(CmKeys::new(&hex(key), salt, &hex(auth)).unwrap());
    let rtcp = Box::new(CmKeys::new(&hex(key), salt, &hex(auth)).unwrap());
    SrtpTx {
        profile: SrtpProfile::AES128_CM_SHA1_80,
        suite: Suite::Cm { rtp, rtcp },
    }
}

/// Keying material as the DTLS exporter lays it out: client key, server key, client
/// salt, server salt.
fn material(key: &[u8], other_key: &[u8], salt: &[u8], other_salt: &[u8]) -> Vec<u8> {
    [key, other_key, salt, other_salt].concat()
}

/// Distinct bytes everywhere, so that the two halves differ.
fn some_material(profile: SrtpProfile) -> Vec<u8> {
    (0..profile.keying_material_len())
        .map(|i| (i as u8).wrapping_mul(37).wrapping_add(11))
        .collect()
}

fn protect_rtp(tx: &SrtpTx, packet: &[u8], header_len: usize, roc: u32) -> Vec<u8> {
    let mut buf = packet.to_vec();
    buf.resize(packet.len() + tx.tag_len(), 0);
    let n = tx.protect_rtp(&mut buf, packet.len(), header_len, roc);
    assert_eq!(n, packet.len() + tx.tag_len());
    buf
}

fn protect_rtcp(tx: &SrtpTx, packet: &[u8], index: u32) -> Vec<u8> {
    let mut buf = packet.to_vec();
    buf.resize(packet.len() + 4 + tx.tag_len(), 0);
    let n = tx.protect_rtcp(&mut buf, packet.len(), index);
    assert_eq!(n, buf.len());
    buf
}

// RFC 3711 Appendix B.3: key derivation, AES-128 PRF.
#[test]
fn kdf_rfc3711_b3() {
    let prf = Prf::new(&hex("E1F97A0D3E018BE0D64FA32C06DE4139")).unwrap();
    let salt = hex("0EC675AD498AFEEBB6960B3AABE6");

    let mut key = [0; 16];
    prf.derive(&salt, LABEL_RTP_KEY, &mut key).unwrap();
    assert_eq!(key[..], hex("C61E7A93744F39EE10734AFE3FF7A087"));

    let mut session_salt = [0; 14];
    prf.derive(&salt, LABEL_RTP_SALT, &mut session_salt)
        .unwrap();
    assert_eq!(session_salt[..], hex("30CBBC08863D8C85D49DB34A9AE1"));

    // The appendix prints 94 bytes of the authentication keystream; SRTP uses 20.
    let mut auth = [0; 94];
    prf.derive(&salt, LABEL_RTP_AUTH, &mut auth).unwrap();
    assert_eq!(
        auth[..],
        hex(
            "CEBE321F6FF7716B6FD4AB49AF256A156D38BAA48F0A0ACF3C34E2359E6CDBCE
             E049646C43D9327AD175578EF72270986371C10C9A369AC2F94A8C5FBCDDDC25
             6D6E919A48B610EF17C2041E474035766B68642C59BBFC2F34DB60DBDFB2"
        )
    );
}

// RFC 6188 §7.2: the AES-256 PRF that AEAD_AES_256_GCM derives with (RFC 7714 §11).
#[test]
fn kdf_rfc6188_aes_256() {
    let prf = Prf::new(&hex(
        "f0f04914b513f2763a1b1fa130f10e2998f6f6e43e4309d1e622a0e332b9f1b6",
    ))
    .unwrap();
    let salt = hex("3b04803de51ee7c96423ab5b78d2");

    let mut key = [0; 32];
    prf.derive(&salt, LABEL_RTP_KEY, &mut key).unwrap();
    assert_eq!(
        key[..],
        hex("5ba1064e30ec51613cad926c5a28ef731ec7fb397f70a960653caf06554cd8c4")
    );
    let mut session_salt = [0; 14];
    prf.derive(&salt, LABEL_RTP_SALT, &mut session_salt)
        .unwrap();
    assert_eq!(session_salt[..], hex("fa31791685ca444a9e07c6c64e93"));
    let mut auth = [0; 20];
    prf.derive(&salt, LABEL_RTP_AUTH, &mut auth).unwrap();
    assert_eq!(auth[..], hex("fd9c32d39ed5fbb5a9dc96b30818454d1313dc05"));
}

// RFC 3711 Appendix B.2: the AES-CM keystream for SSRC 0, index 0, read off an
// all-zero payload.
#[test]
fn aes_cm_keystream_rfc3711_b2() {
    let tx = cm_session(
        "2B7E151628AED2A6ABF7158809CF4F3C",
        "F0F1F2F3F4F5F6F7F8F9FAFBFCFD",
        "0000000000000000000000000000000000000000",
    );
    let mut packet = vec![0; 12 + 0xff02 * 16];
    packet[0] = 0x80;
    let out = protect_rtp(&tx, &packet, 12, 0);
    let block = |i: usize| &out[12 + i * 16..12 + (i + 1) * 16];
    assert_eq!(block(0), hex("E03EAD0935C95E80E166B16DD92B4EB4"));
    assert_eq!(block(1), hex("D23513162B02D0F72A43A2FE4A5F97AB"));
    assert_eq!(block(2), hex("41E95B3BB0A2E8DD477901E4FCA894C0"));
    assert_eq!(block(0xfeff), hex("EC8CDF7398607CB0F2D21675EA9EA1E4"));
    assert_eq!(block(0xff00), hex("362B7C3C6773516318A077D7FC5073AE"));
    assert_eq!(block(0xff01), hex("6A2CC3787889374FBEB4C81B17BA6C44"));
}

// libsrtp's `srtp_validate` packets (AES_CM_128_HMAC_SHA1_80, master key and salt of
// RFC 3711 B.3), through `new` from keying material as either DTLS role.
#[test]
fn aes_cm_hmac_sha1_80_libsrtp_validate() {
    let key = hex("e1f97a0d3e018be0d64fa32c06de4139");
    let salt = hex("0ec675ad498afeebb6960b3aabe6");
    let (other_key, other_salt) = ([0x55; 16], [0x66; 14]);
    let as_client = material(&key, &other_key, &salt, &other_salt);
    let as_server = material(&other_key, &key, &other_salt, &salt);

    let rtp = hex("800f1234decafbadcafebabe abababababababababababababababab");
    let srtp =
        hex("800f1234decafbadcafebabe 4e55dc4ce79978d88ca4d215949d2402 b78d6acc99ea179b8dbb");
    let rtcp = hex("81c8000bcafebabe abababababababababababababababab");
    let srtcp =
        hex("81c8000bcafebabe 7128035be487b9bdbef89041f977a5a8 80000001 993e08cd54d6c1230798");

    for (material, local_is_client) in [(as_client, true), (as_server, false)] {
        let tx = SrtpTx::new(SrtpProfile::AES128_CM_SHA1_80, &material, local_is_client).unwrap();
        assert_eq!(protect_rtp(&tx, &rtp, 12, 0), srtp);
        assert_eq!(protect_rtcp(&tx, &rtcp, 1), srtcp);

        let mut buf = srtcp.clone();
        assert_eq!(
            tx.unprotect_rtcp(&mut buf, srtcp.len()),
            Some((rtcp.len(), 1))
        );
        assert_eq!(buf[..rtcp.len()], rtcp[..]);
    }
}

const RFC7714_KEY_128: &str = "000102030405060708090a0b0c0d0e0f";
const RFC7714_KEY_256: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
/// "Quid pro quo"
const RFC7714_SALT: &str = "517569642070726f2071756f";
/// RFC 7714 §16: SSRC 0x5501a0b2, sequence number 0xf17b, ROC 0, "Gallia est omnis
/// divisa in partes tres".
const RFC7714_RTP: &str = "8040f17b8041f8d35501a0b2
    47616c6c696120657374206f6d6e69732064697669736120696e207061727465732074726573";
/// RFC 7714 §17.1–17.4's RTCP packet (SSRC "Mars"), SRTCP index 0x5d4.
const RFC7714_RTCP: &str = "81c8000d4d617273
    4e5450314e545032525450200000042a0000e9304c756e61
    deadbeefdeadbeefdeadbeefdeadbeefdeadbeef";

// RFC 7714 §16.1.1 and §16.2.1: SRTP with AEAD_AES_128_GCM and AEAD_AES_256_GCM.
#[test]
fn gcm_srtp_rfc7714_16() {
    let cases = [
        (
            RFC7714_KEY_128,
            "8040f17b8041f8d35501a0b2
             f24de3a3fb34de6cacba861c9d7e4bcabe633bd50d294e6f42a5f47a51c7d19b36de3adf8833
             899d7f27beb16a9152cf765ee4390cce",
        ),
        (
            RFC7714_KEY_256,
            "8040f17b8041f8d35501a0b2
             32b1de78a822fe12ef9f78fa332e33aab18012389a58e2f3b50b2a0276ffae0f1ba63799b87b
             7aa3db36dfffd6b0f9bb7878d7a76c13",
        ),
    ];
    for (key, expected) in cases {
        let tx = gcm_session(key, RFC7714_SALT);
        assert_eq!(protect_rtp(&tx, &hex(RFC7714_RTP), 12, 0), hex(expected));
    }
}

// RFC 7714 §17.1/§17.2 (encrypted SRTCP: ciphertext, tag, then E‖index) and
// §17.3/§17.4 (E clear, authenticated only).
#[test]
fn gcm_srtcp_rfc7714_17() {
    let rtcp = hex(RFC7714_RTCP);
    let encrypted = [
        (
            RFC7714_KEY_128,
            "81c8000d4d617273
             63e94885dcdab67ca727d7662f6b7e997ff5c0f76c06f32dc676a5f1730d6fda4ce09b46
             86303ded0bb9275bc84aa45896cf4d2f c5abf87245d9eade 800005d4",
        ),
        (
            RFC7714_KEY_256,
            "81c8000d4d617273
             d50ae4d1f5ce5d304ba297e47d470c282c3ece5dbffe0a50a2eaa5c1110555be8415f658
             c61de0476f1b6fad1d1eb30c4446839f 57ff6f6cb26ac3be 800005d4",
        ),
    ];
    for (key, expected) in encrypted {
        let tx = gcm_session(key, RFC7714_SALT);
        let expected = hex(expected);
        assert_eq!(protect_rtcp(&tx, &rtcp, 0x5d4), expected);
        let mut buf = expected.clone();
        assert_eq!(
            tx.unprotect_rtcp(&mut buf, expected.len()),
            Some((rtcp.len(), 0x5d4))
        );
        assert_eq!(buf[..rtcp.len()], rtcp[..]);
    }

    let tagged_only = [
        (RFC7714_KEY_128, "841dd9683dd78ec92ae58790125f62b3"),
        (RFC7714_KEY_256, "91db4afbfeee5a978fab4393ed2615fe"),
    ];
    for (key, tag) in tagged_only {
        let tx = gcm_session(key, RFC7714_SALT);
        let packet = [rtcp.clone(), hex(tag), hex("000005d4")].concat();
        let mut buf = packet.clone();
        assert_eq!(
            tx.unprotect_rtcp(&mut buf, packet.len()),
            Some((rtcp.len(), 0x5d4))
        );
        assert_eq!(buf, packet, "nothing to decrypt, nothing changed");
        buf[20] ^= 1;
        assert_eq!(tx.unprotect_rtcp(&mut buf, packet.len()), None);
    }
}

fn theirs(profile: SrtpProfile) -> ProtectionProfile {
    match profile {
        SrtpProfile::AES128_CM_SHA1_80 => ProtectionProfile::Aes128CmHmacSha1_80,
        SrtpProfile::AEAD_AES_128_GCM => ProtectionProfile::AeadAes128Gcm,
        _ => ProtectionProfile::AeadAes256Gcm,
    }
}

/// An rtc-srtp context keyed with what the endpoint that was (or was not) the DTLS
/// client sends with; rtc-srtp does its own split of the material.
pub(crate) fn rtc_context(profile: SrtpProfile, material: &[u8], client_half: bool) -> Context {
    let mut config = Config {
        profile: theirs(profile),
        ..Default::default()
    };
    config
        .set_session_keys_from_keying_material(material, client_half)
        .unwrap();
    let provider = rtc_srtp::crypto::default_provider().unwrap();
    Context::new(
        &config.keys.local_master_key,
        &config.keys.local_master_salt,
        config.profile,
        None,
        None,
        provider.crypto(),
    )
    .unwrap()
}

/// An RTP packet with two CSRCs and a one-byte-header extension (one element, padded),
/// or with the bare 12-byte header; returns it and its header length.
fn rtp_packet(seq: u16, extended: bool) -> (Vec<u8>, usize) {
    let mut p = vec![0x80, 0xe0];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&0x0102_0304u32.wrapping_mul(u32::from(seq)).to_be_bytes());
    p.extend_from_slice(&0x1234_5678u32.to_be_bytes());
    if extended {
        p[0] |= 0x10 | 2;
        p.extend_from_slice(&0xaaaa_0001u32.to_be_bytes());
        p.extend_from_slice(&0xbbbb_0002u32.to_be_bytes());
        p.extend_from_slice(&[0xbe, 0xde, 0x00, 0x01, 0x10, 0x2a, 0x00, 0x00]);
    }
    let header_len = p.len();
    p.extend((0..200u16).map(|i| (i as u8) ^ (seq as u8)));
    (p, header_len)
}

/// A compound RTCP packet: a Sender Report with one report block, then a BYE.
fn rtcp_packet() -> Vec<u8> {
    let mut p = vec![0x81, 200, 0, 12];
    p.extend_from_slice(&0x1234_5678u32.to_be_bytes());
    p.extend((0..44u8).map(|i| i.wrapping_mul(7)));
    p.extend_from_slice(&[0x81, 203, 0, 1]);
    p.extend_from_slice(&0x1234_5678u32.to_be_bytes());
    p
}

// Ours protects, rtc-srtp unprotects: every profile, both DTLS roles, CSRCs and header
// extension, and a sequence number wrap (ROC 0 → 1, which rtc-srtp infers from the
// sequence numbers it sees).
#[test]
fn rtp_interop_with_rtc_srtp() {
    let steps = [
        (65530u16, 0u32, false),
        (65533, 0, true),
        (65534, 0, false),
        (65535, 0, true),
        (0, 1, true),
        (1, 1, false),
        (2, 1, true),
    ];
    for profile in PROFILES {
        let material = some_material(profile);
        for local_is_client in [true, false] {
            let tx = SrtpTx::new(profile, &material, local_is_client).unwrap();
            let mut rx = rtc_context(profile, &material, local_is_client);
            let mut wrong = rtc_context(profile, &material, !local_is_client);
            for (seq, roc, extended) in steps {
                let (packet, header_len) = rtp_packet(seq, extended);
                let protected = protect_rtp(&tx, &packet, header_len, roc);
                assert_eq!(protected[..header_len], packet[..header_len]);
                assert_ne!(protected[header_len..packet.len()], packet[header_len..]);
                let plain = rx.decrypt_rtp(&protected).unwrap_or_else(|e| {
                    panic!("{profile:?} client {local_is_client} seq {seq}: {e}")
                });
                assert_eq!(plain[..], packet[..], "{profile:?} seq {seq}");
                assert!(wrong.decrypt_rtp(&protected).is_err());
            }
        }
    }
}

// SRTCP both ways: ours protects and rtc-srtp unprotects, rtc-srtp protects and ours
// unprotects. Also pins where E‖index sits in the trailer.
#[test]
fn rtcp_interop_with_rtc_srtp() {
    let rtcp = rtcp_packet();
    for profile in PROFILES {
        let material = some_material(profile);
        for local_is_client in [true, false] {
            let tx = SrtpTx::new(profile, &material, local_is_client).unwrap();
            let mut rx = rtc_context(profile, &material, local_is_client);
            for index in [0, 1, 0x5d4, 0x7fff_ffff] {
                let protected = protect_rtcp(&tx, &rtcp, index);
                let word_at = match profile {
                    SrtpProfile::AES128_CM_SHA1_80 => rtcp.len(),
                    _ => rtcp.len() + 16,
                };
                assert_eq!(
                    protected[word_at..word_at + 4],
                    (0x8000_0000 | index).to_be_bytes()
                );
                let plain = rx.decrypt_rtcp(&protected).unwrap();
                assert_eq!(plain[..], rtcp[..], "{profile:?} index {index}");
            }

            let mut theirs = rtc_context(profile, &material, local_is_client);
            for expected_index in 1..=3 {
                let protected = theirs.encrypt_rtcp(&rtcp).unwrap();
                let mut buf = protected.to_vec();
                let got = tx.unprotect_rtcp(&mut buf, protected.len());
                assert_eq!(got, Some((rtcp.len(), expected_index)), "{profile:?}");
                assert_eq!(buf[..rtcp.len()], rtcp[..]);
            }
        }
    }
}

// Our own SRTCP round trip; any flipped bit is caught; truncations, overlong lengths
// and bad arguments give None / 0 without panicking or touching the buffer.
#[test]
fn rtcp_roundtrip_tamper_and_truncation() {
    let rtcp = rtcp_packet();
    for profile in PROFILES {
        let tx = SrtpTx::new(profile, &some_material(profile), true).unwrap();
        let protected = protect_rtcp(&tx, &rtcp, 0x0123_4567);

        let mut buf = protected.clone();
        assert_eq!(
            tx.unprotect_rtcp(&mut buf, protected.len()),
            Some((rtcp.len(), 0x0123_4567))
        );
        assert_eq!(buf[..rtcp.len()], rtcp[..]);

        for bit in 0..protected.len() * 8 {
            let mut buf = protected.clone();
            buf[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(
                tx.unprotect_rtcp(&mut buf, protected.len()),
                None,
                "bit {bit}"
            );
        }
        for len in 0..protected.len() {
            let mut buf = protected.clone();
            assert_eq!(tx.unprotect_rtcp(&mut buf, len), None, "len {len}");
            let mut short = protected[..len].to_vec();
            assert_eq!(tx.unprotect_rtcp(&mut short, len), None, "len {len}");
        }
        let mut buf = protected.clone();
        assert_eq!(tx.unprotect_rtcp(&mut buf, protected.len() + 1), None);

        let overhead = 4 + tx.tag_len();
        for len in 0..rtcp.len() + 1 {
            let mut buf = rtcp.clone();
            buf.resize(rtcp.len() + overhead, 0);
            let before = buf.clone();
            let room = if len < 8 {
                buf.len()
            } else {
                len + overhead - 1
            };
            assert_eq!(tx.protect_rtcp(&mut buf[..room], len, 7), 0, "len {len}");
            assert_eq!(buf, before);
        }
        let mut buf = vec![0; 64];
        assert_eq!(tx.protect_rtcp(&mut buf, usize::MAX, 7), 0);
    }
}

// protect_rtp refuses what it cannot do, without panicking or touching the buffer.
#[test]
fn rtp_bad_arguments() {
    let (packet, header_len) = rtp_packet(7, true);
    for profile in PROFILES {
        let tx = SrtpTx::new(profile, &some_material(profile), false).unwrap();
        let full = packet.len() + tx.tag_len();
        let mut buf = packet.clone();
        buf.resize(full, 0);
        let before = buf.clone();
        for (room, len, header_len) in [
            (full, packet.len(), 11),
            (full, packet.len(), 0),
            (full, packet.len(), packet.len() + 1),
            (full - 1, packet.len(), header_len),
            (full, full, header_len),
            (full, usize::MAX, header_len),
            (full, 11, 11),
            (0, 0, 0),
        ] {
            assert_eq!(tx.protect_rtp(&mut buf[..room], len, header_len, 0), 0);
            assert_eq!(buf, before);
        }
        // A header with nothing after it is a packet too.
        assert_eq!(
            tx.protect_rtp(&mut buf, header_len, header_len, 0),
            header_len + tx.tag_len()
        );
        for len in 0..=packet.len() {
            for header_len in [0, 12, len] {
                let mut buf = packet.clone();
                buf.resize(full, 0);
                tx.protect_rtp(&mut buf, len, header_len, 3);
            }
        }
    }
}

#[test]
fn construction() {
    for profile in PROFILES {
        let len = profile.keying_material_len();
        assert!(matches!(
            SrtpTx::new(profile, &vec![0; len - 1], true),
            Err(SrtpError::Material(n, m)) if n == len - 1 && m == len
        ));
        assert!(SrtpTx::new(profile, &vec![0; len + 1], false).is_err());
        let tx = SrtpTx::new(profile, &vec![0; len], true).unwrap();
        let tag = if profile == SrtpProfile::AES128_CM_SHA1_80 {
            10
        } else {
            16
        };
        assert_eq!(tx.tag_len(), tag);
        assert_eq!(
            format!("{tx:?}"),
            format!("SrtpTx {{ profile: {profile:?}, .. }}")
        );
    }
    fn shareable<T: Send + Sync>() {}
    shareable::<SrtpTx>();
}
