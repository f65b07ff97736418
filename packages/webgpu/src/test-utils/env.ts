/**
 * Test environment for the WebGPU package: SwiftShader's Vulkan ICD by default in Node, and the rule
 * for when a missing adapter is a failure (CI or FLASHATTN_REQUIRE_WEBGPU=1) rather than a skip.
 */
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { provider } from '../provider.js';

export const SWIFTSHADER_ICD = '/usr/lib/chromium/vk_swiftshader_icd.json';

/** Point Dawn's Vulkan loader at SwiftShader unless the caller chose a driver. Call before creating a backend. */
export function defaultToSwiftShader(): void {
  if (
    !process.env.VK_DRIVER_FILES &&
    !process.env.VK_ICD_FILENAMES &&
    existsSync(SWIFTSHADER_ICD)
  ) {
    process.env.VK_DRIVER_FILES = SWIFTSHADER_ICD;
  }
}

/** True when the tests must run (and fail without an adapter) instead of skipping. */
export function webgpuRequired(): boolean {
  return !!process.env.CI || process.env.FLASHATTN_REQUIRE_WEBGPU === '1';
}

const PROBE_MS = 120_000;

/**
 * Undefined when an adapter and device can be had, else why not. Test files call it while they are
 * collected, outside any test timeout, so it is bounded: a stalled adapter request (seen once on a loaded
 * 2-core machine) becomes a reason instead of a hung run.
 */
export async function probeAdapter(): Promise<string | undefined> {
  // The provider's probe: it names what is missing (the Vulkan loader, a driver, or an adapter) and the
  // command that installs it, and it is bounded the same way.
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const r = await Promise.race([
      provider.probe({ requested: true }),
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`adapter probe did not finish in ${PROBE_MS / 1000} s`)),
          PROBE_MS,
        );
      }),
    ]);
    return r.available ? undefined : r.reason;
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The skip reason for a file of conformance suites: undefined when an adapter is there; the probe's reason
 * when there is none and none is required. When one is required (CI or FLASHATTN_REQUIRE_WEBGPU=1) and
 * missing, it registers a failing test that says so and returns undefined, so the suites run (and fail) too.
 */
export async function conformanceSkip(): Promise<string | undefined> {
  const unavailable = await probeAdapter();
  if (unavailable === undefined) return undefined;
  if (!webgpuRequired()) return `no WebGPU adapter: ${unavailable}`;
  describe('WebGPU adapter (required: CI or FLASHATTN_REQUIRE_WEBGPU=1)', () => {
    it('is available', () => {
      expect.fail(`no WebGPU adapter although one is required: ${unavailable}`);
    });
  });
  return undefined;
}
