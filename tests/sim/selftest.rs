//! The harness's own checks, with no server between the clients: str0m answers str0m. They
//! show the network, the clock and the clients work before any core is involved; they must
//! never stand in for a test of the server.

use std::net::SocketAddr;
use std::time::Duration;

use classrelay_loadtest::netem::LinkProfile;

use crate::client::{video_by_ssrc, Client, Publish};
use crate::net::Access;
use crate::world::World;

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// A publisher sending to a viewer over `down`; the world after `secs` of media.
fn direct(seed: u64, down: LinkProfile, secs: u64) -> World {
    let mut w = World::new(seed);
    let now = w.now;
    let (mut p, offer) = Client::publisher("pub", addr("10.0.0.1:5000"), now, Publish::default());
    let (v, answer) = Client::answering_viewer("view", addr("10.0.1.1:5000"), now, &offer);
    w.net.set_access(
        addr("10.0.1.1:1").ip(),
        Access {
            down,
            up: LinkProfile {
                delay: Duration::from_millis(20),
                ..LinkProfile::clean()
            },
        },
    );
    let mut out = Vec::new();
    p.accept_answer(&answer, now, &mut out);
    w.add_client(p);
    w.add_client(v);
    w.flush(&mut out);
    w.run_for(Duration::from_secs(secs));
    w
}

#[test]
fn str0m_to_str0m_over_a_lossy_jittery_link_repairs_every_packet() {
    let lossy = LinkProfile {
        loss: 0.05,
        delay: Duration::from_millis(20),
        jitter: Duration::from_millis(5),
        rate_bps: None,
        seed: 0,
    };
    let w = direct(7, lossy.clone(), 5);
    assert!(
        w.clients[0].connected_at.is_some(),
        "the publisher connected"
    );
    let rx = w.clients[1].rx();
    let video = video_by_ssrc(rx);
    assert_eq!(video.len(), 1, "one video stream: {:?}", video.keys());
    let seqs: std::collections::BTreeSet<u64> = video
        .values()
        .next()
        .unwrap()
        .iter()
        .map(|p| p.seq)
        .collect();
    let (lo, hi) = (*seqs.first().unwrap(), *seqs.last().unwrap());
    // The tail may still be in repair when the run stops.
    let missing = (lo..hi.saturating_sub(50))
        .filter(|s| !seqs.contains(s))
        .count();
    let lost = w.net.lost.get(&addr("10.0.1.1:5000")).copied().unwrap_or(0);
    assert!(lost > 20, "the link lost packets: {lost}");
    assert_eq!(
        missing,
        0,
        "every lost packet was resent ({} received)",
        seqs.len()
    );
    // No trace comparison here: two full-ICE str0m agents time their checks with their own
    // randomness, so this pair is not repeatable; the server is ICE-lite, and the cases
    // with cores are (see `cases::nack_repairs…`).
}
