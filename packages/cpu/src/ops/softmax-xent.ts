/**
 * Fused softmax + cross-entropy (llm.c's fused classifier): one pass for the row max, one for the
 * normaliser, and the gradient (p - onehot) * scale written in place, so probabilities (N, V) are never
 * stored separately from the logits. Rows are Vp apart (the padded vocabulary; default V): the padding
 * columns [V, Vp) are not read, and dlogits is written 0 there.
 */
import type { FloatArray } from '@flashattn/core';

export function softmaxCrossEntropy(
  losses: FloatArray, // (N)
  dlogits: FloatArray | null, // (N, Vp); may alias logits
  logits: FloatArray, // (N, Vp)
  targets: Int32Array, // (N); < 0 = ignore
  N: number,
  V: number,
  dlossScale: number,
  Vp = V,
): number {
  let total = 0;
  for (let i = 0; i < N; i++) {
    const o = i * Vp;
    const t = targets[i]!;
    let maxv = -Infinity;
    for (let j = 0; j < V; j++) if (logits[o + j]! > maxv) maxv = logits[o + j]!;
    let sum = 0;
    for (let j = 0; j < V; j++) sum += Math.exp(logits[o + j]! - maxv);
    const lse = maxv + Math.log(sum);
    const loss = t < 0 ? 0 : lse - logits[o + t]!;
    losses[i] = loss;
    total += loss;
    if (dlogits !== null) {
      dlogits.fill(0, o + V, o + Vp);
      if (t < 0) {
        for (let j = 0; j < V; j++) dlogits[o + j] = 0;
        continue;
      }
      for (let j = 0; j < V; j++) dlogits[o + j] = Math.exp(logits[o + j]! - lse) * dlossScale;
      dlogits[o + t] -= dlossScale;
    }
  }
  return total;
}
