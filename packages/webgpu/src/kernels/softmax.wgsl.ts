/**
 * Standard-attention baseline: the masked row softmax over a materialised S, in place (S -> P),
 * writing lse. One workgroup of 256 invocations per row; S is (heads in chunk, Nq, Nk) f32 and
 * already holds scale * Q K^T. Rows that see no key get P = 0 and lse = NEG. Params.B carries the
 * chunk's first flattened head index z0.
 */
import { PARAMS_WGSL } from './params.wgsl.js';
import { NEG } from './storage.wgsl.js';

export const SOFTMAX_WG = 256;

export function softmaxWGSL(): string {
  return `${PARAMS_WGSL}
@group(0) @binding(1) var<storage, read_write> S: array<f32>;   // (chunk, Nq, Nk): S in, P out
@group(0) @binding(2) var<storage, read_write> lse: array<f32>; // (B * Hq, Nq); chunk starts at head p.B
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
  if (lid == 0u) { lse[(p.B + z) * p.Nq + i] = select(${NEG}, mx + log(l), l > 0.0); }
}
`;
}
