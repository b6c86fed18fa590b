//! The sampling-inspection routes (抽检, `/api/inspections/…`): rounds, their reviewer pool,
//! the seeded draw, blinded reviews, grades, disputes, appeals and the audit log. The rules
//! are the server's, not the page's; must never put a teacher's, school's or region's name or
//! id into an answer a reviewer receives, and never let a recused reviewer near a sample.
//!
//! | object | read | write |
//! | --- | --- | --- |
//! | round | admins and inspectors whose scope contains the round's place (its managers) | the same (create, pool before the draw, draw once, appeal) |
//! | review | its reviewer only, blinded (a pseudonym, the stratum, the observation's figures or the ability point's evidence) | its reviewer (grade, re-grade; audited) |
//! | a teacher's appeal | | the teacher whose observation (as hub teacher) or ability point was drawn, once, after the outcome |
//!
//! A manager cannot be in a round's pool (a reviewer who can read the round's names is not
//! blind). The audit log (`inspection_audit`) only grows.

use super::*;
use crate::auth::people;
use crate::auth::scope::{Level, Place, Scope};
use crate::observe::inspect::{self as rules, Outcome, Reason, Stratum};
use crate::observe::inspect_store::{
    self as istore, AuditEntry, PoolMember, ReviewRow, RoundRow, SubmissionRow,
};
use crate::observe::records::record::{self as trecord};
use crate::time::Millis;
use rand::Rng;
use serde::Serialize;

/// The largest seed a round takes: 2^53 − 1, so the seed survives a JSON number exactly.
pub(super) const MAX_SEED: i64 = (1 << 53) - 1;

pub(super) fn round_level(r: &RoundRow) -> Result<Level, ApiError> {
    r.level
        .parse::<Level>()
        .map_err(|e| ApiError::from(crate::store::StoreError::Check(e)))
}

/// The round's own scope: its level at its county row's place.
pub(super) async fn round_scope(st: &SchoolState, r: &RoundRow) -> Result<Scope, ApiError> {
    let level = round_level(r)?;
    let place = people::region_place(&st.store, r.region_id)
        .await?
        .unwrap_or_default();
    Ok(Scope { level, place })
}

pub(super) fn manages(p: &Principal, round: &Scope) -> bool {
    matches!(p, Principal::User { role: Role::Admin | Role::Inspector, scope, .. } if scope.contains(round))
}

/// The round, when `p` manages it.
pub(super) async fn managed(
    st: &SchoolState,
    p: &Principal,
    id: i64,
) -> Result<RoundRow, ApiError> {
    let r = istore::round(&st.store, id).await?;
    if !manages(p, &round_scope(st, &r).await?) {
        return Err(out_of_scope(format!("inspection round {id}")));
    }
    Ok(r)
}

// ---- what managers read ----

/// The names of a round's place.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct RoundPlace {
    /// 省.
    province: Option<String>,
    /// 市/州 (city and county rounds).
    city: Option<String>,
    /// 县/区 (county rounds).
    county: Option<String>,
}

/// How far a round is.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Progress {
    /// Samples drawn.
    samples: usize,
    /// Reviews assigned (with or without a reviewer).
    reviews: usize,
    /// Reviews graded.
    graded: usize,
    /// Review slots no one in the pool may take.
    unassigned: usize,
    /// Samples with a dispute review (争议复检).
    disputes: usize,
    /// Samples appealed.
    appeals: usize,
    /// Samples passed.
    passed: usize,
    /// Samples failed.
    failed: usize,
    /// Samples not decided yet.
    pending: usize,
}

/// The pass rate of one unit (a school, county or city one level below the round).
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct UnitRate {
    /// The unit's name.
    unit: String,
    /// Samples drawn from it.
    samples: usize,
    /// Of those, decided.
    decided: usize,
    /// Of those, passed.
    passed: usize,
    /// passed / decided (`null` while none is decided).
    pass_rate: Option<f64>,
}

/// One review as a manager sees it (with the reviewer).
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ReviewSummary {
    /// Id.
    id: i64,
    /// 1, 2, … within the sample.
    ordinal: i64,
    /// Why it exists.
    reason: Reason,
    /// The reviewer's user id (`null`: no one in the pool may take it).
    reviewer_id: Option<i64>,
    /// The reviewer's name.
    reviewer: Option<String>,
    /// The score once graded (observation rounds).
    score: Option<f64>,
    /// The point grade once graded (ability-point rounds): excellent, pass or fail.
    grade: Option<String>,
    /// Unix ms of the latest grade.
    graded_at: Option<Millis>,
}

/// One sample as a manager sees it.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct SampleView {
    /// Id.
    id: i64,
    /// The pseudonym reviewers see.
    pseudonym: String,
    /// The drawn observation (observation rounds).
    observation_id: Option<i64>,
    /// The drawn ability-point submission (ability-point rounds).
    ability_point: Option<SubmissionRow>,
    /// Its unit's name.
    unit: String,
    /// Its stratum.
    stratum: Stratum,
    /// Where it stands.
    outcome: Outcome,
    /// Has a dispute review.
    disputed: bool,
    /// Appealed.
    appealed: bool,
    /// Its reviews, in order.
    reviews: Vec<ReviewSummary>,
}

/// A round as its managers see it: the dashboard's data.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct RoundDetail {
    /// The round (with its seed).
    round: RoundRow,
    /// Where it is.
    place: RoundPlace,
    /// The reviewer pool.
    reviewers: Vec<PoolMember>,
    /// How far it is.
    progress: Progress,
    /// Pass rate per unit.
    units: Vec<UnitRate>,
    /// The samples.
    samples: Vec<SampleView>,
}

/// A sample's outcome from its reviews (in order).
pub(super) fn outcome_of(reviews: &[&ReviewRow], pass_mark: f64) -> Outcome {
    rules::outcome_of(&istore::verdicts(reviews, pass_mark))
}

/// Whether `r` draws ability points.
pub(super) fn of_points(r: &RoundRow) -> bool {
    r.source == "ability_point"
}

pub(super) async fn detail(st: &SchoolState, r: RoundRow) -> Result<RoundDetail, ApiError> {
    let s = &st.store;
    let level = round_level(&r)?;
    let place = people::region_place(s, r.region_id)
        .await?
        .unwrap_or_default();
    let county = if level == Level::County {
        sqlx::query("SELECT county FROM regions WHERE id = $1")
            .bind(r.region_id)
            .fetch_optional(s.pool())
            .await
            .map_err(crate::store::StoreError::from)?
            .map(|row| crate::store::col::<String>(&row, "county"))
            .transpose()?
    } else {
        None
    };
    let place = RoundPlace {
        province: place.province,
        city: if level <= Level::City {
            place.city
        } else {
            None
        },
        county,
    };
    let pool = istore::pool(s, r.id).await?;
    let names: HashMap<i64, String> = pool
        .iter()
        .map(|m| (m.user_id, m.display_name.clone()))
        .collect();
    let samples = istore::samples(s, r.id).await?;
    let reviews = istore::round_reviews(s, r.id).await?;
    let mut progress = Progress {
        samples: samples.len(),
        reviews: reviews.len(),
        graded: reviews.iter().filter(|v| v.score.is_some()).count(),
        unassigned: reviews.iter().filter(|v| v.reviewer_id.is_none()).count(),
        disputes: 0,
        appeals: samples.iter().filter(|x| x.appealed).count(),
        passed: 0,
        failed: 0,
        pending: 0,
    };
    let mut units: Vec<UnitRate> = Vec::new();
    let mut unit_index: HashMap<String, usize> = HashMap::new();
    let mut views = Vec::new();
    for x in samples {
        let mine: Vec<&ReviewRow> = reviews.iter().filter(|v| v.sample_id == x.id).collect();
        let outcome = outcome_of(&mine, r.pass_mark);
        let disputed = mine.iter().any(|v| v.reason == Reason::Dispute);
        progress.disputes += usize::from(disputed);
        match outcome {
            Outcome::Passed => progress.passed += 1,
            Outcome::Failed => progress.failed += 1,
            Outcome::Pending => progress.pending += 1,
        }
        let i = *unit_index.entry(x.unit_key.clone()).or_insert_with(|| {
            units.push(UnitRate {
                unit: x.unit_name.clone(),
                samples: 0,
                decided: 0,
                passed: 0,
                pass_rate: None,
            });
            units.len() - 1
        });
        let u = &mut units[i];
        u.samples += 1;
        u.decided += usize::from(outcome != Outcome::Pending);
        u.passed += usize::from(outcome == Outcome::Passed);
        let (observation_id, ability_point) = if of_points(&r) {
            (None, Some(istore::submission(s, x.source_id).await?))
        } else {
            (Some(x.source_id), None)
        };
        views.push(SampleView {
            id: x.id,
            pseudonym: x.pseudonym,
            observation_id,
            ability_point,
            unit: x.unit_name,
            stratum: Stratum {
                stage: x.stage,
                subject: x.subject,
                school_kind: x.school_kind,
                area: x.area,
            },
            outcome,
            disputed,
            appealed: x.appealed,
            reviews: mine
                .iter()
                .map(|v| ReviewSummary {
                    id: v.id,
                    ordinal: v.ordinal,
                    reason: v.reason,
                    reviewer_id: v.reviewer_id,
                    reviewer: v.reviewer_id.and_then(|u| names.get(&u).cloned()),
                    score: v.score,
                    grade: v.grade.clone(),
                    graded_at: v.graded_at,
                })
                .collect(),
        });
    }
    for u in &mut units {
        u.pass_rate = (u.decided > 0).then(|| u.passed as f64 / u.decided as f64);
    }
    units.sort_by(|a, b| a.unit.cmp(&b.unit));
    Ok(RoundDetail {
        round: r,
        place,
        reviewers: pool,
        progress,
        units,
        samples: views,
    })
}

#[utoipa::path(
    get, path = "/api/inspections/rounds",
    responses((status = 200, description = "the rounds the caller manages, newest first", body = Vec<RoundRow>))
)]
pub(super) async fn rounds_list(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
) -> ApiResult {
    let mut out = Vec::new();
    for r in istore::rounds(&st.store).await? {
        if manages(&p, &round_scope(&st, &r).await?) {
            out.push(r);
        }
    }
    Ok(Json(out).into_response())
}

/// A new round.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewRoundBody {
    /// Name ("2026秋 县级抽检").
    name: String,
    /// `county`, `city` or `province`.
    level: String,
    /// A county row (regions) of the round's place.
    region_id: i64,
    /// The share drawn; at least the level's (county 0.10, city 0.02, province 0.005), its
    /// default.
    #[serde(default)]
    ratio: Option<f64>,
    /// The draw's seed (0 to 2^53 − 1); a random one when absent. Stored and shown.
    #[serde(default)]
    seed: Option<i64>,
    /// What is drawn: `observation` (default: submitted observations) or `ability_point`
    /// (a term's graded micro-ability points, each with its evidence; needs `term`).
    #[serde(default)]
    source: Option<String>,
    /// The term an `ability_point` round draws from ("2026秋"); not for observation rounds.
    #[serde(default)]
    term: Option<String>,
    /// Reviews per sample (1 to 5, default 2).
    #[serde(default)]
    reviews_per_sample: Option<i64>,
    /// The pass mark of a review's score (0 to 100, default 60).
    #[serde(default)]
    pass_mark: Option<f64>,
}

#[utoipa::path(
    post, path = "/api/inspections/rounds", request_body = NewRoundBody,
    responses((status = 201, description = "the round (open: set its pool, then draw)", body = RoundDetail, headers(("location" = String, description = "the round"))))
)]
pub(super) async fn rounds_create(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    JsonBody(b): JsonBody<NewRoundBody>,
) -> ApiResult {
    let name = b.name.trim();
    let mut problems = Vec::new();
    if name.is_empty() || name.chars().count() > 200 {
        problems.push("name: 1 to 200 characters".to_string());
    }
    let level = match b.level.parse::<Level>() {
        Ok(l) if rules::default_ratio(l).is_some() => Some(l),
        _ => {
            problems.push(format!(
                "level: `{}` is not county, city or province",
                b.level.chars().take(40).collect::<String>()
            ));
            None
        }
    };
    let min = level.and_then(rules::default_ratio);
    let ratio = b.ratio.or(min);
    if let (Some(r), Some(m)) = (ratio, min) {
        if !(r.is_finite() && r >= m && r <= 1.0) {
            problems.push(format!(
                "ratio: {r} is not between the level's minimum {m} and 1"
            ));
        }
    }
    let seed = b
        .seed
        .unwrap_or_else(|| rand::rng().random_range(0..=MAX_SEED));
    if !(0..=MAX_SEED).contains(&seed) {
        problems.push(format!("seed: {seed} is not 0 to 2^53 - 1"));
    }
    let reviews = b.reviews_per_sample.unwrap_or(2);
    if !(1..=5).contains(&reviews) {
        problems.push(format!("reviews_per_sample: {reviews} is not 1 to 5"));
    }
    let pass_mark = b.pass_mark.unwrap_or(60.0);
    if !(pass_mark.is_finite() && (0.0..=100.0).contains(&pass_mark)) {
        problems.push(format!("pass_mark: {pass_mark} is not 0 to 100"));
    }
    let source = b.source.as_deref().unwrap_or("observation");
    let term = b.term.as_deref().map(str::trim);
    match (source, term) {
        ("observation", None) => {}
        ("observation", Some(_)) => {
            problems.push("term: only an ability_point round draws from a term".to_string())
        }
        ("ability_point", Some(t)) if !t.is_empty() => {
            if trecord::term_named(&st.store, t).await.is_err() {
                problems.push(format!(
                    "term: there is no term `{}`",
                    t.chars().take(40).collect::<String>()
                ));
            }
        }
        ("ability_point", _) => {
            problems.push("term: an ability_point round needs its term (2026秋)".to_string())
        }
        (other, _) => problems.push(format!(
            "source: `{}` is not observation or ability_point",
            other.chars().take(40).collect::<String>()
        )),
    }
    if !problems.is_empty() {
        return Err(invalid_list("the round is not valid", problems));
    }
    let (Some(level), Some(ratio)) = (level, ratio) else {
        return Err(ApiError::invalid("the round is not valid"));
    };
    let Some(place) = people::region_place(&st.store, b.region_id).await? else {
        return Err(ApiError::invalid(format!(
            "there is no region {}",
            b.region_id
        )));
    };
    if !manages(&p, &Scope { level, place }) {
        return Err(out_of_scope(format!(
            "a {} round at region {}",
            level.as_str(),
            b.region_id
        )));
    }
    let id = istore::insert_round(
        &st.store,
        &istore::NewRound {
            name,
            level: level.as_str(),
            region_id: b.region_id,
            source,
            term: term.filter(|_| source == "ability_point"),
            ratio,
            seed,
            reviews_per_sample: reviews,
            pass_mark,
        },
        &p.ident(),
        st.now(),
    )
    .await?;
    let r = istore::round(&st.store, id).await?;
    let d = detail(&st, r).await?;
    Ok(created(format!("/api/inspections/rounds/{id}"), json!(d)))
}

#[utoipa::path(
    get, path = "/api/inspections/rounds/{id}", params(("id" = i64, Path, description = "the round's id")),
    responses((status = 200, description = "the round: seed, pool, progress, disputes, pass rate per unit, samples", body = RoundDetail))
)]
pub(super) async fn rounds_get(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult {
    let r = managed(&st, &p, parse_id(&id)?).await?;
    Ok(Json(detail(&st, r).await?).into_response())
}

/// One member of a pool.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PoolEntry {
    /// An inspector's user id.
    user_id: i64,
    /// In the expert pool (filled first).
    #[serde(default)]
    expert: bool,
}

/// A round's reviewer pool.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PoolBody {
    /// The reviewers (inspectors who do not manage the round).
    reviewers: Vec<PoolEntry>,
}

pub(super) fn round_drawn(id: i64) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "round-drawn",
        format!("inspection round {id} is drawn already"),
    )
}

#[utoipa::path(
    put, path = "/api/inspections/rounds/{id}/reviewers", params(("id" = i64, Path, description = "the round's id")), request_body = PoolBody,
    responses((status = 200, description = "the pool now", body = Vec<PoolMember>))
)]
pub(super) async fn rounds_pool(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<PoolBody>,
) -> ApiResult {
    let r = managed(&st, &p, parse_id(&id)?).await?;
    if r.state != "open" {
        return Err(round_drawn(r.id));
    }
    let scope = round_scope(&st, &r).await?;
    if b.reviewers.len() > 500 {
        return Err(ApiError::invalid("a pool holds at most 500 reviewers"));
    }
    let mut problems = Vec::new();
    let mut members: Vec<(i64, bool)> = Vec::new();
    for e in &b.reviewers {
        if members.iter().any(|(u, _)| *u == e.user_id) {
            problems.push(format!("user {} is named twice", e.user_id));
            continue;
        }
        let u = match people::get_user(&st.store, e.user_id).await {
            Ok(u) => u,
            Err(crate::store::StoreError::NotFound(_)) => {
                problems.push(format!("there is no user {}", e.user_id));
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        if u.role != Role::Inspector || u.disabled {
            problems.push(format!("user {} is not an active inspector", u.id));
            continue;
        }
        let s = people::scope_of(&st.store, u.scope, u.school_id, u.region_id).await?;
        if s.as_ref().is_ok_and(|s| s.contains(&scope)) {
            problems.push(format!(
                "user {} manages this round, so cannot review it blind",
                u.id
            ));
            continue;
        }
        members.push((u.id, e.expert));
    }
    if !problems.is_empty() {
        return Err(invalid_list("the pool is not valid", problems));
    }
    if !istore::set_pool(&st.store, r.id, &members, &p.ident(), st.now()).await? {
        return Err(round_drawn(r.id));
    }
    Ok(Json(istore::pool(&st.store, r.id).await?).into_response())
}

/// The pool as the assignment rule sees it (scopes with their full place; a broken one is
/// recused everywhere).
pub(super) async fn pool_reviewers(
    st: &SchoolState,
    round_id: i64,
) -> Result<Vec<rules::Reviewer>, ApiError> {
    let mut out = Vec::new();
    for m in istore::pool(&st.store, round_id).await? {
        let u = people::get_user(&st.store, m.user_id).await?;
        if u.disabled {
            continue;
        }
        let scope = people::scope_of(&st.store, u.scope, u.school_id, u.region_id)
            .await?
            .unwrap_or(Scope {
                level: Level::School,
                place: Place::default(),
            });
        out.push(rules::Reviewer {
            user_id: u.id,
            expert: m.expert,
            scope,
        });
    }
    Ok(out)
}

/// How many reviews each reviewer of the round has.
pub(super) fn loads(reviews: &[ReviewRow]) -> BTreeMap<i64, usize> {
    let mut load = BTreeMap::new();
    for r in reviews {
        if let Some(u) = r.reviewer_id {
            *load.entry(u).or_default() += 1;
        }
    }
    load
}

use std::collections::BTreeMap;

#[utoipa::path(
    post, path = "/api/inspections/rounds/{id}/draw", params(("id" = i64, Path, description = "the round's id")),
    responses((status = 200, description = "drawn: the samples and their reviewers", body = RoundDetail))
)]
pub(super) async fn rounds_draw(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult {
    let r = managed(&st, &p, parse_id(&id)?).await?;
    if r.state != "open" {
        return Err(round_drawn(r.id));
    }
    let level = round_level(&r)?;
    let scope = round_scope(&st, &r).await?;
    let pool = pool_reviewers(&st, r.id).await?;
    if pool.is_empty() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "round-without-reviewers",
            format!(
                "inspection round {} has no reviewers: set its pool first",
                r.id
            ),
        ));
    }
    let unit = rules::unit_level(level).unwrap_or(Level::School);
    let mut found = Vec::new();
    let population = match (of_points(&r), r.term.as_deref()) {
        (false, _) => istore::observation_candidates(&st.store).await?,
        (true, Some(term)) => istore::point_candidates(&st.store, term, st.now()).await?,
        (true, None) => {
            return Err(ApiError::internal(format!(
                "ability-point round {} has no term",
                r.id
            )))
        }
    };
    for c in population {
        let place = Place {
            province: c.province.clone(),
            city: c.city.clone(),
            region_id: c.region_id,
            school_id: Some(c.school_id),
        };
        if scope.covers(&place) {
            found.push((c, place));
        }
    }
    let candidates: Vec<rules::Candidate> = found
        .iter()
        .map(|(c, _)| rules::Candidate {
            source_id: c.id,
            stratum: Stratum {
                stage: c.stage.unwrap_or_else(|| rules::stage_of(&c.grade)).into(),
                subject: c.subject.clone(),
                school_kind: c.school_kind.clone(),
                area: c.area.clone(),
            },
        })
        .collect();
    let seed = r.seed as u64;
    let drawn = rules::draw(&candidates, r.ratio, seed);
    let by_id: HashMap<i64, usize> = found
        .iter()
        .enumerate()
        .map(|(i, (c, _))| (c.id, i))
        .collect();
    let needs: Vec<rules::Need> = drawn
        .chosen
        .iter()
        .enumerate()
        .map(|(i, (sid, _))| rules::Need {
            sample_id: i as i64,
            school: found[by_id[sid]].1.clone(),
            taken: Vec::new(),
            slots: r.reviews_per_sample as usize,
        })
        .collect();
    let mut load = BTreeMap::new();
    let assigned = rules::assign(level, &pool, &needs, seed, &mut load);
    let strata: std::collections::BTreeSet<&Stratum> =
        candidates.iter().map(|c| &c.stratum).collect();
    let samples: Vec<istore::NewSample> = drawn
        .chosen
        .iter()
        .enumerate()
        .map(|(i, (sid, pseudonym))| {
            let (c, _) = &found[by_id[sid]];
            let k = &candidates[by_id[sid]];
            let (unit_key, unit_name) = match unit {
                Level::School => (format!("school:{}", c.school_id), c.school_name.clone()),
                Level::County => (
                    format!("county:{}", c.region_id.unwrap_or(0)),
                    c.county.clone().unwrap_or_default(),
                ),
                _ => (
                    format!(
                        "city:{}/{}",
                        c.province.as_deref().unwrap_or(""),
                        c.city.as_deref().unwrap_or("")
                    ),
                    c.city.clone().unwrap_or_default(),
                ),
            };
            istore::NewSample {
                source_id: *sid,
                pseudonym: pseudonym.clone(),
                stage: k.stratum.stage.clone(),
                subject: k.stratum.subject.clone(),
                school_kind: k.stratum.school_kind.clone(),
                area: k.stratum.area.clone(),
                unit_key,
                unit_name,
                school_id: c.school_id,
                reviewers: assigned
                    .iter()
                    .filter(|(n, _)| *n == i as i64)
                    .map(|(_, u)| *u)
                    .collect(),
            }
        })
        .collect();
    let note = format!(
        "seed {} population {} ratio {} target {} strata {} drawn {}",
        r.seed,
        candidates.len(),
        r.ratio,
        drawn.target,
        strata.len(),
        samples.len()
    );
    if !istore::record_draw(
        &st.store,
        r.id,
        candidates.len() as i64,
        &samples,
        &note,
        &p.ident(),
        st.now(),
    )
    .await?
    {
        return Err(round_drawn(r.id));
    }
    let r = istore::round(&st.store, r.id).await?;
    Ok(Json(detail(&st, r).await?).into_response())
}

#[utoipa::path(
    get, path = "/api/inspections/rounds/{id}/audit", params(("id" = i64, Path, description = "the round's id")),
    responses((status = 200, description = "every grade and change of the round, in order (append-only)", body = Vec<AuditEntry>))
)]
pub(super) async fn rounds_audit(
    State(st): State<Arc<SchoolState>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult {
    let r = managed(&st, &p, parse_id(&id)?).await?;
    Ok(Json(istore::audit_log(&st.store, r.id).await?).into_response())
}

/// Adds a dispute's or an appeal's review to a sample, assigned by the same rule as the
/// draw (the sample's reviewers so far excluded). `None`: that kind exists already.
pub(super) async fn extra_review(
    st: &SchoolState,
    p: &Principal,
    r: &RoundRow,
    sample_id: i64,
    reason: Reason,
    note: &str,
) -> Result<Option<i64>, ApiError> {
    let sample = istore::sample(&st.store, sample_id).await?;
    let level = round_level(r)?;
    let school = Directory::load(&st.store).await?.school(sample.school_id);
    let pool = pool_reviewers(st, r.id).await?;
    let all = istore::round_reviews(&st.store, r.id).await?;
    let mut load = loads(&all);
    let taken: Vec<i64> = all
        .iter()
        .filter(|v| v.sample_id == sample_id)
        .filter_map(|v| v.reviewer_id)
        .collect();
    let need = rules::Need {
        sample_id,
        school,
        taken,
        slots: 1,
    };
    let pick = rules::assign(level, &pool, &[need], r.seed as u64, &mut load)
        .first()
        .and_then(|(_, u)| *u);
    Ok(istore::add_review(
        &st.store,
        r.id,
        sample_id,
        pick,
        reason,
        note,
        &p.ident(),
        st.now(),
    )
    .await?)
}
