/**
 * LayerNorm backward, the parameter gradients: per column c,
 *   dw (C) += sum_i dout[i, c] xhat[i, c],  db (C) += sum_i dout[i, c],  xhat = (inp - mean[i]) rstd[i],
 * summed over the rows in a fixed order (column-sums.ts): deterministic, unlike atomics. Chunked
 * (N > CHUNK_ROWS): this pass writes partials (chunks, 2, C) and column-partials-add adds them up.
 */
import type { ProgramInfo } from '../../program.js';
import type { BoundOperands } from '../../ops/operands.js';
import { COLUMN_UNIFORMS, columnStore, columnSumsMain } from './column-sums.js';
import { opProgram } from './op-program.js';

/** Operands: dw, db (written) or partials (written, chunked), dout, inp, mean, rstd. */
export function layernormBackwardDwdbProgram(
  bound: BoundOperands,
  chunked: boolean,
  dispatch: readonly [number, number, number],
): ProgramInfo {
  return opProgram({
    name: 'layernorm-backward-dwdb',
    variant: chunked ? 'partials' : 'direct',
    bound,
    uniforms: COLUMN_UNIFORMS,
    dispatch,
    body: columnSumsMain(
      2,
      (q) => (q === 0 ? 'g * ((ld_inp(r * p.cols + j) - ld_mean(r)) * ld_rstd(r))' : 'g'),
      (q) =>
        columnStore(
          2,
          q,
          chunked
            ? null
            : q === 0
              ? 'st_dw(j, ld_dw(j) + part[0][lid]);'
              : 'st_db(j, ld_db(j) + part[1][lid]);',
        ),
      '      let g = ld_dout(r * p.cols + j);\n',
    ),
  });
}
