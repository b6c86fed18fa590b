//! One media worker's thread: the shell around its [`WorkerCore`]. It owns the UDP socket, the
//! mio `Poll` and `Waker`, the command and pipe channels and the clock (`Instant::now()`), and
//! nothing else: it waits for datagrams, commands or the core's next deadline, reads
//! datagrams in batches (`recvmmsg`), hands everything to the core with the time, and sends
//! what the core queued (`sendmmsg`, UDP GSO). Every media decision is the core's. It must
//! never block: no disk, no database, no await, no shared locks.

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::Receiver;
use mio::{Events, Interest, Poll, Token, Waker};

use super::core::{self, Outside, WorkerCore};
use super::limit::PublishCap;
use super::pipe::{Link, PipeMsg};
use super::recvq::{self, RecvBatch};
use super::sendq::SendQueue;
use super::{Command, SfuEvent};
use crate::metrics::{Metrics, Tally};

pub(crate) use super::core::{CONNECT_TIMEOUT, FAN_OUT_CHUNK};

const SOCKET: Token = Token(0);
const WAKER: Token = Token(1);
/// Datagrams read per wake-up before timers get a turn.
const RECV_BATCH: usize = 256;
/// How long a worker that panicked stays down before it starts again (doubled for each
/// further panic within `PANIC_MEMORY`, up to `RESTART_DELAY_MAX`): `/readyz` says 503
/// meanwhile, and a panic that repeats cannot spin a core.
const RESTART_DELAY: Duration = Duration::from_millis(250);
const RESTART_DELAY_MAX: Duration = Duration::from_secs(8);
const PANIC_MEMORY: Duration = Duration::from_secs(60);

/// Settings and handles every worker gets.
pub(crate) struct Shared {
    /// Keyframe request spacing per publisher layer.
    pub keyframe_interval: Duration,
    /// How long a disconnected peer waits for an ICE restart.
    pub disconnect_grace: Duration,
    /// Metrics handles.
    pub metrics: Metrics,
    /// Process-wide peer count (decremented here when a peer goes).
    pub peer_count: Arc<AtomicUsize>,
    /// Peers placed on this worker (`Sfu::place`; decremented here when a peer goes).
    pub load: Arc<AtomicUsize>,
    /// Events to signalling.
    pub events: tokio::sync::mpsc::UnboundedSender<SfuEvent>,
    /// Subscribers' media protected here (`egress`) rather than through str0m.
    pub direct_srtp: bool,
    /// Viewers' layers follow their downlink estimates (`media.downlink_adaptation`).
    pub downlink_adaptation: bool,
    /// Runs to one viewer as UDP GSO sends (`media.udp_gso`).
    pub udp_gso: bool,
    /// Packets queued to another worker's pipe before drops (`media.pipe_backlog`).
    pub pipe_backlog: usize,
    /// Viewers served between looks for a frame's rest (`media.fanout_chunk`).
    pub fanout_chunk: usize,
    /// A peer not connected this long after it was added is dropped
    /// (`media.connect_timeout_ms`).
    pub connect_timeout: Duration,
    /// The cap on each publisher's incoming media (`media.max_publish_kbps` / `_pps`).
    pub publish_cap: PublishCap,
    /// Set while the worker is down after a panic (and for good if its thread ends for any
    /// reason but a shutdown): `/readyz` answers 503.
    pub down: Arc<AtomicBool>,
}

/// The core's way out of the thread: the socket (a second handle of the worker's), the
/// send queue, the other workers' channels and signalling's event channel.
pub(crate) struct Wire {
    socket: std::net::UdpSocket,
    /// Datagrams on their way out, flushed with sendmmsg before the loop waits (or when a
    /// batch is full).
    queue: SendQueue,
    /// Every worker (this one included), to pipe to and to ask for keyframes.
    links: Arc<[Link]>,
    /// This worker's pipe inbox (read by a look during a fan-out).
    pipe_rx: Receiver<PipeMsg>,
    events: tokio::sync::mpsc::UnboundedSender<SfuEvent>,
}

impl Outside for Wire {
    fn buffer(&mut self) -> Vec<u8> {
        self.queue.buffer()
    }

    fn send(&mut self, to: SocketAddr, data: Vec<u8>, tally: &mut Tally) {
        self.queue.push(&self.socket, to, data, tally);
    }

    fn run_size(&self, to: SocketAddr) -> Option<usize> {
        self.queue.run_size(to)
    }

    fn gso(&self) -> bool {
        self.queue.gso()
    }

    fn note_arrival(&mut self, at: SystemTime) {
        self.queue.note_arrival(at);
    }

    fn arrival(&self) -> Option<SystemTime> {
        self.queue.arrival()
    }

    fn end_turn(&mut self, tally: &mut Tally) {
        self.queue.end_turn(&self.socket, tally);
    }

    fn pipe_len(&self, to: usize) -> Option<usize> {
        self.links.get(to).map(|l| l.pipe.len())
    }

    fn pipe(&mut self, to: usize, msg: PipeMsg) -> bool {
        self.links.get(to).is_some_and(|l| l.pipe.send(msg).is_ok())
    }

    fn wake(&mut self, to: usize) {
        if let Some(link) = self.links.get(to) {
            let _ = link.waker.wake();
        }
    }

    fn command(&mut self, to: usize, cmd: Command) -> bool {
        let Some(link) = self.links.get(to) else {
            return false;
        };
        let sent = link.cmd.send(cmd).is_ok();
        if sent {
            let _ = link.waker.wake();
        }
        sent
    }

    fn event(&mut self, ev: SfuEvent) {
        // Unbounded send never blocks; a closed receiver (shutdown) is fine to ignore.
        let _ = self.events.send(ev);
    }

    fn recv(&mut self, buf: &mut [u8]) -> std::io::Result<(usize, SocketAddr)> {
        self.socket.recv_from(buf)
    }

    fn piped(&mut self) -> Option<PipeMsg> {
        self.pipe_rx.try_recv().ok()
    }

    fn piped_waiting(&self) -> bool {
        !self.pipe_rx.is_empty()
    }
}

/// The worker state (moved into its thread by [`Worker::run`]).
pub(crate) struct Worker {
    index: usize,
    poll: Poll,
    waker: Arc<Waker>,
    local_addr: SocketAddr,
    socket: mio::net::UdpSocket,
    rx: Receiver<Command>,
    /// Media piped in from other workers (see `pipe`).
    pipe_rx: Receiver<PipeMsg>,
    core: WorkerCore<Wire>,
    /// See `Shared::down`.
    down: Arc<AtomicBool>,
    /// `media.udp_gso`, to make the send queue again after a panic.
    udp_gso: bool,
    /// Panics in the last `PANIC_MEMORY`, and when the last one was.
    panics: (u32, Option<Instant>),
}

impl Worker {
    /// Wraps a bound socket; the thread starts with [`Worker::run`].
    pub(crate) fn new(
        index: usize,
        socket: std::net::UdpSocket,
        rx: Receiver<Command>,
        pipe_rx: Receiver<PipeMsg>,
        shared: Shared,
    ) -> std::io::Result<Self> {
        let Shared {
            keyframe_interval,
            disconnect_grace,
            metrics,
            peer_count,
            load,
            events,
            direct_srtp,
            downlink_adaptation,
            udp_gso,
            pipe_backlog,
            fanout_chunk,
            connect_timeout,
            publish_cap,
            down,
        } = shared;
        let sock2 = socket2::SockRef::from(&socket);
        // Bigger kernel buffers absorb bursts (a keyframe fanned out to many subscribers).
        let _ = sock2.set_recv_buffer_size(4 << 20);
        let _ = sock2.set_send_buffer_size(4 << 20);
        // Kernel arrival stamps, for the forwarding residence histogram; without them (an
        // old kernel) that histogram stays empty and nothing else changes.
        if let Err(e) = recvq::enable_timestamps(&socket) {
            tracing::debug!("no SO_TIMESTAMPNS: {e}");
        }
        socket.set_nonblocking(true)?;
        let local_addr = socket.local_addr()?;
        // The core sends (and looks during a fan-out) through a second handle of the socket.
        let wire = Wire {
            socket: socket.try_clone()?,
            queue: SendQueue::new(udp_gso),
            links: Arc::from(Vec::new()),
            pipe_rx: pipe_rx.clone(),
            events,
        };
        let mut socket = mio::net::UdpSocket::from_std(socket);
        let poll = Poll::new()?;
        poll.registry()
            .register(&mut socket, SOCKET, Interest::READABLE)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let settings = core::Settings {
            keyframe_interval,
            disconnect_grace,
            metrics,
            peer_count,
            load,
            direct_srtp,
            pipe_backlog,
            fanout_chunk,
            connect_timeout,
            publish_cap,
            seed: rand::random(),
        };
        let mut core = WorkerCore::new(index, local_addr, settings, wire, Instant::now());
        core.set_downlink_adaptation(downlink_adaptation);
        Ok(Worker {
            index,
            poll,
            waker,
            local_addr,
            socket,
            rx,
            pipe_rx,
            core,
            down,
            udp_gso,
            panics: (0, None),
        })
    }

    /// The waker signalling commands to this worker.
    pub(crate) fn waker(&self) -> Arc<Waker> {
        self.waker.clone()
    }

    /// How to reach every worker (indexed like the workers), before [`Worker::run`].
    pub(crate) fn set_links(&mut self, links: Arc<[Link]>) {
        self.core.outside().links = links;
    }

    /// The thread body: the loop, started again (same socket, no peers) after a panic.
    ///
    /// A panic anywhere in the loop (str0m fed hostile input, say) would otherwise end the
    /// thread and leave its rooms unserved until the process restarts. After one, every
    /// peer of the worker is dropped (`SfuEvent::PeerGone`, so signalling forgets their
    /// sessions; their clients reconnect), the worker stays down a short while
    /// (`/readyz` answers 503) and the loop starts again on the same socket.
    pub(crate) fn run(mut self) {
        tracing::info!(worker = self.index, addr = %self.local_addr, "media worker started");
        loop {
            let outcome = panic::catch_unwind(AssertUnwindSafe(|| self.run_loop()));
            match outcome {
                Ok(Stop::Shutdown) => return,
                Ok(Stop::Failed) => break,
                Err(payload) => {
                    self.down.store(true, Ordering::SeqCst);
                    let what = panic_message(&*payload);
                    tracing::error!(worker = self.index, "media worker panicked: {what}");
                    let restarted =
                        panic::catch_unwind(AssertUnwindSafe(|| self.restart_after_panic()));
                    if restarted.is_err() {
                        tracing::error!(worker = self.index, "media worker cannot restart");
                        break;
                    }
                    self.core.metrics().sfu_worker_restarts.inc();
                    self.down.store(false, Ordering::SeqCst);
                    tracing::warn!(worker = self.index, "media worker restarted");
                }
            }
        }
        // Not a shutdown: the worker is gone for good; `/readyz` says so.
        self.down.store(true, Ordering::SeqCst);
    }

    /// After a panic: the core drops every peer and forgets the rest of its state
    /// ([`WorkerCore::reset`]); the send queue starts empty; the worker waits the restart
    /// delay and is ready to loop again. What stays: the socket, the channels, the links to
    /// the other workers.
    fn restart_after_panic(&mut self) {
        let now = Instant::now();
        self.core.reset(now);
        self.core.outside().queue = SendQueue::new(self.udp_gso);
        let (n, last) = self.panics;
        let n = if last.is_some_and(|t| now.saturating_duration_since(t) < PANIC_MEMORY) {
            n + 1
        } else {
            1
        };
        self.panics = (n, Some(now));
        std::thread::sleep(restart_delay(n));
        self.core.resume(Instant::now());
    }

    fn run_loop(&mut self) -> Stop {
        let mut events = Events::with_capacity(64);
        let mut batch = RecvBatch::default();
        let mut headers = recvq::headers();
        let mut more_to_read = false;
        loop {
            // Everything this iteration produced leaves before the loop may sleep.
            self.core.end_turn();
            let now = Instant::now();
            let wait = match self.core.poll_timeout() {
                _ if more_to_read || !self.pipe_rx.is_empty() => Duration::ZERO,
                Some(deadline) => deadline.saturating_duration_since(now),
                None => Duration::MAX,
            };
            if let Err(e) = self.poll.poll(&mut events, Some(wait)) {
                if e.kind() != ErrorKind::Interrupted {
                    tracing::error!(worker = self.index, "poll failed: {e}");
                    return Stop::Failed;
                }
            }
            let mut readable = more_to_read;
            for ev in events.iter() {
                if ev.token() == SOCKET {
                    readable = true;
                }
            }
            if !self.handle_commands() {
                tracing::info!(worker = self.index, "media worker stopping");
                return Stop::Shutdown;
            }
            more_to_read = false;
            if readable {
                more_to_read = self.read_datagrams(&mut batch, &mut headers);
            }
            // A look for a frame's rest during a fan-out may have stopped at its budget.
            more_to_read |= self.core.take_left_unread();
            self.core.handle_timeout(Instant::now());
        }
    }

    /// Reads up to `RECV_BATCH` datagrams (one batch more after a second look for a frame's
    /// rest), `recvq::BATCH` per syscall. Returns true if the socket may hold more.
    fn read_datagrams(
        &mut self,
        batch: &mut RecvBatch,
        headers: &mut nix::sys::socket::MultiHeaders<nix::sys::socket::SockaddrStorage>,
    ) -> bool {
        let mut looked_again = false;
        // Calls left: `RECV_BATCH` datagrams' worth, and one more after a second look.
        let mut calls = RECV_BATCH.div_ceil(recvq::BATCH);
        while calls > 0 {
            calls -= 1;
            let n = match batch.recv(&self.socket, headers) {
                Ok(0) => {
                    self.core.forward(Instant::now());
                    return false;
                }
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    // ICMP errors (port unreachable) surface here on Linux; not fatal.
                    tracing::debug!(worker = self.index, "recv error: {e}");
                    continue;
                }
            };
            let now = Instant::now();
            self.core.metrics().udp_datagrams_in.inc_by(n as u64);
            if let Some(t) = (0..n).filter_map(|i| batch.arrived(i)).min() {
                self.core.outside().note_arrival(t);
            }
            for i in 0..n {
                match batch.get(i) {
                    Some((data, source)) => self.core.handle_datagram(now, source, data),
                    // Longer than any WebRTC datagram (or no IP source): not ours.
                    None => {
                        self.core.metrics().udp_unroutable.inc();
                    }
                }
            }
            if n < recvq::BATCH && !looked_again && self.core.frame_unfinished() {
                // The socket ran dry in the middle of a frame: its rest is most likely a few
                // microseconds behind. One more look (a `recvmmsg` that may find nothing)
                // lets the frame go out as one group; otherwise its rest would wait for the
                // first part's whole fan-out (BENCHMARKS.md, session 9).
                looked_again = true;
                calls += 1;
                self.core.metrics().frame_rereads.inc();
                continue;
            }
            // The batch's media together: see `WorkerCore::forward_group`.
            self.core.forward(now);
            if n < recvq::BATCH {
                return false;
            }
        }
        self.core.forward(Instant::now());
        true
    }

    /// Drains piped media, then commands; false on shutdown.
    fn handle_commands(&mut self) -> bool {
        // Piped first: a viewer added below must find the tracks its OpenPipe announced.
        self.core.handle_pipes(Instant::now());
        while let Ok(cmd) = self.rx.try_recv() {
            if matches!(cmd, Command::Shutdown) {
                return false;
            }
            self.core.handle_command(Instant::now(), cmd);
        }
        true
    }
}

/// Why the loop ended.
enum Stop {
    /// Asked to (`Command::Shutdown`).
    Shutdown,
    /// Its poll failed.
    Failed,
}

/// How long a worker stays down after its `n`th panic in a row (`n` ≥ 1).
fn restart_delay(n: u32) -> Duration {
    RESTART_DELAY
        .saturating_mul(1 << n.saturating_sub(1).min(6))
        .min(RESTART_DELAY_MAX)
}

/// A panic's message, if it has one.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_that_keeps_panicking_waits_longer_each_time_up_to_a_cap() {
        let delays: Vec<Duration> = (1..=8).map(restart_delay).collect();
        assert_eq!(delays[0], RESTART_DELAY);
        assert_eq!(delays[1], RESTART_DELAY * 2);
        assert!(delays.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(delays[7], RESTART_DELAY_MAX);
        assert_eq!(restart_delay(u32::MAX), RESTART_DELAY_MAX);
        assert_eq!(panic_message(&"boom"), "boom");
        assert_eq!(panic_message(&String::from("bang")), "bang");
        assert_eq!(panic_message(&7u8), "(no message)");
    }
}
