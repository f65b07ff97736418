/**
 * The conformance suite (`ci` matrix) on whatever adapter Node finds: SwiftShader on a CPU-only
 * machine (VK_DRIVER_FILES defaults to Chromium's SwiftShader ICD when present), a real GPU otherwise.
 * With CI or FLASHATTN_REQUIRE_WEBGPU=1 set, a missing adapter fails the run instead of skipping.
 */
import { describeConformance } from '@flashattn/conformance/vitest';
import { describe, expect, it } from 'vitest';
import { createWebGPUBackend } from './index.js';
import { defaultToSwiftShader, probeAdapter, webgpuRequired } from './test-utils/env.js';

defaultToSwiftShader();

const unavailable = await probeAdapter();
const required = webgpuRequired();

if (unavailable !== undefined && required) {
  describe('WebGPU adapter (required: CI or FLASHATTN_REQUIRE_WEBGPU=1)', () => {
    it('is available', () => {
      expect.fail(`no WebGPU adapter although one is required: ${unavailable}`);
    });
  });
}

describeConformance('webgpu', () => createWebGPUBackend(), {
  matrix: 'ci',
  skip: unavailable !== undefined && !required ? `no WebGPU adapter: ${unavailable}` : undefined,
});
