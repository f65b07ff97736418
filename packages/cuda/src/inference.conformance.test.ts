// The inference conformance suite (@flashattn/conformance's describeInferenceConformance: KV-cache decode and
// chunked prefill, paged and contiguous caches, appends, split-KV, the combine on its own, varlen forward and
// backward, typed rejections) on createCudaDevice(). Skips with the reason when CUDA is unavailable (CI has nvcc
// but no GPU); on the GPU machine apps/bench/src/cuda/decode-device.sh runs it through device-run.mjs inference.
import { describeInferenceConformance } from '@flashattn/conformance/vitest';
import { cudaUnavailableReason } from './availability.js';
import { createCudaDevice } from './device.js';

const reason = cudaUnavailableReason();
describeInferenceConformance('cuda-device', () => createCudaDevice(), {
  skip: reason ? `CUDA unavailable: ${reason}` : undefined,
});
