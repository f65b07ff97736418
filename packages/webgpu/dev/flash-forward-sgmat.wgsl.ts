/**
 * Flash forward on tensor cores through WGSL subgroup matrices (Dawn's experimental
 * `chromium-experimental-subgroup-matrix`; on NVIDIA it exposes f16 x f16 -> f32 at 16 x 16 x 16).
 * float16 storage, f32 accumulation; P is rounded to f16 before P V (as a float16 naive
 * implementation rounds it).
 *
 * One workgroup = one subgroup of 32 invocations per (QT x 16-row Q block, head, batch): Tint demands
 * that subgroup-matrix offsets be workgroup-uniform, so several subgroups cannot address their own
 * slices of shared arrays (the subgroup index is not uniform; diagnostic filters and
 * subgroupBroadcastFirst do not lift the rule). Instead the one subgroup owns QT 16-row Q tiles and
 * reuses each K/V tile it stages for all of them (loops over the Q tiles are unrolled in the
 * generator, so every offset stays a constant or a uniform expression). Needs subgroup size 32.
 *
 * Subgroup-matrix results cannot be rescaled row by row, so instead of the online rescale of
 * Algorithm 1 this kernel makes two passes over the keys: pass 1 computes S = Q K^T and the row max
 * m_i; pass 2 recomputes S, P = exp(S - m_i) (never rescaled), accumulates O = P V in result matrices
 * and l_i = rowsum(P). Tensor-core work is 1.5x a one-pass kernel's.
 * For the softmax steps lane pairs (2r, 2r + 1) share query row r of each Q tile, half of each key
 * tile each; their partial m_i and l_i are combined once, after each pass, with subgroupShuffleXor.
 *
 * lse in exact f32: the tensor cores sum q.k in another order and rounding than f32 FMAs (a few ulps
 * of |S|), and the backward recomputes S with f32 FMAs: P_bwd = exp(S_f32 - lse). With lse built
 * on the tensor-core max, the row's dominant key gets P_bwd = exp(S_f32 - S_tc) / l instead of 1 / l,
 * which at |S| ~ 1e4 is off by ~3e-3 and shows in dQ, dK (the f16 huge-spread case failed on it).
 * So pass 1 also tracks the argmax key j* of each row and the epilogue recomputes S_ij* as an f32
 * dot product in the backward's summation order: lse = S_f32(i, j*) + log(l_i), which gives the
 * dominant key the same P in the backward as in the forward (1 / l_i), as with the f32-math forward.
 *
 * Where the time goes (H100, D = 64, N = 4096, QT 1 with QREG: 52.7 ms = 10.4 TFLOP/s; ablations in
 * h100-bench-v4-2026-11-21.json, each leaving one part out): the multiplies 18 ms (34%; 825 GFLOP of
 * MMA work at ~46 TFLOP/s, each 16x16x16 product waits on the one before it in a single subgroup),
 * the softmax through workgroup memory 14 ms (27%), K/V staging 10.5 ms (20%; it was 60% before
 * the loads were batched), the rest barriers, S/P round trips and the epilogue. The fp32-math
 * kernel on the same f16 inputs does 23.8 TFLOP/s: with one subgroup per workgroup, two passes
 * and S and P round-tripping through workgroup memory, the tensor cores idle most of the time.
 *
 * Bindings as flash-forward: q (B, Nq, Hq, D), k, v (B, Nk, Hk, D) array<f16>; o (B, Nq, Hq, D) f32;
 * lse (B, Hq, Nq) f32 (-Infinity for fully masked rows).
 */
import type { ProgramInfo } from '../src/program.js';
import { ATTENTION_UNIFORMS, LN2, LOG2E, MASK_WGSL } from '../src/kernels/params.wgsl.js';
import { NEG } from '../src/kernels/storage.wgsl.js';
import { unroll } from '../src/kernels/tiles.js';

const M = 16;

export interface SgmatSpec {
  headDim: number;
  /** 16-row Q tiles per workgroup (the one subgroup reuses each staged K/V tile for all of them). */
  QT: number;
  /** Keys per staged K/V tile (32 or 64; default 32). */
  BC?: number;
  /** Hold Q's left matrices in registers for the whole kernel instead of reloading them per tile. */
  QREG?: boolean;
  /**
   * Benchmarks only (results are wrong): leave out one part of the work to see what it costs.
   * 'mma': no subgroup-matrix multiplies; 'softmax': no exp / row max work; 'loads': K/V tiles are not
   * re-staged after the first.
   */
  ablate?: 'mma' | 'softmax' | 'loads';
}

/** Head dims this kernel handles: multiples of 16 up to 128 (workgroup memory). */
export function sgmatSupports(headDim: number): boolean {
  return headDim % 16 === 0 && headDim <= 128;
}

/** Query rows per workgroup. */
export function sgmatRows(spec: SgmatSpec): number {
  return 16 * spec.QT;
}

/** Workgroup memory (bytes). */
export function sgmatSharedBytes(spec: SgmatSpec): number {
  const D = spec.headDim;
  const BC = spec.BC ?? 32;
  return 2 * (16 * spec.QT * D + 2 * BC * D) + 4 * spec.QT * M * BC + 2 * spec.QT * M * BC;
}

/**
 * The kernel as a program (retired from the backend's dispatch: dev/sgmat.ts runs it). q, k, v
 * contiguous (B, N, H, D) float16, o contiguous f32, lse at p.lseOff; dispatch (ceil(Nq / (16 QT)), Hq, B).
 */
export function flashForwardSgmatProgram(
  spec: SgmatSpec,
  dispatch: readonly [number, number, number],
): ProgramInfo {
  return {
    name: 'flash-forward-sgmat',
    cacheKey: `d${spec.headDim}-qt${spec.QT}-bc${spec.BC ?? 32}${spec.QREG ? '-qreg' : ''}-${spec.ablate ?? 'full'}`,
    uniforms: ATTENTION_UNIFORMS,
    extensions: ['f16', 'subgroups', 'chromium_experimental_subgroup_matrix'],
    bindings: [
      {
        name: 'q',
        type: 'array<vec4<f16>>',
        access: 'read',
        shape: '(B, Nq, Hq, D / 4), contiguous',
      },
      {
        name: 'k',
        type: 'array<vec4<f16>>',
        access: 'read',
        shape: '(B, Nk, Hk, D / 4), contiguous',
      },
      {
        name: 'v',
        type: 'array<vec4<f16>>',
        access: 'read',
        shape: '(B, Nk, Hk, D / 4), contiguous',
      },
      { name: 'o', type: 'array<f32>', access: 'read_write', shape: '(B, Nq, Hq, D), contiguous' },
      { name: 'lse', type: 'array<f32>', access: 'read_write', shape: '(B, Hq, Nq) at p.lseOff' },
    ],
    dispatch,
    body: () => flashForwardSgmatWGSL(spec),
  };
}

/** The kernel body (after the bindings the program manager writes). */
export function flashForwardSgmatWGSL(spec: SgmatSpec): string {
  const D = spec.headDim;
  const QT = spec.QT;
  const BC = spec.BC ?? 32;
  const QREG = !!spec.QREG;
  const BR = 16 * QT;
  const NT = 32;
  const D4 = D / 4;
  const KB = D / M; // k-blocks over the head dim
  const NB = BC / M; // 16-key blocks per tile
  const noMma = spec.ablate === 'mma';
  const noSoftmax = spec.ablate === 'softmax';
  const noLoads = spec.ablate === 'loads';
  const qLeft = (qt: number, kb: number) =>
    QREG
      ? `qa${qt}_${kb}`
      : `subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>>(&Qs, ${qt * M * D + kb * 16}u, false, ${D}u)`;
  const computeS = (qt: number) => `
    // S (16, BC) of Q tile ${qt} = Q rows (16, D) . K tile^T (D, BC)
${unroll(
  NB,
  (nb) => `    {
      var s = subgroup_matrix_result<f32, 16, 16>();
${
  noMma
    ? ''
    : unroll(
        KB,
        (kb) => `      s = subgroupMatrixMultiplyAccumulate(${qLeft(qt, kb)},
        subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>>(&Ks, ${nb * M * D + kb * 16}u, true, ${D}u), s);
`,
      )
}      subgroupMatrixStore(&Ss, ${qt * M * BC + nb * M}u, s, false, ${BC}u);
    }
`,
)}`;
  // Tiles are read 4 halves (8 bytes) at a time: D and the row strides are multiples of 4. Every load
  // of a tile is issued before the first store (the generator unrolls the lane loop): with one
  // subgroup per workgroup nothing else hides a load's latency, and a loop that stores after each
  // load waits for memory once per iteration (ablation, H100, D = 64, N = 4096: staging K and V was
  // 60% of the kernel's time with the rolled loop). Keys past Nk load the last key instead (no branch
  // around the load): their S is masked and their P is 0, and a real key's V is finite (0 * V = 0).
  const per = (BC * D4) / NT; // vec4<f16> per lane per tile (BC * D / 4 is a multiple of 32)
  const loadTiles = (pairs: readonly (readonly [string, string])[]) => {
    const items: [string, string, number][] = [];
    for (const [arr, buf] of pairs) for (let t = 0; t < per; t++) items.push([arr, buf, t]);
    let code = '';
    // at most 16 loads in flight per lane (32 registers of f16 pairs)
    for (let g = 0; g < items.length; g += 16) {
      const group = items.slice(g, g + 16);
      code += '\n    {';
      for (const [arr, buf, t] of group) {
        code += `
      let ${arr}e${t} = lid + ${t * NT}u;
      let ${arr}x${t} = ${buf}[(kBase + min(j0 + ${arr}e${t} / ${D4}u, p.Nk - 1u) * kRow) / 4u + ${arr}e${t} % ${D4}u];`;
      }
      for (const [arr, , t] of group) {
        code += `
      ${arr}[4u * ${arr}e${t}] = ${arr}x${t}.x; ${arr}[4u * ${arr}e${t} + 1u] = ${arr}x${t}.y; ${arr}[4u * ${arr}e${t} + 2u] = ${arr}x${t}.z; ${arr}[4u * ${arr}e${t} + 3u] = ${arr}x${t}.w;`;
      }
      code += '\n    }';
    }
    return code;
  };
  const loadTile = (arr: string, buf: string) => loadTiles([[arr, buf]]);
  const stage = (what: string) => (noLoads ? `\n    if (j0 == jBegin) {${what}\n    }` : what);
  const row = (qt: number) => `(${qt * M}u + r)`; // row of the Q block a lane handles in Q tile qt
  return `${MASK_WGSL}
var<workgroup> Qs: array<f16, ${BR * D}>;        // (BR, D): QT tiles of (16, D)
var<workgroup> Ks: array<f16, ${BC * D}>;        // (BC, D)
var<workgroup> Vs: array<f16, ${BC * D}>;        // (BC, D)
var<workgroup> Ss: array<f32, ${QT * M * BC}>;  // per Q tile (16, BC) S; (16, 16) O staging at the end
var<workgroup> Ps: array<f16, ${QT * M * BC}>;  // per Q tile (16, BC) P

@compute @workgroup_size(${NT})
fn main(
  @builtin(workgroup_id) wg: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
) {
  let lane = lid; // the workgroup is one subgroup
  let h = wg.y;
  let b = wg.z;
  let hk = h / (p.Hq / p.Hk);
  let row0 = (nwg.x - 1u - wg.x) * ${BR}u; // Q blocks in reverse: causal blocks with most keys first
  let rowLast = min(row0 + ${BR}u, p.Nq) - 1u;
  let scale2 = p.scale * ${LOG2E};
  let qBase = ((b * p.Nq) * p.Hq + h) * ${D}u;
  let kBase = ((b * p.Nk) * p.Hk + hk) * ${D}u;
  let qRow = p.Hq * ${D}u;
  let kRow = p.Hk * ${D}u;
  let r = lane >> 1u;                       // the row of each Q tile this lane shares with lane ^ 1
  let half = lane & 1u;                     // which half of each key tile it covers
  var lo: array<i32, ${QT}>;
  var hi: array<i32, ${QT}>;
  var m_i: array<f32, ${QT}>;
  var jmax: array<i32, ${QT}>;              // argmax key of the row (tensor-core S), -1 while none
  var l_i: array<f32, ${QT}>;
${unroll(
  QT,
  (qt) => `  { let i = i32(row0 + ${row(qt)});
    lo[${qt}] = keyLo(i); hi[${qt}] = select(lo[${qt}], keyHi(i), i < i32(p.Nq));
    m_i[${qt}] = ${NEG}; jmax[${qt}] = -1; l_i[${qt}] = 0.0; }
`,
)}  let jBegin = (u32(keyLo(i32(row0))) / ${BC}u) * ${BC}u;
  let jEnd = u32(max(keyHi(i32(rowLast)), 0));

  for (var e = lid; e < ${BR * D4}u; e += ${NT}u) {
    let rr = e / ${D4}u; let d4 = e % ${D4}u; let qrow = row0 + rr;
    var x = vec4<f16>();
    if (qrow < p.Nq) { x = q[(qBase + qrow * qRow) / 4u + d4]; }
    Qs[4u * e] = x.x; Qs[4u * e + 1u] = x.y; Qs[4u * e + 2u] = x.z; Qs[4u * e + 3u] = x.w;
  }

${
  QREG
    ? `  workgroupBarrier();
  // Q's left matrices, held for the whole kernel
${unroll(QT, (qt) => unroll(KB, (kb) => `  let qa${qt}_${kb} = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>>(&Qs, ${qt * M * D + kb * 16}u, false, ${D}u);\n`))}`
    : ''
}
  // Pass 1: m_i = max_j S_ij over the visible keys, and its key j*
  for (var j0 = jBegin; j0 < jEnd; j0 += ${BC}u) {
    workgroupBarrier();${stage(loadTile('Ks', 'k'))}
    workgroupBarrier();${unroll(QT, computeS)}
    workgroupBarrier();
${
  noSoftmax
    ? ''
    : unroll(
        QT,
        (qt) => `    for (var jj = half * ${BC / 2}u; jj < (half + 1u) * ${BC / 2}u; jj++) {
      let j = i32(j0 + jj);
      let x = Ss[${qt * M * BC}u + r * ${BC}u + jj] * scale2;
      if (j >= lo[${qt}] && j < hi[${qt}] && x > m_i[${qt}]) { m_i[${qt}] = x; jmax[${qt}] = j; }
    }
`,
      )
}  }

  // both halves of each row: the larger max and its key
${unroll(
  QT,
  (
    qt,
  ) => `  { let mo = subgroupShuffleXor(m_i[${qt}], 1u); let jo = subgroupShuffleXor(jmax[${qt}], 1u);
    if (mo > m_i[${qt}] || (mo == m_i[${qt}] && jo > jmax[${qt}])) { m_i[${qt}] = mo; jmax[${qt}] = jo; } }
`,
)}
  // Pass 2: P = exp(S - m_i), l_i = rowsum(P), O = P V
${unroll(QT, (qt) => unroll(D / M, (nb) => `  var acc${qt}_${nb} = subgroup_matrix_result<f32, 16, 16>();\n`))}
  for (var j0 = jBegin; j0 < jEnd; j0 += ${BC}u) {
    workgroupBarrier();${stage(
      loadTiles([
        ['Ks', 'k'],
        ['Vs', 'v'],
      ]),
    )}
    workgroupBarrier();${unroll(QT, computeS)}
    workgroupBarrier();
${unroll(
  QT,
  (qt) => `    for (var jj = half * ${BC / 2}u; jj < (half + 1u) * ${BC / 2}u; jj++) {
      let j = i32(j0 + jj);
      var pr = 0.0;
      ${noSoftmax ? `pr = Ss[${qt * M * BC}u + r * ${BC}u + jj];` : `if (j >= lo[${qt}] && j < hi[${qt}]) { pr = exp2(Ss[${qt * M * BC}u + r * ${BC}u + jj] * scale2 - m_i[${qt}]); }`}
      let ph = f16(pr);
      l_i[${qt}] += f32(ph);
      Ps[${qt * M * BC}u + r * ${BC}u + jj] = ph;
    }
`,
)}    workgroupBarrier();
${
  noMma
    ? ''
    : unroll(
        QT,
        (qt) => `    for (var kb = 0u; kb < ${NB}u; kb++) {
      let a = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>>(&Ps, ${qt * M * BC}u + kb * 16u, false, ${BC}u);
${unroll(
  D / M,
  (
    nb,
  ) => `      { let w = subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>>(&Vs, kb * ${M * D}u + ${nb * M}u, false, ${D}u);
        acc${qt}_${nb} = subgroupMatrixMultiplyAccumulate(a, w, acc${qt}_${nb}); }\n`,
)}    }
`,
      )
}  }

  // Epilogue, per Q tile: O = acc / l_i through a (16, 16) staging block; lse = S_f32(i, j*) + log(l_i)
${unroll(QT, (qt) => {
  const i = `row0 + ${row(qt)}`;
  return `  {
    let i = ${i};
    var l = l_i[${qt}];
    l += subgroupShuffleXor(l, 1u);
    let inv = select(0.0, 1.0 / l, l > 0.0);
${unroll(
  D / M,
  (nb) => `    workgroupBarrier();
    subgroupMatrixStore(&Ss, 0u, acc${qt}_${nb}, false, 16u);
    workgroupBarrier();
    if (i < p.Nq) {
      for (var c = half * 8u; c < half * 8u + 8u; c++) { o[qBase + i * qRow + ${nb * M}u + c] = Ss[r * 16u + c] * inv; }
    }
`,
)}    // exact f32 score of the argmax key, summed like the backward kernels sum q.k (one FMA per head
    // dim, d = 0, 1, ..., D - 1, from 0), so that their P of this key is exp2(0) = 1 / l after dividing
    var m2 = m_i[${qt}];
    let js = jmax[${qt}];
    if (js >= 0) {
      var dot = 0.0;
      for (var d4 = 0u; d4 < ${D4}u; d4++) {
        let kv = vec4<f32>(k[(kBase + u32(js) * kRow) / 4u + d4]);
        let qo = ${qt * M * D}u + r * ${D}u + 4u * d4;
        dot = fma(f32(Qs[qo]), kv.x, dot);
        dot = fma(f32(Qs[qo + 1u]), kv.y, dot);
        dot = fma(f32(Qs[qo + 2u]), kv.z, dot);
        dot = fma(f32(Qs[qo + 3u]), kv.w, dot);
      }
      m2 = dot * scale2;
    }
    if (half == 0u && i < p.Nq) {
      lse[p.lseOff + (b * p.Hq + h) * p.Nq + i] = select(p.ninf, (m2 + log2(l)) * ${LN2}, l > 0.0);
    }
  }
`;
})}}
`;
}
