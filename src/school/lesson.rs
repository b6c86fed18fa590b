//! Lessons: one occurrence of a slot (or an ad hoc lesson) with its sites, its life by the
//! clock ([`Lesson::state_at`]), and its storage, including generation from the timetable.
//! Never HTTP, media or presence.

use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, FromRow};

use super::org::{text_enum, Term};
use super::timetable::{list_slots_in, LessonMode, Site, TimetableSlot};
use crate::store::entity::{list, need};
use crate::store::{col, Store, StoreError, StoreResult};
use crate::time::{parse_date, parse_hhmm, Millis};

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
/// A lesson: one occurrence of a slot, or an ad hoc lesson.
#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
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
    #[sqlx(try_from = "String")]
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
    #[schema(value_type = i64)]
    pub starts_at: Millis,
    /// End of the slot, epoch ms.
    #[schema(value_type = i64)]
    pub ends_at: Millis,
    /// State as last stored (the scheduler keeps it current).
    #[serde(default = "scheduled")]
    #[sqlx(try_from = "String")]
    pub state: LessonState,
    /// When the teacher ended it, if they did.
    #[serde(default)]
    #[schema(value_type = Option<i64>)]
    pub ended_at: Option<Millis>,
    /// Paired classrooms.
    #[serde(default)]
    #[sqlx(skip)]
    pub sites: Vec<Site>,
}

fn scheduled() -> LessonState {
    LessonState::Scheduled
}

impl Lesson {
    /// The media room of this lesson ([`crate::ids::RoomName::lesson`]), as text.
    pub fn room(&self) -> String {
        crate::ids::RoomName::lesson(self.id).to_string()
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
    Ok(Lesson::from_row(r)?)
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

/// Every lesson that has a recording, in one query (the recordings list, without a query per
/// lesson).
pub async fn lessons_recorded(store: &Store) -> StoreResult<Vec<Lesson>> {
    lessons_joined(
        store,
        "l.id IN (SELECT lesson_id FROM recordings WHERE lesson_id IS NOT NULL)",
        &[],
    )
    .await
}

/// Lessons whose time window meets [`from`, `to`), by start.
pub async fn lessons_between(store: &Store, from: Millis, to: Millis) -> StoreResult<Vec<Lesson>> {
    lessons_joined(store, "l.starts_at < $1 AND l.ends_at >= $2", &[to, from]).await
}

/// Lessons starting in [`from`, `to`) that `teacher` gives as hub teacher or assists at one
/// of their sites (a teacher record's lessons), by start.
pub async fn lessons_of_teacher(
    store: &Store,
    teacher: i64,
    from: Millis,
    to: Millis,
) -> StoreResult<Vec<Lesson>> {
    lessons_joined(
        store,
        "l.starts_at >= $2 AND l.starts_at < $3 AND (l.hub_teacher_id = $1 OR l.id IN \
         (SELECT lesson_id FROM lesson_sites WHERE assisting_teacher_id = $1))",
        &[teacher, from, to],
    )
    .await
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
    generate_lessons_of(store, from, to, offset, |_| true).await
}

/// [`generate_lessons`] for the slots `keep` accepts only (an admin's: the slots whose hub
/// classroom's school lies in their scope).
pub async fn generate_lessons_of(
    store: &Store,
    from: time::Date,
    to: time::Date,
    offset: time::UtcOffset,
    keep: impl Fn(&TimetableSlot) -> bool,
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
            for s in slots.iter().filter(|s| s.weekday == wd && keep(s)) {
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

    /// `state_at` by table: (now, open lead, grace, ended by the teacher at) → state, for a
    /// lesson from 100 s to 200 s.
    #[test]
    fn lesson_state_by_table() {
        use LessonState::*;
        let table: &[(Millis, Millis, Millis, Option<Millis>, LessonState)] = &[
            // No lead: scheduled until the bell.
            (99_999, 0, 5_000, None, Scheduled),
            (100_000, 0, 5_000, None, Live),
            // A lead larger than the epoch time saturates instead of wrapping.
            (0, i64::MAX, 5_000, None, Open),
            // No grace: ended at the end.
            (199_999, 10_000, 0, None, Live),
            (200_000, 10_000, 0, None, Ended),
            // Ended by the teacher: ended whatever the clock says, even before the bell.
            (50_000, 10_000, 5_000, Some(40_000), Ended),
            (95_000, 10_000, 5_000, Some(150_000), Ended),
            (150_000, 10_000, 5_000, Some(150_000), Ended),
            // A grace past the end of time saturates: live for ever after the bell.
            (i64::MAX - 1, 10_000, i64::MAX, None, Live),
        ];
        for &(now, open, grace, ended_at, want) in table {
            let mut l = lesson(100_000, 200_000);
            l.ended_at = ended_at;
            assert_eq!(
                l.state_at(now, open, grace),
                want,
                "now {now}, open {open}, grace {grace}, ended {ended_at:?}"
            );
        }
    }
}
