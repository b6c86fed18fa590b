//! Grading a micro-ability point (微能力点) from its evidence, as DOMAIN.md ("Teacher
//! capability programme 2.0") rules: each evidence item is graded 优秀/合格/不合格; a point is
//! 优秀 only if all its evidence is, and fails (不合格) if any item fails. Pure functions;
//! never reads the store or the clock.

use serde::{Deserialize, Serialize};

/// One evidence item's grade.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
#[schema(as = AbilityGrade)]
pub enum Grade {
    /// 不合格.
    Fail,
    /// 合格.
    Pass,
    /// 优秀.
    Excellent,
}

impl Grade {
    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Grade::Excellent => "excellent",
            Grade::Pass => "pass",
            Grade::Fail => "fail",
        }
    }

    /// The name teachers read.
    pub fn name(self) -> &'static str {
        match self {
            Grade::Excellent => "优秀",
            Grade::Pass => "合格",
            Grade::Fail => "不合格",
        }
    }

    /// Parses the wire name.
    pub fn parse(s: &str) -> Option<Grade> {
        Some(match s {
            "excellent" => Grade::Excellent,
            "pass" => Grade::Pass,
            "fail" => Grade::Fail,
            _ => return None,
        })
    }
}

/// Where a point stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = AbilityPointStatus)]
pub enum PointStatus {
    /// No evidence yet.
    NoEvidence,
    /// Some evidence is not graded yet and none has failed.
    Pending,
    /// Graded: see the grade.
    Graded,
}

/// A point's grade from its evidence items' grades (`None`: not graded yet): any 不合格 fails
/// the point at once (even with items still ungraded: nothing can mend it); otherwise the
/// point waits for every item; then it is 优秀 when all are 优秀, else 合格. No evidence: no
/// grade.
pub fn point_grade(items: &[Option<Grade>]) -> (PointStatus, Option<Grade>) {
    if items.is_empty() {
        return (PointStatus::NoEvidence, None);
    }
    if items.contains(&Some(Grade::Fail)) {
        return (PointStatus::Graded, Some(Grade::Fail));
    }
    if items.contains(&None) {
        return (PointStatus::Pending, None);
    }
    if items.iter().all(|g| *g == Some(Grade::Excellent)) {
        (PointStatus::Graded, Some(Grade::Excellent))
    } else {
        (PointStatus::Graded, Some(Grade::Pass))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use Grade::*;

    #[test]
    fn hand_worked() {
        // No evidence: nothing to grade.
        assert_eq!(point_grade(&[]), (PointStatus::NoEvidence, None));
        // One clip graded 优秀: the point is 优秀.
        assert_eq!(
            point_grade(&[Some(Excellent)]),
            (PointStatus::Graded, Some(Excellent))
        );
        // 优秀 + 优秀 + 合格: not all 优秀, none failed → 合格.
        assert_eq!(
            point_grade(&[Some(Excellent), Some(Excellent), Some(Pass)]),
            (PointStatus::Graded, Some(Pass))
        );
        // 优秀 + 不合格: one failed item fails the point, whatever the others.
        assert_eq!(
            point_grade(&[Some(Excellent), Some(Fail)]),
            (PointStatus::Graded, Some(Fail))
        );
        // 优秀 + not yet graded: waits (it could still become 合格 or 不合格).
        assert_eq!(
            point_grade(&[Some(Excellent), None]),
            (PointStatus::Pending, None)
        );
        // 不合格 + not yet graded: already failed.
        assert_eq!(
            point_grade(&[None, Some(Fail)]),
            (PointStatus::Graded, Some(Fail))
        );
        // 合格 + 合格 → 合格.
        assert_eq!(
            point_grade(&[Some(Pass), Some(Pass)]),
            (PointStatus::Graded, Some(Pass))
        );
    }

    #[test]
    fn names_round_trip() {
        for g in [Excellent, Pass, Fail] {
            assert_eq!(Grade::parse(g.as_str()), Some(g));
            assert_eq!(serde_json::to_value(g).unwrap(), g.as_str());
        }
        assert_eq!(Grade::parse("优秀"), None);
        assert_eq!(
            (Excellent.name(), Pass.name(), Fail.name()),
            ("优秀", "合格", "不合格")
        );
    }

    fn grade() -> impl Strategy<Value = Option<Grade>> {
        prop_oneof![
            Just(None),
            Just(Some(Fail)),
            Just(Some(Pass)),
            Just(Some(Excellent))
        ]
    }

    proptest! {
        /// The rule, restated: 优秀 iff every item is 优秀; 不合格 iff some item is; the order of
        /// the items never matters; a graded point's grade is its worst item's.
        #[test]
        fn the_rule_holds(items in proptest::collection::vec(grade(), 0..12), seed in any::<u64>()) {
            let (status, g) = point_grade(&items);
            let any_fail = items.contains(&Some(Fail));
            let all_excellent = !items.is_empty() && items.iter().all(|g| *g == Some(Excellent));
            prop_assert_eq!(g == Some(Fail), any_fail);
            prop_assert_eq!(g == Some(Excellent), all_excellent);
            if items.is_empty() {
                prop_assert_eq!(status, PointStatus::NoEvidence);
            } else if !any_fail && items.contains(&None) {
                prop_assert_eq!((status, g), (PointStatus::Pending, None));
            } else {
                prop_assert_eq!(status, PointStatus::Graded);
                let worst = items.iter().flatten().min().copied();
                prop_assert_eq!(g, worst);
            }
            // Any order gives the same answer.
            let mut shuffled = items.clone();
            let n = shuffled.len();
            if n > 1 {
                shuffled.rotate_left((seed as usize) % n);
                shuffled.swap(0, (seed as usize / 7) % n);
            }
            prop_assert_eq!(point_grade(&shuffled), (status, g));
        }
    }
}
