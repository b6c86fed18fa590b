//! Unit tests of `sfu` (placement, peer preparation, offer preferences); moved out of
//! `mod.rs` to keep it short. They must never start a worker thread unless a test says so.

use super::*;

#[tokio::test]
async fn link_stats_of_an_unknown_room_is_empty() {
    let sfu = workers(1, 0);
    let w = sfu.worker_for_room("lesson-404");
    let (tx, rx) = tokio::sync::oneshot::channel();
    assert!(sfu.worker(w).send(Command::LinkStats {
        room: "lesson-404".into(),
        reply: tx,
    }));
    let stats = tokio::time::timeout(Duration::from_secs(5), rx)
        .await
        .expect("the worker answers")
        .expect("and does not drop the reply");
    assert!(stats.is_empty());
    // The worker is still alive afterwards.
    let (tx, rx) = tokio::sync::oneshot::channel();
    assert!(sfu.worker(w).send(Command::LinkStats {
        room: String::new(),
        reply: tx,
    }));
    assert_eq!(rx.await.unwrap(), Vec::new());
}

fn workers(workers: usize, spread_after: usize) -> Sfu {
    let (events, _rx) = tokio::sync::mpsc::unbounded_channel();
    Sfu::start(
        &SfuSettings {
            workers,
            bind: std::net::Ipv4Addr::LOCALHOST.into(),
            port: 0,
            announce: std::net::Ipv4Addr::LOCALHOST.into(),
            keyframe_interval: Duration::from_millis(300),
            disconnect_grace: Duration::from_secs(30),
            direct_srtp: true,
            downlink_adaptation: true,
            spread_after,
            udp_gso: true,
            pipe_backlog: pipe::BACKLOG,
            fanout_chunk: worker::FAN_OUT_CHUNK,
            connect_timeout: worker::CONNECT_TIMEOUT,
            publish_cap: limit::PublishCap::new(10_000, 2_500),
        },
        Metrics::new(),
        events,
    )
    .unwrap()
}

#[test]
fn viewers_stay_home_until_spread_after_then_go_to_the_least_loaded_worker() {
    let sfu = workers(2, 3);
    let home = sfu.worker_for_room("wide");
    let publisher = sfu.place("wide", PeerKind::Publisher);
    assert_eq!(publisher.piped_from(), None);
    assert_eq!(publisher.worker, home);
    // Home holds the publisher and two viewers: three peers, the limit.
    for _ in 0..2 {
        assert_eq!(sfu.place("wide", PeerKind::Subscriber).piped_from(), None);
    }
    let away = sfu.place("wide", PeerKind::Subscriber);
    assert_eq!(away.piped_from(), Some(home));
    assert_eq!(away.home, home);
    // Then the least loaded: the other worker until it holds as many, then home on a tie.
    for _ in 0..2 {
        assert_eq!(
            sfu.place("wide", PeerKind::Subscriber).piped_from(),
            Some(home)
        );
    }
    assert_eq!(sfu.place("wide", PeerKind::Subscriber).piped_from(), None);
    // Publishers always go home, however loaded it is.
    assert_eq!(sfu.place("wide", PeerKind::Publisher).worker, home);
    let mut loads = sfu.loads();
    assert_eq!(loads[home], 5);
    assert_eq!(loads[1 - home], 3);
    // A place given back (the peer was refused) no longer counts.
    sfu.unplace(away);
    loads[1 - home] -= 1;
    assert_eq!(sfu.loads(), loads);
    // One worker: nothing to spread to.
    let one = workers(1, 0);
    assert_eq!(one.place("wide", PeerKind::Subscriber).piped_from(), None);
}

#[test]
fn follow_rules() {
    let hub = Follow::Parts(vec!["t:1".into(), "c:9".into()]);
    assert!(hub.accepts(Some("c:9"), None));
    assert!(!hub.accepts(Some("c:2"), None));
    assert!(!hub.accepts(None, None));
    assert!(Follow::Any.accepts(None, None));
    assert!(Follow::Spotlight.accepts(Some("c:2"), Some("c:2")));
    assert!(!Follow::Spotlight.accepts(Some("c:2"), Some("c:3")));
    assert!(!Follow::Spotlight.accepts(None, None));
}

/// A browser-like offer: audio + one video m-line, each with the standard extensions.
fn offer(direction: &str) -> String {
    let exts = "a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\n\
                a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time\r\n\
                a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01\r\n\
                a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid\r\n";
    let common = "c=IN IP4 0.0.0.0\r\na=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\n\
                  a=fingerprint:sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF\r\n\
                  a=setup:actpass\r\na=rtcp-mux\r\n";
    format!(
        "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\n\
         m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n{common}a=mid:0\r\n{exts}a={direction}\r\n\
         a=rtpmap:111 opus/48000/2\r\na=fmtp:111 minptime=10;useinbandfec=1\r\n\
         m=video 9 UDP/TLS/RTP/SAVPF 96\r\n{common}a=mid:1\r\n{exts}a={direction}\r\n\
         a=rtpmap:96 VP8/90000\r\na=rtcp-fb:96 nack\r\na=rtcp-fb:96 nack pli\r\na=rtcp-fb:96 transport-cc\r\n"
    )
}

/// A peer setup on a fresh certificate, for preparing peers without a worker.
fn setup() -> PeerSetup {
    PeerSetup {
        cert: str0m::crypto::from_feature_flags()
            .dtls_provider
            .generate_certificate()
            .unwrap(),
        candidate: "127.0.0.1:3478".parse().unwrap(),
        direct_srtp: true,
    }
}

#[test]
fn viewers_get_no_transport_cc() {
    let setup = setup();
    let publisher = prepare_peer(PeerKind::Publisher, &offer("sendonly"), &setup).unwrap();
    assert!(
        publisher.answer.contains("transport-wide-cc"),
        "the publisher's congestion control needs TWCC feedback from us"
    );
    let viewer = prepare_peer(PeerKind::Subscriber, &offer("recvonly"), &setup).unwrap();
    assert!(
        !viewer.answer.contains("transport-wide-cc"),
        "{}",
        viewer.answer
    );
    assert!(
        !viewer.answer.contains("abs-send-time"),
        "{}",
        viewer.answer
    );
    assert!(viewer.answer.contains("sdes:mid"), "{}", viewer.answer);
}

/// Opus in-band FEC (issue 19): an offer with `useinbandfec=1` gets it back in the answer,
/// from a publisher (its encoder adds the redundancy) and to a viewer (its decoder uses it).
/// RED (RFC 2198) is answered only where offered, and then before Opus on the m-line (as
/// libwebrtc sends RED only then; `sfu::red` forwards it).
#[test]
fn opus_inband_fec_is_answered_and_red_only_where_offered() {
    let setup = setup();
    for (role, direction) in [
        (PeerKind::Publisher, "sendonly"),
        (PeerKind::Subscriber, "recvonly"),
    ] {
        let p = prepare_peer(role, &offer(direction), &setup).unwrap();
        let fmtp = p
            .answer
            .lines()
            .find(|l| l.starts_with("a=fmtp:111 "))
            .unwrap_or_else(|| panic!("no Opus fmtp in the answer: {}", p.answer));
        assert!(fmtp.contains("useinbandfec=1"), "{role:?}: {fmtp}");
        assert!(
            !p.answer.to_ascii_lowercase().contains("red/48000"),
            "{}",
            p.answer
        );
        // As Chromium offers it: RED (63) wrapping Opus, after Opus on the m-line.
        let with_red = offer(direction)
            .replace(
                "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n",
                "m=audio 9 UDP/TLS/RTP/SAVPF 111 63\r\n",
            )
            .replace(
                "a=fmtp:111 minptime=10;useinbandfec=1\r\n",
                "a=fmtp:111 minptime=10;useinbandfec=1\r\n\
                 a=rtpmap:63 red/48000/2\r\na=fmtp:63 111/111\r\n",
            );
        let p = prepare_peer(role, &with_red, &setup).unwrap();
        assert!(
            p.answer.to_ascii_lowercase().contains("red/48000/2"),
            "{role:?}: RED answered: {}",
            p.answer
        );
        let m = p
            .answer
            .lines()
            .find(|l| l.starts_with("m=audio"))
            .expect("an audio m-line");
        let pts: Vec<&str> = m.split_whitespace().skip(3).collect();
        let at = |pt: &str| pts.iter().position(|p| *p == pt);
        assert!(
            at("63").is_some() && at("63") < at("111"),
            "{role:?}: RED before Opus: {m}"
        );
    }
}

#[test]
fn offer_order_decides_codec_order() {
    let sdp = "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 102 103 96\r\n\
               a=rtpmap:102 H264/90000\r\n\
               a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=4d001f\r\n\
               a=rtpmap:103 rtx/90000\r\na=fmtp:103 apt=102\r\n\
               a=rtpmap:96 VP8/90000\r\n";
    let prefs = offer_preferences(sdp);
    assert_eq!(prefs.len(), 2);
    assert_eq!(prefs[0].0, Codec::H264);
    assert_eq!(prefs[0].1.profile_level_id, Some(0x4d001f));
    let mut cfg = CodecConfig::new_with_defaults();
    cfg.enable_h264(true);
    let mut params = cfg.params().to_vec();
    params.sort_by_key(|p| preference_rank(&prefs, p));
    let first = params[0].spec();
    assert_eq!(first.codec, Codec::H264);
    assert_eq!(first.format.profile_level_id.map(|v| v >> 8), Some(0x4d00));
    assert_eq!(first.format.packetization_mode, Some(1));
    assert_eq!(params[1].spec().codec, Codec::Vp8);
}
