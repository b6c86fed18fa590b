//! The crate's top-level modules point one way: this reads every `crate::…` (and `super::…`)
//! path in the production code under `src/` and fails on a cycle between top-level modules,
//! printing it, and on an edge that climbs the layer picture of docs/ARCHITECTURE.md:
//!
//! `time, problem, metrics, store, record → auth, sfu → media → school, signal → observe → http → lib/main`.
//!
//! It reads text, so it runs in milliseconds and needs nothing but the sources.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Who must never import whom (the layer picture, read downwards).
const FORBIDDEN: &[(&str, &[&str])] = &[
    ("time", &["*"]),
    ("ids", &["*"]),
    ("metrics", &["*"]),
    (
        "store",
        &["auth", "sfu", "media", "school", "signal", "http", "config"],
    ),
    (
        "problem",
        &["sfu", "media", "school", "signal", "http", "config"],
    ),
    (
        "auth",
        &["sfu", "media", "school", "signal", "http", "problem"],
    ),
    ("config", &["media", "school", "signal", "http"]),
    (
        "sfu",
        &[
            "auth", "store", "media", "school", "signal", "http", "problem",
        ],
    ),
    ("media", &["school", "signal", "http", "store"]),
    ("signal", &["school", "http", "store"]),
    ("school", &["http", "observe"]),
    // Observation sits above school (it reads lessons and the organisation tree) and below
    // http, which mounts its router.
    ("observe", &["http", "signal", "media", "sfu"]),
    // Recording sits beside the packet path: the media core hands it packets (a tap) and
    // the media service starts and stops it, so it must know none of them.
    (
        "record",
        &[
            "auth", "store", "sfu", "media", "school", "signal", "http", "problem",
        ],
    ),
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("src/ is readable") {
        let p = e.expect("dir entry").path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The top-level module a file under `src/` belongs to (`None` for lib.rs and main.rs).
fn top_module(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).expect("under src/");
    let first = rel.components().next()?.as_os_str().to_str()?.to_string();
    match first.strip_suffix(".rs") {
        Some("lib") | Some("main") => None,
        Some(m) => Some(m.to_string()),
        None => Some(first),
    }
}

/// Whether `super::` in `file` names the crate root (the file is a top-level module itself).
fn super_is_root(src: &Path, file: &Path) -> bool {
    let rel = file.strip_prefix(src).expect("under src/");
    let n = rel.components().count();
    n == 1 || (n == 2 && rel.ends_with("mod.rs"))
}

/// The production part of a file: without comments and without its `#[cfg(test)]` items.
fn production(text: &str) -> String {
    let mut out = String::new();
    let mut skip_depth: Option<i32> = None;
    let mut depth = 0i32;
    let mut pending_cfg_test = false;
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        let t = code.trim();
        if skip_depth.is_none() && t.starts_with("#[cfg(test)]") {
            pending_cfg_test = true;
            continue;
        }
        let opens = code.matches('{').count() as i32;
        let closes = code.matches('}').count() as i32;
        if pending_cfg_test && !t.is_empty() && !t.starts_with("#[") {
            pending_cfg_test = false;
            if opens > closes {
                skip_depth = Some(depth);
            }
            depth += opens - closes;
            continue;
        }
        depth += opens - closes;
        if let Some(d) = skip_depth {
            if depth <= d {
                skip_depth = None;
            }
            continue;
        }
        out.push_str(code);
        out.push('\n');
    }
    out
}

/// The top-level modules `code` names through `crate::` (and `super::` when that is the root).
fn imports(code: &str, super_root: bool) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut prefixes = vec!["crate::"];
    if super_root {
        prefixes.push("super::");
    }
    for prefix in prefixes {
        for (i, _) in code.match_indices(prefix) {
            // `foo::crate::` cannot occur; a preceding identifier char means another path.
            if code[..i]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':')
            {
                continue;
            }
            let rest = &code[i + prefix.len()..];
            if let Some(group) = rest.strip_prefix('{') {
                // `use crate::{a::X, b}`: every item at depth 0 of the group.
                let mut depth = 0;
                let mut item = String::new();
                for c in group.chars() {
                    match c {
                        '{' => depth += 1,
                        '}' if depth == 0 => break,
                        '}' => depth -= 1,
                        ',' if depth == 0 => {
                            found.extend(first_ident(&item));
                            item.clear();
                            continue;
                        }
                        _ => {}
                    }
                    if depth == 0 {
                        item.push(c);
                    }
                }
                found.extend(first_ident(&item));
            } else {
                found.extend(first_ident(rest));
            }
        }
    }
    found
}

fn first_ident(s: &str) -> Option<String> {
    let s = s.trim_start();
    let id: String = s
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    (!id.is_empty() && id != "self").then_some(id)
}

/// The module graph: module → (module it names → the files that name it).
fn graph() -> BTreeMap<String, BTreeMap<String, BTreeSet<String>>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let tops: BTreeSet<String> = files.iter().filter_map(|f| top_module(&src, f)).collect();
    let mut g: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for f in &files {
        let Some(from) = top_module(&src, f) else {
            continue;
        };
        let text = std::fs::read_to_string(f).expect("readable source");
        let code = production(&text);
        let node = g.entry(from.clone()).or_default();
        for to in imports(&code, super_is_root(&src, f)) {
            if to != from && tops.contains(&to) {
                let rel = f
                    .strip_prefix(&src)
                    .expect("under src/")
                    .display()
                    .to_string();
                node.entry(to).or_default().insert(rel);
            }
        }
    }
    g
}

/// A cycle through the graph, if there is one, as the modules along it.
fn find_cycle(g: &BTreeMap<String, BTreeMap<String, BTreeSet<String>>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        g: &BTreeMap<String, BTreeMap<String, BTreeSet<String>>>,
        state: &mut BTreeMap<String, u8>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(n.to_string(), 1);
        path.push(n.to_string());
        for next in g.get(n).into_iter().flat_map(|m| m.keys()) {
            match state.get(next.as_str()).copied().unwrap_or(0) {
                1 => {
                    let start = path.iter().position(|p| p == next).expect("on the path");
                    let mut cycle = path[start..].to_vec();
                    cycle.push(next.clone());
                    return Some(cycle);
                }
                0 => {
                    if let Some(c) = visit(next, g, state, path) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        path.pop();
        state.insert(n.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in g.keys() {
        if state.get(n.as_str()).copied().unwrap_or(0) == 0 {
            if let Some(c) = visit(n, g, &mut state, &mut Vec::new()) {
                return Some(c);
            }
        }
    }
    None
}

#[test]
fn top_level_modules_form_a_dag() {
    let g = graph();
    for (from, tos) in &g {
        eprintln!("{from} → {:?}", tos.keys().collect::<Vec<_>>());
    }
    if let Some(cycle) = find_cycle(&g) {
        let mut why = String::new();
        for w in cycle.windows(2) {
            let files = &g[&w[0]][&w[1]];
            why.push_str(&format!("\n  {} → {} (in {:?})", w[0], w[1], files));
        }
        panic!("module cycle: {}{why}", cycle.join(" → "));
    }
}

#[test]
fn no_module_climbs_the_layers() {
    let g = graph();
    let mut wrong = Vec::new();
    for (from, banned) in FORBIDDEN {
        for (to, files) in g.get(*from).into_iter().flatten() {
            if banned.contains(&"*") || banned.contains(&to.as_str()) {
                wrong.push(format!("{from} → {to} (in {files:?})"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the layers:\n  {}",
        wrong.join("\n  ")
    );
}

#[test]
fn the_reader_sees_imports_and_cycles() {
    let code = "use crate::{auth::Claims, sfu};\nfn f() { crate::media::x(); }\n";
    let want: BTreeSet<String> = ["auth", "sfu", "media"].map(String::from).into();
    assert_eq!(imports(code, false), want);
    assert!(imports("use super::x;", false).is_empty());
    assert_eq!(imports("use super::x;", true), ["x".to_string()].into());
    let tests_only =
        "use crate::a;\n#[cfg(test)]\nmod tests {\n    use crate::b;\n}\nuse crate::c;\n";
    assert_eq!(
        imports(&production(tests_only), false),
        ["a", "c"].map(String::from).into()
    );
    let mut g: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    g.entry("a".into())
        .or_default()
        .insert("b".into(), BTreeSet::new());
    assert_eq!(find_cycle(&g), None);
    g.entry("b".into())
        .or_default()
        .insert("a".into(), BTreeSet::new());
    assert_eq!(
        find_cycle(&g),
        Some(vec!["a".into(), "b".into(), "a".into()])
    );
}

/// The architecture issue's bound: a file under `src/` whose code grows past this is split
/// along what it does (route table, handlers by area, pure rules) before it becomes the next
/// 2,700-line worker. Test code is not counted (test-only files, `tests.rs` and `*_tests.rs`,
/// and a file's closing `#[cfg(test)] mod …` blocks): a long list of cases is not a design
/// problem.
const MAX_LINES: usize = 900;

#[test]
fn no_source_file_is_over_the_bound() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut long = Vec::new();
    for f in &files {
        let name = f.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if name == "tests.rs" || name.ends_with("_tests.rs") {
            continue;
        }
        let text = std::fs::read_to_string(f).expect("readable");
        let lines: Vec<&str> = text.lines().collect();
        // The code ends where the first `#[cfg(test)]` module begins.
        let n = lines
            .windows(2)
            .position(|w| w[0].trim() == "#[cfg(test)]" && w[1].starts_with("mod "))
            .unwrap_or(lines.len());
        if n > MAX_LINES {
            long.push(format!("{} ({n} lines)", f.display()));
        }
    }
    assert!(
        long.is_empty(),
        "files over {MAX_LINES} lines:\n  {}",
        long.join("\n  ")
    );
}
