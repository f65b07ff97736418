/**
 * The naive baselines of the ops suite: each op written the plain way in a compute dtype c, the
 * baseline of the repo's one tolerance rule (core's testing/tolerance.ts):
 *
 *   err_backend <= 2 * err_naive + u(c) max|X| + u_acc max|X|_abs
 *
 * "Naive in c" means: inputs rounded to c; every sum accumulates in float32 (float64 when c = float64),
 * one rounding per multiply-add as an FMA would; every elementwise function (exp, log, tanh, sqrt) is
 * evaluated on c values in float32 (float64) and its result rounded to c; results rounded to c. This is
 * what PyTorch's unfused ops do on a GPU in that dtype, and what a backend's kernels do in another order.
 *
 * Alongside each output X it returns max |X|_abs: X computed with every term replaced by its absolute
 * value, so that u_acc |X|_abs is one rounding at the scale of the terms that produce X, cancellation
 * included (|fl(sum a) - sum a| <= gamma_n sum |a|). For the sums (matmul, biasBackward, embedding, add,
 * sum, sumSquares) that is literally the sum of |terms|. For the nonlinear ops it is the first-order
 * effect of one relative rounding of every intermediate, derived per op below (each derivation names the
 * intermediate whose rounding it propagates). As for attention, one u suffices: the 2x naive term
 * already carries the accumulation growth; the floor covers a naive result that is exact by luck.
 */
import { roundToDType, type ComputeDTypeLike } from './dtypes.js';
import { GELU_CUBIC, GELU_SCALE, LAYERNORM_EPS, type AdamWStep } from '@flashattn/core';

/** Rounding to the compute dtype c and to its accumulation dtype. */
export interface Precision {
  readonly c: ComputeDTypeLike;
  /** x rounded to c. */
  rc(x: number): number;
  /** x rounded to the accumulation dtype (float32, or float64 for c = float64). */
  ra(x: number): number;
}

export function precisionOf(c: ComputeDTypeLike): Precision {
  const ra = c === 'float64' ? (x: number) => x : Math.fround;
  return { c, rc: (x) => roundToDType(x, c), ra };
}

/** A naive result: every output (in c) and max |X|_abs of each. */
export interface NaiveOutputs {
  values: Record<string, Float64Array>;
  abs: Record<string, number>;
  /**
   * The most roundings any output element goes through in float64 (terms of its longest sum, or
   * chained elementwise operations): n in the bound gamma_n |X|_abs of the float64 ORACLE's own
   * error, which matters only when the backend computes in float64 too (run.ts).
   */
  terms: number;
}

const maxOf = (a: ArrayLike<number>): number => {
  let m = 0;
  for (let i = 0; i < a.length; i++) if (Math.abs(a[i]!) > m) m = Math.abs(a[i]!);
  return m;
};

const inC = (p: Precision, a: ArrayLike<number>): Float64Array => Float64Array.from(a, p.rc);

/** out (M, N) (+)= op(A) op(B) [+ bias]: dot products accumulated in ra, plus the initial value. */
export function naiveMatmul(
  p: Precision,
  out0: ArrayLike<number>, // (M, N), read when accumulate
  a0: ArrayLike<number>,
  b0: ArrayLike<number>,
  M: number,
  N: number,
  K: number,
  o: { transA?: boolean; transB?: boolean; accumulate?: boolean; bias?: ArrayLike<number> | null },
): NaiveOutputs {
  const a = inC(p, a0);
  const b = inC(p, b0);
  const bias = o.bias ? inC(p, o.bias) : null;
  const init = o.accumulate ? inC(p, out0) : null;
  const out = new Float64Array(M * N);
  let abs = 0;
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      let acc = 0;
      let acAbs = 0;
      for (let k = 0; k < K; k++) {
        const t =
          (o.transA ? a[k * M + i]! : a[i * K + k]!) * (o.transB ? b[j * K + k]! : b[k * N + j]!);
        acc = p.ra(acc + t);
        acAbs += Math.abs(t);
      }
      const add = bias ? bias[j]! : init ? init[i * N + j]! : 0;
      out[i * N + j] = p.rc(p.ra(acc + add));
      abs = Math.max(abs, acAbs + Math.abs(add));
    }
  }
  return { values: { out }, abs: { out: abs }, terms: K + 1 };
}

/** dbias (N) += column sums of dout (M, N). */
export function naiveBiasBackward(
  p: Precision,
  dbias0: ArrayLike<number>,
  dout0: ArrayLike<number>,
  M: number,
  N: number,
): NaiveOutputs {
  const dout = inC(p, dout0);
  const db = inC(p, dbias0);
  let abs = 0;
  for (let j = 0; j < N; j++) {
    let acc = 0;
    let acAbs = Math.abs(db[j]!);
    for (let i = 0; i < M; i++) {
      acc = p.ra(acc + dout[i * N + j]!);
      acAbs += Math.abs(dout[i * N + j]!);
    }
    db[j] = p.rc(p.ra(db[j]! + acc));
    abs = Math.max(abs, acAbs);
  }
  return { values: { dbias: db }, abs: { dbias: abs }, terms: M + 1 };
}

export function naiveEmbeddingForward(
  p: Precision,
  tokens: ArrayLike<number>,
  wte0: ArrayLike<number>,
  wpe0: ArrayLike<number>,
  B: number,
  T: number,
  C: number,
): NaiveOutputs {
  const wte = inC(p, wte0);
  const wpe = inC(p, wpe0);
  const out = new Float64Array(B * T * C);
  let abs = 0;
  for (let bt = 0; bt < B * T; bt++) {
    const tok = tokens[bt]!;
    const t = bt % T;
    for (let c = 0; c < C; c++) {
      out[bt * C + c] = p.rc(p.ra(wte[tok * C + c]! + wpe[t * C + c]!));
      abs = Math.max(abs, Math.abs(wte[tok * C + c]!) + Math.abs(wpe[t * C + c]!));
    }
  }
  return { values: { out }, abs: { out: abs }, terms: 2 };
}

/** dwte[tok] += dout, dwpe[t] += dout, summed in ra in (b, t) order, then rounded to c. */
export function naiveEmbeddingBackward(
  p: Precision,
  dwte0: ArrayLike<number>,
  dwpe0: ArrayLike<number>,
  dout0: ArrayLike<number>,
  tokens: ArrayLike<number>,
  B: number,
  T: number,
  C: number,
): NaiveOutputs {
  const dout = inC(p, dout0);
  const dwte = inC(p, dwte0);
  const dwpe = inC(p, dwpe0);
  const teAbs = Float64Array.from(dwte, Math.abs);
  const peAbs = Float64Array.from(dwpe, Math.abs);
  for (let bt = 0; bt < B * T; bt++) {
    const tok = tokens[bt]!;
    const t = bt % T;
    for (let c = 0; c < C; c++) {
      const g = dout[bt * C + c]!;
      dwte[tok * C + c] = p.ra(dwte[tok * C + c]! + g);
      dwpe[t * C + c] = p.ra(dwpe[t * C + c]! + g);
      teAbs[tok * C + c]! += Math.abs(g);
      peAbs[t * C + c]! += Math.abs(g);
    }
  }
  return {
    values: { dwte: dwte.map(p.rc), dwpe: dwpe.map(p.rc) },
    abs: { dwte: maxOf(teAbs), dwpe: maxOf(peAbs) },
    terms: B * T + 1,
  };
}

/**
 * Per row: mean m = sum x / C and var = sum (x - m)^2 / C accumulated in ra; rstd = 1 / sqrt(var + eps)
 * in ra, rounded to c; out = (x - m) rstd w + b in c.
 * Magnitudes (first order in one relative rounding u of each intermediate):
 *  - mean: |m|_abs = mean_c |x| (the sum's terms);
 *  - rstd: an error e_c in (x_c - m), |e_c| <= u (|x_c| + |m|), moves var by 2 mean_c((x - m) e) and
 *    rstd by -rstd/2 of that relative to var + eps, so |rstd|_abs = rstd (1 + kappa) with
 *    kappa = rstd^2 mean_c(|x_c - m| (|x_c| + |m|)) (the 1 is rstd's own rounding);
 *  - xhat = (x - m) rstd: |xhat|_abs = |xhat| (1 + kappa) + rstd (|x| + |m|);
 *  - out: |out|_abs = |w| |xhat|_abs + |b|.
 */
export function naiveLayernormForward(
  p: Precision,
  inp0: ArrayLike<number>,
  w0: ArrayLike<number>,
  b0: ArrayLike<number>,
  N: number,
  C: number,
): NaiveOutputs & { xhatAbs: Float64Array; kappa: Float64Array } {
  const inp = inC(p, inp0);
  const w = inC(p, w0);
  const b = inC(p, b0);
  const out = new Float64Array(N * C);
  const mean = new Float64Array(N);
  const rstd = new Float64Array(N);
  const xhatAbs = new Float64Array(N * C);
  const kappa = new Float64Array(N);
  let outAbs = 0;
  let meanAbs = 0;
  let rstdAbs = 0;
  for (let i = 0; i < N; i++) {
    const o = i * C;
    let s = 0;
    let sAbs = 0;
    for (let c = 0; c < C; c++) {
      s = p.ra(s + inp[o + c]!);
      sAbs += Math.abs(inp[o + c]!);
    }
    const m = p.ra(s / C);
    let v = 0;
    for (let c = 0; c < C; c++) {
      const d = p.ra(inp[o + c]! - m);
      v = p.ra(v + d * d);
    }
    const r = p.ra(1 / p.ra(Math.sqrt(p.ra(p.ra(v / C) + LAYERNORM_EPS))));
    mean[i] = p.rc(m);
    rstd[i] = p.rc(r);
    // exact m, r for the magnitudes
    let mx = 0;
    for (let c = 0; c < C; c++) mx += inp0[o + c]!;
    mx /= C;
    let vx = 0;
    let kap = 0;
    for (let c = 0; c < C; c++) {
      vx += (inp0[o + c]! - mx) ** 2;
      kap += Math.abs(inp0[o + c]! - mx) * (Math.abs(inp0[o + c]!) + Math.abs(mx));
    }
    const rx = 1 / Math.sqrt(vx / C + LAYERNORM_EPS);
    kappa[i] = (rx * rx * kap) / C;
    meanAbs = Math.max(meanAbs, sAbs / C);
    rstdAbs = Math.max(rstdAbs, rx * (1 + kappa[i]!));
    for (let c = 0; c < C; c++) {
      const xh = p.rc(p.ra(p.ra(inp[o + c]! - m) * r));
      out[o + c] = p.rc(p.ra(xh * w[c]! + b[c]!));
      const xa =
        Math.abs((inp0[o + c]! - mx) * rx) * (1 + kappa[i]!) +
        rx * (Math.abs(inp0[o + c]!) + Math.abs(mx));
      xhatAbs[o + c] = xa;
      outAbs = Math.max(outAbs, Math.abs(w0[c]!) * xa + Math.abs(b0[c]!));
    }
  }
  return {
    values: { out, mean, rstd },
    abs: { out: outAbs, mean: meanAbs, rstd: rstdAbs },
    terms: 2 * C + 8,
    xhatAbs,
    kappa,
  };
}

/**
 * dinp (+)= rstd (g w - mean_c(g w) - xhat mean_c(g w xhat)), dw += sum_i g xhat, db += sum_i g, with
 * mean and rstd the forward's (inputs). Sums in ra, results rounded to c.
 * Magnitudes: xhat = (x - mean) rstd is recomputed, |xhat|_abs = |xhat| + rstd (|x| + |mean|) (the
 * rounding of x - mean, which cancels); then
 *  |dinp|_abs = |dinp0| + rstd (|g w| + mean_c |g w| + |xhat|_abs mean_c(|g w| |xhat|_abs)),
 *  |dw|_abs = |dw0| + sum_i |g| |xhat|_abs,  |db|_abs = |db0| + sum_i |g|.
 */
export function naiveLayernormBackward(
  p: Precision,
  dinp0: ArrayLike<number>,
  dw0: ArrayLike<number>,
  db0: ArrayLike<number>,
  dout0: ArrayLike<number>,
  inp0: ArrayLike<number>,
  w0: ArrayLike<number>,
  mean0: ArrayLike<number>,
  rstd0: ArrayLike<number>,
  N: number,
  C: number,
): NaiveOutputs {
  const [dinp, dw, db, dout, inp, w, mean, rstd] = [
    dinp0,
    dw0,
    db0,
    dout0,
    inp0,
    w0,
    mean0,
    rstd0,
  ].map((a) => inC(p, a)) as [
    Float64Array,
    Float64Array,
    Float64Array,
    Float64Array,
    Float64Array,
    Float64Array,
    Float64Array,
    Float64Array,
  ];
  const dwAcc = Float64Array.from(dw);
  const dbAcc = Float64Array.from(db);
  const dwAbs = Float64Array.from(dw, Math.abs);
  const dbAbs = Float64Array.from(db, Math.abs);
  let dinpAbs = 0;
  const xa = new Float64Array(C);
  for (let i = 0; i < N; i++) {
    const o = i * C;
    const m = mean[i]!;
    const s = rstd[i]!;
    let gm = 0;
    let gxm = 0;
    let gmAbs = 0;
    let gxmAbs = 0;
    for (let c = 0; c < C; c++) {
      const xh = p.ra(p.ra(inp[o + c]! - m) * s);
      const gw = p.ra(dout[o + c]! * w[c]!);
      gm = p.ra(gm + gw);
      gxm = p.ra(gxm + gw * xh);
      xa[c] = Math.abs(xh) + s * (Math.abs(inp[o + c]!) + Math.abs(m));
      gmAbs += Math.abs(gw);
      gxmAbs += Math.abs(gw) * xa[c]!;
    }
    gm = p.ra(gm / C);
    gxm = p.ra(gxm / C);
    for (let c = 0; c < C; c++) {
      const xh = p.ra(p.ra(inp[o + c]! - m) * s);
      const g = dout[o + c]!;
      const gw = p.ra(g * w[c]!);
      const d = p.ra(s * p.ra(p.ra(gw - gm) - p.ra(xh * gxm)));
      dinp[o + c] = p.rc(p.ra(dinp[o + c]! + d));
      dinpAbs = Math.max(
        dinpAbs,
        Math.abs(dinp0[o + c]!) + s * (Math.abs(gw) + gmAbs / C + xa[c]! * (gxmAbs / C)),
      );
      dwAcc[c] = p.ra(dwAcc[c]! + g * xh);
      dbAcc[c] = p.ra(dbAcc[c]! + g);
      dwAbs[c]! += Math.abs(g) * xa[c]!;
      dbAbs[c]! += Math.abs(g);
    }
  }
  return {
    values: { dinp, dw: dwAcc.map(p.rc), db: dbAcc.map(p.rc) },
    abs: { dinp: dinpAbs, dw: maxOf(dwAbs), db: maxOf(dbAbs) },
    terms: Math.max(C, N) + 8,
  };
}

/**
 * GELU_tanh in c: z = k (x + a x^3), t = tanh(z), out = 0.5 x (1 + t).
 * Magnitudes: z carries a relative rounding of its terms, |dz| <= u k (|x| + a |x|^3), which moves t by
 * sech^2(z) |dz|; 1 + t cancels for x << 0. So |out|_abs = 0.5 |x| (1 + |t| + sech^2(z) k (|x| + a|x|^3)).
 */
export function naiveGeluForward(p: Precision, inp0: ArrayLike<number>, n: number): NaiveOutputs {
  const inp = inC(p, inp0);
  const out = new Float64Array(n);
  let abs = 0;
  for (let i = 0; i < n; i++) {
    const x = inp[i]!;
    const z = p.ra(GELU_SCALE * p.ra(x + p.ra(GELU_CUBIC * x * x * x)));
    const t = p.ra(Math.tanh(z));
    out[i] = p.rc(p.ra(0.5 * x * p.ra(1 + t)));
    const sech2 = 1 - t * t;
    const ax = Math.abs(x);
    abs = Math.max(
      abs,
      0.5 * ax * (1 + Math.abs(t) + sech2 * GELU_SCALE * (ax + GELU_CUBIC * ax ** 3)),
    );
  }
  return { values: { out }, abs: { out: abs }, terms: 8 };
}

/**
 * dinp = GELU'(x) dout with GELU'(x) = 0.5 (1 + t) + 0.5 x sech^2(z) k (1 + 3 a x^2) (overwrites dinp).
 * Magnitudes: the terms |0.5 (1 + t)| + |0.5 x sech^2 k (1 + 3 a x^2)|, plus the effect of z's rounding
 * |dz| = u k (|x| + a |x|^3) through d GELU'/dz = 0.5 sech^2 - x sech^2 t k (1 + 3 a x^2), all times |dout|.
 */
export function naiveGeluBackward(
  p: Precision,
  inp0: ArrayLike<number>,
  dout0: ArrayLike<number>,
  n: number,
): NaiveOutputs {
  const inp = inC(p, inp0);
  const dout = inC(p, dout0);
  const dinp = new Float64Array(n);
  let abs = 0;
  for (let i = 0; i < n; i++) {
    const x = inp[i]!;
    const z = p.ra(GELU_SCALE * p.ra(x + p.ra(GELU_CUBIC * x * x * x)));
    const t = p.ra(Math.tanh(z));
    const sech2 = p.ra(1 - p.ra(t * t));
    const poly = p.ra(GELU_SCALE * p.ra(1 + p.ra(3 * GELU_CUBIC * x * x)));
    const local = p.ra(p.ra(0.5 * p.ra(1 + t)) + p.ra(0.5 * x * p.ra(sech2 * poly)));
    dinp[i] = p.rc(p.ra(local * dout[i]!));
    const ax = Math.abs(x);
    const dz = GELU_SCALE * (ax + GELU_CUBIC * ax ** 3);
    const terms = 0.5 * (1 + Math.abs(t)) + 0.5 * ax * sech2 * Math.abs(poly);
    const viaZ = (0.5 * sech2 + ax * sech2 * Math.abs(t) * Math.abs(poly)) * dz;
    abs = Math.max(abs, (terms + viaZ) * Math.abs(dout[i]!));
  }
  return { values: { dinp }, abs: { dinp: abs }, terms: 12 };
}

export function naiveAdd(
  p: Precision,
  a0: ArrayLike<number>,
  b0: ArrayLike<number>,
  n: number,
): NaiveOutputs {
  const out = new Float64Array(n);
  let abs = 0;
  for (let i = 0; i < n; i++) {
    const a = p.rc(a0[i]!);
    const b = p.rc(b0[i]!);
    out[i] = p.rc(p.ra(a + b));
    abs = Math.max(abs, Math.abs(a) + Math.abs(b));
  }
  return { values: { out }, abs: { out: abs }, terms: 1 };
}

export function naiveScale(p: Precision, x0: ArrayLike<number>, s: number): NaiveOutputs {
  const x = Float64Array.from(x0, (v) => p.rc(p.ra(p.rc(v) * s)));
  return { values: { x }, abs: { x: maxOf(x0) * Math.abs(s) }, terms: 1 };
}

/** sum and sum of squares, accumulated sequentially in ra (the scalars come back as host numbers). */
export function naiveSum(p: Precision, x0: ArrayLike<number>, squares: boolean): NaiveOutputs {
  let s = 0;
  let abs = 0;
  for (let i = 0; i < x0.length; i++) {
    const x = p.rc(x0[i]!);
    const t = squares ? x * x : x;
    s = p.ra(s + t);
    abs += Math.abs(t);
  }
  return { values: { result: Float64Array.of(s) }, abs: { result: abs }, terms: x0.length };
}

/**
 * Per row: m = max, l = sum exp(x - m) in ra, lse = m + log(l), loss = lse - x_t (0 for t < 0);
 * dlogits = (exp(x - lse) - onehot) * scale (0 rows for t < 0).
 * Magnitudes: |loss|_abs = |m| + |log l| + 1 + |x_t| (an error in any x_j moves lse by at most that
 * error, and a relative error u in l moves log l by u: one u of magnitude 1; as the attention lse);
 * |dlogits|_abs = |scale| (p (1 + |x| + |lse|) + onehot) (p = exp(x - lse) with x - lse rounded).
 */
export function naiveSoftmaxCrossEntropy(
  p: Precision,
  logits0: ArrayLike<number>,
  targets: ArrayLike<number>,
  N: number,
  V: number,
  scale: number,
  withGrad: boolean,
  Vp = V, // row stride; the padding columns [V, Vp) are not read and their gradient is 0
): NaiveOutputs {
  const x = inC(p, logits0);
  const losses = new Float64Array(N);
  const dlogits = new Float64Array(withGrad ? N * Vp : 0);
  let lossAbs = 0;
  let dAbs = 0;
  for (let i = 0; i < N; i++) {
    const o = i * Vp;
    const t = targets[i]!;
    if (t < 0) continue; // ignored: loss 0, zero gradient row
    let m = -Infinity;
    for (let j = 0; j < V; j++) if (x[o + j]! > m) m = x[o + j]!;
    let l = 0;
    for (let j = 0; j < V; j++) l = p.ra(l + p.ra(Math.exp(p.ra(x[o + j]! - m))));
    const lse = p.ra(m + p.ra(Math.log(l)));
    losses[i] = p.rc(p.ra(lse - x[o + t]!));
    lossAbs = Math.max(lossAbs, Math.abs(m) + Math.abs(Math.log(l)) + 1 + Math.abs(x[o + t]!));
    if (!withGrad) continue;
    for (let j = 0; j < V; j++) {
      const pj = p.ra(Math.exp(p.ra(x[o + j]! - lse)));
      dlogits[o + j] = p.rc(p.ra(p.ra(pj - (j === t ? 1 : 0)) * scale));
      const hot = j === t ? 1 : 0;
      dAbs = Math.max(
        dAbs,
        Math.abs(scale) * (pj * (1 + Math.abs(x[o + j]!) + Math.abs(lse)) + hot),
      );
    }
  }
  return {
    values: withGrad ? { losses, dlogits } : { losses },
    abs: withGrad ? { losses: lossAbs, dlogits: dAbs } : { losses: lossAbs },
    terms: V + 4,
  };
}

/**
 * AdamW in c (params, m, v are float32 or float64 master copies; grads may be 16-bit).
 * Magnitudes: |m|_abs = b1 |m| + (1 - b1) |g|; |v|_abs = b2 v + (1 - b2) g^2;
 * |p|_abs = |p| + lr (|mhat| / (sqrt(vhat) + eps) (1 + 1) + wd |p|): the step's terms, with the
 * quotient's relative error doubled for the sqrt and the division it goes through.
 */
export function naiveAdamW(
  p: Precision,
  params0: ArrayLike<number>,
  grads0: ArrayLike<number>,
  m0: ArrayLike<number>,
  v0: ArrayLike<number>,
  h: AdamWStep,
): NaiveOutputs {
  const n = params0.length;
  const params = inC(p, params0);
  const m = inC(p, m0);
  const v = inC(p, v0);
  const g = inC(p, grads0);
  const c1 = p.ra(1 - h.beta1 ** h.t);
  const c2 = p.ra(1 - h.beta2 ** h.t);
  let pAbs = 0;
  let mAbs = 0;
  let vAbs = 0;
  for (let i = 0; i < n; i++) {
    const mi = p.ra(p.ra(h.beta1 * m[i]!) + p.ra((1 - h.beta1) * g[i]!));
    const vi = p.ra(p.ra(h.beta2 * v[i]!) + p.ra((1 - h.beta2) * p.ra(g[i]! * g[i]!)));
    mAbs = Math.max(mAbs, h.beta1 * Math.abs(m[i]!) + (1 - h.beta1) * Math.abs(g[i]!));
    vAbs = Math.max(vAbs, h.beta2 * v[i]! + (1 - h.beta2) * g[i]! * g[i]!);
    const mhat = p.ra(mi / c1);
    const vhat = p.ra(vi / c2);
    const q = p.ra(mhat / p.ra(p.ra(Math.sqrt(vhat)) + h.eps));
    const pi = params[i]!;
    params[i] = p.rc(p.ra(pi - p.ra(h.lr * p.ra(q + p.ra(h.weightDecay * pi)))));
    m[i] = p.rc(mi);
    v[i] = p.rc(vi);
    pAbs = Math.max(pAbs, Math.abs(pi) + h.lr * (2 * Math.abs(q) + h.weightDecay * Math.abs(pi)));
  }
  return { values: { params, m, v }, abs: { params: pAbs, m: mAbs, v: vAbs }, terms: 10 };
}
