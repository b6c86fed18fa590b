//! classrelay-loadtest: simulated publishers and classrooms for measuring a WHIP/WHEP SFU.
//!
//! Peers are str0m instances that send encoded frames from files and count what they receive
//! without decoding, so the generator stays cheaper than the server it measures. The same
//! peers serve the integration tests that need many subscribers at once.

pub mod floor;
pub mod frames;
pub mod h264;
pub mod hist;
pub mod ivf;
pub mod janus;
#[cfg(test)]
mod media_pins;
pub mod mixed;
pub mod netem;
pub mod plot;
pub mod recbench;
pub mod scenario;
pub mod seqs;
pub mod side;
pub mod swarm;
pub mod target;
pub mod whip;

pub use swarm::{PeerHandle, PeerStats, Source, Swarm};
