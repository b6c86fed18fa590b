//! The simulated network: one `netem::Link` per (from, to) address pair, on the caller's
//! virtual time; it must never read the wall clock, sleep, or touch a socket.
//!
//! Every link draws its fates from its own PRNG, seeded from the run's seed and the pair's
//! addresses, so what one link does never depends on the traffic of another (nor on the order
//! in which a core happened to serve its viewers).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use classrelay_loadtest::netem::{Fate, Link, LinkProfile};

/// A datagram in flight.
pub struct Datagram {
    pub from: SocketAddr,
    pub to: SocketAddr,
    pub data: Vec<u8>,
}

/// What the links of one endpoint do: `down` toward it, `up` from it.
#[derive(Clone)]
pub struct Access {
    pub down: LinkProfile,
    pub up: LinkProfile,
}

/// All links between the endpoints of a run.
pub struct Net {
    seed: u64,
    /// Profile of links without an [`Access`] rule: a clean line with a little delay.
    default: LinkProfile,
    /// Per endpoint address (any port): the profiles of its access links.
    access: BTreeMap<std::net::IpAddr, Access>,
    links: BTreeMap<(SocketAddr, SocketAddr), Link<Datagram>>,
    /// Datagrams lost at random, per destination.
    pub lost: BTreeMap<SocketAddr, u64>,
    /// Datagrams delivered, per destination.
    pub delivered: BTreeMap<SocketAddr, u64>,
    /// Per sending address: everything it sends before this instant is lost (an outage of
    /// its uplink: a burst of losses at a chosen moment, counted in `lost`).
    pub blackout: BTreeMap<SocketAddr, Instant>,
}

/// FNV-1a over some words: a stable mix for per-link seeds (the std hasher is seeded at random).
pub fn mix(words: &[u64]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for w in words {
        for b in w.to_le_bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x100000001b3);
        }
    }
    h
}

fn addr_word(a: SocketAddr) -> u64 {
    let ip = match a.ip() {
        std::net::IpAddr::V4(v) => u64::from(u32::from(v)),
        std::net::IpAddr::V6(v) => u128::from(v) as u64,
    };
    (ip << 16) | u64::from(a.port())
}

impl Net {
    pub fn new(seed: u64) -> Net {
        Net {
            seed,
            default: LinkProfile {
                delay: Duration::from_millis(5),
                ..LinkProfile::clean()
            },
            access: BTreeMap::new(),
            links: BTreeMap::new(),
            lost: BTreeMap::new(),
            delivered: BTreeMap::new(),
            blackout: BTreeMap::new(),
        }
    }

    /// Gives the host `ip` (every port of it) its own access links. Applies to links not
    /// used yet: set it before the endpoint sends or receives.
    pub fn set_access(&mut self, ip: std::net::IpAddr, access: Access) {
        self.access.insert(ip, access);
    }

    /// The host `ip`'s line changes now (a rural link that drops, or comes back): its links
    /// are made again from `access`, and what was queued on the old ones is lost.
    pub fn reshape(&mut self, ip: std::net::IpAddr, access: Access) {
        self.access.insert(ip, access);
        self.links
            .retain(|(from, to), _| from.ip() != ip && to.ip() != ip);
    }

    fn profile(&self, from: SocketAddr, to: SocketAddr) -> LinkProfile {
        let mut p = self
            .access
            .get(&to.ip())
            .map(|a| a.down.clone())
            .or_else(|| self.access.get(&from.ip()).map(|a| a.up.clone()))
            .unwrap_or_else(|| self.default.clone());
        p.seed = mix(&[self.seed, addr_word(from), addr_word(to), p.seed]);
        p
    }

    /// A datagram leaves `from` for `to` at `now`.
    pub fn send(&mut self, now: Instant, from: SocketAddr, to: SocketAddr, data: Vec<u8>) {
        if self.blackout.get(&from).is_some_and(|until| now < *until) {
            *self.lost.entry(to).or_default() += 1;
            return;
        }
        if !self.links.contains_key(&(from, to)) {
            let link = Link::new(self.profile(from, to));
            self.links.insert((from, to), link);
        }
        let link = self.links.get_mut(&(from, to)).expect("inserted above");
        let bytes = data.len();
        match link.offer(now, bytes, Datagram { from, to, data }) {
            Fate::Queued(_) => {}
            Fate::Lost | Fate::Overflow => *self.lost.entry(to).or_default() += 1,
        }
    }

    /// When the next datagram arrives somewhere.
    pub fn next_arrival(&self) -> Option<Instant> {
        self.links.values().filter_map(|l| l.next_release()).min()
    }

    /// The earliest datagram due at `now` (ties: the lowest (from, to) pair first).
    pub fn pop_due(&mut self, now: Instant) -> Option<Datagram> {
        let key = self
            .links
            .iter()
            .filter_map(|(k, l)| l.next_release().filter(|t| *t <= now).map(|t| (t, *k)))
            .min()?
            .1;
        let d = self.links.get_mut(&key)?.pop_due(now)?;
        *self.delivered.entry(d.to).or_default() += 1;
        Some(d)
    }
}
