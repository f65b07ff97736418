export { CpuOps, type CpuOpsOptions } from './ops/cpu-ops.js';
export type { CpuBuffer, CpuFloatBuffer } from './ops/buffers.js';
export {
  CpuAttention,
  CPU_ATTENTION_CAPABILITIES,
  type CpuAttentionKind,
  type CpuAttentionPath,
  type CpuAttentionSimd,
} from './attention/cpu-attention.js';
export { provider } from './provider.js';
