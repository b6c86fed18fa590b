//! Tests of the sampling-inspection rules (`inspect.rs`): the draw repeats from its seed and
//! covers every stratum; recusal holds for every generated assignment over random
//! organisation trees (checked against the tree itself, not through `Scope`); experts first;
//! the dispute and outcome rules. Must never touch the store.

use super::*;
use proptest::prelude::*;

fn stratum(stage: &str, subject: &str, kind: &str, area: &str) -> Stratum {
    Stratum {
        stage: stage.into(),
        subject: subject.into(),
        school_kind: kind.into(),
        area: area.into(),
    }
}

fn population() -> Vec<Candidate> {
    let subjects = ["英语", "音乐", "美术", "数学"];
    (1..=120)
        .map(|i| Candidate {
            source_id: i * 7,
            stratum: stratum(
                if i % 3 == 0 { "junior" } else { "primary" },
                subjects[(i % 4) as usize],
                if i % 5 == 0 { "hub" } else { "partner" },
                if i % 2 == 0 { "rural" } else { "urban" },
            ),
        })
        .collect()
}

#[test]
fn a_draw_is_reproducible_from_its_seed() {
    let c = population();
    let a = draw(&c, 0.10, 20_260_907);
    let b = draw(&c, 0.10, 20_260_907);
    assert_eq!(a, b);
    // The candidates' order does not matter.
    let mut rev = c.clone();
    rev.reverse();
    assert_eq!(draw(&rev, 0.10, 20_260_907), a);
    // Another seed draws another sample (of 120 items, the chance of the same is nil).
    let other = draw(&c, 0.10, 20_260_908);
    let ids = |d: &Draw| d.chosen.iter().map(|(i, _)| *i).collect::<BTreeSet<_>>();
    assert_ne!(ids(&other), ids(&a));
    // 10 % of 120 is 12, but the 2 × 4 × 2 × 2 = 32 strata present need one each.
    let strata: BTreeSet<&Stratum> = c.iter().map(|c| &c.stratum).collect();
    assert_eq!(a.target, 12);
    assert_eq!(a.chosen.len(), strata.len());
}

#[test]
fn the_ratio_is_counted_exactly() {
    // 0.1 × 30 is 3.0000000000000004 in floats; the draw asks for 3.
    assert_eq!(target(0.10, 30), 3);
    assert_eq!(target(0.10, 31), 4);
    assert_eq!(target(0.02, 100), 2);
    assert_eq!(target(0.005, 1), 1);
    assert_eq!(target(0.005, 201), 2);
    assert_eq!(target(0.10, 0), 0);
    assert_eq!(target(1.0, 7), 7);
    assert!(draw(&[], 0.1, 1).chosen.is_empty());
}

#[test]
fn stages_from_grades() {
    assert_eq!(stage_of("三年级"), "primary");
    assert_eq!(stage_of("六年级"), "primary");
    assert_eq!(stage_of("七年级"), "junior");
    assert_eq!(stage_of("初二"), "junior");
    assert_eq!(stage_of("高一"), "senior");
    assert_eq!(stage_of("学前班"), "other");
}

fn arb_candidates() -> impl Strategy<Value = Vec<Candidate>> {
    prop::collection::vec(
        (1i64..500, 0usize..3, 0usize..4, 0usize..2, 0usize..3),
        0..80,
    )
    .prop_map(|v| {
        v.into_iter()
            .map(|(id, st, su, k, a)| Candidate {
                source_id: id,
                stratum: stratum(
                    ["primary", "junior", "senior"][st],
                    ["英语", "音乐", "美术", "数学"][su],
                    ["hub", "partner"][k],
                    ["urban", "rural", "unknown"][a],
                ),
            })
            .collect()
    })
}

proptest! {
    /// Every stratum present gets a draw; the draw is max(⌈ratio·N⌉, strata) distinct drawn
    /// items with distinct pseudonyms; it repeats from its seed.
    #[test]
    fn every_stratum_is_covered(c in arb_candidates(), ratio in 0.001f64..1.0, seed in any::<u64>()) {
        let d = draw(&c, ratio, seed);
        prop_assert_eq!(&d, &draw(&c, ratio, seed));
        let mut by_id: BTreeMap<i64, &Stratum> = BTreeMap::new();
        for x in &c {
            by_id.entry(x.source_id).or_insert(&x.stratum);
        }
        let strata: BTreeSet<&Stratum> = by_id.values().copied().collect();
        let ids: BTreeSet<i64> = d.chosen.iter().map(|(i, _)| *i).collect();
        let names: BTreeSet<&String> = d.chosen.iter().map(|(_, p)| p).collect();
        prop_assert_eq!(ids.len(), d.chosen.len());
        prop_assert_eq!(names.len(), d.chosen.len());
        prop_assert!(ids.iter().all(|i| by_id.contains_key(i)));
        prop_assert_eq!(d.target, target(ratio, by_id.len()));
        prop_assert_eq!(d.chosen.len(), d.target.max(strata.len()));
        let covered: BTreeSet<&Stratum> = ids.iter().map(|i| by_id[i]).collect();
        prop_assert_eq!(covered, strata);
    }
}

/// A random organisation tree: (province, city, county, school) index tuples, with the
/// `Place` each school and each scope anchor gets.
#[derive(Debug, Clone)]
struct Tree {
    schools: Vec<[usize; 4]>,
}

fn county_id(s: &[usize; 4]) -> i64 {
    (s[0] * 100 + s[1] * 10 + s[2]) as i64 + 1
}

fn school_id(s: &[usize; 4]) -> i64 {
    county_id(s) * 100 + s[3] as i64
}

fn place(s: &[usize; 4]) -> Place {
    Place {
        province: Some(format!("省{}", s[0])),
        city: Some(format!("市{}-{}", s[0], s[1])),
        region_id: Some(county_id(s)),
        school_id: Some(school_id(s)),
    }
}

/// A scope at `level` anchored where school `s` sits (as `scope_of` loads it).
fn scope_at(level: Level, s: &[usize; 4]) -> Scope {
    let mut p = place(s);
    if level != Level::School {
        p.school_id = None;
    }
    if level == Level::Global {
        p = Place::default();
    }
    Scope { level, place: p }
}

fn arb_tree() -> impl Strategy<Value = Tree> {
    (1usize..3, 1usize..3, 1usize..4, 1usize..4).prop_map(|(p, c, k, s)| {
        let mut schools = Vec::new();
        for a in 0..p {
            for b in 0..c {
                for d in 0..k {
                    for e in 0..s {
                        schools.push([a, b, d, e]);
                    }
                }
            }
        }
        Tree { schools }
    })
}

const LEVELS: [Level; 5] = [
    Level::School,
    Level::County,
    Level::City,
    Level::Province,
    Level::Global,
];

/// The rule, read off the tree directly: how many leading indices name the unit at the
/// round's unit level, and whether a reviewer acting at or below that level shares them.
fn conflicts(
    round: Level,
    reviewer_level: Level,
    reviewer: &[usize; 4],
    sample: &[usize; 4],
) -> bool {
    let depth = match round {
        Level::County => 4,   // units are schools: (province, city, county, school)
        Level::City => 3,     // units are counties
        Level::Province => 2, // units are cities
        _ => unreachable!(),
    };
    let unit = unit_level(round).unwrap();
    reviewer_level <= unit && reviewer[..depth] == sample[..depth]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    /// Recusal holds for every generated assignment, over random trees, pools and samples;
    /// slots go to experts first; a slot stays empty only when no one may take it.
    #[test]
    fn recusal_holds_for_every_assignment(
        tree in arb_tree(),
        round_pick in 0usize..3,
        pool in prop::collection::vec((0usize..5, any::<prop::sample::Index>(), any::<bool>()), 0..12),
        samples in prop::collection::vec(any::<prop::sample::Index>(), 1..20),
        slots in 1usize..4,
        seed in any::<u64>(),
    ) {
        let round = [Level::County, Level::City, Level::Province][round_pick];
        let reviewers: Vec<(Reviewer, [usize; 4], Level)> = pool
            .iter()
            .enumerate()
            .map(|(i, (lv, at, expert))| {
                let s = tree.schools[at.index(tree.schools.len())];
                let level = LEVELS[*lv];
                (Reviewer { user_id: i as i64 + 1, expert: *expert, scope: scope_at(level, &s) }, s, level)
            })
            .collect();
        let pool: Vec<Reviewer> = reviewers.iter().map(|(r, _, _)| r.clone()).collect();
        let picked: Vec<[usize; 4]> = samples.iter().map(|i| tree.schools[i.index(tree.schools.len())]).collect();
        let needs: Vec<Need> = picked
            .iter()
            .enumerate()
            .map(|(i, s)| Need { sample_id: i as i64, school: place(s), taken: vec![], slots })
            .collect();
        let mut load = BTreeMap::new();
        let out = assign(round, &pool, &needs, seed, &mut load);
        prop_assert_eq!(out.len(), needs.len() * slots);
        let mut again = BTreeMap::new();
        prop_assert_eq!(&out, &assign(round, &pool, &needs, seed, &mut again));
        for (i, s) in picked.iter().enumerate() {
            let mine: Vec<i64> = out.iter().filter(|(n, _)| *n == i as i64).filter_map(|(_, u)| *u).collect();
            let eligible: Vec<&(Reviewer, [usize; 4], Level)> = reviewers
                .iter()
                .filter(|(_, at, lv)| !conflicts(round, *lv, at, s))
                .collect();
            // Nobody twice on one sample; nobody recused.
            prop_assert_eq!(mine.iter().collect::<BTreeSet<_>>().len(), mine.len());
            for u in &mine {
                let (_, at, lv) = &reviewers[(*u - 1) as usize];
                prop_assert!(!conflicts(round, *lv, at, s), "reviewer {} at {:?} {:?} on sample at {:?} ({:?} round)", u, lv, at, s, round);
            }
            // As many as may take it, up to the slots.
            prop_assert_eq!(mine.len(), slots.min(eligible.len()));
            // Experts first: a non-expert on it means every eligible expert is on it too.
            if mine.iter().any(|u| !reviewers[(*u - 1) as usize].0.expert) {
                for (r, _, _) in eligible.iter().filter(|(r, _, _)| r.expert) {
                    prop_assert!(mine.contains(&r.user_id));
                }
            }
        }
    }
}

#[test]
fn recusal_by_hand() {
    let a1 = [0, 0, 0, 0];
    let a2 = [0, 0, 0, 1];
    let b1 = [0, 0, 1, 0];
    let c1 = [0, 1, 0, 0];
    let teacher_expert = scope_at(Level::School, &a1);
    // County round: units are schools; only the reviewer's own school is off limits.
    assert!(recused(&teacher_expert, Level::County, &place(&a1)));
    assert!(!recused(&teacher_expert, Level::County, &place(&a2)));
    // City round: units are counties; the expert's whole county is.
    assert!(recused(&teacher_expert, Level::City, &place(&a2)));
    assert!(!recused(&teacher_expert, Level::City, &place(&b1)));
    // Province round: units are cities.
    assert!(recused(
        &scope_at(Level::County, &a1),
        Level::Province,
        &place(&b1)
    ));
    assert!(!recused(
        &scope_at(Level::County, &a1),
        Level::Province,
        &place(&c1)
    ));
    // The inspecting office itself is not recused from the units below it.
    assert!(!recused(
        &scope_at(Level::City, &a1),
        Level::City,
        &place(&a2)
    ));
    // A reviewer whose place is unknown is kept away.
    let blank = Scope {
        level: Level::School,
        place: Place::default(),
    };
    assert!(recused(&blank, Level::County, &place(&a1)));
}

fn g(reason: Reason, score: Option<f64>) -> Grade {
    Grade { reason, score }
}

#[test]
fn a_straddling_pair_makes_a_dispute_and_the_third_decides() {
    let pm = 60.0;
    let pair = [g(Reason::Draw, Some(72.0)), g(Reason::Draw, Some(55.0))];
    assert!(dispute_due(&pair, pm));
    assert_eq!(
        outcome(&pair, pm),
        Outcome::Failed,
        "a tie goes to the later review"
    );
    // Exactly on the mark passes.
    assert!(dispute_due(
        &[g(Reason::Draw, Some(60.0)), g(Reason::Draw, Some(59.5))],
        pm
    ));
    assert!(!dispute_due(
        &[g(Reason::Draw, Some(61.0)), g(Reason::Draw, Some(90.0))],
        pm
    ));
    assert!(!dispute_due(
        &[g(Reason::Draw, Some(40.0)), g(Reason::Draw, None)],
        pm
    ));
    let three = [pair[0], pair[1], g(Reason::Dispute, None)];
    assert!(!dispute_due(&three, pm), "one dispute review per sample");
    assert_eq!(outcome(&three, pm), Outcome::Pending);
    let done = [pair[0], pair[1], g(Reason::Dispute, Some(66.0))];
    assert_eq!(outcome(&done, pm), Outcome::Passed);
    assert_eq!(outcome(&[], pm), Outcome::Pending);
}

use crate::observe::records::grading::Grade as PointGrade;

fn v(reason: Reason, pass: Option<bool>) -> Verdict {
    Verdict { reason, pass }
}

/// Point reviews (优秀/合格/不合格): 优秀 against 不合格 straddles pass/fail like 72 against
/// 55 does; 优秀 and 合格 both pass, so they are no dispute; the third decides.
#[test]
fn point_grades_straddle_and_decide_like_scores() {
    assert!(point_passes(PointGrade::Excellent));
    assert!(point_passes(PointGrade::Pass));
    assert!(!point_passes(PointGrade::Fail));
    let p = |reason, g: Option<PointGrade>| v(reason, g.map(point_passes));
    let pair = [
        p(Reason::Draw, Some(PointGrade::Excellent)),
        p(Reason::Draw, Some(PointGrade::Fail)),
    ];
    assert!(dispute_due_verdicts(&pair));
    assert_eq!(
        outcome_of(&pair),
        Outcome::Failed,
        "a tie: the later review"
    );
    let agree = [
        p(Reason::Draw, Some(PointGrade::Excellent)),
        p(Reason::Draw, Some(PointGrade::Pass)),
    ];
    assert!(!dispute_due_verdicts(&agree));
    assert_eq!(outcome_of(&agree), Outcome::Passed);
    let third = [pair[0], pair[1], p(Reason::Dispute, Some(PointGrade::Pass))];
    assert!(!dispute_due_verdicts(&third));
    assert_eq!(
        outcome_of(&third),
        Outcome::Passed,
        "two passes to one fail"
    );
    assert_eq!(
        outcome_of(&[pair[0], pair[1], p(Reason::Dispute, None)]),
        Outcome::Pending
    );
}

proptest! {
    /// The scored rules are the verdict rules at the pass mark: the same dispute and outcome
    /// for any scores, any reasons.
    #[test]
    fn scores_and_verdicts_agree(
        grades in proptest::collection::vec(
            (prop_oneof![Just(Reason::Draw), Just(Reason::Dispute), Just(Reason::Appeal)],
             proptest::option::of(0.0f64..=100.0)), 0..6),
        pass_mark in 0.0f64..=100.0,
    ) {
        let g: Vec<Grade> = grades.iter().map(|(reason, score)| Grade { reason: *reason, score: *score }).collect();
        let vs: Vec<Verdict> = g.iter().map(|x| x.verdict(pass_mark)).collect();
        prop_assert_eq!(dispute_due(&g, pass_mark), dispute_due_verdicts(&vs));
        prop_assert_eq!(outcome(&g, pass_mark), outcome_of(&vs));
    }
}

fn ev(
    teacher: i64,
    point: &str,
    grade: Option<PointGrade>,
    lesson: Option<(&str, &str)>,
) -> PointEvidence {
    PointEvidence {
        teacher_id: teacher,
        point: point.into(),
        grade,
        lesson: lesson.map(|(s, g)| (s.to_string(), g.to_string())),
    }
}

/// Which points a round may draw, by hand: teacher 1's A1 (优秀 + 合格, a clip of a 三年级
/// 英语 lesson second) is drawn as primary 英语; A3 (合格 + ungraded) waits; teacher 2's B6
/// (不合格 + ungraded) is decided already (one 不合格 fails the point) and has no clip, so its
/// stratum is stage `other` and the teacher's first subject.
#[test]
fn drawable_points_by_hand() {
    use PointGrade::*;
    let items = [
        ev(1, "A1", Some(Excellent), None),
        ev(1, "A3", Some(Pass), Some(("数学", "五年级"))),
        ev(2, "B6", None, None),
        ev(1, "A1", Some(Pass), Some(("英语", "三年级"))),
        ev(1, "A3", None, None),
        ev(2, "B6", Some(Fail), None),
    ];
    let subjects = BTreeMap::from([(1, "英语".to_string()), (2, "音乐".to_string())]);
    let got = drawable_points(&items, &subjects);
    assert_eq!(
        got,
        vec![
            PointSubmission {
                teacher_id: 1,
                point: "A1".into(),
                stage: "primary",
                subject: "英语".into()
            },
            PointSubmission {
                teacher_id: 2,
                point: "B6".into(),
                stage: "other",
                subject: "音乐".into()
            },
        ]
    );
    assert!(drawable_points(&[], &subjects).is_empty());
}

fn arb_evidence() -> impl Strategy<Value = Vec<PointEvidence>> {
    let grade = prop_oneof![
        Just(None),
        Just(Some(PointGrade::Fail)),
        Just(Some(PointGrade::Pass)),
        Just(Some(PointGrade::Excellent))
    ];
    let lesson = proptest::option::of((
        prop_oneof![Just("英语"), Just("音乐")],
        prop_oneof![Just("三年级"), Just("八年级"), Just("高一")],
    ));
    proptest::collection::vec(
        (
            1i64..5,
            prop_oneof![Just("A1"), Just("A3"), Just("B6")],
            grade,
            lesson,
        ),
        0..40,
    )
    .prop_map(|v| v.into_iter().map(|(t, p, g, l)| ev(t, p, g, l)).collect())
}

proptest! {
    /// A submission is drawable exactly when the grading rule has decided its point; each
    /// (teacher, point) appears once, sorted; shuffling items of different submissions
    /// changes nothing (only an item's place among its own submission's items can pick
    /// another clip's stratum).
    #[test]
    fn drawable_points_are_the_decided_ones(items in arb_evidence(), seed in any::<u64>()) {
        use crate::observe::records::grading::{point_grade, PointStatus};
        let subjects = BTreeMap::from([(1, "英语".to_string())]);
        let got = drawable_points(&items, &subjects);
        let keys: Vec<(i64, String)> = got.iter().map(|s| (s.teacher_id, s.point.clone())).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        sorted.dedup();
        prop_assert_eq!(&keys, &sorted);
        let mut all: Vec<(i64, String)> = items.iter().map(|e| (e.teacher_id, e.point.clone())).collect();
        all.sort();
        all.dedup();
        for (t, p) in all {
            let grades: Vec<_> = items.iter().filter(|e| e.teacher_id == t && e.point == p).map(|e| e.grade).collect();
            let decided = point_grade(&grades).0 == PointStatus::Graded;
            prop_assert_eq!(keys.contains(&(t, p.clone())), decided);
        }
        // Rotating the submissions (keeping each one's items in order) gives the same.
        let mut groups: Vec<Vec<PointEvidence>> = Vec::new();
        for e in &items {
            match groups.iter_mut().find(|g| g[0].teacher_id == e.teacher_id && g[0].point == e.point) {
                Some(g) => g.push(e.clone()),
                None => groups.push(vec![e.clone()]),
            }
        }
        if !groups.is_empty() {
            let k = (seed as usize) % groups.len();
            groups.rotate_left(k);
        }
        let moved: Vec<PointEvidence> = groups.into_iter().flatten().collect();
        prop_assert_eq!(drawable_points(&moved, &subjects), got);
    }
}
