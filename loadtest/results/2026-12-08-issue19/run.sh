#!/bin/bash
# Session 18: issue 19's packet-path change (per-viewer downlink estimate and layer policy,
# publisher-leg repair) against main before it, alternating, on a quiet machine, both built
# with the release profile (codegen-units = 1, lto = "fat"), and the estimation switched off
# (CLASSRELAY_MEDIA__DOWNLINK_ADAPTATION=false, inherited by the server the loadtest starts).
# before = main 0a08f14 (/work/bin-19before), after = branch r19 (/work/bin-19after).
# One load generator (before's) for every run. Run from a checkout of main (its config).
LT=/work/bin-19before/classrelay-loadtest
declare -A BIN=([before]=/work/bin-19before/classrelay [after]=/work/bin-19after/classrelay [off]=/work/bin-19after/classrelay)
run() {
  local name=$1 w=$2; shift 2
  echo "=== $name $w $(date +%T) load: $(cut -d' ' -f1 /proc/loadavg)"
  if [ "$w" = off ]; then export CLASSRELAY_MEDIA__DOWNLINK_ADAPTATION=false; else unset CLASSRELAY_MEDIA__DOWNLINK_ADAPTATION; fi
  "$LT" "$@" --server-bin "${BIN[$w]}" 2>&1 | tail -25
  unset CLASSRELAY_MEDIA__DOWNLINK_ADAPTATION
}
for i in $(seq 1 ${ROUNDS:-4}); do
  if [ $((i%2)) = 1 ]; then o="after before"; else o="before after"; fi
  for w in $o; do run c-100-30s $w broadcast --target classrelay --subscribers 100 --duration 30s; done
done
for w in off after; do run c-100-30s $w broadcast --target classrelay --subscribers 100 --duration 30s; done
for w in before after off; do run both-100 $w broadcast --target both --subscribers 100 --duration 6s; done
for w in after before off after before; do run pin-500 $w broadcast --subscribers 500 --swarms 2 --duration 10s; done
echo DONE
