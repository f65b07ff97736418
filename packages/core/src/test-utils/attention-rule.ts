/**
 * Core's own attention tests under the repo's one tolerance rule (`../testing/`, also exported as
 * `@flashattn/core/testing`): the same oracle, naive baseline, magnitudes, masked-row handling and
 * floor as @flashattn/conformance's runCase, for kernels called directly rather than as a backend.
 */
import type { DType } from '../dtype.js';
import { keyRange, resolveOptions, type AttentionOptions } from '../options.js';
import { attentionReference64, attentionReferenceBackward64 } from '../reference.js';
import { toFloat32, zeros, type Tensor } from '../tensor.js';
import {
  allowedError,
  maskInfo,
  maxDeviation,
  naiveAttention,
  toleranceFor,
  type NaiveResult,
} from '../testing/index.js';

/** One output under the rule: pass <=> err <= allowed = 2 errNaive + floor (and nothing non-finite). */
export interface RuleCheck {
  output: 'out' | 'lse' | 'dq' | 'dk' | 'dv';
  err: number;
  errNaive: number;
  allowed: number;
  /** Non-finite values in the naive baseline (the case does not fit the compute dtype). */
  naiveNonFinite: number;
}

function one(
  output: RuleCheck['output'],
  actual: ArrayLike<number>,
  oracle: ArrayLike<number>,
  naive: ArrayLike<number>,
  abs: number,
  recompute: number,
  c: DType,
  skip: (x: number) => boolean,
): RuleCheck {
  let maxOracle = 0;
  for (let x = 0; x < oracle.length; x++) {
    if (!skip(x)) maxOracle = Math.max(maxOracle, Math.abs(oracle[x]!));
  }
  const tol = toleranceFor(c, { output: maxOracle, abs, recompute });
  const dB = maxDeviation(actual, oracle, skip);
  const dN = maxDeviation(naive, oracle, skip);
  return {
    output,
    err: dB.maxErr,
    errNaive: dN.maxErr,
    allowed: allowedError(tol, dN.maxErr),
    naiveNonFinite: dN.nonFinite,
  };
}

/**
 * Rule checks of a forward (out (B, Nq, Hq, D), lse (B, Hq, Nq)) and, when given, of the gradients
 * (dq (B, Nq, Hq, D), dk, dv (B, Nk, Hk, D)) against the float64 oracle, in compute dtype c. Fully masked
 * rows and keys no query sees are left out (the callers check them exactly).
 */
export function attentionRuleChecks(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  opts: AttentionOptions,
  c: DType,
  fwd: { out: ArrayLike<number>; lse: ArrayLike<number> },
  bwd?: { dout: Tensor; dq: ArrayLike<number>; dk: ArrayLike<number>; dv: ArrayLike<number> },
): RuleCheck[] {
  const [, Nq, Hq, D] = q.shape as [number, number, number, number];
  const [, Nk, Hk] = k.shape as [number, number, number];
  const mask = maskInfo(Nq, Nk, D, opts);
  const row = (x: number): boolean => mask.maskedRows[Math.floor(x / (Hq * D)) % Nq] === 1;
  const lseRow = (x: number): boolean => mask.maskedRows[x % Nq] === 1;
  const key = (x: number): boolean => mask.unseenKeys[Math.floor(x / (Hk * D)) % Nk] === 1;
  const ref = attentionReference64(q, k, v, opts);
  const n: NaiveResult = naiveAttention(q, k, v, opts, c, bwd?.dout);
  const checks = [
    one('out', fwd.out, ref.out, n.forward.out, n.forward.outAbs, n.forward.outRescore, c, row),
    one('lse', fwd.lse, ref.lse, n.forward.lse, n.forward.lseAbs, n.forward.lseRescore, c, lseRow),
  ];
  if (!bwd) return checks;
  const g = attentionReferenceBackward64(
    bwd.dout,
    q,
    k,
    v,
    zeros(q.shape, q.dtype),
    new Float32Array(ref.lse.length),
    opts,
  );
  const nb = n.backward!;
  checks.push(
    one('dq', bwd.dq, g.dq, nb.dq, nb.dqAbs, nb.dqRecompute, c, row),
    one('dk', bwd.dk, g.dk, nb.dk, nb.dkAbs, nb.dkRecompute, c, key),
    one('dv', bwd.dv, g.dv, nb.dv, nb.dvAbs, nb.dvRecompute, c, key),
  );
  return checks;
}

/**
 * A worst-case, first-order bound on |computed - exact| of any evaluation order of attention forward
 * in precision u (u32 = 2^-24 for the float32 kernels, u64 = 2^-53 for float64 ones), per element, for
 * comparing two evaluations (|a - b| <= bound_a + bound_b) or one against a float64 computation, where
 * no naive baseline exists (different block sizes, float64 kernels, rows of a problem too large for the
 * naive). With gamma_n = n u / (1 - n u) (|fl(sum a) - sum a| <= gamma_n sum |a|, any order), row i with
 * n visible keys, exact S, P, O and |S|_abs_ij = scale sum_d |q_id k_jd|:
 *   - S_ij is off by at most gamma_{D+1} |S|_abs_ij (D products and the scale);
 *   - P_ij = exp(S_ij - m) / l is then off relatively by eps_ij = gamma_{D+1} (|S|_abs_ij + max_k |S|_abs_ik)
 *     + gamma_{2n+2} (exp, one rescale per key at most in the online softmax, the n-term sum l, the division);
 *   - out_id = sum_j P_ij V_jd: sum_j P_ij eps_ij |V_jd - O_id| + gamma_{2n+2} sum_j P_ij |V_jd| + u |O_id|
 *     (the P errors, the weighted sum with its rescales, the stored result);
 *   - lse_i = m + log l: max_j gamma_{D+1} |S|_abs_ij + gamma_{2n+2} + u |lse_i|.
 * Returns out (B, Nq, Hq, D) and lse (B, Hq, Nq) bounds; rows listed in `rows` only (others 0).
 */
export function flashForwardErrorBound(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  opts: AttentionOptions,
  u: number,
  rows?: readonly number[],
): { out: Float64Array; lse: Float64Array } {
  const [B, Nq, Hq, D] = q.shape as [number, number, number, number];
  const [, Nk, Hk] = k.shape as [number, number, number];
  const o = resolveOptions(opts, D);
  const qf = toFloat32(q);
  const kf = toFloat32(k);
  const vf = toFloat32(v);
  const gamma = (n: number): number => (n * u) / (1 - n * u);
  const out = new Float64Array(B * Nq * Hq * D);
  const lse = new Float64Array(B * Hq * Nq);
  const S = new Float64Array(Nk);
  const SAbs = new Float64Array(Nk);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < Hq; h++) {
      const hk = Math.floor(h / (Hq / Hk));
      for (const i of rows ?? Array.from({ length: Nq }, (_, x) => x)) {
        const [lo, hi] = keyRange(i, Nq, Nk, o);
        if (lo >= hi) continue;
        const n = hi - lo;
        const qo = ((b * Nq + i) * Hq + h) * D;
        let m = -Infinity;
        let sAbsMax = 0;
        for (let j = lo; j < hi; j++) {
          const ko = ((b * Nk + j) * Hk + hk) * D;
          let dot = 0;
          let dotAbs = 0;
          for (let d = 0; d < D; d++) {
            dot += qf[qo + d]! * kf[ko + d]!;
            dotAbs += Math.abs(qf[qo + d]! * kf[ko + d]!);
          }
          S[j] = o.softmaxScale * dot;
          SAbs[j] = o.softmaxScale * dotAbs;
          m = Math.max(m, S[j]!);
          sAbsMax = Math.max(sAbsMax, SAbs[j]!);
        }
        let l = 0;
        for (let j = lo; j < hi; j++) l += Math.exp(S[j]! - m);
        const gS = gamma(D + 1);
        const gN = gamma(2 * n + 2);
        const L = m + Math.log(l);
        lse[(b * Hq + h) * Nq + i] = gS * sAbsMax + gN + u * Math.abs(L);
        for (let d = 0; d < D; d++) {
          let O = 0;
          for (let j = lo; j < hi; j++)
            O += (Math.exp(S[j]! - m) / l) * vf[((b * Nk + j) * Hk + hk) * D + d]!;
          let bound = u * Math.abs(O);
          for (let j = lo; j < hi; j++) {
            const P = Math.exp(S[j]! - m) / l;
            const V = vf[((b * Nk + j) * Hk + hk) * D + d]!;
            const eps = gS * (SAbs[j]! + sAbsMax) + gN;
            bound += P * eps * Math.abs(V - O) + gN * P * Math.abs(V);
          }
          out[qo + d] = bound;
        }
      }
    }
  }
  return { out, lse };
}
