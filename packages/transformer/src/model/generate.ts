/**
 * Autoregressive sampling with temperature, top-k and top-p. On a backend that implements core's
 * KV-cache contract it prefills the prompt into a cache and then runs one token per step
 * (GPT2.forwardCached); otherwise (or with useCache: false) each step reruns the whole window.
 * Both see the same context: the last `window` tokens. When the cache is full the next step
 * re-prefills the last `window` tokens (GPT-2's positions are absolute, so the cache cannot slide).
 */
import type { Rng } from '@flashattn/core';
import type { GPT2 } from './gpt2.js';
import { checkSampling, sampleToken, type SamplingOptions } from './sampling.js';

export interface SampleOptions extends SamplingOptions {
  maxNewTokens: number;
  /** Context window (default config.maxSeqLen). */
  window?: number;
  rng: Rng;
  /** Use a KV cache (default: when the backend implements the KV-cache contract). */
  useCache?: boolean;
  /** Called with each new token as soon as it is drawn (streaming). */
  onToken?: (token: number) => void | Promise<void>;
}

export async function generate<Buf>(
  model: GPT2<Buf>,
  prompt: readonly number[],
  o: SampleOptions,
): Promise<number[]> {
  const window = Math.min(o.window ?? model.config.maxSeqLen, model.config.maxSeqLen);
  checkSampling(o);
  if (prompt.length === 0) throw new RangeError('prompt must hold at least one token');
  if (!Number.isInteger(o.maxNewTokens) || o.maxNewTokens < 0)
    throw new RangeError(`maxNewTokens must be an integer >= 0, got ${o.maxNewTokens}`);
  if (o.useCache && !model.supportsKvCache)
    throw new RangeError(`useCache: ${model.ops.name} does not implement KV-cache attention`);
  const seq = [...prompt];
  const emit = async (t: number): Promise<void> => {
    seq.push(t);
    await o.onToken?.(t);
  };
  if (o.useCache ?? model.supportsKvCache) {
    const cache = model.createCache(1, window);
    try {
      const prefill = async (): Promise<number> => {
        const ctx = seq.slice(-window);
        cache.reset();
        await model.forwardCached(Int32Array.from(ctx), 1, ctx.length, cache);
        return ctx.length - 1; // the row of the last token's logits
      };
      let row = await prefill();
      for (let s = 0; s < o.maxNewTokens; s++) {
        await emit(sampleToken(await model.logitsAt(0, row), o, o.rng));
        if (s + 1 === o.maxNewTokens) break;
        if (cache.length < window) {
          await model.forwardCached(Int32Array.of(seq[seq.length - 1]!), 1, 1, cache);
          row = 0;
        } else {
          row = await prefill();
        }
      }
    } finally {
      cache.free();
    }
    return seq.slice(prompt.length);
  }
  for (let s = 0; s < o.maxNewTokens; s++) {
    const ctx = seq.slice(-window);
    // Pad to a multiple of 16 so activation buffers are reused; causal masking makes padding inert.
    const T = Math.min(window, Math.ceil(ctx.length / 16) * 16);
    const tokens = new Int32Array(T);
    tokens.set(ctx);
    await model.forward(tokens, null, 1, T);
    await emit(sampleToken(await model.logitsAt(0, ctx.length - 1), o, o.rng));
  }
  return seq.slice(prompt.length);
}
