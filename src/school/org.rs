//! The organisation as rows: regions, schools, classrooms, teachers, pairings (结对) and
//! terms, each an [`Entity`] on the generic repository, plus the enums stored as text. Plain
//! data and field checks: never timetable or lesson rules, never HTTP.

use crate::store::entity::{entity_columns, need, Entity};
use crate::store::{col, Store, StoreResult};
use crate::time::parse_date;
use serde::{Deserialize, Serialize};

/// Declares an enum stored as text, with serde, `FromStr` and `as_str`, read from a row
/// (`#[sqlx(try_from = "String")]`) and bound as text.
macro_rules! text_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $var:ident = $s:tt),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
        pub enum $name { $($(#[$vm])* #[serde(rename = $s)] $var),+ }
        impl $name {
            /// The stored name.
            pub fn as_str(self) -> &'static str { match self { $($name::$var => $s),+ } }
            /// Every value.
            pub const ALL: &'static [$name] = &[$($name::$var),+];
        }
        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(s: String) -> Result<Self, String> { s.parse() }
        }
        impl $crate::store::entity::ToVal for $name {
            fn to_val(&self) -> $crate::store::entity::Val {
                $crate::store::entity::Val::Text(self.as_str().into())
            }
        }
        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s { $($s => Ok($name::$var),)+ _ => Err(format!(
                    "`{}` is not one of {}", s, [$($s),+].join(", "))) }
            }
        }
    };
}
pub(crate) use text_enum;

text_enum!(
    /// Hub (名校, sends lessons) or partner (receives them).
    SchoolKind {
        /// Sends lessons (名校, 中心校).
        Hub = "hub",
        /// Receives them (薄弱校, 教学点).
        Partner = "partner",
    }
);
text_enum!(
    /// Urban or rural (城区/乡村): a stratum of a sampling inspection's draw (抽检).
    SchoolArea {
        /// 城区.
        Urban = "urban",
        /// 乡村.
        Rural = "rural",
        /// Not recorded.
        Unknown = "unknown",
    }
);
// `text_enum!` derives a fixed set of traits, so `Default` is written out.
#[allow(clippy::derivable_impls)]
impl Default for SchoolArea {
    fn default() -> Self {
        SchoolArea::Unknown
    }
}
text_enum!(
    /// What a classroom can do.
    ClassroomKind {
        /// Where a hub teacher teaches from.
        Hub = "hub",
        /// A remote classroom with camera and microphone.
        Interactive = "interactive",
        /// A remote classroom that only receives.
        ReceiveOnly = "receive_only",
    }
);

/// A province / city / county.
#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Region {
    /// Id (ignored on input).
    #[serde(default)]
    pub id: i64,
    /// 省.
    pub province: String,
    /// 市/州.
    pub city: String,
    /// 县/区.
    pub county: String,
}

impl Entity for Region {
    const TABLE: &'static str = "regions";
    const NAME: &'static str = "region";
    entity_columns!(province, city, county);
    fn validate(&self) -> Result<(), String> {
        need("province", &self.province)?;
        need("city", &self.city)?;
        need("county", &self.county)
    }
}

/// A school.
#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct School {
    /// Id (ignored on input).
    #[serde(default)]
    pub id: i64,
    /// The district's school code (unique).
    pub code: String,
    /// Name.
    pub name: String,
    /// Hub or partner.
    #[sqlx(try_from = "String")]
    pub kind: SchoolKind,
    /// Region.
    #[serde(default)]
    pub region_id: Option<i64>,
    /// How many sites a 名师课堂 (master) lesson of this hub school may reach.
    #[serde(default = "default_master_sites")]
    pub max_master_sites: i64,
    /// Urban or rural (a stratum of 抽检 draws); `unknown` when not given.
    #[serde(default)]
    #[sqlx(try_from = "String")]
    pub area: SchoolArea,
    /// Whether its timetable lessons are recorded at the bell (`[recording] rooms =
    /// "lessons"`, the default); on unless turned off.
    #[serde(default = "default_on")]
    #[sqlx(try_from = "i64")]
    #[schema(value_type = bool)]
    pub record_lessons: OnOff,
    /// Days its lessons' recordings are kept after they end; none: `[recording]
    /// retention_days` (0 there keeps them). The retention sweep deletes older ones (logged).
    #[serde(default)]
    pub retention_days: Option<i64>,
    /// The highest video layer its classrooms receive, by rank (0: the lowest simulcast
    /// layer, 1: the middle one, 2: the top); none: no cap (a satellite school gets 0).
    #[serde(default)]
    pub max_video_layer: Option<i64>,
}

fn default_master_sites() -> i64 {
    500
}

fn default_on() -> OnOff {
    OnOff(true)
}

/// A yes/no column stored as 0/1 (both backends keep it as an integer), `true`/`false` in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OnOff(pub bool);

impl From<i64> for OnOff {
    fn from(v: i64) -> Self {
        OnOff(v != 0)
    }
}

impl crate::store::entity::ToVal for OnOff {
    fn to_val(&self) -> crate::store::entity::Val {
        crate::store::entity::Val::Int(Some(i64::from(self.0)))
    }
}

impl Entity for School {
    const TABLE: &'static str = "schools";
    const NAME: &'static str = "school";
    const FILTERS: &'static [&'static str] = &["region_id"];
    entity_columns!(
        code,
        name,
        kind,
        region_id,
        max_master_sites,
        area,
        record_lessons,
        retention_days,
        max_video_layer
    );
    fn validate(&self) -> Result<(), String> {
        need("code", &self.code)?;
        need("name", &self.name)?;
        if !(1..=10_000).contains(&self.max_master_sites) {
            return Err("max_master_sites must be between 1 and 10000".into());
        }
        if self
            .retention_days
            .is_some_and(|d| !(1..=36_500).contains(&d))
        {
            return Err("retention_days must be between 1 and 36500 (or left out)".into());
        }
        check_layer_cap(self.max_video_layer)?;
        Ok(())
    }
}

/// A classroom and the device that sits in it.
#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Classroom {
    /// Id (ignored on input).
    #[serde(default)]
    pub id: i64,
    /// School.
    pub school_id: i64,
    /// Name ("三年级1班", "录播教室").
    pub name: String,
    /// Hub, interactive or receive-only.
    #[sqlx(try_from = "String")]
    pub kind: ClassroomKind,
    /// The device there (model, serial), free text.
    #[serde(default)]
    pub device: String,
    /// The highest video layer it receives, by rank (0: the lowest simulcast layer); none:
    /// its school's cap, if any. Wins over the school's.
    #[serde(default)]
    pub max_video_layer: Option<i64>,
}

/// A video layer cap is a rank: 0 (the lowest layer), 1 or 2 (the top), or none.
fn check_layer_cap(cap: Option<i64>) -> Result<(), String> {
    if cap.is_some_and(|c| !(0..=2).contains(&c)) {
        return Err("max_video_layer must be 0 (lowest), 1 or 2 (or left out)".into());
    }
    Ok(())
}

impl Entity for Classroom {
    const TABLE: &'static str = "classrooms";
    const NAME: &'static str = "classroom";
    const FILTERS: &'static [&'static str] = &["school_id"];
    entity_columns!(school_id, name, kind, device, max_video_layer);
    fn validate(&self) -> Result<(), String> {
        need("name", &self.name)?;
        check_layer_cap(self.max_video_layer)
    }
}

/// A teacher.
#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Teacher {
    /// Id (ignored on input).
    #[serde(default)]
    pub id: i64,
    /// Staff code (工号, unique).
    pub code: String,
    /// Name.
    pub name: String,
    /// School.
    pub school_id: i64,
    /// Subjects taught, comma-separated.
    #[serde(default)]
    pub subjects: String,
}

impl Entity for Teacher {
    const TABLE: &'static str = "teachers";
    const NAME: &'static str = "teacher";
    const FILTERS: &'static [&'static str] = &["school_id"];
    entity_columns!(code, name, school_id, subjects);
    fn validate(&self) -> Result<(), String> {
        need("code", &self.code)?;
        need("name", &self.name)
    }
}

/// A pairing (结对): a hub school helps a partner school in a subject and grade for a term.
#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Pairing {
    /// Id (ignored on input).
    #[serde(default)]
    pub id: i64,
    /// The hub school.
    pub hub_school_id: i64,
    /// The partner school.
    pub partner_school_id: i64,
    /// Subject (英语, 音乐…).
    pub subject: String,
    /// Grade (三年级…).
    pub grade: String,
    /// Term name ("2026秋").
    pub term: String,
    /// Who owns the plan (the bureau or person responsible).
    #[serde(default)]
    pub owner: String,
}

impl Entity for Pairing {
    const TABLE: &'static str = "pairings";
    const NAME: &'static str = "pairing";
    const FILTERS: &'static [&'static str] = &["hub_school_id", "partner_school_id"];
    entity_columns!(
        hub_school_id,
        partner_school_id,
        subject,
        grade,
        term,
        owner
    );
    fn validate(&self) -> Result<(), String> {
        if self.hub_school_id == self.partner_school_id {
            return Err("partner_school_id must differ from hub_school_id".into());
        }
        need("subject", &self.subject)?;
        need("grade", &self.grade)?;
        need("term", &self.term)
    }
}

/// A school term: the dates its timetable runs.
#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Term {
    /// Id (ignored on input).
    #[serde(default)]
    pub id: i64,
    /// Name ("2026秋").
    pub name: String,
    /// First day, "YYYY-MM-DD".
    #[schema(format = Date)]
    pub starts_on: String,
    /// Last day, "YYYY-MM-DD".
    #[schema(format = Date)]
    pub ends_on: String,
}

impl Entity for Term {
    const TABLE: &'static str = "terms";
    const NAME: &'static str = "term";
    entity_columns!(name, starts_on, ends_on);
    fn validate(&self) -> Result<(), String> {
        need("name", &self.name)?;
        let s = parse_date(&self.starts_on).ok_or("starts_on must be YYYY-MM-DD")?;
        let e = parse_date(&self.ends_on).ok_or("ends_on must be YYYY-MM-DD")?;
        if e < s {
            return Err("ends_on is before starts_on".into());
        }
        Ok(())
    }
}
/// Whether `hub` and `partner` are paired for `subject`/`grade` in the term named `term`.
pub async fn is_paired(
    store: &Store,
    hub: i64,
    partner: i64,
    subject: &str,
    grade: &str,
    term: &str,
) -> StoreResult<bool> {
    let row = sqlx::query(
        "SELECT COUNT(*) AS n FROM pairings WHERE hub_school_id = $1 AND partner_school_id = $2 \
         AND subject = $3 AND grade = $4 AND term = $5",
    )
    .bind(hub)
    .bind(partner)
    .bind(subject)
    .bind(grade)
    .bind(term)
    .fetch_one(store.pool())
    .await?;
    Ok(col::<i64>(&row, "n")? > 0)
}

/// The names of the terms whose dates contain `date` ("YYYY-MM-DD").
pub async fn terms_on(store: &Store, date: &str) -> StoreResult<Vec<String>> {
    let rows = sqlx::query("SELECT name FROM terms WHERE starts_on <= $1 AND ends_on >= $1")
        .bind(date)
        .fetch_all(store.pool())
        .await?;
    rows.iter().map(|r| col(r, "name")).collect()
}
