#!/bin/bash
# Issue 20's recording benchmarks (BENCHMARKS.md, "Recording (issue 20)"), one after another,
# for a quiet machine: capture cost and writer drops at 100 recorded 2.5 Mbit/s streams and
# forwarding with recording on vs off (alternating runs), then the 45-minute three-source
# lesson: processing time and the showcase export's real-time factor.
# Run from anywhere; builds the release binaries (with GStreamer for the export) into
# CARGO_TARGET_DIR (default target/) and writes to OUT (default /tmp/issue20).
set -u
cd "$(dirname "$0")/../../.." || exit 1
OUT=${OUT:-/tmp/issue20}
mkdir -p "$OUT"
T=${CARGO_TARGET_DIR:-target}/release
{
  echo "### $(date -u +%FT%TZ) $(git rev-parse --short HEAD)"
  echo "nproc: $(nproc)"
  uptime
} | tee "$OUT/log"
cargo build --release --workspace --bins --features classrelay/gst 2>&1 | tail -n 3 | tee -a "$OUT/log"
L=$T/classrelay-loadtest
S=$T/classrelay
run() {
  local name=$1
  shift
  echo "### $(date -u +%T) $name: $*" | tee -a "$OUT/log"
  "$L" "$@" --server-bin "$S" > "$OUT/$name.txt" 2>&1
  echo "rc=$?" >> "$OUT/$name.txt"
  tail -n 8 "$OUT/$name.txt"
}
# 1. 100 recorded streams at 2.5 Mbit/s, one viewer each: off, on, off, on, off, on.
run record100 record --streams 100 --bitrate 2.5M --viewers 1 --duration 30s --rounds 3 --json "$OUT/record100.json"
# 2. Forwarding with recording on vs off, broadcast shape: one recorded publisher, 100 viewers.
run record1x100 record --streams 1 --bitrate 2.5M --viewers 100 --duration 20s --rounds 3 --json "$OUT/record1x100.json"
# 3. The 45-minute three-source lesson: processing (3 runs), then the showcase export.
run lesson45 lesson --duration 45m --runs 3 --export showcase --json "$OUT/lesson45.json"
echo "### $(date -u +%T) done" | tee -a "$OUT/log"
