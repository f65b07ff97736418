// The CPU FlashAttention-2 backend (core's Algorithms 1 and 2) against the conformance matrix.
import { createCpuBackend } from '@flashattn/core';
import { describeConformance } from './vitest.js';

describeConformance('cpu-flash', () => createCpuBackend({ kind: 'flash' }), { matrix: 'ci' });
