/**
 * The conformance suite (`ci` matrix) on whatever adapter Node finds: SwiftShader on a CPU-only
 * machine (VK_DRIVER_FILES defaults to Chromium's SwiftShader ICD when present), a real GPU otherwise.
 * With CI or FLASHATTN_REQUIRE_WEBGPU=1 set, a missing adapter fails the run instead of skipping.
 */
import { describeConformance } from '@flashattn/conformance/vitest';
import { describe, expect, it } from 'vitest';
import { createWebGPUBackend } from './index.js';
import { defaultToSwiftShader, webgpuRequired } from './test-utils/env.js';

defaultToSwiftShader();

/** Undefined when an adapter and device can be had, else why not. */
async function probe(): Promise<string | undefined> {
  try {
    const be = await createWebGPUBackend();
    be.dispose();
    return undefined;
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  }
}

const unavailable = await probe();
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
