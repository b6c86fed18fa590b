#!/bin/bash
# Session 15, second batch: four more alternating --target both --subscribers 100 pairs.
LT=/work/bin-18before/classrelay-loadtest
OLD=/work/bin-18before/classrelay
NEW=/work/tgt-layers/release/classrelay
run() { echo "=== $1 $2 $(date +%T)"; shift 2; "$LT" "$@" 2>&1 | tail -25; }
for i in; do
  if [ $((i%2)) = 1 ]; then a=old; b=new; else a=new; b=old; fi
  for w in $a $b; do bin=$OLD; [ $w = new ] && bin=$NEW; run pin-500 $w broadcast --subscribers 500 --swarms 2 --duration 10s --server-bin $bin; done
done
for i in 1 2 3 4; do
  if [ $((i%2)) = 1 ]; then a=new; b=old; else a=old; b=new; fi
  for w in $a $b; do bin=$OLD; [ $w = new ] && bin=$NEW; run both-100 $w broadcast --target both --subscribers 100 --duration 6s --server-bin $bin; done
done
echo DONE
