//! The publisher's leg on a real server with the independent `webrtc` client (issue 19
//! items 3 and 4), over real sockets; must never mock the server, the client or the link.
//!
//! - A publisher that offers no RTX (the `webrtc` test client registers VP8 and Opus only,
//!   as OBS or GStreamer do by default) behind a userspace link losing 5 % of its uplink:
//!   the server NACKs it (plain RFC 4585 retransmission, same SSRC and sequence number) and
//!   a viewer's count of complete frames stays within 3 % of the same run without loss.
//! - A teacher whose page dies without hanging up (no DELETE) and publishes again within
//!   2 s: the new session replaces the stale one at once, the classroom's video resumes
//!   within 1 s of the new session's first keyframe with continuous sequence numbers on
//!   the same SSRC (no renegotiation); a classroom that comes back (`?replace=1`) replaces
//!   its old viewing session the same way.
//! - A viewer that comes back without asking: a classroom or the hub teacher watching the
//!   same source again replaces its stale viewing session; an observer's second tab does not.
//!
//! Run: `cargo test --test publisher_leg -- --nocapture` (prints the figures).

mod support;

use std::time::{Duration, Instant};

use classrelay::auth::Grant;
use classrelay::{Config, Server};
use classrelay_loadtest::netem::LinkProfile;
use reqwest::{Method, StatusCode};
use support::school::{at, fixture, lesson, App, Backend};
use support::webrtc_client::{
    audio_fixture, complete_frames, sequence_gaps, video_fixture, whep_subscribe,
    whip_publish_through, whip_publish_with, PublishOptions, Subscriber,
};

/// Passes over the 3 s fixture each run sends.
const LOOPS: u32 = 4;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A metric's value from the `/metrics` text (0 when absent).
async fn metric(base: &str, name: &str) -> f64 {
    let text = support::metrics::scrape(&reqwest::Client::new(), base).await;
    support::metrics::value(&text, name).unwrap_or(0.0)
}

/// Waits until the viewer's video stops coming (no packet for 500 ms; the publisher has
/// finished): each wait ends at the next packet, not after a fixed time.
async fn until_quiet(viewer: &Subscriber) {
    loop {
        let n = viewer.counts().video_packets;
        if viewer
            .wait_for(ms(500), |c| c.video_packets > n)
            .await
            .is_err()
        {
            return;
        }
    }
}

/// One run in its own room: a viewer, then the RTX-less publisher behind a link losing
/// `loss` of its uplink, the fixture sent `LOOPS` times. Returns (frames sent, complete
/// frames the viewer got, NACKs the server sent upstream during the run).
async fn run(server: &Server, room: &str, loss: f64) -> (usize, usize, f64) {
    let base = server.base_url();
    let viewer_token = server.mint_token(room, Grant::Subscribe, Duration::from_secs(600));
    let viewer = whep_subscribe(&base, room, &viewer_token)
        .await
        .expect("the viewer subscribes");
    let nacks_before = metric(&base, "classrelay_nacks_sent_total").await;
    let token = server.mint_token(room, Grant::Publish, Duration::from_secs(600));
    let (video, audio) = (video_fixture(), audio_fixture());
    let (publisher, relay) = whip_publish_through(
        &base,
        room,
        &token,
        (video.as_path(), audio.as_path()),
        PublishOptions::loops(LOOPS),
        LinkProfile {
            loss,
            delay: ms(20),
            seed: 19,
            ..LinkProfile::default()
        },
        LinkProfile {
            delay: ms(20),
            ..LinkProfile::default()
        },
    )
    .await
    .expect("the publisher connects through its link");
    assert!(
        !publisher.answer_sdp().contains("rtx/90000"),
        "no RTX was negotiated: {}",
        publisher.answer_sdp()
    );
    publisher
        .wait_done(Duration::from_secs(60))
        .await
        .expect("the publisher sends every frame");
    until_quiet(&viewer).await;
    let sent = publisher.sent_video().len();
    let complete = complete_frames(&viewer.video_packets());
    let nacks = metric(&base, "classrelay_nacks_sent_total").await - nacks_before;
    eprintln!(
        "loss {loss}: {sent} frames sent, {complete} complete at the viewer, {nacks} NACKs \
         upstream, the relay dropped {} of {} datagrams",
        relay.up().dropped(),
        relay.up().forwarded() + relay.up().dropped()
    );
    (sent, complete, nacks)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rtx_less_publisher_losing_five_percent_is_repaired_by_plain_nacks() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(Config::for_tests(dir.path())).await.unwrap();
    let (sent, clean, _) = run(&server, "clean", 0.0).await;
    assert!(
        clean as f64 >= sent as f64 * 0.97,
        "the lossless run delivers nearly every frame whole: {clean} of {sent}"
    );
    let (_, lossy, nacks) = run(&server, "lossy", 0.05).await;
    assert!(nacks > 0.0, "the server NACKed the publisher ({nacks})");
    assert!(
        lossy as f64 >= clean as f64 * 0.97,
        "with 5 % uplink loss {lossy} complete frames, without {clean}"
    );
}

/// A lesson participant's media token for lesson `id`, joined with login or device `who`.
async fn join(app: &App, who: &str, id: i64) -> String {
    let (s, j) = app
        .call(
            Some(who),
            Method::POST,
            &format!("/api/lessons/{id}/join"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{j}");
    j["token"].as_str().expect("a token").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_teacher_who_vanishes_and_publishes_again_takes_over_at_once() {
    let app = App::start(Backend::Sqlite).await.expect("sqlite");
    let f = fixture(&app).await;
    let id = lesson(&app, &f, "delivery", "08:00", "08:40").await;
    app.clock.set(at("08:00"));
    let room = format!("lesson-{id}");
    let teacher = join(&app, &f.teacher_login, id).await;
    let device = app.device(f.room_a).await;
    let class = join(&app, &device, id).await;
    let viewer = whep_subscribe(&app.base, &room, &class)
        .await
        .expect("the classroom watches");
    let opts = PublishOptions {
        keyframe_on_request: true,
        ..PublishOptions::default()
    };
    let files = (video_fixture(), audio_fixture());
    let stale = whip_publish_with(&app.base, &room, &teacher, &files.0, &files.1, opts.clone())
        .await
        .expect("the teacher publishes");
    viewer
        .wait_video_frames(30, Duration::from_secs(15))
        .await
        .expect("the classroom sees the teacher");

    // The page dies: nothing more is sent, no DELETE; the old peer connection stays up.
    stale.stop_sending();
    let vanished = Instant::now();
    let fresh = whip_publish_with(&app.base, &room, &teacher, &files.0, &files.1, opts)
        .await
        .expect("the teacher publishes again");
    assert!(
        vanished.elapsed() < Duration::from_secs(2),
        "published again within 2 s ({:?})",
        vanished.elapsed()
    );
    fresh
        .wait_video_sent(1, Duration::from_secs(5))
        .await
        .expect("the new session sends");
    let first_key = fresh.sent_video()[0].clone();
    assert!(first_key.keyframe, "the new session starts with a keyframe");
    let t0 = Instant::now();
    let back = loop {
        let got = viewer
            .video_frames()
            .into_iter()
            .find(|fr| fr.keyframe && fr.received_at >= first_key.sent_at);
        if let Some(fr) = got {
            break fr;
        }
        let n = viewer.counts().video_frames;
        viewer
            .wait_for(Duration::from_secs(3), |c| c.video_frames > n)
            .await
            .expect("the classroom's video resumes");
        assert!(t0.elapsed() < Duration::from_secs(5), "video resumes");
    };
    let delay = back
        .received_at
        .saturating_duration_since(first_key.sent_at);
    eprintln!("republish: the classroom's picture came back {delay:?} after the new keyframe");
    assert!(
        delay <= Duration::from_secs(1),
        "within 1 s of the new session's first keyframe: {delay:?}"
    );
    assert_eq!(
        back.data, first_key.data,
        "the classroom resumes at the new session's first keyframe"
    );
    viewer
        .wait_video_frames(viewer.counts().video_frames + 30, Duration::from_secs(5))
        .await
        .expect("and goes on");
    let packets = viewer.video_packets();
    let ssrcs: std::collections::BTreeSet<u32> = packets.iter().map(|p| p.ssrc).collect();
    assert_eq!(ssrcs.len(), 1, "one outgoing stream, no renegotiation");
    assert_eq!(
        sequence_gaps(&packets),
        Vec::<(u16, u16)>::new(),
        "continuous sequence numbers across the takeover"
    );
    let at_switch = packets
        .iter()
        .position(|p| p.seq == back.first_seq)
        .expect("the new session's first packet");
    let (before, after) = (&packets[at_switch - 1], &packets[at_switch]);
    let step = after.timestamp.wrapping_sub(before.timestamp);
    assert!(
        step > 0 && step < 90_000 * 3,
        "the timestamps go on forward across the takeover: {} -> {}",
        before.timestamp,
        after.timestamp
    );
    // The stale session is gone: its resource no longer exists.
    assert_eq!(
        stale.delete().await.unwrap(),
        404,
        "the stale session was closed"
    );

    // The classroom's page comes back as a new viewing session that asks to replace its old
    // one (`?replace=1`, after the room in the WHEP URL): the old one is closed.
    let again = whep_subscribe(&app.base, &format!("{room}?replace=1"), &class)
        .await
        .expect("the classroom watches again");
    again
        .wait_video_frames(30, Duration::from_secs(10))
        .await
        .expect("and sees the teacher");
    assert_eq!(
        viewer.delete().await.unwrap(),
        404,
        "its old viewing session was closed"
    );
    assert_eq!(fresh.delete().await.unwrap(), 200);
}

/// A viewer that comes back (issue 19 item 4, the viewer's case) without `?replace=1`: a
/// seat of the lesson, the classroom or the hub teacher, whose page died without hanging up
/// and that watches the same source again replaces its stale viewing session at once (the
/// stale one is closed and gets nothing more, the new one plays). An observer opening a
/// second tab is not "the same viewer": both tabs play (see `signal::replaces_by_default`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_returning_seat_replaces_its_stale_viewer_and_an_observer_tab_does_not() {
    let app = App::start(Backend::Sqlite).await.expect("sqlite");
    let f = fixture(&app).await;
    let id = lesson(&app, &f, "delivery", "08:00", "08:40").await;
    app.clock.set(at("08:00"));
    let room = format!("lesson-{id}");
    let teacher = join(&app, &f.teacher_login, id).await;
    let class = join(&app, &app.device(f.room_a).await, id).await;
    let observer = join(&app, &f.observer_login, id).await;
    let opts = PublishOptions {
        keyframe_on_request: true,
        ..PublishOptions::default()
    };
    let files = (video_fixture(), audio_fixture());
    let publisher = whip_publish_with(&app.base, &room, &teacher, &files.0, &files.1, opts)
        .await
        .expect("the teacher publishes");

    // The classroom watches; its page dies (no DELETE: the old peer connection stays up)
    // and comes back with a plain WHEP POST of the same source.
    let stale = whep_subscribe(&app.base, &room, &class)
        .await
        .expect("the classroom watches");
    stale
        .wait_video_frames(30, Duration::from_secs(15))
        .await
        .expect("the classroom sees the teacher");
    let back = whep_subscribe(&app.base, &room, &class)
        .await
        .expect("the classroom watches again");
    back.wait_video_frames(30, Duration::from_secs(10))
        .await
        .expect("the new viewing session plays");
    assert_eq!(
        stale.delete().await.unwrap(),
        404,
        "the stale viewing session was closed"
    );
    let left = stale.counts().video_packets;
    back.wait_video_frames(back.counts().video_frames + 30, Duration::from_secs(5))
        .await
        .expect("the new one goes on");
    assert_eq!(
        stale.counts().video_packets,
        left,
        "the stale session gets nothing more"
    );

    // The hub teacher's console, watching the hub, comes back the same way.
    let hub = format!("{room}?source=hub");
    let console = whep_subscribe(&app.base, &hub, &teacher)
        .await
        .expect("the teacher watches");
    let console_back = whep_subscribe(&app.base, &hub, &teacher)
        .await
        .expect("the teacher watches again");
    assert_eq!(
        console.delete().await.unwrap(),
        404,
        "the teacher's stale viewing session was closed"
    );

    // An observer's two tabs are two viewers: both are kept and both play.
    let tab1 = whep_subscribe(&app.base, &room, &observer)
        .await
        .expect("the observer watches");
    let tab2 = whep_subscribe(&app.base, &room, &observer)
        .await
        .expect("the observer opens a second tab");
    tab2.wait_video_frames(30, Duration::from_secs(10))
        .await
        .expect("the second tab plays");
    tab1.wait_video_frames(tab1.counts().video_frames + 30, Duration::from_secs(10))
        .await
        .expect("the first tab still plays");
    for s in [&tab1, &tab2, &back, &console_back] {
        assert_eq!(
            s.delete().await.unwrap(),
            200,
            "still open, closed by its owner"
        );
    }
    assert_eq!(publisher.delete().await.unwrap(), 200);
}
