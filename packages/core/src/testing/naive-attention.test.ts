import { createRng, freshSeed, randomTensor } from '../random.js';
import { attentionReference64, attentionReferenceBackward64 } from '../reference.js';
import { fromFloat32, zeros } from '../tensor.js';
import { describe, expect, it } from 'vitest';
import { maxDeviation } from './compare.js';
import { naiveAttention } from './naive-attention.js';

function setup(dtype: 'float32' | 'float16' | 'bfloat16', seed: number) {
  const rng = createRng(seed);
  const q = randomTensor(rng, [1, 33, 2, 32], dtype);
  const k = randomTensor(rng, [1, 40, 1, 32], dtype);
  const v = randomTensor(rng, [1, 40, 1, 32], dtype);
  const dout = randomTensor(rng, [1, 33, 2, 32], dtype);
  const opts = { causal: true };
  const ref = attentionReference64(q, k, v, opts);
  const g = attentionReferenceBackward64(
    dout,
    q,
    k,
    v,
    zeros(q.shape, dtype),
    new Float32Array(66),
    opts,
  );
  return { q, k, v, dout, opts, ref, g };
}

describe('naive same-precision attention', () => {
  const seed = freshSeed();

  it(`in float32 it is within a few float32 roundings of the oracle (seed ${seed})`, () => {
    const { q, k, v, dout, opts, ref, g } = setup('float32', seed);
    const n = naiveAttention(q, k, v, opts, 'float32', dout);
    const u = 2 ** -24;
    expect(maxDeviation(n.forward.out, ref.out).maxErr).toBeLessThan(64 * u * n.forward.outAbs);
    expect(maxDeviation(n.forward.lse, ref.lse).maxErr).toBeLessThan(64 * u * n.forward.lseAbs);
    expect(maxDeviation(n.backward!.dq, g.dq).maxErr).toBeLessThan(64 * u * n.backward!.dqAbs);
    expect(maxDeviation(n.backward!.dk, g.dk).maxErr).toBeLessThan(64 * u * n.backward!.dkAbs);
    expect(maxDeviation(n.backward!.dv, g.dv).maxErr).toBeLessThan(64 * u * n.backward!.dvAbs);
  });

  it(`rounding to a narrower compute dtype makes it worse, by about the unit roundoff ratio (seed ${seed})`, () => {
    const { q, k, v, dout, opts, ref, g } = setup('float32', seed);
    const e32 = naiveAttention(q, k, v, opts, 'float32', dout);
    const e16 = naiveAttention(q, k, v, opts, 'float16', dout);
    const eb16 = naiveAttention(q, k, v, opts, 'bfloat16', dout);
    const err = (x: ArrayLike<number>, r: ArrayLike<number>) => maxDeviation(x, r).maxErr;
    expect(err(e16.forward.out, ref.out)).toBeGreaterThan(100 * err(e32.forward.out, ref.out));
    expect(err(eb16.forward.out, ref.out)).toBeGreaterThan(2 * err(e16.forward.out, ref.out));
    expect(err(e16.backward!.dq, g.dq)).toBeGreaterThan(100 * err(e32.backward!.dq, g.dq));
    // Every naive output value is representable in its compute dtype.
    for (const x of e16.forward.out) expect(Math.fround(x)).toBe(x);
  });

  it('the |X|_abs magnitudes bound the outputs themselves', () => {
    const { q, k, v, dout, opts, ref, g } = setup('float16', seed);
    const n = naiveAttention(q, k, v, opts, 'float16', dout);
    const maxAbs = (a: ArrayLike<number>) =>
      Array.from(a).reduce((m, x) => Math.max(m, Math.abs(x)), 0);
    expect(maxAbs(ref.out)).toBeLessThanOrEqual(n.forward.outAbs * (1 + 1e-2));
    expect(maxAbs(g.dq)).toBeLessThanOrEqual(n.backward!.dqAbs * (1 + 1e-2));
    expect(maxAbs(g.dk)).toBeLessThanOrEqual(n.backward!.dkAbs * (1 + 1e-2));
    expect(maxAbs(g.dv)).toBeLessThanOrEqual(n.backward!.dvAbs * (1 + 1e-2));
  });

  it('fully masked rows give out 0, lse -Infinity and zero gradients', () => {
    const rng = createRng(seed);
    const q = randomTensor(rng, [1, 5, 1, 8]);
    const k = randomTensor(rng, [1, 2, 1, 8]);
    const v = randomTensor(rng, [1, 2, 1, 8]);
    const n = naiveAttention(q, k, v, { causal: true }, 'float32', randomTensor(rng, [1, 5, 1, 8]));
    // Nq = 5 > Nk = 2, causal bottom-right: rows 0..2 see no key.
    expect(Array.from(n.forward.lse.slice(0, 3))).toEqual([-Infinity, -Infinity, -Infinity]);
    expect(Number.isFinite(n.forward.lse[3]!)).toBe(true);
    expect(Array.from(n.forward.out.slice(0, 24)).every((x) => x === 0)).toBe(true);
    expect(Array.from(n.backward!.dq.slice(0, 24)).every((x) => x === 0)).toBe(true);
  });

  it('R_dq carries one rounding of the stored 16-bit O through D_i = rowsum(dO * O) (one key, by hand)', () => {
    // Nq = Nk = 1, D = 2: P = 1, O = V, dP = D_i exactly, so the recompute part is 0 and
    // R_dq_d = scale * P * epsD * |K_d| with epsD = u_f16 * (|dO_0| |O_0| + |dO_1| |O_1|) = u_f16 * (0.5 + 0.5).
    const t = (x: number[]) => fromFloat32(Float32Array.from(x), [1, 1, 1, 2], 'float16');
    const n = naiveAttention(t([1, 0]), t([2, 1]), t([0.5, -0.25]), {}, 'float16', t([1, 2]));
    const u16 = 2 ** -11;
    const scale = 1 / Math.sqrt(2);
    // (the per-score term sits in a float32 scratch: equal to one float32 rounding)
    const rel = (x: number, want: number) => Math.abs(x / want - 1);
    expect(rel(n.backward!.dqRecompute, scale * 2 * u16)).toBeLessThan(2 ** -23); // max over d: |K_0| = 2
    expect(rel(n.backward!.dkRecompute, scale * 1 * u16)).toBeLessThan(2 ** -23); // |Q_0| = 1
    // dV does not read D_i: only the P-recompute term u32 (|S|_abs + |lse|) P |dO| is left, with
    // |S|_abs = scale * 2 = sqrt(2) and lse = S rounded to float16 = 1448 / 1024, |dO_1| = 2
    expect(rel(n.backward!.dvRecompute, 2 ** -24 * (Math.SQRT2 + 1448 / 1024) * 2)).toBeLessThan(1e-12);
  });
});
