//! NACK/RTX on both legs: a relay drops every 15th RTP packet between the publisher and the
//! server, and every 15th between the server and each subscriber. The SFU must NACK the
//! publisher for what it lost upstream and answer the subscribers' NACKs from its RTX cache,
//! so every missing sequence number later arrives at the subscribers.
//!
//! Run: `cargo test --test nack_rtx`.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use classrelay::auth::Grant;
use classrelay::{Config, Server};
use classrelay_loadtest::ivf;
use classrelay_loadtest::swarm::{Source, Swarm};
use classrelay_loadtest::whip;
use str0m::format::Codec;

/// A one-client UDP relay on loopback: the client talks to `addr`, the relay talks to the
/// server from its own socket. Every `nth` RTP datagram in the chosen direction is dropped.
struct Relay {
    addr: SocketAddr,
    dropped: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

#[derive(Clone, Copy, PartialEq)]
enum Lossy {
    /// Client → server (the publisher's uplink).
    Up,
    /// Server → client (a classroom's downlink).
    Down,
}

fn is_rtp(d: &[u8]) -> bool {
    // RFC 7983: 128..191 is RTP/RTCP; RTCP payload types 192..223 after masking the marker.
    d.len() > 12 && (128..192).contains(&d[0]) && !(64..96).contains(&(d[1] & 0x7f))
}

impl Relay {
    fn start(server: SocketAddr, lossy: Lossy, nth: u64) -> Relay {
        let front = UdpSocket::bind("127.0.0.1:0").unwrap();
        let back = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = front.local_addr().unwrap();
        front
            .set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        back.set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        let dropped = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let client: Arc<std::sync::Mutex<Option<SocketAddr>>> = Default::default();
        for dir in [Lossy::Up, Lossy::Down] {
            let (rx, tx) = match dir {
                Lossy::Up => (front.try_clone().unwrap(), back.try_clone().unwrap()),
                Lossy::Down => (back.try_clone().unwrap(), front.try_clone().unwrap()),
            };
            let (dropped, stop, client) = (dropped.clone(), stop.clone(), client.clone());
            std::thread::spawn(move || {
                let mut buf = [0u8; 2048];
                let mut count = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let Ok((n, from)) = rx.recv_from(&mut buf) else {
                        continue;
                    };
                    let to = match dir {
                        Lossy::Up => {
                            *client.lock().unwrap() = Some(from);
                            server
                        }
                        Lossy::Down => match *client.lock().unwrap() {
                            Some(c) => c,
                            None => continue,
                        },
                    };
                    if dir == lossy && is_rtp(&buf[..n]) {
                        count += 1;
                        if count % nth == 0 {
                            dropped.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                    }
                    let _ = tx.send_to(&buf[..n], to);
                }
            });
        }
        Relay {
            addr,
            dropped,
            stop,
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Points the answer's host candidate at the relay instead of the server.
fn via(answer: &str, server: SocketAddr, relay: SocketAddr) -> String {
    answer.replace(
        &format!("{} {} typ host", server.ip(), server.port()),
        &format!("{} {} typ host", relay.ip(), relay.port()),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losses_on_both_legs_are_repaired() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(Config::for_tests(dir.path())).await.unwrap();
    let base = format!("http://{}", server.http_addr());
    let media = server.media_addrs()[0];
    let http = reqwest::Client::new();
    let swarm = Swarm::start().unwrap();

    let bytes = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/video_vp8.ivf"
    ))
    .unwrap();
    let (_, frames) = ivf::parse(&bytes).unwrap();
    let source = Source {
        frames: Arc::new(frames),
        fps: 30,
        codec: Codec::Vp8,
        audio: false,
        simulcast: Vec::new(),
    };
    let up = Relay::start(media, Lossy::Up, 15);
    let pub_token = server.mint_token("lossy", Grant::Publish, Duration::from_secs(600));
    let offer = swarm.publisher_offer(source).unwrap();
    let c = whip::post_offer(&http, &format!("{base}/whip/lossy"), &pub_token, &offer.sdp)
        .await
        .unwrap();
    let _publisher = swarm
        .add(offer, &via(&c.answer, media, up.addr), c.url, c.etag)
        .unwrap();

    let sub_token = server.mint_token("lossy", Grant::Subscribe, Duration::from_secs(600));
    let mut subs = Vec::new();
    let mut downs = Vec::new();
    for _ in 0..2 {
        let down = Relay::start(media, Lossy::Down, 15);
        let offer = swarm.subscriber_offer(0, 1).unwrap();
        let c = whip::post_offer(&http, &format!("{base}/whep/lossy"), &sub_token, &offer.sdp)
            .await
            .unwrap();
        subs.push(
            swarm
                .add(offer, &via(&c.answer, media, down.addr), c.url, c.etag)
                .unwrap(),
        );
        downs.push(down);
    }
    for s in &subs {
        assert!(
            s.stats
                .wait_for(Duration::from_secs(30), |st| st
                    .video_packets
                    .load(Ordering::Relaxed)
                    > 400)
                .await,
            "media flows through the lossy relays"
        );
    }
    let m = server.metrics();
    println!(
        "dropped upstream {}, downstream {:?}; NACKs sent upstream {}, received {}",
        up.dropped.load(Ordering::Relaxed),
        downs
            .iter()
            .map(|d| d.dropped.load(Ordering::Relaxed))
            .collect::<Vec<_>>(),
        m.nacks_sent.get(),
        m.nacks_received.get()
    );
    assert!(up.dropped.load(Ordering::Relaxed) > 10);
    for (s, d) in subs.iter().zip(&downs) {
        assert!(d.dropped.load(Ordering::Relaxed) > 10);
        let gaps = s.stats.video_seq_gaps.load(Ordering::Relaxed);
        let late = s.stats.video_seq_backwards.load(Ordering::Relaxed);
        println!("subscriber: {gaps} numbers skipped on arrival, {late} arrived late");
        // Every 15th packet is lost on each leg, so without repair dozens of numbers would
        // stay missing; with NACK/RTX every hole but the most recent few is filled.
        assert!(gaps > 10, "the relay did cause holes ({gaps})");
        assert!(late + 5 >= gaps, "{gaps} holes, only {late} repaired");
    }
    // The stats interval is one second: wait for the counters to catch up.
    let mut ok = false;
    for _ in 0..40 {
        if m.nacks_sent.get() > 0 && m.nacks_received.get() > 0 {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        ok,
        "the SFU NACKed the publisher ({}) and answered subscriber NACKs ({})",
        m.nacks_sent.get(),
        m.nacks_received.get()
    );
    assert!(
        m.direct_srtp_packets_out.get() > 0 && m.retransmissions_out.get() > 0,
        "the fast path sent the media ({}) and the resends ({})",
        m.direct_srtp_packets_out.get(),
        m.retransmissions_out.get()
    );
    server.shutdown().await;
}
