//! The rows as the database keeps them, on SQLite and on PostgreSQL: every entity, slot and
//! lesson goes in and comes back field for field (so a column bound to the wrong field, or
//! read from the wrong one, fails here), and both schemas have the same tables and columns.
//! No server, no HTTP: the store only.

mod support;

use std::collections::BTreeSet;

use classrelay::school::model::{
    self, Classroom, ClassroomKind, Entity, Lesson, LessonMode, LessonState, OnOff, Pairing,
    Region, School, SchoolKind, Site, Teacher, Term, TimetableSlot,
};
use classrelay::store::Store;
use serde_json::Value;

/// A migrated SQLite store in `dir`.
async fn sqlite(dir: &tempfile::TempDir) -> Store {
    let s = Store::open("", &dir.path().join("rows.db")).await.unwrap();
    s.migrate().await.unwrap();
    s
}

/// A migrated store on a fresh PostgreSQL database, or `None` where PostgreSQL is missing.
async fn postgres(dir: &tempfile::TempDir) -> Option<Store> {
    let url = support::pg::fresh_database().await?;
    let s = Store::open(&url, &dir.path().join("unused.db"))
        .await
        .unwrap();
    s.migrate().await.unwrap();
    Some(s)
}

fn json<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap()
}

/// Inserts `e`, reads it back, replaces it by `changed` and reads that back: each time every
/// field must be what was written (the id being the one the database gave).
async fn round_trip<E: Entity + Clone>(store: &Store, e: E, changed: E) -> E {
    let stored = model::insert(store, &e).await.unwrap();
    let id = json(&stored)["id"].as_i64().unwrap();
    let with_id = |x: &E| {
        let mut v = json(x);
        v["id"] = id.into();
        v
    };
    assert_eq!(json(&stored), with_id(&e), "{} as inserted", E::NAME);
    let got: E = model::get(store, id).await.unwrap();
    assert_eq!(json(&got), with_id(&e), "{} as read", E::NAME);
    let updated = model::update(store, id, &changed).await.unwrap();
    assert_eq!(json(&updated), with_id(&changed), "{} as updated", E::NAME);
    let listed: Vec<E> = model::list(store, None).await.unwrap();
    let found = listed.iter().find(|x| json(*x)["id"] == id).unwrap();
    assert_eq!(json(found), with_id(&changed), "{} as listed", E::NAME);
    updated
}

/// Every field of every kind of row, with values that differ from each other so a swap
/// of two columns of one type shows.
async fn every_row_comes_back(store: &Store) {
    let region = round_trip(
        store,
        Region {
            id: 0,
            province: "省甲".into(),
            city: "市乙".into(),
            county: "县丙".into(),
        },
        Region {
            id: 0,
            province: "省丁".into(),
            city: "市戊".into(),
            county: "县己".into(),
        },
    )
    .await;
    let school = |code: &str, kind, sites| School {
        id: 0,
        code: code.into(),
        name: format!("{code} 学校"),
        kind,
        region_id: Some(region.id),
        max_master_sites: sites,
        area: classrelay::school::model::SchoolArea::Rural,
        record_lessons: OnOff(true),
        retention_days: None,
        max_video_layer: None,
    };
    let hub = round_trip(
        store,
        school("H1", SchoolKind::Hub, 7),
        School {
            region_id: None,
            record_lessons: OnOff(false),
            retention_days: Some(30),
            max_video_layer: Some(0),
            ..school("H2", SchoolKind::Hub, 9)
        },
    )
    .await;
    let partner = round_trip(
        store,
        school("P1", SchoolKind::Partner, 11),
        school("P2", SchoolKind::Partner, 13),
    )
    .await;
    let room = |school_id, name: &str, kind| Classroom {
        id: 0,
        school_id,
        name: name.into(),
        kind,
        device: format!("{name} 设备"),
        max_video_layer: None,
    };
    let hub_room = round_trip(
        store,
        room(hub.id, "录播教室", ClassroomKind::Hub),
        room(hub.id, "录播教室二", ClassroomKind::Hub),
    )
    .await;
    let site_room = round_trip(
        store,
        room(partner.id, "三年级1班", ClassroomKind::ReceiveOnly),
        room(partner.id, "三年级2班", ClassroomKind::Interactive),
    )
    .await;
    let teacher = round_trip(
        store,
        Teacher {
            id: 0,
            code: "T1".into(),
            name: "王老师".into(),
            school_id: hub.id,
            subjects: "英语".into(),
        },
        Teacher {
            id: 0,
            code: "T2".into(),
            name: "李老师".into(),
            school_id: hub.id,
            subjects: "音乐,美术".into(),
        },
    )
    .await;
    let pairing = |hub_id, partner_id, n: u8| Pairing {
        id: 0,
        hub_school_id: hub_id,
        partner_school_id: partner_id,
        subject: format!("科目{n}"),
        grade: format!("年级{n}"),
        term: format!("学期{n}"),
        owner: format!("负责人{n}"),
    };
    round_trip(
        store,
        pairing(hub.id, partner.id, 1),
        pairing(partner.id, hub.id, 2),
    )
    .await;
    let term = round_trip(
        store,
        Term {
            id: 0,
            name: "2026秋".into(),
            starts_on: "2026-09-01".into(),
            ends_on: "2027-01-20".into(),
        },
        Term {
            id: 0,
            name: "2027春".into(),
            starts_on: "2026-09-02".into(),
            ends_on: "2027-01-21".into(),
        },
    )
    .await;

    let slot = TimetableSlot {
        id: 0,
        term_id: term.id,
        weekday: 3,
        period: 4,
        starts: "09:00".into(),
        ends: "09:40".into(),
        subject: "英语".into(),
        grade: "三年级".into(),
        mode: LessonMode::Master,
        hub_teacher_id: teacher.id,
        hub_classroom_id: hub_room.id,
        sites: vec![Site {
            classroom_id: site_room.id,
            assisting_teacher_id: Some(teacher.id),
        }],
    };
    let stored = model::save_slot(store, slot.clone(), false).await.unwrap();
    let mut want = json(&slot);
    want["id"] = stored.id.into();
    assert_eq!(json(&stored), want, "slot as inserted");
    let got = model::get_slot(store, stored.id).await.unwrap();
    assert_eq!(json(&got), want, "slot as read");

    let lesson = Lesson {
        id: 0,
        slot_id: Some(stored.id),
        lesson_date: Some("2026-09-09".into()),
        mode: LessonMode::Sync,
        title: "课题".into(),
        subject: "音乐".into(),
        grade: "四年级".into(),
        textbook: "人教版".into(),
        chapter: "第二章".into(),
        hub_teacher_id: teacher.id,
        hub_classroom_id: hub_room.id,
        starts_at: 1_788_739_200_000,
        ends_at: 1_788_741_600_000,
        state: LessonState::Scheduled,
        ended_at: None,
        sites: vec![Site {
            classroom_id: site_room.id,
            assisting_teacher_id: None,
        }],
    };
    let stored = model::insert_lesson(store, &lesson).await.unwrap();
    let mut want = json(&lesson);
    want["id"] = stored.id.into();
    assert_eq!(json(&stored), want, "lesson as inserted");
    assert_eq!(
        json(&model::get_lesson(store, stored.id).await.unwrap()),
        want,
        "lesson as read"
    );
    model::set_lesson_state(
        store,
        stored.id,
        LessonState::Ended,
        Some(1_788_740_000_000),
    )
    .await
    .unwrap();
    want["state"] = "ended".into();
    want["ended_at"] = 1_788_740_000_000i64.into();
    assert_eq!(
        json(&model::get_lesson(store, stored.id).await.unwrap()),
        want,
        "lesson as ended"
    );
}

#[tokio::test]
async fn every_row_comes_back_from_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    every_row_comes_back(&sqlite(&dir).await).await;
}

#[tokio::test]
async fn every_row_comes_back_from_postgres() {
    let dir = tempfile::tempdir().unwrap();
    let Some(store) = postgres(&dir).await else {
        return;
    };
    every_row_comes_back(&store).await;
}

/// (table, column) of every table the migrations made, less sqlx's own.
async fn columns(store: &Store, sql: &'static str) -> BTreeSet<(String, String)> {
    use sqlx::Row;
    sqlx::query(sql)
        .fetch_all(store.pool())
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get::<String, _>("t"), r.get::<String, _>("c")))
        .filter(|(t, _)| t != "_sqlx_migrations")
        .collect()
}

/// The two migration sets differ in types only (INTEGER/BIGINT/BIGSERIAL): the same
/// tables with the same columns, so one code path serves both.
#[tokio::test]
async fn sqlite_and_postgres_schemas_have_the_same_columns() {
    let dir = tempfile::tempdir().unwrap();
    let lite = columns(
        &sqlite(&dir).await,
        "SELECT m.name AS t, p.name AS c FROM sqlite_master m, pragma_table_info(m.name) p \
         WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%'",
    )
    .await;
    assert!(
        lite.contains(&("lessons".into(), "ended_at".into())),
        "{lite:?}"
    );
    let Some(pg) = postgres(&dir).await else {
        return;
    };
    let pg = columns(
        &pg,
        "SELECT table_name::text AS t, column_name::text AS c FROM information_schema.columns \
         WHERE table_schema = 'public'",
    )
    .await;
    let only_lite: Vec<_> = lite.difference(&pg).collect();
    let only_pg: Vec<_> = pg.difference(&lite).collect();
    assert!(
        only_lite.is_empty() && only_pg.is_empty(),
        "only in SQLite: {only_lite:?}; only in PostgreSQL: {only_pg:?}"
    );
}
