//! Checks the WebRTC test client on its own, without the server: a publisher connected straight
//! to a subscriber over loopback UDP must deliver every frame byte for byte.

mod support;

use std::time::Duration;

use support::webrtc_client::{
    audio_fixture, connect_in_process, find_contiguous, load_ivf, load_ogg_opus, match_audio,
    match_video, sequence_gaps, video_fixture, PublishOptions,
};
// The WHIP/WHEP POST is the load generator's, shared with this client.
use classrelay_loadtest::whip::resolve_location;

#[test]
fn fixtures_parse() {
    let video = load_ivf(&video_fixture()).expect("video fixture");
    assert_eq!(video.len(), 90, "3 s at 30 fps");
    let keyframes: Vec<usize> = video
        .iter()
        .enumerate()
        .filter(|(_, f)| f.keyframe)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(keyframes, vec![0, 30, 60], "a keyframe every second");
    assert!(video
        .iter()
        .all(|f| f.duration > Duration::from_millis(30) && f.duration < Duration::from_millis(36)));

    let audio = load_ogg_opus(&audio_fixture()).expect("audio fixture");
    assert_eq!(
        audio.len(),
        151,
        "3 s of 20 ms frames plus one for the encoder pre-skip"
    );
    assert!(audio.iter().all(|f| !f.data.is_empty()));
}

#[test]
fn contiguous_matching() {
    let sent = ["a", "b", "c", "a", "b", "d"];
    assert_eq!(find_contiguous(&sent, &["b", "c", "a"]), Some(1));
    assert_eq!(find_contiguous(&sent, &["b", "d"]), Some(4));
    assert_eq!(find_contiguous(&sent, &["c", "b"]), None);
    assert_eq!(find_contiguous::<&str, &str>(&sent, &[]), Some(0));
    assert_eq!(
        resolve_location("http://127.0.0.1:8080", "/whip/r/1"),
        "http://127.0.0.1:8080/whip/r/1"
    );
    assert_eq!(
        resolve_location("http://127.0.0.1:8080/base/", "/whip/r/1"),
        "http://127.0.0.1:8080/whip/r/1"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_delivers_frames_byte_exact() {
    let (publisher, subscriber) =
        connect_in_process(&video_fixture(), &audio_fixture(), PublishOptions::loops(1))
            .await
            .expect("connect publisher to subscriber");

    let key = subscriber
        .wait_first_keyframe(Duration::from_secs(10))
        .await
        .expect("first keyframe");
    assert!(key.keyframe);

    publisher
        .wait_done(Duration::from_secs(15))
        .await
        .expect("publisher sends both files once");
    let sent_video = publisher.sent_video();
    let sent_audio = publisher.sent_audio();
    assert_eq!(sent_video.len(), 90);
    assert_eq!(sent_audio.len(), 151);

    // Everything was sent from the start of the connection, so all of it should arrive.
    subscriber
        .wait_for(Duration::from_secs(5), |c| {
            c.video_frames >= sent_video.len() && c.audio_frames >= sent_audio.len()
        })
        .await
        .expect("all frames arrive");

    let video = subscriber.video_frames();
    let audio = subscriber.audio_frames();
    let vm = match_video(&sent_video, &video).expect("video byte-exact");
    assert_eq!(vm.sent_offset, 0);
    assert_eq!(vm.matched, 90);
    assert_eq!(vm.skipped_before_keyframe, 0);
    let am = match_audio(&sent_audio, &audio).expect("audio byte-exact");
    assert_eq!(am.sent_offset, 0);
    assert_eq!(am.matched, 151);

    // RTP sequence numbers are continuous and frames span consecutive packets.
    let video_packets = subscriber.video_packets();
    assert_eq!(sequence_gaps(&video_packets), vec![]);
    assert_eq!(sequence_gaps(&subscriber.audio_packets()), vec![]);
    for pair in video.windows(2) {
        assert_eq!(pair[0].last_seq.wrapping_add(1), pair[1].first_seq);
        assert_eq!(
            pair[1].rtp_timestamp.wrapping_sub(pair[0].rtp_timestamp),
            3000
        );
    }
    for pair in audio.windows(2) {
        assert_eq!(
            pair[1].rtp_timestamp.wrapping_sub(pair[0].rtp_timestamp),
            960
        );
    }
    let counts = subscriber.counts();
    assert_eq!(counts.video_frames_dropped, 0);
    assert_eq!(counts.video_bad_packets, 0);
    assert!(
        video_packets.len() > video.len(),
        "keyframes span several packets"
    );

    // No server: nothing to DELETE.
    assert!(publisher.delete().await.is_err());
    publisher.close().await.expect("close publisher");
    subscriber.close().await.expect("close subscriber");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_frames_match_mid_stream() {
    // Looping forever: the receiver's sequence is checked as a run in the middle of the sent
    // one, starting at a keyframe, as a late WHEP subscriber's would be.
    let (publisher, subscriber) = connect_in_process(
        &video_fixture(),
        &audio_fixture(),
        PublishOptions::default(),
    )
    .await
    .expect("connect");
    subscriber
        .wait_video_frames(100, Duration::from_secs(15))
        .await
        .expect("frames across a loop boundary");
    subscriber
        .request_keyframe()
        .await
        .expect("PLI can be sent");
    publisher
        .wait_progress(Duration::from_secs(5), |p| p.keyframe_requests >= 1)
        .await
        .expect("the publisher sees the PLI");
    publisher.stop_sending();
    let sent = publisher.sent_video();
    let mut received = subscriber.video_frames();
    // Pretend the subscriber joined after frame 40: the match starts at the next keyframe.
    let joined = received.split_off(40);
    let vm = match_video(&sent, &joined).expect("mid-stream match");
    assert_eq!(
        vm.skipped_before_keyframe, 20,
        "frame 60 is the next keyframe"
    );
    assert_eq!(vm.sent_offset, 60);
    assert!(sent.iter().any(|f| f.loop_index == 1));
    let am = match_audio(&publisher.sent_audio(), &subscriber.audio_frames()[30..])
        .expect("audio mid-stream match");
    assert!(am.matched > 0);
    publisher.close().await.expect("close");
    subscriber.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyframe_request_skips_to_next_keyframe() {
    let opts = PublishOptions {
        keyframe_on_request: true,
        audio: false,
        ..PublishOptions::default()
    };
    let (publisher, subscriber) = connect_in_process(&video_fixture(), &audio_fixture(), opts)
        .await
        .expect("connect");
    // Well before the file's second keyframe (frame 30).
    subscriber
        .wait_video_frames(5, Duration::from_secs(10))
        .await
        .expect("first frames");
    subscriber.request_keyframe().await.expect("PLI");
    let p = publisher
        .wait_progress(Duration::from_secs(5), |p| p.keyframe_requests >= 1)
        .await
        .expect("PLI arrives");
    publisher
        .wait_video_sent(p.video_frames + 3, Duration::from_secs(5))
        .await
        .expect("more frames sent");
    let sent = publisher.sent_video();
    assert!(
        sent.windows(2)
            .any(|w| w[1].file_index == 30 && w[0].file_index + 1 < 30),
        "the publisher jumped ahead to the keyframe at frame 30: {:?}",
        sent.iter().map(|f| f.file_index).collect::<Vec<_>>()
    );
    subscriber
        .wait_video_frames(p.video_frames + 3, Duration::from_secs(5))
        .await
        .expect("frames arrive");
    let vm = match_video(&sent, &subscriber.video_frames()).expect("byte-exact despite the skip");
    assert_eq!(vm.sent_offset, 0);
    assert!(publisher.sent_audio().is_empty());
    publisher.close().await.expect("close");
    subscriber.close().await.expect("close");
}
