/**
 * out (n) = GELU_tanh(inp) = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), GPT-2's gelu_new.
 * out may be inp (in place: each invocation reads its element before writing it).
 *
 * 1 + tanh(z) and sech^2(z) come from e = exp(-2|z|) in (0, 1] (no overflow for any z):
 *   1 + tanh(z) = 2 / (1 + e) for z >= 0, 2 e / (1 + e) for z < 0;   sech^2(z) = 4 e / (1 + e)^2,
 * so both keep exp's relative accuracy: no cancellation in 1 + t for z << 0 or in 1 - t^2 for |z| >> 0.
 * Measured: with the builtin tanh and 1 - t^2, geluBackward was 3.3x the naive float32 error on
 * SwiftShader (std 3 inputs, 2026-12-07), past the suite's 2x rule.
 */
import type { ProgramInfo } from '../../program.js';
import type { BoundOperands } from '../../ops/operands.js';
import { elementwiseMain } from './elementwise.js';
import { opProgram } from './op-program.js';

export const GELU_WGSL = `const GELU_SCALE = 0.7978845608028654; // sqrt(2 / pi)
const GELU_CUBIC = 0.044715;
// (1 + tanh(z), sech^2(z)) with z = sqrt(2/pi) (x + 0.044715 x^3)
fn gelu_parts(x: f32) -> vec2<f32> {
  let z = GELU_SCALE * (x + GELU_CUBIC * x * x * x);
  let e = exp(-2.0 * abs(z));
  let r = 1.0 / (1.0 + e);
  return vec2<f32>(select(2.0 * e * r, 2.0 * r, z >= 0.0), 4.0 * e * r * r);
}
`;

/** Operands: out (written), inp. */
export function geluForwardProgram(
  bound: BoundOperands,
  dispatch: readonly [number, number, number],
): ProgramInfo {
  return opProgram({
    name: 'gelu-forward',
    bound,
    uniforms: [{ name: 'n', type: 'u32' }],
    dispatch,
    body: `${GELU_WGSL}${elementwiseMain(`  let x = ld_inp(i);
  st_out(i, 0.5 * x * gelu_parts(x).x);`)}`,
  });
}
