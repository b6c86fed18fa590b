//! Spreadsheets as district offices have them: every importer's columns with their Chinese
//! header aliases (one table, [`SHEETS`], that also makes the templates and the docs), an
//! uploaded file turned into the CSV text the importers read (CSV in UTF-8 with or without a
//! BOM, UTF-16 or GBK/GB18030 through [`csvfile::decode`]; `.xlsx` read directly with
//! calamine), and the downloadable templates (CSV with a UTF-8 BOM so Excel opens it, and
//! `.xlsx`). Knows no school rows and never touches the store; never allocates by what a file
//! claims about itself (a workbook's unpacked size and its rows and columns are bounded first).

use std::io::{Cursor, Read, Seek};

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

use super::csvfile::{self, Rejection, MAX_CSV_ROWS};
use crate::problem::ApiError;

/// One column of an importer: its English name (what the API and exports use), the Chinese
/// headers accepted for it (the first is the template's), whether a row needs it, and an
/// example cell for the template's notes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Column {
    /// The English name.
    pub name: &'static str,
    /// Chinese headers accepted for it; the first is written in templates.
    pub zh: &'static [&'static str],
    /// Must the header have it.
    pub required: bool,
    /// An example cell.
    pub example: &'static str,
    /// What goes in it (for the template's notes sheet).
    pub note: &'static str,
}

/// One importer's spreadsheet.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sheet {
    /// Its name in routes (`/api/{name}/import`, `/api/templates/{name}.csv`).
    pub name: &'static str,
    /// What it is called in Chinese (the template's sheet name).
    pub title: &'static str,
    /// Its columns, in template order.
    pub columns: &'static [Column],
}

const fn col(
    name: &'static str,
    zh: &'static [&'static str],
    required: bool,
    example: &'static str,
    note: &'static str,
) -> Column {
    Column {
        name,
        zh,
        required,
        example,
        note,
    }
}

/// Every importer's columns. The Chinese headers are what district spreadsheets use; any of
/// them, or the English name, is accepted (without case, a trailing `*` ignored).
/// (One column a line, as a table: rustfmt would spread each over seven.)
#[rustfmt::skip]
pub(crate) const SHEETS: &[Sheet] = &[
    Sheet {
        name: "schools",
        title: "学校",
        columns: &[
            col("code", &["学校代码", "学校编码", "学校编号", "代码"], true, "HUB001", "学校代码（唯一） / the school code (unique)"),
            col("name", &["学校名称", "学校", "名称"], true, "城关第一小学", "学校名称 / name"),
            col("kind", &["类型", "学校类型"], true, "主讲学校", "主讲学校（hub）或 接收学校（partner）"),
            col("province", &["省", "省份"], false, "甘肃省", "省（须先有该地区） / province of an existing region"),
            col("city", &["市", "市州", "地市"], false, "定西市", "市 / city"),
            col("county", &["县", "区县", "县区"], false, "通渭县", "县 / county"),
            col("max_master_sites", &["名师课堂最多站点"], false, "500", "名师课堂最多接收站点，默认 500"),
            col("area", &["城乡", "城乡类别", "城乡属性", "所在地类别"], false, "乡村", "城镇（urban）或 乡村（rural），抽检分层用；不填为未知"),
        ],
    },
    Sheet {
        name: "classrooms",
        title: "教室",
        columns: &[
            col("school_code", &["学校代码", "学校编码", "学校"], true, "PT001", "学校代码或学校名称 / school code or name"),
            col("name", &["教室名称", "教室", "班级", "名称"], true, "五年级(1)班", "教室名称（本校内唯一）"),
            col("kind", &["类型", "教室类型"], true, "互动教室", "主讲教室 / 互动教室 / 接收教室"),
            col("device", &["设备", "终端", "设备型号"], false, "希沃一体机", "设备（可空）"),
        ],
    },
    Sheet {
        name: "teachers",
        title: "教师",
        columns: &[
            col("code", &["教师编号", "工号", "教师代码", "编号"], true, "T001", "工号（唯一）"),
            col("name", &["姓名", "教师姓名", "教师"], true, "王丽", "姓名"),
            col("school_code", &["学校代码", "学校编码", "学校"], true, "HUB001", "学校代码或学校名称"),
            col("subjects", &["学科", "任教学科"], false, "数学,科学", "任教学科（逗号分隔，可空）"),
        ],
    },
    Sheet {
        name: "users",
        title: "用户",
        columns: &[
            col("username", &["用户名", "账号", "登录名"], true, "wangli", "登录名（唯一）"),
            col("display_name", &["姓名", "显示名称"], true, "王丽", "姓名"),
            col("role", &["角色"], true, "教师", "管理员 / 教师 / 观课 / 督导（admin, teacher, observer, inspector）"),
            col("scope", &["范围", "管理范围", "层级"], true, "学校", "学校 / 县 / 市 / 省 / 全部（school, county, city, province, global）"),
            col("school_code", &["学校代码", "学校编码", "学校"], false, "HUB001", "范围为学校时的学校代码"),
            col("province", &["省", "省份"], false, "", "范围为省/市/县时"),
            col("city", &["市", "市州"], false, "", "范围为市/县时"),
            col("county", &["县", "区县"], false, "", "范围为县时"),
            col("teacher_code", &["教师编号", "工号"], false, "T001", "教师账号对应的工号"),
            col("disabled", &["停用", "禁用"], false, "否", "是 / 否"),
        ],
    },
    Sheet {
        name: "pairings",
        title: "结对",
        columns: &[
            col("hub_school_code", &["主讲学校代码", "主讲学校", "主讲校"], true, "HUB001", "主讲学校代码"),
            col("partner_school_code", &["接收学校代码", "接收学校", "结对学校", "接收校"], true, "PT001", "接收学校代码"),
            col("subject", &["学科"], true, "数学", "学科"),
            col("grade", &["年级"], true, "五年级", "年级"),
            col("term", &["学期"], true, "2026秋", "学期（名称）"),
            col("owner", &["负责人", "联系人"], false, "王丽", "负责人（可空）"),
        ],
    },
    Sheet {
        name: "timetable",
        title: "课表",
        columns: &[
            col("term", &["学期"], true, "2026秋", "学期名称（须已存在）"),
            col("weekday", &["星期", "周次", "上课日"], true, "周五", "周一…周日 或 1–7"),
            col("period", &["节次", "第几节", "节"], true, "5", "节次 1–20"),
            col("starts", &["开始时间", "开始", "上课时间"], true, "12:50", "HH:MM"),
            col("ends", &["结束时间", "结束", "下课时间"], true, "13:30", "HH:MM"),
            col("subject", &["学科", "课程"], true, "数学", "学科"),
            col("grade", &["年级"], true, "五年级", "年级"),
            col("mode", &["模式", "课堂类型", "类型"], true, "专递课堂", "专递课堂 / 名师课堂 / 同步课堂"),
            col("hub_teacher_code", &["主讲教师编号", "主讲教师", "教师编号", "教师"], true, "T001", "主讲教师工号"),
            col("hub_classroom", &["主讲教室"], true, "HUB001/录播教室", "学校代码/教室名称"),
            col("sites", &["接收教室", "听课教室", "班级"], true, "PT001/五年级(1)班;PT002/复式班", "学校代码/教室名称，多个用 ; 分隔，可加 @辅助教师工号"),
        ],
    },
];

/// The sheet of importer `name`.
pub(crate) fn sheet(name: &str) -> Option<&'static Sheet> {
    SHEETS.iter().find(|s| s.name == name)
}

impl Sheet {
    /// The columns a header must have.
    pub(crate) fn required(&self) -> Vec<&'static str> {
        self.columns
            .iter()
            .filter(|c| c.required)
            .map(|c| c.name)
            .collect()
    }

    /// The columns a header may have.
    pub(crate) fn optional(&self) -> Vec<&'static str> {
        self.columns
            .iter()
            .filter(|c| !c.required)
            .map(|c| c.name)
            .collect()
    }

    /// Every accepted header (lowercase) with the column it names.
    pub(crate) fn aliases(&self) -> Vec<(&'static str, &'static str)> {
        self.columns
            .iter()
            .flat_map(|c| c.zh.iter().map(move |z| (*z, c.name)))
            .collect()
    }

    /// Reads an uploaded file (CSV in any encoding [`csvfile::decode`] takes, or `.xlsx`)
    /// into rows of `T`, with headers in English or Chinese.
    pub(crate) fn read<T: DeserializeOwned>(
        &self,
        bytes: &[u8],
    ) -> Result<Vec<(usize, T)>, ApiError> {
        let text = to_text(bytes)?;
        Ok(csvfile::parse_aliased(
            &text,
            &self.required(),
            &self.optional(),
            &self.aliases(),
        )?)
    }

    /// The CSV template: a UTF-8 BOM (so Excel on Chinese Windows opens it as UTF-8) and the
    /// Chinese header line.
    pub(crate) fn template_csv(&self) -> Vec<u8> {
        let mut out = b"\xEF\xBB\xBF".to_vec();
        let header: Vec<&str> = self.columns.iter().map(|c| c.zh[0]).collect();
        out.extend_from_slice(header.join(",").as_bytes());
        out.extend_from_slice(b"\r\n");
        out
    }

    /// The `.xlsx` template: the header on a sheet of text cells (codes like `001` stay as
    /// typed), and a second sheet 说明 with each column's English name, whether it is
    /// required, an example and what goes in it.
    pub(crate) fn template_xlsx(&self) -> Result<Vec<u8>, ApiError> {
        use rust_xlsxwriter::{Format, Workbook};
        let x = |e: rust_xlsxwriter::XlsxError| ApiError::internal(e.to_string());
        let mut wb = Workbook::new();
        let bold = Format::new().set_bold();
        let text = Format::new().set_num_format("@");
        let ws = wb.add_worksheet();
        ws.set_name(self.title).map_err(x)?;
        for (i, c) in self.columns.iter().enumerate() {
            let i = u16::try_from(i).map_err(ApiError::internal)?;
            ws.write_string_with_format(0, i, c.zh[0], &bold)
                .map_err(x)?;
            ws.set_column_width(i, 18).map_err(x)?;
            ws.set_column_format(i, &text).map_err(x)?;
        }
        let notes = wb.add_worksheet();
        notes.set_name("说明").map_err(x)?;
        for (i, h) in ["列", "column", "必填", "示例", "说明"].iter().enumerate() {
            notes
                .write_string_with_format(0, i as u16, *h, &bold)
                .map_err(x)?;
        }
        for (r, c) in self.columns.iter().enumerate() {
            let r = u32::try_from(r + 1).map_err(ApiError::internal)?;
            let cells = [
                c.zh.join(" / "),
                c.name.to_string(),
                if c.required { "是" } else { "否" }.to_string(),
                c.example.to_string(),
                c.note.to_string(),
            ];
            for (i, v) in cells.iter().enumerate() {
                notes.write_string(r, i as u16, v).map_err(x)?;
            }
        }
        for (i, w) in [24.0, 20.0, 6.0, 28.0, 50.0].iter().enumerate() {
            notes.set_column_width(i as u16, *w).map_err(x)?;
        }
        wb.save_to_buffer().map_err(x)
    }
}

/// What an uploaded file is, by its first bytes (never by its name or declared type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Text: CSV in some encoding.
    Text,
    /// A ZIP file: `.xlsx` (or another Office Open XML file).
    Xlsx,
    /// An OpenDocument spreadsheet (`.ods`, WPS and LibreOffice's own format).
    Ods,
    /// An OLE compound file: an old Excel `.xls` (or an encrypted workbook).
    Xls,
}

/// What kind of file `bytes` is.
pub(crate) fn detect(bytes: &[u8]) -> Kind {
    if bytes.starts_with(b"PK\x03\x04") {
        // An OpenDocument file starts with an uncompressed `mimetype` entry.
        if bytes
            .get(30..)
            .is_some_and(|r| r.starts_with(b"mimetypeapplication/vnd.oasis.opendocument"))
        {
            Kind::Ods
        } else {
            Kind::Xlsx
        }
    } else if bytes.starts_with(b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1") {
        Kind::Xls
    } else {
        Kind::Text
    }
}

/// Most bytes a workbook may unpack to (all its parts, as unpacked), and most parts.
pub(crate) const MAX_XLSX_UNPACKED: u64 = 64 << 20;
const MAX_XLSX_ENTRIES: usize = 10_000;
/// Columns read from a workbook; cells further right are ignored.
pub(crate) const MAX_XLSX_COLUMNS: u32 = 64;

/// The uploaded file as CSV text: a CSV decoded (see [`csvfile::decode`]), an `.xlsx`'s
/// first sheet converted; an old `.xls` or an `.ods` is refused, naming the fix.
pub(crate) fn to_text(bytes: &[u8]) -> Result<String, ApiError> {
    match detect(bytes) {
        Kind::Text => csvfile::decode(bytes),
        Kind::Xlsx => xlsx_to_csv(bytes),
        Kind::Xls => Err(unsupported(
            "this is an old Excel .xls file (or an encrypted workbook); save it as \
             \"Excel 工作簿 (.xlsx)\" or \"CSV UTF-8\", without a password",
        )),
        Kind::Ods => Err(unsupported(
            "this is an OpenDocument (.ods) spreadsheet; save it as \"Excel 工作簿 (.xlsx)\" \
             or \"CSV UTF-8\"",
        )),
    }
}

fn unsupported(detail: &str) -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported-spreadsheet",
        detail.to_string(),
    )
}

fn bad_workbook(why: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "bad-workbook",
        format!(
            "the .xlsx file could not be read ({why}); open it in Excel or WPS and save it \
             again as \"Excel 工作簿 (.xlsx)\" or \"CSV UTF-8\""
        ),
    )
}

/// Unpacks every part of the workbook into nothing, counting, before calamine reads it: the
/// sizes a ZIP directory declares are not enforced by the zip crate, and a 4 MiB upload can
/// inflate a thousandfold. Stops at [`MAX_XLSX_UNPACKED`] bytes in all.
fn check_zip<R: Read + Seek>(r: R) -> Result<(), ApiError> {
    check_zip_within(r, MAX_XLSX_UNPACKED)
}

fn check_zip_within<R: Read + Seek>(r: R, max: u64) -> Result<(), ApiError> {
    let mut zip = zip::ZipArchive::new(r).map_err(bad_workbook)?;
    if zip.len() > MAX_XLSX_ENTRIES {
        return Err(bad_workbook("too many parts"));
    }
    let mut total = 0u64;
    for i in 0..zip.len() {
        let f = zip.by_index(i).map_err(bad_workbook)?;
        let left = max - total;
        total +=
            std::io::copy(&mut f.take(left + 1), &mut std::io::sink()).map_err(bad_workbook)?;
        if total > max {
            break;
        }
    }
    if total > max {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body-too-large",
            format!(
                "the workbook unpacks to more than {} MiB; split it, or save it as CSV",
                max >> 20
            ),
        ));
    }
    Ok(())
}

/// The first sheet of an `.xlsx` as CSV text, one line per spreadsheet row (so row numbers
/// in errors are the ones Excel shows: leading empty rows are kept as empty lines, and a
/// line break inside a cell becomes a space).
///
/// Read cell by cell with calamine's streaming reader rather than as a `Range`: a range is
/// allocated from the first to the last cell, and a file with cells in A1 and XFD1048576
/// would ask for 17 billion of them.
fn xlsx_to_csv(bytes: &[u8]) -> Result<String, ApiError> {
    use calamine::Reader;
    check_zip(Cursor::new(bytes))?;
    let mut wb: calamine::Xlsx<_> =
        calamine::Xlsx::new(Cursor::new(bytes)).map_err(bad_workbook)?;
    let Some(first) = wb.sheet_names().first().cloned() else {
        return Err(bad_workbook("it has no sheet"));
    };
    let mut cells = wb.worksheet_cells_reader(&first).map_err(bad_workbook)?;
    let mut rows: Vec<Vec<String>> = Vec::new();
    while let Some(cell) = cells.next_cell().map_err(bad_workbook)? {
        let (r, c) = cell.get_position();
        if c >= MAX_XLSX_COLUMNS {
            continue;
        }
        let v = cell_text(cell.get_value());
        if v.is_empty() {
            continue;
        }
        // The header and MAX_CSV_ROWS data rows, plus a little room for blank rows; a row
        // beyond that means more rows than an import takes.
        let r = r as usize;
        if r > MAX_CSV_ROWS + 1_000 {
            return Err(Rejection::TooManyRows.into());
        }
        if rows.len() <= r {
            rows.resize_with(r + 1, Vec::new);
        }
        let row = &mut rows[r];
        let c = c as usize;
        if row.len() <= c {
            row.resize(c + 1, String::new());
        }
        row[c] = v;
    }
    let width = rows.iter().map(Vec::len).max().unwrap_or(0).max(1);
    let mut w = csv::WriterBuilder::new()
        .flexible(true)
        .from_writer(Vec::new());
    for mut row in rows {
        row.resize(width, String::new());
        w.write_record(&row).map_err(ApiError::internal)?;
    }
    let out = w.into_inner().map_err(ApiError::internal)?;
    String::from_utf8(out).map_err(ApiError::internal)
}

/// A cell as text, as a person reads it in Excel: whole numbers without `.0`, a time of
/// day as `HH:MM`, a date as `YYYY-MM-DD`. Line breaks become spaces.
fn cell_text(v: &calamine::DataRef<'_>) -> String {
    use calamine::DataRef as D;
    let s = match v {
        D::Empty => String::new(),
        D::Int(i) => i.to_string(),
        D::Float(f) => number(*f),
        D::String(s) => s.clone(),
        D::SharedString(s) => (*s).to_string(),
        D::Bool(b) => if *b { "1" } else { "0" }.to_string(),
        D::DateTime(d) => {
            if d.is_datetime() {
                excel_datetime(d.as_f64())
            } else {
                number(d.as_f64())
            }
        }
        D::DateTimeIso(s) | D::DurationIso(s) => s.clone(),
        D::Error(e) => format!("#{e:?}"),
    };
    if s.contains(['\r', '\n']) {
        s.replace("\r\n", " ").replace(['\r', '\n'], " ")
    } else {
        s
    }
}

fn number(f: f64) -> String {
    if f.is_finite() && f.fract() == 0.0 && f.abs() < 1e15 {
        format!("{}", f as i64)
    } else {
        f.to_string()
    }
}

/// An Excel serial date-time (days since 1899-12-30; the fraction is the time of day) as
/// `HH:MM` (under one day), `YYYY-MM-DD`, or both.
fn excel_datetime(v: f64) -> String {
    if !v.is_finite() || !(0.0..3_000_000.0).contains(&v) {
        return number(v);
    }
    let minutes = (v.fract() * 1440.0).round() as i64;
    let (days, minutes) = (v.trunc() as i64 + minutes / 1440, minutes % 1440);
    let time = format!("{:02}:{:02}", minutes / 60, minutes % 60);
    if days == 0 {
        return time;
    }
    // 1899-12-30 is Julian day 2 415 019.
    let Ok(date) = ::time::Date::from_julian_day((2_415_019 + days) as i32) else {
        return number(v);
    };
    let date = crate::time::fmt_date(date);
    if minutes == 0 {
        date
    } else {
        format!("{date} {time}")
    }
}

/// `GET /api/templates/{file}`: `{importer}.csv` or `{importer}.xlsx`.
pub(crate) fn template(file: &str) -> Result<Response, ApiError> {
    let unknown = || {
        ApiError::not_found(
            "not-found",
            format!(
                "no template `{file}`; there are {}",
                SHEETS
                    .iter()
                    .map(|s| format!("{0}.csv, {0}.xlsx", s.name))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
    };
    let (name, ext) = file.rsplit_once('.').ok_or_else(unknown)?;
    let s = sheet(name).ok_or_else(unknown)?;
    let (body, ct) = match ext {
        "csv" => (s.template_csv(), "text/csv; charset=utf-8"),
        "xlsx" => (
            s.template_xlsx()?,
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        ),
        _ => return Err(unknown()),
    };
    let mut r = (StatusCode::OK, body).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}-template.{ext}\""))
    {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(r)
}

/// The media types an upload may declare: CSV as browsers and Excel label it, and Excel
/// workbooks. A cross-site HTML form can send none of them (only `text/plain`, urlencoded
/// or multipart), so a form elsewhere cannot post a spreadsheet with an administrator's
/// cookie. What the file is, is read from its bytes ([`detect`]).
pub(crate) fn require_sheet(h: &axum::http::HeaderMap) -> Result<(), ApiError> {
    const TYPES: &[&str] = &[
        "text/csv",
        "application/csv",
        "application/vnd.ms-excel",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "application/octet-stream",
    ];
    let ct = h
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = ct.split(';').next().unwrap_or("").trim();
    if TYPES.iter().any(|t| essence.eq_ignore_ascii_case(t)) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            format!(
                "send the file as Content-Type: text/csv or \
                 application/vnd.openxmlformats-officedocument.spreadsheetml.sheet (got `{ct}`)"
            ),
        ))
    }
}

/// Whether the query asks for a dry run (`?dry_run=1` or `true`): check and count, store
/// nothing.
pub(crate) fn dry_run(q: &std::collections::HashMap<String, String>) -> bool {
    q.get("dry_run")
        .is_some_and(|v| matches!(v.as_str(), "1" | "true" | "yes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_name_known_columns_only() {
        for s in SHEETS {
            let names: Vec<&str> = s.columns.iter().map(|c| c.name).collect();
            for (alias, c) in s.aliases() {
                assert!(names.contains(&c));
                // One alias names one column of a sheet.
                assert_eq!(
                    s.aliases().iter().filter(|(a, _)| *a == alias).count(),
                    1,
                    "{}: {alias}",
                    s.name
                );
            }
        }
    }

    #[test]
    fn the_docs_name_every_column_and_header() {
        let doc = include_str!("../../docs/SPREADSHEETS.md");
        for s in SHEETS {
            assert!(doc.contains(&format!("`{}`", s.name)), "{}", s.name);
            for c in s.columns {
                assert!(doc.contains(&format!("`{}`", c.name)), "{}", c.name);
                assert!(doc.contains(&c.zh.join(" / ")), "{}: {:?}", c.name, c.zh);
            }
        }
    }

    #[test]
    fn templates_read_back_as_their_own_headers() {
        for s in SHEETS {
            let csv = s.template_csv();
            assert!(csv.starts_with(b"\xEF\xBB\xBF"));
            let text = to_text(&csv).unwrap();
            let header = csvfile::parse_aliased::<std::collections::HashMap<String, String>>(
                &format!("{text}{}\n", ",x".repeat(s.columns.len())),
                &s.required(),
                &s.optional(),
                &s.aliases(),
            );
            assert!(header.is_ok(), "{}: {header:?}", s.name);
            let x = s.template_xlsx().unwrap();
            assert_eq!(detect(&x), Kind::Xlsx);
            let text = to_text(&x).unwrap();
            assert!(text.starts_with(s.columns[0].zh[0]), "{text}");
        }
    }

    #[test]
    fn excel_times_and_dates() {
        assert_eq!(excel_datetime(0.5), "12:00");
        assert_eq!(excel_datetime(12.0 / 24.0 + 50.0 / 1440.0), "12:50");
        assert_eq!(excel_datetime(46_272.0), "2026-09-07");
        assert_eq!(excel_datetime(46_272.25), "2026-09-07 06:00");
        assert_eq!(number(5.0), "5");
        assert_eq!(number(2.5), "2.5");
    }

    #[test]
    fn a_workbook_that_inflates_past_the_limit_is_refused_before_it_is_read() {
        use std::io::Write;
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let o = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        w.start_file("xl/sharedStrings.xml", o).unwrap();
        let zeros = vec![b'0'; 1 << 16];
        for _ in 0..40 {
            w.write_all(&zeros).unwrap();
        }
        let bytes = w.finish().unwrap().into_inner();
        assert!(bytes.len() < 64 << 10, "{}", bytes.len());
        let e = check_zip_within(Cursor::new(&bytes), 2 << 20).unwrap_err();
        assert_eq!(e.status, StatusCode::PAYLOAD_TOO_LARGE);
        check_zip_within(Cursor::new(&bytes), 3 << 20).unwrap();
    }

    #[test]
    fn old_and_open_document_workbooks_are_refused_with_the_fix() {
        let e = to_text(b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1rest").unwrap_err();
        assert_eq!(e.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert!(e.detail.contains(".xlsx"), "{}", e.detail);
        let e = to_text(b"PK\x03\x04 not really a zip").unwrap_err();
        assert_eq!(e.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(e.kind, "bad-workbook");
    }
}

/// Property tests: any bytes, and any bytes behind a ZIP or OLE signature, give text or a
/// clear 4xx problem (never a panic), and text in UTF-8 (BOM or not) or GBK reads back as
/// written.
#[cfg(test)]
mod prop_tests {
    use super::*;
    use proptest::prelude::*;

    fn config() -> ProptestConfig {
        let d = ProptestConfig::default();
        ProptestConfig {
            cases: std::env::var("PROPTEST_CASES").map_or(10_000, |_| d.cases),
            ..d
        }
    }

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn any_bytes_give_text_or_a_4xx(
            prefix in prop_oneof![
                Just(Vec::new()),
                Just(b"PK\x03\x04".to_vec()),
                Just(b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1".to_vec()),
                Just(b"\xEF\xBB\xBF".to_vec()),
            ],
            rest in prop::collection::vec(any::<u8>(), 0..600),
        ) {
            let mut bytes = prefix;
            bytes.extend(rest);
            match to_text(&bytes) {
                Ok(_) => {}
                Err(e) => prop_assert!(e.status.is_client_error(), "{} {}", e.status, e.detail),
            }
        }

        #[test]
        fn utf8_bom_and_gbk_text_reads_back(
            text in "[a-z0-9,学校代码教室名称主讲接收五年级班王丽周一二三四五 ]{0,80}",
            how in 0..3u8,
        ) {
            let bytes = match how {
                0 => text.as_bytes().to_vec(),
                1 => [b"\xEF\xBB\xBF".as_slice(), text.as_bytes()].concat(),
                _ => encoding_rs::GBK.encode(&text).0.into_owned(),
            };
            prop_assert_eq!(detect(&bytes), Kind::Text);
            prop_assert_eq!(to_text(&bytes).unwrap(), text);
        }
    }

    proptest! {
        // Each case writes and reads a whole workbook (unoptimised in tests): fewer cases.
        #![proptest_config(ProptestConfig { cases: config().cases.min(500), ..config() })]

        #[test]
        fn workbook_cells_read_back(
            cells in prop::collection::vec(
                prop::collection::vec("[a-zA-Z0-9 学校教室,\"/;@]{0,12}", 1..5), 1..6),
        ) {
            let mut wb = rust_xlsxwriter::Workbook::new();
            let ws = wb.add_worksheet();
            for (r, row) in cells.iter().enumerate() {
                for (c, v) in row.iter().enumerate() {
                    ws.write_string(r as u32, c as u16, v).unwrap();
                }
            }
            let bytes = wb.save_to_buffer().unwrap();
            let text = to_text(&bytes).unwrap();
            let mut rdr = csv::ReaderBuilder::new().has_headers(false).flexible(true)
                .from_reader(text.as_bytes());
            let back: Vec<Vec<String>> = rdr.records()
                .map(|r| r.unwrap().iter().map(str::to_string).collect()).collect();
            // Trailing empty rows and cells are not in the file; what is there reads back.
            for (r, row) in cells.iter().enumerate() {
                for (c, v) in row.iter().enumerate() {
                    let got = back.get(r).and_then(|x| x.get(c)).cloned().unwrap_or_default();
                    prop_assert_eq!(&got, v);
                }
            }
        }
    }
}
