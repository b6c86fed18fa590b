//! A recording's capture → its playable files: read the capture up to any damage, process it,
//! and say in `manifest.json` how far the capture was read and why it stopped. Blocking file
//! work: must run on a plain thread (`spawn_blocking` from async code), never on the media loop
//! or an async worker, and must never know lessons or the database.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::file::read_capture_with;
use super::process::{process_tracks, Manifest, ProcessError, Tracks};

/// What processing one recording did.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The capture read.
    pub capture: PathBuf,
    /// Where `manifest.json` was written.
    pub manifest_path: PathBuf,
    /// How far the capture was read: "processed up to byte N: <why>".
    pub read: String,
    /// Bytes of the capture read (whole, valid frames).
    pub bytes_read: u64,
    /// Whether the capture was read to its end without damage.
    pub clean: bool,
    /// The manifest written (its first note is `read`).
    pub manifest: Manifest,
}

/// Why a recording could not be processed (a damaged capture is not one: it is processed up to
/// the damage and the report says so).
#[derive(Debug, thiserror::Error)]
pub enum RecoverError {
    /// The capture file is not there.
    #[error("no capture at {0}")]
    NoCapture(PathBuf),
    /// Processing (writing the files) failed.
    #[error(transparent)]
    Process(#[from] ProcessError),
    /// Writing the manifest with the read report failed.
    #[error("writing {path}: {source}")]
    Manifest {
        /// The manifest.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// Reads the capture at `capture_path` (up to any damage), processes it into `out_dir` and
/// writes `manifest.json` there with the read report as its first note. Blocking.
pub fn process_recording(capture_path: &Path, out_dir: &Path) -> Result<Report, RecoverError> {
    if !capture_path.is_file() {
        return Err(RecoverError::NoCapture(capture_path.to_path_buf()));
    }
    // Streamed: each record goes into its track as it is read (a 45-minute lesson's packets
    // are over a gigabyte; they are never all held as records).
    let mut tracks = Tracks::new();
    let (header, read) = read_capture_with(capture_path, |r| tracks.push(r));
    let mut manifest = process_tracks(header.as_ref(), tracks, out_dir)?;
    let line = match &read.damage {
        None => format!(
            "processed up to byte {}: the end of the capture",
            read.bytes_read
        ),
        Some(d) => format!(
            "processed up to byte {}: {} ({} bytes after it not read)",
            d.offset, d.kind, d.unread_bytes
        ),
    };
    manifest.notes.insert(0, line.clone());
    if read.damage.is_some() {
        manifest.complete = false;
    }
    let manifest_path = out_dir.join("manifest.json");
    let err = |source| RecoverError::Manifest {
        path: manifest_path.clone(),
        source,
    };
    let json = serde_json::to_vec_pretty(&manifest).map_err(|e| err(e.into()))?;
    // Through a temporary file and a rename, as the processor writes it: never half a manifest.
    let tmp = manifest_path.with_extension("part");
    std::fs::write(&tmp, json).map_err(err)?;
    std::fs::rename(&tmp, &manifest_path).map_err(err)?;
    Ok(Report {
        capture: capture_path.to_path_buf(),
        manifest_path,
        read: line,
        bytes_read: read.bytes_read,
        clean: read.damage.is_none(),
        manifest,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::file::encode_capture;
    use crate::record::format::{CaptureHeader, FORMAT_VERSION};

    fn header() -> CaptureHeader {
        CaptureHeader {
            version: FORMAT_VERSION,
            room: "lesson-3".into(),
            lesson_id: Some(3),
            started_unix_ms: 1_700_000_000_000,
        }
    }

    #[test]
    fn a_clean_capture_is_processed_and_the_manifest_says_how_far() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cap = dir.path().join("capture.crcap");
        let bytes = encode_capture(&header(), &[]);
        std::fs::write(&cap, &bytes).expect("write");
        let r = process_recording(&cap, dir.path()).expect("processed");
        assert!(r.clean);
        assert_eq!(r.bytes_read, bytes.len() as u64);
        let m: Manifest =
            serde_json::from_slice(&std::fs::read(&r.manifest_path).expect("manifest"))
                .expect("JSON");
        assert_eq!(m.notes[0], r.read);
        assert!(m.notes[0].starts_with(&format!("processed up to byte {}", bytes.len())));
        assert_eq!(m.lesson_id, Some(3));
    }

    #[test]
    fn a_torn_capture_is_processed_up_to_the_damage_never_a_panic() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cap = dir.path().join("capture.crcap");
        let mut bytes = encode_capture(&header(), &[]);
        bytes.extend_from_slice(&[0xff; 5]);
        std::fs::write(&cap, &bytes).expect("write");
        let r = process_recording(&cap, dir.path()).expect("processed");
        assert!(!r.clean);
        assert!(!r.manifest.complete);
        assert!(r.read.starts_with("processed up to byte"), "{}", r.read);
        assert!(r.manifest_path.is_file());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]
        /// Any bytes after a valid header, or any cut of them: processed up to the damage, a
        /// manifest written, never a panic.
        #[test]
        fn any_capture_bytes_are_processed_never_a_panic(
            tail in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512),
            cut in 0usize..600,
        ) {
            let dir = tempfile::tempdir().expect("tempdir");
            let cap = dir.path().join("capture.crcap");
            let mut bytes = encode_capture(&header(), &[]);
            bytes.extend_from_slice(&tail);
            bytes.truncate(cut.max(1));
            std::fs::write(&cap, &bytes).expect("write");
            let r = process_recording(&cap, dir.path()).expect("processed");
            proptest::prop_assert!(r.bytes_read <= bytes.len() as u64);
            proptest::prop_assert!(r.manifest_path.is_file());
            proptest::prop_assert!(r.read.starts_with("processed up to byte"));
        }
    }

    #[test]
    fn a_missing_capture_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let e = process_recording(&dir.path().join("nope"), dir.path()).unwrap_err();
        assert!(matches!(e, RecoverError::NoCapture(_)), "{e}");
    }
}
