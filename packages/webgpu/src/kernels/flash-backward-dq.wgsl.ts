/**
 * FlashAttention-2 backward, dQ pass, with every inner-loop read of workgroup memory a vec4: the fast
 * dQ pass on GPUs. Same partitioning, bindings and results as flash-backward-dq.wgsl.ts (one
 * workgroup per (Q block, head, batch) loops over the K/V blocks its rows can see and keeps dQ_i in
 * registers: no float atomics), with the vec4 forward's layouts (stage-v4.wgsl.ts):
 *   Q^T, dO^T chunks (DK, SR)  rows of one invocation consecutive (broadcast vec4 reads);
 *   K^T, V^T chunks (DK, SC)   permuted so an invocation's TN keys are TN / 4 vec4s;
 *   dS^T (BC, SR)              written as vec4s over rows, read as a broadcast;
 *   K rows (JK, DP)            permuted so an invocation's TD head dims are TD / 4 vec4s.
 * Model (per head-dim step of S = Q K^T and dP = dO V^T at TM x TN = 8 x 4): the scalar kernel reads
 * 2 (TM + TN) = 24 scalars of workgroup memory per 64 FMAs, this one 2 (TM + TN) / 4 = 6 vec4s; in
 * dQ += dS K, TM + TD scalars per TM * TD FMAs become (TM + TD) / 4 vec4s.
 *
 * Bindings: q, dout (B, Nq, Hq, D), k, v (B, Nk, Hk, D) in storage dtype; lse, delta (B, Hq, Nq) f32
 * (lse at p.lseOff, -Infinity for fully masked rows); all (B, N, H, D) buffers are strided views; dq (B, Nq, Hq, D) f32.
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

interface DqV4Layout {
  /** Word offsets: Q^T, dO^T, K^T, V^T chunks (S, dP), then K rows (dS K) in the same region. */
  QOFF: number;
  OOFF: number;
  KOFF: number;
  VOFF: number;
  K2OFF: number;
  /** dS^T (BC, SR) */
  POFF: number;
  WORDS: number;
}

function layout(t: BwdV4Derived): DqV4Layout {
  const { DK, SR, SC, JK, DP, BC } = t;
  const POFF = Math.max(2 * DK * SR + 2 * DK * SC, JK * DP);
  return {
    QOFF: 0,
    OOFF: DK * SR,
    KOFF: 2 * DK * SR,
    VOFF: 2 * DK * SR + DK * SC,
    K2OFF: 0,
    POFF,
    WORDS: POFF + BC * SR,
  };
}

export function flashBackwardDqSharedBytes(headDim: number, tiles: Tiles): number {
  return 4 * layout(deriveBwdV4(tiles, headDim)).WORDS;
}

/** The pass as a program: dispatch (ceil(Nq / BR), Hq, B). */
export function flashBackwardDqProgram(
  headDim: number,
  kind: StorageKind,
  tiles: Tiles,
  dispatch: readonly [number, number, number],
): ProgramInfo {
  const t = tiles;
  return {
    name: 'flash-backward-dq',
    cacheKey: tilesKey(headDim, kind, t),
    uniforms: ATTENTION_UNIFORMS,
    bindings: backwardBindings(kind, 'dq'),
    dispatch,
    body: () => flashBackwardDqWGSL(headDim, kind, tiles),
  };
}

/** The kernel body (after the bindings the program manager writes). */
export function flashBackwardDqWGSL(headDim: number, kind: StorageKind, tiles: Tiles): string {
  const D = headDim;
  const t = deriveBwdV4(tiles, D);
  const { BR, BC, TM, TN, DK, JK, GX, NT, DP, TD, SR, SC } = t;
  const { QOFF, OOFF, KOFF, VOFF, K2OFF, POFF, WORDS } = layout(t);
  const M4 = TM / 4;
  const D4 = TD / 4;
  const qs = (buf: string): Src => ({
    buf,
    base: `${buf}Base`,
    rowStride: viewRow(buf as AttentionViewName),
    limit: 'p.Nq',
    first: 'row0',
  });
  const ks = (buf: string, first = 'j0'): Src => ({
    buf,
    base: `${buf}Base`,
    rowStride: viewRow(buf as AttentionViewName),
    limit: 'p.Nk',
    first,
  });
  const sIdx = (r: number, c: number) => r * TN + c;
  return `${MASK_WGSL}${LSE_READ_WGSL}
const D = ${D}u;
// Workgroup memory in words (read as vec4): Q^T (DK, SR) at ${QOFF}, dO^T (DK, SR) at ${OOFF},
// K^T (DK, SC) at ${KOFF}, V^T (DK, SC) at ${VOFF} during S and dP; K rows (JK, DP) at ${K2OFF} during
// dS K; dS^T (BC, SR) at ${POFF}.
var<workgroup> sm: array<vec4<f32>, ${WORDS / 4}>;

@compute @workgroup_size(${NT})
fn main(
  @builtin(workgroup_id) wg: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
) {
  let h = wg.y;
  let b = wg.z;
  let hk = h / (p.Hq / p.Hk);
  let tx = lid % ${GX}u;
  let ty = lid / ${GX}u;
  // Q blocks in reverse: with a causal mask the last blocks see the most keys and should start first.
  let row0 = (nwg.x - 1u - wg.x) * ${BR}u;
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
  var Di: array<f32, ${TM}>;    // D_i = rowsum(dO_i * O_i)
  var acc: array<f32, ${TM * TD}>; // dQ_i (TM rows x TD columns: head dim c*GX + tx)
${unroll(
  TM,
  (r) => `  { let i = row0 + ty * ${TM}u + ${r}u;
    let ii = min(i, p.Nq - 1u);
    lo[${r}] = keyLo(i32(i)); hi[${r}] = select(lo[${r}], keyHi(i32(i)), i < p.Nq);
    lse2[${r}] = lse2At((b * p.Hq + h) * p.Nq + ii);
    Di[${r}] = delta[(b * p.Hq + h) * p.Nq + ii]; }
`,
)}${unroll(TM * TD, (e) => `  acc[${e}] = 0.0;\n`)}
  let jBegin = (u32(keyLo(i32(row0))) / ${BC}u) * ${BC}u;
  let jEnd = u32(max(keyHi(i32(rowLast)), 0));
  for (var j0 = jBegin; j0 < jEnd; j0 += ${BC}u) {
    // Algorithm 2, lines 11 and 13: S = Q K^T and dP = dO V^T, streamed DK head dims at a time
    var s: array<f32, ${TM * TN}>;
    var dp: array<f32, ${TM * TN}>;
${unroll(TM * TN, (e) => `    s[${e}] = 0.0; dp[${e}] = 0.0;\n`)}    for (var d0 = 0u; d0 < ${DP}u; d0 += ${DK}u) {${stage(
    t,
    [
      rowsT(t, D, qs('q'), BR, QOFF, SR),
      rowsT(t, D, qs('dout'), BR, OOFF, SR),
      colsT(t, D, ks('k'), KOFF, SC),
      colsT(t, D, ks('v'), VOFF, SC),
    ],
  )}
      workgroupBarrier();
${dualOuterV4(t, { off: QOFF, stride: SR }, { off: OOFF, stride: SR }, { off: KOFF, stride: SC }, { off: VOFF, stride: SC }, 'dd', '      ')}      workgroupBarrier();
    }
    // Algorithm 2, lines 12 and 14: P = exp(S - lse), dS = P * (dP - D), kept in s
${unroll(TM, (r) =>
  unroll(
    TN,
    (c) => `    { let j = i32(j0 + ${c * GX}u + tx);
      let vis = j >= lo[${r}] && j < hi[${r}];
      let pr = select(0.0, probability(s[${sIdx(r, c)}] * scale2 - lse2[${r}]), vis);
      s[${sIdx(r, c)}] = pr * (dp[${sIdx(r, c)}] - Di[${r}]); }\n`,
  ),
)}    // dS^T (BC, SR): key c*GX + tx, rows ty*TM .. +TM-1 as vec4s
${unroll(TN, (c) =>
  unroll(
    M4,
    (m) =>
      `    sm[(${POFF}u + (${c * GX}u + tx) * ${SR}u + ty * ${TM}u) / 4u + ${m}u] = vec4<f32>(${[
        0, 1, 2, 3,
      ]
        .map((e) => `s[${sIdx(m * 4 + e, c)}]`)
        .join(', ')});\n`,
  ),
)}    workgroupBarrier();
    // Algorithm 2, line 15: dQ_i += dS K, JK keys at a time (the softmax scale is applied at the end)
    for (var jj0 = 0u; jj0 < ${BC}u; jj0 += ${JK}u) {${stage(t, [rowsP(t, D, ks('k', 'j0 + jj0'), K2OFF)])}
      workgroupBarrier();
      for (var jj = 0u; jj < ${JK}u; jj++) {
${unroll(M4, (m) => `        let p${m} = sm[(${POFF}u + (jj0 + jj) * ${SR}u + ty * ${TM}u) / 4u + ${m}u];\n`)}${unroll(
    D4,
    (c) => `        let w${c} = sm[(${K2OFF}u + jj * ${DP}u + tx * ${TD}u) / 4u + ${c}u];\n`,
  )}${unroll(TM, (r) =>
    unroll(
      TD,
      (c) =>
        `        acc[${r * TD + c}] = fma(p${r >> 2}[${r & 3}], w${c >> 2}[${c & 3}], acc[${r * TD + c}]);\n`,
    ),
  )}      }
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
