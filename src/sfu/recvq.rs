//! The worker's incoming datagrams, read in batches with `recvmmsg(2)`.
//!
//! One call fills up to [`BATCH`] buffers, so a burst (a keyframe from a publisher, RTCP from
//! many viewers, the packets of many rooms' publishers on one worker) costs one syscall per
//! batch instead of one per datagram. Neither std nor mio offers it, hence `nix`. A datagram
//! longer than [`MAX_DATAGRAM`] arrives truncated and is dropped here, not handed on cut.
//!
//! With [`enable_timestamps`], each datagram carries the kernel's arrival time
//! (`SO_TIMESTAMPNS`), from which the worker measures how long it holds packets.

use std::io::IoSliceMut;
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::AsRawFd;
use std::time::{Duration, SystemTime};

use nix::errno::Errno;
use nix::sys::socket::{
    recvmmsg, setsockopt, sockopt, ControlMessageOwned, MsgFlags, MultiHeaders, SockaddrStorage,
};
use nix::sys::time::TimeSpec;

/// Datagrams per `recvmmsg` call.
pub(crate) const BATCH: usize = 32;

/// Largest datagram taken: WebRTC stays under the path MTU (~1 200–1 500 bytes).
pub(crate) const MAX_DATAGRAM: usize = 2048;

/// Receive buffers and what the last call put in them.
pub(crate) struct RecvBatch {
    bufs: Vec<Vec<u8>>,
    got: Vec<(usize, Option<SocketAddr>, Option<SystemTime>)>,
}

impl Default for RecvBatch {
    fn default() -> Self {
        RecvBatch {
            bufs: (0..BATCH).map(|_| vec![0u8; MAX_DATAGRAM]).collect(),
            got: Vec::with_capacity(BATCH),
        }
    }
}

/// The message headers `recvmmsg` fills. They hold raw pointers (not `Send`), so the worker
/// makes them on its own thread and passes them in. One set per socket: the kernel shrinks
/// each header's address length to the last source's and nix does not reset it, so a set
/// used on an IPv4 socket would cut IPv6 sources short (one socket has one family).
pub(crate) fn headers() -> MultiHeaders<SockaddrStorage> {
    MultiHeaders::preallocate(BATCH, Some(nix::cmsg_space!(TimeSpec)))
}

/// Asks the kernel to stamp each datagram's arrival on `socket` (`SO_TIMESTAMPNS`).
pub(crate) fn enable_timestamps(socket: &impl std::os::fd::AsFd) -> std::io::Result<()> {
    setsockopt(socket, sockopt::ReceiveTimestampns, &true)?;
    Ok(())
}

impl RecvBatch {
    /// Reads up to [`BATCH`] datagrams without blocking. `Ok(0)`: nothing waiting; an
    /// interrupted call is an error of kind `Interrupted` (call again).
    pub(crate) fn recv(
        &mut self,
        socket: &impl AsRawFd,
        headers: &mut MultiHeaders<SockaddrStorage>,
    ) -> std::io::Result<usize> {
        self.got.clear();
        let mut it = self.bufs.iter_mut();
        let mut slices: [[IoSliceMut<'_>; 1]; BATCH] = std::array::from_fn(|_| {
            [IoSliceMut::new(
                it.next().map(|b| b.as_mut_slice()).unwrap_or_default(),
            )]
        });
        match recvmmsg(
            socket.as_raw_fd(),
            headers,
            slices.iter_mut(),
            MsgFlags::MSG_DONTWAIT,
            None,
        ) {
            Ok(results) => {
                for r in results {
                    if r.flags.contains(MsgFlags::MSG_TRUNC) {
                        self.got.push((0, None, None));
                        continue;
                    }
                    let arrived = r.cmsgs().ok().and_then(|mut c| {
                        c.find_map(|m| match m {
                            ControlMessageOwned::ScmTimestampns(ts) => {
                                let (s, ns) = (ts.tv_sec(), ts.tv_nsec());
                                Some(
                                    SystemTime::UNIX_EPOCH
                                        + Duration::new(u64::try_from(s).ok()?, ns as u32),
                                )
                            }
                            _ => None,
                        })
                    });
                    self.got
                        .push((r.bytes, r.address.as_ref().and_then(to_std), arrived));
                }
                Ok(self.got.len())
            }
            Err(Errno::EAGAIN) => Ok(0),
            Err(e) => Err(e.into()),
        }
    }

    /// Datagram `i` of the last call and its source; `None` if it was truncated (too long)
    /// or came without an IP source address.
    pub(crate) fn get(&self, i: usize) -> Option<(&[u8], SocketAddr)> {
        let &(len, from, _) = self.got.get(i)?;
        Some((&self.bufs[i][..len], from?))
    }

    /// When the kernel took datagram `i` of the last call in (with [`enable_timestamps`]).
    pub(crate) fn arrived(&self, i: usize) -> Option<SystemTime> {
        self.got.get(i)?.2
    }
}

fn to_std(a: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = a.as_sockaddr_in() {
        return Some(SocketAddr::V4(SocketAddrV4::from(*v4)));
    }
    if let Some(v6) = a.as_sockaddr_in6() {
        return Some(SocketAddr::V6(SocketAddrV6::from(*v6)));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_comes_in_batches_with_sources_and_long_datagrams_are_dropped() {
        let rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_nonblocking(true).unwrap();
        let a = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = std::net::UdpSocket::bind("[::1]:0").ok();
        let to = rx.local_addr().unwrap();
        enable_timestamps(&rx).unwrap();
        let mut q = RecvBatch::default();
        let mut h = headers();
        assert_eq!(q.recv(&rx, &mut h).unwrap(), 0, "nothing waiting");
        let before = SystemTime::now();

        for i in 0..(BATCH + 3) {
            a.send_to(&vec![i as u8; 100 + i], to).unwrap();
        }
        a.send_to(&vec![7u8; MAX_DATAGRAM + 1], to).unwrap();
        let mut seen = Vec::new();
        let mut calls = 0;
        loop {
            let n = q.recv(&rx, &mut h).unwrap();
            if n == 0 {
                break;
            }
            calls += 1;
            for i in 0..n {
                match q.get(i) {
                    Some((d, from)) => {
                        let t = q.arrived(i).expect("kernel arrival time");
                        assert!(t >= before - Duration::from_millis(5) && t <= SystemTime::now());
                        assert_eq!(from, a.local_addr().unwrap());
                        seen.push((d.len(), d[0]));
                    }
                    None => seen.push((0, 0)),
                }
            }
        }
        assert_eq!(calls, 2, "{} datagrams in two calls", BATCH + 4);
        let want: Vec<(usize, u8)> = (0..(BATCH + 3))
            .map(|i| (100 + i, i as u8))
            .chain([(0, 0)])
            .collect();
        assert_eq!(seen, want, "in order, whole; the long one dropped");
        assert!(q.get(BATCH).is_none());

        // An IPv6 source comes through as such (where the host has IPv6 loopback).
        if let (Some(b), Ok(rx6)) = (b, std::net::UdpSocket::bind("[::1]:0")) {
            rx6.set_nonblocking(true).unwrap();
            let mut h = headers();
            b.send_to(b"six", rx6.local_addr().unwrap()).unwrap();
            let mut n = 0;
            for _ in 0..100 {
                n = q.recv(&rx6, &mut h).unwrap();
                if n > 0 {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            assert_eq!(n, 1);
            assert_eq!(q.get(0), Some((&b"six"[..], b.local_addr().unwrap())));
        }
    }
}
