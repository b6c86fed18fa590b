//! What the recording tests share: a child server killed when dropped, whole VP8 frames
//! rebuilt from captured RTP, a JSON POST that must succeed, and a size-limited tmpfs (a disk
//! that fills). Test-only.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use super::school::{fixture, App, Backend, Fixture};
use super::webrtc_client::{
    audio_fixture, video_fixture, whip_publish_with, PublishOptions, Publisher, SentFrame,
};

/// A child process (a `classrelay serve`) killed and reaped when dropped.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The VP8 payload descriptor's length (RFC 7741 4.2).
pub fn vp8_descriptor_len(p: &[u8]) -> Option<usize> {
    let b0 = *p.first()?;
    let mut i = 1;
    if b0 & 0x80 != 0 {
        let x = *p.get(i)?;
        i += 1;
        if x & 0x80 != 0 {
            i += if *p.get(i)? & 0x80 != 0 { 2 } else { 1 };
        }
        if x & 0x40 != 0 {
            i += 1;
        }
        if x & 0x30 != 0 {
            i += 1;
        }
    }
    (i <= p.len()).then_some(i)
}

/// Whole VP8 frames from captured RTP packets (a frame cut by the kill is left out).
pub fn vp8_frames(packets: &[&[u8]]) -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    let mut cur: Option<Vec<u8>> = None;
    for p in packets {
        let payload = &p[12..];
        let Some(d) = vp8_descriptor_len(payload) else {
            continue;
        };
        if payload[0] & 0x10 != 0 {
            cur = Some(Vec::new());
        }
        if let Some(c) = cur.as_mut() {
            c.extend_from_slice(&payload[d..]);
        }
        if p[1] & 0x80 != 0 {
            if let Some(c) = cur.take() {
                frames.push(c);
            }
        }
    }
    frames
}

/// POSTs `body` as JSON (with `token`, if any) and wants a success; the answer.
pub async fn post(http: &reqwest::Client, url: &str, token: Option<&str>, body: Value) -> Value {
    let mut r = http.post(url).json(&body);
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    let resp = r.send().await.expect("the server answers");
    let status = resp.status();
    let v: Value = resp.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "{url}: {status} {v}");
    v
}

/// A size-limited tmpfs at `dir`, unmounted when dropped.
pub struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts a tmpfs of `size` (e.g. `256k`) at `dir`; needs root.
    pub fn mount(dir: &Path, size: &str) -> Result<Self, String> {
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .map_err(|e| format!("mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount -t tmpfs failed (needs root): {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(Tmpfs(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// `classrelay serve` on `dir`, and the base URL it prints.
pub fn serve(dir: &Path) -> (KillOnDrop, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_classrelay"));
    for (k, _) in std::env::vars() {
        if k.starts_with("CLASSRELAY_") {
            cmd.env_remove(k);
        }
    }
    let mut child = KillOnDrop(
        cmd.current_dir(dir)
            .env("CLASSRELAY_DATA__DIR", dir)
            .env(
                "CLASSRELAY_AUTH__SECRET",
                "test-secret-test-secret-test-secret",
            )
            .env("CLASSRELAY_HTTP__LISTEN", "127.0.0.1:0")
            .env("CLASSRELAY_MEDIA__BIND_IP", "127.0.0.1")
            .env("CLASSRELAY_MEDIA__UDP_PORT", "0")
            .env("CLASSRELAY_MEDIA__WORKERS", "1")
            .arg("serve")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the server starts"),
    );
    let stdout = child.0.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let base = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the server prints where it listens");
        if let Some(rest) = line.strip_prefix("classrelay listening on ") {
            break rest.split_whitespace().next().expect("a URL").to_string();
        }
    };
    // Keep draining stdout so the server never blocks on a full pipe.
    std::thread::spawn(move || while rx.recv().is_ok() {});
    (child, base)
}

/// Logs `wang` (the fixture's hub teacher) in on the server at `base`; the session token.
pub async fn teacher_login(http: &reqwest::Client, base: &str) -> String {
    let login = post(
        http,
        &format!("{base}/api/login"),
        None,
        json!({"username": "wang", "password": "password-123"}),
    )
    .await;
    login["token"].as_str().expect("a session").to_string()
}

/// Waits (polling the lesson's live state, at most 20 s) until lesson `id` is being recorded.
pub async fn until_recording(http: &reqwest::Client, base: &str, token: &str, id: i64) {
    let t0 = Instant::now();
    loop {
        let v: Value = http
            .get(format!("{base}/api/lessons/{id}/live"))
            .bearer_auth(token)
            .send()
            .await
            .expect("answers")
            .json()
            .await
            .unwrap_or(Value::Null);
        if v["recording"] == true {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(20), "recording: {v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The teacher (session `token`) joins lesson `id` on the server at `base` and publishes the
/// fixtures with the independent client.
pub async fn teacher_publishes_to(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    id: i64,
) -> Publisher {
    let j = post(
        http,
        &format!("{base}/api/lessons/{id}/join"),
        Some(token),
        json!(null),
    )
    .await;
    whip_publish_with(
        base,
        &format!("lesson-{id}"),
        j["token"].as_str().expect("a media token"),
        &video_fixture(),
        &audio_fixture(),
        PublishOptions::default(),
    )
    .await
    .expect("the teacher publishes")
}

/// What [`record_a_lesson_then_kill`] leaves: the data directory (capture and database), the
/// lesson, when the kill happened, and what the teacher had sent by then.
pub struct KilledMidLesson {
    /// The server's data directory.
    pub dir: tempfile::TempDir,
    /// The recorded lesson.
    pub lesson: i64,
    /// When the server was killed.
    pub killed: Instant,
    /// The video frames the teacher sent.
    pub sent_video: Vec<SentFrame>,
    /// The audio frames the teacher sent.
    pub sent_audio: Vec<SentFrame>,
}

/// A lesson of now (live for forty minutes) served by a real `classrelay serve` process on a
/// fresh data directory (the fixture's school, made in-process first).
pub struct LiveLesson {
    /// The server's data directory.
    pub dir: tempfile::TempDir,
    /// The lesson.
    pub lesson: i64,
    /// The server process.
    pub child: KillOnDrop,
    /// Its base URL.
    pub base: String,
}

/// Starts a [`LiveLesson`].
pub async fn live_lesson_served() -> LiveLesson {
    // The school and a lesson made in-process, then moved to now on the real clock.
    let app = App::start_in_process(Backend::Sqlite)
        .await
        .expect("sqlite");
    let f = fixture(&app).await;
    let id = super::school::lesson(&app, &f, "delivery", "08:00", "08:40").await;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as i64;
    sqlx::query("UPDATE lessons SET starts_at = $1, ends_at = $2 WHERE id = $3")
        .bind(now - 1_000)
        .bind(now + 40 * 60_000)
        .bind(id)
        .execute(app.server.state().school.store.pool())
        .await
        .expect("lesson moved to now");
    let App { dir, server, .. } = app;
    server.shutdown().await;
    let (child, base) = serve(dir.path());
    LiveLesson {
        dir,
        lesson: id,
        child,
        base,
    }
}

/// A lesson of now on a real `classrelay serve` process: the scheduler starts its recording,
/// the independent `webrtc` client publishes four seconds of the fixtures as its teacher, and
/// the server is killed with SIGKILL (no graceful stop).
pub async fn record_a_lesson_then_kill() -> KilledMidLesson {
    let LiveLesson {
        dir,
        lesson: id,
        mut child,
        base,
    } = live_lesson_served().await;

    let http = reqwest::Client::new();
    let teacher = teacher_login(&http, &base).await;
    // The scheduler's first pass makes the lesson live and starts its recording.
    until_recording(&http, &base, &teacher, id).await;
    let publisher = teacher_publishes_to(&http, &base, &teacher, id).await;
    publisher
        .wait_progress(Duration::from_secs(20), |p| p.video_frames >= 120)
        .await
        .expect("four seconds of video sent");
    child.0.kill().expect("SIGKILL");
    let killed = Instant::now();
    child.0.wait().expect("reaped");
    let sent_video = publisher.sent_video();
    let sent_audio = publisher.sent_audio();
    drop(publisher);
    KilledMidLesson {
        dir,
        lesson: id,
        killed,
        sent_video,
        sent_audio,
    }
}

/// A 专递 lesson at 08:00 on `app`, its bell rung: returns once its recording runs (the
/// lesson's id and room).
pub async fn recording_at_the_bell(app: &App, f: &Fixture) -> (i64, String) {
    let id = super::school::lesson(app, f, "delivery", "08:00", "08:40").await;
    let room = format!("lesson-{id}");
    let state = app.server.state();
    app.clock.set(super::school::at("08:00"));
    let t0 = Instant::now();
    while state
        .media
        .recorder()
        .and_then(|r| r.recording_of(&room))
        .is_none()
    {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "recording at the bell"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (id, room)
}

/// The lesson's teacher joins and publishes the fixtures with the independent client.
pub async fn teacher_publishes(app: &App, f: &Fixture, id: i64, room: &str) -> Publisher {
    joins_and_publishes(app, &f.teacher_login, id, room).await
}

/// Whoever `token` signs in (a teacher's session, a classroom's device token) joins lesson
/// `id` and publishes the fixtures with the independent client.
pub async fn joins_and_publishes(app: &App, token: &str, id: i64, room: &str) -> Publisher {
    let (s, j) = app
        .call(
            Some(token),
            reqwest::Method::POST,
            &format!("/api/lessons/{id}/join"),
            None,
        )
        .await;
    assert_eq!(s, reqwest::StatusCode::OK, "{j}");
    whip_publish_with(
        &app.base,
        room,
        j["token"].as_str().expect("a token"),
        &video_fixture(),
        &audio_fixture(),
        PublishOptions::default(),
    )
    .await
    .expect("the teacher publishes")
}
