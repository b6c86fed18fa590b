//! A STUN Binding request with a made-up MESSAGE-INTEGRITY, for the tests that aim forged
//! ICE checks at the router and the server (and for the router's own unit tests, which
//! include this file). It must never compute a real MESSAGE-INTEGRITY: the point of every
//! caller is a check that only someone without the peer's ICE password would send.
//!
//! Written by hand rather than with a STUN crate because the test needs these exact bytes
//! (attribute order, a fixed transaction id, an integrity value no key produced), which a
//! STUN encoder exists to prevent.

/// A Binding request (RFC 8489 §5) carrying USERNAME `username`, PRIORITY, USE-CANDIDATE
/// when `nominate`, and a MESSAGE-INTEGRITY of twenty 0xab bytes; `tid` is its
/// transaction id.
pub fn forged_binding(username: &str, nominate: bool, tid: [u8; 12]) -> Vec<u8> {
    let attr = |out: &mut Vec<u8>, kind: u16, value: &[u8]| {
        out.extend_from_slice(&kind.to_be_bytes());
        out.extend_from_slice(&(value.len() as u16).to_be_bytes());
        out.extend_from_slice(value);
        while out.len() % 4 != 0 {
            out.push(0);
        }
    };
    let mut attrs = Vec::new();
    attr(&mut attrs, 0x0006, username.as_bytes()); // USERNAME
    attr(&mut attrs, 0x0024, &0x6e00_1effu32.to_be_bytes()); // PRIORITY
    if nominate {
        attr(&mut attrs, 0x0025, &[]); // USE-CANDIDATE
    }
    attr(&mut attrs, 0x0008, &[0xab; 20]); // MESSAGE-INTEGRITY, made up
    let mut m = Vec::with_capacity(20 + attrs.len());
    m.extend_from_slice(&0x0001u16.to_be_bytes()); // Binding request
    m.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
    m.extend_from_slice(&0x2112_a442u32.to_be_bytes()); // magic cookie
    m.extend_from_slice(&tid);
    m.extend_from_slice(&attrs);
    m
}
