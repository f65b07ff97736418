/**
 * The standard-attention baseline (benchmarks only) must compute attention too: it runs the smoke
 * conformance cases it supports (float32, nheads_q == nheads_k) through a host-API wrapper.
 */
import { casesFor, deviceAttentionBackend, runConformance } from '@flashattn/conformance';
import { describe, expect, it } from 'vitest';
import { createWebGPUBackend } from '../index.js';
import { createStandardAttention } from './standard.js';
import { defaultToSwiftShader, webgpuRequired } from '../test-utils/env.js';

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
    // the baseline in place of the flash kernels, on the backend's device memory, contiguous layout
    const wrapped = deviceAttentionBackend(
      {
        ...be,
        attentionCapabilities: { dtypes: ['float32'], maxHeadDim: 256, computeDType: (d) => d },
        attentionForward: (a, o) => std.attentionForward(a, o),
        attentionBackward: (a, o) => std.attentionBackward(a, o),
      },
      { layout: 'contiguous', name: 'webgpu-standard' },
    );
    const cases = casesFor('smoke').filter((c) => c.dtype === 'float32' && c.nheadsQ === c.nheadsK);
    expect(cases.length).toBeGreaterThan(0);
    const report = await runConformance(wrapped, { cases, seed: 11 });
    for (const r of report.results) console.log(r.message);
    expect(report.failed).toBe(0);
    expect(report.passed).toBe(cases.length);
    await wrapped.dispose();
    be.dispose();
  });
});
