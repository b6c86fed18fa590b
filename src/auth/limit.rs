//! Login abuse limits: the password-hash pool and the login rate limits.
//!
//! - **The hash pool.** argon2id takes 19 MiB and tens of milliseconds of CPU per password.
//!   Every hash and verification of the process runs on a few dedicated threads (one per
//!   core), never on the async runtime and never on tokio's blocking pool (up to 512 threads,
//!   also where WHIP/WHEP offers are prepared). A few jobs per thread may wait; a login that
//!   finds the queue full is shed (`503`) instead of queueing without bound. Memory stays at
//!   about threads × 19 MiB, since each thread reuses its own allocator arena.
//! - **The rate limits**, checked before any hash is spent: per client address (a keyed GCRA
//!   limiter from `governor`) and per username (failures back off, doubling; a success
//!   forgives them). A refused login gets `429` and how long to wait.
//!
//! This module never touches the database or the HTTP types.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};

use crate::config::{parse_duration, AuthConfig};
use crate::metrics::{LoginLimit, LoginLimitLabels, Metrics};

/// Jobs that may wait for a hashing thread, per thread, before logins are shed.
pub const QUEUE_PER_THREAD: usize = 4;

/// Why a job did not run in the hash pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    /// Every thread is busy and the queue is full.
    #[error("every password-hashing thread is busy and the queue is full")]
    Full,
    /// The job panicked (a bug; logged), or the pool has no thread.
    #[error("the password-hashing job failed")]
    Failed,
}

type Job = Box<dyn FnOnce() + Send>;

/// A small pool of threads for password hashing (argon2id). See the module documentation.
pub struct HashPool {
    jobs: crossbeam_channel::Sender<Job>,
    /// One permit per job running or waiting: `threads + queue` in all.
    slots: Arc<Semaphore>,
    threads: usize,
}

impl std::fmt::Debug for HashPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HashPool")
            .field("threads", &self.threads)
            .field("free_slots", &self.slots.available_permits())
            .finish()
    }
}

impl HashPool {
    /// Starts `threads` hashing threads with room for `queue` waiting jobs.
    pub fn new(threads: usize, queue: usize) -> HashPool {
        let threads = threads.max(1);
        let (tx, rx) = crossbeam_channel::unbounded::<Job>();
        for i in 0..threads {
            let rx = rx.clone();
            // Spawning fails only when the process is out of threads or memory, when nothing
            // else would work either.
            std::thread::Builder::new()
                .name(format!("password-hash-{i}"))
                .spawn(move || {
                    for job in rx {
                        // A panic is a bug in the job; it must not shrink the pool.
                        if std::panic::catch_unwind(AssertUnwindSafe(job)).is_err() {
                            tracing::error!("a password-hashing job panicked");
                        }
                    }
                })
                .expect("spawning the password-hashing threads");
        }
        HashPool {
            jobs: tx,
            slots: Arc::new(Semaphore::new(threads + queue)),
            threads,
        }
    }

    /// The process's pool: one thread per core, [`QUEUE_PER_THREAD`] waiting jobs per thread.
    /// Started on first use.
    pub fn global() -> &'static HashPool {
        static POOL: OnceLock<HashPool> = OnceLock::new();
        POOL.get_or_init(|| {
            let cores = std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1);
            HashPool::new(cores, cores * QUEUE_PER_THREAD)
        })
    }

    /// Number of hashing threads.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Runs `f` on a hashing thread, or answers [`PoolError::Full`] at once when every
    /// thread is busy and the queue is full (for unauthenticated callers: logins).
    pub async fn try_run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, PoolError> {
        let slot = self
            .slots
            .clone()
            .try_acquire_owned()
            .map_err(|_| PoolError::Full)?;
        self.submit(slot, f).await
    }

    /// Runs `f` on a hashing thread, waiting for room in the queue (for authenticated
    /// callers: an administrator setting a password).
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, PoolError> {
        // The semaphore is never closed.
        let slot = self
            .slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| PoolError::Failed)?;
        self.submit(slot, f).await
    }

    async fn submit<T: Send + 'static>(
        &self,
        slot: OwnedSemaphorePermit,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, PoolError> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move || {
            // The slot is held until the hash is done, even if the caller has gone away:
            // the memory is in use until then.
            let _slot = slot;
            let result = {
                let _running = InFlight::enter();
                f()
            };
            // Sent after the gauge is down again, so a caller never sees its own hash in it.
            let _ = tx.send(result);
        });
        self.jobs.send(job).map_err(|_| PoolError::Failed)?;
        rx.await.map_err(|_| PoolError::Failed)
    }
}

/// Counts a job in the in-flight gauge until dropped (also when the job panics).
struct InFlight;

impl InFlight {
    fn enter() -> InFlight {
        crate::metrics::hashes_in_flight().inc();
        InFlight
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        crate::metrics::hashes_in_flight().dec();
    }
}

/// A login refused by a rate limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    /// Which limit.
    pub by: LoginLimit,
    /// How long until the next attempt is allowed.
    pub wait: Duration,
}

impl Refused {
    /// `wait` in whole seconds for `Retry-After`, rounded up, at least 1.
    pub fn retry_after_secs(&self) -> u64 {
        let s = self.wait.as_secs() + u64::from(self.wait.subsec_nanos() > 0);
        s.max(1)
    }
}

type AddressLimiter = RateLimiter<IpAddr, DefaultKeyedStateStore<IpAddr>, DefaultClock>;

/// How often the per-address limiter forgets addresses whose allowance is full again.
const PRUNE_EVERY: Duration = Duration::from_secs(10);

/// The login rate limits of one server, checked before a password is hashed.
///
/// **Per client address** (`auth.login_address_burst`, default 30, then one more every
/// `auth.login_address_interval`, default 1 s), counting every attempt, failed or not, since
/// each costs a hash. Looser than the per-username limit because a school's whole staff may
/// sit behind one NAT address and log in at the first bell: 30 at once covers a large
/// school's teachers, and one a second (3600 an hour) lets the rest in within a minute while
/// holding a single attacker to a trickle. IPv6 clients are keyed by their /64, which one
/// host usually has whole.
///
/// **Per username** ([`Backoffs`]): `auth.login_username_burst` (default 5) failures in a
/// row are free, then each further attempt must wait `auth.login_username_backoff` (default
/// 2 s), doubling with every failure up to `auth.login_username_backoff_max` (default 10
/// min); a successful login forgives them. This follows the username across addresses, so
/// a botnet guessing one account gets the same few guesses an hour as a single host.
#[derive(Debug)]
pub struct LoginLimits {
    addresses: AddressLimiter,
    usernames: Mutex<Backoffs>,
    last_prune: Mutex<Instant>,
    max_tracked: usize,
    refused: Family<LoginLimitLabels, Counter>,
    shed: Counter,
}

impl LoginLimits {
    /// The limits configured in `auth` (validated by `Config::validate`), counting into
    /// `metrics`.
    pub fn new(auth: &AuthConfig, metrics: &Metrics) -> LoginLimits {
        // Config::validate checks these; the fallbacks are the defaults.
        let interval = parse_duration(&auth.login_address_interval)
            .ok()
            .filter(|d| !d.is_zero())
            .unwrap_or(Duration::from_secs(1));
        let burst = NonZeroU32::new(auth.login_address_burst).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::with_period(interval)
            .expect("the interval is not zero (filtered above)")
            .allow_burst(burst);
        let backoff =
            parse_duration(&auth.login_username_backoff).unwrap_or(Duration::from_secs(2));
        let backoff_max = parse_duration(&auth.login_username_backoff_max)
            .unwrap_or(Duration::from_secs(600))
            .max(backoff);
        LoginLimits {
            addresses: RateLimiter::keyed(quota),
            usernames: Mutex::new(Backoffs::new(
                auth.login_username_burst,
                backoff,
                backoff_max,
                auth.login_tracked_max,
            )),
            last_prune: Mutex::new(Instant::now()),
            max_tracked: auth.login_tracked_max,
            refused: metrics.logins_refused.clone(),
            shed: metrics.logins_shed.clone(),
        }
    }

    /// Called before a login's password is checked: refuses it, or counts it against the
    /// username (pessimistically as a failure, so parallel attempts cannot slip through
    /// together; [`LoginLimits::succeeded`] forgives it) and the client's address.
    pub fn admit(&self, client: Option<IpAddr>, username: &str) -> Result<(), Refused> {
        let now = Instant::now();
        // Held across the address check so that a refusal by the address limit does not
        // count against the username.
        let mut users = self.usernames.lock().expect("login limits lock");
        if let Some(wait) = users.wait(username, now) {
            return Err(self.refuse(LoginLimit::Username, wait));
        }
        if let Some(ip) = client {
            self.prune(now);
            if let Err(not_until) = self.addresses.check_key(&address_key(ip)) {
                let wait = not_until.wait_time_from(self.addresses.clock().now());
                return Err(self.refuse(LoginLimit::Address, wait));
            }
        }
        users.strike(username, now);
        Ok(())
    }

    /// The password was right: forgive the username's failures.
    pub fn succeeded(&self, username: &str) {
        self.usernames
            .lock()
            .expect("login limits lock")
            .forget(username);
    }

    /// A login was shed because the hash pool was full.
    pub fn shed(&self) {
        self.shed.inc();
    }

    fn refuse(&self, by: LoginLimit, wait: Duration) -> Refused {
        self.refused.get_or_create(&LoginLimitLabels { by }).inc();
        Refused { by, wait }
    }

    /// Forgets addresses whose allowance is full again, every [`PRUNE_EVERY`] or when more
    /// than `max_tracked` are held: the limiter's memory is bounded by the addresses seen
    /// within one burst's refill time.
    fn prune(&self, now: Instant) {
        let Ok(mut last) = self.last_prune.try_lock() else {
            return;
        };
        if now.duration_since(*last) >= PRUNE_EVERY || self.addresses.len() > self.max_tracked {
            self.addresses.retain_recent();
            self.addresses.shrink_to_fit();
            *last = now;
        }
    }

    /// Addresses and usernames currently tracked (for tests).
    pub fn tracked(&self) -> (usize, usize) {
        (
            self.addresses.len(),
            self.usernames.lock().expect("login limits lock").len(),
        )
    }
}

/// The key an address is limited under: IPv4 as is (also when mapped into IPv6), IPv6 by
/// its /64 prefix.
pub fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(prefix.into())
            }
        },
    }
}

/// Per-username failure backoff, driven by the caller's clock (sans-IO; unit-tested on
/// simulated time).
///
/// Each admitted attempt is a strike until a success forgives it. The first `burst - 1`
/// strikes are free; strike number `burst + k` makes the next attempt wait
/// `base × 2^k`, at most `max`. A username idle for `max` after its wait ended (or after its
/// last free strike) starts afresh. At most
/// `max_tracked` usernames are kept: past that the idle ones are dropped, then the one
/// tried longest ago.
#[derive(Debug)]
pub struct Backoffs {
    map: HashMap<String, Strikes>,
    burst: u32,
    base: Duration,
    max: Duration,
    max_tracked: usize,
}

#[derive(Debug, Clone, Copy)]
struct Strikes {
    count: u32,
    last: Instant,
    next: Instant,
}

impl Backoffs {
    /// Backoff after `burst` strikes, from `base` doubling up to `max`, for at most
    /// `max_tracked` usernames.
    pub fn new(burst: u32, base: Duration, max: Duration, max_tracked: usize) -> Backoffs {
        Backoffs {
            map: HashMap::new(),
            burst: burst.max(1),
            base,
            max,
            max_tracked: max_tracked.max(1),
        }
    }

    /// How long `user` must still wait at `now`, if at all.
    pub fn wait(&self, user: &str, now: Instant) -> Option<Duration> {
        let s = self.map.get(user)?;
        if self.idle(s, now) || now >= s.next {
            return None;
        }
        Some(s.next - now)
    }

    /// Counts an attempt for `user` at `now`.
    pub fn strike(&mut self, user: &str, now: Instant) {
        if !self.map.contains_key(user) && self.map.len() >= self.max_tracked {
            self.evict(now);
        }
        let fresh = Strikes {
            count: 0,
            last: now,
            next: now,
        };
        let idle = self.map.get(user).is_some_and(|s| self.idle(s, now));
        let s = self.map.entry(user.to_string()).or_insert(fresh);
        if idle {
            *s = fresh;
        }
        s.count = s.count.saturating_add(1);
        s.last = now;
        s.next = now;
        if s.count >= self.burst {
            let doublings = s.count - self.burst;
            let factor = 1u32.checked_shl(doublings).unwrap_or(u32::MAX);
            s.next = now + self.base.saturating_mul(factor).min(self.max);
        }
    }

    /// Forgives `user`'s strikes.
    pub fn forget(&mut self, user: &str) {
        self.map.remove(user);
    }

    /// Usernames tracked.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether none is tracked.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Idle: no wait left and none for `max` since it ended (or since the last free strike).
    fn idle(&self, s: &Strikes, now: Instant) -> bool {
        now.saturating_duration_since(s.next) >= self.max
    }

    fn evict(&mut self, now: Instant) {
        let (max, before) = (self.max, self.map.len());
        self.map
            .retain(|_, s| now.saturating_duration_since(s.next) < max);
        if self.map.len() < before {
            return;
        }
        let oldest = self
            .map
            .iter()
            .min_by_key(|(_, s)| s.last)
            .map(|(k, _)| k.clone());
        if let Some(k) = oldest {
            self.map.remove(&k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn failures_back_off_doubling_up_to_the_cap() {
        let t0 = Instant::now();
        let mut b = Backoffs::new(5, 2 * S, 10 * S, 100);
        for _ in 0..4 {
            assert_eq!(b.wait("admin", t0), None);
            b.strike("admin", t0);
        }
        assert_eq!(b.wait("admin", t0), None);
        b.strike("admin", t0); // the 5th: wait 2 s
        assert_eq!(b.wait("admin", t0), Some(2 * S));
        assert_eq!(b.wait("admin", t0 + S), Some(S));
        assert_eq!(b.wait("other", t0), None);
        let t = t0 + 2 * S;
        assert_eq!(b.wait("admin", t), None);
        b.strike("admin", t); // 6th: 4 s
        assert_eq!(b.wait("admin", t), Some(4 * S));
        let t = t + 4 * S;
        b.strike("admin", t); // 7th: 8 s
        assert_eq!(b.wait("admin", t), Some(8 * S));
        let t = t + 8 * S;
        b.strike("admin", t); // 8th: 16 s, capped at 10
        assert_eq!(b.wait("admin", t), Some(10 * S));
        // Very many strikes do not overflow.
        let mut t = t;
        for _ in 0..100 {
            t += 10 * S;
            b.strike("admin", t);
        }
        assert_eq!(b.wait("admin", t), Some(10 * S));
    }

    #[test]
    fn success_and_idleness_forgive() {
        let t0 = Instant::now();
        let mut b = Backoffs::new(2, S, 10 * S, 100);
        b.strike("a", t0);
        b.strike("a", t0);
        assert!(b.wait("a", t0).is_some());
        b.forget("a");
        assert_eq!(b.wait("a", t0), None);
        b.strike("a", t0);
        b.strike("a", t0);
        // Past its wait but not idle for the cap yet: the next failure waits longer.
        let t = t0 + 10 * S;
        assert_eq!(b.wait("a", t), None);
        b.strike("a", t);
        assert_eq!(b.wait("a", t), Some(2 * S));
        // Idle for the cap after the wait: a fresh start, one free strike again.
        let t = t + 12 * S;
        assert_eq!(b.wait("a", t), None);
        b.strike("a", t);
        assert_eq!(b.wait("a", t), None);
    }

    #[test]
    fn tracked_usernames_are_bounded() {
        let t0 = Instant::now();
        let mut b = Backoffs::new(1, S, 10 * S, 3);
        b.strike("victim", t0);
        for i in 0..10 {
            b.strike(&format!("u{i}"), t0 + S * (i + 1));
            assert!(b.len() <= 3);
        }
        // Idle entries go first; among busy ones, the oldest.
        assert_eq!(b.len(), 3);
        assert_eq!(b.wait("victim", t0), None);
    }

    #[test]
    fn addresses_are_keyed_by_host() {
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        assert_eq!(address_key(v4), v4);
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(address_key(mapped), v4);
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(address_key(a), address_key(b));
        assert_ne!(address_key(a), address_key(c));
        assert_eq!(address_key(a), "2001:db8:1:2::".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn limits_refuse_count_and_forget_addresses() {
        let mut cfg = crate::Config::default();
        cfg.auth.login_address_burst = 1;
        cfg.auth.login_address_interval = "1ms".into();
        cfg.auth.login_username_burst = 2;
        cfg.auth.login_tracked_max = 100;
        let metrics = Metrics::new();
        let limits = LoginLimits::new(&cfg.auth, &metrics);
        let ip = |i: u32| Some(IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i)));
        // Per username, across addresses; without an address only the username counts.
        limits.admit(ip(1), "admin").unwrap();
        limits.admit(None, "admin").unwrap();
        let r = limits.admit(ip(2), "admin").unwrap_err();
        assert_eq!(r.by, LoginLimit::Username);
        assert!(r.wait > Duration::ZERO && r.wait <= Duration::from_secs(2));
        limits.succeeded("admin");
        limits.admit(ip(3), "admin").unwrap();
        // Per address: the second attempt within the interval, whatever the username.
        let r = limits.admit(ip(3), "someone").unwrap_err();
        assert_eq!(r.by, LoginLimit::Address);
        assert!(r.wait <= Duration::from_millis(1));
        let count = |by| {
            metrics
                .logins_refused
                .get_or_create(&LoginLimitLabels { by })
                .get()
        };
        assert_eq!(
            (count(LoginLimit::Username), count(LoginLimit::Address)),
            (1, 1)
        );
        // Addresses are forgotten once their allowance is full again (here 1 ms after an
        // attempt): past `max_tracked`, an attempt prunes them.
        for i in 10..300 {
            if i % 50 == 0 {
                std::thread::sleep(Duration::from_millis(2));
            }
            limits.admit(ip(i), &format!("u{i}")).unwrap();
            let (addresses, usernames) = limits.tracked();
            assert!(addresses <= 101, "{addresses} addresses tracked");
            assert!(usernames <= 100, "{usernames} usernames tracked");
        }
    }

    #[test]
    fn refusals_round_retry_after_up() {
        let r = |ms| Refused {
            by: LoginLimit::Address,
            wait: Duration::from_millis(ms),
        };
        assert_eq!(r(0).retry_after_secs(), 1);
        assert_eq!(r(10).retry_after_secs(), 1);
        assert_eq!(r(1000).retry_after_secs(), 1);
        assert_eq!(r(1001).retry_after_secs(), 2);
    }

    #[tokio::test]
    async fn the_pool_runs_sheds_and_survives_panics() {
        // Tasks borrow the pool for 'static, as they do the global one.
        let pool: &'static HashPool = Box::leak(Box::new(HashPool::new(1, 1)));
        assert_eq!(pool.try_run(|| 2 + 2).await, Ok(4));
        // Occupy the thread and the queue slot, then a third is shed.
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let (started_tx, started_rx) = oneshot::channel();
        let busy = tokio::spawn(pool.try_run(move || {
            let _ = started_tx.send(());
            release_rx.recv().ok();
        }));
        started_rx.await.unwrap();
        let queued = tokio::spawn(pool.try_run(|| 1));
        // `queued` takes its slot once its task has run.
        while pool.slots.available_permits() > 0 {
            tokio::task::yield_now().await;
        }
        assert_eq!(pool.try_run(|| 3).await, Err(PoolError::Full));
        release_tx.send(()).unwrap();
        busy.await.unwrap().unwrap();
        assert_eq!(queued.await.unwrap(), Ok(1));
        // A panicking job fails alone; the thread lives on.
        assert_eq!(
            pool.try_run(|| -> u8 { panic!("bug") }).await,
            Err(PoolError::Failed)
        );
        assert_eq!(pool.run(|| 5).await, Ok(5));
    }
}
