//! The one way a test skips for something the host lacks (a browser, PostgreSQL, Janus,
//! strace, root): [`because`] writes `SKIPPED: <test>: <why>` where a developer sees it and
//! `.ci/run` counts it, and under CI ([`ci`]) fails the test instead. Never used to skip for
//! any other reason (a test that cannot run on a host with everything installed is broken).

use std::fmt::Display;
use std::io::Write;

/// Whether this is a CI run: `CI` is `true`, `1` or `yes` (any case; `.ci/run` exports
/// `CI=true`). `CI=false`, `CI=0` or an empty `CI` is a developer's machine.
pub fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| is_true(&v))
}

/// `true`, `1` or `yes`, in any case and with surrounding blanks.
pub fn is_true(v: &str) -> bool {
    matches!(v.trim().to_ascii_lowercase().as_str(), "true" | "1" | "yes")
}

/// The current test cannot run here because `why` (say what to install); the caller
/// returns right after. Writes `SKIPPED: <test>: <why>` straight to stderr: libtest's capture
/// only takes `print!`/`eprint!`, so the line shows even when the test passes. Under CI a
/// skip is a failure: this panics with the same reason.
pub fn because(why: impl Display) {
    let current = std::thread::current();
    // libtest runs each test on a thread named after it.
    let test = current.name().unwrap_or("<unnamed test>");
    let line = format!("SKIPPED: {test}: {why}\n");
    // One write of one short line: lines of tests running in parallel do not interleave.
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
    if ci() {
        panic!("CI is set, so a skip is a failure: {test}: {why}");
    }
}

/// Whether the tests run as root (CI does; `SCHED_FIFO`, network namespaces and running
/// PostgreSQL as its own user need it).
pub fn is_root() -> bool {
    std::env::var("USER").map(|u| u == "root").unwrap_or(false)
        || std::fs::read_to_string("/proc/self/status")
            .map(|s| {
                s.lines()
                    .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
            })
            .unwrap_or(false)
}
