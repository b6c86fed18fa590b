#!/bin/bash
# Session 15, the stop's check: the packet path before this session (1db5e50 = 1155ab4's
# code) against after it (11743c2 = df05a1b's packet path: the recording tap, track_gone,
# choose_bindings), the named command, alternating. Run from a worktree at 1db5e50.
LT=/work/bin-18before/classrelay-loadtest
declare -A BIN=([before]=/work/bin-18after/classrelay [after]=/work/bin-int/classrelay)
run() { echo "=== $1 $2 $(date +%T)"; shift 2; "$LT" "$@" 2>&1 | tail -25; }
for i in 1 2 3; do
  if [ $((i%2)) = 1 ]; then o="before after"; else o="after before"; fi
  for w in $o; do run both-100 $w broadcast --target both --subscribers 100 --duration 6s --server-bin ${BIN[$w]}; done
done
echo DONE
