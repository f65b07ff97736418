export {
  createCudaBackend,
  CudaBackend,
  FLOAT32_COMPUTE_DTYPES,
  KERNEL_HEAD_DIMS,
  MAX_HEAD_DIM,
  paddedHeadDim,
} from './backend.js';
export type {
  CudaBackendOptions,
  CudaForwardResult,
  CudaGradients,
  Float32ComputeDType,
} from './backend.js';
export { createCudaDevice, CudaDevice } from './device.js';
export type { CudaDeviceOptions } from './device.js';
export {
  createCudaOps,
  CudaOps,
  CublasLtUnavailableError,
  cudaOpsUnavailableReason,
} from './ops.js';
export type { CudaOpsOptions } from './ops.js';
export { CudaBuffer } from './cuda-buffer.js';
export { CudaTensor, isCudaTensor } from './device-tensor.js';
export { CudaUnavailableError, mapCudaError } from './errors.js';
export { cudaInfo, cudaStatus, cudaUnavailableReason, isCudaAvailable } from './availability.js';
export type { CudaInfo, CudaStatus } from './availability.js';
export type { DeviceInfo } from './native.js';
export {
  createNcclCommunicator,
  loadNccl,
  NcclCommunicator,
  NcclUnavailableError,
  type NcclCommunicatorOptions,
} from './nccl.js';
export { KV_MAX_SPLITS, KV_CTAS_PER_SM } from './inference-kv-cache.js';
export { cudaKvSplits, KV_MIN_KEYS_PER_SPLIT, type KvSplitShape } from './inference-kv-splits.js';
export type { InferenceAddon, NativeKvCache, NativeCombine } from './inference-kv-cache.js';
export { withAlignedKvCaches } from './inference-testing.js';
