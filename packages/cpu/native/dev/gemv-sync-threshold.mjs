#!/usr/bin/env node
// Where the small-M path (native/gemv_avx2.cc) should leave the calling thread (src/ops/matmul-native.ts):
// per M = 1 decode shape, the median time of gemmSync on one thread against gemm (the pool) on all
// threads, alternating; B cycles through copies totalling >= 64 MiB so that each call reads its weight
// from memory, as a decode step does (every layer's weights in turn), not from a warm cache. Run (repo
// root, after the addon build):
//   node packages/cpu/native/dev/gemv-sync-threshold.mjs
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
for (const [M, N, K, transB] of [
  [1, 384, 128, false],
  [1, 384, 384, false],
  [1, 1152, 384, false],
  [1, 1536, 384, false],
  [1, 384, 1536, false],
  [1, 2304, 768, false],
  [1, 8192, 384, true],
  [4, 1152, 384, false],
  [1, 3072, 768, false],
  [1, 768, 3072, false],
  [1, 8192, 768, true],
]) {
  const f = (n) => new Float32Array(new SharedArrayBuffer(4 * n)).fill(0.5);
  const copies = Math.max(2, Math.ceil((64 << 20) / (4 * K * N)));
  const bs = Array.from({ length: copies }, () => f(K * N));
  const args = {
    M,
    N,
    K,
    transA: false,
    transB,
    accumulate: false,
    a: f(M * K),
    b: bs[0],
    c: f(M * N),
    bias: null,
    threads,
    variant: 0,
  };
  const t = [[], []];
  let next = 0;
  const b = () => bs[next++ % copies];
  for (let r = 0; r < 200; r++) {
    let t0 = performance.now();
    addon.gemmSync({ ...args, b: b(), threads: 1 });
    t[0].push(performance.now() - t0);
    t0 = performance.now();
    await addon.gemm({ ...args, b: b() });
    t[1].push(performance.now() - t0);
  }
  const [s, p] = t.map((x) => median(x) * 1000);
  console.log(
    `M ${M} N ${N} K ${K}${transB ? ' transB' : ''} (${((M * N * K) / 2 ** 20).toFixed(2)} Mi MACs, B ${((4 * K * N) / 2 ** 20).toFixed(2)} MiB): sync 1 thread ${s.toFixed(0)} us, pool ${threads} threads ${p.toFixed(0)} us (${(s / p).toFixed(2)}x)`,
  );
}
