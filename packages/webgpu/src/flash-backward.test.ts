/**
 * The vec4 backward kernels (flash-backward-dq.wgsl.ts, flash-backward-dkdv.wgsl.ts, the default
 * backward on GPUs) on whatever adapter Node finds, forced with small tiles so that SwiftShader
 * compiles them quickly: the `ci` matrix, forward and backward, checked against the float64 oracle by
 * the conformance suite's tolerance rule. Small tiles still exercise every index path of the layouts:
 * the permuted Q^T / K^T chunks and permuted rows (GX = 4 and 8), head dims padded to whole vec4
 * groups (d80 -> 96 with GX = 8), staging rounds that cover only part of the workgroup (the clamped
 * load and guarded store in stage.wgsl.ts), partial tiles, rows past the ends, masks, GQA and fully
 * masked rows.
 */
import { casesFor } from '@flashattn/conformance';
import { describeConformance } from '@flashattn/conformance/vitest';
import { describe, expect, it } from 'vitest';
import { createWebGPUBackend } from './index.js';
import { flashBackwardDkdvWGSL } from './kernels/flash-backward-dkdv.wgsl.js';
import { flashBackwardDqWGSL } from './kernels/flash-backward-dq.wgsl.js';
import { deriveBwdV4, stage, type Stager } from './kernels/stage.wgsl.js';
import type { Tiles } from './kernels/tiles.js';
import { defaultToSwiftShader, probeAdapter, webgpuRequired } from './test-utils/env.js';

defaultToSwiftShader();

const unavailable = await probeAdapter();
const skip =
  unavailable !== undefined && !webgpuRequired() ? `no WebGPU adapter: ${unavailable}` : undefined;

// DQ: GX = 4, 32 invocations; its K^T / V^T chunks (DK * BC / 4 = 16 vec4s) and its K rows at
// D = 32 and 80 (JK * DP / 4 = 32 and 80 vec4s) take a partial staging round. DKDV: GX = 8, so d80
// pads to 96.
const DQ: Tiles = { BR: 32, BC: 16, TM: 4, TN: 4, DK: 4, JK: 4, V4: true };
const DKDV: Tiles = { BR: 16, BC: 32, TM: 4, TN: 4, DK: 8, JK: 8, V4: true };

// Head dim 256 left out: its two cases cost 25 s of SwiftShader compile time (TD = 64 unrolled
// accumulators), and the H100 runs it in the full matrix (device-run.sh) with the real tiles.
describeConformance(
  'webgpu flash-backward (small tiles)',
  () => createWebGPUBackend({ tiles: { dq: DQ, dkdv: DKDV } }),
  {
    cases: casesFor('ci').filter((c) => c.headDim <= 128),
    skip,
  },
);

// dK/dV with K^T, V^T resident (`QR`): the cases up to head dim 64 (its blocks grow with the head dim).
const DKDV_KR: Tiles = { ...DKDV, QR: true };
describeConformance(
  'webgpu flash-backward (small tiles, K/V resident)',
  () => createWebGPUBackend({ tiles: { dq: DQ, dkdv: DKDV_KR } }),
  {
    cases: casesFor('ci').filter((c) => c.headDim <= 64),
    skip,
  },
);

describe('deriveBwdV4', () => {
  it('pads the head dim to whole vec4 groups per invocation and DK chunks', () => {
    const d = deriveBwdV4({ BR: 64, BC: 64, TM: 4, TN: 4, DK: 8, JK: 8, V4: true }, 80);
    expect(d.GX).toBe(16);
    expect(d.NT).toBe(256);
    expect(d.DP).toBe(128); // 4 * GX = 64 per group
    expect(d.TD).toBe(8);
  });
  it('rejects tiles whose per-invocation block is not whole vec4s', () => {
    expect(() => deriveBwdV4({ BR: 64, BC: 32, TM: 4, TN: 2, DK: 8, JK: 8 }, 64)).toThrow(/vec4/);
  });
  it('issues every load before the first store, and guards the stores of a partial round', () => {
    const t = deriveBwdV4(DQ, 32);
    const st: Stager = {
      count: 48,
      load: (e, x) => `let ${x} = L(${e});`,
      store: (e, x) => `S(${e}, ${x});`,
    };
    const code = stage(t, [st]);
    expect(code.lastIndexOf('L(')).toBeLessThan(code.indexOf('S('));
    expect(code).toContain('min(lid + 32u, 47u)');
    expect(code).toContain('if (lid + 32u < 48u)');
  });
  it('emits vec4 workgroup arrays and vec4-component FMAs in both passes', () => {
    for (const code of [
      flashBackwardDqWGSL(64, 'f32', DQ),
      flashBackwardDkdvWGSL(64, 'f32', DKDV),
    ]) {
      expect(code).toMatch(/var<workgroup> sm: array<vec4<f32>, \d+>;/);
      expect(code).not.toMatch(/sm\[[^\]]*\]\[/); // no scalar element reads of workgroup memory
    }
    expect(flashBackwardDqWGSL(64, 'f32', DQ)).toContain('fma(a0[0], b0[0], s[0])');
    expect(flashBackwardDkdvWGSL(64, 'f32', DKDV)).toContain('fma(pb0[0], wq0[0], dkAcc[0])');
  });
});
