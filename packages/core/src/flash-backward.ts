/**
 * FlashAttention-2 backward on the CPU: Algorithm 2 of Dao (2023), with core's keyRange mask.
 *
 * Given dO, Q, K, V, the forward's O and L = lse, it never stores P: for each tile it recomputes
 * S_ij = scale * Q_i K_j^T and P_ij = exp(S_ij - L_i) from the saved log-sum-exp, then
 *   dV_j += P_ij^T dO_i,  dP_ij = dO_i V_j^T,  dS_ij = P_ij * (dP_ij - D_i),
 *   dQ_i += scale * dS_ij K_j,  dK_j += scale * dS_ij^T Q_i,
 * with D = rowsum(dO * O) precomputed (it equals rowsum(P * dP)). The outer loop runs over K/V blocks,
 * so dK_j and dV_j live in the tile until written once; dQ is accumulated in a (B, Nq, Hq, D) buffer.
 * Under GQA/MQA the query heads of a group all add into the same dK_j, dV_j tile.
 * Rows with lse = -Infinity saw no key and contribute nothing. Memory is linear in N.
 *
 * Layout: dout, q, out, dq (B, Nq, Hq, D); k, v, dk, dv (B, Nk, Hk, D); lse (B, Hq, Nq).
 */
import type { AttentionGradients } from './contracts/attention-backend.js';
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
import { validateBackward } from './validate.js';

/** Gradients of the kernel in its accumulation precision: dq (B, Nq, Hq, D), dk and dv (B, Nk, Hk, D). */
export interface FlashBackwardRaw {
  dq: FloatArray;
  dk: FloatArray;
  dv: FloatArray;
}

/** First index i in [0, n) with pred(i) true, for a pred that is false then true; n if none. */
function firstTrue(n: number, pred: (i: number) => boolean): number {
  let lo = 0;
  let hi = n;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (pred(mid)) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

/**
 * Where the backward reads and writes, for strided callers (dq, dk, dv inside a packed (B, T, 3, H, D)
 * gradient). The gradients are overwritten (dq is zeroed first, then accumulated as Algorithm 2 does).
 */
export interface BackwardKernelIO {
  dO: KernelLayout;
  q: KernelLayout;
  k: KernelLayout;
  v: KernelLayout;
  O: KernelLayout;
  dq: FloatArray;
  dqLayout: KernelLayout;
  dk: FloatArray;
  dkLayout: KernelLayout;
  dv: FloatArray;
  dvLayout: KernelLayout;
  /** Only the (b, kv head) pairs with b * Hk + hk in [bhkLo, bhkHi) (a thread's share). Default all. */
  bhkLo?: number;
  bhkHi?: number;
}

/**
 * Algorithm 2 on decoded inputs; `precision` as in flashForwardKernel. Inputs are assumed validated.
 * With `io` the operands are strided and the gradients are written into the caller's arrays (only the
 * (b, kv head) groups asked for: their dk, dv and the dq of their query heads).
 */
export function flashBackwardKernel(
  dO: FloatArray, // (B, Nq, Hq, D)
  q: FloatArray, // (B, Nq, Hq, D)
  k: FloatArray, // (B, Nk, Hk, D)
  v: FloatArray, // (B, Nk, Hk, D)
  O: FloatArray, // (B, Nq, Hq, D)
  L: ArrayLike<number>, // (B, Hq, Nq): lse
  shape: AttentionShape,
  o: ResolvedOptions,
  Br: number,
  Bc: number,
  precision: AccumPrecision,
  io?: BackwardKernelIO,
): FlashBackwardRaw {
  const { batch: B, seqlenQ: Nq, seqlenK: Nk, nheadsQ: Hq, nheadsK: Hk, headDim: D } = shape;
  const group = Hq / Hk;
  const scale = o.softmaxScale;
  const qAll = contiguousLayout(Nq, Hq, D);
  const kAll = contiguousLayout(Nk, Hk, D);
  const dOL = io?.dO ?? qAll;
  const qL = io?.q ?? qAll;
  const kL = io?.k ?? kAll;
  const vL = io?.v ?? kAll;
  const OL = io?.O ?? qAll;
  const dqL = io?.dqLayout ?? qAll;
  const dkL = io?.dkLayout ?? kAll;
  const dvL = io?.dvLayout ?? kAll;
  const bhkLo = io?.bhkLo ?? 0;
  const bhkHi = io?.bhkHi ?? B * Hk;
  const { lo: rowLo, hi: rowHi } = rowKeyRanges(Nq, Nk, o); // (Nq) each

  // Algorithm 2, line 3: dQ = 0 in "HBM"; dK, dV written per block below.
  const dq = io?.dq ?? allocFloat(precision, B * Nq * Hq * D); // (B, Nq, Hq, D) under dqL
  const dk = io?.dk ?? allocFloat(precision, B * Nk * Hk * D); // (B, Nk, Hk, D) under dkL
  const dv = io?.dv ?? allocFloat(precision, B * Nk * Hk * D); // (B, Nk, Hk, D) under dvL

  // line 4: D = rowsum(dO * O), (B, Hq, Nq), for the query heads of this call's groups; the caller's
  // dq rows of those heads are zeroed here.
  const Dvec = allocFloat(precision, B * Hq * Nq);
  for (let bhk = bhkLo; bhk < bhkHi; bhk++) {
    const b = Math.floor(bhk / Hk);
    const hk = bhk - b * Hk;
    for (let h = hk * group; h < (hk + 1) * group; h++) {
      for (let n = 0; n < Nq; n++) {
        const oo = OL.offset + b * OL.sB + n * OL.sN + h * OL.sH;
        const go = dOL.offset + b * dOL.sB + n * dOL.sN + h * dOL.sH;
        let s = 0;
        for (let d = 0; d < D; d++) s += dO[go + d]! * O[oo + d]!;
        Dvec[(b * Hq + h) * Nq + n] = s;
        if (io) {
          const qo = dqL.offset + b * dqL.sB + n * dqL.sN + h * dqL.sH;
          dq.fill(0, qo, qo + D);
        }
      }
    }
  }

  // "On-chip" tile buffers:
  const dKj = allocFloat(precision, Bc * D); // (Bc, D)
  const dVj = allocFloat(precision, Bc * D); // (Bc, D)
  const Pij = allocFloat(precision, Bc); // (Bc): one row of P_ij
  const dSij = allocFloat(precision, Bc); // (Bc): one row of dS_ij

  const Tc = Math.ceil(Nk / Bc);
  for (let bhk = bhkLo; bhk < bhkHi; bhk++) {
    const b = Math.floor(bhk / Hk);
    const hk = bhk - b * Hk;
    const kBase = kL.offset + b * kL.sB + hk * kL.sH; // offset of k (b, 0, hk, 0)
    const vBase = vL.offset + b * vL.sB + hk * vL.sH; // offset of v (b, 0, hk, 0)
    // line 5: for 1 <= j <= Tc
    for (let j = 0; j < Tc; j++) {
      const c0 = j * Bc;
      const c1 = Math.min(c0 + Bc, Nk);
      const cols = c1 - c0;
      // line 6: K_j, V_j are read in place. line 7: dK_j = 0, dV_j = 0.
      dKj.fill(0, 0, cols * D);
      dVj.fill(0, 0, cols * D);
      // Rows that can see a key of this block: rowHi > c0 and rowLo < c1 (both bounds grow with
      // the row), so Q blocks outside [iStart, iEnd) are fully masked for K_j and skipped.
      const rFirst = firstTrue(Nq, (i) => rowHi[i]! > c0);
      const rEnd = firstTrue(Nq, (i) => rowLo[i]! >= c1);
      const iStart = Math.floor(rFirst / Br);
      const iEnd = rEnd > rFirst ? Math.ceil(rEnd / Br) : iStart;
      // GQA: every query head of the group adds into the same dK_j, dV_j.
      for (let h = hk * group; h < (hk + 1) * group; h++) {
        const qBase = qL.offset + b * qL.sB + h * qL.sH; // offset of q (b, 0, h, 0)
        const gBase = dOL.offset + b * dOL.sB + h * dOL.sH; // offset of dO (b, 0, h, 0)
        const dqBase = dqL.offset + b * dqL.sB + h * dqL.sH; // offset of dq (b, 0, h, 0)
        const lBase = (b * Hq + h) * Nq;
        // line 8: for 1 <= i <= Tr (blocks that see K_j only)
        for (let i = iStart; i < iEnd; i++) {
          const r0 = i * Br;
          const rEndBlock = Math.min(r0 + Br, Nq);
          // line 9: Q_i, O_i, dO_i, dQ_i, L_i, D_i are read in place, row by row.
          for (let row = r0; row < rEndBlock; row++) {
            const lo = Math.max(c0, rowLo[row]!);
            const hi = Math.min(c1, rowHi[row]!);
            const Lr = L[lBase + row]!;
            if (lo >= hi || Lr === -Infinity) continue; // masked here, or a row that saw no key
            const qo = qBase + row * qL.sN;
            const go = gBase + row * dOL.sN;
            const Dr = Dvec[lBase + row]!;
            // lines 10-11: S_ij = scale * Q_i K_j^T (stored in the precision exactly as the forward
            // stored it), P_ij = exp(S_ij - L_i)
            rowDotTile(q, qo, k, kBase, kL.sN, lo, hi, c0, D, scale, Pij);
            for (let c = lo; c < hi; c++) Pij[c - c0] = Math.exp(Pij[c - c0]! - Lr);
            // line 13: dP_ij = dO_i V_j^T (stored in the precision, like D_i)
            rowDotTile(dO, go, v, vBase, vL.sN, lo, hi, c0, D, 1, dSij);
            // line 14: dS_ij = P_ij * (dP_ij - D_i)
            for (let c = lo; c < hi; c++) dSij[c - c0] = Pij[c - c0]! * (dSij[c - c0]! - Dr);
            // line 15: dQ_i += scale * dS_ij K_j (read-modify-write of the dQ buffer)
            rowAccumulateTile(
              dq,
              dqBase + row * dqL.sN,
              dSij,
              scale,
              k,
              kBase,
              kL.sN,
              lo,
              hi,
              c0,
              D,
            );
            // lines 12 and 16: dV_j += P_ij^T dO_i, dK_j += scale * dS_ij^T Q_i (one pass per key row)
            for (let c = lo; c < hi; c++) {
              const p = Pij[c - c0]!;
              const ds = scale * dSij[c - c0]!;
              const jo = (c - c0) * D;
              for (let d = 0; d < D; d++) {
                dVj[jo + d]! += p * dO[go + d]!;
                dKj[jo + d]! += ds * q[qo + d]!;
              }
            }
          }
        }
      }
      // line 18: write dK_j, dV_j
      for (let c = 0; c < cols; c++) {
        const ko = dkL.offset + b * dkL.sB + (c0 + c) * dkL.sN + hk * dkL.sH;
        const vo = dvL.offset + b * dvL.sB + (c0 + c) * dvL.sN + hk * dvL.sH;
        for (let d = 0; d < D; d++) {
          dk[ko + d] = dKj[c * D + d]!;
          dv[vo + d] = dVj[c * D + d]!;
        }
      }
    }
  }
  return { dq, dk, dv };
}

/**
 * FlashAttention-2 backward: gradients of sum(out * dout) w.r.t. q, k, v, from the forward's out and
 * lse. Float32 accumulators; results in q's dtype (dk, dv summed over each GQA group).
 */
export function flashAttentionBackward(
  dout: Tensor,
  q: Tensor,
  k: Tensor,
  v: Tensor,
  out: Tensor,
  lse: Float32Array,
  opts?: FlashAttentionOptions,
): AttentionGradients {
  const shape = validateBackward(dout, q, k, v, out, lse, opts, FLASH_OPTION_KEYS);
  const { Br, Bc } = resolveBlockSizes(opts);
  const o = resolveOptions(opts, shape.headDim);
  const g = flashBackwardKernel(
    toFloat32(dout),
    toFloat32(q),
    toFloat32(k),
    toFloat32(v),
    toFloat32(out),
    lse,
    shape,
    o,
    Br,
    Bc,
    'float32',
  );
  return {
    dq: fromFloat32(g.dq as Float32Array, q.shape, q.dtype),
    dk: fromFloat32(g.dk as Float32Array, k.shape, k.dtype),
    dv: fromFloat32(g.dv as Float32Array, v.shape, v.dtype),
  };
}
