/**
 * Float64 reference ops: one pure function per op family over host arrays, and `createReferenceOps()`,
 * the `Ops<ReferenceBuffer>` backend built from them (see reference-ops.ts).
 */
export { matmulRef, biasBackwardRef, type MatmulRefOptions } from './matmul.js';
export { embeddingForwardRef, embeddingBackwardRef } from './embedding.js';
export { LAYERNORM_EPS, layernormForwardRef, layernormBackwardRef } from './layernorm.js';
export { GELU_CUBIC, GELU_SCALE, geluForwardRef, geluBackwardRef } from './gelu.js';
export { addRef, scaleRef, sumRef, sumSquaresRef } from './elementwise.js';
export { softmaxCrossEntropyRef } from './cross-entropy.js';
export { adamwRef, adamwUpdateRef } from './adamw.js';
export {
  attentionBackwardRef,
  attentionForwardRef,
  gatherStrided,
  scatterStrided,
  type StridedLayout,
} from './attention.js';
export { REFERENCE_DTYPES, ReferenceBuffer, type ReferenceDType } from './buffer.js';
export { createReferenceOps, type ReferenceOps } from './reference-ops.js';
