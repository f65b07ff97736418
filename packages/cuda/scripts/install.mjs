#!/usr/bin/env node
// The package's install script. With a prebuilt addon for this platform (the optional dependency
// @flashattn/cuda-<platform>-<arch>, e.g. @flashattn/cuda-linux-x64) there is nothing to compile: say so
// and finish in milliseconds. Without one, or with FLASHATTN_CUDA_BUILD_FROM_SOURCE=1, compile from
// source with nvcc (scripts/build-native.mjs --optional: a machine without nvcc still installs, and
// isCudaAvailable() then says what is missing).
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const prebuiltName = `@flashattn/cuda-${process.platform}-${process.arch}`;
if (process.env.FLASHATTN_CUDA_BUILD_FROM_SOURCE !== '1') {
  try {
    const info = createRequire(import.meta.url)(`${prebuiltName}/prebuilt.json`);
    console.log(
      `[@flashattn/cuda] using the prebuilt addon from ${prebuiltName} (${info.arch}, CUDA ${info.cudaVersion}); ` +
        'set FLASHATTN_CUDA_BUILD_FROM_SOURCE=1 to compile from source instead',
    );
    process.exit(0);
  } catch {
    // no prebuilt package for this platform (or it was not installed): build from source
  }
}
const r = spawnSync(process.execPath, [join(here, 'build-native.mjs'), '--optional'], {
  stdio: 'inherit',
});
process.exit(r.status ?? 1);
