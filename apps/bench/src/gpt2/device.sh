#!/bin/bash
# GPT-2 training vs PyTorch on the GPU machine in one device command (BENCHMARKS.md, "GPT-2 training vs
# PyTorch"; issues #10 and #13):
#   bash apps/bench/src/gpt2/device.sh [cuda|webgpu|cpu] [bench|parity|all|train|curve|resume]  (defaults: cuda bench)
# bench:  ours (train-bench.mjs on backend $1, bf16, warmup 3 + 10 timed steps + 1 profiled step; on cuda the graphed
#         step (--graphs) as ours-<setting>.json and the eager one as ours-<setting>-eager.json: OURS_MODES) and the
#         PyTorch peer (torch_gpt2_peer.py, eager and torch.compile, the same model, batch and AdamW) at
#         GPT-2 124M B=16 T=1024 and at T=4096 (gpt2-124m-8k shape, B=4: the same 16,384 tokens per step);
#         prints ours' per-op profile and, last, the table of ratios (ours / torch eager, ours / torch.compile,
#         memory).
# parity: our 124M initialisation + one batch (B=4, T=1024) -> Hugging Face GPT2LMHeadModel goldens in
#         fp64 / fp32 / bf16 autocast (packages/transformer/parity/hf_train_golden.py) -> ours on $1 in bf16
#         and fp32 judged by parity-rule.ts.
# train:  apps/gpt2-train itself (bundle.mjs --train) on the Brown corpus: 124M, bf16, B=16 T=1024, up to
#         TRAIN_STEPS (600) steps or TRAIN_TIMEOUT (420 s); $OUT/loss-gpt2-124m.png and the log (with a sample).
# curve:  the loss curve against PyTorch (train-curve.ts): our 124M init and CURVE_STEPS (100) Brown-corpus
#         batches (B=4 T=1024) -> ours on $1 in CURVE_DTYPES (bf16 fp32) -> Hugging Face GPT2LMHeadModel with
#         torch.optim.AdamW in CURVE_TORCH_MODES (fp64,fp32,bf16; hf_train_curve.py) -> verdicts by curve-rule.ts,
#         $OUT/curve-<config>.png and -diff.png; CURVE_GOLDEN=1 also writes $OUT/curve-golden-tiny.json (the CI
#         golden). Needs the bundle built with --train (the Brown corpus and the tokenizer's ranks).
# resume: exact resume on $1: 124M, 6 steps uninterrupted vs --stop-after 3 + --resume, with and without (RESUME_MODES)
#         --deterministic; $OUT/resume-det.txt, resume-nondet.txt (every loss side by side, a verdict last).
# Needs .carry (Node) and .bundle-gpt2 (node apps/bench/src/gpt2/bundle.mjs [--webgpu]) carried along.
# Writes $OUT/ours-T1024.json, ours-T4096.json, torch-T1024.json, torch-T4096.json, table.txt and
# logs.tar.gz (parity JSON and every log inside): 6 files, under the 8 that come back.
# Overrides (a quick smoke run, or a dry run on a machine with node and no GPU): NO_CARRY=1, DTYPE (bf16),
# GPT2_SETTINGS ("T1024:gpt2-124m:16:1024 T4096:gpt2-124m-8k:4:4096"), TORCH_MODES (eager,compile),
# PARITY_CONFIG / PARITY_SEQ (gpt2-124m / 1024), TRAIN_CONFIG / TRAIN_BATCH / TRAIN_SEQ / TRAIN_STEPS / TRAIN_TIMEOUT,
# CURVE_CONFIG / CURVE_BATCH / CURVE_SEQ / CURVE_STEPS / CURVE_LR / CURVE_DTYPES / CURVE_TORCH_MODES / CURVE_GOLDEN, *_TIMEOUT per stage.
set -u
cd "$(dirname "$0")/../../../.."
[ -n "${NO_CARRY:-}" ] || source .carry/setup.sh >/dev/null 2>&1   # NO_CARRY=1: a machine that has node (dry run)
BUN=$PWD/.bundle-gpt2
export FLASHATTN_CUDA_ADDON=$BUN/flashattn_cuda.node
BK=${1:-cuda}
MODE=${2:-bench}
OUT=${OUT:-/tmp/gpt2-out}
W=/tmp/gpt2-work; rm -rf $W; mkdir -p $W $OUT
snap() { tar czf $OUT/logs.tar.gz -C $W . 2>/dev/null; }
t0=$(date +%s)
stamp() { echo "[$(( $(date +%s) - t0 )) s] $*"; snap; }
DTYPE=${DTYPE:-bf16}
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,power.draw,power.limit,temperature.gpu,memory.total --format=csv > $W/gpu.txt 2>&1
PEER=apps/bench/src/gpt2/torch_gpt2_peer.py
# setting name, config, B, T
SETTINGS=${GPT2_SETTINGS:-"T1024:gpt2-124m:16:1024 T4096:gpt2-124m-8k:4:4096"}  # name:config:B:T
# ours' step: graphed (CUDA graphs) and eager on cuda, eager elsewhere
OURS_MODES=${OURS_MODES:-$([ "$BK" = cuda ] && echo "graphs eager" || echo eager)}

if [ "$MODE" = bench ] || [ "$MODE" = all ]; then
  for s in $SETTINGS; do
    IFS=: read -r name cfg b t <<< "$s"
    # ours graphed (GraphedTrainStep, what gpt2-train runs on cuda) -> ours-$name.json, and eager -> ours-$name-eager.json
    for m in $OURS_MODES; do
      sfx=$([ "$m" = eager ] && [ "$OURS_MODES" != eager ] && echo -eager)
      timeout ${OURS_TIMEOUT:-120} node $BUN/train-bench.mjs --backend $BK --config $cfg --batch $b --seq $t --dtype $DTYPE \
        --warmup 3 --steps 10 $([ "$m" = graphs ] && echo --graphs) --json $OUT/ours-$name$sfx.json > $W/ours-$name$sfx.log 2>&1
      echo "rc=$?" >> $W/ours-$name$sfx.log
      stamp "ours $name$sfx: $(grep '^ours' $W/ours-$name$sfx.log | head -1)"
    done
    PYTHONUNBUFFERED=1 timeout ${TORCH_TIMEOUT:-170} python3 $PEER --config $cfg --batch $b --seq $t --dtype $DTYPE \
      --modes ${TORCH_MODES:-eager,compile} --warmup 3 --steps 10 --json $OUT/torch-$name.json > $W/torch-$name.log 2>&1
    echo "rc=$?" >> $W/torch-$name.log
    stamp "torch $name: $(grep '^torch ' $W/torch-$name.log | grep -v '^torch [0-9]' | tr '\n' ' ')"
  done
fi

if [ "$MODE" = parity ] || [ "$MODE" = all ]; then
  P=$W/parity; mkdir -p $P
  timeout ${PARITY_TIMEOUT:-150} node $BUN/train-parity.mjs inputs --config ${PARITY_CONFIG:-gpt2-124m} --batch 4 --seq ${PARITY_SEQ:-1024} --dir $P > $W/parity-inputs.log 2>&1
  stamp "parity inputs rc=$?"
  PYTHONUNBUFFERED=1 timeout ${PARITY_TIMEOUT:-150} python3 packages/transformer/parity/hf_train_golden.py $P > $W/parity-golden.log 2>&1
  stamp "parity goldens rc=$?: $(tr '\n' ' ' < $W/parity-golden.log | tail -c 600)"
  for dt in bf16 fp32; do
    timeout ${PARITY_TIMEOUT:-150} node $BUN/train-parity.mjs compare --backend $BK --dtype $dt --dir $P --json $W/parity-$dt.json > $W/parity-$dt.log 2>&1
    echo "rc=$?" >> $W/parity-$dt.log
  done
  rm -f $P/*.safetensors  # 0.5 GB each; the JSON verdicts stay
  stamp "parity compared"
fi

if [ "$MODE" = curve ]; then
  # The loss curve against PyTorch (issue #10 "Correctness"; train-curve.ts, hf_train_curve.py, curve-rule.ts):
  # our init + the Brown batches -> ours on $BK in each of CURVE_DTYPES -> HF GPT2LMHeadModel in each of
  # CURVE_TORCH_MODES -> the verdicts and $OUT/curve-<config>.png (+ -diff.png). CURVE_GOLDEN=1 first
  # writes the committed CI golden (curve-tiny, fp64/fp32/bf16, 50 steps) to $OUT/curve-golden-tiny.json
  # and checks ours on the CPU ops against it.
  if [ -n "${CURVE_GOLDEN:-}" ]; then
    G=$W/golden; mkdir -p $G
    GOLDEN_ARGS="--config curve-tiny --batch 4 --seq 64 --steps 50 --lr 3e-3 --seed 1337"
    timeout ${CURVE_TIMEOUT:-300} node $BUN/train-curve.mjs inputs $GOLDEN_ARGS --dir $G > $W/golden-inputs.log 2>&1
    PYTHONUNBUFFERED=1 timeout ${CURVE_TIMEOUT:-300} python3 packages/transformer/parity/hf_train_curve.py $G --modes fp64,fp32,bf16 > $W/golden-torch.log 2>&1
    stamp "golden torch rc=$?: $(grep -E '^(fp|bf)' $W/golden-torch.log | tr '\n' ' ')"
    node $BUN/train-curve.mjs golden --dir $G --out $OUT/curve-golden-tiny.json \
      --command "train-curve inputs $GOLDEN_ARGS; hf_train_curve.py --modes fp64,fp32,bf16" > $W/golden-pack.log 2>&1
    # the CI test's check (the CPU ops have no bf16 buffers: fp32 only)
    timeout ${CURVE_TIMEOUT:-300} node $BUN/train-curve.mjs train --backend cpu --dtype fp32 --dir $G > $W/golden-ours-fp32.log 2>&1
    node $BUN/train-curve.mjs compare --dir $G --plot $OUT/curve-tiny.png > $W/golden-compare.log 2>&1
    stamp "golden (ours on the CPU ops) rc=$?: $(tr '\n' ' ' < $W/golden-compare.log | tail -c 700)"
    rm -f $G/checkpoint.safetensors
  fi
  C=$W/curve; mkdir -p $C
  CCFG=${CURVE_CONFIG:-gpt2-124m}
  timeout ${CURVE_TIMEOUT:-300} node $BUN/train-curve.mjs inputs --config $CCFG --batch ${CURVE_BATCH:-4} --seq ${CURVE_SEQ:-1024} \
    --steps ${CURVE_STEPS:-100} --lr ${CURVE_LR:-6e-4} --dir $C > $W/curve-inputs.log 2>&1
  stamp "curve inputs rc=$?: $(tail -c 300 $W/curve-inputs.log)"
  for dt in ${CURVE_DTYPES:-bf16 fp32}; do
    timeout ${CURVE_TIMEOUT:-300} node $BUN/train-curve.mjs train --backend $BK --dtype $dt --dir $C > $W/curve-ours-$dt.log 2>&1
    stamp "ours $dt rc=$?: $(tail -1 $W/curve-ours-$dt.log)"
  done
  PYTHONUNBUFFERED=1 timeout ${CURVE_TIMEOUT:-300} python3 packages/transformer/parity/hf_train_curve.py $C \
    --modes ${CURVE_TORCH_MODES:-fp64,fp32,bf16} > $W/curve-torch.log 2>&1
  stamp "torch rc=$?: $(grep -E '^(fp|bf)' $W/curve-torch.log | tr '\n' ' ')"
  node $BUN/train-curve.mjs compare --dir $C --plot $OUT/curve-$CCFG.png --json $C/verdicts.json > $W/curve-compare.log 2>&1
  echo "rc=$?" >> $W/curve-compare.log
  rm -f $C/checkpoint.safetensors $C/curve-data.safetensors  # 0.5 GB + 3 MB; the curves' JSON stay in logs.tar.gz
  stamp "curve compared"
fi

if [ "$MODE" = resume ]; then
  # Exact resume on the GPU (issue #10 "resume exact"): gpt2-train 124M bf16 B=4 T=1024, 6 steps uninterrupted
  # against --stop-after 3 then --resume to 6, with --deterministic (dQ without float atomics) and without;
  # the histories (train and val losses per step) are read from the checkpoints and compared bit for bit.
  RT="node $BUN/gpt2-train.mjs --backend $BK --config ${RESUME_CONFIG:-gpt2-124m} --dtype $DTYPE --batch ${RESUME_BATCH:-4} --seq ${RESUME_SEQ:-1024} --steps 6 --warmup 2 \
    --eval-every 3 --val-batches 1 --sample-tokens 0 --ckpt-every 0 --seed 42"
  for det in ${RESUME_MODES:-det nondet}; do
    d=""; [ $det = det ] && d=--deterministic
    timeout ${RESUME_TIMEOUT:-90} $RT $d --out $W/resume-$det-full --overwrite > $W/resume-$det-full.log 2>&1
    timeout ${RESUME_TIMEOUT:-90} $RT $d --out $W/resume-$det-split --overwrite --stop-after 3 > $W/resume-$det-part.log 2>&1
    timeout ${RESUME_TIMEOUT:-90} $RT $d --out $W/resume-$det-split --resume > $W/resume-$det-resumed.log 2>&1
    node apps/bench/src/lib/compare-histories.mjs $W/resume-$det-full $W/resume-$det-split "resume $det" 6 \
      > $OUT/resume-$det.txt 2>&1
    rm -f $W/resume-$det-*/checkpoint.safetensors
    stamp "resume $det: $(tail -1 $OUT/resume-$det.txt)"
  done
fi

if [ "$MODE" = train ]; then
  # The training run itself (issue #10): gpt2-train (bundle.mjs --train) on the Brown corpus, 124M, bf16,
  # B=16 T=1024, a loss-curve PNG every 50 steps; SIGINT at TRAIN_TIMEOUT stops it cleanly (checkpoint, plot).
  timeout -s INT ${TRAIN_TIMEOUT:-420} node $BUN/gpt2-train.mjs --backend $BK --config ${TRAIN_CONFIG:-gpt2-124m} --dtype $DTYPE \
    --batch ${TRAIN_BATCH:-16} --seq ${TRAIN_SEQ:-1024} --steps ${TRAIN_STEPS:-600} --warmup 50 --eval-every 50 --val-batches 4 --ckpt-every 0 \
    --plot-every 50 --sample-tokens 120 --out $W/run --overwrite > $W/train.log 2>&1
  echo "rc=$?" >> $W/train.log
  cp $W/run/loss.png $OUT/loss-${TRAIN_CONFIG:-gpt2-124m}.png 2>/dev/null
  rm -f $W/run/checkpoint.safetensors  # 1.5 GB with the AdamW moments
  stamp "training run done: $(grep -E '^(done|stopped|throughput)' $W/train.log | tr '\n' ' ')"
fi

echo "==== summary"
cat $W/gpu.txt
for f in $W/ours-*.log; do [ -f "$f" ] && { echo "--- $(basename $f .log)"; grep -v '^backend' "$f" | tail -16; }; done
for f in $W/torch-*.log; do [ -f "$f" ] && { echo "--- $(basename $f .log)"; cat "$f"; }; done
for f in $W/parity-bf16.log $W/parity-fp32.log; do [ -f "$f" ] && cat "$f"; done
[ -f $W/train.log ] && { echo "--- train"; grep -v '^\[' $W/train.log | tail -30; }
for f in $OUT/resume-det.txt $OUT/resume-nondet.txt; do [ -f "$f" ] && { echo "--- $(basename $f .txt)"; cat "$f"; }; done
for f in $W/golden-compare.log $W/curve-compare.log; do [ -f "$f" ] && { echo "--- $(basename $f .log)"; cat "$f"; }; done
node -e '
  const fs = require("fs"); const out = process.argv[1];
  const read = (f) => { try { return JSON.parse(fs.readFileSync(out + "/" + f, "utf8")); } catch { return null; } };
  const MiB = (b) => (b == null ? "-" : (b / 2 ** 20).toFixed(0));
  const lines = ["setting | ours tok/s (MFU) | torch eager tok/s | torch.compile tok/s | ours/eager | ours/compile | ours mem MiB (model bufs / backend peak) | eager max alloc MiB | compile max alloc MiB"];
  const names = fs.readdirSync(out).filter((f) => /^(ours|torch)-.+\.json$/.test(f)).map((f) => f.replace(/^(ours|torch)-|\.json$/g, ""));
  for (const name of [...new Set(names)].sort()) {
    const o = read("ours-" + name + ".json"); const t = read("torch-" + name.replace(/-eager$/, "") + ".json");
    if (!o && !t) continue;
    const r = (m) => t && t.results.find((x) => x.mode === m && !x.error);
    const e = r("eager"), c = r("compile");
    const ratio = (a, b) => (a && b ? (a.tokensPerSec / b.tokensPerSec).toFixed(2) + "x" : "-");
    lines.push([
      name + (o ? ` (${o.config} B=${o.batch} T=${o.seq} ${o.dtype}${o.graphs ? ", graphed" : ""})` : ""),
      o ? `${Math.round(o.tokensPerSec)} (${o.mfu == null ? "-" : (100 * o.mfu).toFixed(1) + "%"})` : "-",
      e ? `${Math.round(e.tokensPerSec)} (${e.mfu == null ? "-" : (100 * e.mfu).toFixed(1) + "%"})` : "-",
      c ? `${Math.round(c.tokensPerSec)} (${c.mfu == null ? "-" : (100 * c.mfu).toFixed(1) + "%"})` : "-",
      ratio(o, e), ratio(o, c),
      o ? `${MiB(o.peakAllocBytes)} / ${MiB(o.peakDeviceBytes)}` : "-",
      MiB(e && e.maxMemoryAllocated), MiB(c && c.maxMemoryAllocated),
    ].join(" | "));
  }
  fs.writeFileSync(out + "/table.txt", lines.join("\n") + "\n");
  console.log("==== GPT-2 training, ours (" + process.argv[2] + ") vs PyTorch, same GPU\n" + lines.join("\n"));
' $OUT $BK
stamp "all done"
