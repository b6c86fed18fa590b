//! Spreadsheets as district offices have them (issue 22 item 2), against a real server over
//! HTTP on a SQLite file and on PostgreSQL: a county's directory and term set up from files
//! with Chinese headers, every importer (schools, classrooms, teachers, users, pairings,
//! timetable) fed one file each in UTF-8, UTF-8 with a BOM, GBK and `.xlsx` (written here
//! with rust_xlsxwriter, times as real Excel time cells); duplicates within a file and
//! against the database reported per row; rows outside a county admin's scope refused per
//! row with nothing stored; a dry run stores nothing; malformed and old workbooks get a
//! clear 4xx; the templates download and read back.
//!
//! Run: `cargo test --test sheets_import`.

mod support;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use support::school::{App, Backend};

const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

fn kind(v: &Value) -> &str {
    v["type"]
        .as_str()
        .unwrap_or("")
        .trim_start_matches("urn:classrelay:problem:")
}

/// How a file is saved.
#[derive(Debug, Clone, Copy)]
enum Saved {
    Utf8,
    Bom,
    Gbk,
    Xlsx,
}

const ALL: [Saved; 4] = [Saved::Utf8, Saved::Bom, Saved::Gbk, Saved::Xlsx];

/// A cell of a test sheet: text, or (in `.xlsx`) a number or an Excel time of day.
#[derive(Debug, Clone, Copy)]
enum Cell<'a> {
    T(&'a str),
    N(f64),
    /// Hours and minutes, stored in `.xlsx` as a time cell (a fraction of a day).
    Time(u32, u32),
}

impl Cell<'_> {
    fn text(&self) -> String {
        match self {
            Cell::T(s) => s.to_string(),
            Cell::N(n) => format!("{n}"),
            Cell::Time(h, m) => format!("{h:02}:{m:02}"),
        }
    }
}

/// The header and rows saved as `how`: the bytes and the type a browser would send.
fn save(header: &str, rows: &[Vec<Cell<'_>>], how: Saved) -> (Vec<u8>, &'static str) {
    let mut text = format!("{header}\r\n");
    for r in rows {
        let cells: Vec<String> = r.iter().map(Cell::text).collect();
        text.push_str(&cells.join(","));
        text.push_str("\r\n");
    }
    match how {
        Saved::Utf8 => (text.into_bytes(), "text/csv"),
        Saved::Bom => (
            [b"\xEF\xBB\xBF".as_slice(), text.as_bytes()].concat(),
            "text/csv",
        ),
        Saved::Gbk => {
            let (b, _, unmappable) = encoding_rs::GBK.encode(&text);
            assert!(!unmappable, "{text}");
            assert!(std::str::from_utf8(&b).is_err() || text.is_ascii());
            (b.into_owned(), "text/csv")
        }
        Saved::Xlsx => {
            use rust_xlsxwriter::{Format, Workbook};
            let mut wb = Workbook::new();
            let ws = wb.add_worksheet();
            let time = Format::new().set_num_format("hh:mm");
            for (c, h) in header.split(',').enumerate() {
                ws.write_string(0, c as u16, h).unwrap();
            }
            for (r, row) in rows.iter().enumerate() {
                let r = r as u32 + 1;
                for (c, cell) in row.iter().enumerate() {
                    let c = c as u16;
                    match cell {
                        Cell::T(s) => {
                            ws.write_string(r, c, *s).unwrap();
                        }
                        Cell::N(n) => {
                            ws.write_number(r, c, *n).unwrap();
                        }
                        Cell::Time(h, m) => {
                            let day = (*h as f64 * 60.0 + *m as f64) / 1440.0;
                            ws.write_number_with_format(r, c, day, &time).unwrap();
                        }
                    }
                }
            }
            (wb.save_to_buffer().unwrap(), XLSX)
        }
    }
}

/// Text cells.
fn row<'a>(cells: &[&'a str]) -> Vec<Cell<'a>> {
    cells.iter().map(|c| Cell::T(c)).collect()
}

/// Posts a file as `token`; the status and the answer.
async fn post(
    app: &App,
    token: &str,
    path: &str,
    (body, ct): (Vec<u8>, &str),
) -> (StatusCode, Value) {
    let r = app
        .http
        .post(format!("{}{path}", app.base))
        .bearer_auth(token)
        .header("content-type", ct)
        .body(body)
        .send()
        .await
        .unwrap();
    let s = r.status();
    (s, r.json().await.unwrap_or(Value::Null))
}

async fn list(app: &App, path: &str) -> Vec<Value> {
    let (s, v) = app.call(Some(&app.admin), Method::GET, path, None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v.as_array().unwrap().clone()
}

/// The errors of a refused import as (row, column, message).
fn errors(v: &Value) -> Vec<(u64, String, String)> {
    v["errors"]
        .as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .map(|e| {
            (
                e["row"].as_u64().unwrap(),
                e["column"].as_str().unwrap().to_string(),
                e["message"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

const SCHOOLS: &str = "学校代码,学校名称,类型,省,市,县";
const ROOMS: &str = "学校,教室名称,类型";
const TEACHERS: &str = "工号,姓名,学校代码,学科";
const USERS: &str = "用户名,姓名,角色,范围,学校代码,省,市,县,教师编号";
const PAIRINGS: &str = "主讲学校代码,接收学校代码,学科,年级,学期,负责人";
const TIMETABLE: &str =
    "学期,星期,节次,开始时间,结束时间,学科,年级,模式,主讲教师编号,主讲教室,接收教室";

async fn a_term_from_spreadsheets(app: App) {
    let admin = app.admin.clone();
    let region =
        |county: &str| json!({"province": "四川省", "city": "凉山彝族自治州", "county": county});
    app.create("/api/regions", region("昭觉县")).await;
    app.create("/api/regions", region("布拖县")).await;
    app.create(
        "/api/terms",
        json!({"name": "2026秋", "starts_on": "2026-09-01", "ends_on": "2027-01-20"}),
    )
    .await;

    // One row per file, one file per encoding, for each importer in the order a county sets
    // up a term. Every one answers with its count.
    let zj = ["四川省", "凉山彝族自治州", "昭觉县"];
    let bt = ["四川省", "凉山彝族自治州", "布拖县"];
    let schools = [
        row(&["H01", "城关第一小学", "主讲学校", zj[0], zj[1], zj[2]]),
        row(&["P01", "石门乡中心小学", "接收学校", zj[0], zj[1], zj[2]]),
        row(&["P02", "柳树村教学点", "教学点", zj[0], zj[1], zj[2]]),
        row(&["P03", "布拖县小学", "接收学校", bt[0], bt[1], bt[2]]),
    ];
    let rooms = [
        row(&["H01", "录播教室", "主讲教室"]),
        row(&["P01", "五年级(1)班", "互动教室"]),
        // By the school's name, as many district sheets have it.
        row(&["柳树村教学点", "复式班", "互动教室"]),
        row(&["P03", "三年级1班", "互动教室"]),
    ];
    let teachers = [
        row(&["T001", "王丽", "H01", "数学"]),
        row(&["T002", "李明", "H01", "语文、数学"]),
        row(&["A001", "张华", "P01", ""]),
        row(&["A002", "赵强", "P03", "英语"]),
    ];
    let users = [
        row(&["wangli", "王丽", "教师", "学校", "H01", "", "", "", "T001"]),
        row(&[
            "jiaoyan",
            "教研员",
            "观课",
            "县",
            "",
            zj[0],
            zj[1],
            zj[2],
            "",
        ]),
        row(&["liming", "李明", "教师", "学校", "H01", "", "", "", "T002"]),
        row(&[
            "zjadmin",
            "昭觉县管理员",
            "管理员",
            "县",
            "",
            zj[0],
            zj[1],
            zj[2],
            "",
        ]),
    ];
    let pairings = [
        row(&["H01", "P01", "数学", "五年级", "2026秋", "王丽"]),
        row(&["H01", "P02", "数学", "五年级", "2026秋", ""]),
        row(&["H01", "P01", "语文", "五年级", "2026秋", "李明"]),
        row(&["H01", "P03", "数学", "五年级", "2026秋", ""]),
    ];
    let slot = |wd, p, (h1, m1), (h2, m2), subject, mode, t, sites| {
        vec![
            Cell::T("2026秋"),
            Cell::T(wd),
            Cell::N(p),
            Cell::Time(h1, m1),
            Cell::Time(h2, m2),
            Cell::T(subject),
            Cell::T("五年级"),
            Cell::T(mode),
            Cell::T(t),
            Cell::T("H01/录播教室"),
            Cell::T(sites),
        ]
    };
    let timetable = [
        slot(
            "周一",
            1.0,
            (8, 0),
            (8, 40),
            "数学",
            "专递课堂",
            "T001",
            "P01/五年级(1)班",
        ),
        slot(
            "周二",
            1.0,
            (8, 0),
            (8, 40),
            "数学",
            "专递课堂",
            "T001",
            "P02/复式班",
        ),
        slot(
            "周三",
            2.0,
            (8, 50),
            (9, 30),
            "语文",
            "名师课堂",
            "T002",
            "P01/五年级(1)班;P02/复式班",
        ),
        // In the .xlsx: the period a number cell, the times Excel time cells.
        slot(
            "星期五",
            3.0,
            (10, 0),
            (10, 40),
            "数学",
            "同步课堂",
            "T001",
            "P03/三年级1班",
        ),
    ];
    let mut passwords = std::collections::HashMap::new();
    for (path, header, rows) in [
        ("/api/schools/import", SCHOOLS, &schools),
        ("/api/classrooms/import", ROOMS, &rooms),
        ("/api/teachers/import", TEACHERS, &teachers),
        ("/api/users/import", USERS, &users),
        ("/api/pairings/import", PAIRINGS, &pairings),
        ("/api/timetable/import", TIMETABLE, &timetable),
    ] {
        for (how, r) in ALL.iter().zip(rows.iter()) {
            let (s, v) = post(
                &app,
                &admin,
                path,
                save(header, std::slice::from_ref(r), *how),
            )
            .await;
            assert_eq!(s, StatusCode::OK, "{path} {how:?}: {v}");
            assert_eq!(v["imported"], 1, "{path} {how:?}: {v}");
            for u in v["created"].as_array().into_iter().flatten() {
                passwords.insert(
                    u["username"].as_str().unwrap().to_string(),
                    u["password"].as_str().unwrap().to_string(),
                );
            }
        }
    }
    // What was stored reads as written, whatever the encoding.
    let names: Vec<String> = list(&app, "/api/schools")
        .await
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect();
    for n in [
        "城关第一小学",
        "石门乡中心小学",
        "柳树村教学点",
        "布拖县小学",
    ] {
        assert!(names.contains(&n.to_string()), "{names:?}");
    }
    let kinds: Vec<(String, String)> = list(&app, "/api/schools")
        .await
        .iter()
        .map(|s| {
            (
                s["code"].as_str().unwrap().into(),
                s["kind"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert!(
        kinds.contains(&("P02".into(), "partner".into())),
        "{kinds:?}"
    );
    let rooms_stored = list(&app, "/api/classrooms").await;
    assert!(
        rooms_stored.iter().any(|c| c["name"] == "复式班"),
        "{rooms_stored:?}"
    );
    let t2 = list(&app, "/api/teachers").await;
    assert!(
        t2.iter()
            .any(|t| t["code"] == "T002" && t["subjects"] == "语文,数学"),
        "{t2:?}"
    );
    let term = list(&app, "/api/terms").await[0]["id"].as_i64().unwrap();
    let slots = list(&app, &format!("/api/slots?term_id={term}")).await;
    assert_eq!(slots.len(), 4, "{slots:?}");
    assert!(
        slots.iter().any(|s| s["weekday"] == 5
            && s["period"] == 3
            && s["starts"] == "10:00"
            && s["ends"] == "10:40"
            && s["mode"] == "sync"),
        "the .xlsx's time cells read as times: {slots:?}"
    );
    assert_eq!(list(&app, "/api/pairings").await.len(), 4);

    // Duplicates against the database: the same file again is skipped, row by row.
    for (path, header, rows) in [
        ("/api/schools/import", SCHOOLS, &schools),
        ("/api/teachers/import", TEACHERS, &teachers),
        ("/api/pairings/import", PAIRINGS, &pairings),
        ("/api/timetable/import", TIMETABLE, &timetable),
    ] {
        let (s, v) = post(&app, &admin, path, save(header, &rows[..2], Saved::Gbk)).await;
        assert_eq!(s, StatusCode::OK, "{path}: {v}");
        assert_eq!(v["imported"], 0, "{path}: {v}");
        assert_eq!(v["rows"], 2, "{path}: {v}");
        let skipped: Vec<u64> = v["skipped"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["row"].as_u64().unwrap())
            .collect();
        assert_eq!(skipped, [2, 3], "{path}: {v}");
    }
    // ... and a stored code with other details is refused, naming the row.
    let (s, v) = post(
        &app,
        &admin,
        "/api/schools/import",
        save(
            SCHOOLS,
            &[
                row(&["X01", "新校", "接收学校", "", "", ""]),
                row(&["H01", "别的名字", "主讲学校", "", "", ""]),
            ],
            Saved::Utf8,
        ),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let e = errors(&v);
    assert_eq!((e[0].0, e[0].1.as_str()), (3, "code"), "{v}");
    assert!(e[0].2.contains("already used"), "{v}");
    // Duplicates within one file: the later row names the earlier.
    let (s, v) = post(
        &app,
        &admin,
        "/api/teachers/import",
        save(
            TEACHERS,
            &[
                row(&["T100", "甲", "H01", ""]),
                row(&["T100", "乙", "H01", ""]),
            ],
            Saved::Xlsx,
        ),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(errors(&v)[0].0, 3, "{v}");
    assert!(errors(&v)[0].2.contains("row 2"), "{v}");
    assert!(!list(&app, "/api/teachers")
        .await
        .iter()
        .any(|t| t["code"] == "T100"));

    // A county admin imports into their county only: a row elsewhere is refused by row,
    // and nothing of the file is stored.
    let county = app.login("zjadmin", &passwords["zjadmin"]).await;
    let before = list(&app, "/api/schools").await.len();
    let (s, v) = post(
        &app,
        &county,
        "/api/schools/import",
        save(
            SCHOOLS,
            &[
                row(&["Z01", "昭觉新校", "接收学校", zj[0], zj[1], zj[2]]),
                row(&["B01", "布拖新校", "接收学校", bt[0], bt[1], bt[2]]),
            ],
            Saved::Xlsx,
        ),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let e = errors(&v);
    assert_eq!(e.len(), 1, "{v}");
    assert_eq!(e[0].0, 3, "{v}");
    assert!(e[0].2.contains("outside your organisation scope"), "{v}");
    assert_eq!(
        list(&app, "/api/schools").await.len(),
        before,
        "nothing stored"
    );
    for (path, header, r) in [
        (
            "/api/classrooms/import",
            ROOMS,
            row(&["P03", "四年级1班", "互动教室"]),
        ),
        (
            "/api/teachers/import",
            TEACHERS,
            row(&["B900", "某老师", "P03", ""]),
        ),
        (
            "/api/pairings/import",
            PAIRINGS,
            row(&["H01", "P03", "英语", "五年级", "2026秋", ""]),
        ),
    ] {
        let (s, v) = post(&app, &county, path, save(header, &[r], Saved::Gbk)).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{path}: {v}");
        let e = errors(&v);
        assert_eq!(e[0].0, 2, "{path}: {v}");
        assert!(
            e[0].2.contains("outside your organisation scope"),
            "{path}: {v}"
        );
    }
    // Inside the county it imports.
    let (s, v) = post(
        &app,
        &county,
        "/api/classrooms/import",
        save(
            ROOMS,
            &[row(&["P01", "六年级(1)班", "互动教室"])],
            Saved::Bom,
        ),
    )
    .await;
    assert_eq!(
        (s, v["imported"].clone()),
        (StatusCode::OK, json!(1)),
        "{v}"
    );
    // A teacher may not import at all.
    let teacher = app.login("wangli", &passwords["wangli"]).await;
    let (s, v) = post(
        &app,
        &teacher,
        "/api/classrooms/import",
        save(ROOMS, &[row(&["H01", "x", "主讲教室"])], Saved::Utf8),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");

    // A dry run checks and counts, and stores nothing.
    let before = list(&app, "/api/classrooms").await.len();
    let (s, v) = post(
        &app,
        &admin,
        "/api/classrooms/import?dry_run=1",
        save(
            ROOMS,
            &[row(&["H01", "多媒体教室", "接收教室"])],
            Saved::Xlsx,
        ),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        (v["imported"].clone(), v["dry_run"].clone()),
        (json!(1), json!(true))
    );
    assert_eq!(list(&app, "/api/classrooms").await.len(), before);

    // Malformed and old workbooks: a clear 4xx, nothing stored.
    let (good, _) = save(
        SCHOOLS,
        &[row(&["Y01", "y", "接收学校", "", "", ""])],
        Saved::Xlsx,
    );
    let mut garbage = b"PK\x03\x04".to_vec();
    garbage.extend(std::iter::repeat_n(0x5a, 300));
    for (body, status, want) in [
        (garbage, StatusCode::UNPROCESSABLE_ENTITY, "bad-workbook"),
        (
            good[..good.len() / 2].to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "bad-workbook",
        ),
        (
            b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1\0\0\0\0".to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-spreadsheet",
        ),
    ] {
        let (s, v) = post(&app, &admin, "/api/schools/import", (body, XLSX)).await;
        assert_eq!((s, kind(&v)), (status, want), "{v}");
        assert!(
            v["detail"].as_str().unwrap().contains(".xlsx"),
            "names the fix: {v}"
        );
    }
    let (s, v) = post(
        &app,
        &admin,
        "/api/schools/import",
        (b"a,b\n".to_vec(), "text/plain"),
    )
    .await;
    assert_eq!(
        (s, kind(&v)),
        (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type"),
        "{v}"
    );
    assert!(!list(&app, "/api/schools")
        .await
        .iter()
        .any(|s| s["code"] == "Y01"));

    // Templates: Chinese headers, a BOM on the CSV, a workbook that reads back; only admins.
    let get = |token: String, file: &'static str| {
        let app = &app;
        async move {
            app.http
                .get(format!("{}/api/templates/{file}", app.base))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
        }
    };
    let r = get(admin.clone(), "timetable.csv").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let b = r.bytes().await.unwrap();
    assert!(b.starts_with(b"\xEF\xBB\xBF"), "BOM");
    assert!(
        std::str::from_utf8(&b[3..]).unwrap().starts_with(TIMETABLE),
        "{b:?}"
    );
    let r = get(admin.clone(), "schools.xlsx").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], XLSX);
    let b = r.bytes().await.unwrap().to_vec();
    // Importing the empty template: its header is understood, and it has no rows.
    let (s, v) = post(&app, &admin, "/api/schools/import", (b, XLSX)).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(errors(&v)[0].2.contains("no rows"), "{v}");
    assert_eq!(
        get(admin.clone(), "nope.csv").await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get(teacher.clone(), "schools.csv").await.status(),
        StatusCode::FORBIDDEN
    );
}

mod a_term_from_spreadsheets {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        let app = App::start(Backend::Sqlite)
            .await
            .expect("sqlite always works");
        a_term_from_spreadsheets(app).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        if let Some(app) = App::start(Backend::Postgres).await {
            a_term_from_spreadsheets(app).await;
        }
    }
}

/// Urban or rural (城乡, a stratum of 抽检 draws): read from the schools sheet under a
/// Chinese header in either language's words, refused by row and column when it is neither,
/// and kept by a `PUT` of the school that leaves `area` out (a `PUT` that sends it changes
/// it).
async fn the_area_is_imported_and_kept(app: App) {
    let admin = app.admin.clone();
    app.create(
        "/api/regions",
        json!({"province": "四川省", "city": "凉山彝族自治州", "county": "昭觉县"}),
    )
    .await;
    let header = format!("{SCHOOLS},城乡");
    let zj = ["四川省", "凉山彝族自治州", "昭觉县"];
    let bad = [row(&[
        "R09",
        "某校",
        "接收学校",
        zj[0],
        zj[1],
        zj[2],
        "郊区",
    ])];
    let (s, v) = post(
        &app,
        &admin,
        "/api/schools/import",
        save(&header, &bad, Saved::Utf8),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(errors(&v)[0].0, 2, "{v}");
    assert_eq!(errors(&v)[0].1, "area", "{v}");
    let rows = [
        row(&[
            "R01",
            "石门乡中心小学",
            "接收学校",
            zj[0],
            zj[1],
            zj[2],
            "乡村",
        ]),
        row(&[
            "U01",
            "城关第一小学",
            "主讲学校",
            zj[0],
            zj[1],
            zj[2],
            "urban",
        ]),
        row(&["N01", "柳树村教学点", "教学点", zj[0], zj[1], zj[2], ""]),
    ];
    for how in [Saved::Gbk, Saved::Xlsx] {
        let (s, v) = post(
            &app,
            &admin,
            "/api/schools/import?dry_run=1",
            save(&header, &rows, how),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{how:?}: {v}");
    }
    let (s, v) = post(
        &app,
        &admin,
        "/api/schools/import",
        save(&header, &rows, Saved::Bom),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let schools = list(&app, "/api/schools").await;
    let area = |code: &str| -> (i64, String) {
        let s = schools.iter().find(|s| s["code"] == code).unwrap();
        (
            s["id"].as_i64().unwrap(),
            s["area"].as_str().unwrap().to_string(),
        )
    };
    assert_eq!(area("R01").1, "rural");
    assert_eq!(area("U01").1, "urban");
    assert_eq!(area("N01").1, "unknown");
    // A PUT without `area` (a form that does not know it) keeps it…
    let (id, _) = area("R01");
    let path = format!("/api/schools/{id}");
    let (s, mut body) = app.call(Some(&admin), Method::GET, &path, None).await;
    assert_eq!(s, StatusCode::OK);
    body.as_object_mut().unwrap().remove("area");
    body["name"] = json!("石门乡中心校");
    let (s, v) = app
        .call(Some(&admin), Method::PUT, &path, Some(body.clone()))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        (v["name"].as_str(), v["area"].as_str()),
        (Some("石门乡中心校"), Some("rural"))
    );
    let (_, v) = app.call(Some(&admin), Method::GET, &path, None).await;
    assert_eq!(v["area"], "rural", "stored, not only answered: {v}");
    // …one that sends it changes it; a wrong value is refused with a problem.
    body["area"] = json!("urban");
    let (s, v) = app
        .call(Some(&admin), Method::PUT, &path, Some(body.clone()))
        .await;
    assert_eq!(
        (s, v["area"].as_str()),
        (StatusCode::OK, Some("urban")),
        "{v}"
    );
    body["area"] = json!("郊区");
    let (s, v) = app.call(Some(&admin), Method::PUT, &path, Some(body)).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(kind(&v), "bad-json", "{v}");
}

mod the_area_is_imported_and_kept {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        let app = App::start(Backend::Sqlite)
            .await
            .expect("sqlite always works");
        the_area_is_imported_and_kept(app).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        if let Some(app) = App::start(Backend::Postgres).await {
            the_area_is_imported_and_kept(app).await;
        }
    }
}
