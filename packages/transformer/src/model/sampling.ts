/**
 * Drawing the next token from one row of logits (V) on the host: temperature, then top-k, then one
 * uniform draw from rng. Separate from the model, which only produces the logits.
 */
import type { Rng } from '@flashattn/core';

export interface SamplingOptions {
  /** > 0; 1 = the model's distribution. Default 1. */
  temperature?: number;
  /** Keep the k most likely tokens (0 = all). Default 40. */
  topK?: number;
}

export function checkSampling(o: SamplingOptions): { temperature: number; topK: number } {
  const temperature = o.temperature ?? 1;
  const topK = o.topK ?? 40;
  if (!(temperature > 0) || !Number.isFinite(temperature))
    throw new RangeError(`temperature must be a finite number > 0, got ${temperature}`);
  if (!Number.isInteger(topK) || topK < 0)
    throw new RangeError(`topK must be an integer >= 0, got ${topK}`);
  return { temperature, topK };
}

/** A token id drawn from softmax(logits / temperature) restricted to the top-k logits. */
export function sampleToken(logits: ArrayLike<number>, o: SamplingOptions, rng: Rng): number {
  const { temperature, topK } = checkSampling(o);
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
  let r = rng.uniform() * sum;
  for (let j = 0; j < V; j++) {
    r -= probs[j]!;
    if (r <= 0 && probs[j]! > 0) return j;
  }
  return V - 1;
}
