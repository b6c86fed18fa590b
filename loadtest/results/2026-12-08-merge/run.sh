#!/bin/bash
# Session 18, end: the merged branches' packet-path change (RED on the fast path: a cached
# payload type plus a cut flag per packet in fanout.rs::write_slot) against the tree before
# them (r19 + the polling writer, /work/bin-20w), alternating, release profile with LTO, then
# the mixed scenario in a release build. Run from a checkout of main (the loadtest's fixtures).
LT=/work/bin-20w/classrelay-loadtest
declare -A BIN=([before]=/work/bin-20w/classrelay [after]=/work/bin-final/classrelay)
run() { local name=$1 w=$2; shift 2; echo "=== $name $w $(date +%T) load: $(cut -d' ' -f1 /proc/loadavg)"; "$LT" "$@" --server-bin "${BIN[$w]}" 2>&1 | grep -E "pkt per CPU|latency p50|subscriber loss|ratio"; }
for o in "after before" "before after"; do for w in $o; do run c-100-20s $w broadcast --target classrelay --subscribers 100 --duration 20s; done; done
for w in after before; do run pin-500 $w broadcast --subscribers 500 --swarms 2 --duration 10s; done
echo "=== mixed $(date +%T)"
/work/bin-final/classrelay-loadtest mixed --server-bin /work/bin-final/classrelay --subscribers 20 --impaired 30% --profile rural --estimation both --warmup 6s --duration 20s 2>&1 | tail -30
echo DONE
