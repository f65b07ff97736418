/**
 * dbias (N) += column sums of dout (M, N), in a fixed order (column-sums.ts): deterministic. Chunked
 * (M > CHUNK_ROWS): this pass writes partials (chunks, 1, N) and column-partials-add adds them up.
 */
import type { ProgramInfo } from '../../program.js';
import type { BoundOperands } from '../../ops/operands.js';
import { COLUMN_UNIFORMS, columnStore, columnSumsMain } from './column-sums.js';
import { opProgram } from './op-program.js';

/** Operands: dbias (written) or partials (written, chunked), dout. Dispatch: columnDispatch(M, N). */
export function biasBackwardProgram(
  bound: BoundOperands,
  chunked: boolean,
  dispatch: readonly [number, number, number],
): ProgramInfo {
  return opProgram({
    name: 'bias-backward',
    variant: chunked ? 'partials' : 'direct',
    bound,
    uniforms: COLUMN_UNIFORMS,
    dispatch,
    body: columnSumsMain(
      1,
      () => 'ld_dout(r * p.cols + j)',
      (q) => columnStore(1, q, chunked ? null : 'st_dbias(j, ld_dbias(j) + part[0][lid]);'),
    ),
  });
}
