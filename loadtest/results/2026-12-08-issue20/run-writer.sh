#!/bin/bash
# The capture writer's polling change (a packet's try_send no longer wakes the writer): the
# broadcast shape (1 recorded publisher, 100 viewers) with the old writer (/work/bin-19after)
# and the new one (/work/bin-20w), alternating, then 100 recorded streams with the new one.
# Run from the repository root (the loadtest's fixture paths are relative).
OUT=${OUT:-/tmp/issue20w}; mkdir -p "$OUT"
L=/work/bin-19after/classrelay-loadtest
declare -A BIN=([old]=/work/bin-19after/classrelay [new]=/work/bin-20w/classrelay)
run() {
  local name=$1 w=$2; shift 2
  echo "### $(date -u +%T) $name $w (load $(cut -d' ' -f1 /proc/loadavg))"
  "$L" "$@" --server-bin "${BIN[$w]}" > "$OUT/$name-$w.txt" 2>&1
  grep -E "^(== |server CPU|capture cost|forwarding cost|dropped)" "$OUT/$name-$w.txt"
}
for w in new old; do run record1x100 $w record --streams 1 --bitrate 2.5M --viewers 100 --duration 20s --rounds 3; done
run record100 new record --streams 100 --bitrate 2.5M --viewers 1 --duration 30s --rounds 2
echo "### $(date -u +%T) done"
