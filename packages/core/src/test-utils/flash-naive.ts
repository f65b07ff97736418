/**
 * Test-only helpers for the CPU flash kernels: a naive attention that works "in the storage dtype"
 * (the baseline of the tolerance rule), error measures, and the rule itself.
 *
 * Tolerance rule (FlashAttention's own tests, STYLE.md): on the same inputs,
 *     maxErr(fast vs float64 oracle) <= 2 * maxErr(naive same-dtype vs oracle) + floor,
 *     floor = 4 * u(dtype) * max(1, max|oracle|)   (+ R_out for a float32 out, scoreRoundingAllowance)
 * where u is the dtype's unit roundoff: the floor is a few roundings of the largest value, which is
 * what rounding the result to the dtype alone may cost; it only matters when the naive error happens
 * to be ~0 (e.g. N = 1, where out = v exactly).
 *
 * The naive implementation is what PyTorch's unfused attention does on a GPU in that dtype: matrix
 * products accumulate in float32 (tensor cores) and their results are stored in the dtype; softmax
 * computes in float32 and stores P in the dtype. For float32 every operation rounds to float32.
 *
 * Where that naive implementation breaks down entirely (logits near 1e4 overflow float16's 65504, so
 * S holds Infinity and its error is NaN/Infinity) the rule has no baseline; `naiveBaselineError`
 * then uses the same naive algorithm with float32 intermediates and only the result rounded to the
 * dtype (FlashAttention's "upcast" reference), which is the most one can ask of any dtype kernel.
 */
import { roundToDType, unitRoundoff, type DType } from '../dtype.js';
import {
  keyRange,
  resolveOptions,
  type AttentionOptions,
  type AttentionShape,
} from '../options.js';
import { toFloat32, type Tensor } from '../tensor.js';

const fr = Math.fround;

function shapeOf(q: Tensor, k: Tensor): AttentionShape {
  return {
    batch: q.shape[0]!,
    seqlenQ: q.shape[1]!,
    seqlenK: k.shape[1]!,
    nheadsQ: q.shape[2]!,
    nheadsK: k.shape[2]!,
    headDim: q.shape[3]!,
  };
}

const off = (b: number, n: number, h: number, N: number, H: number, D: number): number =>
  ((b * N + n) * H + h) * D;

/** float32-accumulated dot product of two length-D rows. */
function dot32(a: Float32Array, ao: number, b: Float32Array, bo: number, D: number): number {
  let s = 0;
  for (let d = 0; d < D; d++) s = fr(s + fr(a[ao + d]! * b[bo + d]!));
  return s;
}

/** P (Nq, Nk) of one (b, h), stored in dtype; masked entries 0. Also lse per row (float32). */
function naiveProbs(
  qf: Float32Array,
  kf: Float32Array,
  s: AttentionShape,
  b: number,
  h: number,
  opts: AttentionOptions | undefined,
  dtype: DType, // of the stored intermediates S and P
): { P: Float64Array; lse: Float64Array } {
  const { seqlenQ: Nq, seqlenK: Nk, nheadsQ: Hq, nheadsK: Hk, headDim: D } = s;
  const o = resolveOptions(opts, D);
  const hk = Math.floor(h / (Hq / Hk));
  const rnd = (x: number): number => roundToDType(x, dtype);
  const P = new Float64Array(Nq * Nk);
  const lse = new Float64Array(Nq);
  const S = new Float64Array(Nk);
  for (let i = 0; i < Nq; i++) {
    const [lo, hi] = keyRange(i, Nq, Nk, o);
    if (lo >= hi) {
      lse[i] = -Infinity;
      continue;
    }
    let m = -Infinity;
    for (let j = lo; j < hi; j++) {
      // S = scale * (Q K^T), the product stored in dtype, then scaled and stored again.
      S[j] = rnd(
        rnd(dot32(qf, off(b, i, h, Nq, Hq, D), kf, off(b, j, hk, Nk, Hk, D), D)) * o.softmaxScale,
      );
      if (S[j]! > m) m = S[j]!;
    }
    let l = 0;
    for (let j = lo; j < hi; j++) l = fr(l + fr(Math.exp(S[j]! - m)));
    for (let j = lo; j < hi; j++) P[i * Nk + j] = rnd(fr(fr(Math.exp(S[j]! - m)) / l));
    lse[i] = fr(m + fr(Math.log(l)));
  }
  return { P, lse };
}

/**
 * Naive forward in dtype: out (B, Nq, Hq, D) and lse (B, Hq, Nq), as float64 arrays of dtype values.
 * `intermediate` is the dtype S and P are stored in (default q.dtype); out is always rounded to q.dtype.
 */
export function naiveAttention(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  opts?: AttentionOptions,
  intermediate: DType = q.dtype,
): { out: Float64Array; lse: Float64Array } {
  const s = shapeOf(q, k);
  const { batch: B, seqlenQ: Nq, seqlenK: Nk, nheadsQ: Hq, nheadsK: Hk, headDim: D } = s;
  const dtype = q.dtype;
  const qf = toFloat32(q);
  const kf = toFloat32(k);
  const vf = toFloat32(v);
  const out = new Float64Array(B * Nq * Hq * D);
  const lse = new Float64Array(B * Hq * Nq);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < Hq; h++) {
      const hk = Math.floor(h / (Hq / Hk));
      const { P, lse: rowLse } = naiveProbs(qf, kf, s, b, h, opts, intermediate);
      lse.set(rowLse, (b * Hq + h) * Nq);
      for (let i = 0; i < Nq; i++) {
        for (let d = 0; d < D; d++) {
          let acc = 0;
          for (let j = 0; j < Nk; j++) {
            const p = P[i * Nk + j]!;
            if (p !== 0) acc = fr(acc + fr(p * vf[off(b, j, hk, Nk, Hk, D) + d]!));
          }
          out[off(b, i, h, Nq, Hq, D) + d] = roundToDType(acc, dtype);
        }
      }
    }
  }
  return { out, lse };
}

/**
 * Naive backward in dtype, of the same contract as the kernels: from dout, q, k, v and the forward's
 * out and float32 lse it materialises S = scale Q K^T, P = exp(S - lse), dV = P^T dO, dP = dO V^T,
 * D = rowsum(dO * O), dS = P * (dP - D), dQ = scale dS K, dK = scale dS^T Q; each product
 * float32-accumulated and stored in `intermediate` (default q.dtype), results rounded to q.dtype.
 * dk, dv sum the heads of a GQA group in float32 before the final rounding.
 * It takes P from the float32 lse (not from a fresh softmax) because that is the backward's contract:
 * at logits near 1e4 the float32 lse alone perturbs P by |lse| * 2^-24, for every implementation.
 */
export function naiveAttentionBackward(
  dout: Tensor,
  q: Tensor,
  k: Tensor,
  v: Tensor,
  out: Tensor,
  lse: Float32Array,
  opts?: AttentionOptions,
  intermediate: DType = q.dtype,
): { dq: Float64Array; dk: Float64Array; dv: Float64Array } {
  const s = shapeOf(q, k);
  const { batch: B, seqlenQ: Nq, seqlenK: Nk, nheadsQ: Hq, nheadsK: Hk, headDim: D } = s;
  const rndOut = (x: number): number => roundToDType(x, q.dtype);
  const rnd = (x: number): number => roundToDType(x, intermediate);
  const o = resolveOptions(opts, D);
  const scale = o.softmaxScale;
  const qf = toFloat32(q);
  const kf = toFloat32(k);
  const vf = toFloat32(v);
  const dof = toFloat32(dout);
  const of = toFloat32(out);
  const dq = new Float64Array(B * Nq * Hq * D);
  const dk32 = new Float64Array(B * Nk * Hk * D); // float32 partial sums over heads
  const dv32 = new Float64Array(B * Nk * Hk * D);
  const P = new Float64Array(Nq * Nk); // (Nq, Nk) of one (b, h)
  const dS = new Float64Array(Nq * Nk); // (Nq, Nk)
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < Hq; h++) {
      const hk = Math.floor(h / (Hq / Hk));
      P.fill(0);
      dS.fill(0);
      for (let i = 0; i < Nq; i++) {
        const qo = off(b, i, h, Nq, Hq, D);
        const L = lse[(b * Hq + h) * Nq + i]!;
        const [lo, hi] = keyRange(i, Nq, Nk, o);
        if (lo >= hi || L === -Infinity) continue;
        let Di = 0; // D_i = rowsum(dO * O), float32
        for (let d = 0; d < D; d++) Di = fr(Di + fr(dof[qo + d]! * of[qo + d]!));
        for (let j = lo; j < hi; j++) {
          const Sij = rnd(rnd(dot32(qf, qo, kf, off(b, j, hk, Nk, Hk, D), D)) * scale);
          const p = rnd(fr(Math.exp(fr(Sij - L))));
          P[i * Nk + j] = p;
          const dP = rnd(dot32(dof, qo, vf, off(b, j, hk, Nk, Hk, D), D));
          dS[i * Nk + j] = rnd(fr(p * fr(dP - Di)));
        }
      }
      for (let j = 0; j < Nk; j++) {
        const ko = off(b, j, hk, Nk, Hk, D);
        for (let d = 0; d < D; d++) {
          let accV = 0;
          let accK = 0;
          for (let i = 0; i < Nq; i++) {
            const qo = off(b, i, h, Nq, Hq, D);
            const p = P[i * Nk + j]!;
            if (p === 0 && dS[i * Nk + j] === 0) continue;
            accV = fr(accV + fr(p * dof[qo + d]!));
            accK = fr(accK + fr(dS[i * Nk + j]! * qf[qo + d]!));
          }
          dv32[ko + d] = fr(dv32[ko + d]! + rnd(accV));
          dk32[ko + d] = fr(dk32[ko + d]! + rnd(fr(scale * rnd(accK))));
        }
      }
      for (let i = 0; i < Nq; i++) {
        const qo = off(b, i, h, Nq, Hq, D);
        for (let d = 0; d < D; d++) {
          let acc = 0;
          for (let j = 0; j < Nk; j++) {
            const ds = dS[i * Nk + j]!;
            if (ds !== 0) acc = fr(acc + fr(ds * kf[off(b, j, hk, Nk, Hk, D) + d]!));
          }
          dq[qo + d] = rndOut(fr(scale * rnd(acc)));
        }
      }
    }
  }
  return { dq, dk: dk32.map(rndOut), dv: dv32.map(rndOut) };
}

/**
 * R_out, the score-rounding allowance of out (the conformance suite's term of the same name; see
 * packages/conformance/README.md): every implementation evaluates S = scale q.k in float32 in its own
 * summation order, an error up to u32 |S|_abs_ij independent of the naive one, whose first-order effect on
 * O_id is sum_j u32 |S|_abs_ij P_ij |V_jd - O_id|. Returns its max over all (b, i, h, d), from float64
 * S, P and the oracle's O. It matters for float32 at logits ~1e4, on rows where two keys nearly tie and
 * the naive run is right by luck (seed 3009674859 failed 'huge logits float32' at 2.8x the one-term floor).
 */
export function scoreRoundingAllowance(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  oracleOut: ArrayLike<number>,
  opts?: AttentionOptions,
): number {
  const s = shapeOf(q, k);
  const { batch: B, seqlenQ: Nq, seqlenK: Nk, nheadsQ: Hq, nheadsK: Hk, headDim: D } = s;
  const o = resolveOptions(opts, D);
  const u32 = unitRoundoff('float32');
  const qf = toFloat32(q);
  const kf = toFloat32(k);
  const vf = toFloat32(v);
  const S = new Float64Array(Nk); // one row of S and |S|_abs
  const SAbs = new Float64Array(Nk);
  let worst = 0;
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < Hq; h++) {
      const hk = Math.floor(h / (Hq / Hk));
      for (let i = 0; i < Nq; i++) {
        const [lo, hi] = keyRange(i, Nq, Nk, o);
        if (lo >= hi) continue;
        const qo = off(b, i, h, Nq, Hq, D);
        let m = -Infinity;
        for (let j = lo; j < hi; j++) {
          const ko = off(b, j, hk, Nk, Hk, D);
          let dot = 0;
          let dotAbs = 0;
          for (let d = 0; d < D; d++) {
            dot += qf[qo + d]! * kf[ko + d]!;
            dotAbs += Math.abs(qf[qo + d]! * kf[ko + d]!);
          }
          S[j] = o.softmaxScale * dot;
          SAbs[j] = o.softmaxScale * dotAbs;
          if (S[j]! > m) m = S[j]!;
        }
        let l = 0;
        for (let j = lo; j < hi; j++) l += Math.exp(S[j]! - m);
        for (let d = 0; d < D; d++) {
          const od = oracleOut[qo + d]!;
          let r = 0;
          for (let j = lo; j < hi; j++) {
            r += SAbs[j]! * (Math.exp(S[j]! - m) / l) * Math.abs(vf[off(b, j, hk, Nk, Hk, D) + d]! - od);
          }
          if (u32 * r > worst) worst = u32 * r;
        }
      }
    }
  }
  return worst;
}

/**
 * max |a - b| over all entries; entries equal in value (including equal infinities, e.g. masked
 * lse = -Infinity on both sides) count 0; an infinity or NaN on one side only gives Infinity / NaN.
 */
export function maxAbsError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} != ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    if (a[i] === b[i]) continue;
    const e = Math.abs(a[i]! - b[i]!);
    if (!(e <= m)) m = e; // NaN sticks
  }
  return m;
}

/** max |x| over the finite entries. */
export function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) if (Number.isFinite(a[i]!)) m = Math.max(m, Math.abs(a[i]!));
  return m;
}

/**
 * The baseline error of the rule: the naive same-dtype error, or, where that is not finite (the
 * naive softmax overflowed), the error of the naive algorithm with float32 intermediates.
 */
export function naiveBaselineError(
  naive: (intermediate: DType) => ArrayLike<number>,
  oracle: ArrayLike<number>,
  dtype: DType,
): number {
  const e = maxAbsError(naive(dtype), oracle);
  return Number.isFinite(e) ? e : maxAbsError(naive('float32'), oracle);
}

/** The tolerance rule: 2 x the naive same-dtype error plus a floor of a few roundings (see the header). */
export function toleranceFor(naiveErr: number, oracle: ArrayLike<number>, dtype: DType): number {
  return 2 * naiveErr + 4 * unitRoundoff(dtype) * Math.max(1, maxAbs(oracle));
}
