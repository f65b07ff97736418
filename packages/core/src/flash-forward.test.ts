import { describe, expect, it } from 'vitest';
import { AttentionInputError } from './errors.js';
import { DEFAULT_BLOCK_SIZE_K, DEFAULT_BLOCK_SIZE_Q } from './flash-blocks.js';
import { flashAttention, flashForwardKernel } from './flash-forward.js';
import { keyRange, resolveOptions } from './options.js';
import { createRng, freshSeed, randomTensor } from './random.js';
import { attentionReference64 } from './reference.js';
import { toFloat32 } from './tensor.js';
import { attentionRuleChecks } from './test-utils/attention-rule.js';
import { attentionOpts, flashCases, makeInputs } from './test-utils/flash-cases.js';

/** max |a - b|; equal values (masked lse = -Infinity on both sides) count 0, NaN sticks. */
function maxAbsError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    if (a[i] === b[i]) continue;
    const e = Math.abs(a[i]! - b[i]!);
    if (!(e <= m)) m = e;
  }
  return m;
}

describe('flashAttention (FlashAttention-2 Algorithm 1) against the float64 oracle', () => {
  // The repo's one rule (@flashattn/core/testing): err <= 2 err_naive + floor, naive in the storage
  // dtype (the CPU backend's compute dtype) with float32 accumulation.
  it.each(flashCases().map((c) => [c.name, c] as const))('%s', (_name, c) => {
    const seed = freshSeed();
    const { q, k, v } = makeInputs(c, seed);
    const what = `seed ${seed}, case ${JSON.stringify(c)}`;
    const flash = flashAttention(q, k, v, c.opts);

    // Output keeps the input dtype and shape.
    expect(flash.out.dtype, what).toBe(c.dtype);
    expect(flash.out.shape, what).toEqual(q.shape);
    expect(flash.lse).toBeInstanceOf(Float32Array);
    expect(flash.lse.length, what).toBe(c.B * c.Hq * c.Nq);

    const out = toFloat32(flash.out);
    for (const ch of attentionRuleChecks(q, k, v, attentionOpts(c.opts), c.dtype, {
      out,
      lse: flash.lse,
    })) {
      expect(ch.naiveNonFinite, `${ch.output}: naive overflowed: ${what}`).toBe(0);
      expect(ch.err, `${ch.output} (naive err ${ch.errNaive}): ${what}`).toBeLessThanOrEqual(
        ch.allowed,
      );
    }

    // Fully masked rows: lse exactly -Infinity and an exactly zero output row, where the oracle says so.
    const o = resolveOptions(c.opts, c.D);
    for (let i = 0; i < c.Nq; i++) {
      const [lo, hi] = keyRange(i, c.Nq, c.Nk, o);
      if (lo < hi) continue;
      for (let b = 0; b < c.B; b++) {
        for (let h = 0; h < c.Hq; h++) {
          expect(flash.lse[(b * c.Hq + h) * c.Nq + i], what).toBe(-Infinity);
          const off = ((b * c.Nq + i) * c.Hq + h) * c.D;
          for (let d = 0; d < c.D; d++) expect(out[off + d], what).toBe(0);
        }
      }
    }
  });

  it('gives the same result for every block size up to float32 reassociation', () => {
    const seed = freshSeed();
    const rng = createRng(seed);
    const q = randomTensor(rng, [1, 70, 2, 16]);
    const k = randomTensor(rng, [1, 90, 2, 16]);
    const v = randomTensor(rng, [1, 90, 2, 16]);
    const base = flashAttention(q, k, v, { causal: true, blockSizeQ: 70, blockSizeK: 90 });
    for (const [Br, Bc] of [
      [1, 1],
      [3, 5],
      [16, 64],
      [64, 16],
    ] as const) {
      const r = flashAttention(q, k, v, { causal: true, blockSizeQ: Br, blockSizeK: Bc });
      expect(
        maxAbsError(toFloat32(r.out), toFloat32(base.out)),
        `seed ${seed} Br=${Br} Bc=${Bc}`,
      ).toBeLessThan(1e-5);
      expect(maxAbsError(r.lse, base.lse), `seed ${seed} Br=${Br} Bc=${Bc}`).toBeLessThan(1e-5);
    }
  });

  it('runs in float64 with float64 buffers, matching the oracle to ~1e-14', () => {
    const seed = freshSeed();
    const rng = createRng(seed);
    const q = randomTensor(rng, [1, 45, 2, 8]);
    const k = randomTensor(rng, [1, 33, 1, 8]);
    const v = randomTensor(rng, [1, 33, 1, 8]);
    const opts = { causal: true };
    const ref = attentionReference64(q, k, v, opts);
    const shape = { batch: 1, seqlenQ: 45, seqlenK: 33, nheadsQ: 2, nheadsK: 1, headDim: 8 };
    const f64 = (t: typeof q): Float64Array => Float64Array.from(toFloat32(t));
    const r = flashForwardKernel(
      f64(q),
      f64(k),
      f64(v),
      shape,
      resolveOptions(opts, 8),
      8,
      5,
      'float64',
    );
    expect(r.out).toBeInstanceOf(Float64Array);
    expect(maxAbsError(r.out, ref.out), `seed ${seed}`).toBeLessThan(1e-13);
    expect(maxAbsError(r.lse, ref.lse), `seed ${seed}`).toBeLessThan(1e-13);
  });

  it('uses documented default block sizes', () => {
    expect(Number.isInteger(DEFAULT_BLOCK_SIZE_Q) && DEFAULT_BLOCK_SIZE_Q > 0).toBe(true);
    expect(Number.isInteger(DEFAULT_BLOCK_SIZE_K) && DEFAULT_BLOCK_SIZE_K > 0).toBe(true);
  });

  it.each([
    ['blockSizeQ', 0],
    ['blockSizeQ', -4],
    ['blockSizeQ', 2.5],
    ['blockSizeK', Number.NaN],
    ['blockSizeK', Infinity],
    ['blockSizeK', '64'],
  ] as const)('rejects opts.%s = %s with AttentionInputError', (key, value) => {
    const rng = createRng(1);
    const q = randomTensor(rng, [1, 4, 1, 8]);
    const call = (): unknown => flashAttention(q, q, q, { [key]: value } as never);
    expect(call).toThrow(AttentionInputError);
    try {
      call();
    } catch (e) {
      expect((e as AttentionInputError).argument).toBe(`opts.${key}`);
      expect((e as AttentionInputError).expected).toBe('a positive integer');
    }
  });

  it('validates inputs like every backend (unknown options, shapes)', () => {
    const rng = createRng(2);
    const q = randomTensor(rng, [1, 4, 2, 8]);
    const k = randomTensor(rng, [1, 4, 2, 4]);
    expect(() => flashAttention(q, k, k)).toThrow(AttentionInputError);
    expect(() => flashAttention(q, q, q, { blockSize: 4 } as never)).toThrow(/opts\.blockSize/);
  });
});

describe('flashAttention memory', () => {
  it('runs a windowed forward at N = 32768, D = 64 in memory linear in N (no N x N buffer)', () => {
    const seed = freshSeed();
    const rng = createRng(seed);
    const N = 32768;
    const D = 64;
    const W = 64; // window [W, 0]: compute stays ~N * (W + 1) * D
    const q = randomTensor(rng, [1, N, 1, D]);
    const k = randomTensor(rng, [1, N, 1, D]);
    const v = randomTensor(rng, [1, N, 1, D]);
    const before = process.memoryUsage().arrayBuffers;
    const r = flashAttention(q, k, v, { windowSize: [W, 0] });
    const growth = process.memoryUsage().arrayBuffers - before;
    const oneTensor = N * D * 4; // 8 MiB: the size of q in float32
    const scoreMatrix = 4 * N * N; // 4 GiB: one float32 N x N buffer
    console.info(
      `flash forward N=${N} D=${D}: arrayBuffers grew ${(growth / 2 ** 20).toFixed(1)} MiB ` +
        `(one (N, D) tensor = ${(oneTensor / 2 ** 20).toFixed(0)} MiB, N x N float32 = ${(scoreMatrix / 2 ** 30).toFixed(0)} GiB)`,
    );
    // out (N, D) + lse (N) + row ranges (2N int32) + tiles: a few (N, D) tensors at most.
    expect(growth).toBeLessThan(4 * oneTensor);
    expect(growth).toBeLessThan(scoreMatrix / 100);

    // Spot-check rows against a direct float64 computation of the windowed softmax.
    const qf = toFloat32(q);
    const kf = toFloat32(k);
    const vf = toFloat32(v);
    const out = toFloat32(r.out);
    const scale = 1 / Math.sqrt(D);
    for (const i of [0, 1, W, W + 1, 4097, N - 1]) {
      const lo = Math.max(0, i - W);
      const s: number[] = [];
      for (let j = lo; j <= i; j++) {
        let dot = 0;
        for (let d = 0; d < D; d++) dot += qf[i * D + d]! * kf[j * D + d]!;
        s.push(scale * dot);
      }
      const m = Math.max(...s);
      const e = s.map((x) => Math.exp(x - m));
      const l = e.reduce((a, b) => a + b, 0);
      expect(Math.abs(r.lse[i]! - (m + Math.log(l))), `seed ${seed} row ${i}`).toBeLessThan(1e-5);
      for (let d = 0; d < D; d++) {
        let o = 0;
        for (let j = lo; j <= i; j++) o += (e[j - lo]! / l) * vf[j * D + d]!;
        expect(Math.abs(out[i * D + d]! - o), `seed ${seed} row ${i}`).toBeLessThan(1e-5);
      }
    }
  });
});
