/**
 * The device memory that this process's CUDA addon holds on one GPU (native/addon/memory.cpp memoryStats): the
 * counterpart of torch.cuda.memory_allocated / max_memory_allocated, for the benchmark's "peak memory no higher than
 * PyTorch eager's" (issue #10; apps/bench/src/gpt2/device-memory.ts reads memoryStats().peakBytes).
 *   allocatedBytes = poolBytes + outsidePoolBytes: bytes in use now. The stream-ordered pool counts every
 *     cudaMallocAsync (buffers, op scratch, attention workspaces); the addon counts its few plain cudaMalloc
 *     allocations (the cuBLASLt workspace, the decode split counters: native/addon/device_bytes.h).
 *   peakBytes = poolPeakBytes + outsidePoolPeakBytes since the last resetPeakMemory() (or the process start): exact
 *     when the outside allocations are held across the pool's peak (they are allocated once and kept), else an
 *     upper bound.
 *   poolReservedBytes: what the pool holds from the driver (in use, or freed and cached for reuse).
 *   graphBytes / graphPeakBytes: the device's CUDA graph memory (the scratch of recorded ops, CudaOps.captureGraph),
 *     which is outside the pool; included in allocatedBytes and peakBytes (the peak: a sum of watermarks, an upper
 *     bound).
 * The counts are per GPU and per process: every CudaDevice / CudaOps on that GPU shares them.
 */
import { BackendExecutionError } from '@flashattn/core';

export interface CudaMemoryStats {
  allocatedBytes: number;
  peakBytes: number;
  poolBytes: number;
  poolPeakBytes: number;
  poolReservedBytes: number;
  outsidePoolBytes: number;
  outsidePoolPeakBytes: number;
  graphBytes: number;
  graphPeakBytes: number;
}

const FIELDS: readonly (keyof CudaMemoryStats)[] = [
  'allocatedBytes',
  'peakBytes',
  'poolBytes',
  'poolPeakBytes',
  'poolReservedBytes',
  'outsidePoolBytes',
  'outsidePoolPeakBytes',
  'graphBytes',
  'graphPeakBytes',
];

/** The addon's entry point (absent from addons built before it). */
export interface MemoryStatsAddon {
  memoryStats?(device: number, resetPeak: boolean): unknown;
}

/**
 * memoryStats(device, resetPeak) of the addon, checked: every field a non-negative number. An addon without the
 * entry point, or one that answers something else, is a BackendExecutionError of `backend` that says so.
 */
export function readMemoryStats(
  loaded: object,
  device: number,
  backend: string,
  resetPeak: boolean,
): CudaMemoryStats {
  const addon = loaded as MemoryStatsAddon; // the CudaAddon, which may predate the entry point
  if (typeof addon.memoryStats !== 'function')
    throw new BackendExecutionError(
      backend,
      'memoryStats: the loaded CUDA addon has no memoryStats entry point (built before it; rebuild: pnpm --filter @flashattn/cuda build)',
    );
  const raw = addon.memoryStats(device, resetPeak) as Record<string, unknown> | null;
  const out = {} as CudaMemoryStats;
  for (const k of FIELDS) {
    const v = raw?.[k];
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0)
      throw new BackendExecutionError(
        backend,
        `memoryStats: the addon answered ${k} = ${String(v)}, expected bytes >= 0`,
      );
    out[k] = v;
  }
  return out;
}
