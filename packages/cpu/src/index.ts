export { CpuOps, type CpuOpsOptions } from './ops/cpu-ops.js';
export type { CpuBuffer, CpuFloatBuffer } from './ops/buffers.js';
export {
  CpuAttention,
  CPU_ATTENTION_CAPABILITIES,
  type CpuAttentionKind,
  type CpuAttentionNative,
  type CpuAttentionPath,
  type CpuAttentionSimd,
} from './attention/cpu-attention.js';
export {
  nativeAttentionInfo,
  nativeInfo,
  type NativeAttentionInfo,
  type NativeInfo,
} from './attention/flash-native.js';
export { provider } from './provider.js';
export {
  createSocketCommunicator,
  SocketCommunicator,
  DEFAULT_COLLECTIVE_TIMEOUT_MS,
  type SocketCommunicatorOptions,
} from './collectives/socket-communicator.js';
