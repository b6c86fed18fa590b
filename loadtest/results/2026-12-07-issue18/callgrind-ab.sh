#!/bin/bash
# usage: ab.sh new|old tag — steady-state instruction counts of the server (zeroed after joins)
w=$1; tag=$2
cd /work/wt-old
timeout 300 /work/bin-18before/classrelay-loadtest broadcast --target classrelay --subscribers ${SUBS:-20} --duration 40s --server-bin /work/cg/vg-$w.sh > /work/cg/lt-$w-$tag.log 2>&1 &
lp=$!
for i in $(seq 1 200); do pid=$(pgrep -f "valgrind.*cg-$w.*serve" | head -1); [ -n "$pid" ] && break; sleep 0.1; done
sleep 18
callgrind_control -z $pid >/dev/null
sleep 20
callgrind_control -d steady $pid >/dev/null
wait $lp
f=$(ls -t /work/cg/cg-$w.$pid.out.* 2>/dev/null | head -1)
mv $f /work/cg/steady-$w-$tag.out
rm -f /work/cg/cg-$w.*.out*
fw=$(grep "forwarded pkt/s" /work/cg/lt-$w-$tag.log)
tot=$(grep "^totals:\|^summary:" /work/cg/steady-$w-$tag.out | head -1)
echo "$w $tag $tot | $fw"
