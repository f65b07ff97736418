/**
 * Float64 LayerNorm over the last dim (the semantics of `Ops.layernormForward` / `layernormBackward`),
 * eps = 1e-5 as GPT-2 (the contract's value; llm.c uses the same).
 */

export const LAYERNORM_EPS = 1e-5;

/** out (N, C) = (inp - mean) * rstd * w + b; mean (N), rstd = 1 / sqrt(var + eps) (N). */
export function layernormForwardRef(
  out: Float64Array, // (N, C)
  mean: Float64Array, // (N)
  rstd: Float64Array, // (N)
  inp: ArrayLike<number>, // (N, C)
  w: ArrayLike<number>, // (C)
  b: ArrayLike<number>, // (C)
  N: number,
  C: number,
): void {
  for (let i = 0; i < N; i++) {
    const o = i * C;
    let m = 0;
    for (let c = 0; c < C; c++) m += inp[o + c]!;
    m /= C;
    let v = 0;
    for (let c = 0; c < C; c++) v += (inp[o + c]! - m) ** 2;
    v /= C;
    const s = 1 / Math.sqrt(v + LAYERNORM_EPS);
    for (let c = 0; c < C; c++) out[o + c] = (inp[o + c]! - m) * s * w[c]! + b[c]!;
    mean[i] = m;
    rstd[i] = s;
  }
}

/**
 * With xhat = (x - mean) rstd and dnorm = dout * w, accumulating:
 *   dinp += rstd (dnorm - mean_c(dnorm) - xhat mean_c(dnorm xhat)),  dw += sum_i dout xhat,  db += sum_i dout.
 * mean and rstd are the forward's (read, not recomputed).
 */
export function layernormBackwardRef(
  dinp: Float64Array, // (N, C), accumulated
  dw: Float64Array, // (C), accumulated
  db: Float64Array, // (C), accumulated
  dout: ArrayLike<number>, // (N, C)
  inp: ArrayLike<number>, // (N, C)
  w: ArrayLike<number>, // (C)
  mean: ArrayLike<number>, // (N)
  rstd: ArrayLike<number>, // (N)
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
      db[c] = db[c]! + g;
      dw[c] = dw[c]! + g * xhat;
      dinp[o + c] = dinp[o + c]! + s * (g * w[c]! - dnormMean - xhat * dnormXhatMean);
    }
  }
}
