/**
 * The vec4 forward kernel (flash-forward.wgsl.ts, the default forward on GPUs) on whatever adapter
 * Node finds, forced with small tiles so that SwiftShader compiles it quickly: the `ci` matrix, forward
 * and backward (the backward checks that lse is consistent), once streaming Q per K tile and once with
 * Q resident (`QR`). Small tiles still exercise every index path of the layout: the K^T and V
 * permutations (GX = 4), partial tiles, clamped rows past the ends, masks, padded head dims and fully
 * masked rows.
 */
import { casesFor } from '@flashattn/conformance';
import { describeConformance } from '@flashattn/conformance/vitest';
import { describe, expect, it } from 'vitest';
import { createWebGPUBackend } from './index.js';
import { deriveForward, flashForwardWGSL } from './kernels/flash-forward.wgsl.js';
import type { Tiles } from './kernels/tiles.js';
import { defaultToSwiftShader, probeAdapter, webgpuRequired } from './test-utils/env.js';

defaultToSwiftShader();

const unavailable = await probeAdapter();
const skip =
  unavailable !== undefined && !webgpuRequired() ? `no WebGPU adapter: ${unavailable}` : undefined;

// STREAM has 64 invocations and 32 vec4s in a K^T chunk: the S-phase staging takes the rolled
// lane loop, the V staging (2 * DP vec4s) the unrolled one. RESIDENT unrolls everything.
const STREAM: Tiles = { BR: 64, BC: 16, TM: 4, TN: 4, DK: 8, JK: 8, V4: true };
const RESIDENT: Tiles = { BR: 16, BC: 16, TM: 4, TN: 4, DK: 16, JK: 16, V4: true, QR: true };
// The ci matrix without head dim 256 for the resident variant (its Q block needs 20 KiB alone).
const ci = casesFor('ci');

describeConformance(
  'webgpu flash-forward (Q streamed)',
  () => createWebGPUBackend({ tiles: { forward: STREAM } }),
  {
    cases: ci,
    skip,
  },
);
describeConformance(
  'webgpu flash-forward (Q resident)',
  () => createWebGPUBackend({ tiles: { forward: RESIDENT } }),
  {
    cases: ci.filter((c) => c.headDim <= 128),
    skip,
  },
);

describe('deriveForward', () => {
  it('pads the head dim to whole vec4 groups per invocation and DK chunks', () => {
    const d = deriveForward({ BR: 128, BC: 64, TM: 8, TN: 4, DK: 16, JK: 16, V4: true }, 80);
    expect(d.GX).toBe(16);
    expect(d.DP).toBe(128); // 4 * GX = 64 per group
    expect(d.TD).toBe(8);
    expect(d.WORDS % 4).toBe(0);
  });
  it('rejects tiles whose per-invocation block is not whole vec4s', () => {
    expect(() => deriveForward({ BR: 64, BC: 64, TM: 4, TN: 2, DK: 8, JK: 8 }, 64)).toThrow(/vec4/);
  });
  it('emits one workgroup array of vec4 and no scalar reads of it in the inner loops', () => {
    const code = flashForwardWGSL({ headDim: 64, kind: 'f32', tiles: STREAM });
    expect(code).toMatch(/var<workgroup> sm: array<vec4<f32>, \d+>;/);
    expect(code).toContain('fma(a0[0], b0[0], s[0])');
  });
});
