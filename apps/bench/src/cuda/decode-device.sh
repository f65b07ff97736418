#!/bin/bash
# The GPU run of @flashattn/cuda's inference kernels (issue #12) in one device command, <= 300 s:
#   bash apps/bench/src/cuda/decode-device.sh [all|check|bench]
# check: the inference conformance suite on createCudaDevice() (KV cache scalar and 16-byte paths, combine,
#        varlen fwd + bwd, rejections; device-run.mjs inference), GPT-2 cached generation on createCudaOps()
#        (device-run.mjs inference-gpt2; cuBLASLt found as in ops-device.sh) and compute-sanitizer memcheck of
#        small decode / paged / split / varlen cases (device-run.mjs inference-sanitize).
# bench: decode attention, Nq = 1, Hq = 32, Hk = 8, D = 128, bf16, L = 1k..128k, B = 1..64 (B L <= 2^21),
#        contiguous and paged (page 256): ours (device-run.mjs decode-bench, with the cudaMemcpy D2D bandwidth
#        measured in the same process) and PyTorch SDPA flash / efficient / cuDNN (decode-sdpa-peer.py, with
#        torch's copy_ bandwidth) in the same command; prints the joined table last.
# Needs .carry (Node) and .bundle-cuda (device-run.mjs, flashattn_cuda.node) carried along. Stage limits (s):
# CONF_TIMEOUT 70, GPT2_TIMEOUT 30, MEMCHECK_TIMEOUT 70, BENCH_TIMEOUT 50, PEER_TIMEOUT 70 (290 s in all). Writes at most 4 files to $OUT:
# decode-ours.json, decode-peer.json, decode-table.txt, decode-logs.tar.gz (every log, refreshed after each stage).
set -u
cd "$(dirname "$0")/../../../.."
source apps/bench/src/cuda/common.sh
cuda_work /tmp/cuda-decode-work decode-logs.tar.gz
MODE=${1:-all}
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,clocks.mem,power.draw,power.limit --format=csv > $W/gpu.txt 2>&1

find_cublaslt  # createCudaOps (inference-gpt2) needs cuBLASLt

CONF=skip; SAN=skip; GPT2=skip
if [ "$MODE" = all ] || [ "$MODE" = check ]; then
  timeout ${CONF_TIMEOUT:-70} node $BUN/device-run.mjs inference --json $W/inference.json > $W/inference.log 2>&1
  echo "rc=$?" >> $W/inference.log
  CONF="$(grep '^inference-conformance' $W/inference.log) $(tail -1 $W/inference.log)"
  stamp "inference conformance: $CONF"
  timeout ${GPT2_TIMEOUT:-30} node $BUN/device-run.mjs inference-gpt2 > $W/inference-gpt2.log 2>&1
  echo "rc=$?" >> $W/inference-gpt2.log
  GPT2="$(grep -E '^inference-gpt2' $W/inference-gpt2.log) $(tail -1 $W/inference-gpt2.log)"
  stamp "gpt2 cached generation: $GPT2"
  timeout ${MEMCHECK_TIMEOUT:-70} compute-sanitizer --tool memcheck --error-exitcode 9 node $BUN/device-run.mjs inference-sanitize > $W/memcheck.log 2>&1
  rc=$?
  SAN="rc=$rc, $(grep -E 'inference-sanitize' $W/memcheck.log | tail -1), $(grep -E 'ERROR SUMMARY' $W/memcheck.log | tail -1)"
  stamp "memcheck: $SAN"
fi
if [ "$MODE" = all ] || [ "$MODE" = bench ]; then
  timeout ${BENCH_TIMEOUT:-50} node $BUN/device-run.mjs decode-bench --json $OUT/decode-ours.json > $W/decode-ours.log 2>&1
  echo "rc=$?" >> $W/decode-ours.log
  stamp "ours decode bench done"
  PYTHONUNBUFFERED=1 timeout ${PEER_TIMEOUT:-70} python3 apps/bench/src/cuda/decode-sdpa-peer.py --json $OUT/decode-peer.json > $W/decode-peer.log 2>&1
  echo "rc=$?" >> $W/decode-peer.log
  stamp "peer decode bench done"
  node -e '
    const fs = require("fs"); const out = process.argv[1];
    const ours = JSON.parse(fs.readFileSync(out + "/decode-ours.json"));
    let peer = { results: [], info: {} };
    try { peer = JSON.parse(fs.readFileSync(out + "/decode-peer.json")); } catch {}
    const pc = (x) => (100 * x).toFixed(0) + "%";
    console.log(`decode bf16 Nq=1 Hq=32 Hk=8 D=128, ${ours.device}; copy (cudaMemcpy D2D, read+write) ${ours.copy.gbps.toFixed(0)} GB/s` +
      (peer.info.copy ? `, torch copy_ ${peer.info.copy.gbps.toFixed(0)} GB/s` : ""));
    console.log("layout      B      L splits |   ours ms   GB/s  of copy | best SDPA (gqa)                  ms   GB/s | SDPA/ours time");
    let worst8k = Infinity, slower = 0, n8k = 0;
    for (const r of ours.results) {
      const ps = peer.results.filter((p) => p.batch === r.batch && p.seqlenK === r.seqlenK && p.ms !== undefined);
      const best = ps.sort((a, b) => a.ms - b.ms)[0];
      if (r.seqlenK >= 8192) { worst8k = Math.min(worst8k, r.fractionOfCopy); n8k++; if (best && best.ms < r.ms) slower++; }
      console.log(`${r.layout.padEnd(10)} ${String(r.batch).padStart(2)} ${String(r.seqlenK).padStart(6)} ${String(r.numSplits).padStart(6)} | ` +
        `${r.ms.toFixed(4).padStart(9)} ${r.gbps.toFixed(0).padStart(6)} ${pc(r.fractionOfCopy).padStart(8)} | ` +
        (best ? `${(best.impl + " (" + best.gqa + ")").padEnd(28)} ${best.ms.toFixed(4).padStart(9)} ${best.gbps.toFixed(0).padStart(6)} | ${(best.ms / r.ms).toFixed(2)}` : "no SDPA backend"));
    }
    console.log(`L >= 8k: worst ${pc(worst8k)} of copy over ${n8k} rows (bar 70%, goal 85%); slower than the best SDPA backend in ${slower} of them`);
    const rej = peer.results.filter((p) => p.error).map((p) => p.impl + ": " + p.error);
    if (rej.length) console.log("SDPA rejections (first 3 distinct):\n  " + [...new Set(rej)].slice(0, 3).join("\n  "));
  ' $OUT > $OUT/decode-table.txt 2>&1
fi
snap
echo "==== summary"
cat $W/gpu.txt
echo "inference conformance: $CONF"
grep -E '^case fail' $W/inference.log 2>/dev/null | head -20
echo "gpt2 cached generation (inference-gpt2): $GPT2"
grep -E '^(pass|FAIL|info)' $W/inference-gpt2.log 2>/dev/null
echo "memcheck (inference-sanitize): $SAN"
grep -E '^copy|rc=' $W/decode-ours.log 2>/dev/null
grep -E 'Error|error' $W/decode-ours.log 2>/dev/null | head -5
cat $OUT/decode-table.txt 2>/dev/null
stamp "all done"
