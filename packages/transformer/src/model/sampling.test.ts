// Sampling: temperature, top-k and top-p restrict the distribution as documented; the expected sets
// are computed here from the logits by hand, not by the code under test.
import { createRng, freshSeed } from '@flashattn/core';
import { describe, expect, it } from 'vitest';
import { checkSampling, sampleToken, samplingWeights } from './sampling.js';

describe('top-p (nucleus) sampling', () => {
  // probabilities at temperature 1: softmax of log([0.5, 0.25, 0.15, 0.1]) = [0.5, 0.25, 0.15, 0.1]
  const logits = [0.5, 0.25, 0.15, 0.1].map(Math.log);
  const seed = freshSeed();

  it(`draws only from the smallest set reaching topP (seed=${seed})`, () => {
    const rng = createRng(seed);
    for (const [topP, allowed] of [
      [0.5, [0]],
      [0.6, [0, 1]],
      [0.75, [0, 1]],
      [0.76, [0, 1, 2]],
      [1, [0, 1, 2, 3]],
    ] as const) {
      const seen = new Set<number>();
      for (let i = 0; i < 400; i++) seen.add(sampleToken(logits, { topP, topK: 0 }, rng));
      expect([...seen].sort()).toEqual([...allowed]);
    }
  });

  it('keeps the relative weights inside the nucleus, after top-k and temperature', () => {
    const w = samplingWeights(logits, { topP: 0.76, topK: 0 });
    expect(w[3]).toBe(0);
    expect(w[1]! / w[0]!).toBeCloseTo(0.5, 12);
    expect(w[2]! / w[0]!).toBeCloseTo(0.3, 12);
    // top-k 2 first: the nucleus of [0.5, 0.25] renormalised (2/3, 1/3) at topP 0.6 is token 0 alone
    const k2 = samplingWeights(logits, { topK: 2, topP: 0.6 });
    expect(Array.from(k2, (x) => x > 0)).toEqual([true, false, false, false]);
    // temperature 2 flattens: probabilities ~ sqrt(p) = [.707, .5, .387, .316] / 1.91; 0.37 + 0.26 < 0.7
    const t2 = samplingWeights(logits, { temperature: 2, topK: 0, topP: 0.7 });
    expect(Array.from(t2, (x) => x > 0)).toEqual([true, true, true, false]);
  });

  it('rejects topP outside (0, 1]', () => {
    expect(() => checkSampling({ topP: 0 })).toThrow(/topP/);
    expect(() => checkSampling({ topP: 1.5 })).toThrow(/topP/);
    expect(() => checkSampling({ topP: NaN })).toThrow(/topP/);
  });
});
