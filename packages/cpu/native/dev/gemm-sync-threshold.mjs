#!/usr/bin/env node
// Where the native gemm should leave the calling thread (src/ops/matmul-native.ts NATIVE_SYNC_MACS):
// per size, the median time of gemmSync on one thread against gemm (async: libuv hop + the pool) on
// all threads, alternating. Run (repo root, after the addon build):
//   node packages/cpu/native/dev/gemm-sync-threshold.mjs
import { createRequire } from 'node:module';
import { availableParallelism, loadavg } from 'node:os';

const addon = createRequire(import.meta.url)('../../build/Release/flashattn_cpu.node');
const threads = availableParallelism();
const median = (x) => x.sort((a, b) => a - b)[x.length >> 1];
console.log(
  `# ${new Date().toISOString()} ${threads} threads, load ${loadavg()
    .map((x) => x.toFixed(2))
    .join(' ')}`,
);
for (const [M, N, K] of [
  [32, 64, 64],
  [64, 64, 128],
  [64, 128, 128],
  [128, 128, 128],
  [128, 256, 128],
  [256, 256, 128],
  [256, 256, 256],
  [256, 512, 256],
]) {
  const f = (n) => new Float32Array(new SharedArrayBuffer(4 * n)).fill(0.5);
  const args = {
    M,
    N,
    K,
    transA: false,
    transB: false,
    accumulate: false,
    a: f(M * K),
    b: f(K * N),
    c: f(M * N),
    bias: null,
    threads,
    variant: 0,
  };
  const t = [[], []];
  for (let r = 0; r < 200; r++) {
    let t0 = performance.now();
    addon.gemmSync({ ...args, threads: 1 });
    t[0].push(performance.now() - t0);
    t0 = performance.now();
    await addon.gemm(args);
    t[1].push(performance.now() - t0);
  }
  const [s, a] = t.map((x) => median(x.slice(20)) * 1000);
  console.log(
    `MACs 2^${Math.log2(M * N * K).toFixed(1)} (${M}x${N}x${K}): sync 1T ${s.toFixed(0)} us, async ${threads}T ${a.toFixed(0)} us${a < s ? '  <- async faster' : ''}`,
  );
}
