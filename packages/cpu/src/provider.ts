/**
 * The CPU backend's entry in core's registry: always available, least preferred by 'auto'.
 * Attention: core's tiled FlashAttention-2 ('flash', default) or the float64 reference ('reference');
 * ops: CpuOps. Importing this module registers it.
 */
import { createCpuBackend, registerBackend, type BackendProvider } from '@flashattn/core';
import { availableParallelism } from 'node:os';
import { CpuOps } from './ops/cpu-ops.js';

export const provider: BackendProvider = {
  name: 'cpu',
  priority: 0,
  async probe() {
    return { available: true, detail: `${availableParallelism()} cores` };
  },
  async createAttention(options) {
    const kind = options?.['kind'] === 'reference' ? 'reference' : 'flash';
    return createCpuBackend({ kind });
  },
  async createOps(options) {
    const threads = options?.['threads'];
    const attention = options?.['attention'] === 'standard' ? 'standard' : 'flash';
    return new CpuOps({ attention, ...(typeof threads === 'number' ? { threads } : {}) });
  },
};

registerBackend(provider);
