export { createWebGPUBackend, isSoftwareAdapter, MAX_HEAD_DIM } from './backend.js';
export type { WebGPUAttentionBackend, WebGPUBackendOptions } from './backend.js';
export { WebGPUBuffer, WEBGPU_BUFFER_DTYPES } from './memory.js';
export { acquireDevice, DEFAULT_DAWN_FLAGS, releaseGPU, type AcquireOptions } from './gpu.js';
export {
  createWebGpuOps,
  WebGpuOps,
  WEBGPU_OPS_DTYPES,
  type WebGpuOpsOptions,
} from './ops/webgpu-ops.js';
