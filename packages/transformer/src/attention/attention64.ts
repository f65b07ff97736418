/**
 * Causal attention in float64 for the gradient checks (core's AttentionBackend is float32-only).
 * Materialises P per (b, h) row; small sizes only. Checked by finite differences and against core's
 * float64 oracle in attention64.test.ts.
 */
import type { FloatArray } from '../ops/ops.js';
import type { CausalAttention } from './causal-attention.js';

export class Attention64 implements CausalAttention {
  readonly name = 'attention64';

  async forward(q: FloatArray, k: FloatArray, v: FloatArray, out: FloatArray, B: number, T: number, H: number, D: number): Promise<FloatArray> {
    const scale = 1 / Math.sqrt(D);
    const lse = new Float64Array(B * H * T); // (B, H, T)
    const s = new Float64Array(T);
    for (let b = 0; b < B; b++) {
      for (let h = 0; h < H; h++) {
        for (let i = 0; i < T; i++) {
          const qo = ((b * T + i) * H + h) * D;
          let m = -Infinity;
          for (let j = 0; j <= i; j++) {
            const ko = ((b * T + j) * H + h) * D;
            let dot = 0;
            for (let d = 0; d < D; d++) dot += q[qo + d]! * k[ko + d]!;
            s[j] = dot * scale;
            if (s[j]! > m) m = s[j]!;
          }
          let l = 0;
          for (let j = 0; j <= i; j++) l += Math.exp(s[j]! - m);
          const L = m + Math.log(l);
          lse[(b * H + h) * T + i] = L;
          for (let d = 0; d < D; d++) out[qo + d] = 0;
          for (let j = 0; j <= i; j++) {
            const p = Math.exp(s[j]! - L);
            const vo = ((b * T + j) * H + h) * D;
            for (let d = 0; d < D; d++) out[qo + d] += p * v[vo + d]!;
          }
        }
      }
    }
    return lse;
  }

  /** dV = P^T dO, dP = dO V^T, Di = rowsum(dO * O), dS = P (dP - Di), dQ = scale dS K, dK = scale dS^T Q. */
  async backward(
    dout: FloatArray, q: FloatArray, k: FloatArray, v: FloatArray, out: FloatArray, lse: FloatArray,
    dq: FloatArray, dk: FloatArray, dv: FloatArray, B: number, T: number, H: number, D: number,
  ): Promise<void> {
    const scale = 1 / Math.sqrt(D);
    dq.fill(0);
    dk.fill(0);
    dv.fill(0);
    for (let b = 0; b < B; b++) {
      for (let h = 0; h < H; h++) {
        for (let i = 0; i < T; i++) {
          const qo = ((b * T + i) * H + h) * D;
          const L = lse[(b * H + h) * T + i]!;
          let Di = 0;
          for (let d = 0; d < D; d++) Di += dout[qo + d]! * out[qo + d]!;
          for (let j = 0; j <= i; j++) {
            const ko = ((b * T + j) * H + h) * D;
            let dot = 0;
            for (let d = 0; d < D; d++) dot += q[qo + d]! * k[ko + d]!;
            const p = Math.exp(dot * scale - L);
            let dp = 0;
            for (let d = 0; d < D; d++) dp += dout[qo + d]! * v[ko + d]!;
            const ds = p * (dp - Di);
            for (let d = 0; d < D; d++) {
              dv[ko + d] += p * dout[qo + d]!;
              dq[qo + d] += scale * ds * k[ko + d]!;
              dk[ko + d] += scale * ds * q[qo + d]!;
            }
          }
        }
      }
    }
  }

  dispose(): void {}
}
