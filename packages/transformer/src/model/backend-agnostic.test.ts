// The model talks to the Ops<Buf> contract only: the same tiny GPT-2 trains on two unrelated backends,
// the CPU ops (typed-array buffers, FlashAttention kernels on worker threads) and core's float64
// reference ops (opaque ReferenceBuffer objects the model cannot index), both in float64, from the same
// initialisation and batches, and the losses, gradient norms and final weights agree to float64 precision.
import { createReferenceOps, freshSeed, type Ops } from '@flashattn/core';
import { CpuOps } from '@flashattn/cpu';
import { afterAll, describe, expect, it } from 'vitest';
import type { GPT2Config } from '../config.js';
import { fitOneBatch } from '../train/fit-batch.js';

const config: GPT2Config = { vocabSize: 23, maxSeqLen: 12, nLayer: 2, nHead: 2, nEmbd: 16 };
const [B, T, steps] = [2, 12, 4];
const seed = freshSeed();
const cpu = new CpuOps({ threads: 2 });
afterAll(() => cpu.dispose());

const train = <Buf>(ops: Ops<Buf>) =>
  fitOneBatch(ops, {
    config,
    batch: B,
    seq: T,
    steps,
    seed,
    dtype: 'float64',
    lr: 1e-2,
    ignoreEvery: 7,
    ignoreOffset: 3,
  });

describe(`GPT-2 on any Ops<Buf> backend (seed ${seed})`, () => {
  it('trains on the float64 reference ops (opaque buffers) exactly as on the CPU ops', async () => {
    const ref = createReferenceOps();
    expect(typeof ref.alloc(1, 'float64')).toBe('object');
    expect(ref.alloc(1, 'float64')).not.toBeInstanceOf(Float64Array);
    const a = await train(ref);
    const b = await train(cpu);
    // The loss falls: the run trains, it is not two copies of a constant.
    expect(a.losses[steps - 1]!).toBeLessThan(a.losses[0]!);
    // Float64 precision: both backends compute the same float64 algorithms in possibly different
    // summation orders (measured 2026-12-06: the losses agree to the last bit). 1e-10 relative is
    // float64 rounding amplified by a few optimizer steps with a wide margin, while any real
    // difference in an op (a missing term, a wrong stride) moves the loss at 1e-3 or more.
    for (let s = 0; s < steps; s++) {
      expect(Math.abs(a.losses[s]! - b.losses[s]!), `step ${s} loss`).toBeLessThan(
        1e-10 * Math.abs(b.losses[s]!),
      );
      expect(Math.abs(a.norms[s]! - b.norms[s]!), `step ${s} grad norm`).toBeLessThan(
        1e-10 * b.norms[s]!,
      );
    }
    let maxDiff = 0;
    for (let i = 0; i < a.params.length; i++)
      maxDiff = Math.max(maxDiff, Math.abs(a.params[i]! - b.params[i]!));
    expect(maxDiff).toBeLessThan(1e-10);
  });
});
