#!/usr/bin/env bash
# Device-attention conformance on the GPU machine (see BENCHMARKS.md, WebGPU): the whole `full` matrix
# (288 cases) in each layout, one process per (head dim, layout), in parallel. Run from the repo root
# with .carry and .bundle-webgpu carried (scripts/bundle.sh); results go to $OUT.
#   packages/webgpu/scripts/device-run.sh [layouts]   # default "contiguous padded packed"
# Each process writes conf-<layout>-d<D>.json and .log (into $OUT/conformance.tgz: few files come back
# from a device call); the last line of each log is printed and kept in $OUT/conformance.txt.
set -uo pipefail
layouts="${1:-contiguous padded packed}"
seed="${SEED:-20261206}"
res="${OUT:-/tmp/out}"
out=$(mktemp -d /tmp/webgpu-conf.XXXXXX)
mkdir -p "$res"
source .carry/setup.sh
cd .bundle-webgpu
for layout in $layouts; do
  for d in ${DIMS:-32 64 80 96 128 256}; do
    CONF_FILTER=" d$d " timeout "${CONF_TIMEOUT:-300}" node device-conformance.mjs ./dawn.node "$out/conf-$layout-d$d.json" "$seed" full "$layout" \
      > "$out/conf-$layout-d$d.log" 2>&1 &
  done
done
wait
tail -qn 1 "$out"/conf-*.log | tee "$res/conformance.txt"
tar czf "$res/conformance.tgz" -C "$out" .
