#!/bin/bash
# The whole H100 run of @flashattn/cuda in one device command (see BENCHMARKS.md):
#   bash packages/cuda/bench/device.sh [full|quick|check|bench|profile]
# full: conformance + sanitizers + selftest + ncu profile + benchmark; quick: smaller benchmark;
# check: correctness only; bench: benchmark only; profile: Nsight Compute of one fwd and one bwd launch.
# bwd: conformance + sanitizers with FLASHATTN_CUDA_BWD=${BWD_CHECK:-2x4} (and conformance on D = 64, 128 with
#      $BWD_CHECK2 if set), then the quick benchmark once per backward kernel in ${BWD_VARIANTS:-16x1 2x4 2x4s}
#      and the peer; prints bwd ratios per variant last. BWD_FULL=1 adds the full benchmark + memory with the
#      variant fastest at D = 64, and report.md.
# prof: Nsight Compute of one backward call (D_i, dK/dV/dQ, dQ conversion) at D = 64, N = 4096, bf16, non-causal,
#      then the quick bf16 backward benchmark for each "VARIANT[:POOL_RELEASE]" in ${PROF_VARIANTS:-2x4b:1 2x4b 2x4r}
#      (":1" = FLASHATTN_CUDA_POOL_RELEASE=1, the driver's pool default) and the peer; prints bwd ratios last.
#      PROF_CHECK=<variant> first runs conformance + sanitizers (as in check) with that backward kernel.
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
if [ "$MODE" = bwd ]; then export FLASHATTN_CUDA_BWD=${BWD_CHECK:-2x4}; fi
t0=$(date +%s)
stamp() { echo "[$(( $(date +%s) - t0 )) s] $*"; }
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,power.draw,power.limit,temperature.gpu --format=csv > $W/gpu.txt 2>&1

# 1. Conformance, full matrix (fp32 / fp16 / bf16 x 6 head dims x 16 scenarios, fwd + bwd), one process per head dim.
if [ "$MODE" = prof ] && [ -n "${PROF_CHECK:-}" ]; then export FLASHATTN_CUDA_BWD=$PROF_CHECK; fi
if [ "$MODE" != bench ] && [ "$MODE" != profile ] && { [ "$MODE" != prof ] || [ -n "${PROF_CHECK:-}" ]; }; then
  for d in 32 64 80 96 128 256; do
    timeout 300 node $BUN/device-run.mjs conformance --matrix full --filter " d$d " --json $W/conf-d$d.json > $W/conf-d$d.log 2>&1 &
  done
  timeout 300 node $BUN/device-run.mjs conformance --matrix smoke --deterministic > $W/conf-det.log 2>&1 &
  if [ "$MODE" = bwd ] && [ -n "${BWD_CHECK2:-}" ]; then  # a second kernel choice on D = 64 and 128
    for d in 64 128; do
      FLASHATTN_CUDA_BWD=$BWD_CHECK2 timeout 300 node $BUN/device-run.mjs conformance --matrix full --filter " d$d " > $W/conf-$BWD_CHECK2-d$d.log 2>&1 &
    done
  fi
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
if [ "$MODE" = prof ]; then
  unset FLASHATTN_CUDA_BWD
  [ -z "${NO_NCU:-}" ] && timeout 240 ncu --section SpeedOfLight --section WarpStateStats --section SchedulerStats --section Occupancy --section LaunchStats \
    --section ComputeWorkloadAnalysis --section MemoryWorkloadAnalysis --metrics lts__t_sectors_op_red.sum,lts__t_sectors_op_atom.sum,regex:smsp__average_warps_issue_stalled_.*_per_issue_active.ratio,regex:sm__pipe_.*_cycles_active.avg.pct_of_peak_sustained_active \
    -k regex:'flash_bwd' --launch-skip 3 --launch-count 3 \
    node $BUN/device-run.mjs bench --dtypes bfloat16 --only D=64,N=4096,causal=false --iters 1 --bwd-only > $W/ncu.log 2>&1
  grep -E "flash_|Duration|Throughput|Pipe|Stall|Warp Cycles|Issued|Eligible|Registers|Shared Memory|Bank|Achieved|Theoretical Occ|L1/TEX Hit|L2 Hit|Executed Ipc|lts__t_sectors|One or More|Eligible Warps|stalled|sm__pipe" $W/ncu.log > $W/ncu-summary.txt
  cp $W/ncu.log $OUT/ 2>/dev/null
  stamp "profile done"
  for vp in ${PROF_VARIANTS:-2x4b:1 2x4b 2x4r}; do
    v=${vp%%:*}; rel=0; [ "$vp" != "$v" ] && rel=${vp#*:}
    tag=$v; [ "$rel" = 1 ] && tag=$v-rel
    FLASHATTN_CUDA_POOL_RELEASE=$rel FLASHATTN_CUDA_BWD=$v timeout 150 node $BUN/device-run.mjs bench --quick --dtypes bfloat16 --json $OUT/ours-$tag.json > $W/ours-$tag.log 2>&1
    stamp "ours bench $tag done"
    TAGS="${TAGS:-} $tag"
  done
  PYTHONUNBUFFERED=1 timeout 200 python3 apps/bench/src/cuda-sdpa-peer.py --quick --json $OUT/peer.json > $W/peer.log 2>&1
  stamp "peer bench done"
  node -e '
    const fs = require("fs"); const out = process.argv[1]; const vs = process.argv.slice(2);
    const peer = JSON.parse(fs.readFileSync(out + "/peer.json")).results.filter((r) => r.impl === "flash" && r.dtype === "bfloat16");
    const k = (r) => [r.dtype, r.headDim, r.causal, r.seqlen].join(" ");
    const ours = vs.map((v) => new Map(JSON.parse(fs.readFileSync(out + "/ours-" + v + ".json")).results.map((r) => [k(r), r])));
    console.log("bwd TFLOP/s and ratio to torch flash (fwd ratio); variants: " + vs.join(", "));
    for (const p of peer) {
      const cells = ours.map((m) => { const r = m.get(k(p)); return r ? r.bwdTflops.toFixed(0) + " " + (r.bwdTflops / p.bwdTflops).toFixed(2) + " (" + (r.fwdTflops / p.fwdTflops).toFixed(2) + ")" : "-"; });
      console.log(k(p).padEnd(26) + " flash " + p.bwdTflops.toFixed(0) + " | " + cells.join(" | "));
    }' $OUT $TAGS > $W/bwd-table.txt 2>&1
elif [ "$MODE" = bwd ]; then
  unset FLASHATTN_CUDA_BWD
  for v in ${BWD_VARIANTS:-16x1 2x4 2x4s}; do
    FLASHATTN_CUDA_BWD=$v timeout 150 node $BUN/device-run.mjs bench --quick --json $OUT/ours-$v.json > $W/ours-$v.log 2>&1
    stamp "ours bench $v done"
  done
  PYTHONUNBUFFERED=1 timeout 200 python3 apps/bench/src/cuda-sdpa-peer.py --quick --json $OUT/peer.json > $W/peer.log 2>&1
  stamp "peer bench done"
  for v in ${BWD_VARIANTS:-16x1 2x4 2x4s}; do node $BUN/report.mjs $OUT/ours-$v.json $OUT/peer.json > $OUT/report-$v.md 2>&1; done
  node -e '
    const fs = require("fs"); const out = process.argv[1]; const vs = process.argv.slice(2);
    const peer = JSON.parse(fs.readFileSync(out + "/peer.json")).results.filter((r) => r.impl === "flash");
    const k = (r) => [r.dtype, r.headDim, r.causal, r.seqlen].join(" ");
    const ours = vs.map((v) => new Map(JSON.parse(fs.readFileSync(out + "/ours-" + v + ".json")).results.map((r) => [k(r), r])));
    console.log("bwd TFLOP/s and ratio to torch flash (fwd+bwd ratio); variants: " + vs.join(", "));
    for (const p of peer) {
      const cells = ours.map((m) => { const r = m.get(k(p)); return r ? r.bwdTflops.toFixed(0) + " " + (r.bwdTflops / p.bwdTflops).toFixed(2) + " (" + (r.fwdbwdTflops / p.fwdbwdTflops).toFixed(2) + ")" : "-"; });
      console.log(k(p).padEnd(26) + " flash " + p.bwdTflops.toFixed(0) + " | " + cells.join(" | "));
    }' $OUT ${BWD_VARIANTS:-16x1 2x4 2x4s} > $W/bwd-table.txt 2>&1
  if [ -n "${BWD_FULL:-}" ]; then  # full benchmark + memory with the variant of highest mean bwd TFLOP/s at D = 64
    BEST=$(node -e '
      const fs = require("fs"); const out = process.argv[1]; let best = "", bv = -1;
      for (const v of process.argv.slice(2)) {
        if (v === "16x1") continue;
        const rs = JSON.parse(fs.readFileSync(out + "/ours-" + v + ".json")).results.filter((r) => r.headDim === 64);
        const m = rs.reduce((a, r) => a + r.bwdTflops, 0) / rs.length;
        if (m > bv) { bv = m; best = v; }
      }
      console.log(best);' $OUT ${BWD_VARIANTS:-16x1 2x4 2x4s})
    echo "full benchmark with FLASHATTN_CUDA_BWD=$BEST" >> $W/bwd-table.txt
    FLASHATTN_CUDA_BWD=$BEST timeout 200 node $BUN/device-run.mjs bench --json $OUT/ours.json > $W/ours.log 2>&1
    stamp "ours full bench done"
    PYTHONUNBUFFERED=1 timeout 200 python3 apps/bench/src/cuda-sdpa-peer.py --json $OUT/peer-full.json > $W/peer-full.log 2>&1
    stamp "peer full bench done"
    FLASHATTN_CUDA_BWD=$BEST timeout 120 node $BUN/device-run.mjs memory --json $OUT/memory.json > $W/memory.log 2>&1
    node $BUN/report.mjs $OUT/ours.json $OUT/peer-full.json $OUT/memory.json > $OUT/report.md 2>&1
  fi
elif [ "$MODE" != check ] && [ "$MODE" != profile ]; then
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
grep -H "^conformance" $W/conf-*.log | sed "s|^$W/||"
grep -h -E "^fail|Error" $W/conf-*.log | head -20
grep -h -E "sanitize cases done|ERROR SUMMARY|RACECHECK SUMMARY|rc=" $W/memcheck.log $W/racecheck.log 2>/dev/null
grep -h BAD $W/memcheck.log | head
grep -h "^selftest" $W/selftest.log 2>/dev/null
cat $W/memory.log 2>/dev/null
head -70 $W/ncu-summary.txt 2>/dev/null
grep -h "^ours" $W/ours.log 2>/dev/null | head -40
cp $W/ncu-summary.txt $OUT/ 2>/dev/null
cat $W/bwd-table.txt 2>/dev/null
stamp "all done"
