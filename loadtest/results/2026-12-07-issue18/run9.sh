#!/bin/bash
# Session 15, after the merge of this session's branches (int f288878: capture tap, tidy's
# membership/track_gone folds): three servers alternating, one load generator (the old one).
#   old = main 183d89e (before issue 18), mid = 1155ab4 (issue 18 as merged), new = int f288878
LT=/work/bin-18before/classrelay-loadtest
declare -A BIN=([old]=/work/bin-18before/classrelay [mid]=/work/bin-18after/classrelay [new]=/work/bin-int/classrelay)
run() { echo "=== $1 $2 $(date +%T)"; shift 2; "$LT" "$@" 2>&1 | tail -25; }
orders=("old mid new" "new old mid" "mid new old")
for i in 0 1 2; do
  for w in ${orders[$i]}; do run c-100-30s $w broadcast --target classrelay --subscribers 100 --duration 30s --server-bin ${BIN[$w]}; done
done
for i in 0 1; do
  if [ $i = 0 ]; then o="mid new"; else o="new mid"; fi
  for w in $o; do run pin-500 $w broadcast --subscribers 500 --swarms 2 --duration 10s --server-bin ${BIN[$w]}; done
done
run both-100 new broadcast --target both --subscribers 100 --duration 6s --server-bin ${BIN[new]}
echo DONE
