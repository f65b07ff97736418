/**
 * Standard-attention baseline, softmax backward in place: dS = P * (dP - D), elementwise over a
 * materialised (chunk, Nq, Nk) block. D = rowsum(dO * O) comes from the flash preprocess kernel,
 * laid out (B, Hq, Nq); the chunk covers heads [z0, z0 + chunk) of that flattened (B * Hq) axis.
 */
import { PARAMS_WGSL } from './params.wgsl.js';

export const SOFTMAX_BWD_WG = 256;

export function softmaxBackwardWGSL(): string {
  return `${PARAMS_WGSL}
@group(0) @binding(1) var<storage, read> P: array<f32>;          // (chunk, Nq, Nk)
@group(0) @binding(2) var<storage, read_write> dP: array<f32>;   // (chunk, Nq, Nk): dP in, dS out
@group(0) @binding(3) var<storage, read> delta: array<f32>;      // (B * Hq, Nq), offset by the chunk
@compute @workgroup_size(${SOFTMAX_BWD_WG})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = wg.x;
  let z = wg.y;
  let row = (z * p.Nq + i) * p.Nk;
  let Di = delta[(p.B + z) * p.Nq + i];   // p.B carries the chunk's first head index z0
  for (var j = lid; j < p.Nk; j += ${SOFTMAX_BWD_WG}u) {
    dP[row + j] = P[row + j] * (dP[row + j] - Di);
  }
}
`;
}
