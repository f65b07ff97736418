#!/usr/bin/env bash
# Bundle the WebGPU conformance script for the GPU machine (which has no Node modules): one .mjs plus
# Dawn's dawn.node, into .bundle-webgpu/ at the repo root (git-ignored via .git/info/exclude). The
# benchmarks bundle themselves into the same folder (apps/bench/src/webgpu/bundle.sh).
set -euo pipefail
root="$(cd "$(dirname "$0")/../../.." && pwd)"
pkg="$root/packages/webgpu"
out="$root/.bundle-webgpu"
mkdir -p "$out"
esb="$pkg/node_modules/.bin/esbuild"
common=(--bundle --platform=node --format=esm --target=node20 --external:webgpu --log-level=warning)
"$esb" "$pkg/scripts/device-conformance.ts" "${common[@]}" --outfile="$out/device-conformance.mjs"
cp "$pkg/node_modules/webgpu/dist/linux-x64/dawn.node" "$out/dawn.node"
ls -la "$out"
