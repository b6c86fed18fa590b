#!/bin/bash
# usage: prof.sh BIN label
LT=/work/bin-18before/classrelay-loadtest
$LT broadcast --target classrelay --subscribers 100 --duration 25s --server-bin $1 > /tmp/prof-$2.log 2>&1 &
lp=$!
for i in $(seq 1 100); do pid=$(pgrep -f "^$1 " | head -1); [ -n "$pid" ] && break; sleep 0.1; done
sleep 6
perf record -e cpu-clock -F 4000 -p $pid -o /tmp/perf-$2.data -- sleep 15 >/dev/null 2>&1
wait $lp
perf report -i /tmp/perf-$2.data --no-children --sort symbol --stdio 2>/dev/null | grep -v "^#" | grep -v "^$" | head -45 > /tmp/prof-$2.txt
grep -E "pkt per CPU-s|server CPU" /tmp/prof-$2.log
