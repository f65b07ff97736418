#!/bin/bash
# What issue #10 needs on the GPU, in one device command, each stage skipped when fewer seconds than it needs are
# left of LIMIT (default 585). STAGES picks them (default "train gpt2 ops slack memstats bench"), run in this order
# (graphs first):
#   train:    device.sh cuda train: gpt2-train 124M bf16 B=16 T=1024 on the Brown corpus, TRAIN_STEPS 1000 /
#             TRAIN_TIMEOUT 120 s; loss PNG + sample;
#   gpt2:     inference-gpt2 (the cached forward and greedy generation against the CPU, the bf16 logits decoded);
#   ops:      the ops conformance suite, full matrix (fp32 / fp16 / bf16), the default build (fused GELU) and
#             --unfused-gelu --filter gelu;
#   slack:    the CUDA-graphs slack test: train-bench with --host-delay-us 0, 5, 10 (host-delay.ts says how to
#             read it; 20 us was run on 2026-12-07 at 16:05 UTC);
#   memstats: packages/cuda/dev/memory-stats-check.mjs;
#   bench:    device.sh cuda bench: ours (the defaults: fused GELU) against PyTorch eager and torch.compile at T 1024
#             and T 4096, with ours' per-op profile;
#   curve:    device.sh cuda curve (ours bf16; PyTorch fp64 (the oracle) + bf16);
#   resume:   device.sh cuda resume with --deterministic;
#   memcheck: compute-sanitizer memcheck of a tiny GPT-2 step (ops-device.sh sanitize; OPS_ARGS);
#   graphs:   CUDA graphs: device-run ops-graphs (the graphs conformance check; a tiny GPT-2 graphed against eager),
#             the ops suite's DeviceStepOps cases (sumTo, adamwFrom) and embedding cases, train-bench 124M eager and
#             graphed in one call (GRAPH_BENCH; graphs-d10: graphed with --host-delay-us 10), and memcheck of the
#             graphed tiny GPT-2 (OPS_ARGS=--graphs).
# Results: $OUT/callAB.tar (progress.txt first; refreshed after every stage). Carry [".carry", ".bundle-lead"],
# .bundle-lead being
#   node apps/bench/src/gpt2/bundle.mjs --train $PWD/.bundle-lead && node apps/bench/src/cuda/bundle.mjs $PWD/.bundle-lead \
#     && cp packages/cuda/build/Release/flashattn_cuda.node .bundle-lead/
# and on the device: bash apps/bench/src/gpt2/device-issue10.sh
cd "$(dirname "$0")/../../../.."
source .carry/setup.sh >/dev/null 2>&1
rm -rf .bundle-cuda .bundle-gpt2; cp -r .bundle-lead .bundle-cuda; cp -r .bundle-lead .bundle-gpt2
export FLASHATTN_CUDA_ADDON=$PWD/.bundle-gpt2/flashattn_cuda.node
R=/tmp/callAB; rm -rf $R; mkdir -p $R
t0=$(date +%s); st() { echo "[$(( $(date +%s) - t0 )) s] $*" | tee -a $R/progress.txt; tar cf $OUT/callAB.tar -C $R . ; }
nvidia-smi > $R/nvidia-smi.txt 2>&1
left() { echo $(( ${LIMIT:-585} - ($(date +%s) - t0) )); }
STAGES=" ${STAGES:-train gpt2 ops slack memstats bench} "
on() { [[ "$STAGES" == *" $1 "* ]] && [ $(left) -gt $2 ]; }
if on graphs 60; then
  timeout 60 node .bundle-cuda/device-run.mjs ops-graphs > $R/ops-graphs.log 2>&1
  timeout 30 node .bundle-cuda/device-run.mjs ops-conformance --filter From > $R/ops-step-a.log 2>&1
  timeout 30 node .bundle-cuda/device-run.mjs ops-conformance --filter sumTo > $R/ops-step-b.log 2>&1
  timeout 40 node .bundle-cuda/device-run.mjs ops-conformance --filter embedding > $R/ops-embedding.log 2>&1
  st "graphs: $(grep -E '^(graphs conformance|pass|FAIL|ops-graphs)' $R/ops-graphs.log | tr '\n' ' ') | adamwFrom: $(tail -1 $R/ops-step-a.log) | sumTo: $(tail -1 $R/ops-step-b.log) | embedding: $(tail -1 $R/ops-embedding.log)"
  for v in ${GRAPH_BENCH:-eager graphs}; do
    on graphs 40 || break
    timeout 40 node .bundle-gpt2/train-bench.mjs --backend cuda --config gpt2-124m --batch 16 --seq 1024 --dtype bf16 --warmup 3 --steps 20 \
      $([ $v != eager ] && echo --graphs) $([ $v = graphs-d10 ] && echo --host-delay-us 10) --json $R/gbench-$v.json > $R/gbench-$v.log 2>&1
    st "train-bench $v: $(grep -E '^(ours|host)' $R/gbench-$v.log | head -2 | tr '\n' ' ')"
  done
  if on graphs 40; then
    OPS_ARGS=--graphs MEMCHECK_TIMEOUT=$(( $(left) > 70 ? 60 : $(left) - 10 )) OUT=$R/ops-san-graphs bash apps/bench/src/cuda/ops-device.sh sanitize > $R/ops-san-graphs.log 2>&1
    st "memcheck graphed: $(grep -E '^memcheck' $R/ops-san-graphs.log)"
  fi
fi
if on train 100; then
  TRAIN_STEPS=${TRAIN_STEPS:-1000} TRAIN_TIMEOUT=${TRAIN_TIMEOUT:-120} OUT=$R/train bash apps/bench/src/gpt2/device.sh cuda train > $R/train.log 2>&1
  st "train: $(grep -E 'training run done' $R/train.log | tail -1) sample: $(grep -A2 '^sample' $R/train.log | tail -1 | cut -c1-300)"
fi
if on gpt2 40; then
  timeout 40 node .bundle-cuda/device-run.mjs inference-gpt2 > $R/inference-gpt2.log 2>&1
  st "gpt2: $(grep -E '^(pass|FAIL|inference-gpt2)' $R/inference-gpt2.log | tr '\n' ' ')"
fi
if on ops 40; then
  timeout 60 node .bundle-cuda/device-run.mjs ops-conformance --matrix full > $R/ops-default.log 2>&1
  timeout 30 node .bundle-cuda/device-run.mjs ops-conformance --unfused-gelu --filter gelu > $R/ops-unfused.log 2>&1
  st "ops: $(tail -1 $R/ops-default.log) | unfused gelu: $(tail -1 $R/ops-unfused.log)"
fi
for d in 0 5 10; do
  on slack 40 || break
  timeout 40 node .bundle-gpt2/train-bench.mjs --backend cuda --config gpt2-124m --batch 16 --seq 1024 --dtype bf16 --warmup 3 --steps 20 --host-delay-us $d --json $R/slack-$d.json > $R/slack-$d.log 2>&1
  st "slack $d us: $(grep -E '^(ours|host)' $R/slack-$d.log | head -2 | tr '\n' ' ')"
done
if on memstats 20; then
  timeout 20 node packages/cuda/dev/memory-stats-check.mjs > $R/memstats.log 2>&1
  st "memstats: rc=$? $(grep -c '^ok' $R/memstats.log) ok, $(grep -c '^FAIL' $R/memstats.log) FAIL"
fi
if on bench 130; then
  OURS_TIMEOUT=90 TORCH_TIMEOUT=${TORCH_TIMEOUT:-150} OUT=$R/bench bash apps/bench/src/gpt2/device.sh cuda bench > $R/bench.log 2>&1
  st "bench: $(grep -A4 '^setting' $R/bench/table.txt | tr '\n' ' ')"
fi
if on curve 150; then
  CURVE_TIMEOUT=${CURVE_TIMEOUT:-$(( $(left) / 3 ))} CURVE_DTYPES=${CURVE_DTYPES:-bf16} CURVE_TORCH_MODES=${CURVE_TORCH_MODES:-fp64,bf16} OUT=$R/curve bash apps/bench/src/gpt2/device.sh cuda curve > $R/curve.log 2>&1
  st "curve: $(grep -A12 -- '--- curve-compare' $R/curve.log | tr '\n' ' ' | tail -c 900)"
fi
if on resume 100; then
  RESUME_MODES="det" RESUME_TIMEOUT=40 OUT=$R/resume bash apps/bench/src/gpt2/device.sh cuda resume > $R/resume.log 2>&1
  st "resume: $(grep -E '^resume' $R/resume/resume-*.txt | tr '\n' ' ')"
fi
if on memcheck 60; then
  OPS_ARGS=${OPS_ARGS:-} MEMCHECK_TIMEOUT=$(( $(left) - 10 )) OUT=$R/ops-san bash apps/bench/src/cuda/ops-device.sh sanitize > $R/ops-san.log 2>&1
  st "memcheck: $(grep -E '^memcheck' $R/ops-san.log)"
fi
st "all done"
