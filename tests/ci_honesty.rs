//! The skip helper (`tests/support/skip.rs`) keeps CI honest: `CI` is read as a boolean, a
//! skip writes a line that shows even though the test passed (libtest captures only
//! `print!`), and under CI the same skip fails the test.
//!
//! The skipping test runs in a child process (this binary re-run, filtered to the ignored
//! `inner_skips`), so its pass or failure is observed from outside.
//!
//! Run: `cargo test --test ci_honesty`.

use std::process::{Command, Output};

#[path = "support/skip.rs"]
#[allow(dead_code)] // `is_root` is not used here
mod skip;

/// Set by the outer test for its child; the inner test refuses to run without it.
const CHILD_ENV: &str = "CLASSRELAY_SKIP_SELFTEST_CHILD";
const WHY: &str = "the frobnicator is not installed";

#[test]
fn ci_is_read_as_a_boolean() {
    for yes in ["true", "1", "yes", "TRUE", "Yes", " true\n"] {
        assert!(skip::is_true(yes), "{yes:?}");
    }
    for no in ["false", "0", "no", "", "off", "FALSE"] {
        assert!(!skip::is_true(no), "{no:?}");
    }
}

fn run_inner(ci: Option<&str>) -> (Output, String) {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["inner_skips", "--exact", "--ignored", "--test-threads=2"])
        .env(CHILD_ENV, "1")
        .env_remove("CI");
    if let Some(v) = ci {
        cmd.env("CI", v);
    }
    let out = cmd.output().expect("re-run this test binary");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out, text)
}

#[test]
fn a_skip_shows_past_the_capture_and_fails_under_ci() {
    let line = format!("SKIPPED: inner_skips: {WHY}");
    for ci in [None, Some("false"), Some("0"), Some("")] {
        let (out, text) = run_inner(ci);
        assert!(out.status.success(), "CI={ci:?}: the skip passes\n{text}");
        assert!(text.contains(&line), "CI={ci:?}: the line shows\n{text}");
        assert!(
            text.contains("test result: ok. 1 passed"),
            "CI={ci:?}\n{text}"
        );
    }
    for ci in ["true", "1", "yes"] {
        let (out, text) = run_inner(Some(ci));
        assert!(!out.status.success(), "CI={ci}: the skip fails\n{text}");
        assert!(text.contains(&line), "CI={ci}: the line shows\n{text}");
        assert!(
            text.contains(&format!(
                "CI is set, so a skip is a failure: inner_skips: {WHY}"
            )),
            "CI={ci}: the failure says why\n{text}"
        );
    }
}

/// Skips, as a test does whose dependency is missing. Run only by the test above.
#[test]
#[ignore = "run by a_skip_shows_past_the_capture_and_fails_under_ci in a child process"]
fn inner_skips() {
    assert!(
        std::env::var_os(CHILD_ENV).is_some(),
        "inner_skips runs only as the child of a_skip_shows_past_the_capture_and_fails_under_ci"
    );
    skip::because(WHY);
}
