// The blocked, threaded matmul against a float64 triple loop, with the tolerance rule: its error must
// be <= 2x that of a naive float32 loop (rounding after every multiply-add) + a 1e-6 floor.
import { createRng, freshSeed } from '@flashattn/core';
import { afterAll, describe, expect, it } from 'vitest';
import { nativeInfo } from '../attention/flash-native.js';
import { CpuOps } from './cpu-ops.js';

const seed = freshSeed();
// Every kernel: the plain JS one (matmul-kernel.ts), the wasm SIMD gemm (matmul-blocked.ts) and, where
// the addon has it, the native AVX2 gemm (matmul-native.ts; matmul-native.test.ts has the rest of its checks).
const kernels: Record<string, [CpuOps, CpuOps]> = {
  js: [new CpuOps({ threads: 1, simd: false }), new CpuOps({ threads: 2, simd: false })],
  simd: [new CpuOps({ threads: 1, native: false }), new CpuOps({ threads: 2, native: false })],
};
if (nativeInfo().gemm) kernels['native'] = [new CpuOps({ threads: 1 }), new CpuOps({ threads: 2 })];
else console.warn(`matmul.test: no native gemm kernel: ${nativeInfo().reason ?? '?'}`);
const all = Object.values(kernels).flat();
afterAll(async () => {
  for (const o of all) await o.dispose();
});

function randn64(n: number, s: number): Float64Array {
  const rng = createRng(s);
  return Float64Array.from({ length: n }, () => rng.normal());
}

function fill(ops: CpuOps, src: Float64Array): Float32Array {
  const a = ops.alloc(src.length, 'float32') as Float32Array;
  for (let i = 0; i < src.length; i++) a[i] = src[i]!;
  return a;
}

// Shapes: tiny, not multiples of the 4x4 tile, K longer than the 256 panel, N wider than the 64 panel.
const shapes: Array<[number, number, number]> = [
  [1, 1, 1],
  [5, 7, 3],
  [67, 130, 301],
  [128, 96, 513],
];

describe(`CPU matmul vs float64 oracle (seed ${seed})`, () => {
  for (const [M, N, K] of shapes) {
    for (const [transA, transB] of [
      [false, false],
      [true, false],
      [false, true],
      [true, true],
    ] as const) {
      it(`M=${M} N=${N} K=${K} transA=${transA} transB=${transB}, bias and accumulate`, async () => {
        const a64 = randn64(M * K, seed + M);
        const b64 = randn64(K * N, seed + N);
        const bias64 = randn64(N, seed + K);
        const c064 = randn64(M * N, seed + 1);
        const A = (i: number, k: number): number => (transA ? a64[k * M + i]! : a64[i * K + k]!);
        const Bv = (k: number, j: number): number => (transB ? b64[j * K + k]! : b64[k * N + j]!);
        const ref = new Float64Array(M * N);
        const naive = new Float32Array(M * N);
        const a32 = Float32Array.from(a64);
        const b32 = Float32Array.from(b64);
        for (let i = 0; i < M; i++)
          for (let j = 0; j < N; j++) {
            let s = 0;
            let s32 = Math.fround(c064[i * N + j]!);
            for (let k = 0; k < K; k++) {
              s += Math.fround(A(i, k)) * Math.fround(Bv(k, j));
              const av = transA ? a32[k * M + i]! : a32[i * K + k]!;
              const bv = transB ? b32[j * K + k]! : b32[k * N + j]!;
              s32 = Math.fround(s32 + Math.fround(av * bv));
            }
            ref[i * N + j] = s + Math.fround(c064[i * N + j]!);
            naive[i * N + j] = s32;
          }
        let naiveErr = 0;
        for (let i = 0; i < M * N; i++)
          naiveErr = Math.max(naiveErr, Math.abs(naive[i]! - ref[i]!));
        for (const [name, [one, two]] of Object.entries(kernels)) {
          const results: Float32Array[] = [];
          for (const ops of [one!, two!]) {
            const out = fill(ops, c064);
            await ops.matmul(out, fill(ops, a64), fill(ops, b64), M, N, K, {
              transA,
              transB,
              accumulate: true,
            });
            results.push(out);
          }
          let err = 0;
          for (let i = 0; i < M * N; i++) err = Math.max(err, Math.abs(results[0]![i]! - ref[i]!));
          expect(err, `${name} kernel, seed ${seed}`).toBeLessThanOrEqual(2 * naiveErr + 1e-6);
          // One thread or two: bitwise identical (each row has one owner; exact resume relies on it).
          expect(results[1], `${name} kernel`).toEqual(results[0]);
          // Bias path (accumulate = false): out = op(A) op(B) + bias.
          const out = two!.alloc(M * N, 'float32') as Float32Array;
          await two!.matmul(out, fill(two!, a64), fill(two!, b64), M, N, K, {
            transA,
            transB,
            bias: fill(two!, bias64),
          });
          let errB = 0;
          for (let i = 0; i < M; i++)
            for (let j = 0; j < N; j++) {
              const want =
                ref[i * N + j]! - Math.fround(c064[i * N + j]!) + Math.fround(bias64[j]!);
              errB = Math.max(errB, Math.abs(out[i * N + j]! - want));
            }
          expect(errB, `${name} kernel, seed ${seed}`).toBeLessThanOrEqual(2 * naiveErr + 1e-6);
        }
      });
    }
  }

  it('K = 0: out = 0 (plain), bias (bias), out unchanged (accumulate), on every kernel', async () => {
    // An empty sum: C must be overwritten even though no K block runs (the fuzz suite found a stale C).
    for (const ops of all) {
      for (const N of [1, 4, 5]) {
        const M = 3;
        const a = ops.alloc(0, 'float32');
        const b = ops.alloc(0, 'float32');
        const out = ops.alloc(M * N, 'float32') as Float32Array;
        out.fill(7.5);
        await ops.matmul(out, a, b, M, N, 0);
        expect(Array.from(out), `${ops.name} N=${N}`).toEqual(new Array(M * N).fill(0));
        const bias = ops.alloc(N, 'float32') as Float32Array;
        for (let j = 0; j < N; j++) bias[j] = j + 0.25;
        out.fill(7.5);
        await ops.matmul(out, a, b, M, N, 0, { bias });
        expect(Array.from(out)).toEqual(Array.from({ length: M * N }, (_, i) => (i % N) + 0.25));
        out.fill(7.5);
        await ops.matmul(out, a, b, M, N, 0, { accumulate: true });
        expect(Array.from(out)).toEqual(new Array(M * N).fill(7.5));
      }
    }
  });

  it('the wasm gemm falls back to the JS kernel when its packs no longer fit the wasm memory', async () => {
    // A 1 MiB wasm memory: out, a and b (transposed, so it must be packed: 512 KiB) leave no room for the pack.
    const ops = new CpuOps({ threads: 1, native: false, wasmMemoryBytes: 2 ** 20 });
    try {
      const [M, N, K] = [8, 128, 1024];
      const a64 = randn64(M * K, seed + 7);
      const b64 = randn64(N * K, seed + 8); // (N, K): transB
      const out = ops.alloc(M * N, 'float32') as Float32Array;
      const a = fill(ops, a64);
      const b = fill(ops, b64);
      await ops.matmul(out, a, b, M, N, K, { transB: true });
      expect(ops.lastMatmulPath).toBe('scalar');
      let worst = 0;
      for (let i = 0; i < M; i++)
        for (let j = 0; j < N; j++) {
          let ref = 0;
          for (let k = 0; k < K; k++)
            ref += Math.fround(a64[i * K + k]!) * Math.fround(b64[j * K + k]!);
          worst = Math.max(worst, Math.abs(out[i * N + j]! - ref));
        }
      expect(worst).toBeLessThan(1e-3); // |ref| ~ 32: float32 sums of 1024 products
      // The control: a small product still fits and takes the wasm gemm.
      const small = ops.alloc(4, 'float32') as Float32Array;
      await ops.matmul(
        small,
        Float32Array.from([1, 2, 3, 4]),
        Float32Array.from([5, 6, 7, 8]),
        2,
        2,
        2,
      );
      expect(Array.from(small)).toEqual([19, 22, 43, 50]);
      expect(ops.lastMatmulPath).toBe('simd');
    } finally {
      await ops.dispose();
    }
  });

  it('falls back to the JS kernel on one thread for plain (non-shared) arrays and still computes', async () => {
    const out = new Float32Array(4);
    await kernels['simd']![1].matmul(
      out,
      Float32Array.from([1, 2, 3, 4]),
      Float32Array.from([5, 6, 7, 8]),
      2,
      2,
      2,
    );
    expect(Array.from(out)).toEqual([19, 22, 43, 50]);
  });
});
