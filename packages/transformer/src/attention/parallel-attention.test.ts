// The batch-split attention gives bitwise the same out, lse and gradients as one backend on one
// thread (each batch element is computed by the same algorithm), for flash and reference kinds.
import { createRng, freshSeed } from '@flashattn/core';
import { describe, expect, it } from 'vitest';
import { BackendAttention } from './causal-attention.js';
import { ParallelCpuAttention } from './parallel-attention.js';
import { createCpuBackend } from '@flashattn/core';

const seed = freshSeed();

function sharedRandom(n: number, rng: ReturnType<typeof createRng>): Float32Array {
  const a = new Float32Array(new SharedArrayBuffer(n * 4));
  for (let i = 0; i < n; i++) a[i] = rng.normal();
  return a;
}

describe(`ParallelCpuAttention (seed ${seed})`, () => {
  for (const kind of ['flash', 'reference'] as const) {
    it(`${kind}: B=3 split over 2 threads == 1 thread, forward and backward`, async () => {
      const [B, T, H, D] = [3, 37, 2, 16];
      const n = B * T * H * D;
      const rng = createRng(seed);
      const [q, k, v, dout] = [0, 1, 2, 3].map(() => sharedRandom(n, rng)) as [Float32Array, Float32Array, Float32Array, Float32Array];
      const runs = [];
      for (const att of [new ParallelCpuAttention(kind, 2), new BackendAttention(createCpuBackend({ kind }))]) {
        const out = new Float32Array(new SharedArrayBuffer(n * 4));
        const lse = await att.forward(q, k, v, out, B, T, H, D);
        const g = [0, 1, 2].map(() => new Float32Array(new SharedArrayBuffer(n * 4))) as [Float32Array, Float32Array, Float32Array];
        await att.backward(dout, q, k, v, out, lse, g[0], g[1], g[2], B, T, H, D);
        runs.push({ out, lse: Float32Array.from(lse), g });
        await att.dispose();
      }
      expect(runs[0]!.out, `seed ${seed}`).toEqual(runs[1]!.out);
      expect(runs[0]!.lse).toEqual(runs[1]!.lse);
      for (let i = 0; i < 3; i++) expect(runs[0]!.g[i]).toEqual(runs[1]!.g[i]);
      expect(runs[0]!.out.some((x) => x !== 0)).toBe(true);
    });
  }
});
