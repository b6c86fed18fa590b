#!/bin/bash
# Session 15, fourth batch: 100 viewers, 30 s windows, old (main 183d89e) against new (main
# 11743c2, this session's merge), six alternating rounds on a quiet machine. Run from a
# checkout whose config/classrelay.toml the old binary accepts (e.g. a worktree at 1db5e50).
LT=/work/bin-18before/classrelay-loadtest
declare -A BIN=([old]=/work/bin-18before/classrelay [new]=/work/bin-int/classrelay)
run() { echo "=== $1 $2 $(date +%T)"; shift 2; "$LT" "$@" 2>&1 | tail -25; }
for i in 1 2 3 4 5 6; do
  if [ $((i%2)) = 1 ]; then o="new old"; else o="old new"; fi
  for w in $o; do run c-100-30s $w broadcast --target classrelay --subscribers 100 --duration 30s --server-bin ${BIN[$w]}; done
done
echo DONE
