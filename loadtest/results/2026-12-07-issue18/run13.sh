#!/bin/bash
# Session 16: before (main 183d89e, default release profile) against after (this issue's
# source built with [profile.release] codegen-units = 1, lto = "fat"), alternating, on a quiet
# machine. Run from a checkout whose config/classrelay.toml the old binary accepts (a worktree
# at 1db5e50).
LT=/work/bin-18before/classrelay-loadtest
declare -A BIN=([old]=/work/bin-18before/classrelay [lto]=/work/bin-lto/classrelay)
run() { echo "=== $1 $2 $(date +%T)"; shift 2; "$LT" "$@" 2>&1 | tail -25; }
for i in $(seq 1 ${ROUNDS:-4}); do
  if [ $((i%2)) = 1 ]; then o="lto old"; else o="old lto"; fi
  for w in $o; do run c-100-30s $w broadcast --target classrelay --subscribers 100 --duration 30s --server-bin ${BIN[$w]}; done
done
for w in old lto; do run both-100 $w broadcast --target both --subscribers 100 --duration 6s --server-bin ${BIN[$w]}; done
for w in lto old; do run pin-500 $w broadcast --subscribers 500 --swarms 2 --duration 10s --server-bin ${BIN[$w]}; done
echo DONE
