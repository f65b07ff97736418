/**
 * Merge S partial attention results over disjoint key sets (flash-decoding's combine):
 *   lse = log sum_s exp(lse_s),  out = sum_s exp(lse_s - lse) out_s
 * computed as m = max_s lse_s, lse = m + log(sum_s exp(lse_s - m)) so no term overflows; a split that
 * saw no key (lse_s = -Infinity) weighs 0, and a row no split saw gets out = 0, lse = -Infinity.
 * One invocation per output element (b, i, h, d); it reads the S lse values of its row (a few words,
 * shared by the row's D invocations through the cache), and the d = 0 invocation writes lse.
 *
 * Bindings: outP (S, B, Nq, Hq, D) f32 contiguous from outPOff; lseP (S, B, Hq, Nq) f32 from lsePOff;
 * o f32 (B, Nq, Hq, D) strided view; lse f32 (B, Hq, Nq) at lseOff when hasLse = 1.
 * Dispatch: 2-D over ceil(B * Nq * Hq * D / COMBINE_WG) workgroups (x at most maxComputeWorkgroupsPerDimension).
 */
import type { ProgramInfo, UniformField } from '../../program.js';

export const COMBINE_WG = 256;

export const COMBINE_UNIFORMS: readonly UniformField[] = [
  { name: 'n', type: 'u32', comment: 'B * Nq * Hq * D' },
  { name: 'S', type: 'u32', comment: 'splits' },
  { name: 'Nq', type: 'u32' },
  { name: 'Hq', type: 'u32' },
  { name: 'D', type: 'u32' },
  { name: 'outPOff', type: 'u32' },
  { name: 'lsePOff', type: 'u32' },
  { name: 'lseOff', type: 'u32' },
  { name: 'hasLse', type: 'u32', comment: '1: write lse' },
  { name: 'ninf', type: 'f32', comment: '-Infinity, from the host' },
  { name: 'o', type: 'view' },
];

export function combineByLseProgram(dispatch: readonly [number, number, number]): ProgramInfo {
  return {
    name: 'combine-by-lse',
    cacheKey: '',
    uniforms: COMBINE_UNIFORMS,
    bindings: [
      { name: 'outP', type: 'array<f32>', access: 'read', shape: '(S, B, Nq, Hq, D)' },
      { name: 'lseP', type: 'array<f32>', access: 'read', shape: '(S, B, Hq, Nq)' },
      { name: 'o', type: 'array<f32>', access: 'read_write', shape: '(B, Nq, Hq, D) view' },
      { name: 'lse', type: 'array<f32>', access: 'read_write', shape: '(B, Hq, Nq)' },
    ],
    dispatch,
    body: combineByLseWGSL,
  };
}

export function combineByLseWGSL(): string {
  return /* wgsl */ `
@compute @workgroup_size(${COMBINE_WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
  let e = gid.x + gid.y * nw.x * ${COMBINE_WG}u;
  if (e >= p.n) { return; }
  let d = e % p.D;
  let r = e / p.D;        // (b, i, h) row of out
  let h = r % p.Hq;
  let bi = r / p.Hq;
  let i = bi % p.Nq;
  let b = bi / p.Nq;
  let rows = p.n / p.D;   // B * Nq * Hq
  let lr = (b * p.Hq + h) * p.Nq + i; // the row in (B, Hq, Nq)
  var m = -1.0e30;
  for (var s = 0u; s < p.S; s++) { m = max(m, lseP[p.lsePOff + s * rows + lr]); }
  var sum = 0.0;
  var acc = 0.0;
  if (m > -1.0e30) {
    for (var s = 0u; s < p.S; s++) {
      let x = lseP[p.lsePOff + s * rows + lr];
      if (x > -1.0e30) {
        let w = exp(x - m);
        sum += w;
        acc = fma(w, outP[p.outPOff + s * p.n + e], acc);
      }
    }
  }
  let inv = select(1.0 / sum, 0.0, sum <= 0.0);
  o[p.o.off + b * p.o.sB + i * p.o.sN + h * p.o.sH + d] = acc * inv;
  if (d == 0u && p.hasLse == 1u) {
    lse[p.lseOff + lr] = select(m + log(sum), p.ninf, sum <= 0.0);
  }
}
`;
}
