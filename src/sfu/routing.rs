//! Datagram routing: which peer a UDP datagram belongs to, in O(1).
//!
//! STUN binding requests carry `USERNAME = <our ufrag>:<their ufrag>`; our ufrag is unique per
//! peer (and per ICE generation), so STUN is routed by it and teaches the router the sender's
//! address. Everything else (DTLS, SRTP, SRTCP) is routed by source address. A peer may have
//! several addresses (ICE restart, NAT rebinding); the number kept is bounded because the
//! address is learned before str0m verifies the STUN message's integrity, so forged checks
//! must not grow the tables without limit. Plain data: no sockets, no `Rtc`s.

use std::collections::HashMap;
use std::net::SocketAddr;

use super::room::PeerId;

/// Addresses remembered per peer.
pub const MAX_ADDRS_PER_PEER: usize = 8;

/// The routing tables of one worker.
#[derive(Debug, Default)]
pub struct Router {
    by_ufrag: HashMap<String, PeerId>,
    by_addr: HashMap<SocketAddr, PeerId>,
    addrs: HashMap<PeerId, Vec<SocketAddr>>,
    ufrags: HashMap<PeerId, Vec<String>>,
}

/// Whether a datagram looks like STUN (RFC 7983 demultiplexing: first byte 0 or 1).
pub fn is_stun(data: &[u8]) -> bool {
    data.len() >= 20 && data[0] < 2
}

impl Router {
    /// Registers a local ICE ufrag for `peer` (at setup and after each ICE restart).
    pub fn add_ufrag(&mut self, peer: PeerId, ufrag: String) {
        self.by_ufrag.insert(ufrag.clone(), peer);
        let list = self.ufrags.entry(peer).or_default();
        if !list.contains(&ufrag) {
            list.push(ufrag);
        }
    }

    /// The peer a datagram from `source` belongs to, learning addresses from STUN.
    pub fn route(&mut self, data: &[u8], source: SocketAddr) -> Option<PeerId> {
        if is_stun(data) {
            if let Ok(msg) = str0m::ice::StunMessage::parse(data) {
                if let Some((local, _remote)) = msg.split_username() {
                    if let Some(&pid) = self.by_ufrag.get(local) {
                        self.learn(pid, source);
                        return Some(pid);
                    }
                }
            }
        }
        self.by_addr.get(&source).copied()
    }

    fn learn(&mut self, pid: PeerId, source: SocketAddr) {
        if self.by_addr.get(&source) == Some(&pid) {
            return;
        }
        let list = self.addrs.entry(pid).or_default();
        if list.len() >= MAX_ADDRS_PER_PEER {
            let old = list.remove(0);
            if self.by_addr.get(&old) == Some(&pid) {
                self.by_addr.remove(&old);
            }
        }
        // An address that belonged to another peer moves (the other peer's NAT binding ended).
        if let Some(prev) = self.by_addr.insert(source, pid) {
            if let Some(l) = self.addrs.get_mut(&prev) {
                l.retain(|a| *a != source);
            }
        }
        let list = self.addrs.entry(pid).or_default();
        if !list.contains(&source) {
            list.push(source);
        }
    }

    /// Forgets everything about `peer`.
    pub fn remove(&mut self, peer: PeerId) {
        for u in self.ufrags.remove(&peer).unwrap_or_default() {
            if self.by_ufrag.get(&u) == Some(&peer) {
                self.by_ufrag.remove(&u);
            }
        }
        for a in self.addrs.remove(&peer).unwrap_or_default() {
            if self.by_addr.get(&a) == Some(&peer) {
                self.by_addr.remove(&a);
            }
        }
    }

    /// Table sizes (ufrags, addresses), for tests and metrics.
    pub fn sizes(&self) -> (usize, usize) {
        (self.by_ufrag.len(), self.by_addr.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(username: &str) -> Vec<u8> {
        let mut attrs = Vec::new();
        attrs.extend_from_slice(&0x0006u16.to_be_bytes());
        attrs.extend_from_slice(&(username.len() as u16).to_be_bytes());
        attrs.extend_from_slice(username.as_bytes());
        while attrs.len() % 4 != 0 {
            attrs.push(0);
        }
        // MESSAGE-INTEGRITY (not verified by the router; str0m checks it later).
        // PRIORITY, required in a binding request.
        attrs.extend_from_slice(&0x0024u16.to_be_bytes());
        attrs.extend_from_slice(&4u16.to_be_bytes());
        attrs.extend_from_slice(&0x6e00_1effu32.to_be_bytes());
        attrs.extend_from_slice(&0x0008u16.to_be_bytes());
        attrs.extend_from_slice(&20u16.to_be_bytes());
        attrs.extend_from_slice(&[0xab; 20]);
        let mut m = Vec::new();
        m.extend_from_slice(&0x0001u16.to_be_bytes());
        m.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
        m.extend_from_slice(&0x2112_a442u32.to_be_bytes());
        m.extend_from_slice(&[9u8; 12]);
        m.extend_from_slice(&attrs);
        m
    }

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    const SRTP: &[u8] = &[0x80, 96, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0xaa, 0xbb];

    #[test]
    fn stun_by_ufrag_then_media_by_address() {
        let mut r = Router::default();
        r.add_ufrag(1, "aaaa".into());
        r.add_ufrag(2, "bbbb".into());
        assert_eq!(r.route(SRTP, addr(5000)), None, "unknown address");
        assert_eq!(r.route(&binding("bbbb:x"), addr(5000)), Some(2));
        assert_eq!(r.route(SRTP, addr(5000)), Some(2));
        assert_eq!(r.route(&binding("aaaa:y"), addr(6000)), Some(1));
        assert_eq!(r.route(SRTP, addr(6000)), Some(1));
        assert_eq!(
            r.route(&binding("zzzz:y"), addr(7000)),
            None,
            "unknown ufrag"
        );
    }

    #[test]
    fn ice_restart_moves_to_new_address_and_ufrag() {
        let mut r = Router::default();
        r.add_ufrag(1, "gen1".into());
        r.route(&binding("gen1:c"), addr(5000));
        r.add_ufrag(1, "gen2".into());
        assert_eq!(r.route(&binding("gen2:d"), addr(5001)), Some(1));
        assert_eq!(r.route(SRTP, addr(5001)), Some(1));
        r.remove(1);
        assert_eq!(r.sizes(), (0, 0));
        assert_eq!(r.route(SRTP, addr(5000)), None);
    }

    #[test]
    fn forged_checks_cannot_grow_tables() {
        let mut r = Router::default();
        r.add_ufrag(1, "real".into());
        for p in 0..1000 {
            r.route(&binding("real:evil"), addr(10_000 + p));
        }
        assert_eq!(r.sizes(), (1, MAX_ADDRS_PER_PEER));
    }

    #[test]
    fn garbage_routes_nowhere() {
        let mut r = Router::default();
        r.add_ufrag(1, "real".into());
        for g in [&[][..], &[0u8; 19], &[1u8; 40], &[0xff; 100]] {
            assert_eq!(r.route(g, addr(1)), None);
        }
    }
}
