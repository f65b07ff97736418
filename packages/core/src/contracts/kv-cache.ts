/**
 * Inference attention on device buffers: attention with a KV cache (flash-attn's
 * `flash_attn_with_kvcache`), split-KV (flash-decoding) with its lse-combine step exposed on its own,
 * and variable-length (packed) batches (flash-attn's `flash_attn_varlen_func`), forward and backward.
 * Semantics are those of core's float64 references (kv-cache-reference.ts); the conformance suite
 * (@flashattn/conformance's kv-cache and varlen scenarios) checks every backend against them.
 *
 * Operands are `StridedView`s (device-attention.ts): (B, N, H, D) windows with free batch, row and head
 * strides and a contiguous head dim, so q, k_new and v_new are read in place from the packed qkv
 * projection. A packed varlen operand is a view of shape (1, total, H, D).
 *
 * The small integer metadata (cache_seqlens, block_table, cache_batch_idx, cu_seqlens) is passed as
 * host `Int32Array`s, not device buffers: every value is validated before anything runs, so a bad
 * block table or a cache length above its capacity is a typed `AttentionInputError` naming the
 * argument, and nothing is written to the cache when a call is rejected. The arrays are tiny (B or
 * B * max_blocks_per_seq entries) and a generation loop's scheduler owns them on the host anyway;
 * a GPU backend uploads them with the launch.
 *
 * KV cache (`attentionWithKvCache`):
 *   q:        (B, Nq, Hq, D)  the new queries
 *   kCache:   contiguous (B_cache, N_max, Hk, D), or paged (num_blocks, page_size, Hk, D) with
 *   blockTable (B, max_blocks_per_seq): logical key j of sequence b lives in page
 *             blockTable[b * max_blocks_per_seq + floor(j / page_size)], row j % page_size
 *   cacheSeqlens (B): keys already in the cache for each sequence
 *   kNew, vNew (B, N_new, Hk, D), optional: written into the cache in place at logical positions
 *             cacheSeqlens[b] .. cacheSeqlens[b] + N_new - 1 BEFORE attending (the caller advances
 *             its cacheSeqlens by N_new afterwards, as with flash-attn)
 *   cacheBatchIdx (B), optional, contiguous cache only: sequence b uses cache row cacheBatchIdx[b]
 *   Sequence b attends to its Lk_b = cacheSeqlens[b] + N_new keys with the mask of options.ts aligned
 *   to its own end: query row i sits at key position i + Lk_b - Nq (causal, sliding window). GQA/MQA
 *   as everywhere: query head h reads kv head floor(h / (Hq / Hk)). Lk_b = 0: out = 0, lse = -Infinity.
 *
 * Split-KV: the keys of each (b, kv head) are cut into `numSplits` contiguous ranges computed
 * independently (each with its own out and lse), then merged by `combineByLse`'s rule:
 *   lse = log sum_s exp(lse_s),  out = sum_s exp(lse_s - lse) out_s
 * (a split that saw no key has lse_s = -Infinity and weight 0). `kvSplitHeuristic` picks the count.
 *
 * Varlen: sequence b owns packed query rows [cuSeqlensQ[b], cuSeqlensQ[b + 1]) and key rows
 * [cuSeqlensK[b], cuSeqlensK[b + 1]); it is ordinary attention of those rows (mask per sequence,
 * bottom-right aligned as in options.ts). lse is (Hq, total_q) float32 (flash-attn's varlen layout).
 * The backward overwrites dq, dk, dv (keys no query sees get 0).
 */
import { AttentionInputError, describe } from '../errors.js';
import type { AttentionOptions } from '../options.js';
import { validateOptions } from '../validate.js';
import type { BackendCapabilities } from './attention-backend.js';
import { checkStridedView, type StridedView } from './device-attention.js';

// ---------------------------------------------------------------------------------------------------
// Arguments
// ---------------------------------------------------------------------------------------------------

export interface KvCacheAttentionArgs<Buf> {
  q: StridedView<Buf>; // (B, Nq, Hq, D)
  /** Contiguous (B_cache, N_max, Hk, D) or, with blockTable, paged (num_blocks, page_size, Hk, D). */
  kCache: StridedView<Buf>;
  vCache: StridedView<Buf>; // same shape as kCache
  /** (B) keys already cached per sequence, before appending kNew. */
  cacheSeqlens: Int32Array;
  kNew?: StridedView<Buf>; // (B, N_new, Hk, D), appended in place before attending
  vNew?: StridedView<Buf>; // (B, N_new, Hk, D)
  /** (B, max_blocks_per_seq), row-major: the paged cache's page of each logical block. */
  blockTable?: Int32Array;
  /** (B): the contiguous cache's row of each sequence (default b). Not with blockTable. */
  cacheBatchIdx?: Int32Array;
  out: StridedView<Buf>; // (B, Nq, Hq, D), written
  /** (B, Hq, Nq) float32 contiguous, written when given. */
  lse?: Buf;
}

export interface KvCacheOptions extends AttentionOptions {
  /**
   * Number of key splits (flash-decoding). Absent or 0: the backend's heuristic
   * (`kvSplitHeuristic`); 1: no split; n > 1: forced (clamped to the longest sequence's key count).
   */
  numSplits?: number;
}

/** Option keys of KvCacheOptions beyond AttentionOptions (for validateOptions). */
export const KV_CACHE_OPTION_KEYS: readonly string[] = ['numSplits'];

/**
 * Partial attention results over S disjoint key sets, and where their merge goes:
 *   outPartial (S, B, Nq, Hq, D) float32 contiguous,  lsePartial (S, B, Hq, Nq) float32 contiguous,
 *   out (B, Nq, Hq, D) view, written;  lse (B, Hq, Nq) float32, written when given.
 */
export interface AttentionCombineArgs<Buf> {
  outPartial: Buf;
  lsePartial: Buf;
  numSplits: number;
  out: StridedView<Buf>;
  lse?: Buf;
}

export interface VarlenForwardArgs<Buf> {
  q: StridedView<Buf>; // (1, total_q, Hq, D)
  k: StridedView<Buf>; // (1, total_k, Hk, D)
  v: StridedView<Buf>; // (1, total_k, Hk, D)
  /** (B + 1) int32, cuSeqlensQ[0] = 0, non-decreasing, last = total_q. */
  cuSeqlensQ: Int32Array;
  cuSeqlensK: Int32Array; // (B + 1), last = total_k
  /** Upper bounds of the per-sequence lengths (flash-attn's max_seqlen_q / _k; checked). */
  maxSeqlenQ: number;
  maxSeqlenK: number;
  out: StridedView<Buf>; // (1, total_q, Hq, D), written
  lse: Buf; // (Hq, total_q) float32, written
}

export interface VarlenBackwardArgs<Buf> {
  dout: StridedView<Buf>; // (1, total_q, Hq, D)
  q: StridedView<Buf>;
  k: StridedView<Buf>;
  v: StridedView<Buf>;
  out: StridedView<Buf>; // the forward's out
  lse: Buf; // the forward's lse (Hq, total_q)
  cuSeqlensQ: Int32Array;
  cuSeqlensK: Int32Array;
  maxSeqlenQ: number;
  maxSeqlenK: number;
  dq: StridedView<Buf>; // (1, total_q, Hq, D), written
  dk: StridedView<Buf>; // (1, total_k, Hk, D), written
  dv: StridedView<Buf>; // (1, total_k, Hk, D), written
}

export interface KvCacheCapabilities extends BackendCapabilities {
  /** Page sizes must be a multiple of this (flash-attn 2 CUDA: 256; the CPU: 1). */
  readonly pageSizeMultiple: number;
  /** Most key splits one call may use. */
  readonly maxSplits: number;
  /**
   * Parallel units the split heuristic tries to fill (worker threads on the CPU, SMs x blocks per SM
   * on a GPU).
   */
  readonly parallelism: number;
}

/** KV-cache attention, split-KV and the lse combine over device buffers. */
export interface DeviceKvCacheAttention<Buf> {
  readonly kvCacheCapabilities: KvCacheCapabilities;
  attentionWithKvCache(
    args: KvCacheAttentionArgs<Buf>,
    opts?: KvCacheOptions,
  ): void | Promise<void>;
  attentionCombine(args: AttentionCombineArgs<Buf>): void | Promise<void>;
}

/** Variable-length (packed) attention forward and backward over device buffers. */
export interface DeviceVarlenAttention<Buf> {
  varlenAttentionForward(
    args: VarlenForwardArgs<Buf>,
    opts?: AttentionOptions,
  ): void | Promise<void>;
  varlenAttentionBackward(
    args: VarlenBackwardArgs<Buf>,
    opts?: AttentionOptions,
  ): void | Promise<void>;
}

/** True when `x` implements the KV-cache contract (GPT-2 generation uses the cache then). */
export function hasKvCacheAttention<T extends object>(
  x: T,
): x is T & DeviceKvCacheAttention<unknown> {
  // `in`, not a read: a backend's capabilities may be a getter that throws once it is disposed.
  const o = x as Partial<DeviceKvCacheAttention<unknown>>;
  return typeof o.attentionWithKvCache === 'function' && 'kvCacheCapabilities' in o;
}

/** True when `x` implements the varlen contract. */
export function hasVarlenAttention<T extends object>(
  x: T,
): x is T & DeviceVarlenAttention<unknown> {
  return (
    typeof (x as Partial<DeviceVarlenAttention<unknown>>).varlenAttentionForward === 'function'
  );
}

// ---------------------------------------------------------------------------------------------------
// The split heuristic
// ---------------------------------------------------------------------------------------------------

/** Keys below which a split is not worth its combine (one S tile of the CPU/GPU kernels). */
export const MIN_KEYS_PER_SPLIT = 64;

/**
 * flash-decoding's choice of splits: when the (batch, head, query block) work units already fill the
 * device (>= 80% of `parallelism`), 1; otherwise the count in [1, maxSplits] with the best wave
 * efficiency units * s / (ceil(units * s / parallelism) * parallelism), taking the smallest count
 * within 85% of the best (more splits cost combine work) - the rule of flash-attn's
 * `num_splits_heuristic`, with each split keeping at least MIN_KEYS_PER_SPLIT keys.
 *   units = B * Hk * ceil(Nq * (Hq / Hk) / 64)  (a kv head's query group is one unit of decode work).
 */
export function kvSplitHeuristic(
  p: { batch: number; seqlenQ: number; nheadsQ: number; nheadsK: number; seqlenK: number },
  caps: Pick<KvCacheCapabilities, 'parallelism' | 'maxSplits'>,
): number {
  const group = p.nheadsQ / p.nheadsK;
  const units = p.batch * p.nheadsK * Math.ceil((p.seqlenQ * group) / 64);
  const P = Math.max(1, caps.parallelism);
  if (units === 0 || units >= 0.8 * P) return 1;
  const most = Math.max(
    1,
    Math.min(caps.maxSplits, Math.floor(p.seqlenK / MIN_KEYS_PER_SPLIT), Math.ceil(P / units) * 2),
  );
  const eff = (s: number): number => {
    const work = units * s;
    return work / (Math.ceil(work / P) * P);
  };
  let best = 0;
  for (let s = 1; s <= most; s++) best = Math.max(best, eff(s));
  for (let s = 1; s <= most; s++) if (eff(s) >= 0.85 * best) return s;
  return 1;
}

// ---------------------------------------------------------------------------------------------------
// Validation (every check before anything is written)
// ---------------------------------------------------------------------------------------------------

function int32Array(name: string, x: unknown, n?: number): Int32Array {
  if (!(x instanceof Int32Array)) throw new AttentionInputError(name, 'an Int32Array', describe(x));
  if (n !== undefined && x.length !== n)
    throw new AttentionInputError(`${name}.length`, String(n), x.length);
  return x;
}

function sameShape(name: string, v: StridedView<unknown>, want: readonly number[]): void {
  if (v.shape.some((x, i) => x !== want[i])) {
    throw new AttentionInputError(
      `${name}.shape`,
      `[${want.join(', ')}]`,
      `[${v.shape.join(', ')}]`,
    );
  }
}

function headRatio(Hq: number, Hk: number): void {
  if (Hk === 0 || Hq % Hk !== 0) {
    throw new AttentionInputError(
      'kCache.shape[2] (nheads_k)',
      `a divisor of the query heads ${Hq} (GQA/MQA)`,
      Hk,
    );
  }
}

/** The sizes of a validated KV-cache call. */
export interface KvCacheProblem {
  B: number;
  Nq: number;
  Hq: number;
  Hk: number;
  D: number;
  /** Keys appended per sequence (0 without kNew). */
  Nnew: number;
  paged: boolean;
  /** Paged: page_size; contiguous: N_max. */
  pageSize: number;
  /** Paged: num_blocks; contiguous: B_cache. */
  numBlocks: number;
  /** Paged: max_blocks_per_seq; contiguous: 1. */
  maxBlocksPerSeq: number;
  /** Keys one sequence can hold: max_blocks_per_seq * page_size, or N_max. */
  capacity: number;
  /** (B) keys each sequence attends to: cacheSeqlens[b] + Nnew. */
  seqlensK: Int32Array;
  /** (B) the contiguous cache row of each sequence (b, or cacheBatchIdx[b]). */
  batchIdx: Int32Array;
  maxSeqlenK: number;
}

/**
 * Validate a KV-cache call completely (views inside their buffers, shapes, metadata ranges, options)
 * and return its sizes. `lengthOf` gives a buffer's length in elements; `lseLength` the lse buffer's.
 * Throws AttentionInputError naming the argument; the caller has written nothing yet.
 */
export function validateKvCacheArgs<Buf>(
  a: KvCacheAttentionArgs<Buf>,
  opts: KvCacheOptions | undefined,
  lengthOf: (b: Buf) => number,
  caps: Pick<KvCacheCapabilities, 'pageSizeMultiple' | 'maxHeadDim'>,
): KvCacheProblem {
  if (a === null || typeof a !== 'object') {
    throw new AttentionInputError(
      'args',
      'an object { q, kCache, vCache, cacheSeqlens, out, ... }',
      describe(a),
    );
  }
  validateOptions(opts, KV_CACHE_OPTION_KEYS);
  const ns = opts?.numSplits;
  if (ns !== undefined && (!Number.isInteger(ns) || ns < 0)) {
    throw new AttentionInputError(
      'opts.numSplits',
      'an integer >= 0 (0 = heuristic)',
      describe(ns),
    );
  }
  const views: Array<[string, StridedView<Buf> | undefined]> = [
    ['q', a.q],
    ['kCache', a.kCache],
    ['vCache', a.vCache],
    ['out', a.out],
    ['kNew', a.kNew],
    ['vNew', a.vNew],
  ];
  for (const [name, v] of views) {
    if (v === undefined && (name === 'kNew' || name === 'vNew')) continue;
    if (v === null || typeof v !== 'object') {
      throw new AttentionInputError(
        name,
        'a StridedView { buffer, offset, shape, strides }',
        describe(v),
      );
    }
    checkStridedView(name, v, lengthOf(v.buffer));
  }
  if ((a.kNew === undefined) !== (a.vNew === undefined)) {
    throw new AttentionInputError(
      a.kNew ? 'vNew' : 'kNew',
      'given together with ' + (a.kNew ? 'kNew' : 'vNew'),
      'undefined',
    );
  }
  const [B, Nq, Hq, D] = a.q.shape;
  if (D > caps.maxHeadDim)
    throw new AttentionInputError('q.shape[3] (headdim)', `<= ${caps.maxHeadDim}`, D);
  const [nb, ps, Hk, Dk] = a.kCache.shape;
  if (Dk !== D) throw new AttentionInputError('kCache.shape[3] (headdim)', `${D} to match q`, Dk);
  headRatio(Hq, Hk);
  sameShape('vCache', a.vCache, a.kCache.shape);
  sameShape('out', a.out, a.q.shape);
  let Nnew = 0;
  if (a.kNew && a.vNew) {
    Nnew = a.kNew.shape[1];
    sameShape('kNew', a.kNew, [B, Nnew, Hk, D]);
    sameShape('vNew', a.vNew, [B, Nnew, Hk, D]);
  }
  if (a.lse !== undefined) {
    const n = lengthOf(a.lse);
    if (n !== B * Hq * Nq)
      throw new AttentionInputError('lse.length', `B * Hq * Nq = ${B * Hq * Nq}`, n);
  }
  const seqlens = int32Array('cacheSeqlens', a.cacheSeqlens, B);
  const paged = a.blockTable !== undefined;
  let maxBlocksPerSeq = 1;
  let capacity = ps;
  const batchIdx = new Int32Array(B);
  if (paged) {
    if (a.cacheBatchIdx !== undefined) {
      throw new AttentionInputError(
        'cacheBatchIdx',
        'undefined with a paged cache (blockTable)',
        'an Int32Array',
      );
    }
    const bt = int32Array('blockTable', a.blockTable);
    if (B > 0 && (bt.length === 0 || bt.length % B !== 0)) {
      throw new AttentionInputError(
        'blockTable.length',
        `a positive multiple of B = ${B} (B, max_blocks_per_seq)`,
        bt.length,
      );
    }
    if (ps < 1 || ps % caps.pageSizeMultiple !== 0) {
      throw new AttentionInputError(
        'kCache.shape[1] (page_size)',
        `a positive multiple of ${caps.pageSizeMultiple} (this backend's paged kernels)`,
        ps,
      );
    }
    maxBlocksPerSeq = B > 0 ? bt.length / B : 0;
    capacity = maxBlocksPerSeq * ps;
  } else {
    if (a.cacheBatchIdx !== undefined) {
      const idx = int32Array('cacheBatchIdx', a.cacheBatchIdx, B);
      for (let b = 0; b < B; b++) {
        if (!(idx[b]! >= 0 && idx[b]! < nb)) {
          throw new AttentionInputError(`cacheBatchIdx[${b}]`, `a cache row in [0, ${nb})`, idx[b]);
        }
      }
      // Two sequences appending into one cache row would race; reject it like an out-of-range row.
      if (Nnew > 0) {
        const seen = new Set<number>();
        for (let b = 0; b < B; b++) {
          if (seen.has(idx[b]!)) {
            throw new AttentionInputError(
              `cacheBatchIdx[${b}]`,
              'distinct rows when kNew is appended',
              idx[b],
            );
          }
          seen.add(idx[b]!);
        }
      }
      batchIdx.set(idx);
    } else {
      if (B > nb)
        throw new AttentionInputError(
          'kCache.shape[0] (batch)',
          `>= B = ${B} without cacheBatchIdx`,
          nb,
        );
      for (let b = 0; b < B; b++) batchIdx[b] = b;
    }
  }
  const seqlensK = new Int32Array(B);
  let maxSeqlenK = 0;
  for (let b = 0; b < B; b++) {
    const L = seqlens[b]!;
    if (!(L >= 0 && L + Nnew <= capacity)) {
      throw new AttentionInputError(
        `cacheSeqlens[${b}]`,
        `an integer in [0, ${capacity - Nnew}] (capacity ${capacity}${paged ? ' = max_blocks_per_seq * page_size' : ' = N_max'}, minus ${Nnew} appended)`,
        L,
      );
    }
    seqlensK[b] = L + Nnew;
    maxSeqlenK = Math.max(maxSeqlenK, L + Nnew);
  }
  if (paged) {
    const bt = a.blockTable!;
    const written = new Set<number>();
    for (let b = 0; b < B; b++) {
      const used = Math.ceil(seqlensK[b]! / ps);
      for (let j = 0; j < used; j++) {
        const page = bt[b * maxBlocksPerSeq + j]!;
        if (!(page >= 0 && page < nb)) {
          throw new AttentionInputError(
            `blockTable[${b}, ${j}]`,
            `a page in [0, ${nb}) (num_blocks) for sequence ${b}'s ${seqlensK[b]} keys`,
            page,
          );
        }
      }
      // Pages that receive appended keys must belong to one sequence only.
      if (Nnew > 0) {
        for (let j = Math.floor(seqlens[b]! / ps); j < used; j++) {
          const page = bt[b * maxBlocksPerSeq + j]!;
          if (written.has(page)) {
            throw new AttentionInputError(
              `blockTable[${b}, ${j}]`,
              'a page no other sequence appends into',
              page,
            );
          }
          written.add(page);
        }
      }
    }
  }
  return {
    B,
    Nq,
    Hq,
    Hk,
    D,
    Nnew,
    paged,
    pageSize: ps,
    numBlocks: nb,
    maxBlocksPerSeq,
    capacity,
    seqlensK,
    batchIdx,
    maxSeqlenK,
  };
}

/** Element offset of logical key j of sequence b, kv head hk, in a cache view (paged or contiguous). */
export function cacheRowOffset(
  v: Pick<StridedView<unknown>, 'offset' | 'strides'>,
  p: Pick<KvCacheProblem, 'paged' | 'pageSize' | 'maxBlocksPerSeq' | 'batchIdx'>,
  blockTable: Int32Array | undefined,
  b: number,
  j: number,
  hk: number,
): number {
  const [sB, sN, sH] = v.strides;
  if (p.paged) {
    const page = blockTable![b * p.maxBlocksPerSeq + Math.floor(j / p.pageSize)]!;
    return v.offset + page * sB + (j % p.pageSize) * sN + hk * sH;
  }
  return v.offset + p.batchIdx[b]! * sB + j * sN + hk * sH;
}

/** Validate a combine call; returns (S, B, Nq, Hq, D). */
export function validateCombineArgs<Buf>(
  a: AttentionCombineArgs<Buf>,
  lengthOf: (b: Buf) => number,
): { S: number; B: number; Nq: number; Hq: number; D: number } {
  if (a === null || typeof a !== 'object') {
    throw new AttentionInputError(
      'args',
      'an object { outPartial, lsePartial, numSplits, out }',
      describe(a),
    );
  }
  const S = a.numSplits;
  if (!Number.isInteger(S) || S < 1)
    throw new AttentionInputError('numSplits', 'a positive integer', describe(S));
  if (a.out === null || typeof a.out !== 'object') {
    throw new AttentionInputError(
      'out',
      'a StridedView { buffer, offset, shape, strides }',
      describe(a.out),
    );
  }
  checkStridedView('out', a.out, lengthOf(a.out.buffer));
  const [B, Nq, Hq, D] = a.out.shape;
  const want = S * B * Nq * Hq * D;
  if (lengthOf(a.outPartial) !== want) {
    throw new AttentionInputError(
      'outPartial.length',
      `S * B * Nq * Hq * D = ${want}`,
      lengthOf(a.outPartial),
    );
  }
  if (lengthOf(a.lsePartial) !== S * B * Hq * Nq) {
    throw new AttentionInputError(
      'lsePartial.length',
      `S * B * Hq * Nq = ${S * B * Hq * Nq}`,
      lengthOf(a.lsePartial),
    );
  }
  if (a.lse !== undefined && lengthOf(a.lse) !== B * Hq * Nq) {
    throw new AttentionInputError('lse.length', `B * Hq * Nq = ${B * Hq * Nq}`, lengthOf(a.lse));
  }
  return { S, B, Nq, Hq, D };
}

/** The sizes of a validated varlen call. */
export interface VarlenProblem {
  B: number;
  totalQ: number;
  totalK: number;
  Hq: number;
  Hk: number;
  D: number;
  cuQ: Int32Array; // (B + 1)
  cuK: Int32Array; // (B + 1)
}

function cuSeqlens(
  name: string,
  x: unknown,
  total: number,
  maxLen: number,
  maxName: string,
): Int32Array {
  const cu = int32Array(name, x);
  if (cu.length < 1) throw new AttentionInputError(`${name}.length`, 'B + 1 >= 1', cu.length);
  if (cu[0] !== 0) throw new AttentionInputError(`${name}[0]`, '0', cu[0]);
  for (let b = 0; b + 1 < cu.length; b++) {
    const len = cu[b + 1]! - cu[b]!;
    if (len < 0) {
      throw new AttentionInputError(
        `${name}[${b + 1}]`,
        `>= ${name}[${b}] = ${cu[b]} (non-decreasing offsets)`,
        cu[b + 1],
      );
    }
    if (len > maxLen) {
      throw new AttentionInputError(
        maxName,
        `>= every sequence's length (sequence ${b} has ${len})`,
        maxLen,
      );
    }
  }
  if (cu[cu.length - 1] !== total) {
    throw new AttentionInputError(
      `${name}[${cu.length - 1}]`,
      `the packed total ${total}`,
      cu[cu.length - 1],
    );
  }
  return cu;
}

function varlenViews<Buf>(
  a: Pick<
    VarlenForwardArgs<Buf>,
    'q' | 'k' | 'v' | 'cuSeqlensQ' | 'cuSeqlensK' | 'maxSeqlenQ' | 'maxSeqlenK'
  >,
  extra: Array<[string, StridedView<Buf>]>,
  lengthOf: (b: Buf) => number,
  caps: Pick<BackendCapabilities, 'maxHeadDim'>,
): VarlenProblem {
  for (const [name, v] of [['q', a.q], ['k', a.k], ['v', a.v], ...extra] as Array<
    [string, StridedView<Buf>]
  >) {
    if (v === null || typeof v !== 'object') {
      throw new AttentionInputError(
        name,
        'a StridedView { buffer, offset, shape, strides }',
        describe(v),
      );
    }
    checkStridedView(name, v, lengthOf(v.buffer));
    if (v.shape[0] !== 1)
      throw new AttentionInputError(`${name}.shape[0]`, '1 (packed: (1, total, H, D))', v.shape[0]);
  }
  const [, totalQ, Hq, D] = a.q.shape;
  const [, totalK, Hk, Dk] = a.k.shape;
  if (D > caps.maxHeadDim)
    throw new AttentionInputError('q.shape[3] (headdim)', `<= ${caps.maxHeadDim}`, D);
  if (Dk !== D) throw new AttentionInputError('k.shape[3] (headdim)', `${D} to match q`, Dk);
  if (Hk === 0 || Hq % Hk !== 0) {
    throw new AttentionInputError(
      'k.shape[2] (nheads_k)',
      `a divisor of the query heads ${Hq} (GQA/MQA)`,
      Hk,
    );
  }
  sameShape('v', a.v, a.k.shape);
  for (const key of ['maxSeqlenQ', 'maxSeqlenK'] as const) {
    if (!Number.isInteger(a[key]) || a[key] < 0)
      throw new AttentionInputError(key, 'an integer >= 0', describe(a[key]));
  }
  const cuQ = cuSeqlens('cuSeqlensQ', a.cuSeqlensQ, totalQ, a.maxSeqlenQ, 'maxSeqlenQ');
  const cuK = cuSeqlens('cuSeqlensK', a.cuSeqlensK, totalK, a.maxSeqlenK, 'maxSeqlenK');
  if (cuK.length !== cuQ.length) {
    throw new AttentionInputError(
      'cuSeqlensK.length',
      `B + 1 = ${cuQ.length} like cuSeqlensQ`,
      cuK.length,
    );
  }
  return { B: cuQ.length - 1, totalQ, totalK, Hq, Hk, D, cuQ, cuK };
}

/** Validate a varlen forward call completely; returns its sizes. */
export function validateVarlenForwardArgs<Buf>(
  a: VarlenForwardArgs<Buf>,
  opts: AttentionOptions | undefined,
  lengthOf: (b: Buf) => number,
  caps: Pick<BackendCapabilities, 'maxHeadDim'>,
): VarlenProblem {
  if (a === null || typeof a !== 'object')
    throw new AttentionInputError('args', 'an object', describe(a));
  validateOptions(opts);
  const p = varlenViews(a, [['out', a.out]], lengthOf, caps);
  sameShape('out', a.out, a.q.shape);
  if (lengthOf(a.lse) !== p.Hq * p.totalQ) {
    throw new AttentionInputError(
      'lse.length',
      `Hq * total_q = ${p.Hq * p.totalQ}`,
      lengthOf(a.lse),
    );
  }
  return p;
}

/** Validate a varlen backward call completely; returns its sizes. */
export function validateVarlenBackwardArgs<Buf>(
  a: VarlenBackwardArgs<Buf>,
  opts: AttentionOptions | undefined,
  lengthOf: (b: Buf) => number,
  caps: Pick<BackendCapabilities, 'maxHeadDim'>,
): VarlenProblem {
  if (a === null || typeof a !== 'object')
    throw new AttentionInputError('args', 'an object', describe(a));
  validateOptions(opts);
  const p = varlenViews(
    a,
    [
      ['dout', a.dout],
      ['out', a.out],
      ['dq', a.dq],
      ['dk', a.dk],
      ['dv', a.dv],
    ],
    lengthOf,
    caps,
  );
  for (const n of ['dout', 'out', 'dq'] as const) sameShape(n, a[n], a.q.shape);
  sameShape('dk', a.dk, a.k.shape);
  sameShape('dv', a.dv, a.k.shape);
  if (lengthOf(a.lse) !== p.Hq * p.totalQ) {
    throw new AttentionInputError(
      'lse.length',
      `Hq * total_q = ${p.Hq * p.totalQ}`,
      lengthOf(a.lse),
    );
  }
  return p;
}
