/** Autoregressive sampling with temperature and top-k (no KV cache: each step reruns the window). */
import type { Rng } from '@flashattn/core';
import type { GPT2 } from './gpt2.js';

export interface SampleOptions {
  maxNewTokens: number;
  /** > 0; 1 = the model's distribution. Default 1. */
  temperature?: number;
  /** Keep the k most likely tokens (0 = all). Default 40. */
  topK?: number;
  /** Context window (default config.maxSeqLen). */
  window?: number;
  rng: Rng;
}

export async function generate(model: GPT2, prompt: readonly number[], o: SampleOptions): Promise<number[]> {
  const V = model.config.vocabSize;
  const window = Math.min(o.window ?? model.config.maxSeqLen, model.config.maxSeqLen);
  const temperature = o.temperature ?? 1;
  const topK = o.topK ?? 40;
  if (!(temperature > 0)) throw new RangeError(`temperature must be > 0, got ${temperature}`);
  if (prompt.length === 0) throw new RangeError('prompt must hold at least one token');
  const seq = [...prompt];
  const probs = new Float64Array(V);
  for (let s = 0; s < o.maxNewTokens; s++) {
    const ctx = seq.slice(-window);
    // Pad to a multiple of 16 so activation buffers are reused; causal masking makes padding inert.
    const T = Math.min(window, Math.ceil(ctx.length / 16) * 16);
    const tokens = new Int32Array(T);
    tokens.set(ctx);
    await model.forward(tokens, null, 1, T);
    const logits = model.logits.subarray((ctx.length - 1) * V, ctx.length * V);
    let threshold = -Infinity;
    if (topK > 0 && topK < V) threshold = kthLargest(logits, topK);
    let maxv = -Infinity;
    for (let j = 0; j < V; j++) if (logits[j]! > maxv) maxv = logits[j]!;
    let sum = 0;
    for (let j = 0; j < V; j++) {
      const p = logits[j]! >= threshold ? Math.exp((logits[j]! - maxv) / temperature) : 0;
      probs[j] = p;
      sum += p;
    }
    let r = o.rng.uniform() * sum;
    let next = V - 1;
    for (let j = 0; j < V; j++) {
      r -= probs[j]!;
      if (r <= 0 && probs[j]! > 0) {
        next = j;
        break;
      }
    }
    seq.push(next);
  }
  return seq.slice(prompt.length);
}

function kthLargest(x: ArrayLike<number>, k: number): number {
  const a = Float64Array.from(x as ArrayLike<number>).sort();
  return a[a.length - k]!;
}
