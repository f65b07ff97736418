import { describe, expect, it } from 'vitest';
import { AttentionInputError } from './errors.js';
import { flashBackwardKernel } from './flash-backward.js';
import { flashAttention, flashForwardKernel } from './flash-forward.js';
import { flashAttentionBackward } from './flash-backward.js';
import { resolveOptions, type AttentionOptions, type AttentionShape } from './options.js';
import { createRng, freshSeed, randomTensor } from './random.js';
import { tensor, toFloat32 } from './tensor.js';
import { attentionRuleChecks } from './test-utils/attention-rule.js';
import { attentionOpts, flashCases, makeInputs } from './test-utils/flash-cases.js';

describe('flashAttentionBackward (FlashAttention-2 Algorithm 2) against the float64 oracle', () => {
  // The repo's one rule (@flashattn/core/testing), called with the backward's own out and lse as a
  // user would; the oracle recomputes everything in float64 from q, k, v, dout.
  it.each(flashCases().map((c) => [c.name, c] as const))('%s', (_name, c) => {
    const seed = freshSeed();
    const { q, k, v, dout } = makeInputs(c, seed);
    const what = `seed ${seed}, case ${JSON.stringify(c)}`;
    const fwd = flashAttention(q, k, v, c.opts);
    const g = flashAttentionBackward(dout, q, k, v, fwd.out, fwd.lse, c.opts);
    for (const name of ['dq', 'dk', 'dv'] as const) {
      expect(g[name].dtype, `${name}: ${what}`).toBe(c.dtype);
      expect(g[name].shape, `${name}: ${what}`).toEqual(name === 'dq' ? q.shape : k.shape);
    }
    const checks = attentionRuleChecks(
      q,
      k,
      v,
      attentionOpts(c.opts),
      c.dtype,
      { out: toFloat32(fwd.out), lse: fwd.lse },
      { dout, dq: toFloat32(g.dq), dk: toFloat32(g.dk), dv: toFloat32(g.dv) },
    );
    for (const ch of checks.filter((x) => x.output !== 'out' && x.output !== 'lse')) {
      expect(ch.naiveNonFinite, `${ch.output}: naive overflowed: ${what}`).toBe(0);
      expect(ch.err, `${ch.output} (naive err ${ch.errNaive}): ${what}`).toBeLessThanOrEqual(
        ch.allowed,
      );
    }
  });

  it('gives zero dq for fully masked rows and ignores them in dk, dv', () => {
    const seed = freshSeed();
    const rng = createRng(seed);
    // causal with Nq > Nk: rows 0..Nq-Nk-1 see no key.
    const [Nq, Nk, H, D] = [12, 5, 1, 4];
    const q = randomTensor(rng, [1, Nq, H, D]);
    const k = randomTensor(rng, [1, Nk, H, D]);
    const v = randomTensor(rng, [1, Nk, H, D]);
    const dout = randomTensor(rng, [1, Nq, H, D]);
    const fwd = flashAttention(q, k, v, { causal: true, blockSizeQ: 4, blockSizeK: 2 });
    const g = flashAttentionBackward(dout, q, k, v, fwd.out, fwd.lse, {
      causal: true,
      blockSizeQ: 4,
      blockSizeK: 2,
    });
    const dq = toFloat32(g.dq);
    for (let i = 0; i < Nq - Nk; i++) {
      expect(fwd.lse[i]).toBe(-Infinity);
      for (let d = 0; d < D; d++) expect(dq[i * D + d], `seed ${seed} row ${i}`).toBe(0);
    }
    // The masked rows' dout must not reach dk, dv: changing it changes nothing.
    const dout2 = toFloat32(dout).slice();
    for (let i = 0; i < (Nq - Nk) * D; i++) dout2[i] = 1000;
    const g2 = flashAttentionBackward(tensor(dout2, dout.shape), q, k, v, fwd.out, fwd.lse, {
      causal: true,
      blockSizeQ: 4,
      blockSizeK: 2,
    });
    expect(toFloat32(g2.dk), `seed ${seed}`).toEqual(toFloat32(g.dk));
    expect(toFloat32(g2.dv), `seed ${seed}`).toEqual(toFloat32(g.dv));
  });

  it('validates lse and options', () => {
    const rng = createRng(3);
    const q = randomTensor(rng, [1, 4, 2, 8]);
    const fwd = flashAttention(q, q, q);
    expect(() => flashAttentionBackward(q, q, q, q, fwd.out, new Float32Array(3))).toThrow(
      AttentionInputError,
    );
    expect(() => flashAttentionBackward(q, q, q, q, fwd.out, fwd.lse, { blockSizeK: 0 })).toThrow(
      /opts\.blockSizeK/,
    );
  });
});

describe('flash backward against central finite differences in float64', () => {
  // The same Algorithms 1 and 2 run with float64 buffers on float64 inputs; the loss is
  // f = sum(out * dout), whose exact gradient the backward claims to compute.
  interface Case {
    name: string;
    shape: AttentionShape;
    opts: AttentionOptions;
    Br: number;
    Bc: number;
  }
  const mk = (
    name: string,
    Nq: number,
    Nk: number,
    Hq: number,
    Hk: number,
    D: number,
    opts: AttentionOptions,
    Br: number,
    Bc: number,
  ): Case => ({
    name,
    shape: { batch: 1, seqlenQ: Nq, seqlenK: Nk, nheadsQ: Hq, nheadsK: Hk, headDim: D },
    opts,
    Br,
    Bc,
  });
  const cases: Case[] = [
    mk('plain', 9, 11, 2, 2, 6, {}, 4, 3),
    mk('causal Nq>Nk, GQA', 11, 7, 4, 2, 5, { causal: true }, 3, 4),
    mk('window, MQA', 10, 13, 3, 1, 4, { windowSize: [3, 2] }, 5, 5),
    mk('scale 0.9, N=1', 1, 1, 1, 1, 7, { softmaxScale: 0.9 }, 2, 2),
  ];

  it.each(cases.map((c) => [c.name, c] as const))('%s', (_name, c) => {
    const seed = freshSeed();
    const rng = createRng(seed);
    const { batch: B, seqlenQ: Nq, seqlenK: Nk, nheadsQ: Hq, nheadsK: Hk, headDim: D } = c.shape;
    const o = resolveOptions(c.opts, D);
    const rand = (n: number): Float64Array => Float64Array.from({ length: n }, () => rng.normal());
    const q = rand(B * Nq * Hq * D);
    const k = rand(B * Nk * Hk * D);
    const v = rand(B * Nk * Hk * D);
    const dout = rand(B * Nq * Hq * D);
    const loss = (): number => {
      const { out } = flashForwardKernel(q, k, v, c.shape, o, c.Br, c.Bc, 'float64');
      let f = 0;
      for (let i = 0; i < out.length; i++) f += out[i]! * dout[i]!;
      return f;
    };
    const fwd = flashForwardKernel(q, k, v, c.shape, o, c.Br, c.Bc, 'float64');
    const grads = flashBackwardKernel(
      dout,
      q,
      k,
      v,
      fwd.out,
      fwd.lse,
      c.shape,
      o,
      c.Br,
      c.Bc,
      'float64',
    );
    expect(grads.dq).toBeInstanceOf(Float64Array);
    const h = 1e-5;
    let checked = 0;
    for (const [name, x, g] of [
      ['q', q, grads.dq],
      ['k', k, grads.dk],
      ['v', v, grads.dv],
    ] as const) {
      // A sample of entries (every entry for tiny tensors).
      const n = x.length;
      const idx = n <= 40 ? [...Array(n).keys()] : Array.from({ length: 40 }, () => rng.int(n));
      for (const i of idx) {
        const x0 = x[i]!;
        x[i] = x0 + h;
        const fp = loss();
        x[i] = x0 - h;
        const fm = loss();
        x[i] = x0;
        const fd = (fp - fm) / (2 * h);
        // Central differences: truncation O(h^2) ~ 1e-10, cancellation ~ 1e-16 / h ~ 1e-11.
        expect(
          Math.abs(g[i]! - fd),
          `seed ${seed} d${name}[${i}]: backward ${g[i]} vs fd ${fd}`,
        ).toBeLessThan(1e-7 * Math.max(1, Math.abs(fd)));
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(0);
  });
});

describe('flashAttentionBackward memory', () => {
  it('runs a windowed backward at N = 32768, D = 64 in memory linear in N (no N x N buffer)', () => {
    const seed = freshSeed();
    const rng = createRng(seed);
    const N = 32768;
    const D = 64;
    const opts = { windowSize: [32, 0] as [number, number] }; // compute stays ~N * 33 * D
    const q = randomTensor(rng, [1, N, 1, D]);
    const k = randomTensor(rng, [1, N, 1, D]);
    const v = randomTensor(rng, [1, N, 1, D]);
    const dout = randomTensor(rng, [1, N, 1, D]);
    const fwd = flashAttention(q, k, v, opts);
    const before = process.memoryUsage();
    const g = flashAttentionBackward(dout, q, k, v, fwd.out, fwd.lse, opts);
    const after = process.memoryUsage();
    const growth = after.arrayBuffers - before.arrayBuffers;
    const oneTensor = N * D * 4; // 8 MiB
    const scoreMatrix = 4 * N * N; // 4 GiB
    console.info(
      `flash backward N=${N} D=${D}: arrayBuffers grew ${(growth / 2 ** 20).toFixed(1)} MiB, ` +
        `heap ${((after.heapUsed - before.heapUsed) / 2 ** 20).toFixed(1)} MiB ` +
        `(one (N, D) tensor = ${(oneTensor / 2 ** 20).toFixed(0)} MiB, N x N float32 = ${(scoreMatrix / 2 ** 30).toFixed(0)} GiB)`,
    );
    // dq, dk, dv (3 tensors) + D (N) + row ranges (2N int32) + tiles.
    expect(growth).toBeLessThan(6 * oneTensor);
    expect(after.heapUsed - before.heapUsed).toBeLessThan(scoreMatrix / 100);
    // Sanity: the gradients are finite and not all zero.
    const dq = toFloat32(g.dq);
    let nonzero = 0;
    let finite = 0;
    for (const x of dq) {
      if (Number.isFinite(x)) finite++;
      if (x !== 0) nonzero++;
    }
    expect(finite).toBe(N * D);
    expect(nonzero, `seed ${seed}`).toBeGreaterThan(N * D * 0.9);
  });
});
