/**
 * The CUDA backend's typed errors, and the mapping from the addon's CUDA errors to core's error classes.
 */
import {
  BackendExecutionError,
  BackendOutOfMemoryError,
  BackendUnavailableError,
} from '@flashattn/core';

/** CUDA cannot run here: the addon was not built (no nvcc at install), no driver, or no GPU. */
export class CudaUnavailableError extends BackendUnavailableError {
  constructor(reason: string, options?: { cause?: unknown }) {
    super('cuda', reason, options);
  }
}

/** An Error thrown by the addon: `cudaError` is the CUDA error name (e.g. 'cudaErrorMemoryAllocation'). */
export interface NativeCudaError extends Error {
  cudaError?: string;
  cudaErrorCode?: number;
}

const UNAVAILABLE = new Set([
  'cudaErrorInsufficientDriver',
  'cudaErrorNoDevice',
  'cudaErrorInvalidDevice',
  'cudaErrorNoKernelImageForDevice',
  'cudaErrorUnsupportedPtxVersion',
  'cudaErrorInitializationError',
]);

/** Turn an addon error into CudaUnavailableError / BackendOutOfMemoryError / BackendExecutionError. */
export function mapCudaError(err: unknown, backend: string): Error {
  const e = err as NativeCudaError;
  if (!(err instanceof Error) || typeof e.cudaError !== 'string')
    return err instanceof Error ? err : new Error(String(err));
  if (UNAVAILABLE.has(e.cudaError)) return new CudaUnavailableError(e.message, { cause: err });
  if (e.cudaError === 'cudaErrorMemoryAllocation')
    return new BackendOutOfMemoryError(backend, e.message, { cause: err });
  return new BackendExecutionError(backend, e.message, { cause: err });
}
