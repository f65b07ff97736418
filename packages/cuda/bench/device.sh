#!/bin/bash
# The whole H100 run of @flashattn/cuda in one device command (see BENCHMARKS.md):
#   bash packages/cuda/bench/device.sh [full|quick|check|bench|profile]
# full: conformance + sanitizers + selftest + ncu profile + benchmark; quick: smaller benchmark;
# check: correctness only; bench: benchmark only; profile: Nsight Compute of one fwd and one bwd launch.
# Needs .carry (Node) and .bundle-cuda (device-run.mjs, report.mjs, flashattn_cuda.node) carried along.
# Writes $OUT/report.md, ours.json, peer.json, memory.json and logs.tar.gz; prints a short summary last.
set -u
cd "$(dirname "$0")/../../.."
source .carry/setup.sh >/dev/null 2>&1
BUN=$PWD/.bundle-cuda
export FLASHATTN_CUDA_ADDON=$BUN/flashattn_cuda.node
OUT=${OUT:-/tmp/cuda-out}
W=/tmp/cuda-work; rm -rf $W; mkdir -p $W $OUT
MODE=${1:-full}
t0=$(date +%s)
stamp() { echo "[$(( $(date +%s) - t0 )) s] $*"; }
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,power.draw,power.limit,temperature.gpu --format=csv > $W/gpu.txt 2>&1

# 1. Conformance, full matrix (fp32 / fp16 / bf16 x 6 head dims x 16 scenarios, fwd + bwd), one process per head dim.
if [ "$MODE" != bench ] && [ "$MODE" != profile ]; then
  for d in 32 64 80 96 128 256; do
    timeout 300 node $BUN/device-run.mjs conformance --matrix full --filter " d$d " --json $W/conf-d$d.json > $W/conf-d$d.log 2>&1 &
  done
  timeout 300 node $BUN/device-run.mjs conformance --matrix smoke --deterministic > $W/conf-det.log 2>&1 &
  wait
  stamp "conformance done"
  # 2. compute-sanitizer on the reduced case set.
  timeout 240 compute-sanitizer --tool memcheck --error-exitcode 9 node $BUN/device-run.mjs sanitize > $W/memcheck.log 2>&1
  echo "memcheck rc=$?" >> $W/memcheck.log
  timeout 300 compute-sanitizer --tool racecheck --racecheck-report hazard --error-exitcode 9 node $BUN/device-run.mjs sanitize --dtypes float16 > $W/racecheck.log 2>&1
  echo "racecheck rc=$?" >> $W/racecheck.log
  stamp "sanitizers done"
  timeout 120 node $BUN/device-run.mjs selftest > $W/selftest.log 2>&1
fi
# 2c. Nsight Compute on one forward and one backward launch (D=128, N=8192, bf16).
if { [ "$MODE" = profile ] || [ "$MODE" = full ]; } && [ -z "${NO_NCU:-}" ]; then
  timeout 200 ncu --section SpeedOfLight --section WarpStateStats --section ComputeWorkloadAnalysis --section MemoryWorkloadAnalysis --section Occupancy --section LaunchStats \
    -k regex:'flash_(fwd|bwd_dkdv)_kernel' --launch-skip 3 --launch-count 2 \
    node $BUN/device-run.mjs bench --dtypes bfloat16 --only D=128,N=8192,causal=false --iters 1 > $W/ncu.log 2>&1
  grep -E "flash_|Duration|Throughput|Pipe|Stall|Warp Cycles|Issued|Eligible|Registers|Shared Memory|Bank|Achieved|L1/TEX Hit|Mem Busy|Max Bandwidth|Executed Ipc" $W/ncu.log > $W/ncu-summary.txt
  stamp "profile done"
fi
# 3. Benchmark: ours, then PyTorch SDPA flash / cuDNN on the same shapes; memory at N = 16k, 64k.
if [ "$MODE" != check ] && [ "$MODE" != profile ]; then
  Q=; [ "$MODE" = quick ] && Q=--quick
  timeout 200 node $BUN/device-run.mjs bench $Q --json $OUT/ours.json > $W/ours.log 2>&1
  stamp "ours bench done"
  PYTHONUNBUFFERED=1 timeout 300 python3 apps/bench/src/cuda-sdpa-peer.py $Q --json $OUT/peer.json > $W/peer.log 2>&1
  stamp "peer bench done"
  timeout 120 node $BUN/device-run.mjs memory --json $OUT/memory.json > $W/memory.log 2>&1
  node $BUN/report.mjs $OUT/ours.json $OUT/peer.json $OUT/memory.json > $OUT/report.md 2>&1
fi
tar czf $OUT/logs.tar.gz -C $W .
echo "==== summary"
cat $W/gpu.txt
grep -h "^conformance" $W/conf-*.log
grep -h -E "^fail|Error" $W/conf-*.log | head -20
grep -h -E "sanitize cases done|ERROR SUMMARY|RACECHECK SUMMARY|rc=" $W/memcheck.log $W/racecheck.log 2>/dev/null
grep -h BAD $W/memcheck.log | head
grep -h "^selftest" $W/selftest.log 2>/dev/null
cat $W/memory.log 2>/dev/null
head -70 $W/ncu-summary.txt 2>/dev/null
grep -h "^ours" $W/ours.log 2>/dev/null | head -40
cp $W/ncu-summary.txt $OUT/ 2>/dev/null
stamp "all done"
