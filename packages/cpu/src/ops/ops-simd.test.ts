// The SIMD layernorm / GELU / softmax cross-entropy / AdamW (ops-simd.ts): CpuOps takes them for float32
// buffers in its wasm memory (so cpu-ops.conformance.test.ts, whose buffers come from alloc, checks them
// against the float64 reference) and the scalar kernels otherwise; and the plain-SIMD variant of the same
// kernels against the ops conformance suite (the default variant is FMA where the runtime has it).
import { describeOpsConformance } from '@flashattn/conformance/vitest';
import { createRng, freshSeed } from '@flashattn/core';
import { afterAll, describe, expect, it } from 'vitest';
import { CpuOps } from './cpu-ops.js';

const seed = freshSeed();

describe(`SIMD ops path (seed ${seed})`, () => {
  const simd = new CpuOps({ threads: 1 });
  const scalar = new CpuOps({ threads: 1, simd: false });
  afterAll(async () => {
    await simd.dispose();
    await scalar.dispose();
  });
  const rng = createRng(seed);
  // n and C = 37: four-lane steps and a tail of 1.
  const [N, C, V] = [3, 37, 37];
  const rand = (ops: CpuOps, n: number, dtype: 'float32' | 'float64' = 'float32') => {
    const a = ops.alloc(n, dtype) as Float32Array | Float64Array;
    for (let i = 0; i < n; i++) a[i] = rng.normal();
    return a;
  };
  // rstd and AdamW's v: positive
  const pos = (ops: CpuOps, n: number, dtype: 'float32' | 'float64') => {
    const a = rand(ops, n, dtype);
    for (let i = 0; i < n; i++) a[i] = Math.abs(a[i]!);
    return a;
  };
  const calls: Array<[string, (ops: CpuOps, dtype: 'float32' | 'float64') => void]> = [
    [
      'layernormForward',
      (o, d) =>
        o.layernormForward(
          rand(o, N * C, d),
          rand(o, N, d),
          rand(o, N, d),
          rand(o, N * C, d),
          rand(o, C, d),
          rand(o, C, d),
          N,
          C,
        ),
    ],
    [
      'layernormBackward',
      (o, d) =>
        o.layernormBackward(
          rand(o, N * C, d),
          rand(o, C, d),
          rand(o, C, d),
          rand(o, N * C, d),
          rand(o, N * C, d),
          rand(o, C, d),
          rand(o, N, d),
          pos(o, N, d),
          N,
          C,
        ),
    ],
    ['geluForward', (o, d) => o.geluForward(rand(o, C, d), rand(o, C, d), C)],
    ['geluBackward', (o, d) => o.geluBackward(rand(o, C, d), rand(o, C, d), rand(o, C, d), C)],
    [
      'softmaxCrossEntropy',
      (o, d) =>
        o.softmaxCrossEntropy(
          rand(o, N, d),
          rand(o, N * V, d),
          rand(o, N * V, d),
          Int32Array.of(0, 5, -1),
          N,
          V,
          1 / N,
        ),
    ],
    [
      'adamw',
      (o, d) =>
        o.adamw(rand(o, C, d), rand(o, C, d), rand(o, C, d), pos(o, C, d), {
          lr: 1e-3,
          beta1: 0.9,
          beta2: 0.999,
          eps: 1e-8,
          weightDecay: 0.1,
          t: 3,
        }),
    ],
  ];
  for (const [name, call] of calls) {
    it(`${name}: wasm SIMD for float32 buffers in the arena, scalar for float64 and without SIMD`, () => {
      call(simd, 'float32');
      expect(simd.lastOpPath).toBe('simd');
      call(simd, 'float64');
      expect(simd.lastOpPath).toBe('scalar');
      call(scalar, 'float32');
      expect(scalar.lastOpPath).toBe('scalar');
    });
  }
});

// The plain-SIMD variant (the FMA one runs in cpu-ops.conformance.test.ts), the ops the SIMD kernels
// serve only.
for (const op of ['layernorm', 'gelu', 'softmaxCrossEntropy', 'adamw'])
  describeOpsConformance(
    `cpu ops, plain wasm simd (${op})`,
    () => new CpuOps({ threads: 1, fma: false }),
    {
      matrix: 'ci',
      filter: op,
    },
  );
