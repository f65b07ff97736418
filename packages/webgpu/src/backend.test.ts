/**
 * Backend behaviour beyond the numbers (conformance.test.ts checks those): device-resident chaining
 * gives the same bits as the host API, and bad input / use after dispose become typed errors.
 */
import {
  AttentionInputError,
  BackendExecutionError,
  createRng,
  fromFloat32,
  type Tensor,
} from '@flashattn/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createWebGPUBackend, type WebGPUAttentionBackend } from './index.js';
import { defaultToSwiftShader, webgpuRequired } from './test-utils/env.js';

defaultToSwiftShader();

let backend: WebGPUAttentionBackend | undefined;
let unavailable: string | undefined;
try {
  backend = await createWebGPUBackend();
} catch (e) {
  unavailable = e instanceof Error ? e.message : String(e);
}
const skip = unavailable !== undefined && !webgpuRequired();
if (skip) console.warn(`webgpu backend tests skipped: no WebGPU adapter: ${unavailable}`);

function randn(shape: number[], seed: number): Tensor {
  const rng = createRng(seed);
  const x = new Float32Array(shape.reduce((a, b) => a * b, 1));
  for (let i = 0; i < x.length; i++) x[i] = rng.normal();
  return fromFloat32(x, shape, 'float32');
}

describe.skipIf(skip)('webgpu backend', () => {
  beforeAll(() => {
    if (!backend) throw new Error(`no WebGPU adapter although one is required: ${unavailable}`);
  });
  afterAll(() => backend?.dispose());

  it('chains forward and backward on device with the same bits as the host API', async () => {
    const be = backend!;
    const seed = 7;
    const [q, k, v, dout] = [randn([1, 33, 2, 32], seed), randn([1, 40, 1, 32], seed + 1), randn([1, 40, 1, 32], seed + 2), randn([1, 33, 2, 32], seed + 3)];
    const opts = { causal: true };
    const host = await be.forward(q!, k!, v!, opts);
    const hostGrads = await be.backward(dout!, q!, k!, v!, host.out, host.lse, opts);

    const [qd, kd, vd, dd] = [q!, k!, v!, dout!].map((t) => be.upload(t));
    const f = await be.forwardOnDevice(qd!, kd!, vd!, opts);
    const g = await be.backwardOnDevice(dd!, qd!, kd!, vd!, f.out, f.lse, opts);
    const out = await be.download(f.out);
    const dq = await be.download(g.dq);
    const dk = await be.download(g.dk);
    expect(Array.from(out.data)).toEqual(Array.from(host.out.data));
    expect(Array.from(dq.data)).toEqual(Array.from(hostGrads.dq.data));
    expect(Array.from(dk.data)).toEqual(Array.from(hostGrads.dk.data));
    // Causal with Nq < Nk: no fully masked row, every lse finite.
    expect(host.lse.every(Number.isFinite)).toBe(true);
    for (const t of [qd, kd, vd, dd, f.out, f.lse, g.dq, g.dk, g.dv]) be.release(t!);
  });

  it('rejects bad input with AttentionInputError naming the argument', async () => {
    const be = backend!;
    const q = randn([1, 4, 2, 32], 1);
    const k = randn([1, 4, 2, 16], 2);
    await expect(be.forward(q, k, k)).rejects.toThrow(AttentionInputError);
    await expect(be.forward(q, k, k)).rejects.toThrow(/k\.shape\[3\]/);
    const big = randn([1, 2, 1, 300], 3);
    await expect(be.forward(big, big, big)).rejects.toThrow(/headdim/);
    const qd = be.upload(q);
    const kd = be.upload(k);
    await expect(be.forwardOnDevice(qd, kd, kd)).rejects.toThrow(AttentionInputError);
    be.release(qd);
    be.release(kd);
  });

  it('throws BackendExecutionError after dispose', async () => {
    const other = await createWebGPUBackend();
    other.dispose();
    const q = randn([1, 2, 1, 32], 4);
    await expect(other.forward(q, q, q)).rejects.toThrow(BackendExecutionError);
  });
});
