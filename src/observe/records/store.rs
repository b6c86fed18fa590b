//! The micro-ability evidence tables (migration 0005): evidence items (a recording clip and
//! a note) and their files' metadata. Must never decide who may do what (the API's object
//! rules do), never hold file bytes (they live under the data directory) and never store a
//! point's grade (it is computed from the items').

use serde::Serialize;

use crate::store::{Store, StoreError, StoreResult};
use crate::time::Millis;

/// One evidence item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct EvidenceRow {
    /// Id.
    pub id: i64,
    /// Whose.
    pub teacher_id: i64,
    /// The term (its name, "2026秋").
    pub term: String,
    /// The point's code (A1…).
    pub point: String,
    /// The recording the clip is cut from (none: files only, or the recording was removed).
    pub recording_id: Option<i64>,
    /// The clip's in point (ms from the recording's start).
    pub in_ms: Option<i64>,
    /// The clip's out point.
    pub out_ms: Option<i64>,
    /// What the teacher says about it.
    pub note: String,
    /// `excellent`, `pass` or `fail` once graded.
    pub grade: Option<String>,
    /// Who graded it (`u:<user id>`).
    pub graded_by: Option<String>,
    /// When (Unix ms).
    pub graded_at: Option<i64>,
    /// When it was given (Unix ms).
    pub created_at: i64,
}

/// One file's metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct FileRow {
    /// Id.
    pub id: i64,
    /// The evidence item.
    pub evidence_id: i64,
    /// The name it was uploaded under.
    pub name: String,
    /// What the bytes are (`pdf`, `png`, `docx`…), by content.
    pub kind: String,
    /// Its media type.
    pub mime: String,
    /// Bytes.
    pub size: i64,
    /// SHA-256 of the bytes (hex).
    pub sha256: String,
    /// When (Unix ms).
    pub created_at: i64,
}

const EVIDENCE: &str = "SELECT id, teacher_id, term, point, recording_id, in_ms, out_ms, note, \
    grade, graded_by, graded_at, created_at FROM ability_evidence";
const FILES: &str =
    "SELECT id, evidence_id, name, kind, mime, size, sha256, created_at FROM ability_files";

/// What a new evidence item says.
#[derive(Debug, Clone)]
pub struct NewEvidence<'a> {
    /// Whose.
    pub teacher_id: i64,
    /// The term's name.
    pub term: &'a str,
    /// The point's code.
    pub point: &'a str,
    /// The clip: recording, in and out (ms).
    pub clip: Option<(i64, i64, i64)>,
    /// The note.
    pub note: &'a str,
}

/// Stores an evidence item; its id.
pub async fn insert_evidence(store: &Store, e: &NewEvidence<'_>, now: Millis) -> StoreResult<i64> {
    let r = sqlx::query(
        "INSERT INTO ability_evidence (teacher_id, term, point, recording_id, in_ms, out_ms, \
         note, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
    )
    .bind(e.teacher_id)
    .bind(e.term)
    .bind(e.point)
    .bind(e.clip.map(|c| c.0))
    .bind(e.clip.map(|c| c.1))
    .bind(e.clip.map(|c| c.2))
    .bind(e.note)
    .bind(now)
    .fetch_one(store.pool())
    .await?;
    crate::store::col(&r, "id")
}

/// One evidence item.
pub async fn evidence(store: &Store, id: i64) -> StoreResult<EvidenceRow> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("{EVIDENCE} WHERE id = $1")))
        .bind(id)
        .fetch_optional(store.pool())
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("evidence {id}")))
}

/// A teacher's evidence in a term, oldest first.
pub async fn evidence_of(store: &Store, teacher: i64, term: &str) -> StoreResult<Vec<EvidenceRow>> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{EVIDENCE} WHERE teacher_id = $1 AND term = $2 ORDER BY id"
    )))
    .bind(teacher)
    .bind(term)
    .fetch_all(store.pool())
    .await?)
}

/// Grades an item (or takes its grade back with `None`).
pub async fn set_grade(
    store: &Store,
    id: i64,
    grade: Option<&str>,
    by: &str,
    now: Millis,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE ability_evidence SET grade = $1, graded_by = $2, graded_at = $3 WHERE id = $4",
    )
    .bind(grade)
    .bind(grade.map(|_| by))
    .bind(grade.map(|_| now))
    .bind(id)
    .execute(store.pool())
    .await?;
    Ok(())
}

/// Removes an ungraded item and its files' rows; `false` when it is graded (kept: a grade is
/// part of the record).
pub async fn delete_ungraded(store: &Store, id: i64) -> StoreResult<bool> {
    let mut tx = store.begin().await?;
    sqlx::query("DELETE FROM ability_files WHERE evidence_id = $1 AND EXISTS (SELECT 1 FROM ability_evidence WHERE id = $1 AND grade IS NULL)")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    let n = sqlx::query("DELETE FROM ability_evidence WHERE id = $1 AND grade IS NULL")
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    tx.commit().await?;
    Ok(n == 1)
}

/// Metadata of a new file.
#[derive(Debug, Clone)]
pub struct NewFile<'a> {
    /// The evidence item.
    pub evidence_id: i64,
    /// The name given.
    pub name: &'a str,
    /// What it is.
    pub kind: &'a str,
    /// Media type.
    pub mime: &'a str,
    /// Bytes.
    pub size: i64,
    /// SHA-256 (hex).
    pub sha256: &'a str,
}

/// Stores a file's row, unless the item already has `max` files; its id.
pub async fn insert_file(
    store: &Store,
    f: &NewFile<'_>,
    max: i64,
    now: Millis,
) -> StoreResult<Option<i64>> {
    let r = sqlx::query(
        "INSERT INTO ability_files (evidence_id, name, kind, mime, size, sha256, created_at) \
         SELECT $1, $2, $3, $4, $5, $6, $7 \
         WHERE (SELECT COUNT(*) FROM ability_files WHERE evidence_id = $1) < $8 RETURNING id",
    )
    .bind(f.evidence_id)
    .bind(f.name)
    .bind(f.kind)
    .bind(f.mime)
    .bind(f.size)
    .bind(f.sha256)
    .bind(now)
    .bind(max)
    .fetch_optional(store.pool())
    .await?;
    r.map(|r| crate::store::col(&r, "id")).transpose()
}

/// Removes a file's row (when writing its bytes failed).
pub async fn delete_file(store: &Store, id: i64) -> StoreResult<()> {
    sqlx::query("DELETE FROM ability_files WHERE id = $1")
        .bind(id)
        .execute(store.pool())
        .await?;
    Ok(())
}

/// The files of some evidence items, by id.
pub async fn files_of(store: &Store, evidence: &[i64]) -> StoreResult<Vec<FileRow>> {
    let mut out = Vec::new();
    for id in evidence {
        let rows: Vec<FileRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "{FILES} WHERE evidence_id = $1 ORDER BY id"
        )))
        .bind(*id)
        .fetch_all(store.pool())
        .await?;
        out.extend(rows);
    }
    Ok(out)
}

/// One file of one evidence item.
pub async fn file(store: &Store, evidence: i64, id: i64) -> StoreResult<FileRow> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{FILES} WHERE evidence_id = $1 AND id = $2"
    )))
    .bind(evidence)
    .bind(id)
    .fetch_optional(store.pool())
    .await?
    .ok_or_else(|| StoreError::NotFound(format!("file {id} of evidence {evidence}")))
}
