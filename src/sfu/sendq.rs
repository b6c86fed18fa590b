//! The worker's outgoing datagrams, sent in batches with `sendmmsg(2)`.
//!
//! A 1→N lesson sends every packet once per viewer, to N different addresses, so UDP GSO
//! (one destination per call) does not apply; `sendmmsg` still saves the per-call syscall
//! and socket lookup overhead of `sendto`. Neither std nor mio offers it, hence `nix`.
//! Datagrams wait here at most until the end of the worker's current loop iteration.

use std::io::IoSlice;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;

use nix::errno::Errno;
use nix::sys::socket::{sendmmsg, MsgFlags, MultiHeaders, SockaddrStorage};

use crate::metrics::Metrics;

/// Datagrams per `sendmmsg` call.
pub const BATCH: usize = 32;

/// Datagrams waiting to be sent.
#[derive(Default)]
pub struct SendQueue {
    queued: Vec<(SockaddrStorage, Vec<u8>)>,
}

impl SendQueue {
    /// Queues a datagram; sends the batch when it is full.
    pub fn push(&mut self, socket: &impl AsRawFd, to: SocketAddr, data: Vec<u8>, m: &Metrics) {
        self.queued.push((SockaddrStorage::from(to), data));
        if self.queued.len() >= BATCH {
            self.flush(socket, m);
        }
    }

    /// Datagrams waiting.
    pub fn len(&self) -> usize {
        self.queued.len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.queued.is_empty()
    }

    /// Sends everything queued. A datagram the kernel refuses (an ICMP error reported for
    /// its destination, a full socket buffer) is dropped, as `sendto` would have dropped it;
    /// the rest still go.
    pub fn flush(&mut self, socket: &impl AsRawFd, m: &Metrics) {
        if self.queued.is_empty() {
            return;
        }
        let fd = socket.as_raw_fd();
        // nix's message headers hold raw pointers (not Send), so they live only here.
        let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(self.queued.len(), None);
        let mut start = 0;
        while start < self.queued.len() {
            let batch = &self.queued[start..];
            let slices: Vec<[IoSlice<'_>; 1]> =
                batch.iter().map(|(_, d)| [IoSlice::new(d)]).collect();
            let addrs: Vec<Option<SockaddrStorage>> = batch.iter().map(|(a, _)| Some(*a)).collect();
            match sendmmsg(
                fd,
                &mut headers,
                &slices,
                &addrs,
                [],
                MsgFlags::MSG_DONTWAIT,
            ) {
                Ok(sent) => {
                    let n = sent.count();
                    m.udp_datagrams_out.inc_by(n as u64);
                    // The kernel stops at the first datagram it refuses; skip that one.
                    start += n.max(1);
                    if n < batch.len() && n > 0 {
                        continue;
                    }
                }
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => {
                    // Socket buffer full: the rest of this batch is lost, as with sendto.
                    tracing::debug!(dropped = batch.len(), "send buffer full");
                    break;
                }
                Err(e) => {
                    tracing::debug!("send failed: {e}");
                    start += 1;
                }
            }
        }
        self.queued.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_reach_every_destination_in_order() {
        let m = Metrics::new();
        let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let rx: Vec<std::net::UdpSocket> = (0..3)
            .map(|_| std::net::UdpSocket::bind("127.0.0.1:0").unwrap())
            .collect();
        let mut q = SendQueue::default();
        for i in 0..(BATCH + 5) {
            let to = rx[i % 3].local_addr().unwrap();
            q.push(&tx, to, vec![i as u8; 100 + i], &m);
        }
        assert_eq!(q.len(), 5, "a full batch went at once");
        q.flush(&tx, &m);
        assert!(q.is_empty());
        assert_eq!(m.udp_datagrams_out.get(), (BATCH + 5) as u64);
        let mut buf = [0u8; 2048];
        for i in 0..(BATCH + 5) {
            let (n, _) = rx[i % 3].recv_from(&mut buf).unwrap();
            assert_eq!((n, buf[0]), (100 + i, i as u8));
        }
    }

    #[test]
    fn a_refused_destination_does_not_stop_the_batch() {
        let m = Metrics::new();
        let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let good = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut q = SendQueue::default();
        // Port 0 cannot be sent to (EINVAL); the datagrams after it still go.
        q.push(&tx, "127.0.0.1:0".parse().unwrap(), vec![1; 10], &m);
        q.push(&tx, good.local_addr().unwrap(), vec![2; 10], &m);
        q.push(&tx, good.local_addr().unwrap(), vec![3; 10], &m);
        q.flush(&tx, &m);
        let mut buf = [0u8; 64];
        assert_eq!(good.recv_from(&mut buf).unwrap().0, 10);
        assert_eq!(buf[0], 2);
        assert_eq!(good.recv_from(&mut buf).unwrap().0, 10);
        assert_eq!(buf[0], 3);
    }
}
