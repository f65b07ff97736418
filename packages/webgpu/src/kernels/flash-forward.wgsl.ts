/**
 * FlashAttention-2 forward (Algorithm 1), fp32 math, with every inner-loop read of workgroup memory a
 * vec4: the fast forward on GPUs. Same partitioning, bindings and results as flash-forward.wgsl.ts
 * (one workgroup per (Q block, head, batch); invocation (ty, tx) holds S rows ty*TM + r and columns
 * c*GX + tx), but the tiles in workgroup memory are laid out so that each invocation's operands of one
 * inner step sit in consecutive words:
 *   Q^T chunk (DK, SR): rows ty*TM .. ty*TM + TM-1 of one head dim are consecutive (TM / 4 vec4 reads,
 *                       the same address across a row group: a broadcast);
 *   K^T chunk (DK, SC): key c*GX + tx is stored at position tx*TN + c (a permutation made while
 *                       loading), so the TN keys of one invocation are one or two vec4s;
 *   P^T (BC, SR):       like Q^T (P written as vec4 over rows, read as a broadcast);
 *   V chunk (JK, DP):   head dim c*GX + tx at position tx*TD + c (TD / 4 vec4 reads).
 * Why (H100, model): the scalar kernel issues TM + TN scalar loads of workgroup memory per TM * TN
 * FMAs (12 per 32 at 8 x 4), one shared-memory wavefront each: it is bound by shared-memory
 * wavefronts and issue slots, not by the FMA pipes. Here an 8 x 4 step costs 3 vec4 loads (about 4
 * wavefronts) per 32 FMAs. Measured (H100, fp32, 128 x 64 tiles, N = 4096): 11.2 -> 18.1 TFLOP/s
 * at D = 64 with the same DK = JK = 8; 21.6 with DK = JK = 16 (half the barriers); 23.6 once the
 * tile staging issues all its loads before its stores (stage() below). The scalar kernel stays for
 * head dims this layout would pad by more than 1/8 and for software adapters.
 *
 * Options: `QR` keeps the whole Q^T block (DP, SR) resident in workgroup memory, loaded once, instead
 * of re-staging Q for every K tile (fits at D = 64 with BR = 64).
 *
 * Bindings: q (B, Nq, Hq, D), k, v (B, Nk, Hk, D) in storage dtype; o (B, Nq, Hq, D) f32;
 * lse (B, Hq, Nq) f32 at p.lseOff, -Infinity (p.ninf) on fully masked rows. q, k, v, o are strided
 * views (offsets and strides in the uniforms, params.wgsl.ts), so q, k, v may sit in one packed buffer.
 * Scores are kept in the log2 domain: s2 = scale * log2(e) * q.k, so exp becomes exp2.
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
import { gcd, unroll, type Tiles, tilesKey } from './tiles.js';

export interface ForwardDerived extends Tiles {
  GX: number;
  GY: number;
  NT: number;
  DP: number;
  TD: number;
  SR: number;
  SC: number;
  /** Q resident for the whole kernel. */
  QR: boolean;
  /** Word offsets in workgroup memory. */
  QOFF: number;
  KOFF: number;
  VOFF: number;
  ROFF: number;
  POFF: number;
  /** Total words. */
  WORDS: number;
}

/** Shapes of the vec4 kernel; throws when the tiles do not suit it (TM, TN not multiples of 4). */
export function deriveForward(t: Tiles, headDim: number): ForwardDerived {
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
      `tiles ${JSON.stringify(t)} do not suit the vec4 forward (TM, TN, GX multiples of 4)`,
    );
  }
  const unit = (4 * GX * t.DK) / gcd(4 * GX, t.DK); // DP: whole DK chunks, TD a multiple of 4
  const DP = Math.ceil(headDim / unit) * unit;
  const SR = t.BR + 4; // +4 words: P^T rows of consecutive keys start in different banks
  const SC = t.BC + 4;
  const QR = !!t.QR;
  const QOFF = 0;
  const qWords = QR ? DP * SR : 0;
  // Region A, reused in turn by: the Q and K chunks (S), the row-max / row-sum exchange, the V chunk.
  const KOFF = qWords + (QR ? 0 : t.DK * SR);
  const aWords = Math.max((QR ? 0 : t.DK * SR) + t.DK * SC, t.JK * DP, t.BR * GX);
  const VOFF = qWords;
  const ROFF = qWords;
  const POFF = qWords + aWords;
  const WORDS = POFF + t.BC * SR;
  return {
    ...t,
    GX,
    GY,
    NT: GX * GY,
    DP,
    TD: DP / GX,
    SR,
    SC,
    QR,
    QOFF,
    KOFF,
    VOFF,
    ROFF,
    POFF,
    WORDS,
  };
}

/** Workgroup memory (bytes) the vec4 forward needs for these tiles. */
export function flashForwardSharedBytes(headDim: number, tiles: Tiles): number {
  return 4 * deriveForward(tiles, headDim).WORDS;
}

/** Staging of one tile: `count` vec4s, element e loaded into `x` and stored. */
interface Stager {
  count: number;
  load: (e: string, x: string) => string;
  store: (e: string, x: string) => string;
}

export interface FlashForwardSpec {
  headDim: number;
  kind: StorageKind;
  tiles: Tiles;
}

/** The forward as a program: dispatch (ceil(Nq / BR), Hq, B). */
export function flashForwardProgram(
  spec: FlashForwardSpec,
  dispatch: readonly [number, number, number],
): ProgramInfo {
  const t = spec.tiles;
  return {
    name: 'flash-forward',
    cacheKey: tilesKey(spec.headDim, spec.kind, t),
    uniforms: ATTENTION_UNIFORMS,
    bindings: forwardBindings(spec.kind),
    dispatch,
    body: () => flashForwardWGSL(spec),
  };
}

/** The kernel body (after the bindings the program manager writes). */
export function flashForwardWGSL(spec: FlashForwardSpec): string {
  const D = spec.headDim;
  const t = deriveForward(spec.tiles, D);
  const {
    BR,
    BC,
    TM,
    TN,
    DK,
    JK,
    GX,
    NT,
    DP,
    TD,
    SR,
    SC,
    QR,
    QOFF,
    KOFF,
    VOFF,
    ROFF,
    POFF,
    WORDS,
  } = t;
  const M4 = TM / 4;
  const N4 = TN / 4;
  const D4 = TD / 4;
  const padded = DP !== D;
  // one element of a tile: rows past the end read the last row (finite; they are masked or never
  // written), padded head dims read 0
  const elem = (
    buf: string,
    base: string,
    row: string,
    limit: string,
    rowStride: string,
    d: string,
  ) =>
    padded
      ? `select(0.0, ld_${buf}(${base} + min(${row}, ${limit} - 1u) * ${rowStride} + min(${d}, D - 1u)), ${d} < D)`
      : `ld_${buf}(${base} + min(${row}, ${limit} - 1u) * ${rowStride} + ${d})`;
  // Q^T words [dd][i] for dd in [0, nd): one vec4 = 4 consecutive rows of one head dim (4 loads
  // of one column, consecutive invocations take consecutive head dims: coalesced).
  const stQ = (nd: number, dBase: string): Stager => ({
    count: (nd * BR) / 4,
    load: (e, x) => `let ${x}d = ${dBase} + ${e} % ${nd}u; let ${x}r = row0 + (${e} / ${nd}u) * 4u;
        let ${x} = vec4<f32>(${[0, 1, 2, 3].map((c) => elem('q', 'qBase', `${x}r + ${c}u`, 'p.Nq', viewRow('q'), `${x}d`)).join(', ')});`,
    store: (e, x) => `sm[(${QOFF}u + (${e} % ${nd}u) * ${SR}u) / 4u + ${e} / ${nd}u] = ${x};`,
  });
  const qChunk = QR ? 'd0' : '0u'; // row of Q^T that head dim d0 + dd lives in: resident Q^T is indexed by d
  // K^T chunk: vec4 q of row dd holds positions 4q..4q+3; position tx*TN + c holds key c*GX + tx.
  const stK: Stager = {
    count: (DK * BC) / 4,
    load: (e, x) => `let ${x}d = d0 + ${e} % ${DK}u; let ${x}q = ${e} / ${DK}u;
        let ${x}c = j0 + ((${x}q % ${N4}u) * 4u) * ${GX}u + ${x}q / ${N4}u;
        let ${x} = vec4<f32>(${[0, 1, 2, 3].map((c) => elem('k', 'kBase', `${x}c + ${c * GX}u`, 'p.Nk', viewRow('k'), `${x}d`)).join(', ')});`,
    store: (e, x) => `sm[(${KOFF}u + (${e} % ${DK}u) * ${SC}u) / 4u + ${e} / ${DK}u] = ${x};`,
  };
  // V chunk: vec4 q of row jj holds positions 4q..4q+3; position tx*TD + c holds head dim c*GX + tx.
  const stV: Stager = {
    count: (JK * DP) / 4,
    load: (e, x) => `let ${x}q = ${e} % ${DP / 4}u; let ${x}c = j0 + jj0 + ${e} / ${DP / 4}u;
        let ${x}d = ((${x}q % ${D4}u) * 4u) * ${GX}u + ${x}q / ${D4}u;
        let ${x} = vec4<f32>(${[0, 1, 2, 3].map((c) => elem('v', 'vBase', `${x}c`, 'p.Nk', viewRow('v'), `${x}d + ${c * GX}u`)).join(', ')});`,
    store: (e, x) =>
      `sm[(${VOFF}u + (${e} / ${DP / 4}u) * ${DP}u) / 4u + ${e} % ${DP / 4}u] = ${x};`,
  };
  // Stage tiles into workgroup memory. When every invocation has the same number of elements, the
  // lane loop is unrolled and all loads are issued before the first store, so their latencies overlap.
  const stage = (list: readonly Stager[]): string => {
    if (list.some((st) => st.count % NT !== 0)) {
      return list
        .map(
          (st) => `
      for (var e = lid; e < ${st.count}u; e += ${NT}u) {
        ${st.load('e', 'x')}
        ${st.store('e', 'x')}
      }`,
        )
        .join('');
    }
    let loads = '';
    let stores = '';
    list.forEach((st, n) => {
      for (let t = 0; t < st.count / NT; t++) {
        const e = `e${n}_${t}`;
        const x = `x${n}_${t}`;
        loads += `
        let ${e} = lid + ${t * NT}u; ${st.load(e, x)}`;
        stores += `
        ${st.store(e, x)}`;
      }
    });
    return `
      {${loads}${stores}
      }`;
  };
  const sIdx = (r: number, c: number) => r * TN + c;
  return `${MASK_WGSL}
const D = ${D}u;
// Workgroup memory in words (read as vec4): ${QR ? `Q^T (DP, SR) resident at ${QOFF}; ` : ''}region A at ${QR ? KOFF : QOFF}: Q^T chunk (DK, SR)
// and K^T chunk (DK, SC) during S, then the row exchange (BR, GX), then the V chunk (JK, DP);
// P^T (BC, SR) at ${POFF}.
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
  // Q blocks in reverse: with a causal mask the last blocks see the most keys, and they start first
  // (workgroups are launched in order of wg.x), so the short ones fill the tail.
  let row0 = (nwg.x - 1u - wg.x) * ${BR}u;
  let rowLast = min(row0 + ${BR}u, p.Nq) - 1u;
  let scale2 = p.scale * ${LOG2E};
  let qBase = ${viewBase('q', 'b', 'h')};   // q[b, 0, h, 0]
  let kBase = ${viewBase('k', 'b', 'hk')};  // k[b, 0, hk, 0]
  let vBase = ${viewBase('v', 'b', 'hk')};  // v[b, 0, hk, 0]
  let oBase = ${viewBase('o', 'b', 'h')};   // o[b, 0, h, 0]

  // Algorithm 1, line 6: m_i = -inf, l_i = 0, acc = 0 (per invocation: TM rows, TD columns)
  var m_i: array<f32, ${TM}>;
  var l_i: array<f32, ${TM}>;
  var acc: array<f32, ${TM * TD}>;
${unroll(TM, (r) => `  m_i[${r}] = ${NEG}; l_i[${r}] = 0.0;\n`)}${unroll(TM * TD, (e) => `  acc[${e}] = 0.0;\n`)}
  // Keys any row of this block can see: skip K/V tiles outside them (causal / window).
  let jBegin = (u32(keyLo(i32(row0))) / ${BC}u) * ${BC}u;
  let jEnd = u32(max(keyHi(i32(rowLast)), 0));
${
  QR
    ? `  // Algorithm 1, line 4 (once): the whole Q block, transposed, stays in workgroup memory.
  ${stage([stQ(DP, '0u')])}
`
    : ''
}
  // Algorithm 1, line 7: loop over K/V blocks
  for (var j0 = jBegin; j0 < jEnd; j0 += ${BC}u) {
    // Algorithm 1, line 9: S = Q K^T (BR x BC), streamed DK head-dims at a time
    var s: array<f32, ${TM * TN}>;
${unroll(TM * TN, (e) => `    s[${e}] = 0.0;\n`)}    for (var d0 = 0u; d0 < ${DP}u; d0 += ${DK}u) {${stage(QR ? [stK] : [stQ(DK, 'd0'), stK])}
      workgroupBarrier();
      for (var dd = 0u; dd < ${DK}u; dd++) {
${unroll(M4, (a) => `        let a${a} = sm[(${QOFF}u + (${qChunk} + dd) * ${SR}u + ty * ${TM}u) / 4u + ${a}u];\n`)}${unroll(
    N4,
    (c) => `        let b${c} = sm[(${KOFF}u + dd * ${SC}u + tx * ${TN}u) / 4u + ${c}u];\n`,
  )}${unroll(TM, (r) =>
    unroll(
      TN,
      (c) =>
        `        s[${sIdx(r, c)}] = fma(a${r >> 2}[${r & 3}], b${c >> 2}[${c & 3}], s[${sIdx(r, c)}]);\n`,
    ),
  )}      }
      workgroupBarrier();
    }
    // Algorithm 1, line 10: row max over the visible keys, reduced across the GX invocations of a row
    // (partials exchanged through region A, which the barrier above freed).
${unroll(TM, (r) => {
  let code = `    { let i = i32(row0 + ty * ${TM}u + ${r}u);
      let lo = keyLo(i); let hi = select(lo, keyHi(i), i < i32(p.Nq));
      var mx = ${NEG};\n`;
  for (let c = 0; c < TN; c++) {
    code += `      { let j = i32(j0 + ${c * GX}u + tx);
        let vis = j >= lo && j < hi;
        s[${sIdx(r, c)}] = select(${NEG}, s[${sIdx(r, c)}] * scale2, vis);
        mx = max(mx, s[${sIdx(r, c)}]); }\n`;
  }
  return (
    code +
    `      let w = ${ROFF}u + (ty * ${TM}u + ${r}u) * ${GX}u + tx;
      sm[w / 4u][w % 4u] = mx; }\n`
  );
})}    workgroupBarrier();
${unroll(TM, (r) => {
  let code = `    { var mx4 = vec4<f32>(m_i[${r}]);
${unroll(GX / 4, (g) => `      mx4 = max(mx4, sm[(${ROFF}u + (ty * ${TM}u + ${r}u) * ${GX}u) / 4u + ${g}u]);\n`)}      let mx = max(max(mx4.x, mx4.y), max(mx4.z, mx4.w));
      let alpha = exp2(m_i[${r}] - mx);   // Algorithm 1, line 10: rescale factor exp(m_old - m_new)
      m_i[${r}] = mx;
      var rowsum = 0.0;\n`;
  for (let c = 0; c < TN; c++) {
    // masked entries hold NEG, so s - mx <= NEG + |mx| and exp2 underflows to 0 unless mx is NEG too
    code += `      { let x = s[${sIdx(r, c)}];
        let pr = select(select(exp2(x - mx), 0.0, x <= ${NEG}), x, isNan(x)); // a NaN score gives P = NaN
        rowsum += pr;
        s[${sIdx(r, c)}] = pr; }\n`;
  }
  code += `      l_i[${r}] = l_i[${r}] * alpha + rowsum;\n`;
  code += unroll(TD, (c) => `      acc[${r * TD + c}] *= alpha;\n`);
  return code + '    }\n';
})}    // P^T (BC, SR): key c*GX + tx, rows ty*TM .. +TM-1 as vec4s
${unroll(TN, (c) =>
  unroll(
    M4,
    (a) =>
      `    sm[(${POFF}u + (${c * GX}u + tx) * ${SR}u + ty * ${TM}u) / 4u + ${a}u] = vec4<f32>(${[
        0, 1, 2, 3,
      ]
        .map((e) => `s[${sIdx(a * 4 + e, c)}]`)
        .join(', ')});\n`,
  ),
)}    workgroupBarrier();
    // Algorithm 1, line 10: acc += P V, streamed JK keys at a time
    for (var jj0 = 0u; jj0 < ${BC}u; jj0 += ${JK}u) {${stage([stV])}
      workgroupBarrier();
      for (var jj = 0u; jj < ${JK}u; jj++) {
${unroll(M4, (a) => `        let p${a} = sm[(${POFF}u + (jj0 + jj) * ${SR}u + ty * ${TM}u) / 4u + ${a}u];\n`)}${unroll(
    D4,
    (c) => `        let w${c} = sm[(${VOFF}u + jj * ${DP}u + tx * ${TD}u) / 4u + ${c}u];\n`,
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

  // Algorithm 1, lines 12-13: O = acc / l, lse = m + log(l); l summed across the row's invocations
${unroll(TM, (r) => `  { let w = ${ROFF}u + (ty * ${TM}u + ${r}u) * ${GX}u + tx; sm[w / 4u][w % 4u] = l_i[${r}]; }\n`)}  workgroupBarrier();
${unroll(TM, (r) => {
  return `  { let i = row0 + ty * ${TM}u + ${r}u;
    var l4 = vec4<f32>();
${unroll(GX / 4, (g) => `    l4 += sm[(${ROFF}u + (ty * ${TM}u + ${r}u) * ${GX}u) / 4u + ${g}u];\n`)}    let l = (l4.x + l4.y) + (l4.z + l4.w);
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
