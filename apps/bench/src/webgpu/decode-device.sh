#!/usr/bin/env bash
# WebGPU inference on the GPU machine through Dawn (issue #12): the inference conformance suite
# (inference-conformance.ts: KV cache, split-KV, combine, varlen; f16 as native shader-f16) and the
# decode benchmark (decode-bench.ts: K/V read GB/s against a WGSL copy kernel in the same run) and the
# varlen route's per-sequence launch cost (varlen-bench.ts), in one device command.
#
#   here:        apps/bench/src/webgpu/decode-device.sh bundle
#                  -> .bundle-webgpu-decode/ (git-ignored): inference-conformance.mjs, decode-bench.mjs, varlen-bench.mjs and
#                     node_modules/webgpu (index.js, package.json, dist/linux-x64/dawn.node: 21 MB), so the
#                     provider's import('webgpu') resolves; with .carry (29 MB) it stays under 64 MiB.
#                  dry run on SwiftShader: VK_DRIVER_FILES=/usr/lib/chromium/vk_swiftshader_icd.json \
#                    node .bundle-webgpu-decode/decode-bench.mjs --quick
#   on the GPU:  run tool, carry [".carry", ".bundle-webgpu-decode"], command:
#                  apps/bench/src/webgpu/decode-device.sh run [decode-bench flags...]
#                Results: $OUT/inference-conformance.{txt,json}, $OUT/decode-bench.{txt,json},
#                $OUT/varlen-bench.{txt,json}.
set -uo pipefail
root="$(cd "$(dirname "$0")/../../../.." && pwd)"
out="$root/.bundle-webgpu-decode"
mode="${1:-}"
shift || true
case "$mode" in
bundle)
  set -e
  npx -y pnpm@10.34.8 --filter @flashattn/core --filter @flashattn/webgpu --filter @flashattn/conformance build >/dev/null
  source "$root/apps/bench/src/webgpu/bundle-dawn.sh"
  bundle_for_dawn "$out" inference-conformance.ts decode-bench.ts varlen-bench.ts
  ;;
run)
  res="${OUT:-/tmp/out}"
  mkdir -p "$res"
  source "$root/.carry/setup.sh"
  cd "$out"
  nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$res/device.txt"
  timeout "${CONF_TIMEOUT:-120}" node inference-conformance.mjs "$res/inference-conformance.json" \
    > "$res/inference-conformance.txt" 2>&1
  echo "inference conformance exit $?"
  grep -E 'passed, [0-9]+ failed' "$res/inference-conformance.txt"
  grep -E 'FAIL' "$res/inference-conformance.txt" | head -20
  timeout "${BENCH_TIMEOUT:-400}" node decode-bench.mjs "$@" --json "$res/decode-bench.json" \
    > "$res/decode-bench.txt" 2>&1
  echo "decode-bench exit $?"
  grep -vE ' ms, |skipped \(' "$res/decode-bench.txt" | tail -60
  timeout "${VARLEN_TIMEOUT:-60}" node varlen-bench.mjs --batches 1,8,64 --len 512 --heads 16 --head-dim 64 \
    --json "$res/varlen-bench.json" > "$res/varlen-bench.txt" 2>&1
  echo "varlen-bench exit $?"
  tail -6 "$res/varlen-bench.txt"
  ;;
*)
  echo "usage: $0 bundle | run [decode-bench flags]" >&2
  exit 2
  ;;
esac
