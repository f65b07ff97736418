/**
 * Flash forward on tensor cores through WGSL subgroup matrices (Dawn's experimental
 * `chromium-experimental-subgroup-matrix`; on NVIDIA it exposes f16 x f16 -> f32 at 16 x 16 x 16).
 * float16 storage, f32 accumulation; P is rounded to f16 before P V (as a float16 naive
 * implementation rounds it).
 *
 * One workgroup = one subgroup of 32 invocations per (16-row Q block, head, batch): Tint demands that
 * subgroup-matrix offsets be workgroup-uniform, so several subgroups cannot address their own slices
 * of shared arrays (the subgroup index is not uniform; diagnostic filters and subgroupBroadcastFirst
 * do not lift the rule). Needs subgroup size 32 (NVIDIA). Q (16, D) stays in workgroup memory; K and V
 * tiles of BC = 32 keys stream through it (23 KiB at D = 128, so several workgroups share an SM).
 *
 * Subgroup-matrix results cannot be rescaled row by row, so instead of the online rescale of
 * Algorithm 1 this kernel makes two passes over the keys: pass 1 computes S = Q K^T and the exact
 * row max m_i; pass 2 recomputes S, P = exp(S - m_i) (never rescaled), accumulates O = P V in
 * result matrices and l_i = rowsum(P). Tensor-core work is 1.5x a one-pass kernel's.
 * For the softmax steps lane pairs (2r, 2r + 1) share query row r, half of each key tile each; their
 * partial m_i and l_i are combined once, after each pass, with subgroupShuffleXor.
 *
 * Bindings as flash-forward: q (B, Nq, Hq, D), k, v (B, Nk, Hk, D) array<f16>; o (B, Nq, Hq, D) f32;
 * lse (B, Hq, Nq) f32 (NEG for fully masked rows).
 */
import { LN2, LOG2E, PARAMS_WGSL } from './params.wgsl.js';
import { NEG } from './storage.wgsl.js';
import { unroll } from './tiles.js';

export const SGMAT_BR = 16;
const BC = 32;
const NSG = 1;
const M = 16;

/** Head dims this kernel handles: multiples of 16 up to 128 (workgroup memory). */
export function sgmatSupports(headDim: number): boolean {
  return headDim % 16 === 0 && headDim <= 128;
}

export function flashForwardSgmatWGSL(headDim: number): string {
  const D = headDim;
  const BR = SGMAT_BR;
  const NT = NSG * 32;
  const D4 = D / 4;
  const KB = D / M; // k-blocks over the head dim
  const NB = BC / M; // 16-key blocks per tile
  const computeS = `
    // S (16, BC) for this subgroup = Q rows (16, D) . K tile^T (D, BC)
${unroll(NB, (nb) => `    {
      var s = subgroup_matrix_result<f32, 16, 16>();
      for (var kb = 0u; kb < ${KB}u; kb++) {
        let a = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>>(&Qs, (sg * 16u) * ${D}u + kb * 16u, false, ${D}u);
        let b = subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>>(&Ks, ${nb * M * D}u + kb * 16u, true, ${D}u);
        s = subgroupMatrixMultiplyAccumulate(a, b, s);
      }
      subgroupMatrixStore(&Ss, sg * ${M * BC}u + ${nb * M}u, s, false, ${BC}u);
    }
`)}`;
  // Tiles are read 4 halves (8 bytes) at a time: D and the row strides are multiples of 4.
  const loadTile = (arr: string, buf: string) => `
    for (var e = lid; e < ${BC * D4}u; e += ${NT}u) {
      let jj = e / ${D4}u; let d4 = e % ${D4}u; let col = j0 + jj;
      var x = vec4<f16>();
      if (col < p.Nk) { x = ${buf}[(kBase + col * kRow) / 4u + d4]; }
      ${arr}[4u * e] = x.x; ${arr}[4u * e + 1u] = x.y; ${arr}[4u * e + 2u] = x.z; ${arr}[4u * e + 3u] = x.w;
    }`;
  return `enable f16;
enable subgroups;
enable chromium_experimental_subgroup_matrix;
${PARAMS_WGSL}
@group(0) @binding(1) var<storage, read> q: array<vec4<f16>>;  // (B, Nq, Hq, D / 4)
@group(0) @binding(2) var<storage, read> k: array<vec4<f16>>;  // (B, Nk, Hk, D / 4)
@group(0) @binding(3) var<storage, read> v: array<vec4<f16>>;  // (B, Nk, Hk, D / 4)
@group(0) @binding(4) var<storage, read_write> o: array<f32>;   // (B, Nq, Hq, D)
@group(0) @binding(5) var<storage, read_write> lse: array<f32>; // (B, Hq, Nq)

var<workgroup> Qs: array<f16, ${BR * D}>;       // (BR, D)
var<workgroup> Ks: array<f16, ${BC * D}>;       // (BC, D)
var<workgroup> Vs: array<f16, ${BC * D}>;       // (BC, D)
var<workgroup> Ss: array<f32, ${NSG * M * BC}>; // per subgroup (16, BC) S; (16, 16) O staging at the end
var<workgroup> Ps: array<f16, ${NSG * M * BC}>; // per subgroup (16, BC) P

@compute @workgroup_size(${NT})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let lane = lid; // the workgroup is one subgroup
  let h = wg.y;
  let b = wg.z;
  let hk = h / (p.Hq / p.Hk);
  let sg = 0u;
  let row0 = wg.x * ${BR}u;
  let rowLast = min(row0 + ${BR}u, p.Nq) - 1u;
  let scale2 = p.scale * ${LOG2E};
  let qBase = ((b * p.Nq) * p.Hq + h) * ${D}u;
  let kBase = ((b * p.Nk) * p.Hk + hk) * ${D}u;
  let qRow = p.Hq * ${D}u;
  let kRow = p.Hk * ${D}u;
  let r = lane >> 1u;                       // the query row this lane shares with lane ^ 1
  let half = lane & 1u;                     // which half of each key tile it covers
  let i = row0 + sg * 16u + r;
  let lo = keyLo(i32(i));
  let hi = select(lo, keyHi(i32(i)), i < p.Nq);
  let jBegin = (u32(keyLo(i32(row0))) / ${BC}u) * ${BC}u;
  let jEnd = u32(max(keyHi(i32(rowLast)), 0));

  for (var e = lid; e < ${BR * D4}u; e += ${NT}u) {
    let r = e / ${D4}u; let d4 = e % ${D4}u; let row = row0 + r;
    var x = vec4<f16>();
    if (row < p.Nq) { x = q[(qBase + row * qRow) / 4u + d4]; }
    Qs[4u * e] = x.x; Qs[4u * e + 1u] = x.y; Qs[4u * e + 2u] = x.z; Qs[4u * e + 3u] = x.w;
  }

  // Pass 1: m_i = max_j S_ij over the visible keys
  var m_i = ${NEG};
  for (var j0 = jBegin; j0 < jEnd; j0 += ${BC}u) {
    workgroupBarrier();${loadTile('Ks', 'k')}
    workgroupBarrier();${computeS}
    workgroupBarrier();
    {
      for (var jj = half * ${BC / 2}u; jj < (half + 1u) * ${BC / 2}u; jj++) {
        let j = i32(j0 + jj);
        if (j >= lo && j < hi) { m_i = max(m_i, Ss[sg * ${M * BC}u + r * ${BC}u + jj] * scale2); }
      }
    }
  }

  m_i = max(m_i, subgroupShuffleXor(m_i, 1u)); // both halves of the row

  // Pass 2: P = exp(S - m_i), l_i = rowsum(P), O = P V
  var l_i = 0.0;
${unroll(D / M, (nb) => `  var acc${nb} = subgroup_matrix_result<f32, 16, 16>();\n`)}
  for (var j0 = jBegin; j0 < jEnd; j0 += ${BC}u) {
    workgroupBarrier();${loadTile('Ks', 'k')}${loadTile('Vs', 'v')}
    workgroupBarrier();${computeS}
    workgroupBarrier();
    {
      for (var jj = half * ${BC / 2}u; jj < (half + 1u) * ${BC / 2}u; jj++) {
        let j = i32(j0 + jj);
        var pr = 0.0;
        if (j >= lo && j < hi) { pr = exp2(Ss[sg * ${M * BC}u + r * ${BC}u + jj] * scale2 - m_i); }
        let ph = f16(pr);
        l_i += f32(ph);
        Ps[sg * ${M * BC}u + r * ${BC}u + jj] = ph;
      }
    }
    workgroupBarrier();
    for (var kb = 0u; kb < ${NB}u; kb++) {
      let a = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>>(&Ps, sg * ${M * BC}u + kb * 16u, false, ${BC}u);
${unroll(D / M, (nb) => `      { let w = subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>>(&Vs, kb * ${M * D}u + ${nb * M}u, false, ${D}u);
        acc${nb} = subgroupMatrixMultiplyAccumulate(a, w, acc${nb}); }\n`)}    }
  }

  l_i += subgroupShuffleXor(l_i, 1u);
  // Epilogue: O = acc / l_i through a (16, 16) staging block per subgroup; lse = m_i + log(l_i)
  let inv = select(0.0, 1.0 / l_i, l_i > 0.0);
${unroll(D / M, (nb) => `  workgroupBarrier();
  subgroupMatrixStore(&Ss, sg * ${M * BC}u, acc${nb}, false, 16u);
  workgroupBarrier();
  if (i < p.Nq) {
    for (var c = half * 8u; c < half * 8u + 8u; c++) { o[qBase + i * qRow + ${nb * M}u + c] = Ss[sg * ${M * BC}u + r * 16u + c] * inv; }
  }
`)}  if (half == 0u && i < p.Nq) {
    lse[(b * p.Hq + h) * p.Nq + i] = select(${NEG}, (m_i + log2(l_i)) * ${LN2}, l_i > 0.0);
  }
}
`;
}
