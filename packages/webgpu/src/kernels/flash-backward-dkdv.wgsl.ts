/**
 * FlashAttention-2 backward, dK/dV pass (Algorithm 2), with every inner-loop read of workgroup memory
 * a vec4: the fast dK/dV pass on GPUs. Same partitioning, bindings and results as
 * flash-backward-dkdv.wgsl.ts (one workgroup per (K/V block, kv head, batch) keeps dK_j, dV_j in
 * registers and loops over the query heads of its group and the query blocks that see its keys; the
 * register tile's rows are keys, its columns queries), with the vec4 forward's layouts
 * (stage-v4.wgsl.ts):
 *   K^T, V^T chunks (DK, SR)   keys of one invocation consecutive (broadcast vec4 reads);
 *   Q^T, dO^T chunks (DK, SC)  permuted so an invocation's TN queries are TN / 4 vec4s;
 *   P^T, dS^T (BC, SR)         written as vec4s over keys, read as a broadcast;
 *   dO, Q rows (JK, DP)        permuted so an invocation's TD head dims are TD / 4 vec4s.
 * Model: S^T = K Q^T and dP^T = V dO^T read 2 (TM + TN) scalars per 2 TM TN FMAs in the scalar
 * kernel (12 per 16 at its 4 x 2), here 2 (TM + TN) / 4 vec4s (4 per 32 at 4 x 4); dV += P^T dO and
 * dK += dS^T Q likewise 2 (TM + TD) scalars -> 2 (TM + TD) / 4 vec4s.
 *
 * Option `KR` (tiles.QR reused: "resident"): the whole K^T and V^T blocks (DP, SR) stay in workgroup
 * memory, loaded once, instead of being re-staged for every query block (fits at D = 64 with BR = 32).
 *
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
import {
  colsT,
  deriveBwdV4,
  dualOuterV4,
  rowsP,
  rowsT,
  stage,
  type BwdV4Derived,
  type Src,
} from './stage.wgsl.js';
import { unroll, type Tiles, tilesKey } from './tiles.js';

interface DkdvV4Layout {
  /** Word offsets: K^T, V^T, Q^T, dO^T chunks (S^T, dP^T), then dO and Q rows in the same region. */
  KOFF: number;
  VOFF: number;
  QOFF: number;
  OOFF: number;
  X1: number;
  X2: number;
  /** P^T and dS^T (BC, SR): [query][key] */
  P1: number;
  P2: number;
  WORDS: number;
}

function layout(t: BwdV4Derived): DkdvV4Layout {
  const { DK, SR, SC, JK, DP, BC } = t;
  // K^T, V^T: a DK chunk each in region A, or the whole (DP, SR) blocks before it when resident
  const kv = t.QR ? DP * SR : DK * SR;
  const A = t.QR ? 2 * kv : 0; // region A: the chunks that change per query block, then the rows
  const P1 = A + Math.max((t.QR ? 0 : 2 * kv) + 2 * DK * SC, 2 * JK * DP);
  const P2 = P1 + BC * SR;
  return {
    KOFF: 0,
    VOFF: kv,
    QOFF: 2 * kv,
    OOFF: 2 * kv + DK * SC,
    X1: A,
    X2: A + JK * DP,
    P1,
    P2,
    WORDS: P2 + BC * SR,
  };
}

export function flashBackwardDkdvSharedBytes(headDim: number, tiles: Tiles): number {
  return 4 * layout(deriveBwdV4(tiles, headDim)).WORDS;
}

/** The pass as a program: dispatch (ceil(Nk / BR), Hk, B). */
/**
 * `sharedKV`: dk and dv are views of one GPUBuffer (the packed gradient). WebGPU rejects two writable
 * bindings of overlapping ranges in one dispatch, so both are then written through the binding dk.
 */
export function flashBackwardDkdvProgram(
  headDim: number,
  kind: StorageKind,
  tiles: Tiles,
  dispatch: readonly [number, number, number],
  sharedKV = false,
): ProgramInfo {
  const t = tiles;
  return {
    name: 'flash-backward-dkdv',
    cacheKey: `${tilesKey(headDim, kind, t)}${sharedKV ? '-kv1' : ''}`,
    uniforms: ATTENTION_UNIFORMS,
    bindings: backwardBindings(kind, sharedKV ? 'dkv' : 'dkdv'),
    dispatch,
    body: () => flashBackwardDkdvWGSL(headDim, kind, tiles, sharedKV),
  };
}

/** The kernel body (after the bindings the program manager writes). */
export function flashBackwardDkdvWGSL(
  headDim: number,
  kind: StorageKind,
  tiles: Tiles,
  sharedKV = false,
): string {
  const dvOut = sharedKV ? 'dk' : 'dv'; // the binding dV is written through
  const D = headDim;
  const t = deriveBwdV4(tiles, D);
  const { BR, BC, TM, TN, DK, JK, GX, NT, DP, TD, SR, SC } = t;
  const { KOFF, VOFF, QOFF, OOFF, X1, X2, P1, P2, WORDS } = layout(t);
  const M4 = TM / 4;
  const D4 = TD / 4;
  const ks = (buf: string): Src => ({
    buf,
    base: `${buf}Base`,
    rowStride: viewRow(buf as AttentionViewName),
    limit: 'p.Nk',
    first: 'j0',
  });
  const qs = (buf: string, first = 'i0'): Src => ({
    buf,
    base: `${buf}Base`,
    rowStride: viewRow(buf as AttentionViewName),
    limit: 'p.Nq',
    first,
  });
  const sIdx = (r: number, c: number) => r * TN + c;
  const KR = !!t.QR;
  const kvRow = KR ? 'd0 + dd' : 'dd'; // row of K^T / V^T that head dim d0 + dd lives in
  return `${MASK_WGSL}${LSE_READ_WGSL}
const D = ${D}u;
// Workgroup memory in words (read as vec4): K^T (${KR ? 'DP' : 'DK'}, SR) at ${KOFF}, V^T at ${VOFF},
// Q^T (DK, SC) at ${QOFF}, dO^T (DK, SC) at ${OOFF} during S^T and dP^T; dO rows (JK, DP) at ${X1} and
// Q rows at ${X2} during dV, dK; P^T (BC, SR) at ${P1}, dS^T (BC, SR) at ${P2}.
var<workgroup> sm: array<vec4<f32>, ${WORDS / 4}>;

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

  var dkAcc: array<f32, ${TM * TD}>; // dK_j (TM keys x TD columns: head dim c*GX + tx)
  var dvAcc: array<f32, ${TM * TD}>; // dV_j
${unroll(TM * TD, (e) => `  dkAcc[${e}] = 0.0; dvAcc[${e}] = 0.0;\n`)}${
    KR
      ? `  // K^T and V^T of this block, once (resident): every head dim of the BR keys
  ${stage(t, [rowsT(t, D, ks('k'), BR, KOFF, SR, DP, '0u'), rowsT(t, D, ks('v'), BR, VOFF, SR, DP, '0u')])}
`
      : ''
  }  for (var g = 0u; g < G; g++) {
    let h = hk * G + g;
    let qBase = ${viewBase('q', 'b', 'h')};        // q[b, 0, h, 0]
    let doutBase = ${viewBase('dout', 'b', 'h')};  // dout[b, 0, h, 0]
    for (var i0 = u32(iBegin); i32(i0) < iEnd; i0 += ${BC}u) {
      // Algorithm 2, lines 11 and 13 (transposed): S^T = K Q^T, dP^T = V dO^T, DK head dims at a time
      var s: array<f32, ${TM * TN}>;
      var dp: array<f32, ${TM * TN}>;
${unroll(TM * TN, (e) => `      s[${e}] = 0.0; dp[${e}] = 0.0;\n`)}      for (var d0 = 0u; d0 < ${DP}u; d0 += ${DK}u) {${stage(
    t,
    [
      ...(KR ? [] : [rowsT(t, D, ks('k'), BR, KOFF, SR), rowsT(t, D, ks('v'), BR, VOFF, SR)]),
      colsT(t, D, qs('q'), QOFF, SC),
      colsT(t, D, qs('dout'), OOFF, SC),
    ],
  )}
        workgroupBarrier();
${dualOuterV4(t, { off: KOFF, stride: SR }, { off: VOFF, stride: SR }, { off: QOFF, stride: SC }, { off: OOFF, stride: SC }, `(${kvRow})`, '        ')}        workgroupBarrier();
      }
      // Algorithm 2, lines 12 and 14 (transposed): P^T, dS^T = P^T * (dP^T - D), stored as vec4s
      // over this invocation's keys: P^T in s, dS^T in dp.
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
          let pr = select(0.0, probability(s[${sIdx(r, c)}] * scale2 - l2), vis);
          s[${sIdx(r, c)}] = pr;
          dp[${sIdx(r, c)}] = pr * (dp[${sIdx(r, c)}] - Dc); }\n`;
  }
  for (let m = 0; m < M4; m++) {
    const v4 = (a: string) =>
      `vec4<f32>(${[0, 1, 2, 3].map((e) => `${a}[${sIdx(m * 4 + e, c)}]`).join(', ')})`;
    code += `        sm[(${P1}u + (${c * GX}u + tx) * ${SR}u + ty * ${TM}u) / 4u + ${m}u] = ${v4('s')};
        sm[(${P2}u + (${c * GX}u + tx) * ${SR}u + ty * ${TM}u) / 4u + ${m}u] = ${v4('dp')};\n`;
  }
  return code + '      }\n';
})}      workgroupBarrier();
      // Algorithm 2, lines 12 and 16: dV_j += P^T dO, dK_j += dS^T Q, JK query rows at a time
      for (var ii0 = 0u; ii0 < ${BC}u; ii0 += ${JK}u) {${stage(t, [
        rowsP(t, D, qs('dout', 'i0 + ii0'), X1),
        rowsP(t, D, qs('q', 'i0 + ii0'), X2),
      ])}
        workgroupBarrier();
        for (var ii = 0u; ii < ${JK}u; ii++) {
${unroll(
  M4,
  (m) => `          let pa${m} = sm[(${P1}u + (ii0 + ii) * ${SR}u + ty * ${TM}u) / 4u + ${m}u];
          let pb${m} = sm[(${P2}u + (ii0 + ii) * ${SR}u + ty * ${TM}u) / 4u + ${m}u];\n`,
)}${unroll(
    D4,
    (c) => `          let wo${c} = sm[(${X1}u + ii * ${DP}u + tx * ${TD}u) / 4u + ${c}u];
          let wq${c} = sm[(${X2}u + ii * ${DP}u + tx * ${TD}u) / 4u + ${c}u];\n`,
  )}${unroll(TM, (r) =>
    unroll(
      TD,
      (
        c,
      ) => `          dvAcc[${r * TD + c}] = fma(pa${r >> 2}[${r & 3}], wo${c >> 2}[${c & 3}], dvAcc[${r * TD + c}]);
          dkAcc[${r * TD + c}] = fma(pb${r >> 2}[${r & 3}], wq${c >> 2}[${c & 3}], dkAcc[${r * TD + c}]);\n`,
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
