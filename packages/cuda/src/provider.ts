/**
 * The CUDA backend's entry in core's registry (`flashattn.provider` in package.json, so
 * `discoverBackends()` from `@flashattn/core/node` finds it; importing this module also registers it).
 */
import {
  AttentionInputError,
  registerBackend,
  type AttentionBackend,
  type BackendProvider,
} from '@flashattn/core';
import { cudaStatus } from './availability.js';
import { createCudaBackend, type CudaBackendOptions } from './backend.js';
import { createCudaOps, type CudaOpsOptions } from './ops.js';

/** The createAttention options this backend knows: device, deterministic, float32ComputeDType. */
function backendOptions(options: Record<string, unknown> | undefined): CudaBackendOptions {
  const known = new Set(['device', 'deterministic', 'float32ComputeDType']);
  for (const key of Object.keys(options ?? {})) {
    if (!known.has(key))
      throw new AttentionInputError(`options.${key}`, `one of ${[...known].join(', ')}`, key);
  }
  return { ...(options ?? {}) } as CudaBackendOptions;
}

export const provider: BackendProvider = {
  name: 'cuda',
  priority: 20,
  probe() {
    const s = cudaStatus();
    if (!s.available) return Promise.resolve({ available: false, reason: s.reason }); // already says what is missing
    const d = s.devices[0]!;
    return Promise.resolve({
      available: true,
      detail: `${d.name} (compute capability ${d.major}.${d.minor}, ${s.deviceCount} device${s.deviceCount > 1 ? 's' : ''})`,
    });
  },
  createAttention(options?: Record<string, unknown>): Promise<AttentionBackend> {
    try {
      return Promise.resolve(createCudaBackend(backendOptions(options)));
    } catch (e) {
      return Promise.reject(e as Error);
    }
  },
  /** CudaOps (the training ops; needs cuBLASLt): options device, deterministic, float32ComputeDType, cublasLtPath, fusedGelu. */
  createOps(options?: Record<string, unknown>) {
    try {
      return Promise.resolve(createCudaOps({ ...(options ?? {}) } as CudaOpsOptions));
    } catch (e) {
      return Promise.reject(e as Error);
    }
  },
};

registerBackend(provider);
