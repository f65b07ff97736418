export {
  CASE_MATRICES,
  HEAD_DIMS,
  HUGE_LOGIT,
  MATRIX_NAMES,
  SEQLENS,
  caseId,
  casesFor,
  featuresOf,
  makeCase,
  matchesFilter,
  optionsOf,
  type CaseFeature,
  type CaseFilter,
  type CaseSpec,
  type ConformanceCase,
  type LogitProfile,
  type MatrixName,
} from './cases.js';
export {
  NAIVE_ERROR_FACTOR,
  allowedError,
  errorRatio,
  toleranceFor,
  withinTolerance,
  type Tolerance,
  type ToleranceMagnitudes,
} from '@flashattn/core/testing';
export {
  naiveAttention,
  type NaiveBackward,
  type NaiveForward,
  type NaiveResult,
} from '@flashattn/core/testing';
export { caseSeedOf, makeInputs, type CaseInputs } from './inputs.js';
export { maskInfo, maxDeviation, type Deviation, type MaskInfo } from '@flashattn/core/testing';
export { readConformanceEnv, type ConformanceEnv } from './env.js';
export {
  ConformanceError,
  assertConformance,
  formatCaseResult,
  formatReport,
  reproduceHint,
  runCase,
  runConformance,
  unsupportedReason,
  type CaseResult,
  type CaseStatus,
  type ConformanceReport,
  type OutputCheck,
  type OutputName,
  type RunCaseOptions,
  type RunConformanceOptions,
} from './run.js';
export {
  DEVICE_LAYOUTS,
  deviceAttentionBackend,
  type AttentionDevice,
  type DeviceAttentionBackendOptions,
  type DeviceLayout,
} from './device-attention.js';
export {
  OPS_CASES,
  OPS_MATRIX_NAMES,
  opsCasesFor,
  type OpsCase,
  type OpsMatrixName,
} from './ops/cases.js';
export { OP_NAMES, type OpName, type OpProblem } from './ops/problems.js';
export { FLOAT_BUFFER_DTYPES, type ComputeDTypeLike } from './ops/dtypes.js';
export {
  OpsConformanceError,
  assertOpsConformance,
  formatOpsReport,
  opsFloatDTypes,
  runOpsCase,
  runOpsConformance,
  runOpsInputChecks,
  type OpsCaseResult,
  type OpsCaseStatus,
  type OpsConformanceReport,
  type OpsOutputCheck,
  type RunOpsConformanceOptions,
} from './ops/run.js';
export {
  NON_FINITE_SCENARIOS,
  nonFiniteId,
  runNonFiniteCase,
  runNonFiniteChecks,
  type NonFiniteResult,
  type NonFiniteScenario,
} from './nonfinite.js';
export {
  COMBINE_SCENARIOS,
  KV_CACHE_SCENARIOS,
  runCombineScenario,
  runKvCacheRejections,
  runKvCacheScenario,
  type CombineScenario,
  type InferenceCheck,
  type InferenceResult,
  type KvCacheDevice,
  type KvCacheScenario,
} from './kv-cache.js';
export {
  BROKEN_KV_VARIANTS,
  runBrokenKvVariant,
  type BrokenKvVariant,
} from './broken-kv-variants.js';
export {
  VARLEN_SCENARIOS,
  runVarlenRejections,
  runVarlenScenario,
  type VarlenDevice,
  type VarlenScenario,
} from './varlen.js';
export {
  formatGraphsReport,
  runGraphsConformance,
  type GraphsConformanceReport,
} from './graphs.js';
