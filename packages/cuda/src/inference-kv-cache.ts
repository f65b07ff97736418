/**
 * core's `DeviceKvCacheAttention<CudaBuffer>` (contracts/kv-cache.ts): attention with a KV cache (contiguous with
 * cache_batch_idx, or paged through a block table), k_new / v_new appended in place before attending, split-KV
 * (flash-decoding) and the lse combine on its own. One call enqueues, on the device's stream (native/inference/):
 *   kv_cache_append.cu   k_new, v_new -> the caches at each sequence's length;
 *   decode_attention.cu  one CTA per (split, query-row block, kv head, sequence), the rows being the kv head's
 *                        GQA query group x the new queries, so a K/V row is read once per kv head; when S > 1
 *                        the last split to finish merges the float32 partials by their lse (fused combine).
 * combine_by_lse.cu is the same merge as its own kernel, for attentionCombine.
 * The metadata (cache_seqlens, the block table or cache_batch_idx) travels with the call as host Int32Arrays,
 * uploaded into the call's stream-ordered workspace.
 *
 * Everything is validated before anything is enqueued (core's validateKvCacheArgs plus the dtype rules here), so
 * a rejected call writes nothing. Page sizes: any size >= 1 (pageSizeMultiple 1; flash-attn 2's paged kernels
 * need multiples of 256): every key row is addressed on its own. K / V rows that are 16-byte aligned (view
 * offset and strides multiples of 16 bytes, D a multiple of 8 16-bit or 4 float32 elements) are read with 16-byte
 * loads, any other view with scalar loads. float32 caches are computed in float32 (computeDType(d) = d): the
 * kernels accumulate in float32 whatever the storage.
 */
import {
  AttentionInputError,
  bufferDTypeBytes,
  checkStridedView,
  resolveOptions,
  validateCombineArgs,
  validateKvCacheArgs,
  type AttentionCombineArgs,
  type BufferDType,
  type DType,
  type DeviceKvCacheAttention,
  type KvCacheAttentionArgs,
  type KvCacheCapabilities,
  type KvCacheOptions,
  type StridedView,
} from '@flashattn/core';
import type { CudaBuffer } from './cuda-buffer.js';
import { cudaKvSplits } from './inference-kv-splits.js';
import type { CudaAddon, DevicePtr, NativeStrides } from './native.js';

/** dtype ids of the inference kernels: 0 = float32, 1 = float16, 2 = bfloat16. */
export const KV_DTYPE_ID: Partial<Record<BufferDType, number>> = {
  float32: 0,
  float16: 1,
  bfloat16: 2,
};
export const KV_DTYPES: readonly DType[] = ['float32', 'float16', 'bfloat16'];
/** Most key splits per call (native/inference/kv_params.h kMaxSplits). */
export const KV_MAX_SPLITS = 128;
/** Largest head dim of the decode kernel. */
export const KV_MAX_HEAD_DIM = 256;
/**
 * Resident decode CTAs per SM, the split heuristic's parallelism per SM: 128 threads at 125-128 registers and 35 KB
 * of shared memory (decode_attention.cu's 16-bit D <= 128 tuning, ptxas -v) leave room for 4. The H100 sweep of
 * 2026-12-07 (BENCHMARKS.md, CUDA decode attention) timed that kernel with the splits of 4 and of 8 per SM: 4 was
 * faster at every B = 1 and 4 shape (B = 1, L = 32k: 57 splits 53.6% of copy, 109 splits 42.2%).
 */
export const KV_CTAS_PER_SM = 4;

/** One KV-cache call as the addon takes it (native/addon/inference.cpp, read_kv). */
export interface NativeKvCache {
  dtype: number;
  batch: number;
  seqlenQ: number;
  nheadsQ: number;
  nheadsK: number;
  headDim: number;
  seqlenNew: number;
  /** Paged: page_size; contiguous: N_max. */
  pageSize: number;
  /** Block-table entries per sequence (contiguous: 1). */
  blocksPerSeq: number;
  /** Pages (contiguous: B_cache rows). */
  numBlocks: number;
  numSplits: number;
  keysPerSplit: number;
  softmaxScale: number;
  windowLeft: number;
  windowRight: number;
  vectorLoads: boolean;
  q: DevicePtr;
  qStrides: NativeStrides;
  k: DevicePtr;
  kStrides: NativeStrides;
  v: DevicePtr;
  vStrides: NativeStrides;
  out: DevicePtr;
  outStrides: NativeStrides;
  kNew?: DevicePtr | null;
  kNewStrides?: NativeStrides;
  vNew?: DevicePtr | null;
  vNewStrides?: NativeStrides;
  lse: DevicePtr | null;
  /** (B) */
  cacheSeqlens: Int32Array;
  /** (B, blocksPerSeq): the block table, or cache_batch_idx (blocksPerSeq 1). */
  table: Int32Array;
}

export interface NativeCombine {
  dtype: number;
  numSplits: number;
  batch: number;
  seqlenQ: number;
  nheadsQ: number;
  headDim: number;
  outPartial: DevicePtr;
  lsePartial: DevicePtr;
  out: DevicePtr;
  outStrides: NativeStrides;
  lse: DevicePtr | null;
}

/** The addon's inference entry points (native/addon/inference.cpp). */
export interface InferenceAddon {
  kvCacheAttention(device: number, a: NativeKvCache): void;
  attentionCombine(device: number, a: NativeCombine): void;
  /** ms per KV-cache call (metadata uploaded once, before timing). */
  kvCacheBenchmark(
    device: number,
    a: NativeKvCache,
    warmup: number,
    iters: number,
  ): Promise<number[]>;
  /** ms per device-to-device cudaMemcpyAsync of `bytes`. */
  copyBenchmark(
    device: number,
    dst: DevicePtr,
    src: DevicePtr,
    bytes: number,
    warmup: number,
    iters: number,
  ): Promise<number[]>;
}

/** A live buffer as the inference code needs it. */
export interface LiveBuffer {
  dtype: BufferDType;
  length: number;
  /** Device address of element `offset` of the buffer. */
  ptr(offset?: number): DevicePtr;
}

/** What the inference classes take from their CudaDevice. */
export interface InferenceDeps {
  addon: CudaAddon & InferenceAddon;
  device: number;
  /** SMs x resident CTAs, for cudaKvSplits (kvSplitHeuristic). */
  parallelism: number;
  /** Throws after dispose(). */
  check(): void;
  /** The buffer's state, or an AttentionInputError naming `name`. */
  live(name: string, buf: unknown): LiveBuffer;
  /** Run `task` in device order, CUDA errors mapped to typed errors. */
  run<R>(task: () => Promise<R> | R): Promise<R>;
}

const strides3 = (v: StridedView<unknown>): NativeStrides => [
  v.strides[0],
  v.strides[1],
  v.strides[2],
];

/** Rows of this view 16-byte aligned: its address, strides and D multiples of the 16-byte vector. */
function rowsAligned(b: LiveBuffer, v: StridedView<CudaBuffer>): boolean {
  const vec = 16 / bufferDTypeBytes(b.dtype);
  return (
    Number(b.ptr(v.offset) % 16n) === 0 &&
    v.shape[3] % vec === 0 &&
    v.strides[0] % vec === 0 &&
    v.strides[1] % vec === 0 &&
    v.strides[2] % vec === 0
  );
}

export class CudaKvCacheAttention implements DeviceKvCacheAttention<CudaBuffer> {
  readonly kvCacheCapabilities: KvCacheCapabilities;

  constructor(private readonly deps: InferenceDeps) {
    this.kvCacheCapabilities = {
      dtypes: KV_DTYPES,
      maxHeadDim: KV_MAX_HEAD_DIM,
      computeDType: (d) => d,
      pageSizeMultiple: 1,
      maxSplits: KV_MAX_SPLITS,
      parallelism: deps.parallelism,
    };
  }

  /** Resolve every buffer of the call first (a foreign or freed one is named before core reads lengths). */
  #buffers(named: Array<[string, unknown]>): Map<unknown, LiveBuffer> {
    const m = new Map<unknown, LiveBuffer>();
    for (const [name, b] of named) if (b !== undefined) m.set(b, this.deps.live(name, b));
    return m;
  }

  /** The float dtype shared by views, or an AttentionInputError naming the first that differs. */
  #dtype(views: Array<[string, LiveBuffer]>): BufferDType {
    const [first, b0] = views[0]!;
    if (KV_DTYPE_ID[b0.dtype] === undefined)
      throw new AttentionInputError(`${first}.buffer dtype`, KV_DTYPES.join(', '), b0.dtype);
    for (const [name, b] of views.slice(1)) {
      if (b.dtype !== b0.dtype)
        throw new AttentionInputError(`${name}.buffer dtype`, `${b0.dtype} like ${first}`, b.dtype);
    }
    return b0.dtype;
  }

  /** The addon arguments of a validated call (also used by the decode benchmark). */
  nativeArgs(args: KvCacheAttentionArgs<CudaBuffer>, opts?: KvCacheOptions): NativeKvCache | null {
    this.deps.check();
    const a = args as Partial<KvCacheAttentionArgs<CudaBuffer>> | null;
    const named: Array<[string, unknown]> = [];
    if (a !== null && typeof a === 'object') {
      for (const n of ['q', 'kCache', 'vCache', 'out', 'kNew', 'vNew'] as const) {
        const v = a[n];
        if (v !== null && typeof v === 'object') named.push([`${n}.buffer`, v.buffer]);
      }
      if (a.lse !== undefined) named.push(['lse', a.lse]);
    }
    const bufs = this.#buffers(named);
    const lengthOf = (b: CudaBuffer) => (bufs.get(b) ?? this.deps.live('buffer', b)).length;
    const pr = validateKvCacheArgs(args, opts, lengthOf, this.kvCacheCapabilities);
    const st = (v: StridedView<CudaBuffer>) => bufs.get(v.buffer)!;
    const views: Array<[string, StridedView<CudaBuffer>]> = [
      ['q', args.q],
      ['kCache', args.kCache],
      ['vCache', args.vCache],
      ['out', args.out],
      ...(args.kNew && args.vNew
        ? ([
            ['kNew', args.kNew],
            ['vNew', args.vNew],
          ] as Array<[string, StridedView<CudaBuffer>]>)
        : []),
    ];
    const dtype = this.#dtype(views.map(([n, v]) => [n, st(v)]));
    const lse = args.lse !== undefined ? bufs.get(args.lse)! : undefined;
    if (lse && lse.dtype !== 'float32')
      throw new AttentionInputError('lse dtype', 'float32', lse.dtype);
    const { B, Nq, Hq, Hk, D, Nnew } = pr;
    if (D < 1)
      throw new AttentionInputError('q.shape[3] (headdim)', `between 1 and ${KV_MAX_HEAD_DIM}`, D);
    if (B > 65535 || Hq > 65535 || Nq * (Hq / Hk) > 2 ** 24) {
      throw new AttentionInputError(
        'q.shape',
        'batch and heads at most 65535, (Hq / Hk) * Nq at most 2^24 (CUDA grid limits)',
        `[${args.q.shape.join(', ')}]`,
      );
    }
    if (B === 0) return null;
    const ns = opts?.numSplits ?? 0;
    const wanted =
      ns === 0
        ? cudaKvSplits(
            { batch: B, seqlenQ: Nq, nheadsQ: Hq, nheadsK: Hk, seqlenK: pr.maxSeqlenK },
            this.kvCacheCapabilities,
          )
        : ns;
    const S = Math.max(1, Math.min(wanted, KV_MAX_SPLITS, pr.maxSeqlenK));
    const o = resolveOptions(opts, D);
    const k = st(args.kCache);
    const v = st(args.vCache);
    const ptrOf = (x: StridedView<CudaBuffer>) => st(x).ptr(x.offset);
    return {
      dtype: KV_DTYPE_ID[dtype]!,
      batch: B,
      seqlenQ: Nq,
      nheadsQ: Hq,
      nheadsK: Hk,
      headDim: D,
      seqlenNew: Nnew,
      pageSize: Math.max(1, pr.pageSize),
      blocksPerSeq: pr.paged ? pr.maxBlocksPerSeq : 1,
      numBlocks: Math.max(1, pr.numBlocks),
      numSplits: S,
      keysPerSplit: Math.max(1, Math.ceil(pr.maxSeqlenK / S)),
      softmaxScale: o.softmaxScale,
      windowLeft: o.windowLeft,
      windowRight: o.windowRight,
      vectorLoads: rowsAligned(k, args.kCache) && rowsAligned(v, args.vCache),
      q: ptrOf(args.q),
      qStrides: strides3(args.q),
      k: ptrOf(args.kCache),
      kStrides: strides3(args.kCache),
      v: ptrOf(args.vCache),
      vStrides: strides3(args.vCache),
      out: ptrOf(args.out),
      outStrides: strides3(args.out),
      ...(args.kNew && args.vNew
        ? {
            kNew: ptrOf(args.kNew),
            kNewStrides: strides3(args.kNew),
            vNew: ptrOf(args.vNew),
            vNewStrides: strides3(args.vNew),
          }
        : {}),
      lse: lse ? lse.ptr() : null,
      cacheSeqlens: args.cacheSeqlens.slice(),
      table: pr.paged ? args.blockTable!.slice() : pr.batchIdx.slice(),
    };
  }

  async attentionWithKvCache(
    args: KvCacheAttentionArgs<CudaBuffer>,
    opts?: KvCacheOptions,
  ): Promise<void> {
    const call = this.nativeArgs(args, opts);
    if (!call) return;
    return this.deps.run(() => this.deps.addon.kvCacheAttention(this.deps.device, call));
  }

  async attentionCombine(args: AttentionCombineArgs<CudaBuffer>): Promise<void> {
    this.deps.check();
    const a = args as Partial<AttentionCombineArgs<CudaBuffer>> | null;
    const named: Array<[string, unknown]> = [];
    if (a !== null && typeof a === 'object') {
      named.push(['outPartial', a.outPartial], ['lsePartial', a.lsePartial]);
      if (a.out !== null && typeof a.out === 'object') named.push(['out.buffer', a.out.buffer]);
      if (a.lse !== undefined) named.push(['lse', a.lse]);
    }
    const bufs = this.#buffers(named);
    const lengthOf = (b: CudaBuffer) => (bufs.get(b) ?? this.deps.live('buffer', b)).length;
    const { S, B, Nq, Hq, D } = validateCombineArgs(args, lengthOf);
    checkStridedView('out', args.out, lengthOf(args.out.buffer));
    for (const [name, b] of [
      ['outPartial dtype', args.outPartial],
      ['lsePartial dtype', args.lsePartial],
      ...(args.lse !== undefined ? [['lse dtype', args.lse] as const] : []),
    ] as const) {
      const d = bufs.get(b)!.dtype;
      if (d !== 'float32') throw new AttentionInputError(name, 'float32', d);
    }
    const out = bufs.get(args.out.buffer)!;
    const dtype = KV_DTYPE_ID[out.dtype];
    if (dtype === undefined)
      throw new AttentionInputError('out.buffer dtype', KV_DTYPES.join(', '), out.dtype);
    if (S > KV_MAX_SPLITS)
      throw new AttentionInputError('numSplits', `at most ${KV_MAX_SPLITS}`, S);
    if (B * Nq * Hq === 0) return;
    const call: NativeCombine = {
      dtype,
      numSplits: S,
      batch: B,
      seqlenQ: Nq,
      nheadsQ: Hq,
      headDim: D,
      outPartial: bufs.get(args.outPartial)!.ptr(),
      lsePartial: bufs.get(args.lsePartial)!.ptr(),
      out: out.ptr(args.out.offset),
      outStrides: strides3(args.out),
      lse: args.lse !== undefined ? bufs.get(args.lse)!.ptr() : null,
    };
    return this.deps.run(() => this.deps.addon.attentionCombine(this.deps.device, call));
  }
}
