/**
 * The float32-scores baseline (core's NaiveVariant): a 16-bit case that fails against PyTorch-math's baseline
 * (S rounded to c) is judged again against the fused-kernel baseline (S in float32) and passes if within 2x of it.
 * The backend here is exact by construction: float64 attention of the bf16-rounded inputs, results rounded to
 * bf16 once. On 'f32 d64 huge-spread' at seed 20261121 the math baseline's bf16 S made near-ties exact ties and
 * averaged two keys' V by luck, putting this backend (and the CUDA kernels on the H100, same error to three
 * digits) at 2.03x; the fused baseline has the same error as it.
 */
import {
  attentionReference64,
  attentionReferenceBackward64,
  fromFloat32,
  roundToDType,
  toFloat32,
  type AttentionBackend,
  type AttentionOptions,
  type Tensor,
} from '@flashattn/core';
import { describe, expect, it } from 'vitest';
import { runConformance } from './run.js';

const bf16 = (t: Tensor): Tensor =>
  fromFloat32(Float32Array.from(toFloat32(t), (x) => roundToDType(x, 'bfloat16')), t.shape, 'float32');
const out16 = (a: ArrayLike<number>, shape: readonly number[]): Tensor =>
  fromFloat32(Float32Array.from(a, (x) => roundToDType(x, 'bfloat16')), shape, 'float32');

const exactBf16: AttentionBackend = {
  name: 'exact-bf16',
  capabilities: { dtypes: ['float32'], maxHeadDim: 1024, computeDType: () => 'bfloat16' },
  forward(q: Tensor, k: Tensor, v: Tensor, o?: AttentionOptions) {
    const r = attentionReference64(bf16(q), bf16(k), bf16(v), o);
    return Promise.resolve({ out: out16(r.out, q.shape), lse: Float32Array.from(r.lse) });
  },
  backward(dout: Tensor, q: Tensor, k: Tensor, v: Tensor, out: Tensor, lse: Float32Array, o?: AttentionOptions) {
    const g = attentionReferenceBackward64(bf16(dout), bf16(q), bf16(k), bf16(v), out, lse, o);
    return Promise.resolve({
      dq: out16(g.dq, q.shape),
      dk: out16(g.dk, k.shape),
      dv: out16(g.dv, v.shape),
    });
  },
} as unknown as AttentionBackend;

describe('16-bit cases are judged against the worse of the two naive baselines', () => {
  it('an exact bf16 backend passes f32 huge-spread, through the float32-scores baseline', async () => {
    const rep = await runConformance(exactBf16, {
      seed: 20261121,
      matrix: 'full',
      filter: 'f32 d64 b1 h2/2 q127 k127 huge-spread',
    });
    expect(rep.results).toHaveLength(1);
    const r = rep.results[0]!;
    expect(r.pass, r.message).toBe(true);
    const dv = r.checks.find((ch) => ch.output === 'dv')!;
    expect(dv.naiveScores).toBe('float32'); // the math baseline alone would fail it (ratio 2.03)
    expect(dv.ratio).toBeLessThan(1.01); // exact backend, exact-S baseline: the same error
  });
});
