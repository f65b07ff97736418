#!/bin/bash
# What issue #10 still lacks on the GPU, in one device command, most important first (written 2026-12-07 13:00-14:30
# UTC; not run: no device machine could be started in that session):
#   1. the training run itself: device.sh cuda train (gpt2-train 124M bf16 B=16 T=1024 on the Brown corpus,
#      TRAIN_STEPS 1000 / TRAIN_TIMEOUT 120 s; loss PNG + sample),
#   2. our 100-step loss curve against PyTorch: device.sh cuda curve (ours bf16; PyTorch fp64 (the oracle) + bf16),
#   3. cuBLASLt's GELU epilogues: ops conformance --fused-gelu --filter gelu, then train-bench plain vs --fused-gelu,
#   4. the CUDA-graphs slack test: train-bench --host-delay-us 20 against plain (host-delay.ts says how to read it),
#   5. exact resume with --deterministic (device.sh cuda resume), 6. compute-sanitizer on the fused GELU path,
# each stage skipped when fewer seconds than it needs are left of LIMIT (default 585). Results: $OUT/callAB.tar
# (progress.txt first; refreshed after every stage). Carry [".carry", ".bundle-lead"], .bundle-lead being
#   node apps/bench/src/gpt2/bundle.mjs --train $PWD/.bundle-lead && node apps/bench/src/cuda/bundle.mjs $PWD/.bundle-lead \
#     && cp packages/cuda/build/Release/flashattn_cuda.node .bundle-lead/
# and on the device: bash apps/bench/src/gpt2/device-issue10.sh
cd "$(dirname "$0")/../../../.."
source .carry/setup.sh >/dev/null 2>&1
rm -rf .bundle-cuda .bundle-gpt2; cp -r .bundle-lead .bundle-cuda; cp -r .bundle-lead .bundle-gpt2
R=/tmp/callAB; rm -rf $R; mkdir -p $R
t0=$(date +%s); st() { echo "[$(( $(date +%s) - t0 )) s] $*" | tee -a $R/progress.txt; tar cf $OUT/callAB.tar -C $R . ; }
nvidia-smi > $R/nvidia-smi.txt 2>&1
left() { echo $(( ${LIMIT:-585} - ($(date +%s) - t0) )); }
TRAIN_STEPS=${TRAIN_STEPS:-1000} TRAIN_TIMEOUT=${TRAIN_TIMEOUT:-120} OUT=$R/train bash apps/bench/src/gpt2/device.sh cuda train > $R/train.log 2>&1
st "train: $(grep -E 'training run done' $R/train.log | tail -1)"
CURVE_TIMEOUT=${CURVE_TIMEOUT:-$(( $(left) / 3 ))} CURVE_DTYPES=${CURVE_DTYPES:-bf16} CURVE_TORCH_MODES=${CURVE_TORCH_MODES:-fp64,bf16} OUT=$R/curve bash apps/bench/src/gpt2/device.sh cuda curve > $R/curve.log 2>&1
st "curve: $(grep -A12 -- '--- curve-compare' $R/curve.log | tr '\n' ' ' | tail -c 900)"
[ $(left) -gt 60 ] && timeout 50 node .bundle-cuda/device-run.mjs ops-conformance --fused-gelu --filter gelu > $R/ops-gelu-fused.log 2>&1
st "ops gelu fused: $(tail -1 $R/ops-gelu-fused.log)"
export FLASHATTN_CUDA_ADDON=$PWD/.bundle-gpt2/flashattn_cuda.node
for v in plain fused delay20; do
  [ $(left) -gt 70 ] || break
  a=""; [ $v = fused ] && a=--fused-gelu; [ $v = delay20 ] && a="--host-delay-us 20"
  timeout 80 node .bundle-gpt2/train-bench.mjs --backend cuda --config gpt2-124m --batch 16 --seq 1024 --dtype bf16 --warmup 3 --steps 20 $a --json $R/bench-$v.json > $R/bench-$v.log 2>&1
  st "bench $v: $(grep -E '^(ours|host)' $R/bench-$v.log | head -2 | tr '\n' ' ')"
done
if [ $(left) -gt 100 ]; then
  RESUME_MODES="det" RESUME_TIMEOUT=40 OUT=$R/resume bash apps/bench/src/gpt2/device.sh cuda resume > $R/resume.log 2>&1
  st "resume: $(grep -E '^resume' $R/resume/resume-*.txt | tr '\n' ' ')"
fi
if [ $(left) -gt 60 ]; then
  OPS_ARGS=--fused-gelu MEMCHECK_TIMEOUT=$(( $(left) - 10 )) OUT=$R/ops-fused-san bash apps/bench/src/cuda/ops-device.sh sanitize > $R/ops-fused-san.log 2>&1
  st "fused memcheck: $(grep -E '^memcheck' $R/ops-fused-san.log)"
fi
