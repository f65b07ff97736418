import {
  attentionReference64,
  attentionReferenceBackward64,
  createRng,
  fromFloat32,
  toFloat32,
  type AttentionOptions,
  type DType,
} from '@flashattn/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createWebGPUBackend, type WebGPUAttentionBackend } from './index.js';
import { defaultToSwiftShader } from './test-utils/env.js';

defaultToSwiftShader();

function maxErr(a: Float32Array, b: Float64Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!, y = b[i]!;
    if (x === y) continue;
    m = Math.max(m, Math.abs(x - y));
  }
  return m;
}

describe('debug', () => {
  let be: WebGPUAttentionBackend;
  beforeAll(async () => {
    be = await createWebGPUBackend();
  });
  afterAll(() => be?.dispose());
  const cases: [number, number, number, number, number, number, DType, AttentionOptions][] = [
    [1, 17, 23, 2, 1, 32, 'float32', {}],
    [2, 130, 70, 4, 2, 64, 'float32', { causal: true }],
    [1, 70, 130, 2, 2, 80, 'float32', { windowSize: [5, 3] }],
    [1, 65, 65, 2, 2, 128, 'float16', {}],
    [1, 33, 40, 2, 1, 64, 'bfloat16', { causal: true }],
    [1, 40, 20, 1, 1, 16, 'float32', { causal: true }],
  ];
  for (const [B, Nq, Nk, Hq, Hk, D, dtype, opts] of cases) {
    it(`${B}x${Nq}x${Nk}x${Hq}/${Hk}x${D} ${dtype} ${JSON.stringify(opts)}`, async () => {
      const rng = createRng(1);
      const mk = (shape: number[]) => {
        const n = shape.reduce((a, b) => a * b, 1);
        const x = new Float32Array(n);
        for (let i = 0; i < n; i++) x[i] = rng.normal();
        return fromFloat32(x, shape, dtype);
      };
      const q = mk([B, Nq, Hq, D]), k = mk([B, Nk, Hk, D]), v = mk([B, Nk, Hk, D]), dout = mk([B, Nq, Hq, D]);
      const ref = attentionReference64(q, k, v, opts);
      const t0 = performance.now();
      const r = await be.forward(q, k, v, opts);
      const t1 = performance.now();
      const eo = maxErr(toFloat32(r.out), ref.out);
      let el = 0;
      for (let i = 0; i < r.lse.length; i++) {
        if (ref.lse[i] === -Infinity) expect(r.lse[i]).toBe(-Infinity);
        else el = Math.max(el, Math.abs(r.lse[i]! - ref.lse[i]!));
      }
      const g = await be.backward(dout, q, k, v, r.out, r.lse, opts);
      const t2 = performance.now();
      const gr = attentionReferenceBackward64(dout, q, k, v, r.out, r.lse, opts);
      const e = [maxErr(toFloat32(g.dq), gr.dq), maxErr(toFloat32(g.dk), gr.dk), maxErr(toFloat32(g.dv), gr.dv)];
      console.log(dtype, 'out', eo, 'lse', el, 'dq dk dv', e, `fwd ${(t1 - t0).toFixed(0)} ms bwd ${(t2 - t1).toFixed(0)} ms`);
      const tol = dtype === 'float32' ? 1e-4 : dtype === 'float16' ? 1e-2 : 5e-2;
      expect(eo).toBeLessThan(tol);
      expect(Math.max(...e)).toBeLessThan(tol * 10);
    });
  }
});
