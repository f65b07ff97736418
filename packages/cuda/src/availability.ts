/**
 * Whether CUDA can run here, and why not.
 */
import { loadAddon, type DeviceInfo } from './native.js';

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
    return { available: false, reason: (e as Error).message };
  }
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
