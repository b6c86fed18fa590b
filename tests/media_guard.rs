//! The media plane guarding itself (issue 17): a worker that panics is started again with its
//! peers dropped; a forged STUN check moves no route; peers that never connect go within
//! `media.connect_timeout_ms`; a publisher over `media.max_publish_kbps` is cut back. Real
//! server, real str0m peers (`classrelay-loadtest`'s swarm), real UDP and HTTP.
//!
//! Run: `cargo test --test media_guard`.

mod support;

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use classrelay::auth::Grant;
use classrelay::{Config, Server};
use classrelay_loadtest::swarm::{PeerHandle, Swarm};
use classrelay_loadtest::whip;
use support::media::{hd_source, sent_more_than};

struct Env {
    _dir: tempfile::TempDir,
    server: Server,
    swarm: Swarm,
    http: reqwest::Client,
    base: String,
}

async fn start_with(adjust: impl FnOnce(&mut Config)) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::for_tests(dir.path());
    adjust(&mut config);
    let server = Server::start(config).await.unwrap();
    let base = format!("http://{}", server.http_addr());
    Env {
        _dir: dir,
        server,
        swarm: Swarm::start().unwrap(),
        http: reqwest::Client::new(),
        base,
    }
}

async fn publish(env: &Env, room: &str) -> PeerHandle {
    let token = env
        .server
        .mint_token(room, Grant::Publish, Duration::from_secs(600));
    let offer = env.swarm.publisher_offer(hd_source()).unwrap();
    let p = whip::join(
        &env.swarm,
        &env.http,
        &format!("{}/whip/{room}", env.base),
        &token,
        offer,
    )
    .await
    .unwrap();
    assert!(
        sent_more_than(&p, 10, Duration::from_secs(30)).await,
        "publisher connected and sending"
    );
    p
}

/// A viewer of `room`, and the address its client sends from.
async fn subscribe(env: &Env, room: &str) -> (PeerHandle, SocketAddr) {
    let token = env
        .server
        .mint_token(room, Grant::Subscribe, Duration::from_secs(600));
    let offer = env.swarm.subscriber_offer(1, 1).unwrap();
    let client = whip::host_candidate(&offer.sdp).expect("the offer has a host candidate");
    let sub = whip::join(
        &env.swarm,
        &env.http,
        &format!("{}/whep/{room}", env.base),
        &token,
        offer,
    )
    .await
    .unwrap();
    (sub, client)
}

/// Waits (up to 30 s) until the viewer has received more than `n` video packets.
async fn video_at_least(s: &PeerHandle, n: u64) -> bool {
    s.stats
        .wait_for(Duration::from_secs(30), |st| {
            st.video_packets.load(Ordering::Relaxed) > n
        })
        .await
}

fn video(s: &PeerHandle) -> u64 {
    s.stats.video_packets.load(Ordering::Relaxed)
}

/// Polls `cond` every 10 ms until it holds or `limit` passes; true if it held.
async fn eventually(limit: Duration, mut cond: impl AsyncFnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if cond().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

async fn ready(env: &Env) -> reqwest::Response {
    env.http
        .get(format!("{}/readyz", env.base))
        .send()
        .await
        .unwrap()
}

/// The server's ICE ufrag in an SDP answer.
fn ice_ufrag(sdp: &str) -> String {
    sdp.lines()
        .find_map(|l| l.trim().strip_prefix("a=ice-ufrag:"))
        .expect("the answer has an ICE ufrag")
        .to_string()
}

/// A STUN binding request with `username` whose MESSAGE-INTEGRITY is made up (no one
/// without the peer's ICE password can make a valid one).
fn forged_binding(username: &str) -> Vec<u8> {
    support::stun::forged_binding(username, true, rand_id())
}

fn rand_id() -> [u8; 12] {
    let t = Instant::now().elapsed().as_nanos() as u64 ^ 0x5eed_1234_abcd_9876;
    let mut id = [0u8; 12];
    id[..8].copy_from_slice(&t.to_be_bytes());
    id
}

#[cfg(debug_assertions)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_panics_drops_its_peers_and_serves_again() {
    use classrelay::sfu::Command;
    let env = start_with(|_| {}).await;
    let publisher = publish(&env, "crash").await;
    let (viewer, _) = subscribe(&env, "crash").await;
    assert!(video_at_least(&viewer, 30).await, "media flows before");
    assert_eq!(env.server.peer_count(), 2);
    assert_eq!(env.server.state().media.sessions.lock().unwrap().len(), 2);
    assert_eq!(ready(&env).await.status(), 200);

    assert!(env.server.state().media.sfu.worker(0).send(Command::Panic));
    // Down a while (503 with Retry-After), then ready again.
    let mut saw_503 = false;
    assert!(
        eventually(Duration::from_secs(10), async || {
            let r = ready(&env).await;
            if r.status() == 503 {
                assert!(r.headers().contains_key("retry-after"));
                saw_503 = true;
            }
            saw_503 && r.status() == 200
        })
        .await,
        "readyz went 503 ({saw_503}) and then 200 again"
    );
    // Every peer of the worker is gone, and signalling learned it (PeerGone).
    assert!(
        eventually(Duration::from_secs(5), async || {
            env.server.state().media.sessions.lock().unwrap().is_empty()
        })
        .await,
        "the sessions were forgotten"
    );
    assert_eq!(env.server.peer_count(), 0);
    assert_eq!(env.server.worker_loads(), vec![0]);
    assert_eq!(env.server.metrics().sfu_worker_restarts.get(), 1);
    let page = support::metrics::scrape(&env.http, &env.base).await;
    assert_eq!(
        support::metrics::value(&page, "classrelay_sfu_worker_restarts_total"),
        Some(1.0)
    );
    assert_eq!(
        support::metrics::value(&page, "classrelay_peers{role=\"Subscriber\"}"),
        Some(0.0)
    );
    env.swarm.close(&publisher).unwrap();
    env.swarm.close(&viewer).unwrap();

    // The same worker (the only one, same UDP port) takes new sessions and relays again.
    let publisher = publish(&env, "crash").await;
    let (viewer, _) = subscribe(&env, "crash").await;
    assert!(video_at_least(&viewer, 30).await, "media flows after");
    assert_eq!(env.server.peer_count(), 2);
    // A 1.2 Mbit/s camera is far under the default publish cap.
    assert_eq!(env.server.metrics().publish_dropped_packets.get(), 0);
    env.swarm.close(&publisher).unwrap();
    env.swarm.close(&viewer).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_stun_check_neither_takes_a_route_nor_stops_the_victims_media() {
    let env = start_with(|_| {}).await;
    let _publisher = publish(&env, "forge").await;
    let (victim, victim_addr) = subscribe(&env, "forge").await;
    assert!(video_at_least(&victim, 30).await, "the victim receives");
    let server = env.server.media_addrs()[0];
    let ufrag = ice_ufrag(&victim.answer);
    let attacker = UdpSocket::bind("127.0.0.1:0").unwrap();
    assert_ne!(attacker.local_addr().unwrap(), victim_addr);
    let m = env.server.metrics();
    let direct_before = m.direct_srtp_packets_out.get();
    let seen_before = video(&victim);
    // Checks naming the victim's ufrag, with a made-up integrity, for two seconds.
    for i in 0..100 {
        attacker
            .send_to(&forged_binding(&format!("{ufrag}:evil{i}")), server)
            .unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The forged source did not become one of the victim's addresses: what it sends now
    // (SRTP-looking bytes) routes nowhere.
    let unroutable = m.udp_unroutable.get();
    let srtp = [
        0x80u8, 96, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0xaa, 0xbb, 0xcc, 0xdd,
    ];
    for _ in 0..10 {
        attacker.send_to(&srtp, server).unwrap();
    }
    assert!(
        eventually(Duration::from_secs(5), async || {
            m.udp_unroutable.get() >= unroutable + 10
        })
        .await,
        "the forged source got a route: {} of 10 unroutable",
        m.udp_unroutable.get() - unroutable
    );
    // Nothing answered the forger.
    attacker.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 1500];
    assert!(
        attacker.recv_from(&mut buf).is_err(),
        "the forger got an answer"
    );
    // The victim kept receiving all along, on the fast path.
    assert!(
        video(&victim) > seen_before + 60,
        "the victim's media went on"
    );
    assert!(
        m.direct_srtp_packets_out.get() > direct_before + 60,
        "still on the fast path"
    );
    let seen = video(&victim);
    assert!(video_at_least(&victim, seen + 30).await, "and goes on");
    assert_eq!(env.server.peer_count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_that_never_connects_is_gone_within_the_connect_timeout() {
    assert_eq!(
        Config::default().media.connect_timeout_ms,
        10_000,
        "the default (a few seconds of TURN and DTLS retries on a rural link, not 30 s)"
    );
    let env = start_with(|c| c.media.connect_timeout_ms = 1_500).await;
    // An offer from a client that then never sends a STUN check.
    let mut rtc = str0m::Rtc::builder().build(Instant::now());
    let mut api = rtc.sdp_api();
    for kind in [
        str0m::media::MediaKind::Audio,
        str0m::media::MediaKind::Video,
    ] {
        api.add_media(kind, str0m::media::Direction::RecvOnly, None, None, None);
    }
    let (offer, _pending) = api.apply().unwrap();
    let token = env
        .server
        .mint_token("silent", Grant::Subscribe, Duration::from_secs(60));
    let posted = Instant::now();
    let r = env
        .http
        .post(format!("{}/whep/silent", env.base))
        .bearer_auth(&token)
        .header("content-type", "application/sdp")
        .body(offer.to_sdp_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(env.server.peer_count(), 1);
    assert!(
        eventually(Duration::from_secs(5), async || env.server.peer_count()
            == 0)
        .await,
        "the peer is still there {:?} after its offer",
        posted.elapsed()
    );
    let took = posted.elapsed();
    assert!(
        took >= Duration::from_millis(1_400),
        "gone too soon: {took:?}"
    );
    assert!(
        eventually(Duration::from_secs(2), async || {
            env.server.state().media.sessions.lock().unwrap().is_empty()
        })
        .await,
        "its session was forgotten"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_over_its_cap_is_cut_back_before_forwarding() {
    // 1.2 Mbit/s sent, 300 kbit/s allowed.
    let env = start_with(|c| c.media.max_publish_kbps = 300).await;
    let publisher = publish(&env, "flood").await;
    let (viewer, _) = subscribe(&env, "flood").await;
    let m = env.server.metrics();
    assert!(
        eventually(Duration::from_secs(10), async || {
            m.publish_dropped_packets.get() > 200
        })
        .await,
        "the excess is dropped"
    );
    // What is forwarded stays near the cap: measure the viewer over three seconds.
    let bytes0 = viewer.stats.bytes.load(Ordering::Relaxed);
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let kbps = (viewer.stats.bytes.load(Ordering::Relaxed) - bytes0) as f64 * 8.0
        / t0.elapsed().as_secs_f64()
        / 1000.0;
    assert!(kbps < 450.0, "the viewer still gets {kbps:.0} kbit/s");
    let page = support::metrics::scrape(&env.http, &env.base).await;
    assert!(
        support::metrics::value(&page, "classrelay_publish_dropped_packets_total")
            .is_some_and(|v| v > 200.0)
    );
    env.swarm.close(&publisher).unwrap();
    env.swarm.close(&viewer).unwrap();
}
