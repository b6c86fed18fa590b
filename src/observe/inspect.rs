//! Sampling inspection (抽检) decisions as pure functions: the seeded stratified draw, the
//! same-level recusal rule (同级回避), experts-first reviewer assignment (专家优先), the dispute
//! rule (争议复检) and a sample's outcome. Everything they depend on is an argument (the seed
//! too), so a stored seed repeats a draw exactly; must never touch the store, a clock or HTTP.
//!
//! The Sichuan model: each level re-checks a share of the level below (county ≥ 10 %, city
//! ≥ 2 %, province ≥ 0.5 %). A round at a level is anchored at one place of the tree; its
//! *units* are the places one level below it (a county round's units are its schools, a
//! city round's its counties, a province round's its cities).

use std::collections::{BTreeMap, BTreeSet};

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::auth::scope::{Level, Place, Scope};

/// The smallest share a round at `level` draws (county 10 %, city 2 %, province 0.5 %), or
/// `None` for a level that holds no rounds.
pub fn default_ratio(level: Level) -> Option<f64> {
    match level {
        Level::County => Some(0.10),
        Level::City => Some(0.02),
        Level::Province => Some(0.005),
        _ => None,
    }
}

/// The level of a round's units: one below the round.
pub fn unit_level(round: Level) -> Option<Level> {
    match round {
        Level::County => Some(Level::School),
        Level::City => Some(Level::County),
        Level::Province => Some(Level::City),
        _ => None,
    }
}

/// The school stage (学段) a lesson's grade belongs to: `primary` (小学, 一–六年级),
/// `junior` (初中, 七–九年级 or 初一–初三), `senior` (高中, 高一–高三), else `other`.
pub fn stage_of(grade: &str) -> &'static str {
    let g = grade.trim();
    if g.starts_with('高') || g.contains("高中") {
        "senior"
    } else if g.starts_with('初')
        || g.contains("初中")
        || ["七", "八", "九", "7", "8", "9"]
            .iter()
            .any(|d| g.starts_with(d))
    {
        "junior"
    } else if [
        "一", "二", "三", "四", "五", "六", "1", "2", "3", "4", "5", "6",
    ]
    .iter()
    .any(|d| g.starts_with(d))
        || g.contains("小学")
    {
        "primary"
    } else {
        "other"
    }
}

/// A stratum of the draw (类别): every one present gets at least one draw.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, utoipa::ToSchema)]
pub struct Stratum {
    /// `primary`, `junior`, `senior` or `other` ([`stage_of`]).
    pub stage: String,
    /// The lesson's subject (学科).
    pub subject: String,
    /// The school's kind: `hub` or `partner`.
    pub school_kind: String,
    /// `urban`, `rural` or `unknown`.
    pub area: String,
}

/// Something that may be drawn: its id (an observation's) and its stratum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The drawn item's id.
    pub source_id: i64,
    /// Its stratum.
    pub stratum: Stratum,
}

/// A draw: the chosen items with their pseudonyms, and how many the ratio alone asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Draw {
    /// (source id, pseudonym), by pseudonym.
    pub chosen: Vec<(i64, String)>,
    /// ⌈ratio × population⌉: the draw is this large, or larger when there are more strata.
    pub target: usize,
}

/// How many of `population` a ratio asks for: ⌈ratio × population⌉, computed in parts per
/// 100 000 so 10 % of 30 is 3, not the 4 a float product (3.0000000000000004) would give.
pub fn target(ratio: f64, population: usize) -> usize {
    let parts = (ratio.clamp(0.0, 1.0) * 100_000.0).round() as usize;
    (population * parts).div_ceil(100_000).min(population)
}

/// The seeded stratified draw. Candidates are taken in id order (their input order does not
/// matter); a ChaCha8 stream from `seed` first picks one item of every stratum (strata in
/// their sorted order), then fills up to [`target`] uniformly from the rest; pseudonyms
/// (`S-001`, …) are dealt in a shuffled order, so they say nothing about ids. The same
/// candidates, ratio and seed always give the same draw.
pub fn draw(candidates: &[Candidate], ratio: f64, seed: u64) -> Draw {
    let mut all: Vec<&Candidate> = candidates.iter().collect();
    all.sort_by_key(|c| c.source_id);
    all.dedup_by_key(|c| c.source_id);
    let want = target(ratio, all.len());
    let mut strata: BTreeMap<&Stratum, Vec<i64>> = BTreeMap::new();
    for c in &all {
        strata.entry(&c.stratum).or_default().push(c.source_id);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut chosen = BTreeSet::new();
    for ids in strata.values() {
        chosen.insert(ids[rng.random_range(0..ids.len())]);
    }
    let mut rest: Vec<i64> = all
        .iter()
        .map(|c| c.source_id)
        .filter(|id| !chosen.contains(id))
        .collect();
    rest.shuffle(&mut rng);
    let more = want.saturating_sub(chosen.len());
    chosen.extend(rest.into_iter().take(more));
    let mut order: Vec<i64> = chosen.into_iter().collect();
    order.shuffle(&mut rng);
    let width = order.len().to_string().len().max(3);
    let chosen = order
        .into_iter()
        .enumerate()
        .map(|(i, id)| (id, format!("S-{:0width$}", i + 1)))
        .collect();
    Draw {
        chosen,
        target: want,
    }
}

/// One evidence item of an ability point (微能力点) as the draw sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PointEvidence {
    /// Whose.
    pub teacher_id: i64,
    /// The point's code (A1…).
    pub point: String,
    /// Its grade, once graded.
    pub grade: Option<crate::observe::records::grading::Grade>,
    /// The subject and grade (年级) of the lesson its clip comes from, when it has one.
    pub lesson: Option<(String, String)>,
}

/// A teacher's point in the term that a round may draw, with its stratum's stage and
/// subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PointSubmission {
    /// Whose.
    pub teacher_id: i64,
    /// The point's code.
    pub point: String,
    /// [`stage_of`] the first clip's lesson grade; `other` without a clip.
    pub stage: &'static str,
    /// The first clip's lesson subject; without a clip, the teacher's first subject.
    pub subject: String,
}

/// The drawable ability-point submissions among a term's evidence items: each (teacher,
/// point) whose grade is decided by the rule of `records::grading` (every item graded, or one
/// failed); a point still waiting for a grade is not drawn (an inspection re-checks a
/// decided grade). The stratum comes from the first item (in input order) with a clip, else
/// the teacher's first subject (`subjects`). Sorted by teacher, then point.
pub fn drawable_points(
    items: &[PointEvidence],
    subjects: &BTreeMap<i64, String>,
) -> Vec<PointSubmission> {
    let mut groups: BTreeMap<(i64, &str), Vec<&PointEvidence>> = BTreeMap::new();
    for e in items {
        groups
            .entry((e.teacher_id, e.point.as_str()))
            .or_default()
            .push(e);
    }
    groups
        .into_iter()
        .filter_map(|((teacher_id, point), es)| {
            let grades: Vec<_> = es.iter().map(|e| e.grade).collect();
            let (status, _) = crate::observe::records::grading::point_grade(&grades);
            if status != crate::observe::records::grading::PointStatus::Graded {
                return None;
            }
            let (stage, subject) = match es.iter().find_map(|e| e.lesson.as_ref()) {
                Some((subject, grade)) => (stage_of(grade), subject.clone()),
                None => (
                    "other",
                    subjects.get(&teacher_id).cloned().unwrap_or_default(),
                ),
            };
            Some(PointSubmission {
                teacher_id,
                point: point.to_string(),
                stage,
                subject,
            })
        })
        .collect()
}

/// Whether `place` names the part of the tree a scope at `level` compares (a school's id, a
/// county row, a city, a province).
fn known_at(place: &Place, level: Level) -> bool {
    match level {
        Level::School => place.school_id.is_some(),
        Level::County => place.region_id.is_some(),
        Level::City => place.province.is_some() && place.city.is_some(),
        Level::Province => place.province.is_some(),
        Level::Global => true,
    }
}

/// Same-level recusal (同级回避): whether a reviewer acting in `reviewer` (a scope whose place
/// names every level above it, as `auth::people::scope_of` loads it) must not review a sample
/// from the school at `school` in a round at `round`. The reviewer's own organisation at the
/// units' level is their scope raised to that level (a teacher-expert's school's county, for
/// a city round); the reviewer is recused when the sample's unit is, or lies under, it. A
/// reviewer acting above the units' level (the inspecting office, another city) is not; a
/// reviewer whose place is too incomplete to tell is (least privilege).
pub fn recused(reviewer: &Scope, round: Level, school: &Place) -> bool {
    let Some(unit) = unit_level(round) else {
        return true;
    };
    if reviewer.level > unit {
        return false;
    }
    if !known_at(&reviewer.place, unit) {
        return true;
    }
    Scope {
        level: unit,
        place: reviewer.place.clone(),
    }
    .covers(school)
}

/// A member of a round's reviewer pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reviewer {
    /// User id.
    pub user_id: i64,
    /// In the expert pool (专家库): filled first.
    pub expert: bool,
    /// Where the reviewer acts.
    pub scope: Scope,
}

/// A sample that needs `slots` more reviewers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Need {
    /// The sample.
    pub sample_id: i64,
    /// Its school's place.
    pub school: Place,
    /// Reviewers it already has (never assigned twice).
    pub taken: Vec<i64>,
    /// How many more.
    pub slots: usize,
}

/// Experts-first assignment (专家优先). For each need in order, each slot goes to the
/// eligible reviewer (not recused, not already on the sample) who is an expert if any
/// eligible one is, then has the fewest reviews so far (`load`, updated), then comes first
/// in an order shuffled from `seed`. A slot no one may take is `None`. Deterministic.
pub fn assign(
    round: Level,
    pool: &[Reviewer],
    needs: &[Need],
    seed: u64,
    load: &mut BTreeMap<i64, usize>,
) -> Vec<(i64, Option<i64>)> {
    let mut order: Vec<&Reviewer> = pool.iter().collect();
    order.sort_by_key(|r| r.user_id);
    order.dedup_by_key(|r| r.user_id);
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_a551_9e00);
    order.shuffle(&mut rng);
    let mut out = Vec::new();
    for n in needs {
        let mut taken: Vec<i64> = n.taken.clone();
        for _ in 0..n.slots {
            let pick = order
                .iter()
                .enumerate()
                .filter(|(_, r)| {
                    !taken.contains(&r.user_id) && !recused(&r.scope, round, &n.school)
                })
                .min_by_key(|(i, r)| (!r.expert, load.get(&r.user_id).copied().unwrap_or(0), *i))
                .map(|(_, r)| r.user_id);
            if let Some(u) = pick {
                taken.push(u);
                *load.entry(u).or_default() += 1;
            }
            out.push((n.sample_id, pick));
        }
    }
    out
}

/// Why a review exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Reason {
    /// Assigned at the draw.
    Draw,
    /// The third review of two grades on opposite sides of pass/fail (争议复检).
    Dispute,
    /// The extra review an appeal asked for.
    Appeal,
}

impl Reason {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Draw => "draw",
            Reason::Dispute => "dispute",
            Reason::Appeal => "appeal",
        }
    }

    /// Reads a stored name.
    pub fn parse(s: &str) -> Option<Reason> {
        match s {
            "draw" => Some(Reason::Draw),
            "dispute" => Some(Reason::Dispute),
            "appeal" => Some(Reason::Appeal),
            _ => None,
        }
    }
}

/// A review as the rules see it: why it exists and its score once graded.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Grade {
    /// Why.
    pub reason: Reason,
    /// The score (0–100), once graded.
    pub score: Option<f64>,
}

/// A review as the pass/fail rules see it: why it exists and, once graded, whether it
/// passed. A scored review (an observation's, 0–100) passes at or above the round's pass
/// mark ([`Grade::verdict`]); a point review (an ability point's 优秀/合格/不合格) passes
/// unless it is 不合格 ([`point_passes`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    /// Why.
    pub reason: Reason,
    /// Passed (`None`: not graded yet).
    pub pass: Option<bool>,
}

impl Grade {
    /// This scored review as a pass/fail verdict at `pass_mark`.
    pub fn verdict(&self, pass_mark: f64) -> Verdict {
        Verdict {
            reason: self.reason,
            pass: self.score.map(|s| s >= pass_mark),
        }
    }
}

/// Whether a point grade (微能力点: 优秀/合格/不合格) passes: 优秀 and 合格 do, 不合格 fails.
pub fn point_passes(g: crate::observe::records::grading::Grade) -> bool {
    g != crate::observe::records::grading::Grade::Fail
}

/// Whether the draw's reviews are all graded and straddle the pass mark (one passes, one
/// fails) while no dispute review exists yet: then a third review is due.
pub fn dispute_due(grades: &[Grade], pass_mark: f64) -> bool {
    let v: Vec<Verdict> = grades.iter().map(|g| g.verdict(pass_mark)).collect();
    dispute_due_verdicts(&v)
}

/// [`dispute_due`] over pass/fail verdicts (scored or point reviews alike): the draw's
/// reviews all graded, one passed and one failed, and no dispute review yet.
pub fn dispute_due_verdicts(v: &[Verdict]) -> bool {
    let first: Vec<&Verdict> = v.iter().filter(|g| g.reason == Reason::Draw).collect();
    if first.len() < 2 || v.iter().any(|g| g.reason == Reason::Dispute) {
        return false;
    }
    let Some(passes) = first.iter().map(|g| g.pass).collect::<Option<Vec<bool>>>() else {
        return false;
    };
    passes.contains(&true) && passes.contains(&false)
}

/// A sample's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// A review is not graded yet (or has no reviewer).
    Pending,
    /// Passed (合格).
    Passed,
    /// Failed (不合格).
    Failed,
}

/// The outcome of a sample's reviews (in order): pending while any is ungraded, else the
/// majority of pass/fail; a tie goes to the latest review (the dispute or appeal review).
pub fn outcome(grades: &[Grade], pass_mark: f64) -> Outcome {
    let v: Vec<Verdict> = grades.iter().map(|g| g.verdict(pass_mark)).collect();
    outcome_of(&v)
}

/// [`outcome`] over pass/fail verdicts (scored or point reviews alike).
pub fn outcome_of(v: &[Verdict]) -> Outcome {
    let Some(passes) = v.iter().map(|g| g.pass).collect::<Option<Vec<bool>>>() else {
        return Outcome::Pending;
    };
    let Some(last) = passes.last().copied() else {
        return Outcome::Pending;
    };
    let pass = passes.iter().filter(|p| **p).count();
    let fail = passes.len() - pass;
    let passed = match pass.cmp(&fail) {
        std::cmp::Ordering::Greater => true,
        std::cmp::Ordering::Less => false,
        std::cmp::Ordering::Equal => last,
    };
    if passed {
        Outcome::Passed
    } else {
        Outcome::Failed
    }
}

#[cfg(test)]
#[path = "inspect_tests.rs"]
mod tests;
