/** x (n) *= s (gradient clipping). */
import type { ProgramInfo } from '../../program.js';
import type { BoundOperands } from '../../ops/operands.js';
import { elementwiseMain } from './elementwise.js';
import { opProgram } from './op-program.js';

/** Operands: x (written). */
export function scaleProgram(
  bound: BoundOperands,
  dispatch: readonly [number, number, number],
): ProgramInfo {
  return opProgram({
    name: 'scale',
    bound,
    uniforms: [
      { name: 'n', type: 'u32' },
      { name: 's', type: 'f32' },
    ],
    dispatch,
    body: elementwiseMain('  st_x(i, ld_x(i) * p.s);'),
  });
}
