#!/bin/bash
# Session 18: issue 20's recording benchmarks on a quiet machine, with the release binaries
# (codegen-units = 1, lto = "fat", --features classrelay/gst) of branch r19 in /work/bin-19after.
# The same measurements as ../2026-12-07-issue20/run.sh, except that the export's speed is
# timed on a 10-minute lesson (the goal is a real-time factor; 45 minutes would only take
# longer) and the 45-minute lesson is processed without exporting.
set -u
OUT=${OUT:-/tmp/issue20}
mkdir -p "$OUT"
B=${B:-/work/bin-19after}
L=$B/classrelay-loadtest
S=$B/classrelay
{ echo "### $(date -u +%FT%TZ) $($S --version 2>/dev/null)"; echo "nproc: $(nproc)"; uptime; } | tee "$OUT/log"
run() {
  local name=$1
  shift
  echo "### $(date -u +%T) $name: $* (load $(cut -d' ' -f1 /proc/loadavg))" | tee -a "$OUT/log"
  "$L" "$@" --server-bin "$S" > "$OUT/$name.txt" 2>&1
  echo "rc=$?" >> "$OUT/$name.txt"
  tail -n 12 "$OUT/$name.txt"
}
run record100 record --streams 100 --bitrate 2.5M --viewers 1 --duration 30s --rounds 3 --json "$OUT/record100.json"
run record1x100 record --streams 1 --bitrate 2.5M --viewers 100 --duration 20s --rounds 3 --json "$OUT/record1x100.json"
run lesson45 lesson --duration 45m --runs 3 --json "$OUT/lesson45.json"
run export10 lesson --duration 10m --runs 1 --export showcase --json "$OUT/export10.json"
echo "### $(date -u +%T) done" | tee -a "$OUT/log"
