//! Property tests of the CSV importers (see the module doc in `csvio.rs`).

use super::*;
use crate::school::csvfile::{decode, parse, parse_as, Rejection, MAX_LISTED_ERRORS};
use crate::school::model::ClassroomKind;
use proptest::prelude::*;

/// 100 000 cases a property (issue 17), or `PROPTEST_CASES` for a quick run.
fn config() -> ProptestConfig {
    let d = ProptestConfig::default();
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").map_or(100_000, |_| d.cases),
        max_shrink_iters: 10_000,
        ..d
    }
}

static DIR: std::sync::LazyLock<Directory> = std::sync::LazyLock::new(directory);

/// The directory of `tests/support/school.rs`'s fixture.
fn directory() -> Directory {
    let school = |id, code: &str, kind| School {
        id,
        code: code.into(),
        name: code.into(),
        kind,
        region_id: None,
        max_master_sites: 500,
        area: Default::default(),
        record_lessons: crate::school::model::OnOff(true),
        retention_days: None,
        max_video_layer: None,
    };
    let room = |id, school_id, name: &str, kind| Classroom {
        id,
        school_id,
        name: name.into(),
        kind,
        device: String::new(),
        max_video_layer: None,
    };
    let teacher = |id, code: &str, school_id| Teacher {
        id,
        code: code.into(),
        name: code.into(),
        school_id,
        subjects: String::new(),
    };
    let schools = [
        school(1, "HUB01", SchoolKind::Hub),
        school(2, "ZJ01", SchoolKind::Partner),
        school(3, "ZJ02", SchoolKind::Partner),
    ];
    let rooms = [
        room(1, 1, "录播教室", ClassroomKind::Hub),
        room(2, 2, "三年级1班", ClassroomKind::Interactive),
        room(3, 3, "三年级2班", ClassroomKind::Interactive),
        room(4, 3, "多媒体教室", ClassroomKind::ReceiveOnly),
    ];
    let teachers = [
        teacher(1, "T001", 1),
        teacher(2, "T002", 1),
        teacher(3, "A001", 2),
    ];
    Directory {
        schools: schools.into_iter().map(|s| (s.code.clone(), s)).collect(),
        classrooms: rooms
            .into_iter()
            .map(|c| ((c.school_id, c.name.clone()), c))
            .collect(),
        teachers: teachers.into_iter().map(|t| (t.code.clone(), t)).collect(),
        terms: [Term {
            id: 1,
            name: "2026秋".into(),
            starts_on: "2026-09-01".into(),
            ends_on: "2027-01-20".into(),
        }]
        .into_iter()
        .map(|t| (t.name.clone(), t))
        .collect(),
        ..Directory::default()
    }
}

/// Today's row numbers before the fix (review finding 14): newlines before each record's
/// first non-blank byte, counted from the start of the file for every record.
fn quadratic_rows(text: &str) -> Vec<usize> {
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    if rdr.headers().is_err() {
        return Vec::new();
    }
    let mut out = Vec::new();
    let mut last = 1usize;
    for rec in rdr.records() {
        let row = match &rec {
            Ok(r) => r.position(),
            Err(e) => e.position(),
        }
        .map(|p| {
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
        if !matches!(&rec, Ok(r) if r.iter().all(|c| c.is_empty())) {
            out.push(row);
        }
    }
    out
}

/// Checks what every import answer must be: bounded, in row order, counted.
fn bounded(e: &Errors, text: &str) -> Result<(), TestCaseError> {
    prop_assert!(e.listed.len() <= MAX_LISTED_ERRORS);
    prop_assert!(e.count >= e.listed.len());
    prop_assert!(e.count > MAX_LISTED_ERRORS || e.count == e.listed.len());
    prop_assert!(e.listed.windows(2).all(|w| w[0].row <= w[1].row));
    let lines = text.bytes().filter(|b| *b == b'\n').count() + 2;
    prop_assert!(e.listed.iter().all(|x| x.row >= 1 && x.row <= lines));
    Ok(())
}

/// Runs both importers' pure parts (decode, parse, check) on `bytes`.
fn import_both(bytes: &[u8], dir: &Directory) -> Result<(), TestCaseError> {
    let Ok(text) = decode(bytes) else {
        return Ok(());
    };
    for (cols, optional) in [(PAIRING_COLS, &["owner"][..]), (TIMETABLE_COLS, &[][..])] {
        let parsed = if cols == PAIRING_COLS {
            parse_as::<PairingRow>(&text, cols, optional)
                .map(|rows| check_pairings(&rows, dir).map(|_| ()))
        } else {
            parse_as::<TimetableRow>(&text, cols, optional)
                .map(|rows| check_timetable(&rows, dir).map(|_| ()))
        };
        match parsed {
            Ok(checked) => {
                if let Err(e) = checked {
                    bounded(&e, &text)?;
                }
            }
            Err(Rejection::Rows(e)) => bounded(&e, &text)?,
            Err(Rejection::TooManyRows) => prop_assert!(false, "tiny file over the limit"),
        }
    }
    Ok(())
}

/// Cells: valid values of every column, near misses, and text full of CSV syntax. A
/// table picked by index keeps each case cheap in a debug build.
const CELLS: [&str; 63] = [
    "HUB01",
    "ZJ01",
    "ZJ02",
    "NOPE",
    "2026秋",
    "2026冬",
    "周一",
    "星期日",
    "sun",
    "3",
    "8",
    "1",
    "0",
    "-1",
    "99999999999999999999",
    "08:00",
    "08:40",
    "8",
    "25:00",
    "08:40:00",
    "专递",
    "名师课堂",
    "sync",
    "lecture",
    "T001",
    "T002",
    "A001",
    "T999",
    "HUB01/录播教室",
    "ZJ01/三年级1班@A001;ZJ02/三年级2班",
    "ZJ02/多媒体教室",
    "ZJ01/没有",
    "ZJ01/",
    "/",
    "@",
    ";；;",
    "ZJ01/三年级1班@",
    "ZJ01/三年级1班@T999@x",
    "英语",
    "三年级",
    "'=1",
    "''=1",
    "'x",
    "=HYPERLINK(\"x\")",
    "+1",
    "@A1",
    "",
    " ",
    "a,b",
    "\"q\"",
    "x\ny",
    "\r",
    "\r\n",
    "\"",
    "\"\"",
    "a\"b",
    "\t",
    "\u{feff}",
    "é",
    "\u{0}",
    "'",
    "HUB01,ZJ01",
    "\n\n\n",
];

/// A file: a header (columns maybe reordered, renamed or missing) and rows of cells,
/// maybe quoted, with LF, CRLF or CR ends and blank lines; one cell is free text.
fn near_valid_file() -> impl Strategy<Value = String> {
    let headers = vec![
        TIMETABLE_COLS.join(","),
        format!("{},owner", PAIRING_COLS.join(",")),
        PAIRING_COLS.join(",").to_uppercase(),
        PAIRING_COLS[1..].join(","),
        format!("owner,{},extra", PAIRING_COLS.join(",")),
        format!("\"term\",{}", TIMETABLE_COLS[1..].join(",")),
    ];
    let rows = prop::collection::vec(
        (prop::collection::vec(any::<u8>(), 0..13), any::<u8>()),
        0..12,
    );
    let wild = "[a-zA-Z0-9 ,;@/'=+\"\\-\r\n\t英周一：；]{0,12}";
    (prop::sample::select(headers), rows, wild).prop_map(|(header, rows, wild)| {
        let mut s = header;
        s.push('\n');
        for (cells, end) in rows {
            for (i, c) in cells.iter().enumerate() {
                if i > 0 {
                    s.push(',');
                }
                let text = CELLS.get(usize::from(c & 63)).copied().unwrap_or(&wild);
                if c & 64 != 0 {
                    s.push('"');
                    s.push_str(&text.replace('"', "\"\""));
                    s.push('"');
                } else {
                    s.push_str(text);
                }
            }
            s.push_str(["\n", "\r\n", "\n\n", "\r\n\r\n", "\r", "\n"][usize::from(end % 6)]);
        }
        s
    })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn importers_take_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..160)) {
        import_both(&bytes, &DIR)?;
        import_both(String::from_utf8_lossy(&bytes).as_bytes(), &DIR)?;
    }

    #[test]
    fn importers_take_near_valid_files(text in near_valid_file(), gbk in any::<bool>()) {
        if gbk {
            let (b, _, _) = encoding_rs::GB18030.encode(&text);
            import_both(&b, &DIR)?;
        } else {
            import_both(text.as_bytes(), &DIR)?;
        }
    }

    #[test]
    fn row_numbers_match_the_old_count(text in "[a,\"\r\n ]{0,64}") {
        let text = format!("a\n{text}");
        let want = quadratic_rows(&text);
        match parse(&text, &["a"], &[]) {
            Ok(rows) => {
                let got: Vec<usize> = rows.iter().map(|r| r.0).collect();
                prop_assert_eq!(got, want);
            }
            Err(Rejection::Rows(e)) => {
                prop_assert!(want.is_empty(), "{:?}", e);
            }
            Err(Rejection::TooManyRows) => prop_assert!(false),
        }
    }

    #[test]
    fn export_then_import_gives_every_cell_back(cells in prop::collection::vec(
        "[ '=+\\-@\t\r\0\"a,英\n]{0,8}", 1..6)
    ) {
        // Import trims spaces around cells (as before); the quoting is about the start.
        // The last cell is never empty, so no row is skipped as blank.
        let mut cells: Vec<String> = cells.into_iter().map(|c| c.trim().to_string()).collect();
        cells.push("k".into());
        let cols: Vec<&'static str> = ["c0", "c1", "c2", "c3", "c4", "c5", "c6"][..cells.len()].to_vec();
        let out = write_rows(&cols, vec![cells.clone(), vec!["x".into(); cells.len()]])
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let text = String::from_utf8(out).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let mut rdr = csv::Reader::from_reader(text.as_bytes());
        for rec in rdr.records() {
            let rec = rec.map_err(|e| TestCaseError::fail(e.to_string()))?;
            for c in rec.iter() {
                prop_assert!(!c.starts_with(['=', '+', '-', '@', '\t', '\r', '\0']), "{:?}", c);
            }
        }
        let rows = parse(&text, &cols, &[]).map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
        let back: Vec<String> = cols.iter().map(|c| rows[0].1[*c].clone()).collect();
        prop_assert_eq!(back, cells);
    }
}
