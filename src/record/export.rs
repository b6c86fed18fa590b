//! A processed recording (its `manifest.json` and files) → an MP4 export (showcase, premium or
//! the composite 一屏三画面) with a title card and a thumbnail, through the `classrelay-media`
//! crate (GStreamer, cargo feature `gst`). Must never run on an async worker or the packet
//! path (an export blocks its thread for the whole encode), and never decides who may export.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::process::Manifest;

/// What the command line and the API answer when this build has no GStreamer.
pub const NEEDS_GST: &str =
    "exports need a classrelay built with `--features gst` (GStreamer); this build has none";

/// The export presets.
pub const PRESETS: [&str; 3] = ["showcase", "premium", "composite"];

/// The title card's fields (the showcase rules: course, grade, volume, textbook edition,
/// school and teacher). Empty fields are left off the card.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TitleCard {
    /// 课程: the lesson's title, else its subject.
    #[serde(default)]
    pub course: String,
    /// 年级.
    #[serde(default)]
    pub grade: String,
    /// 册 (上册, 下册, …).
    #[serde(default)]
    pub volume: String,
    /// 教材版本 (人教版, 北师大版, …).
    #[serde(default)]
    pub edition: String,
    /// 学校.
    #[serde(default)]
    pub school: String,
    /// 教师.
    #[serde(default)]
    pub teacher: String,
}

impl TitleCard {
    /// The card's lines, Chinese labels first.
    pub fn lines(&self) -> Vec<String> {
        let mut grade = self.grade.trim().to_string();
        if !self.volume.trim().is_empty() {
            if !grade.is_empty() {
                grade.push(' ');
            }
            grade.push_str(self.volume.trim());
        }
        [
            ("课程", self.course.trim()),
            ("年级", grade.as_str()),
            ("教材", self.edition.trim()),
            ("学校", self.school.trim()),
            ("教师", self.teacher.trim()),
        ]
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}：{v}"))
        .collect()
    }
}

/// What to export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportRequest {
    /// `showcase`, `premium` or `composite`.
    pub preset: String,
    /// The title card.
    pub title: TitleCard,
    /// Output size, when not the preset's.
    pub size: Option<(u32, u32)>,
    /// H.264 bitrate (kbit/s), when not the preset's.
    pub video_kbps: Option<u32>,
}

/// What an export produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ExportOutcome {
    /// The preset.
    pub preset: String,
    /// The MP4's file name in the recording's directory.
    pub file: String,
    /// The thumbnail's file name in the recording's directory.
    pub thumbnail: String,
    /// Picture size.
    pub width: u32,
    /// Picture height.
    pub height: u32,
    /// H.264 target bitrate, kbit/s.
    pub video_kbps: u32,
    /// Length, ms (title card included).
    pub duration_ms: u64,
    /// Wall-clock time the encode took, ms.
    pub elapsed_ms: u64,
    /// Media seconds per wall-clock second.
    pub speed: f64,
}

/// Why an export could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ExportFail {
    /// This build has no GStreamer.
    #[error("{NEEDS_GST}")]
    NeedsGst,
    /// Not one of [`PRESETS`].
    #[error("unknown preset {0:?} (showcase, premium or composite)")]
    Preset(String),
    /// The recording has no readable manifest (not processed yet, or damaged).
    #[error("the recording's manifest {path} cannot be read: {why}")]
    Manifest {
        /// Where it was looked for.
        path: PathBuf,
        /// Why not.
        why: String,
    },
    /// The export itself failed (the reason names the file or element).
    #[error("{0}")]
    Export(String),
}

/// The MP4's and thumbnail's file names for a preset, inside the recording's directory.
pub fn file_names(preset: &str) -> (String, String) {
    (
        format!("export-{preset}.mp4"),
        format!("export-{preset}.jpg"),
    )
}

/// Reads the manifest of the recording whose files are in `dir`.
pub fn read_manifest(dir: &Path) -> Result<Manifest, ExportFail> {
    let path = dir.join("manifest.json");
    let text = std::fs::read(&path).map_err(|e| ExportFail::Manifest {
        path: path.clone(),
        why: e.to_string(),
    })?;
    serde_json::from_slice(&text).map_err(|e| ExportFail::Manifest {
        path,
        why: e.to_string(),
    })
}

/// Whether this build can export at all.
pub const fn available() -> bool {
    cfg!(feature = "gst")
}

/// Exports the recording in `dir` (its `manifest.json` and files) as `req` asks, into
/// `export-<preset>.mp4` and `export-<preset>.jpg` beside them. `progress` gets the fraction
/// done. Blocks for the whole encode: call it on a blocking thread.
#[cfg(feature = "gst")]
pub fn export_recording(
    dir: &Path,
    req: &ExportRequest,
    progress: &mut dyn FnMut(f32),
) -> Result<ExportOutcome, ExportFail> {
    use super::format::SourceKind;
    use classrelay_media as m;

    let preset =
        m::Preset::parse(&req.preset).ok_or_else(|| ExportFail::Preset(req.preset.clone()))?;
    let manifest = read_manifest(dir)?;
    let inputs: Vec<m::Input> = manifest
        .sources
        .iter()
        .map(|s| {
            let codecs: Vec<&str> = s.codec.split(',').map(str::trim).collect();
            m::Input {
                path: dir.join(&s.file),
                role: match s.kind {
                    SourceKind::TeacherCamera => m::Role::TeacherCamera,
                    SourceKind::Courseware => m::Role::Courseware,
                    SourceKind::ClassroomCamera => m::Role::ClassroomCamera,
                    SourceKind::Audio => m::Role::Audio,
                },
                start_ms: s.start_ms,
                duration_ms: s.duration_ms,
                video: codecs.iter().any(|c| matches!(*c, "vp8" | "vp9" | "h264")),
                audio: codecs.contains(&"opus"),
            }
        })
        .collect();
    let mut spec = preset.spec();
    if let Some((w, h)) = req.size {
        spec.width = w;
        spec.height = h;
    }
    if let Some(kbps) = req.video_kbps {
        spec.video_kbps = kbps;
    }
    spec.title = req.title.lines();
    let (file, thumbnail) = file_names(preset.name());
    let report = m::export(
        &inputs,
        &spec,
        &dir.join(&file),
        &dir.join(&thumbnail),
        progress,
    )
    .map_err(|e| ExportFail::Export(e.to_string()))?;
    Ok(ExportOutcome {
        preset: preset.name().to_string(),
        file,
        thumbnail,
        width: spec.width,
        height: spec.height,
        video_kbps: spec.video_kbps,
        duration_ms: report.duration_ms,
        elapsed_ms: u64::try_from(report.elapsed.as_millis()).unwrap_or(u64::MAX),
        speed: report.speed(),
    })
}

/// Without GStreamer: says so (after checking the preset, so a typo is named first).
#[cfg(not(feature = "gst"))]
pub fn export_recording(
    _dir: &Path,
    req: &ExportRequest,
    _progress: &mut dyn FnMut(f32),
) -> Result<ExportOutcome, ExportFail> {
    if !PRESETS.contains(&req.preset.as_str()) {
        return Err(ExportFail::Preset(req.preset.clone()));
    }
    Err(ExportFail::NeedsGst)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_card_names_every_field_and_leaves_empty_ones_off() {
        let card = TitleCard {
            course: "数学".into(),
            grade: "七年级".into(),
            volume: "上册".into(),
            edition: "人教版".into(),
            school: "第一中学".into(),
            teacher: "张老师".into(),
        };
        assert_eq!(
            card.lines(),
            [
                "课程：数学",
                "年级：七年级 上册",
                "教材：人教版",
                "学校：第一中学",
                "教师：张老师"
            ]
        );
        let bare = TitleCard {
            course: "语文".into(),
            ..TitleCard::default()
        };
        assert_eq!(bare.lines(), ["课程：语文"]);
        assert!(TitleCard::default().lines().is_empty());
    }
}
