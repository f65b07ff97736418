/**
 * `createReferenceOps()`: every `Ops<Buf>` method (contracts/ops.ts) computed in float64 by the pure
 * functions of this folder, over opaque `ReferenceBuffer`s. It is the slowest backend and the simplest:
 * a second, non-CPU-kernel implementation of the model's ops for showing that the model only talks to
 * the contract, and the device the ops conformance suite checks first.
 *
 * dtypes: float64, float32, int32. A float32 buffer stores values rounded to float32 (what a float32
 * device buffer holds) but every op reads them into float64, computes in float64 and rounds once on
 * the write. `computeDType` is the identity: a float32 result is a float32 number with one rounding, which
 * the ops conformance suite's float32 naive baseline (float32 accumulation) can only be worse than.
 *
 * Every call checks all its arguments (buffer identity, liveness, dtype, length, sizes, view ranges,
 * token and target ranges) before writing anything and throws `OpsInputError` naming the argument, so a
 * rejected call leaves every buffer as it was. Inputs are copied out before outputs are written, so every
 * aliasing the contract allows (gelu in place, add into a or b, dlogits over logits) is safe.
 */
import {
  checkStridedView,
  deviceAttentionShape,
  type DeviceAttentionBackwardArgs,
  type DeviceAttentionForwardArgs,
  type StridedView,
} from '../contracts/device-attention.js';
import type { BackendCapabilities } from '../contracts/attention-backend.js';
import type { AdamWStep, BufferDType, HostArray, MatmulOptions, Ops } from '../contracts/ops.js';
import { matmulEpilogue, xentRowStride } from '../contracts/ops.js';
import { AttentionInputError, FlashAttnError, OpsInputError } from '../errors.js';
import type { AttentionOptions } from '../options.js';
import { validateOptions } from '../validate.js';
import type { DeviceKvCacheAttention, DeviceVarlenAttention } from '../contracts/kv-cache.js';
import { adamwRef, adamwUpdateRef } from './adamw.js';
import {
  checkAdamWFromScalars,
  clipFactor,
  type AdamWFromStep,
  type DeviceStepOps,
} from '../contracts/device-step.js';
import {
  attentionBackwardRef,
  attentionForwardRef,
  gatherStrided,
  scatterStrided,
} from './attention.js';
import {
  REFERENCE_DTYPES,
  ReferenceBuffer,
  allocReference,
  arg,
  freeReference,
  read,
  readInt,
  size,
  slot,
  viewReference,
  write,
  type Slot,
} from './buffer.js';
import { softmaxCrossEntropyRef } from './cross-entropy.js';
import { referenceInference } from './inference.js';
import { addRef, scaleRef, sumRef, sumSquaresRef } from './elementwise.js';
import { embeddingBackwardRef, embeddingForwardRef } from './embedding.js';
import { geluBackwardRef, geluForwardRef } from './gelu.js';
import { layernormBackwardRef, layernormForwardRef } from './layernorm.js';
import { biasBackwardRef, matmulRef } from './matmul.js';

export { ReferenceBuffer } from './buffer.js';

/** The reference ops: `Ops<ReferenceBuffer>` (which includes `DeviceMemory` and `DeviceAttention`). */
export type ReferenceOps = Ops<ReferenceBuffer> &
  DeviceStepOps<ReferenceBuffer> &
  DeviceKvCacheAttention<ReferenceBuffer> &
  DeviceVarlenAttention<ReferenceBuffer>;

const ATTENTION_CAPABILITIES: BackendCapabilities = {
  dtypes: ['float32'],
  maxHeadDim: Number.MAX_SAFE_INTEGER,
  computeDType: (dt) => dt,
};

function intIn(name: string, values: Int32Array, lo: number, hi: number): void {
  for (let i = 0; i < values.length; i++) {
    const t = values[i]!;
    if (t < lo || t >= hi) {
      throw new OpsInputError(`${name}[${i}]`, `a value in [${lo}, ${hi})`, t);
    }
  }
}

/** A strided attention view of a reference buffer, checked; returns its slot and absolute layout. */
function attnView(name: string, v: StridedView<ReferenceBuffer>) {
  if (v === null || typeof v !== 'object') {
    throw new AttentionInputError(name, 'a StridedView { buffer, offset, shape, strides }', v);
  }
  let s: Slot;
  try {
    s = slot(`${name}.buffer`, v.buffer);
  } catch (e) {
    const err = e as OpsInputError;
    throw new AttentionInputError(err.argument, err.expected, err.actual);
  }
  checkStridedView(name, v, s.length);
  if (s.storage.dtype === 'int32') {
    throw new AttentionInputError(
      `${name}.buffer dtype`,
      'a float dtype (float32, float64)',
      'int32',
    );
  }
  return { slot: s, layout: { offset: s.offset + v.offset, shape: v.shape, strides: v.strides } };
}

function sameShape(name: string, got: readonly number[], want: readonly number[]): void {
  if (got.length !== want.length || got.some((x, i) => x !== want[i])) {
    throw new AttentionInputError(`${name}.shape`, `[${want.join(', ')}]`, `[${got.join(', ')}]`);
  }
}

function lseSlot(name: string, b: ReferenceBuffer, n: number): Slot {
  let s: Slot;
  try {
    s = arg(name, b, 'float', n);
  } catch (e) {
    const err = e as OpsInputError;
    throw new AttentionInputError(err.argument, err.expected, err.actual);
  }
  return s;
}

function storeRound(s: Slot): (x: number) => number {
  return s.storage.dtype === 'float32' ? Math.fround : (x) => x;
}

/** A new reference backend. Buffers of one backend are plain host memory; dispose() only disables it. */
export function createReferenceOps(): ReferenceOps {
  let disposed = false;
  const live = (): void => {
    if (disposed) throw new FlashAttnError('reference ops: used after dispose()');
  };

  const inference = referenceInference();
  const ops: ReferenceOps = {
    name: 'reference (float64 compute)',
    dtypes: REFERENCE_DTYPES,
    attentionCapabilities: ATTENTION_CAPABILITIES,
    computeDType: (dt: BufferDType) => dt,

    // ---- memory
    alloc(n, dtype) {
      live();
      return allocReference('alloc', n, dtype);
    },
    view(buf, offset, length) {
      live();
      return viewReference('view buf', buf, offset, length);
    },
    lengthOf(buf) {
      return slot('lengthOf buf', buf).length;
    },
    dtypeOf(buf) {
      return slot('dtypeOf buf', buf).storage.dtype;
    },
    zero(buf) {
      live();
      const s = slot('zero buf', buf);
      s.storage.data.fill(0, s.offset, s.offset + s.length);
    },
    upload(buf, data: HostArray) {
      live();
      const s = slot('upload buf', buf);
      const isInt = data instanceof Int32Array;
      const isFloat = data instanceof Float32Array || data instanceof Float64Array;
      if (!isInt && !isFloat) {
        throw new OpsInputError(
          'upload data',
          'a Float32Array, Float64Array or Int32Array (the reference backend has no 16-bit buffers)',
          data,
        );
      }
      if (isInt !== (s.storage.dtype === 'int32')) {
        throw new OpsInputError(
          'upload data',
          s.storage.dtype === 'int32'
            ? 'an Int32Array for an int32 buffer'
            : 'float data for a float buffer',
          data,
        );
      }
      if (data.length !== s.length) {
        throw new OpsInputError(
          'upload data length',
          `${s.length} elements (the buffer's length)`,
          data.length,
        );
      }
      write(s, data);
    },
    download(buf) {
      try {
        live();
        const s = slot('download buf', buf);
        const dt = s.storage.dtype;
        const d = s.storage.data;
        const out =
          dt === 'int32'
            ? (d as Int32Array).slice(s.offset, s.offset + s.length)
            : dt === 'float32'
              ? Float32Array.from(d.subarray(s.offset, s.offset + s.length))
              : (d as Float64Array).slice(s.offset, s.offset + s.length);
        return Promise.resolve(out);
      } catch (e) {
        return Promise.reject(e);
      }
    },
    copy(dst, src) {
      live();
      const d = slot('copy dst', dst);
      const s = slot('copy src', src);
      if ((d.storage.dtype === 'int32') !== (s.storage.dtype === 'int32')) {
        throw new OpsInputError(
          'copy src dtype',
          `a dtype castable to ${d.storage.dtype}`,
          s.storage.dtype,
        );
      }
      if (d.length !== s.length) {
        throw new OpsInputError('copy src length', `${d.length} elements (dst's length)`, s.length);
      }
      write(d, read(s));
    },
    free(buf) {
      freeReference('free buf', buf);
    },

    // ---- the model's ops
    matmul(out, a, b, M, N, K, opts: MatmulOptions<ReferenceBuffer> = {}) {
      live();
      size('matmul M', M);
      size('matmul N', N);
      size('matmul K', K);
      const o = arg('matmul out', out, 'float', M * N);
      const sa = arg('matmul a', a, 'float', M * K);
      const sb = arg('matmul b', b, 'float', K * N);
      const epilogue = matmulEpilogue('matmul', opts);
      const sbias =
        opts.bias !== undefined ? arg('matmul opts.bias', opts.bias, 'float', N) : undefined;
      const pre =
        epilogue === 'gelu' || epilogue === 'dgelu'
          ? arg(`matmul opts.${epilogue}Pre`, (opts.geluPre ?? opts.dgeluPre)!, 'float', M * N)
          : undefined;
      const res = opts.accumulate ? read(o) : new Float64Array(M * N);
      matmulRef(res, read(sa), read(sb), M, N, K, {
        transA: opts.transA ?? false,
        transB: opts.transB ?? false,
        accumulate: opts.accumulate ?? false,
        bias: sbias ? read(sbias) : null,
      });
      if (epilogue === 'gelu') {
        write(pre!, res); // the pre-activation, stored in pre's dtype
        const g = new Float64Array(M * N);
        geluForwardRef(g, res, M * N);
        write(o, g);
      } else if (epilogue === 'dgelu') {
        const g = new Float64Array(M * N);
        geluBackwardRef(g, read(pre!), res, M * N);
        write(o, g);
      } else write(o, res);
    },
    biasBackward(dbias, dout, M, N) {
      live();
      size('biasBackward M', M);
      size('biasBackward N', N);
      const sd = arg('biasBackward dbias', dbias, 'float', N);
      const so = arg('biasBackward dout', dout, 'float', M * N);
      const res = read(sd);
      biasBackwardRef(res, read(so), M, N);
      write(sd, res);
    },
    embeddingForward(out, tokens, wte, wpe, B, T, C) {
      live();
      size('embeddingForward B', B);
      size('embeddingForward T', T);
      size('embeddingForward C', C);
      const so = arg('embeddingForward out', out, 'float', B * T * C);
      const st = arg('embeddingForward tokens', tokens, 'int32', B * T);
      const { V, ste, spe } = embeddingTables('embeddingForward', wte, wpe, T, C);
      const tok = readInt(st);
      intIn('embeddingForward tokens', tok, 0, V);
      const res = new Float64Array(B * T * C);
      embeddingForwardRef(res, tok, read(ste), read(spe), B, T, C);
      write(so, res);
    },
    embeddingBackward(dwte, dwpe, dout, tokens, B, T, C) {
      live();
      size('embeddingBackward B', B);
      size('embeddingBackward T', T);
      size('embeddingBackward C', C);
      const { V, ste, spe } = embeddingTables('embeddingBackward', dwte, dwpe, T, C);
      const so = arg('embeddingBackward dout', dout, 'float', B * T * C);
      const st = arg('embeddingBackward tokens', tokens, 'int32', B * T);
      const tok = readInt(st);
      intIn('embeddingBackward tokens', tok, 0, V);
      const gte = read(ste);
      const gpe = read(spe);
      embeddingBackwardRef(gte, gpe, read(so), tok, B, T, C);
      write(ste, gte);
      write(spe, gpe);
    },
    layernormForward(out, mean, rstd, inp, w, b, N, C) {
      live();
      size('layernormForward N', N);
      size('layernormForward C', C);
      const so = arg('layernormForward out', out, 'float', N * C);
      const sm = arg('layernormForward mean', mean, 'float', N);
      const sr = arg('layernormForward rstd', rstd, 'float', N);
      const si = arg('layernormForward inp', inp, 'float', N * C);
      const sw = arg('layernormForward w', w, 'float', C);
      const sb = arg('layernormForward b', b, 'float', C);
      const res = new Float64Array(N * C);
      const m = new Float64Array(N);
      const r = new Float64Array(N);
      layernormForwardRef(res, m, r, read(si), read(sw), read(sb), N, C);
      write(so, res);
      write(sm, m);
      write(sr, r);
    },
    layernormBackward(dinp, dw, db, dout, inp, w, mean, rstd, N, C) {
      live();
      size('layernormBackward N', N);
      size('layernormBackward C', C);
      const sdi = arg('layernormBackward dinp', dinp, 'float', N * C);
      const sdw = arg('layernormBackward dw', dw, 'float', C);
      const sdb = arg('layernormBackward db', db, 'float', C);
      const sdo = arg('layernormBackward dout', dout, 'float', N * C);
      const si = arg('layernormBackward inp', inp, 'float', N * C);
      const sw = arg('layernormBackward w', w, 'float', C);
      const sm = arg('layernormBackward mean', mean, 'float', N);
      const sr = arg('layernormBackward rstd', rstd, 'float', N);
      const gi = read(sdi);
      const gw = read(sdw);
      const gb = read(sdb);
      layernormBackwardRef(gi, gw, gb, read(sdo), read(si), read(sw), read(sm), read(sr), N, C);
      write(sdi, gi);
      write(sdw, gw);
      write(sdb, gb);
    },
    geluForward(out, inp, n) {
      live();
      size('geluForward n', n);
      const so = arg('geluForward out', out, 'float', n);
      const si = arg('geluForward inp', inp, 'float', n);
      const res = new Float64Array(n);
      geluForwardRef(res, read(si, n), n);
      write(so, res);
    },
    geluBackward(dinp, inp, dout, n) {
      live();
      size('geluBackward n', n);
      const sdi = arg('geluBackward dinp', dinp, 'float', n);
      const si = arg('geluBackward inp', inp, 'float', n);
      const sdo = arg('geluBackward dout', dout, 'float', n);
      const res = new Float64Array(n);
      geluBackwardRef(res, read(si, n), read(sdo, n), n);
      write(sdi, res);
    },
    add(out, a, b, n) {
      live();
      size('add n', n);
      const so = arg('add out', out, 'float', n);
      const sa = arg('add a', a, 'float', n);
      const sb = arg('add b', b, 'float', n);
      const res = new Float64Array(n);
      addRef(res, read(sa, n), read(sb, n), n);
      write(so, res);
    },
    softmaxCrossEntropy(losses, dlogits, logits, targets, N, V, dlossScale, VpArg) {
      live();
      size('softmaxCrossEntropy N', N);
      size('softmaxCrossEntropy V', V);
      if (V === 0 && N > 0) throw new OpsInputError('softmaxCrossEntropy V', 'at least 1 class', V);
      const Vp = xentRowStride('softmaxCrossEntropy', V, VpArg);
      if (typeof dlossScale !== 'number' || !Number.isFinite(dlossScale)) {
        throw new OpsInputError('softmaxCrossEntropy dlossScale', 'a finite number', dlossScale);
      }
      const sl = arg('softmaxCrossEntropy losses', losses, 'float', N);
      const sd =
        dlogits !== null ? arg('softmaxCrossEntropy dlogits', dlogits, 'float', N * Vp) : null;
      const sx = arg('softmaxCrossEntropy logits', logits, 'float', N * Vp);
      const st = arg('softmaxCrossEntropy targets', targets, 'int32', N);
      const tg = readInt(st);
      for (let i = 0; i < N; i++) {
        if (tg[i]! >= V) {
          throw new OpsInputError(
            `softmaxCrossEntropy targets[${i}]`,
            `a class < V = ${V} (or < 0: ignored)`,
            tg[i],
          );
        }
      }
      const lo = new Float64Array(N);
      const dl = sd ? new Float64Array(N * Vp) : null;
      softmaxCrossEntropyRef(lo, dl, read(sx), tg, N, V, dlossScale, Vp);
      write(sl, lo);
      if (sd && dl) write(sd, dl);
    },
    sum(x) {
      try {
        live();
        return Promise.resolve(sumRef(read(arg('sum x', x, 'float', 0, true))));
      } catch (e) {
        return Promise.reject(e);
      }
    },
    sumSquares(x) {
      try {
        live();
        return Promise.resolve(sumSquaresRef(read(arg('sumSquares x', x, 'float', 0, true))));
      } catch (e) {
        return Promise.reject(e);
      }
    },
    scale(x, s) {
      live();
      if (typeof s !== 'number' || !Number.isFinite(s))
        throw new OpsInputError('scale s', 'a finite number', s);
      const sx = arg('scale x', x, 'float', 0, true);
      const v = read(sx);
      scaleRef(v, s);
      write(sx, v);
    },
    sumTo(out, x, opts = {}) {
      live();
      const so = arg('sumTo out', out, 'float', 1);
      const v = read(arg('sumTo x', x, 'float', 0, true));
      const s = opts.squares ? sumSquaresRef(v) : sumRef(v);
      write(so, [opts.accumulate ? read(so)[0]! + s : s]);
    },
    adamwFrom(params, grads, m, v, h: AdamWFromStep<ReferenceBuffer>) {
      live();
      checkAdamWFromScalars('adamwFrom', h);
      const sp = arg('adamwFrom params', params, 'float', 0, true);
      const n = sp.length;
      const sg = arg('adamwFrom grads', grads, 'float', n);
      const sm = arg('adamwFrom m', m, 'float', n);
      const sv = arg('adamwFrom v', v, 'float', n);
      const hyper = read(arg('adamwFrom h.hyper', h.hyper, 'float', 3));
      const scale = h.clip
        ? clipFactor(
            read(arg('adamwFrom h.clip.normSq', h.clip.normSq, 'float', 1))[0]!,
            h.clip.maxNorm,
            h.clip.K,
          )
        : 1;
      const p = read(sp);
      const mm = read(sm);
      const vv = read(sv);
      adamwUpdateRef(p, read(sg), mm, vv, h, hyper, scale);
      write(sp, p);
      write(sm, mm);
      write(sv, vv);
    },
    adamw(params, grads, m, v, h: AdamWStep) {
      live();
      checkAdamW(h);
      const sp = arg('adamw params', params, 'float', 0, true);
      const n = sp.length;
      const sg = arg('adamw grads', grads, 'float', n);
      const sm = arg('adamw m', m, 'float', n);
      const sv = arg('adamw v', v, 'float', n);
      const p = read(sp);
      const mm = read(sm);
      const vv = read(sv);
      adamwRef(p, read(sg), mm, vv, h);
      write(sp, p);
      write(sm, mm);
      write(sv, vv);
    },

    // ---- attention on strided views
    attentionForward(a: DeviceAttentionForwardArgs<ReferenceBuffer>, opts?: AttentionOptions) {
      live();
      validateOptions(opts);
      const q = attnView('q', a.q);
      const k = attnView('k', a.k);
      const v = attnView('v', a.v);
      const out = attnView('out', a.out);
      const { B, Nq, Hq } = deviceAttentionShape(a);
      sameShape('out', a.out.shape, a.q.shape);
      const lse = lseSlot('lse', a.lse, B * Hq * Nq);
      const exact = [q, k, v].every((x) => x.slot.storage.dtype === 'float32');
      const r = attentionForwardRef(
        gatherStrided(q.slot.storage.data, q.layout),
        gatherStrided(k.slot.storage.data, k.layout),
        gatherStrided(v.slot.storage.data, v.layout),
        q.layout,
        k.layout,
        opts,
        exact,
      );
      scatterStrided(out.slot.storage.data, out.layout, r.out, storeRound(out.slot));
      write(lse, r.lse);
    },
    attentionBackward(a: DeviceAttentionBackwardArgs<ReferenceBuffer>, opts?: AttentionOptions) {
      live();
      validateOptions(opts);
      const q = attnView('q', a.q);
      const k = attnView('k', a.k);
      const v = attnView('v', a.v);
      const out = attnView('out', a.out);
      const dout = attnView('dout', a.dout);
      const dq = attnView('dq', a.dq);
      const dk = attnView('dk', a.dk);
      const dv = attnView('dv', a.dv);
      const { B, Nq, Hq } = deviceAttentionShape(a);
      sameShape('out', a.out.shape, a.q.shape);
      sameShape('dout', a.dout.shape, a.q.shape);
      sameShape('dq', a.dq.shape, a.q.shape);
      sameShape('dk', a.dk.shape, a.k.shape);
      sameShape('dv', a.dv.shape, a.k.shape);
      const lse = lseSlot('lse', a.lse, B * Hq * Nq);
      const exact = [q, k, v, dout].every((x) => x.slot.storage.dtype === 'float32');
      const g = attentionBackwardRef(
        gatherStrided(dout.slot.storage.data, dout.layout),
        gatherStrided(q.slot.storage.data, q.layout),
        gatherStrided(k.slot.storage.data, k.layout),
        gatherStrided(v.slot.storage.data, v.layout),
        gatherStrided(out.slot.storage.data, out.layout),
        read(lse),
        q.layout,
        k.layout,
        opts,
        exact,
      );
      scatterStrided(dq.slot.storage.data, dq.layout, g.dq, storeRound(dq.slot));
      scatterStrided(dk.slot.storage.data, dk.layout, g.dk, storeRound(dk.slot));
      scatterStrided(dv.slot.storage.data, dv.layout, g.dv, storeRound(dv.slot));
    },

    // ---- inference attention (KV cache, combine, varlen): ./inference.ts
    kvCacheCapabilities: inference.kvCacheCapabilities,
    attentionWithKvCache(a, opts) {
      live();
      return inference.attentionWithKvCache(a, opts);
    },
    attentionCombine(a) {
      live();
      return inference.attentionCombine(a);
    },
    varlenAttentionForward(a, opts) {
      live();
      return inference.varlenAttentionForward(a, opts);
    },
    varlenAttentionBackward(a, opts) {
      live();
      return inference.varlenAttentionBackward(a, opts);
    },

    dispose() {
      disposed = true;
    },
  };
  return ops;

  function embeddingTables(
    op: string,
    wte: ReferenceBuffer,
    wpe: ReferenceBuffer,
    T: number,
    C: number,
  ) {
    const ste = arg(`${op} ${op === 'embeddingForward' ? 'wte' : 'dwte'}`, wte, 'float', 0, true);
    const spe = arg(
      `${op} ${op === 'embeddingForward' ? 'wpe' : 'dwpe'}`,
      wpe,
      'float',
      T * C,
      true,
    );
    if (C > 0 && ste.length % C !== 0) {
      throw new OpsInputError(
        `${op} wte length`,
        `a multiple of C = ${C} (a (V, C) table)`,
        ste.length,
      );
    }
    if (spe.length % Math.max(C, 1) !== 0) {
      throw new OpsInputError(
        `${op} wpe length`,
        `a multiple of C = ${C} (a (maxT, C) table)`,
        spe.length,
      );
    }
    return { V: C > 0 ? ste.length / C : 0, ste, spe };
  }
}

function checkAdamW(h: AdamWStep): void {
  if (h === null || typeof h !== 'object') throw new OpsInputError('adamw h', 'an AdamWStep', h);
  for (const key of ['lr', 'beta1', 'beta2', 'eps', 'weightDecay'] as const) {
    if (typeof h[key] !== 'number' || !Number.isFinite(h[key])) {
      throw new OpsInputError(`adamw h.${key}`, 'a finite number', h[key]);
    }
  }
  if (!Number.isInteger(h.t) || h.t < 1)
    throw new OpsInputError('adamw h.t', 'an integer >= 1 (1-based step)', h.t);
}
