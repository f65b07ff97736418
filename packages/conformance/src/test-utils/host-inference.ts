/**
 * A minimal host "device" implementing the inference contracts with core's kernels on the calling
 * thread (float32 typed arrays as buffers), and deliberately broken variants of it, to prove that the
 * KV-cache and varlen conformance scenarios pass a correct implementation and fail wrong ones.
 */
import {
  appendKvKernel,
  DEFAULT_BLOCK_SIZE_K,
  DEFAULT_BLOCK_SIZE_Q,
  kvDecodeKernel,
  kvSplitHeuristic,
  lseCombineKernel,
  resolveOptions,
  validateCombineArgs,
  validateKvCacheArgs,
  validateVarlenBackwardArgs,
  validateVarlenForwardArgs,
  varlenBackwardKernel,
  varlenForwardKernel,
  type AttentionCombineArgs,
  type AttentionOptions,
  type BufferDType,
  type HostArray,
  type KernelLayout,
  type KvCacheAttentionArgs,
  type KvCacheCapabilities,
  type KvCacheOptions,
  type StridedView,
  type VarlenBackwardArgs,
  type VarlenForwardArgs,
} from '@flashattn/core';

type Buf = Float32Array;

export type InferenceFault =
  | 'append-off-by-one'
  | 'drop-last-key'
  | 'touch-spare-page'
  | 'write-before-validate'
  | 'combine-unweighted'
  | 'split-ignores-lse'
  | 'varlen-lse-layout'
  | 'varlen-dk-not-overwritten';

const L = (v: StridedView<Buf>): KernelLayout => ({
  offset: v.offset,
  sB: v.strides[0],
  sN: v.strides[1],
  sH: v.strides[2],
});

export function hostInferenceDevice(fault?: InferenceFault) {
  const caps: KvCacheCapabilities = {
    dtypes: ['float32'],
    maxHeadDim: 256,
    computeDType: (d) => d,
    pageSizeMultiple: 1,
    maxSplits: 16,
    parallelism: 4,
  };
  const lengthOf = (b: Buf) => b.length;
  const dev = {
    name: `host${fault ? ` (${fault})` : ''}`,
    dtypes: ['float32'] as readonly BufferDType[],
    kvCacheCapabilities: caps,
    attentionCapabilities: caps,
    alloc: (n: number) => new Float32Array(n),
    view: (b: Buf, o: number, n: number) => b.subarray(o, o + n),
    lengthOf,
    dtypeOf: (): BufferDType => 'float32',
    zero: (b: Buf) => void b.fill(0),
    upload: (b: Buf, d: HostArray) => void b.set(d as Float32Array),
    download: async (b: Buf) => b.slice(),
    copy: (d: Buf, s: Buf) => void d.set(s),
    free: () => undefined,

    attentionWithKvCache(a: KvCacheAttentionArgs<Buf>, opts?: KvCacheOptions): void {
      if (fault === 'write-before-validate' && a.kNew && a.blockTable === undefined) {
        // appends first (into row b, clamped into the buffer), validates afterwards
        const [, , Hk, D] = a.kCache.shape;
        for (let b = 0; b < a.q.shape[0]; b++) {
          const at =
            a.kCache.offset +
            b * a.kCache.strides[0] +
            Math.max(0, a.cacheSeqlens[b] ?? 0) * a.kCache.strides[1];
          if (at + Hk * D <= a.kCache.buffer.length) a.kCache.buffer.fill(0, at, at + D);
        }
      }
      if (fault === 'write-before-validate' && a.kNew && a.blockTable !== undefined) {
        const page = a.blockTable[0]!;
        if (page >= 0 && page < a.kCache.shape[0])
          a.kCache.buffer[a.kCache.offset + page * a.kCache.strides[0]] = 0;
      }
      const p = validateKvCacheArgs(a, opts, lengthOf, caps);
      const g = { ...p, blockTable: a.blockTable };
      if (a.kNew && a.vNew && p.Nnew > 0) {
        const lens =
          fault === 'append-off-by-one'
            ? a.cacheSeqlens.map((x) => Math.min(x + 1, p.capacity - p.Nnew))
            : a.cacheSeqlens;
        appendKvKernel(a.kCache.buffer, L(a.kCache), a.kNew.buffer, L(a.kNew), p.Nnew, lens, g);
        appendKvKernel(a.vCache.buffer, L(a.vCache), a.vNew.buffer, L(a.vNew), p.Nnew, lens, g);
      }
      if (fault === 'drop-last-key') g.seqlensK = g.seqlensK.map((x) => Math.max(0, x - 1));
      const o = resolveOptions(opts, p.D);
      const S = Math.max(
        1,
        Math.min(
          opts?.numSplits ||
            kvSplitHeuristic(
              { batch: p.B, seqlenQ: p.Nq, nheadsQ: p.Hq, nheadsK: p.Hk, seqlenK: p.maxSeqlenK },
              caps,
            ),
          p.maxSeqlenK || 1,
        ),
      );
      const units = p.B * p.Hk * S;
      const lse = a.lse ?? new Float32Array(p.B * p.Hq * p.Nq);
      if (S === 1 && fault !== 'split-ignores-lse') {
        kvDecodeKernel(
          a.q.buffer,
          L(a.q),
          a.kCache.buffer,
          L(a.kCache),
          a.vCache.buffer,
          L(a.vCache),
          g,
          o,
          1,
          { kind: 'direct', out: a.out.buffer, outLayout: L(a.out), lse },
          DEFAULT_BLOCK_SIZE_K,
          'float32',
          0,
          units,
        );
      } else {
        const Sx = fault === 'split-ignores-lse' ? Math.max(S, 2) : S;
        const n = p.B * p.Nq * p.Hq;
        const outPartial = new Float32Array(Sx * n * p.D);
        const lsePartial = new Float32Array(Sx * n);
        kvDecodeKernel(
          a.q.buffer,
          L(a.q),
          a.kCache.buffer,
          L(a.kCache),
          a.vCache.buffer,
          L(a.vCache),
          g,
          o,
          Sx,
          { kind: 'partial', outPartial, lsePartial },
          DEFAULT_BLOCK_SIZE_K,
          'float32',
          0,
          p.B * p.Hk * Sx,
        );
        if (fault === 'split-ignores-lse') lsePartial.fill(0); // every split weighted alike
        lseCombineKernel(
          outPartial,
          lsePartial,
          Sx,
          p.B,
          p.Nq,
          p.Hq,
          p.D,
          a.out.buffer,
          L(a.out),
          lse,
          0,
          n,
        );
      }
      if (fault === 'touch-spare-page') {
        const last = a.kCache.shape[0] - 1; // a spare page, or the last cache row
        a.kCache.buffer[
          a.kCache.offset +
            last * a.kCache.strides[0] +
            a.kCache.strides[1] * (a.kCache.shape[1] - 1)
        ] = 0;
      }
    },

    attentionCombine(a: AttentionCombineArgs<Buf>): void {
      const s = validateCombineArgs(a, lengthOf);
      const lsePartial =
        fault === 'combine-unweighted'
          ? a.lsePartial.map((x) => (x === -Infinity ? x : 0))
          : a.lsePartial;
      lseCombineKernel(
        a.outPartial,
        lsePartial,
        s.S,
        s.B,
        s.Nq,
        s.Hq,
        s.D,
        a.out.buffer,
        L(a.out),
        a.lse,
        0,
        s.B * s.Hq * s.Nq,
      );
    },

    varlenAttentionForward(a: VarlenForwardArgs<Buf>, opts?: AttentionOptions): void {
      const p = validateVarlenForwardArgs(a, opts, lengthOf, caps);
      const g = { Hq: p.Hq, Hk: p.Hk, D: p.D, totalQ: p.totalQ, cuQ: p.cuQ, cuK: p.cuK };
      varlenForwardKernel(
        a.q.buffer,
        L(a.q),
        a.k.buffer,
        L(a.k),
        a.v.buffer,
        L(a.v),
        a.out.buffer,
        L(a.out),
        a.lse,
        g,
        resolveOptions(opts, p.D),
        DEFAULT_BLOCK_SIZE_Q,
        DEFAULT_BLOCK_SIZE_K,
        'float32',
        0,
        p.B,
      );
      if (fault === 'varlen-lse-layout') {
        const t = a.lse.slice(); // (Hq, total_q) -> written as (total_q, Hq)
        for (let h = 0; h < p.Hq; h++)
          for (let i = 0; i < p.totalQ; i++) a.lse[i * p.Hq + h] = t[h * p.totalQ + i]!;
      }
    },

    varlenAttentionBackward(a: VarlenBackwardArgs<Buf>, opts?: AttentionOptions): void {
      const p = validateVarlenBackwardArgs(a, opts, lengthOf, caps);
      const g = { Hq: p.Hq, Hk: p.Hk, D: p.D, totalQ: p.totalQ, cuQ: p.cuQ, cuK: p.cuK };
      // the fault leaves out the sequences without queries, so their dk, dv keep whatever was there
      for (let b = 0; b < p.B; b++) {
        if (fault === 'varlen-dk-not-overwritten' && p.cuQ[b + 1] === p.cuQ[b]) continue;
        varlenBackwardKernel(
          a.dout.buffer,
          L(a.dout),
          a.q.buffer,
          L(a.q),
          a.k.buffer,
          L(a.k),
          a.v.buffer,
          L(a.v),
          a.out.buffer,
          L(a.out),
          a.lse,
          a.dq.buffer,
          L(a.dq),
          a.dk.buffer,
          L(a.dk),
          a.dv.buffer,
          L(a.dv),
          g,
          resolveOptions(opts, p.D),
          DEFAULT_BLOCK_SIZE_Q,
          DEFAULT_BLOCK_SIZE_K,
          'float32',
          b,
          b + 1,
        );
      }
    },
  };
  return dev;
}
