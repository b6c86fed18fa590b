//! The micro-ability point list (微能力点, `config/ability_points.toml`): read and checked
//! once, then shared. Configuration, not code: a province edits the file. Never changes at
//! run time, and never accepts a list with a duplicate code or an unknown environment or
//! dimension.

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

/// The list as shipped (embedded in the binary).
pub const DEFAULT_TOML: &str = include_str!("../../../config/ability_points.toml");

/// The four dimensions.
pub const DIMENSIONS: [&str; 4] = ["analysis", "design", "guidance", "assessment"];
/// The three environments: A 多媒体教学环境, B 混合学习环境, C 智慧学习环境.
pub const ENVIRONMENTS: [&str; 3] = ["A", "B", "C"];

/// One point.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AbilityPoint {
    /// Its code (A1, B6…).
    pub code: String,
    /// Its name (技术支持的学情分析).
    pub name: String,
    /// Its English name.
    pub name_en: String,
    /// A, B or C.
    pub environment: String,
    /// analysis, design, guidance or assessment.
    pub dimension: String,
}

/// The whole list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AbilityPoints {
    /// How many points a teacher picks per term at least.
    pub min_points: u32,
    /// The points.
    #[serde(rename = "point")]
    pub points: Vec<AbilityPoint>,
}

impl AbilityPoints {
    /// The point with `code`.
    pub fn get(&self, code: &str) -> Option<&AbilityPoint> {
        self.points.iter().find(|p| p.code == code)
    }
}

/// Reads and checks a list; every problem is named.
pub fn from_toml(s: &str) -> Result<AbilityPoints, Vec<String>> {
    let l: AbilityPoints = toml::from_str(s).map_err(|e| vec![e.to_string()])?;
    let mut problems = Vec::new();
    if l.points.is_empty() {
        problems.push("the list has no points".to_string());
    }
    if l.min_points as usize > l.points.len() {
        problems.push(format!(
            "min_points {} is more than the {} points listed",
            l.min_points,
            l.points.len()
        ));
    }
    for (i, p) in l.points.iter().enumerate() {
        let code_ok = !p.code.is_empty()
            && p.code.len() <= 16
            && p.code.chars().all(|c| c.is_ascii_alphanumeric());
        if !code_ok {
            problems.push(format!(
                "point {}: code `{}` must be 1 to 16 letters and digits",
                i + 1,
                p.code
            ));
        }
        if l.points[..i].iter().any(|q| q.code == p.code) {
            problems.push(format!(
                "point {}: code `{}` is listed twice",
                i + 1,
                p.code
            ));
        }
        if p.name.trim().is_empty() || p.name_en.trim().is_empty() {
            problems.push(format!("point {}: name and name_en are needed", i + 1));
        }
        if !ENVIRONMENTS.contains(&p.environment.as_str()) {
            problems.push(format!(
                "point {}: environment `{}` is not A, B or C",
                i + 1,
                p.environment
            ));
        }
        if !DIMENSIONS.contains(&p.dimension.as_str()) {
            problems.push(format!(
                "point {}: dimension `{}` is not one of {}",
                i + 1,
                p.dimension,
                DIMENSIONS.join(", ")
            ));
        }
    }
    if problems.is_empty() {
        Ok(l)
    } else {
        Err(problems)
    }
}

/// The configured list (the embedded file, checked by the tests below, so this never fails
/// in a built binary).
pub fn points() -> &'static AbilityPoints {
    static LIST: OnceLock<AbilityPoints> = OnceLock::new();
    LIST.get_or_init(|| {
        // The embedded file is checked by `the_shipped_list_is_valid`.
        from_toml(DEFAULT_TOML).expect("config/ability_points.toml is valid")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_shipped_list_is_valid() {
        let l = from_toml(DEFAULT_TOML).unwrap();
        // DOMAIN.md: 30 points over 4 dimensions in 3 environments; at least 3 picked.
        assert_eq!(l.points.len(), 30);
        assert_eq!(l.min_points, 3);
        for d in DIMENSIONS {
            assert!(l.points.iter().any(|p| p.dimension == d), "{d}");
        }
        for e in ENVIRONMENTS {
            assert!(l.points.iter().any(|p| p.environment == e), "{e}");
        }
        assert_eq!(l.get("A1").unwrap().name, "技术支持的学情分析");
        assert_eq!(l.get("A3").unwrap().name, "演示文稿设计与制作");
        assert_eq!(points(), &l);
    }

    #[test]
    fn every_refusal_gives_its_reason() {
        let bad = r#"
            min_points = 5
            [[point]]
            code = "A1"
            name = "x"
            name_en = "x"
            environment = "D"
            dimension = "analysis"
            [[point]]
            code = "A1"
            name = " "
            name_en = "y"
            environment = "A"
            dimension = "teaching"
        "#;
        let e = from_toml(bad).unwrap_err();
        let all = e.join("\n");
        for want in [
            "min_points 5 is more than the 2",
            "environment `D`",
            "code `A1` is listed twice",
            "point 2: name and name_en",
            "dimension `teaching`",
        ] {
            assert!(all.contains(want), "{want} not in {all}");
        }
        assert!(from_toml("min_points = 0\npoint = []").is_err());
        assert!(from_toml("[[point]]\ncode = 1").is_err());
    }

    proptest! {
        #[test]
        fn point_files_of_any_text_are_read_without_panicking(s in "\\PC{0,300}") {
            let _ = from_toml(&s);
        }
    }
}
