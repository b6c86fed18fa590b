//! The relay is exact: an independent WebRTC stack (the `webrtc` crate) publishes VP8 + Opus
//! from files through WHIP, three independent subscribers watch through WHEP, and every frame
//! they reassemble equals what was sent, byte for byte, with continuous sequence numbers.
//! The worker looks for a frame's rest after every viewer (`media.fanout_chunk = 1`), so
//! frames whose rest joined a fan-out under way are checked too.
//!
//! Run: `cargo test --test relay_exact`.

mod support;

use std::time::{Duration, Instant};

use classrelay::auth::Grant;
use classrelay::{Config, Server};
use support::webrtc_client::{
    audio_fixture, match_audio, match_video, sequence_gaps, video_fixture, whep_subscribe,
    whip_publish_with, FrameMatch, PublishOptions,
};

const LIMIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_subscribers_receive_exactly_what_was_published() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::for_tests(dir.path());
    config.media.fanout_chunk = 1;
    let server = Server::start(config).await.unwrap();
    let base = format!("http://{}", server.http_addr());
    let ttl = Duration::from_secs(600);
    let pub_token = server.mint_token("lesson", Grant::Publish, ttl);
    let sub_token = server.mint_token("lesson", Grant::Subscribe, ttl);

    // Subscribers first, as classrooms waiting for the bell.
    let mut subs = Vec::new();
    for _ in 0..3 {
        subs.push(whep_subscribe(&base, "lesson", &sub_token).await.unwrap());
    }
    let publisher = whip_publish_with(
        &base,
        "lesson",
        &pub_token,
        &video_fixture(),
        &audio_fixture(),
        PublishOptions {
            keyframe_on_request: true,
            ..PublishOptions::loops(3)
        },
    )
    .await
    .unwrap();
    publisher.wait_done(LIMIT).await.unwrap();
    let sent_video = publisher.sent_video();
    let sent_audio = publisher.sent_audio();
    assert!(
        sent_video.len() >= 270,
        "sent {} video frames",
        sent_video.len()
    );

    for (i, sub) in subs.iter().enumerate() {
        // Everything after the first keyframe arrives; wait until the last sent frame is in
        // (frames lost at the end would leave no sequence gap behind them).
        sub.wait_video_frames(200, LIMIT).await.unwrap();
        sub.wait_audio_frames(300, LIMIT).await.unwrap();
        let deadline = Instant::now() + LIMIT;
        let (v, a) = loop {
            let v = match_video(&sent_video, &sub.video_frames())
                .unwrap_or_else(|e| panic!("subscriber {i}: {e}"));
            let a = match_audio(&sent_audio, &sub.audio_frames())
                .unwrap_or_else(|e| panic!("subscriber {i}: {e}"));
            let ends = |m: &FrameMatch, sent: usize| m.sent_offset + m.matched == sent;
            if (ends(&v, sent_video.len()) && ends(&a, sent_audio.len()))
                || Instant::now() > deadline
            {
                break (v, a);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        println!(
            "subscriber {i}: {} video frames equal from sent #{}, {} audio frames equal from #{}",
            v.matched, v.sent_offset, a.matched, a.sent_offset
        );
        assert!(
            v.matched >= 200,
            "subscriber {i}: only {} video frames",
            v.matched
        );
        assert!(
            a.matched >= 300,
            "subscriber {i}: only {} audio frames",
            a.matched
        );
        assert_eq!(
            v.sent_offset + v.matched,
            sent_video.len(),
            "subscriber {i}: the last video frames sent never arrived"
        );
        assert_eq!(
            a.sent_offset + a.matched,
            sent_audio.len(),
            "subscriber {i}: the last audio frames sent never arrived"
        );
        let counts = sub.counts();
        assert_eq!(counts.video_frames_dropped, 0, "subscriber {i}: {counts:?}");
        assert_eq!(counts.video_bad_packets, 0, "subscriber {i}: {counts:?}");
        assert!(
            sequence_gaps(&sub.video_packets()).is_empty(),
            "subscriber {i}: video sequence gaps {:?}",
            sequence_gaps(&sub.video_packets())
        );
        assert!(
            sequence_gaps(&sub.audio_packets()).is_empty(),
            "subscriber {i}: audio sequence gaps"
        );
    }
    // The fast path sent the media (`sfu::egress`), and the sender reports each subscriber
    // got describe it: packets and octets counted, and an RTP time that follows the stream's
    // timestamps (what a receiver's lip sync maps to wallclock).
    assert!(server.metrics().direct_srtp_packets_out.get() > 0);
    // Groups read in the middle of a frame (the publisher was still sending it) made the
    // worker look for the rest between viewers. How much of a rest came in time to join is
    // up to timing (3 to 12 packets in runs here); those frames are among the ones found
    // equal above, for the viewers served before the rest came and for those after (a
    // fan-out that skips the first ones' catch-up fails the match).
    let (looks, joined) = (
        server.metrics().fanout_looks.get(),
        server.metrics().fanout_joined_packets.get(),
    );
    println!("looks for a frame's rest during a fan-out: {looks}, packets that joined: {joined}");
    assert!(looks > 0, "no look for a frame's rest");
    for (i, sub) in subs.iter().enumerate() {
        let video_ssrc = sub.video_packets()[0].ssrc;
        let audio_ssrc = sub.audio_packets()[0].ssrc;
        for (ssrc, clock, what) in [(video_ssrc, 90_000, "video"), (audio_ssrc, 48_000, "audio")] {
            let reports: Vec<_> = sub
                .sender_reports()
                .into_iter()
                // While the stream flows (after it ends the report's time runs on alone).
                .filter(|r| {
                    r.ssrc == ssrc
                        && r.last_rtp_timestamp
                            .is_some_and(|(_, age)| age < Duration::from_millis(200))
                })
                .collect();
            assert!(
                !reports.is_empty(),
                "subscriber {i}: no {what} sender report"
            );
            // The counts run over the whole stream: a report's packet count covers at least
            // what arrived before it (less a few the RTP reader logged ahead of the RTCP
            // one). Counters that restarted between reports would fall behind from the
            // second report on.
            let packets: Vec<_> = if clock == 90_000 {
                sub.video_packets()
            } else {
                sub.audio_packets()
            };
            let all: Vec<_> = sub
                .sender_reports()
                .into_iter()
                .filter(|r| r.ssrc == ssrc)
                .collect();
            // Video's reports come about once a second; audio may see only one.
            assert!(
                all.len() >= if clock == 90_000 { 2 } else { 1 },
                "subscriber {i}: {} {what} sender reports",
                all.len()
            );
            for r in &all {
                let before = packets
                    .iter()
                    .filter(|p| p.ssrc == ssrc && p.received_at <= r.received_at)
                    .count();
                assert!(
                    r.packet_count as usize + 20 >= before,
                    "subscriber {i}: {what} report counts {} packets, {before} arrived before it",
                    r.packet_count
                );
            }
            for r in &reports {
                let (last, _) = r.last_rtp_timestamp.unwrap();
                let ahead = r.rtp_time.wrapping_sub(last) as i32;
                assert!(
                    r.packet_count > 0 && r.octet_count > 0,
                    "subscriber {i}: {what} report counts nothing: {r:?}"
                );
                assert!(
                    ahead.unsigned_abs() < clock,
                    "subscriber {i}: {what} report's RTP time is {ahead} ticks from the stream: {r:?}"
                );
            }
        }
    }
    for s in &subs {
        s.close().await.unwrap();
    }
    publisher.close().await.unwrap();
    server.shutdown().await;
}
