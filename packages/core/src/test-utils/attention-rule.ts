/**
 * Core's own attention tests under the repo's one tolerance rule (`../testing/`, also exported as
 * `@flashattn/core/testing`): the same oracle, naive baseline, magnitudes, masked-row handling and
 * floor as @flashattn/conformance's runCase, for kernels called directly rather than as a backend.
 */
import type { DType } from '../dtype.js';
import type { AttentionOptions } from '../options.js';
import { attentionReference64, attentionReferenceBackward64 } from '../reference.js';
import { zeros, type Tensor } from '../tensor.js';
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
