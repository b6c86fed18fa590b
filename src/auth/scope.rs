//! Organisation scope: the place in the tree province → city → county → school inside which
//! a person acts. Pure values and comparisons; loading them from the store is
//! [`crate::auth::people`]'s job and applying them to routes is the school API's.
//!
//! A school's staff (teachers, a school's admin, observers of one school) act in their school;
//! a district office's observers, inspectors and admins act in their county, city or province;
//! a global admin acts everywhere. A scope *covers* a school when the school lies inside it,
//! and *contains* another scope when everything the other covers it covers too. A school
//! without a region lies only inside its own school scope and the global one: least privilege
//! when the directory is incomplete.

use serde::{Deserialize, Serialize};

/// How high in the tree a scope sits.
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
pub enum Level {
    /// One school (学校).
    School,
    /// A county or district (县/区): one `regions` row.
    County,
    /// A city or prefecture (市/州).
    City,
    /// A province (省).
    Province,
    /// The whole installation.
    Global,
}

impl Level {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::School => "school",
            Level::County => "county",
            Level::City => "city",
            Level::Province => "province",
            Level::Global => "global",
        }
    }
}

impl std::str::FromStr for Level {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "school" => Level::School,
            "county" => Level::County,
            "city" => Level::City,
            "province" => Level::Province,
            "global" => Level::Global,
            _ => {
                return Err(format!(
                    "`{s}` is not a scope (school, county, city, province, global)"
                ))
            }
        })
    }
}

/// Where a school (or a scope's anchor) sits: every level of the tree that is known.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Place {
    /// 省.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub province: Option<String>,
    /// 市/州.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    /// The county row (`regions.id`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region_id: Option<i64>,
    /// The school.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub school_id: Option<i64>,
}

/// A person's scope: a level and the place that anchors it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Scope {
    /// How high.
    pub level: Level,
    /// The anchor: for `School` its school (with the school's region), for `County`, `City`
    /// and `Province` a county row of that place; nothing for `Global`.
    #[serde(flatten)]
    pub place: Place,
}

impl Scope {
    /// The whole installation.
    pub fn global() -> Scope {
        Scope {
            level: Level::Global,
            place: Place::default(),
        }
    }

    /// Whether the school at `p` lies inside this scope.
    pub fn covers(&self, p: &Place) -> bool {
        fn same<T: PartialEq>(a: &Option<T>, b: &Option<T>) -> bool {
            a.is_some() && a == b
        }
        let a = &self.place;
        match self.level {
            Level::Global => true,
            Level::Province => same(&a.province, &p.province),
            Level::City => same(&a.province, &p.province) && same(&a.city, &p.city),
            Level::County => same(&a.region_id, &p.region_id),
            Level::School => same(&a.school_id, &p.school_id),
        }
    }

    /// Whether everything `other` covers, this covers too.
    pub fn contains(&self, other: &Scope) -> bool {
        if self.level == Level::Global {
            return true;
        }
        if other.level > self.level {
            return false;
        }
        // `other`'s anchor is a place at or below this level; it is inside this scope when
        // its anchor is. A school scope's anchor carries its school's region, so a county
        // contains its schools.
        let mut anchor = other.place.clone();
        if other.level != Level::School {
            anchor.school_id = None;
        }
        match self.level {
            Level::School => other.level == Level::School && self.covers(&anchor),
            _ => self.covers(&anchor),
        }
    }

    /// Whether this scope reaches any of `places`.
    pub fn covers_any<'a>(&self, places: impl IntoIterator<Item = &'a Place>) -> bool {
        places.into_iter().any(|p| self.covers(p))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn school(id: i64, region: i64, city: &str) -> Place {
        Place {
            province: Some("四川省".into()),
            city: Some(city.into()),
            region_id: Some(region),
            school_id: Some(id),
        }
    }

    fn at(level: Level, p: &Place) -> Scope {
        let mut place = p.clone();
        if level != Level::School {
            place.school_id = None;
        }
        Scope { level, place }
    }

    #[test]
    fn each_level_covers_its_schools_and_no_others() {
        let a1 = school(1, 10, "凉山州");
        let a2 = school(2, 10, "凉山州");
        let b1 = school(3, 11, "凉山州");
        let c1 = school(4, 12, "成都市");
        let orphan = Place {
            school_id: Some(5),
            ..Place::default()
        };
        let s = at(Level::School, &a1);
        assert!(s.covers(&a1) && !s.covers(&a2) && !s.covers(&orphan));
        let county = at(Level::County, &a1);
        assert!(county.covers(&a1) && county.covers(&a2));
        assert!(!county.covers(&b1) && !county.covers(&c1) && !county.covers(&orphan));
        let city = at(Level::City, &a1);
        assert!(city.covers(&a2) && city.covers(&b1) && !city.covers(&c1));
        let prov = at(Level::Province, &a1);
        assert!(prov.covers(&c1) && !prov.covers(&orphan));
        assert!(Scope::global().covers(&orphan));
    }

    #[test]
    fn containment_follows_the_tree() {
        let a1 = school(1, 10, "凉山州");
        let b1 = school(3, 11, "凉山州");
        let c1 = school(4, 12, "成都市");
        let county_a = at(Level::County, &a1);
        let city = at(Level::City, &a1);
        assert!(county_a.contains(&at(Level::School, &a1)));
        assert!(!county_a.contains(&at(Level::School, &b1)));
        assert!(
            !county_a.contains(&city),
            "a county never contains its city"
        );
        assert!(city.contains(&county_a) && city.contains(&at(Level::County, &b1)));
        assert!(!city.contains(&at(Level::County, &c1)));
        assert!(at(Level::School, &a1).contains(&at(Level::School, &a1)));
        assert!(!at(Level::School, &a1).contains(&at(Level::School, &b1)));
        assert!(!city.contains(&Scope::global()));
        assert!(Scope::global().contains(&Scope::global()));
        // An anchor without a place (a broken row) is inside nothing but the global scope.
        let empty = Scope {
            level: Level::County,
            place: Place::default(),
        };
        assert!(!empty.covers(&a1) && !city.contains(&empty));
    }
}
