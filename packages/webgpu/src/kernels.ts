/**
 * `@flashattn/webgpu/kernels`: the kernel internals, for benchmarks, tuning and new ops (not the main
 * entry). Programs and the manager that runs them, the WGSL generators, the uniform packers, tile
 * choice, the runtime with raw handles.
 */
export {
  packUniforms,
  programHeader,
  programSource,
  ProgramManager,
  type ProgramBinding,
  type ProgramInfo,
  type UniformField,
  type UniformType,
  type UniformValue,
} from './program.js';
export { Runtime, USAGE } from './runtime.js';
export { WebGPUMemory, hostBytes } from './memory.js';
export { WebGPUDeviceAttention } from './attention.js';
export { chooseVariant, type Variant } from './variants.js';
export type { Tiles } from './kernels/tiles.js';
export {
  ATTENTION_UNIFORMS,
  ATTENTION_VIEWS,
  attentionUniforms,
  backwardBindings,
  forwardBindings,
  MASK_WGSL,
  viewBase,
  viewRow,
  type AttentionViewName,
} from './kernels/params.wgsl.js';
export { storageKind, dtypeCode, ROUND_FNS, type StorageKind } from './kernels/storage.wgsl.js';
export {
  flashForwardProgram,
  flashForwardWGSL,
  deriveForward,
} from './kernels/flash-forward.wgsl.js';
export {
  flashForwardScalarProgram,
  flashForwardScalarWGSL,
} from './kernels/flash-forward-scalar.wgsl.js';
export { flashBackwardDqProgram, flashBackwardDqWGSL } from './kernels/flash-backward-dq.wgsl.js';
export {
  flashBackwardDkdvProgram,
  flashBackwardDkdvWGSL,
} from './kernels/flash-backward-dkdv.wgsl.js';
export { flashBackwardDqScalarProgram } from './kernels/flash-backward-dq-scalar.wgsl.js';
export { flashBackwardDkdvScalarProgram } from './kernels/flash-backward-dkdv-scalar.wgsl.js';
export {
  flashBackwardPreprocessProgram,
  PREPROCESS_WG,
} from './kernels/flash-backward-preprocess.wgsl.js';
export {
  convertToViewProgram,
  CONVERT_WG,
  type ConvertKind,
} from './kernels/convert-to-view.wgsl.js';
// The benchmarks' baseline and ceiling (not used by the attention backend)
export { createStandardAttention, type StandardAttention } from './baseline/standard.js';
export {
  matmulProgram,
  matmulUniforms,
  MATMUL_UNIFORMS,
  type MatmulParams,
  type MatmulSpec,
} from './baseline/matmul.wgsl.js';
export { matmulV4Program, type MatmulV4Spec } from './baseline/matmul-v4.wgsl.js';
