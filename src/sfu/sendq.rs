//! The worker's outgoing datagrams: the shared send path ([`classrelay_udp::SendQueue`],
//! `sendmmsg` batches and UDP GSO runs) counting into the worker's [`Tally`]; it never sends
//! any other way, so the load generator's `floor`, which uses the same queue, measures
//! exactly this path.

use std::time::Duration;

pub use classrelay_udp::{SendQueue, BATCH};

use crate::metrics::Tally;

impl classrelay_udp::SendTally for Tally {
    fn send_call(&mut self) {
        self.udp_send_calls += 1;
    }

    fn sent(&mut self, datagrams: u64, gso_sends: u64, gso_datagrams: u64) {
        self.udp_datagrams_out += datagrams;
        self.udp_gso_sends += gso_sends;
        self.udp_gso_datagrams_out += gso_datagrams;
    }

    fn held(&mut self, held: Duration, datagrams: u64) {
        self.residence.observe_n(held.as_secs_f64(), datagrams);
    }

    fn run_break(&mut self) {
        self.udp_gso_run_breaks += 1;
    }

    fn dropped(&mut self, datagrams: u64) {
        self.udp_send_dropped += datagrams;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;

    /// The value of a sample line in the Prometheus text.
    fn value(text: &str, name: &str) -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("{name} in /metrics"))
    }

    #[test]
    fn datagrams_dropped_on_a_full_send_buffer_reach_udp_send_dropped_total() {
        let m = Metrics::new();
        let mut t = Tally::new(&m);
        let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        // A viewer that never reads.
        let rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = rx.local_addr().unwrap();
        let mut q = SendQueue::new(false);
        for i in 0..10u8 {
            q.push(&tx, to, vec![i; 200], &mut t);
        }
        // Loopback never fills a send buffer (a datagram leaves the sender's account as it
        // is sent), so the queue stands in a kernel whose buffer takes four more.
        q.fill_after(4);
        q.end_turn(&tx, &mut t);
        t.flush(&m);
        let text = m.encode();
        assert_eq!(value(&text, "classrelay_udp_send_dropped_total"), 6.0);
        assert_eq!(value(&text, "classrelay_udp_datagrams_out_total"), 4.0);
    }
}
