/**
 * Internal tile helpers of the CPU FlashAttention-2 kernels (flash-forward.ts, flash-backward.ts):
 * buffer allocation in the accumulation precision, per-row visible key ranges, and the two row-by-tile
 * products. Not exported from the package index.
 */
import type { AccumPrecision, FloatArray } from './flash-blocks.js';
import { keyRange, type ResolvedOptions } from './options.js';

export function allocFloat(precision: AccumPrecision, n: number): FloatArray {
  return precision === 'float32' ? new Float32Array(n) : new Float64Array(n);
}

/**
 * Visible key range [lo[i], hi[i]) of every query row i (core's keyRange); lo and hi are both
 * non-decreasing in i, so the keys a block of rows can see form one contiguous range. (Nq) each.
 */
export function rowKeyRanges(
  seqlenQ: number,
  seqlenK: number,
  o: Pick<ResolvedOptions, 'windowLeft' | 'windowRight'>,
): { lo: Int32Array; hi: Int32Array } {
  const lo = new Int32Array(seqlenQ); // (Nq)
  const hi = new Int32Array(seqlenQ); // (Nq)
  for (let i = 0; i < seqlenQ; i++) {
    const [a, b] = keyRange(i, seqlenQ, seqlenK, o);
    lo[i] = a;
    hi[i] = b;
  }
  return { lo, hi };
}

/**
 * One row of a tile product: out[c - c0] = scale * dot(x[xo .. xo + D), M[base + c * stride ..+ D))
 * for c in [lo, hi), e.g. a row of S_ij = scale * Q_i K_j^T or of dP_ij = dO_i V_j^T.
 * Four rows of M per pass share each load of x (about 2x faster than one at a time in V8).
 * Each result is stored in `out`'s precision.
 */
export function rowDotTile(
  x: FloatArray,
  xo: number,
  M: FloatArray,
  base: number,
  stride: number,
  lo: number,
  hi: number,
  c0: number,
  D: number,
  scale: number,
  out: FloatArray,
): void {
  let c = lo;
  for (; c + 3 < hi; c += 4) {
    const m0 = base + c * stride;
    const m1 = m0 + stride;
    const m2 = m1 + stride;
    const m3 = m2 + stride;
    let s0 = 0;
    let s1 = 0;
    let s2 = 0;
    let s3 = 0;
    for (let d = 0; d < D; d++) {
      const a = x[xo + d]!;
      s0 += a * M[m0 + d]!;
      s1 += a * M[m1 + d]!;
      s2 += a * M[m2 + d]!;
      s3 += a * M[m3 + d]!;
    }
    out[c - c0] = scale * s0;
    out[c - c0 + 1] = scale * s1;
    out[c - c0 + 2] = scale * s2;
    out[c - c0 + 3] = scale * s3;
  }
  for (; c < hi; c++) {
    const mo = base + c * stride;
    let s = 0;
    for (let d = 0; d < D; d++) s += x[xo + d]! * M[mo + d]!;
    out[c - c0] = scale * s;
  }
}

/**
 * acc[ao .. ao + D) += sum_c w[c - c0] * M[base + c * stride ..+ D) for c in [lo, hi): one row of a
 * tile product P V_j or dS K_j accumulated into a row, four rows of M per read-modify-write of acc.
 */
export function rowAccumulateTile(
  acc: FloatArray,
  ao: number,
  w: FloatArray,
  wScale: number,
  M: FloatArray,
  base: number,
  stride: number,
  lo: number,
  hi: number,
  c0: number,
  D: number,
): void {
  let c = lo;
  for (; c + 3 < hi; c += 4) {
    const p0 = wScale * w[c - c0]!;
    const p1 = wScale * w[c - c0 + 1]!;
    const p2 = wScale * w[c - c0 + 2]!;
    const p3 = wScale * w[c - c0 + 3]!;
    const m0 = base + c * stride;
    const m1 = m0 + stride;
    const m2 = m1 + stride;
    const m3 = m2 + stride;
    for (let d = 0; d < D; d++) {
      acc[ao + d]! += p0 * M[m0 + d]! + p1 * M[m1 + d]! + p2 * M[m2 + d]! + p3 * M[m3 + d]!;
    }
  }
  for (; c < hi; c++) {
    const p = wScale * w[c - c0]!;
    const mo = base + c * stride;
    for (let d = 0; d < D; d++) acc[ao + d]! += p * M[mo + d]!;
  }
}
