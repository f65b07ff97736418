#!/bin/bash
# Issue #12: the tensor-core decode variants (native/inference/decode_attention.cu, decode_attention_mma_kernel,
# FLASHATTN_DECODE_VARIANT 17-20; they exist only in a -DFLASHATTN_DECODE_SWEEP build) checked against the float64
# reference and timed beside variant 16 (Tune16, the default) in one device command of ~2-3 minutes:
#   source .carry/setup.sh; bash packages/cuda/dev/decode-mma-call.sh   (repo root on the GPU machine; carry .carry and
#                                                                .bundle-mma; nothing else of a bundle is read)
# Variants (KT keys per warp tile, NSTAGE ring slots per warp, MINB CTAs per SM, LAZY rescale):
#   16 = Tune16 (scalar FMAs, the default), 17 = (16, 3, 2, -), 18 = (16, 2, 3, -), 19 = (16, 3, 2, LAZY),
#   20 = (32, 2, 1, LAZY).
# Stages (each bounded by timeout; everything lands in $OUT/mma.tar.gz, the headlines in $OUT/mma-summary.txt):
#   1. packages/cuda/dev/decode-sweep.sh on the sweep addon, VARIANTS (variant:CTAs per SM c): per variant
#      decode-bench --check (the 16-bit KV-cache scenarios + DECODE_CHECKS against the float64 reference; a variant
#      that fails is not timed), then bf16 decode Hq 32 / Hk 8 / D 128 at B = 1, 4, 16, 64 x L = 8k, 32k, 128k,
#      contiguous and paged, with the heuristic's splits for c and 2c CTAs per SM; the joined table last;
#   2. forced split counts at B = 1 (L = 8k, 32k, 128k) for SPLIT_VARIANTS (16 and 17);
#   3. ncu at B = 64, L = 32k of NCU_VARIANTS (16 and 17): duration, DRAM and issue-slot use, instructions executed.
# .bundle-mma (git-ignored) holds sweep.node.xz and device-run.mjs.xz (xz, as .carry's node.xz: 1.5 MB where gzip
# took 3.6, the carried tree's 64 MiB being nearly full with .carry and .bundle-lead); how they were made:
#   sweep.node: a copy of packages/cuda/build/Release (the lead's build of 18:15 UTC), its
#     obj.target/flashattn_cuda/geni/cu/decode_attention.o replaced by `nvcc -O3 -std=c++17 -Xcompiler -fPIC
#     -gencode=arch=compute_90a,code=sm_90a -DFLASHATTN_DECODE_SWEEP -c native/inference/decode_attention.cu`,
#     relinked with the cmd_ line of .deps/Release/obj.target/flashattn_cuda.node.d (decode-bar-call.sh's recipe),
#     `strip --strip-unneeded` (host symbols only), `xz -9e`;
#   device-run.mjs: node apps/bench/src/cuda/bundle.mjs DIR from the same tree, same minute.
set -u
cd "$(dirname "$0")/../../.."
R=$PWD
M=$R/.bundle-mma
command -v node >/dev/null 2>&1 || source .carry/setup.sh >/dev/null 2>&1
FINAL=${OUT:-/tmp/mma-out}
W=/tmp/mma-run
rm -rf $W && mkdir -p $W/bun $FINAL
xz -dc $M/sweep.node.xz > /tmp/mma-sweep.node
xz -dc $M/device-run.mjs.xz > $W/bun/device-run.mjs
ADDON=/tmp/mma-sweep.node
t0=$(date +%s)
el() { echo "[$(( $(date +%s) - t0 )) s] $*" | tee -a $W/run.log; }
pack() { tar czf $FINAL/mma.tar.gz --exclude=bun -C /tmp mma-run 2>/dev/null; }
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,clocks.mem --format=csv > $W/gpu.txt 2>&1

# 1. check + time every variant (decode-sweep.sh writes into $W/sweep)
OUT=$W/sweep FLASHATTN_CUDA_ADDON=$ADDON SWEEP_BUNDLE=$W/bun VARIANTS=${VARIANTS:-"16:4 17:2 18:3 19:2 20:1"} \
  VARIANT_TIMEOUT=${VARIANT_TIMEOUT:-32} SPLITS_2C=1 timeout ${SWEEP_TIMEOUT:-140} \
  bash packages/cuda/dev/decode-sweep.sh > $W/sweep.out 2>&1
el "sweep rc=$?: $(grep -E '^\[' $W/sweep.out | tr '\n' ' ')"
tar xzf $W/sweep/decode-sweep.tar.gz -C $W/sweep 2>/dev/null  # the per-variant logs and JSON, unpacked
pack

# 2. forced splits at B = 1 (the heuristic's counts differ with c: 33 at c = 2, 57-66 at c = 4)
export FLASHATTN_CUDA_ADDON=$ADDON
for v in ${SPLIT_VARIANTS:-16 17}; do
  [ $(( $(date +%s) - t0 )) -gt 175 ] && { el "split sweep v$v skipped (time)"; continue; }
  FLASHATTN_DECODE_VARIANT=$v timeout 16 node $W/bun/device-run.mjs decode-bench --splits ${SPLIT_COUNTS:-16,24,33,48,66} \
    --batches 1 --lens 8192,32768,131072 --layouts contiguous --iters 10 --json $W/splits-v$v.json \
    > $W/splits-v$v.log 2>&1
  el "split sweep v$v rc=$?"
done
pack

# 3. ncu of one timed call at B = 64, L = 32k (the shape whose ncu showed Tune16 issue-bound)
for v in ${NCU_VARIANTS:-16 17}; do
  [ $(( $(date +%s) - t0 )) -gt 185 ] && { el "ncu v$v skipped (time)"; continue; }
  FLASHATTN_DECODE_VARIANT=$v timeout 22 ncu --target-processes all --kernel-name regex:decode_attention \
    --launch-skip 3 --launch-count 1 --section SpeedOfLight --section LaunchStats --section Occupancy \
    --section SchedulerStats --section WarpStateStats --section InstructionStats \
    node $W/bun/device-run.mjs decode-bench --batches 64 --lens 32768 --layouts contiguous --iters 1 \
    > $W/ncu-v$v.txt 2>&1
  el "ncu v$v rc=$?"
done
pack

{
  echo "run-mma.sh: $(head -2 $W/gpu.txt | tail -1)"
  cat $W/run.log
  echo "--- checks (decode-bench --check: 16-bit KV-cache scenarios + DECODE_CHECKS vs the float64 reference)"
  for f in $W/sweep/v*.log; do
    [ -f "$f" ] && echo "$(basename $f .log): $(grep -E '^decode-check:' $f) $(grep -E 'not timed|Error' $f | head -2 | tr '\n' ' ')$(tail -1 $f)"
  done
  grep -hE '^\s*FAIL' $W/sweep/v*.log 2>/dev/null | head -12
  echo "--- sweep table (fraction of copy, best of c / 2c CTAs per SM, splits in brackets)"
  cat $W/sweep/decode-sweep.txt 2>/dev/null
  echo "--- forced splits, B = 1"
  grep -hE '^ours' $W/splits-v*.log 2>/dev/null | head -40
  echo "--- ncu, B = 64, L = 32k (ncu's clocks)"
  for v in ${NCU_VARIANTS:-16 17}; do
    echo "v$v: $(grep -E '^\s+(Duration|DRAM Throughput|One or More Eligible|Issued Warp Per Scheduler|Registers Per Thread|Achieved Occupancy|Executed Instructions|Dynamic Shared Memory Per Block)\s\s' $W/ncu-v$v.txt 2>/dev/null \
      | awk '{v=$NF; u=$(NF-1); $NF=""; $(NF-1)=""; gsub(/^ +| +$/, ""); printf "%s %s %s; ", $0, u, v}')"
  done
} > $FINAL/mma-summary.txt 2>&1
cp $FINAL/mma-summary.txt $W/
pack
cat $FINAL/mma-summary.txt
