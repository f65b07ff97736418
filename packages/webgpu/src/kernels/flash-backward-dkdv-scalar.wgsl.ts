/**
 * FlashAttention-2 backward, dK/dV pass (Algorithm 2): one workgroup per (K/V block, kv head, batch)
 * keeps dK_j, dV_j in registers and loops over the query heads of its group (GQA/MQA: the sum over
 * the group happens here, without atomics) and over the query blocks that can see its keys.
 * Per query block it recomputes S^T = K Q^T, P^T = exp(S^T - lse), dP^T = V dO^T,
 * dS^T = P^T * (dP^T - D) (lines 11-14) and adds dV_j += P^T dO (line 12), dK_j += dS^T Q (line 16).
 *
 * Here the register tile's rows are keys (BR) and its columns queries (BC).
 * Bindings: q, dout (B, Nq, Hq, D), k, v (B, Nk, Hk, D) in storage dtype; lse, delta (B, Hq, Nq)
 * f32; dk, dv (B, Nk, Hk, D) f32.
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

export function flashBackwardDkdvScalarSharedBytes(headDim: number, tiles: Tiles): number {
  const t = derive(tiles, headDim);
  const chunkA = 2 * t.DK * t.SR + 2 * t.DK * t.SC; // K, V, Q, dO chunks
  const chunkB = 2 * t.JK * t.DP; // dO and Q rows
  return 4 * (Math.max(chunkA, chunkB) + 2 * t.BC * t.SR);
}

/** The pass as a program: dispatch (ceil(Nk / BR), Hk, B). */
/**
 * `sharedKV`: dk and dv are views of one GPUBuffer (the packed gradient). WebGPU rejects two writable
 * bindings of overlapping ranges in one dispatch, so both are then written through the binding dk.
 */
export function flashBackwardDkdvScalarProgram(
  headDim: number,
  kind: StorageKind,
  tiles: Tiles,
  dispatch: readonly [number, number, number],
  sharedKV = false,
): ProgramInfo {
  const t = tiles;
  return {
    name: 'flash-backward-dkdv-scalar',
    cacheKey: `${tilesKey(headDim, kind, t)}${sharedKV ? '-kv1' : ''}`,
    uniforms: ATTENTION_UNIFORMS,
    bindings: backwardBindings(kind, sharedKV ? 'dkv' : 'dkdv'),
    dispatch,
    body: () => flashBackwardDkdvScalarWGSL(headDim, kind, tiles, sharedKV),
  };
}

/** The kernel body (after the bindings the program manager writes). */
export function flashBackwardDkdvScalarWGSL(
  headDim: number,
  kind: StorageKind,
  tiles: Tiles,
  sharedKV = false,
): string {
  const dvOut = sharedKV ? 'dk' : 'dv'; // the binding dV is written through
  const D = headDim;
  const t = derive(tiles, D);
  const { BR, BC, TM, TN, DK, JK, GX, NT, DP, TD, SR, SC } = t;
  const KOFF = 0;
  const VOFF = DK * SR;
  const QOFF = 2 * DK * SR;
  const OOFF = 2 * DK * SR + DK * SC;
  const X1 = 0; // dO rows (JK, DP)
  const X2 = JK * DP; // Q rows (JK, DP)
  const P1 = Math.max(2 * DK * SR + 2 * DK * SC, 2 * JK * DP); // P^T stored (BC, SR): [query][key]
  const P2 = P1 + BC * SR; // dS^T stored (BC, SR)
  const SM = P2 + BC * SR;
  // k, v rows of this K/V block; q, dout rows of the Q block at i0 (see tile-loads.wgsl.ts)
  const chunk = (off: number, stride: number, n: number, src: TileSource) =>
    loadChunkTransposed(t, off, stride, n, src);
  const kj = (buf: string): TileSource => ({
    buf,
    base: `${buf}Base`,
    rowStride: viewRow(buf as AttentionViewName),
    limit: 'p.Nk',
    first: 'j0',
    idx: 'i',
    pos: 'row',
  });
  const qi = (buf: string): TileSource => ({
    buf,
    base: `${buf}Base`,
    rowStride: viewRow(buf as AttentionViewName),
    limit: 'p.Nq',
    first: 'i0',
    idx: 'i',
    pos: 'row',
  });
  const rows = (off: number, buf: string) =>
    loadRows(t, off, { ...qi(buf), first: 'i0 + ii0', idx: 'ii' });
  return `${MASK_WGSL}${LSE_READ_WGSL}
const D = ${D}u;
var<workgroup> sm: array<f32, ${SM}>;

@compute @workgroup_size(${NT})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let hk = wg.y;
  let b = wg.z;
  let G = p.Hq / p.Hk;
  let tx = lid % ${GX}u;
  let ty = lid / ${GX}u;
  let j0 = wg.x * ${BR}u;
  let jLast = min(j0 + ${BR}u, p.Nk) - 1u;
  let scale2 = p.scale * ${LOG2E};
  let kBase = ${viewBase('k', 'b', 'hk')};    // k[b, 0, hk, 0]
  let vBase = ${viewBase('v', 'b', 'hk')};    // v[b, 0, hk, 0]
  let dkBase = ${viewBase('dk', 'b', 'hk')};  // dk[b, 0, hk, 0]
  let dvBase = ${viewBase('dv', 'b', 'hk')};  // dv[b, 0, hk, 0]
  let shift = i32(p.Nk) - i32(p.Nq); // key position of query row i is i + shift

  // Query rows that can see a key of this block: keyHi(i) > j0 and keyLo(i) <= jLast.
  var iBegin = 0;
  if (p.wr >= 0) { iBegin = max(0, i32(j0) - shift - p.wr); }
  var iEnd = i32(p.Nq);
  if (p.wl >= 0) { iEnd = min(i32(p.Nq), i32(jLast) - shift + p.wl + 1); }

  var dkAcc: array<f32, ${TM * TD}>; // dK_j (TM keys x TD columns)
  var dvAcc: array<f32, ${TM * TD}>; // dV_j
  for (var g = 0u; g < G; g++) {
    let h = hk * G + g;
    let qBase = ${viewBase('q', 'b', 'h')};        // q[b, 0, h, 0]
    let doutBase = ${viewBase('dout', 'b', 'h')};  // dout[b, 0, h, 0]
    for (var i0 = u32(iBegin); i32(i0) < iEnd; i0 += ${BC}u) {
      var s: array<f32, ${TM * TN}>;
${unroll(TM * TN, (e) => `    s[${e}] = 0.0; // explicit: SwiftShader keeps a loop-local var's old value\n`)}  // S^T = K Q^T
      var dp: array<f32, ${TM * TN}>;
${unroll(TM * TN, (e) => `    dp[${e}] = 0.0;\n`)} // dP^T = V dO^T
      for (var d0 = 0u; d0 < ${DP}u; d0 += ${DK}u) {${chunk(KOFF, SR, BR, kj('k'))}${chunk(VOFF, SR, BR, kj('v'))}${chunk(
        QOFF,
        SC,
        BC,
        qi('q'),
      )}${chunk(OOFF, SC, BC, qi('dout'))}
        workgroupBarrier();
        for (var dd = 0u; dd < ${DK}u; dd++) {
${unroll(
  TM,
  (r) => `          let a${r} = sm[${KOFF}u + dd * ${SR}u + ty * ${TM}u + ${r}u];
          let u${r} = sm[${VOFF}u + dd * ${SR}u + ty * ${TM}u + ${r}u];\n`,
)}${unroll(
    TN,
    (c) => `          let b${c} = sm[${QOFF}u + dd * ${SC}u + ${c * GX}u + tx];
          let w${c} = sm[${OOFF}u + dd * ${SC}u + ${c * GX}u + tx];\n`,
  )}${unroll(TM, (r) =>
    unroll(
      TN,
      (c) => `          s[${r * TN + c}] = fma(a${r}, b${c}, s[${r * TN + c}]);
          dp[${r * TN + c}] = fma(u${r}, w${c}, dp[${r * TN + c}]);\n`,
    ),
  )}        }
        workgroupBarrier();
      }
      // Algorithm 2, lines 12 and 14 (transposed): P^T, dS^T = P^T * (dP^T - D)
${unroll(TN, (c) => {
  let code = `      { let i = i0 + ${c * GX}u + tx;
        let ii = min(i, p.Nq - 1u);
        let lo = keyLo(i32(i));
        let hi = select(lo, keyHi(i32(i)), i < p.Nq);
        let l2 = lse2At((b * p.Hq + h) * p.Nq + ii);
        let Dc = delta[(b * p.Hq + h) * p.Nq + ii];\n`;
  for (let r = 0; r < TM; r++) {
    code += `        { let j = i32(j0 + ty * ${TM}u + ${r}u);
          let vis = j >= lo && j < hi;
          let pr = select(0.0, probability(s[${r * TN + c}] * scale2 - l2), vis);
          sm[${P1}u + (${c * GX}u + tx) * ${SR}u + ty * ${TM}u + ${r}u] = pr;
          sm[${P2}u + (${c * GX}u + tx) * ${SR}u + ty * ${TM}u + ${r}u] = pr * (dp[${r * TN + c}] - Dc); }\n`;
  }
  return code + '      }\n';
})}      workgroupBarrier();
      // Algorithm 2, lines 12 and 16: dV_j += P^T dO, dK_j += dS^T Q, JK query rows at a time
      for (var ii0 = 0u; ii0 < ${BC}u; ii0 += ${JK}u) {${rows(X1, 'dout')}${rows(X2, 'q')}
        workgroupBarrier();
        for (var ii = 0u; ii < ${JK}u; ii++) {
${unroll(
  TM,
  (r) => `          let pa${r} = sm[${P1}u + (ii0 + ii) * ${SR}u + ty * ${TM}u + ${r}u];
          let pb${r} = sm[${P2}u + (ii0 + ii) * ${SR}u + ty * ${TM}u + ${r}u];\n`,
)}${unroll(
    TD,
    (c) => `          let wo${c} = sm[${X1}u + ii * ${DP}u + ${c * GX}u + tx];
          let wq${c} = sm[${X2}u + ii * ${DP}u + ${c * GX}u + tx];\n`,
  )}${unroll(TM, (r) =>
    unroll(
      TD,
      (c) => `          dvAcc[${r * TD + c}] = fma(pa${r}, wo${c}, dvAcc[${r * TD + c}]);
          dkAcc[${r * TD + c}] = fma(pb${r}, wq${c}, dkAcc[${r * TD + c}]);\n`,
    ),
  )}        }
        workgroupBarrier();
      }
    }
  }
${unroll(
  TM,
  (r) => `  { let j = j0 + ty * ${TM}u + ${r}u;
    if (j < p.Nk) {
${unroll(
  TD,
  (c) => `      if (${c * GX}u + tx < D) {
        dk[dkBase + j * ${viewRow('dk')} + ${c * GX}u + tx] = dkAcc[${r * TD + c}] * p.scale;
        ${dvOut}[dvBase + j * ${viewRow('dv')} + ${c * GX}u + tx] = dvAcc[${r * TD + c}];
      }\n`,
)}    }
  }
`,
)}}
`;
}
