//! The automatic S-T draft against the truth: a known script of who speaks when (teacher or
//! classroom) is spoken by Debian's `espeak-ng` (two voices, Mandarin), encoded to Opus by
//! GStreamer's `opusenc`, and published as the hub teacher's and a remote classroom's audio
//! by the independent `webrtc` client into a lesson the real server records at the bell. The
//! recording is stopped, processed by the server, and the observer asks for the draft: at
//! each 5 s sample instant it must agree with the script on at least 90 % of samples. The
//! measured agreement is printed. Must never mock the server, the client, the codec or the
//! speech, and never tune the script to the detector.
//!
//! Run: `cargo test --test st_draft_truth -- --nocapture` (about two and a half minutes: the
//! lesson is sent in real time).

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use support::recording::recording_at_the_bell;
use support::school::{fixture, App, Backend};
use support::webrtc_client::{whip_publish_with, PublishOptions};

/// Who speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Teacher,
    Class,
}

/// The lesson's script: turns in order, seconds each (120 s in all). Written as a lesson
/// goes (a question, answers, an explanation, practice read aloud), not placed around the
/// sample instants: two turn changes (40 s, 75 s) fall exactly on one.
const SCRIPT: &[(Who, u32)] = &[
    (Who::Teacher, 13),
    (Who::Class, 9),
    (Who::Teacher, 18),
    (Who::Class, 12),
    (Who::Teacher, 7),
    (Who::Class, 16),
    (Who::Teacher, 11),
    (Who::Class, 8),
    (Who::Teacher, 14),
    (Who::Class, 12),
];

const INTERVAL_S: u64 = 5;

const TEACHER_TEXT: &str =
    "同学们好，今天我们学习颜色。请大家看黑板，这是红色，这是黄色，这是蓝色。\
    红色和黄色放在一起，会变成橙色。黄色和蓝色放在一起，会变成绿色。\
    下面老师请一位同学来回答，天空是什么颜色的？草地又是什么颜色的？\
    很好，回答得非常正确。我们再来看第二幅图，图上有一只小猫，它的眼睛是什么颜色？\
    大家说得很对。现在请同学们打开课本第二十页，我们一起读一读这段课文。\
    读的时候要注意声音响亮，停顿正确。好，我们开始。";

const CLASS_TEXT: &str = "天空是蓝色的，草地是绿色的。小猫的眼睛是黄色的。\
    红色加黄色是橙色，黄色加蓝色是绿色。我们喜欢红色的苹果，也喜欢黄色的香蕉。\
    春天来了，花儿开了，有红的，有白的，还有紫的。小朋友们在草地上做游戏。";

/// Who speaks at `t_ms` on the script's clock.
fn speaker_at(t_ms: u64) -> Option<Who> {
    let mut end = 0u64;
    for &(who, s) in SCRIPT {
        end += u64::from(s) * 1_000;
        if t_ms < end {
            return Some(who);
        }
    }
    None
}

/// Mono 16-bit samples and rate of a WAV file as espeak-ng writes it.
fn read_wav(path: &Path) -> (Vec<i16>, u32) {
    let b = std::fs::read(path).expect("the WAV file");
    assert_eq!(&b[0..4], b"RIFF", "a RIFF file");
    let rate = u32::from_le_bytes(b[24..28].try_into().unwrap());
    assert_eq!(u16::from_le_bytes([b[22], b[23]]), 1, "mono");
    let mut i = 12;
    while i + 8 <= b.len() {
        let len = u32::from_le_bytes(b[i + 4..i + 8].try_into().unwrap()) as usize;
        if &b[i..i + 4] == b"data" {
            let end = (i + 8 + len).min(b.len());
            let samples = b[i + 8..end]
                .chunks_exact(2)
                .map(|c| i16::from_le_bytes([c[0], c[1]]))
                .collect();
            return (samples, rate);
        }
        i += 8 + len + (len & 1);
    }
    panic!("no data chunk in {}", path.display());
}

fn write_wav(path: &Path, samples: &[i16], rate: u32) {
    let data = samples.len() as u32 * 2;
    let mut b = Vec::with_capacity(44 + data as usize);
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&(36 + data).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&16u32.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes()); // PCM
    b.extend_from_slice(&1u16.to_le_bytes()); // mono
    b.extend_from_slice(&rate.to_le_bytes());
    b.extend_from_slice(&(rate * 2).to_le_bytes());
    b.extend_from_slice(&2u16.to_le_bytes());
    b.extend_from_slice(&16u16.to_le_bytes());
    b.extend_from_slice(b"data");
    b.extend_from_slice(&data.to_le_bytes());
    for s in samples {
        b.extend_from_slice(&s.to_le_bytes());
    }
    std::fs::write(path, b).expect("WAV written");
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The speaker's track: their speech (espeak-ng, looping through `text`) during their turns,
/// a quiet room (low noise) otherwise, encoded to Ogg Opus at 48 kHz, 20 ms frames.
fn speaker_track(dir: &Path, name: &str, who: Who, voice: &[&str], text: &str) -> PathBuf {
    let speech_wav = dir.join(format!("{name}-speech.wav"));
    run(Command::new("espeak-ng")
        .args(voice)
        .arg("-w")
        .arg(&speech_wav)
        .arg(text));
    let (speech, rate) = read_wav(&speech_wav);
    assert!(
        speech.len() > rate as usize * 20,
        "{name}: espeak-ng spoke {} samples",
        speech.len()
    );
    let total_s: u32 = SCRIPT.iter().map(|t| t.1).sum();
    let mut track = vec![0i16; (total_s * rate) as usize];
    // Room tone: a deterministic low noise (about −56 dBFS) everywhere.
    let mut x = 0x2545_f491u32;
    for s in track.iter_mut() {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *s = (x % 101) as i16 - 50;
    }
    let mut cursor = 0usize;
    let mut at = 0usize;
    for &(w, secs) in SCRIPT {
        let n = (secs * rate) as usize;
        if w == who {
            for s in &mut track[at..at + n] {
                *s = s.saturating_add(speech[cursor % speech.len()]);
                cursor += 1;
            }
        }
        at += n;
    }
    let wav = dir.join(format!("{name}.wav"));
    write_wav(&wav, &track, rate);
    let ogg = dir.join(format!("{name}.ogg"));
    run(Command::new("gst-launch-1.0")
        .arg("-q")
        .arg("filesrc")
        .arg(format!("location={}", wav.display()))
        .args([
            "!",
            "wavparse",
            "!",
            "audioconvert",
            "!",
            "audioresample",
            "!",
        ])
        .arg("audio/x-raw,rate=48000,channels=1")
        .args([
            "!",
            "opusenc",
            "frame-size=20",
            "bitrate=32000",
            "!",
            // One Opus packet per Ogg page, as the client's reader wants
            // (tests/fixtures/README.md).
            "oggmux",
            "max-page-delay=1",
            "max-delay=1",
            "!",
        ])
        .arg("filesink")
        .arg(format!("location={}", ogg.display())));
    ogg
}

fn have(tool: &str, arg: &str) -> bool {
    Command::new(tool)
        .arg(arg)
        .output()
        .is_ok_and(|o| o.status.success())
}

async fn call(app: &App, token: &str, m: Method, path: &str, body: Option<Value>) -> Value {
    let (s, v) = app.call(Some(token), m.clone(), path, body).await;
    assert!(s.is_success(), "{m} {path}: {s} {v}");
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_draft_agrees_with_a_spoken_script() {
    if !have("espeak-ng", "--version") {
        support::skip::because("espeak-ng is not installed (apt-get install espeak-ng)");
        return;
    }
    if !have("gst-inspect-1.0", "opusenc") {
        support::skip::because(
            "GStreamer's opusenc is missing (apt-get install gstreamer1.0-tools gstreamer1.0-plugins-base)",
        );
        return;
    }
    let work = tempfile::tempdir().expect("a temp dir");
    let teacher_ogg = speaker_track(
        work.path(),
        "teacher",
        Who::Teacher,
        &["-v", "cmn", "-s", "170", "-p", "40"],
        TEACHER_TEXT,
    );
    let class_ogg = speaker_track(
        work.path(),
        "class",
        Who::Class,
        &["-v", "cmn+f3", "-s", "150", "-p", "75"],
        CLASS_TEXT,
    );

    // The lesson, recorded from its bell; the hub teacher and a remote classroom publish
    // their audio at the same time.
    let app = App::start(Backend::Sqlite).await.expect("sqlite");
    let f = fixture(&app).await;
    let (id, room) = recording_at_the_bell(&app, &f).await;
    let tj = call(
        &app,
        &f.teacher_login,
        Method::POST,
        &format!("/api/lessons/{id}/join"),
        None,
    )
    .await;
    let dev = app.device(f.room_a).await;
    let cj = call(
        &app,
        &dev,
        Method::POST,
        &format!("/api/lessons/{id}/join"),
        None,
    )
    .await;
    let audio_once = PublishOptions {
        loops: Some(1),
        video: false,
        audio: true,
        keyframe_on_request: false,
    };
    let no_video = work.path().join("none.ivf");
    let (teacher, class) = tokio::join!(
        whip_publish_with(
            &app.base,
            &room,
            tj["token"].as_str().expect("a token"),
            &no_video,
            &teacher_ogg,
            audio_once.clone(),
        ),
        whip_publish_with(
            &app.base,
            &room,
            cj["token"].as_str().expect("a token"),
            &no_video,
            &class_ogg,
            audio_once.clone(),
        )
    );
    let (teacher, class) = (
        teacher.expect("the teacher publishes"),
        class.expect("the classroom publishes"),
    );
    let limit = Duration::from_secs(200);
    let (tp, cp) = tokio::join!(teacher.wait_done(limit), class.wait_done(limit));
    let (tp, cp) = (tp.expect("teacher sent"), cp.expect("classroom sent"));
    assert!(tp.error.is_none() && cp.error.is_none(), "{tp:?} {cp:?}");
    println!(
        "sent: teacher {} and classroom {} Opus frames",
        tp.audio_frames, cp.audio_frames
    );
    let v = call(
        &app,
        &f.teacher_login,
        Method::POST,
        &format!("/api/lessons/{id}/recording"),
        Some(json!({"on": false})),
    )
    .await;
    let rec_id = v["recordings"][0]["id"].as_i64().expect("a recording");
    drop(teacher);
    drop(class);

    // Processing runs by itself; await the row's state.
    let store = &app.server.state().school.store;
    let t0 = Instant::now();
    let manifest_path = loop {
        let (p, err, path): (Option<String>, Option<String>, Option<String>) = sqlx::query_as(
            "SELECT processing, processing_error, manifest_path FROM recordings WHERE id = $1",
        )
        .bind(rec_id)
        .fetch_one(store.pool())
        .await
        .expect("the row");
        match p.as_deref() {
            Some("ready") => break PathBuf::from(path.expect("a manifest path")),
            Some("failed") => panic!("processing failed: {err:?}"),
            _ => {}
        }
        assert!(t0.elapsed() < Duration::from_secs(60), "processing: {p:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(&manifest_path).expect("manifest.json"))
            .expect("JSON");
    let sources = manifest["sources"].as_array().expect("sources");
    assert_eq!(
        sources.len(),
        2,
        "the teacher's and the classroom's audio: {manifest}"
    );
    // The script's zero is the teacher's first frame: where it sits on the lesson timeline.
    let teacher_src = sources
        .iter()
        .find(|s| s["hub"] == true)
        .expect("the hub teacher's source");
    let offset = teacher_src["start_ms"].as_u64().expect("start_ms");

    // The observer asks for the draft.
    let o = call(
        &app,
        &f.observer_login,
        Method::POST,
        "/api/observations",
        Some(json!({"lesson_id": id, "methods": ["st"], "interval_s": INTERVAL_S})),
    )
    .await["id"]
        .as_i64()
        .expect("an observation");
    let asked = Instant::now();
    let (s, d) = app
        .call(
            Some(&f.observer_login),
            Method::POST,
            &format!("/api/observations/{o}/st-draft"),
            None,
        )
        .await;
    // A background job: asked for at once, made off the request.
    assert_eq!(s, StatusCode::ACCEPTED, "{d}");
    assert!(
        matches!(
            d["job"]["state"].as_str(),
            Some("pending" | "running" | "done")
        ),
        "{d}"
    );
    let d =
        support::stdraft::draft_settled(&app, &f.observer_login, o, Duration::from_secs(120)).await;
    assert_eq!(d["job"]["state"], "done", "{d}");
    assert_eq!(d["job"]["progress"], 1.0, "{d}");
    println!(
        "the draft took {:.2} s (two 120 s tracks decoded, a debug build)",
        asked.elapsed().as_secs_f64()
    );
    assert_eq!(d["recording_id"], rec_id, "{d}");
    let samples = d["samples"].as_array().expect("samples");
    assert!(samples.len() >= 22, "120 s at 5 s: {d}");

    // Sample by sample against the script.
    let mut truth = String::new();
    let mut agree = 0;
    let mut compared = 0;
    let (mut class_on_s, mut class_on_t) = (Vec::new(), Vec::new());
    println!("  at_s  truth draft teacher‰ class‰");
    for s in samples {
        let at = s["at_ms"].as_u64().expect("at_ms");
        let Some(who) = at.checked_sub(offset).and_then(speaker_at) else {
            continue;
        };
        let want = if who == Who::Teacher { "T" } else { "S" };
        let got = s["code"].as_str().expect("a code");
        let (tv, cv) = (
            s["teacher_voiced"].as_u64().unwrap(),
            s["class_voiced"].as_u64().unwrap(),
        );
        println!(
            "  {:>5.1}  {want}     {got}     {tv:>4}     {cv:>4}{}",
            at as f64 / 1000.0,
            if want == got { "" } else { "   ← differs" }
        );
        compared += 1;
        agree += usize::from(want == got);
        truth.push_str(want);
        if who == Who::Class {
            class_on_s.push(cv);
        } else {
            class_on_t.push(cv);
        }
    }
    let agreement = agree as f64 / compared as f64;
    println!(
        "measured agreement with the espeak-ng script: {agree}/{compared} = {:.1} %",
        agreement * 100.0
    );
    assert!(compared >= 22, "{compared} samples compared");
    assert!(
        agreement >= 0.9,
        "the draft agrees with the script on {agree}/{compared} samples: {d}"
    );
    // The classroom's track was heard too (shown beside the draft): more speech in it where
    // the script has the class speaking.
    let mean = |v: &[u64]| v.iter().sum::<u64>() as f64 / v.len().max(1) as f64;
    assert!(
        mean(&class_on_s) > mean(&class_on_t) + 300.0,
        "classroom voice on S samples {class_on_s:?}, on T samples {class_on_t:?}"
    );

    // The observer codes the truth; the draft's comparison counts the same agreement.
    call(
        &app,
        &f.observer_login,
        Method::POST,
        &format!("/api/observations/{o}/codes"),
        Some(json!({"method": "st", "codes": truth})),
    )
    .await;
    let g = call(
        &app,
        &f.observer_login,
        Method::GET,
        &format!("/api/observations/{o}/st-draft"),
        None,
    )
    .await;
    // The samples before the teacher's first frame (if any) are not in `truth`; the page
    // compares sample i with sample i, so compare the same way here.
    let skipped = samples.len() - compared;
    if skipped == 0 {
        assert_eq!(g["comparison"]["agree"], agree, "{g}");
        assert_eq!(g["comparison"]["compared"], compared, "{g}");
    }
    assert_eq!(g["observer_codes"], truth.as_str(), "{g}");
}
