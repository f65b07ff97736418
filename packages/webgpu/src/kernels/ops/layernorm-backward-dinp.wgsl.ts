/**
 * LayerNorm backward, the input gradient, one workgroup per row (llm.c's layernorm_backward):
 *   xhat = (inp - mean) rstd, dnorm = dout w,
 *   dinp (N, C) += rstd (dnorm - mean_c(dnorm) - xhat mean_c(dnorm xhat)).
 * dw and db are layernorm-backward-dwdb's (a per-column pass: no atomics, a fixed summation order).
 */
import type { ProgramInfo } from '../../program.js';
import type { BoundOperands } from '../../ops/operands.js';
import { LINEAR_WG, MAIN_ARGS, OPS_WG, opProgram, reduceFn } from './op-program.js';

/** Operands: dinp (written), dout, inp, w, mean, rstd. Dispatch: one workgroup per row. */
export function layernormBackwardDinpProgram(
  bound: BoundOperands,
  dispatch: readonly [number, number, number],
): ProgramInfo {
  return opProgram({
    name: 'layernorm-backward-dinp',
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
  if (wgi >= p.N) { return; }
  let row = wgi * p.C;
  let mean = ld_mean(wgi);
  let rstd = ld_rstd(wgi);
  var a = 0.0; // sum dnorm
  var b = 0.0; // sum dnorm xhat
  for (var c = lid; c < p.C; c += ${OPS_WG}u) {
    let xhat = (ld_inp(row + c) - mean) * rstd;
    let dnorm = ld_dout(row + c) * ld_w(c);
    a += dnorm;
    b += dnorm * xhat;
  }
  let dnormMean = sum_wg(a, lid) / f32(p.C);
  let dnormXhatMean = sum_wg(b, lid) / f32(p.C);
  for (var c = lid; c < p.C; c += ${OPS_WG}u) {
    let xhat = (ld_inp(row + c) - mean) * rstd;
    let dnorm = ld_dout(row + c) * ld_w(c);
    st_dinp(row + c, ld_dinp(row + c) + rstd * (dnorm - dnormMean - xhat * dnormXhatMean));
  }
}
`,
  });
}
