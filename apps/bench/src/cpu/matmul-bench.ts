/**
 * CPU matmul throughput: GFLOP/s (2*M*N*K per call) for the shapes a GPT-2 step runs: a naive triple
 * loop, the cache-blocked JS kernel, the wasm SIMD kernel and the native AVX2 gemm, each on 1 thread
 * and on all cores.
 * Run (repo root): npx -y pnpm@10.34.8 --filter @flashattn/bench... build && node apps/bench/dist/cpu/matmul-bench.js
 */
import { availableParallelism, cpus } from 'node:os';
import { CpuOps } from '@flashattn/cpu';

function naive(
  C: Float32Array,
  A: Float32Array,
  B: Float32Array,
  M: number,
  N: number,
  K: number,
): void {
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += A[i * K + k]! * B[k * N + j]!;
      C[i * N + j] = s;
    }
  }
}

async function time(fn: () => unknown, minMs = 600): Promise<number> {
  await fn(); // warm up (JIT)
  let n = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < minMs) {
    await fn();
    n++;
  }
  return (performance.now() - t0) / n;
}

const shapes: Array<[string, number, number, number]> = [
  ['qkv fwd  (BT=2048, C=128 -> 384)', 2048, 384, 128],
  ['fc fwd   (BT=2048, C=128 -> 512)', 2048, 512, 128],
  ['lm head  (BT=2048, C=128 -> V=8192)', 2048, 8192, 128],
  ['square 768', 768, 768, 768],
];

const threadsAll = availableParallelism();
const variants: Array<[string, CpuOps]> = [
  ['JS blocked 1T', new CpuOps({ threads: 1, simd: false })],
  [`JS blocked ${threadsAll}T`, new CpuOps({ threads: threadsAll, simd: false })],
  ['wasm SIMD 1T', new CpuOps({ threads: 1, native: false })],
  [`wasm SIMD ${threadsAll}T`, new CpuOps({ threads: threadsAll, native: false })],
  // CpuOps' default: the addon's AVX2 gemm where it runs (nativeInfo().gemm), else the wasm one again
  ['native AVX2 1T', new CpuOps({ threads: 1 })],
  [`native AVX2 ${threadsAll}T`, new CpuOps({ threads: threadsAll })],
];
console.log(
  `CPU: ${cpus()[0]?.model} x ${threadsAll}; node ${process.version}; ${new Date().toISOString().slice(0, 10)}`,
);
console.log(`| shape | naive 1T | ${variants.map(([n]) => n).join(' | ')} |  (GFLOP/s)`);
console.log(`|---|---|${variants.map(() => '---|').join('')}`);
for (const [label, M, N, K] of shapes) {
  const flops = 2 * M * N * K;
  const g = (ms: number): string => (Number.isNaN(ms) ? '-' : (flops / ms / 1e6).toFixed(2));
  const cells: string[] = [];
  let tNaive = NaN;
  for (const [, ops] of variants) {
    // Operands allocated by the ops under test (the SIMD kernel reads them in place from wasm memory).
    const A = ops.alloc(M * K, 'float32') as Float32Array;
    const B = ops.alloc(K * N, 'float32') as Float32Array;
    const C = ops.alloc(M * N, 'float32') as Float32Array;
    for (let i = 0; i < A.length; i++) A[i] = Math.sin(i);
    for (let i = 0; i < B.length; i++) B[i] = Math.cos(i);
    if (Number.isNaN(tNaive) && M * N * K <= 2048 * 512 * 128)
      tNaive = await time(() => naive(C, A, B, M, N, K), 300);
    cells.push(g(await time(() => ops.matmul(C, A, B, M, N, K))));
  }
  console.log(`| ${label} | ${g(tNaive)} | ${cells.join(' | ')} |`);
}
for (const [, ops] of variants) await ops.dispose();
