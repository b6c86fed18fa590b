//! Datagram routing: which peer a UDP datagram belongs to, in O(1).
//!
//! STUN binding requests carry `USERNAME = <our ufrag>:<their ufrag>`; our ufrag is unique per
//! peer (and per ICE generation), so STUN is routed by it, provisionally: the router does not
//! learn the sender's address from it. Only once the peer's str0m has checked the message's
//! MESSAGE-INTEGRITY (it answers with a binding success to that address) does the worker
//! [`Router::learn`] the address; so a forged check (right ufrag, wrong integrity) from
//! another address neither takes that address's traffic nor moves anyone's route. Everything
//! else (DTLS, SRTP, SRTCP) is routed by source address. A peer may have several addresses
//! (ICE restart, NAT rebinding); the number kept is bounded. Plain data: no sockets, no
//! `Rtc`s.

use std::collections::HashMap;
use std::net::SocketAddr;

use super::room::PeerId;

/// Addresses remembered per peer.
pub(crate) const MAX_ADDRS_PER_PEER: usize = 8;

/// The routing tables of one worker.
#[derive(Debug, Default)]
pub(crate) struct Router {
    by_ufrag: HashMap<String, PeerId>,
    by_addr: HashMap<SocketAddr, PeerId>,
    addrs: HashMap<PeerId, Vec<SocketAddr>>,
    ufrags: HashMap<PeerId, Vec<String>>,
}

/// Whether a datagram looks like STUN (RFC 7983 demultiplexing: first byte 0 or 1).
pub(crate) fn is_stun(data: &[u8]) -> bool {
    data.len() >= 20 && data[0] < 2
}

/// Whether a datagram is a STUN binding success response (type 0x0101, magic cookie): what
/// str0m sends only to a check whose integrity it verified.
pub(crate) fn is_binding_success(data: &[u8]) -> bool {
    data.len() >= 20 && data[..2] == [0x01, 0x01] && data[4..8] == [0x21, 0x12, 0xa4, 0x42]
}

impl Router {
    /// Registers a local ICE ufrag for `peer` (at setup and after each ICE restart).
    pub(crate) fn add_ufrag(&mut self, peer: PeerId, ufrag: String) {
        self.by_ufrag.insert(ufrag.clone(), peer);
        let list = self.ufrags.entry(peer).or_default();
        if !list.contains(&ufrag) {
            list.push(ufrag);
        }
    }

    /// The peer a datagram from `source` belongs to. A STUN check goes to the peer whose
    /// ufrag it names, for its str0m to verify; nothing is learned from it here.
    pub(crate) fn route(&self, data: &[u8], source: SocketAddr) -> Option<PeerId> {
        if is_stun(data) {
            if let Ok(msg) = str0m::ice::StunMessage::parse(data) {
                if let Some((local, _remote)) = msg.split_username() {
                    if let Some(&pid) = self.by_ufrag.get(local) {
                        return Some(pid);
                    }
                }
            }
        }
        self.by_addr.get(&source).copied()
    }

    /// The peer whose traffic comes from `addr`, if any.
    pub(crate) fn owner(&self, addr: SocketAddr) -> Option<PeerId> {
        self.by_addr.get(&addr).copied()
    }

    /// Routes what comes from `source` to `pid` from now on: call only once `pid`'s str0m
    /// accepted a connectivity check from there. An address another peer had moves (its
    /// NAT binding ended; the worker keeps it from a peer that still uses it).
    pub(crate) fn learn(&mut self, pid: PeerId, source: SocketAddr) {
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
    pub(crate) fn remove(&mut self, peer: PeerId) {
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

    #[cfg(test)]
    /// Table sizes (ufrags, addresses), for tests and metrics.
    pub(crate) fn sizes(&self) -> (usize, usize) {
        (self.by_ufrag.len(), self.by_addr.len())
    }
}

/// The forged STUN check the integration tests use too (one builder for both).
#[cfg(test)]
#[path = "../../tests/support/stun.rs"]
#[allow(unreachable_pub)] // `pub` for the integration tests that share the file
mod test_stun;

#[cfg(test)]
mod tests {
    use super::*;

    /// A binding request with `username` (its MESSAGE-INTEGRITY is not verified by the
    /// router; str0m checks it later).
    fn binding(username: &str) -> Vec<u8> {
        super::test_stun::forged_binding(username, false, [9; 12])
    }

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    const SRTP: &[u8] = &[0x80, 96, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0xaa, 0xbb];

    #[test]
    fn stun_by_ufrag_then_media_by_address_once_learned() {
        let mut r = Router::default();
        r.add_ufrag(1, "aaaa".into());
        r.add_ufrag(2, "bbbb".into());
        assert_eq!(r.route(SRTP, addr(5000)), None, "unknown address");
        assert_eq!(r.route(&binding("bbbb:x"), addr(5000)), Some(2));
        assert_eq!(
            r.route(SRTP, addr(5000)),
            None,
            "a check alone (its integrity unverified) teaches nothing"
        );
        r.learn(2, addr(5000));
        assert_eq!(r.route(SRTP, addr(5000)), Some(2));
        assert_eq!(r.route(&binding("aaaa:y"), addr(6000)), Some(1));
        r.learn(1, addr(6000));
        assert_eq!(r.route(SRTP, addr(6000)), Some(1));
        assert_eq!(
            r.route(&binding("zzzz:y"), addr(7000)),
            None,
            "unknown ufrag"
        );
    }

    #[test]
    fn a_forged_check_from_another_peers_address_moves_nothing() {
        let mut r = Router::default();
        r.add_ufrag(1, "victim".into());
        r.add_ufrag(2, "attacker".into());
        r.learn(1, addr(5000));
        // The attacker's own ufrag, sent from the victim's address: routed to the attacker's
        // str0m for checking, but the victim's media still goes to the victim.
        assert_eq!(r.route(&binding("attacker:x"), addr(5000)), Some(2));
        assert_eq!(r.route(SRTP, addr(5000)), Some(1));
        assert_eq!(r.owner(addr(5000)), Some(1));
        assert_eq!(r.sizes(), (2, 1));
    }

    #[test]
    fn a_learned_address_moves_between_peers() {
        let mut r = Router::default();
        r.add_ufrag(1, "one".into());
        r.add_ufrag(2, "two".into());
        r.learn(1, addr(5000));
        r.learn(2, addr(5000));
        assert_eq!(r.route(SRTP, addr(5000)), Some(2));
        r.remove(1);
        assert_eq!(
            r.route(SRTP, addr(5000)),
            Some(2),
            "not the old owner's to remove"
        );
    }

    #[test]
    fn binding_success_is_recognised() {
        let mut ok = binding("a:b");
        ok[0] = 0x01;
        ok[1] = 0x01;
        assert!(is_binding_success(&ok));
        assert!(!is_binding_success(&binding("a:b")), "a request");
        assert!(!is_binding_success(&ok[..19]));
        ok[4] = 0;
        assert!(!is_binding_success(&ok), "no magic cookie");
    }

    #[test]
    fn ice_restart_moves_to_new_address_and_ufrag() {
        let mut r = Router::default();
        r.add_ufrag(1, "gen1".into());
        assert_eq!(r.route(&binding("gen1:c"), addr(5000)), Some(1));
        r.learn(1, addr(5000));
        r.add_ufrag(1, "gen2".into());
        assert_eq!(r.route(&binding("gen2:d"), addr(5001)), Some(1));
        r.learn(1, addr(5001));
        assert_eq!(r.route(SRTP, addr(5001)), Some(1));
        r.remove(1);
        assert_eq!(r.sizes(), (0, 0));
        assert_eq!(r.route(SRTP, addr(5000)), None);
    }

    #[test]
    fn many_addresses_cannot_grow_tables() {
        let mut r = Router::default();
        r.add_ufrag(1, "real".into());
        for p in 0..1000 {
            r.route(&binding("real:evil"), addr(10_000 + p));
        }
        assert_eq!(r.sizes(), (1, 0), "unverified checks learn nothing");
        for p in 0..1000 {
            r.learn(1, addr(10_000 + p));
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

    mod props {
        use super::*;
        use proptest::prelude::*;

        const UFRAGS: [&str; 4] = ["aaaa", "bbbb", "cccc", "dddd"];

        /// A datagram: arbitrary bytes, or a binding request naming one of the ufrags (or
        /// not), possibly cut short or with a byte changed.
        fn datagram() -> impl Strategy<Value = Vec<u8>> {
            prop_oneof![
                prop::collection::vec(any::<u8>(), 0..80),
                (0usize..5, any::<u16>(), any::<usize>(), any::<u8>()).prop_map(|(u, n, at, b)| {
                    let name = UFRAGS.get(u).copied().unwrap_or("zzzz");
                    let mut m = binding(&format!("{name}:{n}"));
                    if at % 3 == 0 {
                        m.truncate(at % (m.len() + 1));
                    } else if at % 3 == 1 {
                        let i = at % m.len();
                        m[i] = b;
                    }
                    m
                }),
            ]
        }

        #[derive(Debug, Clone)]
        enum Op {
            Route(Vec<u8>, u16),
            Learn(u64, u16),
            Remove(u64),
            Restart(u64, u8),
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                6 => (datagram(), any::<u16>()).prop_map(|(d, p)| Op::Route(d, p)),
                3 => (1u64..5, any::<u16>()).prop_map(|(pid, p)| Op::Learn(pid, p)),
                1 => (1u64..5).prop_map(Op::Remove),
                1 => (1u64..5, any::<u8>()).prop_map(|(pid, g)| Op::Restart(pid, g)),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(100_000))]

            /// Any datagram from any source: no panic; a check routes only to the peer
            /// whose ufrag it names; the tables stay within their bounds.
            #[test]
            fn routing_never_panics_and_tables_stay_bounded(
                ops in prop::collection::vec(op(), 1..8),
            ) {
                let mut r = Router::default();
                for (i, u) in UFRAGS.iter().enumerate() {
                    r.add_ufrag(i as u64 + 1, (*u).into());
                }
                for op in ops {
                    match op {
                        Op::Route(d, port) => {
                            let _ = is_stun(&d);
                            let _ = is_binding_success(&d);
                            let before = r.sizes();
                            let to = r.route(&d, addr(port));
                            prop_assert_eq!(r.sizes(), before, "routing learns nothing");
                            if let Some(pid) = to {
                                prop_assert!((1..=4).contains(&pid));
                            }
                        }
                        Op::Learn(pid, port) => {
                            if r.ufrags.contains_key(&pid) {
                                r.learn(pid, addr(port));
                                prop_assert_eq!(r.route(SRTP, addr(port)), Some(pid));
                            }
                        }
                        Op::Remove(pid) => r.remove(pid),
                        Op::Restart(pid, g) => {
                            if r.ufrags.get(&pid).is_some_and(|l| l.len() < 8) {
                                r.add_ufrag(pid, format!("gen{g}"));
                            }
                        }
                    }
                    let peers = r.ufrags.len();
                    prop_assert!(r.by_addr.len() <= peers * MAX_ADDRS_PER_PEER);
                    prop_assert!(r.addrs.values().all(|l| l.len() <= MAX_ADDRS_PER_PEER));
                    prop_assert!(r.by_ufrag.len() <= peers * 9);
                }
            }
        }
    }
}
