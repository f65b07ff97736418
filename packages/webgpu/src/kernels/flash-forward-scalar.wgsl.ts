/**
 * FlashAttention-2 forward (Algorithm 1 of the FA2 paper), one workgroup per (Q block, head, batch).
 *
 * Bindings: q (B, Nq, Hq, D), k, v (B, Nk, Hk, D) in storage dtype; o (B, Nq, Hq, D) f32;
 * lse (B, Hq, Nq) f32 at p.lseOff, -Infinity (p.ninf) on fully masked rows; q, k, v, o strided views.
 * Scores are kept in the log2 domain: s2 = scale * log2(e) * q.k, so exp becomes exp2.
 * The row max is reduced across the GX invocations sharing a row through workgroup memory; the row
 * sum l_i stays partial per invocation until the end (every partial is rescaled by the same alpha).
 */
import type { ProgramInfo } from '../program.js';
import {
  ATTENTION_UNIFORMS,
  forwardBindings,
  LN2,
  LOG2E,
  MASK_WGSL,
  viewBase,
  viewRow,
} from './params.wgsl.js';
import { NEG, type StorageKind } from './storage.wgsl.js';
import { loadChunkTransposed, loadRows } from './stage-scalar.wgsl.js';
import { derive, unroll, type Tiles, tilesKey } from './tiles.js';

export interface FlashForwardSpec {
  headDim: number;
  kind: StorageKind;
  tiles: Tiles;
}

/** Workgroup memory (bytes) the forward kernel needs for these tiles. */
export function flashForwardScalarSharedBytes(headDim: number, tiles: Tiles): number {
  const t = derive(tiles, headDim);
  const chunkA = t.DK * t.SR + t.DK * t.SC; // Q and K chunks
  const chunkB = t.JK * t.DP; // V chunk (aliases the Q/K chunks)
  return 4 * (Math.max(chunkA, chunkB) + t.BC * t.SR + t.BR * t.GX);
}

/** The scalar forward as a program: dispatch (ceil(Nq / BR), Hq, B). */
export function flashForwardScalarProgram(
  spec: FlashForwardSpec,
  dispatch: readonly [number, number, number],
): ProgramInfo {
  const t = spec.tiles;
  return {
    name: 'flash-forward-scalar',
    cacheKey: tilesKey(spec.headDim, spec.kind, t),
    uniforms: ATTENTION_UNIFORMS,
    bindings: forwardBindings(spec.kind),
    dispatch,
    body: () => flashForwardScalarWGSL(spec),
  };
}

/** The kernel body (after the bindings the program manager writes). */
export function flashForwardScalarWGSL(spec: FlashForwardSpec): string {
  const D = spec.headDim;
  const t = derive(spec.tiles, D);
  const { BR, BC, TM, TN, DK, JK, GX, NT, DP, TD, SR, SC } = t;
  const QOFF = 0;
  const KOFF = DK * SR;
  const VOFF = 0;
  const POFF = Math.max(DK * SR + DK * SC, JK * DP); // P^T: (BC, SR)
  // where q rows (this Q block) and k, v rows (the K/V block at j0) come from; see tile-loads.wgsl.ts
  const qRows = { base: 'qBase', rowStride: viewRow('q'), limit: 'p.Nq' };
  const kRows = { base: 'kBase', rowStride: viewRow('k'), limit: 'p.Nk' };
  const vRows = { base: 'vBase', rowStride: viewRow('v'), limit: 'p.Nk' };
  const ROFF = POFF + BC * SR; // row-max exchange: (BR, GX)
  const SM = ROFF + BR * GX;
  return `${MASK_WGSL}
const D = ${D}u;
// Workgroup memory: Q chunk (DK, SR) and K chunk (DK, SC), aliased by the V chunk (JK, DP);
// P^T (BC, SR); row-max exchange (BR, GX).
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
  let qBase = ${viewBase('q', 'b', 'h')};   // q[b, 0, h, 0]
  let kBase = ${viewBase('k', 'b', 'hk')};  // k[b, 0, hk, 0]
  let vBase = ${viewBase('v', 'b', 'hk')};  // v[b, 0, hk, 0]
  let oBase = ${viewBase('o', 'b', 'h')};   // o[b, 0, h, 0]

  // Algorithm 1, line 6: m_i = -inf, l_i = 0, acc = 0 (per invocation: TM rows, TD columns)
  var m_i: array<f32, ${TM}>;
  var l_i: array<f32, ${TM}>;
  var lo: array<i32, ${TM}>;
  var hi: array<i32, ${TM}>;
  var acc: array<f32, ${TM * TD}>;
${unroll(
  TM,
  (r) => `  { let i = i32(row0 + ty * ${TM}u + ${r}u);
    m_i[${r}] = ${NEG}; l_i[${r}] = 0.0;
    lo[${r}] = keyLo(i); hi[${r}] = select(lo[${r}], keyHi(i), i < i32(p.Nq)); }
`,
)}
  // Keys any row of this block can see: skip K/V tiles outside them (causal / window).
  let jBegin = (u32(keyLo(i32(row0))) / ${BC}u) * ${BC}u;
  let jEnd = u32(max(keyHi(i32(rowLast)), 0));

  // Algorithm 1, line 7: loop over K/V blocks
  for (var j0 = jBegin; j0 < jEnd; j0 += ${BC}u) {
    // Algorithm 1, line 9: S = Q K^T (BR x BC), streamed DK head-dims at a time
    var s: array<f32, ${TM * TN}>;
${unroll(TM * TN, (e) => `    s[${e}] = 0.0; // explicit: SwiftShader keeps a loop-local var's old value\n`)}
    for (var d0 = 0u; d0 < ${DP}u; d0 += ${DK}u) {${loadChunkTransposed(t, QOFF, SR, BR, { ...qRows, buf: 'q', first: 'row0', idx: 'i', pos: 'row' })}${loadChunkTransposed(
      t,
      KOFF,
      SC,
      BC,
      { ...kRows, buf: 'k', first: 'j0', idx: 'j', pos: 'col' },
    )}
      workgroupBarrier();
      for (var dd = 0u; dd < ${DK}u; dd++) {
${unroll(TM, (r) => `        let a${r} = sm[${QOFF}u + dd * ${SR}u + ty * ${TM}u + ${r}u];\n`)}${unroll(
    TN,
    (c) => `        let b${c} = sm[${KOFF}u + dd * ${SC}u + ${c * GX}u + tx];\n`,
  )}${unroll(TM, (r) => unroll(TN, (c) => `        s[${r * TN + c}] = fma(a${r}, b${c}, s[${r * TN + c}]);\n`))}      }
      workgroupBarrier();
    }
    // Algorithm 1, line 10: row max over the visible keys, reduced across the GX invocations of a row
${unroll(TM, (r) => {
  let code = `    { var mx = ${NEG};\n`;
  for (let c = 0; c < TN; c++) {
    code += `      { let j = i32(j0 + ${c * GX}u + tx);
        let vis = j >= lo[${r}] && j < hi[${r}];
        s[${r * TN + c}] = select(${NEG}, s[${r * TN + c}] * scale2, vis);
        mx = max(mx, s[${r * TN + c}]); }\n`;
  }
  return code + `      sm[${ROFF}u + (ty * ${TM}u + ${r}u) * ${GX}u + tx] = mx; }\n`;
})}    workgroupBarrier();
${unroll(TM, (r) => {
  let code = `    { var mx = m_i[${r}];
      for (var g = 0u; g < ${GX}u; g++) { mx = max(mx, sm[${ROFF}u + (ty * ${TM}u + ${r}u) * ${GX}u + g]); }
      let alpha = exp2(m_i[${r}] - mx);   // Algorithm 1, line 10: rescale factor exp(m_old - m_new)
      m_i[${r}] = mx;
      var rowsum = 0.0;\n`;
  for (let c = 0; c < TN; c++) {
    // masked entries hold NEG, so s - mx <= NEG + |mx| and exp2 underflows to 0 unless mx is NEG too
    code += `      { let x = s[${r * TN + c}];
        let pr = select(select(exp2(x - mx), 0.0, x <= ${NEG}), x, isNan(x)); // a NaN score gives P = NaN
        rowsum += pr;
        sm[${POFF}u + (${c * GX}u + tx) * ${SR}u + ty * ${TM}u + ${r}u] = pr; }\n`;
  }
  code += `      l_i[${r}] = l_i[${r}] * alpha + rowsum;\n`;
  code += unroll(TD, (c) => `      acc[${r * TD + c}] *= alpha;\n`);
  return code + '    }\n';
})}    workgroupBarrier();
    // Algorithm 1, line 10: acc += P V, streamed JK keys at a time
    for (var jj0 = 0u; jj0 < ${BC}u; jj0 += ${JK}u) {${loadRows(t, VOFF, { ...vRows, buf: 'v', first: 'j0 + jj0', idx: 'jj', pos: 'col' })}
      workgroupBarrier();
      for (var jj = 0u; jj < ${JK}u; jj++) {
${unroll(TM, (r) => `        let p${r} = sm[${POFF}u + (jj0 + jj) * ${SR}u + ty * ${TM}u + ${r}u];\n`)}${unroll(
    TD,
    (c) => `        let w${c} = sm[${VOFF}u + jj * ${DP}u + ${c * GX}u + tx];\n`,
  )}${unroll(TM, (r) => unroll(TD, (c) => `        acc[${r * TD + c}] = fma(p${r}, w${c}, acc[${r * TD + c}]);\n`))}      }
      workgroupBarrier();
    }
  }

  // Algorithm 1, lines 12-13: O = acc / l, lse = m + log(l); l summed across the row's invocations
${unroll(TM, (r) => `  sm[${ROFF}u + (ty * ${TM}u + ${r}u) * ${GX}u + tx] = l_i[${r}];\n`)}  workgroupBarrier();
${unroll(TM, (r) => {
  return `  { let i = row0 + ty * ${TM}u + ${r}u;
    var l = 0.0;
    for (var g = 0u; g < ${GX}u; g++) { l += sm[${ROFF}u + (ty * ${TM}u + ${r}u) * ${GX}u + g]; }
    if (i < p.Nq) {
      let inv = select(1.0 / l, 0.0, l <= 0.0); // l = NaN (a NaN score) propagates
${unroll(TD, (c) => `      if (${c * GX}u + tx < D) { o[oBase + i * ${viewRow('o')} + ${c * GX}u + tx] = acc[${r * TD + c}] * inv; }\n`)}      if (tx == 0u) {
        lse[p.lseOff + (b * p.Hq + h) * p.Nq + i] = select(select((m_i[${r}] + log2(l)) * ${LN2}, p.ninf, l <= 0.0), acc[${r * TD}], isNan(acc[${r * TD}]));
      }
    }
  }
`;
})}}
`;
}
