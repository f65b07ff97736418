/**
 * One fused AdamW step over n parameters (bias-corrected, decoupled weight decay), llm.c's adamw kernel:
 *   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
 *   p -= lr (mhat / (sqrt(vhat) + eps) + wd p),  mhat = m / c1, vhat = v / c2,
 * with c1 = 1 - b1^t, c2 = 1 - b2^t and omb1/omb2 = 1 - b1/b2 computed on the host in float64 and passed
 * rounded to f32 (1 - f32(0.9) in f32 is 2.4e-7 off 0.1 relatively: 4 roundings' worth, past the suite's rule).
 */
import type { ProgramInfo } from '../../program.js';
import type { BoundOperands } from '../../ops/operands.js';
import { elementwiseMain } from './elementwise.js';
import { opProgram } from './op-program.js';

/** Operands: params, m, v (written), grads. */
export function adamwProgram(
  bound: BoundOperands,
  dispatch: readonly [number, number, number],
): ProgramInfo {
  return opProgram({
    name: 'adamw',
    bound,
    uniforms: [
      { name: 'n', type: 'u32' },
      ...['lr', 'beta1', 'beta2', 'omb1', 'omb2', 'eps', 'wd', 'c1', 'c2'].map((name) => ({
        name,
        type: 'f32' as const,
      })),
    ],
    dispatch,
    body: elementwiseMain(`  let g = ld_grads(i);
  let m = p.beta1 * ld_m(i) + p.omb1 * g;
  let v = p.beta2 * ld_v(i) + p.omb2 * g * g;
  st_m(i, m);
  st_v(i, v);
  let q = (m / p.c1) / (sqrt(v / p.c2) + p.eps);
  let w = ld_params(i);
  st_params(i, w - p.lr * (q + p.wd * w));`),
  });
}
