/**
 * Append k_new (or v_new) into a KV cache in place: element (b, n, hk, d) of the new rows goes to
 * logical key position cache_seqlens[b] + n of sequence b, i.e. page table[b * mb + pos / ps], row
 * pos % ps (a contiguous cache is pages of N_max rows with cache_batch_idx as the table, mb = 1).
 * The bits are copied, not converted (the cache and k_new share a dtype), so appended rows equal
 * k_new exactly, NaN payloads included.
 *
 * 32-bit caches: one invocation per element, a plain store. 16-bit caches hold two elements per u32
 * word, and a word may be shared with an element that is not appended (an odd view offset, a row
 * boundary, another head): one invocation per element clears and sets its half with atomicAnd /
 * atomicOr (atomics on disjoint bits commute, so concurrent neighbours are never clobbered).
 *
 * Bindings: src (B, N_new, Hk, D) strided view, raw words; dst the cache (pages, ps, Hk, D) strided
 * view, raw words; cmeta i32 [cache_seqlens (B) | table (B, mb)].
 * Dispatch: 2-D over ceil(B * N_new * Hk * D / APPEND_WG) workgroups.
 */
import type { ProgramInfo, UniformField } from '../../program.js';

export const APPEND_WG = 256;

export const APPEND_UNIFORMS: readonly UniformField[] = [
  { name: 'n', type: 'u32', comment: 'B * N_new * Hk * D' },
  { name: 'B', type: 'u32' },
  { name: 'Nnew', type: 'u32' },
  { name: 'Hk', type: 'u32' },
  { name: 'D', type: 'u32' },
  { name: 'ps', type: 'u32', comment: 'page size (contiguous: N_max)' },
  { name: 'mb', type: 'u32', comment: 'table entries per sequence' },
  { name: 'src', type: 'view' },
  { name: 'dst', type: 'view' },
];

/** `half`: 16-bit elements (two per word). */
export function kvCacheAppendProgram(
  half: boolean,
  dispatch: readonly [number, number, number],
): ProgramInfo {
  return {
    name: 'kv-cache-append',
    cacheKey: half ? 'b16' : 'b32',
    uniforms: APPEND_UNIFORMS,
    bindings: [
      { name: 'src', type: 'array<u32>', access: 'read', shape: '(B, N_new, Hk, D) view' },
      {
        name: 'dst',
        type: half ? 'array<atomic<u32>>' : 'array<u32>',
        access: 'read_write',
        shape: '(pages, page_size, Hk, D) view',
      },
      { name: 'cmeta', type: 'array<i32>', access: 'read', shape: '[cache_seqlens (B) | table]' },
    ],
    dispatch,
    body: () => kvCacheAppendWGSL(half),
  };
}

export function kvCacheAppendWGSL(half: boolean): string {
  const copy = half
    ? `  let sw = src[si >> 1u];
  let bits = (sw >> ((si & 1u) * 16u)) & 0xffffu;
  let shift = (di & 1u) * 16u;
  atomicAnd(&dst[di >> 1u], ~(0xffffu << shift));
  atomicOr(&dst[di >> 1u], bits << shift);`
    : '  dst[di] = src[si];';
  return /* wgsl */ `
@compute @workgroup_size(${APPEND_WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
  let e = gid.x + gid.y * nw.x * ${APPEND_WG}u;
  if (e >= p.n) { return; }
  let d = e % p.D;
  let r = e / p.D;
  let hk = r % p.Hk;
  let r2 = r / p.Hk;
  let n = r2 % p.Nnew;
  let b = r2 / p.Nnew;
  let pos = u32(cmeta[b]) + n;
  let page = u32(cmeta[p.B + b * p.mb + pos / p.ps]);
  let si = p.src.off + b * p.src.sB + n * p.src.sN + hk * p.src.sH + d;
  let di = p.dst.off + page * p.dst.sB + (pos % p.ps) * p.dst.sN + hk * p.dst.sH + d;
${copy}
}
`;
}
