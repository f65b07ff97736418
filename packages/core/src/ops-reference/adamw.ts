/** Float64 AdamW step (bias-corrected, decoupled weight decay; the semantics of `Ops.adamw` and `adamwFrom`). */
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
  adamwUpdateRef(params, grads, m, v, h, [h.lr, 1 - h.beta1 ** h.t, 1 - h.beta2 ** h.t], 1);
}

/**
 * The update with its per-step scalars given: hyper = [lr, c1 = 1 - b1^t, c2 = 1 - b2^t] and the gradient
 * multiplied by gradScale (`adamwFrom`: the clip factor; `adamw`: 1).
 */
export function adamwUpdateRef(
  params: Float64Array,
  grads: ArrayLike<number>,
  m: Float64Array,
  v: Float64Array,
  h: { beta1: number; beta2: number; eps: number; weightDecay: number },
  hyper: ArrayLike<number>,
  gradScale: number,
): void {
  const lr = hyper[0]!;
  const c1 = hyper[1]!;
  const c2 = hyper[2]!;
  for (let i = 0; i < params.length; i++) {
    const g = grads[i]! * gradScale;
    const mi = h.beta1 * m[i]! + (1 - h.beta1) * g;
    const vi = h.beta2 * v[i]! + (1 - h.beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    const p = params[i]!;
    params[i] = p - lr * (mi / c1 / (Math.sqrt(vi / c2) + h.eps) + h.weightDecay * p);
  }
}
