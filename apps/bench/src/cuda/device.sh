#!/bin/bash
# The GPU run of @flashattn/cuda in one device command (see BENCHMARKS.md, CUDA section):
#   bash apps/bench/src/cuda/device.sh [strided|full|check|bench|f32]
# check:   conformance (host AttentionBackend, full matrix; createCudaDevice()'s strided DeviceAttention on the
#          layouts contiguous and packed8 with the full matrix, padded8 and conformance's padded, packed with ci),
#          the float32-compute jobs of f32 (below), the deterministic smoke run, compute-sanitizer memcheck (host
#          sanitize cases and sanitize-device: small strided fwd + bwd), selftest.
# f32:     float32 computed in float32 (float32ComputeDType 'float32', issue #10) only: the float32 cases of the
#          full matrix on the host backend and on createCudaDevice() with conformance's odd packed layout (read in
#          place), the ci ones on the padded layout; the broken float32 kernel (--fault drop-last-key-block) must
#          fail; then float32 vs bf16 timing of GPT-2 124M's attention (B = 4, T = 1024, H = 12, D = 64, causal,
#          packed qkv); compute-sanitizer memcheck of the float32 kernels on the smoke cases alongside. Stage limits
#          CONF_TIMEOUT (default 270 s, as check), MEMCHECK_TIMEOUT 150 s, BENCH_TIMEOUT 60 s.
# strided: check, then bf16 D = 64 / 128, N = 4096 (B = 4, H = 2048 / D), causal and not: ours contiguous, ours
#          with q, k, v read from a packed (B, T, 3, H, D) buffer and dq, dk, dv written into one, and PyTorch
#          SDPA flash in the same command; prints the ratios last.
# full:    check + racecheck + the full benchmark (bf16 / fp16, N = 512..32768) + memory, report.md.
# bench:   the full benchmark only.
# Needs .carry (Node) and .bundle-cuda (device-run.mjs, report.mjs, flashattn_cuda.node) carried along.
# Writes $OUT/*.json, report.md, logs.tar.gz; prints a short summary last.
set -u
cd "$(dirname "$0")/../../../.."
source apps/bench/src/cuda/common.sh
cuda_work /tmp/cuda-work logs.tar.gz
MODE=${1:-strided}
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,power.draw,power.limit,temperature.gpu --format=csv > $W/gpu.txt 2>&1

strided_bench() {
  timeout 120 node $BUN/device-run.mjs bench --seqlens 4096 --dtypes bfloat16 --layouts contiguous,packed --json $OUT/ours.json > $W/ours.log 2>&1
  stamp "ours bench done"
  PYTHONUNBUFFERED=1 timeout 120 python3 apps/bench/src/cuda-sdpa-peer.py --seqlens 4096 --dtypes bfloat16 --impls flash --json $OUT/peer.json > $W/peer.log 2>&1
  stamp "peer bench done"
  node -e '
    const fs = require("fs"); const out = process.argv[1];
    const peer = JSON.parse(fs.readFileSync(out + "/peer.json")).results.filter((r) => r.impl === "flash");
    const ours = JSON.parse(fs.readFileSync(out + "/ours.json")).results;
    const k = (r) => [r.dtype, "D=" + r.headDim, "causal=" + r.causal, "N=" + r.seqlen].join(" ");
    console.log("TFLOP/s (ratio to torch flash): fwd | bwd | fwd+bwd");
    for (const p of peer) {
      const cells = ["contiguous", "packed"].map((l) => {
        const r = ours.find((o) => o.layout === l && k(o) === k(p));
        return r ? l + " " + ["fwd", "bwd", "fwdbwd"].map((x) => r[x + "Tflops"].toFixed(0) + " (" + (r[x + "Tflops"] / p[x + "Tflops"]).toFixed(2) + ")").join(" | ") : l + " -";
      });
      console.log(k(p).padEnd(34) + "flash " + p.fwdTflops.toFixed(0) + " | " + p.bwdTflops.toFixed(0) + " | " + p.fwdbwdTflops.toFixed(0) + "\n    " + cells.join("\n    "));
    }' $OUT > $OUT/strided-table.txt 2>&1
  cat $OUT/strided-table.txt
}

if [ "$MODE" != bench ]; then
  # 1. Conformance: one process per (backend, head dim), all at once (each is bounded by CONF_TIMEOUT).
  {
    if [ "$MODE" != f32 ]; then
      for d in 32 64 80 96 128 256; do
        echo "host full $d"
        for l in contiguous packed8; do echo "$l full $d"; done
      done
      for l in padded8 padded packed; do echo "$l ci -"; done
    fi
    # float32 compute (the float32 FMA kernels): float32 cases only
    for d in 32 64 80 96 128 256; do for l in host packed; do echo "$l full $d f32"; done; done
    echo "padded ci - f32"
  } > $W/conf-jobs.txt
  run_conf() {  # backend matrix headdim [f32]
    local dev=(); [ "$1" != host ] && dev=(--device "$1")
    local f32=(); local pre=" "; local tag=""
    if [ "${4:-}" = f32 ]; then f32=(--f32); pre="f32 "; tag="-f32"; fi
    local filt=(); [ "$3" != - ] && filt=(--filter "${pre}d$3 ")
    [ "$3" = - ] && [ -n "$tag" ] && filt=(--filter "f32 ")
    local log=$W/conf-$1-$2-$3$tag
    timeout ${CONF_TIMEOUT:-270} node $BUN/device-run.mjs conformance --matrix "$2" "${filt[@]}" "${dev[@]}" \
      "${f32[@]}" --json $log.json > $log.log 2>&1
    echo "rc=$?" >> $log.log
  }
  export -f run_conf; export BUN W
  # the broken float32 kernel must fail the suite (its log is not a conf-*.log: its failures are the point)
  timeout ${CONF_TIMEOUT:-270} node $BUN/device-run.mjs conformance --matrix ci --filter "f32 " --device packed \
    --f32 --fault drop-last-key-block > $W/fault-f32.log 2>&1 &
  if [ "$MODE" = f32 ]; then  # memcheck of the float32 kernels on the smoke cases, strided (packed, odd offsets)
    { timeout ${MEMCHECK_TIMEOUT:-150} compute-sanitizer --tool memcheck --error-exitcode 9 node $BUN/device-run.mjs \
        conformance --matrix smoke --filter "f32 " --device packed --f32 > $W/memcheck-f32.log 2>&1
      echo "memcheck-f32 rc=$?" >> $W/memcheck-f32.log; } &
  fi
  xargs -P 32 -L 1 bash -c 'run_conf $0 $1 $2 $3' < $W/conf-jobs.txt
  wait
  stamp "f32 fault run: $(grep -h '^fault' $W/fault-f32.log)"
  if [ "$MODE" != f32 ]; then
    timeout ${DET_TIMEOUT:-40} node $BUN/device-run.mjs conformance --matrix smoke --deterministic > $W/conf-det.log 2>&1
    timeout ${DET_TIMEOUT:-40} node $BUN/device-run.mjs conformance --matrix smoke --deterministic --device packed8 > $W/conf-det-packed8.log 2>&1
  fi
  stamp "conformance done: $(cat $W/conf-*.log | grep -c '^case pass') case runs passed, $(cat $W/conf-*.log | grep -c '^case fail') failed"
  [ "$MODE" = strided ] && strided_bench
  if [ "$MODE" = f32 ]; then
    timeout ${BENCH_TIMEOUT:-60} node $BUN/device-run.mjs bench --dtypes float32,bfloat16 --layouts packed \
      --shape 4,1024,12,64,1 --json $OUT/f32-bench.json > $W/f32-bench.log 2>&1
    stamp "f32 bench done"
  fi
fi
if [ "$MODE" != bench ] && [ "$MODE" != f32 ]; then
  # 2. compute-sanitizer memcheck: the host case set and the small strided device cases.
  timeout ${MEMCHECK_TIMEOUT:-150} compute-sanitizer --tool memcheck --error-exitcode 9 node $BUN/device-run.mjs sanitize-device > $W/memcheck-device.log 2>&1
  echo "memcheck-device rc=$?" >> $W/memcheck-device.log
  stamp "memcheck (strided device cases) done: $(grep -h -E 'ERROR SUMMARY|cases done|rc=' $W/memcheck-device.log | tr '\n' ' ')"
  timeout ${MEMCHECK_TIMEOUT:-150} compute-sanitizer --tool memcheck --error-exitcode 9 node $BUN/device-run.mjs sanitize > $W/memcheck.log 2>&1
  echo "memcheck rc=$?" >> $W/memcheck.log
  if [ "$MODE" = full ]; then
    timeout 300 compute-sanitizer --tool racecheck --racecheck-report hazard --error-exitcode 9 node $BUN/device-run.mjs sanitize --dtypes float16 > $W/racecheck.log 2>&1
    echo "racecheck rc=$?" >> $W/racecheck.log
  fi
  stamp "sanitizers done"
  timeout 60 node $BUN/device-run.mjs selftest > $W/selftest.log 2>&1
  stamp "selftest done"
fi

if [ "$MODE" = full ] || [ "$MODE" = bench ]; then
  timeout 200 node $BUN/device-run.mjs bench --layouts contiguous --json $OUT/ours.json > $W/ours.log 2>&1
  stamp "ours bench done"
  PYTHONUNBUFFERED=1 timeout 300 python3 apps/bench/src/cuda-sdpa-peer.py --json $OUT/peer.json > $W/peer.log 2>&1
  stamp "peer bench done"
  timeout 120 node $BUN/device-run.mjs memory --json $OUT/memory.json > $W/memory.log 2>&1
  node $BUN/report.mjs $OUT/ours.json $OUT/peer.json $OUT/memory.json > $OUT/report.md 2>&1
fi
echo "==== summary"
cat $W/gpu.txt
grep -H "^conformance" $W/conf-*.log | sed "s|^$W/||"
for f in $W/conf-*.log; do  # per-case lines (also from processes cut off by CONF_TIMEOUT)
  echo "$(basename $f .log): $(grep -c '^case pass' $f) pass, $(grep -c '^case fail' $f) fail, $(grep -c '^case skip' $f) skip, $(grep '^rc=' $f)"
done
grep -h -E "^fail|Error|rc=[^0]" $W/conf-*.log | head -20
grep -h -E "cases done|ERROR SUMMARY|RACECHECK SUMMARY|rc=|^conformance" $W/memcheck*.log $W/racecheck.log 2>/dev/null
grep -h -E "BAD|failed" $W/memcheck*.log | head
grep -h "^selftest" $W/selftest.log 2>/dev/null
cat $W/memory.log 2>/dev/null
grep -h "^ours" $W/ours.log 2>/dev/null | head -40
grep -h "^fault" $W/fault-f32.log 2>/dev/null
grep -h "^ours" $W/f32-bench.log 2>/dev/null
cat $OUT/strided-table.txt 2>/dev/null
stamp "all done"
