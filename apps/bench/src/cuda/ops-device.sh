#!/bin/bash
# The GPU run of CudaOps (@flashattn/cuda's training ops) in one device command:
#   bash apps/bench/src/cuda/ops-device.sh [all|conformance|sanitize|bench]
# conformance: core's ops conformance suite ('full' matrix) on createCudaOps() in float32, float16, bfloat16.
# sanitize:    compute-sanitizer memcheck of a tiny GPT-2 training step on CudaOps (device-run.mjs ops-sanitize).
# bench:       our matmul (cuBLASLt via CudaOps) vs torch.matmul, bf16, GPT-2 124M's shapes at B*T = 16384.
# Finds libcublasLt (FLASHATTN_CUBLASLT_PATH if set; else the loader's path; else the torch venv's
# site-packages/nvidia/cublas/lib) and prints where. Needs .carry (Node) and .bundle-cuda (device-run.mjs,
# flashattn_cuda.node) carried along. Stage time limits (s): CONF_TIMEOUT 110, MEMCHECK_TIMEOUT 100, BENCH_TIMEOUT 40
# (each side); BENCH_ITERS 20; OPS_ARGS (e.g. --fused-gelu) goes to ops-conformance and ops-sanitize. Writes $OUT/ops-*.json and ops-logs.tar.gz; prints a short table last.
set -u
cd "$(dirname "$0")/../../../.."
source apps/bench/src/cuda/common.sh
cuda_work /tmp/cuda-ops-work ops-logs.tar.gz
MODE=${1:-all}
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,power.draw,power.limit --format=csv > $W/gpu.txt 2>&1

find_cublaslt
echo "libcublasLt: ${FLASHATTN_CUBLASLT_PATH:-not found (createCudaOps will list the paths tried)}" | tee $W/cublaslt.txt
{ ldconfig -p | grep -i cublasLt; python3 -c "import nvidia, os; print(os.path.dirname(nvidia.__path__[0]))"; } >> $W/cublaslt.txt 2>&1

CONF=skip; SAN=skip
if [ "$MODE" = all ] || [ "$MODE" = conformance ]; then
  timeout ${CONF_TIMEOUT:-110} node $BUN/device-run.mjs ops-conformance --matrix full ${OPS_ARGS:-} --json $OUT/ops-conformance.json > $W/ops-conformance.log 2>&1
  CONF=$(tail -1 $W/ops-conformance.log)
  grep -E '^FAIL' $W/ops-conformance.log | head -20
  stamp "ops conformance: $CONF"
fi
if [ "$MODE" = all ] || [ "$MODE" = sanitize ]; then
  timeout ${MEMCHECK_TIMEOUT:-100} compute-sanitizer --tool memcheck --error-exitcode 9 node $BUN/device-run.mjs ops-sanitize ${OPS_ARGS:-} > $W/ops-memcheck.log 2>&1
  rc=$?
  SAN="rc=$rc, $(grep -E 'ERROR SUMMARY' $W/ops-memcheck.log | tail -1)"
  grep -E '^ops-sanitize' $W/ops-memcheck.log
  stamp "memcheck: $SAN"
fi
if [ "$MODE" = all ] || [ "$MODE" = bench ]; then
  timeout ${BENCH_TIMEOUT:-40} node $BUN/device-run.mjs ops-bench --iters ${BENCH_ITERS:-20} --json $OUT/ops-bench.json > $W/ops-bench.log 2>&1
  stamp "ours bench done"
  PYTHONUNBUFFERED=1 timeout ${BENCH_TIMEOUT:-40} python3 apps/bench/src/cuda/ops-matmul-peer.py --iters ${BENCH_ITERS:-20} --json $OUT/ops-peer.json > $W/ops-peer.log 2>&1
  stamp "peer bench done"
  node -e '
    const fs = require("fs"); const out = process.argv[1];
    const ours = JSON.parse(fs.readFileSync(out + "/ops-bench.json")).results;
    const peer = JSON.parse(fs.readFileSync(out + "/ops-peer.json")).results;
    console.log("bf16 matmul, B*T = 16384: ours (CudaOps/cuBLASLt) vs torch; ms and TFLOP/s");
    let so = 0, sp = 0;
    for (const o of ours) {
      const p = peer.find((x) => x.name === o.name);
      so += o.ms; sp += p ? p.ms : NaN;
      console.log(o.name.padEnd(14) + o.ms.toFixed(3).padStart(8) + " ms " + o.tflops.toFixed(0).padStart(4) + " | torch " + (p ? p.ms.toFixed(3).padStart(8) + " ms " + p.tflops.toFixed(0).padStart(4) + " | ratio " + (p.ms / o.ms).toFixed(2) : "-"));
    }
    console.log("total".padEnd(14) + so.toFixed(3).padStart(8) + " ms      | torch " + sp.toFixed(3).padStart(8) + " ms      | ratio " + (sp / so).toFixed(2));
  ' $OUT > $OUT/ops-matmul-table.txt 2>&1
fi
snap
echo "== summary"
cat $W/cublaslt.txt | head -1
echo "ops conformance: $CONF"
echo "memcheck (tiny GPT-2 step on CudaOps): $SAN"
[ -f $OUT/ops-matmul-table.txt ] && cat $OUT/ops-matmul-table.txt
