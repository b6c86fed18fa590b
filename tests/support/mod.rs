//! Helpers shared by the integration tests: the browser harness, PostgreSQL on loopback, the
//! school fixtures, the media sources, the independent WebRTC client, `/metrics` parsing, a forged STUN check
//! and the one skip helper. Test-only: nothing here is built into the server.
#![allow(dead_code)] // each test binary uses a different part

pub mod browser;
// Export tests' sources and manifests (issue 20 item 4).
pub mod exports;
pub mod media;
pub mod metrics;
pub mod pg;
pub mod recorded;
pub mod recording;
pub mod school;
pub mod skip;
// Server-sent events read one at a time (lesson events, recording processing).
pub mod sse;
// A processed lesson recording without a media session (the S-T draft routes' tests).
pub mod stdraft;
pub mod stun;
// Debian's coturn on loopback (the TURN tests, the rural-link browser tests).
pub mod turn;
pub mod webrtc_client;
