//! Media on simulated time: str0m clients and classrelay's sans-IO worker cores over an
//! in-memory network of `netem` links, on a virtual clock, deterministic from a seed. It must
//! never open a socket, start a thread or sleep; the wall clock is read only as the origin of
//! virtual time (see `World::new`).
//!
//! - `net`: one `netem::Link` per (from, to) address pair, each seeded from the run's seed.
//! - `client`: str0m publishers (synthetic VP8, simulcast, Opus; keyframes on a schedule and
//!   on request) and viewers that record every RTP packet (`frames` groups them per frame).
//! - `worker`: a `WorkerCore` over `core::Queued`, driven as the worker thread drives it.
//! - `signal`: what signalling would send the cores (`Add`, `OpenPipe`, `SetLayer`, …).
//! - `world`: the event loop: the next event is the earliest timeout or delivery.
//! - `cases`: the features, checked at the clients; `repair`: the publisher leg's repair
//!   (holes a viewer asks for); `selftest`: the harness alone.
//!
//! A new case: `World::new(seed)`, `start_cores`, `publish`/`view` (with `next_link` for a
//! client's own access link), `run_for`, then assert on `clients[i].rx()` or
//! `clients[i].sender()`; core counters (`cores[i].metrics`) only as a second witness.
//!
//! Run: `cargo test --test sim`.

mod client;
mod net;
mod signal;
mod worker;
mod world;

mod capture;
mod cases;
mod downlink;
mod repair;
mod selftest;
