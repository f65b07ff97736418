/**
 * dinp (n) = GELU_tanh'(inp) * dout, overwriting dinp (which may be dout):
 *   GELU'(x) = 0.5 (1 + t) + 0.5 x (1 - t^2) sqrt(2/pi) (1 + 3 * 0.044715 x^2),  t = tanh(z).
 */
import type { ProgramInfo } from '../../program.js';
import type { BoundOperands } from '../../ops/operands.js';
import { elementwiseMain } from './elementwise.js';
import { GELU_WGSL } from './gelu-forward.wgsl.js';
import { opProgram } from './op-program.js';

/** Operands: dinp (written), inp, dout. */
export function geluBackwardProgram(
  bound: BoundOperands,
  dispatch: readonly [number, number, number],
): ProgramInfo {
  return opProgram({
    name: 'gelu-backward',
    bound,
    uniforms: [{ name: 'n', type: 'u32' }],
    dispatch,
    body: `${GELU_WGSL}${elementwiseMain(`  let x = ld_inp(i);
  let g = ld_dout(i);
  let t = gelu_parts(x); // (1 + tanh(z), sech^2(z))
  let local = 0.5 * t.x + 0.5 * x * t.y * GELU_SCALE * (1.0 + 3.0 * GELU_CUBIC * x * x);
  st_dinp(i, local * g);`)}`,
  });
}
