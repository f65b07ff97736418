// Generation with the KV cache (GPT2.forwardCached + generate): the cached forward computes the same
// logits as the full forward (float64 model on the CPU ops: two evaluations of the same function in
// float64, 1e-9 relative to the logits' scale), and greedy generation with the cache equals greedy
// generation without it token for token, including across the window (re-prefill).
import { CpuOps } from '@flashattn/cpu';
import { createReferenceOps, createRng, freshSeed } from '@flashattn/core';
import { afterAll, describe, expect, it } from 'vitest';
import type { GPT2Config } from '../config.js';
import { generate } from './generate.js';
import { GPT2 } from './gpt2.js';

const config: GPT2Config = { vocabSize: 50, maxSeqLen: 24, nLayer: 2, nHead: 4, nEmbd: 32 };

describe('GPT-2 with a KV cache', () => {
  const ops = new CpuOps({ threads: 2 });
  afterAll(() => ops.dispose());
  const seed = freshSeed();

  it(`forwardCached in chunks gives forward()'s logits (float64, seed=${seed})`, async () => {
    const model = new GPT2({ config, ops, paramDType: 'float64', seed });
    const rng = createRng(seed);
    const B = 2;
    const T = 19;
    const tokens = Int32Array.from({ length: B * T }, () => rng.int(config.vocabSize));
    await model.forward(tokens, null, B, T);
    const full = (await ops.download(model.logits)) as Float64Array; // (B*T, V)
    const V = config.vocabSize;
    const cache = model.createCache(B);
    let scale = 0;
    let err = 0;
    for (const [t0, n] of [
      [0, 7],
      [7, 1],
      [8, 1],
      [9, 6],
      [15, 4],
    ] as const) {
      const chunk = new Int32Array(B * n);
      for (let b = 0; b < B; b++) chunk.set(tokens.subarray(b * T + t0, b * T + t0 + n), b * n);
      await model.forwardCached(chunk, B, n, cache);
      const got = (await ops.download(model.logits)) as Float64Array; // (B*n, V)
      for (let b = 0; b < B; b++)
        for (let t = 0; t < n; t++)
          for (let j = 0; j < V; j++) {
            const want = full[(b * T + t0 + t) * V + j]!;
            scale = Math.max(scale, Math.abs(want));
            err = Math.max(err, Math.abs(got[(b * n + t) * V + j]! - want));
          }
    }
    expect(cache.length).toBe(T);
    expect(scale).toBeGreaterThan(0);
    expect(err).toBeLessThan(1e-9 * scale);
    await expect(model.forwardCached(tokens.subarray(0, B * 6), B, 6, cache)).rejects.toThrow(
      /capacity/,
    );
  });

  for (const [what, promptLen, newTokens, window] of [
    ['inside the window', 9, 12, 24],
    ['across the window (re-prefill)', 10, 14, 16],
  ] as const) {
    it(`greedy generation with the cache equals greedy without it, ${what} (float32, seed=${seed})`, async () => {
      const model = new GPT2({ config, ops, seed: seed ^ promptLen });
      const rng = createRng(seed);
      const prompt = Array.from({ length: promptLen }, () => rng.int(config.vocabSize));
      const greedy = { maxNewTokens: newTokens, topK: 1, window };
      const streamed: number[] = [];
      const withCache = await generate(model, prompt, {
        ...greedy,
        rng: createRng(1),
        useCache: true,
        onToken: (t) => void streamed.push(t),
      });
      const without = await generate(model, prompt, {
        ...greedy,
        rng: createRng(1),
        useCache: false,
      });
      expect(withCache).toHaveLength(newTokens);
      expect(withCache).toEqual(without);
      expect(streamed).toEqual(withCache);
    });
  }

  it(`on another backend (core's float64 reference ops): the cached forward gives forward()'s logits (seed=${seed})`, async () => {
    const ref = createReferenceOps();
    const small = { vocabSize: 16, maxSeqLen: 8, nLayer: 1, nHead: 2, nEmbd: 8 };
    const model = new GPT2({ config: small, ops: ref, paramDType: 'float64', seed });
    const rng = createRng(seed);
    const tokens = Int32Array.from({ length: 7 }, () => rng.int(small.vocabSize));
    await model.forward(tokens, null, 1, 7);
    const full = (await ref.download(model.logits)) as Float64Array; // (7, V)
    const cache = model.createCache(1);
    await model.forwardCached(tokens.subarray(0, 4), 1, 4, cache);
    const head = (await ref.download(model.logits)) as Float64Array; // (4, V)
    let err = 0;
    let scale = 0;
    head.forEach(
      (x, i) => (
        (err = Math.max(err, Math.abs(x - full[i]!))),
        (scale = Math.max(scale, Math.abs(full[i]!)))
      ),
    );
    for (let t = 4; t < 7; t++) {
      await model.forwardCached(tokens.subarray(t, t + 1), 1, 1, cache);
      const row = (await ref.download(model.logits)) as Float64Array; // (1, V)
      row.forEach((x, j) => (err = Math.max(err, Math.abs(x - full[t * small.vocabSize + j]!))));
    }
    expect(scale).toBeGreaterThan(0);
    expect(err).toBeLessThan(1e-9 * scale);
    ref.dispose();
  });
});
