#!/bin/bash
# Session 15, third batch: 100 viewers with five times the window (30 s), so the CPU figure
# resolves ~0.6 % per clock tick; classrelay only (Janus is not part of the old/new question).
LT=/work/bin-18before/classrelay-loadtest
OLD=/work/bin-18before/classrelay
NEW=${NEW:-/work/bin-18after/classrelay}
run() { echo "=== $1 $2 $(date +%T)"; shift 2; "$LT" "$@" 2>&1 | tail -25; }
for i in 1 2 3 4; do
  if [ $((i%2)) = 1 ]; then a=old; b=new; else a=new; b=old; fi
  for w in $a $b; do bin=$OLD; [ $w = new ] && bin=$NEW; run c-100-30s $w broadcast --target classrelay --subscribers 100 --duration 30s --server-bin $bin; done
done
echo DONE
