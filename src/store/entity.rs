//! A generic repository over plain tables: one integer id, columns bound in order, and
//! list / get / insert / update / delete written once for every [`Entity`]. It knows SQL and
//! the store, never what a school, lesson or user is.

use serde::de::DeserializeOwned;
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::AssertSqlSafe;

use super::{Store, StoreError, StoreResult};

/// A bound value for the generic queries.
#[derive(Debug, Clone)]
pub enum Val {
    /// Integer or NULL.
    Int(Option<i64>),
    /// Text.
    Text(String),
}

/// A value that binds as one [`Val`]: what a field of an [`Entity`] must be.
pub trait ToVal {
    /// The value to bind.
    fn to_val(&self) -> Val;
}

impl ToVal for String {
    fn to_val(&self) -> Val {
        Val::Text(self.clone())
    }
}

impl ToVal for i64 {
    fn to_val(&self) -> Val {
        Val::Int(Some(*self))
    }
}

impl ToVal for Option<i64> {
    fn to_val(&self) -> Val {
        Val::Int(*self)
    }
}

/// Inside an `impl Entity`: [`Entity::COLS`] and [`Entity::values`] from one list of field
/// names, each column named after its field, so a column cannot be bound to another field's
/// value. Rows are read back by `#[derive(sqlx::FromRow)]`, by the same names.
macro_rules! entity_columns {
    ($($field:ident),+ $(,)?) => {
        const COLS: &'static [&'static str] = &[$(stringify!($field)),+];
        fn values(&self) -> Vec<$crate::store::entity::Val> {
            vec![$($crate::store::entity::ToVal::to_val(&self.$field)),+]
        }
    };
}
pub(crate) use entity_columns;

/// A plain entity: one table, an integer id, columns bound in order, rows read by name
/// (`#[derive(sqlx::FromRow)]`).
pub trait Entity:
    Serialize + DeserializeOwned + for<'r> sqlx::FromRow<'r, AnyRow> + Send + Sync + 'static
{
    /// Table name.
    const TABLE: &'static str;
    /// Singular name for messages and URLs ("school").
    const NAME: &'static str;
    /// Columns other than `id`, in the order of [`Entity::values`].
    const COLS: &'static [&'static str];
    /// Columns a list may be filtered by (`?school_id=3`).
    const FILTERS: &'static [&'static str] = &[];
    /// The values of [`Entity::COLS`].
    fn values(&self) -> Vec<Val>;
    /// Checks the fields; the message names the bad field.
    fn validate(&self) -> Result<(), String>;
}

fn bind_all<'q>(
    mut q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    vals: Vec<Val>,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    for v in vals {
        q = match v {
            Val::Int(i) => q.bind(i),
            Val::Text(s) => q.bind(s),
        };
    }
    q
}

fn select_cols<E: Entity>() -> String {
    let mut c = vec!["id"];
    c.extend_from_slice(E::COLS);
    c.join(", ")
}

/// Lists rows, optionally filtered by one of [`Entity::FILTERS`].
pub async fn list<E: Entity>(store: &Store, filter: Option<(&str, i64)>) -> StoreResult<Vec<E>> {
    let mut sql = format!("SELECT {} FROM {}", select_cols::<E>(), E::TABLE);
    if let Some((c, _)) = filter {
        // Only names from the entity's own list ever reach the SQL text.
        let c = E::FILTERS
            .iter()
            .find(|f| **f == c)
            .ok_or_else(|| StoreError::Check(format!("cannot filter by {c}")))?;
        sql.push_str(&format!(" WHERE {c} = $1"));
    }
    sql.push_str(" ORDER BY id");
    let mut q = sqlx::query(AssertSqlSafe(sql.clone()));
    if let Some((_, v)) = filter {
        q = q.bind(v);
    }
    let rows = q.fetch_all(store.pool()).await?;
    rows.iter().map(|r| Ok(E::from_row(r)?)).collect()
}

/// Reads one row.
pub async fn get<E: Entity>(store: &Store, id: i64) -> StoreResult<E> {
    let sql = format!(
        "SELECT {} FROM {} WHERE id = $1",
        select_cols::<E>(),
        E::TABLE
    );
    let row = sqlx::query(AssertSqlSafe(sql.clone()))
        .bind(id)
        .fetch_optional(store.pool())
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("{} {id}", E::NAME)))?;
    Ok(E::from_row(&row)?)
}

/// Inserts a row inside `tx` and returns it as stored.
pub async fn insert_in<E: Entity>(tx: &mut sqlx::AnyConnection, e: &E) -> StoreResult<E> {
    let ph: Vec<String> = (1..=E::COLS.len()).map(|i| format!("${i}")).collect();
    let sql = format!(
        "INSERT INTO {} ({}) VALUES ({}) RETURNING {}",
        E::TABLE,
        E::COLS.join(", "),
        ph.join(", "),
        select_cols::<E>()
    );
    let row = bind_all(sqlx::query(AssertSqlSafe(sql.clone())), e.values())
        .fetch_one(&mut *tx)
        .await?;
    Ok(E::from_row(&row)?)
}

/// Inserts a row.
pub async fn insert<E: Entity>(store: &Store, e: &E) -> StoreResult<E> {
    let mut conn = store.pool().acquire().await?;
    insert_in(&mut conn, e).await
}

/// Replaces a row's fields.
pub async fn update<E: Entity>(store: &Store, id: i64, e: &E) -> StoreResult<E> {
    let sets: Vec<String> = E::COLS
        .iter()
        .enumerate()
        .map(|(i, c)| format!("{c} = ${}", i + 1))
        .collect();
    let sql = format!(
        "UPDATE {} SET {} WHERE id = ${} RETURNING {}",
        E::TABLE,
        sets.join(", "),
        E::COLS.len() + 1,
        select_cols::<E>()
    );
    let row = bind_all(sqlx::query(AssertSqlSafe(sql.clone())), e.values())
        .bind(id)
        .fetch_optional(store.pool())
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("{} {id}", E::NAME)))?;
    Ok(E::from_row(&row)?)
}

/// Deletes a row (refused while other rows refer to it).
pub async fn delete<E: Entity>(store: &Store, id: i64) -> StoreResult<()> {
    let r = sqlx::query(AssertSqlSafe(format!(
        "DELETE FROM {} WHERE id = $1",
        E::TABLE
    )))
    .bind(id)
    .execute(store.pool())
    .await?;
    if r.rows_affected() == 0 {
        return Err(StoreError::NotFound(format!("{} {id}", E::NAME)));
    }
    Ok(())
}

/// Checks a required text field: not blank, at most 200 characters.
pub fn need(field: &str, v: &str) -> Result<(), String> {
    if v.trim().is_empty() {
        Err(format!("{field} must not be empty"))
    } else if v.chars().count() > 200 {
        Err(format!("{field} is longer than 200 characters"))
    } else {
        Ok(())
    }
}
