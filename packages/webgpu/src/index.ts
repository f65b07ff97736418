export { createWebGPUBackend, MAX_HEAD_DIM } from './backend.js';
export type {
  WebGPUAttentionBackend,
  WebGPUBackendOptions,
  DeviceForwardResult,
  DeviceGradients,
} from './backend.js';
export type { GPUTensor } from './device-tensor.js';
export { LSE_MASKED } from './device-tensor.js';
export { acquireDevice, DEFAULT_DAWN_FLAGS, type AcquireOptions } from './gpu.js';
export { Runtime } from './runtime.js';
export { chooseVariant, type Variant } from './variants.js';
export type { Tiles } from './kernels/tiles.js';
export { flashForwardWGSL } from './kernels/flash-forward.wgsl.js';
export { createStandardAttention, type StandardAttention } from './standard.js';
export { matmulV4WGSL, type MatmulV4Spec } from './kernels/matmul-v4.wgsl.js';
export { flashForwardV4WGSL } from './kernels/flash-forward-v4.wgsl.js';
export { flashForwardSgmatWGSL, sgmatRows, type SgmatSpec } from './kernels/flash-forward-sgmat.wgsl.js';
export { packParams } from './kernels/params.wgsl.js';
export { matmulWGSL, packMatmulParams, type MatmulSpec, type MatmulParams } from './kernels/matmul.wgsl.js';
export { isSoftwareAdapter } from './backend.js';
