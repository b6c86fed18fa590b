//! Unit tests of the core's pure helpers and of a core driven over [`Queued`] on the time
//! it is given. They must never bind a socket or sleep.

use super::fanout::frame_open;
use super::*;
use str0m::format::{CodecSpec, FormatParams};

fn vp8() -> PayloadParams {
    PayloadParams::new(
        96.into(),
        None,
        CodecSpec {
            codec: Codec::Vp8,
            clock_rate: str0m::media::Frequency::NINETY_KHZ,
            channels: None,
            format: FormatParams::default(),
        },
    )
}

fn packet(tid: u64, layer: usize, seq: u64, marker: bool) -> PipedPacket {
    PipedPacket {
        tid,
        layer,
        rid: None,
        ssrc: Ssrc::from(7),
        params: vp8(),
        pkt: CachedPacket {
            seq,
            ts: 0,
            arrival: Instant::now(),
            pt: Pt::from(96),
            marker,
            payload: vec![0u8; 10].into(),
            ext: ExtensionValues::default(),
        },
    }
}

fn rtp(home: usize, tid: u64, layer: usize, seq: u64) -> PipeMsg {
    PipeMsg::Rtp {
        home,
        packet: packet(tid, layer, seq, false),
        arrived: None,
    }
}

/// What is left: (tid, seq) of packets, `None` for any other message.
fn left(stash: &VecDeque<PipeMsg>) -> Vec<Option<(u64, u64)>> {
    stash
        .iter()
        .map(|m| match m {
            PipeMsg::Rtp { packet, .. } => Some((packet.tid, packet.pkt.seq)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_look_takes_the_frames_rest_from_the_pipe_in_order_and_stops_at_a_change_of_tracks() {
    let mut stash: VecDeque<PipeMsg> = VecDeque::from(vec![
        rtp(1, 5, 0, 10),
        rtp(1, 6, 0, 500), // another track: stays
        rtp(1, 5, 1, 90),  // another layer of the track: stays
        rtp(1, 5, 0, 11),
        rtp(2, 5, 0, 12), // the same id from another home worker: stays
        rtp(1, 5, 0, 13),
        PipeMsg::TrackGone { home: 1, tid: 5 },
        rtp(1, 5, 0, 14), // after the change: must not pass it
    ]);
    let found = take_piped(&mut stash, |home, p| {
        home == 1 && p.tid == 5 && p.layer == 0
    });
    let seqs: Vec<u64> = found.iter().map(|(p, _)| p.pkt.seq).collect();
    assert_eq!(seqs, vec![10, 11, 13]);
    assert_eq!(
        left(&stash),
        vec![
            Some((6, 500)),
            Some((5, 90)),
            Some((5, 12)),
            None,
            Some((5, 14))
        ]
    );
    // A change of tracks at the head (as `drain_pipe` leaves one while the packets
    // before it go out): nothing passes it.
    stash.push_front(PipeMsg::TrackGone { home: 1, tid: 6 });
    assert!(take_piped(&mut stash, |_, _| true).is_empty());
    stash.pop_front();
    // Nothing wanted: nothing moves.
    let before = left(&stash);
    assert!(take_piped(&mut stash, |_, _| false).is_empty());
    assert_eq!(left(&stash), before);
}

/// A core with no peers over queues, at simulated time `now`.
fn queued_core(now: Instant) -> WorkerCore<Queued> {
    let settings = Settings {
        keyframe_interval: Duration::from_millis(300),
        disconnect_grace: Duration::from_secs(5),
        metrics: Metrics::new(),
        peer_count: Arc::default(),
        load: Arc::default(),
        direct_srtp: true,
        pipe_backlog: super::super::pipe::BACKLOG,
        fanout_chunk: FAN_OUT_CHUNK,
        connect_timeout: CONNECT_TIMEOUT,
        publish_cap: PublishCap::new(10_000, 2_000),
        seed: 7,
    };
    let local = SocketAddr::from(([127, 0, 0, 1], 3478));
    WorkerCore::new(0, local, settings, Queued::new(1), now)
}

#[test]
fn a_core_runs_on_the_time_it_is_given_without_a_socket() {
    // An arbitrary origin: the core reads no clock, so simulated time is any Instant.
    let t0 = Instant::now();
    let mut core = queued_core(t0);
    assert_eq!(core.poll_timeout(), Some(t0 + HOUSEKEEPING));
    // A datagram nobody's: counted, dropped, nothing sent.
    core.handle_datagram(t0, SocketAddr::from(([10, 0, 0, 9], 5000)), &[0x80; 40]);
    core.forward(t0);
    assert_eq!(core.metrics().udp_unroutable.get(), 1);
    assert!(core.poll_transmit().is_none());
    // Commands are answered at the time given; an unknown room has no links.
    let (tx, mut rx) = tokio::sync::oneshot::channel();
    let later = t0 + Duration::from_secs(3600);
    core.handle_command(
        later,
        Command::LinkStats {
            room: "lesson-1".into(),
            reply: tx,
        },
    );
    assert_eq!(rx.try_recv().map(|v| v.len()), Ok(0));
    // Housekeeping runs when the time handed in says so, then is due a period later.
    core.handle_timeout(later);
    assert_eq!(core.poll_timeout(), Some(later + HOUSEKEEPING));
    assert!(core.poll_event().is_none() && core.poll_pipe().is_none());
    assert!(core.poll_command().is_none());
}

#[test]
fn only_a_video_group_without_its_marker_is_an_open_frame() {
    let prep = |video: bool, marker: bool| Ingested {
        pkt: packet(1, 0, 1, marker).pkt,
        params: vp8(),
        is_video: video,
        keyframe: false,
        clock_rate: 90_000,
        kept: None,
    };
    assert!(frame_open(&[prep(true, false), prep(true, false)]));
    assert!(!frame_open(&[prep(true, false), prep(true, true)]));
    // Audio has no frames to finish (its marker starts a talkspurt).
    assert!(!frame_open(&[prep(false, false)]));
    assert!(!frame_open(&[]));
}
