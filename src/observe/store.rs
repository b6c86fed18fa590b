//! The observation tables (migration 0003): rubric versions, observations, scores, comments,
//! codes and amendments. Every write that a submitted observation forbids carries the
//! `state = 'draft'` condition in the same statement, so a change racing a submission cannot
//! land after it. Must never decide who may do what (that is the API's object rules).

use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::AssertSqlSafe;

use super::fias::Category;
use super::rubric::{ItemScore, RubricBody};
use super::st::StCode;
use crate::store::{col, Store, StoreError, StoreResult};
use crate::time::Millis;

/// Every statement built with `format!` here joins this file's constants, never input.
fn safe(sql: String) -> AssertSqlSafe<String> {
    AssertSqlSafe(sql)
}

/// The most codes one observation may hold per method (a 3 s FIAS coding of a 16-hour day).
pub const MAX_CODES_PER_METHOD: usize = 20_000;

/// One stored rubric version.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RubricRow {
    /// Row id: what observations and scores point at.
    pub id: i64,
    /// The rubric this is a version of.
    pub key: String,
    /// 1, 2, …
    pub version: i64,
    /// Who made this version.
    pub created_by: String,
    /// When (Unix ms).
    pub created_at: Millis,
    /// The rubric.
    pub rubric: RubricBody,
}

fn rubric_row(r: &AnyRow) -> StoreResult<RubricRow> {
    let body: String = col(r, "body")?;
    Ok(RubricRow {
        id: col(r, "id")?,
        key: col(r, "rubric_key")?,
        version: col(r, "version")?,
        created_by: col(r, "created_by")?,
        created_at: col(r, "created_at")?,
        rubric: serde_json::from_str(&body)
            .map_err(|e| StoreError::Check(format!("rubric body: {e}")))?,
    })
}

const RUBRIC_COLS: &str = "id, rubric_key, version, created_by, created_at, body";

/// One rubric version by row id.
pub async fn rubric(store: &Store, id: i64) -> StoreResult<RubricRow> {
    let r = sqlx::query(safe(format!(
        "SELECT {RUBRIC_COLS} FROM rubrics WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(store.pool())
    .await?
    .ok_or_else(|| StoreError::NotFound(format!("rubric {id}")))?;
    rubric_row(&r)
}

/// The newest version of `key`, if any.
pub async fn latest_rubric(store: &Store, key: &str) -> StoreResult<Option<RubricRow>> {
    let r = sqlx::query(safe(format!(
        "SELECT {RUBRIC_COLS} FROM rubrics WHERE rubric_key = $1 ORDER BY version DESC LIMIT 1"
    )))
    .bind(key)
    .fetch_optional(store.pool())
    .await?;
    r.as_ref().map(rubric_row).transpose()
}

/// Every version (`all`), or the newest version of each rubric, by key.
pub async fn rubrics(store: &Store, all: bool) -> StoreResult<Vec<RubricRow>> {
    let sql = if all {
        format!("SELECT {RUBRIC_COLS} FROM rubrics ORDER BY rubric_key, version")
    } else {
        format!(
            "SELECT {RUBRIC_COLS} FROM rubrics r WHERE version = \
             (SELECT MAX(version) FROM rubrics x WHERE x.rubric_key = r.rubric_key) \
             ORDER BY rubric_key"
        )
    };
    let rows = sqlx::query(safe(sql)).fetch_all(store.pool()).await?;
    rows.iter().map(rubric_row).collect()
}

/// Stores `body` as version `version` of `key`; a taken version is `Duplicate` (someone
/// else's edit came first).
pub async fn insert_rubric(
    store: &Store,
    key: &str,
    version: i64,
    body: &RubricBody,
    by: &str,
    now: Millis,
) -> StoreResult<i64> {
    let json = serde_json::to_string(body).map_err(|e| StoreError::Check(e.to_string()))?;
    let r = sqlx::query(
        "INSERT INTO rubrics (rubric_key, version, name, body, created_by, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
    )
    .bind(key)
    .bind(version)
    .bind(&body.name)
    .bind(json)
    .bind(by)
    .bind(now)
    .fetch_one(store.pool())
    .await?;
    col(&r, "id")
}

/// Stores the embedded default rubric as `default` version 1 when there is no `default`.
pub async fn seed_default_rubric(store: &Store, now: Millis) -> StoreResult<()> {
    if latest_rubric(store, super::rubric::DEFAULT_KEY)
        .await?
        .is_none()
    {
        match insert_rubric(
            store,
            super::rubric::DEFAULT_KEY,
            1,
            &super::rubric::default_rubric(),
            "config/rubrics/default.toml",
            now,
        )
        .await
        {
            // Another process seeded it first.
            Ok(_) | Err(StoreError::Duplicate(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The observation methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = ObservationMethod)]
pub enum Method {
    /// Rubric scoring.
    Rubric,
    /// S-T coding.
    St,
    /// FIAS coding.
    Fias,
}

impl Method {
    /// The API name.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Rubric => "rubric",
            Method::St => "st",
            Method::Fias => "fias",
        }
    }

    /// Reads an API name.
    pub fn parse(s: &str) -> Option<Method> {
        match s {
            "rubric" => Some(Method::Rubric),
            "st" => Some(Method::St),
            "fias" => Some(Method::Fias),
            _ => None,
        }
    }

    /// Whether it is coded (S-T, FIAS).
    pub fn coded(self) -> bool {
        self != Method::Rubric
    }
}

/// An observation's row, with the lesson facts its rules need.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ObservationRow {
    /// Id.
    pub id: i64,
    /// The observed lesson.
    pub lesson_id: i64,
    /// The observer (user id).
    pub observer_id: i64,
    /// The methods in use.
    pub methods: Vec<Method>,
    /// The rubric version scores are made under.
    pub rubric_id: Option<i64>,
    /// S-T sampling interval (s).
    pub interval_s: i64,
    /// draft, submitted or reviewed.
    pub state: String,
    /// Unix ms.
    pub created_at: Millis,
    /// Unix ms.
    pub updated_at: Millis,
    /// Unix ms, once submitted.
    pub submitted_at: Option<Millis>,
    /// The lesson's hub teacher.
    #[serde(skip)]
    pub hub_teacher_id: i64,
    /// The lesson's hub classroom.
    #[serde(skip)]
    pub hub_classroom_id: i64,
}

const OBS_SELECT: &str = "SELECT o.id, o.lesson_id, o.observer_id, o.methods, o.rubric_id, \
    o.interval_s, o.state, o.created_at, o.updated_at, o.submitted_at, l.hub_teacher_id, \
    l.hub_classroom_id FROM observations o JOIN lessons l ON l.id = o.lesson_id";

fn obs_row(r: &AnyRow) -> StoreResult<ObservationRow> {
    let methods: String = col(r, "methods")?;
    Ok(ObservationRow {
        id: col(r, "id")?,
        lesson_id: col(r, "lesson_id")?,
        observer_id: col(r, "observer_id")?,
        methods: methods.split(',').filter_map(Method::parse).collect(),
        rubric_id: col(r, "rubric_id")?,
        interval_s: col(r, "interval_s")?,
        state: col(r, "state")?,
        created_at: col(r, "created_at")?,
        updated_at: col(r, "updated_at")?,
        submitted_at: col(r, "submitted_at")?,
        hub_teacher_id: col(r, "hub_teacher_id")?,
        hub_classroom_id: col(r, "hub_classroom_id")?,
    })
}

/// A new observation (its code rows made with it, empty).
pub async fn insert_observation(
    store: &Store,
    lesson_id: i64,
    observer_id: i64,
    methods: &[Method],
    rubric_id: Option<i64>,
    interval_s: u32,
    now: Millis,
) -> StoreResult<i64> {
    let mut tx = store.begin().await?;
    let names: Vec<&str> = methods.iter().map(|m| m.as_str()).collect();
    let r = sqlx::query(
        "INSERT INTO observations (lesson_id, observer_id, methods, rubric_id, interval_s, \
         state, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, 'draft', $6, $6) RETURNING id",
    )
    .bind(lesson_id)
    .bind(observer_id)
    .bind(names.join(","))
    .bind(rubric_id)
    .bind(i64::from(interval_s))
    .bind(now)
    .fetch_one(&mut *tx)
    .await?;
    let id: i64 = col(&r, "id")?;
    for m in methods.iter().filter(|m| m.coded()) {
        sqlx::query(
            "INSERT INTO observation_codes (observation_id, method, codes) VALUES ($1, $2, '')",
        )
        .bind(id)
        .bind(m.as_str())
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(id)
}

/// One observation.
pub async fn observation(store: &Store, id: i64) -> StoreResult<ObservationRow> {
    let r = sqlx::query(safe(format!("{OBS_SELECT} WHERE o.id = $1")))
        .bind(id)
        .fetch_optional(store.pool())
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("observation {id}")))?;
    obs_row(&r)
}

/// Which observations to list.
#[derive(Debug, Default, Clone, Copy)]
pub struct ListFilter {
    /// Of this lesson.
    pub lesson_id: Option<i64>,
    /// Of lessons this teacher taught as hub teacher.
    pub teacher_id: Option<i64>,
    /// By this observer.
    pub observer_id: Option<i64>,
}

/// The newest observations (at most 1 000) matching `f`; the caller filters by its rules.
pub async fn observations(store: &Store, f: ListFilter) -> StoreResult<Vec<ObservationRow>> {
    let rows = sqlx::query(safe(format!(
        "{OBS_SELECT} WHERE ($1 IS NULL OR o.lesson_id = $1) \
         AND ($2 IS NULL OR l.hub_teacher_id = $2) AND ($3 IS NULL OR o.observer_id = $3) \
         ORDER BY o.id DESC LIMIT 1000"
    )))
    .bind(f.lesson_id)
    .bind(f.teacher_id)
    .bind(f.observer_id)
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(obs_row).collect()
}

/// The stored codes of one method (its string form).
pub async fn codes(store: &Store, id: i64, m: Method) -> StoreResult<String> {
    let r = sqlx::query(
        "SELECT codes FROM observation_codes WHERE observation_id = $1 AND method = $2",
    )
    .bind(id)
    .bind(m.as_str())
    .fetch_optional(store.pool())
    .await?;
    match r {
        Some(r) => col(&r, "codes"),
        None => Ok(String::new()),
    }
}

/// S-T codes of the string form.
pub fn st_codes(s: &str) -> Vec<StCode> {
    s.chars().filter_map(StCode::from_letter).collect()
}

/// FIAS codes of the string form.
pub fn fias_codes(s: &str) -> Vec<Category> {
    s.chars()
        .filter_map(|c| c.to_digit(10))
        .filter_map(|d| Category::new(if d == 0 { 10 } else { d as u8 }))
        .collect()
}

/// Why a draft-only write did not happen.
#[derive(Debug)]
pub enum DraftWrite {
    /// Done.
    Done,
    /// The observation is no longer a draft.
    NotDraft,
    /// The change does not fit (too many codes, or fewer codes than asked to remove).
    DoesNotFit,
}

const DRAFT: &str = "EXISTS (SELECT 1 FROM observations d WHERE d.id = $1 AND d.state = 'draft')";

async fn draft_state(store: &Store, id: i64) -> StoreResult<DraftWrite> {
    let o = observation(store, id).await?;
    Ok(if o.state == "draft" {
        DraftWrite::DoesNotFit
    } else {
        DraftWrite::NotDraft
    })
}

async fn touch(store: &Store, id: i64, now: Millis) -> StoreResult<()> {
    sqlx::query("UPDATE observations SET updated_at = $2 WHERE id = $1")
        .bind(id)
        .bind(now)
        .execute(store.pool())
        .await?;
    Ok(())
}

/// Appends codes (string form) to a draft's method, within [`MAX_CODES_PER_METHOD`].
pub async fn append_codes(
    store: &Store,
    id: i64,
    m: Method,
    add: &str,
    now: Millis,
) -> StoreResult<DraftWrite> {
    let r = sqlx::query(safe(format!(
        "UPDATE observation_codes SET codes = codes || $3 WHERE observation_id = $1 \
         AND method = $2 AND length(codes) + $4 <= $5 AND {DRAFT}"
    )))
    .bind(id)
    .bind(m.as_str())
    .bind(add)
    .bind(add.len() as i64)
    .bind(MAX_CODES_PER_METHOD as i64)
    .execute(store.pool())
    .await?;
    if r.rows_affected() == 0 {
        return draft_state(store, id).await;
    }
    touch(store, id, now).await?;
    Ok(DraftWrite::Done)
}

/// Removes a draft's last `n` codes of a method (a correction).
pub async fn cut_codes(
    store: &Store,
    id: i64,
    m: Method,
    n: usize,
    now: Millis,
) -> StoreResult<DraftWrite> {
    let r = sqlx::query(safe(format!(
        "UPDATE observation_codes SET codes = substr(codes, 1, CAST(length(codes) - $3 AS INTEGER)) \
         WHERE observation_id = $1 AND method = $2 AND length(codes) >= $3 AND {DRAFT}"
    )))
    .bind(id)
    .bind(m.as_str())
    .bind(n as i64)
    .execute(store.pool())
    .await?;
    if r.rows_affected() == 0 {
        return draft_state(store, id).await;
    }
    touch(store, id, now).await?;
    Ok(DraftWrite::Done)
}

/// The scores of an observation, in the order stored.
pub async fn scores(store: &Store, id: i64) -> StoreResult<Vec<ItemScore>> {
    let rows = sqlx::query(
        "SELECT item_key, score, comment FROM observation_scores WHERE observation_id = $1 \
         ORDER BY item_key",
    )
    .bind(id)
    .fetch_all(store.pool())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(ItemScore {
                item: col(r, "item_key")?,
                score: col(r, "score")?,
                comment: col(r, "comment")?,
            })
        })
        .collect()
}

/// Replaces all of a draft's scores.
pub async fn put_scores(
    store: &Store,
    id: i64,
    scores: &[ItemScore],
    now: Millis,
) -> StoreResult<DraftWrite> {
    let mut tx = store.begin().await?;
    // Claims the draft for this transaction (and fails when it is no longer one).
    let r =
        sqlx::query("UPDATE observations SET updated_at = $2 WHERE id = $1 AND state = 'draft'")
            .bind(id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
    if r.rows_affected() == 0 {
        return Ok(DraftWrite::NotDraft);
    }
    sqlx::query("DELETE FROM observation_scores WHERE observation_id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    for s in scores {
        sqlx::query(
            "INSERT INTO observation_scores (observation_id, item_key, score, comment) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(id)
        .bind(&s.item)
        .bind(s.score)
        .bind(&s.comment)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(DraftWrite::Done)
}

/// A time-stamped comment.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = ObservationComment)]
pub struct Comment {
    /// Id.
    pub id: i64,
    /// Ms from the lesson's start.
    pub at_ms: i64,
    /// The text.
    pub body: String,
    /// Unix ms.
    pub created_at: Millis,
}

/// Adds a comment to a draft.
pub async fn add_comment(
    store: &Store,
    id: i64,
    at_ms: i64,
    body: &str,
    now: Millis,
) -> StoreResult<Option<i64>> {
    let r = sqlx::query(safe(format!(
        "INSERT INTO observation_comments (observation_id, at_ms, body, created_at) \
         SELECT $1, $2, $3, $4 WHERE {DRAFT} RETURNING id"
    )))
    .bind(id)
    .bind(at_ms)
    .bind(body)
    .bind(now)
    .fetch_optional(store.pool())
    .await?;
    match r {
        Some(r) => {
            touch(store, id, now).await?;
            Ok(Some(col(&r, "id")?))
        }
        None => Ok(None),
    }
}

/// An observation's comments by time on the lesson.
pub async fn comments(store: &Store, id: i64) -> StoreResult<Vec<Comment>> {
    let rows = sqlx::query(
        "SELECT id, at_ms, body, created_at FROM observation_comments WHERE observation_id = $1 \
         ORDER BY at_ms, id",
    )
    .bind(id)
    .fetch_all(store.pool())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Comment {
                id: col(r, "id")?,
                at_ms: col(r, "at_ms")?,
                body: col(r, "body")?,
                created_at: col(r, "created_at")?,
            })
        })
        .collect()
}

/// Draft → submitted; false when it was not a draft.
pub async fn submit(store: &Store, id: i64, now: Millis) -> StoreResult<bool> {
    let r = sqlx::query(
        "UPDATE observations SET state = 'submitted', submitted_at = $2, updated_at = $2 \
         WHERE id = $1 AND state = 'draft'",
    )
    .bind(id)
    .bind(now)
    .execute(store.pool())
    .await?;
    Ok(r.rows_affected() == 1)
}

/// One amendment.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = ObservationAmendment)]
pub struct Amendment {
    /// Id.
    pub id: i64,
    /// Unix ms.
    pub at: Millis,
    /// Who (`u:12`).
    pub actor: String,
    /// Why.
    pub reason: String,
    /// What the amended parts were.
    pub old: serde_json::Value,
    /// What they became.
    pub new: serde_json::Value,
}

/// What an amendment changes: some rubric items' scores, and/or one method's whole codes.
#[derive(Debug, Default)]
pub struct Change<'a> {
    /// These items' scores replace theirs.
    pub scores: Option<&'a [ItemScore]>,
    /// This method's codes (string form) replace its codes.
    pub codes: Option<(Method, &'a str)>,
}

/// Amends a submitted (or reviewed) observation in one transaction: records what the changed
/// parts were and what they became with the reason (append-only), then applies the change.
/// The first statement claims the observation's row, so two amendments of one observation
/// run one after the other and each records the values the other left. `None` when the
/// observation is a draft.
pub async fn amend(
    store: &Store,
    id: i64,
    actor: &str,
    reason: &str,
    change: &Change<'_>,
    now: Millis,
) -> StoreResult<Option<i64>> {
    let mut tx = store.begin().await?;
    let r =
        sqlx::query("UPDATE observations SET updated_at = $2 WHERE id = $1 AND state <> 'draft'")
            .bind(id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
    if r.rows_affected() == 0 {
        return Ok(None);
    }
    let (mut old, mut new) = (serde_json::json!({}), serde_json::json!({}));
    if let Some(scores) = change.scores {
        let mut before = Vec::new();
        for s in scores {
            let row = sqlx::query(
                "SELECT item_key, score, comment FROM observation_scores \
                 WHERE observation_id = $1 AND item_key = $2",
            )
            .bind(id)
            .bind(&s.item)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(r) = row {
                before.push(ItemScore {
                    item: col(&r, "item_key")?,
                    score: col(&r, "score")?,
                    comment: col(&r, "comment")?,
                });
            }
            sqlx::query(
                "DELETE FROM observation_scores WHERE observation_id = $1 AND item_key = $2",
            )
            .bind(id)
            .bind(&s.item)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO observation_scores (observation_id, item_key, score, comment) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(id)
            .bind(&s.item)
            .bind(s.score)
            .bind(&s.comment)
            .execute(&mut *tx)
            .await?;
        }
        old["scores"] = serde_json::json!(before);
        new["scores"] = serde_json::json!(scores);
    }
    if let Some((m, codes)) = change.codes {
        let r = sqlx::query(
            "SELECT codes FROM observation_codes WHERE observation_id = $1 AND method = $2",
        )
        .bind(id)
        .bind(m.as_str())
        .fetch_one(&mut *tx)
        .await?;
        let before: String = col(&r, "codes")?;
        sqlx::query(
            "UPDATE observation_codes SET codes = $3 WHERE observation_id = $1 AND method = $2",
        )
        .bind(id)
        .bind(m.as_str())
        .bind(codes)
        .execute(&mut *tx)
        .await?;
        old["codes"] = serde_json::json!({"method": m.as_str(), "codes": before});
        new["codes"] = serde_json::json!({"method": m.as_str(), "codes": codes});
    }
    let r = sqlx::query(
        "INSERT INTO observation_amendments (observation_id, at, actor, reason, old_value, \
         new_value) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
    )
    .bind(id)
    .bind(now)
    .bind(actor)
    .bind(reason)
    .bind(old.to_string())
    .bind(new.to_string())
    .fetch_one(&mut *tx)
    .await?;
    let aid: i64 = col(&r, "id")?;
    tx.commit().await?;
    Ok(Some(aid))
}

/// An observation's amendments, oldest first.
pub async fn amendments(store: &Store, id: i64) -> StoreResult<Vec<Amendment>> {
    let rows = sqlx::query(
        "SELECT id, at, actor, reason, old_value, new_value FROM observation_amendments \
         WHERE observation_id = $1 ORDER BY id",
    )
    .bind(id)
    .fetch_all(store.pool())
    .await?;
    let json = |s: String| serde_json::from_str(&s).unwrap_or(serde_json::Value::String(s));
    rows.iter()
        .map(|r| {
            Ok(Amendment {
                id: col(r, "id")?,
                at: col(r, "at")?,
                actor: col(r, "actor")?,
                reason: col(r, "reason")?,
                old: json(col(r, "old_value")?),
                new: json(col(r, "new_value")?),
            })
        })
        .collect()
}
