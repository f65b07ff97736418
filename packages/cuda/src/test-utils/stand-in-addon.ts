/**
 * The CPU tests' stand-ins for the GPU (CI has nvcc but no GPU): the memory half of a recording addon, the device
 * it reports, the typed-rejection check, and the built addon's entry points called without a driver. Each test
 * file adds the native calls it records (kernels, ops) to `standInMemory()`'s object.
 */
import { expect } from 'vitest';
import { loadAddon, type DeviceInfo } from '../native.js';

/** What the stand-in addon reports: an H100-like sm_90 with 132 SMs. */
export const STAND_IN_INFO: DeviceInfo = {
  name: 'stand-in GPU',
  major: 9,
  minor: 0,
  multiProcessorCount: 132,
  totalGlobalMem: 80e9,
  driverVersion: 13000,
  runtimeVersion: 13000,
};

/**
 * One device; malloc hands out fake 256-byte aligned addresses (never dereferenced), free / memset / synchronize /
 * trimMemPool do nothing.
 */
export function standInMemory(): Record<string, unknown> {
  let next = 0x10000n;
  return {
    deviceCount: () => 1,
    deviceInfo: () => STAND_IN_INFO,
    malloc: (_d: number, bytes: number) => {
      const p = next;
      next += BigInt(Math.max(256, Math.ceil(bytes / 256) * 256));
      return p;
    },
    free: () => undefined,
    memset: () => undefined,
    synchronize: async () => undefined,
    trimMemPool: () => undefined,
  };
}

/** `p()` throws or rejects with an `ErrorClass` whose `argument` is `argument`. */
export async function expectRejects(
  p: () => unknown,
  ErrorClass: abstract new (...a: never[]) => { argument: string },
  argument: string,
): Promise<void> {
  let thrown: unknown;
  try {
    await p();
  } catch (e) {
    thrown = e;
  }
  expect(thrown, `expected ${ErrorClass.name} naming ${argument}`).toBeInstanceOf(ErrorClass);
  expect((thrown as { argument: string }).argument).toBe(argument);
}

/**
 * The built addon's entry points for the "no driver" tests: `available` when the addon loads and sees no GPU
 * (CI); `call(fn, ...args)` calls native fn(0, ...args) and returns what it threw (undefined if nothing).
 */
export function addonWithoutGpu(): {
  available: boolean;
  call: (fn: string, ...args: unknown[]) => unknown;
} {
  const load = loadAddon();
  const native = load.addon as unknown as Record<string, (...a: unknown[]) => unknown> | undefined;
  const noGpu = (() => {
    try {
      return (load.addon?.deviceCount() ?? 0) === 0;
    } catch {
      return true;
    }
  })();
  const call = (fn: string, ...args: unknown[]): unknown => {
    try {
      native![fn]!(0, ...args);
      return undefined;
    } catch (e) {
      return e;
    }
  };
  return { available: native !== undefined && noGpu, call };
}
