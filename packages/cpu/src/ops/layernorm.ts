/** LayerNorm over the last dim, eps = 1e-5 (GPT-2's). llm.c layernorm_forward / layernorm_backward. */
import type { FloatArray } from '@flashattn/core';

export const LN_EPS = 1e-5;

export function layernormForward(
  out: FloatArray, // (N, C)
  mean: FloatArray, // (N)
  rstd: FloatArray, // (N)
  inp: FloatArray, // (N, C)
  w: FloatArray, // (C)
  b: FloatArray, // (C)
  N: number,
  C: number,
): void {
  for (let i = 0; i < N; i++) {
    const o = i * C;
    let m = 0;
    for (let c = 0; c < C; c++) m += inp[o + c]!;
    m /= C;
    let v = 0;
    for (let c = 0; c < C; c++) {
      const d = inp[o + c]! - m;
      v += d * d;
    }
    v /= C;
    const s = 1 / Math.sqrt(v + LN_EPS);
    for (let c = 0; c < C; c++) out[o + c] = (inp[o + c]! - m) * s * w[c]! + b[c]!;
    mean[i] = m;
    rstd[i] = s;
  }
}

/**
 * With xhat = (x - mean) * rstd and dnorm = dout * w:
 *   dx = rstd * (dnorm - mean(dnorm) - xhat * mean(dnorm * xhat)),  dw += dout * xhat,  db += dout.
 */
export function layernormBackward(
  dinp: FloatArray, // (N, C), accumulated into
  dw: FloatArray, // (C), accumulated into
  db: FloatArray, // (C), accumulated into
  dout: FloatArray, // (N, C)
  inp: FloatArray, // (N, C)
  w: FloatArray, // (C)
  mean: FloatArray, // (N)
  rstd: FloatArray, // (N)
  N: number,
  C: number,
): void {
  for (let i = 0; i < N; i++) {
    const o = i * C;
    const m = mean[i]!;
    const s = rstd[i]!;
    let dnormMean = 0;
    let dnormXhatMean = 0;
    for (let c = 0; c < C; c++) {
      const xhat = (inp[o + c]! - m) * s;
      const dnorm = dout[o + c]! * w[c]!;
      dnormMean += dnorm;
      dnormXhatMean += dnorm * xhat;
    }
    dnormMean /= C;
    dnormXhatMean /= C;
    for (let c = 0; c < C; c++) {
      const xhat = (inp[o + c]! - m) * s;
      const g = dout[o + c]!;
      db[c] += g;
      dw[c] += g * xhat;
      dinp[o + c] += s * (g * w[c]! - dnormMean - xhat * dnormXhatMean);
    }
  }
}
