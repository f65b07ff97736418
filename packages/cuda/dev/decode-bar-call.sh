#!/bin/bash
# Issue #12's bar in one device command (the baseline, the change and the sweep on the same machine):
#   bash packages/cuda/dev/decode-bar-call.sh        (on the GPU machine; carry .carry and .bundle-decode)
# .bundle-decode (bundle.mjs .bundle-decode, then the addons; gzip keeps the carry under 64 MiB) holds:
# device-run.mjs + flashattn_cuda.node (the change, default arches), base-device-run.mjs + base.node.gz (the
# baseline: the previous default build and its runner), sweep.node.gz (the change's objects linked with
# decode_attention.cu built with -DFLASHATTN_DECODE_SWEEP for sm_90a); they are unpacked into .bundle-cuda, the
# folder decode-device.sh and decode-sweep.sh read. Filling it (repo root; flock /tmp/cuda-build.lock around
# builds as in the CUDA briefs):
#   npx -y pnpm@10.34.8 --filter @flashattn/cuda build && node apps/bench/src/cuda/bundle.mjs $PWD/.bundle-decode
#   cp packages/cuda/build/Release/flashattn_cuda.node .bundle-decode/
#   gzip -c OLD.node > .bundle-decode/base.node.gz; cp OLD-device-run.mjs .bundle-decode/base-device-run.mjs
#   sweep.node.gz: in a copy of packages/cuda/build/Release, obj.target/flashattn_cuda/geni/cu/decode_attention.o
#   replaced by `nvcc -O3 -std=c++17 -Xcompiler -fPIC -gencode=arch=compute_90a,code=sm_90a
#   -DFLASHATTN_DECODE_SWEEP -c native/inference/decode_attention.cu`, relinked with the `cmd_` line of
#   .deps/Release/obj.target/flashattn_cuda.node.d, gzipped (no rebuild of the shared build directory).
# Stages (each one's results tarred into $OUT when it ends):
#   1. new:  decode-device.sh all with the change                         -> $OUT/new.tar.gz, new-table.txt
#   2. base: decode-device.sh $BASE_MODE (all; bench: no checks; skip) with the baseline files swapped in
#                                                                         -> $OUT/base.tar.gz, base-table.txt
#   3. sweep: decode-sweep.sh on sweep.node (VARIANTS, SPLIT_VARIANTS)   -> $OUT/sweep.tar.gz, sweep.txt
#   4. ncu of the change's decode kernel (one timed call each) at B = 1, L = 8192 and B = 64, L = 32768 -> ncu.txt
set -u
cd "$(dirname "$0")/../../.."
R=$PWD
BUN=$R/.bundle-cuda
mkdir -p $BUN
cp .bundle-decode/device-run.mjs .bundle-decode/report.mjs .bundle-decode/flashattn_cuda.node \
  .bundle-decode/base-device-run.mjs $BUN/
gunzip -c .bundle-decode/base.node.gz > $BUN/base.node
gunzip -c .bundle-decode/sweep.node.gz > $BUN/sweep.node
FINAL=$OUT
T=/tmp/decode-bar
rm -rf $T && mkdir -p $T
export CONF_TIMEOUT=${CONF_TIMEOUT:-45} GPT2_TIMEOUT=${GPT2_TIMEOUT:-25} MEMCHECK_TIMEOUT=${MEMCHECK_TIMEOUT:-50}
export BENCH_TIMEOUT=${BENCH_TIMEOUT:-40} PEER_TIMEOUT=${PEER_TIMEOUT:-60}
t0=$(date +%s)
el() { echo "[$(( $(date +%s) - t0 )) s] $*"; }
all_with() {  # name runner addon [mode: all (default) | bench | check]
  cp $BUN/device-run.mjs $T/cur-run.mjs && cp $BUN/flashattn_cuda.node $T/cur.node
  cp $2 $BUN/device-run.mjs && cp $3 $BUN/flashattn_cuda.node
  OUT=$T/$1 bash apps/bench/src/cuda/decode-device.sh ${4:-all} > $T/$1.out 2>&1
  cp $T/cur-run.mjs $BUN/device-run.mjs && cp $T/cur.node $BUN/flashattn_cuda.node
  cp $T/$1.out $T/$1/
  cp $T/$1/decode-table.txt $FINAL/$1-table.txt 2>/dev/null
  tar czf $FINAL/$1.tar.gz -C $T $1
  el "$1: $(grep -E '^(inference conformance|memcheck)' $T/$1.out | tr '\n' ' ')"
  grep -E '^L >= 8k' $T/$1/decode-table.txt
}
all_with new $R/.bundle-decode/device-run.mjs $R/.bundle-decode/flashattn_cuda.node
[ "${BASE_MODE:-all}" = skip ] || all_with base $BUN/base-device-run.mjs $BUN/base.node ${BASE_MODE:-all}
mkdir -p $T/sweep
OUT=$T/sweep FLASHATTN_CUDA_ADDON=$BUN/sweep.node bash packages/cuda/dev/decode-sweep.sh > $T/sweep.out 2>&1
cp $T/sweep.out $T/sweep/
cp $T/sweep/decode-sweep.txt $FINAL/sweep.txt 2>/dev/null
tar czf $FINAL/sweep.tar.gz -C $T sweep
el "sweep: $(grep -E '^\[' $T/sweep.out | tr '\n' ' ')"
source .carry/setup.sh >/dev/null 2>&1
export FLASHATTN_CUDA_ADDON=$BUN/flashattn_cuda.node
for bl in ${NCU_SHAPES:-"1:8192" "64:32768"}; do
  timeout ${NCU_TIMEOUT:-40} ncu --target-processes all --kernel-name regex:decode_attention --launch-skip 3 \
    --launch-count 1 --section SpeedOfLight --section LaunchStats --section Occupancy --section WarpStateStats \
    --section SchedulerStats --section MemoryWorkloadAnalysis \
    node $BUN/device-run.mjs decode-bench --batches ${bl%%:*} --lens ${bl#*:} --layouts contiguous --iters 1 \
    >> $FINAL/ncu.txt 2>&1
  el "ncu B=${bl%%:*} L=${bl#*:} rc=$?"
done
