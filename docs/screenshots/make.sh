#!/bin/sh
# Regenerates the screenshots in this directory from the browser tests that show each page
# with real content (a real publisher, real lessons), at 1920×1080: the teacher console, a
# classroom page (a 名师课堂 site watching the site that has the floor), the 巡课 wall and the
# 开课率 report.
# Needs chromium and chromium-driver, like the tests. Run from the repository root.
set -eu
dir="$(cd "$(dirname "$0")" && pwd)"
export CLASSRELAY_SCREENSHOTS="$dir"
cargo test --test browser_console --test browser_patrol --test reports_api -- --test-threads=1
ls -l "$dir"/*.png
