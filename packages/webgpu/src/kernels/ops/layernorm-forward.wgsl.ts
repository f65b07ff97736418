/**
 * LayerNorm forward, one workgroup per row (llm.c's layernorm_forward):
 *   mean (N) = sum_c inp / C;  rstd (N) = 1 / sqrt(sum_c (inp - mean)^2 / C + 1e-5)  (two passes: no
 *   cancellation of E[x^2] - mean^2 for rows far from zero);  out (N, C) = (inp - mean) rstd w + b.
 * Sums: each invocation strides over c, then a fixed-order tree (deterministic).
 */
import type { ProgramInfo } from '../../program.js';
import type { BoundOperands } from '../../ops/operands.js';
import { LINEAR_WG, MAIN_ARGS, OPS_WG, opProgram, reduceFn } from './op-program.js';

/** Operands: out, mean, rstd (written), inp, w, b. Dispatch: one workgroup per row (a 2-D grid). */
export function layernormForwardProgram(
  bound: BoundOperands,
  dispatch: readonly [number, number, number],
): ProgramInfo {
  return opProgram({
    name: 'layernorm-forward',
    bound,
    uniforms: [
      { name: 'N', type: 'u32' },
      { name: 'C', type: 'u32' },
    ],
    dispatch,
    body: `var<workgroup> red: array<f32, ${OPS_WG}>;
${reduceFn('sum_wg', (a, b) => `${a} + ${b}`)}
@compute @workgroup_size(${OPS_WG})
fn main(${MAIN_ARGS}) {
  ${LINEAR_WG}
  if (wgi >= p.N) { return; } // uniform per workgroup: the barriers below stay uniform
  let row = wgi * p.C;
  var s = 0.0;
  for (var c = lid; c < p.C; c += ${OPS_WG}u) { s += ld_inp(row + c); }
  let mean = sum_wg(s, lid) / f32(p.C);
  var q = 0.0;
  for (var c = lid; c < p.C; c += ${OPS_WG}u) { let d = ld_inp(row + c) - mean; q += d * d; }
  let rstd = 1.0 / sqrt(sum_wg(q, lid) / f32(p.C) + 1e-5);
  for (var c = lid; c < p.C; c += ${OPS_WG}u) {
    st_out(row + c, (ld_inp(row + c) - mean) * rstd * ld_w(c) + ld_b(c));
  }
  if (lid == 0u) { st_mean(wgi, mean); st_rstd(wgi, rstd); }
}
`,
  });
}
