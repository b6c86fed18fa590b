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
pub(crate) use str0m::crypto::dtls::SrtpProfile;

/// Why a context could not be made.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SrtpError {
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
pub(crate) struct SrtpTx {
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
    pub(crate) fn new(
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
    pub(crate) fn tag_len(&self) -> usize {
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
    pub(crate) fn protect_rtp(
        &self,
        buf: &mut [u8],
        len: usize,
        header_len: usize,
        roc: u32,
    ) -> usize {
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
    pub(crate) fn protect_rtcp(&self, buf: &mut [u8], len: usize, index: u32) -> usize {
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
    pub(crate) fn unprotect_rtcp(&self, buf: &mut [u8], len: usize) -> Option<(usize, u32)> {
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
pub(crate) mod tests;
