/**
 * Drawing the next token from one row of logits (V) on the host: temperature, then top-k, then top-p
 * (nucleus), then one uniform draw from rng. Separate from the model, which only produces the logits.
 */
import type { Rng } from '@flashattn/core';

export interface SamplingOptions {
  /** > 0; 1 = the model's distribution. Default 1. */
  temperature?: number;
  /** Keep the k most likely tokens (0 = all). Default 40. */
  topK?: number;
  /**
   * Nucleus sampling: keep the smallest set of most likely tokens (after temperature and top-k) whose
   * probability reaches topP, in (0, 1]. Default 1 (all).
   */
  topP?: number;
}

export function checkSampling(o: SamplingOptions): {
  temperature: number;
  topK: number;
  topP: number;
} {
  const temperature = o.temperature ?? 1;
  const topK = o.topK ?? 40;
  const topP = o.topP ?? 1;
  if (!(temperature > 0) || !Number.isFinite(temperature))
    throw new RangeError(`temperature must be a finite number > 0, got ${temperature}`);
  if (!Number.isInteger(topK) || topK < 0)
    throw new RangeError(`topK must be an integer >= 0, got ${topK}`);
  if (!(topP > 0 && topP <= 1)) throw new RangeError(`topP must be in (0, 1], got ${topP}`);
  return { temperature, topK, topP };
}

/**
 * The distribution sampleToken draws from (unnormalised, float64): softmax(logits / temperature)
 * restricted to the top-k logits, then to the top-p nucleus (ties broken by the lower token id).
 */
export function samplingWeights(logits: ArrayLike<number>, o: SamplingOptions): Float64Array {
  const { temperature, topK, topP } = checkSampling(o);
  const V = logits.length;
  let threshold = -Infinity;
  if (topK > 0 && topK < V) threshold = Float64Array.from(logits).sort()[V - topK]!;
  let maxv = -Infinity;
  for (let j = 0; j < V; j++) if (logits[j]! > maxv) maxv = logits[j]!;
  const probs = new Float64Array(V);
  let sum = 0;
  for (let j = 0; j < V; j++) {
    const p = logits[j]! >= threshold ? Math.exp((logits[j]! - maxv) / temperature) : 0;
    probs[j] = p;
    sum += p;
  }
  if (topP < 1) {
    // Nucleus: most likely first; keep tokens until their mass reaches topP of the total.
    const order = Array.from({ length: V }, (_, j) => j).sort(
      (a, b) => probs[b]! - probs[a]! || a - b,
    );
    let mass = 0;
    let r = 0;
    for (; r < V && mass < topP * sum; r++) mass += probs[order[r]!]!;
    for (; r < V; r++) probs[order[r]!] = 0;
  }
  return probs;
}

/** A token id drawn from samplingWeights(logits, o). */
export function sampleToken(logits: ArrayLike<number>, o: SamplingOptions, rng: Rng): number {
  const probs = samplingWeights(logits, o);
  const V = probs.length;
  let sum = 0;
  for (let j = 0; j < V; j++) sum += probs[j]!;
  let r = rng.uniform() * sum;
  for (let j = 0; j < V; j++) {
    r -= probs[j]!;
    if (r <= 0 && probs[j]! > 0) return j;
  }
  // rounding left r > 0: the last token with weight
  for (let j = V - 1; j >= 0; j--) if (probs[j]! > 0) return j;
  return V - 1;
}
