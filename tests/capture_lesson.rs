//! A timetable lesson recorded end to end on a real server: the bell starts the recording
//! (default `[recording] rooms = "lessons"`, the school's `record_lessons` on), the hub
//! teacher publishes from the independent `webrtc` client, the teacher stops it through the
//! API, and the capture file holds exactly the frames sent, declared as the teacher's camera
//! and audio. Must never mock the server, the client or the file.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use classrelay::record::file::{read_capture, DamageKind};
use classrelay::record::format::{Codec, Record, SourceKind};
use reqwest::{Method, StatusCode};
use serde_json::json;
use support::recording::{recording_at_the_bell, teacher_publishes, vp8_frames, Tmpfs};
use support::school::{fixture, App, Backend};
use support::webrtc_client::{
    audio_fixture, find_contiguous, is_vp8_keyframe, video_fixture, whip_publish_with,
    PublishOptions,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lesson_recorded_at_the_bell_holds_exactly_the_frames_the_teacher_sent() {
    let app = App::start(Backend::Sqlite).await.expect("sqlite");
    let f = fixture(&app).await;
    let (id, room) = recording_at_the_bell(&app, &f).await;
    let state = app.server.state();
    let (s, live) = app
        .call(
            Some(&f.teacher_login),
            Method::GET,
            &format!("/api/lessons/{id}/live"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{live}");
    assert_eq!(live["recording"], true, "the snapshot says 录制中: {live}");

    let (s, j) = app
        .call(
            Some(&f.teacher_login),
            Method::POST,
            &format!("/api/lessons/{id}/join"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{j}");
    let token = j["token"].as_str().expect("a token");
    let publisher = whip_publish_with(
        &app.base,
        &room,
        token,
        &video_fixture(),
        &audio_fixture(),
        PublishOptions::default(),
    )
    .await
    .expect("the teacher publishes");
    publisher
        .wait_progress(Duration::from_secs(20), |p| p.video_frames >= 90)
        .await
        .expect("three seconds of video sent");
    // Let the last frames cross loopback, then stop through the API.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (s, v) = app
        .call(
            Some(&f.teacher_login),
            Method::POST,
            &format!("/api/lessons/{id}/recording"),
            Some(json!({"on": false})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["recording"], false, "{v}");
    let rec = &v["recordings"][0];
    assert_eq!(rec["state"], "stopped", "{v}");
    let sent_video = publisher.sent_video();
    let sent_audio = publisher.sent_audio();
    drop(publisher);

    let path = rec["capture_path"].as_str().expect("a capture path");
    let (c, report) = read_capture(std::path::Path::new(path));
    assert_eq!(report.damage, None, "{}", report.describe());
    let h = c.header.expect("a header");
    assert_eq!((h.room.as_str(), h.lesson_id), (room.as_str(), Some(id)));
    let tracks: Vec<_> = c
        .records
        .iter()
        .filter_map(|r| match r {
            Record::Track(t) => Some(t.clone()),
            _ => None,
        })
        .collect();
    let video = tracks
        .iter()
        .find(|t| t.codec == Codec::Vp8)
        .expect("the camera");
    let audio = tracks
        .iter()
        .find(|t| t.codec == Codec::Opus)
        .expect("the microphone");
    assert_eq!(video.kind, SourceKind::TeacherCamera);
    assert!(video.hub && audio.hub);
    assert_eq!(audio.kind, SourceKind::Audio);
    assert!(!video.owner.is_empty() && !video.owner.starts_with("t:"));

    let packets = |track: u32| -> Vec<&[u8]> {
        c.records
            .iter()
            .filter_map(|r| match r {
                Record::Rtp {
                    track: t, packet, ..
                } if *t == track => Some(&packet[..]),
                _ => None,
            })
            .collect()
    };
    let frames = vp8_frames(&packets(video.track));
    assert!(
        frames.len() >= 85,
        "{} frames captured of {} sent",
        frames.len(),
        sent_video.len()
    );
    assert!(
        is_vp8_keyframe(&frames[0]),
        "the capture starts at a keyframe"
    );
    let sent: Vec<&[u8]> = sent_video.iter().map(|f| &f.data[..]).collect();
    assert_eq!(
        find_contiguous(&sent, &frames),
        Some(0),
        "the captured frames are the first frames sent, byte for byte"
    );
    // Audio: one Opus frame per packet, the same bytes in the same order.
    let opus: Vec<&[u8]> = packets(audio.track).iter().map(|p| &p[12..]).collect();
    let sent_a: Vec<&[u8]> = sent_audio.iter().map(|f| &f.data[..]).collect();
    assert!(opus.len() >= 100, "{} audio packets", opus.len());
    assert_eq!(
        find_contiguous(&sent_a, &opus),
        Some(0),
        "audio byte for byte"
    );
    assert!(
        c.records
            .iter()
            .any(|r| matches!(r, Record::SenderReport { track, .. } if *track == video.track)),
        "the publisher's sender reports are captured"
    );
    eprintln!(
        "captured {} of {} video frames and {} of {} audio frames sent",
        frames.len(),
        sent_video.len(),
        opus.len(),
        sent_audio.len()
    );
    let text = state.metrics.encode();
    assert!(text.contains("classrelay_capture_records_total"), "{text}");
}

/// The recordings directory on a 256 KiB filesystem: it fills a few seconds into the lesson.
/// The recording stops with a `failed` state naming the error, the metric counts it, what was
/// written stays readable, and the teacher's media keeps flowing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_fails_the_recording_not_the_lesson() {
    let small = tempfile::tempdir().expect("tempdir");
    let _fs = match Tmpfs::mount(small.path(), "256k") {
        Ok(fs) => fs,
        Err(why) => return support::skip::because(why),
    };
    let root = small.path().to_path_buf();
    let app = App::start_with(Backend::Sqlite, move |c| c.recording.dir = Some(root))
        .await
        .expect("sqlite");
    let f = fixture(&app).await;
    let (id, room) = recording_at_the_bell(&app, &f).await;
    let state = app.server.state();
    let publisher = teacher_publishes(&app, &f, id, &room).await;
    // Await the failure: the recording mark goes off by itself.
    let t0 = Instant::now();
    loop {
        let (_, live) = app
            .call(
                Some(&f.teacher_login),
                Method::GET,
                &format!("/api/lessons/{id}/live"),
                None,
            )
            .await;
        if live["recording"] == false {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "the disk fills: {:?}",
            publisher.progress()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let at_failure = publisher.progress().video_frames;
    // The lesson goes on: the teacher's media keeps being taken, its connection stays up.
    publisher
        .wait_progress(Duration::from_secs(10), |p| {
            p.video_frames >= at_failure + 30
        })
        .await
        .expect("the teacher keeps sending after the failure");
    assert_eq!(
        format!("{:?}", publisher.connection_state()),
        "Connected",
        "the publisher's connection survives"
    );
    let (s, v) = app
        .call(
            Some(&f.teacher_login),
            Method::POST,
            &format!("/api/lessons/{id}/recording"),
            Some(json!({"on": false})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let rec = &v["recordings"][0];
    assert_eq!(rec["state"], "failed", "{v}");
    assert!(
        rec["error"]
            .as_str()
            .is_some_and(|e| e.contains("No space left")),
        "{v}"
    );
    assert_eq!(state.metrics.capture.write_errors.get(), 1);
    let (c, report) = read_capture(Path::new(rec["capture_path"].as_str().expect("a path")));
    if let Some(d) = &report.damage {
        assert_eq!(d.kind, DamageKind::Torn, "{}", report.describe());
    }
    let rtp = c
        .records
        .iter()
        .filter(|r| matches!(r, Record::Rtp { .. }))
        .count();
    assert!(
        rtp > 100,
        "what was written before stays readable: {rtp} packets"
    );
    eprintln!(
        "full disk after {at_failure} video frames: {rtp} packets kept, {}",
        report.describe()
    );
}

/// `[recording] rooms = "all"`: a plain token room is recorded from its first publisher until
/// its last session ends, with no lesson.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_room_is_recorded_from_its_first_publisher_when_rooms_is_all() {
    let app = App::start_with(Backend::Sqlite, |c| {
        c.recording.rooms = classrelay::config::RecordRooms::All
    })
    .await
    .expect("sqlite");
    let room = "open-day";
    let token = app.server.mint_token(
        room,
        classrelay::auth::Grant::Publish,
        Duration::from_secs(600),
    );
    let publisher = whip_publish_with(
        &app.base,
        room,
        &token,
        &video_fixture(),
        &audio_fixture(),
        PublishOptions::default(),
    )
    .await
    .expect("publishes");
    let state = app.server.state();
    let recorder = state.media.recorder().expect("a recorder");
    let t0 = Instant::now();
    while recorder.recording_of(room).is_none() {
        assert!(t0.elapsed() < Duration::from_secs(10), "recording starts");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let from = publisher.progress().video_frames;
    publisher
        .wait_progress(Duration::from_secs(20), |p| p.video_frames >= from + 60)
        .await
        .expect("two seconds more");
    publisher.close().await.expect("DELETE");
    let sent_video = publisher.sent_video();
    let t0 = Instant::now();
    while recorder.recording_of(room).is_some() {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "stops with its last session"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The row is written after the file is closed.
    let t0 = Instant::now();
    let row = loop {
        let rows = classrelay::school::recording::list(&state.school.store)
            .await
            .expect("rows");
        if rows.first().is_some_and(|r| r.state != "recording") {
            break rows[0].clone();
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "{rows:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        (row.room.as_str(), row.lesson_id, row.state.as_str()),
        (room, None, "stopped")
    );
    let (c, report) = read_capture(Path::new(&row.capture_path));
    assert_eq!(report.damage, None, "{}", report.describe());
    let video = c
        .records
        .iter()
        .find_map(|r| match r {
            Record::Track(t) if t.codec == Codec::Vp8 => Some(t.clone()),
            _ => None,
        })
        .expect("video");
    assert_eq!(video.kind, SourceKind::TeacherCamera);
    let packets: Vec<&[u8]> = c
        .records
        .iter()
        .filter_map(|r| match r {
            Record::Rtp { track, packet, .. } if *track == video.track => Some(&packet[..]),
            _ => None,
        })
        .collect();
    let frames = vp8_frames(&packets);
    assert!(frames.len() >= 55, "{} frames", frames.len());
    let sent: Vec<&[u8]> = sent_video.iter().map(|f| &f.data[..]).collect();
    assert!(
        find_contiguous(&sent, &frames).is_some(),
        "a run of the frames sent, byte for byte"
    );
}
