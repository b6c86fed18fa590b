#!/bin/bash
LT=/work/bin-18before/classrelay-loadtest
OLD=/work/bin-18before/classrelay
NEW=/work/tgt-layers/release/classrelay
run() { echo "=== $1 $2 $(date +%T)"; shift 2; "$LT" "$@" 2>&1 | tail -25; }
for i in 1; do
  if [ $i = 1 ]; then a=old; b=new; else a=new; b=old; fi
  for w in $a $b; do bin=$OLD; [ $w = new ] && bin=$NEW; run both-100 $w broadcast --target both --subscribers 100 --duration 6s --server-bin $bin; done
done
