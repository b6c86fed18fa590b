//! SRTP protection for the forwarding fast path (RFC 3711, RFC 7714). Stub: being written.

use str0m::crypto::dtls::SrtpProfile;

/// Why a context could not be made.
#[derive(Debug, thiserror::Error)]
pub enum SrtpError {
    /// A profile this module does not implement.
    #[error("unsupported SRTP profile {0:?}")]
    Profile(SrtpProfile),
    /// Keying material of the wrong length for the profile.
    #[error("keying material is {0} bytes, expected {1}")]
    Material(usize, usize),
}

/// The sending half of one DTLS-SRTP association.
#[derive(Debug)]
pub struct SrtpTx {
    tag: usize,
}

impl SrtpTx {
    /// From DTLS-exported keying material (RFC 5764 §4.2).
    pub fn new(profile: SrtpProfile, material: &[u8], local_is_client: bool) -> Result<Self, SrtpError> {
        let _ = (material, local_is_client);
        Err(SrtpError::Profile(profile))
    }

    /// Bytes the protection adds.
    pub fn tag_len(&self) -> usize {
        self.tag
    }

    /// Protects the RTP packet `buf[..len]` in place; returns the protected length.
    pub fn protect_rtp(&self, buf: &mut [u8], len: usize, header_len: usize, roc: u32) -> usize {
        let _ = (buf, header_len, roc);
        len
    }
}
