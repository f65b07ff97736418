/**
 * Tile staging for the vec4 backward kernels (flash-backward-dq-v4.wgsl.ts,
 * flash-backward-dkdv-v4.wgsl.ts): tiles of q, k, v or dout go from storage into a workgroup array
 * `sm: array<vec4<f32>>` in the three layouts the vec4 inner loops read (the same layouts as the vec4
 * forward, flash-forward-v4.wgsl.ts; one kernel per file, these are their loads):
 *   rowsT   transposed chunk (DK, stride): word dd * stride + i holds head dim d0 + dd of row i, so the
 *           TM rows of one invocation are TM / 4 consecutive vec4s (read as a broadcast);
 *   colsT   transposed chunk (DK, stride), permuted: position tx * TN + c holds row c * GX + tx, so
 *           the TN columns of one invocation are TN / 4 consecutive vec4s;
 *   rowsP   JK whole rows (JK, DP), permuted: position tx * TD + c holds head dim c * GX + tx.
 * Rows past the end read the last row (finite; the kernels mask them or never write them), padded
 * head dims read 0. The kernels need `lid`, `D`, `d0` (chunks) and `ld_<buf>` in scope.
 */
import type { Tiles } from './tiles.js';
import { gcd, unroll } from './tiles.js';

export interface BwdV4Derived extends Tiles {
  GX: number;
  GY: number;
  NT: number;
  /** Head dim padded to whole DK chunks and whole vec4 groups per invocation. */
  DP: number;
  TD: number;
  /** Row strides (words) of the transposed chunks: +4 so that consecutive rows start in other banks. */
  SR: number;
  SC: number;
}

/** Shapes of the vec4 backward kernels; throws when TM, TN or GX are not multiples of 4. */
export function deriveBwdV4(t: Tiles, headDim: number): BwdV4Derived {
  const GX = t.BC / t.TN;
  const GY = t.BR / t.TM;
  if (
    !Number.isInteger(GX) ||
    !Number.isInteger(GY) ||
    t.TM % 4 !== 0 ||
    t.TN % 4 !== 0 ||
    GX % 4 !== 0
  ) {
    throw new Error(
      `tiles ${JSON.stringify(t)} do not suit the vec4 backward (TM, TN, GX multiples of 4)`,
    );
  }
  const unit = (4 * GX * t.DK) / gcd(4 * GX, t.DK);
  const DP = Math.ceil(headDim / unit) * unit;
  return { ...t, GX, GY, NT: GX * GY, DP, TD: DP / GX, SR: t.BR + 4, SC: t.BC + 4 };
}

/** Where the rows of a tile come from: `ld_<buf>(base + min(row, limit - 1) * rowStride + d)`. */
export interface Src {
  buf: string;
  base: string;
  rowStride: string;
  limit: string;
  /** WGSL expression: sequence position of the tile's first row */
  first: string;
}

/** One tile to stage: `count` vec4s; element e is loaded into `x`, then stored. */
export interface Stager {
  count: number;
  load: (e: string, x: string) => string;
  store: (e: string, x: string) => string;
}

function elem(t: BwdV4Derived, headDim: number, s: Src, row: string, d: string): string {
  const at = `${s.base} + min(${row}, ${s.limit} - 1u) * ${s.rowStride}`;
  return t.DP !== headDim
    ? `select(0.0, ld_${s.buf}(${at} + min(${d}, D - 1u)), ${d} < D)`
    : `ld_${s.buf}(${at} + ${d})`;
}

/**
 * rowsT: `n` rows from s.first, head dims [dBase, dBase + nd) (default: the chunk [d0, d0 + DK)), at
 * word offset `off`, row stride `stride`; word (dd * stride + i) holds head dim dBase + dd of row i.
 */
export function rowsT(
  t: BwdV4Derived,
  headDim: number,
  s: Src,
  n: number,
  off: number,
  stride: number,
  nd = t.DK,
  dBase = 'd0',
): Stager {
  return {
    count: (nd * n) / 4,
    load: (
      e,
      x,
    ) => `let ${x}d = ${dBase} + ${e} % ${nd}u; let ${x}r = ${s.first} + (${e} / ${nd}u) * 4u;
        let ${x} = vec4<f32>(${[0, 1, 2, 3].map((c) => elem(t, headDim, s, `${x}r + ${c}u`, `${x}d`)).join(', ')});`,
    store: (e, x) => `sm[(${off}u + (${e} % ${nd}u) * ${stride}u) / 4u + ${e} / ${nd}u] = ${x};`,
  };
}

/** colsT: `n` = TN * GX rows from s.first, head dims [d0, d0 + DK), permuted as above. */
export function colsT(
  t: BwdV4Derived,
  headDim: number,
  s: Src,
  off: number,
  stride: number,
): Stager {
  const { DK, GX } = t;
  const N4 = t.TN / 4;
  return {
    count: (DK * t.BC) / 4,
    load: (e, x) => `let ${x}d = d0 + ${e} % ${DK}u; let ${x}q = ${e} / ${DK}u;
        let ${x}c = ${s.first} + ((${x}q % ${N4}u) * 4u) * ${GX}u + ${x}q / ${N4}u;
        let ${x} = vec4<f32>(${[0, 1, 2, 3].map((c) => elem(t, headDim, s, `${x}c + ${c * GX}u`, `${x}d`)).join(', ')});`,
    store: (e, x) => `sm[(${off}u + (${e} % ${DK}u) * ${stride}u) / 4u + ${e} / ${DK}u] = ${x};`,
  };
}

/** rowsP: JK rows from s.first, all DP head dims, permuted as above, at word offset `off`. */
export function rowsP(t: BwdV4Derived, headDim: number, s: Src, off: number): Stager {
  const { DP, GX, JK } = t;
  const D4 = t.TD / 4;
  return {
    count: (JK * DP) / 4,
    load: (e, x) => `let ${x}q = ${e} % ${DP / 4}u; let ${x}c = ${s.first} + ${e} / ${DP / 4}u;
        let ${x}d = ((${x}q % ${D4}u) * 4u) * ${GX}u + ${x}q / ${D4}u;
        let ${x} = vec4<f32>(${[0, 1, 2, 3].map((c) => elem(t, headDim, s, `${x}c`, `${x}d + ${c * GX}u`)).join(', ')});`,
    store: (e, x) =>
      `sm[(${off}u + (${e} / ${DP / 4}u) * ${DP}u) / 4u + ${e} % ${DP / 4}u] = ${x};`,
  };
}

/**
 * Stage tiles: the lane loop is unrolled and every load is issued before the first store, so their
 * latencies overlap (the change that took the vec4 forward from 21.6 to 23.6 TFLOP/s). Where a tile
 * has fewer vec4s than a whole number of rounds, the last round loads a clamped element and skips
 * the store.
 */
export function stage(t: BwdV4Derived, list: readonly Stager[]): string {
  const { NT } = t;
  let loads = '';
  let stores = '';
  list.forEach((st, n) => {
    const rounds = Math.ceil(st.count / NT);
    for (let r = 0; r < rounds; r++) {
      const e = `e${n}_${r}`;
      const x = `x${n}_${r}`;
      const whole = (r + 1) * NT <= st.count;
      loads += whole
        ? `
        let ${e} = lid + ${r * NT}u; ${st.load(e, x)}`
        : `
        let ${e} = min(lid + ${r * NT}u, ${st.count - 1}u); ${st.load(e, x)}`;
      stores += whole
        ? `
        ${st.store(e, x)}`
        : `
        if (lid + ${r * NT}u < ${st.count}u) { ${st.store(e, x)} }`;
    }
  });
  return `
      {${loads}${stores}
      }`;
}

/** One operand of dualOuterV4: a transposed tile in workgroup memory (word offset, row stride in words). */
export interface OuterOperand {
  off: number;
  stride: number;
}

/**
 * The inner loop of both vec4 backward passes: two register-tile products over one dd loop,
 * s[r, c] += A[dd, r] * B[dd, c] and dp[r, c] += G[dd, r] * W[dd, c] for this invocation's TM x TN entries
 * (rows ty * TM.., columns tx * TN..), every workgroup-memory read a vec4 (A, G over the rows, B, W over the
 * columns): 4 vec4 reads per 2 * TM * TN FMAs. `aRow` is the WGSL row index of A and G for step dd (a
 * running K/V row in the dK/dV pass), `indent` the loop's indentation.
 */
export function dualOuterV4(
  t: { TM: number; TN: number; DK: number },
  a: OuterOperand,
  g: OuterOperand,
  b: OuterOperand,
  w: OuterOperand,
  aRow: string,
  indent: string,
): string {
  const { TM, TN, DK } = t;
  const sIdx = (r: number, c: number): number => r * TN + c;
  const i = indent;
  const rowRead = (o: OuterOperand, m: number) =>
    `sm[(${o.off}u + ${aRow} * ${o.stride}u + ty * ${TM}u) / 4u + ${m}u]`;
  const colRead = (o: OuterOperand, n: number) =>
    `sm[(${o.off}u + dd * ${o.stride}u + tx * ${TN}u) / 4u + ${n}u]`;
  return (
    `${i}for (var dd = 0u; dd < ${DK}u; dd++) {\n` +
    unroll(
      TM / 4,
      (m) => `${i}  let a${m} = ${rowRead(a, m)};\n${i}  let g${m} = ${rowRead(g, m)};\n`,
    ) +
    unroll(
      TN / 4,
      (n) => `${i}  let b${n} = ${colRead(b, n)};\n${i}  let w${n} = ${colRead(w, n)};\n`,
    ) +
    unroll(TM, (r) =>
      unroll(
        TN,
        (c) =>
          `${i}  s[${sIdx(r, c)}] = fma(a${r >> 2}[${r & 3}], b${c >> 2}[${c & 3}], s[${sIdx(r, c)}]);\n` +
          `${i}  dp[${sIdx(r, c)}] = fma(g${r >> 2}[${r & 3}], w${c >> 2}[${c & 3}], dp[${sIdx(r, c)}]);\n`,
      ),
    ) +
    `${i}}\n`
  );
}
