//! The recording tap on simulated time: a recorded room's core hands the capture writer's
//! channel exactly what the publisher sent (every packet of the top simulcast layer, nothing
//! of the others, every audio packet) plus its sender reports, declared and ended as tracks;
//! a full channel is a counted drop, never a wait. Must never read the wall clock or sleep.

use std::collections::BTreeMap;
use std::time::Duration;

use classrelay::record::format::{Codec, Record, SourceKind, TrackInfo};
use classrelay::record::writer::WriterMsg;
use classrelay::sfu::core::{Tap, TapPart};
use classrelay::sfu::Command;

use crate::client::{vp8_descriptor_len, vp8_frame, Out, Publish};
use crate::worker::CoreConfig;
use crate::world::World;

const ROOM: &str = "lesson-1";

fn record(w: &mut World, tap: Option<Tap>) {
    let (tx, mut rx) = tokio::sync::oneshot::channel();
    let mut out = Out::new();
    let now = w.now;
    w.cores[0].handle_command(
        now,
        Command::Record {
            room: ROOM.into(),
            tap: tap.map(Box::new),
            reply: Some(tx),
        },
        &mut out,
    );
    w.flush(&mut out);
    rx.try_recv().expect("answered at once");
}

fn taken(rx: &crossbeam_channel::Receiver<WriterMsg>) -> Vec<Record> {
    rx.try_iter()
        .map(|m| match m {
            WriterMsg::Record { id: 7, record, .. } => record,
            other => panic!("only records of recording 7: {other:?}"),
        })
        .collect()
}

/// A simulcast teacher (three layers, audio) recorded for 6 virtual seconds.
#[test]
fn a_recorded_room_hands_over_exactly_the_top_layer_and_the_audio_the_publisher_sent() {
    let mut w = World::new(20);
    w.start_cores(1, CoreConfig::default(), 20);
    let p = w.publish(
        0,
        ROOM,
        "teacher",
        Publish {
            rids: vec!["h".into(), "m".into(), "l".into()],
            part: Some("t:1".into()),
            source: 5,
            gop: 30,
            ..Publish::default()
        },
    );
    assert!(w.connect_all(Duration::from_secs(5)), "connects");
    w.run_for(Duration::from_secs(1));
    let (tx, rx) = crossbeam_channel::bounded(100_000);
    let first_frame = w.clients[p].frames_sent();
    record(
        &mut w,
        Some(Tap {
            recording: 7,
            tx,
            parts: vec![TapPart {
                part: "t:1".into(),
                name: "王老师".into(),
                hub: true,
            }],
        }),
    );
    w.run_for(Duration::from_secs(6));
    let last_frame = w.clients[p].frames_sent();
    record(&mut w, None);
    // Nothing more after the stop.
    w.run_for(Duration::from_millis(500));
    let recs = taken(&rx);
    assert!(recs.len() > 100);

    let tracks: Vec<&TrackInfo> = recs
        .iter()
        .filter_map(|r| match r {
            Record::Track(t) => Some(t),
            _ => None,
        })
        .collect();
    assert_eq!(tracks.len(), 2, "{tracks:?}");
    let video = tracks
        .iter()
        .find(|t| t.codec == Codec::Vp8)
        .expect("video");
    let audio = tracks
        .iter()
        .find(|t| t.codec == Codec::Opus)
        .expect("audio");
    assert_eq!(
        (
            video.kind,
            video.clock_rate,
            video.owner.as_str(),
            video.hub
        ),
        (SourceKind::TeacherCamera, 90_000, "王老师", true)
    );
    assert_eq!((audio.kind, audio.clock_rate), (SourceKind::Audio, 48_000));
    // Every track's records come after its declaration, and its end is the last.
    for t in [video, audio] {
        let at = |f: &dyn Fn(&Record) -> bool| recs.iter().position(f);
        let decl = at(&|r| matches!(r, Record::Track(x) if x.track == t.track)).unwrap();
        let end = at(&|r| matches!(r, Record::TrackEnd { track, .. } if *track == t.track))
            .expect("a TrackEnd at the stop");
        for (i, r) in recs.iter().enumerate() {
            if r.track() == t.track {
                assert!(decl <= i && i <= end, "record {i} outside {decl}..{end}");
            }
        }
    }
    assert!(
        !recs.iter().any(|r| matches!(r, Record::Dropped { .. })),
        "no drops with room in the channel"
    );

    // Video: rebuild each frame from its packets (VP8 descriptor off) and compare it with
    // what the publisher generated for layer 0 — byte for byte, no frame missing.
    let mut seqs = Vec::new();
    let mut frames: BTreeMap<u32, Vec<u8>> = BTreeMap::new();
    let mut current: Option<Vec<u8>> = None;
    let mut arrivals = Vec::new();
    for r in &recs {
        let Record::Rtp {
            track,
            packet,
            arrival_us,
        } = r
        else {
            continue;
        };
        arrivals.push((*track, *arrival_us));
        if *track != video.track {
            continue;
        }
        assert_eq!(packet[0], 0x80);
        assert_eq!(packet[1] & 0x7f, video.payload_type);
        seqs.push(u16::from_be_bytes([packet[2], packet[3]]));
        let payload = &packet[12..];
        let d = vp8_descriptor_len(payload).expect("a VP8 descriptor");
        let start = payload[0] & 0x10 != 0;
        if start {
            current = Some(Vec::new());
        }
        if let Some(c) = current.as_mut() {
            c.extend_from_slice(&payload[d..]);
        }
        if packet[1] & 0x80 != 0 {
            if let Some(c) = current.take() {
                let n = u32::from_be_bytes([c[12], c[13], c[14], c[15]]);
                assert_eq!(c[11], 0, "layer 0 only (the top one)");
                frames.insert(n, c);
            }
        }
    }
    for pair in seqs.windows(2) {
        assert_eq!(pair[1], pair[0].wrapping_add(1), "no packet missing");
    }
    let keys: Vec<u32> = w.clients[p].sender().keyframes_sent[0].clone();
    let (lo, hi) = (
        *frames.keys().next().unwrap(),
        *frames.keys().last().unwrap(),
    );
    assert!(
        lo <= first_frame + 1 && hi + 2 >= last_frame,
        "frames {lo}..={hi} cover what was sent while recording ({first_frame}..{last_frame})"
    );
    assert_eq!(frames.len() as u32, hi - lo + 1, "every frame in between");
    eprintln!(
        "captured frames {lo}..={hi} of {first_frame}..{last_frame} sent while recording, {} video packets",
        seqs.len()
    );
    let len = Publish::default().frame_bytes;
    for (n, bytes) in &frames {
        let expect = vp8_frame(keys.contains(n), 5, 0, *n, len);
        assert_eq!(bytes, &expect, "frame {n} as generated");
    }

    // Audio: every 20 ms packet, numbered by the publisher, none missing.
    let opus: Vec<u32> = recs
        .iter()
        .filter_map(|r| match r {
            Record::Rtp { track, packet, .. } if *track == audio.track => Some(u32::from_be_bytes(
                packet[15..19].try_into().expect("4 bytes"),
            )),
            _ => None,
        })
        .collect();
    assert!(opus.len() >= 290, "{} audio packets in 6 s", opus.len());
    for pair in opus.windows(2) {
        assert_eq!(pair[1], pair[0] + 1, "no audio packet missing");
    }

    // Arrival times grow with virtual time and stay within the recording.
    for pair in arrivals.windows(2) {
        if pair[0].0 == pair[1].0 {
            assert!(pair[1].1 >= pair[0].1, "arrivals in order per track");
        }
    }
    assert!(arrivals.iter().all(|(_, a)| *a <= 6_100_000));

    // Sender reports of both tracks (str0m sends them about every second for video and
    // every five for audio), mapping each track's RTP clock.
    let srs: Vec<(u32, u64, u32)> = recs
        .iter()
        .filter_map(|r| match r {
            Record::SenderReport {
                track,
                ntp,
                rtp_time,
                ..
            } => Some((*track, *ntp, *rtp_time)),
            _ => None,
        })
        .collect();
    assert!(
        srs.iter().filter(|s| s.0 == video.track).count() >= 3,
        "{srs:?}"
    );
    assert!(srs.iter().any(|s| s.0 == audio.track), "{srs:?}");
    eprintln!("{} sender reports, {} audio packets", srs.len(), opus.len());
    let v: Vec<&(u32, u64, u32)> = srs.iter().filter(|s| s.0 == video.track).collect();
    for pair in v.windows(2) {
        // NTP and RTP advance together: 90 000 ticks a second (within 5 %).
        let secs = (pair[1].1 - pair[0].1) as f64 / 4_294_967_296.0;
        let ticks = pair[1].2.wrapping_sub(pair[0].2) as f64;
        assert!(
            (ticks / secs - 90_000.0).abs() < 4_500.0,
            "SR clocks agree: {ticks} ticks in {secs} s"
        );
    }
}

/// A full channel: the tap never waits, counts what it could not hand over and writes it
/// as a `Dropped` record once there is room.
#[test]
fn a_full_writer_channel_is_a_counted_drop_then_a_dropped_record() {
    let mut w = World::new(21);
    w.start_cores(1, CoreConfig::default(), 21);
    w.publish(0, ROOM, "teacher", Publish::default());
    assert!(w.connect_all(Duration::from_secs(5)), "connects");
    let (tx, rx) = crossbeam_channel::bounded(50);
    record(
        &mut w,
        Some(Tap {
            recording: 7,
            tx,
            parts: Vec::new(),
        }),
    );
    w.run_for(Duration::from_secs(1));
    let first = taken(&rx);
    assert_eq!(first.len(), 50, "the channel filled");
    let dropped = w.cores[0].metrics.capture.dropped_packets.get();
    assert!(dropped > 50, "{dropped} drops counted");
    w.run_for(Duration::from_millis(100));
    let next = taken(&rx);
    let d = next
        .iter()
        .find_map(|r| match r {
            Record::Dropped { packets, .. } => Some(*packets),
            _ => None,
        })
        .expect("a Dropped record once there is room");
    assert!(d > 0);
}
