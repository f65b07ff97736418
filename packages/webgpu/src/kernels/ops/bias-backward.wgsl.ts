/** dbias (N) += column sums of dout (M, N), in a fixed order (column-sums.ts): deterministic. */
import type { ProgramInfo } from '../../program.js';
import type { BoundOperands } from '../../ops/operands.js';
import { columnSumsMain } from './column-sums.js';
import { opProgram } from './op-program.js';

/** Operands: dbias (written), dout. Dispatch: columnGroups(N) workgroups. */
export function biasBackwardProgram(
  bound: BoundOperands,
  dispatch: readonly [number, number, number],
): ProgramInfo {
  return opProgram({
    name: 'bias-backward',
    bound,
    uniforms: [
      { name: 'rows', type: 'u32', comment: 'M' },
      { name: 'cols', type: 'u32', comment: 'N' },
    ],
    dispatch,
    body: columnSumsMain(
      1,
      () => 'ld_dout(r * p.cols + j)',
      () => 'st_dbias(j, ld_dbias(j) + part[0][lid]);',
    ),
  });
}
