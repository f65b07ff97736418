/**
 * WGSL snippets that stage tiles of q, k, v or dout from storage into workgroup memory `sm`, shared by
 * the flash forward and both backward passes (each kernel file still holds one kernel; these are
 * its loads). Out-of-range rows and padded head-dim columns load as 0. Both expect the kernel's
 * `lid` (local invocation index), `D` (head dim) and `ld_<buf>` (storage.wgsl.ts) to be in scope.
 */
import type { Derived } from './tiles.js';

/** Where the rows of one tile come from: `ld_<buf>(base + pos * rowStride + d)` for pos < limit. */
export interface TileSource {
  /** storage buffer name (q, k, v, dout) */
  buf: string;
  /** WGSL expression: offset of (b, 0, h, 0) */
  base: string;
  /** WGSL expression: distance between consecutive sequence rows */
  rowStride: string;
  /** WGSL expression: number of valid rows (p.Nq or p.Nk) */
  limit: string;
  /** WGSL expression: sequence position of the tile's first row */
  first: string;
  /** WGSL names of the local row index and of the sequence position (they appear in the kernel text) */
  idx: string;
  pos: string;
}

/**
 * A DK-wide head-dim chunk [d0, d0 + DK) of `n` rows, stored transposed: sm[off + dd * stride + i]
 * (DK, stride) so the S = Q K^T loop reads one head-dim slice of every row contiguously.
 * Needs `d0` in scope.
 */
export function loadChunkTransposed(
  t: Derived,
  off: number,
  stride: number,
  n: number,
  src: TileSource,
): string {
  const { DK, NT } = t;
  const { buf, base, rowStride, limit, first, idx, pos } = src;
  return `
      for (var e = lid; e < ${DK * n}u; e += ${NT}u) {
        let dd = e % ${DK}u; let ${idx} = e / ${DK}u;
        let ${pos} = ${first} + ${idx}; let d = d0 + dd;
        var x = 0.0;
        if (${pos} < ${limit} && d < D) { x = ld_${buf}(${base} + ${pos} * ${rowStride} + d); }
        sm[${off}u + dd * ${stride}u + ${idx}] = x;
      }`;
}

/**
 * JK whole rows (all DP padded head-dim columns), stored row-major: sm[off + idx * DP + d] (JK, DP),
 * for the products that stream rows (P V, dS K, P^T dO, dS^T Q).
 */
export function loadRows(t: Derived, off: number, src: TileSource): string {
  const { JK, DP, NT } = t;
  const { buf, base, rowStride, limit, first, idx, pos } = src;
  return `
      for (var e = lid; e < ${JK * DP}u; e += ${NT}u) {
        let d = e % ${DP}u; let ${idx} = e / ${DP}u;
        let ${pos} = ${first} + ${idx};
        var x = 0.0;
        if (${pos} < ${limit} && d < D) { x = ld_${buf}(${base} + ${pos} * ${rowStride} + d); }
        sm[${off}u + ${idx} * ${DP}u + d] = x;
      }`;
}
