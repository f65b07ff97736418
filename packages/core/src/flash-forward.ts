/**
 * FlashAttention-2 forward on the CPU: Algorithm 1 of Dao, "FlashAttention-2: Faster Attention with
 * Better Parallelism and Work Partitioning" (2023), with the causal/window mask of core's keyRange.
 *
 * For each (batch, query head) the queries are cut into Tr = ceil(Nq / Br) blocks Q_i (outer loop) and
 * the keys/values into blocks K_j, V_j of Bc rows (inner loop). Each query row keeps the online-softmax
 * state m_i (running max), l_i (running sum) and acc (unnormalised output, the paper's O~_i); the
 * Br x Bc tile S_ij is the only score storage, so memory is linear in N (no N x N buffer). K/V blocks
 * that no row of Q_i can see are skipped, as FA2 does for causal attention.
 *
 * Layout: q (B, Nq, Hq, D); k, v (B, Nk, Hk, D); out (B, Nq, Hq, D); lse (B, Hq, Nq).
 * GQA/MQA: query head h reads kv head floor(h / (Hq / Hk)).
 *
 * Block sizes (Br, Bc); default Br = Bc = 64 (DEFAULT_BLOCK_SIZE_Q/K in flash-blocks.ts). Measured
 * 2026-11-21 on this repo's 2-core x86 dev machine (the CI size), Node 20.20, float32, B = 1, H = 4,
 * Nq = Nk = 1024, D = 64; CPU time (user + sys, so other processes' load counts less than in wall
 * time), median of 5 interleaved rounds:
 *     Br   Bc   fwd ms   fwd causal ms   bwd ms
 *     32   32     723        377          2262
 *     64   64     799        352          2340
 *     64  128     721        352          2333
 *    128  128     718        356          2254
 *     32  128     686        361          2265
 * A best-of-3 sweep of Br in {16..128} x Bc in {16..256} gave 625-731 ms for the forward. No size is
 * better beyond the noise (about +-10% on that shared machine): on a CPU the "on-chip" tile is one S
 * row (Bc) plus acc (Br x D) in L1/L2 and the cost is the dot products. Smaller Bc rescales acc more
 * often, smaller Br re-reads K/V more often, larger blocks skip less of a causal/window mask; 64 x 64
 * sits in the middle. What did help: four key rows per pass in rowDotTile / rowAccumulateTile,
 * 2.2x on the forward (1389 -> 627 ms) and 1.6x on the backward (3144 -> 2002 ms), same setup.
 * Reproduce (after `pnpm --filter @flashattn/core build`, from the repo root), as an .mjs file:
 *   import { createRng, randomTensor, flashAttention, flashAttentionBackward } from './packages/core/dist/index.js';
 *   const rng = createRng(7), t = () => randomTensor(rng, [1, 1024, 4, 64]);
 *   const [q, k, v, dout] = [t(), t(), t(), t()];
 *   const cpu = (f) => { const t0 = process.cpuUsage(); f(); const u = process.cpuUsage(t0); return (u.user + u.system) / 1e3; };
 *   for (const [Br, Bc] of [[32, 32], [64, 64], [64, 128], [128, 128], [32, 128]]) {
 *     const o = { blockSizeQ: Br, blockSizeK: Bc }, f = flashAttention(q, k, v, o);
 *     console.log(Br, Bc, cpu(() => flashAttention(q, k, v, o)), cpu(() => flashAttention(q, k, v, { ...o, causal: true })),
 *       cpu(() => flashAttentionBackward(dout, q, k, v, f.out, f.lse, o)));
 *   }
 */
import type { AttentionForwardResult } from './contracts/attention-backend.js';
import {
  FLASH_OPTION_KEYS,
  resolveBlockSizes,
  type AccumPrecision,
  type FlashAttentionOptions,
  type FloatArray,
  type KernelLayout,
  contiguousLayout,
} from './flash-blocks.js';
import { allocFloat, rowAccumulateTile, rowDotTile, rowKeyRanges } from './flash-tile.js';
import { resolveOptions, type AttentionShape, type ResolvedOptions } from './options.js';
import { fromFloat32, toFloat32, type Tensor } from './tensor.js';
import { validateForward } from './validate.js';

/** Forward results of the kernel in its accumulation precision: out (B, Nq, Hq, D), lse (B, Hq, Nq). */
export interface FlashForwardRaw {
  out: FloatArray;
  lse: FloatArray;
}

/**
 * Where the forward reads and writes, for callers with strided operands (the device attention
 * contract: q, k, v inside a packed (B, T, 3, H, D) buffer). Absent: contiguous inputs, fresh outputs.
 */
export interface ForwardKernelIO {
  q: KernelLayout;
  k: KernelLayout;
  v: KernelLayout;
  /** Written in place: rows of out (B, Nq, Hq, D) under `outLayout`, lse (B, Hq, Nq) contiguous. */
  out: FloatArray;
  outLayout: KernelLayout;
  lse: FloatArray;
  /** Only the (b, h) pairs with b * Hq + h in [bhLo, bhHi) (a thread's share). Default all. */
  bhLo?: number;
  bhHi?: number;
}

/**
 * Algorithm 1 on already-decoded inputs. `precision` picks the buffers' type (see AccumPrecision);
 * 'float64' with Float64Array inputs is the exact-arithmetic twin used by the gradient checks.
 * Inputs are assumed validated (shape matches the arrays). With `io` the operands are strided and
 * the results are written into the caller's arrays (only the (b, h) pairs asked for).
 */
export function flashForwardKernel(
  q: FloatArray, // (B, Nq, Hq, D)
  k: FloatArray, // (B, Nk, Hk, D)
  v: FloatArray, // (B, Nk, Hk, D)
  shape: AttentionShape,
  o: ResolvedOptions,
  Br: number,
  Bc: number,
  precision: AccumPrecision,
  io?: ForwardKernelIO,
): FlashForwardRaw {
  const { batch: B, seqlenQ: Nq, seqlenK: Nk, nheadsQ: Hq, nheadsK: Hk, headDim: D } = shape;
  const group = Hq / Hk;
  const scale = o.softmaxScale;
  const qL = io?.q ?? contiguousLayout(Nq, Hq, D);
  const kL = io?.k ?? contiguousLayout(Nk, Hk, D);
  const vL = io?.v ?? kL;
  const oL = io?.outLayout ?? contiguousLayout(Nq, Hq, D);
  const { lo: rowLo, hi: rowHi } = rowKeyRanges(Nq, Nk, o); // (Nq) each

  const out = io?.out ?? allocFloat(precision, B * Nq * Hq * D); // (B, Nq, Hq, D) under oL
  const lse = io?.lse ?? allocFloat(precision, B * Hq * Nq); // (B, Hq, Nq)
  const bhLo = io?.bhLo ?? 0;
  const bhHi = io?.bhHi ?? B * Hq;
  // "On-chip" buffers of one tile:
  const Qi = allocFloat(precision, Br * D); // (Br, D)
  const acc = allocFloat(precision, Br * D); // (Br, D): O~_i, the unnormalised output
  const m_i = allocFloat(precision, Br); // (Br): running row max
  const l_i = allocFloat(precision, Br); // (Br): running row sum
  const Sij = allocFloat(precision, Bc); // (Bc): one row of S_ij, then of P~_ij

  const Tr = Math.ceil(Nq / Br);
  for (let bh = bhLo; bh < bhHi; bh++) {
    const b = Math.floor(bh / Hq);
    const h = bh - b * Hq;
    const hk = Math.floor(h / group);
    const qBase = qL.offset + b * qL.sB + h * qL.sH; // offset of q (b, 0, h, 0)
    const kBase = kL.offset + b * kL.sB + hk * kL.sH; // offset of k (b, 0, hk, 0)
    const vBase = vL.offset + b * vL.sB + hk * vL.sH; // offset of v (b, 0, hk, 0)
    const oBase = oL.offset + b * oL.sB + h * oL.sH; // offset of out (b, 0, h, 0)
    const lseBase = (b * Hq + h) * Nq;
    // Algorithm 1, line 3: for 1 <= i <= Tr
    for (let i = 0; i < Tr; i++) {
      const r0 = i * Br;
      const rows = Math.min(Br, Nq - r0);
      // line 4: load Q_i
      for (let r = 0; r < rows; r++) {
        const qo = qBase + (r0 + r) * qL.sN;
        for (let d = 0; d < D; d++) Qi[r * D + d] = q[qo + d]!;
      }
      // line 5: O~_i = 0, l_i = 0, m_i = -Infinity
      acc.fill(0, 0, rows * D);
      l_i.fill(0, 0, rows);
      m_i.fill(-Infinity, 0, rows);
      // Keys any row of Q_i can see: [rowLo[r0], rowHi[last]) since both bounds grow with the row.
      // Only the K/V blocks overlapping it are visited (FA2 skips fully masked blocks).
      const kLo = rowLo[r0]!;
      const kHi = rowHi[r0 + rows - 1]!;
      const jStart = Math.floor(kLo / Bc);
      const jEnd = kHi > kLo ? Math.ceil(kHi / Bc) : jStart;
      // line 6: for 1 <= j <= Tc (visible blocks only)
      for (let j = jStart; j < jEnd; j++) {
        const c0 = j * Bc;
        const c1 = Math.min(c0 + Bc, Nk);
        // line 7: K_j, V_j are read in place (rows c0..c1 of k, v).
        for (let r = 0; r < rows; r++) {
          // The mask: row r0 + r sees keys [lo, hi) of this block.
          const lo = Math.max(c0, rowLo[r0 + r]!);
          const hi = Math.min(c1, rowHi[r0 + r]!);
          if (lo >= hi) continue; // masked row in this block: state unchanged
          const qr = r * D;
          // line 8: S_ij = scale * Q_i K_j^T (this row)
          rowDotTile(Qi, qr, k, kBase, kL.sN, lo, hi, c0, D, scale, Sij);
          // line 9: m_new = max(m_old, rowmax(S_ij)), P~_ij = exp(S_ij - m_new),
          //          l_new = exp(m_old - m_new) l_old + rowsum(P~_ij)
          // (all from the stored, precision-rounded S and P, so lse is consistent with P)
          let mBlock = -Infinity;
          for (let c = lo; c < hi; c++) if (Sij[c - c0]! > mBlock) mBlock = Sij[c - c0]!;
          const mOld = m_i[r]!;
          const mNew = mOld > mBlock ? mOld : mBlock;
          const alpha = Math.exp(mOld - mNew); // 0 on the first visible block (m_old = -Infinity)
          let rowsum = 0;
          for (let c = lo; c < hi; c++) {
            Sij[c - c0] = Math.exp(Sij[c - c0]! - mNew);
            rowsum += Sij[c - c0]!;
          }
          l_i[r] = alpha * l_i[r]! + rowsum;
          m_i[r] = mNew;
          // line 10: O~_i = diag(exp(m_old - m_new)) O~_i + P~_ij V_j
          if (alpha !== 1) for (let d = 0; d < D; d++) acc[qr + d]! *= alpha;
          rowAccumulateTile(acc, qr, Sij, 1, v, vBase, vL.sN, lo, hi, c0, D);
        }
      }
      // lines 12-15: O_i = diag(l_i)^-1 O~_i, L_i = m_i + log(l_i); write both.
      for (let r = 0; r < rows; r++) {
        const oo = oBase + (r0 + r) * oL.sN;
        const l = l_i[r]!;
        if (l === 0) {
          // The row saw no key: out = 0 and lse = -Infinity.
          lse[lseBase + r0 + r] = -Infinity;
          if (io) out.fill(0, oo, oo + D);
          continue;
        }
        const inv = 1 / l;
        for (let d = 0; d < D; d++) out[oo + d] = acc[r * D + d]! * inv;
        lse[lseBase + r0 + r] = m_i[r]! + Math.log(l);
      }
    }
  }
  return { out, lse };
}

/**
 * FlashAttention-2 forward: out = softmax(scale * Q K^T + mask) V, computed tile by tile in float32
 * accumulators. Returns out in q's dtype (rounded to nearest even) and lse (B, Hq, Nq) as float32.
 */
export function flashAttention(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  opts?: FlashAttentionOptions,
): AttentionForwardResult {
  const shape = validateForward(q, k, v, opts, FLASH_OPTION_KEYS);
  const { Br, Bc } = resolveBlockSizes(opts);
  const o = resolveOptions(opts, shape.headDim);
  const r = flashForwardKernel(
    toFloat32(q),
    toFloat32(k),
    toFloat32(v),
    shape,
    o,
    Br,
    Bc,
    'float32',
  );
  return {
    out: fromFloat32(r.out as Float32Array, q.shape, q.dtype),
    lse: r.lse as Float32Array,
  };
}
