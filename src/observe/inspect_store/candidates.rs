//! What a sampling-inspection draw may take, read from the tables: submitted observations and
//! ability-point submissions with the facts of their strata and where they were taught, and
//! the ability submissions' ids. Must never decide what is drawn (`observe::inspect`'s pure
//! rules do) nor write anything but a submission's id row.

use super::*;

/// Something a draw may take (a submitted observation, or an ability-point submission), with
/// its stratum's facts and where it was taught.
#[derive(Debug, Clone)]
pub struct DrawCandidate {
    /// The observation, or the ability submission.
    pub id: i64,
    /// Its lesson's subject (an ability point: see `inspect::drawable_points`).
    pub subject: String,
    /// Its lesson's grade (年级; empty for an ability point).
    pub grade: String,
    /// The stage when it does not come from `grade` (an ability point's).
    pub stage: Option<&'static str>,
    /// The (hub) school: an observation's lesson's hub school, an ability point's teacher's.
    pub school_id: i64,
    /// The school's name.
    pub school_name: String,
    /// `hub` or `partner`.
    pub school_kind: String,
    /// `urban`, `rural`, `unknown`.
    pub area: String,
    /// The school's county row.
    pub region_id: Option<i64>,
    /// 省.
    pub province: Option<String>,
    /// 市.
    pub city: Option<String>,
    /// 县.
    pub county: Option<String>,
}

/// Every submitted (not yet reviewed) observation with its lesson's and hub school's facts.
pub async fn observation_candidates(store: &Store) -> StoreResult<Vec<DrawCandidate>> {
    let rows = sqlx::query(
        "SELECT o.id, l.subject, l.grade, s.id AS school_id, s.name AS school_name, \
         s.kind AS school_kind, s.area, s.region_id, r.province, r.city, r.county \
         FROM observations o JOIN lessons l ON l.id = o.lesson_id \
         JOIN classrooms c ON c.id = l.hub_classroom_id JOIN schools s ON s.id = c.school_id \
         LEFT JOIN regions r ON r.id = s.region_id WHERE o.state = 'submitted' ORDER BY o.id",
    )
    .fetch_all(store.pool())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(DrawCandidate {
                id: col(r, "id")?,
                subject: col(r, "subject")?,
                grade: col(r, "grade")?,
                stage: None,
                school_id: col(r, "school_id")?,
                school_name: col(r, "school_name")?,
                school_kind: col(r, "school_kind")?,
                area: col(r, "area")?,
                region_id: col(r, "region_id")?,
                province: col(r, "province")?,
                city: col(r, "city")?,
                county: col(r, "county")?,
            })
        })
        .collect()
}

/// A term's drawable ability-point submissions (`inspect::drawable_points`) as draw
/// candidates, each with its stable submission id (made here at the first draw that sees it,
/// in teacher-then-point order, so a later draw with the same seed sees the same ids).
pub async fn point_candidates(
    store: &Store,
    term: &str,
    now: Millis,
) -> StoreResult<Vec<DrawCandidate>> {
    use crate::observe::inspect::{drawable_points, PointEvidence};
    use crate::observe::records::grading::Grade;
    let rows = sqlx::query(
        "SELECT e.teacher_id, e.point, e.grade, l.subject, l.grade AS lesson_grade \
         FROM ability_evidence e LEFT JOIN recordings rec ON rec.id = e.recording_id \
         LEFT JOIN lessons l ON l.id = rec.lesson_id WHERE e.term = $1 ORDER BY e.id",
    )
    .bind(term)
    .fetch_all(store.pool())
    .await?;
    let mut items = Vec::new();
    for r in &rows {
        let grade: Option<String> = col(r, "grade")?;
        let subject: Option<String> = col(r, "subject")?;
        let lesson_grade: Option<String> = col(r, "lesson_grade")?;
        items.push(PointEvidence {
            teacher_id: col(r, "teacher_id")?,
            point: col(r, "point")?,
            grade: grade.as_deref().and_then(Grade::parse),
            lesson: subject.zip(lesson_grade),
        });
    }
    let teachers = sqlx::query(
        "SELECT t.id, t.subjects, s.id AS school_id, s.name AS school_name, \
         s.kind AS school_kind, s.area, s.region_id, r.province, r.city, r.county \
         FROM teachers t JOIN schools s ON s.id = t.school_id \
         LEFT JOIN regions r ON r.id = s.region_id",
    )
    .fetch_all(store.pool())
    .await?;
    let mut subjects = std::collections::BTreeMap::new();
    let mut places = std::collections::HashMap::new();
    for r in &teachers {
        let id: i64 = col(r, "id")?;
        let list: String = col(r, "subjects")?;
        let first = list
            .split([',', '，', '、', ';'])
            .map(str::trim)
            .find(|x| !x.is_empty())
            .unwrap_or("")
            .to_string();
        subjects.insert(id, first);
        places.insert(id, r);
    }
    let mut out = Vec::new();
    for sub in drawable_points(&items, &subjects) {
        let Some(r) = places.get(&sub.teacher_id) else {
            continue;
        };
        sqlx::query(
            "INSERT INTO ability_submissions (teacher_id, term, point, created_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (teacher_id, term, point) DO NOTHING",
        )
        .bind(sub.teacher_id)
        .bind(term)
        .bind(&sub.point)
        .bind(now)
        .execute(store.pool())
        .await?;
        let id = submission_id(store, sub.teacher_id, term, &sub.point)
            .await?
            .ok_or_else(|| StoreError::NotFound("the submission just stored".into()))?;
        out.push(DrawCandidate {
            id,
            subject: sub.subject,
            grade: String::new(),
            stage: Some(sub.stage),
            school_id: col(r, "school_id")?,
            school_name: col(r, "school_name")?,
            school_kind: col(r, "school_kind")?,
            area: col(r, "area")?,
            region_id: col(r, "region_id")?,
            province: col(r, "province")?,
            city: col(r, "city")?,
            county: col(r, "county")?,
        });
    }
    Ok(out)
}

/// The id of a teacher's point in a term, once a draw has seen it.
pub async fn submission_id(
    store: &Store,
    teacher: i64,
    term: &str,
    point: &str,
) -> StoreResult<Option<i64>> {
    let r = sqlx::query(
        "SELECT id FROM ability_submissions WHERE teacher_id = $1 AND term = $2 AND point = $3",
    )
    .bind(teacher)
    .bind(term)
    .bind(point)
    .fetch_optional(store.pool())
    .await?;
    r.map(|r| col(&r, "id")).transpose()
}

/// An ability-point submission: a teacher's point in a term.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct SubmissionRow {
    /// Id.
    pub id: i64,
    /// Whose.
    pub teacher_id: i64,
    /// The term's name.
    pub term: String,
    /// The point's code.
    pub point: String,
}

/// One submission.
pub async fn submission(store: &Store, id: i64) -> StoreResult<SubmissionRow> {
    let r =
        sqlx::query("SELECT id, teacher_id, term, point FROM ability_submissions WHERE id = $1")
            .bind(id)
            .fetch_optional(store.pool())
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("ability submission {id}")))?;
    Ok(SubmissionRow {
        id: col(&r, "id")?,
        teacher_id: col(&r, "teacher_id")?,
        term: col(&r, "term")?,
        point: col(&r, "point")?,
    })
}
