//! Object-level rules: who may touch *this* school's, classroom's, lesson's data, by the
//! caller's organisation scope ([`crate::auth::scope`]). The route table in [`super::api`]
//! says which roles may call a route at all; this module answers for the row.
//!
//! | object | read | write |
//! | --- | --- | --- |
//! | region | anyone signed in (not devices) | admin at city level or above covering it |
//! | school | people whose scope covers it or a school paired with it | admin at county level or above covering it (old and new region) |
//! | classroom, teacher | as its school | admin covering its school (old and new) |
//! | pairing | people covering either school | admin covering both schools |
//! | term | anyone signed in (not devices) | global admin |
//! | slot | people covering its hub or a site school | admin covering its hub school; unpaired sites need an admin covering them too (logged) |
//! | lesson | its classrooms' devices; people covering its hub or a site school | its hub teacher, or an admin covering its hub school |
//! | user | admins whose scope contains the user's | the same |
//! | device token | admins covering its classroom's school | the same |
//! | recording | admins, teachers and observers who may watch its lesson; a plain room's: global admins | nobody through the API (the retention sweep deletes, audited) |
//!
//! A classroom device reads only its own classroom, the classrooms of its lessons, and its
//! lessons: never the directory. Refusals are `403` problems of type `out-of-scope`.
//! Nothing here mutates anything.

use std::collections::{HashMap, HashSet};

use crate::auth::people::{Principal, Role};
use crate::auth::scope::{Level, Place, Scope};
use crate::problem::ApiError;
use crate::school::model::Lesson;
use crate::store::{col, Store, StoreResult};

/// The refusal for an object outside the caller's scope.
pub(crate) fn out_of_scope(what: impl std::fmt::Display) -> ApiError {
    ApiError::forbidden(
        "out-of-scope",
        format!("{what} is outside your organisation scope"),
    )
}

/// Every school's place, by school id (one query).
pub(crate) async fn school_places(store: &Store) -> StoreResult<HashMap<i64, Place>> {
    let rows = sqlx::query(
        "SELECT s.id, s.region_id, r.province, r.city FROM schools s \
         LEFT JOIN regions r ON r.id = s.region_id",
    )
    .fetch_all(store.pool())
    .await?;
    rows.iter()
        .map(|r| {
            let id: i64 = col(r, "id")?;
            Ok((
                id,
                Place {
                    province: col(r, "province")?,
                    city: col(r, "city")?,
                    region_id: col(r, "region_id")?,
                    school_id: Some(id),
                },
            ))
        })
        .collect()
}

/// The school of each classroom (one query).
pub(crate) async fn classroom_schools(store: &Store) -> StoreResult<HashMap<i64, i64>> {
    let rows = sqlx::query("SELECT id, school_id FROM classrooms")
        .fetch_all(store.pool())
        .await?;
    rows.iter()
        .map(|r| Ok((col(r, "id")?, col(r, "school_id")?)))
        .collect()
}

/// A snapshot of the directory's shape: where each school and classroom sits, and which
/// schools are paired. Loaded with three queries; enough to answer every rule for a list.
#[derive(Debug, Default)]
pub(crate) struct Directory {
    /// School → place.
    pub schools: HashMap<i64, Place>,
    /// Classroom → school.
    pub classrooms: HashMap<i64, i64>,
    /// School → schools paired with it (either direction, any subject or term).
    pub paired: HashMap<i64, HashSet<i64>>,
    /// County row → its place.
    pub regions: HashMap<i64, Place>,
}

impl Directory {
    /// Loads it.
    pub(crate) async fn load(store: &Store) -> StoreResult<Directory> {
        let rows = sqlx::query("SELECT hub_school_id, partner_school_id FROM pairings")
            .fetch_all(store.pool())
            .await?;
        let mut paired: HashMap<i64, HashSet<i64>> = HashMap::new();
        for r in &rows {
            let (a, b): (i64, i64) = (col(r, "hub_school_id")?, col(r, "partner_school_id")?);
            paired.entry(a).or_default().insert(b);
            paired.entry(b).or_default().insert(a);
        }
        let rows = sqlx::query("SELECT id, province, city FROM regions")
            .fetch_all(store.pool())
            .await?;
        let mut regions = HashMap::new();
        for r in &rows {
            let id: i64 = col(r, "id")?;
            regions.insert(
                id,
                Place {
                    province: Some(col(r, "province")?),
                    city: Some(col(r, "city")?),
                    region_id: Some(id),
                    school_id: None,
                },
            );
        }
        Ok(Directory {
            regions,
            schools: school_places(store).await?,
            classrooms: classroom_schools(store).await?,
            paired,
        })
    }

    /// The place of a school (an unknown school sits nowhere: only the global scope has it).
    pub(crate) fn school(&self, id: i64) -> Place {
        self.schools.get(&id).cloned().unwrap_or(Place {
            school_id: Some(id),
            ..Place::default()
        })
    }

    /// The place of a classroom's school.
    pub(crate) fn classroom(&self, id: i64) -> Place {
        match self.classrooms.get(&id) {
            Some(s) => self.school(*s),
            None => Place::default(),
        }
    }

    /// The places of a lesson's hub and site classrooms.
    pub(crate) fn lesson(&self, l: &Lesson) -> Vec<Place> {
        std::iter::once(l.hub_classroom_id)
            .chain(l.sites.iter().map(|s| s.classroom_id))
            .map(|c| self.classroom(c))
            .collect()
    }

    /// A user's scope from this snapshot (a place that is gone covers nothing): the
    /// one-query-for-all form of `people::scope_of`, for lists of users.
    pub(crate) fn user_scope(&self, u: &crate::auth::people::User) -> Scope {
        let place = match u.scope {
            Level::Global => Place::default(),
            Level::School => u.school_id.map(|s| self.school(s)).unwrap_or_default(),
            _ => u
                .region_id
                .and_then(|r| self.regions.get(&r).cloned())
                .unwrap_or_default(),
        };
        Scope {
            level: u.scope,
            place,
        }
    }

    /// Whether a person may see school `id` in the directory: it lies in their scope, or is
    /// paired with a school that does.
    pub(crate) fn school_visible(&self, scope: &Scope, id: i64) -> bool {
        if scope.covers(&self.school(id)) {
            return true;
        }
        self.paired
            .get(&id)
            .is_some_and(|others| others.iter().any(|o| scope.covers(&self.school(*o))))
    }
}

/// Whether `p` may watch `l` and read its state and events: a device of one of its
/// classrooms, or a person whose scope covers its hub or one of its sites' schools.
pub(crate) fn may_watch(p: &Principal, l: &Lesson, places: &[Place]) -> bool {
    match p {
        Principal::Device { classroom_id, .. } => l.has_classroom(*classroom_id),
        Principal::User { scope, .. } => scope.covers_any(places),
    }
}

/// Whether `p` runs `l` (ends it, grants speech, moves the spotlight, edits or deletes it):
/// its hub teacher, or an admin whose scope covers its hub school.
pub(crate) fn may_run(p: &Principal, l: &Lesson, hub: &Place) -> bool {
    match p {
        Principal::User {
            role: Role::Admin,
            scope,
            ..
        } => scope.covers(hub),
        Principal::User {
            role: Role::Teacher,
            teacher_id: Some(t),
            ..
        } => *t == l.hub_teacher_id,
        _ => false,
    }
}

/// The caller's scope when they are an admin (the role guard has already checked the role).
pub(crate) fn admin_scope(p: &Principal) -> Result<&Scope, ApiError> {
    match p {
        Principal::User {
            role: Role::Admin,
            scope,
            ..
        } => Ok(scope),
        _ => Err(ApiError::forbidden(
            "role-forbidden",
            "only an administrator may do this",
        )),
    }
}

/// Refuses unless `p` is an admin whose scope covers every place in `places` and sits at
/// `min` or above.
pub(crate) fn admin_over<'a>(
    p: &Principal,
    min: Level,
    what: impl std::fmt::Display,
    places: impl IntoIterator<Item = &'a Place>,
) -> Result<(), ApiError> {
    let scope = admin_scope(p)?;
    if scope.level < min {
        return Err(ApiError::forbidden(
            "out-of-scope",
            format!(
                "changing {what} needs an administrator at {} level or above; yours is {}",
                min.as_str(),
                scope.level.as_str()
            ),
        ));
    }
    if places.into_iter().all(|pl| scope.covers(pl)) {
        Ok(())
    } else {
        Err(out_of_scope(what))
    }
}

/// Whether `p` may see a recording, its files and its metadata: an admin, teacher or observer
/// who may watch its lesson ([`may_watch`]); a plain room's recording (no lesson) only a
/// global admin. Never a classroom device or an inspector (inspectors get recordings only
/// through what an inspection round assigns them, blinded).
pub(crate) fn may_see_recording(p: &Principal, lesson: Option<(&Lesson, &[Place])>) -> bool {
    let Principal::User { role, scope, .. } = p else {
        return false;
    };
    if !matches!(role, Role::Admin | Role::Teacher | Role::Observer) {
        return false;
    }
    match lesson {
        Some((l, places)) => may_watch(p, l, places),
        None => *role == Role::Admin && scope.level == Level::Global,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::school::model::{LessonMode, LessonState, Site};

    fn place(school: i64, region: i64) -> Place {
        Place {
            province: Some("四川省".into()),
            city: Some("凉山州".into()),
            region_id: Some(region),
            school_id: Some(school),
        }
    }

    fn user(role: Role, scope: Scope, teacher: Option<i64>) -> Principal {
        Principal::User {
            id: 1,
            username: "x".into(),
            display_name: "x".into(),
            role,
            school_id: scope.place.school_id,
            teacher_id: teacher,
            scope,
        }
    }

    fn lesson() -> Lesson {
        Lesson {
            id: 7,
            slot_id: None,
            lesson_date: None,
            mode: LessonMode::Delivery,
            title: String::new(),
            subject: "英语".into(),
            grade: "三年级".into(),
            textbook: String::new(),
            chapter: String::new(),
            hub_teacher_id: 3,
            hub_classroom_id: 100,
            starts_at: 0,
            ends_at: 1,
            state: LessonState::Scheduled,
            ended_at: None,
            sites: vec![Site {
                classroom_id: 200,
                assisting_teacher_id: None,
            }],
        }
    }

    #[test]
    fn watchers_and_runners_by_scope() {
        let mut d = Directory::default();
        d.schools.insert(1, place(1, 10));
        d.schools.insert(2, place(2, 11));
        d.schools.insert(3, place(3, 11));
        d.classrooms.insert(100, 1);
        d.classrooms.insert(200, 2);
        let l = lesson();
        let places = d.lesson(&l);
        let school = |s: i64| Scope {
            level: Level::School,
            place: place(s, if s == 1 { 10 } else { 11 }),
        };
        let county = |r: i64| Scope {
            level: Level::County,
            place: Place {
                school_id: None,
                ..place(0, r)
            },
        };
        // Hub staff, site staff, a county observer of the site: yes. Another school: no.
        assert!(may_watch(
            &user(Role::Teacher, school(1), Some(9)),
            &l,
            &places
        ));
        assert!(may_watch(
            &user(Role::Teacher, school(2), Some(9)),
            &l,
            &places
        ));
        assert!(!may_watch(
            &user(Role::Teacher, school(3), Some(9)),
            &l,
            &places
        ));
        assert!(may_watch(
            &user(Role::Observer, county(11), None),
            &l,
            &places
        ));
        assert!(!may_watch(
            &user(Role::Observer, county(12), None),
            &l,
            &places
        ));
        // Running it: the hub teacher, an admin over the hub; not an admin over a site only.
        let hub = d.classroom(l.hub_classroom_id);
        assert!(may_run(&user(Role::Teacher, school(1), Some(3)), &l, &hub));
        assert!(!may_run(&user(Role::Teacher, school(1), Some(9)), &l, &hub));
        assert!(may_run(&user(Role::Admin, county(10), None), &l, &hub));
        assert!(!may_run(&user(Role::Admin, county(11), None), &l, &hub));
        assert!(!may_run(
            &user(Role::Observer, Scope::global(), None),
            &l,
            &hub
        ));
        // Directory: school 3 is visible to school 1's staff only once paired.
        assert!(!d.school_visible(&school(1), 3));
        d.paired.entry(1).or_default().insert(3);
        d.paired.entry(3).or_default().insert(1);
        assert!(d.school_visible(&school(1), 3) && !d.school_visible(&school(1), 2));
    }
}
