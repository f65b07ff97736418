/** AdamW (Loshchilov & Hutter), bias-corrected, weight decay decoupled from the gradient. */
import type { AdamWStep, FloatArray } from '@flashattn/core';

export function adamwUpdate(
  params: FloatArray,
  grads: FloatArray,
  m: FloatArray,
  v: FloatArray,
  lo: number,
  hi: number,
  h: AdamWStep,
): void {
  const { lr, beta1, beta2, eps, weightDecay, t } = h;
  const c1 = 1 - Math.pow(beta1, t);
  const c2 = 1 - Math.pow(beta2, t);
  for (let i = lo; i < hi; i++) {
    const g = grads[i]!;
    const mi = beta1 * m[i]! + (1 - beta1) * g;
    const vi = beta2 * v[i]! + (1 - beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    const mhat = mi / c1;
    const vhat = vi / c2;
    params[i] -= lr * (mhat / (Math.sqrt(vhat) + eps) + weightDecay * params[i]!);
  }
}
