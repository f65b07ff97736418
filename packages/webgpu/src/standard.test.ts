/**
 * The standard-attention baseline (benchmarks only) must compute attention too: it runs the smoke
 * conformance cases it supports (float32, nheads_q == nheads_k) through a host-API wrapper.
 */
import { runConformance, casesFor } from '@flashattn/conformance';
import type { AttentionBackend, Tensor } from '@flashattn/core';
import { describe, expect, it } from 'vitest';
import { createWebGPUBackend } from './index.js';
import { createStandardAttention } from './standard.js';
import { defaultToSwiftShader, webgpuRequired } from './test-utils/env.js';

defaultToSwiftShader();

let unavailable: string | undefined;
const be = await createWebGPUBackend().catch((e: unknown) => {
  unavailable = e instanceof Error ? e.message : String(e);
  return undefined;
});
const skip = unavailable !== undefined && !webgpuRequired();
if (skip) console.warn(`standard baseline test skipped: no WebGPU adapter: ${unavailable}`);

describe.skipIf(skip)('standard attention baseline', () => {
  it('passes the supported smoke conformance cases', async () => {
    if (!be) throw new Error(`no WebGPU adapter although one is required: ${unavailable}`);
    const std = createStandardAttention(be);
    const wrapped: AttentionBackend = {
      name: 'webgpu-standard',
      capabilities: { dtypes: ['float32'], maxHeadDim: 256, computeDType: (d) => d },
      async forward(q, k, v, opts) {
        const [qd, kd, vd] = [q, k, v].map((t) => be.upload(t));
        const r = await std.forwardOnDevice(qd!, kd!, vd!, opts);
        const out = await be.download(r.out);
        const lse = Float32Array.from((await be.download(r.lse)).data as Float32Array, (x) => (x <= -1e30 ? -Infinity : x));
        return { out, lse };
      },
      async backward(dout, q, k, v, out, lse, opts) {
        const t = (x: Tensor) => be.upload(x);
        const lseT = be.upload({ dtype: 'float32', shape: [lse.length], data: lse.map((x) => (x === -Infinity ? -1e30 : x)) } as Tensor);
        const g = await std.backwardOnDevice(t(dout), t(q), t(k), t(v), t(out), lseT, opts);
        return { dq: await be.download(g.dq), dk: await be.download(g.dk), dv: await be.download(g.dv) };
      },
      dispose: () => be.dispose(),
    };
    const cases = casesFor('smoke').filter((c) => c.dtype === 'float32' && c.nheadsQ === c.nheadsK);
    expect(cases.length).toBeGreaterThan(0);
    const report = await runConformance(wrapped, { cases, seed: 11 });
    for (const r of report.results) console.log(r.message);
    expect(report.failed).toBe(0);
    expect(report.passed).toBe(cases.length);
    await wrapped.dispose();
  });
});
