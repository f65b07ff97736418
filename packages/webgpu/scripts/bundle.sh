#!/usr/bin/env bash
# Bundle the WebGPU device scripts for the GPU machine (which has no Node modules): one .mjs each
# plus Dawn's dawn.node, into .bundle-webgpu/ at the repo root (git-ignored via .git/info/exclude).
set -euo pipefail
root="$(cd "$(dirname "$0")/../../.." && pwd)"
pkg="$root/packages/webgpu"
out="$root/.bundle-webgpu"
mkdir -p "$out"
esb="$pkg/node_modules/.bin/esbuild"
common=(--bundle --platform=node --format=esm --target=node20 --external:webgpu --log-level=warning)
"$esb" "$root/apps/bench/src/webgpu-bench.ts" "${common[@]}" --outfile="$out/webgpu-bench.mjs"
"$esb" "$pkg/scripts/device-conformance.ts" "${common[@]}" --outfile="$out/device-conformance.mjs"
cp "$pkg/node_modules/webgpu/dist/linux-x64/dawn.node" "$out/dawn.node"
ls -la "$out"
