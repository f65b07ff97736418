#!/usr/bin/env bash
# One device call on the GPU machine (see BENCHMARKS.md, WebGPU): conformance first, then the bench.
# Run from the repo root with .carry and .bundle-webgpu carried; results go to $OUT.
#   packages/webgpu/scripts/device-run.sh tune    # conformance (default tiles + candidates) + tile sweep,
#                                                 # ceiling, forward-only flash sweep, sgmat sweep
#   packages/webgpu/scripts/device-run.sh full    # conformance + ceiling, flash fwd/bwd/standard, N=65536, sgmat
#   packages/webgpu/scripts/device-run.sh fullmatrix  # the whole full conformance matrix (288 cases), nothing else
set -uo pipefail
mode="${1:-tune}"
seed="${SEED:-20261123}"
out="${OUT:-/tmp/out}"
mkdir -p "$out"
source .carry/setup.sh
cd .bundle-webgpu
dn=./dawn.node
if [ "$mode" = fullmatrix ]; then  # the whole full conformance matrix, one process per head dim, nothing else
  for d in 32 64 80 96 128 256; do
    CONF_FILTER=" d$d " timeout 400 node device-conformance.mjs $dn "$out/conformance-full-d$d.json" "$seed" full > "$out/conformance-full-d$d.log" 2>&1 &
  done
  wait
  tail -n 3 "$out"/conformance-full-d*.log
  exit 0
fi
# conformance: ci + full cases with Nq, Nk <= 129, all dtypes (default tiles), and the f16 cases on sgmat
timeout 150 node device-conformance.mjs $dn "$out/conformance.json" "$seed" plain 2>&1 | tail -8
timeout 90 node device-conformance.mjs $dn "$out/conformance-sgmat.json" "$seed" sgmat 2>&1 | tail -6
# further subgroup-matrix shapes the sgmat sweep may pick (JSON, space-separated)
for t in ${SGMAT_EXTRA:-}; do
  timeout 90 node device-conformance.mjs $dn "$out/conformance-sgmat-$(echo "$t" | tr -dc 'A-Za-z0-9' | head -c 40).json" "$seed" sgmat "$t" 2>&1 | tail -2
done
for t in ${EXTRA_TILES:-}; do
  timeout 200 node device-conformance.mjs $dn "$out/conformance-$(echo "$t" | tr -dc 'A-Za-z0-9' | head -c 40).json" "$seed" plain "$t" 2>&1 | tail -3
done
if [ "$mode" = tune ]; then
  timeout 330 node webgpu-bench.mjs --dawn $dn --out "$out/bench.json" --sections tiles,ceiling,flash,sgmat --fwd-only 2>&1 | grep -v '^ - \|^$'
else
  timeout 330 node webgpu-bench.mjs --dawn $dn --out "$out/bench.json" --sections ${SECTIONS:-ceiling,n65536,flash,sgmat} 2>&1 | grep -v '^ - \|^$'
fi
