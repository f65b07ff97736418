/** Autoregressive sampling with temperature and top-k (no KV cache yet: each step reruns the window). */
import type { Rng } from '@flashattn/core';
import type { GPT2 } from './gpt2.js';
import { checkSampling, sampleToken, type SamplingOptions } from './sampling.js';

export interface SampleOptions extends SamplingOptions {
  maxNewTokens: number;
  /** Context window (default config.maxSeqLen). */
  window?: number;
  rng: Rng;
}

export async function generate<Buf>(
  model: GPT2<Buf>,
  prompt: readonly number[],
  o: SampleOptions,
): Promise<number[]> {
  const window = Math.min(o.window ?? model.config.maxSeqLen, model.config.maxSeqLen);
  checkSampling(o);
  if (prompt.length === 0) throw new RangeError('prompt must hold at least one token');
  const seq = [...prompt];
  for (let s = 0; s < o.maxNewTokens; s++) {
    const ctx = seq.slice(-window);
    // Pad to a multiple of 16 so activation buffers are reused; causal masking makes padding inert.
    const T = Math.min(window, Math.ceil(ctx.length / 16) * 16);
    const tokens = new Int32Array(T);
    tokens.set(ctx);
    await model.forward(tokens, null, 1, T);
    seq.push(sampleToken(await model.logitsAt(0, ctx.length - 1), o, o.rng));
  }
  return seq.slice(prompt.length);
}
