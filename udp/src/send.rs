//! Outgoing datagrams, sent in batches with `sendmmsg(2)`, and runs to one destination as
//! one UDP GSO send; never reordered, read or rewritten here.
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
//! run (of up to the kernel's 64 datagrams). Runs to many viewers go out together: one
//! `sendmmsg` whose messages are each a viewer's run (several iovecs) or a single datagram,
//! sharing one `UDP_SEGMENT` size (a single no longer than it goes as a plain datagram), so a
//! frame fanned out to 32 viewers costs one system call, not 32. Neither std nor mio offers
//! either call, hence `nix`. Datagrams wait here at most until the end of the worker's
//! current loop iteration, and leave in the order they were queued.

use std::io::IoSlice;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::time::{Duration, SystemTime};

use nix::errno::Errno;
use nix::sys::socket::{sendmmsg, ControlMessage, MsgFlags, MultiHeaders, SockaddrStorage};

/// Messages (single datagrams or GSO runs) per `sendmmsg` call.
pub const BATCH: usize = 32;

/// Capacity of a datagram buffer: a full-size SRTP packet.
const DATAGRAM_CAPACITY: usize = 1500;

/// Sent datagrams' buffers kept for reuse.
const SPARE_BUFFERS: usize = 256;

/// Most segments the kernel accepts in one UDP GSO send (`UDP_MAX_SEGMENTS`).
const GSO_MAX_SEGMENTS: usize = 64;

/// Most bytes in one UDP GSO send (an IP datagram's payload, less the UDP header).
const GSO_MAX_BYTES: usize = 65_000;

/// What a [`SendQueue`] counts as it sends. The server adds these to its metrics once per
/// loop turn; the queue itself keeps no figures.
pub trait SendTally {
    /// One send system call made.
    fn send_call(&mut self);
    /// `datagrams` left in one call, `gso_datagrams` of them in `gso_sends` GSO sends.
    fn sent(&mut self, datagrams: u64, gso_sends: u64, gso_datagrams: u64);
    /// `datagrams` just sent were held `held` since the earliest arrival noted in the turn
    /// ([`SendQueue::note_arrival`]).
    fn held(&mut self, held: Duration, datagrams: u64);
    /// A run to one destination was cut because the next datagram to it was longer.
    fn run_break(&mut self);
    /// `datagrams` dropped because the socket's send buffer was full (`EAGAIN`).
    fn dropped(&mut self, datagrams: u64);
}

/// Plain counts of what a [`SendQueue`] sent, for a sender without metrics (the load
/// generator's floor, tests).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Send system calls.
    pub send_calls: u64,
    /// Datagrams sent.
    pub datagrams_out: u64,
    /// Of those, datagrams sent inside GSO sends.
    pub gso_datagrams_out: u64,
    /// GSO sends.
    pub gso_sends: u64,
    /// Runs cut by a longer datagram.
    pub gso_run_breaks: u64,
    /// Datagrams dropped on a full send buffer.
    pub dropped: u64,
}

impl SendTally for Counts {
    fn send_call(&mut self) {
        self.send_calls += 1;
    }
    fn sent(&mut self, datagrams: u64, gso_sends: u64, gso_datagrams: u64) {
        self.datagrams_out += datagrams;
        self.gso_sends += gso_sends;
        self.gso_datagrams_out += gso_datagrams;
    }
    fn held(&mut self, _: Duration, _: u64) {}
    fn run_break(&mut self) {
        self.gso_run_breaks += 1;
    }
    fn dropped(&mut self, datagrams: u64) {
        self.dropped += datagrams;
    }
}

/// The socket a flush writes to, and the room a test left in its buffer.
struct Fd<'a> {
    fd: i32,
    room: &'a mut Option<usize>,
}

/// Datagrams waiting to be sent.
pub struct SendQueue {
    /// Destinations stay `SocketAddr`s (32 bytes) until a message is built: the kernel's
    /// 128-byte form is made once per message, not once per datagram.
    queued: Vec<(SocketAddr, Vec<u8>)>,
    /// Buffers of sent datagrams, for the next ones (no allocation per packet).
    spare: Vec<Vec<u8>>,
    /// Kernel arrival of the earliest datagram read in this loop turn, if any.
    arrived: Option<SystemTime>,
    /// Whether UDP GSO is used; cleared for good the first time the kernel refuses it.
    gso: bool,
    /// The run of equal-sized datagrams at the end of the queue and their destination, while
    /// another of the same size may still join it (see [`SendQueue::run_size`]).
    run: Option<(SocketAddr, Run)>,
    /// Messages queued: datagrams that start a new message (not joining the open run).
    messages: usize,
    /// Where each message starts in `queued` and how many datagrams it holds (kept for its
    /// allocation).
    msgs: Vec<(usize, usize)>,
    /// Messages the socket buffer still takes before the kernel reports it full, when a test
    /// stands in such a kernel ([`SendQueue::fill_after`]); `None`: the real kernel decides.
    room: Option<usize>,
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
            messages: 0,
            msgs: Vec::new(),
            room: None,
        }
    }
}

impl SendQueue {
    /// A queue that uses UDP GSO while the kernel takes it, or never (one datagram per
    /// message, as after a refusal).
    pub fn new(gso: bool) -> Self {
        SendQueue {
            gso,
            ..Default::default()
        }
    }

    #[cfg(test)]
    fn without_gso() -> Self {
        SendQueue::new(false)
    }

    /// For tests of a full socket buffer (loopback never fills one: its datagrams leave the
    /// sender's account as they are sent): after `messages` more messages, every send fails
    /// as the kernel fails it when the buffer is full (`EAGAIN`).
    #[doc(hidden)]
    pub fn fill_after(&mut self, messages: usize) {
        self.room = Some(messages);
    }

    #[inline]
    /// Notes a datagram read in this loop turn: what leaves until [`SendQueue::end_turn`] is
    /// timed from the earliest such arrival (`forward_residence_seconds`).
    pub fn note_arrival(&mut self, at: SystemTime) {
        self.arrived = Some(self.arrived.map_or(at, |a| a.min(at)));
    }

    #[inline]
    /// Whether runs may still leave as UDP GSO sends (false after the kernel refused it).
    pub fn gso(&self) -> bool {
        self.gso
    }

    #[inline]
    /// The earliest kernel arrival noted in this loop turn.
    pub fn arrival(&self) -> Option<SystemTime> {
        self.arrived
    }

    /// Sends everything queued and closes the loop turn.
    pub fn end_turn(&mut self, socket: &impl AsRawFd, t: &mut impl SendTally) {
        self.flush(socket, t);
        self.arrived = None;
    }

    /// Queues a datagram; sends the batch when it holds [`BATCH`] messages and this datagram
    /// would start another (a datagram joining the open run never cuts it).
    pub fn push(
        &mut self,
        socket: &impl AsRawFd,
        to: SocketAddr,
        data: Vec<u8>,
        t: &mut impl SendTally,
    ) {
        let len = data.len();
        let joins = self.gso
            && matches!(self.run, Some((dest, r)) if dest == to && len > 0 && r.admits(len));
        if self.gso && !joins && matches!(self.run, Some((dest, r)) if dest == to && len > r.size) {
            // The run to this viewer ends only because this datagram is longer.
            t.run_break();
        }
        if !joins && self.messages >= BATCH {
            self.flush(socket, t);
        }
        if !joins {
            self.messages += 1;
        }
        self.queued.push((to, data));
        self.run = match self.run {
            Some((dest, mut r)) if joins => {
                r.add(len);
                // A shorter datagram can only end a run.
                (len == r.size).then_some((dest, r))
            }
            _ => (len > 0).then_some((to, Run::new(len))),
        };
    }

    #[inline]
    /// The size a datagram to `to` queued next must have to join the run of equal-sized
    /// datagrams to `to` at the end of the queue, if there is one it can still join (and
    /// GSO is in use).
    pub fn run_size(&self, to: SocketAddr) -> Option<usize> {
        match self.run {
            Some((dest, r)) if self.gso && dest == to && r.admits(r.size) => Some(r.size),
            _ => None,
        }
    }

    #[inline]
    /// An empty buffer for a datagram, reused from one already sent when there is one.
    pub fn buffer(&mut self) -> Vec<u8> {
        self.spare
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(DATAGRAM_CAPACITY))
    }

    #[inline]
    /// Datagrams waiting.
    pub fn len(&self) -> usize {
        self.queued.len()
    }

    #[inline]
    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.queued.is_empty()
    }

    /// Sends everything queued, in order. A datagram the kernel refuses (an ICMP error
    /// reported for its destination, a full socket buffer) is dropped, as `sendto` would
    /// have dropped it; the rest still go.
    pub fn flush(&mut self, socket: &impl AsRawFd, t: &mut impl SendTally) {
        if self.queued.is_empty() {
            return;
        }
        let mut fd = Fd {
            fd: socket.as_raw_fd(),
            room: &mut self.room,
        };
        self.run = None;
        self.messages = 0;
        let queued = std::mem::take(&mut self.queued);
        let since = self.arrived;
        // Cut the queue into messages: a GSO run to one destination, or one datagram.
        let mut msgs = std::mem::take(&mut self.msgs);
        msgs.clear();
        let mut i = 0;
        while i < queued.len() {
            let n = if self.gso {
                gso_run(&queued[i..]).max(1)
            } else {
                1
            };
            msgs.push((i, n));
            i += n;
        }
        // Send them in order, as many consecutive ones per call as can share a segment size.
        let mut j = 0;
        while j < msgs.len() {
            let (k, segment) = if self.gso {
                compatible(&queued, &msgs[j..])
            } else {
                ((msgs.len() - j).min(BATCH), None)
            };
            j += k;
            if !send_messages(&mut fd, &queued, &msgs[j - k..j], segment, t, since) {
                tracing::info!("UDP GSO not supported here; sending datagrams one by one");
                self.gso = false;
                // The rest was cut into runs: it goes datagram by datagram too.
                if let Some(&(at, _)) = msgs.get(j) {
                    send_batch(&mut fd, &queued[at..], t, since);
                }
                break;
            }
        }
        self.msgs = msgs;
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

/// Sends `msgs` (ranges of `queued`) with `sendmmsg`, each message one destination's
/// datagrams, all with `UDP_SEGMENT` = `segment` when given. A message the kernel refuses is
/// dropped, as `sendto` would drop it (a run's datagrams are first tried one by one: a run
/// larger than the path allows may still go so). Returns false if the kernel does not do
/// GSO on this socket; what was not sent then went one datagram at a time.
fn send_messages(
    fd: &mut Fd<'_>,
    queued: &[(SocketAddr, Vec<u8>)],
    msgs: &[(usize, usize)],
    segment: Option<u16>,
    t: &mut impl SendTally,
    since: Option<SystemTime>,
) -> bool {
    // nix's message headers hold raw pointers (not Send), so they live only here.
    let space = segment.map(|_| nix::cmsg_space!(u16));
    let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(msgs.len(), space);
    let flat: Vec<IoSlice<'_>> = msgs
        .iter()
        .flat_map(|&(at, n)| queued[at..at + n].iter().map(|(_, d)| IoSlice::new(d)))
        .collect();
    let mut slices: Vec<&[IoSlice<'_>]> = Vec::with_capacity(msgs.len());
    let mut from = 0;
    for &(_, n) in msgs {
        slices.push(&flat[from..from + n]);
        from += n;
    }
    let addrs: Vec<Option<SockaddrStorage>> = msgs
        .iter()
        .map(|&(at, _)| Some(SockaddrStorage::from(queued[at].0)))
        .collect();
    let size = segment.unwrap_or(0);
    let gso = [ControlMessage::UdpGsoSegments(&size)];
    let cmsgs: &[ControlMessage<'_>] = if segment.is_some() { &gso } else { &[] };
    let mut start = 0;
    while start < msgs.len() {
        t.send_call();
        let end = fd.room.map_or(msgs.len(), |r| msgs.len().min(start + r));
        let result = if end == start {
            Err(Errno::EAGAIN)
        } else {
            sendmmsg(
                fd.fd,
                &mut headers,
                &slices[start..end],
                &addrs[start..end],
                cmsgs,
                MsgFlags::MSG_DONTWAIT,
            )
            .map(|sent| sent.count())
        };
        match result {
            Ok(n) => {
                if let Some(r) = fd.room.as_mut() {
                    *r -= n;
                }
                let (mut datagrams, mut gso_sends, mut gso_datagrams) = (0, 0, 0);
                for &(_, len) in &msgs[start..start + n] {
                    datagrams += len;
                    if len > 1 {
                        gso_datagrams += len;
                        gso_sends += 1;
                    }
                }
                t.sent(datagrams as u64, gso_sends, gso_datagrams as u64);
                // They all left with this call.
                residence(t, since, datagrams);
                // The kernel stops before a message it refuses; the next call starts with
                // that one and reports why. (It never takes none without an error; were it
                // to, skipping one keeps this loop finite.)
                start += n.max(1);
            }
            Err(Errno::EINTR) => {}
            Err(Errno::EAGAIN) => {
                // Socket buffer full: the rest is lost, as with sendto, and counted.
                let dropped: usize = msgs[start..].iter().map(|&(_, n)| n).sum();
                tracing::debug!(dropped, "send buffer full");
                t.dropped(dropped as u64);
                break;
            }
            // No GSO here (old kernel, or a device that cannot checksum it).
            Err(Errno::EIO | Errno::EOPNOTSUPP | Errno::ENOPROTOOPT) if segment.is_some() => {
                for &(at, n) in &msgs[start..] {
                    send_batch(fd, &queued[at..at + n], t, since);
                }
                return false;
            }
            Err(e) => {
                let (at, n) = msgs[start];
                tracing::debug!(datagrams = n, "send failed: {e}");
                if n > 1 {
                    send_batch(fd, &queued[at..at + n], t, since);
                }
                start += 1;
            }
        }
    }
    true
}

/// How many of `msgs` (from the first, at most [`BATCH`]) can go in one `sendmmsg`, and the
/// `UDP_SEGMENT` size they share if any is a GSO run: every run's datagrams have that size
/// (the last may be shorter), and no single datagram is longer (the kernel would cut it).
fn compatible(queued: &[(SocketAddr, Vec<u8>)], msgs: &[(usize, usize)]) -> (usize, Option<u16>) {
    let mut segment: Option<u16> = None;
    let mut longest_single = 0;
    let mut k = 0;
    for &(at, n) in msgs.iter().take(BATCH) {
        let len = queued[at].1.len();
        if n > 1 {
            let Ok(size) = u16::try_from(len) else {
                break;
            };
            match segment {
                Some(s) if s != size => break,
                None if longest_single > len => break,
                _ => segment = Some(size),
            }
        } else if segment.is_some_and(|s| len > usize::from(s)) {
            break;
        } else {
            longest_single = longest_single.max(len);
        }
        k += 1;
    }
    // `k` is 0 only for a run whose datagrams exceed u16, which `gso_run` never makes (a
    // run holds at most GSO_MAX_BYTES, so each of its datagrams is under 32 500 bytes).
    (k.max(1), segment)
}

/// How many datagrams from the start of `q` can go as one GSO send: same destination, all
/// the size of the first except that the last may be shorter, within the kernel's limits.
fn gso_run(q: &[(SocketAddr, Vec<u8>)]) -> usize {
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

/// Records how long `n` datagrams just sent were held, if the turn read any datagram.
fn residence(t: &mut impl SendTally, since: Option<SystemTime>, n: usize) {
    let Some(d) = since.and_then(|at| SystemTime::now().duration_since(at).ok()) else {
        return;
    };
    t.held(d, n as u64);
}

/// Sends `batch` one datagram per message (no GSO), skipping datagrams the kernel refuses.
fn send_batch(
    fd: &mut Fd<'_>,
    batch: &[(SocketAddr, Vec<u8>)],
    t: &mut impl SendTally,
    since: Option<SystemTime>,
) {
    let singles: Vec<(usize, usize)> = (0..batch.len()).map(|i| (i, 1)).collect();
    send_messages(fd, batch, &singles, None, t, since);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A UDP socket on a free loopback port.
    fn socket() -> std::net::UdpSocket {
        std::net::UdpSocket::bind("127.0.0.1:0").unwrap()
    }

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn gso_runs_stop_at_another_address_a_longer_or_a_short_datagram() {
        let q = |v: &[(u16, usize)]| -> Vec<(SocketAddr, Vec<u8>)> {
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
            let mut m = Counts::default();
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
                q.push(&tx, *to, d.clone(), &mut m);
            }
            q.flush(&tx, &mut m);
            // Linux ≥ 4.18 has UDP GSO (Debian 12: 6.1): the runs went as GSO sends.
            assert_eq!(q.gso, gso, "GSO still in use after the runs");
            let in_runs = if gso { 7 } else { 0 };
            assert_eq!(m.gso_datagrams_out, in_runs);
            assert_eq!(m.datagrams_out, sent.len() as u64);
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
        let mut m = Counts::default();
        let tx = socket();
        let rx: Vec<std::net::UdpSocket> = (0..3).map(|_| socket()).collect();
        let mut q = SendQueue::default();
        for i in 0..(BATCH + 5) {
            let to = rx[i % 3].local_addr().unwrap();
            q.push(&tx, to, vec![i as u8; 100 + i], &mut m);
        }
        assert_eq!(q.len(), 5, "a full batch went at once");
        q.flush(&tx, &mut m);
        assert!(q.is_empty());
        assert_eq!(m.datagrams_out, (BATCH + 5) as u64);
        let mut buf = [0u8; 2048];
        for i in 0..(BATCH + 5) {
            let (n, _) = rx[i % 3].recv_from(&mut buf).unwrap();
            assert_eq!((n, buf[0]), (100 + i, i as u8));
        }
    }

    #[test]
    fn a_run_across_the_batch_boundary_is_not_cut() {
        use nix::sys::socket::{recvmsg, setsockopt, sockopt::UdpGroSegment, ControlMessageOwned};
        let mut m = Counts::default();
        let tx = socket();
        let others: Vec<std::net::UdpSocket> = (0..2).map(|_| socket()).collect();
        // The viewer's socket takes a GSO run whole, so a cut run shows as two receives.
        let viewer = socket();
        setsockopt(&viewer, UdpGroSegment, &true).unwrap();
        let mut q = SendQueue::default();
        for i in 0..(BATCH - 1) {
            q.push(
                &tx,
                others[i % 2].local_addr().unwrap(),
                vec![0; 100],
                &mut m,
            );
        }
        // The batch's last message: a run, which may grow past BATCH datagrams.
        for i in 0..6u8 {
            q.push(&tx, viewer.local_addr().unwrap(), vec![i; 1000], &mut m);
        }
        assert_eq!(q.len(), BATCH + 5, "the run stays queued with the batch");
        // The next destination sends the batch first.
        q.push(&tx, others[0].local_addr().unwrap(), vec![0; 100], &mut m);
        assert_eq!(q.len(), 1);
        assert_eq!(m.gso_datagrams_out, 6);
        assert_eq!(m.gso_sends, 1, "one send");
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

    /// Reads one datagram, or one GRO run, from `s`: its bytes and segment size.
    fn recv_gro(s: &std::net::UdpSocket) -> (Vec<u8>, Option<i32>) {
        use nix::sys::socket::{recvmsg, ControlMessageOwned};
        let mut buf = vec![0u8; 65_536];
        let mut iov = [std::io::IoSliceMut::new(&mut buf)];
        let mut space = nix::cmsg_space!(i32);
        let msg = recvmsg::<SockaddrStorage>(
            s.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::empty(),
        )
        .unwrap();
        let n = msg.bytes;
        let segment = msg.cmsgs().unwrap().find_map(|c| match c {
            ControlMessageOwned::UdpGroSegments(s) => Some(s),
            _ => None,
        });
        (buf[..n].to_vec(), segment)
    }

    #[test]
    fn many_viewers_runs_share_one_call_and_no_single_is_cut() {
        use nix::sys::socket::{setsockopt, sockopt::UdpGroSegment};
        let mut m = Counts::default();
        let tx = socket();
        let viewers: Vec<std::net::UdpSocket> = (0..5).map(|_| socket()).collect();
        for v in &viewers {
            setsockopt(v, UdpGroSegment, &true).unwrap();
        }
        let to = |i: usize| viewers[i].local_addr().unwrap();
        let mut q = SendQueue::default();
        // A frame to viewers 0-2 (three of 1100, the last 500), an audio packet to viewer 3
        // after each; then to viewer 3 a datagram longer than that segment size, which must
        // not be cut into 1100 + 200, and a run of two of its size to viewer 4.
        for i in 0..3 {
            for part in 0..4u8 {
                let len = if part == 3 { 500 } else { 1100 };
                q.push(&tx, to(i), vec![part; len], &mut m);
            }
            q.push(&tx, to(3), vec![9; 80], &mut m);
        }
        q.push(&tx, to(3), vec![7; 1300], &mut m);
        q.push(&tx, to(4), vec![8; 1300], &mut m);
        q.push(&tx, to(4), vec![8; 1300], &mut m);
        q.flush(&tx, &mut m);
        assert_eq!(m.datagrams_out, 12 + 3 + 3);
        assert_eq!(m.gso_sends, 4, "three runs of 4 and one of 2");
        assert_eq!(m.gso_datagrams_out, 12 + 2);
        // The runs of 1100 and the audio in one call; the 1300s in the next.
        assert_eq!(m.send_calls, 2);
        for v in &viewers[..3] {
            let (bytes, segment) = recv_gro(v);
            assert_eq!((bytes.len(), segment), (3 * 1100 + 500, Some(1100)));
            for (part, d) in bytes.chunks(1100).enumerate() {
                assert!(
                    d.iter().all(|&b| b == part as u8),
                    "datagram {part} in order"
                );
            }
        }
        for _ in 0..3 {
            assert_eq!(recv_gro(&viewers[3]), (vec![9; 80], None));
        }
        let (bytes, segment) = recv_gro(&viewers[3]);
        assert_eq!((bytes.len(), segment), (1300, None), "whole, not cut");
        assert!(bytes.iter().all(|&b| b == 7));
        let (bytes, segment) = recv_gro(&viewers[4]);
        assert_eq!((bytes.len(), segment), (2600, Some(1300)));
        assert!(bytes.iter().all(|&b| b == 8));
    }

    #[test]
    fn the_open_run_is_what_a_datagram_may_still_join() {
        let mut m = Counts::default();
        let tx = socket();
        let a = socket();
        let b = socket();
        let (ta, tb) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        let mut q = SendQueue::default();
        assert_eq!(q.run_size(ta), None);
        q.push(&tx, ta, vec![0; 1000], &mut m);
        assert_eq!((q.run_size(ta), q.run_size(tb)), (Some(1000), None));
        q.push(&tx, ta, vec![0; 1000], &mut m);
        assert_eq!(q.run_size(ta), Some(1000));
        // A shorter one ends it.
        q.push(&tx, ta, vec![0; 400], &mut m);
        assert_eq!(q.run_size(ta), None);
        assert_eq!(m.gso_run_breaks, 0);
        q.push(&tx, tb, vec![0; 1000], &mut m);
        assert_eq!((q.run_size(ta), q.run_size(tb)), (None, Some(1000)));
        // So does another destination, and the kernel's segment limit.
        q.push(&tx, ta, vec![0; 100], &mut m);
        assert_eq!(q.run_size(tb), None);
        for _ in 1..GSO_MAX_SEGMENTS {
            q.push(&tx, ta, vec![0; 100], &mut m);
        }
        assert_eq!(q.run_size(ta), None, "64 segments: full");
        q.push(&tx, ta, vec![0; 100], &mut m);
        assert_eq!(q.run_size(ta), Some(100));
        q.flush(&tx, &mut m);
        assert_eq!(q.run_size(ta), None, "nothing queued");
        // A longer one cuts it (counted: the padding exists to prevent that); another
        // destination or a shorter one does not count.
        assert_eq!(m.gso_run_breaks, 0);
        q.push(&tx, tb, vec![0; 1000], &mut m);
        q.push(&tx, tb, vec![0; 1001], &mut m);
        assert_eq!(m.gso_run_breaks, 1);
        assert_eq!(q.run_size(tb), Some(1001));
        q.flush(&tx, &mut m);
        // Without GSO there is no run to join.
        let mut plain = SendQueue::without_gso();
        plain.push(&tx, ta, vec![0; 1000], &mut m);
        assert_eq!(plain.run_size(ta), None);
    }

    #[test]
    fn sent_buffers_come_back_for_reuse() {
        let mut m = Counts::default();
        let tx = socket();
        let sink = socket();
        let mut q = SendQueue::default();
        for i in 0..10u8 {
            let mut b = q.buffer();
            b.extend_from_slice(&[i; 100]);
            q.push(&tx, sink.local_addr().unwrap(), b, &mut m);
        }
        assert!(q.spare.is_empty());
        q.flush(&tx, &mut m);
        assert_eq!(q.spare.len(), 10);
        let b = q.buffer();
        assert!(b.is_empty() && b.capacity() >= DATAGRAM_CAPACITY);
        assert_eq!(q.spare.len(), 9);
    }

    #[test]
    fn a_full_send_buffer_drops_the_rest_of_the_batch_and_counts_it() {
        let mut m = Counts::default();
        let tx = socket();
        let rx: Vec<std::net::UdpSocket> = (0..4).map(|_| socket()).collect();
        for r in &rx {
            r.set_nonblocking(true).unwrap();
        }
        let to = |i: usize| rx[i].local_addr().unwrap();
        let mut q = SendQueue::default();
        // A run of three to viewer 0, then one datagram to each of the others: four messages,
        // of which the buffer takes two.
        for _ in 0..3 {
            q.push(&tx, to(0), vec![1; 1000], &mut m);
        }
        for i in 1..4 {
            q.push(&tx, to(i), vec![2; 1000], &mut m);
        }
        q.fill_after(2);
        q.flush(&tx, &mut m);
        assert_eq!((m.datagrams_out, m.dropped), (4, 2));
        assert_eq!(
            m.send_calls, 2,
            "the call that met the full buffer counts too"
        );
        let mut buf = [0u8; 2048];
        assert!(rx[1].recv_from(&mut buf).is_ok());
        for r in &rx[2..] {
            assert!(r.recv_from(&mut buf).is_err(), "dropped, not sent");
        }
        // Still full: the next turn's datagrams are dropped and counted as well.
        q.push(&tx, to(1), vec![3; 10], &mut m);
        q.flush(&tx, &mut m);
        assert_eq!((m.datagrams_out, m.dropped), (4, 3));
        assert!(q.is_empty());
    }

    #[test]
    fn a_refused_destination_does_not_stop_the_batch() {
        let mut m = Counts::default();
        let tx = socket();
        let good = socket();
        let mut q = SendQueue::default();
        // Port 0 cannot be sent to (EINVAL); the datagrams after it still go.
        q.push(&tx, "127.0.0.1:0".parse().unwrap(), vec![1; 10], &mut m);
        q.push(&tx, good.local_addr().unwrap(), vec![2; 10], &mut m);
        q.push(&tx, good.local_addr().unwrap(), vec![3; 10], &mut m);
        q.flush(&tx, &mut m);
        let mut buf = [0u8; 64];
        assert_eq!(good.recv_from(&mut buf).unwrap().0, 10);
        assert_eq!(buf[0], 2);
        assert_eq!(good.recv_from(&mut buf).unwrap().0, 10);
        assert_eq!(buf[0], 3);
    }
}
