#!/bin/bash
# The decode attention tuning sweep (issue #12) in one device command, ~10 s a variant:
#   bash packages/cuda/dev/decode-sweep.sh            (on the GPU machine, from anywhere; $OUT as in decode-device.sh)
# Needs a sweep build of the addon in .bundle-cuda (the variants exist only with -DFLASHATTN_DECODE_SWEEP):
#   FLASHATTN_CUDA_ARCH='-gencode=arch=compute_90a,code=sm_90a -DFLASHATTN_DECODE_SWEEP' \
#     npx -y pnpm@10.34.8 --filter @flashattn/cuda build   (then bundle.mjs + cp as for decode-device.sh)
# For each FLASHATTN_DECODE_VARIANT v (decode_attention.cu's launch_16bit_d128) with its CTAs per SM c
# (__launch_bounds__ min blocks; SPLITS_2C=0: c only): device-run.mjs decode-bench --check (the 16-bit KV-cache scenarios and
# DECODE_CHECKS against the float64 reference first; a variant that fails is not timed), then bf16 decode
# Nq = 1, Hq = 32, Hk = 8, D = 128 at L = 8k / 32k / 128k, B = 1..64, contiguous and paged, with the splits of
# core's heuristic for c and for 2c CTAs per SM. decode-sweep-table.mjs prints the joined table last.
# Then, for SPLIT_VARIANTS, the split sweep (decode-bench --splits: forced counts, SPLIT_SETS "B:counts ...";
# decode-splits-table.mjs). FLASHATTN_CUDA_ADDON picks another addon than .bundle-cuda's (a sweep build beside
# the default one), SWEEP_BUNDLE another folder holding device-run.mjs (default .bundle-cuda).
# Writes $OUT/decode-sweep.tar.gz (every log and JSON) and $OUT/decode-sweep.txt (the tables).
set -u
cd "$(dirname "$0")/../../.."
ADDON=${FLASHATTN_CUDA_ADDON:-}
source apps/bench/src/cuda/common.sh
[ -n "$ADDON" ] && export FLASHATTN_CUDA_ADDON=$ADDON
BUN=${SWEEP_BUNDLE:-$BUN}
cuda_work /tmp/decode-sweep decode-sweep.tar.gz
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,clocks.mem --format=csv > $W/gpu.txt 2>&1
# variant:CTAs per SM (decode_attention.cu's sweep switch)
VARIANTS=${VARIANTS-"0:2 1:3 2:4 3:2 4:3 5:4 6:4 7:4 8:5 9:4 10:4 11:4 12:4 13:2 14:4 15:2"}
for vc in $VARIANTS; do
  v=${vc%%:*}
  c=${vc#*:}
  FLASHATTN_DECODE_VARIANT=$v timeout ${VARIANT_TIMEOUT:-45} node $BUN/device-run.mjs decode-bench --check \
    --ctas-per-sm $([ "${SPLITS_2C:-1}" = 1 ] && echo $c,$((2 * c)) || echo $c) --batches 1,4,16,64 --lens 8192,32768,131072 --iters 10 \
    --json $W/v$v.json > $W/v$v.log 2>&1
  echo "rc=$?" >> $W/v$v.log
  stamp "variant $v ($c CTAs/SM): $(grep -E '^decode-check' $W/v$v.log) $(grep -E 'not timed|Error' $W/v$v.log | head -2) $(tail -1 $W/v$v.log)"
done
node packages/cuda/dev/decode-sweep-table.mjs $W > $OUT/decode-sweep.txt 2>&1
snap
# The split sweep: for each of SPLIT_VARIANTS (default: none; each one also in VARIANTS, which checks it against
# the reference first), forced split counts per batch (contiguous caches, L = 1k..128k); decode-splits-table.mjs
# appends its table.
for v in ${SPLIT_VARIANTS:-}; do
  for bs in ${SPLIT_SETS:-"1:8,16,24,32,40,48,57,64,80" "4:4,6,8,11,15,22,29" "16:1,2,3,4,6,8"}; do
    b=${bs%%:*}
    FLASHATTN_DECODE_VARIANT=$v timeout ${VARIANT_TIMEOUT:-45} node $BUN/device-run.mjs decode-bench \
      --splits ${bs#*:} --batches $b --lens ${SPLIT_LENS:-1024,4096,8192,16384,32768,65536,131072} \
      --layouts contiguous --iters 10 --json $W/splits-v$v-b$b.json > $W/splits-v$v-b$b.log 2>&1
    echo "rc=$?" >> $W/splits-v$v-b$b.log
    stamp "split sweep v$v B=$b: $(grep -E 'Error' $W/splits-v$v-b$b.log | head -2) $(tail -1 $W/splits-v$v-b$b.log)"
  done
done
[ -n "${SPLIT_VARIANTS:-}" ] && node packages/cuda/dev/decode-splits-table.mjs $W >> $OUT/decode-sweep.txt 2>&1
snap
cat $W/gpu.txt
cat $OUT/decode-sweep.txt
