/**
 * The ProgramInfo of an op kernel: its own uniforms (sizes, scalars) followed by the operands' offsets,
 * one binding per distinct GPUBuffer, and the operand accessors (ops/operands.ts) written before the body.
 */
import type { ProgramInfo, UniformField } from '../../program.js';
import type { BoundOperands } from '../../ops/operands.js';

/** Workgroup size of the elementwise and per-row kernels. */
export const OPS_WG = 256;

export function opProgram(o: {
  name: string;
  /** What else changes the WGSL (tiles, flags); the sharing pattern is added. */
  variant?: string;
  bound: BoundOperands;
  uniforms: readonly UniformField[];
  body: string;
  dispatch: readonly [number, number, number];
}): ProgramInfo {
  return {
    name: o.name,
    cacheKey: `${o.variant ?? ''}|${o.bound.key}`,
    uniforms: [...o.uniforms, ...o.bound.uniforms],
    bindings: o.bound.bindings,
    dispatch: o.dispatch,
    body: () => `${o.bound.accessors}${o.body}`,
  };
}

/** `let <name> = linear workgroup index` for a 2-D grid (operands.ts grid()). */
export const LINEAR_WG = 'let wgi = wg.x + wg.y * nw.x;';

/** The builtins every op kernel's main takes. */
export const MAIN_ARGS =
  '@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>, @builtin(local_invocation_index) lid: u32';

/**
 * Workgroup tree reduction of `v` over OPS_WG invocations into red[0] (a fixed order: deterministic).
 * Needs `var<workgroup> red: array<f32, OPS_WG>;`. Every invocation must call it (it has barriers).
 */
export function reduceFn(name: string, op: (a: string, b: string) => string): string {
  return `fn ${name}(v: f32, lid: u32) -> f32 {
  red[lid] = v;
  workgroupBarrier();
  for (var s = ${OPS_WG / 2}u; s > 0u; s >>= 1u) {
    if (lid < s) { red[lid] = ${op('red[lid]', 'red[lid + s]')}; }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}
`;
}

/** A quiet NaN at run time (a constant NaN is a WGSL compile error). */
export const NAN_FN =
  'fn nan_f32() -> f32 { var bits = 0x7fc00000u; return bitcast<f32>(bits); }\n';
