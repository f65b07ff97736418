/** out (n) = a + b: the residual connection. out may be a or b (each invocation owns its element). */
import type { ProgramInfo } from '../../program.js';
import type { BoundOperands } from '../../ops/operands.js';
import { elementwiseMain } from './elementwise.js';
import { opProgram } from './op-program.js';

/** Operands: out (written), a, b. */
export function addProgram(
  bound: BoundOperands,
  dispatch: readonly [number, number, number],
): ProgramInfo {
  return opProgram({
    name: 'add',
    bound,
    uniforms: [{ name: 'n', type: 'u32' }],
    dispatch,
    body: elementwiseMain('  st_out(i, ld_a(i) + ld_b(i));'),
  });
}
