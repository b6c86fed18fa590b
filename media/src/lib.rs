//! classrelay's GStreamer exports: a processed recording's files → a showcase/premium MP4
//! (H.264 + AAC, title card first) or the composite 一屏三画面, plus a thumbnail. Knows nothing of
//! the database, HTTP or the media plane; must never run on an async worker or the packet path
//! (a run blocks its thread for as long as the encode takes).
//!
//! GStreamer does the decoding, scaling, text, mixing and encoding (x264enc, voaacenc, mp4mux):
//! nothing here is written by hand but the pipeline's shape and the layout arithmetic.
#![forbid(unsafe_code)]

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;

/// The font the title card is drawn in (Debian's `fonts-noto-cjk`); fontconfig falls back to
/// any installed CJK font when it is missing.
pub const TITLE_FONT: &str = "Noto Sans CJK SC";

/// The longest a title card may last (the showcase rules: at most 5 s).
pub const MAX_TITLE_SECS: u32 = 5;

/// What an input file shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The hub teacher's camera (with the teacher's voice).
    TeacherCamera,
    /// The hub's screen share.
    Courseware,
    /// A classroom's camera.
    ClassroomCamera,
    /// Sound only.
    Audio,
}

/// One processed file of the recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    /// The WebM/Matroska file.
    pub path: PathBuf,
    /// What it shows.
    pub role: Role,
    /// Where its time zero sits on the lesson timeline, ms.
    pub start_ms: u64,
    /// Its duration, ms.
    pub duration_ms: u64,
    /// Whether it holds a video track.
    pub video: bool,
    /// Whether it holds an audio track.
    pub audio: bool,
}

/// Which kind of export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    /// 晒课: teacher camera, H.264 + AAC, 1280×720 at 900 kbit/s (within 0.5–1 Mbit/s).
    Showcase,
    /// 精品课: teacher camera, 1920×1080 at 25 fps, 8 Mbit/s.
    Premium,
    /// 一屏三画面: teacher camera large, courseware and one classroom beside, 1280×720 at 1.5 Mbit/s.
    Composite,
}

impl Preset {
    /// The preset's name on the command line and in the API.
    pub fn name(self) -> &'static str {
        match self {
            Preset::Showcase => "showcase",
            Preset::Premium => "premium",
            Preset::Composite => "composite",
        }
    }

    /// Parses a preset name.
    pub fn parse(s: &str) -> Option<Preset> {
        match s {
            "showcase" => Some(Preset::Showcase),
            "premium" => Some(Preset::Premium),
            "composite" => Some(Preset::Composite),
            _ => None,
        }
    }

    /// The preset's default encoding.
    pub fn spec(self) -> Spec {
        let (width, height, video_kbps) = match self {
            Preset::Showcase => (1280, 720, 900),
            Preset::Premium => (1920, 1080, 8000),
            Preset::Composite => (1280, 720, 1500),
        };
        Spec {
            preset: self,
            width,
            height,
            fps: 25,
            video_kbps,
            audio_kbps: 128,
            title_secs: MAX_TITLE_SECS,
            title: Vec::new(),
        }
    }
}

/// How to encode one export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    /// The layout.
    pub preset: Preset,
    /// Output width, pixels (even).
    pub width: u32,
    /// Output height, pixels (even).
    pub height: u32,
    /// Frames per second.
    pub fps: u32,
    /// H.264 target bitrate, kbit/s.
    pub video_kbps: u32,
    /// AAC bitrate, kbit/s.
    pub audio_kbps: u32,
    /// How long the title card shows before the lesson (0 = none; capped at 5 s).
    pub title_secs: u32,
    /// The title card's lines (course, grade and volume, edition, school, teacher).
    pub title: Vec<String>,
}

/// What an export produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The MP4.
    pub mp4: PathBuf,
    /// The thumbnail (JPEG or PNG, by the asked name's extension).
    pub thumbnail: PathBuf,
    /// The MP4's length, ms (title card included).
    pub duration_ms: u64,
    /// Wall-clock time the encode took.
    pub elapsed: Duration,
}

impl Report {
    /// Export speed: media seconds per wall-clock second.
    pub fn speed(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs <= 0.0 {
            return 0.0;
        }
        self.duration_ms as f64 / 1000.0 / secs
    }
}

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// GStreamer could not start (libraries or plugins missing).
    #[error("GStreamer is not usable: {0}")]
    Init(String),
    /// The recording has nothing the preset can show.
    #[error("the recording has no {0}")]
    NoInput(&'static str),
    /// An input file is missing.
    #[error("input file {0} is missing")]
    Missing(PathBuf),
    /// The spec is out of range.
    #[error("bad export settings: {0}")]
    Spec(String),
    /// An element reported an error (a corrupt input, a missing plugin, a full disk).
    #[error("{element}: {message}")]
    Pipeline {
        /// The element's path in the pipeline (names the input file's source when it was one).
        element: String,
        /// GStreamer's message.
        message: String,
    },
    /// Time stopped moving for too long.
    #[error("the export stalled at {at_ms} ms of {total_ms} ms")]
    Stalled {
        /// Position reached.
        at_ms: u64,
        /// Expected length.
        total_ms: u64,
    },
    /// The pipeline could not be built (a bug in the description or a missing plugin).
    #[error("building the pipeline failed: {0}")]
    Build(String),
    /// Writing the output failed.
    #[error("output: {0}")]
    Io(#[from] std::io::Error),
}

/// Initialises GStreamer (idempotent).
pub fn init() -> Result<(), ExportError> {
    gst::init().map_err(|e| ExportError::Init(e.to_string()))
}

/// How long an export may go without its position advancing before it is called stalled.
const STALL: Duration = Duration::from_secs(60);

fn check_spec(spec: &Spec) -> Result<(), ExportError> {
    if spec.width < 16 || spec.height < 16 || spec.width > 7680 || spec.height > 4320 {
        return Err(ExportError::Spec(format!(
            "size {}×{} is out of 16×16 … 7680×4320",
            spec.width, spec.height
        )));
    }
    if spec.width % 2 == 1 || spec.height % 2 == 1 {
        return Err(ExportError::Spec("width and height must be even".into()));
    }
    if !(1..=60).contains(&spec.fps) {
        return Err(ExportError::Spec("fps must be 1 … 60".into()));
    }
    if !(100..=50_000).contains(&spec.video_kbps) {
        return Err(ExportError::Spec(
            "video bitrate must be 100 … 50000 kbit/s".into(),
        ));
    }
    if !(32..=320).contains(&spec.audio_kbps) {
        return Err(ExportError::Spec(
            "audio bitrate must be 32 … 320 kbit/s".into(),
        ));
    }
    Ok(())
}

/// A rectangle of the output picture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cell {
    /// Left edge.
    pub x: u32,
    /// Top edge.
    pub y: u32,
    /// Width.
    pub w: u32,
    /// Height.
    pub h: u32,
}

fn even(v: u32) -> u32 {
    v & !1
}

/// The composite's layout on a `width`×`height` picture: teacher camera two thirds wide on
/// the left, courseware above a classroom in the right third, both 16:9, vertically centred.
pub fn composite_layout(width: u32, height: u32) -> [(Role, Cell); 3] {
    let big_w = even(width * 2 / 3);
    let big_h = even(big_w * 9 / 16).min(height);
    let small_w = width - big_w;
    let small_h = big_h / 2;
    let top = even((height - big_h) / 2);
    [
        (
            Role::TeacherCamera,
            Cell {
                x: 0,
                y: top,
                w: big_w,
                h: big_h,
            },
        ),
        (
            Role::Courseware,
            Cell {
                x: big_w,
                y: top,
                w: small_w,
                h: small_h,
            },
        ),
        (
            Role::ClassroomCamera,
            Cell {
                x: big_w,
                y: top + small_h,
                w: small_w,
                h: big_h - small_h,
            },
        ),
    ]
}

/// The pictures an export shows, each with its cell.
fn pictures<'a>(inputs: &'a [Input], spec: &Spec) -> Result<Vec<(&'a Input, Cell)>, ExportError> {
    let full = Cell {
        x: 0,
        y: 0,
        w: spec.width,
        h: spec.height,
    };
    let first = |role: Role| inputs.iter().find(|i| i.video && i.role == role);
    match spec.preset {
        Preset::Showcase | Preset::Premium => {
            let main = first(Role::TeacherCamera)
                .or_else(|| inputs.iter().find(|i| i.video))
                .ok_or(ExportError::NoInput("video source"))?;
            Ok(vec![(main, full)])
        }
        Preset::Composite => {
            let mut out = Vec::new();
            for (role, cell) in composite_layout(spec.width, spec.height) {
                if let Some(input) = first(role) {
                    out.push((input, cell));
                }
            }
            if out.is_empty() {
                return Err(ExportError::NoInput("video source"));
            }
            Ok(out)
        }
    }
}

/// The sound an export carries: the teacher camera's own, else an audio-only source, else
/// the first file with sound.
fn sound(inputs: &[Input]) -> Option<&Input> {
    inputs
        .iter()
        .find(|i| i.audio && i.role == Role::TeacherCamera)
        .or_else(|| inputs.iter().find(|i| i.audio && i.role == Role::Audio))
        .or_else(|| inputs.iter().find(|i| i.audio))
}

/// Builds the gst-launch description. File names and the title text are set as properties
/// afterwards (by element name), so nothing from outside is ever parsed as pipeline syntax.
fn describe(
    pics: &[(&Input, Cell)],
    audio: Option<&Input>,
    spec: &Spec,
    title_secs: u32,
    total_ms: u64,
) -> (String, Vec<(String, PathBuf)>) {
    let (w, h, fps) = (spec.width, spec.height, spec.fps);
    let title_ns = u64::from(title_secs) * 1_000_000_000;
    let mut files: Vec<(String, PathBuf)> = Vec::new();
    // Branches first; the pad settings (`sink_N::prop`) go on the mixers' own declarations,
    // the only place gst-launch syntax takes them.
    let mut d = String::new();
    let mut pic_pads = String::new();
    let mut snd_pads = String::new();
    let mut pad = 0;
    for (i, (input, cell)) in pics.iter().enumerate() {
        let name = format!("src{i}");
        files.push((name.clone(), input.path.clone()));
        let offset = title_ns + input.start_ms * 1_000_000;
        let _ = write!(
            d,
            "filesrc name={name} ! decodebin name=dec{i} \
             dec{i}. ! video/x-raw ! queue max-size-time=2000000000 max-size-buffers=0 max-size-bytes=0 \
             ! videoconvert ! videoscale add-borders=true ! videorate \
             ! video/x-raw,width={cw},height={ch},framerate={fps}/1,pixel-aspect-ratio=1/1 \
             ! pic.sink_{pad} ",
            cw = cell.w,
            ch = cell.h,
        );
        let _ = write!(
            pic_pads,
            "sink_{pad}::xpos={x} sink_{pad}::ypos={y} sink_{pad}::offset={offset} ",
            x = cell.x,
            y = cell.y
        );
        if audio.is_some_and(|a| a.path == input.path) {
            let _ = write!(
                d,
                "dec{i}. ! audio/x-raw ! queue max-size-time=2000000000 max-size-buffers=0 max-size-bytes=0 \
                 ! audioconvert ! audioresample ! audio/x-raw,rate=48000,channels=2 ! snd.sink_0 "
            );
            let _ = write!(snd_pads, "sink_0::offset={offset} ");
        }
        pad += 1;
    }
    if title_secs > 0 {
        // The title card: dark text on a light card, above everything for its seconds.
        let _ = write!(
            d,
            "videotestsrc pattern=solid-color foreground-color=0xfff4f1e8 num-buffers={n} \
             ! video/x-raw,width={w},height={h},framerate={fps}/1 \
             ! textoverlay name=title valignment=center halignment=center line-alignment=center \
               shaded-background=false draw-outline=false draw-shadow=false color=0xff202020 \
             ! pic.sink_{pad} ",
            n = title_secs * fps,
        );
        let _ = write!(pic_pads, "sink_{pad}::zorder=10 ");
    }
    // The picture: compositor over a black background, then H.264.
    let _ = write!(
        d,
        "compositor name=pic background=black {pic_pads}\
         ! video/x-raw,width={w},height={h},framerate={fps}/1 \
         ! videoconvert ! video/x-raw,format=I420 \
         ! x264enc bitrate={kbps} speed-preset=veryfast key-int-max={gop} vbv-buf-capacity=1000 \
         ! video/x-h264,profile=high ! h264parse ! queue ! mp4mux name=mux faststart=true \
         ! filesink name=out ",
        kbps = spec.video_kbps,
        gop = fps * 2,
    );
    // The sound: the lesson's, after the card's silence (the whole length when it has none).
    let silence_ms = if audio.is_some() {
        u64::from(title_secs) * 1000
    } else {
        total_ms
    };
    if let Some(a) = audio {
        if !pics.iter().any(|(p, _)| p.path == a.path) {
            let offset = title_ns + a.start_ms * 1_000_000;
            files.push(("srca".into(), a.path.clone()));
            let _ = write!(
                d,
                "filesrc name=srca ! decodebin ! audio/x-raw ! queue \
                 ! audioconvert ! audioresample ! audio/x-raw,rate=48000,channels=2 ! snd.sink_0 "
            );
            let _ = write!(snd_pads, "sink_0::offset={offset} ");
        }
    }
    if silence_ms > 0 {
        let _ = write!(
            d,
            "audiotestsrc wave=silence samplesperbuffer=960 num-buffers={n} \
             ! audio/x-raw,rate=48000,channels=2 ! snd.sink_1 ",
            n = silence_ms.div_ceil(20),
        );
    }
    let _ = write!(
        d,
        "audiomixer name=snd {snd_pads}! audioconvert ! audio/x-raw,rate=48000,channels=2 \
         ! voaacenc bitrate={abr} ! aacparse ! queue ! mux. ",
        abr = spec.audio_kbps * 1000
    );
    (d, files)
}

/// Runs a pipeline to its end, calling `progress` with the fraction done (0.0 … 1.0).
fn run(
    pipeline: &gst::Pipeline,
    total_ms: u64,
    progress: &mut dyn FnMut(f32),
) -> Result<(), ExportError> {
    let bus = pipeline.bus().ok_or(ExportError::Build("no bus".into()))?;
    pipeline
        .set_state(gst::State::Playing)
        .map_err(|_| first_error(&bus).unwrap_or(ExportError::Build("could not start".into())))?;
    let mut last_pos = 0u64;
    let mut last_move = Instant::now();
    let result = loop {
        let msg = bus.timed_pop_filtered(
            gst::ClockTime::from_mseconds(250),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        );
        match msg.as_ref().map(|m| m.view()) {
            Some(gst::MessageView::Eos(_)) => break Ok(()),
            Some(gst::MessageView::Error(e)) => break Err(error_of(e)),
            _ => {}
        }
        let pos = pipeline
            .query_position::<gst::ClockTime>()
            .map(|p| p.mseconds())
            .unwrap_or(0);
        if pos > last_pos {
            last_pos = pos;
            last_move = Instant::now();
            if total_ms > 0 {
                progress((pos as f32 / total_ms as f32).min(1.0));
            }
        } else if last_move.elapsed() > STALL {
            break Err(ExportError::Stalled {
                at_ms: last_pos,
                total_ms,
            });
        }
    };
    let _ = pipeline.set_state(gst::State::Null);
    result
}

fn error_of(e: &gst::message::Error) -> ExportError {
    let element = e
        .src()
        .map(|s| s.path_string().to_string())
        .unwrap_or_else(|| "pipeline".into());
    let mut message = e.error().to_string();
    if let Some(debug) = e.debug() {
        // The first line of the debug text says which check failed; the rest is a trace.
        if let Some(line) = debug.lines().last().filter(|l| !l.is_empty()) {
            let _ = write!(message, " ({})", line.trim());
        }
    }
    ExportError::Pipeline { element, message }
}

fn first_error(bus: &gst::Bus) -> Option<ExportError> {
    let msg = bus.timed_pop_filtered(
        gst::ClockTime::from_mseconds(500),
        &[gst::MessageType::Error],
    )?;
    match msg.view() {
        gst::MessageView::Error(e) => Some(error_of(e)),
        _ => None,
    }
}

/// Names an input file in an error: the element path says `srcN`, the report says the file.
fn name_file(err: ExportError, files: &[(String, PathBuf)]) -> ExportError {
    match err {
        ExportError::Pipeline { element, message } => {
            let file = files.iter().find(|(name, _)| {
                element.contains(&format!("/GstFileSrc:{name}"))
                    || element.contains(&format!("dec{}", name.trim_start_matches("src")))
            });
            match file {
                Some((_, path)) => ExportError::Pipeline {
                    element: format!("reading {}", path.display()),
                    message,
                },
                None => ExportError::Pipeline { element, message },
            }
        }
        other => other,
    }
}

/// Exports `inputs` (a recording's processed files) as `spec` says into `mp4`, then takes a
/// thumbnail from the lesson (after the title card) into `thumbnail` (`.png` or `.jpg`).
/// `progress` is called with the fraction done. Blocks until the encode ends; writes to
/// `<mp4>.part` and renames, so a failed export leaves no half file under the final name.
pub fn export(
    inputs: &[Input],
    spec: &Spec,
    mp4: &Path,
    thumbnail: &Path,
    progress: &mut dyn FnMut(f32),
) -> Result<Report, ExportError> {
    init()?;
    check_spec(spec)?;
    for input in inputs {
        if !input.path.is_file() {
            return Err(ExportError::Missing(input.path.clone()));
        }
    }
    let pics = pictures(inputs, spec)?;
    let audio = sound(inputs);
    let title_secs = if spec.title.iter().all(|l| l.trim().is_empty()) {
        0
    } else {
        spec.title_secs.min(MAX_TITLE_SECS)
    };
    let lesson_ms = pics
        .iter()
        .map(|(i, _)| i.start_ms + i.duration_ms)
        .chain(audio.map(|a| a.start_ms + a.duration_ms))
        .max()
        .unwrap_or(0);
    let total_ms = u64::from(title_secs) * 1000 + lesson_ms;
    let (desc, files) = describe(&pics, audio, spec, title_secs, total_ms);
    let pipeline = gst::parse::launch(&desc)
        .map_err(|e| ExportError::Build(e.to_string()))?
        .downcast::<gst::Pipeline>()
        .map_err(|_| ExportError::Build("not a pipeline".into()))?;
    for (name, path) in &files {
        let src = pipeline
            .by_name(name)
            .ok_or_else(|| ExportError::Build(format!("no element {name}")))?;
        src.set_property("location", path.to_string_lossy().to_string());
    }
    if title_secs > 0 {
        let title = pipeline
            .by_name("title")
            .ok_or_else(|| ExportError::Build("no title element".into()))?;
        // Pango sizes the font in points at 96 dpi; a sixteenth of the height fits six lines.
        let size = (spec.height / 16).max(8);
        title.set_property("font-desc", format!("{TITLE_FONT} {size}px"));
        title.set_property("text", spec.title.join("\n"));
    }
    let part = part_path(mp4);
    pipeline
        .by_name("out")
        .ok_or_else(|| ExportError::Build("no sink".into()))?
        .set_property("location", part.to_string_lossy().to_string());
    let started = Instant::now();
    let result = run(&pipeline, total_ms, progress).map_err(|e| name_file(e, &files));
    if let Err(e) = result {
        let _ = std::fs::remove_file(&part);
        return Err(e);
    }
    std::fs::rename(&part, mp4)?;
    let elapsed = started.elapsed();
    let at_ms = u64::from(title_secs) * 1000 + lesson_ms.min(10_000) / 2;
    take_thumbnail(mp4, at_ms, thumbnail, 480)?;
    progress(1.0);
    Ok(Report {
        mp4: mp4.to_path_buf(),
        thumbnail: thumbnail.to_path_buf(),
        duration_ms: total_ms,
        elapsed,
    })
}

fn part_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".part");
    PathBuf::from(s)
}

/// Writes one frame of `video` at `at_ms` (the nearest decodable one at or after it), scaled
/// to `width` pixels wide, to `out` as PNG (`.png`) or JPEG (anything else).
pub fn take_thumbnail(video: &Path, at_ms: u64, out: &Path, width: u32) -> Result<(), ExportError> {
    init()?;
    let png = out
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("png"));
    let enc = if png {
        "pngenc snapshot=true"
    } else {
        "jpegenc snapshot=true quality=85"
    };
    let width = even(width.max(16));
    let desc = format!(
        "filesrc name=in ! decodebin ! video/x-raw ! videoconvert ! videoscale \
         ! video/x-raw,width={width},pixel-aspect-ratio=1/1 ! {enc} ! filesink name=out"
    );
    let pipeline = gst::parse::launch(&desc)
        .map_err(|e| ExportError::Build(e.to_string()))?
        .downcast::<gst::Pipeline>()
        .map_err(|_| ExportError::Build("not a pipeline".into()))?;
    pipeline
        .by_name("in")
        .ok_or_else(|| ExportError::Build("no source".into()))?
        .set_property("location", video.to_string_lossy().to_string());
    let part = part_path(out);
    pipeline
        .by_name("out")
        .ok_or_else(|| ExportError::Build("no sink".into()))?
        .set_property("location", part.to_string_lossy().to_string());
    let bus = pipeline.bus().ok_or(ExportError::Build("no bus".into()))?;
    pipeline
        .set_state(gst::State::Paused)
        .map_err(|_| first_error(&bus).unwrap_or(ExportError::Build("could not start".into())))?;
    // Wait for preroll, then seek to the asked time.
    let (ok, _, _) = pipeline.state(gst::ClockTime::from_seconds(30));
    if ok.is_err() {
        let err = first_error(&bus).unwrap_or(ExportError::Build("preroll failed".into()));
        let _ = pipeline.set_state(gst::State::Null);
        return Err(err);
    }
    let _ = pipeline.seek_simple(
        gst::SeekFlags::FLUSH | gst::SeekFlags::ACCURATE,
        gst::ClockTime::from_mseconds(at_ms),
    );
    let result = run(&pipeline, 0, &mut |_| {});
    if let Err(e) = result {
        let _ = std::fs::remove_file(&part);
        return Err(e);
    }
    std::fs::rename(&part, out)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn composite_cells_fit_and_do_not_overlap() {
        for (w, h) in [(1280, 720), (1920, 1080), (720, 576), (854, 480)] {
            let cells = composite_layout(w, h);
            for (_, c) in cells {
                assert!(c.x + c.w <= w && c.y + c.h <= h, "{w}×{h}: {c:?}");
                assert!(c.w > 0 && c.h > 0);
            }
            let [(_, t), (_, cw), (_, cl)] = cells;
            assert_eq!(
                t.x + t.w,
                cw.x,
                "the right column starts where the teacher ends"
            );
            assert_eq!(cw.y + cw.h, cl.y, "the classroom sits under the courseware");
            assert!(
                t.w * t.h > 3 * cw.w * cw.h,
                "the teacher camera is the big picture"
            );
        }
    }

    #[test]
    fn presets_meet_the_showcase_limits() {
        let s = Preset::Showcase.spec();
        assert!(s.width >= 720 && s.height >= 576);
        assert!((500..=1000).contains(&s.video_kbps));
        let p = Preset::Premium.spec();
        assert_eq!(
            (p.width, p.height, p.fps, p.video_kbps),
            (1920, 1080, 25, 8000)
        );
        for name in ["showcase", "premium", "composite"] {
            assert_eq!(Preset::parse(name).map(Preset::name), Some(name));
        }
        assert_eq!(Preset::parse("Showcase"), None);
    }

    #[test]
    fn bad_specs_are_refused_before_any_pipeline() {
        let mut s = Preset::Showcase.spec();
        s.width = 721;
        assert!(matches!(check_spec(&s), Err(ExportError::Spec(_))));
        let mut s = Preset::Showcase.spec();
        s.video_kbps = 0;
        assert!(matches!(check_spec(&s), Err(ExportError::Spec(_))));
        assert!(check_spec(&Preset::Premium.spec()).is_ok());
    }
}
