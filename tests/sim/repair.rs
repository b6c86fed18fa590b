//! The publisher leg's repair on simulated time (`sfu/core/repair.rs`): a viewer's NACK for
//! packets the server never received (lost on the publisher's uplink) becomes a keyframe
//! request through the layer's gate when no retransmission fills the hole, and nothing when
//! one does. Cases must never read the wall clock or sleep.

use std::time::{Duration, Instant};

use crate::cases::{viewer, with_publisher, SEED};
use crate::client::{frames, video_by_ssrc, Publish};
use crate::worker::CoreConfig;
use crate::world::World;

/// How long the publisher's uplink drops everything.
const OUTAGE: Duration = Duration::from_millis(40);

/// A publisher (a keyframe only when asked) and a viewer, two seconds in; then the
/// publisher's uplink drops everything for [`OUTAGE`] and the run goes on for two seconds.
/// `resends`: whether the publisher can answer NACKs (else its retransmission cache keeps
/// nothing long enough, as an encoder that cannot resend). Returns the world, the keyframe
/// requests the publisher had before the outage, the viewer, and when the outage ended.
fn outage(resends: bool) -> (World, u32, usize, Instant) {
    let opts = Publish {
        gop: 0,
        audio: false,
        ..Publish::default()
    };
    let mut w = with_publisher(SEED, 1, CoreConfig::default(), opts);
    let v = viewer(&mut w, 0, "classroom");
    assert!(w.connect_all(Duration::from_secs(5)));
    w.run_for(Duration::from_secs(2));
    if !resends {
        let video = w.clients[0].sender().video;
        let mut api = w.clients[0].rtc.direct_api();
        let tx = api
            .stream_tx_by_mid(video, None)
            .expect("the publisher's video stream");
        tx.set_rtx_cache(1, Duration::from_millis(1), None);
    }
    let asked = w.clients[0].sender().keyframe_requests[0];
    let ended = w.now + OUTAGE;
    let publisher = w.clients[0].addr;
    w.net.blackout.insert(publisher, ended);
    w.run_for(Duration::from_secs(2));
    (w, asked, v, ended)
}

#[test]
fn a_hole_no_retransmission_fills_becomes_a_gated_keyframe_request() {
    let (mut w, asked, v, ended) = outage(false);
    let holes = w.cores[0].metrics.keyframe_requests_for_holes.get();
    let now_asked = w.clients[0].sender().keyframe_requests[0];
    eprintln!("holes: {holes} requests for holes, publisher asked {asked} -> {now_asked}");
    assert!(
        holes >= 1,
        "the viewer's NACK for the hole became a request"
    );
    assert!(now_asked > asked, "the publisher was asked for a keyframe");
    // Through the gate (300 ms here): at most one a gate interval over the two seconds.
    assert!(now_asked - asked <= 7, "{} requests", now_asked - asked);
    let f = frames(w.clients[v].rx());
    let after: Vec<_> = f.iter().filter(|x| x.at >= ended).collect();
    let key = after
        .iter()
        .position(|x| x.start.is_some_and(|s| s.keyframe) && x.complete)
        .expect("a keyframe after the outage");
    // (The last frame may still be on its way when the run stops.)
    let on = &after[key..after.len() - 1];
    assert!(
        on.len() > 30 && on.iter().all(|x| x.complete),
        "and complete frames from it on"
    );
}

#[test]
fn a_hole_the_publisher_retransmits_asks_for_no_keyframe() {
    let (mut w, asked, v, _) = outage(true);
    assert_eq!(w.cores[0].metrics.keyframe_requests_for_holes.get(), 0);
    assert_eq!(
        w.clients[0].sender().keyframe_requests[0],
        asked,
        "no keyframe was asked for"
    );
    assert!(
        w.cores[0].metrics.nacks_sent.get() > 0,
        "the server NACKed the publisher"
    );
    let by = video_by_ssrc(w.clients[v].rx());
    let pkts = by.values().next().expect("video");
    let seqs: std::collections::BTreeSet<u64> = pkts.iter().map(|p| p.seq).collect();
    let (lo, hi) = (*seqs.first().unwrap(), *seqs.last().unwrap());
    let missing: Vec<u64> = (lo..hi - 10).filter(|s| !seqs.contains(s)).collect();
    assert!(missing.is_empty(), "the hole was filled: {missing:?}");
}

/// A publisher that offers no RTX (OBS, GStreamer by default): the server reports on its
/// video every second and NACKs what its uplink lost (this publisher cannot resend; the
/// NACKs are what is checked). A guard, not the proof of the hooks in `repair.rs`: a str0m
/// publisher's offer declares no SSRCs, so str0m's server side maps the stream at its first
/// packet from its own payload parameters (which carry an RTX payload type) and does not
/// suppress NACKs even without them; `tests/publisher_leg.rs` (the `webrtc` client, whose
/// offer declares its SSRC) is the case that fails without them.
#[test]
fn an_rtx_less_publisher_is_nacked_and_gets_a_report_every_second() {
    let opts = Publish {
        rtx: false,
        audio: false,
        ..Publish::default()
    };
    let mut w = with_publisher(SEED, 1, CoreConfig::default(), opts);
    let _v = viewer(&mut w, 0, "classroom");
    assert!(w.connect_all(Duration::from_secs(5)));
    w.run_for(Duration::from_secs(1));
    let from = w.now;
    let publisher = w.clients[0].addr;
    w.net.blackout.insert(publisher, w.now + OUTAGE);
    w.run_for(Duration::from_secs(6));
    let video = w.clients[0].sender().video;
    let ssrc = *w.clients[0]
        .rtc
        .direct_api()
        .stream_tx_by_mid(video, None)
        .expect("the publisher's video stream")
        .ssrc();
    let reports = w.clients[0]
        .sender()
        .reports_in
        .get(&ssrc)
        .map_or(0, |t| t.iter().filter(|t| **t >= from).count());
    eprintln!("rtx-less: {reports} reports on the video in 6 s");
    assert!(
        (5..=8).contains(&reports),
        "a reception report on the video about every second: {reports} in 6 s"
    );
    assert!(
        w.cores[0].metrics.nacks_sent.get() > 0,
        "the server NACKed the lost packets"
    );
}
