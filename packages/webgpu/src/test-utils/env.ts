/**
 * Test environment for the WebGPU package: SwiftShader's Vulkan ICD by default in Node, and the rule
 * for when a missing adapter is a failure (CI or FLASHATTN_REQUIRE_WEBGPU=1) rather than a skip.
 */
import { existsSync } from 'node:fs';

export const SWIFTSHADER_ICD = '/usr/lib/chromium/vk_swiftshader_icd.json';

/** Point Dawn's Vulkan loader at SwiftShader unless the caller chose a driver. Call before creating a backend. */
export function defaultToSwiftShader(): void {
  if (!process.env.VK_DRIVER_FILES && !process.env.VK_ICD_FILENAMES && existsSync(SWIFTSHADER_ICD)) {
    process.env.VK_DRIVER_FILES = SWIFTSHADER_ICD;
  }
}

/** True when the tests must run (and fail without an adapter) instead of skipping. */
export function webgpuRequired(): boolean {
  return !!process.env.CI || process.env.FLASHATTN_REQUIRE_WEBGPU === '1';
}
