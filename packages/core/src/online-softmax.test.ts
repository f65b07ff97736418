import { describe, expect, it } from 'vitest';
import { AttentionInputError } from './errors.js';
import { OnlineSoftmax } from './online-softmax.js';
import { keyRange, resolveOptions, type AttentionOptions } from './options.js';
import { createRng, freshSeed, randomTensor, type Rng } from './random.js';
import { attentionReference64 } from './reference.js';
import { toFloat32 } from './tensor.js';

/**
 * One attention problem with B = H = 1, turned into rows of scores: row i's scores are
 * scale * q_i . k_j for visible keys and -Infinity for masked ones (the mask of core's keyRange).
 * The expected softmax comes from the float64 oracle, not from this module.
 */
function problem(rng: Rng, Nq: number, Nk: number, D: number, opts: AttentionOptions, std = 1) {
  const q = randomTensor(rng, [1, Nq, 1, D], 'float32', std);
  const k = randomTensor(rng, [1, Nk, 1, D], 'float32', std);
  const v = randomTensor(rng, [1, Nk, 1, D]);
  const ref = attentionReference64(q, k, v, opts);
  const o = resolveOptions(opts, D);
  const qf = toFloat32(q);
  const kf = toFloat32(k);
  const scores = Array.from({ length: Nq }, (_, i) => {
    const [lo, hi] = keyRange(i, Nq, Nk, o);
    const s = new Float64Array(Nk).fill(-Infinity);
    for (let j = lo; j < hi; j++) {
      let dot = 0;
      for (let d = 0; d < D; d++) dot += qf[i * D + d]! * kf[j * D + d]!;
      s[j] = o.softmaxScale * dot;
    }
    return s;
  });
  return { scores, values: Float64Array.from(toFloat32(v)), ref };
}

/** Random split of [0, n) into consecutive blocks (some possibly empty). */
function randomSplit(rng: Rng, n: number): [number, number][] {
  const cuts = [0, n];
  const extra = rng.int(Math.min(n, 8) + 1);
  for (let c = 0; c < extra; c++) cuts.push(rng.int(n + 1));
  cuts.sort((a, b) => a - b);
  return cuts.slice(1).map((e, i) => [cuts[i]!, e]);
}

function partial(
  scores: Float64Array,
  values: Float64Array,
  D: number,
  [a, b]: [number, number],
): OnlineSoftmax {
  return new OnlineSoftmax(D).update(scores.subarray(a, b), values.subarray(a * D, b * D));
}

/** Tree reduction: merge neighbours pairwise until one state remains. */
function treeMerge(states: OnlineSoftmax[], D: number): OnlineSoftmax {
  if (states.length === 0) return new OnlineSoftmax(D);
  let level = states;
  while (level.length > 1) {
    const next: OnlineSoftmax[] = [];
    for (let i = 0; i < level.length; i += 2) {
      next.push(i + 1 < level.length ? OnlineSoftmax.merge(level[i]!, level[i + 1]!) : level[i]!);
    }
    level = next;
  }
  return level[0]!;
}

function expectRow(
  got: { out: Float64Array; lse: number },
  ref: { out: Float64Array; lse: Float64Array },
  i: number,
  D: number,
  what: string,
): void {
  const lse = ref.lse[i]!;
  if (lse === -Infinity) {
    expect(got.lse, what).toBe(-Infinity);
    for (let d = 0; d < D; d++) expect(got.out[d], what).toBe(0);
    return;
  }
  // float64 on both sides; the relative error of a softmax-weighted sum is a few ulps times log terms.
  expect(Math.abs(got.lse - lse), what).toBeLessThanOrEqual(1e-12 * Math.max(1, Math.abs(lse)));
  for (let d = 0; d < D; d++) {
    expect(Math.abs(got.out[d]! - ref.out[i * D + d]!), what).toBeLessThanOrEqual(1e-12);
  }
}

const PROBLEMS: [string, number, number, number, AttentionOptions, number][] = [
  ['plain', 6, 50, 8, {}, 1],
  ['causal Nq > Nk: fully masked rows and -Infinity-only blocks', 12, 7, 4, { causal: true }, 1],
  ['window: long runs of -Infinity', 5, 60, 4, { windowSize: [6, 2] }, 1],
  ['huge logits ~1e4', 4, 40, 16, {}, 100],
];

describe('OnlineSoftmax: any split, any merge order equals the full softmax (float64 oracle)', () => {
  it.each(PROBLEMS)('%s', (_name, Nq, Nk, D, opts, std) => {
    const seed = freshSeed();
    const rng = createRng(seed);
    const { scores, values, ref } = problem(rng, Nq, Nk, D, opts, std);
    for (let i = 0; i < Nq; i++) {
      const s = scores[i]!;
      // One update over the whole row.
      expectRow(
        new OnlineSoftmax(D).update(s, values).finalize(),
        ref,
        i,
        D,
        `seed ${seed} row ${i} whole`,
      );
      for (let trial = 0; trial < 20; trial++) {
        const split = randomSplit(rng, Nk);
        const what = `seed ${seed} row ${i} split ${JSON.stringify(split)}`;
        // Sequential updates on one state (Algorithm 1's inner loop).
        const seq = new OnlineSoftmax(D);
        for (const [a, b] of split) seq.update(s.subarray(a, b), values.subarray(a * D, b * D));
        expectRow(seq.finalize(), ref, i, D, `${what} sequential`);
        const parts = split.map((blk) => partial(s, values, D, blk));
        // Left fold in order, left fold in a shuffled order, and a tree.
        expectRow(
          parts.reduce((x, y) => OnlineSoftmax.merge(x, y), new OnlineSoftmax(D)).finalize(),
          ref,
          i,
          D,
          `${what} fold`,
        );
        const shuffled = [...parts];
        for (let j = shuffled.length - 1; j > 0; j--) {
          const r = rng.int(j + 1);
          [shuffled[j], shuffled[r]] = [shuffled[r]!, shuffled[j]!];
        }
        expectRow(
          shuffled.reduce((x, y) => OnlineSoftmax.merge(y, x)).finalize(),
          ref,
          i,
          D,
          `${what} shuffled`,
        );
        expectRow(treeMerge(parts, D).finalize(), ref, i, D, `${what} tree`);
      }
    }
  });

  it('every one of the 2^(n-1) splits of a row into consecutive blocks gives the same result', () => {
    const seed = freshSeed();
    const rng = createRng(seed);
    const n = 9;
    const D = 3;
    const { scores, values, ref } = problem(rng, 1, n, D, { windowSize: [5, -1] }); // 3 masked keys
    for (let mask = 0; mask < 2 ** (n - 1); mask++) {
      const split: [number, number][] = [];
      let start = 0;
      for (let c = 1; c < n; c++) {
        if (mask & (1 << (c - 1))) {
          split.push([start, c]);
          start = c;
        }
      }
      split.push([start, n]);
      const parts = split.map((blk) => partial(scores[0]!, values, D, blk));
      expectRow(
        treeMerge(parts, D).finalize(),
        ref,
        0,
        D,
        `seed ${seed} split ${JSON.stringify(split)}`,
      );
    }
  });

  it('merge is associative and commutative, with the empty state as identity', () => {
    const seed = freshSeed();
    const rng = createRng(seed);
    const D = 5;
    const state = (n: number, std: number): OnlineSoftmax => {
      const s = Float64Array.from({ length: n }, () => rng.normal() * std);
      return new OnlineSoftmax(D).update(
        s,
        Float64Array.from({ length: n * D }, () => rng.normal()),
      );
    };
    const close = (x: OnlineSoftmax, y: OnlineSoftmax): void => {
      const a = x.finalize();
      const b = y.finalize();
      expect(Math.abs(a.lse - b.lse), `seed ${seed}`).toBeLessThan(
        1e-12 * Math.max(1, Math.abs(a.lse)),
      );
      for (let d = 0; d < D; d++)
        expect(Math.abs(a.out[d]! - b.out[d]!), `seed ${seed}`).toBeLessThan(1e-12);
    };
    for (let t = 0; t < 50; t++) {
      const [a, b, c] = [
        state(1 + rng.int(6), 3),
        state(1 + rng.int(6), 1e4),
        state(1 + rng.int(6), 1),
      ];
      close(
        OnlineSoftmax.merge(OnlineSoftmax.merge(a, b), c),
        OnlineSoftmax.merge(a, OnlineSoftmax.merge(b, c)),
      );
      close(OnlineSoftmax.merge(a, b), OnlineSoftmax.merge(b, a));
      const e = new OnlineSoftmax(D);
      expect(OnlineSoftmax.merge(a, e)).toEqual(a);
      expect(OnlineSoftmax.merge(e, a)).toEqual(a);
    }
  });

  it('finalizes an empty or fully masked state to out = 0, lse = -Infinity', () => {
    const s = new OnlineSoftmax(3);
    expect(s.finalize()).toEqual({ out: new Float64Array(3), lse: -Infinity });
    s.update([-Infinity, -Infinity], new Float64Array(6).fill(7));
    expect(s.empty).toBe(true);
    expect(s.finalize()).toEqual({ out: new Float64Array(3), lse: -Infinity });
    expect(OnlineSoftmax.merge(s, new OnlineSoftmax(3)).finalize().lse).toBe(-Infinity);
  });

  it('does not overflow at logits of 1e4 where exp() would', () => {
    // softmax([1e4, 1e4 - ln 3]) = [3/4, 1/4]; lse = 1e4 + ln(4/3).
    const s = new OnlineSoftmax(1).update([1e4], [8]).update([1e4 - Math.log(3)], [4]);
    const r = s.finalize();
    expect(Math.exp(1e4)).toBe(Infinity);
    expect(r.out[0]).toBeCloseTo(0.75 * 8 + 0.25 * 4, 12);
    expect(r.lse).toBeCloseTo(1e4 + Math.log(4 / 3), 9);
  });

  it('rejects bad arguments with AttentionInputError', () => {
    expect(() => new OnlineSoftmax(0)).toThrow(AttentionInputError);
    expect(() => new OnlineSoftmax(2).update([1, 2], [1, 2, 3])).toThrow(/values\.length/);
    expect(() => new OnlineSoftmax(1).update([Number.NaN], [1])).toThrow(AttentionInputError);
    expect(() => new OnlineSoftmax(1).update([0, Infinity], [1, 2])).toThrow(/scores\[1\]/);
    expect(() => OnlineSoftmax.merge(new OnlineSoftmax(1), new OnlineSoftmax(2))).toThrow(
      AttentionInputError,
    );
  });
});
