/**
 * Deliberately wrong ops backends: each wraps a correct `Ops<Buf>` and breaks exactly one op with a
 * realistic bug, to prove the ops conformance suite catches it and names the right op.
 */
import { GELU_CUBIC, GELU_SCALE, hasDeviceStep, type BufferDType, type Ops } from '@flashattn/core';
import { valuesOf } from '../ops/dtypes.js';
import type { OpName } from '../ops/problems.js';

export type OpsFault =
  | 'matmul-ignores-accumulate'
  | 'biasBackward-overwrites'
  | 'embeddingForward-no-position'
  | 'embeddingBackward-overwrites'
  | 'layernormForward-skips-mean'
  | 'layernormBackward-no-mean-term'
  | 'geluForward-no-cubic'
  | 'geluBackward-accumulates'
  | 'add-skips-tail'
  | 'softmaxCrossEntropy-no-ignore'
  | 'matmul-gelu-pre-unwritten'
  | 'matmul-dgelu-ignored'
  | 'softmaxCrossEntropy-reads-padding'
  | 'sum-skips-tail'
  | 'sumSquares-no-square'
  | 'scale-skips-tail'
  | 'adamw-no-bias-correction'
  | 'sumTo-ignores-accumulate'
  | 'adamwFrom-ignores-clip'
  | 'view-offset-ignored';

/** The op each fault breaks ('view' breaks the memory layer, so every op's `views` cases fail). */
export const OPS_FAULTS: Readonly<Record<OpsFault, OpName | 'view'>> = {
  'matmul-ignores-accumulate': 'matmul',
  'biasBackward-overwrites': 'biasBackward',
  'embeddingForward-no-position': 'embeddingForward',
  'embeddingBackward-overwrites': 'embeddingBackward',
  'layernormForward-skips-mean': 'layernormForward',
  'layernormBackward-no-mean-term': 'layernormBackward',
  'geluForward-no-cubic': 'geluForward',
  'geluBackward-accumulates': 'geluBackward',
  'add-skips-tail': 'add',
  'softmaxCrossEntropy-no-ignore': 'softmaxCrossEntropy',
  'matmul-gelu-pre-unwritten': 'matmul',
  'matmul-dgelu-ignored': 'matmul',
  'softmaxCrossEntropy-reads-padding': 'softmaxCrossEntropy',
  'sum-skips-tail': 'sum',
  'sumSquares-no-square': 'sumSquares',
  'scale-skips-tail': 'scale',
  'adamw-no-bias-correction': 'adamw',
  'sumTo-ignores-accumulate': 'sumTo',
  'adamwFrom-ignores-clip': 'adamwFrom',
  'view-offset-ignored': 'view',
};

export function brokenOps<Buf>(inner: Ops<Buf>, fault: OpsFault): Ops<Buf> {
  const dl = async (b: Buf): Promise<Float64Array> =>
    valuesOf(inner.dtypeOf(b), await inner.download(b));
  const ul = (b: Buf, v: Float64Array): void | Promise<void> => inner.upload(b, v);
  const head = (b: Buf, n: number): Buf => inner.view(b, 0, n);
  const temp = async (n: number, dt: BufferDType, f: (t: Buf) => Promise<void>): Promise<void> => {
    const t = inner.alloc(n, dt);
    try {
      await f(t);
    } finally {
      inner.free(t);
    }
  };
  // Spread copies only own fields; bind every method of a class-based backend explicitly.
  const base = {} as Ops<Buf>;
  const proto = Object.getPrototypeOf(inner) as object;
  for (const key of [...Object.keys(inner), ...Object.getOwnPropertyNames(proto)]) {
    if (key === 'constructor') continue;
    const v = (inner as unknown as Record<string, unknown>)[key];
    (base as unknown as Record<string, unknown>)[key] =
      typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(inner) : v;
  }
  const ops: Ops<Buf> = { ...base, name: `broken(${fault})` };

  switch (fault) {
    case 'matmul-ignores-accumulate':
      ops.matmul = (out, a, b, M, N, K, o = {}) =>
        inner.matmul(out, a, b, M, N, K, o.bias === undefined ? { ...o, accumulate: false } : o);
      break;
    case 'matmul-gelu-pre-unwritten':
      // GELU applied in out without storing the pre-activation.
      ops.matmul = async (out, a, b, M, N, K, o = {}) => {
        if (o.geluPre === undefined) return inner.matmul(out, a, b, M, N, K, o);
        const { geluPre: _pre, ...plain } = o;
        await inner.matmul(out, a, b, M, N, K, plain);
        await inner.geluForward(out, out, M * N);
      };
      break;
    case 'matmul-dgelu-ignored':
      // The GELU backward epilogue dropped: a plain product.
      ops.matmul = (out, a, b, M, N, K, o = {}) => {
        const { dgeluPre: _pre, ...plain } = o;
        return inner.matmul(out, a, b, M, N, K, plain);
      };
      break;
    case 'biasBackward-overwrites':
      ops.biasBackward = async (dbias, dout, M, N) => {
        await inner.zero(dbias);
        await inner.biasBackward(dbias, dout, M, N);
      };
      break;
    case 'embeddingForward-no-position':
      ops.embeddingForward = (out, tokens, wte, wpe, B, T, C) =>
        temp(inner.lengthOf(wpe), inner.dtypeOf(wpe), async (zeros) => {
          await inner.embeddingForward(out, tokens, wte, zeros, B, T, C);
        });
      break;
    case 'embeddingBackward-overwrites':
      ops.embeddingBackward = async (dwte, dwpe, dout, tokens, B, T, C) => {
        await inner.zero(dwte);
        await inner.zero(dwpe);
        await inner.embeddingBackward(dwte, dwpe, dout, tokens, B, T, C);
      };
      break;
    case 'layernormForward-skips-mean':
      ops.layernormForward = async (out, mean, rstd, inp, w, b, N, C) => {
        const before = await dl(mean);
        await inner.layernormForward(out, mean, rstd, inp, w, b, N, C);
        await ul(mean, before);
      };
      break;
    case 'layernormBackward-no-mean-term':
      // dinp += rstd (g w - xhat mean(g w xhat)): the - mean(g w) term forgotten.
      ops.layernormBackward = async (dinp, dw, db, dout, inp, w, mean, rstd, N, C) => {
        await inner.layernormBackward(dinp, dw, db, dout, inp, w, mean, rstd, N, C);
        const [d, g, wv, r] = await Promise.all([dl(dinp), dl(dout), dl(w), dl(rstd)]);
        for (let i = 0; i < N; i++) {
          let gm = 0;
          for (let c = 0; c < C; c++) gm += g[i * C + c]! * wv[c]!;
          for (let c = 0; c < C; c++) d[i * C + c]! += (r[i]! * gm) / C;
        }
        await ul(dinp, d);
      };
      break;
    case 'geluForward-no-cubic':
      // 0.5 x (1 + tanh(sqrt(2/pi) x)): the 0.044715 x^3 term dropped.
      ops.geluForward = async (out, inp, n) => {
        const x = await dl(head(inp, n));
        const y = x.map((v) => 0.5 * v * (1 + Math.tanh(GELU_SCALE * v)));
        void GELU_CUBIC;
        await ul(head(out, n), y);
      };
      break;
    case 'geluBackward-accumulates':
      ops.geluBackward = (dinp, inp, dout, n) =>
        temp(n, inner.dtypeOf(dinp), async (old) => {
          await inner.copy(old, head(dinp, n));
          await inner.geluBackward(dinp, inp, dout, n);
          await inner.add(dinp, dinp, old, n);
        });
      break;
    case 'add-skips-tail':
      ops.add = (out, a, b, n) =>
        n > 0
          ? inner.add(head(out, n - 1), head(a, n - 1), head(b, n - 1), n - 1)
          : inner.add(out, a, b, n);
      break;
    case 'softmaxCrossEntropy-no-ignore':
      // Ignored targets (-1) clamped to class 0 instead of skipped.
      ops.softmaxCrossEntropy = async (losses, dlogits, logits, targets, N, V, s, Vp) => {
        const t = Int32Array.from(await dl(targets), (x) => Math.max(0, x));
        await temp(t.length, 'int32', async (tt) => {
          await inner.upload(tt, t);
          await inner.softmaxCrossEntropy(losses, dlogits, logits, tt, N, V, s, Vp);
        });
      };
      break;
    case 'softmaxCrossEntropy-reads-padding':
      // The padded vocabulary's columns [V, Vp) taken as classes (only the padded cases can tell).
      ops.softmaxCrossEntropy = (losses, dlogits, logits, targets, N, V, s, Vp) =>
        inner.softmaxCrossEntropy(losses, dlogits, logits, targets, N, Vp ?? V, s, Vp);
      break;
    case 'sum-skips-tail':
      ops.sum = (x) => {
        const n = inner.lengthOf(x);
        return inner.sum(n > 0 ? head(x, n - 1) : x);
      };
      break;
    case 'sumSquares-no-square':
      ops.sumSquares = (x) => inner.sum(x);
      break;
    case 'scale-skips-tail':
      ops.scale = (x, s) => {
        const n = inner.lengthOf(x);
        return inner.scale(n > 0 ? head(x, n - 1) : x, s);
      };
      break;
    case 'sumTo-ignores-accumulate': {
      // the device-side loss of micro-step k overwrites the earlier ones'
      if (!hasDeviceStep(inner)) break;
      const sumTo = inner.sumTo.bind(inner);
      (ops as unknown as typeof inner).sumTo = (out, x, o = {}) =>
        sumTo(out, x, { ...o, accumulate: false });
      break;
    }
    case 'adamwFrom-ignores-clip': {
      // the clip factor is dropped: the accumulated gradient (K x the mean) goes into AdamW as it is
      if (!hasDeviceStep(inner)) break;
      const adamwFrom = inner.adamwFrom.bind(inner);
      (ops as unknown as typeof inner).adamwFrom = (params, grads, m, v, h) => {
        const { clip: _clip, ...rest } = h;
        return adamwFrom(params, grads, m, v, rest);
      };
      break;
    }
    case 'adamw-no-bias-correction':
      ops.adamw = async (params, grads, m, v, h) => {
        const [p, g, mm, vv] = await Promise.all([dl(params), dl(grads), dl(m), dl(v)]);
        for (let i = 0; i < p.length; i++) {
          mm[i] = h.beta1 * mm[i]! + (1 - h.beta1) * g[i]!;
          vv[i] = h.beta2 * vv[i]! + (1 - h.beta2) * g[i]! * g[i]!;
          p[i] = p[i]! - h.lr * (mm[i]! / (Math.sqrt(vv[i]!) + h.eps) + h.weightDecay * p[i]!);
        }
        await ul(params, p);
        await ul(m, mm);
        await ul(v, vv);
      };
      break;
    case 'view-offset-ignored':
      ops.view = (buf, _offset, length) => inner.view(buf, 0, length);
      break;
  }
  return ops;
}
