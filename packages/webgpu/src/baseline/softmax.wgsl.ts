/**
 * Standard-attention baseline: the masked row softmax over a materialised S, in place (S -> P),
 * writing lse. One workgroup of 256 invocations per row; S is (heads in chunk, Nq, Nk) f32 and
 * already holds scale * Q K^T. Rows that see no key get P = 0 and lse = -Infinity. Params.B carries the
 * chunk's first flattened head index z0.
 */
import type { ProgramInfo } from '../program.js';
import { ATTENTION_UNIFORMS, MASK_WGSL } from '../kernels/params.wgsl.js';
import { NEG } from '../kernels/storage.wgsl.js';

export const SOFTMAX_WG = 256;

/** As a program: dispatch (Nq, heads in the chunk, 1). Uniforms: the attention block, with B = the chunk's first head. */
export function softmaxProgram(dispatch: readonly [number, number, number]): ProgramInfo {
  return {
    name: 'std-softmax',
    cacheKey: '',
    uniforms: ATTENTION_UNIFORMS,
    bindings: [
      {
        name: 'S',
        type: 'array<f32>',
        access: 'read_write',
        shape: '(chunk, Nq, Nk): S in, P out',
      },
      {
        name: 'lse',
        type: 'array<f32>',
        access: 'read_write',
        shape: '(B * Hq, Nq); chunk starts at head p.B',
      },
    ],
    dispatch,
    body: softmaxWGSL,
  };
}

export function softmaxWGSL(): string {
  return `${MASK_WGSL}
var<workgroup> red: array<f32, ${SOFTMAX_WG}>;

@compute @workgroup_size(${SOFTMAX_WG})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = wg.x;
  let z = wg.y;
  let base = (z * p.Nq + i) * p.Nk;
  let lo = u32(keyLo(i32(i)));
  let hi = u32(max(keyHi(i32(i)), i32(lo)));
  var mx = ${NEG};
  for (var j = lo + lid; j < hi; j += ${SOFTMAX_WG}u) { mx = max(mx, S[base + j]); }
  red[lid] = mx;
  workgroupBarrier();
  for (var w = ${SOFTMAX_WG / 2}u; w > 0u; w >>= 1u) {
    if (lid < w) { red[lid] = max(red[lid], red[lid + w]); }
    workgroupBarrier();
  }
  mx = red[0];
  workgroupBarrier();
  var sum = 0.0;
  for (var j = lo + lid; j < hi; j += ${SOFTMAX_WG}u) { sum += exp(S[base + j] - mx); }
  red[lid] = sum;
  workgroupBarrier();
  for (var w = ${SOFTMAX_WG / 2}u; w > 0u; w >>= 1u) {
    if (lid < w) { red[lid] = red[lid] + red[lid + w]; }
    workgroupBarrier();
  }
  let l = red[0];
  let inv = select(0.0, 1.0 / l, l > 0.0);
  for (var j = lid; j < p.Nk; j += ${SOFTMAX_WG}u) {
    var pr = 0.0;
    if (j >= lo && j < hi) { pr = exp(S[base + j] - mx) * inv; }
    S[base + j] = pr;
  }
  if (lid == 0u) { lse[(p.B + z) * p.Nq + i] = select(p.ninf, mx + log(l), l > 0.0); }
}
`;
}
