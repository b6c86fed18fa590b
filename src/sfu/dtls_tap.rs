//! Hands each peer's DTLS-SRTP keying material to the worker that owns the peer.
//!
//! The forwarding fast path (see `core::fanout::write_slot`) protects a subscriber's copy of a
//! packet itself instead of queueing it through str0m's per-peer send machinery, so it needs
//! the SRTP master keys str0m derives from the DTLS handshake. str0m keeps its SRTP context
//! private but takes a pluggable crypto provider; this one is str0m's default with the DTLS
//! instance wrapped: every output passes through unchanged, and the keying material is also
//! copied into a slot the peer's bookkeeping holds. The slot is attached when the `Rtc` is
//! built ([`build_tapped`]): str0m creates an `Rtc`'s one DTLS instance in `RtcConfig::build`.

use std::cell::RefCell;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use str0m::crypto::dtls::{
    DtlsCert, DtlsImplError, DtlsInstance, DtlsOutput, DtlsProvider, DtlsVersion, ProtocolVersion,
    SrtpProfile,
};
use str0m::crypto::{CryptoError, CryptoProvider};
use str0m::{Rtc, RtcConfig};

/// What one DTLS handshake produced for SRTP.
pub struct Keys {
    /// The negotiated protection profile.
    pub profile: SrtpProfile,
    /// The exported keying material (RFC 5764 §4.2 layout).
    pub material: Vec<u8>,
    /// Whether this side was the DTLS client (it then sends with the client half).
    pub local_is_client: bool,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("profile", &self.profile)
            .field("local_is_client", &self.local_is_client)
            .finish_non_exhaustive()
    }
}

/// Where a peer's keys land once its handshake completes. Written once, by the worker
/// thread driving the peer; read by the same thread (an atomic load, no lock).
pub(crate) type KeySlot = Arc<OnceLock<Keys>>;

thread_local! {
    /// The slot the DTLS instance created next on this thread reports into.
    static NEXT: RefCell<Option<KeySlot>> = const { RefCell::new(None) };
}

/// Builds an `Rtc` whose DTLS handshake reports its SRTP keys into the returned slot.
pub(crate) fn build_tapped(config: RtcConfig, now: Instant) -> (Rtc, KeySlot) {
    let slot: KeySlot = Arc::new(OnceLock::new());
    NEXT.with(|n| *n.borrow_mut() = Some(slot.clone()));
    let rtc = config.set_crypto_provider(provider()).build(now);
    NEXT.with(|n| n.borrow_mut().take());
    (rtc, slot)
}

/// str0m's default provider with the tapping DTLS factory in place of its own.
fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| {
            Arc::new(CryptoProvider {
                dtls_provider: &TapProvider,
                ..default_provider().clone()
            })
        })
        .clone()
}

fn default_provider() -> &'static CryptoProvider {
    static DEFAULT: OnceLock<CryptoProvider> = OnceLock::new();
    DEFAULT.get_or_init(str0m::crypto::from_feature_flags)
}

#[derive(Debug)]
struct TapProvider;

impl DtlsProvider for TapProvider {
    fn generate_certificate(&self) -> Option<DtlsCert> {
        default_provider().dtls_provider.generate_certificate()
    }

    fn new_dtls(
        &self,
        cert: &DtlsCert,
        now: Instant,
        dtls_version: DtlsVersion,
        mtu: Option<usize>,
    ) -> Result<Box<dyn DtlsInstance>, CryptoError> {
        let inner = default_provider()
            .dtls_provider
            .new_dtls(cert, now, dtls_version, mtu)?;
        // Outside `build_tapped` (never in this crate) the keys go nowhere.
        let slot = NEXT
            .with(|n| n.borrow_mut().take())
            .unwrap_or_else(|| Arc::new(OnceLock::new()));
        Ok(Box::new(TapInstance { inner, slot }))
    }

    fn is_test(&self) -> bool {
        default_provider().dtls_provider.is_test()
    }
}

#[derive(Debug)]
struct TapInstance {
    inner: Box<dyn DtlsInstance>,
    slot: KeySlot,
}

impl DtlsInstance for TapInstance {
    fn set_active(&mut self, active: bool) {
        self.inner.set_active(active);
    }

    fn handle_packet(&mut self, packet: &[u8]) -> Result<(), DtlsImplError> {
        self.inner.handle_packet(packet)
    }

    fn poll_output<'a>(&mut self, buf: &'a mut [u8]) -> DtlsOutput<'a> {
        let out = self.inner.poll_output(buf);
        if let DtlsOutput::KeyingMaterial(material, profile) = &out {
            let _ = self.slot.set(Keys {
                profile: *profile,
                material: material.to_vec(),
                local_is_client: self.inner.is_active(),
            });
        }
        out
    }

    fn handle_timeout(&mut self, now: Instant) -> Result<(), DtlsImplError> {
        self.inner.handle_timeout(now)
    }

    fn send_application_data(&mut self, data: &[u8]) -> Result<usize, DtlsImplError> {
        self.inner.send_application_data(data)
    }

    fn is_active(&self) -> bool {
        self.inner.is_active()
    }

    fn protocol_version(&self) -> Option<ProtocolVersion> {
        self.inner.protocol_version()
    }

    fn is_closing(&self) -> bool {
        self.inner.is_closing()
    }

    fn is_closed(&self) -> bool {
        self.inner.is_closed()
    }

    fn close(&mut self) -> Result<(), DtlsImplError> {
        self.inner.close()
    }
}
