/**
 * The oracle: standard attention that materialises S = scale * Q K^T and P = softmax(S) for each
 * (batch, head), accumulating in float64. Every fast path in this repo is checked against it.
 *
 * Layout: q (B, Nq, Hq, D); k, v (B, Nk, Hk, D); query head h reads kv head floor(h / (Hq / Hk)).
 */
import type { AttentionForwardResult, AttentionGradients } from './contracts/attention-backend.js';
import { keyRange, resolveOptions, type AttentionOptions, type AttentionShape } from './options.js';
import { fromFloat32, toFloat32, type Tensor } from './tensor.js';
import { validateBackward, validateForward } from './validate.js';

/** Float64 forward results: out (B, Nq, Hq, D) and lse (B, Hq, Nq). */
export interface Reference64 {
  shape: AttentionShape;
  out: Float64Array;
  lse: Float64Array;
}

/** Float64 gradients: dq (B, Nq, Hq, D), dk and dv (B, Nk, Hk, D). */
export interface ReferenceGrads64 {
  dq: Float64Array;
  dk: Float64Array;
  dv: Float64Array;
}

/** Offset of (b, n, h, 0) in a (B, N, H, D) tensor. */
export function rowOffset(b: number, n: number, h: number, N: number, H: number, D: number): number {
  return ((b * N + n) * H + h) * D;
}

/**
 * S and P for one (b, h): both (Nq, Nk) row-major, float64. Masked entries have S = -Inf, P = 0.
 * Returns also m (row max) and lse per row.
 */
function scoresAndProbs(
  q: Float32Array,
  k: Float32Array,
  s: AttentionShape,
  b: number,
  h: number,
  opts: AttentionOptions | undefined,
): { S: Float64Array; P: Float64Array; lse: Float64Array } {
  const { seqlenQ: Nq, seqlenK: Nk, nheadsQ: Hq, nheadsK: Hk, headDim: D } = s;
  const o = resolveOptions(opts, D);
  const hk = Math.floor(h / (Hq / Hk));
  const S = new Float64Array(Nq * Nk).fill(-Infinity);
  const P = new Float64Array(Nq * Nk);
  const lse = new Float64Array(Nq);
  for (let i = 0; i < Nq; i++) {
    const qo = rowOffset(b, i, h, Nq, Hq, D);
    const [lo, hi] = keyRange(i, Nq, Nk, o);
    let m = -Infinity;
    for (let j = lo; j < hi; j++) {
      const ko = rowOffset(b, j, hk, Nk, Hk, D);
      let dot = 0;
      for (let d = 0; d < D; d++) dot += q[qo + d]! * k[ko + d]!;
      const sij = o.softmaxScale * dot;
      S[i * Nk + j] = sij;
      if (sij > m) m = sij;
    }
    if (lo >= hi) {
      lse[i] = -Infinity; // fully masked row: P row stays 0
      continue;
    }
    let l = 0;
    for (let j = lo; j < hi; j++) {
      const p = Math.exp(S[i * Nk + j]! - m);
      P[i * Nk + j] = p;
      l += p;
    }
    for (let j = lo; j < hi; j++) P[i * Nk + j]! /= l;
    lse[i] = m + Math.log(l);
  }
  return { S, P, lse };
}

/** Float64 forward. */
export function attentionReference64(q: Tensor, k: Tensor, v: Tensor, opts?: AttentionOptions): Reference64 {
  const shape = validateForward(q, k, v, opts);
  const { batch: B, seqlenQ: Nq, seqlenK: Nk, nheadsQ: Hq, nheadsK: Hk, headDim: D } = shape;
  const qf = toFloat32(q);
  const kf = toFloat32(k);
  const vf = toFloat32(v);
  const out = new Float64Array(B * Nq * Hq * D);
  const lse = new Float64Array(B * Hq * Nq);
  const acc = new Float64Array(D);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < Hq; h++) {
      const hk = Math.floor(h / (Hq / Hk));
      const { P, lse: rowLse } = scoresAndProbs(qf, kf, shape, b, h, opts);
      lse.set(rowLse, (b * Hq + h) * Nq);
      for (let i = 0; i < Nq; i++) {
        acc.fill(0);
        for (let j = 0; j < Nk; j++) {
          const p = P[i * Nk + j]!;
          if (p === 0) continue;
          const vo = rowOffset(b, j, hk, Nk, Hk, D);
          for (let d = 0; d < D; d++) acc[d]! += p * vf[vo + d]!;
        }
        out.set(acc, rowOffset(b, i, h, Nq, Hq, D));
      }
    }
  }
  return { shape, out, lse };
}

/**
 * Reference forward. Returns out as a float32 tensor (whatever the input dtype) and lse (B, Hq, Nq).
 */
export function attentionReference(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  opts?: AttentionOptions,
): AttentionForwardResult {
  const r = attentionReference64(q, k, v, opts);
  return { out: fromFloat32(Float32Array.from(r.out), q.shape, 'float32'), lse: Float32Array.from(r.lse) };
}

/**
 * Float64 backward: the exact gradients of sum(out * dout). It recomputes S and P in float64 from
 * q and k rather than trusting the caller's out and lse (those are only validated), so the result is
 * the true gradient for these inputs.
 *   dV = P^T dO,  dP = dO V^T,  D_i = rowsum(dO * O)_i = sum_j P_ij dP_ij,
 *   dS = P * (dP - D),  dQ = scale * dS K,  dK = scale * dS^T Q.
 */
export function attentionReferenceBackward64(
  dout: Tensor,
  q: Tensor,
  k: Tensor,
  v: Tensor,
  out: Tensor,
  lse: Float32Array,
  opts?: AttentionOptions,
): ReferenceGrads64 {
  const shape = validateBackward(dout, q, k, v, out, lse, opts);
  const { batch: B, seqlenQ: Nq, seqlenK: Nk, nheadsQ: Hq, nheadsK: Hk, headDim: D } = shape;
  const scale = resolveOptions(opts, D).softmaxScale;
  const qf = toFloat32(q);
  const kf = toFloat32(k);
  const vf = toFloat32(v);
  const dof = toFloat32(dout);
  const dq = new Float64Array(B * Nq * Hq * D);
  const dk = new Float64Array(B * Nk * Hk * D);
  const dv = new Float64Array(B * Nk * Hk * D);
  const dP = new Float64Array(Nk);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < Hq; h++) {
      const hk = Math.floor(h / (Hq / Hk));
      const { P } = scoresAndProbs(qf, kf, shape, b, h, opts);
      for (let i = 0; i < Nq; i++) {
        const qo = rowOffset(b, i, h, Nq, Hq, D);
        // dP_ij = dO_i . V_j and Di = sum_j P_ij dP_ij (= rowsum(dO * O) in exact arithmetic)
        let Di = 0;
        for (let j = 0; j < Nk; j++) {
          const p = P[i * Nk + j]!;
          if (p === 0) {
            dP[j] = 0;
            continue;
          }
          const vo = rowOffset(b, j, hk, Nk, Hk, D);
          let dot = 0;
          for (let d = 0; d < D; d++) dot += dof[qo + d]! * vf[vo + d]!;
          dP[j] = dot;
          Di += p * dot;
        }
        for (let j = 0; j < Nk; j++) {
          const p = P[i * Nk + j]!;
          if (p === 0) continue;
          const ko = rowOffset(b, j, hk, Nk, Hk, D);
          const dS = p * (dP[j]! - Di);
          for (let d = 0; d < D; d++) {
            dv[ko + d]! += p * dof[qo + d]!;
            dq[qo + d]! += scale * dS * kf[ko + d]!;
            dk[ko + d]! += scale * dS * qf[qo + d]!;
          }
        }
      }
    }
  }
  return { dq, dk, dv };
}

/** Reference backward: float32 tensors dq (B, Nq, Hq, D), dk and dv (B, Nk, Hk, D). */
export function attentionReferenceBackward(
  dout: Tensor,
  q: Tensor,
  k: Tensor,
  v: Tensor,
  out: Tensor,
  lse: Float32Array,
  opts?: AttentionOptions,
): AttentionGradients {
  const g = attentionReferenceBackward64(dout, q, k, v, out, lse, opts);
  return {
    dq: fromFloat32(Float32Array.from(g.dq), q.shape, 'float32'),
    dk: fromFloat32(Float32Array.from(g.dk), k.shape, 'float32'),
    dv: fromFloat32(Float32Array.from(g.dv), k.shape, 'float32'),
  };
}
