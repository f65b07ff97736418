/**
 * Backward preprocess (FA2 Algorithm 2, line 4): D_i = rowsum(dO_i * O_i), one invocation per row.
 * Bindings: dout, o (B, Nq, Hq, D) strided views in storage dtype; delta (B, Hq, Nq) f32, contiguous.
 * Dispatch: (ceil(Nq / PREPROCESS_WG), Hq, B).
 */
import type { ProgramInfo } from '../program.js';
import { ATTENTION_UNIFORMS, viewBase, viewRow } from './params.wgsl.js';
import type { StorageKind } from './storage.wgsl.js';

export const PREPROCESS_WG = 64;

export function flashBackwardPreprocessProgram(
  headDim: number,
  kind: StorageKind,
  dispatch: readonly [number, number, number],
): ProgramInfo {
  return {
    name: 'flash-backward-preprocess',
    cacheKey: `d${headDim}-${kind}`,
    uniforms: ATTENTION_UNIFORMS,
    bindings: [
      { name: 'dout', type: kind, access: 'read', shape: '(B, Nq, Hq, D), strided' },
      { name: 'o', type: kind, access: 'read', shape: '(B, Nq, Hq, D), strided' },
      { name: 'delta', type: 'array<f32>', access: 'read_write', shape: '(B, Hq, Nq)' },
    ],
    dispatch,
    body: () => `
@compute @workgroup_size(${PREPROCESS_WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x;
  let h = gid.y;
  let b = gid.z;
  if (i >= p.Nq) { return; }
  let dBase = ${viewBase('dout', 'b', 'h')} + i * ${viewRow('dout')};
  let oBase = ${viewBase('o', 'b', 'h')} + i * ${viewRow('o')};
  var acc = 0.0;
  for (var d = 0u; d < ${headDim}u; d++) { acc = fma(ld_dout(dBase + d), ld_o(oBase + d), acc); }
  delta[(b * p.Hq + h) * p.Nq + i] = acc;
}
`,
  };
}
