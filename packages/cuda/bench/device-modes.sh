#!/bin/bash
# Compare the wgmma backward's modes (FLASHATTN_CUDA_WGMMA_MODE) on the GPU machine in one command. The mode
# switch and its instantiations exist at commit 73abd7c (the measured table is in native/inst/bwd_wgmma_sm90a.cu);
# later builds instantiate only the chosen modes and ignore the variable. The script: conformance (full matrix, D = 64 and 128) per mode, memcheck + racecheck with the
# default mode, then the quick bf16 benchmark per mode and the PyTorch peer; prints bwd ratios per mode last.
#   MODES="0 4 6 16 20" bash packages/cuda/bench/device-modes.sh
# Needs .carry (Node) and .bundle-cuda (device-run.mjs, flashattn_cuda.node). Writes $OUT/ours-m<mode>.json, peer.json.
set -u
cd "$(dirname "$0")/../../.."
source .carry/setup.sh >/dev/null 2>&1
BUN=$PWD/.bundle-cuda
export FLASHATTN_CUDA_ADDON=$BUN/flashattn_cuda.node FLASHATTN_CUDA_BWD=wgmma
OUT=${OUT:-/tmp/cuda-out}
W=/tmp/cuda-work; rm -rf $W; mkdir -p $W $OUT
MODES=${MODES:-0 4 6 16 20}
t0=$(date +%s)
stamp() { echo "[$(( $(date +%s) - t0 )) s] $*"; }
for m in $MODES; do
  for d in 64 128; do
    FLASHATTN_CUDA_WGMMA_MODE=$m timeout 200 node $BUN/device-run.mjs conformance --matrix full --filter " d$d " > $W/conf-m$m-d$d.log 2>&1 &
  done
done
FLASHATTN_CUDA_WGMMA_MODE=${SAN_MODE:-4} timeout 200 node $BUN/device-run.mjs conformance --matrix smoke --deterministic > $W/conf-det.log 2>&1 &
wait
stamp "conformance done"
if [ -z "${NO_SAN:-}" ]; then
  FLASHATTN_CUDA_WGMMA_MODE=${SAN_MODE:-4} timeout 240 compute-sanitizer --tool memcheck --error-exitcode 9 node $BUN/device-run.mjs sanitize > $W/memcheck.log 2>&1
  echo "memcheck rc=$?" >> $W/memcheck.log
  FLASHATTN_CUDA_WGMMA_MODE=${SAN_MODE:-4} timeout 300 compute-sanitizer --tool racecheck --racecheck-report hazard --error-exitcode 9 node $BUN/device-run.mjs sanitize --dtypes float16 > $W/racecheck.log 2>&1
  echo "racecheck rc=$?" >> $W/racecheck.log
  stamp "sanitizers done"
fi
for m in $MODES; do
  FLASHATTN_CUDA_WGMMA_MODE=$m timeout 150 node $BUN/device-run.mjs bench --quick --dtypes ${DTYPES:-bfloat16} --json $OUT/ours-m$m.json > $W/ours-m$m.log 2>&1
  stamp "ours bench mode $m done"
done
PYTHONUNBUFFERED=1 timeout 200 python3 apps/bench/src/cuda-sdpa-peer.py --quick --json $OUT/peer.json > $W/peer.log 2>&1
stamp "peer bench done"
node -e '
  const fs = require("fs"); const out = process.argv[1]; const ms = process.argv.slice(2);
  const peer = JSON.parse(fs.readFileSync(out + "/peer.json")).results.filter((r) => r.impl === "flash");
  const k = (r) => [r.dtype, r.headDim, r.causal, r.seqlen].join(" ");
  const ours = ms.map((m) => new Map(JSON.parse(fs.readFileSync(out + "/ours-m" + m + ".json")).results.map((r) => [k(r), r])));
  console.log("bwd TFLOP/s and ratio to torch flash; modes: " + ms.join(", "));
  for (const p of peer) {
    const cells = ours.map((m) => { const r = m.get(k(p)); return r ? r.bwdTflops.toFixed(0) + " " + (r.bwdTflops / p.bwdTflops).toFixed(2) : null; });
    if (cells.every((c) => c === null)) continue;
    console.log(k(p).padEnd(26) + " flash " + p.bwdTflops.toFixed(0) + " | " + cells.map((c) => c ?? "-").join(" | "));
  }' $OUT $MODES > $W/bwd-table.txt 2>&1
tar czf $OUT/logs.tar.gz -C $W .
echo "==== summary"
grep -H "^conformance" $W/conf-*.log | sed "s|^$W/||"
grep -h -E "sanitize cases done|ERROR SUMMARY|RACECHECK SUMMARY|rc=" $W/memcheck.log $W/racecheck.log 2>/dev/null
cat $W/bwd-table.txt
stamp "all done"
