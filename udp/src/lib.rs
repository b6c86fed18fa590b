//! classrelay-udp: the one way media datagrams leave a socket, shared by the server's media
//! workers and the load generator's `floor`, so the floor measures exactly the server's send
//! path. It batches with `sendmmsg(2)` and sends runs to one address as UDP GSO; it never
//! reads a socket, builds a packet or knows what a peer is.
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

mod send;

pub use send::{Counts, SendQueue, SendTally, BATCH};
