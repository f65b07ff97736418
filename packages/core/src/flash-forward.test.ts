import { describe, expect, it } from 'vitest';
import { AttentionInputError } from './errors.js';
import { DEFAULT_BLOCK_SIZE_K, DEFAULT_BLOCK_SIZE_Q } from './flash-blocks.js';
import { flashAttention, flashForwardKernel } from './flash-forward.js';
import { keyRange, resolveOptions } from './options.js';
import { createRng, freshSeed, randomTensor } from './random.js';
import { attentionReference64 } from './reference.js';
import { toFloat32 } from './tensor.js';
import { attentionRuleChecks, flashForwardErrorBound } from './test-utils/attention-rule.js';
import { attentionOpts, flashCases, makeInputs } from './test-utils/flash-cases.js';

/** |a - b| <= factor * bound elementwise (equal values, e.g. both -Infinity, pass). */
function expectWithin(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  bound: ArrayLike<number>,
  factor: number,
  what: string,
): void {
  let worst = -1;
  for (let i = 0; i < a.length; i++) {
    if (a[i] === b[i]) continue;
    if (!(Math.abs(a[i]! - b[i]!) <= factor * bound[i]!)) {
      worst = i;
      break;
    }
  }
  expect(
    worst,
    `${what}: element ${worst}: ${a[worst]} vs ${b[worst]}, bound ${factor} x ${bound[worst]}`,
  ).toBe(-1);
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
    const opts = { causal: true };
    const base = flashAttention(q, k, v, { ...opts, blockSizeQ: 70, blockSizeK: 90 });
    // Two float32 evaluation orders differ by at most twice the any-order bound (attention-rule.ts).
    const bound = flashForwardErrorBound(q, k, v, opts, 2 ** -24);
    for (const [Br, Bc] of [
      [1, 1],
      [3, 5],
      [16, 64],
      [64, 16],
    ] as const) {
      const r = flashAttention(q, k, v, { ...opts, blockSizeQ: Br, blockSizeK: Bc });
      const what = `seed ${seed} Br=${Br} Bc=${Bc}`;
      expectWithin(toFloat32(r.out), toFloat32(base.out), bound.out, 2, `out ${what}`);
      expectWithin(r.lse, base.lse, bound.lse, 2, `lse ${what}`);
    }
  });

  it('runs in float64 with float64 buffers, matching the oracle within the float64 any-order bound', () => {
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
    // The oracle is a float64 evaluation too: kernel and oracle each within the u64 bound.
    const bound = flashForwardErrorBound(q, k, v, opts, 2 ** -53);
    expectWithin(r.out, ref.out, bound.out, 2, `out seed ${seed}`);
    expectWithin(r.lse, ref.lse, bound.lse, 2, `lse seed ${seed}`);
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
    // Against a float64 computation, within the float32 any-order bound of each checked row (the naive
    // baseline would materialise an N x N matrix).
    const rows = [0, 1, W, W + 1, 4097, N - 1];
    const bound = flashForwardErrorBound(q, k, v, { windowSize: [W, 0] }, 2 ** -24, rows);
    for (const i of rows) {
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
      expect(Math.abs(r.lse[i]! - (m + Math.log(l))), `seed ${seed} row ${i}`).toBeLessThanOrEqual(
        bound.lse[i]!,
      );
      for (let d = 0; d < D; d++) {
        let o = 0;
        for (let j = lo; j <= i; j++) o += (e[j - lo]! / l) * vf[j * D + d]!;
        expect(Math.abs(out[i * D + d]! - o), `seed ${seed} row ${i}`).toBeLessThanOrEqual(
          bound.out[i * D + d]!,
        );
      }
    }
  });
});
