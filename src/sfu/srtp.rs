//! SRTP and SRTCP protection for the forwarding fast path (RFC 3711, RFC 7714, keyed as in
//! RFC 5764).
//!
//! A forwarded packet is encrypted once per subscriber, so the worker does that itself, in
//! the subscriber's send buffer, instead of handing every copy to str0m's per-peer send
//! machinery. The code is hand-written because neither implementation at hand fits that
//! path: str0m keeps its SRTP context private, and the `rtc-srtp` crate allocates a buffer
//! for every packet and keeps per-SSRC replay and rollover state that a sender which is
//! told the rollover counter does not need. Here every key, cipher and MAC is prepared once
//! in [`SrtpTx::new`]; protecting a packet works in place and allocates nothing.
//!
//! Profiles: `SRTP_AES128_CM_HMAC_SHA1_80` (80-bit tag on SRTP and SRTCP alike) and
//! `SRTP_AEAD_AES_128_GCM` / `SRTP_AEAD_AES_256_GCM`. Session keys come from the AES-CM PRF
//! of RFC 3711 §4.3 with key derivation rate 0 (AES-256 for the 256-bit master key, RFC
//! 7714 §11); no MKI. What goes on the wire:
//!
//! - SRTP: `header | payload | tag`; the payload is encrypted, the header is not. AES-CM
//!   tags with the first 10 bytes of HMAC-SHA1 over `header | payload | ROC`; GCM tags with
//!   16 bytes and takes the header (CSRCs and extension included) as associated data.
//! - SRTCP with AES-CM: `first 8 bytes | encrypted rest | E‖index | tag`, the tag over all
//!   that precedes it.
//! - SRTCP with GCM: `first 8 bytes | encrypted rest | tag | E‖index`, with
//!   `first 8 bytes | E‖index` as associated data (RFC 7714 §9; its §17 vectors fix the
//!   order, and the tests below check them).

use aws_lc_rs::{aead, cipher, constant_time, hmac};

/// The DTLS-SRTP protection profiles, as str0m negotiates them.
pub use str0m::crypto::dtls::SrtpProfile;

/// Why a context could not be made.
#[derive(Debug, thiserror::Error)]
pub enum SrtpError {
    /// A profile this module does not implement (or whose keys the crypto backend refused).
    #[error("unsupported SRTP profile {0:?}")]
    Profile(SrtpProfile),
    /// Keying material of the wrong length for the profile.
    #[error("keying material is {0} bytes, expected {1}")]
    Material(usize, usize),
}

/// Fixed RTP header, up to and including the SSRC.
const RTP_HEADER_LEN: usize = 12;
/// RTCP bytes left in the clear: the first packet's header and sender SSRC.
const SRTCP_CLEAR_LEN: usize = 8;
/// The `E‖SRTCP index` word.
const SRTCP_INDEX_LEN: usize = 4;
/// The `E` bit of that word: the packet is encrypted.
const SRTCP_E: u32 = 0x8000_0000;
/// HMAC-SHA1 truncated to 80 bits.
const HMAC_TAG_LEN: usize = 10;
/// AES-GCM tag.
const GCM_TAG_LEN: usize = 16;
/// AES-CM master and session salt (112 bits).
const CM_SALT_LEN: usize = 14;
/// GCM master and session salt (96 bits).
const GCM_SALT_LEN: usize = 12;
/// HMAC-SHA1 session key (160 bits).
const AUTH_KEY_LEN: usize = 20;

/// RFC 3711 §4.3.1 key derivation labels.
const LABEL_RTP_KEY: u8 = 0;
const LABEL_RTP_AUTH: u8 = 1;
const LABEL_RTP_SALT: u8 = 2;
const LABEL_RTCP_KEY: u8 = 3;
const LABEL_RTCP_AUTH: u8 = 4;
const LABEL_RTCP_SALT: u8 = 5;

/// The sending half of one DTLS-SRTP association: session keys for SRTP and SRTCP.
pub struct SrtpTx {
    profile: SrtpProfile,
    suite: Suite,
}

/// Session keys of one profile family, for RTP and for RTCP. The AES-CM keys are boxed:
/// expanded AES and HMAC state are some 1.7 kB each, and an `SrtpTx` lives in every peer.
enum Suite {
    Cm { rtp: Box<CmKeys>, rtcp: Box<CmKeys> },
    Gcm { rtp: GcmKeys, rtcp: GcmKeys },
}

/// AES-128 counter mode with HMAC-SHA1-80 (RFC 3711).
struct CmKeys {
    aes: cipher::EncryptingKey,
    salt: [u8; CM_SALT_LEN],
    auth: hmac::Key,
}

/// AES-GCM (RFC 7714).
struct GcmKeys {
    aead: aead::LessSafeKey,
    salt: [u8; GCM_SALT_LEN],
}

impl std::fmt::Debug for SrtpTx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SrtpTx")
            .field("profile", &self.profile)
            .finish_non_exhaustive()
    }
}

impl SrtpTx {
    /// From DTLS-exported keying material (RFC 5764 §4.2: client_write_master_key |
    /// server_write_master_key | client_write_master_salt | server_write_master_salt) and
    /// whether this endpoint was the DTLS client (then it sends with the client half, else
    /// the server half).
    pub fn new(
        profile: SrtpProfile,
        material: &[u8],
        local_is_client: bool,
    ) -> Result<Self, SrtpError> {
        let (key_len, salt_len) = match profile {
            SrtpProfile::AES128_CM_SHA1_80 => (16, CM_SALT_LEN),
            SrtpProfile::AEAD_AES_128_GCM => (16, GCM_SALT_LEN),
            SrtpProfile::AEAD_AES_256_GCM => (32, GCM_SALT_LEN),
            _ => return Err(SrtpError::Profile(profile)),
        };
        let expected = 2 * (key_len + salt_len);
        if material.len() != expected {
            return Err(SrtpError::Material(material.len(), expected));
        }
        let (keys, salts) = material.split_at(2 * key_len);
        let (master_key, master_salt) = if local_is_client {
            (&keys[..key_len], &salts[..salt_len])
        } else {
            (&keys[key_len..], &salts[salt_len..])
        };
        let refused = |_| SrtpError::Profile(profile);
        let prf = Prf::new(master_key).map_err(refused)?;
        let suite = if salt_len == CM_SALT_LEN {
            let half = |key_label, auth_label, salt_label| {
                let mut key = [0; 16];
                let mut auth = [0; AUTH_KEY_LEN];
                let mut salt = [0; CM_SALT_LEN];
                prf.derive(master_salt, key_label, &mut key)?;
                prf.derive(master_salt, auth_label, &mut auth)?;
                prf.derive(master_salt, salt_label, &mut salt)?;
                CmKeys::new(&key, salt, &auth).map(Box::new)
            };
            Suite::Cm {
                rtp: half(LABEL_RTP_KEY, LABEL_RTP_AUTH, LABEL_RTP_SALT).map_err(refused)?,
                rtcp: half(LABEL_RTCP_KEY, LABEL_RTCP_AUTH, LABEL_RTCP_SALT).map_err(refused)?,
            }
        } else {
            let half = |key_label, salt_label| {
                let mut key = [0; 32];
                let key = &mut key[..key_len];
                let mut salt = [0; GCM_SALT_LEN];
                prf.derive(master_salt, key_label, key)?;
                prf.derive(master_salt, salt_label, &mut salt)?;
                GcmKeys::new(key, salt)
            };
            Suite::Gcm {
                rtp: half(LABEL_RTP_KEY, LABEL_RTP_SALT).map_err(refused)?,
                rtcp: half(LABEL_RTCP_KEY, LABEL_RTCP_SALT).map_err(refused)?,
            }
        };
        Ok(SrtpTx { profile, suite })
    }

    /// Bytes protection adds to an RTP packet (10 for AES-CM-HMAC-SHA1-80, 16 for GCM).
    pub fn tag_len(&self) -> usize {
        match self.suite {
            Suite::Cm { .. } => HMAC_TAG_LEN,
            Suite::Gcm { .. } => GCM_TAG_LEN,
        }
    }

    /// Bytes protection adds to an RTCP packet: the `E‖index` word and the tag.
    fn rtcp_overhead(&self) -> usize {
        SRTCP_INDEX_LEN + self.tag_len()
    }

    /// Protects the RTP packet in `buf[..len]` in place: the header is `buf[..header_len]`
    /// (CSRCs and extension included), the payload follows it; SSRC and sequence number are
    /// read from the header, and the packet index is `roc << 16 | seq`. Writes the tag after
    /// the packet and returns the new length, `len + tag_len()`.
    ///
    /// Returns 0 and leaves `buf` as it was if `header_len < 12`, `header_len > len`, or
    /// `buf` is shorter than `len + tag_len()`. Never panics.
    pub fn protect_rtp(&self, buf: &mut [u8], len: usize, header_len: usize, roc: u32) -> usize {
        let tag_len = self.tag_len();
        let end = len.saturating_add(tag_len);
        if header_len < RTP_HEADER_LEN || header_len > len || end > buf.len() {
            return 0;
        }
        let seq = u16::from_be_bytes([buf[2], buf[3]]);
        let ssrc = u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]);
        let done = match &self.suite {
            Suite::Cm { rtp, .. } => {
                let index = (u64::from(roc) << 16) | u64::from(seq);
                rtp.encrypt(ssrc, index, &mut buf[header_len..len])
                    .map(|()| rtp.sign(&mut buf[..end], len, &roc.to_be_bytes()))
            }
            Suite::Gcm { rtp, .. } => {
                let mut iv = [0; GCM_SALT_LEN];
                iv[2..6].copy_from_slice(&ssrc.to_be_bytes());
                iv[6..10].copy_from_slice(&roc.to_be_bytes());
                iv[10..12].copy_from_slice(&seq.to_be_bytes());
                let (header, rest) = buf[..end].split_at_mut(header_len);
                let (payload, tag) = rest.split_at_mut(len - header_len);
                rtp.seal(iv, header, payload, tag)
            }
        };
        if done.is_ok() {
            end
        } else {
            0
        }
    }

    /// SRTCP (RFC 3711 §3.4, RFC 7714 §9): protects the compound RTCP packet in `buf[..len]`
    /// in place with SRTCP index `index` (only its low 31 bits are used; the `E` flag is set,
    /// the packet is always encrypted), appending `E‖index` and the tag in the order the
    /// profile prescribes. Returns the new length, `len + 4 + tag_len()`.
    ///
    /// Returns 0 and leaves `buf` as it was if `len < 8` or `buf` is shorter than
    /// `len + 4 + tag_len()`. Never panics.
    pub fn protect_rtcp(&self, buf: &mut [u8], len: usize, index: u32) -> usize {
        let end = len.saturating_add(self.rtcp_overhead());
        if len < SRTCP_CLEAR_LEN || end > buf.len() {
            return 0;
        }
        let index = index & !SRTCP_E;
        let word = (SRTCP_E | index).to_be_bytes();
        let ssrc = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
        let done = match &self.suite {
            Suite::Cm { rtcp, .. } => rtcp
                .encrypt(ssrc, u64::from(index), &mut buf[SRTCP_CLEAR_LEN..len])
                .map(|()| {
                    buf[len..len + SRTCP_INDEX_LEN].copy_from_slice(&word);
                    rtcp.sign(&mut buf[..end], len + SRTCP_INDEX_LEN, &[]);
                }),
            Suite::Gcm { rtcp, .. } => {
                let aad = srtcp_aad(buf, word);
                let (body, trailer) = buf[SRTCP_CLEAR_LEN..end].split_at_mut(len - SRTCP_CLEAR_LEN);
                let (tag, tail) = trailer.split_at_mut(GCM_TAG_LEN);
                tail.copy_from_slice(&word);
                rtcp.seal(gcm_rtcp_iv(ssrc, index), &aad, body, tag)
            }
        };
        if done.is_ok() {
            end
        } else {
            0
        }
    }

    /// The inverse of [`protect_rtcp`](Self::protect_rtcp) for packets protected with this
    /// context's keys (used to read back and patch the Sender Reports str0m produced with
    /// the same keys): checks the tag, decrypts `buf[..len]` in place, and returns the
    /// plaintext length and the SRTCP index (without the `E` flag).
    ///
    /// Packets with `E` clear (authenticated, not encrypted) are accepted too; their RTCP is
    /// returned as it stands. `None` if `len > buf.len()`, the packet is too short, or the tag
    /// does not verify. After `None`, AES-CM leaves `buf` untouched, but GCM may already
    /// have overwritten the encrypted part (it decrypts before it compares tags). Never
    /// panics.
    pub fn unprotect_rtcp(&self, buf: &mut [u8], len: usize) -> Option<(usize, u32)> {
        let buf = buf.get_mut(..len)?;
        if len < SRTCP_CLEAR_LEN + self.rtcp_overhead() {
            return None;
        }
        let ssrc = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
        match &self.suite {
            Suite::Cm { rtcp, .. } => {
                let tag_at = len - HMAC_TAG_LEN;
                let word_at = tag_at - SRTCP_INDEX_LEN;
                let expected = rtcp.mac(&buf[..tag_at], &[]);
                constant_time::verify_slices_are_equal(
                    &expected.as_ref()[..HMAC_TAG_LEN],
                    &buf[tag_at..],
                )
                .ok()?;
                let word = read_u32(&buf[word_at..tag_at]);
                let index = word & !SRTCP_E;
                if word & SRTCP_E != 0 {
                    rtcp.encrypt(ssrc, u64::from(index), &mut buf[SRTCP_CLEAR_LEN..word_at])
                        .ok()?;
                }
                Some((word_at, index))
            }
            Suite::Gcm { rtcp, .. } => {
                let word_at = len - SRTCP_INDEX_LEN;
                let tag_at = word_at - GCM_TAG_LEN;
                let word = read_u32(&buf[word_at..]);
                let index = word & !SRTCP_E;
                let iv = gcm_rtcp_iv(ssrc, index);
                if word & SRTCP_E != 0 {
                    let aad = srtcp_aad(buf, word.to_be_bytes());
                    let (body, trailer) =
                        buf[SRTCP_CLEAR_LEN..].split_at_mut(tag_at - SRTCP_CLEAR_LEN);
                    rtcp.open(iv, &aad, body, &trailer[..GCM_TAG_LEN]).ok()?;
                } else {
                    // Everything but the tag is associated data; move the index word in
                    // front of the tag so that it is one slice, and back afterwards.
                    buf[tag_at..].rotate_right(SRTCP_INDEX_LEN);
                    let (aad, tag) = buf.split_at(tag_at + SRTCP_INDEX_LEN);
                    let verified = rtcp.open(iv, aad, &mut [], tag);
                    buf[tag_at..].rotate_left(SRTCP_INDEX_LEN);
                    verified.ok()?;
                }
                Some((tag_at, index))
            }
        }
    }
}

/// The AES-CM PRF of RFC 3711 §4.3.3 under one master key.
struct Prf {
    aes: cipher::EncryptingKey,
}

impl Prf {
    fn new(master_key: &[u8]) -> Result<Self, aws_lc_rs::error::Unspecified> {
        let algorithm = match master_key.len() {
            16 => &cipher::AES_128,
            _ => &cipher::AES_256,
        };
        let key = cipher::UnboundCipherKey::new(algorithm, master_key)?;
        Ok(Prf {
            aes: cipher::EncryptingKey::ctr(key)?,
        })
    }

    /// Fills `out` with the session key for `label` (key derivation rate 0): the AES-CM
    /// keystream from `IV = (master_salt XOR label << 48) << 16`. A 12-byte (GCM) salt takes
    /// the leading bytes of the 14, as libsrtp and the other implementations do.
    fn derive(
        &self,
        master_salt: &[u8],
        label: u8,
        out: &mut [u8],
    ) -> Result<(), aws_lc_rs::error::Unspecified> {
        let mut iv = [0; 16];
        iv.get_mut(..master_salt.len())
            .ok_or(aws_lc_rs::error::Unspecified)?
            .copy_from_slice(master_salt);
        iv[7] ^= label;
        out.fill(0);
        ctr(&self.aes, iv, out)
    }
}

impl CmKeys {
    fn new(
        key: &[u8],
        salt: [u8; CM_SALT_LEN],
        auth: &[u8],
    ) -> Result<Self, aws_lc_rs::error::Unspecified> {
        let key = cipher::UnboundCipherKey::new(&cipher::AES_128, key)?;
        Ok(CmKeys {
            aes: cipher::EncryptingKey::ctr(key)?,
            salt,
            auth: hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, auth),
        })
    }

    /// XORs `data` with the keystream for one packet: counter block
    /// `(salt << 16) XOR (ssrc << 64) XOR (index << 16)` (RFC 3711 §4.1.1). Its own inverse.
    fn encrypt(
        &self,
        ssrc: u32,
        index: u64,
        data: &mut [u8],
    ) -> Result<(), aws_lc_rs::error::Unspecified> {
        let mut iv = [0; 16];
        iv[..CM_SALT_LEN].copy_from_slice(&self.salt);
        for (b, x) in iv[4..8].iter_mut().zip(ssrc.to_be_bytes()) {
            *b ^= x;
        }
        for (b, x) in iv[8..14].iter_mut().zip(&index.to_be_bytes()[2..]) {
            *b ^= x;
        }
        ctr(&self.aes, iv, data)
    }

    /// HMAC-SHA1 over `data` followed by `extra`.
    fn mac(&self, data: &[u8], extra: &[u8]) -> hmac::Tag {
        let mut mac = hmac::Context::with_key(&self.auth);
        mac.update(data);
        mac.update(extra);
        mac.sign()
    }

    /// Writes the 80-bit tag of `buf[..at] | extra` to `buf[at..at + 10]`.
    fn sign(&self, buf: &mut [u8], at: usize, extra: &[u8]) {
        let tag = self.mac(&buf[..at], extra);
        buf[at..at + HMAC_TAG_LEN].copy_from_slice(&tag.as_ref()[..HMAC_TAG_LEN]);
    }
}

impl GcmKeys {
    fn new(key: &[u8], salt: [u8; GCM_SALT_LEN]) -> Result<Self, aws_lc_rs::error::Unspecified> {
        let algorithm = match key.len() {
            16 => &aead::AES_128_GCM,
            _ => &aead::AES_256_GCM,
        };
        Ok(GcmKeys {
            aead: aead::LessSafeKey::new(aead::UnboundKey::new(algorithm, key)?),
            salt,
        })
    }

    fn nonce(&self, mut iv: [u8; GCM_SALT_LEN]) -> aead::Nonce {
        for (b, s) in iv.iter_mut().zip(self.salt) {
            *b ^= s;
        }
        aead::Nonce::assume_unique_for_key(iv)
    }

    /// Encrypts `data` in place and writes the tag to `tag` (16 bytes).
    fn seal(
        &self,
        iv: [u8; GCM_SALT_LEN],
        aad: &[u8],
        data: &mut [u8],
        tag: &mut [u8],
    ) -> Result<(), aws_lc_rs::error::Unspecified> {
        let sealed =
            self.aead
                .seal_in_place_separate_tag(self.nonce(iv), aead::Aad::from(aad), data)?;
        tag.copy_from_slice(sealed.as_ref());
        Ok(())
    }

    /// Checks `tag` and decrypts `data` in place.
    fn open(
        &self,
        iv: [u8; GCM_SALT_LEN],
        aad: &[u8],
        data: &mut [u8],
        tag: &[u8],
    ) -> Result<(), aws_lc_rs::error::Unspecified> {
        self.aead
            .open_in_place_separate_tag(self.nonce(iv), aead::Aad::from(aad), tag, data)
            .map(|_| ())
    }
}

/// AES counter mode over `data` from counter block `iv`.
fn ctr(
    aes: &cipher::EncryptingKey,
    iv: [u8; 16],
    data: &mut [u8],
) -> Result<(), aws_lc_rs::error::Unspecified> {
    if data.is_empty() {
        return Ok(());
    }
    let context = cipher::EncryptionContext::Iv128(iv.into());
    aes.less_safe_encrypt(data, context).map(|_| ())
}

/// RFC 7714 §9.1: `00 00 | SSRC | 00 00 | 0 | index` (before the salt).
fn gcm_rtcp_iv(ssrc: u32, index: u32) -> [u8; GCM_SALT_LEN] {
    let mut iv = [0; GCM_SALT_LEN];
    iv[2..6].copy_from_slice(&ssrc.to_be_bytes());
    iv[8..12].copy_from_slice(&index.to_be_bytes());
    iv
}

/// SRTCP GCM associated data for an encrypted packet: the first 8 bytes and `E‖index`.
fn srtcp_aad(buf: &[u8], word: [u8; SRTCP_INDEX_LEN]) -> [u8; SRTCP_CLEAR_LEN + SRTCP_INDEX_LEN] {
    let mut aad = [0; SRTCP_CLEAR_LEN + SRTCP_INDEX_LEN];
    aad[..SRTCP_CLEAR_LEN].copy_from_slice(&buf[..SRTCP_CLEAR_LEN]);
    aad[SRTCP_CLEAR_LEN..].copy_from_slice(&word);
    aad
}

fn read_u32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

#[cfg(test)]
pub(crate) mod tests {
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
            let tx =
                SrtpTx::new(SrtpProfile::AES128_CM_SHA1_80, &material, local_is_client).unwrap();
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
    const RFC7714_KEY_256: &str =
        "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
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
}
