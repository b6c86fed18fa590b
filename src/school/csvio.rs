//! CSV import and export of pairings and the timetable: what a district office keeps in
//! spreadsheets. An import is all or nothing: every row is checked first and each bad cell
//! is reported by row (as the spreadsheet numbers it, the header being row 1) and column;
//! only a file without errors is written, in one transaction.
//!
//! Pairings: `hub_school_code,partner_school_code,subject,grade,term,owner`.
//! Timetable: `term,weekday,period,starts,ends,subject,grade,mode,hub_teacher_code,
//! hub_classroom,sites`, where a classroom is `SCHOOLCODE/教室名` and `sites` lists
//! classrooms separated by `;`, each optionally followed by `@TEACHERCODE` (the assisting
//! teacher). Weekdays are 1–7 or 周一…周日; modes are delivery/master/sync or 专递/名师/同步.

use std::collections::HashMap;

use axum::body::Body;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::model::{
    self, Classroom, LessonMode, Pairing, School, SchoolKind, Site, Slot, SlotError, Teacher, Term,
};
use crate::http::{ApiError, AppState};
use crate::store::StoreError;

/// Largest CSV file accepted.
pub const MAX_CSV_BYTES: usize = 4 << 20;

/// One problem in an import.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RowError {
    /// Row number as a spreadsheet shows it (header = 1).
    pub row: usize,
    /// Column name.
    pub column: String,
    /// What is wrong.
    pub message: String,
}

fn rejected(errors: Vec<RowError>) -> ApiError {
    let n = errors.len();
    let first = errors
        .first()
        .map(|e| format!("row {}, column {}: {}", e.row, e.column, e.message))
        .unwrap_or_default();
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "csv-rejected",
        format!("{n} problem(s); nothing was imported. First: {first}"),
    )
    .with("errors", serde_json::to_value(errors).unwrap_or_default())
}

fn csv_response(name: &str, body: Vec<u8>) -> Response {
    let mut r = (StatusCode::OK, body).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    r
}

/// Dispatches the CSV routes.
pub async fn handle(
    st: &AppState,
    method: Method,
    path: &str,
    q: &HashMap<String, String>,
    body: Body,
) -> Result<Response, ApiError> {
    match (method, path) {
        (Method::GET, "/api/pairings.csv") => {
            Ok(csv_response("pairings.csv", export_pairings(st).await?))
        }
        (Method::GET, "/api/timetable.csv") => {
            let term = q
                .get("term_id")
                .and_then(|s| s.parse::<i64>().ok())
                .ok_or_else(|| ApiError::bad_request("bad-query", "term_id is required"))?;
            Ok(csv_response(
                "timetable.csv",
                export_timetable(st, term).await?,
            ))
        }
        (Method::POST, "/api/pairings/import") => {
            let text = read_csv(body).await?;
            let n = import_pairings(st, &text).await?;
            Ok(axum::Json(serde_json::json!({"imported": n})).into_response())
        }
        (Method::POST, "/api/timetable/import") => {
            let text = read_csv(body).await?;
            let n = import_timetable(st, &text).await?;
            Ok(axum::Json(serde_json::json!({"imported": n})).into_response())
        }
        _ => Err(ApiError::not_found("not-found", "no such resource")),
    }
}

async fn read_csv(body: Body) -> Result<String, ApiError> {
    let bytes = axum::body::to_bytes(body, MAX_CSV_BYTES)
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body-too-large",
                format!("CSV larger than {MAX_CSV_BYTES} bytes"),
            )
        })?;
    // Spreadsheets often save with a byte-order mark.
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
    String::from_utf8(bytes.to_vec()).map_err(|_| {
        ApiError::bad_request("bad-encoding", "CSV must be UTF-8 (save as \"CSV UTF-8\")")
    })
}

/// A data row: its number and its cells by (lowercase) column name.
type CsvRow = (usize, HashMap<String, String>);

/// Parses a CSV with the given required columns; returns (row number, column -> value) rows.
fn parse(text: &str, required: &[&str]) -> Result<Vec<CsvRow>, Vec<RowError>> {
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let headers: Vec<String> = match rdr.headers() {
        Ok(h) => h.iter().map(|s| s.to_lowercase()).collect(),
        Err(e) => {
            return Err(vec![RowError {
                row: 1,
                column: String::new(),
                message: format!("unreadable header: {e}"),
            }])
        }
    };
    let missing: Vec<RowError> = required
        .iter()
        .filter(|c| !headers.iter().any(|h| h == *c))
        .map(|c| RowError {
            row: 1,
            column: c.to_string(),
            message: "column missing from the header".into(),
        })
        .collect();
    if !missing.is_empty() {
        return Err(missing);
    }
    let mut rows = Vec::new();
    let mut errors = Vec::new();
    let mut last = 1usize;
    for rec in rdr.records() {
        // The csv reader skips blank lines (and does not count them in its line numbers),
        // so the row a district office sees in its spreadsheet is found from the record's
        // byte offset.
        let row = match &rec {
            Ok(r) => r.position(),
            Err(e) => e.position(),
        }
        .map(|p| {
            // A record's position may point at the blank lines before it.
            let start = p.byte() as usize;
            let skip = text.as_bytes()[start.min(text.len())..]
                .iter()
                .take_while(|b| matches!(b, b'\r' | b'\n'))
                .count();
            text.as_bytes()[..(start + skip).min(text.len())]
                .iter()
                .filter(|b| **b == b'\n')
                .count()
                + 1
        })
        .unwrap_or(last + 1);
        last = row;
        match rec {
            Ok(r) => {
                if r.iter().all(|c| c.is_empty()) {
                    continue;
                }
                let map = headers
                    .iter()
                    .cloned()
                    .zip(r.iter().map(|s| s.to_string()))
                    .collect();
                rows.push((row, map));
            }
            Err(e) => errors.push(RowError {
                row,
                column: String::new(),
                message: format!("unreadable row: {e}"),
            }),
        }
    }
    if rows.is_empty() && errors.is_empty() {
        errors.push(RowError {
            row: 2,
            column: String::new(),
            message: "the file has no rows".into(),
        });
    }
    if errors.is_empty() {
        Ok(rows)
    } else {
        Err(errors)
    }
}

struct Row<'a> {
    n: usize,
    cells: &'a HashMap<String, String>,
    errors: &'a mut Vec<RowError>,
}

impl Row<'_> {
    fn err(&mut self, column: &str, message: impl Into<String>) {
        self.errors.push(RowError {
            row: self.n,
            column: column.into(),
            message: message.into(),
        });
    }
    fn text(&mut self, column: &str) -> Option<String> {
        let v = self.cells.get(column).cloned().unwrap_or_default();
        if v.is_empty() {
            self.err(column, "empty");
            None
        } else if v.chars().count() > 200 {
            self.err(column, "longer than 200 characters");
            None
        } else {
            Some(v)
        }
    }
    fn optional(&self, column: &str) -> String {
        self.cells.get(column).cloned().unwrap_or_default()
    }
}

struct Directory {
    schools: HashMap<String, School>,
    classrooms: HashMap<(i64, String), Classroom>,
    teachers: HashMap<String, Teacher>,
    terms: HashMap<String, Term>,
}

impl Directory {
    async fn load(st: &AppState) -> Result<Directory, StoreError> {
        let s = &st.school.store;
        let schools: Vec<School> = model::list(s, None).await?;
        let classrooms: Vec<Classroom> = model::list(s, None).await?;
        let teachers: Vec<Teacher> = model::list(s, None).await?;
        let terms: Vec<Term> = model::list(s, None).await?;
        Ok(Directory {
            schools: schools.into_iter().map(|x| (x.code.clone(), x)).collect(),
            classrooms: classrooms
                .into_iter()
                .map(|c| ((c.school_id, c.name.clone()), c))
                .collect(),
            teachers: teachers.into_iter().map(|t| (t.code.clone(), t)).collect(),
            terms: terms.into_iter().map(|t| (t.name.clone(), t)).collect(),
        })
    }

    fn school(&self, r: &mut Row<'_>, column: &str) -> Option<School> {
        let code = r.text(column)?;
        match self.schools.get(&code) {
            Some(s) => Some(s.clone()),
            None => {
                r.err(column, format!("no school with code `{code}`"));
                None
            }
        }
    }

    fn classroom_ref(&self, r: &mut Row<'_>, column: &str, v: &str) -> Option<Classroom> {
        let Some((code, name)) = v.split_once('/') else {
            r.err(column, format!("`{v}` is not SCHOOLCODE/教室名"));
            return None;
        };
        let Some(school) = self.schools.get(code.trim()) else {
            r.err(column, format!("no school with code `{}`", code.trim()));
            return None;
        };
        match self.classrooms.get(&(school.id, name.trim().to_string())) {
            Some(c) => Some(c.clone()),
            None => {
                r.err(
                    column,
                    format!(
                        "school `{}` has no classroom `{}`",
                        code.trim(),
                        name.trim()
                    ),
                );
                None
            }
        }
    }

    fn teacher_ref(&self, r: &mut Row<'_>, column: &str, code: &str) -> Option<Teacher> {
        match self.teachers.get(code.trim()) {
            Some(t) => Some(t.clone()),
            None => {
                r.err(column, format!("no teacher with code `{}`", code.trim()));
                None
            }
        }
    }
}

const PAIRING_COLS: &[&str] = &[
    "hub_school_code",
    "partner_school_code",
    "subject",
    "grade",
    "term",
];

/// Imports pairings; returns how many rows were written.
pub async fn import_pairings(st: &AppState, text: &str) -> Result<usize, ApiError> {
    let rows = parse(text, PAIRING_COLS).map_err(rejected)?;
    let dir = Directory::load(st).await?;
    let mut errors = Vec::new();
    let mut items = Vec::new();
    for (n, cells) in &rows {
        let mut r = Row {
            n: *n,
            cells,
            errors: &mut errors,
        };
        let hub = dir.school(&mut r, "hub_school_code");
        let partner = dir.school(&mut r, "partner_school_code");
        let subject = r.text("subject");
        let grade = r.text("grade");
        let term = r.text("term");
        let owner = r.optional("owner");
        if let Some(h) = &hub {
            if h.kind != SchoolKind::Hub {
                r.err(
                    "hub_school_code",
                    format!("school `{}` is not a hub school", h.code),
                );
            }
        }
        if let (Some(h), Some(p)) = (&hub, &partner) {
            if h.id == p.id {
                r.err(
                    "partner_school_code",
                    "a school cannot be paired with itself",
                );
            }
        }
        if let (Some(h), Some(p), Some(subject), Some(grade), Some(term)) =
            (hub, partner, subject, grade, term)
        {
            items.push((
                *n,
                Pairing {
                    id: 0,
                    hub_school_id: h.id,
                    partner_school_id: p.id,
                    subject,
                    grade,
                    term,
                    owner,
                },
            ));
        }
    }
    // Duplicates within the file.
    let mut seen = HashMap::new();
    for (n, p) in &items {
        let key = (
            p.hub_school_id,
            p.partner_school_id,
            p.subject.clone(),
            p.grade.clone(),
            p.term.clone(),
        );
        if let Some(first) = seen.insert(key, *n) {
            errors.push(RowError {
                row: *n,
                column: "partner_school_code".into(),
                message: format!("same pairing as row {first}"),
            });
        }
    }
    if !errors.is_empty() {
        errors.sort_by_key(|e| e.row);
        return Err(rejected(errors));
    }
    let mut tx = st.school.store.begin().await?;
    for (n, p) in &items {
        if let Err(e) = model::insert_in(&mut tx, p).await {
            let message = match e {
                StoreError::Duplicate(_) => "this pairing already exists".to_string(),
                other => return Err(other.into()),
            };
            return Err(rejected(vec![RowError {
                row: *n,
                column: "partner_school_code".into(),
                message,
            }]));
        }
    }
    tx.commit().await.map_err(StoreError::from)?;
    Ok(items.len())
}

fn parse_weekday(s: &str) -> Option<i64> {
    const NAMES: [[&str; 3]; 7] = [
        ["周一", "mon", "星期一"],
        ["周二", "tue", "星期二"],
        ["周三", "wed", "星期三"],
        ["周四", "thu", "星期四"],
        ["周五", "fri", "星期五"],
        ["周六", "sat", "星期六"],
        ["周日", "sun", "星期日"],
    ];
    if let Ok(n) = s.parse::<i64>() {
        return (1..=7).contains(&n).then_some(n);
    }
    let l = s.to_lowercase();
    NAMES
        .iter()
        .position(|names| names.iter().any(|x| l.starts_with(x)))
        .map(|i| i as i64 + 1)
}

fn parse_mode(s: &str) -> Option<LessonMode> {
    match s {
        "专递" | "专递课堂" => Some(LessonMode::Delivery),
        "名师" | "名师课堂" => Some(LessonMode::Master),
        "同步" | "同步课堂" => Some(LessonMode::Sync),
        other => other.parse().ok(),
    }
}

const TIMETABLE_COLS: &[&str] = &[
    "term",
    "weekday",
    "period",
    "starts",
    "ends",
    "subject",
    "grade",
    "mode",
    "hub_teacher_code",
    "hub_classroom",
    "sites",
];

/// Imports timetable slots; returns how many were written.
pub async fn import_timetable(st: &AppState, text: &str) -> Result<usize, ApiError> {
    let rows = parse(text, TIMETABLE_COLS).map_err(rejected)?;
    let dir = Directory::load(st).await?;
    let mut errors = Vec::new();
    let mut slots = Vec::new();
    for (n, cells) in &rows {
        let mut r = Row {
            n: *n,
            cells,
            errors: &mut errors,
        };
        let term = r.text("term").and_then(|t| match dir.terms.get(&t) {
            Some(t) => Some(t.id),
            None => {
                r.err("term", format!("no term named `{t}`"));
                None
            }
        });
        let weekday = r.text("weekday").and_then(|w| {
            let v = parse_weekday(&w);
            if v.is_none() {
                r.err(
                    "weekday",
                    format!("`{w}` is not a weekday (1-7 or 周一…周日)"),
                );
            }
            v
        });
        let period = r.text("period").and_then(|p| match p.parse::<i64>() {
            Ok(v) => Some(v),
            Err(_) => {
                r.err("period", format!("`{p}` is not a number"));
                None
            }
        });
        let starts = r.text("starts");
        let ends = r.text("ends");
        let subject = r.text("subject");
        let grade = r.text("grade");
        let mode = r.text("mode").and_then(|m| {
            let v = parse_mode(&m);
            if v.is_none() {
                r.err(
                    "mode",
                    format!("`{m}` is not a mode (专递/名师/同步 or delivery/master/sync)"),
                );
            }
            v
        });
        let teacher = r
            .text("hub_teacher_code")
            .and_then(|c| dir.teacher_ref(&mut r, "hub_teacher_code", &c));
        let hub_room = r
            .text("hub_classroom")
            .and_then(|c| dir.classroom_ref(&mut r, "hub_classroom", &c));
        let mut sites = Vec::new();
        let mut sites_ok = true;
        if let Some(list) = r.text("sites") {
            for item in list
                .split([';', '；'])
                .map(str::trim)
                .filter(|s| !s.is_empty())
            {
                let (room, assist) = match item.split_once('@') {
                    Some((a, b)) => (a, Some(b)),
                    None => (item, None),
                };
                let c = dir.classroom_ref(&mut r, "sites", room);
                let t = assist.map(|code| dir.teacher_ref(&mut r, "sites", code));
                match (c, t) {
                    (Some(c), None) => sites.push(Site {
                        classroom_id: c.id,
                        assisting_teacher_id: None,
                    }),
                    (Some(c), Some(Some(t))) => sites.push(Site {
                        classroom_id: c.id,
                        assisting_teacher_id: Some(t.id),
                    }),
                    _ => sites_ok = false,
                }
            }
        }
        if let (
            Some(term_id),
            Some(weekday),
            Some(period),
            Some(starts),
            Some(ends),
            Some(subject),
            Some(grade),
            Some(mode),
            Some(t),
            Some(h),
            true,
        ) = (
            term, weekday, period, starts, ends, subject, grade, mode, teacher, hub_room, sites_ok,
        ) {
            let slot = Slot {
                id: 0,
                term_id,
                weekday,
                period,
                starts,
                ends,
                subject,
                grade,
                mode,
                hub_teacher_id: t.id,
                hub_classroom_id: h.id,
                sites,
            };
            if let Err(m) = slot.validate() {
                let column = m
                    .split(&[':', ' '][..])
                    .next()
                    .filter(|c| TIMETABLE_COLS.contains(c))
                    .unwrap_or("")
                    .to_string();
                r.err(&column, m);
            } else {
                slots.push((*n, slot));
            }
        }
    }
    if !errors.is_empty() {
        errors.sort_by_key(|e| e.row);
        return Err(rejected(errors));
    }
    let mut tx = st.school.store.begin().await?;
    for (n, s) in slots.iter().cloned() {
        match model::save_slot_in(&mut tx, s, false).await {
            Ok(_) => {}
            Err(SlotError::Conflict(m)) => {
                return Err(rejected(vec![RowError {
                    row: n,
                    column: "hub_teacher_code".into(),
                    message: format!("timetable conflict: {m}"),
                }]))
            }
            Err(SlotError::Invalid(m)) => {
                return Err(rejected(vec![RowError {
                    row: n,
                    column: String::new(),
                    message: m,
                }]))
            }
            Err(SlotError::Store(e)) => return Err(e.into()),
        }
    }
    tx.commit().await.map_err(StoreError::from)?;
    Ok(slots.len())
}

fn write_rows(header: &[&str], rows: Vec<Vec<String>>) -> Result<Vec<u8>, ApiError> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(header).map_err(ApiError::internal)?;
    for r in rows {
        w.write_record(&r).map_err(ApiError::internal)?;
    }
    w.into_inner().map_err(ApiError::internal)
}

async fn export_pairings(st: &AppState) -> Result<Vec<u8>, ApiError> {
    let s = &st.school.store;
    let schools: HashMap<i64, School> = model::list::<School>(s, None)
        .await?
        .into_iter()
        .map(|x| (x.id, x))
        .collect();
    let code = |id: i64| schools.get(&id).map(|s| s.code.clone()).unwrap_or_default();
    let rows = model::list::<Pairing>(s, None)
        .await?
        .into_iter()
        .map(|p| {
            vec![
                code(p.hub_school_id),
                code(p.partner_school_id),
                p.subject,
                p.grade,
                p.term,
                p.owner,
            ]
        })
        .collect();
    let mut header = PAIRING_COLS.to_vec();
    header.push("owner");
    write_rows(&header, rows)
}

async fn export_timetable(st: &AppState, term_id: i64) -> Result<Vec<u8>, ApiError> {
    let s = &st.school.store;
    let term: Term = model::get(s, term_id).await?;
    let schools: HashMap<i64, School> = model::list::<School>(s, None)
        .await?
        .into_iter()
        .map(|x| (x.id, x))
        .collect();
    let rooms: HashMap<i64, Classroom> = model::list::<Classroom>(s, None)
        .await?
        .into_iter()
        .map(|x| (x.id, x))
        .collect();
    let teachers: HashMap<i64, Teacher> = model::list::<Teacher>(s, None)
        .await?
        .into_iter()
        .map(|x| (x.id, x))
        .collect();
    let room = |id: i64| {
        rooms
            .get(&id)
            .map(|c| {
                format!(
                    "{}/{}",
                    schools
                        .get(&c.school_id)
                        .map(|s| s.code.as_str())
                        .unwrap_or(""),
                    c.name
                )
            })
            .unwrap_or_default()
    };
    let tcode = |id: i64| {
        teachers
            .get(&id)
            .map(|t| t.code.clone())
            .unwrap_or_default()
    };
    let mut conn = s.pool().acquire().await.map_err(StoreError::from)?;
    let slots = model::list_slots_in(&mut conn, term_id, None).await?;
    let rows = slots
        .into_iter()
        .map(|x| {
            let sites = x
                .sites
                .iter()
                .map(|s| match s.assisting_teacher_id {
                    Some(t) => format!("{}@{}", room(s.classroom_id), tcode(t)),
                    None => room(s.classroom_id),
                })
                .collect::<Vec<_>>()
                .join(";");
            vec![
                term.name.clone(),
                x.weekday.to_string(),
                x.period.to_string(),
                x.starts,
                x.ends,
                x.subject,
                x.grade,
                x.mode.as_str().to_string(),
                tcode(x.hub_teacher_id),
                room(x.hub_classroom_id),
                sites,
            ]
        })
        .collect();
    write_rows(TIMETABLE_COLS, rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_reports_missing_columns_and_bad_rows() {
        let e = parse("a,b\n1,2\n", &["a", "c"]).unwrap_err();
        assert_eq!(
            e,
            vec![RowError {
                row: 1,
                column: "c".into(),
                message: "column missing from the header".into()
            }]
        );
        let rows = parse("A, B\n 1 ,2\n\n3,4\n", &["a", "b"]).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1].0, 4, "row numbers count the header and blank lines");
        assert_eq!(rows[0].1["a"], "1");
        assert!(parse("a\n", &["a"]).is_err(), "no rows");
    }

    #[test]
    fn weekdays_and_modes_in_both_languages() {
        assert_eq!(parse_weekday("3"), Some(3));
        assert_eq!(parse_weekday("周五"), Some(5));
        assert_eq!(parse_weekday("Monday"), Some(1));
        assert_eq!(parse_weekday("8"), None);
        assert_eq!(parse_mode("同步课堂"), Some(LessonMode::Sync));
        assert_eq!(parse_mode("master"), Some(LessonMode::Master));
        assert_eq!(parse_mode("x"), None);
    }
}
