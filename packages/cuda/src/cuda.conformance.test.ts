// The conformance suite (fp32 / fp16 / bf16, forward and backward) on the CUDA backend. Skips with the reason
// when CUDA is unavailable (CI has nvcc but no GPU). The H100 run uses the 'full' matrix via
// apps/bench/src/cuda-device-run.ts (FLASHATTN_CONFORMANCE_MATRIX=full also works here).
import { describeConformance } from '@flashattn/conformance/vitest';
import { createCudaBackend } from './backend.js';
import { cudaUnavailableReason } from './availability.js';

const reason = cudaUnavailableReason();
describeConformance('cuda', () => createCudaBackend(), {
  matrix: 'ci',
  skip: reason ? `CUDA unavailable: ${reason}` : undefined,
});
describeConformance('cuda-deterministic', () => createCudaBackend({ deterministic: true }), {
  matrix: 'smoke',
  skip: reason ? `CUDA unavailable: ${reason}` : undefined,
});
