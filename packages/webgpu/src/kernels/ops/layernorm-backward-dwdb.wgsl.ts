/**
 * LayerNorm backward, the parameter gradients: per column c,
 *   dw (C) += sum_i dout[i, c] xhat[i, c],  db (C) += sum_i dout[i, c],  xhat = (inp - mean[i]) rstd[i],
 * summed over the rows in a fixed order (column-sums.ts): deterministic, unlike atomics.
 */
import type { ProgramInfo } from '../../program.js';
import type { BoundOperands } from '../../ops/operands.js';
import { columnSumsMain } from './column-sums.js';
import { opProgram } from './op-program.js';

/** Operands: dw, db (written), dout, inp, mean, rstd. Dispatch: columnGroups(C) workgroups. */
export function layernormBackwardDwdbProgram(
  bound: BoundOperands,
  dispatch: readonly [number, number, number],
): ProgramInfo {
  return opProgram({
    name: 'layernorm-backward-dwdb',
    bound,
    uniforms: [
      { name: 'rows', type: 'u32', comment: 'N' },
      { name: 'cols', type: 'u32', comment: 'C' },
    ],
    dispatch,
    body: columnSumsMain(
      2,
      (q) => (q === 0 ? 'g * ((ld_inp(r * p.cols + j) - ld_mean(r)) * ld_rstd(r))' : 'g'),
      (q) =>
        q === 0 ? 'st_dw(j, ld_dw(j) + part[0][lid]);' : 'st_db(j, ld_db(j) + part[1][lid]);',
      '      let g = ld_dout(r * p.cols + j);\n',
    ),
  });
}
