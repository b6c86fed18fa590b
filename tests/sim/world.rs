//! The simulated world: clients, media cores and the network between them on one virtual
//! clock, stepped event by event (the next event is the earliest of every timeout and every
//! delivery). It must never read the wall clock, sleep, spawn a thread or open a socket.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::client::{Client, Out};
use crate::net::{mix, Net};
use crate::worker::SimCore;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who {
    Client(usize),
    Core(usize),
}

pub struct World {
    /// The one DTLS certificate of the simulated process.
    pub cert: str0m::config::DtlsCert,
    pub start: Instant,
    pub now: Instant,
    pub net: Net,
    pub clients: Vec<Client>,
    pub cores: Vec<SimCore>,
    /// Per core: until when it reads nothing from its pipe inbox (a core that does not keep
    /// up: what other cores pipe to it waits in their queues, where their backlog counts it).
    pub pipe_stall: BTreeMap<usize, Instant>,
    routes: BTreeMap<SocketAddr, Who>,
    /// Datagrams to an address nobody has.
    pub unroutable: u64,
    pub steps: u64,
}

impl World {
    /// An empty world. Its clock starts at the wall clock's `Instant::now()`, read once only
    /// as an origin (str0m needs `Instant`s); nothing after reads the wall clock (the
    /// server's `Rtc`s are built at virtual time too, by `prepare_peer_at`).
    pub fn new(seed: u64) -> World {
        let start = Instant::now();
        let cert = str0m::crypto::from_feature_flags()
            .dtls_provider
            .generate_certificate()
            .expect("a DTLS certificate");
        World {
            cert,
            start,
            now: start,
            net: Net::new(seed),
            clients: Vec::new(),
            cores: Vec::new(),
            pipe_stall: BTreeMap::new(),
            routes: BTreeMap::new(),
            unroutable: 0,
            steps: 0,
        }
    }

    pub fn add_client(&mut self, c: Client) -> usize {
        let i = self.clients.len();
        self.routes.insert(c.addr, Who::Client(i));
        self.clients.push(c);
        i
    }

    pub fn add_core(&mut self, c: SimCore) -> usize {
        let i = self.cores.len();
        assert_eq!(c.index, i, "cores are added in index order");
        self.routes.insert(c.addr, Who::Core(i));
        self.cores.push(c);
        i
    }

    /// Routes `addr` to client `i` too (an ICE restart from a new address).
    pub fn route(&mut self, addr: SocketAddr, who: Who) {
        self.routes.insert(addr, who);
    }

    /// Sends what endpoints queued.
    pub fn flush(&mut self, out: &mut Out) {
        for (from, to, data) in out.drain(..) {
            self.net.send(self.now, from, to, data);
        }
    }

    fn pipe_stalled(&self, core: usize) -> bool {
        self.pipe_stall.get(&core).is_some_and(|t| self.now < *t)
    }

    fn next_event(&self) -> Option<Instant> {
        let clients = self.clients.iter().filter_map(Client::poll_timeout);
        let cores = self.cores.iter().filter_map(|c| c.poll_timeout());
        // A stall that ends lets the held pipe messages through.
        let stalls = self.pipe_stall.values().copied().filter(|t| *t > self.now);
        clients
            .chain(cores)
            .chain(stalls)
            .chain(self.net.next_arrival())
            .min()
    }

    /// Runs the next instant at which something happens, unless that is after `limit`
    /// (then the clock moves to `limit`). False when it stopped at `limit`.
    pub fn step(&mut self, limit: Instant) -> bool {
        let Some(t) = self.next_event().filter(|t| *t <= limit) else {
            self.now = self.now.max(limit);
            return false;
        };
        self.now = self.now.max(t);
        self.steps += 1;
        let now = self.now;
        let mut out = Out::new();
        // Datagrams due now; a core takes its batch in, then forwards it at once (as the
        // worker does with what one read of its socket brings).
        let mut read = vec![false; self.cores.len()];
        while let Some(d) = self.net.pop_due(now) {
            match self.routes.get(&d.to).copied() {
                Some(Who::Client(i)) => {
                    self.clients[i].handle_datagram(now, d.from, d.to, &d.data, &mut out)
                }
                Some(Who::Core(i)) => {
                    self.cores[i].handle_datagram(now, d.from, &d.data);
                    read[i] = true;
                }
                None => self.unroutable += 1,
            }
            self.flush(&mut out);
        }
        for (i, r) in read.into_iter().enumerate() {
            if r {
                self.cores[i].forward(now, &mut out);
                self.flush(&mut out);
            }
        }
        for i in 0..self.clients.len() {
            if self.clients[i].poll_timeout().is_some_and(|t| t <= now) {
                self.clients[i].handle_timeout(now, &mut out);
                self.flush(&mut out);
            }
        }
        for i in 0..self.cores.len() {
            if self.cores[i].poll_timeout().is_some_and(|t| t <= now) {
                self.cores[i].handle_timeout(now, &mut out);
                self.flush(&mut out);
            }
        }
        self.exchange();
        true
    }

    /// Carries pipe messages and commands between cores until none is left to carry (a
    /// stalled core's pipe messages stay in their sender's queue).
    pub fn exchange(&mut self) {
        let now = self.now;
        let mut out = Out::new();
        loop {
            let mut moved = false;
            for from in 0..self.cores.len() {
                let stalled: Vec<bool> = (0..self.cores.len())
                    .map(|i| self.pipe_stalled(i))
                    .collect();
                for (to, msg) in self.cores[from].take_pipes(|to| !stalled[to]) {
                    self.cores[to].handle_pipe(now, msg, &mut out);
                    moved = true;
                }
                for (to, cmd) in self.cores[from].take_commands() {
                    self.cores[to].handle_command(now, cmd, &mut out);
                    moved = true;
                }
                self.flush(&mut out);
            }
            if !moved {
                return;
            }
        }
    }

    /// Runs the world for `d` of virtual time.
    pub fn run_for(&mut self, d: Duration) {
        let limit = self.now + d;
        while self.step(limit) {}
    }

    /// Runs until `done` holds (checked after every step) or `d` has passed; whether it held.
    pub fn run_until(&mut self, d: Duration, mut done: impl FnMut(&World) -> bool) -> bool {
        let limit = self.now + d;
        loop {
            if done(self) {
                return true;
            }
            if !self.step(limit) {
                return done(self);
            }
        }
    }

    /// A hash of everything viewers received: per packet its client, arrival time, SSRC
    /// (numbered by first appearance), sequence number and timestamp (relative to the
    /// stream's first), marker and payload. str0m picks SSRCs, sequence starts and keys at
    /// random; everything else must follow from the seed.
    pub fn trace_hash(&self) -> u64 {
        let mut words = Vec::new();
        for (ci, c) in self.clients.iter().enumerate() {
            let mut first: BTreeMap<u32, (u64, u64, u32)> = BTreeMap::new();
            for p in c.rx() {
                let n = first.len() as u64;
                let (idx, seq0, ts0) = *first.entry(p.ssrc).or_insert((n, p.seq, p.ts));
                words.extend([
                    ci as u64,
                    (p.at - self.start).as_micros() as u64,
                    idx,
                    p.seq.wrapping_sub(seq0),
                    u64::from(p.ts.wrapping_sub(ts0)),
                    u64::from(p.marker),
                    p.payload_len as u64,
                    p.payload_hash,
                ]);
            }
        }
        mix(&words)
    }
}
