//! The page scripts checked from `cargo test`: `tsc --checkJs --noEmit` over every script in
//! `web/` (each starts with `// @ts-check`), the pure modules' unit tests under node's test
//! runner (`web/test/`), and the problem message table against the kinds the server sends.
//! It must never skip quietly: without node, npm or the pinned TypeScript it skips through
//! `support/skip.rs`, which fails under CI.
//!
//! Run: `cargo test --test page_scripts` (needs `nodejs` and `npm`; the first run installs the
//! pinned TypeScript with `npm ci` in `web/`, as `.ci/run` does).

use std::path::{Path, PathBuf};
use std::process::Command;

#[path = "support/skip.rs"]
#[allow(dead_code)] // only `because` is used here
mod skip;

fn web() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("web")
}

/// Whether `cmd --version` runs.
fn have(cmd: &str) -> bool {
    Command::new(cmd)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Runs `cmd args` in `web/`; the combined output, or a panic with it when it fails.
fn run_ok(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .current_dir(web())
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "`{cmd} {}` failed in web/:\n{text}",
        args.join(" ")
    );
    text
}

/// The page scripts: every `.js` in `web/` and `web/lib/` (what the server embeds).
fn scripts() -> Vec<PathBuf> {
    let mut out = Vec::new();
    for dir in [web(), web().join("lib")] {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "js") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn every_page_script_asks_to_be_checked() {
    let scripts = scripts();
    assert!(scripts.len() >= 10, "found only {scripts:?}");
    for p in scripts {
        let text = std::fs::read_to_string(&p).unwrap();
        // tsc honours `// @ts-check` only in the leading comments.
        let head: Vec<&str> = text
            .lines()
            .take_while(|l| l.starts_with("//") || l.trim().is_empty())
            .collect();
        assert!(
            head.iter().any(|l| l.trim() == "// @ts-check"),
            "{} has no `// @ts-check` in its leading comments",
            p.display()
        );
    }
}

#[test]
fn typescript_finds_nothing_and_node_tests_pass() {
    if !have("node") || !have("npm") {
        skip::because("node and npm are not installed (apt-get install nodejs npm)");
        return;
    }
    let tsc = web().join("node_modules/typescript/bin/tsc");
    if !tsc.exists() {
        // The version pinned in web/package-lock.json, as .ci/run installs it.
        let out = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(web())
            .output()
            .expect("npm runs");
        if !out.status.success() || !tsc.exists() {
            skip::because(format!(
                "`npm ci` in web/ could not install TypeScript: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
            return;
        }
    }
    run_ok("node", &[tsc.to_str().unwrap(), "-p", "tsconfig.json"]);
    let out = run_ok("node", &["--test", "test/"]);
    // The runner ran the files (an empty directory would pass too).
    let passed = out
        .lines()
        .find_map(|l| l.strip_prefix("# pass "))
        .and_then(|n| n.trim().parse::<u32>().ok())
        .unwrap_or(0);
    assert!(passed >= 20, "only {passed} node tests passed:\n{out}");
}

/// The problem kinds `src/` creates: the string literal that is the `kind` argument of an
/// `ApiError` constructor (`ApiError::forbidden("lesson-not-open", …)`,
/// `ApiError::new(StatusCode::CONFLICT, "duplicate", …)`).
fn problem_kinds() -> Vec<String> {
    let mut kinds = std::collections::BTreeSet::new();
    let mut stack = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("src")];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            if p.extension().is_none_or(|x| x != "rs") {
                continue;
            }
            let text = std::fs::read_to_string(&p).unwrap();
            for ctor in [
                "new(",
                "bad_request(",
                "not_found(",
                "forbidden(",
                "unauthorized(",
                "too_many_requests(",
            ] {
                for prefix in ["ApiError::", "Self::"] {
                    let pat = format!("{prefix}{ctor}");
                    for (i, _) in text.match_indices(&pat) {
                        let mut rest = text[i + pat.len()..].trim_start();
                        if let Some(r) = rest.strip_prefix("StatusCode::") {
                            let Some(comma) = r.find(',') else { continue };
                            rest = r[comma + 1..].trim_start();
                        }
                        let Some(r) = rest.strip_prefix('"') else {
                            continue;
                        };
                        let kind = &r[..r.find('"').unwrap_or(0)];
                        if !kind.is_empty()
                            && kind
                                .chars()
                                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                        {
                            kinds.insert(kind.to_string());
                        }
                    }
                }
            }
        }
    }
    // Made elsewhere than a constructor call (`ApiError::invalid`, `internal`, `unavailable`).
    for k in ["invalid-field", "internal", "overloaded"] {
        kinds.insert(k.to_string());
    }
    kinds.into_iter().collect()
}

/// Every problem the server can send has a sentence in both languages in the pages' table,
/// so no page falls back to the server's English `detail` on a Chinese page.
#[test]
fn every_problem_kind_has_a_message() {
    let kinds = problem_kinds();
    // The scan really reads the constructors (not vacuously empty).
    for k in ["duplicate", "lesson-not-open", "token-revoked", "not-found"] {
        assert!(kinds.iter().any(|x| x == k), "scan missed {k}: {kinds:?}");
    }
    let table = std::fs::read_to_string(web().join("lib/problems.js")).unwrap();
    let missing: Vec<&String> = kinds
        .iter()
        .filter(|k| {
            !(table.contains(&format!("'{k}': ['")) || table.contains(&format!("\n  {k}: ['")))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "problem kinds without a message in web/lib/problems.js MESSAGES: {missing:?}"
    );
}
