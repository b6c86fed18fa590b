//! Attendance that counts classrooms (issue 22 item 8): when each site's classroom was
//! connected to a lesson (one `lesson_presence` row per stay, written from the media service's
//! session events by one writer task), and the figures made from it: per site, per lesson, and
//! the 到课率 (sites present / sites expected) the county reports add up. Must never count
//! people (teachers, observers, inspectors: only `c:` participants are written) and never run
//! on the media path (the session callback only queues a change).

use std::collections::BTreeMap;

use serde::Serialize;
use tokio::sync::mpsc;

use super::model::Lesson;
use crate::store::{Store, StoreResult};
use crate::time::{rfc3339, Millis};

/// One stay of a classroom in a lesson's room: from its first session to its last one's end.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
#[schema(as = PresenceStay)]
pub struct Stay {
    /// When it connected (RFC 3339, the school's local time).
    pub joined: String,
    /// When it left (RFC 3339 local), or null while it is still connected.
    pub left: Option<String>,
}

/// One expected site of a lesson and whether (and how long) it was there.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SiteAttendance {
    /// The site's classroom.
    pub classroom_id: i64,
    /// Its name.
    pub classroom: String,
    /// Its school.
    pub school_id: i64,
    /// The school's name.
    pub school: String,
    /// Whether it connected at all during the lesson (counts towards 到课率).
    pub present: bool,
    /// How long it was connected between the bell and the lesson's end (or now), in ms.
    #[schema(value_type = i64)]
    pub present_ms: Millis,
    /// Its stays, oldest first.
    pub stays: Vec<Stay>,
}

/// A lesson's attendance by classroom: its sites (the hub classroom is not one), and how many
/// of them were present.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LessonAttendance {
    /// The lesson.
    pub lesson_id: i64,
    /// Sites the lesson expects (its paired classrooms).
    pub expected: usize,
    /// Of them, how many were present.
    pub present: usize,
    /// Per site, in the lesson's order.
    pub sites: Vec<SiteAttendance>,
}

/// 到课率 over many lessons: sites present / sites expected (`expected` 0: no figure).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Rate {
    /// Sites expected, summed over the lessons.
    pub expected: usize,
    /// Sites present, summed over the lessons.
    pub present: usize,
}

impl Rate {
    /// present / expected, or `None` when nothing was expected.
    pub fn ratio(&self) -> Option<f64> {
        (self.expected > 0).then(|| self.present as f64 / self.expected as f64)
    }
}

/// The sum of lessons' attendance: the 到课率 of a school, a site or a term is this over the
/// lessons (and sites) it chooses.
pub fn rate<'a>(lessons: impl IntoIterator<Item = &'a LessonAttendance>) -> Rate {
    lessons.into_iter().fold(Rate::default(), |r, l| Rate {
        expected: r.expected + l.expected,
        present: r.present + l.present,
    })
}

/// 到课率 per site (classroom id → its lessons expected and attended) over lessons.
pub fn rates_by_site(lessons: &[LessonAttendance]) -> BTreeMap<i64, Rate> {
    rates_by(lessons, |s| s.classroom_id)
}

/// 到课率 per school (school id → its sites expected and present, over the lessons).
pub fn rates_by_school(lessons: &[LessonAttendance]) -> BTreeMap<i64, Rate> {
    rates_by(lessons, |s| s.school_id)
}

fn rates_by(
    lessons: &[LessonAttendance],
    key: impl Fn(&SiteAttendance) -> i64,
) -> BTreeMap<i64, Rate> {
    let mut out: BTreeMap<i64, Rate> = BTreeMap::new();
    for s in lessons.iter().flat_map(|l| &l.sites) {
        let r = out.entry(key(s)).or_default();
        r.expected += 1;
        r.present += usize::from(s.present);
    }
    out
}

/// How much of [`from`, `to`) the stays cover (overlaps counted once); a stay without an end
/// runs to `to`. Pure: the window is passed in.
pub fn covered_ms(stays: &[(Millis, Option<Millis>)], from: Millis, to: Millis) -> Millis {
    if to <= from {
        return 0;
    }
    let mut spans: Vec<(Millis, Millis)> = stays
        .iter()
        .map(|(a, b)| ((*a).max(from), b.unwrap_or(to).min(to)))
        .filter(|(a, b)| a < b)
        .collect();
    spans.sort_unstable();
    let mut total = 0;
    let mut cur: Option<(Millis, Millis)> = None;
    for (a, b) in spans {
        cur = match cur {
            Some((ca, cb)) if a <= cb => Some((ca, cb.max(b))),
            Some((ca, cb)) => {
                total += cb - ca;
                Some((a, b))
            }
            None => Some((a, b)),
        };
    }
    if let Some((ca, cb)) = cur {
        total += cb - ca;
    }
    total
}

/// The window a lesson's presence counts in: the bell to its end (the teacher's end if
/// earlier), and never past `now`.
fn window(l: &Lesson, now: Millis) -> (Millis, Millis) {
    let end = l.ended_at.unwrap_or(l.ends_at).min(l.ends_at);
    (l.starts_at, end.min(now))
}

/// Names of every classroom and its school: classroom id → (name, school id, school name).
async fn names(
    store: &Store,
) -> StoreResult<std::collections::HashMap<i64, (String, i64, String)>> {
    let rows: Vec<(i64, String, i64, String)> = sqlx::query_as(
        "SELECT c.id, c.name, s.id, s.name FROM classrooms c JOIN schools s ON s.id = c.school_id",
    )
    .fetch_all(store.pool())
    .await?;
    Ok(rows
        .into_iter()
        .map(|(c, cn, s, sn)| (c, (cn, s, sn)))
        .collect())
}

/// The attendance of lessons (their sites, from `lesson_presence`), as of `now`; times in
/// `offset`. This is what a report of 到课率 reads (`rate` sums it).
pub async fn of_lessons(
    store: &Store,
    lessons: &[Lesson],
    now: Millis,
    offset: ::time::UtcOffset,
) -> StoreResult<Vec<LessonAttendance>> {
    let names = names(store).await?;
    let mut out = Vec::with_capacity(lessons.len());
    for l in lessons {
        let rows: Vec<(i64, i64, Option<i64>)> = sqlx::query_as(
            "SELECT classroom_id, joined_at, left_at FROM lesson_presence \
             WHERE lesson_id = $1 ORDER BY joined_at, id",
        )
        .bind(l.id)
        .fetch_all(store.pool())
        .await?;
        let (from, to) = window(l, now);
        let sites: Vec<SiteAttendance> = l
            .sites
            .iter()
            .map(|s| {
                let c = s.classroom_id;
                let stays: Vec<(Millis, Option<Millis>)> = rows
                    .iter()
                    .filter(|r| r.0 == c)
                    .map(|r| (r.1, r.2))
                    .collect();
                let (classroom, school_id, school) = names.get(&c).cloned().unwrap_or_default();
                SiteAttendance {
                    classroom_id: c,
                    classroom,
                    school_id,
                    school,
                    present: !stays.is_empty(),
                    present_ms: covered_ms(&stays, from, to),
                    stays: stays
                        .iter()
                        .map(|(a, b)| Stay {
                            joined: rfc3339(*a, offset),
                            left: b.map(|b| rfc3339(b, offset)),
                        })
                        .collect(),
                }
            })
            .collect();
        out.push(LessonAttendance {
            lesson_id: l.id,
            expected: sites.len(),
            present: sites.iter().filter(|s| s.present).count(),
            sites,
        });
    }
    Ok(out)
}

/// One lesson's attendance (see [`of_lessons`]).
pub async fn of_lesson(
    store: &Store,
    lesson: &Lesson,
    now: Millis,
    offset: ::time::UtcOffset,
) -> StoreResult<LessonAttendance> {
    let mut v = of_lessons(store, std::slice::from_ref(lesson), now, offset).await?;
    // One lesson in, one out.
    Ok(v.pop().expect("of_lessons answers one entry per lesson"))
}

/// A classroom came into or left a lesson's room.
#[derive(Debug, Clone, Copy)]
enum Change {
    Joined {
        lesson: i64,
        classroom: i64,
        at: Millis,
    },
    Left {
        lesson: i64,
        classroom: i64,
        at: Millis,
    },
}

/// Queues presence changes for the one task that writes them, in order (a stay's end is never
/// written before its start). Sending never waits.
#[derive(Debug, Clone)]
pub(crate) struct Writer {
    tx: mpsc::UnboundedSender<Change>,
}

impl Writer {
    /// Starts the writing task on the current Tokio runtime (none: no writer, attendance is
    /// not kept). It first closes the stays a previous run left open, at their start: how long
    /// they lasted is unknown, so none of it is counted.
    pub(crate) fn start(store: Store) -> Option<Writer> {
        let rt = tokio::runtime::Handle::try_current().ok()?;
        let (tx, mut rx) = mpsc::unbounded_channel::<Change>();
        rt.spawn(async move {
            if let Err(e) =
                sqlx::query("UPDATE lesson_presence SET left_at = joined_at WHERE left_at IS NULL")
                    .execute(store.pool())
                    .await
            {
                tracing::warn!("attendance: closing stays left open: {e}");
            }
            while let Some(c) = rx.recv().await {
                if let Err(e) = write(&store, c).await {
                    tracing::warn!(?c, "attendance not written: {e}");
                }
            }
        });
        Some(Writer { tx })
    }

    /// Classroom `classroom`'s first session in `lesson` started at `at`.
    pub(crate) fn joined(&self, lesson: i64, classroom: i64, at: Millis) {
        let _ = self.tx.send(Change::Joined {
            lesson,
            classroom,
            at,
        });
    }

    /// Classroom `classroom`'s last session in `lesson` ended at `at`.
    pub(crate) fn left(&self, lesson: i64, classroom: i64, at: Millis) {
        let _ = self.tx.send(Change::Left {
            lesson,
            classroom,
            at,
        });
    }
}

async fn write(store: &Store, c: Change) -> StoreResult<()> {
    match c {
        Change::Joined {
            lesson,
            classroom,
            at,
        } => {
            sqlx::query(
                "INSERT INTO lesson_presence (lesson_id, classroom_id, joined_at) \
                 VALUES ($1, $2, $3)",
            )
            .bind(lesson)
            .bind(classroom)
            .bind(at)
            .execute(store.pool())
            .await?;
        }
        Change::Left {
            lesson,
            classroom,
            at,
        } => {
            sqlx::query(
                "UPDATE lesson_presence SET left_at = \
                 CASE WHEN $1 < joined_at THEN joined_at ELSE $1 END \
                 WHERE lesson_id = $2 AND classroom_id = $3 AND left_at IS NULL",
            )
            .bind(at)
            .bind(lesson)
            .bind(classroom)
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

    #[test]
    fn stays_are_clipped_merged_and_open_ones_run_to_the_end() {
        // Bell at 1000, end at 5000.
        assert_eq!(covered_ms(&[], 1000, 5000), 0);
        // Joined 10 min early (counted from the bell), left at 2000.
        assert_eq!(covered_ms(&[(400, Some(2000))], 1000, 5000), 1000);
        // Two overlapping sessions count once; a gap is not counted.
        assert_eq!(
            covered_ms(
                &[(1000, Some(2000)), (1500, Some(2500)), (3000, Some(3500))],
                1000,
                5000
            ),
            2000
        );
        // Still connected: to the end of the window.
        assert_eq!(covered_ms(&[(4000, None)], 1000, 5000), 1000);
        // An empty or reversed window covers nothing.
        assert_eq!(covered_ms(&[(0, None)], 5000, 5000), 0);
        assert_eq!(covered_ms(&[(0, None)], 5000, 1000), 0);
    }

    #[test]
    fn rate_sums_sites_over_lessons() {
        let l = |expected, present| LessonAttendance {
            lesson_id: 1,
            expected,
            present,
            sites: Vec::new(),
        };
        let r = rate(&[l(3, 2), l(2, 2), l(1, 0)]);
        assert_eq!(
            r,
            Rate {
                expected: 6,
                present: 4
            }
        );
        assert_eq!(r.ratio(), Some(4.0 / 6.0));
        assert_eq!(rate(&[]).ratio(), None);
    }

    #[test]
    fn rates_per_site_and_school() {
        let site = |classroom_id, school_id, present| SiteAttendance {
            classroom_id,
            classroom: String::new(),
            school_id,
            school: String::new(),
            present,
            present_ms: 0,
            stays: Vec::new(),
        };
        let lesson = |sites: Vec<SiteAttendance>| LessonAttendance {
            lesson_id: 1,
            expected: sites.len(),
            present: sites.iter().filter(|s| s.present).count(),
            sites,
        };
        // School 7 has rooms 1 and 2; school 8 room 3. Two lessons.
        let ls = [
            lesson(vec![site(1, 7, true), site(2, 7, false), site(3, 8, true)]),
            lesson(vec![site(1, 7, true), site(3, 8, false)]),
        ];
        let by_site = rates_by_site(&ls);
        assert_eq!(
            by_site[&1],
            Rate {
                expected: 2,
                present: 2
            }
        );
        assert_eq!(
            by_site[&2],
            Rate {
                expected: 1,
                present: 0
            }
        );
        assert_eq!(
            by_site[&3],
            Rate {
                expected: 2,
                present: 1
            }
        );
        let by_school = rates_by_school(&ls);
        assert_eq!(
            by_school[&7],
            Rate {
                expected: 3,
                present: 2
            }
        );
        assert_eq!(
            by_school[&8],
            Rate {
                expected: 2,
                present: 1
            }
        );
        assert_eq!(
            rate(&ls),
            Rate {
                expected: 5,
                present: 3
            }
        );
    }

    proptest! {
        /// Whatever the stays: the cover fits in the window, is at least the longest single
        /// stay's part of it, and does not depend on their order.
        #[test]
        fn cover_is_bounded_and_order_free(
            raw in proptest::collection::vec((0i64..10_000, proptest::option::of(0i64..10_000)), 0..12),
            from in 0i64..10_000,
            len in 0i64..10_000,
        ) {
            let stays: Vec<(Millis, Option<Millis>)> =
                raw.iter().map(|(a, b)| (*a, b.map(|b| b.max(*a)))).collect();
            let to = from + len;
            let c = covered_ms(&stays, from, to);
            prop_assert!((0..=len).contains(&c));
            let longest = stays
                .iter()
                .map(|(a, b)| (b.unwrap_or(to).min(to) - (*a).max(from)).max(0))
                .max()
                .unwrap_or(0);
            prop_assert!(c >= longest);
            let mut rev = stays.clone();
            rev.reverse();
            prop_assert_eq!(covered_ms(&rev, from, to), c);
        }
    }
}
