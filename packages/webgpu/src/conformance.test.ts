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
import { createWebGPUBackend } from './index.js';
import { conformanceSkip, defaultToSwiftShader } from './test-utils/env.js';

defaultToSwiftShader();

const skip = await conformanceSkip();

describeDeviceAttentionConformance('webgpu', () => createWebGPUBackend(), { matrix: 'ci', skip });

describeConformance('webgpu (host tensors)', () => createWebGPUBackend(), {
  matrix: 'smoke',
  skip,
});
