//! The admin page's spreadsheet import in headless Chromium (issue 22 item 2): an admin logs
//! in, picks an `.xlsx` of schools and a GBK CSV of classrooms (real files, chosen through
//! the file input as a person would) and sees the counts; the stored names are the Chinese
//! ones; the same file again in English reports its rows as already there; the template
//! links download; no untranslated key shows.
//!
//! Run: `cargo test --test browser_sheets` (needs `chromium` and `chromium-driver`).

mod support;

use std::time::Duration;

use anyhow::Result;
use fantoccini::Locator;
use reqwest::Method;
use serde_json::json;
use support::browser::{Browser, Page};
use support::school::{App, Backend};

const WAIT: Duration = Duration::from_secs(60);

/// Chooses importer `sheet` and file `path` on the import tab, presses 导入 and returns the
/// report's text once it is there.
async fn import(page: &Page, sheet: &str, path: &std::path::Path) -> Result<String> {
    page.eval_with(
        "const s = document.getElementById('importSheet');
         s.value = arguments[0]; s.dispatchEvent(new Event('change')); return true;",
        vec![json!(sheet)],
    )
    .await?;
    page.client()
        .find(Locator::Id("importFile"))
        .await?
        .send_keys(&path.display().to_string())
        .await?;
    page.eval("document.getElementById('importGo').click(); return true;")
        .await?;
    let text = page
        .wait_until(
            "document.getElementById('importResult').dataset.done && document.getElementById('importResult').innerText",
            WAIT,
            "document.body.innerText",
        )
        .await?;
    Ok(text.as_str().unwrap_or("").to_string())
}

async fn open_import_tab(page: &Page, app: &App, lang: &str) -> Result<()> {
    page.goto(&format!("{}/admin{lang}#import", app.base))
        .await?;
    page.wait_until(
        "document.body.dataset.ready === 'import' && document.getElementById('importGo')",
        WAIT,
        "document.body.innerText",
    )
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_imports_an_xlsx_and_a_gbk_csv_and_sees_the_counts() -> Result<()> {
    let Some(browser) = Browser::start_or_skip().await else {
        return Ok(());
    };
    let app = App::start(Backend::Sqlite).await.expect("server");
    app.create(
        "/api/regions",
        json!({"province": "甘肃省", "city": "定西市", "county": "通渭县"}),
    )
    .await;

    // The files, as a county office has them: schools in an Excel workbook, classrooms in
    // a CSV saved by Chinese Excel (GBK), both with Chinese headers.
    let dir = tempfile::tempdir()?;
    let xlsx = dir.path().join("学校.xlsx");
    {
        let mut wb = rust_xlsxwriter::Workbook::new();
        let ws = wb.add_worksheet();
        let rows = [
            ["学校代码", "学校名称", "类型", "省", "市", "县"],
            [
                "HUB001",
                "城关第一小学",
                "主讲学校",
                "甘肃省",
                "定西市",
                "通渭县",
            ],
            [
                "PT001",
                "石门乡中心小学",
                "接收学校",
                "甘肃省",
                "定西市",
                "通渭县",
            ],
            [
                "PT002",
                "柳树村教学点",
                "教学点",
                "甘肃省",
                "定西市",
                "通渭县",
            ],
        ];
        for (r, row) in rows.iter().enumerate() {
            for (c, v) in row.iter().enumerate() {
                ws.write_string(r as u32, c as u16, *v)?;
            }
        }
        wb.save(&xlsx)?;
    }
    let gbk = dir.path().join("教室.csv");
    let text =
        "学校代码,教室名称,类型\r\nHUB001,录播主讲教室,主讲教室\r\nPT001,五年级(1)班,互动教室\r\n";
    let (bytes, _, unmappable) = encoding_rs::GBK.encode(text);
    assert!(!unmappable && std::str::from_utf8(&bytes).is_err());
    std::fs::write(&gbk, &bytes)?;

    let page = browser.new_page().await?;
    page.goto(&format!("{}/login?next=/admin", app.base))
        .await?;
    let (user, password) = app.server.first_admin().cloned().unwrap();
    page.eval_with(
        "document.getElementById('username').value = arguments[0];
         document.getElementById('password').value = arguments[1];
         document.getElementById('submit').click(); return true;",
        vec![json!(user), json!(password)],
    )
    .await?;
    page.wait_until(
        "location.pathname === '/admin' && document.body.dataset.ready",
        WAIT,
        "document.body.innerText",
    )
    .await?;

    // In Chinese (the default): the counts.
    open_import_tab(&page, &app, "").await?;
    let report = import(&page, "schools", &xlsx).await?;
    assert!(report.contains("已导入 3 行"), "{report}");
    let report = import(&page, "classrooms", &gbk).await?;
    assert!(report.contains("已导入 2 行"), "{report}");
    let (_, rooms) = app
        .call(Some(&app.admin), Method::GET, "/api/classrooms", None)
        .await;
    let names: Vec<&str> = rooms
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["录播主讲教室", "五年级(1)班"], "GBK decoded");
    // The template links point at the chosen importer and download.
    let status = page
        .eval_expr(
            "fetch(document.getElementById('templateXlsx').href).then(r => r.status + ' ' + r.url)",
        )
        .await?;
    let status = status.as_str().unwrap_or("");
    assert!(
        status.starts_with("200 ") && status.ends_with("/api/templates/classrooms.xlsx"),
        "{status}"
    );

    // In English: the same file again is reported as already there, row by row.
    open_import_tab(&page, &app, "?lang=en").await?;
    let report = import(&page, "classrooms", &gbk).await?;
    assert!(report.contains("Imported 0 rows (of 2)"), "{report}");
    assert!(report.contains("2 rows already there, skipped"), "{report}");
    let body = page.eval_expr("document.body.innerText").await?;
    let body = body.as_str().unwrap_or("");
    for key in ["import_", "sheet_", "undefined", "null"] {
        assert!(!body.contains(key), "`{key}` shown: {body}");
    }
    page.close().await?;
    Ok(())
}
