#!/bin/bash
# Issue #12's decode device command (first run 2026-12-07 16:05 UTC; BENCHMARKS.md "CUDA decode attention"):
#   1. decode-bar-call.sh: "new" = .bundle-decode/flashattn_cuda.node (the build under test) with every check
#      (inference conformance, GPT-2 cached generation, memcheck), bench and SDPA peer; "base" = base.node.gz (the
#      build to beat), bench only (BASE_MODE=${BASE_MODE:-bench}); the sweep of VARIANTS (default 5, 14, 16) and the
#      split sweep on SPLIT_VARIANTS (5, 16); ncu at NCU_SHAPES (B = 1, L = 8k and B = 64, L = 32k);
#   2. ours on the head-major layout (the cache as a strided view of (B, Hk, L, D) memory, SDPA's) beside contiguous;
#   3. SDPA on (B, L, Hk, D) memory (--layout blhd): the same-layout comparison.
# Carry [".carry", ".bundle-decode"] (filled as decode-bar-call.sh's header says); on the device:
#   bash packages/cuda/dev/decode-next-call.sh          (about 6-8 minutes)
cd "$(dirname "$0")/../../.."
source .carry/setup.sh >/dev/null 2>&1
# Only 8 files come back from $OUT (the 16:05 UTC call lost its split-sweep table to that): decode-bar-call.sh
# writes into /tmp/dnc/bar, and $FINAL gets bar.tar.gz (all of it) beside the few files read first.
FINAL=$OUT
rm -rf /tmp/dnc && mkdir -p /tmp/dnc/bar
OUT=/tmp/dnc/bar BASE_MODE=${BASE_MODE:-bench} VARIANTS=${VARIANTS:-"5:4 14:4 16:4"} SPLITS_2C=0 \
  SPLIT_VARIANTS=${SPLIT_VARIANTS:-"5 16"} NCU_SHAPES=${NCU_SHAPES:-"1:8192 64:32768"} NCU_TIMEOUT=25 \
  bash packages/cuda/dev/decode-bar-call.sh > /tmp/dnc/bar/decode-bar.log 2>&1
tar czf $FINAL/bar.tar.gz -C /tmp/dnc bar
cp /tmp/dnc/bar/decode-bar.log /tmp/dnc/bar/new-table.txt /tmp/dnc/bar/sweep.txt $FINAL/ 2>/dev/null
export FLASHATTN_CUDA_ADDON=$PWD/.bundle-decode/flashattn_cuda.node
timeout 90 node .bundle-decode/device-run.mjs decode-bench --layouts headmajor,contiguous --json /tmp/headmajor.json > /tmp/headmajor.log 2>&1
tar czf $FINAL/headmajor.tar.gz -C /tmp headmajor.json headmajor.log
grep -E "^ours" /tmp/headmajor.log | head -80
# SDPA on the same memory layout as ours (B, L, Hk, D): the same-layout comparison
PYTHONUNBUFFERED=1 timeout 70 python3 apps/bench/src/cuda/decode-sdpa-peer.py --layout blhd --json /tmp/peer-blhd.json > /tmp/peer-blhd.log 2>&1
tar czf $FINAL/headmajor.tar.gz -C /tmp headmajor.json headmajor.log peer-blhd.json peer-blhd.log
grep -E "^sdpa" /tmp/peer-blhd.log | head -90
