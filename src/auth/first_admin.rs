//! The first administrator (首位管理员): made on a database without an admin, with a random
//! password handed over in `<data.dir>/admin-password` (created 0600).
//!
//! The file lives only as long as it is needed: setting the admin's password through the API
//! removes it ([`password_set`]), and a start removes it once it no longer logs in
//! ([`forget_if_stale`], for a password changed by other means). Never prints the password.

use std::path::{Path, PathBuf};

use crate::auth::people::{self, Role, User};
use crate::store::{Store, StoreResult};

/// Login name of the first administrator.
pub const USERNAME: &str = "admin";

/// Where the first administrator's password is handed over.
pub fn password_file(dir: &Path) -> PathBuf {
    dir.join("admin-password")
}

/// A new random password for the first administrator, written to [`password_file`] (a new
/// file, mode 0600, replacing any left from an earlier database). Written before the user
/// row exists, so there is never an admin whose password is nowhere.
pub fn write_new_password(dir: &Path) -> std::io::Result<String> {
    let password = hex::encode(rand::random::<[u8; 8]>());
    crate::datadir::write_private(&password_file(dir), format!("{password}\n").as_bytes())?;
    Ok(password)
}

/// Called after `user`'s password was set: when that is the first administrator, the
/// handed-over password is void and its file goes. A file that cannot be removed is logged,
/// not an error (the password change itself succeeded).
pub fn password_set(dir: &Path, user: &User) {
    if user.username != USERNAME || user.role != Role::Admin {
        return;
    }
    let path = password_file(dir);
    match crate::datadir::remove_if_present(&path) {
        Ok(true) => tracing::info!(
            "removed {}: the administrator has set a password",
            path.display()
        ),
        Ok(false) => {}
        Err(e) => tracing::warn!("could not remove {}: {e}", path.display()),
    }
}

/// At start, on a database that has an admin: removes [`password_file`] when its content no
/// longer logs in as the first administrator (or there is no such user any more).
pub async fn forget_if_stale(store: &Store, dir: &Path) -> StoreResult<()> {
    let path = password_file(dir);
    let password = match std::fs::read_to_string(&path) {
        Ok(s) => s.trim().to_string(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            tracing::warn!("could not read {}: {e}", path.display());
            return Ok(());
        }
    };
    let row = sqlx::query("SELECT password_hash FROM users WHERE username = $1 AND role = $2")
        .bind(USERNAME)
        .bind(Role::Admin.as_str())
        .fetch_optional(store.pool())
        .await?;
    let hash: Option<String> = match row {
        Some(r) => Some(crate::store::col(&r, "password_hash")?),
        None => None,
    };
    // argon2 takes tens of milliseconds: off the async workers.
    let valid = match hash {
        Some(h) => tokio::task::spawn_blocking(move || people::verify_password(&h, &password))
            .await
            .unwrap_or(false),
        None => false,
    };
    if !valid {
        match crate::datadir::remove_if_present(&path) {
            Ok(_) => tracing::info!(
                "removed {}: it no longer holds the administrator's password",
                path.display()
            ),
            Err(e) => tracing::warn!("could not remove {}: {e}", path.display()),
        }
    }
    Ok(())
}
