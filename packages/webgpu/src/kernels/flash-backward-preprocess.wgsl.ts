/**
 * Backward preprocess (FA2 Algorithm 2, line 4): D_i = rowsum(dO_i * O_i), one invocation per row.
 * Bindings: dout, out (B, Nq, Hq, D) in storage dtype; delta (B, Hq, Nq) f32.
 */
import { PARAMS_WGSL } from './params.wgsl.js';
import { arrayType, enableFor, loadFn, type StorageKind } from './storage.wgsl.js';

export const PREPROCESS_WG = 64;

export function flashBackwardPreprocessWGSL(headDim: number, kind: StorageKind): string {
  const arr = arrayType(kind);
  return `${enableFor(kind)}
${PARAMS_WGSL}
@group(0) @binding(1) var<storage, read> dout: ${arr};            // (B, Nq, Hq, D)
@group(0) @binding(2) var<storage, read> out: ${arr};             // (B, Nq, Hq, D)
@group(0) @binding(3) var<storage, read_write> delta: array<f32>; // (B, Hq, Nq)
${loadFn('dout', kind)}${loadFn('out', kind)}
@compute @workgroup_size(${PREPROCESS_WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x;
  let h = gid.y;
  let b = gid.z;
  if (i >= p.Nq) { return; }
  let base = ((b * p.Nq + i) * p.Hq + h) * ${headDim}u;
  var acc = 0.0;
  for (var d = 0u; d < ${headDim}u; d++) { acc = fma(ld_dout(base + d), ld_out(base + d), acc); }
  delta[(b * p.Hq + h) * p.Nq + i] = acc;
}
`;
}
