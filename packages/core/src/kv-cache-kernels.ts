/**
 * CPU kernels of the inference contracts (contracts/kv-cache.ts), on decoded arrays with layouts, like
 * flashForwardKernel: the cache append, the split-KV decode kernel (flash-decoding), the lse combine,
 * and varlen forward/backward (Algorithms 1 and 2 of flash-forward.ts / flash-backward.ts run on each
 * packed sequence's rows in place). Backends run them on threads over disjoint work ranges; inputs are
 * assumed validated (validateKvCacheArgs / validateVarlen*Args).
 *
 * The decode kernel is Algorithm 1 with the query block of one (batch, kv head) = its group's
 * Hq / Hk heads x Nq rows (GQA: K and V are read once per group, as flash-attn's decode kernels pack
 * the group's heads into the M dimension), and the key loop restricted to one split's key range, cut at
 * page boundaries (keys are contiguous only inside a page).
 */
import type { AccumPrecision, FloatArray, KernelLayout } from './flash-blocks.js';
import { flashBackwardKernel } from './flash-backward.js';
import { flashForwardKernel } from './flash-forward.js';
import { allocFloat, rowAccumulateTile, rowDotTile } from './flash-tile.js';
import { keyRange, type ResolvedOptions } from './options.js';

/** Where the cache's pages are: the problem fields the kernels need (from KvCacheProblem). */
export interface KvCacheGeometry {
  B: number;
  Nq: number;
  Hq: number;
  Hk: number;
  D: number;
  paged: boolean;
  pageSize: number;
  maxBlocksPerSeq: number;
  /** (B * maxBlocksPerSeq) when paged. */
  blockTable?: Int32Array;
  /** (B) contiguous cache row of each sequence. */
  batchIdx: Int32Array;
  /** (B) keys each sequence attends to (after the append). */
  seqlensK: Int32Array;
}

/** Offset of logical key j of sequence b, kv head hk, in a cache under layout L. */
function cacheRow(L: KernelLayout, g: KvCacheGeometry, b: number, j: number, hk: number): number {
  if (g.paged) {
    const page = g.blockTable![b * g.maxBlocksPerSeq + Math.floor(j / g.pageSize)]!;
    return L.offset + page * L.sB + (j % g.pageSize) * L.sN + hk * L.sH;
  }
  return L.offset + g.batchIdx[b]! * L.sB + j * L.sN + hk * L.sH;
}

/**
 * cache[logical cacheSeqlens[b] + t] = src[b, t] for t in [0, Nnew): the in-place append of k_new or
 * v_new (B, Nnew, Hk, D). Exact copies.
 */
export function appendKvKernel(
  cache: FloatArray,
  cacheL: KernelLayout,
  src: FloatArray,
  srcL: KernelLayout,
  Nnew: number,
  cacheSeqlens: Int32Array, // (B), before the append
  g: KvCacheGeometry,
): void {
  const { B, Hk, D } = g;
  for (let b = 0; b < B; b++)
    for (let t = 0; t < Nnew; t++)
      for (let hk = 0; hk < Hk; hk++) {
        const from = srcL.offset + b * srcL.sB + t * srcL.sN + hk * srcL.sH;
        const to = cacheRow(cacheL, g, b, cacheSeqlens[b]! + t, hk);
        for (let d = 0; d < D; d++) cache[to + d] = src[from + d]!;
      }
}

/** Where the decode kernel writes: out and lse directly (one split), or the partials (S > 1). */
export type KvDecodeOutput =
  | { kind: 'direct'; out: FloatArray; outLayout: KernelLayout; lse?: FloatArray }
  | { kind: 'partial'; outPartial: FloatArray; lsePartial: FloatArray };

/** Key range [k0, k1) of split s of a sequence with Lk keys cut into S contiguous pieces. */
export function splitRange(Lk: number, S: number, s: number): [number, number] {
  const chunk = Math.ceil(Lk / S);
  const k0 = Math.min(s * chunk, Lk);
  return [k0, Math.min(k0 + chunk, Lk)];
}

/**
 * Split-KV decode: work unit u = (b * Hk + hk) * S + s computes, for every query row of kv head hk's
 * group in sequence b, attention over the visible keys inside split s's range. Units [uLo, uHi).
 * Layouts: q, out (B, Nq, Hq, D); caches per KvCacheGeometry. Partials: outPartial (S, B, Nq, Hq, D),
 * lsePartial (S, B, Hq, Nq), each normalised by its own l (so combine weights are exp(lse_s - lse)).
 */
export function kvDecodeKernel(
  q: FloatArray,
  qL: KernelLayout,
  kCache: FloatArray,
  kL: KernelLayout,
  vCache: FloatArray,
  vL: KernelLayout,
  g: KvCacheGeometry,
  o: ResolvedOptions,
  S: number,
  output: KvDecodeOutput,
  Bc: number,
  precision: AccumPrecision,
  uLo: number,
  uHi: number,
): void {
  const { B, Nq, Hq, Hk, D } = g;
  const group = Hq / Hk;
  const R = group * Nq; // rows of the query block: row r = gi * Nq + i (head hk * group + gi, query i)
  const scale = o.softmaxScale;
  const Qi = allocFloat(precision, R * D); // (R, D)
  const acc = allocFloat(precision, R * D); // (R, D): O~, unnormalised
  const m_i = allocFloat(precision, R); // (R)
  const l_i = allocFloat(precision, R); // (R)
  const Sij = allocFloat(precision, Bc); // (Bc): one row of S_ij, then P~_ij
  const lo = new Int32Array(R); // (R) visible keys of each row, inside the split
  const hi = new Int32Array(R);
  for (let u = uLo; u < uHi; u++) {
    const s = u % S;
    const bhk = (u - s) / S;
    const b = Math.floor(bhk / Hk);
    const hk = bhk - b * Hk;
    const Lk = g.seqlensK[b]!;
    const [k0, k1] = splitRange(Lk, S, s);
    let kMin = Infinity;
    let kMax = -Infinity;
    for (let gi = 0; gi < group; gi++) {
      const h = hk * group + gi;
      for (let i = 0; i < Nq; i++) {
        const r = gi * Nq + i;
        const qo = qL.offset + b * qL.sB + i * qL.sN + h * qL.sH;
        for (let d = 0; d < D; d++) Qi[r * D + d] = q[qo + d]!;
        const [a, c] = keyRange(i, Nq, Lk, o);
        lo[r] = Math.max(a, k0);
        hi[r] = Math.max(lo[r]!, Math.min(c, k1));
        if (hi[r]! > lo[r]!) {
          kMin = Math.min(kMin, lo[r]!);
          kMax = Math.max(kMax, hi[r]!);
        }
      }
    }
    // Algorithm 1, line 5: O~ = 0, l = 0, m = -Infinity
    acc.fill(0);
    l_i.fill(0);
    m_i.fill(-Infinity);
    // line 6: key blocks of at most Bc keys, never crossing a page
    for (let c0 = kMin; c0 < kMax;) {
      const pageEnd = g.paged ? (Math.floor(c0 / g.pageSize) + 1) * g.pageSize : Infinity;
      const c1 = Math.min(c0 + Bc, pageEnd, kMax);
      // base such that key c of this block is at base + c * sN (keys c0..c1 share a page)
      const kBase = cacheRow(kL, g, b, c0, hk) - c0 * kL.sN;
      const vBase = cacheRow(vL, g, b, c0, hk) - c0 * vL.sN;
      for (let r = 0; r < R; r++) {
        const rlo = Math.max(c0, lo[r]!);
        const rhi = Math.min(c1, hi[r]!);
        if (rlo >= rhi) continue;
        const qr = r * D;
        // line 8: S_ij = scale * Q_i K_j^T (this row)
        rowDotTile(Qi, qr, kCache, kBase, kL.sN, rlo, rhi, c0, D, scale, Sij);
        // line 9: online softmax update
        let mBlock = -Infinity;
        for (let c = rlo; c < rhi; c++) if (Sij[c - c0]! > mBlock) mBlock = Sij[c - c0]!;
        const mOld = m_i[r]!;
        const mNew = mOld > mBlock ? mOld : mBlock;
        const alpha = Math.exp(mOld - mNew);
        let rowsum = 0;
        for (let c = rlo; c < rhi; c++) {
          Sij[c - c0] = Math.exp(Sij[c - c0]! - mNew);
          rowsum += Sij[c - c0]!;
        }
        l_i[r] = alpha * l_i[r]! + rowsum;
        m_i[r] = mNew;
        // line 10: O~ = diag(alpha) O~ + P~_ij V_j
        if (alpha !== 1) for (let d = 0; d < D; d++) acc[qr + d]! *= alpha;
        rowAccumulateTile(acc, qr, Sij, 1, vCache, vBase, vL.sN, rlo, rhi, c0, D);
      }
      c0 = c1;
    }
    // lines 12-15: O = O~ / l, L = m + log l; a row that saw no key: 0 and -Infinity
    for (let gi = 0; gi < group; gi++) {
      const h = hk * group + gi;
      for (let i = 0; i < Nq; i++) {
        const r = gi * Nq + i;
        const l = l_i[r]!;
        const L = l === 0 ? -Infinity : m_i[r]! + Math.log(l);
        const inv = l === 0 ? 0 : 1 / l;
        const li = (b * Hq + h) * Nq + i; // (B, Hq, Nq)
        if (output.kind === 'direct') {
          const oL = output.outLayout;
          const oo = oL.offset + b * oL.sB + i * oL.sN + h * oL.sH;
          for (let d = 0; d < D; d++) output.out[oo + d] = acc[r * D + d]! * inv;
          if (output.lse) output.lse[li] = L;
        } else {
          const oo = (((s * B + b) * Nq + i) * Hq + h) * D; // (S, B, Nq, Hq, D)
          for (let d = 0; d < D; d++) output.outPartial[oo + d] = acc[r * D + d]! * inv;
          output.lsePartial[s * B * Hq * Nq + li] = L;
        }
      }
    }
  }
}

/**
 * The lse combine for rows x = (b * Hq + h) * Nq + i in [xLo, xHi):
 *   lse = m + log sum_s exp(lse_s - m),  out = sum_s exp(lse_s - lse) out_s
 * over outPartial (S, B, Nq, Hq, D), lsePartial (S, B, Hq, Nq); out (B, Nq, Hq, D) under oL, lse
 * (B, Hq, Nq) when given. A row with every lse_s = -Infinity gets out = 0, lse = -Infinity.
 */
export function lseCombineKernel(
  outPartial: FloatArray,
  lsePartial: FloatArray,
  S: number,
  B: number,
  Nq: number,
  Hq: number,
  D: number,
  out: FloatArray,
  oL: KernelLayout,
  lse: FloatArray | undefined,
  xLo: number,
  xHi: number,
): void {
  const nl = B * Hq * Nq;
  const n = nl * D;
  for (let x = xLo; x < xHi; x++) {
    const i = x % Nq;
    const bh = (x - i) / Nq;
    const h = bh % Hq;
    const b = (bh - h) / Hq;
    let m = -Infinity;
    for (let s = 0; s < S; s++) m = Math.max(m, lsePartial[s * nl + x]!);
    const oo = oL.offset + b * oL.sB + i * oL.sN + h * oL.sH;
    if (m === -Infinity) {
      out.fill(0, oo, oo + D);
      if (lse) lse[x] = -Infinity;
      continue;
    }
    let sum = 0;
    for (let s = 0; s < S; s++) sum += Math.exp(lsePartial[s * nl + x]! - m);
    const L = m + Math.log(sum);
    if (lse) lse[x] = L;
    const po = ((b * Nq + i) * Hq + h) * D; // (B, Nq, Hq, D) inside each split
    for (let d = 0; d < D; d++) {
      let a = 0;
      for (let s = 0; s < S; s++) {
        const w = Math.exp(lsePartial[s * nl + x]! - L);
        if (w !== 0) a += w * outPartial[s * n + po + d]!;
      }
      out[oo + d] = a;
    }
  }
}

/** Sequence offsets of a packed batch: (B + 1) each. */
export interface VarlenGeometry {
  Hq: number;
  Hk: number;
  D: number;
  totalQ: number;
  cuQ: Int32Array;
  cuK: Int32Array;
}

const at = (L: KernelLayout, row: number): KernelLayout => ({
  ...L,
  offset: L.offset + row * L.sN,
});

/**
 * Varlen forward for sequences [bLo, bHi): Algorithm 1 (flashForwardKernel) on each sequence's rows in
 * place; q, k, v, out are (1, total, H, D) layouts, lse (Hq, total_q).
 */
export function varlenForwardKernel(
  q: FloatArray,
  qL: KernelLayout,
  k: FloatArray,
  kL: KernelLayout,
  v: FloatArray,
  vL: KernelLayout,
  out: FloatArray,
  oL: KernelLayout,
  lse: FloatArray,
  g: VarlenGeometry,
  o: ResolvedOptions,
  Br: number,
  Bc: number,
  precision: AccumPrecision,
  bLo: number,
  bHi: number,
): void {
  const { Hq, Hk, D, totalQ, cuQ, cuK } = g;
  for (let b = bLo; b < bHi; b++) {
    const [q0, k0] = [cuQ[b]!, cuK[b]!];
    const Nq = cuQ[b + 1]! - q0;
    const Nk = cuK[b + 1]! - k0;
    if (Nq === 0) continue;
    const lseB = allocFloat(precision, Hq * Nq); // (1, Hq, Nq)
    flashForwardKernel(
      q,
      k,
      v,
      { batch: 1, seqlenQ: Nq, seqlenK: Nk, nheadsQ: Hq, nheadsK: Hk, headDim: D },
      o,
      Br,
      Bc,
      precision,
      { q: at(qL, q0), k: at(kL, k0), v: at(vL, k0), out, outLayout: at(oL, q0), lse: lseB },
    );
    for (let h = 0; h < Hq; h++) lse.set(lseB.subarray(h * Nq, (h + 1) * Nq), h * totalQ + q0);
  }
}

/**
 * Varlen backward for sequences [bLo, bHi): Algorithm 2 (flashBackwardKernel) on each sequence's rows
 * in place, overwriting its dq, dk, dv rows (a sequence without queries gets dk = dv = 0).
 */
export function varlenBackwardKernel(
  dO: FloatArray,
  dOL: KernelLayout,
  q: FloatArray,
  qL: KernelLayout,
  k: FloatArray,
  kL: KernelLayout,
  v: FloatArray,
  vL: KernelLayout,
  O: FloatArray,
  OL: KernelLayout,
  lse: ArrayLike<number>, // (Hq, total_q)
  dq: FloatArray,
  dqL: KernelLayout,
  dk: FloatArray,
  dkL: KernelLayout,
  dv: FloatArray,
  dvL: KernelLayout,
  g: VarlenGeometry,
  o: ResolvedOptions,
  Br: number,
  Bc: number,
  precision: AccumPrecision,
  bLo: number,
  bHi: number,
): void {
  const { Hq, Hk, D, totalQ, cuQ, cuK } = g;
  for (let b = bLo; b < bHi; b++) {
    const [q0, k0] = [cuQ[b]!, cuK[b]!];
    const Nq = cuQ[b + 1]! - q0;
    const Nk = cuK[b + 1]! - k0;
    const L = allocFloat(precision, Hq * Nq); // (1, Hq, Nq)
    for (let h = 0; h < Hq; h++)
      for (let i = 0; i < Nq; i++) L[h * Nq + i] = lse[h * totalQ + q0 + i]!;
    flashBackwardKernel(
      dO,
      q,
      k,
      v,
      O,
      L,
      { batch: 1, seqlenQ: Nq, seqlenK: Nk, nheadsQ: Hq, nheadsK: Hk, headDim: D },
      o,
      Br,
      Bc,
      precision,
      {
        dO: at(dOL, q0),
        q: at(qL, q0),
        k: at(kL, k0),
        v: at(vL, k0),
        O: at(OL, q0),
        dq,
        dqLayout: at(dqL, q0),
        dk,
        dkLayout: at(dkL, k0),
        dv,
        dvLayout: at(dvL, k0),
      },
    );
  }
}
