/** Float64 fused softmax cross-entropy (the semantics of `Ops.softmaxCrossEntropy`). */

/**
 * losses (N) = lse(logits_i) - logits_i[t_i]; dlogits (N, V) = (softmax(logits_i) - onehot(t_i)) * dlossScale
 * when given. Targets < 0 are ignored: loss 0 and a zero gradient row. dlogits may be the logits array.
 * Rows are Vp apart (default V); padding columns [V, Vp) are not read and dlogits is 0 there.
 */
export function softmaxCrossEntropyRef(
  losses: Float64Array, // (N)
  dlogits: Float64Array | null, // (N, Vp)
  logits: ArrayLike<number>, // (N, Vp)
  targets: ArrayLike<number>, // (N) int
  N: number,
  V: number,
  dlossScale: number,
  Vp = V,
): void {
  for (let i = 0; i < N; i++) {
    const o = i * Vp;
    const t = targets[i]!;
    let m = -Infinity;
    for (let j = 0; j < V; j++) if (logits[o + j]! > m) m = logits[o + j]!;
    let l = 0;
    for (let j = 0; j < V; j++) l += Math.exp(logits[o + j]! - m);
    const lse = m + Math.log(l);
    losses[i] = t < 0 ? 0 : lse - logits[o + t]!;
    if (!dlogits) continue;
    for (let j = 0; j < V; j++) {
      dlogits[o + j] =
        t < 0 ? 0 : (Math.exp(logits[o + j]! - lse) - (j === t ? 1 : 0)) * dlossScale;
    }
    for (let j = V; j < Vp; j++) dlogits[o + j] = 0;
  }
}
