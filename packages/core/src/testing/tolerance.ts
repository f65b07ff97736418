/**
 * The tolerance rule (FlashAttention's own test rule, with a derived absolute floor): the ONE rule
 * every check in this repo uses, for attention (host and device backends, core's CPU flash tests)
 * and for the model's ops (the ops conformance suite). Exported from `@flashattn/core/testing`.
 *
 * For each output X of a case (attention: out, lse, dq, dk, dv; ops: each op's outputs):
 *
 *   err_backend = max_e |X_backend(e) - X_oracle(e)|
 *   err_naive   = max_e |X_naive(e)   - X_oracle(e)|
 *   pass  <=>   err_backend <= 2 * err_naive + floor
 *   floor = u(c) * max_e |X_oracle(e)|  +  u32 * max_e |X|_abs(e)  +  max_e R_X(e)
 *
 * where
 *  - X_oracle is core's float64 reference (attentionReference64 / attentionReferenceBackward64);
 *  - X_naive is standard attention with inputs and every intermediate rounded to the backend's compute
 *    dtype c = backend.capabilities.computeDType(case dtype) and float32 accumulation (naive.ts);
 *  - u(c) is the unit roundoff of c (2^-24, 2^-11, 2^-8 for float32, float16, bfloat16; 2^-53 for
 *    float64, which only the ops have), u32 = 2^-24; for c = float64 the accumulation is float64 too and
 *    u32 in term 2 becomes u64 = 2^-53 (`accumulationDType`);
 *  - term 1, u(c) * max |X_oracle|, is one rounding of the result to the compute dtype: what every
 *    backend pays at least once (FlashAttention's hopper tests add the same kind of atol,
 *    2 * (ref + 0.3 - 0.3 - ref), with a constant we do not need);
 *  - term 2 is one float32 rounding at the scale of the terms that produce X: |X|_abs is X computed
 *    with every term replaced by its absolute value (e.g. |out|_abs_id = sum_j P_ij |V_jd|), and
 *    |fl(sum a_k) - sum a_k| <= gamma_n sum |a_k|. Every backend accumulates in float32, and this
 *    term absorbs the case where the naive run is exact by luck while a fused kernel is not: a row
 *    that sees one key has P = 1, so naive dS = P * (dP - rowsum(P * dP)) cancels to exactly 0, while
 *    FlashAttention's D = rowsum(dO * O) sums in another order and leaves an ulp; one u suffices
 *    because the 2x term already carries the accumulation growth;
 *  - term 3, R_X, is for lse gamma_D * max |S|_abs: the score dot products summed in another order than
 *    the naive's (|fl(sum a_k) - sum a_k| <= gamma_n sum |a_k| for any order, and lse = logsumexp(S)
 *    moves by at most the largest score error). Needed where the naive sum is exact by luck: a row that
 *    sees one key has lse = S_i0, and a random CI seed failed the vec4 WebGPU forward on `f32 d32 q1 k1`
 *    at 1.5 u32 * |S|_abs against a one-u floor while the naive lse was off by 0.06 u. For out it is
 *    the first-order effect of S being evaluated in float32 in
 *    another summation order than the naive's, R_out = sum_j u32 |S|_abs_ij P_ij |V_jd - O_id|
 *    (it only matters on near-tied rows at |S| ~ 1e4); for the gradients it is the effect of Algorithm 2
 *    recomputing P = exp(S - L) from a float32 lse L and a float32 re-evaluation of S instead of
 *    keeping P: |P_bwd / P - 1| <= u32 * (|S|_abs + |L|) (naive-attention.ts spells out R_dq, R_dk, R_dv).
 *    It is ~10 u32 relative for ordinary logits and is what lets a correct backend pass when
 *    |S| ~ 1e4, where the float32 lse alone is off by u32 * 1e4 ~ 6e-4 while a naive
 *    implementation keeps P exact;
 *  - elements of fully masked rows (and keys no query sees) are left out of both errors: they are
 *    checked exactly instead (out = 0, lse = -Infinity, zero gradients).
 *
 * Why: a fused kernel reorders the same float operations, so its error should be of the order of a
 * naive implementation's in the same precision; FlashAttention's tests assert exactly
 * `(out - out_ref).abs().max() <= 2 * (out_pt - out_ref).abs().max()`. The factor 2 allows for the
 * different summation order. No constant here was tuned on a backend.
 */
import { unitRoundoff as storageUnitRoundoff, type DType } from '../dtype.js';

/** A compute dtype the rule knows: the attention dtypes and float64 (the ops' float64 buffers). */
export type ComputeDType = DType | 'float64';

/** Unit roundoff of a compute dtype: 2^-24, 2^-11, 2^-8, and 2^-53 for float64. */
export function unitRoundoffOf(c: ComputeDType): number {
  return c === 'float64' ? 2 ** -53 : storageUnitRoundoff(c);
}

/**
 * The dtype a naive implementation in compute dtype c accumulates in: float32 (what GPUs and PyTorch's
 * math paths do for float32, float16, bfloat16), float64 for float64.
 */
export function accumulationDType(c: ComputeDType): 'float32' | 'float64' {
  return c === 'float64' ? 'float64' : 'float32';
}

/** FlashAttention's factor on the naive error. */
export const NAIVE_ERROR_FACTOR = 2;

/** The magnitudes a floor is derived from, all of one output X. */
export interface ToleranceMagnitudes {
  /** max |X_oracle| over the compared elements. */
  output: number;
  /** max |X|_abs (naiveAttention computes it). */
  abs: number;
  /** max R_X: the score-reordering allowance of lse and out, the P-recompute allowance of a gradient (default 0). */
  recompute?: number;
}

export interface Tolerance {
  /** The compute dtype c. */
  readonly computeDType: ComputeDType;
  /** u(c). */
  readonly unitRoundoff: number;
  /** 2. */
  readonly factor: number;
  /** The three floor terms: u(c) * output, u_acc * abs (u_acc = u32, or u64 for float64), recompute. */
  readonly rounding: number;
  readonly accumulation: number;
  readonly recompute: number;
  /** rounding + accumulation + recompute. */
  readonly floor: number;
}

/** The tolerance of one output: factor 2 on the naive error plus the derived floor. */
export function toleranceFor(computeDType: ComputeDType, m: ToleranceMagnitudes): Tolerance {
  const recompute = m.recompute ?? 0;
  for (const [name, x] of [
    ['output', m.output],
    ['abs', m.abs],
    ['recompute', recompute],
  ] as const) {
    if (!Number.isFinite(x) || x < 0) {
      throw new RangeError(
        `toleranceFor: magnitude '${name}' must be a finite number >= 0, got ${x}`,
      );
    }
  }
  const u = unitRoundoffOf(computeDType);
  const rounding = u * m.output;
  const accumulation = unitRoundoffOf(accumulationDType(computeDType)) * m.abs;
  return {
    computeDType,
    unitRoundoff: u,
    factor: NAIVE_ERROR_FACTOR,
    rounding,
    accumulation,
    recompute,
    floor: rounding + accumulation + recompute,
  };
}

/** The largest error the rule allows given the naive error: factor * errNaive + floor. */
export function allowedError(tol: Tolerance, errNaive: number): number {
  return tol.factor * errNaive + tol.floor;
}

/** The rule itself. NaN (a NaN in the output) never passes. */
export function withinTolerance(errBackend: number, errNaive: number, tol: Tolerance): boolean {
  return errBackend <= allowedError(tol, errNaive);
}

/** err_backend / err_naive: how much worse than naive the backend is (0/0 = 0, x/0 = Infinity). */
export function errorRatio(errBackend: number, errNaive: number): number {
  if (Number.isNaN(errBackend)) return NaN;
  if (errNaive === 0) return errBackend === 0 ? 0 : Infinity;
  return errBackend / errNaive;
}
