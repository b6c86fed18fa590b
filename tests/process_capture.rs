//! The processor (`record::process`) end to end on captures built from real encoded media: the
//! fixtures' VP8 and Opus frames (and the load generator's H.264) packetized with `rtc-rtp`
//! into `Record::Rtp`s with sender reports, processed, and the files read back with an
//! independent demuxer (`matroska-demuxer`) — frames, timestamps, A/V alignment, cues, gaps.
//! Test-only; never writes outside its temporary directories.

#[path = "support/skip.rs"]
#[allow(dead_code)] // only `because` is used here
mod skip;

use std::collections::HashMap;
use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use bytes::Bytes;
use classrelay::record::format::{
    Capture, CaptureHeader, Codec, Record, SourceKind, TrackInfo, FORMAT_VERSION,
};
use classrelay::record::process::{process, GapCause, Manifest, Timeline};
use matroska_demuxer::{Frame as MkvFrame, MatroskaFile};
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rtc_rtp::codec::opus::OpusPayloader;
use rtc_rtp::codec::vp8::Vp8Payloader;
use rtc_rtp::packetizer::Payloader;
use rtc_shared::marshal::Marshal;
use sha2::{Digest, Sha256};

const VIDEO: u32 = 1;
const AUDIO: u32 = 2;

fn fixture(path: &str) -> Vec<u8> {
    std::fs::read(format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// The fixture's VP8 frames (90, 30 fps, keyframes at 0, 30, 60).
fn vp8_frames() -> Vec<(Vec<u8>, bool)> {
    let (_, frames) = classrelay_loadtest::ivf::parse(&fixture("tests/fixtures/video_vp8.ivf"))
        .expect("VP8 fixture");
    frames.into_iter().map(|f| (f.data, f.keyframe)).collect()
}

/// The fixture's Opus packets (20 ms each), one per Ogg page.
fn opus_frames() -> Vec<Vec<u8>> {
    let path = format!(
        "{}/tests/fixtures/audio_opus.ogg",
        env!("CARGO_MANIFEST_DIR")
    );
    let (mut reader, _) =
        rtc::media::io::ogg_reader::OggReader::new(BufReader::new(File::open(path).unwrap()), true)
            .unwrap();
    let mut out = Vec::new();
    while let Ok((payload, _)) = reader.parse_next_page() {
        if payload.starts_with(b"OpusTags") || payload.is_empty() {
            continue;
        }
        out.push(payload.to_vec());
    }
    assert!(out.len() > 100, "Opus fixture: {} packets", out.len());
    out
}

fn sha(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// One publisher's stream: its RTP clock starts at `ts0`, its sequence at `seq0`, and its NTP
/// wall clock runs `ntp_offset_us` ahead of the server's capture clock.
#[derive(Clone, Copy)]
struct Stream {
    track: u32,
    pt: u8,
    ssrc: u32,
    seq0: u16,
    ts0: u32,
    clock: u32,
    ntp_offset_us: i64,
}

/// A packet or report with its arrival time, before it becomes a record.
struct Item {
    arrival_us: u64,
    record: Record,
}

fn to_ntp(us: i64) -> u64 {
    let us = u64::try_from(us).unwrap();
    let secs = us / 1_000_000;
    let frac = ((us % 1_000_000) << 32) / 1_000_000;
    (secs << 32) | frac
}

fn rtp_packet(s: &Stream, seq: u16, ts: u32, marker: bool, payload: Bytes) -> Vec<u8> {
    let p = rtc_rtp::Packet {
        header: rtc_rtp::Header {
            version: 2,
            marker,
            payload_type: s.pt,
            sequence_number: seq,
            timestamp: ts,
            ssrc: s.ssrc,
            ..Default::default()
        },
        payload,
    };
    p.marshal().unwrap().to_vec()
}

/// Packetizes frames sent at `send_us[i]` (true time, µs on the capture clock), each arriving
/// `delay_us` later; a sender report every second from the first frame on.
fn packetize(
    s: &Stream,
    frames: &[Vec<u8>],
    send_us: &[i64],
    delay_us: i64,
    with_srs: bool,
) -> Vec<Item> {
    let mut vp8 = Vp8Payloader::default();
    let mut opus = OpusPayloader;
    let mut seq = s.seq0;
    let mut out = Vec::new();
    let rtp_at = |t_us: i64| {
        s.ts0
            .wrapping_add(((t_us - send_us[0]) * i64::from(s.clock) / 1_000_000) as u32)
    };
    let mut next_sr = send_us[0];
    for (f, &t) in frames.iter().zip(send_us) {
        if with_srs && t >= next_sr {
            out.push(Item {
                arrival_us: (t + delay_us) as u64,
                record: Record::SenderReport {
                    track: s.track,
                    arrival_us: (t + delay_us) as u64,
                    ntp: to_ntp(t + s.ntp_offset_us),
                    rtp_time: rtp_at(t),
                },
            });
            next_sr += 1_000_000;
        }
        let data = Bytes::copy_from_slice(f);
        let payloads = if s.clock == 48_000 {
            opus.payload(1200, &data).unwrap()
        } else {
            vp8.payload(1200, &data).unwrap()
        };
        let n = payloads.len();
        for (k, p) in payloads.into_iter().enumerate() {
            let arrival = (t + delay_us) as u64 + k as u64 * 50;
            out.push(Item {
                arrival_us: arrival,
                record: Record::Rtp {
                    track: s.track,
                    arrival_us: arrival,
                    packet: rtp_packet(s, seq, rtp_at(t), k + 1 == n, p),
                },
            });
            seq = seq.wrapping_add(1);
        }
    }
    out
}

fn track_info(track: u32, kind: SourceKind, codec: Codec, owner: &str) -> TrackInfo {
    TrackInfo {
        track,
        kind,
        codec,
        payload_type: if codec == Codec::Opus { 111 } else { 96 },
        clock_rate: if codec == Codec::Opus { 48_000 } else { 90_000 },
        owner: owner.to_string(),
        hub: true,
    }
}

/// A capture: the tracks, then the items merged in arrival order, then the ends.
fn capture(tracks: Vec<TrackInfo>, mut items: Vec<Item>, ended: bool) -> Capture {
    items.sort_by_key(|i| i.arrival_us);
    let end = items.last().map(|i| i.arrival_us).unwrap_or(0);
    let mut records: Vec<Record> = tracks.iter().cloned().map(Record::Track).collect();
    records.extend(items.into_iter().map(|i| i.record));
    if ended {
        records.extend(tracks.iter().map(|t| Record::TrackEnd {
            track: t.track,
            arrival_us: end,
        }));
    }
    Capture {
        header: Some(CaptureHeader {
            version: FORMAT_VERSION,
            room: "lesson-7".to_string(),
            lesson_id: Some(7),
            started_unix_ms: 1_765_000_000_000,
        }),
        records,
    }
}

fn video_stream() -> Stream {
    Stream {
        track: VIDEO,
        pt: 96,
        ssrc: 0x1111_2222,
        seq0: 1000,
        ts0: 123_456_789,
        clock: 90_000,
        ntp_offset_us: 3_900_000_000_000_000,
    }
}

fn audio_stream() -> Stream {
    Stream {
        track: AUDIO,
        pt: 111,
        ssrc: 0x3333_4444,
        seq0: 40_000,
        ts0: 987_654,
        clock: 48_000,
        ntp_offset_us: 3_900_000_000_000_000,
    }
}

/// A frame as the independent demuxer reads it: (ms, keyframe, data).
type ReadFrame = (u64, bool, Vec<u8>);

/// Frames as the independent demuxer reads them: track number → (codec id, frames).
struct ReadBack {
    tracks: HashMap<u64, (String, Vec<ReadFrame>)>,
    duration_ms: f64,
}

fn read_back(path: &Path) -> ReadBack {
    let mut mkv = MatroskaFile::open(File::open(path).unwrap()).expect("a valid Matroska file");
    let scale = mkv.info().timestamp_scale().get();
    assert_eq!(scale, 1_000_000);
    let duration_ms = mkv.info().duration().expect("a duration");
    let mut tracks: HashMap<u64, (String, Vec<ReadFrame>)> = mkv
        .tracks()
        .iter()
        .map(|t| {
            (
                t.track_number().get(),
                (t.codec_id().to_string(), Vec::new()),
            )
        })
        .collect();
    let mut f = MkvFrame::default();
    while mkv.next_frame(&mut f).expect("frames demux") {
        tracks.get_mut(&f.track).expect("a declared track").1.push((
            f.timestamp,
            f.is_keyframe.unwrap_or(false),
            f.data.clone(),
        ));
    }
    ReadBack {
        tracks,
        duration_ms,
    }
}

fn track_frames<'a>(rb: &'a ReadBack, codec_id: &str) -> &'a [(u64, bool, Vec<u8>)] {
    &rb.tracks
        .values()
        .find(|(c, _)| c == codec_id)
        .unwrap_or_else(|| panic!("a {codec_id} track"))
        .1
}

// ── A minimal EBML walk, to check Cues against the clusters they point at ──────────────────

fn vint(b: &[u8], at: usize) -> (u64, usize) {
    let first = b[at];
    let len = first.leading_zeros() as usize + 1;
    let mut v = u64::from(first) & ((1u64 << (8 - len)) - 1);
    for k in 1..len {
        v = (v << 8) | u64::from(b[at + k]);
    }
    (v, len)
}

fn element_id(b: &[u8], at: usize) -> (u64, usize) {
    let len = b[at].leading_zeros() as usize + 1;
    let mut v = 0u64;
    for k in 0..len {
        v = (v << 8) | u64::from(b[at + k]);
    }
    (v, len)
}

/// Children of the element whose data spans `range`: (id, data start, data end).
fn children(b: &[u8], mut at: usize, end: usize) -> Vec<(u64, usize, usize)> {
    let mut out = Vec::new();
    while at < end {
        let (id, il) = element_id(b, at);
        let (size, sl) = vint(b, at + il);
        let data = at + il + sl;
        out.push((id, data, data + size as usize));
        at = data + size as usize;
    }
    out
}

fn uint(b: &[u8]) -> u64 {
    b.iter().fold(0, |v, &x| (v << 8) | u64::from(x))
}

/// Every cue: (cue time, track, whether it points at a cluster whose first block of that track
/// is a keyframe at the cue time). Also returns the number of clusters.
fn cues(path: &Path) -> (Vec<(u64, u64, bool)>, usize) {
    let b = std::fs::read(path).unwrap();
    let top = children(&b, 0, b.len());
    assert_eq!(top[0].0, 0x1A45_DFA3, "EBML header first");
    let seg = top.iter().find(|e| e.0 == 0x1853_8067).expect("a Segment");
    let seg_start = seg.1;
    let body = children(&b, seg.1, seg.2);
    // Cluster element starts (ID position) relative to the segment data.
    let mut cluster_at = HashMap::new();
    let mut at = seg.1;
    while at < seg.2 {
        let (id, il) = element_id(&b, at);
        let (size, sl) = vint(&b, at + il);
        let data = at + il + sl;
        if id == 0x1F43_B675 {
            cluster_at.insert((at - seg_start) as u64, (data, data + size as usize));
        }
        at = data + size as usize;
    }
    let cues_el = body.iter().find(|e| e.0 == 0x1C53_BB6B).expect("Cues");
    let mut out = Vec::new();
    for cp in children(&b, cues_el.1, cues_el.2) {
        assert_eq!(cp.0, 0xBB, "CuePoint");
        let kids = children(&b, cp.1, cp.2);
        let t = kids.iter().find(|k| k.0 == 0xB3).expect("CueTime");
        let time = uint(&b[t.1..t.2]);
        let pos_el = kids.iter().find(|k| k.0 == 0xB7).unwrap();
        let pos_kids = children(&b, pos_el.1, pos_el.2);
        let get = |id: u64| {
            let e = pos_kids.iter().find(|k| k.0 == id).unwrap();
            uint(&b[e.1..e.2])
        };
        let (track, pos) = (get(0xF7), get(0xF1));
        let ok = cluster_at.get(&pos).is_some_and(|&(s, e)| {
            let kids = children(&b, s, e);
            let ts = kids
                .iter()
                .find(|k| k.0 == 0xE7)
                .map(|k| uint(&b[k.1..k.2]));
            let first = kids
                .iter()
                .filter(|k| k.0 == 0xA3)
                .find(|k| vint(&b, k.1).0 == track);
            ts == Some(time)
                && first.is_some_and(|k| {
                    let tl = vint(&b, k.1).1;
                    let rel = i16::from_be_bytes([b[k.1 + tl], b[k.1 + tl + 1]]);
                    let flags = b[k.1 + tl + 2];
                    rel == 0 && flags & 0x80 != 0
                })
        });
        out.push((time, track, ok));
    }
    (out, cluster_at.len())
}

/// True send times: video at 30 fps from `start_us`, audio at 20 ms.
fn times(n: usize, period_us: i64, start_us: i64) -> Vec<i64> {
    (0..n).map(|i| start_us + i as i64 * period_us).collect()
}

fn process_to(c: &Capture) -> (tempfile::TempDir, Manifest) {
    let dir = tempfile::tempdir().unwrap();
    let m = process(c, dir.path()).expect("processing succeeds");
    let on_disk: Manifest =
        serde_json::from_slice(&std::fs::read(dir.path().join("manifest.json")).unwrap()).unwrap();
    assert_eq!(on_disk, m, "manifest.json is the manifest returned");
    for s in &m.sources {
        let bytes = std::fs::read(dir.path().join(&s.file)).unwrap();
        assert_eq!(hex::encode(Sha256::digest(&bytes)), s.sha256, "{}", s.file);
    }
    (dir, m)
}

/// Sent video frame index by payload hash.
fn index_of(frames: &[(Vec<u8>, bool)]) -> HashMap<[u8; 32], usize> {
    frames
        .iter()
        .enumerate()
        .map(|(i, f)| (sha(&f.0), i))
        .collect()
}

#[test]
fn exact_frames_timestamps_alignment_and_cues() {
    let video = vp8_frames();
    let audio = opus_frames();
    let v = video_stream();
    let mut a = audio_stream();
    // The audio starts 130 ms after the video, travels 70 ms faster, and (the same publisher's
    // NTP clock) both clocks' RTP origins differ: only the sender reports can align them.
    let v_send = times(video.len(), 33_333, 2_000_000);
    let a_send = times(audio.len(), 20_000, 2_130_000);
    a.ntp_offset_us = v.ntp_offset_us;
    let vdata: Vec<Vec<u8>> = video.iter().map(|f| f.0.clone()).collect();
    let mut items = packetize(&v, &vdata, &v_send, 90_000, true);
    items.extend(packetize(&a, &audio, &a_send, 20_000, true));
    let c = capture(
        vec![
            track_info(VIDEO, SourceKind::TeacherCamera, Codec::Vp8, "王老师"),
            track_info(AUDIO, SourceKind::Audio, Codec::Opus, "王老师"),
        ],
        items,
        true,
    );
    let (dir, m) = process_to(&c);
    assert!(m.complete, "{:?}", m.notes);
    assert_eq!(m.sources.len(), 1, "camera muxed with its owner's audio");
    let s = &m.sources[0];
    assert_eq!(s.kind, SourceKind::TeacherCamera);
    assert_eq!(s.codec, "vp8,opus");
    assert_eq!(s.mime, "video/webm");
    assert_eq!(s.timeline, Timeline::SenderReports);
    assert!(s.gaps.is_empty(), "{:?}", s.gaps);
    assert_eq!(s.frames, (video.len() + audio.len()) as u64);
    assert_eq!(s.start_ms, 0);
    assert!(s.file.ends_with(".webm"));

    let rb = read_back(&dir.path().join(&s.file));
    let vf = track_frames(&rb, "V_VP8");
    let af = track_frames(&rb, "A_OPUS");
    // Exactly the frames sent, in order.
    assert_eq!(vf.len(), video.len());
    assert_eq!(af.len(), audio.len());
    for (i, (got, sent)) in vf.iter().zip(&video).enumerate() {
        assert_eq!(sha(&got.2), sha(&sent.0), "video frame {i}");
        assert_eq!(got.1, sent.1, "video frame {i} keyframe flag");
    }
    for (i, (got, sent)) in af.iter().zip(&audio).enumerate() {
        assert_eq!(sha(&got.2), sha(sent), "audio frame {i}");
    }
    // Timestamps within one frame period of the sender's; the file's zero is the video's first
    // frame (the earliest), so the sender's truth is send time − 2 s.
    for (i, f) in vf.iter().enumerate() {
        let truth = (v_send[i] - 2_000_000) as f64 / 1000.0;
        assert!(
            (f.0 as f64 - truth).abs() <= 33.4,
            "video {i}: {} vs {truth}",
            f.0
        );
    }
    let mut worst = 0f64;
    for (i, f) in af.iter().enumerate() {
        let truth = (a_send[i] - 2_000_000) as f64 / 1000.0;
        worst = worst.max((f.0 as f64 - truth).abs());
    }
    // A/V alignment: audio against video in the file, versus the sender's truth.
    assert!(
        worst <= 40.0,
        "audio off the video's timeline by {worst} ms"
    );
    eprintln!("A/V alignment error: {worst} ms (sender reports)");
    // Duration: to the end of the last frame.
    assert!(
        (rb.duration_ms - s.duration_ms as f64).abs() < 1.0
            && s.duration_ms >= 3_000
            && s.duration_ms <= 3_300,
        "duration {} / {}",
        rb.duration_ms,
        s.duration_ms
    );
    // Cues: one per keyframe cluster (keyframes at 0, 30, 60), each at a keyframe.
    let (cue_list, clusters) = cues(&dir.path().join(&s.file));
    assert_eq!(cue_list.len(), 3, "{cue_list:?}");
    assert!(
        cue_list.iter().all(|c| c.2),
        "every cue at a keyframe: {cue_list:?}"
    );
    assert!(clusters >= 3);
}

#[test]
fn without_sender_reports_the_arrival_times_are_the_timeline_and_the_manifest_says_so() {
    let audio = opus_frames();
    let a = audio_stream();
    let send = times(audio.len(), 20_000, 500_000);
    let c = capture(
        vec![track_info(AUDIO, SourceKind::Audio, Codec::Opus, "一班")],
        packetize(&a, &audio, &send, 30_000, false),
        true,
    );
    let (dir, m) = process_to(&c);
    let s = &m.sources[0];
    assert_eq!(s.timeline, Timeline::Arrival);
    assert_eq!(s.mime, "audio/webm");
    let rb = read_back(&dir.path().join(&s.file));
    let af = track_frames(&rb, "A_OPUS");
    assert_eq!(af.len(), audio.len());
    for (i, f) in af.iter().enumerate() {
        assert!(
            (f.0 as i64 - i as i64 * 20).abs() <= 1,
            "audio {i} at {}",
            f.0
        );
    }
    let (cue_list, _) = cues(&dir.path().join(&s.file));
    assert!(!cue_list.is_empty() && cue_list.iter().all(|c| c.2));
}

#[test]
fn sources_of_a_lesson_share_one_timeline_starting_at_the_earliest() {
    // Two publishers with unrelated NTP clocks: the teacher starts at 1 s, the classroom at 4 s.
    let video = vp8_frames();
    let vdata: Vec<Vec<u8>> = video.iter().map(|f| f.0.clone()).collect();
    let teacher = video_stream();
    let mut room = video_stream();
    room.track = 3;
    room.ssrc = 0x9999;
    room.ntp_offset_us = 1_000_000_000_000; // another machine's clock
    let mut items = packetize(
        &teacher,
        &vdata,
        &times(90, 33_333, 1_000_000),
        40_000,
        true,
    );
    items.extend(packetize(
        &room,
        &vdata,
        &times(90, 33_333, 4_000_000),
        40_000,
        true,
    ));
    let c = capture(
        vec![
            track_info(VIDEO, SourceKind::TeacherCamera, Codec::Vp8, "王老师"),
            track_info(3, SourceKind::ClassroomCamera, Codec::Vp8, "二班"),
        ],
        items,
        true,
    );
    let (_dir, m) = process_to(&c);
    assert_eq!(m.sources.len(), 2);
    let by_kind = |k| m.sources.iter().find(|s| s.kind == k).unwrap();
    assert_eq!(by_kind(SourceKind::TeacherCamera).start_ms, 0);
    let room_start = by_kind(SourceKind::ClassroomCamera).start_ms;
    assert!((2_990..=3_010).contains(&room_start), "{room_start}");
    assert!(
        m.duration_ms >= 6_000 && m.duration_ms < 6_200,
        "{}",
        m.duration_ms
    );
}

/// Checks a lossy file: every frame is one of the sent frames, in order, and every frame after
/// a skipped one is a keyframe.
fn assert_clean_after_gaps(got: &[(u64, bool, Vec<u8>)], sent: &[(Vec<u8>, bool)]) {
    let index = index_of(sent);
    let mut prev: Option<usize> = None;
    for (k, f) in got.iter().enumerate() {
        let i = *index
            .get(&sha(&f.2))
            .unwrap_or_else(|| panic!("frame {k} is not a sent frame (corrupted)"));
        if prev.is_none_or(|p| i != p + 1) {
            assert!(
                sent[i].1,
                "frame {k} (sent #{i}) follows a gap but is no keyframe"
            );
        }
        assert!(prev.is_none_or(|p| i > p), "out of order");
        prev = Some(i);
    }
}

#[test]
fn ten_percent_loss_gives_a_valid_file_with_gaps_and_keyframes_after_them() {
    // 12 s: the fixture four times (a keyframe every second), each pass's frames made distinct
    // by a trailing byte (VP8 decoders ignore trailing bytes; the test never decodes).
    let mut video = Vec::new();
    for pass in 0..4u8 {
        video.extend(vp8_frames().into_iter().map(|(mut d, k)| {
            d.push(pass);
            (d, k)
        }));
    }
    let mut audio = Vec::new();
    for pass in 0..4u8 {
        audio.extend(opus_frames().into_iter().map(|mut d| {
            d.push(pass);
            d
        }));
    }
    let vdata: Vec<Vec<u8>> = video.iter().map(|f| f.0.clone()).collect();
    let mut items = packetize(
        &video_stream(),
        &vdata,
        &times(video.len(), 33_333, 0),
        50_000,
        true,
    );
    items.extend(packetize(
        &audio_stream(),
        &audio,
        &times(audio.len(), 20_000, 0),
        50_000,
        true,
    ));
    // 10 % of the packets lost on the publisher leg; half of those come back 80 ms later (a
    // NACK retransmission, out of order), the rest are gone.
    let mut rng = StdRng::seed_from_u64(20);
    let mut late = Vec::new();
    items.retain_mut(|i| {
        if !matches!(i.record, Record::Rtp { .. }) || rng.random_bool(0.9) {
            return true;
        }
        if rng.random_bool(0.5) {
            if let Record::Rtp {
                arrival_us,
                track,
                packet,
            } = &i.record
            {
                late.push(Item {
                    arrival_us: arrival_us + 80_000,
                    record: Record::Rtp {
                        track: *track,
                        arrival_us: arrival_us + 80_000,
                        packet: packet.clone(),
                    },
                });
            }
        }
        false
    });
    items.extend(late);
    let c = capture(
        vec![
            track_info(VIDEO, SourceKind::TeacherCamera, Codec::Vp8, "t"),
            track_info(AUDIO, SourceKind::Audio, Codec::Opus, "t"),
        ],
        items,
        true,
    );
    let (dir, m) = process_to(&c);
    let s = &m.sources[0];
    assert!(s.gaps.iter().all(|g| g.cause == GapCause::Network));
    assert!(
        s.gaps.iter().any(|g| g.track == VIDEO) && s.gaps.iter().any(|g| g.track == AUDIO),
        "{:?} {:?}",
        s.tracks,
        s.gaps
    );
    let rb = read_back(&dir.path().join(&s.file));
    let vf = track_frames(&rb, "V_VP8");
    assert!(!vf.is_empty() && vf[0].1, "starts at a keyframe");
    assert_clean_after_gaps(vf, &video);
    assert!(
        vf.iter().skip(1).filter(|f| f.1).count() >= 2,
        "video resumes at later keyframes: {:?}",
        s.gaps
    );
    let (cue_list, _) = cues(&dir.path().join(&s.file));
    assert!(
        !cue_list.is_empty() && cue_list.iter().all(|c| c.2),
        "{cue_list:?}"
    );
    let video_track = s.tracks.iter().find(|t| t.track == VIDEO).unwrap();
    assert_eq!(vf.len() as u64, video_track.frames);
    // Written + left out ≤ sent: frames whose every packet was lost are neither.
    assert!(video_track.dropped_frames > 0);
    assert!(vf.len() as u64 + video_track.dropped_frames <= video.len() as u64);
    // The gaps cover the video's missing stretches: written + gap time ≈ the whole 12 s.
    let gap_ms: u64 = s
        .gaps
        .iter()
        .filter(|g| g.track == VIDEO)
        .map(|g| g.dur_ms)
        .sum();
    assert!(gap_ms > 0 && gap_ms < 12_000, "{gap_ms}");
}

#[test]
fn reordered_packets_are_put_back_in_order() {
    let video = vp8_frames();
    let vdata: Vec<Vec<u8>> = video.iter().map(|f| f.0.clone()).collect();
    let mut items = packetize(&video_stream(), &vdata, &times(90, 33_333, 0), 20_000, true);
    // Arrival jitter up to 60 ms: packets overtake each other across frames.
    let mut rng = StdRng::seed_from_u64(7);
    for i in &mut items {
        let jitter = rng.random_range(0..60_000u64);
        i.arrival_us += jitter;
        if let Record::Rtp { arrival_us, .. } = &mut i.record {
            *arrival_us += jitter;
        }
    }
    let c = capture(
        vec![track_info(VIDEO, SourceKind::Courseware, Codec::Vp8, "t")],
        items,
        true,
    );
    let (dir, m) = process_to(&c);
    let s = &m.sources[0];
    assert!(s.gaps.is_empty(), "{:?}", s.gaps);
    let rb = read_back(&dir.path().join(&s.file));
    let vf = track_frames(&rb, "V_VP8");
    assert_eq!(vf.len(), 90);
    for (got, sent) in vf.iter().zip(&video) {
        assert_eq!(sha(&got.2), sha(&sent.0));
    }
}

#[test]
fn sequence_and_timestamp_wrap_and_an_ssrc_change() {
    let video = vp8_frames();
    let vdata: Vec<Vec<u8>> = video.iter().map(|f| f.0.clone()).collect();
    let mut v = video_stream();
    v.seq0 = 65_500;
    v.ts0 = u32::MAX - 100_000; // wraps after ~1.1 s
    let t = times(90, 33_333, 0);
    // Frames 0..60 on one SSRC, 60..90 (from a keyframe) on a new one with new clocks.
    let mut items = packetize(&v, &vdata[..60], &t[..60], 30_000, true);
    let mut v2 = v;
    v2.ssrc = 0xABCD;
    v2.seq0 = 65_530;
    v2.ts0 = u32::MAX - 10;
    items.extend(packetize(&v2, &vdata[60..], &t[60..], 30_000, true));
    let c = capture(
        vec![track_info(
            VIDEO,
            SourceKind::ClassroomCamera,
            Codec::Vp8,
            "三班",
        )],
        items,
        true,
    );
    let (dir, m) = process_to(&c);
    let s = &m.sources[0];
    assert_eq!(s.tracks[0].ssrc_changes, 1);
    let rb = read_back(&dir.path().join(&s.file));
    let vf = track_frames(&rb, "V_VP8");
    assert_eq!(vf.len(), 90);
    for (i, (got, sent)) in vf.iter().zip(&video).enumerate() {
        assert_eq!(sha(&got.2), sha(&sent.0), "frame {i}");
        let truth = t[i] as f64 / 1000.0;
        assert!(
            (got.0 as f64 - truth).abs() <= 33.4,
            "frame {i}: {} vs {truth}",
            got.0
        );
    }
}

#[test]
fn a_capture_cut_off_mid_track_is_processed_up_to_the_cut() {
    let video = vp8_frames();
    let audio = opus_frames();
    let vdata: Vec<Vec<u8>> = video.iter().map(|f| f.0.clone()).collect();
    let mut items = packetize(&video_stream(), &vdata, &times(90, 33_333, 0), 10_000, true);
    items.extend(packetize(
        &audio_stream(),
        &audio,
        &times(audio.len(), 20_000, 0),
        10_000,
        true,
    ));
    let mut c = capture(
        vec![
            track_info(VIDEO, SourceKind::TeacherCamera, Codec::Vp8, "t"),
            track_info(AUDIO, SourceKind::Audio, Codec::Opus, "t"),
        ],
        items,
        false,
    );
    // Cut at 2 s of arrival time, inside a frame.
    let cut = c
        .records
        .iter()
        .position(|r| matches!(r, Record::Rtp { arrival_us, .. } if *arrival_us > 2_010_000))
        .unwrap();
    c.records.truncate(cut + 1);
    let (dir, m) = process_to(&c);
    assert!(!m.complete);
    assert!(
        m.notes.iter().any(|n| n.contains("cut off")),
        "{:?}",
        m.notes
    );
    let s = &m.sources[0];
    assert!(s.tracks.iter().all(|t| !t.ended));
    let rb = read_back(&dir.path().join(&s.file));
    let vf = track_frames(&rb, "V_VP8");
    // Every frame whose packets all came before the cut: 60 (0..=1.967 s) frames, give or take
    // the one being cut.
    assert!((59..=61).contains(&vf.len()), "{}", vf.len());
    for (got, sent) in vf.iter().zip(&video) {
        assert_eq!(sha(&got.2), sha(&sent.0));
    }
    assert!(
        s.duration_ms >= 1_950 && s.duration_ms <= 2_100,
        "{}",
        s.duration_ms
    );
}

#[test]
fn recorder_drops_are_gaps_of_the_recorder() {
    let video = vp8_frames();
    let vdata: Vec<Vec<u8>> = video.iter().map(|f| f.0.clone()).collect();
    let items = packetize(&video_stream(), &vdata, &times(90, 33_333, 0), 10_000, true);
    let mut c = capture(
        vec![track_info(VIDEO, SourceKind::Courseware, Codec::Vp8, "t")],
        items,
        true,
    );
    // The writer lost 5 packets at 1.5 s: they are missing, and a Dropped record says so.
    let at = c
        .records
        .iter()
        .position(|r| matches!(r, Record::Rtp { arrival_us, .. } if *arrival_us > 1_500_000))
        .unwrap();
    c.records.drain(at..at + 5);
    c.records.insert(
        at,
        Record::Dropped {
            track: VIDEO,
            arrival_us: 1_500_000,
            packets: 5,
        },
    );
    let (_dir, m) = process_to(&c);
    let gaps = &m.sources[0].gaps;
    assert_eq!(gaps.len(), 1, "{gaps:?}");
    assert_eq!(gaps[0].cause, GapCause::Recorder);
    assert_eq!(gaps[0].lost_packets, 5);
    // Until the next keyframe (frame 60, 2 s).
    assert!(gaps[0].at_ms >= 1_400 && gaps[0].at_ms + gaps[0].dur_ms >= 1_990);
}

#[test]
fn h264_goes_into_matroska_with_its_decoder_configuration() {
    let aus = classrelay_loadtest::h264::access_units(&fixture(
        "loadtest/fixtures/h264_720p30_1200k.h264",
    ))
    .unwrap();
    let aus: Vec<Vec<u8>> = aus.into_iter().take(60).map(|f| f.data).collect();
    let mut v = video_stream();
    v.pt = 102;
    let t = times(aus.len(), 33_333, 0);
    let mut items = Vec::new();
    let mut seq = v.seq0;
    for (i, au) in aus.iter().enumerate() {
        let payloads = classrelay_loadtest::h264::payloads(au, 1100).unwrap();
        let n = payloads.len();
        for (k, p) in payloads.into_iter().enumerate() {
            let arrival = (t[i] + 10_000) as u64;
            items.push(Item {
                arrival_us: arrival,
                record: Record::Rtp {
                    track: VIDEO,
                    arrival_us: arrival,
                    packet: rtp_packet(&v, seq, v.ts0 + i as u32 * 3000, k + 1 == n, p.into()),
                },
            });
            seq = seq.wrapping_add(1);
        }
    }
    let mut info = track_info(VIDEO, SourceKind::Courseware, Codec::H264, "t");
    info.payload_type = 102;
    let c = capture(vec![info], items, true);
    let (dir, m) = process_to(&c);
    let s = &m.sources[0];
    assert!(s.file.ends_with(".mkv"));
    assert_eq!(s.mime, "video/x-matroska");
    let mkv = MatroskaFile::open(File::open(dir.path().join(&s.file)).unwrap()).unwrap();
    let tr = &mkv.tracks()[0];
    assert_eq!(tr.codec_id(), "V_MPEG4/ISO/AVC");
    assert!(tr.codec_private().is_some_and(|p| p[0] == 1), "avcC");
    let video = tr.video().unwrap();
    assert_eq!(
        (video.pixel_width().get(), video.pixel_height().get()),
        (1280, 720)
    );
    let rb = read_back(&dir.path().join(&s.file));
    let vf = track_frames(&rb, "V_MPEG4/ISO/AVC");
    assert_eq!(vf.len(), aus.len());
    // The same NAL units, as AVCC (length prefixes) instead of Annex B (start codes).
    let nals_annexb = |au: &[u8]| -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut i = 0;
        let mut start = None;
        while i + 3 <= au.len() {
            if au[i..i + 3] == [0, 0, 1] {
                if let Some(s) = start {
                    let mut e = i;
                    while e > s && au[e - 1] == 0 {
                        e -= 1;
                    }
                    out.push(au[s..e].to_vec());
                }
                i += 3;
                start = Some(i);
            } else {
                i += 1;
            }
        }
        if let Some(s) = start {
            out.push(au[s..].to_vec());
        }
        // SEI, access unit delimiters and filler are not sent.
        out.retain(|n| !matches!(n[0] & 0x1f, 6 | 9 | 12));
        out
    };
    let nals_avcc = |f: &[u8]| -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut i = 0;
        while i + 4 <= f.len() {
            let n = u32::from_be_bytes([f[i], f[i + 1], f[i + 2], f[i + 3]]) as usize;
            out.push(f[i + 4..i + 4 + n].to_vec());
            i += 4 + n;
        }
        out
    };
    for (i, (got, au)) in vf.iter().zip(&aus).enumerate() {
        let (got, sent) = (nals_avcc(&got.2), nals_annexb(au));
        let types = |v: &[Vec<u8>]| v.iter().map(|n| (n[0] & 0x1f, n.len())).collect::<Vec<_>>();
        assert!(
            got == sent,
            "access unit {i}: {:?} vs {:?}",
            types(&got),
            types(&sent)
        );
    }
}

#[test]
fn gstreamer_accepts_the_files_with_their_duration() {
    let video = vp8_frames();
    let audio = opus_frames();
    let vdata: Vec<Vec<u8>> = video.iter().map(|f| f.0.clone()).collect();
    let mut items = packetize(&video_stream(), &vdata, &times(90, 33_333, 0), 10_000, true);
    items.extend(packetize(
        &audio_stream(),
        &audio,
        &times(audio.len(), 20_000, 0),
        10_000,
        true,
    ));
    let c = capture(
        vec![
            track_info(VIDEO, SourceKind::TeacherCamera, Codec::Vp8, "t"),
            track_info(AUDIO, SourceKind::Audio, Codec::Opus, "t"),
        ],
        items,
        true,
    );
    let (dir, m) = process_to(&c);
    let s = &m.sources[0];
    let out = match std::process::Command::new("gst-discoverer-1.0")
        .arg(dir.path().join(&s.file))
        .output()
    {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            skip::because(
                "gst-discoverer-1.0 is not installed (Debian: gstreamer1.0-plugins-base-apps)",
            );
            return;
        }
        Err(e) => panic!("gst-discoverer-1.0: {e}"),
    };
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("Done discovering"), "{text}");
    assert!(text.contains("Seekable: yes"), "{text}");
    assert!(
        text.to_lowercase().contains("vp8") && text.to_lowercase().contains("opus"),
        "{text}"
    );
    // "Duration: 0:00:03.033000000"
    let dur = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Duration: "))
        .expect("a duration");
    let secs: f64 = dur.rsplit(':').next().unwrap().parse().unwrap();
    assert!(
        (secs * 1000.0 - s.duration_ms as f64).abs() < 50.0,
        "{dur} vs {}",
        s.duration_ms
    );
    // And GStreamer decodes both tracks to the end without an error.
    let path = dir.path().join(&s.file);
    let out = std::process::Command::new("gst-launch-1.0")
        .args(["-q", "filesrc"])
        .arg(format!("location={}", path.display()))
        .args([
            "!",
            "matroskademux",
            "name=d",
            "d.video_0",
            "!",
            "queue",
            "!",
            "vp8dec",
            "!",
            "fakesink",
            "d.audio_0",
            "!",
            "queue",
            "!",
            "opusdec",
            "!",
            "fakesink",
        ])
        .output()
        .expect("gst-launch-1.0 (Debian: gstreamer1.0-tools)");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

// ── Arbitrary record sequences never panic ─────────────────────────────────────────────────

fn arb_record() -> impl Strategy<Value = Record> {
    let codec = prop_oneof![
        Just(Codec::Vp8),
        Just(Codec::Vp9),
        Just(Codec::H264),
        Just(Codec::Opus)
    ];
    let kind = prop_oneof![
        Just(SourceKind::TeacherCamera),
        Just(SourceKind::Courseware),
        Just(SourceKind::ClassroomCamera),
        Just(SourceKind::Audio)
    ];
    prop_oneof![
        1 => (0u32..4, kind, codec, 0u8..3).prop_map(|(track, kind, codec, owner)| {
            Record::Track(TrackInfo {
                track,
                kind,
                codec,
                payload_type: 96,
                clock_rate: if codec == Codec::Opus { 48_000 } else { 90_000 },
                owner: format!("o{owner}"),
                hub: owner == 0,
            })
        }),
        // Mostly well-formed RTP headers (so the payload parsers are reached) with any payload.
        8 => (
            0u32..4,
            any::<u64>(),
            any::<u16>(),
            any::<u32>(),
            any::<bool>(),
            prop_oneof![Just(0x1111u32), Just(0x2222u32)],
            prop::collection::vec(any::<u8>(), 0..40),
            any::<bool>(),
        )
            .prop_map(|(track, arrival_us, seq, ts, marker, ssrc, payload, raw)| {
                let packet = if raw {
                    payload
                } else {
                    let mut p = vec![0x80, if marker { 0x80 | 96 } else { 96 }];
                    p.extend_from_slice(&seq.to_be_bytes());
                    p.extend_from_slice(&ts.to_be_bytes());
                    p.extend_from_slice(&ssrc.to_be_bytes());
                    p.extend_from_slice(&payload);
                    p
                };
                Record::Rtp {
                    track,
                    arrival_us: arrival_us % 10_000_000_000,
                    packet,
                }
            }),
        1 => (0u32..4, any::<u64>(), any::<u64>(), any::<u32>()).prop_map(
            |(track, arrival_us, ntp, rtp_time)| Record::SenderReport {
                track,
                arrival_us,
                ntp,
                rtp_time,
            }
        ),
        1 => (0u32..4, any::<u64>(), any::<u32>()).prop_map(|(track, arrival_us, packets)| {
            Record::Dropped {
                track,
                arrival_us,
                packets,
            }
        }),
        1 => (0u32..4, any::<u64>()).prop_map(|(track, arrival_us)| Record::TrackEnd {
            track,
            arrival_us
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]
    #[test]
    fn arbitrary_records_never_panic(
        records in prop::collection::vec(arb_record(), 0..120),
        header in any::<bool>(),
    ) {
        let c = Capture {
            header: header.then(|| CaptureHeader {
                version: FORMAT_VERSION,
                room: "r".to_string(),
                lesson_id: None,
                started_unix_ms: 0,
            }),
            records,
        };
        let dir = tempfile::tempdir().unwrap();
        let m = process(&c, dir.path()).expect("bad input is reported, not an error");
        for s in &m.sources {
            prop_assert!(dir.path().join(&s.file).exists());
            // Whatever came in, the file reads back.
            let mut mkv = MatroskaFile::open(File::open(dir.path().join(&s.file)).unwrap())
                .expect("valid Matroska");
            let mut f = MkvFrame::default();
            let mut n = 0u64;
            while mkv.next_frame(&mut f).expect("frames") {
                n += 1;
            }
            prop_assert_eq!(n, s.frames);
        }
    }
}

/// A benchmark, not a test (ignored; speed goals belong in benchmarks): processes a 45-minute
/// lesson of three sources — teacher camera + its audio, courseware, a classroom camera, each
/// camera the load generator's 720p VP8 at 1.2 Mbit/s looped — and prints the time. Run:
/// `cargo test --release --test process_capture -- --ignored --nocapture forty_five_minutes`.
#[test]
#[ignore]
fn forty_five_minutes_three_sources_benchmark() {
    let (_, frames) =
        classrelay_loadtest::ivf::parse(&fixture("loadtest/fixtures/vp8_720p30_1200k.ivf"))
            .unwrap();
    let minutes: usize = std::env::var("BENCH_MINUTES")
        .ok()
        .and_then(|m| m.parse().ok())
        .unwrap_or(45);
    let n = minutes * 60 * 30;
    let video: Vec<Vec<u8>> = (0..n)
        .map(|i| frames[i % frames.len()].data.clone())
        .collect();
    let opus = opus_frames();
    let audio: Vec<Vec<u8>> = (0..minutes * 60 * 50)
        .map(|i| opus[i % opus.len()].clone())
        .collect();
    let t_build = std::time::Instant::now();
    let mut items = Vec::new();
    let mut tracks = Vec::new();
    for (k, kind) in [
        SourceKind::TeacherCamera,
        SourceKind::Courseware,
        SourceKind::ClassroomCamera,
    ]
    .into_iter()
    .enumerate()
    {
        let mut s = video_stream();
        s.track = 10 + k as u32;
        s.ssrc = 100 + k as u32;
        items.extend(packetize(&s, &video, &times(n, 33_333, 0), 30_000, true));
        tracks.push(track_info(
            s.track,
            kind,
            Codec::Vp8,
            if k == 2 { "二班" } else { "王老师" },
        ));
    }
    items.extend(packetize(
        &audio_stream(),
        &audio,
        &times(audio.len(), 20_000, 0),
        30_000,
        true,
    ));
    tracks.push(track_info(AUDIO, SourceKind::Audio, Codec::Opus, "王老师"));
    let c = capture(tracks, items, true);
    let bytes: usize = c
        .records
        .iter()
        .map(|r| match r {
            Record::Rtp { packet, .. } => packet.len(),
            _ => 0,
        })
        .sum();
    eprintln!(
        "capture: {} records, {:.0} MB of RTP, built in {:.1} s",
        c.records.len(),
        bytes as f64 / 1e6,
        t_build.elapsed().as_secs_f64()
    );
    let dir = tempfile::tempdir().unwrap();
    let t = std::time::Instant::now();
    let m = process(&c, dir.path()).unwrap();
    let secs = t.elapsed().as_secs_f64();
    eprintln!(
        "processed {minutes} min, {} sources, {} frames in {secs:.2} s",
        m.sources.len(),
        m.sources.iter().map(|s| s.frames).sum::<u64>()
    );
    assert_eq!(m.sources.len(), 3);
}
