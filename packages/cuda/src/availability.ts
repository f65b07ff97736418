/**
 * Whether CUDA can run here, and why not; which addon was loaded, and why (`cudaInfo()`).
 */
import { existsSync, readFileSync } from 'node:fs';
import { loadAddon, type AddonSource, type DeviceInfo } from './native.js';

/** Minimum Linux driver per CUDA major version (NVIDIA's minor-version compatibility table). */
const MIN_DRIVER: Record<string, string> = { '12': '525.60.13', '13': '580' };

const LIBCUDA = [
  '/usr/lib/x86_64-linux-gnu/libcuda.so.1',
  '/usr/lib/aarch64-linux-gnu/libcuda.so.1',
  '/usr/lib64/libcuda.so.1',
  '/usr/lib/libcuda.so.1',
  '/usr/local/nvidia/lib64/libcuda.so.1',
  '/usr/lib/wsl/lib/libcuda.so.1',
];

/** The loaded NVIDIA kernel driver's version ('580.65.06'), or undefined when none is loaded. */
function driverVersion(): string | undefined {
  try {
    const v = readFileSync('/proc/driver/nvidia/version', 'utf8');
    return /Kernel Module(?:\s+for\s+\S+)?\s+(\d+\.\d+(?:\.\d+)?)/.exec(v)?.[1] ?? 'unknown';
  } catch {
    return undefined;
  }
}

/**
 * The CUDA runtime's error, said in terms of what the user has: cudart reports a missing driver as
 * "CUDA driver version is insufficient", which sends people to upgrade a driver they do not have.
 */
export function explainCudaError(message: string, cudaVersion: string | undefined): string {
  const cuda = cudaVersion ? `CUDA ${cudaVersion}` : "this addon's CUDA runtime";
  const min = cudaVersion ? MIN_DRIVER[cudaVersion.split('.')[0]!] : undefined;
  const need = min ? ` (${cuda} needs driver >= ${min})` : '';
  if (/InsufficientDriver|driver version is insufficient/i.test(message)) {
    const version = driverVersion();
    if (version === undefined && !LIBCUDA.some((p) => existsSync(p)))
      return `no NVIDIA driver found (no /proc/driver/nvidia and no libcuda.so.1): CUDA needs an NVIDIA GPU with its driver installed${need}`;
    return `the NVIDIA driver${version && version !== 'unknown' ? ` ${version}` : ''} is too old for ${cuda}: install driver >= ${min ?? 'the version your CUDA toolkit lists'}, or build from source with an older CUDA toolkit (FLASHATTN_CUDA_BUILD_FROM_SOURCE=1)`;
  }
  if (/NoDevice|no CUDA-capable device/i.test(message))
    return 'no CUDA device: the NVIDIA driver is loaded but sees no GPU (check nvidia-smi and CUDA_VISIBLE_DEVICES)';
  return message;
}

export type CudaStatus =
  | { available: true; deviceCount: number; devices: DeviceInfo[] }
  | { available: false; reason: string };

/** Probe the addon, the driver and the devices. Never throws. */
export function cudaStatus(): CudaStatus {
  const load = loadAddon();
  if (!load.addon) return { available: false, reason: load.reason };
  try {
    const n = load.addon.deviceCount();
    if (n < 1) return { available: false, reason: 'no CUDA device found' };
    const devices: DeviceInfo[] = [];
    for (let d = 0; d < n; d++) devices.push(load.addon.deviceInfo(d));
    const usable = devices.some((d) => d.major >= 8);
    if (!usable) {
      return {
        available: false,
        reason: `no device of compute capability >= 8.0 (found ${devices.map((d) => `${d.name} ${d.major}.${d.minor}`).join(', ')})`,
      };
    }
    return { available: true, deviceCount: n, devices };
  } catch (e) {
    return { available: false, reason: explainCudaError((e as Error).message, load.cudaVersion) };
  }
}

export interface CudaInfo {
  available: boolean;
  /** Why CUDA cannot run, when it cannot. */
  reason?: string;
  devices: DeviceInfo[];
  /** The addon: where it came from and why, or why none could be loaded. */
  addon:
    | { loaded: true; source: AddonSource; path: string; why: string; cudaVersion?: string }
    | { loaded: false; reason: string };
  /** The NVIDIA kernel driver's version, when one is loaded. */
  driverVersion?: string;
}

/** Which addon was loaded and why, the driver, the devices, and whether CUDA can run. Never throws. */
export function cudaInfo(): CudaInfo {
  const load = loadAddon();
  const s = cudaStatus();
  const driver = driverVersion();
  return {
    available: s.available,
    ...(s.available ? {} : { reason: s.reason }),
    devices: s.available ? s.devices : [],
    addon: load.addon
      ? {
          loaded: true,
          source: load.source,
          path: load.path,
          why: load.why,
          ...(load.cudaVersion ? { cudaVersion: load.cudaVersion } : {}),
        }
      : { loaded: false, reason: load.reason },
    ...(driver ? { driverVersion: driver } : {}),
  };
}

/** True when a CUDA device of compute capability >= 8.0 can run the kernels. */
export function isCudaAvailable(): boolean {
  return cudaStatus().available;
}

/** Why CUDA is unavailable, or undefined when it is available. */
export function cudaUnavailableReason(): string | undefined {
  const s = cudaStatus();
  return s.available ? undefined : s.reason;
}
