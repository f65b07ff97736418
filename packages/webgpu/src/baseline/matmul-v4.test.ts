/**
 * The vec4 ceiling GEMM (benchmarks only) must compute C = A B: checked against a float64 product on
 * random inputs, both tile shapes, on whatever adapter Node finds (SwiftShader on CPU-only machines).
 * Tolerance: K = 32 products of |x| <= 1 summed in f32 in another order: each C element is off by at
 * most K * 2^-24 * sum|a_k b_k| <= 32 * 2^-24 * 32 ~ 6e-5 (a naive f32 loop's own bound, the rule's
 * 2x is inside it).
 */
import { createRng } from '@flashattn/core';
import { describe, expect, it } from 'vitest';
import { createWebGPUBackend } from '../index.js';
import { matmulV4Program } from './matmul-v4.wgsl.js';
import { defaultToSwiftShader, webgpuRequired } from '../test-utils/env.js';

defaultToSwiftShader();

let unavailable: string | undefined;
const be = await createWebGPUBackend().catch((e: unknown) => {
  unavailable = e instanceof Error ? e.message : String(e);
  return undefined;
});
const skip = unavailable !== undefined && !webgpuRequired();
if (skip) console.warn(`vec4 matmul test skipped: no WebGPU adapter: ${unavailable}`);

describe.skipIf(skip)('vec4 ceiling matmul', () => {
  for (const G of [1, 2] as const) {
    it(`G = ${G}: matches a float64 product`, async () => {
      if (!be) throw new Error(`no WebGPU adapter although one is required: ${unavailable}`);
      const seed = 20261121 + G;
      const [M, N, K] = [128, 256, 32];
      const rng = createRng(seed);
      const a = Float32Array.from({ length: M * K }, () => rng.uniform() * 2 - 1);
      const b = Float32Array.from({ length: K * N }, () => rng.uniform() * 2 - 1);
      const rt = be.runtime;
      const [ab, bb, cb] = [a.byteLength, b.byteLength, M * N * 4].map((n) => rt.acquire(n));
      rt.upload(ab!, a);
      rt.upload(bb!, b);
      await rt.submit((enc) => {
        const pass = enc.beginComputePass();
        rt.programs.run(
          pass,
          matmulV4Program({ G, BK: 16, M, N, K }),
          {},
          { A: ab!, Bm: bb!, C: cb! },
        );
        pass.end();
      });
      const c = new Float32Array(await rt.read(cb!, M * N * 4));
      let worst = 0;
      for (let i = 0; i < M; i++) {
        for (let j = 0; j < N; j++) {
          let s = 0;
          for (let k = 0; k < K; k++) s += a[i * K + k]! * b[k * N + j]!;
          worst = Math.max(worst, Math.abs(c[i * N + j]! - s));
        }
      }
      expect(worst, `seed ${seed}`).toBeLessThan(K * 2 ** -24 * K);
      [ab, bb, cb].forEach((x) => rt.release(x!));
    });
  }
});
