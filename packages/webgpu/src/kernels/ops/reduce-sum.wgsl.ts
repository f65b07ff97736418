/**
 * sum(x) or sum(x^2) over n elements, in two passes with a fixed order (deterministic):
 *   pass 'partials': G workgroups; workgroup g, invocation l sums x[i] for i = (g * WG + l) + k G WG,
 *                    then a tree over its WG invocations -> partials[g];
 *   pass 'final':    one workgroup sums the G partials the same way -> result[0].
 * Summing in G * WG = up to 262144 interleaved streams and then trees keeps the rounding error
 * growth far below the sequential sum's (the suite's naive baseline).
 */
import type { ProgramInfo } from '../../program.js';
import type { BoundOperands } from '../../ops/operands.js';
import { MAIN_ARGS, OPS_WG, opProgram, reduceFn } from './op-program.js';

/** Most workgroups of the first pass. */
export const REDUCE_GROUPS = 1024;

/** Operands: out (written), x. Pass 'partials': dispatch (G, 1, 1); 'final': (1, 1, 1) over G values. */
export function reduceSumProgram(
  bound: BoundOperands,
  squares: boolean,
  groups: number,
): ProgramInfo {
  return opProgram({
    name: 'reduce-sum',
    variant: squares ? 'sq' : 'sum',
    bound,
    uniforms: [{ name: 'n', type: 'u32' }],
    dispatch: [groups, 1, 1],
    body: `var<workgroup> red: array<f32, ${OPS_WG}>;
${reduceFn('sum_wg', (a, b) => `${a} + ${b}`)}
@compute @workgroup_size(${OPS_WG})
fn main(${MAIN_ARGS}) {
  let stride = nw.x * ${OPS_WG}u;
  var s = 0.0;
  for (var i = wg.x * ${OPS_WG}u + lid; i < p.n; i += stride) {
    let x = ld_x(i);
    s += ${squares ? 'x * x' : 'x'};
  }
  let total = sum_wg(s, lid);
  if (lid == 0u) { st_out(wg.x, total); }
}
`,
  });
}
