//! The weekly timetable: slots with their paired sites, the field checks, and the rule that
//! no teacher or classroom is in two slots at once. Never lessons or HTTP.

use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, FromRow};

use super::org::text_enum;
use crate::store::entity::need;
use crate::store::{Store, StoreError, StoreResult};
use crate::time::{fmt_hhmm, parse_hhmm};

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
/// A remote site of a slot or lesson: a classroom and its on-site assisting teacher.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Site {
    /// The classroom.
    pub classroom_id: i64,
    /// The assisting teacher there (助教).
    #[serde(default)]
    pub assisting_teacher_id: Option<i64>,
}

/// A weekly timetable slot.
#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
#[schema(as = Slot)]
pub struct TimetableSlot {
    /// Id (ignored on input).
    #[serde(default)]
    pub id: i64,
    /// Term.
    pub term_id: i64,
    /// ISO weekday, 1 = Monday.
    #[schema(minimum = 1, maximum = 7)]
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
    #[sqlx(try_from = "String")]
    pub mode: LessonMode,
    /// The hub teacher.
    pub hub_teacher_id: i64,
    /// The hub classroom.
    pub hub_classroom_id: i64,
    /// Paired classrooms.
    #[serde(default)]
    #[sqlx(skip)]
    pub sites: Vec<Site>,
}

const WEEKDAYS: [&str; 7] = ["周一", "周二", "周三", "周四", "周五", "周六", "周日"];

impl TimetableSlot {
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

    pub(crate) fn normalized(mut self) -> Self {
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

fn slot_from(r: &AnyRow) -> StoreResult<TimetableSlot> {
    Ok(TimetableSlot::from_row(r)?)
}

async fn slot_sites(conn: &mut sqlx::AnyConnection, slot: &mut TimetableSlot) -> StoreResult<()> {
    let rows = sqlx::query(
        "SELECT classroom_id, assisting_teacher_id FROM slot_sites WHERE slot_id = $1 \
         ORDER BY classroom_id",
    )
    .bind(slot.id)
    .fetch_all(&mut *conn)
    .await?;
    slot.sites = rows.iter().map(Site::from_row).collect::<Result<_, _>>()?;
    Ok(())
}

/// Slots of a term (all, or one weekday), with their sites.
pub async fn list_slots_in(
    conn: &mut sqlx::AnyConnection,
    term_id: i64,
    weekday: Option<i64>,
) -> StoreResult<Vec<TimetableSlot>> {
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
pub async fn get_slot(store: &Store, id: i64) -> StoreResult<TimetableSlot> {
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

/// Why `s` and `other` cannot both be kept: they overlap in time and share a teacher or a
/// classroom (the message names which, and `other`). Pure: the caller picks slots of the
/// same term and weekday.
pub fn clash(s: &TimetableSlot, other: &TimetableSlot) -> Option<String> {
    clash_named(s, other, &|_| None, &|_| None)
}

/// [`clash`], naming the teacher or classroom (王丽, not "teacher 1") where `teacher` or
/// `classroom` knows the name of an id; the id stays in brackets.
pub fn clash_named(
    s: &TimetableSlot,
    other: &TimetableSlot,
    teacher: &dyn Fn(i64) -> Option<String>,
    classroom: &dyn Fn(i64) -> Option<String>,
) -> Option<String> {
    // "HH:MM" strings order like times.
    if !(s.starts < other.ends && other.starts < s.ends) {
        return None;
    }
    let named = |id: i64, name: Option<String>| match name {
        Some(n) => format!("{n} ({id})"),
        None => id.to_string(),
    };
    if let Some(t) = s.teachers().find(|t| other.teachers().any(|x| x == *t)) {
        return Some(format!(
            "teacher {} is already in {} at that time",
            named(t, teacher(t)),
            other.describe()
        ));
    }
    if let Some(c) = s.classrooms().find(|c| other.classrooms().any(|x| x == *c)) {
        return Some(format!(
            "classroom {} is already in {} at that time",
            named(c, classroom(c)),
            other.describe()
        ));
    }
    None
}

/// The `name` column of row `id` in `table` (teachers or classrooms), if there is one.
async fn name_of(
    conn: &mut sqlx::AnyConnection,
    table: &'static str,
    id: i64,
) -> StoreResult<Option<String>> {
    let row: Option<(String,)> = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT name FROM {table} WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.map(|(n,)| n))
}

/// Finds a slot of the same term and weekday, overlapping in time, that shares a teacher
/// or a classroom with `s`; returns what clashes, naming the other slot.
pub async fn find_conflict(
    conn: &mut sqlx::AnyConnection,
    s: &TimetableSlot,
) -> StoreResult<Option<String>> {
    let others = list_slots_in(conn, s.term_id, Some(s.weekday)).await?;
    let Some(o) = others
        .iter()
        .filter(|o| o.id != s.id)
        .find(|o| clash(s, o).is_some())
    else {
        return Ok(None);
    };
    // Names for the message: the slot's own teachers and classrooms (a handful of rows).
    let mut teachers = std::collections::HashMap::new();
    for t in s.teachers() {
        if let Some(n) = name_of(conn, "teachers", t).await? {
            teachers.insert(t, n);
        }
    }
    let mut rooms = std::collections::HashMap::new();
    for c in s.classrooms() {
        if let Some(n) = name_of(conn, "classrooms", c).await? {
            rooms.insert(c, n);
        }
    }
    Ok(clash_named(s, o, &|t| teachers.get(&t).cloned(), &|c| {
        rooms.get(&c).cloned()
    }))
}

/// Stores a new slot (or replaces slot `s.id` when `replace`), inside `conn`'s transaction.
pub async fn save_slot_in(
    conn: &mut sqlx::AnyConnection,
    s: TimetableSlot,
    replace: bool,
) -> Result<TimetableSlot, SlotError> {
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
pub async fn save_slot(
    store: &Store,
    s: TimetableSlot,
    replace: bool,
) -> Result<TimetableSlot, SlotError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_validation_names_the_field() {
        let mut s = TimetableSlot {
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

    fn at(id: i64, starts: &str, ends: &str, teacher: i64, rooms: &[i64]) -> TimetableSlot {
        TimetableSlot {
            id,
            term_id: 1,
            weekday: 2,
            period: 3,
            starts: starts.into(),
            ends: ends.into(),
            subject: "英语".into(),
            grade: "三年级".into(),
            mode: LessonMode::Delivery,
            hub_teacher_id: teacher,
            hub_classroom_id: rooms[0],
            sites: rooms[1..]
                .iter()
                .map(|&c| Site {
                    classroom_id: c,
                    assisting_teacher_id: None,
                })
                .collect(),
        }
    }

    #[test]
    fn slots_clash_when_they_overlap_and_share_a_teacher_or_a_classroom() {
        let s = at(1, "09:00", "09:40", 7, &[10, 11]);
        // Back to back is not an overlap; one minute in is.
        assert_eq!(clash(&s, &at(2, "09:40", "10:20", 7, &[10, 11])), None);
        assert_eq!(clash(&s, &at(2, "08:20", "09:00", 7, &[10, 11])), None);
        let teacher = clash(&s, &at(2, "09:39", "10:20", 7, &[20, 21])).unwrap();
        assert!(
            teacher.starts_with("teacher 7 is already in slot 2"),
            "{teacher}"
        );
        // Overlapping but sharing nobody is fine.
        assert_eq!(clash(&s, &at(2, "08:50", "09:30", 8, &[20, 21])), None);
        // A site classroom of one is the hub classroom of the other.
        let room = clash(&s, &at(3, "08:50", "09:30", 8, &[11, 21])).unwrap();
        assert!(
            room.starts_with("classroom 11 is already in slot 3"),
            "{room}"
        );
        // An assisting teacher counts as a teacher.
        let mut other = at(4, "09:10", "09:20", 8, &[20, 21]);
        other.sites[0].assisting_teacher_id = Some(7);
        assert!(clash(&s, &other).unwrap().starts_with("teacher 7"));
        // With names known, the message names the teacher or classroom (the id in brackets).
        let named = clash_named(
            &s,
            &at(2, "09:39", "10:20", 7, &[20, 21]),
            &|t| (t == 7).then(|| "王丽".to_string()),
            &|_| None,
        )
        .unwrap();
        assert!(
            named.starts_with("teacher 王丽 (7) is already in"),
            "{named}"
        );
        let room = clash_named(
            &s,
            &at(3, "08:50", "09:30", 8, &[11, 21]),
            &|_| None,
            &|c| (c == 11).then(|| "三年级1班".to_string()),
        )
        .unwrap();
        assert!(room.starts_with("classroom 三年级1班 (11)"), "{room}");
        // Containment both ways.
        assert!(clash(&s, &at(5, "08:00", "11:00", 7, &[20])).is_some());
        assert!(clash(&at(5, "08:00", "11:00", 7, &[20]), &s).is_some());
    }
}
