#!/usr/bin/env bash
# One device call on the GPU machine (see BENCHMARKS.md, WebGPU): conformance first, then the bench.
# Run from the repo root with .carry and .bundle-webgpu carried; results go to $OUT.
#   packages/webgpu/scripts/device-run.sh tune    # conformance (default tiles + candidates) + tile sweep,
#                                                 # ceiling, forward-only flash sweep, sgmat sweep
#   packages/webgpu/scripts/device-run.sh full    # conformance + ceiling, flash fwd/bwd/standard, N=65536, sgmat
#   packages/webgpu/scripts/device-run.sh fullmatrix  # the whole full conformance matrix (288 cases), nothing else
#   packages/webgpu/scripts/device-run.sh bwd     # full matrix (default tiles) + backward tile sweep + flash
#                                                 # fwd/bwd/standard sweep (with the best backward tiles) + full
#                                                 # matrix at d64/d128 with those tiles when they are not the defaults
set -uo pipefail
mode="${1:-tune}"
seed="${SEED:-20261123}"
out="${OUT:-/tmp/out}"
mkdir -p "$out"
source .carry/setup.sh
cd .bundle-webgpu
dn=./dawn.node
fullmatrix() {  # the whole full conformance matrix, one process per head dim; $1 = file tag, $2 = override
  for d in ${DIMS:-32 64 80 96 128 256}; do
    CONF_FILTER=" d$d " timeout 400 node device-conformance.mjs $dn "$out/conf$1-d$d.json" "$seed" full ${2:+"$2"} > "$out/conf$1-d$d.log" 2>&1 &
  done
  wait
  tail -qn 1 "$out"/conf$1-d*.log
}
if [ "$mode" = fullmatrix ]; then
  fullmatrix -full
  exit 0
fi
if [ "$mode" = bwd ]; then  # at most 8 files come back from $OUT: logs go into one tarball
  res="$out"; out=$(mktemp -d /tmp/webgpu-bwd.XXXXXX)
  fullmatrix -full
  timeout 400 node webgpu-bench.mjs --dawn $dn --out "$out/bench.json" --sections bwdtiles,flash 2>&1 | grep -v '^ - \|^$' > "$out/bench.log"
  grep -a '^bwd tiles' "$out/bench.log"
  # the sweep's best backward tiles, when they are not the defaults: the full matrix again with them
  best=$(node -e 'const r=JSON.parse(require("fs").readFileSync(process.argv[1]));const d=r.bwdTiles.filter(x=>x.varies==="default");const b=r.bestBwdTiles;const same=[64,128].every(D=>JSON.stringify(b[D])===JSON.stringify(d.find(x=>x.D===D).tiles));if(!same)console.log(JSON.stringify({bwd:b}))' "$out/bench.json" 2>/dev/null)
  if [ -n "$best" ]; then echo "best backward tiles (not the defaults): $best"; DIMS="64 128" fullmatrix -best "$best"; fi
  grep -a '^flash' "$out/bench.log" | sed 's/ B=[0-9]* H=[0-9]*//'
  cp "$out/bench.json" "$res/bench.json"
  tar czf "$res/results.tgz" -C "$out" .
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
