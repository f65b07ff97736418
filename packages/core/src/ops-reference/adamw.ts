/** Float64 AdamW step (bias-corrected, decoupled weight decay; the semantics of `Ops.adamw`). */
import type { AdamWStep } from '../contracts/ops.js';

/**
 * m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
 * p -= lr (mhat / (sqrt(vhat) + eps) + wd p), mhat = m / (1 - b1^t), vhat = v / (1 - b2^t).
 */
export function adamwRef(
  params: Float64Array,
  grads: ArrayLike<number>,
  m: Float64Array,
  v: Float64Array,
  h: AdamWStep,
): void {
  const c1 = 1 - h.beta1 ** h.t;
  const c2 = 1 - h.beta2 ** h.t;
  for (let i = 0; i < params.length; i++) {
    const g = grads[i]!;
    const mi = h.beta1 * m[i]! + (1 - h.beta1) * g;
    const vi = h.beta2 * v[i]! + (1 - h.beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    const p = params[i]!;
    params[i] = p - h.lr * (mi / c1 / (Math.sqrt(vi / c2) + h.eps) + h.weightDecay * p);
  }
}
