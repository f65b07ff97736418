#!/usr/bin/env bash
# The WebGPU ops on the GPU machine through Dawn (issue #13): the ops conformance suite and the GPT-2
# training benchmark (train-ops-bench.ts: the fp32 matmul ceiling, then tiny / small / gpt2-124m steps
# with per-op profiles, model TFLOP/s as a fraction of the ceiling), in one device command.
#
#   here:        apps/bench/src/webgpu/ops-device.sh bundle
#                  -> .bundle-webgpu-ops/ (git-ignored): ops-conformance.mjs, train-ops-bench.mjs and
#                     node_modules/webgpu (index.js, package.json, dist/linux-x64/dawn.node: 21 MB), so the
#                     provider's import('webgpu') resolves; with .carry (29 MB) it stays under 64 MiB.
#   on the GPU:  run tool, carry [".carry", ".bundle-webgpu-ops"], command:
#                  apps/bench/src/webgpu/ops-device.sh run [bench flags...]
#                  (default flags: --configs tiny,small,gpt2-124m --batch 8 --seq 1024 --steps 5)
#                Results: $OUT/ops-conformance.{txt,json}, $OUT/train-ops-bench.{txt,json}.
set -uo pipefail
root="$(cd "$(dirname "$0")/../../../.." && pwd)"
out="$root/.bundle-webgpu-ops"
mode="${1:-}"
shift || true
case "$mode" in
bundle)
  set -e
  npx -y pnpm@10.34.8 --filter @flashattn/webgpu --filter @flashattn/conformance --filter @flashattn/transformer --filter @flashattn/cpu build >/dev/null
  source "$root/apps/bench/src/webgpu/bundle-dawn.sh"
  bundle_for_dawn "$out" ops-conformance.ts train-ops-bench.ts
  ;;
run)
  res="${OUT:-/tmp/out}"
  mkdir -p "$res"
  source "$root/.carry/setup.sh"
  cd "$out"
  nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$res/device.txt"
  timeout "${CONF_TIMEOUT:-120}" node ops-conformance.mjs "${MATRIX:-full}" "$res/ops-conformance.json" \
    > "$res/ops-conformance.txt" 2>&1
  echo "ops conformance exit $?"
  head -n 1 "$res/ops-conformance.txt"
  grep -E '^fail' "$res/ops-conformance.txt" | head -20
  if [ $# -eq 0 ]; then set -- --configs tiny,small,gpt2-124m --batch 8 --seq 1024 --steps 5; fi
  timeout "${BENCH_TIMEOUT:-240}" node train-ops-bench.mjs "$@" --json "$res/train-ops-bench.json" \
    > "$res/train-ops-bench.txt" 2>&1
  echo "train-ops-bench exit $?"
  grep -vE '^ {2,}|^backend --' "$res/train-ops-bench.txt" | tail -40
  ;;
*)
  echo "usage: $0 bundle | run [train-ops-bench flags]" >&2
  exit 2
  ;;
esac
