//! Rural links in user space: a UDP relay on loopback that loses, delays, reorders and
//! rate-limits datagrams, for kernels without netem.
//!
//! A [`LinkRelay`] listens on a client-facing socket. Every distinct client source address
//! gets its own upstream socket, connected to one fixed server address, so the server sees
//! one address per client and answers it; the relay maps the answers back. Each direction
//! runs through its own [`Link`], a deterministic model (seeded PRNG, caller-supplied time)
//! of loss, then a token-bucket rate cap with a bounded queue, then delay and jitter. One
//! relay models one physical link: all its clients share the two directions (give each
//! classroom its own relay for links of their own).
//!
//! The relay only ever sends to the configured server address (which must be on loopback)
//! and back to client addresses it has heard from; it serves at most [`MAX_CLIENTS`].

use std::cmp::Ordering as CmpOrdering;
use std::collections::{BinaryHeap, HashMap};
use std::io::{self, ErrorKind};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token, Waker};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Most clients one relay serves; datagrams from further source addresses are dropped.
pub const MAX_CLIENTS: usize = 64;
/// Queueing delay above which a rate-capped link drops new datagrams (drop-tail).
pub const MAX_BACKLOG: Duration = Duration::from_millis(200);
/// Bytes a datagram costs on the wire beyond its payload (IPv4 and UDP headers).
pub const WIRE_OVERHEAD_BYTES: usize = 28;
/// Smallest token-bucket depth, so a couple of full-size datagrams pass back to back.
const MIN_BURST_BYTES: f64 = 3000.0;
/// Token-bucket depth in time at the capped rate (when that is more than the minimum).
const BURST_TIME: Duration = Duration::from_millis(10);

/// What one direction of a link does to datagrams.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkProfile {
    /// Share of datagrams lost at random, 0..1.
    pub loss: f64,
    /// One-way delay added to every datagram that is not lost.
    pub delay: Duration,
    /// Each datagram's delay varies uniformly within `delay ± jitter` (never below zero), so
    /// datagrams closer together than the jitter may be reordered, as on real links.
    pub jitter: Duration,
    /// Capacity in bits per second (payload plus [`WIRE_OVERHEAD_BYTES`]); `None`: unlimited.
    pub rate_bps: Option<u64>,
    /// Seed of the PRNG behind loss and jitter: the same seed and traffic give the same fates.
    pub seed: u64,
}

impl Default for LinkProfile {
    /// A clean link: no loss, no delay, no cap.
    fn default() -> Self {
        LinkProfile {
            loss: 0.0,
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            rate_bps: None,
            seed: 0,
        }
    }
}

impl LinkProfile {
    /// A clean link (no loss, no delay, no cap).
    pub fn clean() -> Self {
        Self::default()
    }

    /// A link that loses `loss` (0..1) of datagrams at random, seeded with `seed`.
    pub fn lossy(loss: f64, seed: u64) -> Self {
        LinkProfile {
            loss,
            seed,
            ..Self::default()
        }
    }
}

/// What a [`Link`] did with an offered datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Queued; it comes out of [`Link::pop_due`] at this instant.
    Queued(Instant),
    /// Lost at random.
    Lost,
    /// Dropped because the rate-capped queue already held more than [`MAX_BACKLOG`].
    Overflow,
}

struct InFlight<T> {
    release: Instant,
    order: u64,
    item: T,
}

impl<T> PartialEq for InFlight<T> {
    fn eq(&self, other: &Self) -> bool {
        self.release == other.release && self.order == other.order
    }
}

impl<T> Eq for InFlight<T> {}

impl<T> PartialOrd for InFlight<T> {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}

impl<T> Ord for InFlight<T> {
    /// Reversed, so the std max-heap pops the earliest release first (ties: first offered).
    fn cmp(&self, other: &Self) -> CmpOrdering {
        (other.release, other.order).cmp(&(self.release, self.order))
    }
}

/// One direction of a link, on time the caller supplies (so it can be tested without
/// sleeping): [`offer`](Link::offer) datagrams as they arrive, take them out with
/// [`pop_due`](Link::pop_due) once their release time has come.
pub struct Link<T> {
    profile: LinkProfile,
    rng: StdRng,
    /// Token bucket as a time: the instant at which the bucket is full again.
    bucket_full_at: Option<Instant>,
    /// When the last accepted datagram left the rate-capped queue (the queue is FIFO).
    last_departure: Option<Instant>,
    in_flight: BinaryHeap<InFlight<T>>,
    offered: u64,
}

impl<T> Link<T> {
    /// A link behaving as `profile` says.
    pub fn new(profile: LinkProfile) -> Self {
        Link {
            rng: StdRng::seed_from_u64(profile.seed),
            profile,
            bucket_full_at: None,
            last_departure: None,
            in_flight: BinaryHeap::new(),
            offered: 0,
        }
    }

    /// The profile this link follows.
    pub fn profile(&self) -> &LinkProfile {
        &self.profile
    }

    /// Follows `profile` from now on (a link that collapses and recovers). Datagrams already
    /// queued keep their release times; the PRNG goes on (the new seed is ignored).
    pub fn set_profile(&mut self, profile: LinkProfile) {
        self.profile = profile;
    }

    /// Offers a datagram of `bytes` payload bytes arriving at `now`.
    pub fn offer(&mut self, now: Instant, bytes: usize, item: T) -> Fate {
        // Draw the same number of values for every datagram, so one datagram's fate does not
        // shift the random stream of the ones after it.
        let loss_draw: f64 = self.rng.random();
        let jitter_draw: f64 = self.rng.random_range(-1.0..=1.0);
        if loss_draw < self.profile.loss {
            return Fate::Lost;
        }
        let departure = match self.profile.rate_bps.filter(|&r| r > 0) {
            None => now,
            Some(rate) => {
                let rate = rate as f64;
                let size = ((bytes + WIRE_OVERHEAD_BYTES) * 8) as f64;
                let burst = (rate * BURST_TIME.as_secs_f64()).max(MIN_BURST_BYTES * 8.0);
                // Tokens at time t are `burst - rate * (full_at - t)`; the datagram can leave
                // once they cover its size, and no earlier than the one before it (FIFO).
                let ahead = self
                    .bucket_full_at
                    .map_or(0.0, |f| f.saturating_duration_since(now).as_secs_f64());
                let wait = (ahead - (burst - size) / rate).max(0.0);
                let mut departure = now + Duration::from_secs_f64(wait);
                if let Some(last) = self.last_departure {
                    departure = departure.max(last);
                }
                if departure.saturating_duration_since(now) > MAX_BACKLOG {
                    return Fate::Overflow;
                }
                let full_at = self.bucket_full_at.map_or(departure, |f| f.max(departure));
                self.bucket_full_at = Some(full_at + Duration::from_secs_f64(size / rate));
                self.last_departure = Some(departure);
                departure
            }
        };
        let delay =
            self.profile.delay.as_secs_f64() + self.profile.jitter.as_secs_f64() * jitter_draw;
        let release = departure + Duration::from_secs_f64(delay.max(0.0));
        self.offered += 1;
        self.in_flight.push(InFlight {
            release,
            order: self.offered,
            item,
        });
        Fate::Queued(release)
    }

    /// When the next queued datagram is due, if any is queued.
    pub fn next_release(&self) -> Option<Instant> {
        self.in_flight.peek().map(|f| f.release)
    }

    /// The next datagram due at `now` (earliest release first), if any.
    pub fn pop_due(&mut self, now: Instant) -> Option<T> {
        if self.next_release()? <= now {
            self.in_flight.pop().map(|f| f.item)
        } else {
            None
        }
    }

    /// Datagrams queued.
    pub fn len(&self) -> usize {
        self.in_flight.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.in_flight.is_empty()
    }
}

/// Counters of one direction of a [`LinkRelay`].
#[derive(Debug, Default)]
pub struct DirectionCounters {
    /// Datagrams delivered.
    pub forwarded: AtomicU64,
    /// Payload bytes delivered.
    pub forwarded_bytes: AtomicU64,
    /// Datagrams lost at random.
    pub lost: AtomicU64,
    /// Datagrams dropped at the tail of a full queue (or refused by the socket, or from a
    /// client beyond [`MAX_CLIENTS`]).
    pub overflowed: AtomicU64,
}

impl DirectionCounters {
    /// Datagrams delivered.
    pub fn forwarded(&self) -> u64 {
        self.forwarded.load(Ordering::Relaxed)
    }

    /// Datagrams dropped for any reason.
    pub fn dropped(&self) -> u64 {
        self.lost.load(Ordering::Relaxed) + self.overflowed.load(Ordering::Relaxed)
    }

    fn count(&self, fate: Fate) {
        match fate {
            Fate::Queued(_) => {}
            Fate::Lost => {
                self.lost.fetch_add(1, Ordering::Relaxed);
            }
            Fate::Overflow => {
                self.overflowed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn delivered(&self, bytes: usize) {
        self.forwarded.fetch_add(1, Ordering::Relaxed);
        self.forwarded_bytes
            .fetch_add(bytes as u64, Ordering::Relaxed);
    }
}

#[derive(Debug, Default)]
struct Shared {
    up: DirectionCounters,
    down: DirectionCounters,
    clients: AtomicUsize,
    stop: AtomicBool,
    /// Profiles (up, down) the relay thread switches to at its next wake-up.
    switch_to: std::sync::Mutex<Option<(LinkProfile, LinkProfile)>>,
}

const FRONT: Token = Token(0);
const WAKER: Token = Token(1);
const FIRST_CLIENT: usize = 2;

/// A UDP relay on 127.0.0.1 emulating one link between its clients and a server. Stops when
/// dropped.
pub struct LinkRelay {
    addr: SocketAddr,
    server: SocketAddr,
    shared: Arc<Shared>,
    waker: Arc<Waker>,
    join: Option<std::thread::JoinHandle<()>>,
}

impl LinkRelay {
    /// Starts a relay towards `server` (a loopback address): `up` shapes client→server
    /// datagrams, `down` server→client ones.
    pub fn start(server: SocketAddr, up: LinkProfile, down: LinkProfile) -> io::Result<Self> {
        Self::start_on(
            "127.0.0.1:0".parse().expect("loopback address"),
            server,
            up,
            down,
        )
    }

    /// [`LinkRelay::start`] with the client-facing socket bound to `front` (a loopback
    /// address): a server told to announce that address in its ICE candidates (another
    /// loopback IP, the same port) has every client reach it through the relay, a browser
    /// included, with no SDP to rewrite.
    pub fn start_on(
        front: SocketAddr,
        server: SocketAddr,
        up: LinkProfile,
        down: LinkProfile,
    ) -> io::Result<Self> {
        if !server.ip().is_loopback() || !front.ip().is_loopback() {
            return Err(io::Error::new(
                ErrorKind::InvalidInput,
                format!("the relay only forwards on loopback, not to {server}"),
            ));
        }
        check_loss(&up)?;
        check_loss(&down)?;
        let mut front = UdpSocket::bind(front)?;
        let addr = front.local_addr()?;
        let poll = Poll::new()?;
        poll.registry()
            .register(&mut front, FRONT, Interest::READABLE)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let shared = Arc::new(Shared::default());
        let state = RelayThread {
            poll,
            front,
            server,
            clients: Vec::new(),
            by_addr: HashMap::new(),
            up: Link::new(up),
            down: Link::new(down),
            shared: shared.clone(),
        };
        let join = std::thread::Builder::new()
            .name("link-relay".into())
            .spawn(move || state.run())?;
        Ok(LinkRelay {
            addr,
            server,
            shared,
            waker,
            join: Some(join),
        })
    }

    /// The client-facing address: point clients here instead of at the server.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The server address the relay forwards to.
    pub fn server(&self) -> SocketAddr {
        self.server
    }

    /// Client→server counters.
    pub fn up(&self) -> &DirectionCounters {
        &self.shared.up
    }

    /// Server→client counters.
    pub fn down(&self) -> &DirectionCounters {
        &self.shared.down
    }

    /// Distinct client addresses seen.
    pub fn clients(&self) -> usize {
        self.shared.clients.load(Ordering::Relaxed)
    }

    /// Changes both directions' profiles while clients are connected (the link drops to a
    /// lower rate and recovers); datagrams already queued keep their release times.
    pub fn set_profiles(&self, up: LinkProfile, down: LinkProfile) -> io::Result<()> {
        check_loss(&up)?;
        check_loss(&down)?;
        *self
            .shared
            .switch_to
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some((up, down));
        self.waker.wake()
    }
}

fn check_loss(p: &LinkProfile) -> io::Result<()> {
    if (0.0..=1.0).contains(&p.loss) {
        Ok(())
    } else {
        Err(io::Error::new(
            ErrorKind::InvalidInput,
            format!("loss {} is not within 0..1", p.loss),
        ))
    }
}

impl Drop for LinkRelay {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        let _ = self.waker.wake();
        if let Some(j) = self.join.take() {
            let _ = j.join();
        }
    }
}

struct Client {
    addr: SocketAddr,
    upstream: UdpSocket,
}

struct RelayThread {
    poll: Poll,
    front: UdpSocket,
    server: SocketAddr,
    clients: Vec<Client>,
    by_addr: HashMap<SocketAddr, usize>,
    /// Client→server datagrams: (client index, payload).
    up: Link<(usize, Vec<u8>)>,
    /// Server→client datagrams: (client index, payload).
    down: Link<(usize, Vec<u8>)>,
    shared: Arc<Shared>,
}

impl RelayThread {
    fn run(mut self) {
        let mut events = Events::with_capacity(64);
        let mut buf = vec![0u8; 65_536];
        loop {
            let now = Instant::now();
            self.release(now);
            // Sleep until the next release, or (nothing queued) until a datagram or Drop.
            let timeout = [self.up.next_release(), self.down.next_release()]
                .into_iter()
                .flatten()
                .min()
                .map(|t| t.saturating_duration_since(now));
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() != ErrorKind::Interrupted {
                    tracing::warn!("link relay stopped: {e}");
                    return;
                }
            }
            if self.shared.stop.load(Ordering::Relaxed) {
                return;
            }
            let switch = self
                .shared
                .switch_to
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take();
            if let Some((up, down)) = switch {
                self.up.set_profile(up);
                self.down.set_profile(down);
            }
            for ev in events.iter() {
                match ev.token() {
                    FRONT => self.read_front(&mut buf),
                    WAKER => {}
                    Token(t) => self.read_upstream(t - FIRST_CLIENT, &mut buf),
                }
            }
        }
    }

    fn release(&mut self, now: Instant) {
        while let Some((idx, data)) = self.up.pop_due(now) {
            match self.clients[idx].upstream.send(&data) {
                Ok(_) => self.shared.up.delivered(data.len()),
                Err(_) => self.shared.up.count(Fate::Overflow),
            }
        }
        while let Some((idx, data)) = self.down.pop_due(now) {
            match self.front.send_to(&data, self.clients[idx].addr) {
                Ok(_) => self.shared.down.delivered(data.len()),
                Err(_) => self.shared.down.count(Fate::Overflow),
            }
        }
    }

    /// Index of the client at `from`, opening its upstream socket on first contact.
    fn client(&mut self, from: SocketAddr) -> Option<usize> {
        if let Some(&i) = self.by_addr.get(&from) {
            return Some(i);
        }
        if self.clients.len() >= MAX_CLIENTS {
            return None;
        }
        let idx = self.clients.len();
        let open = || -> io::Result<UdpSocket> {
            let mut s = UdpSocket::bind("127.0.0.1:0".parse().expect("loopback address"))?;
            // Connected: the kernel sends only to the server and delivers only its datagrams.
            s.connect(self.server)?;
            self.poll
                .registry()
                .register(&mut s, Token(FIRST_CLIENT + idx), Interest::READABLE)?;
            Ok(s)
        };
        match open() {
            Ok(upstream) => {
                self.clients.push(Client {
                    addr: from,
                    upstream,
                });
                self.by_addr.insert(from, idx);
                self.shared.clients.store(idx + 1, Ordering::Relaxed);
                Some(idx)
            }
            Err(e) => {
                tracing::warn!("link relay: no upstream socket for {from}: {e}");
                None
            }
        }
    }

    fn read_front(&mut self, buf: &mut [u8]) {
        loop {
            match self.front.recv_from(buf) {
                Ok((n, from)) => {
                    let now = Instant::now();
                    let fate = match self.client(from) {
                        Some(idx) => self.up.offer(now, n, (idx, buf[..n].to_vec())),
                        None => Fate::Overflow,
                    };
                    self.shared.up.count(fate);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                // E.g. ECONNREFUSED reported for an earlier send: keep reading.
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
    }

    fn read_upstream(&mut self, idx: usize, buf: &mut [u8]) {
        let Some(client) = self.clients.get(idx) else {
            return;
        };
        loop {
            match client.upstream.recv(buf) {
                Ok(n) => {
                    let fate = self.down.offer(Instant::now(), n, (idx, buf[..n].to_vec()));
                    self.shared.down.count(fate);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                // A connected UDP socket reports an ICMP "port unreachable" from an earlier
                // send as ECONNREFUSED on the next call; the datagrams behind it still wait.
                Err(e) if e.kind() == ErrorKind::ConnectionRefused => {}
                Err(_) => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn loss_rate_matches_the_profile_and_the_seed_fixes_the_fates() {
        let t0 = Instant::now();
        let fates = |seed: u64| -> Vec<bool> {
            let mut link = Link::new(LinkProfile::lossy(0.05, seed));
            (0..20_000u32)
                .map(|i| {
                    let fate = link.offer(t0 + ms(u64::from(i)), 1200, i);
                    fate == Fate::Lost
                })
                .collect()
        };
        let a = fates(7);
        let lost = a.iter().filter(|&&l| l).count();
        let share = lost as f64 / a.len() as f64;
        assert!((0.045..=0.055).contains(&share), "lost share {share}");
        assert_eq!(a, fates(7), "same seed, same fates");
        assert_ne!(a, fates(8), "another seed, other fates");

        let mut clean = Link::new(LinkProfile::clean());
        assert!((0..1000).all(|i| clean.offer(t0, 100, i) == Fate::Queued(t0)));
        let mut dead = Link::new(LinkProfile::lossy(1.0, 1));
        assert!((0..1000).all(|i| dead.offer(t0, 100, i) == Fate::Lost));
    }

    #[test]
    fn delay_holds_datagrams_until_due_in_order() {
        let t0 = Instant::now();
        let mut link = Link::new(LinkProfile {
            delay: ms(50),
            ..LinkProfile::default()
        });
        for i in 0..10u64 {
            assert_eq!(
                link.offer(t0 + ms(i), 100, i),
                Fate::Queued(t0 + ms(50 + i))
            );
        }
        assert_eq!(link.next_release(), Some(t0 + ms(50)));
        assert_eq!(link.pop_due(t0 + ms(49)), None, "nothing before the delay");
        let mut out = Vec::new();
        while let Some(i) = link.pop_due(t0 + ms(54)) {
            out.push(i);
        }
        assert_eq!(out, vec![0, 1, 2, 3, 4]);
        while let Some(i) = link.pop_due(t0 + ms(100)) {
            out.push(i);
        }
        assert_eq!(out, (0..10).collect::<Vec<_>>());
        assert!(link.is_empty());
    }

    #[test]
    fn jitter_spreads_delay_and_may_reorder() {
        let t0 = Instant::now();
        let mut link = Link::new(LinkProfile {
            delay: ms(40),
            jitter: ms(10),
            seed: 3,
            ..LinkProfile::default()
        });
        // One datagram per millisecond, jitter ±10 ms: neighbours swap places.
        let mut releases = Vec::new();
        for i in 0..1000u64 {
            let at = t0 + ms(i);
            let Fate::Queued(r) = link.offer(at, 100, i) else {
                panic!("no loss configured");
            };
            let d = r - at;
            assert!(d >= ms(30) && d <= ms(50), "delay {d:?} outside 40±10 ms");
            releases.push(r);
        }
        let mut out = Vec::new();
        let mut last = t0;
        while let Some(next) = link.next_release() {
            assert!(next >= last, "released in time order");
            last = next;
            out.push(link.pop_due(next).unwrap());
        }
        assert_eq!(out.len(), 1000);
        let reordered = out.windows(2).filter(|w| w[1] < w[0]).count();
        assert!(reordered > 100, "only {reordered} inversions");
        // Each came out at its own release time.
        let mut sorted = releases.clone();
        sorted.sort();
        assert_eq!(
            out.iter()
                .map(|&i| releases[i as usize])
                .collect::<Vec<_>>(),
            sorted
        );
        // Without jitter, never.
        let mut steady = Link::new(LinkProfile {
            delay: ms(40),
            ..LinkProfile::default()
        });
        for i in 0..100u64 {
            steady.offer(t0 + Duration::from_micros(i * 10), 100, i);
        }
        let mut out = Vec::new();
        while let Some(i) = steady.pop_due(t0 + ms(100)) {
            out.push(i);
        }
        assert_eq!(out, (0..100).collect::<Vec<_>>());
    }

    #[test]
    fn rate_cap_shapes_to_the_rate_and_drops_the_tail_past_the_backlog() {
        let t0 = Instant::now();
        let rate = 1_000_000u64;
        let mut link = Link::new(LinkProfile {
            rate_bps: Some(rate),
            ..LinkProfile::default()
        });
        // 1000-byte payloads (8224 bits on the wire) every 4 ms: about 2 Mbit/s offered for
        // 2 s into a 1 Mbit/s link.
        let mut delivered = Vec::new();
        let (mut overflow, mut max_wait) = (0, Duration::ZERO);
        for i in 0..500u64 {
            let at = t0 + ms(4 * i);
            match link.offer(at, 1000, i) {
                Fate::Queued(r) => {
                    max_wait = max_wait.max(r - at);
                    delivered.push((r, i));
                }
                Fate::Overflow => overflow += 1,
                Fate::Lost => panic!("no loss configured"),
            }
        }
        assert!(max_wait <= MAX_BACKLOG, "waited {max_wait:?}");
        assert!(max_wait > ms(150), "the queue filled up ({max_wait:?})");
        assert!(
            (200..=280).contains(&overflow),
            "about half dropped: {overflow}"
        );
        // FIFO, and the delivered bits stay within rate × time + one bucket.
        assert!(delivered.windows(2).all(|w| w[0] <= w[1]));
        let bits = |n: usize| (n * (1000 + WIRE_OVERHEAD_BYTES) * 8) as f64;
        let span = (delivered.last().unwrap().0 - t0).as_secs_f64();
        let burst = MIN_BURST_BYTES * 8.0;
        assert!(bits(delivered.len()) <= rate as f64 * span + burst + bits(1));
        assert!(bits(delivered.len()) >= rate as f64 * span * 0.95);
        for w in delivered.windows(60) {
            let dt = (w[59].0 - w[0].0).as_secs_f64();
            assert!(bits(59) <= rate as f64 * dt + burst, "burst above the cap");
        }

        // Below the rate nothing waits beyond the bucket, nothing is dropped.
        let mut link = Link::new(LinkProfile {
            rate_bps: Some(rate),
            ..LinkProfile::default()
        });
        for i in 0..500u64 {
            let at = t0 + ms(20 * i);
            assert_eq!(link.offer(at, 1000, i), Fate::Queued(at));
        }
    }

    #[test]
    fn profile_stages_compose() {
        let t0 = Instant::now();
        let mut link = Link::new(LinkProfile {
            loss: 0.1,
            delay: ms(30),
            jitter: ms(5),
            rate_bps: Some(500_000),
            seed: 11,
        });
        let (mut queued, mut lost, mut overflow) = (0, 0, 0);
        for i in 0..2000u64 {
            match link.offer(t0 + ms(i), 200, i) {
                Fate::Queued(r) => {
                    queued += 1;
                    assert!(r >= t0 + ms(i) + ms(25));
                }
                Fate::Lost => lost += 1,
                Fate::Overflow => overflow += 1,
            }
        }
        // 1000 datagrams/s of 228 bytes is 1.8 Mbit/s into 0.5 Mbit/s.
        assert!(overflow > 1000, "{overflow}");
        assert!(lost > 150 && lost < 250, "{lost}");
        assert_eq!(queued + lost + overflow, 2000);
        assert_eq!(link.len(), queued);
    }

    fn recv(s: &std::net::UdpSocket) -> (Vec<u8>, SocketAddr) {
        let mut buf = [0u8; 2048];
        let (n, from) = s.recv_from(&mut buf).unwrap();
        (buf[..n].to_vec(), from)
    }

    #[test]
    fn relay_gives_each_client_its_own_upstream_address() {
        let server = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        server.set_read_timeout(Some(ms(2000))).unwrap();
        let relay = LinkRelay::start(
            server.local_addr().unwrap(),
            LinkProfile {
                delay: ms(20),
                ..LinkProfile::default()
            },
            LinkProfile::clean(),
        )
        .unwrap();
        let clients: Vec<_> = (0..2)
            .map(|_| {
                let c = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
                c.set_read_timeout(Some(ms(2000))).unwrap();
                c
            })
            .collect();
        let mut seen = Vec::new();
        for (i, c) in clients.iter().enumerate() {
            let sent = Instant::now();
            c.send_to(format!("hello {i}").as_bytes(), relay.addr())
                .unwrap();
            let (data, from) = recv(&server);
            assert!(sent.elapsed() >= ms(20), "the up link delays");
            assert_eq!(data, format!("hello {i}").as_bytes());
            assert_ne!(from, c.local_addr().unwrap());
            seen.push(from);
            server.send_to(b"answer", from).unwrap();
            let (data, from) = recv(c);
            assert_eq!(data, b"answer");
            assert_eq!(from, relay.addr(), "answers come from the relay");
        }
        assert_ne!(seen[0], seen[1], "one upstream address per client");
        assert_eq!(relay.clients(), 2);
        // The relay counts a datagram after its send returns, which may be after the
        // receiver has it: wait for the counters rather than read them at once.
        let deadline = Instant::now() + ms(2000);
        while (relay.up().forwarded(), relay.down().forwarded()) != (2, 2)
            && Instant::now() < deadline
        {
            std::thread::sleep(ms(1));
        }
        assert_eq!(relay.up().forwarded(), 2);
        assert_eq!(relay.down().forwarded(), 2);
        assert_eq!(relay.up().dropped() + relay.down().dropped(), 0);

        // A stranger writing to an upstream socket gets nowhere (it is connected).
        let stranger = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        stranger.send_to(b"spoof", seen[0]).unwrap();
        server.send_to(b"real", seen[0]).unwrap();
        assert_eq!(recv(&clients[0]).0, b"real");
        drop(relay);
    }

    #[test]
    fn set_profiles_changes_a_running_relay() {
        let server = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        server.set_read_timeout(Some(ms(2000))).unwrap();
        let relay = LinkRelay::start(
            server.local_addr().unwrap(),
            LinkProfile::clean(),
            LinkProfile::clean(),
        )
        .unwrap();
        let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        client.send_to(b"clean", relay.addr()).unwrap();
        assert_eq!(recv(&server).0, b"clean");
        // The link collapses: everything up is lost; then it recovers with a delay.
        relay
            .set_profiles(LinkProfile::lossy(1.0, 1), LinkProfile::clean())
            .unwrap();
        let deadline = Instant::now() + ms(2000);
        while relay.up().lost.load(Ordering::Relaxed) == 0 && Instant::now() < deadline {
            client.send_to(b"lost", relay.addr()).unwrap();
            std::thread::sleep(ms(5));
        }
        assert!(
            relay.up().lost.load(Ordering::Relaxed) > 0,
            "the new profile loses"
        );
        let delayed = LinkProfile {
            delay: ms(30),
            ..LinkProfile::default()
        };
        relay.set_profiles(delayed, LinkProfile::clean()).unwrap();
        // Datagrams sent before the switch took effect may still be lost: send until one
        // arrives, which must have been delayed.
        server.set_read_timeout(Some(ms(100))).unwrap();
        let mut buf = [0u8; 64];
        let arrived = (0..40).any(|_| {
            let sent = Instant::now();
            client.send_to(b"back", relay.addr()).unwrap();
            matches!(server.recv_from(&mut buf), Ok((4, _))) && sent.elapsed() >= ms(30)
        });
        assert!(arrived, "the recovered link delivers, 30 ms late");
        assert!(relay
            .set_profiles(LinkProfile::lossy(2.0, 0), LinkProfile::clean())
            .is_err());
    }

    #[test]
    fn relay_refuses_servers_off_loopback() {
        let far: SocketAddr = "192.0.2.1:9".parse().unwrap();
        assert!(LinkRelay::start(far, LinkProfile::clean(), LinkProfile::clean()).is_err());
        let local: SocketAddr = "127.0.0.1:9".parse().unwrap();
        assert!(LinkRelay::start(local, LinkProfile::lossy(1.5, 0), LinkProfile::clean()).is_err());
    }
}
