//! The data directory and the private files in it (the SQLite database, the signing secret,
//! the first administrator's password): the directory is made 0700 and each file 0600 by the
//! very call that creates it, so no other local user can read them, not even for a moment.
//!
//! Never write a file and chmod it afterwards, and never change the mode of a file that
//! already exists (an operator may have chosen it). SQLite creates the database's `-wal`,
//! `-shm` and `-journal` files with the database file's own mode, so a database file made
//! here keeps them owner-only too, whatever the umask.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

/// Creates `dir` and any missing parents with mode 0700 (an existing directory is left as
/// it is).
pub fn create_dir(dir: &Path) -> io::Result<()> {
    let mut b = DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)
}

/// Opens a new file at `path` for writing, created with mode 0600; fails with
/// `AlreadyExists` when something (even a dangling symlink) is there.
fn create_new(path: &Path) -> io::Result<File> {
    let mut o = OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o.open(path)
}

/// Writes `contents` to a new file at `path` made 0600, replacing whatever was there.
pub fn write_private(path: &Path, contents: &[u8]) -> io::Result<()> {
    remove_if_present(path)?;
    let mut f = create_new(path)?;
    f.write_all(contents)?;
    f.sync_all()
}

/// Makes an empty file at `path` with mode 0600 unless one exists (so that SQLite opens it
/// instead of creating it with its default 0644).
pub fn touch_private(path: &Path) -> io::Result<()> {
    match create_new(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// Removes `path`; `Ok(false)` when there was nothing to remove.
pub fn remove_if_present(path: &Path) -> io::Result<bool> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn modes_and_replacement() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("a/b");
        create_dir(&d).unwrap();
        assert_eq!(mode(&t.path().join("a")), 0o700);
        assert_eq!(mode(&d), 0o700);
        create_dir(&d).unwrap();

        let f = d.join("f");
        std::fs::write(&f, "old").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_private(&f, b"new").unwrap();
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "new");
        assert_eq!(mode(&f), 0o600, "a replaced file is a new, private one");

        // A symlink planted at the path is replaced, never followed.
        let target = t.path().join("target");
        std::fs::remove_file(&f).unwrap();
        std::os::unix::fs::symlink(&target, &f).unwrap();
        write_private(&f, b"x").unwrap();
        assert!(!target.exists());
        assert!(std::fs::symlink_metadata(&f).unwrap().is_file());

        let db = d.join("db");
        touch_private(&db).unwrap();
        assert_eq!(mode(&db), 0o600);
        std::fs::write(&db, "data").unwrap();
        touch_private(&db).unwrap();
        assert_eq!(std::fs::read_to_string(&db).unwrap(), "data", "kept");

        assert!(remove_if_present(&db).unwrap());
        assert!(!remove_if_present(&db).unwrap());
    }
}
