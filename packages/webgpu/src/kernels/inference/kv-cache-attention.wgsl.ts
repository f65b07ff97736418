/**
 * Attention of new queries over a KV cache, one key split at a time (flash-decoding's partial pass):
 * one workgroup per (split s and query-row block, kv head hk, sequence b). The rows of a workgroup are
 * the query group of hk (GQA/MQA: the Hq / Hk query heads reading hk) times the Nq new queries, so
 * every key and value row is read from memory once per kv head, not once per query head:
 *   row r = g * Nq + i  ->  query head h = hk * (Hq / Hk) + g, query position i.
 * Split s covers keys [s * kps, min((s + 1) * kps, Lk_b)) of sequence b (Lk_b = cmeta[b] + N_new); its out
 * and lse (log of the row's sum of exp over those keys) are merged by combine-by-lse.wgsl.ts, or are
 * the answer when S = 1.
 *
 * Keys are addressed through a block table (cmeta[B + b * mb + j / ps], row j % ps): a paged cache
 * (num_blocks, page_size, Hk, D), or a contiguous one as pages of N_max rows with the table holding
 * cache_batch_idx (mb = 1). The mask is core's keyRange with Nk = Lk_b: query row i sits at key
 * position i + Lk_b - Nq.
 *
 * Per key tile (NT keys, NT = workgroup size):
 *   S = Q K^T: invocation t scores key j0 + t against the MR query rows (Q in workgroup memory,
 *              pre-scaled by scale * log2(e), so exp becomes exp2), masked scores NEG;
 *   Algorithm 1, line 10: m_new = max(m_old, rowmax(S)), P = exp2(S - m_new), l and acc rescaled by
 *              exp2(m_old - m_new); rowmax(S) through one workgroup atomicMax per row and key on an
 *              order-preserving u32 image of the score (not a loop of every invocation over the
 *              tile: that read MR * NT words of workgroup memory per invocation per tile);
 *   acc += P V: invocation t owns head-dim columns c * NT + t and reads V rows coalesced.
 *
 * Bindings: q (B, Nq, Hq, D) strided; kc, vc the caches (strided, pages as the batch dim); cmeta i32
 * [cache_seqlens (B) | block table (B, mb)]; o f32 strided view (split s at + s * oSplit);
 * lse f32 (B, Hq, Nq) at lseOff (split s at + s * lseSplit).
 */
import type { ProgramInfo, UniformField } from '../../program.js';
import { LN2, LOG2E } from '../params.wgsl.js';
import { NEG, type StorageKind } from '../storage.wgsl.js';
import { unroll } from '../tiles.js';

/** Invocations (and keys per tile) of a workgroup. */
/**
 * Invocations (and keys per tile) of a workgroup. 128 rather than 64: decode has few workgroups
 * (B * Hk * splits), and the loads in flight per workgroup bound the bandwidth it reaches.
 */
export const KV_NT = 128;

export const KV_ATTENTION_UNIFORMS: readonly UniformField[] = [
  { name: 'B', type: 'u32', comment: 'batch' },
  { name: 'Nq', type: 'u32', comment: 'new queries per sequence' },
  { name: 'Hq', type: 'u32', comment: 'query heads' },
  { name: 'Hk', type: 'u32', comment: 'kv heads (divides Hq)' },
  { name: 'scale', type: 'f32', comment: 'softmaxScale' },
  { name: 'wl', type: 'i32', comment: 'window left, -1 = unbounded' },
  { name: 'wr', type: 'i32', comment: 'window right, -1 = unbounded (causal: 0)' },
  { name: 'dt', type: 'u32', comment: "storage dtype for the 'any' kind" },
  { name: 'Nnew', type: 'u32', comment: 'keys appended this call (Lk_b = cmeta[b] + Nnew)' },
  { name: 'S', type: 'u32', comment: 'key splits' },
  { name: 'kps', type: 'u32', comment: 'keys per split' },
  { name: 'ps', type: 'u32', comment: 'page size (contiguous: N_max)' },
  { name: 'mb', type: 'u32', comment: 'block-table entries per sequence (contiguous: 1)' },
  { name: 'lseOff', type: 'u32', comment: 'element offset of lse' },
  { name: 'lseSplit', type: 'u32', comment: 'elements between splits of lse' },
  { name: 'oSplit', type: 'u32', comment: 'elements between splits of o' },
  { name: 'ninf', type: 'f32', comment: '-Infinity, from the host' },
  { name: 'q', type: 'view' },
  { name: 'k', type: 'view' },
  { name: 'v', type: 'view' },
  { name: 'o', type: 'view' },
];

export interface KvAttentionSpec {
  headDim: number;
  kind: StorageKind;
  /** Query rows per workgroup (1, 2, 4 or 8). */
  MR: number;
  /**
   * Stage each K tile through workgroup memory, DC head dims at a time, with coalesced loads (a warp
   * reads whole row segments) instead of each invocation reading its own key row (a warp's load then
   * touches 32 rows). A tuning switch until measured on a GPU (decode-bench.ts --kernels).
   */
  stageK?: boolean;
}

/** Head dims per staged K chunk: the largest of 16, 8, 4, 2, 1 dividing D whose buffers fit 16 KiB. */
export function kvStageChunk(D: number, MR: number): number {
  const other = 4 * (MR * D + MR * KV_NT + 2 * KV_NT + MR);
  for (const dc of [16, 8, 4, 2, 1])
    if (D % dc === 0 && other + 4 * KV_NT * (dc + 1) <= 16384) return dc;
  return 0;
}

/** Query rows per workgroup for a group of M = (Hq / Hk) * Nq rows: the power of two >= M, at most 8. */
export function kvRowsPerGroup(M: number): number {
  let r = 1;
  while (r < M && r < 8) r *= 2;
  return r;
}

/** The program: dispatch (S * ceil(M / MR), Hk, B). */
export function kvCacheAttentionProgram(
  spec: KvAttentionSpec,
  dispatch: readonly [number, number, number],
): ProgramInfo {
  return {
    name: 'kv-cache-attention',
    cacheKey: `d${spec.headDim}-${spec.kind}-r${spec.MR}${spec.stageK ? '-sk' : ''}`,
    uniforms: KV_ATTENTION_UNIFORMS,
    bindings: [
      { name: 'q', type: spec.kind, access: 'read', shape: '(B, Nq, Hq, D), strided' },
      { name: 'kc', type: spec.kind, access: 'read', shape: '(pages, page_size, Hk, D), strided' },
      { name: 'vc', type: spec.kind, access: 'read', shape: '(pages, page_size, Hk, D), strided' },
      {
        name: 'cmeta',
        type: 'array<i32>',
        access: 'read',
        shape: '[cache_seqlens (B) | table (B, mb)]',
      },
      { name: 'o', type: 'array<f32>', access: 'read_write', shape: '(S, B, Nq, Hq, D) view' },
      { name: 'lse', type: 'array<f32>', access: 'read_write', shape: '(S, B, Hq, Nq)' },
    ],
    dispatch,
    body: () => kvCacheAttentionWGSL(spec),
  };
}

export function kvCacheAttentionWGSL(spec: KvAttentionSpec): string {
  const D = spec.headDim;
  const { MR } = spec;
  const NT = KV_NT;
  const TD = Math.ceil(D / NT);
  const UK = D % 8 === 0 ? 8 : D % 4 === 0 ? 4 : D % 2 === 0 ? 2 : 1; // unroll of the score loop
  const DC = spec.stageK ? kvStageChunk(D, MR) : 0; // staged K: head dims per chunk
  if (spec.stageK && DC === 0)
    throw new Error(`kv-cache-attention: no K chunk fits at D=${D}, MR=${MR}`);
  return /* wgsl */ `
const D = ${D}u;
var<workgroup> qs: array<f32, ${MR * D}>;  // (MR, D) query rows times scale * log2(e)
var<workgroup> ps: array<f32, ${MR * NT}>; // (MR, NT) scores, then P, of the key tile
var<workgroup> vAt: array<u32, ${NT}>;     // element offset of each tile key's V row (head hk)
${
  DC
    ? `var<workgroup> kAt: array<u32, ${NT}>;     // element offset of each tile key's K row (~0u: none)
var<workgroup> kt: array<f32, ${NT * (DC + 1)}>; // (NT, DC + 1) K chunk of the tile (+1: no bank conflicts)
`
    : ''
}var<workgroup> rowMax: array<atomic<u32>, ${MR}>; // the tile's row max as orderKey (0: no visible key)

// f32 -> u32 with the same order (finite values), for atomicMax; 0 is below every key of a float
fn orderKey(x: f32) -> u32 {
  let u = bitcast<u32>(x);
  return select(u | 0x80000000u, ~u, (u & 0x80000000u) != 0u);
}
fn fromOrderKey(k: u32) -> f32 {
  return bitcast<f32>(select(k & 0x7fffffffu, ~k, (k & 0x80000000u) == 0u));
}

@compute @workgroup_size(${NT})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let s = wg.x % p.S;
  let rb = wg.x / p.S;
  let hk = wg.y;
  let b = wg.z;
  let G = p.Hq / p.Hk;
  let M = G * p.Nq;
  let Lk = cmeta[b] + i32(p.Nnew);
  let kBeg = i32(s * p.kps);
  let kEnd = min(kBeg + i32(p.kps), Lk);
  let scale2 = p.scale * ${LOG2E};

  // Q rows of this block, scaled (rows past M are 0 and see no key)
  for (var e = lid; e < ${MR * D}u; e += ${NT}u) {
    let row = rb * ${MR}u + e / D;
    var x = 0.0;
    if (row < M) {
      let h = hk * G + row / p.Nq;
      let i = row % p.Nq;
      x = ld_q(p.q.off + b * p.q.sB + i * p.q.sN + h * p.q.sH + e % D) * scale2;
    }
    qs[e] = x;
  }
  // Visible keys of each row: core's keyRange with Nk = Lk, cut to this split
  var lo: array<i32, ${MR}>;
  var hi: array<i32, ${MR}>;
  var jBegin = Lk; // keys [jBegin, jEnd) are seen by some row of this block (empty: jBegin >= jEnd)
  var jEnd = 0;
${unroll(
  MR,
  (r) => `  { let row = rb * ${MR}u + ${r}u;
    let diag = i32(row % p.Nq) + Lk - i32(p.Nq);
    var a = 0; var z = Lk;
    if (p.wl >= 0) { a = max(0, diag - p.wl); }
    if (p.wr >= 0) { z = min(Lk, diag + p.wr + 1); }
    a = max(a, kBeg); z = min(z, kEnd);
    if (row >= M) { z = a; }
    lo[${r}] = a; hi[${r}] = z;
    if (a < z) { jBegin = min(jBegin, a); jEnd = max(jEnd, z); } }
`,
)}
  // Algorithm 1, line 6: m = -inf, l = 0, acc = 0 (acc: this invocation's columns c * NT + lid)
  var m_i: array<f32, ${MR}>;
  var l_i: array<f32, ${MR}>;
  var acc: array<f32, ${MR * TD}>;
${unroll(MR, (r) => `  m_i[${r}] = ${NEG}; l_i[${r}] = 0.0;\n`)}${unroll(MR * TD, (e) => `  acc[${e}] = 0.0;\n`)}
  let jStart = (max(jBegin, 0) / ${NT}) * ${NT};
  if (lid < ${MR}u) { atomicStore(&rowMax[lid], 0u); }
  workgroupBarrier();
  for (var j0 = jStart; j0 < jEnd; j0 += ${NT}) {
    // S = Q K^T for key j = j0 + lid
    let j = j0 + i32(lid);
    var sc: array<f32, ${MR}>;
${unroll(MR, (r) => `    sc[${r}] = 0.0;\n`)}    var va = 0u;
    var ka = 0xffffffffu;
    if (j >= jBegin && j < jEnd) {
      let page = u32(cmeta[p.B + b * p.mb + u32(j) / p.ps]);
      let rowp = u32(j) % p.ps;
      ka = p.k.off + page * p.k.sB + rowp * p.k.sN + hk * p.k.sH;
      va = p.v.off + page * p.v.sB + rowp * p.v.sN + hk * p.v.sH;
    }
${DC ? stagedScores(NT, DC, MR) : directScores(UK, MR)}    vAt[lid] = va;
    // masked scores NEG; the tile's row max through an order-preserving u32 key (one atomic per row)
${unroll(
  MR,
  (r) => `    { let vis = j >= lo[${r}] && j < hi[${r}];
      ps[${r * NT}u + lid] = select(${NEG}, sc[${r}], vis);
      if (vis) { atomicMax(&rowMax[${r}], orderKey(sc[${r}])); } }
`,
)}    workgroupBarrier();
    // Algorithm 1, line 10: m_new = max(m_old, rowmax(S)), l and acc rescaled by exp2(m_old - m_new);
    // P = exp2(S - m_new) for this invocation's key (masked scores give 0)
${unroll(
  MR,
  (r) => `    { let key = atomicLoad(&rowMax[${r}]);
      let x = max(m_i[${r}], select(${NEG}, fromOrderKey(key), key != 0u));
      let alpha = exp2(m_i[${r}] - x);
      m_i[${r}] = x;
      l_i[${r}] *= alpha;
${unroll(
  TD,
  (c) => `      acc[${r * TD + c}] *= alpha;
`,
)}      let sv = ps[${r * NT}u + lid];
      ps[${r * NT}u + lid] = select(exp2(sv - x), 0.0, sv <= ${NEG}); }
`,
)}    workgroupBarrier();
    if (lid < ${MR}u) { atomicStore(&rowMax[lid], 0u); } // every invocation read it before the barrier
    // acc += P V, l += rowsum(P)
    // only keys in [jBegin, jEnd) have a V row (vAt of the others is 0, which may be any data)
    let jjEnd = u32(min(${NT}, jEnd - j0));
    for (var jj = u32(max(jBegin - j0, 0)); jj < jjEnd; jj++) {
      let vrow = vAt[jj];
${unroll(MR, (r) => `      let p${r} = ps[${r * NT}u + jj]; l_i[${r}] += p${r};\n`)}${unroll(
    TD,
    (c) => `      { let d = ${c * NT}u + lid;
        if (d < D) { let w = ld_vc(vrow + d);
${unroll(MR, (r) => `          acc[${r * TD + c}] = fma(p${r}, w, acc[${r * TD + c}]);\n`)}        } }
`,
  )}    }
    workgroupBarrier();
  }

  // Algorithm 1, lines 12-13: O = acc / l, lse = m + log(l) (natural log); no key: O = 0, lse = -inf
${unroll(
  MR,
  (r) => `  { let row = rb * ${MR}u + ${r}u;
    if (row < M) {
      let h = hk * G + row / p.Nq;
      let i = row % p.Nq;
      let l = l_i[${r}];
      let inv = select(1.0 / l, 0.0, l <= 0.0);
      let ob = p.o.off + s * p.oSplit + b * p.o.sB + i * p.o.sN + h * p.o.sH;
${unroll(TD, (c) => `      { let d = ${c * NT}u + lid; if (d < D) { o[ob + d] = acc[${r * TD + c}] * inv; } }\n`)}      if (lid == 0u) {
        lse[p.lseOff + s * p.lseSplit + (b * p.Hq + h) * p.Nq + i] = select((m_i[${r}] + log2(l)) * ${LN2}, p.ninf, l <= 0.0);
      }
    }
  }
`,
)}}
`;
}

/** Scores of key j0 + lid read straight from its K row, UK loads issued before their FMAs. */
function directScores(UK: number, MR: number): string {
  return `    if (ka != 0xffffffffu) {
      for (var d = 0u; d < D; d += ${UK}u) {
${unroll(UK, (u) => `        let k${u} = ld_kc(ka + d + ${u}u);\n`)}${unroll(UK, (u) =>
    unroll(MR, (r) => `        sc[${r}] = fma(qs[${r}u * D + d + ${u}u], k${u}, sc[${r}]);\n`),
  )}      }
    }
`;
}

/** Scores through the K tile staged DC head dims at a time (coalesced row segments). */
function stagedScores(NT: number, DC: number, MR: number): string {
  return `    kAt[lid] = ka;
    workgroupBarrier();
    for (var d0 = 0u; d0 < D; d0 += ${DC}u) {
      for (var e = lid; e < ${NT * DC}u; e += ${NT}u) {
        let a = kAt[e / ${DC}u];
        var x = 0.0;
        if (a != 0xffffffffu) { x = ld_kc(a + d0 + e % ${DC}u); }
        kt[(e / ${DC}u) * ${DC + 1}u + e % ${DC}u] = x;
      }
      workgroupBarrier();
${unroll(DC, (u) => `      { let kv = kt[lid * ${DC + 1}u + ${u}u];\n${unroll(MR, (r) => `        sc[${r}] = fma(qs[${r}u * D + d0 + ${u}u], kv, sc[${r}]);\n`)}      }\n`)}      workgroupBarrier();
    }
`;
}
