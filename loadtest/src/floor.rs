//! `floor`: the least work any 1→N forwarder must do per viewer on this machine, timed the
//! way `broadcast` times classrelay, with no SFU at all.
//!
//! Sender threads (one per media worker it stands for) each own a UDP socket and a share of
//! N viewer sockets. At every frame of the publisher's file (and every 20 ms of audio) a
//! sender does, for each of its viewers in turn, only what cannot be skipped: write an RTP
//! header with the capture time, copy the payload, seal it with that viewer's own
//! AES-256-GCM key (aws-lc-rs; SRTP's AEAD_AES_256_GCM, which str0m prefers, so classrelay
//! negotiates it with the same simulated viewers), and hand the frame's datagrams to the
//! kernel through the server's own send path (`classrelay-udp`: a viewer's share as one UDP
//! GSO run, up to 32 viewers per `sendmmsg`; audio: one datagram per viewer). No receive, no
//! SRTP decrypt, no RTCP, no routing, no str0m: so its latency and CPU per viewer are a
//! lower bound on what classrelay can reach here, and the gap between the two is what code
//! can still win. Viewers' sockets take GSO runs whole and stamp arrivals in the kernel, as
//! in `broadcast`; latency is that stamp minus the capture time the sender wrote just
//! before its fan-out of the frame began.

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use classrelay_udp::{Counts, SendQueue};
use mio::{Events, Interest, Poll, Token};
use rand::RngCore;
use serde::Serialize;

use crate::hist::Histogram;
use crate::swarm::{enable_gro, make_realtime, recv_run, stamp_arrivals, thread_id, OPUS_SILENCE};

/// Largest RTP payload per datagram (the frame is cut into equal parts no larger).
const MAX_PAYLOAD: usize = 1160;
/// RTP header, plus a one-byte-header extension block holding the capture time.
const HEADER: usize = 12 + 4 + 12;
/// AES-GCM tag.
const TAG: usize = 16;
const VIDEO_PT: u8 = 96;
const AUDIO_PT: u8 = 111;

/// What to run.
#[derive(Debug, Clone)]
pub struct FloorOptions {
    pub subscribers: usize,
    /// Sender threads: the media workers the floor stands for.
    pub senders: usize,
    /// Threads reading the viewers' sockets (the generator's swarms).
    pub receivers: usize,
    pub warmup: Duration,
    pub duration: Duration,
    /// The publisher's video (VP8 IVF or H.264 Annex B): only frame sizes are used.
    pub video: std::path::PathBuf,
    pub fps: u32,
    /// Sender threads `SCHED_FIFO` (as `--realtime` runs the server).
    pub realtime: bool,
    /// Several viewers' GSO runs per `sendmmsg` (a call per viewer otherwise).
    pub gso_batch: bool,
    /// Receivers poll without sleeping, so no datagram has to wake one (see `--spin`).
    pub spin: bool,
}

/// Figures of one run.
#[derive(Debug, Clone, Serialize)]
pub struct FloorFigures {
    pub subscribers: usize,
    pub senders: usize,
    pub video_pkt_per_s: f64,
    /// CPU of the sender threads, seconds per second.
    pub cpu_s_per_s: f64,
    pub video_pkt_per_cpu_s: f64,
    /// Sender CPU per viewer per video frame (audio included, pro rata).
    pub cpu_us_per_viewer_frame: f64,
    pub loss_pct: f64,
    pub latency_us: [u64; 3],
}

/// One viewer as a sender sees it.
struct Viewer {
    to: SocketAddr,
    key: LessSafeKey,
    salt: [u8; 12],
    ssrc: u32,
    video_seq: u16,
    audio_seq: u16,
}

struct Shared {
    stop: AtomicBool,
    /// Every sender has returned: `video_sent` is final.
    senders_done: AtomicBool,
    measuring: AtomicBool,
    video_sent: AtomicU64,
    video_received: AtomicU64,
    latency: Histogram,
}

/// Runs the floor and prints its table.
pub fn run(o: &FloorOptions) -> Result<FloorFigures> {
    if o.senders == 0 || o.receivers == 0 || o.subscribers == 0 {
        bail!("--subscribers, --senders and --receivers must be at least 1");
    }
    let (_, frames) = crate::h264::load_video(&o.video)?;
    let sizes: Vec<usize> = frames.iter().map(|f| f.data.len()).collect();
    let shared = Arc::new(Shared {
        stop: AtomicBool::new(false),
        senders_done: AtomicBool::new(false),
        measuring: AtomicBool::new(false),
        video_sent: AtomicU64::new(0),
        video_received: AtomicU64::new(0),
        latency: Histogram::default(),
    });

    // Viewers' sockets, dealt to the receiver threads.
    let mut sockets: Vec<Vec<std::net::UdpSocket>> = (0..o.receivers).map(|_| Vec::new()).collect();
    let mut addrs = Vec::with_capacity(o.subscribers);
    for i in 0..o.subscribers {
        let s = std::net::UdpSocket::bind("127.0.0.1:0")?;
        enable_gro(&s);
        stamp_arrivals(&s);
        s.set_nonblocking(true)?;
        addrs.push(s.local_addr()?);
        sockets[i % o.receivers].push(s);
    }
    let mut threads = Vec::new();
    for set in sockets {
        let sh = shared.clone();
        let spin = o.spin;
        threads.push(std::thread::spawn(move || receive(set, spin, &sh)));
    }

    // Senders: viewer i goes to sender i % senders, as placement spreads viewers.
    let epoch = Instant::now() + Duration::from_millis(50);
    let mut tids = Vec::new();
    let mut senders = Vec::new();
    for s in 0..o.senders {
        let mine: Vec<SocketAddr> = addrs.iter().skip(s).step_by(o.senders).copied().collect();
        let sh = shared.clone();
        let sizes = sizes.clone();
        let fps = o.fps.max(1);
        let gso_batch = o.gso_batch;
        let (tid_tx, tid_rx) = std::sync::mpsc::channel();
        senders.push(std::thread::spawn(move || {
            let _ = tid_tx.send(thread_id());
            send(&mine, &sizes, fps, epoch, gso_batch, &sh)
        }));
        tids.push(tid_rx.recv().context("sender thread")?);
    }
    if o.realtime {
        for &tid in &tids {
            make_realtime(tid, crate::target::SERVER_PRIORITY)?;
        }
    }

    std::thread::sleep(o.warmup);
    shared.latency.reset();
    let cpu0: u64 = tids.iter().map(|&t| thread_cpu_ns(t)).sum();
    let sent0 = shared.video_sent.load(Ordering::Relaxed);
    let t0 = Instant::now();
    shared.measuring.store(true, Ordering::Relaxed);
    std::thread::sleep(o.duration);
    shared.measuring.store(false, Ordering::Relaxed);
    let secs = t0.elapsed().as_secs_f64();
    let cpu1: u64 = tids.iter().map(|&t| thread_cpu_ns(t)).sum();
    let sent = shared.video_sent.load(Ordering::Relaxed) - sent0;
    shared.stop.store(true, Ordering::Relaxed);
    for s in senders {
        s.join().map_err(|_| anyhow::anyhow!("sender panicked"))??;
    }
    shared.senders_done.store(true, Ordering::Relaxed);
    // The receivers return once nothing more arrives.
    for t in threads {
        t.join()
            .map_err(|_| anyhow::anyhow!("receiver panicked"))?
            .context("receiver")?;
    }
    let total_sent = shared.video_sent.load(Ordering::Relaxed);
    let total_received = shared.video_received.load(Ordering::Relaxed);

    let cpu = (cpu1.saturating_sub(cpu0)) as f64 / 1e9;
    let frames = secs * f64::from(o.fps.max(1));
    let q = |p| {
        shared
            .latency
            .quantile(p)
            .map_or(0, |d| d.as_micros() as u64)
    };
    let f = FloorFigures {
        subscribers: o.subscribers,
        senders: o.senders,
        video_pkt_per_s: sent as f64 / secs,
        cpu_s_per_s: cpu / secs,
        video_pkt_per_cpu_s: if cpu > 0.0 { sent as f64 / cpu } else { 0.0 },
        cpu_us_per_viewer_frame: cpu * 1e6 / (frames * o.subscribers as f64),
        loss_pct: if total_sent == 0 {
            0.0
        } else {
            100.0 * total_sent.saturating_sub(total_received) as f64 / total_sent as f64
        },
        latency_us: [q(0.5), q(0.95), q(0.99)],
    };
    println!("{}", table(&f));
    Ok(f)
}

/// The figures as a two-column table.
pub fn table(f: &FloorFigures) -> String {
    let rows = [
        ("scenario", "floor (no SFU)".to_string()),
        ("subscribers", f.subscribers.to_string()),
        ("sender threads", f.senders.to_string()),
        ("sent pkt/s (video)", format!("{:.0}", f.video_pkt_per_s)),
        ("sender CPU s/s", format!("{:.3}", f.cpu_s_per_s)),
        (
            "pkt per CPU-s (video)",
            format!("{:.0}", f.video_pkt_per_cpu_s),
        ),
        (
            "CPU µs per viewer per frame",
            format!("{:.2}", f.cpu_us_per_viewer_frame),
        ),
        ("subscriber loss %", format!("{:.3}", f.loss_pct)),
        (
            "latency p50/p95/p99 µs",
            format!(
                "{}/{}/{}",
                f.latency_us[0], f.latency_us[1], f.latency_us[2]
            ),
        ),
    ];
    rows.iter()
        .map(|(k, v)| format!("{k:<32}{v:>20}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// CPU time a thread of this process has used (`/proc/self/task/<tid>/schedstat`), in ns.
fn thread_cpu_ns(tid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat"))
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// One sender thread: paces the file's frames and 20 ms audio from `epoch` and fans each out
/// to `viewers`, one viewer after another.
fn send(
    viewers: &[SocketAddr],
    sizes: &[usize],
    fps: u32,
    epoch: Instant,
    gso_batch: bool,
    sh: &Shared,
) -> Result<()> {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0")?;
    let mut rng = rand::rng();
    let mut vs: Vec<Viewer> = viewers
        .iter()
        .map(|a| {
            let mut key = [0u8; 32];
            let mut salt = [0u8; 12];
            rng.fill_bytes(&mut key);
            rng.fill_bytes(&mut salt);
            Ok(Viewer {
                to: *a,
                key: LessSafeKey::new(
                    UnboundKey::new(&AES_256_GCM, &key).map_err(|_| anyhow::anyhow!("AES key"))?,
                ),
                salt,
                ssrc: rng.next_u32(),
                video_seq: 0,
                audio_seq: 0,
            })
        })
        .collect::<Result<_>>()?;
    let payload: Vec<u8> = (0..MAX_PAYLOAD).map(|i| i as u8).collect();
    // The server's send path: datagram buffers reused frame after frame (no allocation per
    // packet), a viewer's share of a frame as one GSO run, BATCH messages per `sendmmsg`.
    let mut out = SendQueue::new(true);
    let mut counts = Counts::default();
    let frame_every = Duration::from_secs(1) / fps;
    let audio_every = Duration::from_millis(20);
    let (mut frame, mut next_frame, mut next_audio, mut audio_n) = (0usize, epoch, epoch, 0u32);
    while !sh.stop.load(Ordering::Relaxed) {
        let due = next_frame.min(next_audio);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        if next_audio <= next_frame {
            let capture = micros_now();
            let ts = audio_n.wrapping_mul(960);
            for v in vs.iter_mut() {
                v.audio_seq = v.audio_seq.wrapping_add(1);
                let mut b = out.buffer();
                packet(&mut b, AUDIO_PT, v, v.audio_seq, ts, capture, &OPUS_SILENCE)?;
                out.push(&socket, v.to, b, &mut counts);
            }
            out.flush(&socket, &mut counts);
            audio_n = audio_n.wrapping_add(1);
            next_audio += audio_every;
            continue;
        }
        let len = sizes[frame % sizes.len()];
        let parts = len.div_ceil(MAX_PAYLOAD).max(1);
        let part = len.div_ceil(parts);
        let capture = micros_now();
        let ts = (frame as u32).wrapping_mul(90_000 / fps);
        let sent_before = counts.datagrams_out;
        for v in vs.iter_mut() {
            for _ in 0..parts {
                v.video_seq = v.video_seq.wrapping_add(1);
                let mut b = out.buffer();
                packet(
                    &mut b,
                    VIDEO_PT,
                    v,
                    v.video_seq,
                    ts,
                    capture,
                    &payload[..part],
                )?;
                out.push(&socket, v.to, b, &mut counts);
            }
            if !gso_batch {
                // One call per viewer.
                out.flush(&socket, &mut counts);
            }
        }
        out.flush(&socket, &mut counts);
        sh.video_sent
            .fetch_add(counts.datagrams_out - sent_before, Ordering::Relaxed);
        frame += 1;
        next_frame += frame_every;
    }
    Ok(())
}

fn micros_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// Writes one sealed RTP packet into `b`: header with the capture-time extension (the
/// additional data), the payload, the tag. The nonce is built as SRTP's AEAD mode builds it
/// (RFC 7714: salt XOR SSRC and packet index).
#[allow(clippy::too_many_arguments)]
fn packet(
    b: &mut Vec<u8>,
    pt: u8,
    v: &Viewer,
    seq: u16,
    ts: u32,
    capture_us: u64,
    payload: &[u8],
) -> Result<()> {
    b.clear();
    b.extend_from_slice(&[0x90, pt]);
    b.extend_from_slice(&seq.to_be_bytes());
    b.extend_from_slice(&ts.to_be_bytes());
    b.extend_from_slice(&v.ssrc.to_be_bytes());
    // One-byte-header extension block of 3 words: id 7, 8 bytes, then padding.
    b.extend_from_slice(&[0xbe, 0xde, 0, 3, 0x77]);
    b.extend_from_slice(&capture_us.to_be_bytes());
    b.extend_from_slice(&[0, 0, 0]);
    debug_assert_eq!(b.len(), HEADER);
    b.extend_from_slice(payload);
    let mut iv = v.salt;
    for (i, x) in v.ssrc.to_be_bytes().iter().enumerate() {
        iv[2 + i] ^= x;
    }
    for (i, x) in seq.to_be_bytes().iter().enumerate() {
        iv[10 + i] ^= x;
    }
    let (head, body) = b.split_at_mut(HEADER);
    let tag = v
        .key
        .seal_in_place_separate_tag(Nonce::assume_unique_for_key(iv), Aad::from(&*head), body)
        .map_err(|_| anyhow::anyhow!("seal"))?;
    b.extend_from_slice(tag.as_ref());
    debug_assert_eq!(b.len(), HEADER + payload.len() + TAG);
    Ok(())
}

/// One receiver thread: reads its viewers' sockets, counts video datagrams and times them
/// from their capture stamp to the kernel's arrival stamp.
fn receive(sockets: Vec<std::net::UdpSocket>, spin: bool, sh: &Shared) -> Result<()> {
    let mut poll = Poll::new()?;
    let mut socks: Vec<mio::net::UdpSocket> = sockets
        .into_iter()
        .map(mio::net::UdpSocket::from_std)
        .collect();
    for (i, s) in socks.iter_mut().enumerate() {
        poll.registry().register(s, Token(i), Interest::READABLE)?;
    }
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; 65_536];
    let wait = (!spin).then_some(Duration::from_millis(100));
    let mut idle_since = Instant::now();
    loop {
        // Done once the senders are, and nothing has come for a while (the other receiver
        // may still be reading its share, so the shared counts alone cannot tell).
        // A signal (SIGCHLD from `chrt`, run while the receivers start) interrupts the wait:
        // that is no reason to stop reading (it once cost a receiver its whole share).
        match poll.poll(&mut events, Some(wait.unwrap_or(Duration::ZERO))) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        }
        if !events.is_empty() {
            idle_since = Instant::now();
        } else if sh.senders_done.load(Ordering::Relaxed)
            && idle_since.elapsed() >= Duration::from_millis(100)
        {
            return Ok(());
        }
        for e in &events {
            let s = &socks[e.token().0];
            loop {
                let (n, _, seg, arrived) = match recv_run(s, &mut buf) {
                    Ok(r) => r,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(_) => break,
                };
                let measuring = sh.measuring.load(Ordering::Relaxed);
                let mut at = 0;
                while at + HEADER <= n {
                    let d = &buf[at..(at + seg).min(n)];
                    at += seg;
                    if d[1] & 0x7f != VIDEO_PT {
                        continue;
                    }
                    sh.video_received.fetch_add(1, Ordering::Relaxed);
                    if let (true, Some(arrived)) = (measuring, arrived) {
                        let capture = u64::from_be_bytes(d[17..25].try_into().unwrap_or([0; 8]));
                        let arrived = arrived
                            .duration_since(UNIX_EPOCH)
                            .map_or(0, |d| d.as_micros() as u64);
                        sh.latency
                            .record(Duration::from_micros(arrived.saturating_sub(capture)));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn viewer() -> Viewer {
        Viewer {
            to: "127.0.0.1:9".parse().unwrap(),
            key: LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &[7; 32]).unwrap()),
            salt: [3; 12],
            ssrc: 0x1234_5678,
            video_seq: 0,
            audio_seq: 0,
        }
    }

    #[test]
    fn a_floor_packet_is_sealed_for_its_viewer_with_the_capture_time_in_the_clear() {
        let v = viewer();
        let mut b = Vec::new();
        let payload: Vec<u8> = (0..200).map(|i| i as u8).collect();
        packet(&mut b, VIDEO_PT, &v, 513, 9000, 1_234_567, &payload).unwrap();
        assert_eq!(b.len(), HEADER + payload.len() + TAG);
        assert_eq!(b[1], VIDEO_PT);
        assert_eq!(u64::from_be_bytes(b[17..25].try_into().unwrap()), 1_234_567);
        assert_ne!(
            &b[HEADER..HEADER + payload.len()],
            &payload[..],
            "not encrypted"
        );
        let mut iv = v.salt;
        for (i, x) in v.ssrc.to_be_bytes().iter().enumerate() {
            iv[2 + i] ^= x;
        }
        for (i, x) in 513u16.to_be_bytes().iter().enumerate() {
            iv[10 + i] ^= x;
        }
        let (head, body) = b.split_at_mut(HEADER);
        let opened = v
            .key
            .open_in_place(Nonce::assume_unique_for_key(iv), Aad::from(&*head), body)
            .expect("opens with the viewer's key");
        assert_eq!(opened, &payload[..]);
    }
}
