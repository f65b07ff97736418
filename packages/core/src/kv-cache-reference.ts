/**
 * The float64 oracles of the inference contracts (contracts/kv-cache.ts), beside attentionReference64:
 *  - kvCacheReference64: append k_new/v_new into copies of the caches, then, for each sequence, gather
 *    its Lk_b keys (through the block table or the cache row) and run attentionReference64 on them;
 *  - combineByLse64: merge partial results over disjoint key sets by their lse;
 *  - varlenReference64 / varlenReferenceBackward64: attentionReference64 / attentionReferenceBackward64
 *    on each packed sequence's rows.
 * They take the contracts' own arguments over host typed arrays (a `StridedView<HostFloat>`), so a test
 * hands the same views to a backend and to its oracle. They never mutate their inputs.
 * The attended values are read as float32 (attentionReference64 takes float32 tensors): exact for
 * float32 and 16-bit storage; a Float64Array holding values outside float32 is rounded first (for an
 * exact float64 twin, run kv-cache-kernels.ts with 'float64' precision, as kv-cache.test.ts does).
 */
import { attentionReference64, attentionReferenceBackward64 } from './reference.js';
import { tensor, zeros, type Tensor } from './tensor.js';
import type { AttentionOptions } from './options.js';
import { AttentionInputError } from './errors.js';
import {
  cacheRowOffset,
  validateKvCacheArgs,
  validateVarlenBackwardArgs,
  validateVarlenForwardArgs,
  type KvCacheAttentionArgs,
  type KvCacheOptions,
  type VarlenBackwardArgs,
  type VarlenForwardArgs,
} from './contracts/kv-cache.js';
import type { StridedView } from './contracts/device-attention.js';
import { varlenRows } from './varlen-by-sequence.js';

/** Host arrays the oracles read: float values (16-bit storage decoded to float32 by the caller). */
export type HostFloat = Float32Array | Float64Array;

const ORACLE_CAPS = { pageSizeMultiple: 1, maxHeadDim: Number.MAX_SAFE_INTEGER };

/** (B, N, H, D) values of a strided view, gathered into a float32 tensor (exact for stored values). */
function gatherTensor(v: StridedView<HostFloat>, name: string): Tensor {
  const [B, N, H, D] = v.shape;
  const out = new Float32Array(B * N * H * D);
  for (let b = 0, o = 0; b < B; b++)
    for (let n = 0; n < N; n++)
      for (let h = 0; h < H; h++, o += D) {
        const at = v.offset + b * v.strides[0] + n * v.strides[1] + h * v.strides[2];
        for (let d = 0; d < D; d++) out[o + d] = v.buffer[at + d]!;
      }
  return tensor(out, [B, N, H, D], 'float32', name);
}

export interface KvCacheReference64 {
  /** (B, Nq, Hq, D) */
  out: Float64Array;
  /** (B, Hq, Nq); -Infinity for a row that sees no key. */
  lse: Float64Array;
  /** Copies of kCache.buffer / vCache.buffer after the append (whole buffers, same type). */
  kCache: HostFloat;
  vCache: HostFloat;
  /** (B) keys each sequence attended to. */
  seqlensK: Int32Array;
}

/** The KV-cache oracle (flash_attn_with_kvcache semantics; contracts/kv-cache.ts). */
export function kvCacheReference64(
  a: KvCacheAttentionArgs<HostFloat>,
  opts?: KvCacheOptions,
): KvCacheReference64 {
  const p = validateKvCacheArgs(a, opts, (b) => b.length, ORACLE_CAPS);
  const { B, Nq, Hq, Hk, D, Nnew } = p;
  // One copy when k and v share a buffer (e.g. a (num_blocks, page_size, 2, Hk, D) layout).
  const kCache = a.kCache.buffer.slice();
  const vCache = a.vCache.buffer === a.kCache.buffer ? kCache : a.vCache.buffer.slice();
  // Append: k_new (b, t) -> logical key cacheSeqlens[b] + t.
  for (const [src, dst, view] of [
    [a.kNew, kCache, a.kCache],
    [a.vNew, vCache, a.vCache],
  ] as const) {
    if (!src) continue;
    for (let b = 0; b < B; b++)
      for (let t = 0; t < Nnew; t++)
        for (let hk = 0; hk < Hk; hk++) {
          const from = src.offset + b * src.strides[0] + t * src.strides[1] + hk * src.strides[2];
          const to = cacheRowOffset(view, p, a.blockTable, b, a.cacheSeqlens[b]! + t, hk);
          for (let d = 0; d < D; d++) dst[to + d] = src.buffer[from + d]!;
        }
  }
  const out = new Float64Array(B * Nq * Hq * D);
  const lse = new Float64Array(B * Hq * Nq).fill(-Infinity);
  const q = gatherTensor(a.q, 'q');
  const qData = q.data as Float32Array;
  for (let b = 0; b < B; b++) {
    const Lk = p.seqlensK[b]!;
    if (Lk === 0 || Nq === 0) continue; // no key: out = 0, lse = -Infinity
    const kb = new Float32Array(Lk * Hk * D);
    const vb = new Float32Array(Lk * Hk * D);
    for (let j = 0; j < Lk; j++)
      for (let hk = 0; hk < Hk; hk++) {
        const at = cacheRowOffset(a.kCache, p, a.blockTable, b, j, hk);
        const av = cacheRowOffset(a.vCache, p, a.blockTable, b, j, hk);
        for (let d = 0; d < D; d++) {
          kb[(j * Hk + hk) * D + d] = kCache[at + d]!;
          vb[(j * Hk + hk) * D + d] = vCache[av + d]!;
        }
      }
    const qb = qData.slice(b * Nq * Hq * D, (b + 1) * Nq * Hq * D);
    const { numSplits: _ignored, ...attn } = opts ?? {};
    const r = attentionReference64(
      tensor(qb, [1, Nq, Hq, D]),
      tensor(kb, [1, Lk, Hk, D]),
      tensor(vb, [1, Lk, Hk, D]),
      attn,
    );
    out.set(r.out, b * Nq * Hq * D);
    lse.set(r.lse, b * Hq * Nq);
  }
  return { out, lse, kCache, vCache, seqlensK: p.seqlensK };
}

/**
 * Merge S partial attentions over disjoint key sets: outPartial (S, B, Nq, Hq, D), lsePartial
 * (S, B, Hq, Nq) -> out (B, Nq, Hq, D), lse (B, Hq, Nq), in float64:
 *   lse = m + log sum_s exp(lse_s - m)  (m = max_s lse_s),  out = sum_s exp(lse_s - lse) out_s.
 * Rows where every lse_s is -Infinity get out = 0, lse = -Infinity.
 */
export function combineByLse64(
  outPartial: ArrayLike<number>,
  lsePartial: ArrayLike<number>,
  S: number,
  B: number,
  Nq: number,
  Hq: number,
  D: number,
): { out: Float64Array; lse: Float64Array } {
  const n = B * Nq * Hq * D;
  const nl = B * Hq * Nq;
  if (outPartial.length !== S * n)
    throw new AttentionInputError('outPartial.length', String(S * n), outPartial.length);
  if (lsePartial.length !== S * nl)
    throw new AttentionInputError('lsePartial.length', String(S * nl), lsePartial.length);
  const out = new Float64Array(n);
  const lse = new Float64Array(nl).fill(-Infinity);
  for (let b = 0; b < B; b++)
    for (let h = 0; h < Hq; h++)
      for (let i = 0; i < Nq; i++) {
        const li = (b * Hq + h) * Nq + i;
        let m = -Infinity;
        for (let s = 0; s < S; s++) m = Math.max(m, lsePartial[s * nl + li]!);
        if (m === -Infinity) continue;
        let sum = 0;
        for (let s = 0; s < S; s++) sum += Math.exp(lsePartial[s * nl + li]! - m);
        const L = m + Math.log(sum);
        lse[li] = L;
        const oo = ((b * Nq + i) * Hq + h) * D;
        for (let s = 0; s < S; s++) {
          const w = Math.exp(lsePartial[s * nl + li]! - L);
          if (w === 0) continue;
          for (let d = 0; d < D; d++) out[oo + d]! += w * outPartial[s * n + oo + d]!;
        }
      }
  return { out, lse };
}

/** One packed sequence's rows [r0, r1) of a (1, total, H, D) view, as a (1, r1 - r0, H, D) tensor. */
function rowsOf(v: StridedView<HostFloat>, r0: number, r1: number, name: string): Tensor {
  return gatherTensor(varlenRows(v, r0, r1 - r0), name);
}

export interface VarlenReference64 {
  /** (total_q, Hq, D) */
  out: Float64Array;
  /** (Hq, total_q) */
  lse: Float64Array;
}

/** The varlen forward oracle: attentionReference64 per packed sequence. */
export function varlenReference64(
  a: VarlenForwardArgs<HostFloat>,
  opts?: AttentionOptions,
): VarlenReference64 {
  const p = validateVarlenForwardArgs(a, opts, (b) => b.length, ORACLE_CAPS);
  const { B, totalQ, Hq, D, cuQ, cuK } = p;
  const out = new Float64Array(totalQ * Hq * D);
  const lse = new Float64Array(Hq * totalQ).fill(-Infinity);
  for (let b = 0; b < B; b++) {
    const [q0, q1, k0, k1] = [cuQ[b]!, cuQ[b + 1]!, cuK[b]!, cuK[b + 1]!];
    if (q1 === q0 || k1 === k0) continue;
    const r = attentionReference64(
      rowsOf(a.q, q0, q1, 'q'),
      rowsOf(a.k, k0, k1, 'k'),
      rowsOf(a.v, k0, k1, 'v'),
      opts,
    );
    out.set(r.out, q0 * Hq * D);
    for (let h = 0; h < Hq; h++)
      lse.set(r.lse.subarray(h * (q1 - q0), (h + 1) * (q1 - q0)), h * totalQ + q0);
  }
  return { out, lse };
}

export interface VarlenGrads64 {
  /** (total_q, Hq, D) */
  dq: Float64Array;
  /** (total_k, Hk, D) */
  dk: Float64Array;
  dv: Float64Array;
}

/** The varlen backward oracle: exact gradients of sum(out * dout), per packed sequence. */
export function varlenReferenceBackward64(
  a: VarlenBackwardArgs<HostFloat>,
  opts?: AttentionOptions,
): VarlenGrads64 {
  const p = validateVarlenBackwardArgs(a, opts, (b) => b.length, ORACLE_CAPS);
  const { B, totalQ, totalK, Hq, Hk, D, cuQ, cuK } = p;
  const dq = new Float64Array(totalQ * Hq * D);
  const dk = new Float64Array(totalK * Hk * D);
  const dv = new Float64Array(totalK * Hk * D);
  for (let b = 0; b < B; b++) {
    const [q0, q1, k0, k1] = [cuQ[b]!, cuQ[b + 1]!, cuK[b]!, cuK[b + 1]!];
    if (q1 === q0 || k1 === k0) continue;
    const q = rowsOf(a.q, q0, q1, 'q');
    const g = attentionReferenceBackward64(
      rowsOf(a.dout, q0, q1, 'dout'),
      q,
      rowsOf(a.k, k0, k1, 'k'),
      rowsOf(a.v, k0, k1, 'v'),
      zeros(q.shape), // the oracle recomputes P; out and lse are only shape-checked
      new Float32Array(Hq * (q1 - q0)),
      opts,
    );
    dq.set(g.dq, q0 * Hq * D);
    dk.set(g.dk, k0 * Hk * D);
    dv.set(g.dv, k0 * Hk * D);
  }
  return { dq, dk, dv };
}
