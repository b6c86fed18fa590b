//! Where recordings live: one small trait, so the capture writer and the processor name a
//! recording's files without knowing whether they sit in a directory (now) or in S3-compatible
//! object storage (the scale-out work). Must never know lessons or the database.

use std::io;
use std::path::{Path, PathBuf};

use super::writer::RecordingId;

/// The capture file's name inside a recording's place.
pub const CAPTURE_FILE: &str = "capture.crcap";

/// Where a recording's files go.
pub trait RecordingStorage: Send + Sync + std::fmt::Debug {
    /// Prepares recording `id`'s place and returns the local path its capture is written to
    /// (an object store keeps a local spool and uploads after the recording closes).
    fn create_capture(&self, id: RecordingId) -> io::Result<PathBuf>;
    /// The local directory holding recording `id`'s files (capture, processed files,
    /// `manifest.json`).
    fn recording_dir(&self, id: RecordingId) -> PathBuf;
    /// Ids of the recordings whose place exists, in increasing order (recovery at start-up).
    fn list(&self) -> io::Result<Vec<RecordingId>>;
    /// The local path of file `name` of recording `id` for reading (playback, download, the
    /// manifest); `None` for a name that is not a plain file name (no separators, no `..`),
    /// so a name from a request can never leave the recording's place.
    fn file(&self, id: RecordingId, name: &str) -> Option<PathBuf> {
        let plain = !name.is_empty()
            && !name.starts_with('.')
            && !name.contains(['/', '\\', '\0'])
            && Path::new(name).components().count() == 1;
        plain.then(|| self.recording_dir(id).join(name))
    }
    /// Deletes recording `id`'s place and everything in it (retention); a place already gone
    /// is not an error.
    fn delete(&self, id: RecordingId) -> io::Result<()>;
}

/// Recordings as directories: `<root>/<id>/capture.crcap` and beside it what processing makes.
#[derive(Debug, Clone)]
pub struct DirStorage {
    root: PathBuf,
}

impl DirStorage {
    /// Recordings under `root` (created on first use).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        DirStorage { root: root.into() }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }
}

impl RecordingStorage for DirStorage {
    fn create_capture(&self, id: RecordingId) -> io::Result<PathBuf> {
        let dir = self.recording_dir(id);
        std::fs::create_dir_all(&dir)?;
        Ok(dir.join(CAPTURE_FILE))
    }

    fn recording_dir(&self, id: RecordingId) -> PathBuf {
        self.root.join(id.to_string())
    }

    fn list(&self) -> io::Result<Vec<RecordingId>> {
        let mut ids = Vec::new();
        let entries = match std::fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(ids),
            Err(e) => return Err(e),
        };
        for e in entries {
            let e = e?;
            if let Some(id) = e.file_name().to_str().and_then(|n| n.parse().ok()) {
                if e.path().is_dir() {
                    ids.push(id);
                }
            }
        }
        ids.sort_unstable();
        Ok(ids)
    }

    fn delete(&self, id: RecordingId) -> io::Result<()> {
        match std::fs::remove_dir_all(self.recording_dir(id)) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            r => r,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_storage_makes_one_place_per_recording_and_lists_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = DirStorage::new(dir.path().join("recordings"));
        assert_eq!(s.list().expect("list"), Vec::<RecordingId>::new());
        let p = s.create_capture(12).expect("create");
        assert_eq!(p, dir.path().join("recordings/12").join(CAPTURE_FILE));
        s.create_capture(3).expect("create");
        std::fs::write(dir.path().join("recordings/notes.txt"), b"x").expect("write");
        assert_eq!(s.list().expect("list"), vec![3, 12]);
        s.delete(3).expect("delete");
        s.delete(3).expect("deleting a place already gone");
        assert_eq!(s.list().expect("list"), vec![12]);
    }

    proptest::proptest! {
        /// Whatever name a request carries, a file it names lies directly in the recording's
        /// place and is named exactly that.
        #[test]
        fn no_name_leaves_the_recordings_place(name in "(\\PC|[./\\\\]){0,24}") {
            let s = DirStorage::new("/r");
            if let Some(p) = s.file(4, &name) {
                proptest::prop_assert_eq!(p.parent(), Some(Path::new("/r/4")));
                proptest::prop_assert_eq!(p.file_name().and_then(|n| n.to_str()), Some(name.as_str()));
            }
        }
    }

    #[test]
    fn only_plain_file_names_name_a_recordings_file() {
        let s = DirStorage::new("/r");
        assert_eq!(s.file(4, "a.webm"), Some(PathBuf::from("/r/4/a.webm")));
        for bad in [
            "",
            "..",
            ".",
            "../4/a.webm",
            "x/y",
            "/etc/passwd",
            ".hidden",
            "a\\b",
            "a\0",
        ] {
            assert_eq!(s.file(4, bad), None, "{bad:?}");
        }
    }
}
