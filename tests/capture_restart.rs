//! A lesson live across a server restart is recorded again (issue 20): a real `classrelay
//! serve` records a lesson the independent `webrtc` client publishes to and is killed with
//! SIGKILL; a new server process on the same data directory starts a second capture for the
//! still-live lesson by itself, the teacher publishes again, and the lesson then has two
//! recordings: the first (recovered, ended when its capture last got data) and the second
//! (with the frames sent after the restart), each listing both parts and the gap between them,
//! and each part's `manifest.json` placing both on one lesson timeline. A recording the teacher
//! stopped by hand is not recorded again by a restart until a start by hand. Must never start
//! the second recording of the first test by hand.
//!
//! Run: `cargo test --test capture_restart`.

mod support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use support::recording::{
    live_lesson_served, post, record_a_lesson_then_kill, serve, teacher_login,
    teacher_publishes_to, until_recording, KilledMidLesson, LiveLesson,
};
use support::sse::Sse;

async fn get(http: &reqwest::Client, url: &str, token: &str) -> Value {
    let r = http
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .expect("answers");
    assert!(r.status().is_success(), "{url}: {}", r.status());
    r.json().await.expect("JSON")
}

/// Follows recording `id`'s processing until it settles; the last state.
async fn settled(http: &reqwest::Client, base: &str, token: &str, id: i64) -> Value {
    let resp = http
        .get(format!("{base}/api/recordings/{id}/events"))
        .bearer_auth(token)
        .send()
        .await
        .expect("answers");
    let mut ev = Sse::of(resp);
    let mut last = Value::Null;
    while let Some((kind, v)) = ev.next_or_end().await {
        assert_eq!(kind, "processing", "{v}");
        last = v;
    }
    last
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lesson_live_at_a_restart_is_recorded_again_and_lists_both_parts() {
    let KilledMidLesson {
        dir,
        lesson: id,
        killed,
        ..
    } = record_a_lesson_then_kill().await;
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as i64;
    let killed_ms = now_ms - killed.elapsed().as_millis() as i64;

    // The same data directory, a new process: nobody asks for a recording.
    let (_child, base) = serve(dir.path());
    let http = reqwest::Client::new();
    let teacher = teacher_login(&http, &base).await;
    until_recording(&http, &base, &teacher, id).await;
    let publisher = teacher_publishes_to(&http, &base, &teacher, id).await;
    publisher
        .wait_progress(Duration::from_secs(20), |p| p.video_frames >= 60)
        .await
        .expect("two seconds of video sent after the restart");

    let list = get(
        &http,
        &format!("{base}/api/recordings?lesson_id={id}"),
        &teacher,
    )
    .await;
    let items = list["items"].as_array().expect("a page");
    assert_eq!(items.len(), 2, "both parts: {list}");
    let (second, first) = (&items[0], &items[1]);
    assert_eq!(second["state"], "recording", "{list}");
    assert_eq!(first["state"], "stopped", "{list}");
    let first_id = first["id"].as_i64().unwrap();
    let second_id = second["id"].as_i64().unwrap();
    // The first part ended when its capture last got data (at most 100 ms before the kill,
    // and never after it), not when the new process found it.
    let first_end = first["ended_at"].as_i64().expect("ended");
    assert!(
        first_end <= killed_ms + 5 && first_end >= killed_ms - 1_000,
        "ended at {first_end}, killed at {killed_ms}"
    );
    let gap_ms = second["started_at"].as_i64().unwrap() - first_end;
    assert!(gap_ms > 0, "{list}");

    // The teacher stops the second part; both become playable (the first by recovery).
    post(
        &http,
        &format!("{base}/api/lessons/{id}/recording"),
        Some(&teacher),
        json!({"on": false}),
    )
    .await;
    drop(publisher);
    for r in [first_id, second_id] {
        let s = settled(&http, &base, &teacher, r).await;
        assert_eq!(s["processing"], "ready", "recording {r}: {s}");
    }
    for r in [first_id, second_id] {
        let d = get(&http, &format!("{base}/api/recordings/{r}"), &teacher).await;
        let parts: Vec<(i64, Option<i64>)> = d["parts"]
            .as_array()
            .expect("parts")
            .iter()
            .map(|p| (p["id"].as_i64().unwrap(), p["gap_before_ms"].as_i64()))
            .collect();
        assert_eq!(
            parts,
            vec![(first_id, None), (second_id, Some(gap_ms))],
            "recording {r}: {d}"
        );
        let camera = d["sources"]
            .as_array()
            .expect("sources")
            .iter()
            .find(|s| s["kind"] == "teacher_camera")
            .unwrap_or_else(|| panic!("recording {r} has the teacher camera: {d}"));
        assert!(camera["frames"].as_u64().unwrap() > 0, "{d}");
    }
    // Each part's manifest places both parts on one lesson timeline: the first at 0, the
    // second after the first's length plus the gap (nothing recorded between the first part's
    // last frame and the second part's first, so at least the rows' gap).
    let mut manifests = Vec::new();
    for r in [first_id, second_id] {
        manifests.push(
            get(
                &http,
                &format!("{base}/api/recordings/{r}/manifest"),
                &teacher,
            )
            .await,
        );
    }
    let (d1, d2) = (
        manifests[0]["duration_ms"].as_i64().unwrap(),
        manifests[1]["duration_ms"].as_i64().unwrap(),
    );
    for m in &manifests {
        let parts = m["parts"]
            .as_array()
            .unwrap_or_else(|| panic!("parts: {m}"));
        assert_eq!(parts.len(), 2, "{m}");
        assert_eq!(
            parts[0],
            json!({"recording": first_id, "start_ms": 0, "duration_ms": d1, "gap_before_ms": null}),
            "{m}"
        );
        assert_eq!(parts[1]["recording"], second_id, "{m}");
        assert_eq!(parts[1]["duration_ms"], d2, "{m}");
        let gap = parts[1]["gap_before_ms"].as_i64().expect("a gap");
        assert_eq!(parts[1]["start_ms"].as_i64().unwrap(), d1 + gap, "{m}");
        assert!(
            gap + 250 >= gap_ms && gap < gap_ms + 30_000,
            "timeline gap {gap} ms, rows' gap {gap_ms} ms: {m}"
        );
    }
    let second = get(
        &http,
        &format!("{base}/api/recordings/{second_id}"),
        &teacher,
    )
    .await;
    eprintln!(
        "restart: first part ended {} ms before the kill; gap {gap_ms} ms; second part {} ms",
        killed_ms - first_end,
        second["duration_ms"]
    );
}

/// Kills the server at `child` with SIGKILL and starts a new process on `dir`; its base URL.
/// The new process has run its restart pass (`recording::resume`) before it answers.
fn kill_and_restart(child: &mut support::recording::KillOnDrop, dir: &std::path::Path) -> String {
    child.0.kill().expect("SIGKILL");
    child.0.wait().expect("reaped");
    let (next, base) = serve(dir);
    *child = next;
    base
}

/// The lesson's recordings' states, newest first.
async fn states(http: &reqwest::Client, base: &str, token: &str, id: i64) -> Vec<String> {
    let list = get(
        http,
        &format!("{base}/api/recordings?lesson_id={id}"),
        token,
    )
    .await;
    list["items"]
        .as_array()
        .expect("a page")
        .iter()
        .map(|r| r["state"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_stopped_by_hand_stays_stopped_across_a_restart() {
    let LiveLesson {
        dir,
        lesson: id,
        mut child,
        base,
    } = live_lesson_served().await;
    let http = reqwest::Client::new();
    let teacher = teacher_login(&http, &base).await;
    // The school records its lessons: the bell started it; the teacher stops it.
    until_recording(&http, &base, &teacher, id).await;
    post(
        &http,
        &format!("{base}/api/lessons/{id}/recording"),
        Some(&teacher),
        json!({"on": false}),
    )
    .await;
    let live = get(&http, &format!("{base}/api/lessons/{id}/live"), &teacher).await;
    assert_eq!(live["recording"], false, "{live}");

    // A crash and a new process, the lesson still live: not recorded again.
    let base = kill_and_restart(&mut child, dir.path());
    let teacher = teacher_login(&http, &base).await;
    let live = get(&http, &format!("{base}/api/lessons/{id}/live"), &teacher).await;
    assert_eq!(live["recording"], false, "{live}");
    assert_eq!(states(&http, &base, &teacher, id).await, ["stopped"]);

    // A start by hand clears the stop: the next crash's restart records the lesson again.
    post(
        &http,
        &format!("{base}/api/lessons/{id}/recording"),
        Some(&teacher),
        json!({"on": true}),
    )
    .await;
    until_recording(&http, &base, &teacher, id).await;
    let base = kill_and_restart(&mut child, dir.path());
    let teacher = teacher_login(&http, &base).await;
    let live = get(&http, &format!("{base}/api/lessons/{id}/live"), &teacher).await;
    assert_eq!(live["recording"], true, "{live}");
    assert_eq!(
        states(&http, &base, &teacher, id).await,
        ["recording", "stopped", "stopped"]
    );
}
