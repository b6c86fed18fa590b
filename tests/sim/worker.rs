//! One simulated media worker: a shell around classrelay's sans-IO `WorkerCore` over queues,
//! driving it as the worker thread does (a batch of datagrams, then `forward`, then
//! `end_turn`). It only moves what the core queued; it must never make a media decision.

use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::{Duration, Instant};

use classrelay::metrics::Metrics;
use classrelay::sfu::core::{Queued, Settings, WorkerCore};
use classrelay::sfu::limit::PublishCap;
use classrelay::sfu::pipe::PipeMsg;
use classrelay::sfu::{Command, SfuEvent};

use crate::client::Out;

/// Core settings a case may change.
#[derive(Debug, Clone, Copy)]
pub struct CoreConfig {
    pub keyframe_interval: Duration,
    pub pipe_backlog: usize,
    pub direct_srtp: bool,
    pub fanout_chunk: usize,
    /// Viewers' layers follow their downlink estimates (`media.downlink_adaptation`).
    pub downlink: bool,
}

impl Default for CoreConfig {
    fn default() -> Self {
        CoreConfig {
            keyframe_interval: Duration::from_millis(300),
            pipe_backlog: classrelay::sfu::pipe::BACKLOG,
            direct_srtp: true,
            fanout_chunk: 32,
            downlink: true,
        }
    }
}

pub struct SimCore {
    pub index: usize,
    pub addr: SocketAddr,
    pub core: WorkerCore<Queued>,
    pub metrics: Metrics,
    pub direct_srtp: bool,
    /// What the core told signalling, with when.
    pub events: Vec<(Instant, SfuEvent)>,
}

impl SimCore {
    pub fn new(
        index: usize,
        workers: usize,
        addr: SocketAddr,
        cfg: CoreConfig,
        seed: u64,
        now: Instant,
    ) -> SimCore {
        let metrics = Metrics::new();
        let settings = Settings {
            keyframe_interval: cfg.keyframe_interval,
            disconnect_grace: Duration::from_secs(30),
            metrics: metrics.clone(),
            peer_count: Arc::new(AtomicUsize::new(0)),
            load: Arc::new(AtomicUsize::new(0)),
            direct_srtp: cfg.direct_srtp,
            pipe_backlog: cfg.pipe_backlog,
            fanout_chunk: cfg.fanout_chunk,
            connect_timeout: Duration::from_secs(10),
            publish_cap: PublishCap::new(10_000, 2_500),
            seed,
        };
        let mut core = WorkerCore::new(index, addr, settings, Queued::new(workers), now);
        core.set_downlink_adaptation(cfg.downlink);
        SimCore {
            index,
            addr,
            core,
            metrics,
            direct_srtp: cfg.direct_srtp,
            events: Vec::new(),
        }
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.core.poll_timeout()
    }

    /// One datagram of a batch (forwarded by [`SimCore::forward`]).
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        self.core.metrics().udp_datagrams_in.inc();
        self.core.handle_datagram(now, from, data);
    }

    /// Forwards the batch taken in and ends the turn.
    pub fn forward(&mut self, now: Instant, out: &mut Out) {
        self.core.forward(now);
        self.end_turn(now, out);
    }

    pub fn handle_timeout(&mut self, now: Instant, out: &mut Out) {
        self.core.handle_timeout(now);
        self.end_turn(now, out);
    }

    pub fn handle_command(&mut self, now: Instant, cmd: Command, out: &mut Out) {
        self.core.handle_command(now, cmd);
        self.end_turn(now, out);
    }

    pub fn handle_pipe(&mut self, now: Instant, msg: PipeMsg, out: &mut Out) {
        self.core.handle_pipe(now, msg);
        self.end_turn(now, out);
    }

    fn end_turn(&mut self, now: Instant, out: &mut Out) {
        self.core.end_turn();
        while let Some(t) = self.core.poll_transmit() {
            out.push((self.addr, t.destination, t.contents));
        }
        while let Some(e) = self.core.poll_event() {
            self.events.push((now, e));
        }
    }

    /// Pipe messages for the workers `deliver` accepts, in order; the others stay queued
    /// (and count as this core's backlog to them).
    pub fn take_pipes(&mut self, deliver: impl Fn(usize) -> bool) -> Vec<(usize, PipeMsg)> {
        let q = &mut self.core.outside().pipes;
        let mut taken = Vec::new();
        let mut kept = std::collections::VecDeque::new();
        while let Some((to, msg)) = q.pop_front() {
            if deliver(to) {
                taken.push((to, msg));
            } else {
                kept.push_back((to, msg));
            }
        }
        *q = kept;
        taken
    }

    pub fn take_commands(&mut self) -> Vec<(usize, Command)> {
        let mut v = Vec::new();
        while let Some(c) = self.core.poll_command() {
            v.push(c);
        }
        v
    }
}
