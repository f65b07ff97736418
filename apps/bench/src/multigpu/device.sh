#!/bin/bash
# Several GPUs (issue #15) in one device command. Written 2026-12-07; NOT RUN YET (no device budget then, and
# no multi-GPU kind lent):
#   bash apps/bench/src/multigpu/device.sh [w1|scale|all|ring|ring-search]   (default w1)
# w1:    world size 1 through the whole multi-GPU path on one GPU: the launcher (--gpus 1: one rank process,
#        NCCL_NVLS_ENABLE=0), NcclCommunicator (unique id, ncclCommInitRank, every gradient bucket through
#        ncclAllReduce, ZeRO-1 all-gathers, the loss all-gather), against the same run without --gpus (no
#        communicator). Same seed and data: the losses must agree (NCCL's sum over one rank is the identity,
#        so bit-identical is expected) -- printed side by side, and `cmp` of the two checkpoints' weights.
# scale: GPT-2 124M bf16, B=16 T=1024 per GPU (weak scaling, --total-batch 16384 x N), ours with --gpus N
#        beside PyTorch DDP (torchrun, NCCL, torch_ddp_peer.py) for N in 1 2 4 8 up to the GPUs present;
#        tokens/s, per-GPU tokens/s and scaling efficiency (tokens/s at N / (N x tokens/s at 1)) for both, and
#        ours / DDP at each N. Issue #15 resolves at efficiency >= 0.9 and ours >= 0.8 x DDP at each N.
# ring:  ring attention (packages/transformer/src/parallel/ring-attention.ts) on W = all GPUs present (RING_WORLD to
#        override; on a single GPU W = 1: NCCL with one rank, the world-size-1 variant), causal, D = 128, B = 1,
#        H = RING_HEADS (16), float32 storage (bf16 compute): ring-bench.ts's check against the float64 oracle at
#        N = 256, then forward + backward timed at RING_N (16384,65536,262144) beside single-device flash on GPU 0,
#        TFLOP/s per GPU (FlashAttention convention), the sendRecv sequence alone, peak bytes per rank.
#        Writes $OUT/ring.json, $OUT/ring.txt.
# ring-search: the check, then the longest causal N that runs forward + backward, single-device flash on 1 GPU vs
#        the ring on W, doubling from 16384 until BackendOutOfMemoryError (or past RING_SEARCH_SECONDS (200) for
#        the next trial: then "stopped by time"); nvidia-smi's peak memory.used per GPU beside the ops' own count.
#        Writes $OUT/ring-search.json, $OUT/ring-search.txt. Limit (s): RING_TIMEOUT 560 for either mode. On 8 GPUs
#        the two searches may not fit one 10-minute command: RING_SEARCH_IMPL=flash, then RING_SEARCH_IMPL=ring.
#   ring / ring-search need .carry and .bundle/ring carried (node apps/bench/src/multigpu/bundle.mjs after the
#   build; createCudaOps needs cuBLASLt: FLASHATTN_CUBLASLT_PATH, else the loader's, else the torch venv's).
#   Exact commands (device tool; carry [".carry", ".bundle/ring"], kind nvidia-h100-x2 / -x4 / -x8, or none for one GPU):
#     bash apps/bench/src/multigpu/device.sh ring
#     bash apps/bench/src/multigpu/device.sh ring-search
# Needs .carry (Node) and .bundle-gpt2 with the CLI (node apps/bench/src/gpt2/bundle.mjs --train) carried
# along, built from a tree where @flashattn/cuda exports createNcclCommunicator (this commit) and CudaOps
# exists (issue #10). Finds libnccl: FLASHATTN_NCCL_PATH if set, else the torch venv's
# site-packages/nvidia/nccl/lib/libnccl.so.2. Stage limits (s): W1_TIMEOUT 240, SCALE_TIMEOUT 150 per run.
# Writes $OUT/w1.txt, $OUT/scale.json, $OUT/table.txt, $OUT/logs.tar.gz.
set -u
cd "$(dirname "$0")/../../../.."
[ -n "${NO_CARRY:-}" ] || source .carry/setup.sh >/dev/null 2>&1
BUN=$PWD/.bundle-gpt2
export FLASHATTN_CUDA_ADDON=$BUN/flashattn_cuda.node
export NCCL_NVLS_ENABLE=0   # NVLink multicast off on these machines (the device notes, KINDS.md)
MODE=${1:-w1}
OUT=${OUT:-/tmp/multigpu-out}
W=/tmp/multigpu-work; rm -rf $W; mkdir -p $W $OUT
snap() { tar czf $OUT/logs.tar.gz -C $W . 2>/dev/null; }
t0=$(date +%s)
stamp() { echo "[$(( $(date +%s) - t0 )) s] $*"; snap; }
nvidia-smi --query-gpu=index,name,driver_version,memory.total --format=csv > $W/gpu.txt 2>&1
nvidia-smi topo -m >> $W/gpu.txt 2>&1
NGPU=$(nvidia-smi --query-gpu=index --format=csv,noheader | wc -l)
if [ -z "${FLASHATTN_NCCL_PATH:-}" ]; then
  SITE=$(python3 -c "import nvidia, os; print(os.path.dirname(nvidia.__path__[0]))" 2>/dev/null)
  NC=$(ls "$SITE"/nvidia/nccl/lib/libnccl.so* 2>/dev/null | head -1)
  [ -n "$NC" ] && export FLASHATTN_NCCL_PATH=$NC
fi
echo "GPUs: $NGPU; libnccl: ${FLASHATTN_NCCL_PATH:-not found (loadNccl lists the paths tried)}" | tee -a $W/gpu.txt
TRAIN="node $BUN/gpt2-train.mjs --backend cuda --dtype bf16 --eval-every 0 --val-batches 1 --ckpt-every 0 --sample-tokens 0 --json --overwrite"

if [ "$MODE" = w1 ] || [ "$MODE" = all ]; then
  for v in single nccl1; do
    extra=""; [ $v = nccl1 ] && extra="--gpus 1"
    timeout ${W1_TIMEOUT:-240} $TRAIN --config gpt2-124m --batch 8 --seq 1024 --steps 10 --warmup 2 --seed 7 \
      $extra --out $W/$v > $W/w1-$v.log 2>&1
    echo "rc=$?" >> $W/w1-$v.log
  done
  {
    echo "world size 1, gpt2-124m bf16 B=8 T=1024, 10 steps: single process vs --gpus 1 (NCCL)"
    for v in single nccl1; do echo "$v: $(grep -E '^(data parallel|done|throughput|rc=)' $W/w1-$v.log | tr '\n' ' ')"; done
    node apps/bench/src/lib/compare-histories.mjs $W/single $W/nccl1 "world size 1" 10
  } > $OUT/w1.txt 2>&1
  cat $OUT/w1.txt
  rm -f $W/*/checkpoint.safetensors
  stamp "w1 done"
fi

if [ "$MODE" = scale ] || [ "$MODE" = all ]; then
  echo '{"runs": [' > $OUT/scale.json
  first=1
  for N in 1 2 4 8; do
    [ $N -gt $NGPU ] && break
    timeout ${SCALE_TIMEOUT:-150} $TRAIN --config gpt2-124m --batch 16 --seq 1024 --total-batch $((16384 * N)) --steps 13 \
      --warmup 2 --gpus $N --out $W/ours-$N > $W/ours-$N.log 2>&1
    OURS=$(grep -E '^\{' $W/ours-$N.log | tail -1)
    PYTHONUNBUFFERED=1 timeout ${SCALE_TIMEOUT:-150} torchrun --standalone --nproc-per-node $N apps/bench/src/multigpu/torch_ddp_peer.py \
      --config gpt2-124m --batch 16 --seq 1024 --dtype bf16 --warmup 3 --steps 10 --json $W/ddp-$N.json > $W/ddp-$N.log 2>&1
    DDP=$(cat $W/ddp-$N.json 2>/dev/null || echo null)
    [ $first = 1 ] || echo ',' >> $OUT/scale.json; first=0
    echo "{\"gpus\": $N, \"ours\": ${OURS:-null}, \"ddp\": $DDP}" >> $OUT/scale.json
    rm -f $W/ours-$N/checkpoint.safetensors
    stamp "N=$N: ours $(echo "$OURS" | grep -oE '"tokensPerSecSteady":[0-9.]+'), ddp $(echo "$DDP" | grep -oE '"tokens_per_sec": [0-9.]+')"
  done
  echo ']}' >> $OUT/scale.json
  node -e '
    const r = JSON.parse(require("fs").readFileSync(process.argv[1])).runs;
    const o1 = r[0]?.ours?.tokensPerSecSteady, d1 = r[0]?.ddp?.tokens_per_sec;
    console.log("GPUs | ours tok/s | eff | DDP tok/s | eff | ours/DDP");
    for (const x of r) {
      const o = x.ours?.tokensPerSecSteady, d = x.ddp?.tokens_per_sec;
      const f = (v) => (v ? Math.round(v).toString() : "failed");
      console.log(`${x.gpus} | ${f(o)} | ${o && o1 ? (o / (x.gpus * o1)).toFixed(3) : "-"} | ${f(d)} | ${d && d1 ? (d / (x.gpus * d1)).toFixed(3) : "-"} | ${o && d ? (o / d).toFixed(3) : "-"}`);
    }' $OUT/scale.json | tee $OUT/table.txt
fi
if [ "$MODE" = ring ] || [ "$MODE" = ring-search ]; then
  RB=$PWD/.bundle/ring
  export FLASHATTN_CUDA_ADDON=$RB/flashattn_cuda.node
  if [ -z "${FLASHATTN_CUBLASLT_PATH:-}" ]; then
    [ -z "${SITE:-}" ] && SITE=$(python3 -c "import nvidia, os; print(os.path.dirname(nvidia.__path__[0]))" 2>/dev/null)
    LT=$(ldconfig -p 2>/dev/null | awk '/libcublasLt\.so/ {print $NF; exit}')
    [ -z "$LT" ] && LT=$(ls "${SITE:-/nonexistent}"/nvidia/cublas/lib/libcublasLt.so* 2>/dev/null | head -1)
    [ -n "$LT" ] && export FLASHATTN_CUBLASLT_PATH=$LT
  fi
  echo "cuBLASLt: ${FLASHATTN_CUBLASLT_PATH:-not found}" | tee -a $W/gpu.txt
  RW=${RING_WORLD:-$NGPU}
  RING="node $RB/ring-bench.mjs --backend cuda --world $RW --batch 1 --heads ${RING_HEADS:-16} --head-dim 128 --check-n 256"
  nvidia-smi --query-gpu=index,memory.used --format=csv,noheader,nounits -lms 500 > $W/smi-$MODE.csv 2>&1 &
  SMI=$!
  if [ "$MODE" = ring ]; then
    timeout ${RING_TIMEOUT:-560} $RING --n ${RING_N:-16384,65536,262144} --warmup 1 --iters 3 --job-timeout 240 \
      --json $OUT/ring.json > $OUT/ring.txt 2> $W/ring.log
  else
    timeout ${RING_TIMEOUT:-560} $RING --no-time --search --search-impl ${RING_SEARCH_IMPL:-both} --search-from 16384 --search-seconds ${RING_SEARCH_SECONDS:-200} \
      --job-timeout 300 --json $OUT/ring-search.json > $OUT/ring-search.txt 2> $W/ring-search.log
  fi
  echo "rc=$?" >> $W/$MODE.log
  kill $SMI 2>/dev/null
  { echo "nvidia-smi peak memory.used (MiB) per GPU over the whole $MODE run:"
    awk -F', ' '$2 ~ /^[0-9]+$/ { if ($2 > m[$1]) m[$1] = $2 } END { for (g in m) print "  GPU " g ": " m[g] }' $W/smi-$MODE.csv
  } | tee -a $OUT/$MODE.txt
  grep -E '^ring-bench:' $W/$MODE.log | grep -v '^ring-bench: run {' | tail -40
  cat $OUT/$MODE.txt
  stamp "$MODE done"
fi
echo "==== summary"
cat $W/gpu.txt
snap
