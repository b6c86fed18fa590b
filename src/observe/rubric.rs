//! Rubrics (评课量表) as data: the shape of a rubric, its validation (weights add up to the
//! total, grade bands start at 0 and rise), scoring a rubric (totals and the band), and the
//! default rubric embedded from `config/rubrics/default.toml`. Pure; must never accept a
//! rubric whose numbers don't add up.

use serde::{Deserialize, Serialize};

/// The default rubric's file, embedded in the binary.
pub const DEFAULT_TOML: &str = include_str!("../../config/rubrics/default.toml");

/// The key of the default rubric.
pub const DEFAULT_KEY: &str = "default";

/// Most items and bands one rubric may have, and the longest text: a rubric comes from a
/// request, so its size is bounded.
const MAX_ITEMS: usize = 100;
const MAX_TEXT: usize = 2_000;

/// A rubric: weighted items and grade bands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RubricBody {
    /// Its title.
    pub name: String,
    /// What it is for.
    #[serde(default)]
    pub description: String,
    /// The full score; the items' weights add up to it.
    pub total: u32,
    /// The scored dimensions, in the order shown.
    pub items: Vec<RubricItem>,
    /// Grade bands, each taking totals from its `min` up to the next band's.
    pub bands: Vec<Band>,
}

/// One scored dimension.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RubricItem {
    /// Stable key (`objectives`), used by scores.
    pub key: String,
    /// Shown name (`教学目标`).
    pub name: String,
    /// Its maximum score.
    pub weight: u32,
    /// What earns the score.
    #[serde(default)]
    pub criteria: String,
}

/// One grade band.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = RubricBand)]
pub struct Band {
    /// Stable key (`excellent`).
    pub key: String,
    /// Shown name (`优秀`).
    pub name: String,
    /// The lowest total in the band.
    pub min: u32,
}

fn key_ok(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 64
        && k.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

impl RubricBody {
    /// Every reason the rubric is refused (empty: it is valid).
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.name.trim().is_empty() {
            out.push("the rubric needs a name".to_string());
        }
        for (what, s) in [("name", &self.name), ("description", &self.description)] {
            if s.chars().count() > MAX_TEXT {
                out.push(format!("the {what} is longer than {MAX_TEXT} characters"));
            }
        }
        if self.total == 0 {
            out.push("total must be above 0".into());
        }
        if self.items.is_empty() {
            out.push("the rubric needs at least one item".into());
        }
        if self.items.len() > MAX_ITEMS || self.bands.len() > MAX_ITEMS {
            out.push(format!("at most {MAX_ITEMS} items and {MAX_ITEMS} bands"));
            return out;
        }
        let mut keys = std::collections::BTreeSet::new();
        for it in &self.items {
            if !key_ok(&it.key) {
                out.push(format!(
                    "item key `{}` must be 1-64 of a-z, 0-9, _ and -",
                    it.key
                ));
            }
            if !keys.insert(it.key.as_str()) {
                out.push(format!("item key `{}` appears twice", it.key));
            }
            if it.name.trim().is_empty() {
                out.push(format!("item `{}` needs a name", it.key));
            }
            if it.name.chars().count() > MAX_TEXT || it.criteria.chars().count() > MAX_TEXT {
                out.push(format!(
                    "item `{}` has text longer than {MAX_TEXT} characters",
                    it.key
                ));
            }
            if it.weight == 0 {
                out.push(format!("item `{}` has weight 0", it.key));
            }
        }
        let sum: u64 = self.items.iter().map(|i| u64::from(i.weight)).sum();
        if sum != u64::from(self.total) {
            out.push(format!(
                "the item weights add up to {sum}, not the total {}",
                self.total
            ));
        }
        if self.bands.is_empty() {
            out.push("the rubric needs at least one grade band".into());
        }
        let mut keys = std::collections::BTreeSet::new();
        for b in &self.bands {
            if !key_ok(&b.key) {
                out.push(format!(
                    "band key `{}` must be 1-64 of a-z, 0-9, _ and -",
                    b.key
                ));
            }
            if !keys.insert(b.key.as_str()) {
                out.push(format!("band key `{}` appears twice", b.key));
            }
            if b.name.trim().is_empty() || b.name.chars().count() > MAX_TEXT {
                out.push(format!(
                    "band `{}` needs a name (at most {MAX_TEXT})",
                    b.key
                ));
            }
            if b.min > self.total {
                out.push(format!(
                    "band `{}` starts at {}, above the total {}",
                    b.key, b.min, self.total
                ));
            }
        }
        if let Some(first) = self.bands.first() {
            if first.min != 0 {
                out.push(format!(
                    "the bands must cover every total from 0: the first band `{}` starts at {}",
                    first.key, first.min
                ));
            }
        }
        for w in self.bands.windows(2) {
            if w[1].min <= w[0].min {
                out.push(format!(
                    "bands must rise: `{}` starts at {} after `{}` at {}",
                    w[1].key, w[1].min, w[0].key, w[0].min
                ));
            }
        }
        out
    }

    /// The band a total falls in (the last band whose `min` it reaches).
    pub fn band_of(&self, total: f64) -> Option<&Band> {
        self.bands.iter().rev().find(|b| total >= f64::from(b.min))
    }

    /// The item with this key.
    pub fn item(&self, key: &str) -> Option<&RubricItem> {
        self.items.iter().find(|i| i.key == key)
    }
}

/// Reads a rubric file (TOML).
pub fn from_toml(text: &str) -> Result<RubricBody, String> {
    let r: RubricBody = toml::from_str(text).map_err(|e| e.to_string())?;
    let p = r.problems();
    if p.is_empty() {
        Ok(r)
    } else {
        Err(p.join("; "))
    }
}

/// The default rubric (the embedded file is checked by a test, so this cannot fail in a
/// build that passed its tests).
pub fn default_rubric() -> RubricBody {
    from_toml(DEFAULT_TOML).expect("config/rubrics/default.toml is a valid rubric")
}

/// One item's score as given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ItemScore {
    /// The rubric item's key.
    pub item: String,
    /// 0 ..= the item's weight.
    pub score: f64,
    /// Optional remark.
    #[serde(default)]
    pub comment: String,
}

/// Why a score was refused.
pub fn score_problems(r: &RubricBody, scores: &[ItemScore]) -> Vec<String> {
    let mut out = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for s in scores {
        match r.item(&s.item) {
            None => out.push(format!("the rubric has no item `{}`", s.item)),
            Some(it) => {
                if !s.score.is_finite() || s.score < 0.0 || s.score > f64::from(it.weight) {
                    out.push(format!(
                        "item `{}` scores {} but takes 0 to {}",
                        s.item, s.score, it.weight
                    ));
                }
            }
        }
        if !seen.insert(s.item.as_str()) {
            out.push(format!("item `{}` is scored twice", s.item));
        }
        if s.comment.chars().count() > MAX_TEXT {
            out.push(format!(
                "the comment on `{}` is longer than {MAX_TEXT} characters",
                s.item
            ));
        }
    }
    out
}

/// The total of the scores, whether every item is scored, and the band (only when complete).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct RubricResult {
    /// Sum of the item scores.
    pub total: f64,
    /// Every item has a score.
    pub complete: bool,
    /// The band's key when complete.
    pub band: Option<String>,
    /// The band's name when complete.
    pub band_name: Option<String>,
}

/// Totals the scores under `r`.
pub fn result(r: &RubricBody, scores: &[ItemScore]) -> RubricResult {
    // A fold from +0.0: `Iterator::sum` of no floats is -0.0, which JSON shows as `-0.0`.
    let total: f64 = scores.iter().fold(0.0, |t, s| t + s.score);
    let complete = r
        .items
        .iter()
        .all(|it| scores.iter().any(|s| s.item == it.key));
    let band = complete.then(|| r.band_of(total)).flatten();
    RubricResult {
        total,
        complete,
        band: band.map(|b| b.key.clone()),
        band_name: band.map(|b| b.name.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn no_scores_total_zero_not_minus_zero() {
        let res = result(&default_rubric(), &[]);
        assert_eq!(serde_json::to_string(&res.total).unwrap(), "0.0");
        assert!(!res.complete);
        assert_eq!(res.band, None);
    }

    #[test]
    fn the_default_rubric_is_valid_and_as_domain_md_says() {
        let r = default_rubric();
        let w: Vec<u32> = r.items.iter().map(|i| i.weight).collect();
        // objectives 10 / content 10 / structure 20 / methods 20 / state 10 / outcomes 20 /
        // features 10 = 100.
        assert_eq!(w, [10, 10, 20, 20, 10, 20, 10]);
        assert_eq!(r.total, 100);
        let band = |t: f64| r.band_of(t).map(|b| b.name.as_str());
        // ≥85 优秀, 75–84 良好, 60–74 合格, <60 不合格.
        assert_eq!(band(85.0), Some("优秀"));
        assert_eq!(band(84.5), Some("良好"));
        assert_eq!(band(75.0), Some("良好"));
        assert_eq!(band(74.0), Some("合格"));
        assert_eq!(band(60.0), Some("合格"));
        assert_eq!(band(59.5), Some("不合格"));
        assert_eq!(band(0.0), Some("不合格"));
    }

    #[test]
    fn refusals_name_the_reason() {
        let mut r = default_rubric();
        r.items[0].weight = 15;
        let p = r.problems();
        assert_eq!(p, ["the item weights add up to 105, not the total 100"]);
        let mut r = default_rubric();
        r.bands[0].min = 10;
        assert!(
            r.problems()[0].contains("cover every total from 0"),
            "{:?}",
            r.problems()
        );
        let mut r = default_rubric();
        r.bands.swap(1, 2);
        assert!(r.problems()[0].contains("bands must rise"));
        let mut r = default_rubric();
        r.bands[3].min = 101;
        assert!(r.problems().iter().any(|p| p.contains("above the total")));
        let mut r = default_rubric();
        r.items[1].key = r.items[0].key.clone();
        assert!(r.problems().iter().any(|p| p.contains("appears twice")));
        assert!(from_toml("name = 1").is_err());
        assert!(
            from_toml(&DEFAULT_TOML.replace("weight = 20", "weight = 25"))
                .unwrap_err()
                .contains("add up to 115")
        );
    }

    #[test]
    fn scoring() {
        let r = default_rubric();
        let s = |item: &str, score: f64| ItemScore {
            item: item.into(),
            score,
            comment: String::new(),
        };
        // 9 + 8 + 18 + 17 + 9 + 16 + 8 = 85 → 优秀.
        let all = [
            s("objectives", 9.0),
            s("content", 8.0),
            s("structure", 18.0),
            s("methods", 17.0),
            s("classroom_state", 9.0),
            s("outcomes", 16.0),
            s("features", 8.0),
        ];
        assert!(score_problems(&r, &all).is_empty());
        let res = result(&r, &all);
        assert_eq!((res.total, res.complete), (85.0, true));
        assert_eq!(res.band.as_deref(), Some("excellent"));
        let part = result(&r, &all[..3]);
        assert_eq!((part.total, part.complete, part.band), (35.0, false, None));
        assert_eq!(score_problems(&r, &[s("objectives", 11.0)]).len(), 1);
        assert_eq!(score_problems(&r, &[s("nope", 1.0)]).len(), 1);
        assert_eq!(score_problems(&r, &[s("content", f64::NAN)]).len(), 1);
        assert_eq!(
            score_problems(&r, &[s("content", 1.0), s("content", 2.0)]).len(),
            1
        );
    }

    fn any_rubric() -> impl Strategy<Value = RubricBody> {
        (
            prop::collection::vec(("[a-z_]{0,6}", "\\PC{0,6}", 0u32..50), 0..10),
            prop::collection::vec(("[a-z]{0,4}", "\\PC{0,4}", 0u32..120), 0..6),
            0u32..200,
        )
            .prop_map(|(items, bands, total)| RubricBody {
                name: "r".into(),
                description: String::new(),
                total,
                items: items
                    .into_iter()
                    .map(|(key, name, weight)| RubricItem {
                        key,
                        name,
                        weight,
                        criteria: String::new(),
                    })
                    .collect(),
                bands: bands
                    .into_iter()
                    .map(|(key, name, min)| Band { key, name, min })
                    .collect(),
            })
    }

    proptest! {
        /// Whatever a request or file holds, validation answers (no panic), and a rubric it
        /// accepts puts every total from 0 to the full score in exactly one band.
        #[test]
        fn validation_holds_for_any_rubric(r in any_rubric(), t in 0u32..200) {
            if r.problems().is_empty() {
                let sum: u32 = r.items.iter().map(|i| i.weight).sum();
                prop_assert_eq!(sum, r.total);
                if t <= r.total {
                    prop_assert!(r.band_of(f64::from(t)).is_some());
                }
            }
        }

        #[test]
        fn rubric_files_of_any_text_are_read_without_panicking(s in "\\PC{0,300}") {
            let _ = from_toml(&s);
        }
    }
}
