/**
 * The conformance suite on whatever adapter Node finds (SwiftShader on a CPU-only machine: VK_DRIVER_FILES
 * defaults to Chromium's SwiftShader ICD when present; a real GPU otherwise):
 *   - the device API (`DeviceMemory<WebGPUBuffer> & DeviceAttention<WebGPUBuffer>`), `ci` matrix, in the
 *     three layouts of @flashattn/conformance: contiguous buffers; padded strides at odd offsets inside
 *     views (16-bit outputs then take the convert kernel's half-word path); q, k, v read from and
 *     dq, dk, dv written into packed (B, N, 3, H, D) buffers. Padding starts as NaN, so a read of it or a
 *     write outside a view fails;
 *   - the host-tensor API (a thin layer over the device one), `smoke` matrix.
 * With CI or FLASHATTN_REQUIRE_WEBGPU=1 set, a missing adapter fails the run instead of skipping.
 */
import {
  describeConformance,
  describeDeviceAttentionConformance,
} from '@flashattn/conformance/vitest';
import { describe, expect, it } from 'vitest';
import { createWebGPUBackend } from './index.js';
import { defaultToSwiftShader, probeAdapter, webgpuRequired } from './test-utils/env.js';

defaultToSwiftShader();

const unavailable = await probeAdapter();
const required = webgpuRequired();
const skip =
  unavailable !== undefined && !required ? `no WebGPU adapter: ${unavailable}` : undefined;

if (unavailable !== undefined && required) {
  describe('WebGPU adapter (required: CI or FLASHATTN_REQUIRE_WEBGPU=1)', () => {
    it('is available', () => {
      expect.fail(`no WebGPU adapter although one is required: ${unavailable}`);
    });
  });
}

describeDeviceAttentionConformance('webgpu', () => createWebGPUBackend(), { matrix: 'ci', skip });

describeConformance('webgpu (host tensors)', () => createWebGPUBackend(), {
  matrix: 'smoke',
  skip,
});
