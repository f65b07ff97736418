/**
 * The naive attention baseline of the tolerance rule (tolerance.ts), the one copy in the repo: standard attention (materialise S and P) in a given
 * compute dtype, the way PyTorch's math SDPA runs in that dtype:
 *   - inputs q, k, v, dO rounded to the compute dtype c;
 *   - every matmul accumulates in float32 (each multiply-add rounded to float32, as an FMA would),
 *     and its result is rounded to c: S, O, dP, dV, dQ, dK;
 *   - the softmax and its backward run in float32 and their results are rounded to c: P, dS;
 *   - lse = m + log(l) in float32 (the naive lse the brief asks for);
 *   - GQA/MQA: dK and dV are computed per query head (rounded to c), then summed over the group in
 *     float32 and rounded to c, as PyTorch's backward of repeat_interleave(k) does.
 *
 * Alongside each output it returns the output's "absolute-value magnitude" |X|_abs: the same
 * computation with every term replaced by its absolute value (float64). Rounding-error analysis
 * bounds |fl(sum a_k) - sum a_k| <= gamma_n * sum |a_k|, so u * |X|_abs is the size of one rounding
 * at the scale of the terms that produce X, including terms that cancel.
 *
 * For the gradients it also returns R_X, the first-order effect of the one thing FlashAttention's
 * backward (Algorithm 2) does differently from standard attention: it does not keep P but recomputes
 * P_ij = exp(S_ij - L_i) from S (re-evaluated in float32 accumulation, possibly in another order than
 * the forward) and the forward's lse L, which the AttentionBackend contract stores as float32. So
 * P_bwd = P (1 + eta_ij) with |eta_ij| <= eps_ij = u32 * (|S|_abs_ij + |L_i|), and
 *   R_dv_jd = sum_i eps_ij P_ij |dO_id|,
 *   R_dq_id = scale sum_j eps_ij P_ij |dP_ij - D_i| |K_jd|,
 *   R_dk_jd = scale sum_i eps_ij P_ij |dP_ij - D_i| |Q_id|.
 * The second difference (Algorithm 2, line 4): FlashAttention takes D_i = rowsum(dO_i * O_i) from the
 * forward's output O as the backend stored it, in the inputs' dtype, where standard attention sums
 * P_ij dP_ij. A stored O_id carries one rounding, |dO_id| u_o |O_id| with u_o the unit roundoff of the
 * storage (or compute, if coarser) dtype, so |delta D_i| <= epsD_i = u_o sum_d |dO_id| |O_id|, and since
 * dS_ij = P_ij (dP_ij - D_i), that adds
 *   scale sum_j P_ij epsD_i |K_jd| to R_dq_id and scale sum_i P_ij epsD_i |Q_id| to R_dk_jd.
 * In float32 it is one u32 and invisible; with 16-bit storage at small D it is the largest error of a
 * correct backward (found by the fuzz: CPU flash f16, D = 4, Nq = 2, Nk = 4 was at 3.6x the naive dq
 * error and within 2x naive + this term).
 * The recompute term is negligible for ordinary logits and dominant when |S| ~ 1e4, where even a perfect backend's
 * float32 lse is off by u32 * 1e4 ~ 6e-4. The forward has the same kind of term: every backend
 * evaluates S_ij in float32 in its own summation order (a GPU sums q.k in head-dim chunks with FMAs),
 * so its S carries an error up to eps'_ij = u32 * |S|_abs_ij independent of the naive one, and since
 * dO_id / dS_ij = P_ij (V_jd - O_id),
 *   R_out_id = sum_j eps'_ij P_ij |V_jd - O_id|.
 * It matters only on rows where two keys nearly tie at |S| ~ 1e4: there the output is hypersensitive to
 * one rounding of S and the naive run can be right by luck (measured: the WebGPU forward on SwiftShader
 * had err/naive up to 24 on such rows while within 0.2 R_out; CPU flash, which sums q.k in the naive's
 * order, stays at ratio <= 1). tolerance.ts turns |X|_abs and R_X into the absolute floor.
 *
 * Layout: q, dO, O (B, Nq, Hq, D); k, v (B, Nk, Hk, D); lse (B, Hq, Nq).
 */
import { roundToDType, unitRoundoff, type DType } from '../dtype.js';
import { keyRange, resolveOptions, type AttentionOptions } from '../options.js';
import { toFloat32, type Tensor } from '../tensor.js';

export interface NaiveForward {
  /** (B, Nq, Hq, D), values representable in the compute dtype. */
  out: Float32Array;
  /** (B, Hq, Nq), float32; -Infinity for a fully masked row. */
  lse: Float32Array;
  /** max over elements of |out|_abs = sum_j P_ij |V_jd|. */
  outAbs: number;
  /** max over rows of |lse|_abs = max_j |S|_abs_ij + log(n_i) + 1 (see lseAbs below). */
  lseAbs: number;
  /** max over elements of R_out, the score-rounding allowance (see the file comment). */
  outRescore: number;
  /**
   * R_lse, the lse's score-reordering allowance: gamma_D * max_ij |S|_abs_ij. A backend sums each score's
   * D products in another order than the naive loop; |fl(sum) - sum| <= gamma_D * sum |a_k| for any order,
   * and lse = logsumexp(S) moves by at most max_j |error of S_ij|. The 2x naive term does not carry it when
   * the naive sum is exact by luck (a row that sees one key: lse = S_i0).
   */
  lseRescore: number;
}

export interface NaiveBackward {
  /** (B, Nq, Hq, D) */
  dq: Float32Array;
  /** (B, Nk, Hk, D) */
  dk: Float32Array;
  /** (B, Nk, Hk, D) */
  dv: Float32Array;
  dqAbs: number;
  dkAbs: number;
  dvAbs: number;
  /** max over elements of R_X (see the file comment). */
  dqRecompute: number;
  dkRecompute: number;
  dvRecompute: number;
}

/**
 * Which same-precision baseline: by default S is rounded to c as PyTorch's math SDPA does (its matmul writes
 * S in c); `scores: 'float32'` keeps S in float32 as fused kernels do (PyTorch's memory-efficient SDPA, every
 * flash kernel), P and everything else still rounded to c. The two differ only for a 16-bit c. The conformance
 * runner judges a 16-bit case against the worse of the two (see @flashattn/conformance's README): at |S| ~ 1e4
 * the math baseline's 16-bit S (ulp 64) turns near-ties into exact ties and averages two keys' V by luck, which
 * an exact backend cannot match (float64 attention of bf16-rounded inputs failed 3 of 36 'f32 huge-spread'
 * cases at 2.03x, 2026-12-07, as did the CUDA kernels on the H100 with the same error to three digits).
 */
export interface NaiveVariant {
  scores?: 'rounded' | 'float32';
}

export interface NaiveResult {
  forward: NaiveForward;
  backward?: NaiveBackward;
}

function rounder(c: DType): (x: number) => number {
  return c === 'float32' ? Math.fround : (x: number) => roundToDType(x, c);
}

function inCompute(t: Tensor, c: DType): Float32Array {
  const f = Float32Array.from(toFloat32(t));
  if (c === t.dtype || c === 'float32') return f; // float16/bfloat16 values are exact in float32
  const r = rounder(c);
  for (let i = 0; i < f.length; i++) f[i] = r(f[i]!);
  return f;
}

/**
 * Naive attention forward (and backward when dout is given) in compute dtype c.
 * Never throws on masked rows: they give out = 0, lse = -Infinity, zero gradients.
 */
export function naiveAttention(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  opts: AttentionOptions | undefined,
  c: DType,
  dout?: Tensor,
  variant: NaiveVariant = {},
): NaiveResult {
  const roundScores = variant.scores !== 'float32';
  const [B, Nq, Hq, D] = q.shape as [number, number, number, number];
  const [, Nk, Hk] = k.shape as [number, number, number, number];
  const group = Hq / Hk;
  const o = resolveOptions(opts, D);
  const scale = o.softmaxScale;
  const rc = rounder(c);
  const fr = Math.fround;

  const Q = inCompute(q, c); // (B, Nq, Hq, D)
  const K = inCompute(k, c); // (B, Nk, Hk, D)
  const V = inCompute(v, c); // (B, Nk, Hk, D)
  const dO = dout ? inCompute(dout, c) : undefined; // (B, Nq, Hq, D)

  const out = new Float32Array(B * Nq * Hq * D); // (B, Nq, Hq, D)
  const lse = new Float32Array(B * Hq * Nq); // (B, Hq, Nq)
  let outAbs = 0;
  let lseAbs = 0;
  let outRescore = 0;
  let sAbsAll = 0; // max_ij |S|_abs_ij

  const dq = new Float32Array(B * Nq * Hq * D); // (B, Nq, Hq, D)
  const dk = new Float32Array(B * Nk * Hk * D); // (B, Nk, Hk, D), float32 group sums, rounded at the end
  const dv = new Float32Array(B * Nk * Hk * D); // (B, Nk, Hk, D)
  const dkAbsAcc = new Float64Array(B * Nk * Hk * D);
  const dvAbsAcc = new Float64Array(B * Nk * Hk * D);
  const dkRAcc = new Float64Array(B * Nk * Hk * D); // R_dk, summed over the GQA group
  const dvRAcc = new Float64Array(B * Nk * Hk * D); // R_dv
  let dqAbs = 0;
  let dqRecompute = 0;
  const u32 = unitRoundoff('float32');
  // u_o: one rounding of the stored forward output O (the backward's D_i = rowsum(dO * O) reads it)
  const uO = Math.max(unitRoundoff(q.dtype), unitRoundoff(c));

  // Per-(b, h) scratch. Float32Array stores round to float32, so `acc[x] += y` is a float32 accumulate.
  const S = new Float32Array(Nq * Nk); // (Nq, Nk) scores in c; masked = -Inf
  const SAbs = new Float64Array(Nq * Nk); // (Nq, Nk) |S|_abs = scale * sum_d |q_d k_d|
  const P = new Float32Array(Nq * Nk); // (Nq, Nk) probabilities in c; masked = 0
  const dS = new Float32Array(Nq * Nk); // (Nq, Nk) in c
  const dSAbs = new Float64Array(Nq * Nk); // (Nq, Nk) |dS|_abs
  const dkHead = new Float32Array(Nk * D); // (Nk, D) this head's dK, float32 accumulator
  const dvHead = new Float32Array(Nk * D); // (Nk, D)
  const dkHeadAbs = new Float64Array(Nk * D);
  const dvHeadAbs = new Float64Array(Nk * D);
  const dkHeadR = new Float64Array(Nk * D);
  const dvHeadR = new Float64Array(Nk * D);
  const accD = new Float32Array(D);
  const accAbs = new Float64Array(D);
  const accR = new Float64Array(D);
  const ranges: Array<[number, number]> = [];
  for (let i = 0; i < Nq; i++) ranges.push(keyRange(i, Nq, Nk, o));

  const qOff = (b: number, i: number, h: number): number => ((b * Nq + i) * Hq + h) * D;
  const kOff = (b: number, j: number, h: number): number => ((b * Nk + j) * Hk + h) * D;

  for (let b = 0; b < B; b++) {
    for (let h = 0; h < Hq; h++) {
      const hk = Math.floor(h / group);
      S.fill(-Infinity);
      P.fill(0);
      // ---- forward: S = scale * Q K^T, P = softmax(S), O = P V, lse = m + log(l)
      for (let i = 0; i < Nq; i++) {
        const [lo, hi] = ranges[i]!;
        const qo = qOff(b, i, h);
        if (lo >= hi) {
          lse[(b * Hq + h) * Nq + i] = -Infinity; // fully masked row: out row stays 0
          continue;
        }
        let m = -Infinity;
        let sAbsMax = 0;
        for (let j = lo; j < hi; j++) {
          const ko = kOff(b, j, hk);
          let dot = 0;
          let dotAbs = 0;
          for (let d = 0; d < D; d++) {
            const t = Q[qo + d]! * K[ko + d]!; // exact in float64 (24 + 24 bits)
            dot = fr(dot + t);
            dotAbs += Math.abs(t);
          }
          const s = roundScores ? rc(fr(scale * dot)) : fr(scale * dot);
          S[i * Nk + j] = s;
          SAbs[i * Nk + j] = scale * dotAbs;
          if (s > m) m = s;
          if (scale * dotAbs > sAbsMax) sAbsMax = scale * dotAbs;
        }
        let l = 0;
        for (let j = lo; j < hi; j++) {
          const e = fr(Math.exp(fr(S[i * Nk + j]! - m)));
          P[i * Nk + j] = e;
          l = fr(l + e);
        }
        for (let j = lo; j < hi; j++) P[i * Nk + j] = rc(fr(P[i * Nk + j]! / l));
        lse[(b * Hq + h) * Nq + i] = fr(m + fr(Math.log(l)));
        // |lse|_abs: lse = m + log(l) with m = max_j S_ij and 1 <= l <= n. An error e in the S_ij moves
        // lse by at most max |e| (bounded via |S|_abs), log(l) is at most log(n), and a relative
        // error u in l moves log(l) by u, i.e. one u of magnitude 1.
        const rowLseAbs = sAbsMax + Math.log(hi - lo) + 1;
        if (rowLseAbs > lseAbs) lseAbs = rowLseAbs;
        if (sAbsMax > sAbsAll) sAbsAll = sAbsMax;

        accD.fill(0);
        accAbs.fill(0);
        for (let j = lo; j < hi; j++) {
          const p = P[i * Nk + j]!;
          const vo = kOff(b, j, hk);
          for (let d = 0; d < D; d++) {
            accD[d]! += p * V[vo + d]!;
            accAbs[d]! += p * Math.abs(V[vo + d]!);
          }
        }
        for (let d = 0; d < D; d++) {
          out[qo + d] = rc(accD[d]!);
          if (accAbs[d]! > outAbs) outAbs = accAbs[d]!;
        }
        // R_out_id = sum_j u32 |S|_abs_ij P_ij |V_jd - O_id| (accAbs is free again: reuse it)
        accAbs.fill(0);
        for (let j = lo; j < hi; j++) {
          const epsP = u32 * SAbs[i * Nk + j]! * P[i * Nk + j]!;
          if (epsP === 0) continue;
          const vo = kOff(b, j, hk);
          for (let d = 0; d < D; d++) accAbs[d]! += epsP * Math.abs(V[vo + d]! - accD[d]!);
        }
        for (let d = 0; d < D; d++) if (accAbs[d]! > outRescore) outRescore = accAbs[d]!;
      }
      if (!dO) continue;

      // ---- backward: dV = P^T dO, dP = dO V^T, dS = P * (dP - rowsum(P * dP)), dQ = dS K, dK = dS^T Q
      dkHead.fill(0);
      dvHead.fill(0);
      dkHeadAbs.fill(0);
      dvHeadAbs.fill(0);
      dkHeadR.fill(0);
      dvHeadR.fill(0);
      for (let i = 0; i < Nq; i++) {
        const [lo, hi] = ranges[i]!;
        if (lo >= hi) continue; // masked row: zero gradients
        const qo = qOff(b, i, h);
        const lseMag = Math.abs(lse[(b * Hq + h) * Nq + i]!);
        let epsD = 0; // epsD_i = u_o sum_d |dO_id| |O_id| (see the file comment)
        for (let d = 0; d < D; d++) epsD += Math.abs(dO[qo + d]!) * Math.abs(out[qo + d]!);
        epsD *= uO;
        let Di = 0; // float32: sum_j P_ij dP_ij (PyTorch's softmax backward)
        let DiAbs = 0;
        for (let j = lo; j < hi; j++) {
          const vo = kOff(b, j, hk);
          let dot = 0;
          let dotAbs = 0;
          for (let d = 0; d < D; d++) {
            const t = dO[qo + d]! * V[vo + d]!;
            dot = fr(dot + t);
            dotAbs += Math.abs(t);
          }
          const dP = rc(dot);
          const p = P[i * Nk + j]!;
          dS[i * Nk + j] = dP; // keep dP here until Di is known
          dSAbs[i * Nk + j] = dotAbs;
          Di = fr(Di + p * dP);
          DiAbs += p * dotAbs;
        }
        for (let j = lo; j < hi; j++) {
          const p = P[i * Nk + j]!;
          const dPmD = fr(dS[i * Nk + j]! - Di);
          dS[i * Nk + j] = rc(fr(scale * fr(p * dPmD)));
          dSAbs[i * Nk + j] = scale * p * (dSAbs[i * Nk + j]! + DiAbs);
          // eps_ij * P_ij: the recomputed P's possible relative error, times P (see the file comment);
          // S is reused for scale * (eps_ij * P_ij * |dP_ij - D_i| + P_ij epsD_i) (the dS term of R_dq, R_dk).
          const epsP = u32 * (SAbs[i * Nk + j]! + lseMag) * p;
          SAbs[i * Nk + j] = epsP;
          S[i * Nk + j] = scale * (epsP * Math.abs(dPmD) + p * epsD);
        }
        // dQ_i = dS_i K, dV_j += P_ij dO_i, dK_j += dS_ij Q_i
        accD.fill(0);
        accAbs.fill(0);
        accR.fill(0);
        for (let j = lo; j < hi; j++) {
          const ko = kOff(b, j, hk);
          const s = dS[i * Nk + j]!;
          const sAbs = dSAbs[i * Nk + j]!;
          const sR = S[i * Nk + j]!;
          const epsP = SAbs[i * Nk + j]!;
          const p = P[i * Nk + j]!;
          const jo = j * D;
          for (let d = 0; d < D; d++) {
            const kAbs = Math.abs(K[ko + d]!);
            const qAbs = Math.abs(Q[qo + d]!);
            const doAbs = Math.abs(dO[qo + d]!);
            accD[d]! += s * K[ko + d]!;
            accAbs[d]! += sAbs * kAbs;
            accR[d]! += sR * kAbs;
            dvHead[jo + d]! += p * dO[qo + d]!;
            dvHeadAbs[jo + d]! += p * doAbs;
            dvHeadR[jo + d]! += epsP * doAbs;
            dkHead[jo + d]! += s * Q[qo + d]!;
            dkHeadAbs[jo + d]! += sAbs * qAbs;
            dkHeadR[jo + d]! += sR * qAbs;
          }
        }
        for (let d = 0; d < D; d++) {
          dq[qo + d] = rc(accD[d]!);
          if (accAbs[d]! > dqAbs) dqAbs = accAbs[d]!;
          if (accR[d]! > dqRecompute) dqRecompute = accR[d]!;
        }
      }
      // This head's dK, dV rounded to c, then summed over the GQA group in float32.
      for (let j = 0; j < Nk; j++) {
        const ko = kOff(b, j, hk);
        for (let d = 0; d < D; d++) {
          dk[ko + d]! += rc(dkHead[j * D + d]!);
          dv[ko + d]! += rc(dvHead[j * D + d]!);
          dkAbsAcc[ko + d]! += dkHeadAbs[j * D + d]!;
          dvAbsAcc[ko + d]! += dvHeadAbs[j * D + d]!;
          dkRAcc[ko + d]! += dkHeadR[j * D + d]!;
          dvRAcc[ko + d]! += dvHeadR[j * D + d]!;
        }
      }
    }
  }

  const gammaD = (D * u32) / (1 - D * u32);
  const forward: NaiveForward = {
    out,
    lse,
    outAbs,
    lseAbs,
    outRescore,
    lseRescore: gammaD * sAbsAll,
  };
  if (!dO) return { forward };
  for (let x = 0; x < dk.length; x++) {
    dk[x] = rc(dk[x]!);
    dv[x] = rc(dv[x]!);
  }
  let dkAbs = 0;
  let dvAbs = 0;
  let dkRecompute = 0;
  let dvRecompute = 0;
  for (let x = 0; x < dk.length; x++) {
    if (dkAbsAcc[x]! > dkAbs) dkAbs = dkAbsAcc[x]!;
    if (dvAbsAcc[x]! > dvAbs) dvAbs = dvAbsAcc[x]!;
    if (dkRAcc[x]! > dkRecompute) dkRecompute = dkRAcc[x]!;
    if (dvRAcc[x]! > dvRecompute) dvRecompute = dvRAcc[x]!;
  }
  return {
    forward,
    backward: { dq, dk, dv, dqAbs, dkAbs, dvAbs, dqRecompute, dkRecompute, dvRecompute },
  };
}
