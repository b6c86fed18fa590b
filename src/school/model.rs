//! The school side as rows: regions, schools, classrooms, teachers, pairings, terms (plain
//! entities with one generic CRUD path), and timetable slots and lessons (with sites, and the
//! rules that go with them: conflicts, generation from the timetable).

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::AssertSqlSafe;

use crate::store::{col, col_enum, Store, StoreError, StoreResult};
use crate::time::{fmt_hhmm, parse_date, parse_hhmm, Millis};

/// A bound value for the generic queries.
#[derive(Debug, Clone)]
pub enum Val {
    /// Integer or NULL.
    Int(Option<i64>),
    /// Text.
    Text(String),
}

/// A plain entity: one table, an integer id, columns bound in order.
pub trait Entity: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// Table name.
    const TABLE: &'static str;
    /// Singular name for messages and URLs ("school").
    const NAME: &'static str;
    /// Columns other than `id`, in the order of [`Entity::values`].
    const COLS: &'static [&'static str];
    /// Columns a list may be filtered by (`?school_id=3`).
    const FILTERS: &'static [&'static str] = &[];
    /// Reads a row.
    fn from_row(row: &AnyRow) -> StoreResult<Self>;
    /// The values of [`Entity::COLS`].
    fn values(&self) -> Vec<Val>;
    /// Checks the fields; the message names the bad field.
    fn validate(&self) -> Result<(), String>;
}

fn bind_all<'q>(
    mut q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    vals: Vec<Val>,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    for v in vals {
        q = match v {
            Val::Int(i) => q.bind(i),
            Val::Text(s) => q.bind(s),
        };
    }
    q
}

fn select_cols<E: Entity>() -> String {
    let mut c = vec!["id"];
    c.extend_from_slice(E::COLS);
    c.join(", ")
}

/// Lists rows, optionally filtered by one of [`Entity::FILTERS`].
pub async fn list<E: Entity>(store: &Store, filter: Option<(&str, i64)>) -> StoreResult<Vec<E>> {
    let mut sql = format!("SELECT {} FROM {}", select_cols::<E>(), E::TABLE);
    if let Some((c, _)) = filter {
        // Only names from the entity's own list ever reach the SQL text.
        let c = E::FILTERS
            .iter()
            .find(|f| **f == c)
            .ok_or_else(|| StoreError::Check(format!("cannot filter by {c}")))?;
        sql.push_str(&format!(" WHERE {c} = $1"));
    }
    sql.push_str(" ORDER BY id");
    let mut q = sqlx::query(AssertSqlSafe(sql.clone()));
    if let Some((_, v)) = filter {
        q = q.bind(v);
    }
    let rows = q.fetch_all(store.pool()).await?;
    rows.iter().map(E::from_row).collect()
}

/// Reads one row.
pub async fn get<E: Entity>(store: &Store, id: i64) -> StoreResult<E> {
    let sql = format!(
        "SELECT {} FROM {} WHERE id = $1",
        select_cols::<E>(),
        E::TABLE
    );
    let row = sqlx::query(AssertSqlSafe(sql.clone()))
        .bind(id)
        .fetch_optional(store.pool())
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("{} {id}", E::NAME)))?;
    E::from_row(&row)
}

/// Inserts a row inside `tx` and returns it as stored.
pub async fn insert_in<E: Entity>(tx: &mut sqlx::AnyConnection, e: &E) -> StoreResult<E> {
    let ph: Vec<String> = (1..=E::COLS.len()).map(|i| format!("${i}")).collect();
    let sql = format!(
        "INSERT INTO {} ({}) VALUES ({}) RETURNING {}",
        E::TABLE,
        E::COLS.join(", "),
        ph.join(", "),
        select_cols::<E>()
    );
    let row = bind_all(sqlx::query(AssertSqlSafe(sql.clone())), e.values())
        .fetch_one(&mut *tx)
        .await?;
    E::from_row(&row)
}

/// Inserts a row.
pub async fn insert<E: Entity>(store: &Store, e: &E) -> StoreResult<E> {
    let mut conn = store.pool().acquire().await?;
    insert_in(&mut conn, e).await
}

/// Replaces a row's fields.
pub async fn update<E: Entity>(store: &Store, id: i64, e: &E) -> StoreResult<E> {
    let sets: Vec<String> = E::COLS
        .iter()
        .enumerate()
        .map(|(i, c)| format!("{c} = ${}", i + 1))
        .collect();
    let sql = format!(
        "UPDATE {} SET {} WHERE id = ${} RETURNING {}",
        E::TABLE,
        sets.join(", "),
        E::COLS.len() + 1,
        select_cols::<E>()
    );
    let row = bind_all(sqlx::query(AssertSqlSafe(sql.clone())), e.values())
        .bind(id)
        .fetch_optional(store.pool())
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("{} {id}", E::NAME)))?;
    E::from_row(&row)
}

/// Deletes a row (refused while other rows refer to it).
pub async fn delete<E: Entity>(store: &Store, id: i64) -> StoreResult<()> {
    let r = sqlx::query(AssertSqlSafe(format!(
        "DELETE FROM {} WHERE id = $1",
        E::TABLE
    )))
    .bind(id)
    .execute(store.pool())
    .await?;
    if r.rows_affected() == 0 {
        return Err(StoreError::NotFound(format!("{} {id}", E::NAME)));
    }
    Ok(())
}

fn need(field: &str, v: &str) -> Result<(), String> {
    if v.trim().is_empty() {
        Err(format!("{field} must not be empty"))
    } else if v.chars().count() > 200 {
        Err(format!("{field} is longer than 200 characters"))
    } else {
        Ok(())
    }
}

/// Declares an enum stored as text, with serde, `FromStr` and `as_str`.
macro_rules! text_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $var:ident = $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name { $($(#[$vm])* #[serde(rename = $s)] $var),+ }
        impl $name {
            /// The stored name.
            pub fn as_str(self) -> &'static str { match self { $($name::$var => $s),+ } }
            /// Every value.
            pub const ALL: &'static [$name] = &[$($name::$var),+];
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
text_enum!(
    /// The three classrooms (三个课堂).
    LessonMode {
        /// 专递课堂: hub teacher, 1–6 paired classes, two-way.
        Delivery = "delivery",
        /// 名师课堂: one-to-many; sites speak only when granted.
        Master = "master",
        /// 同步课堂: hub and remote classes in one lesson; spotlight.
        Sync = "sync",
    }
);
text_enum!(
    /// Where a lesson is in its life.
    LessonState {
        /// Before its room opens.
        Scheduled = "scheduled",
        /// Room open before the bell: classrooms join and check their devices.
        Open = "open",
        /// From the bell to the end of the slot plus grace.
        Live = "live",
        /// Over (by the clock or by the teacher).
        Ended = "ended",
    }
);

/// A province / city / county.
#[derive(Debug, Clone, Serialize, Deserialize)]
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
    const COLS: &'static [&'static str] = &["province", "city", "county"];
    fn from_row(r: &AnyRow) -> StoreResult<Self> {
        Ok(Region {
            id: col(r, "id")?,
            province: col(r, "province")?,
            city: col(r, "city")?,
            county: col(r, "county")?,
        })
    }
    fn values(&self) -> Vec<Val> {
        vec![
            Val::Text(self.province.clone()),
            Val::Text(self.city.clone()),
            Val::Text(self.county.clone()),
        ]
    }
    fn validate(&self) -> Result<(), String> {
        need("province", &self.province)?;
        need("city", &self.city)?;
        need("county", &self.county)
    }
}

/// A school.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct School {
    /// Id (ignored on input).
    #[serde(default)]
    pub id: i64,
    /// The district's school code (unique).
    pub code: String,
    /// Name.
    pub name: String,
    /// Hub or partner.
    pub kind: SchoolKind,
    /// Region.
    #[serde(default)]
    pub region_id: Option<i64>,
    /// How many sites a 名师课堂 (master) lesson of this hub school may reach.
    #[serde(default = "default_master_sites")]
    pub max_master_sites: i64,
}

fn default_master_sites() -> i64 {
    500
}

impl Entity for School {
    const TABLE: &'static str = "schools";
    const NAME: &'static str = "school";
    const COLS: &'static [&'static str] =
        &["code", "name", "kind", "region_id", "max_master_sites"];
    const FILTERS: &'static [&'static str] = &["region_id"];
    fn from_row(r: &AnyRow) -> StoreResult<Self> {
        Ok(School {
            id: col(r, "id")?,
            code: col(r, "code")?,
            name: col(r, "name")?,
            kind: col_enum(r, "kind")?,
            region_id: col(r, "region_id")?,
            max_master_sites: col(r, "max_master_sites")?,
        })
    }
    fn values(&self) -> Vec<Val> {
        vec![
            Val::Text(self.code.clone()),
            Val::Text(self.name.clone()),
            Val::Text(self.kind.as_str().into()),
            Val::Int(self.region_id),
            Val::Int(Some(self.max_master_sites)),
        ]
    }
    fn validate(&self) -> Result<(), String> {
        need("code", &self.code)?;
        need("name", &self.name)?;
        if !(1..=10_000).contains(&self.max_master_sites) {
            return Err("max_master_sites must be between 1 and 10000".into());
        }
        Ok(())
    }
}

/// A classroom and the device that sits in it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Classroom {
    /// Id (ignored on input).
    #[serde(default)]
    pub id: i64,
    /// School.
    pub school_id: i64,
    /// Name ("三年级1班", "录播教室").
    pub name: String,
    /// Hub, interactive or receive-only.
    pub kind: ClassroomKind,
    /// The device there (model, serial), free text.
    #[serde(default)]
    pub device: String,
}

impl Entity for Classroom {
    const TABLE: &'static str = "classrooms";
    const NAME: &'static str = "classroom";
    const COLS: &'static [&'static str] = &["school_id", "name", "kind", "device"];
    const FILTERS: &'static [&'static str] = &["school_id"];
    fn from_row(r: &AnyRow) -> StoreResult<Self> {
        Ok(Classroom {
            id: col(r, "id")?,
            school_id: col(r, "school_id")?,
            name: col(r, "name")?,
            kind: col_enum(r, "kind")?,
            device: col(r, "device")?,
        })
    }
    fn values(&self) -> Vec<Val> {
        vec![
            Val::Int(Some(self.school_id)),
            Val::Text(self.name.clone()),
            Val::Text(self.kind.as_str().into()),
            Val::Text(self.device.clone()),
        ]
    }
    fn validate(&self) -> Result<(), String> {
        need("name", &self.name)
    }
}

/// A teacher.
#[derive(Debug, Clone, Serialize, Deserialize)]
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
    const COLS: &'static [&'static str] = &["code", "name", "school_id", "subjects"];
    const FILTERS: &'static [&'static str] = &["school_id"];
    fn from_row(r: &AnyRow) -> StoreResult<Self> {
        Ok(Teacher {
            id: col(r, "id")?,
            code: col(r, "code")?,
            name: col(r, "name")?,
            school_id: col(r, "school_id")?,
            subjects: col(r, "subjects")?,
        })
    }
    fn values(&self) -> Vec<Val> {
        vec![
            Val::Text(self.code.clone()),
            Val::Text(self.name.clone()),
            Val::Int(Some(self.school_id)),
            Val::Text(self.subjects.clone()),
        ]
    }
    fn validate(&self) -> Result<(), String> {
        need("code", &self.code)?;
        need("name", &self.name)
    }
}

/// A pairing (结对): a hub school helps a partner school in a subject and grade for a term.
#[derive(Debug, Clone, Serialize, Deserialize)]
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
    const COLS: &'static [&'static str] = &[
        "hub_school_id",
        "partner_school_id",
        "subject",
        "grade",
        "term",
        "owner",
    ];
    const FILTERS: &'static [&'static str] = &["hub_school_id", "partner_school_id"];
    fn from_row(r: &AnyRow) -> StoreResult<Self> {
        Ok(Pairing {
            id: col(r, "id")?,
            hub_school_id: col(r, "hub_school_id")?,
            partner_school_id: col(r, "partner_school_id")?,
            subject: col(r, "subject")?,
            grade: col(r, "grade")?,
            term: col(r, "term")?,
            owner: col(r, "owner")?,
        })
    }
    fn values(&self) -> Vec<Val> {
        vec![
            Val::Int(Some(self.hub_school_id)),
            Val::Int(Some(self.partner_school_id)),
            Val::Text(self.subject.clone()),
            Val::Text(self.grade.clone()),
            Val::Text(self.term.clone()),
            Val::Text(self.owner.clone()),
        ]
    }
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
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Term {
    /// Id (ignored on input).
    #[serde(default)]
    pub id: i64,
    /// Name ("2026秋").
    pub name: String,
    /// First day, "YYYY-MM-DD".
    pub starts_on: String,
    /// Last day, "YYYY-MM-DD".
    pub ends_on: String,
}

impl Entity for Term {
    const TABLE: &'static str = "terms";
    const NAME: &'static str = "term";
    const COLS: &'static [&'static str] = &["name", "starts_on", "ends_on"];
    fn from_row(r: &AnyRow) -> StoreResult<Self> {
        Ok(Term {
            id: col(r, "id")?,
            name: col(r, "name")?,
            starts_on: col(r, "starts_on")?,
            ends_on: col(r, "ends_on")?,
        })
    }
    fn values(&self) -> Vec<Val> {
        vec![
            Val::Text(self.name.clone()),
            Val::Text(self.starts_on.clone()),
            Val::Text(self.ends_on.clone()),
        ]
    }
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

/// A remote site of a slot or lesson: a classroom and its on-site assisting teacher.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Site {
    /// The classroom.
    pub classroom_id: i64,
    /// The assisting teacher there (助教).
    #[serde(default)]
    pub assisting_teacher_id: Option<i64>,
}

/// A weekly timetable slot.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Slot {
    /// Id (ignored on input).
    #[serde(default)]
    pub id: i64,
    /// Term.
    pub term_id: i64,
    /// ISO weekday, 1 = Monday.
    pub weekday: i64,
    /// Period number (节次).
    pub period: i64,
    /// Bell, "HH:MM" local.
    pub starts: String,
    /// End, "HH:MM" local.
    pub ends: String,
    /// Subject.
    pub subject: String,
    /// Grade.
    pub grade: String,
    /// Lesson mode.
    pub mode: LessonMode,
    /// The hub teacher.
    pub hub_teacher_id: i64,
    /// The hub classroom.
    pub hub_classroom_id: i64,
    /// Paired classrooms.
    #[serde(default)]
    pub sites: Vec<Site>,
}

const WEEKDAYS: [&str; 7] = ["周一", "周二", "周三", "周四", "周五", "周六", "周日"];

impl Slot {
    /// "周一 第3节 09:00–09:40 英语 (slot 12)", for conflict messages.
    pub fn describe(&self) -> String {
        let wd = WEEKDAYS
            .get((self.weekday - 1).clamp(0, 6) as usize)
            .copied()
            .unwrap_or("?");
        format!(
            "slot {} ({wd} 第{}节 {}–{} {} {})",
            self.id, self.period, self.starts, self.ends, self.grade, self.subject
        )
    }

    /// Checks the fields (not conflicts).
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=7).contains(&self.weekday) {
            return Err("weekday must be 1 (Monday) to 7 (Sunday)".into());
        }
        if !(1..=20).contains(&self.period) {
            return Err("period must be 1 to 20".into());
        }
        let s = parse_hhmm(&self.starts).ok_or("starts must be HH:MM")?;
        let e = parse_hhmm(&self.ends).ok_or("ends must be HH:MM")?;
        if e <= s {
            return Err("ends must be after starts".into());
        }
        need("subject", &self.subject)?;
        need("grade", &self.grade)?;
        if self.sites.is_empty() {
            return Err("sites: a slot needs at least one paired classroom".into());
        }
        if self.mode == LessonMode::Delivery && self.sites.len() > 6 {
            return Err("sites: 专递课堂 (delivery) pairs at most 6 classrooms".into());
        }
        let mut seen = std::collections::HashSet::new();
        for s in &self.sites {
            if s.classroom_id == self.hub_classroom_id {
                return Err("sites: the hub classroom cannot also be a site".into());
            }
            if !seen.insert(s.classroom_id) {
                return Err(format!("sites: classroom {} listed twice", s.classroom_id));
            }
        }
        Ok(())
    }

    fn normalized(mut self) -> Self {
        // Stored as "HH:MM" so text comparison orders times.
        if let Some(t) = parse_hhmm(&self.starts) {
            self.starts = fmt_hhmm(t);
        }
        if let Some(t) = parse_hhmm(&self.ends) {
            self.ends = fmt_hhmm(t);
        }
        self
    }

    fn teachers(&self) -> impl Iterator<Item = i64> + '_ {
        std::iter::once(self.hub_teacher_id)
            .chain(self.sites.iter().filter_map(|s| s.assisting_teacher_id))
    }

    fn classrooms(&self) -> impl Iterator<Item = i64> + '_ {
        std::iter::once(self.hub_classroom_id).chain(self.sites.iter().map(|s| s.classroom_id))
    }
}

const SLOT_COLS: &str = "id, term_id, weekday, period, starts, ends, subject, grade, mode, \
                         hub_teacher_id, hub_classroom_id";

fn slot_from(r: &AnyRow) -> StoreResult<Slot> {
    Ok(Slot {
        id: col(r, "id")?,
        term_id: col(r, "term_id")?,
        weekday: col(r, "weekday")?,
        period: col(r, "period")?,
        starts: col(r, "starts")?,
        ends: col(r, "ends")?,
        subject: col(r, "subject")?,
        grade: col(r, "grade")?,
        mode: col_enum(r, "mode")?,
        hub_teacher_id: col(r, "hub_teacher_id")?,
        hub_classroom_id: col(r, "hub_classroom_id")?,
        sites: Vec::new(),
    })
}

async fn slot_sites(conn: &mut sqlx::AnyConnection, slot: &mut Slot) -> StoreResult<()> {
    let rows = sqlx::query(
        "SELECT classroom_id, assisting_teacher_id FROM slot_sites WHERE slot_id = $1 \
         ORDER BY classroom_id",
    )
    .bind(slot.id)
    .fetch_all(&mut *conn)
    .await?;
    slot.sites = rows
        .iter()
        .map(|r| {
            Ok(Site {
                classroom_id: col(r, "classroom_id")?,
                assisting_teacher_id: col(r, "assisting_teacher_id")?,
            })
        })
        .collect::<StoreResult<_>>()?;
    Ok(())
}

/// Slots of a term (all, or one weekday), with their sites.
pub async fn list_slots_in(
    conn: &mut sqlx::AnyConnection,
    term_id: i64,
    weekday: Option<i64>,
) -> StoreResult<Vec<Slot>> {
    let rows = match weekday {
        Some(w) => {
            sqlx::query(AssertSqlSafe(format!(
                "SELECT {SLOT_COLS} FROM slots WHERE term_id = $1 AND weekday = $2 \
                 ORDER BY weekday, starts, id"
            )))
            .bind(term_id)
            .bind(w)
            .fetch_all(&mut *conn)
            .await?
        }
        None => {
            sqlx::query(AssertSqlSafe(format!(
                "SELECT {SLOT_COLS} FROM slots WHERE term_id = $1 ORDER BY weekday, starts, id"
            )))
            .bind(term_id)
            .fetch_all(&mut *conn)
            .await?
        }
    };
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        let mut s = slot_from(r)?;
        slot_sites(conn, &mut s).await?;
        out.push(s);
    }
    Ok(out)
}

/// One slot.
pub async fn get_slot(store: &Store, id: i64) -> StoreResult<Slot> {
    let mut conn = store.pool().acquire().await?;
    let row = sqlx::query(AssertSqlSafe(format!(
        "SELECT {SLOT_COLS} FROM slots WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| StoreError::NotFound(format!("slot {id}")))?;
    let mut s = slot_from(&row)?;
    slot_sites(&mut conn, &mut s).await?;
    Ok(s)
}

/// Why a slot cannot be stored.
#[derive(Debug, thiserror::Error)]
pub enum SlotError {
    /// A field is wrong.
    #[error("{0}")]
    Invalid(String),
    /// A teacher or classroom would be in two places at once.
    #[error("{0}")]
    Conflict(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Finds a slot of the same term and weekday, overlapping in time, that shares a teacher
/// or a classroom with `s`; returns what clashes, naming the other slot.
pub async fn find_conflict(
    conn: &mut sqlx::AnyConnection,
    s: &Slot,
) -> StoreResult<Option<String>> {
    let others = list_slots_in(conn, s.term_id, Some(s.weekday)).await?;
    for o in others.iter().filter(|o| o.id != s.id) {
        // "HH:MM" strings order like times.
        if !(s.starts < o.ends && o.starts < s.ends) {
            continue;
        }
        if let Some(t) = s.teachers().find(|t| o.teachers().any(|x| x == *t)) {
            return Ok(Some(format!(
                "teacher {t} is already in {} at that time",
                o.describe()
            )));
        }
        if let Some(c) = s.classrooms().find(|c| o.classrooms().any(|x| x == *c)) {
            return Ok(Some(format!(
                "classroom {c} is already in {} at that time",
                o.describe()
            )));
        }
    }
    Ok(None)
}

/// Stores a new slot (or replaces slot `s.id` when `replace`), inside `conn`'s transaction.
pub async fn save_slot_in(
    conn: &mut sqlx::AnyConnection,
    s: Slot,
    replace: bool,
) -> Result<Slot, SlotError> {
    s.validate().map_err(SlotError::Invalid)?;
    let mut s = s.normalized();
    if let Some(c) = find_conflict(conn, &s).await? {
        return Err(SlotError::Conflict(c));
    }
    let row = if replace {
        sqlx::query(AssertSqlSafe(format!(
            "UPDATE slots SET term_id = $1, weekday = $2, period = $3, starts = $4, ends = $5, \
             subject = $6, grade = $7, mode = $8, hub_teacher_id = $9, hub_classroom_id = $10 \
             WHERE id = $11 RETURNING {SLOT_COLS}"
        )))
    } else {
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO slots (term_id, weekday, period, starts, ends, subject, grade, mode, \
             hub_teacher_id, hub_classroom_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             RETURNING {SLOT_COLS}"
        )))
    }
    .bind(s.term_id)
    .bind(s.weekday)
    .bind(s.period)
    .bind(s.starts.clone())
    .bind(s.ends.clone())
    .bind(s.subject.clone())
    .bind(s.grade.clone())
    .bind(s.mode.as_str())
    .bind(s.hub_teacher_id)
    .bind(s.hub_classroom_id)
    .bind(s.id)
    .fetch_optional(&mut *conn)
    .await
    .map_err(StoreError::from)?
    .ok_or_else(|| StoreError::NotFound(format!("slot {}", s.id)))?;
    let sites = std::mem::take(&mut s.sites);
    let mut stored = slot_from(&row)?;
    sqlx::query("DELETE FROM slot_sites WHERE slot_id = $1")
        .bind(stored.id)
        .execute(&mut *conn)
        .await
        .map_err(StoreError::from)?;
    for site in &sites {
        sqlx::query(
            "INSERT INTO slot_sites (slot_id, classroom_id, assisting_teacher_id) \
             VALUES ($1, $2, $3)",
        )
        .bind(stored.id)
        .bind(site.classroom_id)
        .bind(site.assisting_teacher_id)
        .execute(&mut *conn)
        .await
        .map_err(StoreError::from)?;
    }
    stored.sites = sites;
    Ok(stored)
}

/// Stores a new slot, or replaces one.
pub async fn save_slot(store: &Store, s: Slot, replace: bool) -> Result<Slot, SlotError> {
    let mut tx = store.begin().await?;
    let stored = save_slot_in(&mut tx, s, replace).await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(stored)
}

/// Deletes a slot (its lessons stay, detached).
pub async fn delete_slot(store: &Store, id: i64) -> StoreResult<()> {
    let mut tx = store.begin().await?;
    sqlx::query("DELETE FROM slot_sites WHERE slot_id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE lessons SET slot_id = NULL WHERE slot_id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    let r = sqlx::query("DELETE FROM slots WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    if r.rows_affected() == 0 {
        return Err(StoreError::NotFound(format!("slot {id}")));
    }
    tx.commit().await?;
    Ok(())
}

/// A lesson: one occurrence of a slot, or an ad hoc lesson.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Lesson {
    /// Id (ignored on input).
    #[serde(default)]
    pub id: i64,
    /// The slot it came from.
    #[serde(default)]
    pub slot_id: Option<i64>,
    /// The local date, for lessons from the timetable.
    #[serde(default)]
    pub lesson_date: Option<String>,
    /// Mode.
    pub mode: LessonMode,
    /// Title (课题).
    #[serde(default)]
    pub title: String,
    /// Subject.
    pub subject: String,
    /// Grade.
    pub grade: String,
    /// Textbook edition (人教版…).
    #[serde(default)]
    pub textbook: String,
    /// Chapter.
    #[serde(default)]
    pub chapter: String,
    /// Hub teacher.
    pub hub_teacher_id: i64,
    /// Hub classroom.
    pub hub_classroom_id: i64,
    /// Bell, epoch ms.
    pub starts_at: Millis,
    /// End of the slot, epoch ms.
    pub ends_at: Millis,
    /// State as last stored (the scheduler keeps it current).
    #[serde(default = "scheduled")]
    pub state: LessonState,
    /// When the teacher ended it, if they did.
    #[serde(default)]
    pub ended_at: Option<Millis>,
    /// Paired classrooms.
    #[serde(default)]
    pub sites: Vec<Site>,
}

fn scheduled() -> LessonState {
    LessonState::Scheduled
}

impl Lesson {
    /// The media room of this lesson.
    pub fn room(&self) -> String {
        format!("lesson-{}", self.id)
    }

    /// The state at `now`, given the opening lead and the grace after the end.
    pub fn state_at(&self, now: Millis, open_before: Millis, grace: Millis) -> LessonState {
        if self.ended_at.is_some() || now >= self.ends_at.saturating_add(grace) {
            LessonState::Ended
        } else if now >= self.starts_at {
            LessonState::Live
        } else if now >= self.starts_at.saturating_sub(open_before) {
            LessonState::Open
        } else {
            LessonState::Scheduled
        }
    }

    /// Checks the fields.
    pub fn validate(&self) -> Result<(), String> {
        need("subject", &self.subject)?;
        need("grade", &self.grade)?;
        // Any time a person could mean: 2000-01-01 to 2100-01-01 (epoch ms). Beyond that,
        // arithmetic on the times could overflow.
        const EARLIEST: Millis = 946_684_800_000;
        const LATEST: Millis = 4_102_444_800_000;
        for (name, t) in [("starts_at", self.starts_at), ("ends_at", self.ends_at)] {
            if !(EARLIEST..=LATEST).contains(&t) {
                return Err(format!(
                    "{name} must be a time between 2000 and 2100 (epoch milliseconds)"
                ));
            }
        }
        if self.ends_at <= self.starts_at {
            return Err("ends_at must be after starts_at".into());
        }
        match self.ends_at.checked_sub(self.starts_at) {
            Some(len) if len <= 12 * 3_600_000 => {}
            _ => return Err("a lesson lasts at most 12 hours".into()),
        }
        if self
            .sites
            .iter()
            .any(|s| s.classroom_id == self.hub_classroom_id)
        {
            return Err("sites: the hub classroom cannot also be a site".into());
        }
        Ok(())
    }

    /// Whether `classroom` takes part (hub or site).
    pub fn has_classroom(&self, classroom: i64) -> bool {
        self.hub_classroom_id == classroom || self.sites.iter().any(|s| s.classroom_id == classroom)
    }
}

const LESSON_COLS: &str = "id, slot_id, lesson_date, mode, title, subject, grade, textbook, \
                           chapter, hub_teacher_id, hub_classroom_id, starts_at, ends_at, state, \
                           ended_at";

fn lesson_from(r: &AnyRow) -> StoreResult<Lesson> {
    Ok(Lesson {
        id: col(r, "id")?,
        slot_id: col(r, "slot_id")?,
        lesson_date: col(r, "lesson_date")?,
        mode: col_enum(r, "mode")?,
        title: col(r, "title")?,
        subject: col(r, "subject")?,
        grade: col(r, "grade")?,
        textbook: col(r, "textbook")?,
        chapter: col(r, "chapter")?,
        hub_teacher_id: col(r, "hub_teacher_id")?,
        hub_classroom_id: col(r, "hub_classroom_id")?,
        starts_at: col(r, "starts_at")?,
        ends_at: col(r, "ends_at")?,
        state: col_enum(r, "state")?,
        ended_at: col(r, "ended_at")?,
        sites: Vec::new(),
    })
}

const LESSON_JOIN_COLS: &str = "l.id, l.slot_id, l.lesson_date, l.mode, l.title, l.subject, \
    l.grade, l.textbook, l.chapter, l.hub_teacher_id, l.hub_classroom_id, l.starts_at, \
    l.ends_at, l.state, l.ended_at, ls.classroom_id AS site_classroom, \
    ls.assisting_teacher_id AS site_assistant";

/// Lessons with their sites in one query: `filter` is the WHERE clause over `l` (lessons)
/// with `$n` placeholders bound from `binds`.
async fn lessons_joined(
    store: &Store,
    filter: &'static str,
    binds: &[i64],
) -> StoreResult<Vec<Lesson>> {
    let mut q = sqlx::query(AssertSqlSafe(format!(
        "SELECT {LESSON_JOIN_COLS} FROM lessons l \
         LEFT JOIN lesson_sites ls ON ls.lesson_id = l.id \
         WHERE {filter} ORDER BY l.starts_at, l.id, ls.classroom_id"
    )));
    for b in binds {
        q = q.bind(*b);
    }
    let rows = q.fetch_all(store.pool()).await?;
    let mut out: Vec<Lesson> = Vec::new();
    for r in &rows {
        let id: i64 = col(r, "id")?;
        if out.last().map(|l| l.id) != Some(id) {
            out.push(lesson_from(r)?);
        }
        if let Some(c) = col::<Option<i64>>(r, "site_classroom")? {
            let l = out
                .last_mut()
                .expect("a lesson was pushed for this row above");
            l.sites.push(Site {
                classroom_id: c,
                assisting_teacher_id: col(r, "site_assistant")?,
            });
        }
    }
    Ok(out)
}

/// One lesson.
pub async fn get_lesson(store: &Store, id: i64) -> StoreResult<Lesson> {
    lessons_joined(store, "l.id = $1", &[id])
        .await?
        .pop()
        .ok_or_else(|| StoreError::NotFound(format!("lesson {id}")))
}

/// Lessons whose time window meets [`from`, `to`), by start.
pub async fn lessons_between(store: &Store, from: Millis, to: Millis) -> StoreResult<Vec<Lesson>> {
    lessons_joined(store, "l.starts_at < $1 AND l.ends_at >= $2", &[to, from]).await
}

/// Lessons not yet stored as ended (what the scheduler watches), in one query.
pub async fn unfinished_lessons(store: &Store) -> StoreResult<Vec<Lesson>> {
    lessons_joined(store, "l.state <> 'ended'", &[]).await
}

/// Lessons not ended that overlap [`from`, `to`) and share the hub teacher or any of
/// `classrooms` (as hub or site), other than `except`: what a new lesson would clash with.
pub async fn clashing_lessons(
    store: &Store,
    from: Millis,
    to: Millis,
    teacher: i64,
    classrooms: &[i64],
    except: i64,
) -> StoreResult<Vec<Lesson>> {
    let candidates = lessons_joined(
        store,
        "l.state <> 'ended' AND l.ended_at IS NULL AND l.starts_at < $1 AND l.ends_at > $2 \
         AND l.id <> $3",
        &[to, from, except],
    )
    .await?;
    Ok(candidates
        .into_iter()
        .filter(|l| l.hub_teacher_id == teacher || classrooms.iter().any(|c| l.has_classroom(*c)))
        .collect())
}

/// How many lessons `teacher` leads that start in [`from`, `to`), other than `except`.
pub async fn count_teacher_lessons(
    store: &Store,
    teacher: i64,
    from: Millis,
    to: Millis,
    except: i64,
) -> StoreResult<i64> {
    let row = sqlx::query(
        "SELECT COUNT(*) AS n FROM lessons WHERE hub_teacher_id = $1 AND starts_at >= $2 \
         AND starts_at < $3 AND id <> $4",
    )
    .bind(teacher)
    .bind(from)
    .bind(to)
    .bind(except)
    .fetch_one(store.pool())
    .await?;
    col(&row, "n")
}

/// Replaces a scheduled lesson's fields and sites.
pub async fn update_lesson(store: &Store, id: i64, l: &Lesson) -> StoreResult<Lesson> {
    let mut tx = store.begin().await?;
    let r = sqlx::query(
        "UPDATE lessons SET mode = $1, title = $2, subject = $3, grade = $4, textbook = $5, \
         chapter = $6, hub_teacher_id = $7, hub_classroom_id = $8, starts_at = $9, ends_at = $10 \
         WHERE id = $11",
    )
    .bind(l.mode.as_str())
    .bind(l.title.clone())
    .bind(l.subject.clone())
    .bind(l.grade.clone())
    .bind(l.textbook.clone())
    .bind(l.chapter.clone())
    .bind(l.hub_teacher_id)
    .bind(l.hub_classroom_id)
    .bind(l.starts_at)
    .bind(l.ends_at)
    .bind(id)
    .execute(&mut *tx)
    .await?;
    if r.rows_affected() == 0 {
        return Err(StoreError::NotFound(format!("lesson {id}")));
    }
    sqlx::query("DELETE FROM lesson_sites WHERE lesson_id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    insert_sites(&mut tx, id, &l.sites).await?;
    tx.commit().await?;
    get_lesson(store, id).await
}

/// Deletes a lesson and its sites.
pub async fn delete_lesson(store: &Store, id: i64) -> StoreResult<()> {
    let mut tx = store.begin().await?;
    sqlx::query("DELETE FROM lesson_sites WHERE lesson_id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    let r = sqlx::query("DELETE FROM lessons WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    if r.rows_affected() == 0 {
        return Err(StoreError::NotFound(format!("lesson {id}")));
    }
    tx.commit().await?;
    Ok(())
}

/// Appends to the audit trail.
pub async fn audit(
    store: &Store,
    at: Millis,
    actor: &str,
    action: &str,
    object: &str,
    detail: &str,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO audit_log (at, actor, action, object, detail) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(at)
    .bind(actor)
    .bind(action)
    .bind(object)
    .bind(detail)
    .execute(store.pool())
    .await?;
    Ok(())
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

/// Stores a new lesson with its sites.
pub async fn insert_lesson_in(conn: &mut sqlx::AnyConnection, l: &Lesson) -> StoreResult<Lesson> {
    let row = sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO lessons (slot_id, lesson_date, mode, title, subject, grade, textbook, \
         chapter, hub_teacher_id, hub_classroom_id, starts_at, ends_at, state) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 'scheduled') \
         RETURNING {LESSON_COLS}"
    )))
    .bind(l.slot_id)
    .bind(l.lesson_date.clone())
    .bind(l.mode.as_str())
    .bind(l.title.clone())
    .bind(l.subject.clone())
    .bind(l.grade.clone())
    .bind(l.textbook.clone())
    .bind(l.chapter.clone())
    .bind(l.hub_teacher_id)
    .bind(l.hub_classroom_id)
    .bind(l.starts_at)
    .bind(l.ends_at)
    .fetch_one(&mut *conn)
    .await?;
    let mut stored = lesson_from(&row)?;
    insert_sites(conn, stored.id, &l.sites).await?;
    stored.sites = l.sites.clone();
    Ok(stored)
}

/// Stores a lesson's sites.
async fn insert_sites(
    conn: &mut sqlx::AnyConnection,
    lesson: i64,
    sites: &[Site],
) -> StoreResult<()> {
    for s in sites {
        sqlx::query(
            "INSERT INTO lesson_sites (lesson_id, classroom_id, assisting_teacher_id) \
             VALUES ($1, $2, $3)",
        )
        .bind(lesson)
        .bind(s.classroom_id)
        .bind(s.assisting_teacher_id)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Stores a new lesson.
pub async fn insert_lesson(store: &Store, l: &Lesson) -> StoreResult<Lesson> {
    let mut tx = store.begin().await?;
    let stored = insert_lesson_in(&mut tx, l).await?;
    tx.commit().await?;
    Ok(stored)
}

/// Records a lesson's state (and, when the teacher ends it, when).
pub async fn set_lesson_state(
    store: &Store,
    id: i64,
    state: LessonState,
    ended_at: Option<Millis>,
) -> StoreResult<()> {
    sqlx::query("UPDATE lessons SET state = $1, ended_at = COALESCE($2, ended_at) WHERE id = $3")
        .bind(state.as_str())
        .bind(ended_at)
        .bind(id)
        .execute(store.pool())
        .await?;
    Ok(())
}

/// Creates the lessons of every slot of every term on each local date in [`from`, `to`]
/// (inclusive) that the term covers; existing ones are kept. Returns how many were new.
pub async fn generate_lessons(
    store: &Store,
    from: time::Date,
    to: time::Date,
    offset: time::UtcOffset,
) -> StoreResult<usize> {
    let terms: Vec<Term> = list(store, None).await?;
    let mut tx = store.begin().await?;
    let mut made = 0;
    for term in &terms {
        let (Some(ts), Some(te)) = (parse_date(&term.starts_on), parse_date(&term.ends_on)) else {
            continue;
        };
        let slots = list_slots_in(&mut tx, term.id, None).await?;
        let mut d = from.max(ts);
        let last = to.min(te);
        while d <= last {
            let wd = crate::time::iso_weekday(d) as i64;
            for s in slots.iter().filter(|s| s.weekday == wd) {
                let date = crate::time::fmt_date(d);
                let exists =
                    sqlx::query("SELECT id FROM lessons WHERE slot_id = $1 AND lesson_date = $2")
                        .bind(s.id)
                        .bind(date.clone())
                        .fetch_optional(&mut *tx)
                        .await?;
                if exists.is_some() {
                    continue;
                }
                let (Some(st), Some(en)) = (parse_hhmm(&s.starts), parse_hhmm(&s.ends)) else {
                    continue;
                };
                let l = Lesson {
                    id: 0,
                    slot_id: Some(s.id),
                    lesson_date: Some(date),
                    mode: s.mode,
                    title: String::new(),
                    subject: s.subject.clone(),
                    grade: s.grade.clone(),
                    textbook: String::new(),
                    chapter: String::new(),
                    hub_teacher_id: s.hub_teacher_id,
                    hub_classroom_id: s.hub_classroom_id,
                    starts_at: crate::time::local_to_millis(d, st, offset),
                    ends_at: crate::time::local_to_millis(d, en, offset),
                    state: LessonState::Scheduled,
                    ended_at: None,
                    sites: s.sites.clone(),
                };
                insert_lesson_in(&mut tx, &l).await?;
                made += 1;
            }
            match d.next_day() {
                Some(n) => d = n,
                None => break,
            }
        }
    }
    tx.commit().await?;
    Ok(made)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lesson_times_never_overflow() {
        // The review's perpetual lesson, and every extreme: refused, and no arithmetic on
        // them panics (debug) or wraps (release).
        let extremes = [i64::MIN, -(1 << 62), -1, 0, 1, 1 << 62, i64::MAX];
        for &a in &extremes {
            for &b in &extremes {
                let l = lesson(a, b);
                assert!(l.validate().is_err(), "{a}..{b}");
                for now in extremes {
                    let _ = l.state_at(now, i64::MAX, i64::MAX);
                    let _ = l.state_at(now, 600_000, 300_000);
                }
            }
        }
        let ok = lesson(1_788_739_200_000, 1_788_739_200_000 + 40 * 60_000);
        assert!(ok.validate().is_ok());
        assert!(lesson(ok.starts_at, ok.starts_at + 12 * 3_600_000 + 1)
            .validate()
            .is_err());
    }

    fn lesson(starts: Millis, ends: Millis) -> Lesson {
        Lesson {
            id: 1,
            slot_id: None,
            lesson_date: None,
            mode: LessonMode::Sync,
            title: String::new(),
            subject: "英语".into(),
            grade: "三年级".into(),
            textbook: String::new(),
            chapter: String::new(),
            hub_teacher_id: 1,
            hub_classroom_id: 1,
            starts_at: starts,
            ends_at: ends,
            state: LessonState::Scheduled,
            ended_at: None,
            sites: vec![],
        }
    }

    #[test]
    fn lesson_states_follow_the_slot() {
        let l = lesson(100_000, 200_000);
        let (open, grace) = (10_000, 5_000);
        assert_eq!(l.state_at(89_999, open, grace), LessonState::Scheduled);
        assert_eq!(l.state_at(90_000, open, grace), LessonState::Open);
        assert_eq!(l.state_at(100_000, open, grace), LessonState::Live);
        assert_eq!(l.state_at(204_999, open, grace), LessonState::Live);
        assert_eq!(l.state_at(205_000, open, grace), LessonState::Ended);
        let mut ended = l.clone();
        ended.ended_at = Some(150_000);
        assert_eq!(ended.state_at(150_001, open, grace), LessonState::Ended);
    }

    #[test]
    fn slot_validation_names_the_field() {
        let mut s = Slot {
            id: 0,
            term_id: 1,
            weekday: 1,
            period: 1,
            starts: "8:00".into(),
            ends: "08:40".into(),
            subject: "音乐".into(),
            grade: "三年级".into(),
            mode: LessonMode::Delivery,
            hub_teacher_id: 1,
            hub_classroom_id: 1,
            sites: vec![Site {
                classroom_id: 2,
                assisting_teacher_id: None,
            }],
        };
        assert!(s.validate().is_ok());
        assert_eq!(s.clone().normalized().starts, "08:00");
        s.weekday = 8;
        assert!(s.validate().unwrap_err().contains("weekday"));
        s.weekday = 1;
        s.ends = "07:00".into();
        assert!(s.validate().unwrap_err().contains("ends"));
        s.ends = "08:40".into();
        s.sites = (2..9)
            .map(|c| Site {
                classroom_id: c,
                assisting_teacher_id: None,
            })
            .collect();
        assert!(s.validate().unwrap_err().contains("at most 6"));
        s.sites = vec![Site {
            classroom_id: 1,
            assisting_teacher_id: None,
        }];
        assert!(s.validate().unwrap_err().contains("hub classroom"));
    }
}
