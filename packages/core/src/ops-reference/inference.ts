/**
 * The inference contracts (contracts/kv-cache.ts) on the reference backend's buffers: core's kernels
 * (kv-cache-kernels.ts) run with float64 buffers and accumulation straight on the buffers' float64
 * storage. float32 buffers hold exact float32 values, so this is exact arithmetic on the stored
 * values (the kernels' float64 twin matches the oracles to ~1e-15, kv-cache.test.ts); results written
 * to float32 buffers are then rounded once, as a float32 device would store them. Every operand of a
 * call has one dtype; a cache append is an exact copy. Validation is core's (validate*Args), all of it
 * before the append writes anything.
 */
import type { StridedView } from '../contracts/device-attention.js';
import {
  validateCombineArgs,
  validateKvCacheArgs,
  validateVarlenBackwardArgs,
  validateVarlenForwardArgs,
  type AttentionCombineArgs,
  type DeviceKvCacheAttention,
  type DeviceVarlenAttention,
  type KvCacheAttentionArgs,
  type KvCacheCapabilities,
  type KvCacheOptions,
  type VarlenBackwardArgs,
  type VarlenForwardArgs,
} from '../contracts/kv-cache.js';
import { AttentionInputError, OpsInputError } from '../errors.js';
import { DEFAULT_BLOCK_SIZE_K, DEFAULT_BLOCK_SIZE_Q, type KernelLayout } from '../flash-blocks.js';
import {
  appendKvKernel,
  kvDecodeKernel,
  lseCombineKernel,
  varlenBackwardKernel,
  varlenForwardKernel,
} from '../kv-cache-kernels.js';
import { resolveOptions, type AttentionOptions } from '../options.js';
import { slot, type ReferenceBuffer, type Slot } from './buffer.js';

export const REFERENCE_KV_CAPABILITIES: KvCacheCapabilities = {
  dtypes: ['float32'],
  maxHeadDim: Number.MAX_SAFE_INTEGER,
  computeDType: (dt) => dt,
  pageSizeMultiple: 1,
  maxSplits: 1,
  parallelism: 1,
};

/** A buffer's window of its float64 storage, its dtype and slot. */
function floatWindow(name: string, b: ReferenceBuffer): { s: Slot; data: Float64Array } {
  let s: Slot;
  try {
    s = slot(name, b);
  } catch (e) {
    const err = e as OpsInputError;
    throw new AttentionInputError(err.argument, err.expected, err.actual);
  }
  if (s.storage.dtype === 'int32') {
    throw new AttentionInputError(`${name} dtype`, 'a float dtype (float32, float64)', 'int32');
  }
  const data = (s.storage.data as Float64Array).subarray(s.offset, s.offset + s.length);
  return { s, data };
}

/** Views and buffers of one call over their storage windows; all of one float dtype. */
class Operands {
  readonly slots: Slot[] = [];
  dtype: 'float32' | 'float64' | null = null;

  view(name: string, v: StridedView<ReferenceBuffer>): StridedView<Float64Array> {
    if (v === null || typeof v !== 'object') {
      throw new AttentionInputError(name, 'a StridedView { buffer, offset, shape, strides }', v);
    }
    return { ...v, buffer: this.buffer(`${name}.buffer`, v.buffer) };
  }

  buffer(name: string, b: ReferenceBuffer): Float64Array {
    const { s, data } = floatWindow(name, b);
    const dt = s.storage.dtype as 'float32' | 'float64';
    this.dtype ??= dt;
    if (dt !== this.dtype) {
      throw new AttentionInputError(
        `${name} dtype`,
        `${this.dtype} like the call's other operands`,
        dt,
      );
    }
    this.slots.push(s);
    return data;
  }

  /** Round a written view / buffer to float32 when that is its dtype. */
  round(x: Float64Array, v?: Omit<StridedView<unknown>, 'buffer'>): void {
    if (this.dtype !== 'float32') return;
    if (!v) {
      for (let i = 0; i < x.length; i++) x[i] = Math.fround(x[i]!);
      return;
    }
    const [B, N, H, D] = v.shape;
    for (let b = 0; b < B; b++)
      for (let n = 0; n < N; n++)
        for (let h = 0; h < H; h++) {
          const o = v.offset + b * v.strides[0] + n * v.strides[1] + h * v.strides[2];
          for (let d = 0; d < D; d++) x[o + d] = Math.fround(x[o + d]!);
        }
  }
}

const L = (v: StridedView<unknown>): KernelLayout => ({
  offset: v.offset,
  sB: v.strides[0],
  sN: v.strides[1],
  sH: v.strides[2],
});
const len = (b: Float64Array): number => b.length;

export function referenceInference(): DeviceKvCacheAttention<ReferenceBuffer> &
  DeviceVarlenAttention<ReferenceBuffer> {
  return {
    kvCacheCapabilities: REFERENCE_KV_CAPABILITIES,

    attentionWithKvCache(a: KvCacheAttentionArgs<ReferenceBuffer>, opts?: KvCacheOptions) {
      if (a === null || typeof a !== 'object')
        throw new AttentionInputError('args', 'an object', a);
      const ops = new Operands();
      const h: KvCacheAttentionArgs<Float64Array> = {
        ...a,
        q: ops.view('q', a.q),
        kCache: ops.view('kCache', a.kCache),
        vCache: ops.view('vCache', a.vCache),
        out: ops.view('out', a.out),
        kNew: a.kNew && ops.view('kNew', a.kNew),
        vNew: a.vNew && ops.view('vNew', a.vNew),
        lse: a.lse && floatWindow('lse', a.lse).data,
      };
      const p = validateKvCacheArgs(h, opts, len, REFERENCE_KV_CAPABILITIES);
      const g = { ...p, blockTable: h.blockTable };
      if (h.kNew && h.vNew && p.Nnew > 0) {
        appendKvKernel(
          h.kCache.buffer,
          L(h.kCache),
          h.kNew.buffer,
          L(h.kNew),
          p.Nnew,
          h.cacheSeqlens,
          g,
        );
        appendKvKernel(
          h.vCache.buffer,
          L(h.vCache),
          h.vNew.buffer,
          L(h.vNew),
          p.Nnew,
          h.cacheSeqlens,
          g,
        );
      }
      const o = resolveOptions(opts, p.D);
      const output = {
        kind: 'direct' as const,
        out: h.out.buffer,
        outLayout: L(h.out),
        lse: h.lse,
      };
      kvDecodeKernel(
        h.q.buffer,
        L(h.q),
        h.kCache.buffer,
        L(h.kCache),
        h.vCache.buffer,
        L(h.vCache),
        g,
        o,
        1,
        output,
        DEFAULT_BLOCK_SIZE_K,
        'float64',
        0,
        p.B * p.Hk,
      );
      ops.round(h.out.buffer, h.out);
      if (h.lse && a.lse && slot('lse', a.lse).storage.dtype === 'float32') {
        for (let i = 0; i < h.lse.length; i++) h.lse[i] = Math.fround(h.lse[i]!);
      }
    },

    attentionCombine(a: AttentionCombineArgs<ReferenceBuffer>) {
      if (a === null || typeof a !== 'object')
        throw new AttentionInputError('args', 'an object', a);
      const ops = new Operands();
      const h = {
        ...a,
        outPartial: ops.buffer('outPartial', a.outPartial),
        lsePartial: ops.buffer('lsePartial', a.lsePartial),
        out: ops.view('out', a.out),
        lse: a.lse && ops.buffer('lse', a.lse),
      };
      const s = validateCombineArgs(h, len);
      lseCombineKernel(
        h.outPartial,
        h.lsePartial,
        s.S,
        s.B,
        s.Nq,
        s.Hq,
        s.D,
        h.out.buffer,
        L(h.out),
        h.lse,
        0,
        s.B * s.Hq * s.Nq,
      );
      ops.round(h.out.buffer, h.out);
      if (h.lse) ops.round(h.lse);
    },

    varlenAttentionForward(a: VarlenForwardArgs<ReferenceBuffer>, opts?: AttentionOptions) {
      if (a === null || typeof a !== 'object')
        throw new AttentionInputError('args', 'an object', a);
      const ops = new Operands();
      const h = {
        ...a,
        q: ops.view('q', a.q),
        k: ops.view('k', a.k),
        v: ops.view('v', a.v),
        out: ops.view('out', a.out),
        lse: floatWindow('lse', a.lse).data,
      };
      const p = validateVarlenForwardArgs(h, opts, len, REFERENCE_KV_CAPABILITIES);
      const g = { Hq: p.Hq, Hk: p.Hk, D: p.D, totalQ: p.totalQ, cuQ: p.cuQ, cuK: p.cuK };
      varlenForwardKernel(
        h.q.buffer,
        L(h.q),
        h.k.buffer,
        L(h.k),
        h.v.buffer,
        L(h.v),
        h.out.buffer,
        L(h.out),
        h.lse,
        g,
        resolveOptions(opts, p.D),
        DEFAULT_BLOCK_SIZE_Q,
        DEFAULT_BLOCK_SIZE_K,
        'float64',
        0,
        p.B,
      );
      ops.round(h.out.buffer, h.out);
      if (slot('lse', a.lse).storage.dtype === 'float32') ops.round(h.lse);
    },

    varlenAttentionBackward(a: VarlenBackwardArgs<ReferenceBuffer>, opts?: AttentionOptions) {
      if (a === null || typeof a !== 'object')
        throw new AttentionInputError('args', 'an object', a);
      const ops = new Operands();
      const h = {
        ...a,
        dout: ops.view('dout', a.dout),
        q: ops.view('q', a.q),
        k: ops.view('k', a.k),
        v: ops.view('v', a.v),
        out: ops.view('out', a.out),
        lse: floatWindow('lse', a.lse).data,
        dq: ops.view('dq', a.dq),
        dk: ops.view('dk', a.dk),
        dv: ops.view('dv', a.dv),
      };
      const p = validateVarlenBackwardArgs(h, opts, len, REFERENCE_KV_CAPABILITIES);
      const g = { Hq: p.Hq, Hk: p.Hk, D: p.D, totalQ: p.totalQ, cuQ: p.cuQ, cuK: p.cuK };
      varlenBackwardKernel(
        h.dout.buffer,
        L(h.dout),
        h.q.buffer,
        L(h.q),
        h.k.buffer,
        L(h.k),
        h.v.buffer,
        L(h.v),
        h.out.buffer,
        L(h.out),
        h.lse,
        h.dq.buffer,
        L(h.dq),
        h.dk.buffer,
        L(h.dk),
        h.dv.buffer,
        L(h.dv),
        g,
        resolveOptions(opts, p.D),
        DEFAULT_BLOCK_SIZE_Q,
        DEFAULT_BLOCK_SIZE_K,
        'float64',
        0,
        p.B,
      );
      for (const x of [h.dq, h.dk, h.dv]) ops.round(x.buffer, x);
    },
  };
}
