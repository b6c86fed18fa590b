//! The figures a county office sends upward (issue 22 item 7): 开课率 (lessons held / lessons
//! due), 到课率 (sites present / sites expected, per site and per school), minutes taught per
//! teacher and link quality per school, by week or by term; and the log of media sessions
//! they are read from. The arithmetic ([`compute`]) is pure; the session log is written by a
//! task fed through an unbounded channel, so the media service's listener never waits on the
//! database. Must never be called on the media path, and never counts a patrol watcher
//! (part `p:…`) or an observer as a site.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Weak;

use serde::Serialize;

use super::model::Lesson;
use super::SchoolState;
use crate::media::SessionEvent;
use crate::sfu::PeerKind;
use crate::store::{col, Store, StoreResult};
use crate::time::Millis;

/// How lessons are grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum By {
    /// ISO weeks; a week is named by its Monday (`2026-09-07`).
    Week,
    /// Terms; a term is named by its name, a lesson in no term by "".
    Term,
}

impl By {
    /// `week` or `term`; anything else is `None`.
    pub fn parse(s: &str) -> Option<By> {
        match s {
            "week" => Some(By::Week),
            "term" => Some(By::Term),
            _ => None,
        }
    }
}

/// What a report needs to know of one lesson.
#[derive(Debug, Clone)]
pub struct LessonFacts {
    /// The lesson.
    pub id: i64,
    /// The period it falls in (see [`By`]).
    pub period: String,
    /// Its local date.
    pub date: String,
    /// Subject and grade, for the per-lesson table.
    pub subject: String,
    /// Grade.
    pub grade: String,
    /// Bell and end (epoch ms).
    pub starts_at: Millis,
    /// End of the slot.
    pub ends_at: Millis,
    /// Hub teacher.
    pub hub_teacher_id: i64,
    /// Hub classroom.
    pub hub_classroom_id: i64,
    /// Site classrooms.
    pub sites: Vec<i64>,
    /// Called off (a `lesson_cancellations` row).
    pub cancelled: bool,
}

/// One logged media session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    /// The lesson.
    pub lesson: i64,
    /// The participant ("t:3", "c:12", "u:7").
    pub part: String,
    /// WHIP (true) or WHEP.
    pub publish: bool,
    /// Opened (epoch ms).
    pub started_at: Millis,
    /// Closed, if it has.
    pub ended_at: Option<Millis>,
}

/// Names and places the tables show instead of ids.
#[derive(Debug, Default, Clone)]
pub struct Names {
    /// Classroom → (name, school).
    pub classrooms: HashMap<i64, (String, i64)>,
    /// School → name.
    pub schools: HashMap<i64, String>,
    /// Teacher → (name, school).
    pub teachers: HashMap<i64, (String, i64)>,
}

/// 开课率 for one period.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct RateRow {
    /// The period (a week's Monday or a term's name).
    pub period: String,
    /// Lessons on the timetable or created ad hoc in the period (cancelled ones included).
    pub scheduled: u32,
    /// Called off before they opened.
    pub cancelled: u32,
    /// Not cancelled, not yet over and not yet held: not counted either way.
    pub upcoming: u32,
    /// Due: scheduled less cancelled less upcoming.
    pub due: u32,
    /// Held: the hub teacher or hub classroom published.
    pub held: u32,
    /// held / due (0 when nothing was due).
    pub rate: f64,
}

/// 到课率 of one site classroom or one school in one period.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AttendanceRow {
    /// The period.
    pub period: String,
    /// The school.
    pub school_id: i64,
    /// Its name.
    pub school: String,
    /// The classroom (per-site rows only).
    pub classroom_id: Option<i64>,
    /// Its name (per-site rows only).
    pub classroom: Option<String>,
    /// Held lessons this site (or this school's sites) was part of.
    pub expected: u32,
    /// Of those, the ones it was connected to (watching or publishing).
    pub present: u32,
    /// present / expected.
    pub rate: f64,
}

/// Minutes taught by one teacher in one period.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct MinutesRow {
    /// The period.
    pub period: String,
    /// The teacher.
    pub teacher_id: i64,
    /// Their name.
    pub teacher: String,
    /// Their school's name.
    pub school: String,
    /// Lessons held as hub teacher.
    pub lessons: u32,
    /// Minutes the hub published within the lessons' times (to 0.1).
    pub minutes: f64,
}

/// Link quality of one school's participants in one period.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct LinkRow {
    /// The period.
    pub period: String,
    /// The school.
    pub school_id: i64,
    /// Its name.
    pub school: String,
    /// Grade reports: good (loss < 2 %, RTT < 150 ms).
    pub good: u32,
    /// Fair.
    pub fair: u32,
    /// Poor (loss ≥ 8 % or RTT ≥ 400 ms).
    pub poor: u32,
    /// good / all reports.
    pub good_share: f64,
}

/// One lesson as the report counted it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct LessonRow {
    /// The lesson.
    pub id: i64,
    /// The period.
    pub period: String,
    /// Local date.
    pub date: String,
    /// Subject.
    pub subject: String,
    /// Grade.
    pub grade: String,
    /// The hub teacher's name.
    pub teacher: String,
    /// held, cancelled, missed or upcoming.
    pub outcome: String,
    /// Sites connected.
    pub sites_present: u32,
    /// Sites expected.
    pub sites_expected: u32,
    /// Minutes taught.
    pub minutes: f64,
}

/// A whole report.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Report {
    /// 开课率 per period.
    pub rate: Vec<RateRow>,
    /// 到课率 per school and period.
    pub schools: Vec<AttendanceRow>,
    /// 到课率 per site classroom and period.
    pub sites: Vec<AttendanceRow>,
    /// Minutes taught per teacher and period.
    pub teachers: Vec<MinutesRow>,
    /// Link quality per school and period.
    pub links: Vec<LinkRow>,
    /// Every lesson counted.
    pub lessons: Vec<LessonRow>,
}

fn ratio(a: u32, b: u32) -> f64 {
    if b == 0 {
        0.0
    } else {
        (a as f64 / b as f64 * 1000.0).round() / 1000.0
    }
}

/// Total length of the union of intervals (ms), each clipped to `[lo, hi]`.
pub fn union_ms(mut spans: Vec<(Millis, Millis)>, lo: Millis, hi: Millis) -> Millis {
    spans = spans
        .into_iter()
        .map(|(a, b)| (a.max(lo), b.min(hi)))
        .filter(|(a, b)| a < b)
        .collect();
    spans.sort_unstable();
    let mut total = 0;
    let mut cur: Option<(Millis, Millis)> = None;
    for (a, b) in spans {
        match cur {
            Some((ca, cb)) if a <= cb => cur = Some((ca, cb.max(b))),
            Some((ca, cb)) => {
                total += cb - ca;
                cur = Some((a, b));
            }
            None => cur = Some((a, b)),
        }
    }
    if let Some((a, b)) = cur {
        total += b - a;
    }
    total
}

/// The report over `lessons` (already limited to the caller's scope), their logged sessions
/// and link grades (`(lesson, part, grade)`), at `now`. `shown_school` says which schools'
/// rows the caller may see (sites and links of schools outside their scope are left out).
pub fn compute(
    lessons: &[LessonFacts],
    sessions: &[SessionRow],
    grades: &[(i64, String, String)],
    names: &Names,
    now: Millis,
    shown_school: &dyn Fn(i64) -> bool,
) -> Report {
    let mut by_lesson: HashMap<i64, Vec<&SessionRow>> = HashMap::new();
    for s in sessions {
        by_lesson.entry(s.lesson).or_default().push(s);
    }
    let period_of: HashMap<i64, &str> = lessons.iter().map(|l| (l.id, l.period.as_str())).collect();
    let mut rate: BTreeMap<&str, RateRow> = BTreeMap::new();
    let mut sites: BTreeMap<(&str, i64), (u32, u32)> = BTreeMap::new();
    let mut teachers: BTreeMap<(&str, i64), (u32, Millis)> = BTreeMap::new();
    let mut rows = Vec::new();
    for l in lessons {
        let ss = by_lesson.get(&l.id).map(Vec::as_slice).unwrap_or(&[]);
        let hub = [
            format!("t:{}", l.hub_teacher_id),
            format!("c:{}", l.hub_classroom_id),
        ];
        let hub_spans: Vec<(Millis, Millis)> = ss
            .iter()
            .filter(|s| s.publish && hub.contains(&s.part))
            .map(|s| (s.started_at, s.ended_at.unwrap_or(now)))
            .collect();
        let held = !l.cancelled && !hub_spans.is_empty();
        let r = rate.entry(l.period.as_str()).or_insert_with(|| RateRow {
            period: l.period.clone(),
            scheduled: 0,
            cancelled: 0,
            upcoming: 0,
            due: 0,
            held: 0,
            rate: 0.0,
        });
        r.scheduled += 1;
        let outcome = if l.cancelled {
            r.cancelled += 1;
            "cancelled"
        } else if held {
            r.due += 1;
            r.held += 1;
            "held"
        } else if l.ends_at > now {
            r.upcoming += 1;
            "upcoming"
        } else {
            r.due += 1;
            "missed"
        };
        let minutes_ms = if held {
            union_ms(hub_spans, l.starts_at, l.ends_at.min(now.max(l.starts_at)))
        } else {
            0
        };
        let mut present_n = 0;
        if held {
            let t = teachers
                .entry((l.period.as_str(), l.hub_teacher_id))
                .or_default();
            t.0 += 1;
            t.1 += minutes_ms;
            let present: BTreeSet<&str> = ss.iter().map(|s| s.part.as_str()).collect();
            for c in &l.sites {
                let here = present.contains(format!("c:{c}").as_str());
                present_n += u32::from(here);
                let e = sites.entry((l.period.as_str(), *c)).or_default();
                e.0 += 1;
                e.1 += u32::from(here);
            }
        }
        rows.push(LessonRow {
            id: l.id,
            period: l.period.clone(),
            date: l.date.clone(),
            subject: l.subject.clone(),
            grade: l.grade.clone(),
            teacher: names
                .teachers
                .get(&l.hub_teacher_id)
                .map(|t| t.0.clone())
                .unwrap_or_default(),
            outcome: outcome.to_string(),
            sites_present: present_n,
            sites_expected: if held { l.sites.len() as u32 } else { 0 },
            minutes: (minutes_ms as f64 / 6_000.0).round() / 10.0,
        });
    }
    let mut report = Report {
        rate: rate
            .into_values()
            .map(|mut r| {
                r.rate = ratio(r.held, r.due);
                r
            })
            .collect(),
        lessons: rows,
        ..Report::default()
    };
    let school_name = |s: i64| names.schools.get(&s).cloned().unwrap_or_default();
    let mut schools: BTreeMap<(&str, i64), (u32, u32)> = BTreeMap::new();
    for ((period, c), (expected, present)) in &sites {
        let Some((cname, school)) = names.classrooms.get(c) else {
            continue;
        };
        if !shown_school(*school) {
            continue;
        }
        let e = schools.entry((*period, *school)).or_default();
        e.0 += expected;
        e.1 += present;
        report.sites.push(AttendanceRow {
            period: period.to_string(),
            school_id: *school,
            school: school_name(*school),
            classroom_id: Some(*c),
            classroom: Some(cname.clone()),
            expected: *expected,
            present: *present,
            rate: ratio(*present, *expected),
        });
    }
    report.schools = schools
        .into_iter()
        .map(|((period, s), (expected, present))| AttendanceRow {
            period: period.to_string(),
            school_id: s,
            school: school_name(s),
            classroom_id: None,
            classroom: None,
            expected,
            present,
            rate: ratio(present, expected),
        })
        .collect();
    for ((period, t), (n, ms)) in teachers {
        let (name, school) = names.teachers.get(&t).cloned().unwrap_or_default();
        if !shown_school(school) {
            continue;
        }
        report.teachers.push(MinutesRow {
            period: period.to_string(),
            teacher_id: t,
            teacher: name,
            school: school_name(school),
            lessons: n,
            minutes: (ms as f64 / 6_000.0).round() / 10.0,
        });
    }
    let mut links: BTreeMap<(&str, i64), [u32; 3]> = BTreeMap::new();
    for (lesson, part, grade) in grades {
        let Some(period) = period_of.get(lesson) else {
            continue;
        };
        let school = match part.split_once(':') {
            Some(("c", n)) => n
                .parse::<i64>()
                .ok()
                .and_then(|c| names.classrooms.get(&c).map(|x| x.1)),
            Some(("t", n)) => n
                .parse::<i64>()
                .ok()
                .and_then(|t| names.teachers.get(&t).map(|x| x.1)),
            _ => None,
        };
        let Some(school) = school.filter(|s| shown_school(*s)) else {
            continue;
        };
        let i = match grade.as_str() {
            "good" => 0,
            "fair" => 1,
            _ => 2,
        };
        links.entry((*period, school)).or_default()[i] += 1;
    }
    report.links = links
        .into_iter()
        .map(|((period, s), [good, fair, poor])| LinkRow {
            period: period.to_string(),
            school_id: s,
            school: school_name(s),
            good,
            fair,
            poor,
            good_share: ratio(good, good + fair + poor),
        })
        .collect();
    report
}

// ---- the store side ----

/// Every lesson called off.
pub async fn cancelled(store: &Store) -> StoreResult<BTreeSet<i64>> {
    let rows = sqlx::query("SELECT lesson_id FROM lesson_cancellations")
        .fetch_all(store.pool())
        .await?;
    rows.iter().map(|r| col(r, "lesson_id")).collect()
}

/// Whether lesson `id` was called off.
pub async fn is_cancelled(store: &Store, id: i64) -> StoreResult<bool> {
    let r = sqlx::query("SELECT lesson_id FROM lesson_cancellations WHERE lesson_id = $1")
        .bind(id)
        .fetch_optional(store.pool())
        .await?;
    Ok(r.is_some())
}

/// Records that lesson `id` was called off.
pub async fn cancel(store: &Store, id: i64, at: Millis, by: &str, reason: &str) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO lesson_cancellations (lesson_id, cancelled_at, cancelled_by, reason) \
         VALUES ($1, $2, $3, $4)",
    )
    .bind(id)
    .bind(at)
    .bind(by)
    .bind(reason)
    .execute(store.pool())
    .await?;
    Ok(())
}

/// The logged sessions of lessons whose bell is in `[from, to)`.
pub async fn sessions_between(
    store: &Store,
    from: Millis,
    to: Millis,
) -> StoreResult<Vec<SessionRow>> {
    let rows = sqlx::query(
        "SELECT s.lesson_id, s.part, s.publish, s.started_at, s.ended_at FROM lesson_sessions s \
         JOIN lessons l ON l.id = s.lesson_id WHERE l.starts_at >= $1 AND l.starts_at < $2",
    )
    .bind(from)
    .bind(to)
    .fetch_all(store.pool())
    .await?;
    rows.iter()
        .map(|r| {
            let publish: i64 = col(r, "publish")?;
            Ok(SessionRow {
                lesson: col(r, "lesson_id")?,
                part: col(r, "part")?,
                publish: publish != 0,
                started_at: col(r, "started_at")?,
                ended_at: col(r, "ended_at")?,
            })
        })
        .collect()
}

/// The link grades of lessons whose bell is in `[from, to)`: (lesson, part, grade). A lesson
/// with stored link reports (issue 19 item 6) counts one grade per participant from them;
/// one without (held before they existed) counts the live grades kept at each change.
pub async fn grades_between(
    store: &Store,
    from: Millis,
    to: Millis,
) -> StoreResult<Vec<(i64, String, String)>> {
    let mut stored = super::linkreport::grades_between(store, from, to).await?;
    let reported: BTreeSet<i64> = stored.iter().map(|g| g.0).collect();
    let live = live_grades_between(store, from, to).await?;
    stored.extend(live.into_iter().filter(|g| !reported.contains(&g.0)));
    Ok(stored)
}

/// The live grades kept at each change, for lessons whose bell is in `[from, to)`.
async fn live_grades_between(
    store: &Store,
    from: Millis,
    to: Millis,
) -> StoreResult<Vec<(i64, String, String)>> {
    let rows = sqlx::query(
        "SELECT g.lesson_id, g.part, g.grade FROM lesson_link_grades g \
         JOIN lessons l ON l.id = g.lesson_id WHERE l.starts_at >= $1 AND l.starts_at < $2",
    )
    .bind(from)
    .bind(to)
    .fetch_all(store.pool())
    .await?;
    rows.iter()
        .map(|r| Ok((col(r, "lesson_id")?, col(r, "part")?, col(r, "grade")?)))
        .collect()
}

/// Keeps the grades the quality pass reported for `lesson` (only when it reported a change).
pub async fn keep_grades(
    store: &Store,
    lesson: i64,
    links: &[super::quality::LinkSummary],
    at: Millis,
) -> StoreResult<()> {
    for l in links {
        if l.part.starts_with("p:") {
            continue;
        }
        let grade = serde_json::to_value(l.grade)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        sqlx::query(
            "INSERT INTO lesson_link_grades (lesson_id, part, grade, at) VALUES ($1, $2, $3, $4)",
        )
        .bind(lesson)
        .bind(&l.part)
        .bind(grade)
        .bind(at)
        .execute(store.pool())
        .await?;
    }
    Ok(())
}

/// Names of every classroom, school and teacher (three queries).
pub async fn names(store: &Store) -> StoreResult<Names> {
    let mut n = Names::default();
    for r in sqlx::query("SELECT id, name, school_id FROM classrooms")
        .fetch_all(store.pool())
        .await?
    {
        n.classrooms
            .insert(col(&r, "id")?, (col(&r, "name")?, col(&r, "school_id")?));
    }
    for r in sqlx::query("SELECT id, name FROM schools")
        .fetch_all(store.pool())
        .await?
    {
        n.schools.insert(col(&r, "id")?, col(&r, "name")?);
    }
    for r in sqlx::query("SELECT id, name, school_id FROM teachers")
        .fetch_all(store.pool())
        .await?
    {
        n.teachers
            .insert(col(&r, "id")?, (col(&r, "name")?, col(&r, "school_id")?));
    }
    Ok(n)
}

/// The facts of `lessons`, each in its period.
pub fn facts(
    lessons: &[Lesson],
    cancelled: &BTreeSet<i64>,
    period: &dyn Fn(&Lesson) -> (String, String),
) -> Vec<LessonFacts> {
    lessons
        .iter()
        .map(|l| {
            let (period, date) = period(l);
            LessonFacts {
                id: l.id,
                period,
                date,
                subject: l.subject.clone(),
                grade: l.grade.clone(),
                starts_at: l.starts_at,
                ends_at: l.ends_at,
                hub_teacher_id: l.hub_teacher_id,
                hub_classroom_id: l.hub_classroom_id,
                sites: l.sites.iter().map(|s| s.classroom_id).collect(),
                cancelled: cancelled.contains(&l.id),
            }
        })
        .collect()
}

// ---- the session log ----

/// What the listener hands the log writer.
#[derive(Debug)]
enum Logged {
    Started(i64, String, bool, Millis),
    Ended(i64, String, bool, Millis),
}

/// The sending end of the session log: never blocks (an unbounded channel to a writer task).
#[derive(Debug, Clone)]
pub struct SessionLog(Option<tokio::sync::mpsc::UnboundedSender<Logged>>);

impl SessionLog {
    /// Starts the writer on the current Tokio runtime (none: the log keeps nothing).
    pub fn start(school: Weak<SchoolState>) -> SessionLog {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            tracing::warn!("no runtime: media sessions are not logged for reports");
            return SessionLog(None);
        };
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Logged>();
        rt.spawn(async move {
            while let Some(ev) = rx.recv().await {
                let Some(school) = school.upgrade() else {
                    return;
                };
                if let Err(e) = write(&school.store, ev).await {
                    tracing::warn!("report session log: {e}");
                }
            }
        });
        SessionLog(Some(tx))
    }

    /// Queues a session event (patrol watchers are not logged).
    pub fn record(&self, ev: &SessionEvent, at: Millis) {
        let Some(tx) = &self.0 else { return };
        let m = match ev {
            SessionEvent::Started { lesson, part, role } => {
                Logged::Started(*lesson, part.clone(), *role == PeerKind::Publisher, at)
            }
            SessionEvent::Ended { lesson, part, role } => {
                Logged::Ended(*lesson, part.clone(), *role == PeerKind::Publisher, at)
            }
            // Not a session: the link reports hear it elsewhere.
            SessionEvent::WeakNetwork { .. } | SessionEvent::LinkReport { .. } => return,
        };
        let part = match &m {
            Logged::Started(_, p, _, _) | Logged::Ended(_, p, _, _) => p,
        };
        if is_patrol(part) {
            return;
        }
        let _ = tx.send(m);
    }
}

/// Whether a participant is a patrol watcher (巡课: seen by nobody, counted nowhere).
pub fn is_patrol(part: &str) -> bool {
    part.starts_with("p:")
}

async fn write(store: &Store, ev: Logged) -> StoreResult<()> {
    match ev {
        Logged::Started(lesson, part, publish, at) => {
            sqlx::query(
                "INSERT INTO lesson_sessions (lesson_id, part, publish, started_at) \
                 SELECT $1, $2, $3, $4 WHERE EXISTS (SELECT 1 FROM lessons WHERE id = $1)",
            )
            .bind(lesson)
            .bind(part)
            .bind(i64::from(publish))
            .bind(at)
            .execute(store.pool())
            .await?;
        }
        Logged::Ended(lesson, part, publish, at) => {
            // The oldest still-open session of that participant and kind.
            sqlx::query(
                "UPDATE lesson_sessions SET ended_at = $1 WHERE id = (SELECT MIN(id) FROM \
                 lesson_sessions WHERE lesson_id = $2 AND part = $3 AND publish = $4 \
                 AND ended_at IS NULL)",
            )
            .bind(at)
            .bind(lesson)
            .bind(part)
            .bind(i64::from(publish))
            .execute(store.pool())
            .await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn lesson(id: i64, cancelled: bool) -> LessonFacts {
        LessonFacts {
            id,
            period: "2026-09-07".into(),
            date: "2026-09-07".into(),
            subject: "英语".into(),
            grade: "三年级".into(),
            starts_at: 1_000_000,
            ends_at: 1_000_000 + 40 * 60_000,
            hub_teacher_id: 1,
            hub_classroom_id: 10,
            sites: vec![11, 12],
            cancelled,
        }
    }

    fn session(lesson: i64, part: &str, publish: bool, a: i64, b: Option<i64>) -> SessionRow {
        SessionRow {
            lesson,
            part: part.into(),
            publish,
            started_at: a,
            ended_at: b,
        }
    }

    #[test]
    fn held_cancelled_missed_and_upcoming() {
        let names = Names::default();
        let mut later = lesson(4, false);
        later.starts_at += 86_400_000;
        later.ends_at += 86_400_000;
        let ls = [lesson(1, false), lesson(2, true), lesson(3, false), later];
        let ss = [
            session(1, "t:1", true, 1_000_000, Some(1_000_000 + 30 * 60_000)),
            session(1, "c:11", false, 1_000_000, None),
            // A watcher's session does not make a lesson held.
            session(3, "u:5", false, 1_000_000, None),
            // Publishing into a cancelled lesson does not either.
            session(2, "t:1", true, 1_000_000, None),
        ];
        let now = 1_000_000 + 60 * 60_000;
        let r = compute(&ls, &ss, &[], &names, now, &|_| true);
        let rate = &r.rate[0];
        assert_eq!(
            (
                rate.scheduled,
                rate.cancelled,
                rate.upcoming,
                rate.due,
                rate.held
            ),
            (4, 1, 1, 2, 1)
        );
        assert_eq!(rate.rate, 0.5);
        let outcomes: Vec<&str> = r.lessons.iter().map(|l| l.outcome.as_str()).collect();
        assert_eq!(outcomes, ["held", "cancelled", "missed", "upcoming"]);
        assert_eq!(r.lessons[0].minutes, 30.0);
        assert_eq!(
            (r.lessons[0].sites_present, r.lessons[0].sites_expected),
            (1, 2)
        );
    }

    #[test]
    fn schools_outside_the_scope_are_left_out_and_links_fold_per_school() {
        let mut names = Names::default();
        names.schools.insert(1, "主讲校".into());
        names.schools.insert(2, "甲校".into());
        names.schools.insert(3, "乙校".into());
        names.classrooms.insert(10, ("录播教室".into(), 1));
        names.classrooms.insert(11, ("一班".into(), 2));
        names.classrooms.insert(12, ("二班".into(), 3));
        names.teachers.insert(1, ("王丽".into(), 1));
        let ss = [
            session(1, "c:10", true, 1_000_000, Some(1_000_000 + 40 * 60_000)),
            session(1, "c:11", false, 1_000_000, None),
            session(1, "c:12", false, 1_000_000, None),
        ];
        let grades = [
            (1, "c:11".to_string(), "good".to_string()),
            (1, "c:11".to_string(), "poor".to_string()),
            (1, "c:12".to_string(), "fair".to_string()),
            (1, "t:1".to_string(), "good".to_string()),
            // A person watching, and a lesson outside the report: neither counts.
            (1, "u:9".to_string(), "poor".to_string()),
            (99, "c:11".to_string(), "poor".to_string()),
        ];
        let now = 1_000_000 + 60 * 60_000;
        let r = compute(&[lesson(1, false)], &ss, &grades, &names, now, &|s| s != 3);
        let sites: Vec<(i64, u32, u32)> = r
            .sites
            .iter()
            .map(|s| (s.classroom_id.unwrap(), s.present, s.expected))
            .collect();
        assert_eq!(sites, [(11, 1, 1)], "school 3 is outside the scope");
        assert_eq!(r.schools.len(), 1);
        assert_eq!(r.schools[0].school, "甲校");
        let links: Vec<(i64, [u32; 3])> = r
            .links
            .iter()
            .map(|l| (l.school_id, [l.good, l.fair, l.poor]))
            .collect();
        assert_eq!(links, [(1, [1, 0, 0]), (2, [1, 0, 1])]);
        assert_eq!(r.links[1].good_share, 0.5);
        assert_eq!(r.teachers[0].teacher, "王丽");
        assert_eq!(r.teachers[0].minutes, 40.0);
    }

    #[test]
    fn union_merges_overlaps_and_clips() {
        assert_eq!(union_ms(vec![(0, 10), (5, 20), (30, 40)], 0, 100), 30);
        assert_eq!(union_ms(vec![(-10, 10), (90, 200)], 0, 100), 20);
        assert_eq!(union_ms(vec![(50, 40)], 0, 100), 0);
    }

    proptest! {
        #[test]
        fn union_is_bounded_by_window_and_sum(
            spans in prop::collection::vec((0i64..1000, 0i64..1000), 0..20),
            lo in 0i64..500, len in 0i64..600,
        ) {
            let hi = lo + len;
            let u = union_ms(spans.clone(), lo, hi);
            prop_assert!(u >= 0 && u <= len);
            let sum: i64 = spans.iter().map(|(a, b)| (b.min(&hi) - a.max(&lo)).max(0)).sum();
            prop_assert!(u <= sum);
        }

        #[test]
        fn rates_stay_within_bounds(
            n in 1usize..12,
            cancelled in prop::collection::vec(any::<bool>(), 12),
            published in prop::collection::vec(any::<bool>(), 12),
        ) {
            let ls: Vec<LessonFacts> = (0..n).map(|i| lesson(i as i64, cancelled[i])).collect();
            let ss: Vec<SessionRow> = (0..n).filter(|i| published[*i])
                .map(|i| session(i as i64, "c:10", true, 1_000_000, None)).collect();
            let r = compute(&ls, &ss, &[], &Names::default(), 5_000_000, &|_| true);
            let row = &r.rate[0];
            prop_assert_eq!(row.scheduled as usize, n);
            prop_assert!(row.held <= row.due);
            prop_assert_eq!(row.due + row.cancelled + row.upcoming, row.scheduled);
            prop_assert!((0.0..=1.0).contains(&row.rate));
        }
    }
}
