import { describe, expect, it } from 'vitest';
import { hasFullyMaskedRows, keyRange, resolveOptions, visiblePairs } from './options.js';

const rows = (
  Nq: number,
  Nk: number,
  o: { windowLeft: number; windowRight: number },
): [number, number][] => Array.from({ length: Nq }, (_, i) => keyRange(i, Nq, Nk, o));

describe('resolveOptions', () => {
  it('fills defaults: non-causal, scale 1/sqrt(D), unbounded window', () => {
    expect(resolveOptions(undefined, 64)).toEqual({
      causal: false,
      softmaxScale: 0.125,
      windowLeft: -1,
      windowRight: -1,
    });
    expect(resolveOptions({ softmaxScale: 0.5, windowSize: [3, 4] }, 64)).toEqual({
      causal: false,
      softmaxScale: 0.5,
      windowLeft: 3,
      windowRight: 4,
    });
  });

  it('causal forces the right edge of the window to 0 (flash-attn)', () => {
    expect(resolveOptions({ causal: true }, 16)).toMatchObject({ windowLeft: -1, windowRight: 0 });
    expect(resolveOptions({ causal: true, windowSize: [5, 7] }, 16)).toMatchObject({
      windowLeft: 5,
      windowRight: 0,
    });
  });
});

describe('keyRange (the mask rule)', () => {
  it('is everything when unmasked', () => {
    expect(rows(3, 5, resolveOptions({}, 8))).toEqual([
      [0, 5],
      [0, 5],
      [0, 5],
    ]);
  });

  it('aligns causal bottom-right when Nq < Nk', () => {
    // Row i sits at key position i + Nk - Nq.
    expect(rows(2, 4, resolveOptions({ causal: true }, 8))).toEqual([
      [0, 3],
      [0, 4],
    ]);
  });

  it('leaves the first Nq - Nk rows fully masked when causal with Nq > Nk', () => {
    const o = resolveOptions({ causal: true }, 8);
    expect(rows(4, 2, o)).toEqual([
      [0, 0],
      [0, 0],
      [0, 1],
      [0, 2],
    ]);
    expect(hasFullyMaskedRows({ seqlenQ: 4, seqlenK: 2 }, o)).toBe(true);
    expect(hasFullyMaskedRows({ seqlenQ: 2, seqlenK: 4 }, o)).toBe(false);
  });

  it('applies sliding windows around the shifted diagonal', () => {
    expect(rows(4, 4, resolveOptions({ windowSize: [1, 1] }, 8))).toEqual([
      [0, 2],
      [0, 3],
      [1, 4],
      [2, 4],
    ]);
    // Window [0, 0]: each row sees only its diagonal key.
    expect(rows(3, 3, resolveOptions({ windowSize: [0, 0] }, 8))).toEqual([
      [0, 1],
      [1, 2],
      [2, 3],
    ]);
    // [2, -1]: unbounded to the right.
    expect(rows(2, 6, resolveOptions({ windowSize: [2, -1] }, 8))).toEqual([
      [2, 6],
      [3, 6],
    ]);
    // A window that misses every key of an early row yields an empty range (lo >= hi), never lo > hi.
    const [lo, hi] = keyRange(0, 6, 2, resolveOptions({ windowSize: [1, 0] }, 8));
    expect(lo).toBe(hi);
  });

  it('has bounds that never decrease with the row (the tiled kernels rely on it)', () => {
    for (const opts of [
      { causal: true },
      { windowSize: [3, 2] as const },
      { windowSize: [0, -1] as const },
      {},
    ]) {
      for (const [Nq, Nk] of [
        [7, 3],
        [3, 7],
        [9, 9],
      ]) {
        const r = rows(Nq, Nk, resolveOptions(opts, 8));
        for (let i = 1; i < Nq; i++) {
          expect(r[i]![0]).toBeGreaterThanOrEqual(r[i - 1]![0]);
          expect(r[i]![1]).toBeGreaterThanOrEqual(r[i - 1]![1]);
        }
      }
    }
  });

  it('counts visible pairs', () => {
    expect(visiblePairs({ seqlenQ: 4, seqlenK: 4 }, resolveOptions({ causal: true }, 8))).toBe(10);
    expect(visiblePairs({ seqlenQ: 3, seqlenK: 5 }, resolveOptions({}, 8))).toBe(15);
    expect(visiblePairs({ seqlenQ: 4, seqlenK: 2 }, resolveOptions({ causal: true }, 8))).toBe(3);
  });
});
