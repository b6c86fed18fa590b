//! The media plane's timing-dependent features on simulated time: each case sets up cores and
//! clients, runs virtual seconds in milliseconds of real time, and checks what the clients
//! observed (the publisher's keyframe requests, the viewers' packets and frames), with the
//! core's counters only as a second witness. Cases must never read the wall clock or sleep.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use classrelay::sfu::{AddError, Follow};
use classrelay_loadtest::netem::LinkProfile;
use str0m::format::Codec;
use str0m::media::MediaKind;

use crate::client::{frames, video_by_ssrc, Publish, RxFrame};
use crate::net::Access;
use crate::signal::View;
use crate::worker::CoreConfig;
use crate::world::World;

pub(crate) const SEED: u64 = 18;
const ROOM: &str = "lesson";

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn link(delay: u64, jitter: u64, loss: f64) -> LinkProfile {
    LinkProfile {
        loss,
        delay: ms(delay),
        jitter: ms(jitter),
        rate_bps: None,
        seed: 0,
    }
}

/// Gives the next client to join its own access link (`down` toward it, `up` from it).
fn next_link(w: &mut World, down: LinkProfile, up: LinkProfile) {
    let ip = w.next_client_addr().ip();
    w.net.set_access(ip, Access { down, up });
}

/// A world with `cores` cores and one publisher (client 0) on core 0, connected and sending.
pub(crate) fn with_publisher(seed: u64, cores: usize, cfg: CoreConfig, opts: Publish) -> World {
    let mut w = World::new(seed);
    w.start_cores(cores, cfg, seed);
    w.publish(0, ROOM, "pub", opts);
    assert!(
        w.connect_all(Duration::from_secs(5)),
        "the publisher connects"
    );
    w
}

pub(crate) fn viewer(w: &mut World, core: usize, name: &str) -> usize {
    w.view(core, 0, ROOM, name, View::default())
        .expect("the viewer is added")
}

/// The viewer's frames that started after `t` (arrival of their first packet).
fn frames_after(f: &[RxFrame], t: std::time::Instant) -> Vec<&RxFrame> {
    f.iter().filter(|x| x.at >= t).collect()
}

/// The frames' (source, layer, keyframe) where their first packet came, in order.
fn starts(f: &[&RxFrame]) -> Vec<(u8, u8, bool)> {
    f.iter()
        .filter_map(|x| x.start.map(|s| (s.source, s.layer, s.keyframe)))
        .collect()
}

/// Many viewers join at the same instant, with the GOP cache of no use (the publisher's GOP
/// is long past `GopCache::MAX_REPLAY` packets) and a publisher whose keyframes take 600 ms
/// to come back: the keyframe gate lets one request through per interval and coalesces the
/// rest, and every viewer's picture still starts at a keyframe.
#[test]
fn a_bell_of_fifty_joins_costs_the_publisher_one_request_per_gate_interval() {
    let mut w = World::new(SEED);
    w.start_cores(1, CoreConfig::default(), SEED);
    // A far publisher: 300 ms each way.
    next_link(&mut w, link(300, 0, 0.0), link(300, 0, 0.0));
    w.publish(
        0,
        ROOM,
        "pub",
        Publish {
            gop: 0,
            audio: false,
            ..Publish::default()
        },
    );
    assert!(w.connect_all(Duration::from_secs(5)));
    // 8 s at ~3 packets a frame: a GOP of ~700 packets, too long to replay.
    w.run_for(Duration::from_secs(8));
    let bell = w.now;
    for i in 0..50 {
        // Access links of 5..100 ms: the joins complete over a few hundred milliseconds.
        let d = 5 + (i * 37 % 96) as u64;
        next_link(&mut w, link(d, 0, 0.0), link(d, 0, 0.0));
        viewer(&mut w, 0, &format!("v{i}"));
    }
    assert!(
        w.connect_all(Duration::from_secs(5)),
        "every viewer connects"
    );
    let connected: Vec<_> = w.clients[1..]
        .iter()
        .map(|c| c.connected_at.unwrap())
        .collect();
    let span = *connected.iter().max().unwrap() - *connected.iter().min().unwrap();
    w.run_for(Duration::from_secs(3));
    for c in &w.clients[1..] {
        let f = frames(c.rx());
        let first = f.first().unwrap_or_else(|| panic!("{} got video", c.name));
        assert!(
            first.start.is_some_and(|s| s.keyframe),
            "{}'s picture starts at a keyframe: {:?}",
            c.name,
            first.start
        );
    }
    let asked: u32 = w.clients[0].sender().keyframe_requests.iter().sum();
    let core = &w.cores[0].metrics;
    let coalesced = core.keyframe_requests_coalesced.get();
    eprintln!(
        "bell: joins over {span:?} (after {:?}), publisher asked {asked} times, \
         {coalesced} coalesced, {} GOP replays",
        bell - w.start,
        core.gop_replays.get()
    );
    let allowed = 1 + (span.as_millis() / 300) as u32 + 1;
    assert!(
        asked <= allowed,
        "{asked} keyframe requests for 50 joins over {span:?}"
    );
    assert!(asked >= 1, "the joins did ask");
    assert!(coalesced >= 45, "{coalesced} coalesced");
    assert_eq!(
        core.gop_replays.get(),
        0,
        "no joiner was served from the GOP cache: the gate did the work"
    );
}

/// A viewer moved from the top layer to the bottom one gets its first packet of the bottom
/// layer at a keyframe (the server asked the publisher for one), and no packet of the top
/// layer after it; its stream numbers run on without a gap.
#[test]
fn a_simulcast_switch_lands_on_a_keyframe_at_the_receiver() {
    let mut w = with_publisher(
        SEED,
        1,
        CoreConfig::default(),
        Publish {
            rids: vec!["h".into(), "m".into(), "l".into()],
            gop: 90,
            ..Publish::default()
        },
    );
    let v = viewer(&mut w, 0, "v");
    w.set_layer(0, "v", Some("h"));
    w.run_for(Duration::from_secs(2));
    let asked_before = w.clients[0].sender().keyframe_requests[2];
    let switch = w.now;
    w.set_layer(0, "v", Some("l"));
    w.run_for(Duration::from_secs(2));
    let f = frames(w.clients[v].rx());
    let before: Vec<_> = f.iter().filter(|x| x.at < switch).collect();
    assert!(
        starts(&before).iter().all(|s| s.1 == 0),
        "only the top layer before"
    );
    let after = frames_after(&f, switch);
    let s = starts(&after);
    let first_low = s
        .iter()
        .position(|x| x.1 == 2)
        .expect("the bottom layer arrives");
    assert!(
        s[first_low].2,
        "the first bottom-layer frame is a keyframe: {s:?}"
    );
    assert!(
        s[first_low..].iter().all(|x| x.1 == 2),
        "nothing of the top layer after the switch: {s:?}"
    );
    assert!(
        w.clients[0].sender().keyframe_requests[2] > asked_before,
        "the switch asked the publisher for a bottom-layer keyframe"
    );
    // Within 2 s, before the publisher's own next keyframe (every 3 s) would have come.
    assert!(
        after
            .iter()
            .filter(|x| x.start.is_some_and(|s| s.layer == 2))
            .count()
            > 30
    );
    let by = video_by_ssrc(w.clients[v].rx());
    assert_eq!(by.len(), 1, "one video stream across the switch");
    let seqs: BTreeSet<u64> = by.values().next().unwrap().iter().map(|p| p.seq).collect();
    let (lo, hi) = (*seqs.first().unwrap(), *seqs.last().unwrap());
    assert_eq!(
        seqs.len() as u64,
        hi - lo + 1,
        "no gap in the viewer's numbers"
    );
    assert!(f.iter().all(|x| x.complete), "every frame whole");
}

/// A room piped to a second core whose inbox stops being read for a while: the home core
/// drops past its pipe backlog, and the far core then holds the video back until the next
/// keyframe, so its viewer's picture resumes at a keyframe rather than mid-GOP.
#[test]
fn a_pipe_that_overflows_resumes_its_viewer_at_a_keyframe() {
    let cfg = CoreConfig {
        pipe_backlog: 16,
        ..CoreConfig::default()
    };
    let mut w = with_publisher(
        SEED,
        2,
        cfg,
        Publish {
            gop: 45,
            ..Publish::default()
        },
    );
    let v = viewer(&mut w, 1, "far");
    assert!(w.connect_all(Duration::from_secs(5)));
    w.run_for(Duration::from_secs(1));
    let stall = w.now;
    w.pipe_stall.insert(1, stall + ms(400));
    w.run_for(Duration::from_secs(4));
    let drops = w.cores[0].metrics.pipe_drops.get();
    assert!(drops > 0, "the home core dropped past its backlog");
    let f = frames(w.clients[v].rx());
    let numbers: Vec<(u32, bool)> = f
        .iter()
        .filter_map(|x| x.start.map(|s| (s.frame, s.keyframe)))
        .collect();
    // The first frame after the hole in the publisher's frame numbers is a keyframe.
    let hole = numbers
        .windows(2)
        .position(|p| p[1].0 > p[0].0 + 1)
        .expect("frames were lost in the stall");
    let resumed = numbers[hole + 1];
    assert!(
        resumed.1,
        "resumed at frame {} which is not a keyframe: {numbers:?}",
        resumed.0
    );
    assert!(
        numbers.len() > hole + 20,
        "and it goes on: {} frames after the hole",
        numbers.len() - hole - 1
    );
    // Frames between the stall and the resumption, if any, are whole ones that were queued.
    let partial_after: Vec<_> = f
        .iter()
        .filter(|x| x.at > stall && x.start.is_some() && !x.complete)
        .collect();
    assert!(partial_after.len() <= 1, "{partial_after:?}");
}

/// Two classrooms publish; a viewer follows the spotlight. Moved from one to the other, the
/// viewer's picture switches to the second at a keyframe, and the first's stops there. The
/// publishers' GOPs are too long to replay from the cache and their keyframes come 200 ms
/// after a request, so the second classroom's frames before its keyframe must be held back.
#[test]
fn a_spotlight_move_rebinds_the_viewer_at_a_keyframe() {
    let mut w = World::new(SEED);
    w.start_cores(1, CoreConfig::default(), SEED);
    for (i, part) in ["c:1", "c:2"].iter().enumerate() {
        w.publish(
            0,
            ROOM,
            &format!("pub{i}"),
            Publish {
                gop: 0,
                key_delay: ms(200),
                source: i as u8 + 1,
                part: Some(part.to_string()),
                audio: false,
                ..Publish::default()
            },
        );
    }
    w.set_spotlight(0, ROOM, Some("c:1"));
    let v = w
        .view(
            0,
            0,
            ROOM,
            "big-screen",
            View {
                follow: Follow::Spotlight,
                ..View::default()
            },
        )
        .expect("added");
    assert!(w.connect_all(Duration::from_secs(5)));
    // Past `GopCache::MAX_REPLAY` packets since the last keyframe of either.
    w.run_for(Duration::from_secs(6));
    let asked = w.clients[1].sender().keyframe_requests[0];
    let moved = w.now;
    w.set_spotlight(0, ROOM, Some("c:2"));
    w.run_for(Duration::from_secs(2));
    let f = frames(w.clients[v].rx());
    let before: Vec<_> = f.iter().filter(|x| x.at < moved).collect();
    let sb = starts(&before);
    assert!(
        !sb.is_empty() && sb.iter().all(|s| s.0 == 1),
        "classroom 1 before: {sb:?}"
    );
    assert!(sb[0].2, "and from a keyframe");
    let s = starts(&frames_after(&f, moved));
    let first = s
        .iter()
        .position(|x| x.0 == 2)
        .expect("classroom 2 arrives");
    assert!(s[first].2, "classroom 2 starts at a keyframe: {s:?}");
    assert!(
        s[first..].iter().all(|x| x.0 == 2),
        "nothing of classroom 1 after: {s:?}"
    );
    assert!(s.len() > first + 30, "and goes on");
    assert!(
        w.clients[1].sender().keyframe_requests[0] > asked,
        "the move asked classroom 2 for a keyframe"
    );
    assert_eq!(w.cores[0].metrics.gop_replays.get(), 0, "no replay helped");
}

/// The viewer's downlink loses 5 % with 5 ms of jitter: every video packet still arrives,
/// by NACK and resend. The same seed gives the same trace; another seed another one.
#[test]
fn nack_repairs_five_percent_loss_with_jitter_and_the_run_repeats_from_its_seed() {
    fn run(seed: u64) -> (World, usize) {
        let mut w = with_publisher(seed, 1, CoreConfig::default(), Publish::default());
        next_link(&mut w, link(20, 5, 0.05), link(20, 5, 0.0));
        let v = viewer(&mut w, 0, "lossy");
        w.run_for(Duration::from_secs(6));
        (w, v)
    }
    let (w, v) = run(SEED);
    let addr = w.clients[v].addr;
    let lost = w.net.lost.get(&addr).copied().unwrap_or(0);
    let by = video_by_ssrc(w.clients[v].rx());
    assert_eq!(by.len(), 1);
    let pkts = by.values().next().unwrap();
    let seqs: BTreeSet<u64> = pkts.iter().map(|p| p.seq).collect();
    let (lo, hi) = (*seqs.first().unwrap(), *seqs.last().unwrap());
    // The last ~100 ms may still be under repair when the run stops.
    let missing: Vec<u64> = (lo..hi - 10).filter(|s| !seqs.contains(s)).collect();
    let resent = w.cores[0].metrics.retransmissions_out.get();
    eprintln!(
        "nack: {} video packets, {lost} datagrams lost on the link, {resent} resent",
        seqs.len()
    );
    assert!(lost > 30, "the link lost {lost}");
    assert!(missing.is_empty(), "never repaired: {missing:?}");
    assert!(resent > 0);
    let audio = w.clients[v]
        .rx()
        .iter()
        .filter(|p| p.kind == MediaKind::Audio)
        .count();
    assert!(audio > 200, "audio too: {audio}");
    let trace = w.trace_hash();
    assert_eq!(run(SEED).0.trace_hash(), trace, "same seed, same trace");
    assert_ne!(
        run(SEED + 1).0.trace_hash(),
        trace,
        "another seed, another trace"
    );
}

/// A viewer restarts ICE with new credentials from a new port: media moves to the new
/// address (and keeps the fast path), nothing more goes to the old one.
#[test]
fn an_ice_restart_from_a_new_address_moves_the_media_there() {
    let mut w = with_publisher(SEED, 1, CoreConfig::default(), Publish::default());
    let v = viewer(&mut w, 0, "mover");
    assert!(w.connect_all(Duration::from_secs(5)));
    w.run_for(Duration::from_secs(1));
    let old = w.clients[v].addr;
    let new = SocketAddr::new(old.ip(), old.port() + 1);
    let fast_before = w.cores[0].metrics.direct_srtp_packets_out.get();
    assert!(fast_before > 0, "the fast path serves the viewer");
    w.ice_restart(v, 0, new);
    w.run_for(Duration::from_millis(500));
    let old_count = w.net.delivered.get(&old).copied().unwrap_or(0);
    let new_count = w.net.delivered.get(&new).copied().unwrap_or(0);
    let rx_at = w.clients[v].rx().len();
    let moved_at = w.now;
    w.run_for(Duration::from_secs(2));
    assert_eq!(
        w.net.delivered.get(&old).copied().unwrap_or(0),
        old_count,
        "nothing goes to the old address"
    );
    let to_new = w.net.delivered.get(&new).copied().unwrap_or(0) - new_count;
    assert!(to_new > 100, "media goes to the new one: {to_new}");
    let video_after = w.clients[v].rx()[rx_at..]
        .iter()
        .filter(|p| p.kind == MediaKind::Video && p.at >= moved_at)
        .count();
    assert!(
        video_after > 100,
        "the viewer keeps receiving video: {video_after}"
    );
    assert!(
        w.cores[0].metrics.direct_srtp_packets_out.get() > fast_before + 100,
        "on the fast path"
    );
    let f = frames(w.clients[v].rx());
    assert!(frames_after(&f, moved_at).iter().all(|x| x.complete));
}

/// A viewer that offers only H.264 to a room whose publisher sends VP8 is refused with the
/// incompatible-codec error (signalling's 409), and the viewers that can decode it go on.
#[test]
fn a_viewer_that_cannot_decode_the_live_codec_is_refused() {
    let mut w = with_publisher(SEED, 1, CoreConfig::default(), Publish::default());
    let ok = viewer(&mut w, 0, "vp8");
    w.run_for(Duration::from_secs(1));
    let refused = w.view(
        0,
        0,
        ROOM,
        "h264",
        View {
            codecs: vec![Codec::H264],
            ..View::default()
        },
    );
    match refused {
        Err(AddError::IncompatibleCodec(detail)) => eprintln!("refused: {detail}"),
        other => panic!("expected IncompatibleCodec, got {:?}", other.map(|_| ())),
    }
    let n = w.clients[ok].rx().len();
    w.run_for(Duration::from_secs(1));
    assert!(w.clients[ok].rx().len() > n + 100, "the VP8 viewer goes on");
}

/// Two cores, a simulcast publisher, a viewer at home and one piped to the other core over a
/// lossy, jittery link: run twice from one seed, every viewer gets the same packets at the
/// same virtual instants; from another seed, not.
#[test]
fn the_same_seed_gives_the_same_trace_across_two_cores_and_a_pipe() {
    fn run(seed: u64) -> World {
        let mut w = with_publisher(
            seed,
            2,
            CoreConfig::default(),
            Publish {
                rids: vec!["h".into(), "l".into()],
                ..Publish::default()
            },
        );
        viewer(&mut w, 0, "home");
        next_link(&mut w, link(30, 10, 0.03), link(30, 10, 0.0));
        viewer(&mut w, 1, "far");
        w.run_for(Duration::from_secs(1));
        w.set_layer(1, "far", Some("l"));
        w.run_for(Duration::from_secs(2));
        assert!(w.clients[1..].iter().all(|c| c.rx().len() > 100));
        w
    }
    let first = run(SEED).trace_hash();
    assert_eq!(run(SEED).trace_hash(), first, "same seed, same trace");
    assert_ne!(
        run(SEED + 1).trace_hash(),
        first,
        "another seed, another trace"
    );
}
