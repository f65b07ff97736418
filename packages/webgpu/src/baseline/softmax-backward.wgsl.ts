/**
 * Standard-attention baseline, softmax backward in place: dS = P * (dP - D), elementwise over a
 * materialised (chunk, Nq, Nk) block. D = rowsum(dO * O) comes from the flash preprocess kernel,
 * laid out (B, Hq, Nq); the chunk covers heads [z0, z0 + chunk) of that flattened (B * Hq) axis.
 */
import type { ProgramInfo } from '../program.js';
import { ATTENTION_UNIFORMS, MASK_WGSL } from '../kernels/params.wgsl.js';

export const SOFTMAX_BWD_WG = 256;

/** As a program: dispatch (Nq, heads in the chunk, 1). Uniforms: the attention block, with B = the chunk's first head. */
export function softmaxBackwardProgram(dispatch: readonly [number, number, number]): ProgramInfo {
  return {
    name: 'std-softmax-backward',
    cacheKey: '',
    uniforms: ATTENTION_UNIFORMS,
    bindings: [
      { name: 'P', type: 'array<f32>', access: 'read', shape: '(chunk, Nq, Nk)' },
      {
        name: 'dP',
        type: 'array<f32>',
        access: 'read_write',
        shape: '(chunk, Nq, Nk): dP in, dS out',
      },
      {
        name: 'delta',
        type: 'array<f32>',
        access: 'read',
        shape: '(B * Hq, Nq), offset by the chunk',
      },
    ],
    dispatch,
    body: softmaxBackwardWGSL,
  };
}

export function softmaxBackwardWGSL(): string {
  return `${MASK_WGSL}
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
