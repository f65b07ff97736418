/**
 * Round an f32 buffer to a 16-bit storage dtype (round to nearest even, bit-exact with core's host
 * conversion). One invocation per u32 word (two elements); the bytes are the same whether a later
 * kernel declares the buffer array<f16> (native) or array<u32> (packed), so one kernel serves both.
 * Bindings: src (n) f32; dst (n) in the target kind. Params: n in p.B (the shared Params block).
 */
import { PARAMS_WGSL } from './params.wgsl.js';
import { ROUND_FNS } from './storage.wgsl.js';

export const CAST_WG = 256;

export function castWGSL(kind: 'f16x2' | 'bf16x2'): string {
  const conv = kind === 'bf16x2' ? 'f32_to_bf16_bits' : 'f32_to_f16_bits';
  const body = `  if (2u * t >= n) { return; }
  let lo = ${conv}(src[2u * t]);
  var hi = 0u;
  if (2u * t + 1u < n) { hi = ${conv}(src[2u * t + 1u]); }
  dst[t] = lo | (hi << 16u);`;
  return `${PARAMS_WGSL}${ROUND_FNS}
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<u32>;
@compute @workgroup_size(${CAST_WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
  let t = gid.x + gid.y * nw.x * ${CAST_WG}u;
  let n = p.B;
${body}
}
`;
}
