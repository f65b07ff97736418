/**
 * `@flashattn/core/testing`: the one definition of how this repo decides that a fast result is right.
 *
 *  - `toleranceFor` / `withinTolerance`: FlashAttention's rule, err_backend <= 2 err_naive + floor, with
 *    the floor derived from unit roundoffs and magnitudes (tolerance.ts says how);
 *  - `naiveAttention`: the naive same-precision attention baseline, with the magnitudes the floor needs;
 *  - `maxDeviation`, `maskInfo`, `coords`: how errors are measured and which rows the mask empties.
 *
 * Used by @flashattn/conformance (every backend's suite) and by core's own CPU flash tests. Not part of
 * the runtime API: nothing in core's main entry imports it.
 */
export {
  NAIVE_ERROR_FACTOR,
  accumulationDType,
  allowedError,
  errorRatio,
  toleranceFor,
  unitRoundoffOf,
  withinTolerance,
  type ComputeDType,
  type Tolerance,
  type ToleranceMagnitudes,
} from './tolerance.js';
export {
  naiveAttention,
  type NaiveBackward,
  type NaiveForward,
  type NaiveResult,
  type NaiveVariant,
} from './naive-attention.js';
export { coords, maskInfo, maxDeviation, type Deviation, type MaskInfo } from './compare.js';
