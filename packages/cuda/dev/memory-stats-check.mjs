// The addon's memoryStats on a GPU without node_modules (the device machine): allocate, free and reset through the
// raw entry points (the TypeScript face, CudaDevice.memoryStats, is tested
// by src/memory-stats.test.ts, whose GPU part needs vitest). Prints each reading and exits 1 when a count is off.
//   FLASHATTN_CUDA_ADDON=.bundle-gpt2/flashattn_cuda.node node packages/cuda/dev/memory-stats-check.mjs
import { createRequire } from 'node:module';
import { resolve } from 'node:path';

const require = createRequire(import.meta.url);
const A = require(
  process.env.FLASHATTN_CUDA_ADDON
    ? resolve(process.env.FLASHATTN_CUDA_ADDON) // a path from the working directory, not a package name
    : '../build/Release/flashattn_cuda.node',
);
const dev = 0;
const MiB = 2 ** 20;
let failed = 0;
const check = (ok, what) => {
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}`);
  if (!ok) failed++;
};
const stats = (label, reset = false) => {
  const s = A.memoryStats(dev, reset);
  console.log(`${label}: ${JSON.stringify(s)}`);
  return s;
};

A.memoryStats(dev, true);
const s0 = stats('start (after reset)');
check(s0.peakBytes === s0.allocatedBytes, 'after a reset the peak is the bytes in use');
const p = A.malloc(dev, 4 * MiB);
const s1 = stats('4 MiB allocated');
check(s1.poolBytes - s0.poolBytes >= 4 * MiB, 'the pool counts the 4 MiB buffer');
check(s1.peakBytes >= s0.allocatedBytes + 4 * MiB, 'the peak includes it');
A.free(dev, p);
await A.synchronize(dev);
const s2 = stats('freed');
check(s2.allocatedBytes === s0.allocatedBytes, 'its free returns the bytes in use to the start');
check(s2.peakBytes >= s0.allocatedBytes + 4 * MiB, 'the peak stays');
A.memoryStats(dev, true);
const s3 = stats('reset');
check(s3.peakBytes === s3.allocatedBytes, 'the reset drops the peak to the bytes in use');
console.log(failed ? `${failed} check(s) failed` : 'memoryStats: all checks passed');
process.exit(failed ? 1 : 0);
