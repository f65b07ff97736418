/**
 * Getting a GPUDevice: navigator.gpu in browsers, the optional `webgpu` package (Dawn) in Node.
 * Failures become BackendUnavailableError with the reason.
 */
import { BackendUnavailableError } from '@flashattn/core';

export interface AcquireOptions {
  /** Use this device (the caller keeps ownership: dispose() does not destroy it). */
  device?: GPUDevice;
  /** Use this adapter to request a device. */
  adapter?: GPUAdapter;
  powerPreference?: GPUPowerPreference;
  /**
   * Dawn-only: extra `create()` flags for Node. Default enables shader-f16 on NVIDIA Vulkan and the
   * experimental features behind allow_unsafe_apis (only features this package uses are requested).
   */
  dawnFlags?: readonly string[];
  /** Further features to request when the adapter has them (e.g. chromium-experimental-subgroup-matrix). */
  extraFeatures?: readonly string[];
}

export interface Acquired {
  device: GPUDevice;
  adapterInfo: GPUAdapterInfo | undefined;
  /** True when this module created the device and must destroy it. */
  owned: boolean;
  /**
   * The GPU object the device came from. Dawn-node tears its instance down when this is garbage
   * collected (a live device then aborts the process with "Owner died"), and the process does not
   * exit while it is referenced: hold it while the device lives, and after device.destroy() drop it and
   * give it back with releaseGPU (the instance is shared by the devices of one flag set).
   */
  gpu: GPU | undefined;
}

/** Features requested when present. */
const WANTED: readonly GPUFeatureName[] = [
  'shader-f16',
  'subgroups',
  'timestamp-query',
] as GPUFeatureName[];

export const DEFAULT_DAWN_FLAGS: readonly string[] = [
  'enable-dawn-features=allow_unsafe_apis,vulkan_enable_f16_on_nvidia',
];

/**
 * Dawn's GPU objects in this process, one per flag set, shared by every device acquired from it and
 * counted: dropped (for the GC) only when the last of those devices has been released (releaseGPU).
 * A second instance that was disposed and collected while another one was in use freed state the live
 * one still reached: the process hung in InstanceBase::ProcessEvents, aborted with std::system_error
 * "Invalid argument", or segfaulted (found in CI, packages/webgpu/src/backend.test.ts; reproduced by
 * process-exit.test.ts's child, which creates, disposes and collects a second backend while the first works).
 */
const shared = new Map<string, { gpu: Promise<GPU>; users: number }>();

async function nodeGPU(flags: readonly string[]): Promise<GPU> {
  const key = flags.join('\n');
  let held = shared.get(key);
  if (!held) {
    held = { gpu: createNodeGPU(flags), users: 0 };
    shared.set(key, held);
    held.gpu.catch(() => shared.delete(key));
  }
  held.users++;
  return held.gpu;
}

/**
 * Give back a GPU object that acquireDevice returned (Acquired.gpu), after its device was destroyed: the
 * last user's release lets it be collected, and then the process can exit. A GPU this module did not
 * create (navigator.gpu) or undefined: nothing to do.
 */
export function releaseGPU(gpu: GPU | undefined): void {
  if (!gpu) return;
  for (const [key, held] of shared)
    void held.gpu.then((g) => {
      if (g === gpu && shared.get(key) === held && --held.users === 0) shared.delete(key);
    });
}

async function createNodeGPU(flags: readonly string[]): Promise<GPU> {
  let mod: { create: (flags: string[]) => GPU };
  try {
    // A variable specifier keeps bundlers from resolving the optional peer dependency.
    const name = 'webgpu';
    mod = (await import(/* @vite-ignore */ name)) as typeof mod;
  } catch (cause) {
    throw new BackendUnavailableError(
      'webgpu',
      "no navigator.gpu and the optional peer dependency 'webgpu' (Dawn for Node) is not installed; " +
        'run `npm install webgpu`',
      { cause },
    );
  }
  await quietWaylandProbe();
  return mod.create([...flags]);
}

/**
 * Dawn's Vulkan loader probes for a Wayland display when it starts, and libwayland prints
 * "error: XDG_RUNTIME_DIR is invalid or not set in the environment." once per probe (four lines on a
 * headless machine, none of them an error of ours). Where the variable is unset, point it at a private
 * (0700) directory of our own for this process; a value the user set is left alone.
 */
async function quietWaylandProbe(): Promise<void> {
  if (process.platform !== 'linux' || process.env['XDG_RUNTIME_DIR']) return;
  try {
    const { mkdirSync } = await import('node:fs');
    const { tmpdir, userInfo } = await import('node:os');
    const { join } = await import('node:path');
    const dir = join(tmpdir(), `flashattn-runtime-${userInfo().uid}`);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    process.env['XDG_RUNTIME_DIR'] = dir;
  } catch {
    // best effort: without it Dawn still works and only prints the lines above
  }
}

/** Find navigator.gpu (browser, Deno) or create Dawn's (Node). */
async function findGPU(flags: readonly string[]): Promise<GPU> {
  const nav = (globalThis as { navigator?: { gpu?: GPU } }).navigator;
  if (nav?.gpu) return nav.gpu;
  if (typeof process !== 'undefined' && process.versions?.node) return nodeGPU(flags);
  throw new BackendUnavailableError(
    'webgpu',
    'navigator.gpu is not available (WebGPU disabled or unsupported)',
  );
}

export async function acquireDevice(opts: AcquireOptions = {}): Promise<Acquired> {
  if (opts.device)
    return {
      device: opts.device,
      adapterInfo: opts.device.adapterInfo,
      owned: false,
      gpu: undefined,
    };
  let adapter = opts.adapter ?? null;
  let gpu: GPU | undefined;
  if (!adapter) {
    gpu = await findGPU(opts.dawnFlags ?? DEFAULT_DAWN_FLAGS);
    adapter = await gpu.requestAdapter(
      opts.powerPreference ? { powerPreference: opts.powerPreference } : {},
    );
    if (!adapter) {
      releaseGPU(gpu);
      throw new BackendUnavailableError(
        'webgpu',
        'requestAdapter() returned null (no GPU; in Node on a CPU-only machine install chromium and set ' +
          'VK_DRIVER_FILES=/usr/lib/chromium/vk_swiftshader_icd.json for SwiftShader)',
      );
    }
  }
  const requiredFeatures = [...WANTED, ...((opts.extraFeatures ?? []) as GPUFeatureName[])].filter(
    (f) => adapter.features.has(f),
  );
  const lim = adapter.limits;
  const requiredLimits: Record<string, number> = {
    maxComputeWorkgroupStorageSize: lim.maxComputeWorkgroupStorageSize,
    maxComputeInvocationsPerWorkgroup: lim.maxComputeInvocationsPerWorkgroup,
    maxComputeWorkgroupSizeX: lim.maxComputeWorkgroupSizeX,
    maxStorageBufferBindingSize: lim.maxStorageBufferBindingSize,
    maxBufferSize: lim.maxBufferSize,
    maxStorageBuffersPerShaderStage: lim.maxStorageBuffersPerShaderStage,
    maxComputeWorkgroupsPerDimension: lim.maxComputeWorkgroupsPerDimension,
  };
  let device: GPUDevice;
  try {
    device = await adapter.requestDevice({ requiredFeatures, requiredLimits });
  } catch (cause) {
    releaseGPU(gpu);
    throw new BackendUnavailableError('webgpu', `requestDevice failed: ${String(cause)}`, {
      cause,
    });
  }
  return { device, adapterInfo: adapter.info, owned: true, gpu };
}
