#!/usr/bin/env bash
# Bundle the WebGPU benchmarks for the GPU machine (no Node modules there): one .mjs each into
# .bundle-webgpu/ at the repo root, beside the conformance script and dawn.node that
# packages/webgpu/scripts/bundle.sh puts there.
set -euo pipefail
root="$(cd "$(dirname "$0")/../../../.." && pwd)"
out="$root/.bundle-webgpu"
mkdir -p "$out"
esb="$root/packages/webgpu/node_modules/.bin/esbuild"
common=(--bundle --platform=node --format=esm --target=node20 --external:webgpu --log-level=warning)
"$esb" "$root/apps/bench/src/webgpu/strided.ts" "${common[@]}" --outfile="$out/webgpu-strided.mjs"
[ -f "$root/apps/bench/src/webgpu/bench.ts" ] && "$esb" "$root/apps/bench/src/webgpu/bench.ts" "${common[@]}" --outfile="$out/webgpu-bench.mjs"
ls -la "$out"
