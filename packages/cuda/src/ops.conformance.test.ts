// The ops conformance suite (every op forward and backward against core's float64 reference, one tolerance rule)
// on createCudaOps() in float32, float16 and bfloat16 (the dtypes it lists). Skips with the reason printed where
// there is no GPU or no cuBLASLt (CI: nvcc, no GPU). On the GPU machine, apps/bench/src/cuda/ops-device.sh runs it
// through the bundled device runner (`ops-conformance`, the 'full' matrix).
import { describeOpsConformance } from '@flashattn/conformance/vitest';
import { createCudaOps, cudaOpsUnavailableReason } from './ops.js';

const reason = cudaOpsUnavailableReason();
describeOpsConformance('cuda', () => createCudaOps(), {
  matrix: 'ci',
  skip: reason ? `CUDA ops unavailable: ${reason}` : undefined,
});
