//! A processed recording of a lesson for the recordings API and player tests: a capture of a
//! teacher camera (VP8 + Opus), courseware and a classroom camera (VP8), built from the
//! fixtures' real encoded frames packetized with `rtc-rtp`, processed by the real processor
//! (`record::recover`), its row inserted as the server would have left it. Test-only; never
//! writes outside the server's recordings directory.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use bytes::Bytes;
use classrelay::record::format::{
    CaptureHeader, Codec, Record, SourceKind, TrackInfo, FORMAT_VERSION,
};
use classrelay::record::process::Manifest;
use rtc_rtp::codec::opus::OpusPayloader;
use rtc_rtp::codec::vp8::Vp8Payloader;
use rtc_rtp::packetizer::Payloader;
use rtc_shared::marshal::Marshal;

/// One source of the made-up lesson.
pub struct Src {
    /// What it is.
    pub kind: SourceKind,
    /// Who sent it.
    pub owner: &'static str,
    /// When its first frame was sent, ms after the capture's start.
    pub start_ms: u64,
    /// How long it runs, ms.
    pub ms: u64,
    /// With the owner's Opus audio.
    pub audio: bool,
}

/// The usual three: the teacher camera with sound from 0, courseware from 0.5 s, a classroom
/// camera from 1 s, each `secs` long.
pub fn three_sources(secs: u64) -> Vec<Src> {
    vec![
        Src {
            kind: SourceKind::TeacherCamera,
            owner: "t:1",
            start_ms: 0,
            ms: secs * 1000,
            audio: true,
        },
        Src {
            kind: SourceKind::Courseware,
            owner: "t:1",
            start_ms: 500,
            ms: secs * 1000,
            audio: false,
        },
        Src {
            kind: SourceKind::ClassroomCamera,
            owner: "c:2",
            start_ms: 1000,
            ms: secs * 1000,
            audio: false,
        },
    ]
}

fn fixture(path: &str) -> Vec<u8> {
    std::fs::read(format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))).expect("fixture")
}

/// The fixture's VP8 frames (90 at 30 fps, keyframes at 0, 30, 60).
fn vp8_frames() -> Vec<Vec<u8>> {
    let (_, frames) = classrelay_loadtest::ivf::parse(&fixture("tests/fixtures/video_vp8.ivf"))
        .expect("VP8 fixture");
    frames.into_iter().map(|f| f.data).collect()
}

/// The fixture's Opus packets (20 ms each).
pub fn opus_frames() -> Vec<Vec<u8>> {
    let path = format!(
        "{}/tests/fixtures/audio_opus.ogg",
        env!("CARGO_MANIFEST_DIR")
    );
    let (mut reader, _) = rtc::media::io::ogg_reader::OggReader::new(
        BufReader::new(File::open(path).expect("Opus fixture")),
        true,
    )
    .expect("Ogg");
    let mut out = Vec::new();
    while let Ok((payload, _)) = reader.parse_next_page() {
        if payload.starts_with(b"OpusTags") || payload.is_empty() {
            continue;
        }
        out.push(payload.to_vec());
    }
    out
}

fn to_ntp(us: u64) -> u64 {
    let secs = us / 1_000_000;
    let frac = ((us % 1_000_000) << 32) / 1_000_000;
    (secs << 32) | frac
}

/// Records of one track: `frames` sent every `period_us` from `start_us` (looped from the
/// fixture; VP8 loops restart on its first keyframe), a sender report each second.
fn track_records(
    track: u32,
    pt: u8,
    clock: u32,
    frames: &[Vec<u8>],
    start_us: u64,
    period_us: u64,
    count: usize,
) -> Vec<(u64, Record)> {
    let mut vp8 = Vp8Payloader::default();
    let mut opus = OpusPayloader;
    let ssrc = 0x1000_0000 + track;
    let mut seq: u16 = (track as u16).wrapping_mul(1000);
    let ts0: u32 = track * 100_000;
    let ntp0: u64 = 3_900_000_000_000_000;
    let mut out = Vec::new();
    for i in 0..count {
        let t = start_us + i as u64 * period_us;
        let rtp_ts = ts0.wrapping_add(((t - start_us) * u64::from(clock) / 1_000_000) as u32);
        if i as u64 * period_us % 1_000_000 < period_us {
            out.push((
                t,
                Record::SenderReport {
                    track,
                    arrival_us: t,
                    ntp: to_ntp(ntp0 + t),
                    rtp_time: rtp_ts,
                },
            ));
        }
        let data = Bytes::copy_from_slice(&frames[i % frames.len()]);
        let payloads = if clock == 48_000 {
            opus.payload(1200, &data).expect("Opus payload")
        } else {
            vp8.payload(1200, &data).expect("VP8 payload")
        };
        let n = payloads.len();
        for (k, p) in payloads.into_iter().enumerate() {
            let packet = rtc_rtp::Packet {
                header: rtc_rtp::Header {
                    version: 2,
                    marker: k + 1 == n,
                    payload_type: pt,
                    sequence_number: seq,
                    timestamp: rtp_ts,
                    ssrc,
                    ..Default::default()
                },
                payload: p,
            };
            let arrival = t + 2_000 + k as u64 * 20;
            out.push((
                arrival,
                Record::Rtp {
                    track,
                    arrival_us: arrival,
                    packet: packet.marshal().expect("RTP").to_vec(),
                },
            ));
            seq = seq.wrapping_add(1);
        }
    }
    out
}

/// Writes the capture of `sources` for `lesson` into `dir` and processes it there; the
/// manifest.
pub fn make(dir: &Path, lesson: Option<i64>, sources: &[Src]) -> Manifest {
    let capture = write_capture(dir, lesson, sources);
    classrelay::record::recover::process_recording(&capture, dir)
        .expect("processed")
        .manifest
}

/// Writes the capture of `sources` for `lesson` into `dir` (not processed); its path.
pub fn write_capture(dir: &Path, lesson: Option<i64>, sources: &[Src]) -> std::path::PathBuf {
    write_capture_losing(dir, lesson, sources, None)
}

/// [`write_capture`], with the first source's video RTP packets that arrived within `lose`
/// (µs after the capture's start) left out: a loss the processor must report as a gap.
pub fn write_capture_losing(
    dir: &Path,
    lesson: Option<i64>,
    sources: &[Src],
    lose: Option<std::ops::Range<u64>>,
) -> std::path::PathBuf {
    std::fs::create_dir_all(dir).expect("recording dir");
    let video = vp8_frames();
    let audio = opus_frames();
    let mut tracks = Vec::new();
    let mut items: Vec<(u64, Record)> = Vec::new();
    let mut next = 1u32;
    for s in sources {
        let v = next;
        next += 1;
        tracks.push(TrackInfo {
            track: v,
            kind: s.kind,
            codec: Codec::Vp8,
            payload_type: 96,
            clock_rate: 90_000,
            owner: s.owner.to_string(),
            hub: true,
        });
        let frames = (s.ms * 30 / 1000) as usize;
        items.extend(track_records(
            v,
            96,
            90_000,
            &video,
            s.start_ms * 1000,
            33_333,
            frames,
        ));
        if s.audio {
            let a = next;
            next += 1;
            tracks.push(TrackInfo {
                track: a,
                kind: SourceKind::Audio,
                codec: Codec::Opus,
                payload_type: 111,
                clock_rate: 48_000,
                owner: s.owner.to_string(),
                hub: true,
            });
            items.extend(track_records(
                a,
                111,
                48_000,
                &audio,
                s.start_ms * 1000,
                20_000,
                (s.ms / 20) as usize,
            ));
        }
    }
    if let Some(lose) = &lose {
        // Track 1 is the first source's video.
        items.retain(|(at, r)| !(matches!(r, Record::Rtp { track: 1, .. }) && lose.contains(at)));
    }
    items.sort_by_key(|(at, _)| *at);
    let end = items.last().map(|(at, _)| *at).unwrap_or(0);
    let mut records: Vec<Record> = tracks.iter().cloned().map(Record::Track).collect();
    records.extend(items.into_iter().map(|(_, r)| r));
    records.extend(tracks.iter().map(|t| Record::TrackEnd {
        track: t.track,
        arrival_us: end,
    }));
    let header = CaptureHeader {
        version: FORMAT_VERSION,
        room: lesson.map_or("plain".to_string(), |l| format!("lesson-{l}")),
        lesson_id: lesson,
        started_unix_ms: 1_788_000_000_000,
    };
    let capture = dir.join(classrelay::record::storage::CAPTURE_FILE);
    std::fs::write(
        &capture,
        classrelay::record::file::encode_capture(&header, &records),
    )
    .expect("capture written");
    capture
}

/// Inserts a finished recording of `lesson` (or a plain room) started at `started` and ended
/// at `ended`, processed from `sources` into the server's recordings directory (none: left
/// unprocessed); its id.
pub async fn insert(
    server: &classrelay::Server,
    lesson: Option<i64>,
    started: i64,
    ended: i64,
    sources: Option<&[Src]>,
) -> i64 {
    let school = &server.state().school;
    let root = school.config.recording.dir_in(&school.config.data.dir);
    let room = lesson.map_or("plain".to_string(), |l| format!("lesson-{l}"));
    let (id,): (i64,) = sqlx::query_as(
        "INSERT INTO recordings (room, lesson_id, started_at, ended_at, state) \
         VALUES ($1, $2, $3, $4, 'stopped') RETURNING id",
    )
    .bind(&room)
    .bind(lesson)
    .bind(started)
    .bind(ended)
    .fetch_one(school.store.pool())
    .await
    .expect("recording row");
    let dir = root.join(id.to_string());
    let capture = dir.join(classrelay::record::storage::CAPTURE_FILE);
    if let Some(sources) = sources {
        make(&dir, lesson, sources);
        sqlx::query(
            "UPDATE recordings SET capture_path = $1, processing = 'ready', manifest_path = $2 \
             WHERE id = $3",
        )
        .bind(capture.display().to_string())
        .bind(dir.join("manifest.json").display().to_string())
        .bind(id)
        .execute(school.store.pool())
        .await
        .expect("recording ready");
    }
    id
}

/// Inserts a stopped recording of `lesson` whose capture of `sources` is written but not yet
/// processed (as a lesson's end leaves it), losing the first source's video in `lose` (µs);
/// its id.
pub async fn insert_unprocessed(
    server: &classrelay::Server,
    lesson: Option<i64>,
    started: i64,
    ended: i64,
    sources: &[Src],
    lose: Option<std::ops::Range<u64>>,
) -> i64 {
    let id = insert(server, lesson, started, ended, None).await;
    let school = &server.state().school;
    let dir = school
        .config
        .recording
        .dir_in(&school.config.data.dir)
        .join(id.to_string());
    let capture = write_capture_losing(&dir, lesson, sources, lose);
    sqlx::query("UPDATE recordings SET capture_path = $1 WHERE id = $2")
        .bind(capture.display().to_string())
        .bind(id)
        .execute(school.store.pool())
        .await
        .expect("capture path");
    id
}
