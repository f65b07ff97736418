import { kvSplitHeuristic } from '@flashattn/core';
import { describe, expect, it } from 'vitest';
import { cudaKvSplits, KV_MIN_KEYS_PER_SPLIT } from './inference-kv-splits.js';

// The H100's 132 SMs x 4 resident decode CTAs, and the kernel's most splits.
const caps = { parallelism: 132 * 4, maxSplits: 128 };
const decode = (batch: number, seqlenK: number) => ({
  batch,
  seqlenQ: 1,
  nheadsQ: 32,
  nheadsK: 8,
  seqlenK,
});

describe('cudaKvSplits: the decode kernel split count', () => {
  it('keeps at least KV_MIN_KEYS_PER_SPLIT keys in every split', () => {
    for (const B of [1, 2, 4, 16])
      for (const L of [1, 100, 127, 128, 300, 1024, 4096, 8192, 131072]) {
        const s = cudaKvSplits(decode(B, L), caps);
        expect(s).toBeGreaterThanOrEqual(1);
        expect(s).toBeLessThanOrEqual(caps.maxSplits);
        if (s > 1) expect(Math.floor(L / s)).toBeGreaterThanOrEqual(KV_MIN_KEYS_PER_SPLIT);
      }
  });

  it('is core heuristic where that already leaves enough keys, and the cap where it does not', () => {
    // B = 1, 8 kv heads = 8 work units on 528 CTAs: the first count within 85% of the best wave efficiency
    // 64 * 8 / 528 is 55 (55 * 8 / 528 = 0.833 >= 0.85 * 0.970); 4096 keys / 128 allow 32
    expect(kvSplitHeuristic(decode(1, 4096), caps)).toBe(55);
    expect(cudaKvSplits(decode(1, 4096), caps)).toBe(4096 / KV_MIN_KEYS_PER_SPLIT);
    // long sequences: the cap does not bind
    expect(cudaKvSplits(decode(1, 131072), caps)).toBe(kvSplitHeuristic(decode(1, 131072), caps));
    // 64 x 8 = 512 units fill 80% of 528: no split
    expect(cudaKvSplits(decode(64, 32768), caps)).toBe(1);
    // fewer keys than one split's minimum: one split
    expect(cudaKvSplits(decode(1, KV_MIN_KEYS_PER_SPLIT - 1), caps)).toBe(1);
  });
});
