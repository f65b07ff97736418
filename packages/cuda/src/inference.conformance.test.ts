// The inference conformance suite (@flashattn/conformance's describeInferenceConformance: KV-cache decode and
// chunked prefill, paged and contiguous caches, appends, split-KV, the combine on its own, varlen forward and
// backward, typed rejections) on createCudaDevice(). Skips with the reason when CUDA is unavailable (CI has nvcc
// but no GPU); on the GPU machine apps/bench/src/cuda/decode-device.sh runs it through device-run.mjs inference.
// The suite's caches sit 3 elements into their buffers (scalar loads); the second run gives the decode kernel
// 16-byte aligned copies of them (withAlignedKvCaches), so its 16-byte-load path is judged on the same scenarios.
import { describeInferenceConformance } from '@flashattn/conformance/vitest';
import { cudaUnavailableReason } from './availability.js';
import { createCudaDevice } from './device.js';
import { withAlignedKvCaches } from './inference-testing.js';

const reason = cudaUnavailableReason();
const skip = reason ? `CUDA unavailable: ${reason}` : undefined;
describeInferenceConformance('cuda-device', () => createCudaDevice(), { skip });
describeInferenceConformance(
  'cuda-device (16-byte aligned caches)',
  () => withAlignedKvCaches(createCudaDevice()),
  { skip, varlen: false },
);
