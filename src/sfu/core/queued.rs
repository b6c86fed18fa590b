//! An [`Outside`] of plain queues, to drive a [`WorkerCore`] without a socket, threads or a
//! clock (unit tests and the simulated-time harness). It must never be used by the worker
//! thread (no batching, no GSO: every datagram is its own transmit).

use super::*;

/// A datagram the core sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Where it goes.
    pub destination: SocketAddr,
    /// What goes (an SRTP, SRTCP, DTLS or STUN datagram).
    pub contents: Vec<u8>,
}

/// An [`Outside`] made of queues, for driving a core without a socket or threads (tests,
/// simulations): what leaves waits here for `poll_*`, and what a look for a frame's rest
/// reads during a fan-out is what the driver put in `arriving` and `inbox` beforehand.
/// No UDP GSO (every datagram is its own transmit).
#[derive(Default)]
pub struct Queued {
    /// Datagrams sent, oldest first.
    pub transmits: VecDeque<Transmit>,
    /// Pipe messages to other workers, oldest first.
    pub pipes: VecDeque<(usize, PipeMsg)>,
    /// Commands to other workers, oldest first.
    pub commands: VecDeque<(usize, Command)>,
    /// Events to signalling, oldest first.
    pub events: VecDeque<SfuEvent>,
    /// Datagrams a look during a fan-out finds on the socket: (source, datagram).
    pub arriving: VecDeque<(SocketAddr, Vec<u8>)>,
    /// Messages a look during a fan-out (and `handle_pipes`) finds in the pipe inbox.
    pub inbox: VecDeque<PipeMsg>,
    /// How many workers there are (pipes and commands to others fail past it).
    pub workers: usize,
    arrived: Option<SystemTime>,
}

impl Queued {
    /// Queues for a core among `workers` workers (a pipe or command to a worker past them
    /// fails).
    pub fn new(workers: usize) -> Self {
        Queued {
            workers,
            ..Default::default()
        }
    }
}

impl Outside for Queued {
    fn buffer(&mut self) -> Vec<u8> {
        Vec::with_capacity(1500)
    }

    fn send(&mut self, to: SocketAddr, data: Vec<u8>, _tally: &mut Tally) {
        self.transmits.push_back(Transmit {
            destination: to,
            contents: data,
        });
    }

    fn run_size(&self, _to: SocketAddr) -> Option<usize> {
        None
    }

    fn gso(&self) -> bool {
        false
    }

    fn note_arrival(&mut self, at: SystemTime) {
        self.arrived = Some(self.arrived.map_or(at, |a| a.min(at)));
    }

    fn arrival(&self) -> Option<SystemTime> {
        self.arrived
    }

    fn end_turn(&mut self, _tally: &mut Tally) {
        self.arrived = None;
    }

    /// What this core queued to `to` and the driver has not taken yet.
    fn pipe_len(&self, to: usize) -> Option<usize> {
        (to < self.workers).then(|| self.pipes.iter().filter(|(w, _)| *w == to).count())
    }

    fn pipe(&mut self, to: usize, msg: PipeMsg) -> bool {
        if to >= self.workers {
            return false;
        }
        self.pipes.push_back((to, msg));
        true
    }

    fn wake(&mut self, _to: usize) {}

    fn command(&mut self, to: usize, cmd: Command) -> bool {
        if to >= self.workers {
            return false;
        }
        self.commands.push_back((to, cmd));
        true
    }

    fn event(&mut self, ev: SfuEvent) {
        self.events.push_back(ev);
    }

    fn recv(&mut self, buf: &mut [u8]) -> std::io::Result<(usize, SocketAddr)> {
        let Some((from, d)) = self.arriving.pop_front() else {
            return Err(ErrorKind::WouldBlock.into());
        };
        // As a socket does: a longer datagram is cut to the buffer.
        let n = d.len().min(buf.len());
        buf[..n].copy_from_slice(&d[..n]);
        Ok((n, from))
    }

    fn piped(&mut self) -> Option<PipeMsg> {
        self.inbox.pop_front()
    }

    fn piped_waiting(&self) -> bool {
        !self.inbox.is_empty()
    }
}

impl WorkerCore<Queued> {
    /// The next datagram to send. Call after every `handle_*` and `forward` until `None`.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.io.out.transmits.pop_front()
    }

    /// The next pipe message for another worker (its index first): hand it to that worker's
    /// [`WorkerCore::handle_pipe`]. Call after every `handle_*` and `forward` until `None`.
    #[must_use]
    pub fn poll_pipe(&mut self) -> Option<(usize, PipeMsg)> {
        self.io.out.pipes.pop_front()
    }

    /// The next command for another worker (`PipeKeyframe`, `ClosePipe`; its index first):
    /// hand it to that worker's [`WorkerCore::handle_command`].
    #[must_use]
    pub fn poll_command(&mut self) -> Option<(usize, Command)> {
        self.io.out.commands.pop_front()
    }

    /// The next event for signalling.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<SfuEvent> {
        self.io.out.events.pop_front()
    }
}
