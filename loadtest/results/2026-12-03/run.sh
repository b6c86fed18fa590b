#!/bin/bash
# The sitting recorded in this folder (BENCHMARKS.md, "Summary"): every scenario and target, one
# after another on a quiet machine. Run from anywhere after `cargo build --release --workspace --bins`;
# writes to OUT (default /tmp/final).
cd "$(dirname "$0")/../../.." && OUT=${OUT:-/tmp/final} && mkdir -p "$OUT"
L=target/release/classrelay-loadtest
run() { local name=$1; shift; echo "### $(date +%T) $name: $*" >> $OUT/log; "$L" "$@" > "$OUT/$name.txt" 2>&1; echo "rc=$?" >> $OUT/$name.txt; }
run both100_vp8 broadcast --target both --subscribers 100 --duration 10s --json $OUT/both100_vp8.json
run both100_h264 broadcast --target both --subscribers 100 --duration 10s --video loadtest/fixtures/h264_720p30_1200k.h264 --json $OUT/both100_h264.json
run bell_both bell --target both --subscribers 200 --within 10s --swarms 2 --json $OUT/bell_both.json
run sync6 sync --classes 6 --duration 10s --json $OUT/sync6.json
run simulcast100 broadcast --subscribers 100 --duration 10s --simulcast h,m,l --json $OUT/simulcast100.json
run pinned500 broadcast --subscribers 500 --swarms 2 --duration 10s --json $OUT/pinned500.json
run pinned1000 broadcast --subscribers 1000 --swarms 2 --duration 10s --json $OUT/pinned1000.json
for i in 1 2 3; do
  run half_$i broadcast --subscribers 500 --swarms 2 --duration 10s --no-pin --realtime --workers 2 --json $OUT/half_$i.json
  run floor500_$i floor --subscribers 500 --senders 2 --realtime --gso-batch --duration 10s
  run full_$i broadcast --subscribers 1000 --swarms 2 --duration 10s --no-pin --realtime --workers 2 --json $OUT/full_$i.json
  run floor1000_$i floor --subscribers 1000 --senders 2 --realtime --gso-batch --duration 10s
done
run sweep sweep --target both --counts 50,100,200,400 --swarms 2 --duration 10s --json $OUT/sweep.json --svg $OUT/sweep.svg
echo "### $(date +%T) done" >> $OUT/log
