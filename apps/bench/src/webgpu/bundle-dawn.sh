# Sourced by the device scripts of this folder (decode-device.sh, ops-device.sh):
#   bundle_for_dawn OUT_DIR ENTRY.ts...
# empties OUT_DIR, bundles each entry (apps/bench/src/webgpu/<name>.ts -> OUT_DIR/<name>.mjs, node_modules-free,
# with a `require` for the CommonJS parts) and copies the `webgpu` package's index.js, package.json and
# dist/linux-x64/dawn.node (21 MB) into OUT_DIR/node_modules/webgpu, so the provider's import('webgpu')
# resolves on the GPU machine, which has no Node modules. Run after building the packages the entries import.
bundle_for_dawn() {
  local root out esb wg entry
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../../.." && pwd)"
  out="$1"
  shift
  rm -rf "$out"
  mkdir -p "$out/node_modules/webgpu/dist/linux-x64"
  esb="$root/packages/webgpu/node_modules/.bin/esbuild"
  for entry in "$@"; do
    "$esb" "$root/apps/bench/src/webgpu/$entry" --bundle --platform=node --format=esm --target=node20 \
      --external:webgpu --log-level=warning \
      "--banner:js=import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" \
      --outfile="$out/${entry%.ts}.mjs"
  done
  wg="$root/packages/webgpu/node_modules/webgpu"
  cp "$wg/index.js" "$wg/package.json" "$out/node_modules/webgpu/"
  cp "$wg/dist/linux-x64/dawn.node" "$out/node_modules/webgpu/dist/linux-x64/"
  du -sh "$out" "$root/.carry"
}
