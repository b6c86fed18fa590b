//! Retention (保存期限) of recordings: a school keeps its lessons' recordings `retention_days`
//! after they end (none set: `[recording] retention_days`; 0 keeps them), and a sweep, given
//! the time, deletes the expired ones through the storage trait and writes an audit row for
//! each. Must never delete a recording that is being recorded or processed, never delete
//! without the audit row, and never read a clock itself (time is passed in).

use std::sync::Arc;

use serde::Serialize;

use super::model;
use super::SchoolState;
use crate::record::storage::RecordingStorage;
use crate::store::StoreResult;
use crate::time::Millis;

/// One day in milliseconds.
pub const DAY_MS: Millis = 86_400_000;

/// How often the server sweeps.
pub const SWEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

/// When a recording that ended at `ended_at` expires when kept `days` days; `None` when it is
/// kept (0 days).
pub fn expires_at(ended_at: Millis, days: i64) -> Option<Millis> {
    (days > 0).then(|| ended_at.saturating_add(days.saturating_mul(DAY_MS)))
}

/// The days a school keeps recordings: its own setting, else the configured default.
pub fn days_for(school: Option<i64>, default_days: u32) -> i64 {
    school.unwrap_or(i64::from(default_days))
}

/// A recording the sweep deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Deleted {
    /// The recording.
    pub id: i64,
    /// Its lesson.
    pub lesson_id: Option<i64>,
    /// The lesson's hub school, whose retention applied.
    pub school_id: Option<i64>,
    /// The days kept.
    pub days: i64,
    /// When it ended (ms).
    pub ended_at: Millis,
}

type Row = (i64, Option<i64>, i64, Option<i64>, Option<i64>, Option<i64>);

/// Deletes every recording expired at `now`: its files through `storage`, then `deleted_at`
/// on its row and an audit row (`system:retention`, `recording.delete`). A recording whose
/// files cannot be deleted stays (logged) and is tried again at the next sweep.
pub async fn sweep(
    app: &SchoolState,
    storage: Arc<dyn RecordingStorage>,
    now: Millis,
) -> StoreResult<Vec<Deleted>> {
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT r.id, r.lesson_id, r.started_at, r.ended_at, s.id, s.retention_days \
         FROM recordings r \
         LEFT JOIN lessons l ON l.id = r.lesson_id \
         LEFT JOIN classrooms c ON c.id = l.hub_classroom_id \
         LEFT JOIN schools s ON s.id = c.school_id \
         WHERE r.deleted_at IS NULL AND r.state <> 'recording' \
         AND (r.processing IS NULL OR r.processing <> 'processing') ORDER BY r.id",
    )
    .fetch_all(app.store.pool())
    .await?;
    let default_days = app.config.recording.retention_days;
    let mut out = Vec::new();
    for (id, lesson_id, started_at, ended_at, school_id, school_days) in rows {
        let days = days_for(school_days, default_days);
        let ended = ended_at.unwrap_or(started_at);
        let Some(at) = expires_at(ended, days) else {
            continue;
        };
        if now < at {
            continue;
        }
        let s = storage.clone();
        let gone = tokio::task::spawn_blocking(move || s.delete(id)).await;
        match gone {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(recording = id, "retention: files not deleted: {e}");
                continue;
            }
            Err(e) => {
                tracing::warn!(recording = id, "retention: the deleting thread failed: {e}");
                continue;
            }
        }
        let changed = sqlx::query(
            "UPDATE recordings SET deleted_at = $1 WHERE id = $2 AND deleted_at IS NULL",
        )
        .bind(now)
        .bind(id)
        .execute(app.store.pool())
        .await?;
        if changed.rows_affected() == 0 {
            continue;
        }
        let detail = serde_json::json!({
            "lesson_id": lesson_id, "school_id": school_id, "days": days, "ended_at": ended,
        })
        .to_string();
        model::audit(
            &app.store,
            now,
            "system:retention",
            "recording.delete",
            &format!("recording:{id}"),
            &detail,
        )
        .await?;
        tracing::info!(
            recording = id,
            lesson = lesson_id,
            school = school_id,
            days,
            "retention: recording deleted"
        );
        out.push(Deleted {
            id,
            lesson_id,
            school_id,
            days,
            ended_at: ended,
        });
    }
    Ok(out)
}

/// The server's sweep: once at start, then every [`SWEEP_EVERY`], at the school clock's time.
pub(crate) fn start(app: &Arc<SchoolState>) {
    let weak = Arc::downgrade(app);
    tokio::spawn(async move {
        loop {
            {
                let Some(app) = weak.upgrade() else { return };
                let storage = super::recording::storage(&app);
                if let Err(e) = sweep(&app, storage, app.now()).await {
                    tracing::warn!("retention sweep: {e}");
                }
            }
            tokio::time::sleep(SWEEP_EVERY).await;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recording_expires_its_days_after_it_ends_and_zero_days_keep_it() {
        assert_eq!(expires_at(1_000, 0), None);
        assert_eq!(expires_at(1_000, -3), None);
        assert_eq!(expires_at(1_000, 2), Some(1_000 + 2 * DAY_MS));
        assert_eq!(expires_at(i64::MAX - 5, 30), Some(i64::MAX));
        assert_eq!(days_for(Some(7), 365), 7);
        assert_eq!(days_for(None, 365), 365);
        assert_eq!(days_for(None, 0), 0);
    }
}
