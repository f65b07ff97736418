/**
 * One problem per op: the buffers it takes (host data already representable in each buffer's dtype),
 * the call, the float64 oracle (core's ops-reference functions on the stored values) and the naive
 * baseline (naive.ts). Cases (cases.ts) pick sizes, magnitudes, options and aliasing; the runner
 * (run.ts) places the buffers, calls the backend and applies the rule.
 */
import {
  addRef,
  adamwRef,
  adamwUpdateRef,
  clipFactor,
  hasDeviceStep,
  biasBackwardRef,
  embeddingBackwardRef,
  embeddingForwardRef,
  geluBackwardRef,
  geluForwardRef,
  layernormBackwardRef,
  layernormForwardRef,
  matmulRef,
  scaleRef,
  softmaxCrossEntropyRef,
  sumRef,
  sumSquaresRef,
  type AdamWStep,
  type BufferDType,
  type Ops,
  type Rng,
} from '@flashattn/core';
import { roundToDType, type ComputeDTypeLike } from './dtypes.js';
import {
  naiveAdamW,
  naiveAdd,
  naiveBiasBackward,
  naiveEmbeddingBackward,
  naiveEmbeddingForward,
  naiveGeluBackward,
  naiveGeluForward,
  naiveLayernormBackward,
  naiveLayernormForward,
  naiveMatmul,
  naiveScale,
  naiveSoftmaxCrossEntropy,
  naiveSum,
  type NaiveOutputs,
  type Precision,
} from './naive.js';

export type OpName =
  | 'matmul'
  | 'biasBackward'
  | 'embeddingForward'
  | 'embeddingBackward'
  | 'layernormForward'
  | 'layernormBackward'
  | 'geluForward'
  | 'geluBackward'
  | 'add'
  | 'softmaxCrossEntropy'
  | 'sum'
  | 'sumSquares'
  | 'scale'
  | 'adamw'
  | 'sumTo'
  | 'adamwFrom';

export const OP_NAMES: readonly OpName[] = [
  'matmul',
  'biasBackward',
  'embeddingForward',
  'embeddingBackward',
  'layernormForward',
  'layernormBackward',
  'geluForward',
  'geluBackward',
  'add',
  'softmaxCrossEntropy',
  'sum',
  'sumSquares',
  'scale',
  'adamw',
  'sumTo',
  'adamwFrom',
];

/** The optional ops of core's DeviceStepOps: a backend without them skips their cases. */
export const DEVICE_STEP_OPS: ReadonlySet<OpName> = new Set(['sumTo', 'adamwFrom']);

export interface ProblemBuffer {
  /** Values, exactly representable in `dtype`. */
  data: Float64Array | Int32Array;
  dtype: BufferDType;
  /** Compared with the oracle after the call (an output, or an accumulated-into buffer). */
  output?: boolean;
}

export interface OpProblem {
  buffers: Record<string, ProblemBuffer>;
  /** The call on the backend's buffers (by name); sum/sumSquares return their scalar. */
  call<Buf>(ops: Ops<Buf>, b: Record<string, Buf>): void | Promise<void> | Promise<number>;
  /** Float64 results by output name ('result' for a scalar). */
  oracle(): Record<string, Float64Array>;
  naive(p: Precision): NaiveOutputs;
  /** The buffer dtype whose computeDType the naive runs in (default the case's dtype; AdamW: the master dtype). */
  computeOf?: ComputeDTypeLike;
}

/** Magnitude profile of a case's float inputs. */
export interface Magnitude {
  /** Standard deviation of the inputs (1 = ordinary). */
  std: number;
  /** Constant added to the op's main input (layernorm: large mean with O(std) spread, a cancellation test). */
  shift?: number;
}

export interface Draw {
  rng: Rng;
  /** The case's main float dtype (activations, weights, gradients). */
  dt: ComputeDTypeLike;
  mag: Magnitude;
}

/** The dtype of master copies and statistics (mean, rstd, losses, AdamW state): float32, or float64. */
export const wide = (dt: ComputeDTypeLike): 'float32' | 'float64' =>
  dt === 'float64' ? 'float64' : 'float32';

/** n values ~ N(shift, std^2) rounded to dt. */
function normal(
  d: Draw,
  n: number,
  dt: BufferDType = d.dt,
  std = d.mag.std,
  shift = 0,
): Float64Array {
  const f = new Float64Array(n);
  for (let i = 0; i < n; i++) f[i] = shift + d.rng.normal() * std;
  return dt === 'int32' ? f : f.map((x) => roundToDType(x, dt));
}

const F = (data: Float64Array, dtype: BufferDType, output = false): ProblemBuffer => ({
  data,
  dtype,
  output,
});
const copy = (a: Float64Array | Int32Array): Float64Array => Float64Array.from(a);

// ---- matmul

export interface MatmulSpec {
  M: number;
  N: number;
  K: number;
  transA?: boolean;
  transB?: boolean;
  accumulate?: boolean;
  bias?: boolean;
}

export function matmulProblem(d: Draw, s: MatmulSpec): OpProblem {
  const { M, N, K } = s;
  const out0 = normal(d, M * N);
  const a = normal(d, M * K);
  const b = normal(d, K * N);
  const bias = s.bias ? normal(d, N) : undefined;
  const buffers: Record<string, ProblemBuffer> = {
    out: F(out0, d.dt, true),
    a: F(a, d.dt),
    b: F(b, d.dt),
  };
  if (bias) buffers.bias = F(bias, d.dt);
  const o = { transA: !!s.transA, transB: !!s.transB, accumulate: !!s.accumulate };
  return {
    buffers,
    call: (ops, x) =>
      ops.matmul(x.out!, x.a!, x.b!, M, N, K, x.bias !== undefined ? { ...o, bias: x.bias } : o),
    oracle: () => {
      const out = copy(out0);
      matmulRef(out, a, b, M, N, K, { ...o, bias: bias ?? null });
      return { out };
    },
    naive: (p) => naiveMatmul(p, out0, a, b, M, N, K, { ...o, bias: bias ?? null }),
  };
}

export interface MatmulGeluSpec {
  M: number;
  N: number;
  K: number;
  transA?: boolean;
  transB?: boolean;
  /** 'gelu': out = GELU(op(A) op(B) [+ bias]) with the pre-activation in geluPre; 'dgelu': out = (op(A) op(B)) *
   * GELU'(dgeluPre). */
  kind: 'gelu' | 'dgelu';
  bias?: boolean;
}

/** |GELU_tanh'(x)| <= 1.13 for every x: how far an error in pre reaches out. */
const GELU_SLOPE = 1.13;

/** matmul with a GELU epilogue (GPT-2's MLP): judged against the float64 ops it fuses, and their naive chain. */
export function matmulGeluProblem(d: Draw, s: MatmulGeluSpec): OpProblem {
  const { M, N, K } = s;
  const a = normal(d, M * K);
  const b = normal(d, K * N);
  const bias = s.bias ? normal(d, N) : undefined;
  const pre = normal(d, M * N); // dgelu: the forward's pre-activation; gelu: overwritten
  const o = { transA: !!s.transA, transB: !!s.transB, accumulate: false };
  const buffers: Record<string, ProblemBuffer> = {
    out: F(normal(d, M * N), d.dt, true),
    a: F(a, d.dt),
    b: F(b, d.dt),
    pre: F(pre, d.dt, s.kind === 'gelu'),
  };
  if (bias) buffers.bias = F(bias, d.dt);
  return {
    buffers,
    call: (ops, x) =>
      ops.matmul(x.out!, x.a!, x.b!, M, N, K, {
        transA: o.transA,
        transB: o.transB,
        ...(x.bias !== undefined ? { bias: x.bias } : {}),
        ...(s.kind === 'gelu' ? { geluPre: x.pre! } : { dgeluPre: x.pre! }),
      }),
    oracle: (): Record<string, Float64Array> => {
      const t = new Float64Array(M * N);
      matmulRef(t, a, b, M, N, K, { ...o, bias: bias ?? null });
      const out = new Float64Array(M * N);
      if (s.kind === 'gelu') {
        geluForwardRef(out, t, M * N);
        return { out, pre: t };
      }
      geluBackwardRef(out, pre, t, M * N);
      return { out };
    },
    naive: (p) => {
      const mm = naiveMatmul(p, new Float64Array(M * N), a, b, M, N, K, {
        ...o,
        bias: bias ?? null,
      });
      const t = mm.values.out!;
      const g =
        s.kind === 'gelu' ? naiveGeluForward(p, t, M * N) : naiveGeluBackward(p, pre, t, M * N);
      const gv = s.kind === 'gelu' ? g.values.out! : g.values.dinp!;
      const ga = s.kind === 'gelu' ? g.abs.out! : g.abs.dinp!;
      const values: Record<string, Float64Array> = { out: gv };
      const abs: Record<string, number> = { out: Math.max(ga, GELU_SLOPE * mm.abs.out!) };
      if (s.kind === 'gelu') {
        values.pre = t;
        abs.pre = mm.abs.out!;
      }
      return { values, abs, terms: mm.terms + g.terms };
    },
  };
}

export function biasBackwardProblem(d: Draw, M: number, N: number): OpProblem {
  const dbias0 = normal(d, N);
  const dout = normal(d, M * N);
  return {
    buffers: { dbias: F(dbias0, d.dt, true), dout: F(dout, d.dt) },
    call: (ops, x) => ops.biasBackward(x.dbias!, x.dout!, M, N),
    oracle: () => {
      const dbias = copy(dbias0);
      biasBackwardRef(dbias, dout, M, N);
      return { dbias };
    },
    naive: (p) => naiveBiasBackward(p, dbias0, dout, M, N),
  };
}

// ---- embedding

function tokensOf(d: Draw, n: number, V: number): Int32Array {
  return Int32Array.from({ length: n }, () => d.rng.int(V));
}

/** wpe has maxT = T + 2 rows (a table longer than the sequence, as in GPT-2). */
export function embeddingForwardProblem(
  d: Draw,
  B: number,
  T: number,
  C: number,
  V: number,
): OpProblem {
  const tokens = tokensOf(d, B * T, V);
  const wte = normal(d, V * C);
  const wpe = normal(d, (T + 2) * C);
  const out0 = normal(d, B * T * C);
  return {
    buffers: {
      out: F(out0, d.dt, true),
      tokens: { data: tokens, dtype: 'int32' },
      wte: F(wte, d.dt),
      wpe: F(wpe, d.dt),
    },
    call: (ops, x) => ops.embeddingForward(x.out!, x.tokens!, x.wte!, x.wpe!, B, T, C),
    oracle: () => {
      const out = new Float64Array(B * T * C);
      embeddingForwardRef(out, tokens, wte, wpe, B, T, C);
      return { out };
    },
    naive: (p) => naiveEmbeddingForward(p, tokens, wte, wpe, B, T, C),
  };
}

export function embeddingBackwardProblem(
  d: Draw,
  B: number,
  T: number,
  C: number,
  V: number,
): OpProblem {
  const tokens = tokensOf(d, B * T, V);
  const dwte0 = normal(d, V * C);
  const dwpe0 = normal(d, (T + 2) * C);
  const dout = normal(d, B * T * C);
  return {
    buffers: {
      dwte: F(dwte0, d.dt, true),
      dwpe: F(dwpe0, d.dt, true),
      dout: F(dout, d.dt),
      tokens: { data: tokens, dtype: 'int32' },
    },
    call: (ops, x) => ops.embeddingBackward(x.dwte!, x.dwpe!, x.dout!, x.tokens!, B, T, C),
    oracle: () => {
      const dwte = copy(dwte0);
      const dwpe = copy(dwpe0);
      embeddingBackwardRef(dwte, dwpe, dout, tokens, B, T, C);
      return { dwte, dwpe };
    },
    naive: (p) => naiveEmbeddingBackward(p, dwte0, dwpe0, dout, tokens, B, T, C),
  };
}

// ---- layernorm

function lnInputs(d: Draw, N: number, C: number) {
  return {
    inp: normal(d, N * C, d.dt, d.mag.std, d.mag.shift ?? 0),
    w: normal(d, C, d.dt, 1, 1), // around 1, as trained LayerNorm gains are
    b: normal(d, C, d.dt, 0.1),
  };
}

export function layernormForwardProblem(d: Draw, N: number, C: number): OpProblem {
  const { inp, w, b } = lnInputs(d, N, C);
  const st = wide(d.dt);
  return {
    buffers: {
      out: F(normal(d, N * C), d.dt, true),
      mean: F(normal(d, N, st), st, true),
      rstd: F(normal(d, N, st), st, true),
      inp: F(inp, d.dt),
      w: F(w, d.dt),
      b: F(b, d.dt),
    },
    call: (ops, x) => ops.layernormForward(x.out!, x.mean!, x.rstd!, x.inp!, x.w!, x.b!, N, C),
    oracle: () => {
      const out = new Float64Array(N * C);
      const mean = new Float64Array(N);
      const rstd = new Float64Array(N);
      layernormForwardRef(out, mean, rstd, inp, w, b, N, C);
      return { out, mean, rstd };
    },
    naive: (p) => naiveLayernormForward(p, inp, w, b, N, C),
  };
}

/** mean and rstd are the float64 forward's, stored in their dtype (what a backend's forward hands over). */
export function layernormBackwardProblem(d: Draw, N: number, C: number): OpProblem {
  const { inp, w, b } = lnInputs(d, N, C);
  const st = wide(d.dt);
  const mean = new Float64Array(N);
  const rstd = new Float64Array(N);
  layernormForwardRef(new Float64Array(N * C), mean, rstd, inp, w, b, N, C);
  const meanS = mean.map((x) => roundToDType(x, st));
  const rstdS = rstd.map((x) => roundToDType(x, st));
  const dinp0 = normal(d, N * C);
  const dw0 = normal(d, C);
  const db0 = normal(d, C);
  const dout = normal(d, N * C, d.dt, 1);
  return {
    buffers: {
      dinp: F(dinp0, d.dt, true),
      dw: F(dw0, d.dt, true),
      db: F(db0, d.dt, true),
      dout: F(dout, d.dt),
      inp: F(inp, d.dt),
      w: F(w, d.dt),
      mean: F(meanS, st),
      rstd: F(rstdS, st),
    },
    call: (ops, x) =>
      ops.layernormBackward(x.dinp!, x.dw!, x.db!, x.dout!, x.inp!, x.w!, x.mean!, x.rstd!, N, C),
    oracle: () => {
      const dinp = copy(dinp0);
      const dw = copy(dw0);
      const db = copy(db0);
      layernormBackwardRef(dinp, dw, db, dout, inp, w, meanS, rstdS, N, C);
      return { dinp, dw, db };
    },
    naive: (p) => naiveLayernormBackward(p, dinp0, dw0, db0, dout, inp, w, meanS, rstdS, N, C),
  };
}

// ---- elementwise

/** inPlace: out and inp are the same buffer. */
export function geluForwardProblem(d: Draw, n: number, inPlace: boolean): OpProblem {
  const inp = normal(d, n);
  const buffers: Record<string, ProblemBuffer> = inPlace
    ? { inp: F(inp, d.dt, true) }
    : { out: F(normal(d, n), d.dt, true), inp: F(inp, d.dt) };
  return {
    buffers,
    call: (ops, x) => ops.geluForward(inPlace ? x.inp! : x.out!, x.inp!, n),
    oracle: () => {
      const out = new Float64Array(n);
      geluForwardRef(out, inp, n);
      return { [inPlace ? 'inp' : 'out']: out };
    },
    naive: (p) => {
      const r = naiveGeluForward(p, inp, n);
      return inPlace
        ? { values: { inp: r.values.out! }, abs: { inp: r.abs.out! }, terms: r.terms }
        : r;
    },
  };
}

/** dinp starts non-zero (the op overwrites it); aliasDout: dinp is the dout buffer. */
export function geluBackwardProblem(d: Draw, n: number, aliasDout: boolean): OpProblem {
  const inp = normal(d, n);
  const dout = normal(d, n, d.dt, 1);
  const buffers: Record<string, ProblemBuffer> = aliasDout
    ? { dout: F(dout, d.dt, true), inp: F(inp, d.dt) }
    : { dinp: F(normal(d, n), d.dt, true), dout: F(dout, d.dt), inp: F(inp, d.dt) };
  const outName = aliasDout ? 'dout' : 'dinp';
  return {
    buffers,
    call: (ops, x) => ops.geluBackward(aliasDout ? x.dout! : x.dinp!, x.inp!, x.dout!, n),
    oracle: () => {
      const dinp = new Float64Array(n);
      geluBackwardRef(dinp, inp, dout, n);
      return { [outName]: dinp };
    },
    naive: (p) => {
      const r = naiveGeluBackward(p, inp, dout, n);
      return {
        values: { [outName]: r.values.dinp! },
        abs: { [outName]: r.abs.dinp! },
        terms: r.terms,
      };
    },
  };
}

/** alias 'a' / 'b': out is that operand's buffer. */
export function addProblem(d: Draw, n: number, alias: 'none' | 'a' | 'b'): OpProblem {
  const a = normal(d, n);
  const b = normal(d, n);
  const buffers: Record<string, ProblemBuffer> = {
    a: F(a, d.dt, alias === 'a'),
    b: F(b, d.dt, alias === 'b'),
  };
  if (alias === 'none') buffers.out = F(normal(d, n), d.dt, true);
  const outName = alias === 'none' ? 'out' : alias;
  return {
    buffers,
    call: (ops, x) => ops.add(x[outName]!, x.a!, x.b!, n),
    oracle: () => {
      const out = new Float64Array(n);
      addRef(out, a, b, n);
      return { [outName]: out };
    },
    naive: (p) => {
      const r = naiveAdd(p, a, b, n);
      return {
        values: { [outName]: r.values.out! },
        abs: { [outName]: r.abs.out! },
        terms: r.terms,
      };
    },
  };
}

export function scaleProblem(d: Draw, n: number, s: number): OpProblem {
  const x0 = normal(d, n);
  return {
    buffers: { x: F(x0, d.dt, true) },
    call: (ops, x) => ops.scale(x.x!, s),
    oracle: () => {
      const x = copy(x0);
      scaleRef(x, s);
      return { x };
    },
    naive: (p) => naiveScale(p, x0, s),
  };
}

export function sumProblem(d: Draw, n: number, squares: boolean): OpProblem {
  const x0 = normal(d, n);
  return {
    buffers: { x: F(x0, d.dt) },
    call: (ops, x) => (squares ? ops.sumSquares(x.x!) : ops.sum(x.x!)),
    oracle: () => ({ result: Float64Array.of(squares ? sumSquaresRef(x0) : sumRef(x0)) }),
    naive: (p) => naiveSum(p, x0, squares),
  };
}

// ---- softmax cross-entropy

export interface XentSpec {
  N: number;
  V: number;
  /** Every `ignoreEvery`-th target (from the first) is -1 (ignored). */
  ignoreEvery?: number;
  /** dlogits is the logits buffer. */
  inPlace?: boolean;
  /** No dlogits (the evaluation call). */
  noGrad?: boolean;
  /** Row stride of logits / dlogits (the padded vocabulary, >= V); passed to the op only when set. */
  Vp?: number;
}

export function softmaxCrossEntropyProblem(d: Draw, s: XentSpec): OpProblem {
  const { N, V } = s;
  const Vp = s.Vp ?? V;
  // (N, Vp): the padding columns [V, Vp) hold values 8 std above the rest, so a backend that reads them into
  // the softmax gets visibly different losses.
  const logits = normal(d, N * Vp);
  for (let i = 0; i < N; i++)
    for (let j = V; j < Vp; j++)
      logits[i * Vp + j] = roundToDType(logits[i * Vp + j]! + 8 * d.mag.std, d.dt);
  const targets = Int32Array.from({ length: N }, (_, i) =>
    s.ignoreEvery && i % s.ignoreEvery === 0 ? -1 : d.rng.int(V),
  );
  const scale = N > 0 ? 1 / N : 1; // the mean loss's gradient
  const st = wide(d.dt);
  const buffers: Record<string, ProblemBuffer> = {
    losses: F(normal(d, N, st), st, true),
    logits: F(logits, d.dt, !!s.inPlace),
    targets: { data: targets, dtype: 'int32' },
  };
  if (!s.noGrad && !s.inPlace) buffers.dlogits = F(normal(d, N * Vp), d.dt, true);
  const gradName = s.inPlace ? 'logits' : 'dlogits';
  return {
    buffers,
    call: (ops, x) =>
      ops.softmaxCrossEntropy(
        x.losses!,
        s.noGrad ? null : x[gradName]!,
        x.logits!,
        x.targets!,
        N,
        V,
        scale,
        s.Vp,
      ),
    oracle: () => {
      const losses = new Float64Array(N);
      const dl = s.noGrad ? null : new Float64Array(N * Vp);
      softmaxCrossEntropyRef(losses, dl, logits, targets, N, V, scale, Vp);
      return dl ? { losses, [gradName]: dl } : { losses };
    },
    naive: (p) => {
      const r = naiveSoftmaxCrossEntropy(p, logits, targets, N, V, scale, !s.noGrad, Vp);
      if (s.noGrad) return r;
      return {
        values: { losses: r.values.losses!, [gradName]: r.values.dlogits! },
        abs: { losses: r.abs.losses!, [gradName]: r.abs.dlogits! },
        terms: r.terms,
      };
    },
  };
}

// ---- AdamW

export function adamwProblem(d: Draw, n: number, h: AdamWStep): OpProblem {
  const st = wide(d.dt);
  const params0 = normal(d, n, st);
  const grads = normal(d, n);
  const m0 = normal(d, n, st, 0.1 * d.mag.std);
  const v0 = normal(d, n, st, 0.1 * d.mag.std).map((x) => roundToDType(x * x, st));
  return {
    buffers: {
      params: F(params0, st, true),
      grads: F(grads, d.dt),
      m: F(m0, st, true),
      v: F(v0, st, true),
    },
    call: (ops, x) => ops.adamw(x.params!, x.grads!, x.m!, x.v!, h),
    oracle: () => {
      const params = copy(params0);
      const m = copy(m0);
      const v = copy(v0);
      adamwRef(params, grads, m, v, h);
      return { params, m, v };
    },
    naive: (p) => naiveAdamW(p, params0, grads, m0, v0, h),
    computeOf: st,
  };
}

// ---- DeviceStepOps: sumTo, adamwFrom

/** sumTo(out, x, {squares, accumulate}): out (1, the wide dtype) (+)= the sum (of squares) of x. */
export function sumToProblem(d: Draw, n: number, squares: boolean, accumulate: boolean): OpProblem {
  const x0 = normal(d, n);
  const st = wide(d.dt);
  const out0 = normal(d, 1, st, 3);
  const base = accumulate ? out0[0]! : 0;
  return {
    buffers: { x: F(x0, d.dt), out: F(out0, st, true) },
    call: (ops, x) => {
      if (!hasDeviceStep(ops)) throw new Error(`${ops.name} has no sumTo`);
      return ops.sumTo(x.out!, x.x!, { squares, accumulate });
    },
    oracle: () => ({ out: Float64Array.of(base + (squares ? sumSquaresRef(x0) : sumRef(x0))) }),
    naive: (p) => {
      const r = naiveSum(p, x0, squares);
      return {
        values: { out: Float64Array.of(p.ra(base + r.values.result![0]!)) },
        abs: { out: Math.abs(base) + r.abs.result! },
        terms: r.terms + 1,
      };
    },
  };
}

export interface AdamWFromClip {
  maxNorm: number;
  K: number;
  /** The norm of the mean gradient the case stores (normSq = (K norm)^2): above maxNorm clips. */
  norm: number;
}

/**
 * adamwFrom with hyper = [lr, 1 - beta1^t, 1 - beta2^t] and, with `clip`, normSq on the device: the oracle is the
 * float64 update on the stored (rounded) scalars and the clip factor (core's clipFactor); the naive baseline is
 * naiveAdamW on the gradient times that factor.
 */
export function adamwFromProblem(
  d: Draw,
  n: number,
  h: AdamWStep,
  clip?: AdamWFromClip,
): OpProblem {
  const st = wide(d.dt);
  const params0 = normal(d, n, st);
  const grads = normal(d, n);
  const m0 = normal(d, n, st, 0.1 * d.mag.std);
  const v0 = normal(d, n, st, 0.1 * d.mag.std).map((x) => roundToDType(x * x, st));
  const hyper = Float64Array.of(h.lr, 1 - h.beta1 ** h.t, 1 - h.beta2 ** h.t).map((x) =>
    roundToDType(x, st),
  );
  const normSq = clip ? Float64Array.of(roundToDType((clip.K * clip.norm) ** 2, st)) : null;
  const factor = clip ? clipFactor(normSq![0]!, clip.maxNorm, clip.K) : 1;
  const buffers: Record<string, ProblemBuffer> = {
    params: F(params0, st, true),
    grads: F(grads, d.dt),
    m: F(m0, st, true),
    v: F(v0, st, true),
    hyper: F(hyper, st),
  };
  if (normSq) buffers.normSq = F(normSq, st);
  const { beta1, beta2, eps, weightDecay } = h;
  return {
    buffers,
    call: (ops, x) => {
      if (!hasDeviceStep(ops)) throw new Error(`${ops.name} has no adamwFrom`);
      return ops.adamwFrom(x.params!, x.grads!, x.m!, x.v!, {
        beta1,
        beta2,
        eps,
        weightDecay,
        hyper: x.hyper!,
        ...(clip ? { clip: { normSq: x.normSq!, maxNorm: clip.maxNorm, K: clip.K } } : {}),
      });
    },
    oracle: () => {
      const params = copy(params0);
      const m = copy(m0);
      const v = copy(v0);
      adamwUpdateRef(params, grads, m, v, h, hyper, factor);
      return { params, m, v };
    },
    naive: (p) =>
      naiveAdamW(
        p,
        params0,
        grads.map((g) => g * factor),
        m0,
        v0,
        { ...h, lr: hyper[0]! },
      ),
    computeOf: st,
  };
}
