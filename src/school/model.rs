//! The school side as rows, one path for the rest of the crate: the generic repository
//! ([`crate::store::entity`]), the organisation ([`super::org`]), the timetable
//! ([`super::timetable`]) and lessons ([`super::lesson`]), plus the audit trail. Re-exports
//! only; rules live in those files.

pub use super::lesson::*;
pub use super::org::*;
pub use super::timetable::*;
pub use crate::store::entity::{delete, get, insert, insert_in, list, update, Entity, Val};

use crate::store::{Store, StoreResult};
use crate::time::Millis;

/// Appends to the audit trail.
pub async fn audit(
    store: &Store,
    at: Millis,
    actor: &str,
    action: &str,
    object: &str,
    detail: &str,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO audit_log (at, actor, action, object, detail) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(at)
    .bind(actor)
    .bind(action)
    .bind(object)
    .bind(detail)
    .execute(store.pool())
    .await?;
    Ok(())
}
