#!/bin/bash
# Compare kernel variants on the GPU machine in one command. Each variant is one environment assignment
# (e.g. FLASHATTN_CUDA_FWD=wgmma64, FLASHATTN_CUDA_BWD=2x4b): conformance (full matrix, D = 64 and 128) per
# variant, memcheck + racecheck with the first one, then the quick benchmark per variant and the PyTorch peer;
# prints fwd and bwd ratios to torch flash per variant last.
#   VARIANTS="FLASHATTN_CUDA_FWD=mma FLASHATTN_CUDA_FWD=wgmma64" bash packages/cuda/bench/device-variants.sh
# (The wgmma backward's modes were compared with this script's predecessor, bench/device-modes.sh, at commit
# 73abd7c.) Needs .carry (Node) and .bundle-cuda (device-run.mjs, flashattn_cuda.node).
set -u
cd "$(dirname "$0")/../../.."
source .carry/setup.sh >/dev/null 2>&1
BUN=$PWD/.bundle-cuda
export FLASHATTN_CUDA_ADDON=$BUN/flashattn_cuda.node
OUT=${OUT:-/tmp/cuda-out}
W=/tmp/cuda-work; rm -rf $W; mkdir -p $W $OUT
VARIANTS=${VARIANTS:-FLASHATTN_CUDA_FWD=mma FLASHATTN_CUDA_FWD=wgmma}
FIRST=${VARIANTS%% *}
t0=$(date +%s)
stamp() { echo "[$(( $(date +%s) - t0 )) s] $*"; }
tag() { echo "$1" | tr '=' '-'; }
for v in $VARIANTS; do
  for d in 64 128; do
    env "$v" timeout 200 node $BUN/device-run.mjs conformance --matrix full --filter " d$d " > $W/conf-$(tag $v)-d$d.log 2>&1 &
  done
done
env "$FIRST" timeout 200 node $BUN/device-run.mjs conformance --matrix smoke --deterministic > $W/conf-det.log 2>&1 &
wait
stamp "conformance done"
if [ -z "${NO_SAN:-}" ]; then
  env "$FIRST" timeout 240 compute-sanitizer --tool memcheck --error-exitcode 9 node $BUN/device-run.mjs sanitize > $W/memcheck.log 2>&1
  echo "memcheck rc=$?" >> $W/memcheck.log
  env "$FIRST" timeout 300 compute-sanitizer --tool racecheck --racecheck-report hazard --error-exitcode 9 node $BUN/device-run.mjs sanitize --dtypes float16 > $W/racecheck.log 2>&1
  echo "racecheck rc=$?" >> $W/racecheck.log
  stamp "sanitizers done"
fi
for v in $VARIANTS; do
  env "$v" timeout 150 node $BUN/device-run.mjs bench --quick --dtypes ${DTYPES:-bfloat16} --json $OUT/ours-$(tag $v).json > $W/ours-$(tag $v).log 2>&1
  stamp "ours bench $v done"
done
PYTHONUNBUFFERED=1 timeout 200 python3 apps/bench/src/cuda-sdpa-peer.py --quick --json $OUT/peer.json > $W/peer.log 2>&1
stamp "peer bench done"
node -e '
  const fs = require("fs"); const out = process.argv[1]; const vs = process.argv.slice(2);
  const peer = JSON.parse(fs.readFileSync(out + "/peer.json")).results.filter((r) => r.impl === "flash");
  const k = (r) => [r.dtype, r.headDim, r.causal, r.seqlen].join(" ");
  const ours = vs.map((v) => new Map(JSON.parse(fs.readFileSync(out + "/ours-" + v + ".json")).results.map((r) => [k(r), r])));
  console.log("fwd / bwd TFLOP/s (ratio to torch flash); variants: " + vs.join(", "));
  for (const p of peer) {
    const cells = ours.map((m) => { const r = m.get(k(p)); return r ? r.fwdTflops.toFixed(0) + " (" + (r.fwdTflops / p.fwdTflops).toFixed(2) + ") / " + r.bwdTflops.toFixed(0) + " (" + (r.bwdTflops / p.bwdTflops).toFixed(2) + ")" : null; });
    if (cells.every((c) => c === null)) continue;
    console.log(k(p).padEnd(24) + " flash " + p.fwdTflops.toFixed(0) + " / " + p.bwdTflops.toFixed(0) + " | " + cells.map((c) => c ?? "-").join(" | "));
  }' $OUT $(for v in $VARIANTS; do tag $v; done) > $W/table.txt 2>&1
tar czf $OUT/logs.tar.gz -C $W .
echo "==== summary"
grep -H "^conformance" $W/conf-*.log | sed "s|^$W/||"
grep -h -E "sanitize cases done|ERROR SUMMARY|RACECHECK SUMMARY|rc=" $W/memcheck.log $W/racecheck.log 2>/dev/null
cat $W/table.txt
stamp "all done"
