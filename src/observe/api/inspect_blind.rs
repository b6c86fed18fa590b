//! What a reviewer of sampling inspection (抽检) reads and writes: the blinded review (a
//! pseudonym, the stratum, the observation's figures or the ability point's renamed evidence)
//! and its grade. Must never put a teacher's, school's or region's name or id into anything
//! it answers.

use super::*;
use crate::observe::fias::FiasResult;
use crate::observe::inspect::{self as rules, Outcome, Reason, Stratum};
use crate::observe::inspect_store::{self as istore, Mark, ReviewRow};
use crate::observe::records::grading::Grade as PointGrade;
use crate::observe::st::StResult;
use crate::school::model::LessonMode;
use serde::Serialize;

/// The rubric result as a blinded reviewer sees it (no free-text comments).
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct BlindRubric {
    /// The rubric's name.
    name: String,
    /// Its version.
    version: i64,
    /// The items with their weights and scores.
    items: Vec<BlindItem>,
    /// The total.
    total: f64,
    /// The band's name.
    band_name: Option<String>,
}

/// One rubric item and its score.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct BlindItem {
    /// Key.
    key: String,
    /// Name.
    name: String,
    /// Weight.
    weight: u32,
    /// The observer's score.
    score: Option<f64>,
}

/// What a blinded reviewer sees of the drawn observation: the lesson's mode, grade and
/// length, and the figures; never who taught it, where, or who observed it; no free text
/// (comments may name people) and no media (names in recordings' metadata).
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct BlindEvidence {
    /// The lesson's mode.
    mode: LessonMode,
    /// The lesson's grade (年级).
    grade: String,
    /// The lesson's length in minutes.
    minutes: i64,
    /// The methods observed with.
    methods: Vec<Method>,
    /// S-T figures.
    st: Option<StResult>,
    /// FIAS figures.
    fias: Option<FiasResult>,
    /// The S-T codes (`T`/`S`).
    st_codes: Option<String>,
    /// The FIAS codes (digits, `0` = 10).
    fias_codes: Option<String>,
    /// The rubric scores.
    rubric: Option<BlindRubric>,
}

/// A file of a blinded point's evidence, renamed.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct BlindFile {
    /// A name made here (`材料1-2.pdf`: item 1's second file), never the uploaded one.
    name: String,
    /// What the bytes are (`pdf`, `png`…), by content.
    kind: String,
    /// Its media type.
    mime: String,
    /// Bytes.
    size: i64,
    /// `/api/inspections/reviews/{id}/files/{index}`.
    url: String,
}

/// A clip of a blinded point's evidence.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct BlindClip {
    /// In point on its recording's timeline (ms).
    in_ms: i64,
    /// Out point (ms).
    out_ms: i64,
    /// The sources that play it (`/api/inspections/reviews/{id}/media/{index}`; empty when
    /// its recording is gone or not processed).
    urls: Vec<String>,
}

/// One evidence item of a blinded point: its clip and its files; no note (free text may
/// name people) and no uploaded file names.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct BlindEvidenceItem {
    /// 1, 2, … in the order given.
    item: usize,
    /// The clip, when it has one.
    clip: Option<BlindClip>,
    /// Its files.
    files: Vec<BlindFile>,
}

/// What a blinded reviewer sees of a drawn ability-point submission (微能力点): the point
/// and its evidence; never who gave it or where.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct BlindPoint {
    /// The point's code (A1…).
    code: String,
    /// Its name.
    name: String,
    /// Its English name.
    name_en: String,
    /// A, B or C.
    environment: String,
    /// analysis, design, guidance or assessment.
    dimension: String,
    /// The evidence items.
    items: Vec<BlindEvidenceItem>,
}

/// A review as its (blinded) reviewer sees it.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct BlindReview {
    /// The review's id.
    id: i64,
    /// The sample's pseudonym.
    pseudonym: String,
    /// 1, 2, … within the sample.
    ordinal: i64,
    /// Why it exists.
    reason: Reason,
    /// The sample's stratum.
    stratum: Stratum,
    /// The round's pass mark.
    pass_mark: f64,
    /// What is graded: `score` (0–100, an observation) or `grade` (优秀/合格/不合格:
    /// excellent, pass, fail; an ability point).
    marks: String,
    /// The score given (0–100), once graded.
    score: Option<f64>,
    /// The point grade given, once graded.
    grade: Option<String>,
    /// The reviewer's comment.
    comment: String,
    /// The observation's evidence (`GET /api/inspections/reviews/{id}` only).
    evidence: Option<BlindEvidence>,
    /// The ability point and its evidence (`GET /api/inspections/reviews/{id}` only).
    point: Option<BlindPoint>,
}

pub(super) async fn blind(
    st: &SchoolState,
    v: &ReviewRow,
    with_evidence: bool,
) -> Result<BlindReview, ApiError> {
    let s = &st.store;
    let sample = istore::sample(s, v.sample_id).await?;
    let round = istore::round(s, v.round_id).await?;
    let points = of_points(&round);
    let point = if with_evidence && points {
        Some(blind_point(st, v).await?)
    } else {
        None
    };
    let evidence = if with_evidence && !points {
        let o = ostore::observation(s, sample.source_id).await?;
        let l = model::get_lesson(s, o.lesson_id).await?;
        let mut e = BlindEvidence {
            mode: l.mode,
            grade: l.grade.clone(),
            minutes: (l.ends_at - l.starts_at).max(0) / 60_000,
            methods: o.methods.clone(),
            st: None,
            fias: None,
            st_codes: None,
            fias_codes: None,
            rubric: None,
        };
        for m in &o.methods {
            match m {
                Method::St => {
                    let c = ostore::codes(s, o.id, *m).await?;
                    e.st = Some(st::analyse(&ostore::st_codes(&c)));
                    e.st_codes = Some(c);
                }
                Method::Fias => {
                    let c = ostore::codes(s, o.id, *m).await?;
                    e.fias = Some(fias::analyse(&ostore::fias_codes(&c)));
                    e.fias_codes = Some(c);
                }
                Method::Rubric => {
                    if let Some(rid) = o.rubric_id {
                        let r = ostore::rubric(s, rid).await?;
                        let scores = ostore::scores(s, o.id).await?;
                        let res = rubric::result(&r.rubric, &scores);
                        e.rubric = Some(BlindRubric {
                            name: r.rubric.name.clone(),
                            version: r.version,
                            items: r
                                .rubric
                                .items
                                .iter()
                                .map(|it| BlindItem {
                                    key: it.key.clone(),
                                    name: it.name.clone(),
                                    weight: it.weight,
                                    score: scores
                                        .iter()
                                        .find(|x| x.item == it.key)
                                        .map(|x| x.score),
                                })
                                .collect(),
                            total: res.total,
                            band_name: res.band_name,
                        });
                    }
                }
            }
        }
        Some(e)
    } else {
        None
    };
    Ok(BlindReview {
        id: v.id,
        pseudonym: sample.pseudonym,
        ordinal: v.ordinal,
        reason: v.reason,
        stratum: Stratum {
            stage: sample.stage,
            subject: sample.subject,
            school_kind: sample.school_kind,
            area: sample.area,
        },
        pass_mark: round.pass_mark,
        marks: if points { "grade" } else { "score" }.to_string(),
        score: v.score,
        grade: v.grade.clone(),
        comment: v.comment.clone(),
        evidence,
        point,
    })
}

/// The drawn point and its evidence, blinded: files renamed and served by index, clips
/// through the blinded media route.
pub(super) async fn blind_point(st: &SchoolState, v: &ReviewRow) -> Result<BlindPoint, ApiError> {
    let sample = istore::sample(&st.store, v.sample_id).await?;
    let sub = istore::submission(&st.store, sample.source_id).await?;
    let list = crate::observe::records::points::points();
    let p = list.get(&sub.point).cloned();
    let media = super::inspect_media::media_entries(st, v).await?;
    let mut k = 0;
    let items = super::inspect_media::point_items(st, v)
        .await?
        .into_iter()
        .enumerate()
        .map(|(i, (e, files))| {
            let item = i + 1;
            let clip = match (e.in_ms, e.out_ms) {
                (Some(a), Some(b)) => Some(BlindClip {
                    in_ms: a,
                    out_ms: b,
                    urls: media
                        .iter()
                        .enumerate()
                        .filter(|(_, m)| m.item() == Some(item))
                        .map(|(j, _)| format!("/api/inspections/reviews/{}/media/{j}", v.id))
                        .collect(),
                }),
                _ => None,
            };
            let files = files
                .iter()
                .enumerate()
                .map(|(j, f)| {
                    let url = format!("/api/inspections/reviews/{}/files/{k}", v.id);
                    k += 1;
                    BlindFile {
                        name: super::inspect_media::blind_file_name(item, j + 1, &f.kind),
                        kind: f.kind.clone(),
                        mime: f.mime.clone(),
                        size: f.size,
                        url,
                    }
                })
                .collect();
            BlindEvidenceItem { item, clip, files }
        })
        .collect();
    Ok(BlindPoint {
        code: sub.point.clone(),
        name: p.as_ref().map(|p| p.name.clone()).unwrap_or_default(),
        name_en: p.as_ref().map(|p| p.name_en.clone()).unwrap_or_default(),
        environment: p
            .as_ref()
            .map(|p| p.environment.clone())
            .unwrap_or_default(),
        dimension: p.map(|p| p.dimension).unwrap_or_default(),
        items,
    })
}

/// The review, when `p` is its reviewer.
pub(super) async fn my_review(
    st: &SchoolState,
    p: &Principal,
    id: &str,
) -> Result<ReviewRow, ApiError> {
    let v = istore::review(&st.store, parse_id(id)?).await?;
    if v.reviewer_id.is_none() || v.reviewer_id != user_id(p) {
        return Err(ApiError::forbidden(
            "not-your-review",
            format!("review {} is assigned to another reviewer", v.id),
        ));
    }
    Ok(v)
}

#[utoipa::path(
    get, path = "/api/inspections/reviews",
    responses((status = 200, description = "the caller's reviews, blinded, newest first", body = Vec<BlindReview>))
)]
pub(super) async fn reviews_list(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
) -> ApiResult {
    let Some(uid) = user_id(&p) else {
        return Ok(Json(Vec::<BlindReview>::new()).into_response());
    };
    let mut out = Vec::new();
    for v in istore::reviewer_reviews(&st.store, uid).await? {
        out.push(blind(&st, &v, false).await?);
    }
    Ok(Json(out).into_response())
}

#[utoipa::path(
    get, path = "/api/inspections/reviews/{id}", params(("id" = i64, Path, description = "the review's id")),
    responses((status = 200, description = "the review with its blinded evidence", body = BlindReview))
)]
pub(super) async fn reviews_get(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult {
    let v = my_review(&st, &p, &id).await?;
    Ok(Json(blind(&st, &v, true).await?).into_response())
}

/// A grade: a `score` for an observation's review, a `grade` for an ability point's.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct GradeBody {
    /// 0 to 100; at or above the round's pass mark passes (observation rounds).
    #[serde(default)]
    score: Option<f64>,
    /// `excellent` (优秀), `pass` (合格) or `fail` (不合格); 不合格 fails (ability-point
    /// rounds).
    #[serde(default)]
    grade: Option<String>,
    /// Why (up to 2000 characters).
    #[serde(default)]
    comment: String,
}

#[utoipa::path(
    put, path = "/api/inspections/reviews/{id}", params(("id" = i64, Path, description = "the review's id")), request_body = GradeBody,
    responses((status = 200, description = "graded (audited; a straddling pair makes a third review)", body = BlindReview))
)]
pub(super) async fn reviews_grade(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<GradeBody>,
) -> ApiResult {
    let v = my_review(&st, &p, &id).await?;
    let r = istore::round(&st.store, v.round_id).await?;
    let mark = match (of_points(&r), b.score, b.grade.as_deref()) {
        (false, Some(score), None) => {
            if !(score.is_finite() && (0.0..=100.0).contains(&score)) {
                return Err(ApiError::invalid(format!(
                    "score must be 0 to 100, not {score}"
                )));
            }
            Mark::Score(score)
        }
        (true, None, Some(g)) => Mark::Point(
            PointGrade::parse(g)
                .ok_or_else(|| {
                    ApiError::invalid(format!(
                        "grade must be excellent, pass or fail, not `{}`",
                        g.chars().take(40).collect::<String>()
                    ))
                })?
                .as_str(),
        ),
        (false, ..) => {
            return Err(ApiError::invalid(
                "an observation's review is graded with a score (0 to 100), not a grade",
            ))
        }
        (true, ..) => {
            return Err(ApiError::invalid(
                "an ability point's review is graded with a grade (excellent, pass or fail), not a score",
            ))
        }
    };
    let comment = b.comment.trim();
    if comment.chars().count() > 2_000 {
        return Err(ApiError::invalid("a comment has at most 2000 characters"));
    }
    istore::grade(&st.store, &v, mark, comment, &p.ident(), st.now()).await?;
    let reviews = istore::sample_reviews(&st.store, v.sample_id).await?;
    let refs: Vec<&ReviewRow> = reviews.iter().collect();
    let verdicts = istore::verdicts(&refs, r.pass_mark);
    if rules::dispute_due_verdicts(&verdicts) {
        let note = format!(
            "grades {} straddle the pass mark {}",
            refs.iter()
                .filter_map(|x| x.score.map(|s| s.to_string()).or_else(|| x.grade.clone()))
                .collect::<Vec<_>>()
                .join(", "),
            if of_points(&r) {
                "(合格)".to_string()
            } else {
                r.pass_mark.to_string()
            }
        );
        extra_review(&st, &p, &r, v.sample_id, Reason::Dispute, &note).await?;
    } else if rules::outcome_of(&verdicts) != Outcome::Pending && !of_points(&r) {
        let sample = istore::sample(&st.store, v.sample_id).await?;
        istore::mark_reviewed(&st.store, sample.source_id, st.now()).await?;
    }
    let v = istore::review(&st.store, v.id).await?;
    Ok(Json(blind(&st, &v, false).await?).into_response())
}
