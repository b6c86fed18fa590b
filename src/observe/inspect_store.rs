//! The sampling-inspection tables (migration 0006): rounds, reviewer pools, samples, reviews
//! and the append-only audit log. Every write that changes a grade or a round's state writes
//! its audit entry in the same transaction. Must never decide who may do what (the API's
//! object rules), never UPDATE or DELETE an `inspection_audit` row (the migration's triggers
//! refuse it too).

use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{Any, Transaction};

use super::inspect::Reason;
use crate::store::{col, col_bool, Store, StoreError, StoreResult};
use crate::time::Millis;

mod candidates;
pub use candidates::*;

/// A round as stored.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RoundRow {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// `county`, `city` or `province`.
    pub level: String,
    /// The county row anchoring the round's place.
    pub region_id: i64,
    /// What is drawn: `observation` or `ability_point`.
    pub source: String,
    /// The term an `ability_point` round draws from (`null` for observation rounds).
    pub term: Option<String>,
    /// The share drawn (0.10 = 10 %).
    pub ratio: f64,
    /// The draw's seed (shown, so the draw can be repeated).
    pub seed: i64,
    /// Reviews per sample at the draw.
    pub reviews_per_sample: i64,
    /// The pass mark of a review's score (0–100).
    pub pass_mark: f64,
    /// `open` (pool being set) or `drawn`.
    pub state: String,
    /// Who made it.
    pub created_by: String,
    /// Unix ms.
    pub created_at: Millis,
    /// Unix ms, once drawn.
    pub drawn_at: Option<Millis>,
    /// How many items could be drawn (once drawn).
    pub population: Option<i64>,
}

fn round_row(r: &AnyRow) -> StoreResult<RoundRow> {
    Ok(RoundRow {
        id: col(r, "id")?,
        name: col(r, "name")?,
        level: col(r, "level")?,
        region_id: col(r, "region_id")?,
        source: col(r, "source")?,
        term: col(r, "term")?,
        ratio: col(r, "ratio")?,
        seed: col(r, "seed")?,
        reviews_per_sample: col(r, "reviews_per_sample")?,
        pass_mark: col(r, "pass_mark")?,
        state: col(r, "state")?,
        created_by: col(r, "created_by")?,
        created_at: col(r, "created_at")?,
        drawn_at: col(r, "drawn_at")?,
        population: col(r, "population")?,
    })
}

const ROUND_COLS: &str = "SELECT id, name, level, region_id, source, term, ratio, seed, \
    reviews_per_sample, pass_mark, state, created_by, created_at, drawn_at, population \
    FROM inspection_rounds";

/// A new round.
pub struct NewRound<'a> {
    /// Name.
    pub name: &'a str,
    /// Level.
    pub level: &'a str,
    /// Anchor.
    pub region_id: i64,
    /// Source.
    pub source: &'a str,
    /// The term (ability-point rounds).
    pub term: Option<&'a str>,
    /// Ratio.
    pub ratio: f64,
    /// Seed.
    pub seed: i64,
    /// Reviews per sample.
    pub reviews_per_sample: i64,
    /// Pass mark.
    pub pass_mark: f64,
}

/// Appends one audit entry inside `tx`.
pub async fn audit(
    tx: &mut Transaction<'static, Any>,
    round_id: i64,
    at: Millis,
    actor: &str,
    action: &str,
    object: &str,
    detail: &str,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO inspection_audit (round_id, at, actor, action, object, detail) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(round_id)
    .bind(at)
    .bind(actor)
    .bind(action)
    .bind(object)
    .bind(detail)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Stores a round (audited).
pub async fn insert_round(
    store: &Store,
    n: &NewRound<'_>,
    by: &str,
    now: Millis,
) -> StoreResult<i64> {
    let mut tx = store.begin().await?;
    let r = sqlx::query(
        "INSERT INTO inspection_rounds (name, level, region_id, source, ratio, seed, \
         reviews_per_sample, pass_mark, state, created_by, created_at, term) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'open', $9, $10, $11) RETURNING id",
    )
    .bind(n.name)
    .bind(n.level)
    .bind(n.region_id)
    .bind(n.source)
    .bind(n.ratio)
    .bind(n.seed)
    .bind(n.reviews_per_sample)
    .bind(n.pass_mark)
    .bind(by)
    .bind(now)
    .bind(n.term)
    .fetch_one(&mut *tx)
    .await?;
    let id: i64 = col(&r, "id")?;
    let mut detail = format!(
        "level {} region {} ratio {} seed {} reviews {} pass mark {}",
        n.level, n.region_id, n.ratio, n.seed, n.reviews_per_sample, n.pass_mark
    );
    if let Some(t) = n.term {
        detail.push_str(&format!(" source {} term {t}", n.source));
    }
    audit(
        &mut tx,
        id,
        now,
        by,
        "round.create",
        &format!("round:{id}"),
        &detail,
    )
    .await?;
    tx.commit().await?;
    Ok(id)
}

/// One round.
pub async fn round(store: &Store, id: i64) -> StoreResult<RoundRow> {
    let r = sqlx::query(sqlx::AssertSqlSafe(format!("{ROUND_COLS} WHERE id = $1")))
        .bind(id)
        .fetch_optional(store.pool())
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("inspection round {id}")))?;
    round_row(&r)
}

/// Every round, newest first.
pub async fn rounds(store: &Store) -> StoreResult<Vec<RoundRow>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{ROUND_COLS} ORDER BY id DESC"
    )))
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(round_row).collect()
}

/// A member of a round's reviewer pool.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PoolMember {
    /// User id.
    pub user_id: i64,
    /// The user's name.
    pub display_name: String,
    /// In the expert pool.
    pub expert: bool,
}

/// A round's pool.
pub async fn pool(store: &Store, round_id: i64) -> StoreResult<Vec<PoolMember>> {
    let rows = sqlx::query(
        "SELECT p.user_id, p.expert, u.display_name FROM inspection_reviewers p \
         JOIN users u ON u.id = p.user_id WHERE p.round_id = $1 ORDER BY p.user_id",
    )
    .bind(round_id)
    .fetch_all(store.pool())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(PoolMember {
                user_id: col(r, "user_id")?,
                display_name: col(r, "display_name")?,
                expert: col_bool(r, "expert")?,
            })
        })
        .collect()
}

/// Replaces an open round's pool (audited); `false` when the round is drawn already.
pub async fn set_pool(
    store: &Store,
    round_id: i64,
    members: &[(i64, bool)],
    by: &str,
    now: Millis,
) -> StoreResult<bool> {
    let mut tx = store.begin().await?;
    let open = sqlx::query("SELECT state FROM inspection_rounds WHERE id = $1")
        .bind(round_id)
        .fetch_one(&mut *tx)
        .await?;
    if col::<String>(&open, "state")? != "open" {
        return Ok(false);
    }
    sqlx::query("DELETE FROM inspection_reviewers WHERE round_id = $1")
        .bind(round_id)
        .execute(&mut *tx)
        .await?;
    for (u, e) in members {
        sqlx::query(
            "INSERT INTO inspection_reviewers (round_id, user_id, expert) VALUES ($1, $2, $3)",
        )
        .bind(round_id)
        .bind(u)
        .bind(i64::from(*e))
        .execute(&mut *tx)
        .await?;
    }
    let detail = members
        .iter()
        .map(|(u, e)| format!("u:{u}{}", if *e { " (expert)" } else { "" }))
        .collect::<Vec<_>>()
        .join(", ");
    audit(
        &mut tx,
        round_id,
        now,
        by,
        "round.pool",
        &format!("round:{round_id}"),
        &detail,
    )
    .await?;
    tx.commit().await?;
    Ok(true)
}

/// A sample to store at the draw.
pub struct NewSample {
    /// The drawn item.
    pub source_id: i64,
    /// Its pseudonym.
    pub pseudonym: String,
    /// Stratum: stage.
    pub stage: String,
    /// Stratum: subject.
    pub subject: String,
    /// Stratum: school kind.
    pub school_kind: String,
    /// Stratum: area.
    pub area: String,
    /// Its unit's key.
    pub unit_key: String,
    /// Its unit's name.
    pub unit_name: String,
    /// Its school.
    pub school_id: i64,
    /// Its reviewers at the draw (`None`: a slot no one may take).
    pub reviewers: Vec<Option<i64>>,
}

/// Stores a draw: marks the round drawn (only an open one: `false` otherwise), stores the
/// samples and their reviews, and audits the draw and every assignment, in one transaction.
pub async fn record_draw(
    store: &Store,
    round_id: i64,
    population: i64,
    samples: &[NewSample],
    detail: &str,
    by: &str,
    now: Millis,
) -> StoreResult<bool> {
    let mut tx = store.begin().await?;
    let done = sqlx::query(
        "UPDATE inspection_rounds SET state = 'drawn', drawn_at = $1, population = $2 \
         WHERE id = $3 AND state = 'open'",
    )
    .bind(now)
    .bind(population)
    .bind(round_id)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() != 1 {
        return Ok(false);
    }
    audit(
        &mut tx,
        round_id,
        now,
        by,
        "round.draw",
        &format!("round:{round_id}"),
        detail,
    )
    .await?;
    for s in samples {
        let r = sqlx::query(
            "INSERT INTO inspection_samples (round_id, source_id, pseudonym, stage, subject, \
             school_kind, area, unit_key, unit_name, school_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
        )
        .bind(round_id)
        .bind(s.source_id)
        .bind(&s.pseudonym)
        .bind(&s.stage)
        .bind(&s.subject)
        .bind(&s.school_kind)
        .bind(&s.area)
        .bind(&s.unit_key)
        .bind(&s.unit_name)
        .bind(s.school_id)
        .fetch_one(&mut *tx)
        .await?;
        let sid: i64 = col(&r, "id")?;
        for (i, rev) in s.reviewers.iter().enumerate() {
            insert_review(
                &mut tx,
                round_id,
                sid,
                *rev,
                i as i64 + 1,
                Reason::Draw,
                by,
                now,
            )
            .await?;
        }
    }
    tx.commit().await?;
    Ok(true)
}

#[allow(clippy::too_many_arguments)]
async fn insert_review(
    tx: &mut Transaction<'static, Any>,
    round_id: i64,
    sample_id: i64,
    reviewer: Option<i64>,
    ordinal: i64,
    reason: Reason,
    by: &str,
    now: Millis,
) -> StoreResult<i64> {
    let r = sqlx::query(
        "INSERT INTO inspection_reviews (sample_id, reviewer_id, ordinal, reason, created_at) \
         VALUES ($1, $2, $3, $4, $5) RETURNING id",
    )
    .bind(sample_id)
    .bind(reviewer)
    .bind(ordinal)
    .bind(reason.as_str())
    .bind(now)
    .fetch_one(&mut **tx)
    .await?;
    let id: i64 = col(&r, "id")?;
    let who = reviewer.map_or("nobody eligible".to_string(), |u| format!("u:{u}"));
    audit(
        tx,
        round_id,
        now,
        by,
        "review.assign",
        &format!("review:{id}"),
        &format!(
            "sample {sample_id} review {ordinal} ({}) to {who}",
            reason.as_str()
        ),
    )
    .await?;
    Ok(id)
}

/// Adds the next review of a sample (a dispute's or an appeal's), audited; for an appeal,
/// only the first: `None` when the sample was appealed before.
#[allow(clippy::too_many_arguments)]
pub async fn add_review(
    store: &Store,
    round_id: i64,
    sample_id: i64,
    reviewer: Option<i64>,
    reason: Reason,
    note: &str,
    by: &str,
    now: Millis,
) -> StoreResult<Option<i64>> {
    let mut tx = store.begin().await?;
    if reason == Reason::Appeal {
        let r = sqlx::query(
            "UPDATE inspection_samples SET appealed = 1 WHERE id = $1 AND appealed = 0",
        )
        .bind(sample_id)
        .execute(&mut *tx)
        .await?;
        if r.rows_affected() != 1 {
            return Ok(None);
        }
    } else {
        let r = sqlx::query(
            "SELECT COUNT(*) AS n FROM inspection_reviews WHERE sample_id = $1 AND reason = $2",
        )
        .bind(sample_id)
        .bind(reason.as_str())
        .fetch_one(&mut *tx)
        .await?;
        if col::<i64>(&r, "n")? > 0 {
            return Ok(None);
        }
    }
    let r = sqlx::query(
        "SELECT COALESCE(MAX(ordinal), 0) AS n FROM inspection_reviews WHERE sample_id = $1",
    )
    .bind(sample_id)
    .fetch_one(&mut *tx)
    .await?;
    let next = col::<i64>(&r, "n")? + 1;
    audit(
        &mut tx,
        round_id,
        now,
        by,
        &format!("sample.{}", reason.as_str()),
        &format!("sample:{sample_id}"),
        note,
    )
    .await?;
    let id = insert_review(
        &mut tx, round_id, sample_id, reviewer, next, reason, by, now,
    )
    .await?;
    tx.commit().await?;
    Ok(Some(id))
}

/// Every sample drawn from `source` (`observation` or `ability_point`) whose drawn item is
/// one of `ids`, with its round, oldest round first.
pub async fn samples_of(
    store: &Store,
    source: &str,
    ids: &[i64],
) -> StoreResult<Vec<(SampleRow, RoundRow)>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{SAMPLE_COLS} WHERE round_id IN (SELECT id FROM inspection_rounds WHERE source = $1) \
         ORDER BY round_id, id"
    )))
    .bind(source)
    .fetch_all(store.pool())
    .await?;
    let mut out = Vec::new();
    let mut rounds: std::collections::HashMap<i64, RoundRow> = Default::default();
    for r in &rows {
        let s = sample_row(r)?;
        if !ids.contains(&s.source_id) {
            continue;
        }
        let round = match rounds.get(&s.round_id) {
            Some(x) => x.clone(),
            None => {
                let x = round(store, s.round_id).await?;
                rounds.insert(s.round_id, x.clone());
                x
            }
        };
        out.push((s, round));
    }
    Ok(out)
}

/// A sample as stored.
#[derive(Debug, Clone)]
pub struct SampleRow {
    /// Id.
    pub id: i64,
    /// Its round.
    pub round_id: i64,
    /// The drawn item (an observation).
    pub source_id: i64,
    /// Pseudonym.
    pub pseudonym: String,
    /// Stratum.
    pub stage: String,
    /// Stratum.
    pub subject: String,
    /// Stratum.
    pub school_kind: String,
    /// Stratum.
    pub area: String,
    /// Unit key.
    pub unit_key: String,
    /// Unit name.
    pub unit_name: String,
    /// School.
    pub school_id: i64,
    /// Appealed once.
    pub appealed: bool,
}

const SAMPLE_COLS: &str = "SELECT id, round_id, source_id, pseudonym, stage, subject, \
    school_kind, area, unit_key, unit_name, school_id, appealed FROM inspection_samples";

fn sample_row(r: &AnyRow) -> StoreResult<SampleRow> {
    Ok(SampleRow {
        id: col(r, "id")?,
        round_id: col(r, "round_id")?,
        source_id: col(r, "source_id")?,
        pseudonym: col(r, "pseudonym")?,
        stage: col(r, "stage")?,
        subject: col(r, "subject")?,
        school_kind: col(r, "school_kind")?,
        area: col(r, "area")?,
        unit_key: col(r, "unit_key")?,
        unit_name: col(r, "unit_name")?,
        school_id: col(r, "school_id")?,
        appealed: col_bool(r, "appealed")?,
    })
}

/// A round's samples, by pseudonym.
pub async fn samples(store: &Store, round_id: i64) -> StoreResult<Vec<SampleRow>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{SAMPLE_COLS} WHERE round_id = $1 ORDER BY pseudonym"
    )))
    .bind(round_id)
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(sample_row).collect()
}

/// One sample.
pub async fn sample(store: &Store, id: i64) -> StoreResult<SampleRow> {
    let r = sqlx::query(sqlx::AssertSqlSafe(format!("{SAMPLE_COLS} WHERE id = $1")))
        .bind(id)
        .fetch_optional(store.pool())
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("inspection sample {id}")))?;
    sample_row(&r)
}

/// A review as stored, with its sample's round.
#[derive(Debug, Clone)]
pub struct ReviewRow {
    /// Id.
    pub id: i64,
    /// The sample.
    pub sample_id: i64,
    /// The sample's round.
    pub round_id: i64,
    /// The reviewer (none when no one in the pool may take it).
    pub reviewer_id: Option<i64>,
    /// 1, 2, … within the sample.
    pub ordinal: i64,
    /// Why it exists.
    pub reason: Reason,
    /// Score once graded (observation rounds).
    pub score: Option<f64>,
    /// The point grade once graded (ability-point rounds): `excellent`, `pass`, `fail`.
    pub grade: Option<String>,
    /// The reviewer's comment.
    pub comment: String,
    /// Unix ms of the latest grade.
    pub graded_at: Option<Millis>,
}

impl ReviewRow {
    /// This review as the pass/fail rules see it: a score at or above `pass_mark` passes, a
    /// point grade passes unless 不合格, an ungraded review has no verdict yet.
    pub fn verdict(&self, pass_mark: f64) -> super::inspect::Verdict {
        let pass = match (self.score, self.grade.as_deref()) {
            (Some(s), _) => Some(s >= pass_mark),
            (None, Some(g)) => {
                super::records::grading::Grade::parse(g).map(super::inspect::point_passes)
            }
            (None, None) => None,
        };
        super::inspect::Verdict {
            reason: self.reason,
            pass,
        }
    }
}

/// The verdicts of a sample's reviews (in order).
pub fn verdicts(reviews: &[&ReviewRow], pass_mark: f64) -> Vec<super::inspect::Verdict> {
    reviews.iter().map(|r| r.verdict(pass_mark)).collect()
}

const REVIEW_COLS: &str = "SELECT v.id, v.sample_id, s.round_id, v.reviewer_id, v.ordinal, \
    v.reason, v.score, v.grade, v.comment, v.graded_at FROM inspection_reviews v \
    JOIN inspection_samples s ON s.id = v.sample_id";

fn review_row(r: &AnyRow) -> StoreResult<ReviewRow> {
    let reason: String = col(r, "reason")?;
    Ok(ReviewRow {
        id: col(r, "id")?,
        sample_id: col(r, "sample_id")?,
        round_id: col(r, "round_id")?,
        reviewer_id: col(r, "reviewer_id")?,
        ordinal: col(r, "ordinal")?,
        reason: Reason::parse(&reason)
            .ok_or_else(|| StoreError::Check(format!("review reason `{reason}`")))?,
        score: col(r, "score")?,
        grade: col(r, "grade")?,
        comment: col(r, "comment")?,
        graded_at: col(r, "graded_at")?,
    })
}

/// A round's reviews, by sample and ordinal.
pub async fn round_reviews(store: &Store, round_id: i64) -> StoreResult<Vec<ReviewRow>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{REVIEW_COLS} WHERE s.round_id = $1 ORDER BY v.sample_id, v.ordinal"
    )))
    .bind(round_id)
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(review_row).collect()
}

/// A sample's reviews, by ordinal.
pub async fn sample_reviews(store: &Store, sample_id: i64) -> StoreResult<Vec<ReviewRow>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{REVIEW_COLS} WHERE v.sample_id = $1 ORDER BY v.ordinal"
    )))
    .bind(sample_id)
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(review_row).collect()
}

/// A reviewer's reviews, newest first.
pub async fn reviewer_reviews(store: &Store, user_id: i64) -> StoreResult<Vec<ReviewRow>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{REVIEW_COLS} WHERE v.reviewer_id = $1 ORDER BY v.id DESC"
    )))
    .bind(user_id)
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(review_row).collect()
}

/// One review.
pub async fn review(store: &Store, id: i64) -> StoreResult<ReviewRow> {
    let r = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{REVIEW_COLS} WHERE v.id = $1"
    )))
    .bind(id)
    .fetch_optional(store.pool())
    .await?
    .ok_or_else(|| StoreError::NotFound(format!("inspection review {id}")))?;
    review_row(&r)
}

/// What a reviewer gives: a score (an observation) or a point grade (an ability point).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mark<'a> {
    /// 0–100.
    Score(f64),
    /// `excellent`, `pass` or `fail`.
    Point(&'a str),
}

/// Grades (or re-grades) a review, auditing the old and the new grade in the same
/// transaction.
pub async fn grade(
    store: &Store,
    r: &ReviewRow,
    mark: Mark<'_>,
    comment: &str,
    by: &str,
    now: Millis,
) -> StoreResult<()> {
    let mut tx = store.begin().await?;
    let (score, grade) = match mark {
        Mark::Score(s) => (Some(s), None),
        Mark::Point(g) => (None, Some(g)),
    };
    sqlx::query(
        "UPDATE inspection_reviews SET score = $1, grade = $2, comment = $3, graded_at = $4 \
         WHERE id = $5",
    )
    .bind(score)
    .bind(grade)
    .bind(comment)
    .bind(now)
    .bind(r.id)
    .execute(&mut *tx)
    .await?;
    let new = match mark {
        Mark::Score(s) => format!("score {s}"),
        Mark::Point(g) => format!("grade {g}"),
    };
    let old = match (r.score, r.grade.as_deref()) {
        (Some(s), _) => Some(s.to_string()),
        (None, Some(g)) => Some(g.to_string()),
        (None, None) => None,
    };
    let (action, detail) = match old {
        None => ("review.grade", new),
        Some(old) => (
            "review.change",
            match mark {
                Mark::Score(s) => format!("score {old} → {s}"),
                Mark::Point(g) => format!("grade {old} → {g}"),
            },
        ),
    };
    audit(
        &mut tx,
        r.round_id,
        now,
        by,
        action,
        &format!("review:{}", r.id),
        &detail,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Marks an inspected observation `reviewed` (from `submitted`).
pub async fn mark_reviewed(store: &Store, observation_id: i64, now: Millis) -> StoreResult<()> {
    sqlx::query(
        "UPDATE observations SET state = 'reviewed', reviewed_at = $1 \
         WHERE id = $2 AND state = 'submitted'",
    )
    .bind(now)
    .bind(observation_id)
    .execute(store.pool())
    .await?;
    Ok(())
}

/// One audit entry.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AuditEntry {
    /// Id (in order).
    pub id: i64,
    /// Unix ms.
    pub at: Millis,
    /// Who (`u:12`).
    pub actor: String,
    /// What (`round.create`, `round.pool`, `round.draw`, `review.assign`, `review.grade`,
    /// `review.change`, `sample.dispute`, `sample.appeal`).
    pub action: String,
    /// On what (`round:3`, `review:7`, `sample:5`).
    pub object: String,
    /// Details.
    pub detail: String,
}

/// A round's audit log, in order.
pub async fn audit_log(store: &Store, round_id: i64) -> StoreResult<Vec<AuditEntry>> {
    let rows = sqlx::query(
        "SELECT id, at, actor, action, object, detail FROM inspection_audit \
         WHERE round_id = $1 ORDER BY id",
    )
    .bind(round_id)
    .fetch_all(store.pool())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(AuditEntry {
                id: col(r, "id")?,
                at: col(r, "at")?,
                actor: col(r, "actor")?,
                action: col(r, "action")?,
                object: col(r, "object")?,
                detail: col(r, "detail")?,
            })
        })
        .collect()
}
