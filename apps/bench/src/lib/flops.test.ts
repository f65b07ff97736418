import { describe, expect, it } from 'vitest';
import { backwardFlops, forwardFlops, gflopsPerSecond, tflopsPerSecond } from './flops.js';

describe('FLOP convention', () => {
  const p = { batch: 2, heads: 4, seqlenQ: 1024, seqlenK: 1024, headDim: 64 };
  it('is 4 B H Nq Nk D forward, halved when causal, 2.5x backward', () => {
    expect(forwardFlops(p)).toBe(4 * 2 * 4 * 1024 * 1024 * 64);
    expect(forwardFlops({ ...p, causal: true })).toBe(2 * 2 * 4 * 1024 * 1024 * 64);
    expect(backwardFlops(p)).toBe(10 * 2 * 4 * 1024 * 1024 * 64);
  });

  it('converts to rates', () => {
    expect(gflopsPerSecond(2e9, 1000)).toBe(2);
    expect(tflopsPerSecond(3e12, 500)).toBe(6);
  });
});
