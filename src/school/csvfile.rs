//! Reading and writing one CSV file safely, whatever it will hold: the size and row limits,
//! the encodings district spreadsheets come in (UTF-8, UTF-16, GBK), formula quoting, row
//! numbers as a spreadsheet shows them, rows into serde structs, and the row/column error
//! report. Knows no school rows and never touches the store.

use std::collections::HashMap;

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::problem::ApiError;

/// Largest CSV file accepted (bytes, before decoding); a larger body is refused with 413
/// `body-too-large`.
pub(crate) const MAX_CSV_BYTES: usize = 4 << 20;

/// Most data rows one import may have; more is refused with 413 `csv-too-many-rows`.
pub(crate) const MAX_CSV_ROWS: usize = 20_000;

/// Most problems a rejected import lists (`errors`); `error_count` counts all of them.
pub(crate) const MAX_LISTED_ERRORS: usize = 100;

/// One problem in an import.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub(crate) struct RowError {
    /// Row number as a spreadsheet shows it (header = 1).
    pub row: usize,
    /// Column name.
    pub column: String,
    /// What is wrong.
    pub message: String,
}

/// The problems of one import: the first [`MAX_LISTED_ERRORS`] in row order, and how many
/// there were in all (a file of bad rows must not make a response as large as the file).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Errors {
    /// The first [`MAX_LISTED_ERRORS`], in row order.
    pub(crate) listed: Vec<RowError>,
    /// How many in all.
    pub(crate) count: usize,
}

impl Errors {
    pub(crate) fn one(e: RowError) -> Errors {
        let mut x = Errors::default();
        x.push(e);
        x
    }

    /// Counts `e`, and keeps it while fewer than [`MAX_LISTED_ERRORS`] are kept. Callers push
    /// in row order, so the kept ones are the first rows'.
    pub(crate) fn push(&mut self, e: RowError) {
        self.count += 1;
        if self.listed.len() < MAX_LISTED_ERRORS {
            self.listed.push(e);
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Both sets, listed in row order (stable: within a row, `self`'s first); each set was
    /// pushed in row order, so the first [`MAX_LISTED_ERRORS`] of the two are kept.
    pub(crate) fn merge(mut self, other: Errors) -> Errors {
        self.count += other.count;
        self.listed.extend(other.listed);
        self.listed.sort_by_key(|e| e.row);
        self.listed.truncate(MAX_LISTED_ERRORS);
        self
    }
}

/// Why a file was refused before its rows were checked against the directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Rejection {
    /// Bad header or unreadable rows.
    Rows(Errors),
    /// More than [`MAX_CSV_ROWS`] data rows.
    TooManyRows,
}

impl From<Rejection> for ApiError {
    fn from(r: Rejection) -> ApiError {
        match r {
            Rejection::Rows(e) => rejected(e),
            Rejection::TooManyRows => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "csv-too-many-rows",
                format!(
                    "the CSV has more than {MAX_CSV_ROWS} rows; nothing was imported \
                     (split the file)"
                ),
            )
            .with("max_rows", MAX_CSV_ROWS.into()),
        }
    }
}

pub(crate) fn rejected(errors: Errors) -> ApiError {
    let n = errors.count;
    let first = errors
        .listed
        .first()
        .map(|e| format!("row {}, column {}: {}", e.row, e.column, e.message))
        .unwrap_or_default();
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "csv-rejected",
        format!("{n} problem(s); nothing was imported. First: {first}"),
    )
    .with(
        "errors",
        serde_json::to_value(errors.listed).unwrap_or_default(),
    )
    .with("error_count", n.into())
}

/// Whether a spreadsheet would take `cell` as a formula once one leading `'` is removed
/// from it: it starts, after any `'`s, with `=`, `+`, `-`, `@`, TAB or CR (OWASP's list),
/// or NUL (added by OWASP ASVS 5, requirement 1.2.10).
fn formula_like(cell: &str) -> bool {
    cell.trim_start_matches('\'')
        .starts_with(['=', '+', '-', '@', '\t', '\r', '\0'])
}

/// A cell as exported: `'` in front of anything a spreadsheet would run as a formula
/// (`=HYPERLINK(..)`, but also `-1` and `@x`: OWASP's advice is to quote them all; the
/// columns that are numbers, weekday and period, are never negative). A cell that already
/// starts with `'`s before such text gets one more, so [`import_cell`] gives back exactly
/// what was stored.
fn export_cell(cell: String) -> String {
    if formula_like(&cell) {
        format!("'{cell}")
    } else {
        cell
    }
}

/// A cell as imported: the `'` that [`export_cell`] (or a careful person) put in front of
/// formula-like text is taken off; any other leading `'` is data.
fn import_cell(cell: &str) -> &str {
    match cell.strip_prefix('\'') {
        Some(rest) if formula_like(rest) => rest,
        _ => cell,
    }
}

pub(crate) fn csv_response(name: &str, body: Vec<u8>) -> Response {
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

pub(crate) async fn read_csv(body: Body) -> Result<axum::body::Bytes, ApiError> {
    axum::body::to_bytes(body, MAX_CSV_BYTES)
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body-too-large",
                format!("the CSV is larger than the limit of {MAX_CSV_BYTES} bytes (4 MiB)"),
            )
            .with("max_bytes", MAX_CSV_BYTES.into())
        })
}

/// Runs CPU-bound import work (decoding, parsing, checking up to [`MAX_CSV_ROWS`] rows) on
/// the blocking pool, off the async runtime's threads.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(ApiError::internal)?
}

/// The file as text. UTF-8 (with or without a byte-order mark) as it is; a file with a
/// UTF-16 byte-order mark decoded as such; otherwise, if the bytes are not UTF-8, they are
/// read as GB18030 (which includes GBK: what Chinese Excel and WPS save as "CSV"). Bytes
/// that are valid as both are read as GB18030 only when the UTF-8 reading holds characters
/// no school sheet would (see [`plausible`]) and the GB18030 reading does not.
pub(crate) fn decode(bytes: &[u8]) -> Result<String, ApiError> {
    let refuse = |what: &str| {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "bad-encoding",
            format!("the CSV is not valid {what}; save it as \"CSV UTF-8\""),
        )
    };
    if let Some((enc, bom)) = encoding_rs::Encoding::for_bom(bytes) {
        return enc
            .decode_without_bom_handling_and_without_replacement(&bytes[bom..])
            .map(|s| s.into_owned())
            .ok_or_else(|| refuse(enc.name()));
    }
    if let Ok(s) = std::str::from_utf8(bytes) {
        // Short GBK text can also be valid UTF-8 ("校" is D0 A3, UTF-8 for "У"). No crate
        // settles that (chardetng guesses legacy encodings but takes valid UTF-8 as UTF-8),
        // so: where the UTF-8 reading has characters a Chinese school spreadsheet would not
        // hold and the GB18030 reading has none, the file is GBK.
        // (Accented Latin letters count for the UTF-8 reading: "José" or pinyin with tones
        // must stay UTF-8, though GB18030 would read them as 茅 or 菤.)
        if !s
            .chars()
            .all(|c| plausible(c) || ('\u{c0}'..='\u{24f}').contains(&c))
        {
            if let Some(g) = encoding_rs::GB18030
                .decode_without_bom_handling_and_without_replacement(bytes)
                .filter(|g| g.chars().all(plausible))
            {
                return Ok(g.into_owned());
            }
        }
        return Ok(s.to_owned());
    }
    encoding_rs::GB18030
        .decode_without_bom_handling_and_without_replacement(bytes)
        .map(|s| s.into_owned())
        .ok_or_else(|| refuse("UTF-8, nor GBK/GB18030"))
}

/// Whether `c` is a character a Chinese school spreadsheet holds: ASCII, CJK ideographs,
/// CJK and full-width punctuation, general punctuation (“”…—), the middle dot, circled
/// numbers. Used only to choose between two valid readings of the same bytes.
fn plausible(c: char) -> bool {
    matches!(c,
        '\0'..='\u{7f}'
        | '\u{b7}'
        | '\u{2000}'..='\u{206f}'
        | '\u{2460}'..='\u{24ff}'
        | '\u{3000}'..='\u{303f}'
        | '\u{3400}'..='\u{4dbf}'
        | '\u{4e00}'..='\u{9fff}'
        | '\u{ff00}'..='\u{ffef}')
}

/// A data row: its number and its cells by (lowercase) column name.
pub(crate) type CsvRow = (usize, HashMap<String, String>);

/// [`parse_as`] into a map of cells by column name.
#[cfg(test)]
pub(crate) fn parse(
    text: &str,
    required: &[&'static str],
    optional: &[&'static str],
) -> Result<Vec<CsvRow>, Rejection> {
    parse_as(text, required, optional)
}

/// Parses a CSV with the given required (and optional) columns into rows of `T` (a
/// `#[derive(Deserialize)]` struct whose fields are those columns, or a map), each with its
/// row number. Header names are matched without case; other columns are ignored, and of a
/// column named twice the last is read. At most [`MAX_CSV_ROWS`] rows are read: the work is
/// linear in the file's size. (The importers read through [`parse_aliased`].)
#[cfg(test)]
pub(crate) fn parse_as<T: DeserializeOwned>(
    text: &str,
    required: &[&'static str],
    optional: &[&'static str],
) -> Result<Vec<(usize, T)>, Rejection> {
    parse_aliased(text, required, optional, &[])
}

/// A header cell as matched: trimmed, lowercase, a trailing `*` (a template's "required"
/// mark) taken off.
fn header_name(h: &str) -> String {
    h.trim().trim_end_matches(['*', '＊']).trim().to_lowercase()
}

/// [`parse_as`] where a header cell may also be one of `aliases` (`(alias, column)`: the
/// Chinese headers of `super::sheet`), matched the same way.
pub(crate) fn parse_aliased<T: DeserializeOwned>(
    text: &str,
    required: &[&'static str],
    optional: &[&'static str],
    aliases: &[(&'static str, &'static str)],
) -> Result<Vec<(usize, T)>, Rejection> {
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let headers: Vec<String> = match rdr.headers() {
        Ok(h) => h
            .iter()
            .map(|s| {
                let h = header_name(s);
                aliases
                    .iter()
                    .find(|(a, _)| header_name(a) == h)
                    .map_or(h, |(_, c)| c.to_string())
            })
            .collect(),
        Err(e) => {
            return Err(Rejection::Rows(Errors::one(RowError {
                row: 1,
                column: String::new(),
                message: format!("unreadable header: {e}"),
            })))
        }
    };
    let mut missing = Errors::default();
    for c in required.iter().filter(|c| !headers.iter().any(|h| h == *c)) {
        missing.push(RowError {
            row: 1,
            column: c.to_string(),
            message: match aliases.iter().find(|(_, col)| col == c) {
                Some((zh, _)) => format!("column missing from the header (in Chinese: {zh})"),
                None => "column missing from the header".into(),
            },
        });
    }
    if !missing.is_empty() {
        return Err(Rejection::Rows(missing));
    }
    // Each header cell as one of our column names (a column we don't know is ignored).
    let columns: Vec<Option<&'static str>> = headers
        .iter()
        .map(|h| required.iter().chain(optional).find(|c| **c == h).copied())
        .collect();
    // The names rows are read by: ours, where the header names one of our columns for the
    // last time; empty (ignored) elsewhere.
    let names: csv::StringRecord = columns
        .iter()
        .enumerate()
        .map(|(i, c)| match c {
            Some(c) if !columns[i + 1..].contains(&Some(*c)) => *c,
            _ => "",
        })
        .collect();
    let mut rows = Vec::new();
    let mut errors = Errors::default();
    let mut records = 0usize;
    let mut last = 1usize;
    let bytes = text.as_bytes();
    // Newlines in `bytes[..counted]` plus one: the line `counted` is on. Records come in
    // file order, so counting on from the last record keeps the whole file linear.
    let (mut counted, mut line) = (0usize, 1usize);
    for rec in rdr.records() {
        records += 1;
        if records > MAX_CSV_ROWS {
            return Err(Rejection::TooManyRows);
        }
        // The csv reader skips blank lines (and does not count them in its line numbers),
        // so the row a district office sees in its spreadsheet is found from the record's
        // byte offset.
        let row = match &rec {
            Ok(r) => r.position(),
            Err(e) => e.position(),
        }
        .map(|p| {
            // A record's position may point at the blank lines before it.
            let start = usize::try_from(p.byte())
                .unwrap_or(usize::MAX)
                .min(bytes.len());
            let skip = bytes[start..]
                .iter()
                .take_while(|b| matches!(b, b'\r' | b'\n'))
                .count();
            let at = start + skip;
            if at < counted {
                // Not expected (positions only grow); count again from the start.
                (counted, line) = (0, 1);
            }
            line += bytes[counted..at].iter().filter(|b| **b == b'\n').count();
            counted = at;
            line
        })
        .unwrap_or(last + 1);
        last = row;
        match rec {
            Ok(r) => {
                if r.iter().all(|c| c.is_empty()) {
                    continue;
                }
                // One cell per header name: a short row's missing cells are empty, a long
                // row's extra cells are not read.
                let cells: csv::StringRecord = r
                    .iter()
                    .map(import_cell)
                    .chain(std::iter::repeat(""))
                    .take(names.len())
                    .collect();
                match cells.deserialize::<T>(Some(&names)) {
                    Ok(v) => rows.push((row, v)),
                    Err(e) => errors.push(RowError {
                        row,
                        column: match e.kind() {
                            csv::ErrorKind::Deserialize { err, .. } => err
                                .field()
                                .and_then(|f| names.get(usize::try_from(f).ok()?)),
                            _ => None,
                        }
                        .unwrap_or_default()
                        .to_string(),
                        message: format!("unreadable row: {e}"),
                    }),
                }
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
        Err(Rejection::Rows(errors))
    }
}
pub(crate) fn write_rows(header: &[&str], rows: Vec<Vec<String>>) -> Result<Vec<u8>, ApiError> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(header).map_err(ApiError::internal)?;
    for r in rows {
        w.write_record(r.into_iter().map(export_cell))
            .map_err(ApiError::internal)?;
    }
    w.into_inner().map_err(ApiError::internal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_reports_missing_columns_and_bad_rows() {
        let e = parse("a,b\n1,2\n", &["a", "c"], &[]).unwrap_err();
        assert_eq!(
            e,
            Rejection::Rows(Errors::one(RowError {
                row: 1,
                column: "c".into(),
                message: "column missing from the header".into()
            }))
        );
        let rows = parse("A, B,z\n 1 ,2,3\n\n3,4\n", &["a"], &["b"]).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1].0, 4, "row numbers count the header and blank lines");
        assert_eq!(rows[0].1["a"], "1");
        assert_eq!(rows[0].1["b"], "2");
        assert!(!rows[0].1.contains_key("z"), "unknown columns are not kept");
        assert!(parse("a\n", &["a"], &[]).is_err(), "no rows");
    }

    #[test]
    fn row_limit_counts_records() {
        let ok = format!("a\n{}", "x\n".repeat(MAX_CSV_ROWS));
        assert_eq!(parse(&ok, &["a"], &[]).unwrap().len(), MAX_CSV_ROWS);
        let over = format!("a\n{}", "x\n".repeat(MAX_CSV_ROWS + 1));
        assert_eq!(parse(&over, &["a"], &[]), Err(Rejection::TooManyRows));
    }

    #[test]
    fn errors_keep_the_first_rows_and_count_all() {
        let mut a = Errors::default();
        let mut b = Errors::default();
        let e = |row| RowError {
            row,
            column: String::new(),
            message: String::new(),
        };
        for row in 2..300 {
            a.push(e(row));
        }
        b.push(e(3));
        b.push(e(500));
        let m = a.merge(b);
        assert_eq!(m.count, 300);
        assert_eq!(m.listed.len(), MAX_LISTED_ERRORS);
        let rows: Vec<usize> = m.listed.iter().map(|e| e.row).collect();
        assert_eq!(&rows[..4], &[2, 3, 3, 4]);
        assert_eq!(rows[99], 100);
    }

    #[test]
    fn formula_cells_are_quoted_and_unquoted() {
        for (stored, exported) in [
            ("=1+1", "'=1+1"),
            ("+1", "'+1"),
            ("-1", "'-1"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\tx", "'\tx"),
            ("\rx", "'\rx"),
            ("\0x", "'\0x"),
            ("'=x", "''=x"),
            ("'x", "'x"),
            ("英语", "英语"),
            ("", ""),
            ("'", "'"),
        ] {
            assert_eq!(export_cell(stored.into()), exported);
            assert_eq!(import_cell(exported), stored);
        }
        assert_eq!(import_cell("'=typed by hand"), "=typed by hand");
    }

    #[test]
    fn decodes_utf8_bom_utf16_and_gbk_and_refuses_the_rest() {
        assert_eq!(decode(b"\xEF\xBB\xBFa,b").unwrap(), "a,b");
        assert_eq!(decode("a,英语".as_bytes()).unwrap(), "a,英语");
        assert_eq!(decode(b"\xFF\xFEa\0,\0b\0").unwrap(), "a,b");
        let (gbk, _, _) = encoding_rs::GBK.encode("term,英语,周一");
        assert_eq!(decode(&gbk).unwrap(), "term,英语,周一");
        // GBK bytes that are valid UTF-8 too: "校" is D0 A3, which UTF-8 reads as "У".
        for text in ["校", "a,校", "学校代码,校"] {
            let (gbk, _, _) = encoding_rs::GBK.encode(text);
            assert_eq!(decode(&gbk).unwrap(), text);
        }
        for text in ["José,Lǚ", "Zoë,学校"] {
            assert_eq!(
                decode(text.as_bytes()).unwrap(),
                text,
                "accented names stay UTF-8"
            );
        }
        let e = decode(b"a,\xFF\xFF").unwrap_err();
        assert_eq!(e.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert_eq!(e.kind, "bad-encoding");
    }
}
