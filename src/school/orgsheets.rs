//! The directory as spreadsheets: schools, classrooms and teachers imported from CSV or
//! `.xlsx` (columns and Chinese headers in [`super::sheet::SHEETS`]). All or nothing like the
//! other importers: every row is checked (within the file, against the database, against the
//! importing admin's scope) before one transaction writes them, and every problem is named
//! by row and column. Never writes a row outside the admin's scope and never changes a
//! stored row: a row already there exactly is skipped (and reported), one that differs is
//! refused.

use std::collections::HashMap;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::access::{self, Directory as Places};
use super::csvio::{self, Errors, ImportResult, RowError, RowNote};
use super::model::{
    self, Classroom, ClassroomKind, Entity, Region, School, SchoolArea, SchoolKind, Teacher,
};
use super::sheet;
use super::SchoolState;
use crate::auth::people::Principal;
use crate::auth::scope::{Level, Place, Scope};
use crate::problem::ApiError;
use crate::store::StoreError;

/// A row of the schools spreadsheet.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct SchoolRow {
    code: String,
    name: String,
    kind: String,
    province: String,
    city: String,
    county: String,
    max_master_sites: String,
    area: String,
}

/// A row of the classrooms spreadsheet.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ClassroomRow {
    school_code: String,
    name: String,
    kind: String,
    device: String,
}

/// A row of the teachers spreadsheet.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct TeacherRow {
    code: String,
    name: String,
    school_code: String,
    subjects: String,
}

/// What is stored, by the names a spreadsheet uses.
struct Names {
    schools: HashMap<String, School>,
    regions: Vec<Region>,
    classrooms: HashMap<(i64, String), Classroom>,
    teachers: HashMap<String, Teacher>,
}

impl Names {
    async fn load(st: &SchoolState) -> Result<Names, ApiError> {
        let s = &st.store;
        let schools: Vec<School> = model::list(s, None).await?;
        let classrooms: Vec<Classroom> = model::list(s, None).await?;
        let teachers: Vec<Teacher> = model::list(s, None).await?;
        Ok(Names {
            schools: schools.into_iter().map(|x| (x.code.clone(), x)).collect(),
            regions: model::list(s, None).await?,
            classrooms: classrooms
                .into_iter()
                .map(|c| ((c.school_id, c.name.clone()), c))
                .collect(),
            teachers: teachers.into_iter().map(|t| (t.code.clone(), t)).collect(),
        })
    }

    /// The school a cell names, by code or (when unique) by name.
    fn school(&self, v: &str) -> Option<&School> {
        self.schools
            .get(v)
            .or_else(|| csvio::unique_by_name(self.schools.values(), v))
    }
}

/// The importing admin's scope and the directory's shape.
struct Rules {
    scope: Scope,
    places: Places,
}

impl Rules {
    /// Why an admin may not write a row at `place` needing `min` level, if they may not.
    fn refuse(&self, min: Level, place: &Place) -> Option<String> {
        if self.scope.level < min {
            Some(format!(
                "this needs an administrator at {} level or above; yours is {}",
                min.as_str(),
                self.scope.level.as_str()
            ))
        } else if !self.scope.covers(place) {
            Some("outside your organisation scope".into())
        } else {
            None
        }
    }
}

fn school_kind(s: &str) -> Option<SchoolKind> {
    match s.to_lowercase().as_str() {
        "hub" | "主讲" | "主讲学校" | "主讲校" | "中心校" | "名校" => {
            Some(SchoolKind::Hub)
        }
        "partner" | "接收" | "接收学校" | "接收校" | "结对学校" | "教学点" | "薄弱校" => {
            Some(SchoolKind::Partner)
        }
        _ => None,
    }
}

/// Urban or rural (城镇/乡村) as district lists write it; empty: not recorded.
fn school_area(s: &str) -> Option<SchoolArea> {
    match s.trim().to_lowercase().as_str() {
        "" | "unknown" | "未知" | "未填" => Some(SchoolArea::Unknown),
        "urban" | "城镇" | "城区" | "城市" | "镇区" | "县城" => Some(SchoolArea::Urban),
        "rural" | "乡村" | "农村" => Some(SchoolArea::Rural),
        _ => None,
    }
}

fn classroom_kind(s: &str) -> Option<ClassroomKind> {
    match s.to_lowercase().as_str() {
        "hub" | "主讲" | "主讲教室" | "录播教室" => Some(ClassroomKind::Hub),
        "interactive" | "互动" | "互动教室" => Some(ClassroomKind::Interactive),
        "receive_only" | "receive-only" | "接收" | "接收教室" | "只接收" => {
            Some(ClassroomKind::ReceiveOnly)
        }
        _ => None,
    }
}

/// The problems of one row.
struct Row<'a> {
    n: usize,
    errors: &'a mut Errors,
}

impl Row<'_> {
    fn err(&mut self, column: &str, message: impl Into<String>) {
        self.errors.push(RowError {
            row: self.n,
            column: column.into(),
            message: message.into(),
        });
    }
}

/// The column an entity's validation message is about (it starts with the field's name).
fn column_of(m: &str, columns: &[&str]) -> String {
    m.split([' ', ':'])
        .next()
        .filter(|c| columns.contains(c))
        .unwrap_or("")
        .to_string()
}

/// One checked row to store.
enum Item {
    School(School),
    Classroom(Classroom),
    Teacher(Teacher),
}

type Checked = (Vec<(usize, Item)>, Vec<RowNote>);

fn check_schools(rows: &[(usize, SchoolRow)], n: &Names, rules: &Rules) -> Result<Checked, Errors> {
    let mut errors = Errors::default();
    let (mut items, mut skipped) = (Vec::new(), Vec::new());
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (no, c) in rows {
        let mut r = Row {
            n: *no,
            errors: &mut errors,
        };
        let Some(kind) = school_kind(&c.kind) else {
            r.err(
                "kind",
                format!("`{}` is not 主讲学校 (hub) or 接收学校 (partner)", c.kind),
            );
            continue;
        };
        let region = if [&c.province, &c.city, &c.county]
            .iter()
            .all(|v| v.is_empty())
        {
            None
        } else {
            let found: Vec<&Region> = n
                .regions
                .iter()
                .filter(|x| c.province.is_empty() || x.province == c.province)
                .filter(|x| c.city.is_empty() || x.city == c.city)
                .filter(|x| c.county.is_empty() || x.county == c.county)
                .collect();
            match found.as_slice() {
                [one] => Some(one.id),
                _ => {
                    r.err(
                        "county",
                        format!(
                            "no single region `{}` / `{}` / `{}`; add the region first, or \
                             name its province, city and county",
                            c.province, c.city, c.county
                        ),
                    );
                    continue;
                }
            }
        };
        let Some(area) = school_area(&c.area) else {
            r.err(
                "area",
                format!("`{}` is not 城镇 (urban) or 乡村 (rural)", c.area),
            );
            continue;
        };
        let max_master_sites = match c.max_master_sites.as_str() {
            "" => 500,
            v => match v.parse::<i64>() {
                Ok(x) => x,
                Err(_) => {
                    r.err("max_master_sites", format!("`{v}` is not a number"));
                    continue;
                }
            },
        };
        let s = School {
            id: 0,
            code: c.code.clone(),
            name: c.name.clone(),
            kind,
            region_id: region,
            max_master_sites,
            area,
            record_lessons: model::OnOff(true),
            retention_days: None,
            max_video_layer: None,
        };
        if let Err(m) = s.validate() {
            r.err(&column_of(&m, &["code", "name", "max_master_sites"]), m);
            continue;
        }
        if let Some(first) = seen.insert(s.code.clone(), *no) {
            r.err("code", format!("same school code as row {first}"));
            continue;
        }
        let place = Place {
            school_id: None,
            ..region
                .and_then(|id| rules.places.regions.get(&id).cloned())
                .unwrap_or_default()
        };
        if let Some(why) = rules.refuse(Level::County, &place) {
            r.err("county", format!("school `{}`: {why}", s.code));
            continue;
        }
        match n.schools.get(&s.code) {
            Some(old)
                if old.name == s.name
                    && old.kind == s.kind
                    && old.region_id == s.region_id
                    && (s.area == SchoolArea::Unknown || old.area == s.area) =>
            {
                skipped.push(RowNote {
                    row: *no,
                    message: format!("school `{}` is already there; not stored again", s.code),
                });
            }
            Some(old) => r.err(
                "code",
                format!(
                    "school code `{}` is already used by 「{}」 with other details; change it \
                     in the list, or remove this row",
                    s.code, old.name
                ),
            ),
            None => items.push((*no, Item::School(s))),
        }
    }
    if errors.is_empty() {
        Ok((items, skipped))
    } else {
        Err(errors)
    }
}

fn check_classrooms(
    rows: &[(usize, ClassroomRow)],
    n: &Names,
    rules: &Rules,
) -> Result<Checked, Errors> {
    let mut errors = Errors::default();
    let (mut items, mut skipped) = (Vec::new(), Vec::new());
    let mut seen: HashMap<(i64, String), usize> = HashMap::new();
    for (no, c) in rows {
        let mut r = Row {
            n: *no,
            errors: &mut errors,
        };
        let Some(school) = n.school(&c.school_code) else {
            r.err(
                "school_code",
                format!("no school with code (or name) `{}`", c.school_code),
            );
            continue;
        };
        let Some(kind) = classroom_kind(&c.kind) else {
            r.err(
                "kind",
                format!(
                    "`{}` is not 主讲教室 (hub), 互动教室 (interactive) or 接收教室 (receive_only)",
                    c.kind
                ),
            );
            continue;
        };
        let x = Classroom {
            id: 0,
            school_id: school.id,
            name: c.name.clone(),
            kind,
            device: c.device.clone(),
            max_video_layer: None,
        };
        if let Err(m) = x.validate() {
            r.err(&column_of(&m, &["name", "device"]), m);
            continue;
        }
        let key = (x.school_id, x.name.clone());
        if let Some(first) = seen.insert(key.clone(), *no) {
            r.err("name", format!("same classroom as row {first}"));
            continue;
        }
        if let Some(why) = rules.refuse(Level::School, &rules.places.school(school.id)) {
            r.err("school_code", format!("school `{}`: {why}", school.code));
            continue;
        }
        match n.classrooms.get(&key) {
            Some(old) if old.kind == x.kind && old.device == x.device => skipped.push(RowNote {
                row: *no,
                message: format!(
                    "classroom `{}/{}` is already there; not stored again",
                    school.code, x.name
                ),
            }),
            Some(_) => r.err(
                "name",
                format!(
                    "school `{}` already has a classroom `{}` with other details; change it \
                     in the list, or remove this row",
                    school.code, x.name
                ),
            ),
            None => items.push((*no, Item::Classroom(x))),
        }
    }
    if errors.is_empty() {
        Ok((items, skipped))
    } else {
        Err(errors)
    }
}

fn check_teachers(
    rows: &[(usize, TeacherRow)],
    n: &Names,
    rules: &Rules,
) -> Result<Checked, Errors> {
    let mut errors = Errors::default();
    let (mut items, mut skipped) = (Vec::new(), Vec::new());
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (no, c) in rows {
        let mut r = Row {
            n: *no,
            errors: &mut errors,
        };
        let Some(school) = n.school(&c.school_code) else {
            r.err(
                "school_code",
                format!("no school with code (or name) `{}`", c.school_code),
            );
            continue;
        };
        let x = Teacher {
            id: 0,
            code: c.code.clone(),
            name: c.name.clone(),
            school_id: school.id,
            // District sheets separate subjects with Chinese commas or 、 too.
            subjects: c
                .subjects
                .split([',', '，', '、', ';', '；'])
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join(","),
        };
        if let Err(m) = x.validate() {
            r.err(&column_of(&m, &["code", "name", "subjects"]), m);
            continue;
        }
        if let Some(first) = seen.insert(x.code.clone(), *no) {
            r.err("code", format!("same teacher code as row {first}"));
            continue;
        }
        if let Some(why) = rules.refuse(Level::School, &rules.places.school(school.id)) {
            r.err("school_code", format!("school `{}`: {why}", school.code));
            continue;
        }
        match n.teachers.get(&x.code) {
            Some(old) if old.name == x.name && old.school_id == x.school_id => {
                skipped.push(RowNote {
                    row: *no,
                    message: format!("teacher `{}` is already there; not stored again", x.code),
                })
            }
            Some(old) => r.err(
                "code",
                format!(
                    "teacher code `{}` is already used by 「{}」 with other details; change it \
                     in the list, or remove this row",
                    x.code, old.name
                ),
            ),
            None => items.push((*no, Item::Teacher(x))),
        }
    }
    if errors.is_empty() {
        Ok((items, skipped))
    } else {
        Err(errors)
    }
}

/// `POST /api/{schools,classrooms,teachers}/import`.
pub(crate) async fn import(
    st: &SchoolState,
    p: &Principal,
    which: &'static str,
    body: Body,
    dry_run: bool,
) -> Result<Response, ApiError> {
    let rules = Rules {
        scope: access::admin_scope(p)?.clone(),
        places: Places::load(&st.store).await?,
    };
    let bytes = csvio::read_csv(body).await?;
    let names = Names::load(st).await?;
    let sheet = sheet::sheet(which)
        .ok_or_else(|| ApiError::internal(format!("no spreadsheet `{which}`")))?;
    let (n_rows, checked) = csvio::blocking(move || {
        let (n_rows, checked) = match which {
            "schools" => {
                let rows = sheet.read::<SchoolRow>(&bytes)?;
                (rows.len(), check_schools(&rows, &names, &rules))
            }
            "classrooms" => {
                let rows = sheet.read::<ClassroomRow>(&bytes)?;
                (rows.len(), check_classrooms(&rows, &names, &rules))
            }
            _ => {
                let rows = sheet.read::<TeacherRow>(&bytes)?;
                (rows.len(), check_teachers(&rows, &names, &rules))
            }
        };
        Ok((n_rows, checked.map_err(csvio::rejected)?))
    })
    .await?;
    let (items, skipped) = checked;
    let mut tx = st.store.begin().await?;
    for (no, item) in &items {
        let done = match item {
            Item::School(x) => model::insert_in(&mut tx, x).await.map(|_| ()),
            Item::Classroom(x) => model::insert_in(&mut tx, x).await.map(|_| ()),
            Item::Teacher(x) => model::insert_in(&mut tx, x).await.map(|_| ()),
        };
        match done {
            Ok(()) => {}
            // Stored by someone else since the check.
            Err(StoreError::Duplicate(_)) => {
                return Err(csvio::rejected(Errors::one(RowError {
                    row: *no,
                    column: String::new(),
                    message: "already there (stored while this file was checked)".into(),
                })))
            }
            Err(e) => return Err(e.into()),
        }
    }
    if dry_run {
        drop(tx);
    } else {
        tx.commit().await.map_err(StoreError::from)?;
        model::audit(
            &st.store,
            st.now(),
            &p.ident(),
            &format!("{which}-imported"),
            which,
            &format!("{} stored, {} already there", items.len(), skipped.len()),
        )
        .await?;
    }
    Ok(axum::Json(ImportResult {
        imported: items.len(),
        skipped,
        rows: n_rows,
        dry_run,
    })
    .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn names() -> Names {
        let school = |id, code: &str| School {
            id,
            code: code.into(),
            name: format!("{code}校"),
            kind: SchoolKind::Hub,
            region_id: Some(1),
            max_master_sites: 500,
            area: Default::default(),
            record_lessons: model::OnOff(true),
            retention_days: None,
            max_video_layer: None,
        };
        Names {
            schools: [school(1, "H01"), school(2, "P01")]
                .into_iter()
                .map(|s| (s.code.clone(), s))
                .collect(),
            regions: vec![Region {
                id: 1,
                province: "四川省".into(),
                city: "凉山州".into(),
                county: "昭觉县".into(),
            }],
            classrooms: HashMap::new(),
            teachers: HashMap::new(),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: std::env::var("PROPTEST_CASES").map_or(10_000, |_| ProptestConfig::default().cases),
            ..ProptestConfig::default()
        })]

        /// Any text under any importer's header: rows or a bounded list of row problems,
        /// never a panic; nothing checked is outside the (school-level) admin's school.
        #[test]
        fn any_rows_give_items_or_row_problems(
            which in 0..3usize,
            body in "([HP]01|学校|[a-z0-9 ,，、\n\"]|主讲学校|互动教室|四川省|昭觉县){0,60}",
        ) {
            let sheet = sheet::sheet(["schools", "classrooms", "teachers"][which]).unwrap();
            let header: Vec<&str> = sheet.columns.iter().map(|c| c.zh[0]).collect();
            let text = format!("{}\n{body}", header.join(","));
            let rules = Rules {
                scope: Scope {
                    level: Level::School,
                    place: Place { school_id: Some(1), ..Place::default() },
                },
                places: Places::default(),
            };
            let n = names();
            let checked = match which {
                0 => sheet.read::<SchoolRow>(text.as_bytes()).map(|r| check_schools(&r, &n, &rules)),
                1 => sheet.read::<ClassroomRow>(text.as_bytes()).map(|r| check_classrooms(&r, &n, &rules)),
                _ => sheet.read::<TeacherRow>(text.as_bytes()).map(|r| check_teachers(&r, &n, &rules)),
            };
            match checked {
                Err(e) => prop_assert!(e.status.is_client_error()),
                Ok(Err(e)) => prop_assert!(e.listed.len() <= e.count && e.count > 0),
                Ok(Ok((items, _))) => {
                    for (_, i) in items {
                        match i {
                            // A school-level admin never adds a school.
                            Item::School(_) => prop_assert!(false, "school added by a school admin"),
                            Item::Classroom(c) => prop_assert_eq!(c.school_id, 1),
                            Item::Teacher(t) => prop_assert_eq!(t.school_id, 1),
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn areas_in_both_languages() {
        assert_eq!(school_area("城镇"), Some(SchoolArea::Urban));
        assert_eq!(school_area(" Urban "), Some(SchoolArea::Urban));
        assert_eq!(school_area("乡村"), Some(SchoolArea::Rural));
        assert_eq!(school_area("农村"), Some(SchoolArea::Rural));
        assert_eq!(school_area(""), Some(SchoolArea::Unknown));
        assert_eq!(school_area("郊区"), None);
    }

    /// The area column under a Chinese header is stored with the school; a row whose area
    /// is not urban or rural is refused by row and column; a row already there with no area
    /// given is still the same school (skipped), one with another area is refused.
    #[test]
    fn the_area_column_is_read() {
        let sheet = sheet::sheet("schools").unwrap();
        let rules = Rules {
            scope: Scope {
                level: Level::Global,
                place: Place::default(),
            },
            places: Places::default(),
        };
        let text = "学校代码,学校名称,类型,城乡\nR01,乡村小学,接收学校,乡村\nU01,城关小学,主讲学校,城镇\nX01,某校,接收学校,\n";
        let rows = sheet.read::<SchoolRow>(text.as_bytes()).unwrap();
        let (items, _) = check_schools(&rows, &names(), &rules).unwrap();
        let areas: Vec<(String, SchoolArea)> = items
            .iter()
            .map(|(_, i)| match i {
                Item::School(s) => (s.code.clone(), s.area),
                _ => unreachable!("schools only"),
            })
            .collect();
        assert_eq!(
            areas,
            vec![
                ("R01".into(), SchoolArea::Rural),
                ("U01".into(), SchoolArea::Urban),
                ("X01".into(), SchoolArea::Unknown)
            ]
        );
        let bad = "学校代码,学校名称,类型,城乡\nR01,乡村小学,接收学校,郊区\n";
        let rows = sheet.read::<SchoolRow>(bad.as_bytes()).unwrap();
        let Err(e) = check_schools(&rows, &names(), &rules) else {
            panic!("郊区 is not an area");
        };
        assert_eq!(e.listed[0].column, "area");
        assert_eq!(e.listed[0].row, 2);
        // H01 is stored (unknown area, region 1): without an area it is the same school.
        let same = "学校代码,学校名称,类型,省,市,县\nH01,H01校,主讲学校,四川省,凉山州,昭觉县\n";
        let rows = sheet.read::<SchoolRow>(same.as_bytes()).unwrap();
        let (items, skipped) = check_schools(&rows, &names(), &rules).unwrap();
        assert!(items.is_empty());
        assert_eq!(skipped.len(), 1);
        let other =
            "学校代码,学校名称,类型,省,市,县,城乡\nH01,H01校,主讲学校,四川省,凉山州,昭觉县,城镇\n";
        let rows = sheet.read::<SchoolRow>(other.as_bytes()).unwrap();
        assert!(check_schools(&rows, &names(), &rules).is_err());
    }

    #[test]
    fn kinds_in_both_languages() {
        assert_eq!(school_kind("主讲学校"), Some(SchoolKind::Hub));
        assert_eq!(school_kind("Partner"), Some(SchoolKind::Partner));
        assert_eq!(school_kind("教学点"), Some(SchoolKind::Partner));
        assert_eq!(school_kind("x"), None);
        assert_eq!(classroom_kind("互动教室"), Some(ClassroomKind::Interactive));
        assert_eq!(
            classroom_kind("receive-only"),
            Some(ClassroomKind::ReceiveOnly)
        );
        assert_eq!(classroom_kind(""), None);
    }
}
