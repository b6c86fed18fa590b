#!/bin/bash
LT=/work/bin-18before/classrelay-loadtest
OLD=/work/bin-18before/classrelay
NEW=/work/tgt-layers/release/classrelay
cd /work/wt-try
run() { echo "=== $1 $2 $(date +%T)"; shift 2; "$LT" "$@" 2>&1 | tail -25; }
for i in 1 2; do
  if [ $((i%2)) = 1 ]; then a=old; b=new; else a=new; b=old; fi
  for w in $a $b; do bin=$OLD; [ $w = new ] && bin=$NEW; run pin-500 $w broadcast --subscribers 500 --swarms 2 --duration 10s --server-bin $bin; done
done
echo DONE
