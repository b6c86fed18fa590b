//! The worker's outgoing datagrams, sent in batches with `sendmmsg(2)`, and runs to one
//! destination as one UDP GSO send.
//!
//! A 1→N lesson sends every packet once per viewer, to N different addresses, so datagrams
//! to many viewers go out through `sendmmsg`, which saves the per-call syscall and socket
//! lookup overhead of `sendto`. But a video frame is several packets, and the worker serves
//! each viewer all the packets of a stream read in one turn before the next viewer (see
//! `Worker::forward_group`), so a viewer's share of a frame is queued as consecutive
//! datagrams to one address; when they have the same size (MTU-sized fragments, as OBS,
//! GStreamer and str0m packetize; the last one may be shorter) they go as one `sendmsg`
//! with `UDP_SEGMENT`: the kernel walks its UDP/IP send path once for the run and cuts it
//! into datagrams at the end (or the NIC does). A batch is not sent in the middle of such a
//! run (of up to the kernel's 64 datagrams). Neither std nor mio offers either call, hence
//! `nix`. Datagrams wait here at most until the end of the worker's current loop iteration,
//! and leave in the order they were queued.

use std::io::IoSlice;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::time::SystemTime;

use nix::errno::Errno;
use nix::sys::socket::{
    sendmmsg, sendmsg, ControlMessage, MsgFlags, MultiHeaders, SockaddrStorage,
};

use crate::metrics::Metrics;

/// Datagrams per `sendmmsg` call.
pub const BATCH: usize = 32;

/// Capacity of a datagram buffer: a full-size SRTP packet.
const DATAGRAM_CAPACITY: usize = 1500;

/// Sent datagrams' buffers kept for reuse.
const SPARE_BUFFERS: usize = 256;

/// Most segments the kernel accepts in one UDP GSO send (`UDP_MAX_SEGMENTS`).
const GSO_MAX_SEGMENTS: usize = 64;

/// Most bytes in one UDP GSO send (an IP datagram's payload, less the UDP header).
const GSO_MAX_BYTES: usize = 65_000;

/// Datagrams waiting to be sent.
pub struct SendQueue {
    queued: Vec<(SockaddrStorage, Vec<u8>)>,
    /// Buffers of sent datagrams, for the next ones (no allocation per packet).
    spare: Vec<Vec<u8>>,
    /// Kernel arrival of the earliest datagram read in this loop turn, if any.
    arrived: Option<SystemTime>,
    /// Whether UDP GSO is used; cleared for good the first time the kernel refuses it.
    gso: bool,
    /// The run of equal-sized datagrams at the end of the queue and their destination, while
    /// another of the same size may still join it (see [`SendQueue::run_size`]).
    run: Option<(SocketAddr, Run)>,
}

/// A run of datagrams to one destination that may go as one GSO send: the size of its first
/// datagram, how many and how many bytes it holds.
#[derive(Debug, Clone, Copy)]
struct Run {
    size: usize,
    count: usize,
    bytes: usize,
}

impl Run {
    fn new(len: usize) -> Self {
        Run {
            size: len,
            count: 1,
            bytes: len,
        }
    }

    /// Whether a datagram of `len` bytes to the same destination may join: the kernel's
    /// rules for one send (none longer than the first, 64 at most, 64 KB at most).
    fn admits(&self, len: usize) -> bool {
        len <= self.size && self.count < GSO_MAX_SEGMENTS && self.bytes + len <= GSO_MAX_BYTES
    }

    fn add(&mut self, len: usize) {
        self.count += 1;
        self.bytes += len;
    }
}

impl Default for SendQueue {
    fn default() -> Self {
        SendQueue {
            queued: Vec::new(),
            spare: Vec::new(),
            arrived: None,
            gso: true,
            run: None,
        }
    }
}

impl SendQueue {
    /// A queue that never uses UDP GSO (one datagram per message), as after a refusal.
    #[cfg(test)]
    fn without_gso() -> Self {
        SendQueue {
            gso: false,
            ..Default::default()
        }
    }

    /// Notes a datagram read in this loop turn: what leaves until [`SendQueue::end_turn`] is
    /// timed from the earliest such arrival (`forward_residence_seconds`).
    pub fn note_arrival(&mut self, at: SystemTime) {
        self.arrived = Some(self.arrived.map_or(at, |a| a.min(at)));
    }

    /// Whether runs may still leave as UDP GSO sends (false after the kernel refused it).
    pub fn gso(&self) -> bool {
        self.gso
    }

    /// The earliest kernel arrival noted in this loop turn.
    pub fn arrival(&self) -> Option<SystemTime> {
        self.arrived
    }

    /// Sends everything queued and closes the loop turn.
    pub fn end_turn(&mut self, socket: &impl AsRawFd, m: &Metrics) {
        self.flush(socket, m);
        self.arrived = None;
    }

    /// Queues a datagram; sends the batch when it is full, but not between two datagrams to
    /// the same destination (a run that may go as one GSO send), up to the kernel's limit.
    pub fn push(&mut self, socket: &impl AsRawFd, to: SocketAddr, data: Vec<u8>, m: &Metrics) {
        if self.queued.len() >= BATCH
            && (self.run.is_none_or(|(dest, _)| dest != to)
                || self.queued.len() >= BATCH + GSO_MAX_SEGMENTS)
        {
            self.flush(socket, m);
        }
        let len = data.len();
        self.queued.push((SockaddrStorage::from(to), data));
        self.run = match self.run {
            Some((dest, mut r)) if dest == to && len > 0 && r.admits(len) => {
                r.add(len);
                // A shorter datagram can only end a run.
                (len == r.size).then_some((dest, r))
            }
            _ => (len > 0).then_some((to, Run::new(len))),
        };
    }

    /// The size a datagram to `to` queued next must have to join the run of equal-sized
    /// datagrams to `to` at the end of the queue, if there is one it can still join (and
    /// GSO is in use).
    pub fn run_size(&self, to: SocketAddr) -> Option<usize> {
        match self.run {
            Some((dest, r)) if self.gso && dest == to && r.admits(r.size) => Some(r.size),
            _ => None,
        }
    }

    /// An empty buffer for a datagram, reused from one already sent when there is one.
    pub fn buffer(&mut self) -> Vec<u8> {
        self.spare
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(DATAGRAM_CAPACITY))
    }

    /// Datagrams waiting.
    pub fn len(&self) -> usize {
        self.queued.len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.queued.is_empty()
    }

    /// Sends everything queued, in order. A datagram the kernel refuses (an ICMP error
    /// reported for its destination, a full socket buffer) is dropped, as `sendto` would
    /// have dropped it; the rest still go.
    pub fn flush(&mut self, socket: &impl AsRawFd, m: &Metrics) {
        if self.queued.is_empty() {
            return;
        }
        let fd = socket.as_raw_fd();
        self.run = None;
        let queued = std::mem::take(&mut self.queued);
        let since = self.arrived;
        let mut singles = 0;
        let mut i = 0;
        while i < queued.len() {
            let run = if self.gso { gso_run(&queued[i..]) } else { 1 };
            if run < 2 {
                i += 1;
                continue;
            }
            send_batch(fd, &queued[singles..i], m, since);
            match send_gso(fd, &queued[i..i + run], m, since) {
                Gso::Sent => {}
                Gso::Refused => send_batch(fd, &queued[i..i + run], m, since),
                Gso::Unsupported => {
                    tracing::info!("UDP GSO not supported here; sending datagrams one by one");
                    self.gso = false;
                    send_batch(fd, &queued[i..i + run], m, since);
                }
            }
            i += run;
            singles = i;
        }
        send_batch(fd, &queued[singles..], m, since);
        // Keep the allocations: the queue's, and the datagrams' for `buffer`.
        self.queued = queued;
        for (_, mut d) in self.queued.drain(..) {
            if self.spare.len() < SPARE_BUFFERS && d.capacity() >= DATAGRAM_CAPACITY {
                d.clear();
                self.spare.push(d);
            }
        }
    }
}

/// How many datagrams from the start of `q` can go as one GSO send: same destination, all
/// the size of the first except that the last may be shorter, within the kernel's limits.
fn gso_run(q: &[(SockaddrStorage, Vec<u8>)]) -> usize {
    let Some((to, first)) = q.first() else {
        return 0;
    };
    if first.is_empty() {
        return 1;
    }
    let mut run = Run::new(first.len());
    for (a, d) in &q[1..] {
        if a != to || !run.admits(d.len()) {
            break;
        }
        run.add(d.len());
        if d.len() < run.size {
            // A shorter datagram can only end a run.
            break;
        }
    }
    run.count
}

/// What became of a GSO send.
enum Gso {
    Sent,
    /// Not sent; the datagrams may still go one by one (say, a run larger than the path
    /// MTU allows, or a refused destination, which then fails again on its own).
    Refused,
    /// Not sent, and GSO will not work on this socket.
    Unsupported,
}

/// One `sendmsg` with `UDP_SEGMENT` for a run found by `gso_run`. A full socket buffer
/// drops the run, as `sendto` would drop its datagrams.
fn send_gso(
    fd: i32,
    run: &[(SockaddrStorage, Vec<u8>)],
    m: &Metrics,
    since: Option<SystemTime>,
) -> Gso {
    let Some((to, first)) = run.first() else {
        return Gso::Sent;
    };
    let Ok(size) = u16::try_from(first.len()) else {
        return Gso::Refused;
    };
    let slices: Vec<IoSlice<'_>> = run.iter().map(|(_, d)| IoSlice::new(d)).collect();
    let cmsg = [ControlMessage::UdpGsoSegments(&size)];
    loop {
        match sendmsg(fd, &slices, &cmsg, MsgFlags::MSG_DONTWAIT, Some(to)) {
            Ok(_) => {
                m.udp_datagrams_out.inc_by(run.len() as u64);
                m.udp_gso_datagrams_out.inc_by(run.len() as u64);
                m.udp_gso_sends.inc();
                residence(m, since, run.len());
                return Gso::Sent;
            }
            Err(Errno::EINTR) => continue,
            // No GSO here (old kernel, or a device that cannot checksum it).
            Err(Errno::EIO | Errno::EOPNOTSUPP | Errno::ENOPROTOOPT) => return Gso::Unsupported,
            Err(Errno::EAGAIN) => {
                tracing::debug!(dropped = run.len(), "send buffer full");
                return Gso::Sent;
            }
            Err(e) => {
                tracing::debug!(datagrams = run.len(), "GSO send failed: {e}");
                return Gso::Refused;
            }
        }
    }
}

/// Records how long `n` datagrams just sent were held, if the turn read any datagram.
fn residence(m: &Metrics, since: Option<SystemTime>, n: usize) {
    let Some(d) = since.and_then(|t| SystemTime::now().duration_since(t).ok()) else {
        return;
    };
    let s = d.as_secs_f64();
    for _ in 0..n {
        m.forward_residence_seconds.observe(s);
    }
}

/// Sends `batch` with `sendmmsg`, skipping datagrams the kernel refuses.
fn send_batch(
    fd: i32,
    batch: &[(SockaddrStorage, Vec<u8>)],
    m: &Metrics,
    since: Option<SystemTime>,
) {
    if batch.is_empty() {
        return;
    }
    // nix's message headers hold raw pointers (not Send), so they live only here.
    let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(batch.len(), None);
    let mut start = 0;
    while start < batch.len() {
        let rest = &batch[start..];
        let slices: Vec<[IoSlice<'_>; 1]> = rest.iter().map(|(_, d)| [IoSlice::new(d)]).collect();
        let addrs: Vec<Option<SockaddrStorage>> = rest.iter().map(|(a, _)| Some(*a)).collect();
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
                residence(m, since, n);
                // The kernel stops at the first datagram it refuses; skip that one.
                start += n.max(1);
            }
            Err(Errno::EINTR) => {}
            Err(Errno::EAGAIN) => {
                // Socket buffer full: the rest of this batch is lost, as with sendto.
                tracing::debug!(dropped = rest.len(), "send buffer full");
                break;
            }
            Err(e) => {
                tracing::debug!("send failed: {e}");
                start += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A UDP socket on a free loopback port.
    fn socket() -> std::net::UdpSocket {
        std::net::UdpSocket::bind("127.0.0.1:0").unwrap()
    }

    fn addr(port: u16) -> SockaddrStorage {
        SockaddrStorage::from(SocketAddr::from(([127, 0, 0, 1], port)))
    }

    #[test]
    fn gso_runs_stop_at_another_address_a_longer_or_a_short_datagram() {
        let q = |v: &[(u16, usize)]| -> Vec<(SockaddrStorage, Vec<u8>)> {
            v.iter().map(|&(p, n)| (addr(p), vec![0; n])).collect()
        };
        assert_eq!(gso_run(&[]), 0);
        assert_eq!(gso_run(&q(&[(1, 1000)])), 1);
        assert_eq!(
            gso_run(&q(&[(1, 1000), (1, 1000), (1, 1000), (2, 1000)])),
            3
        );
        // The last may be shorter; nothing after it joins.
        assert_eq!(gso_run(&q(&[(1, 1000), (1, 1000), (1, 400), (1, 400)])), 3);
        // A longer one cannot.
        assert_eq!(gso_run(&q(&[(1, 1000), (1, 1001)])), 1);
        assert_eq!(gso_run(&q(&[(1, 0), (1, 0)])), 1);
        // Kernel limits: 64 segments, 64 KB.
        assert_eq!(gso_run(&q(&[(1, 100); 70])), GSO_MAX_SEGMENTS);
        assert_eq!(gso_run(&q(&[(1, 1200); 60])), GSO_MAX_BYTES / 1200);
    }

    #[test]
    fn a_run_to_one_viewer_arrives_as_separate_datagrams_in_order() {
        for (mut q, gso) in [
            (SendQueue::default(), true),
            (SendQueue::without_gso(), false),
        ] {
            let m = Metrics::new();
            let tx = socket();
            let a = socket();
            let b = socket();
            let (ta, tb) = (a.local_addr().unwrap(), b.local_addr().unwrap());
            // A frame's packets to `a` (last shorter), audio to `b`, then more to `a`.
            let sent: Vec<(SocketAddr, Vec<u8>)> = vec![
                (ta, vec![1; 1100]),
                (ta, vec![2; 1100]),
                (ta, vec![3; 1100]),
                (ta, vec![4; 700]),
                (tb, vec![5; 120]),
                (ta, vec![6; 1100]),
                (ta, vec![7; 1100]),
                (ta, vec![8; 90]),
            ];
            for (to, d) in &sent {
                q.push(&tx, *to, d.clone(), &m);
            }
            q.flush(&tx, &m);
            // Linux ≥ 4.18 has UDP GSO (Debian 12: 6.1): the runs went as GSO sends.
            assert_eq!(q.gso, gso, "GSO still in use after the runs");
            let in_runs = if gso { 7 } else { 0 };
            assert_eq!(m.udp_gso_datagrams_out.get(), in_runs);
            assert_eq!(m.udp_datagrams_out.get(), sent.len() as u64);
            let mut buf = [0u8; 2048];
            for (to, d) in &sent {
                let rx = if *to == ta { &a } else { &b };
                let (n, from) = rx.recv_from(&mut buf).unwrap();
                assert_eq!(from, tx.local_addr().unwrap());
                assert_eq!(&buf[..n], &d[..], "datagram {} whole and in order", d[0]);
            }
        }
    }

    #[test]
    fn batches_reach_every_destination_in_order() {
        let m = Metrics::new();
        let tx = socket();
        let rx: Vec<std::net::UdpSocket> = (0..3).map(|_| socket()).collect();
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
    fn a_run_across_the_batch_boundary_is_not_cut() {
        use nix::sys::socket::{recvmsg, setsockopt, sockopt::UdpGroSegment, ControlMessageOwned};
        let m = Metrics::new();
        let tx = socket();
        let others: Vec<std::net::UdpSocket> = (0..2).map(|_| socket()).collect();
        // The viewer's socket takes a GSO run whole, so a cut run shows as two receives.
        let viewer = socket();
        setsockopt(&viewer, UdpGroSegment, &true).unwrap();
        let mut q = SendQueue::default();
        for i in 0..(BATCH - 2) {
            q.push(&tx, others[i % 2].local_addr().unwrap(), vec![0; 100], &m);
        }
        for i in 0..6u8 {
            q.push(&tx, viewer.local_addr().unwrap(), vec![i; 1000], &m);
        }
        assert_eq!(q.len(), BATCH + 4, "the run stays queued with the batch");
        // The next destination sends the batch first.
        q.push(&tx, others[0].local_addr().unwrap(), vec![0; 100], &m);
        assert_eq!(q.len(), 1);
        assert_eq!(m.udp_gso_datagrams_out.get(), 6);
        assert_eq!(m.udp_gso_sends.get(), 1, "one send");
        let mut buf = vec![0u8; 65_536];
        let mut iov = [std::io::IoSliceMut::new(&mut buf)];
        let mut space = nix::cmsg_space!(i32);
        let msg = recvmsg::<SockaddrStorage>(
            viewer.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::empty(),
        )
        .unwrap();
        let segment = msg.cmsgs().unwrap().find_map(|c| match c {
            ControlMessageOwned::UdpGroSegments(s) => Some(s),
            _ => None,
        });
        assert_eq!((msg.bytes, segment), (6000, Some(1000)), "one run of six");
        for (i, d) in buf[..6000].chunks(1000).enumerate() {
            assert!(d.iter().all(|&b| b == i as u8), "datagram {i} in order");
        }
    }

    #[test]
    fn the_open_run_is_what_a_datagram_may_still_join() {
        let m = Metrics::new();
        let tx = socket();
        let a = socket();
        let b = socket();
        let (ta, tb) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        let mut q = SendQueue::default();
        assert_eq!(q.run_size(ta), None);
        q.push(&tx, ta, vec![0; 1000], &m);
        assert_eq!((q.run_size(ta), q.run_size(tb)), (Some(1000), None));
        q.push(&tx, ta, vec![0; 1000], &m);
        assert_eq!(q.run_size(ta), Some(1000));
        // A shorter one ends it.
        q.push(&tx, ta, vec![0; 400], &m);
        assert_eq!(q.run_size(ta), None);
        q.push(&tx, tb, vec![0; 1000], &m);
        assert_eq!((q.run_size(ta), q.run_size(tb)), (None, Some(1000)));
        // So does another destination, and the kernel's segment limit.
        q.push(&tx, ta, vec![0; 100], &m);
        assert_eq!(q.run_size(tb), None);
        for _ in 1..GSO_MAX_SEGMENTS {
            q.push(&tx, ta, vec![0; 100], &m);
        }
        assert_eq!(q.run_size(ta), None, "64 segments: full");
        q.push(&tx, ta, vec![0; 100], &m);
        assert_eq!(q.run_size(ta), Some(100));
        q.flush(&tx, &m);
        assert_eq!(q.run_size(ta), None, "nothing queued");
        // Without GSO there is no run to join.
        let mut plain = SendQueue::without_gso();
        plain.push(&tx, ta, vec![0; 1000], &m);
        assert_eq!(plain.run_size(ta), None);
    }

    #[test]
    fn sent_buffers_come_back_for_reuse() {
        let m = Metrics::new();
        let tx = socket();
        let sink = socket();
        let mut q = SendQueue::default();
        for i in 0..10u8 {
            let mut b = q.buffer();
            b.extend_from_slice(&[i; 100]);
            q.push(&tx, sink.local_addr().unwrap(), b, &m);
        }
        assert!(q.spare.is_empty());
        q.flush(&tx, &m);
        assert_eq!(q.spare.len(), 10);
        let b = q.buffer();
        assert!(b.is_empty() && b.capacity() >= DATAGRAM_CAPACITY);
        assert_eq!(q.spare.len(), 9);
    }

    #[test]
    fn a_refused_destination_does_not_stop_the_batch() {
        let m = Metrics::new();
        let tx = socket();
        let good = socket();
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
