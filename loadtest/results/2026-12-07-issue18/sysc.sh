#!/bin/bash
LT=/work/bin-18before/classrelay-loadtest
$LT broadcast --target classrelay --subscribers 100 --duration 20s --server-bin $1 > /tmp/sysc-$2.log 2>&1 &
lp=$!
for i in $(seq 1 100); do pid=$(pgrep -f "^$1 " | head -1); [ -n "$pid" ] && break; sleep 0.1; done
sleep 6
timeout -s INT 10 strace -f -c -p $pid -o /tmp/sysc-$2.txt >/dev/null 2>&1
wait $lp
grep -E "calls|epoll|recvmmsg|sendmmsg|sendmsg|futex|write|read|total" /tmp/sysc-$2.txt | head -14 | sed "s/^/$2 /"
