import { describe, expect, it } from 'vitest';
import { createRng, freshSeed, randomTensor, type Rng } from './random.js';
import {
  attentionReference,
  attentionReference64,
  attentionReferenceBackward,
  attentionReferenceBackward64,
} from './reference.js';
import { tensor, toFloat32, type Tensor } from './tensor.js';

/** Random float32 tensor on the grid k * 2^-8 in (-2, 2), so that x +- 2^-12 is exact in float32. */
function gridTensor(rng: Rng, shape: number[]): Tensor {
  let n = 1;
  for (const s of shape) n *= s;
  return tensor(
    Float32Array.from({ length: n }, () => Math.round((rng.uniform() * 4 - 2) * 256) / 256),
    shape,
  );
}

/** Repeat each kv head `rep` times along the head axis: (B, N, Hk, D) -> (B, N, Hk * rep, D). */
function repeatHeads(t: Tensor, rep: number): Tensor {
  const [B, N, H, D] = t.shape as [number, number, number, number];
  const src = toFloat32(t);
  const dst = new Float32Array(B * N * H * rep * D);
  for (let b = 0; b < B; b++)
    for (let n = 0; n < N; n++)
      for (let h = 0; h < H * rep; h++)
        for (let d = 0; d < D; d++)
          dst[((b * N + n) * H * rep + h) * D + d] =
            src[((b * N + n) * H + Math.floor(h / rep)) * D + d]!;
  return tensor(dst, [B, N, H * rep, D]);
}

describe('attentionReference (the float64 oracle)', () => {
  it('computes a hand example exactly', () => {
    // S = [0, ln 3] -> P = [1/4, 3/4]; out = 4/4 + 3*8/4 = 7; lse = ln 4.
    const q = tensor([1], [1, 1, 1, 1]);
    const k = tensor([0, Math.log(3)], [1, 2, 1, 1]);
    const v = tensor([4, 8], [1, 2, 1, 1]);
    const r = attentionReference64(q, k, v, { softmaxScale: 1 });
    expect(r.out[0]).toBeCloseTo(7, 6);
    expect(r.lse[0]).toBeCloseTo(Math.log(4), 6);
    // Causal with Nq = 1 sees every key (bottom-right alignment): same result.
    expect(attentionReference64(q, k, v, { softmaxScale: 1, causal: true }).out[0]).toBe(r.out[0]);
    // Window [0, 0] on the last key only: out = v[1].
    expect(attentionReference64(q, k, v, { softmaxScale: 1, windowSize: [0, 0] }).out[0]).toBe(8);
  });

  it('returns float32 tensors whatever the input dtype, with lse (B, H, Nq)', () => {
    const rng = createRng(1);
    const q = randomTensor(rng, [2, 3, 2, 4], 'bfloat16');
    const r = attentionReference(q, q, q);
    expect(r.out.dtype).toBe('float32');
    expect(r.out.shape).toEqual([2, 3, 2, 4]);
    expect(r.lse).toBeInstanceOf(Float32Array);
    expect(r.lse.length).toBe(12);
    const g = attentionReferenceBackward(q, q, q, q, q, r.lse);
    expect([g.dq.dtype, g.dk.dtype, g.dv.dtype]).toEqual(['float32', 'float32', 'float32']);
  });

  it('outputs zeros and lse = -Infinity for rows that see no key', () => {
    const rng = createRng(2);
    const q = randomTensor(rng, [1, 5, 1, 3]);
    const k = randomTensor(rng, [1, 2, 1, 3]);
    const r = attentionReference64(q, k, k, { causal: true });
    for (let i = 0; i < 3; i++) {
      expect(r.lse[i]).toBe(-Infinity);
      expect(Array.from(r.out.subarray(i * 3, i * 3 + 3))).toEqual([0, 0, 0]);
    }
    expect(Number.isFinite(r.lse[3]!)).toBe(true);
  });

  it('is invariant to permuting the keys (non-causal)', () => {
    const seed = freshSeed();
    const rng = createRng(seed);
    const q = randomTensor(rng, [1, 4, 1, 5]);
    const k = toFloat32(randomTensor(rng, [1, 6, 1, 5]));
    const v = toFloat32(randomTensor(rng, [1, 6, 1, 5]));
    const perm = [3, 0, 5, 1, 4, 2];
    const pk = new Float32Array(30);
    const pv = new Float32Array(30);
    perm.forEach((p, j) => {
      pk.set(k.subarray(p * 5, p * 5 + 5), j * 5);
      pv.set(v.subarray(p * 5, p * 5 + 5), j * 5);
    });
    const a = attentionReference64(q, tensor(k, [1, 6, 1, 5]), tensor(v, [1, 6, 1, 5]));
    const b = attentionReference64(q, tensor(pk, [1, 6, 1, 5]), tensor(pv, [1, 6, 1, 5]));
    for (let i = 0; i < a.out.length; i++)
      expect(Math.abs(a.out[i]! - b.out[i]!), `seed ${seed}`).toBeLessThan(1e-14);
  });

  it('does not overflow at logits near 1e4', () => {
    const rng = createRng(3);
    const q = randomTensor(rng, [1, 3, 1, 16], 'float32', 100);
    const r = attentionReference64(q, q, q);
    for (const x of r.lse) expect(Number.isFinite(x) && x > 1e3).toBe(true);
    for (const x of r.out) expect(Number.isFinite(x)).toBe(true);
  });

  it('under GQA equals MHA with repeated kv heads, and sums dk, dv over each group', () => {
    const seed = freshSeed();
    const rng = createRng(seed);
    const q = randomTensor(rng, [2, 5, 6, 4]);
    const k = randomTensor(rng, [2, 7, 2, 4]);
    const v = randomTensor(rng, [2, 7, 2, 4]);
    const dout = randomTensor(rng, [2, 5, 6, 4]);
    const kr = repeatHeads(k, 3);
    const vr = repeatHeads(v, 3);
    const opts = { causal: true };
    const a = attentionReference64(q, k, v, opts);
    const b = attentionReference64(q, kr, vr, opts);
    expect(Array.from(a.out)).toEqual(Array.from(b.out));
    const out = attentionReference(q, k, v, opts);
    const ga = attentionReferenceBackward64(dout, q, k, v, out.out, out.lse, opts);
    const gb = attentionReferenceBackward64(dout, q, kr, vr, out.out, out.lse, opts);
    for (let i = 0; i < ga.dq.length; i++)
      expect(Math.abs(ga.dq[i]! - gb.dq[i]!), `seed ${seed}`).toBeLessThan(1e-14);
    // dk of kv head hk = sum of the repeated heads' dk.
    for (let b_ = 0; b_ < 2; b_++)
      for (let n = 0; n < 7; n++)
        for (let hk = 0; hk < 2; hk++)
          for (let d = 0; d < 4; d++) {
            let sk = 0;
            let sv = 0;
            for (let r = 0; r < 3; r++) {
              sk += gb.dk[((b_ * 7 + n) * 6 + hk * 3 + r) * 4 + d]!;
              sv += gb.dv[((b_ * 7 + n) * 6 + hk * 3 + r) * 4 + d]!;
            }
            expect(
              Math.abs(ga.dk[((b_ * 7 + n) * 2 + hk) * 4 + d]! - sk),
              `seed ${seed}`,
            ).toBeLessThan(1e-13);
            expect(
              Math.abs(ga.dv[((b_ * 7 + n) * 2 + hk) * 4 + d]! - sv),
              `seed ${seed}`,
            ).toBeLessThan(1e-13);
          }
  });

  it.each([
    ['plain', {}],
    ['causal Nq > Nk', { causal: true }],
    ['window', { windowSize: [1, 2] as const }],
  ] as const)('backward matches central finite differences of sum(out * dout) (%s)', (_n, opts) => {
    const seed = freshSeed();
    const rng = createRng(seed);
    const q = gridTensor(rng, [1, 6, 2, 3]);
    const k = gridTensor(rng, [1, 4, 1, 3]);
    const v = gridTensor(rng, [1, 4, 1, 3]);
    const dout = gridTensor(rng, [1, 6, 2, 3]);
    const dof = toFloat32(dout);
    const loss = (qq: Tensor, kk: Tensor, vv: Tensor): number => {
      const out = attentionReference64(qq, kk, vv, opts).out;
      let f = 0;
      for (let i = 0; i < out.length; i++) f += out[i]! * dof[i]!;
      return f;
    };
    const fwd = attentionReference(q, k, v, opts);
    const g = attentionReferenceBackward64(dout, q, k, v, fwd.out, fwd.lse, opts);
    const h = 2 ** -12; // x +- h is exact on the 2^-8 grid in float32
    for (const [name, grad, which] of [
      ['q', g.dq, 0],
      ['k', g.dk, 1],
      ['v', g.dv, 2],
    ] as const) {
      const base = [q, k, v];
      const x = toFloat32(base[which]!);
      for (let i = 0; i < x.length; i++) {
        const plus = x.slice();
        const minus = x.slice();
        plus[i]! += h;
        minus[i]! -= h;
        const args = (arr: Float32Array): [Tensor, Tensor, Tensor] => {
          const t = base.slice() as [Tensor, Tensor, Tensor];
          t[which] = tensor(arr, base[which]!.shape);
          return t;
        };
        const fd = (loss(...args(plus)) - loss(...args(minus))) / (2 * h);
        // Truncation error ~ h^2 * f''' ~ 1e-7 for these O(1) inputs.
        expect(Math.abs(grad[i]! - fd), `seed ${seed} d${name}[${i}]`).toBeLessThan(1e-5);
      }
    }
  });
});
