/**
 * FlashAttention-2 backward, dQ pass: one workgroup per (Q block, head, batch) loops over the K/V
 * blocks its rows can see and accumulates dQ_i in registers, so no float atomics are needed
 * (WGSL has none). For each block it recomputes S = Q K^T and P = exp(S - lse), dP = dO V^T,
 * dS = P * (dP - D) (Algorithm 2, lines 11-14) and adds dS K (line 15).
 *
 * Bindings: q, dout (B, Nq, Hq, D), k, v (B, Nk, Hk, D) in storage dtype; lse, delta (B, Hq, Nq) f32
 * (lse at p.lseOff, -Infinity for fully masked rows); strided views; dq (B, Nq, Hq, D) f32.
 */
import type { ProgramInfo } from '../program.js';
import {
  ATTENTION_UNIFORMS,
  backwardBindings,
  LOG2E,
  LSE_READ_WGSL,
  MASK_WGSL,
  viewBase,
  viewRow,
  type AttentionViewName,
} from './params.wgsl.js';
import type { StorageKind } from './storage.wgsl.js';
import { loadChunkTransposed, loadRows, type TileSource } from './stage-scalar.wgsl.js';
import { derive, unroll, type Tiles, tilesKey } from './tiles.js';

export function flashBackwardDqScalarSharedBytes(headDim: number, tiles: Tiles): number {
  const t = derive(tiles, headDim);
  const chunkA = 2 * t.DK * t.SR + 2 * t.DK * t.SC; // Q, dO, K, V chunks
  const chunkB = t.JK * t.DP; // K rows for dS K
  return 4 * (Math.max(chunkA, chunkB) + t.BC * t.SR);
}

/** The pass as a program: dispatch (ceil(Nq / BR), Hq, B). */
export function flashBackwardDqScalarProgram(
  headDim: number,
  kind: StorageKind,
  tiles: Tiles,
  dispatch: readonly [number, number, number],
): ProgramInfo {
  const t = tiles;
  return {
    name: 'flash-backward-dq-scalar',
    cacheKey: tilesKey(headDim, kind, t),
    uniforms: ATTENTION_UNIFORMS,
    bindings: backwardBindings(kind, 'dq'),
    dispatch,
    body: () => flashBackwardDqScalarWGSL(headDim, kind, tiles),
  };
}

/** The kernel body (after the bindings the program manager writes). */
export function flashBackwardDqScalarWGSL(
  headDim: number,
  kind: StorageKind,
  tiles: Tiles,
): string {
  const D = headDim;
  const t = derive(tiles, D);
  const { BR, BC, TM, TN, DK, JK, GX, NT, DP, TD, SR, SC } = t;
  const QOFF = 0;
  const OOFF = DK * SR; // dO chunk
  const KOFF = 2 * DK * SR;
  const VOFF = 2 * DK * SR + DK * SC;
  const K2OFF = 0;
  const POFF = Math.max(2 * DK * SR + 2 * DK * SC, JK * DP); // dS^T (BC, SR)
  const SM = POFF + BC * SR;
  // q, dout rows of this Q block; k, v rows of the K/V block at j0 (see tile-loads.wgsl.ts)
  const chunk = (off: number, stride: number, n: number, src: TileSource) =>
    loadChunkTransposed(t, off, stride, n, src);
  const qi = (buf: string): TileSource => ({
    buf,
    base: `${buf}Base`,
    rowStride: viewRow(buf as AttentionViewName),
    limit: 'p.Nq',
    first: 'row0',
    idx: 'i',
    pos: 'row',
  });
  const kj = (buf: string): TileSource => ({
    buf,
    base: `${buf}Base`,
    rowStride: viewRow(buf as AttentionViewName),
    limit: 'p.Nk',
    first: 'j0',
    idx: 'i',
    pos: 'row',
  });
  return `${MASK_WGSL}${LSE_READ_WGSL}
const D = ${D}u;
var<workgroup> sm: array<f32, ${SM}>;

@compute @workgroup_size(${NT})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let h = wg.y;
  let b = wg.z;
  let hk = h / (p.Hq / p.Hk);
  let tx = lid % ${GX}u;
  let ty = lid / ${GX}u;
  let row0 = wg.x * ${BR}u;
  let rowLast = min(row0 + ${BR}u, p.Nq) - 1u;
  let scale2 = p.scale * ${LOG2E};
  let qBase = ${viewBase('q', 'b', 'h')};        // q[b, 0, h, 0]
  let doutBase = ${viewBase('dout', 'b', 'h')};  // dout[b, 0, h, 0]
  let dqBase = ${viewBase('dq', 'b', 'h')};      // dq[b, 0, h, 0]
  let kBase = ${viewBase('k', 'b', 'hk')};       // k[b, 0, hk, 0]
  let vBase = ${viewBase('v', 'b', 'hk')};       // v[b, 0, hk, 0]

  var lo: array<i32, ${TM}>;
  var hi: array<i32, ${TM}>;
  var lse2: array<f32, ${TM}>;  // lse in log2 units
  var Di: array<f32, ${TM}>;
  var acc: array<f32, ${TM * TD}>; // dQ_i (TM rows x TD columns)
${unroll(
  TM,
  (r) => `  { let i = row0 + ty * ${TM}u + ${r}u;
    let ii = min(i, p.Nq - 1u);
    lo[${r}] = keyLo(i32(i)); hi[${r}] = select(lo[${r}], keyHi(i32(i)), i < p.Nq);
    lse2[${r}] = lse2At((b * p.Hq + h) * p.Nq + ii);
    Di[${r}] = delta[(b * p.Hq + h) * p.Nq + ii]; }
`,
)}
  let jBegin = (u32(keyLo(i32(row0))) / ${BC}u) * ${BC}u;
  let jEnd = u32(max(keyHi(i32(rowLast)), 0));
  for (var j0 = jBegin; j0 < jEnd; j0 += ${BC}u) {
    // Algorithm 2, lines 11 and 13: S = Q K^T and dP = dO V^T, streamed DK head-dims at a time
    var s: array<f32, ${TM * TN}>;
${unroll(TM * TN, (e) => `    s[${e}] = 0.0; // explicit: SwiftShader keeps a loop-local var's old value\n`)}
    var dp: array<f32, ${TM * TN}>;
${unroll(TM * TN, (e) => `    dp[${e}] = 0.0;\n`)}
    for (var d0 = 0u; d0 < ${DP}u; d0 += ${DK}u) {${chunk(QOFF, SR, BR, qi('q'))}${chunk(OOFF, SR, BR, qi('dout'))}${chunk(
      KOFF,
      SC,
      BC,
      kj('k'),
    )}${chunk(VOFF, SC, BC, kj('v'))}
      workgroupBarrier();
      for (var dd = 0u; dd < ${DK}u; dd++) {
${unroll(
  TM,
  (r) => `        let a${r} = sm[${QOFF}u + dd * ${SR}u + ty * ${TM}u + ${r}u];
        let g${r} = sm[${OOFF}u + dd * ${SR}u + ty * ${TM}u + ${r}u];\n`,
)}${unroll(
    TN,
    (c) => `        let b${c} = sm[${KOFF}u + dd * ${SC}u + ${c * GX}u + tx];
        let w${c} = sm[${VOFF}u + dd * ${SC}u + ${c * GX}u + tx];\n`,
  )}${unroll(TM, (r) =>
    unroll(
      TN,
      (c) => `        s[${r * TN + c}] = fma(a${r}, b${c}, s[${r * TN + c}]);
        dp[${r * TN + c}] = fma(g${r}, w${c}, dp[${r * TN + c}]);\n`,
    ),
  )}      }
      workgroupBarrier();
    }
    // Algorithm 2, lines 12 and 14: P = exp(S - lse), dS = P * (dP - D); stored as dS^T
${unroll(TM, (r) =>
  unroll(
    TN,
    (c) => `    { let j = i32(j0 + ${c * GX}u + tx);
      let vis = j >= lo[${r}] && j < hi[${r}];
      let pr = select(0.0, probability(s[${r * TN + c}] * scale2 - lse2[${r}]), vis);
      sm[${POFF}u + (${c * GX}u + tx) * ${SR}u + ty * ${TM}u + ${r}u] = pr * (dp[${r * TN + c}] - Di[${r}]); }\n`,
  ),
)}    workgroupBarrier();
    // Algorithm 2, line 15: dQ_i += dS K (the softmax scale is applied once at the end)
    for (var jj0 = 0u; jj0 < ${BC}u; jj0 += ${JK}u) {${loadRows(t, K2OFF, { ...kj('k'), first: 'j0 + jj0', idx: 'jj', pos: 'col' })}
      workgroupBarrier();
      for (var jj = 0u; jj < ${JK}u; jj++) {
${unroll(TM, (r) => `        let p${r} = sm[${POFF}u + (jj0 + jj) * ${SR}u + ty * ${TM}u + ${r}u];\n`)}${unroll(
    TD,
    (c) => `        let w${c} = sm[${K2OFF}u + jj * ${DP}u + ${c * GX}u + tx];\n`,
  )}${unroll(TM, (r) => unroll(TD, (c) => `        acc[${r * TD + c}] = fma(p${r}, w${c}, acc[${r * TD + c}]);\n`))}      }
      workgroupBarrier();
    }
  }
${unroll(
  TM,
  (r) => `  { let i = row0 + ty * ${TM}u + ${r}u;
    if (i < p.Nq) {
${unroll(TD, (c) => `      if (${c * GX}u + tx < D) { dq[dqBase + i * ${viewRow('dq')} + ${c * GX}u + tx] = acc[${r * TD + c}] * p.scale; }\n`)}    }
  }
`,
)}}
`;
}
