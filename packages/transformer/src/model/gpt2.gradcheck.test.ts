// Whole-model gradient check: the float64 GPT-2 (CPU ops on float64 buffers, FlashAttention in
// float64) against central finite differences for EVERY parameter at a tiny size, then the float32
// model with flash and with standard (materialised) attention against that float64 model.
import { createRng, freshSeed } from '@flashattn/core';
import { CpuOps, type CpuBuffer } from '@flashattn/cpu';
import { afterAll, describe, expect, it } from 'vitest';
import type { GPT2Config } from '../config.js';
import { finiteDiff, FD_TOL } from '../test-utils/fd.js';
import { GPT2 } from './gpt2.js';

const config: GPT2Config = { vocabSize: 11, maxSeqLen: 6, nLayer: 2, nHead: 2, nEmbd: 8 };
const [B, T] = [2, 5];
const seed = freshSeed();
const msg = `seed ${seed}`;
const ops64 = new CpuOps({ threads: 1 });
const ops32 = {
  flash: new CpuOps({ threads: 2 }),
  standard: new CpuOps({ threads: 2, attention: 'standard' }),
};
afterAll(async () => {
  await ops64.dispose();
  await ops32.flash.dispose();
  await ops32.standard.dispose();
});

function batch(): { tokens: Int32Array; targets: Int32Array } {
  const rng = createRng(seed);
  const tokens = Int32Array.from({ length: B * T }, () => rng.int(config.vocabSize));
  const targets = Int32Array.from({ length: B * T }, () => rng.int(config.vocabSize));
  targets[3] = -1; // an ignored position
  return { tokens, targets };
}

/** Random weights larger than GPT-2's init (and random LN/biases) so every path carries signal. */
async function randomize(model: GPT2<CpuBuffer>, s: number): Promise<void> {
  const rng = createRng(s);
  const p = new Float64Array(model.numParams);
  for (const sp of model.specs) {
    for (let i = 0; i < sp.size; i++) {
      const z = rng.normal();
      p[sp.offset + i] = Math.fround(
        sp.init === 'ones' ? 1 + 0.2 * z : sp.init === 'zeros' ? 0.1 * z : 0.3 * z,
      );
    }
  }
  await model.setParams(p);
}

describe(`GPT-2 gradients (${msg})`, () => {
  it('float64 model: analytic gradient of every parameter matches finite differences', async () => {
    const model = new GPT2({ config, ops: ops64, paramDType: 'float64', seed });
    await randomize(model, seed);
    const { tokens, targets } = batch();
    await model.zeroGrad();
    await model.forward(tokens, targets, B, T, true);
    await model.backward();
    const analytic = Float64Array.from(model.grads as Float64Array);
    const report = await finiteDiff(
      model.params as Float64Array,
      () => model.forward(tokens, targets, B, T),
      analytic,
    );
    expect(report.checked).toBe(model.numParams);
    expect(
      report.maxErr,
      `${msg}: worst param ${model.specs.find((s) => report.worst >= s.offset && report.worst < s.offset + s.size)?.name}`,
    ).toBeLessThan(FD_TOL);
    // Every tensor gets a nonzero gradient (nothing silently disconnected).
    for (const s of model.specs) {
      let nz = 0;
      for (let i = s.offset; i < s.offset + s.size; i++) if (analytic[i] !== 0) nz++;
      if (s.name !== 'wpe.weight') expect(nz, s.name).toBeGreaterThan(0);
    }
  });

  it('float32 model with flash and standard attention matches the float64 model (tolerance rule)', async () => {
    const { tokens, targets } = batch();
    const m64 = new GPT2({ config, ops: ops64, paramDType: 'float64' });
    await randomize(m64, seed);
    await m64.zeroGrad();
    const loss64 = await m64.forward(tokens, targets, B, T, true);
    await m64.backward();
    const errs: Record<string, { loss: number; grad: number; logits: number }> = {};
    for (const kind of ['flash', 'standard'] as const) {
      const m = new GPT2({ config, ops: ops32[kind] });
      await randomize(m, seed);
      await m.zeroGrad();
      const loss = await m.forward(tokens, targets, B, T, true);
      const logitErr = maxAbsDiff(m.logits as Float32Array, m64.logits as Float64Array);
      await m.backward();
      errs[kind] = {
        loss: Math.abs(loss - loss64),
        grad: maxAbsDiff(m.grads as Float32Array, m64.grads as Float64Array),
        logits: logitErr,
      };
    }
    // Rule (STYLE.md): flash error <= 2x the standard (materialised) path's error in the same dtype,
    // plus an absolute floor of 1e-6 (~16 float32 ulps at the O(1) magnitudes here).
    for (const key of ['loss', 'grad', 'logits'] as const) {
      expect(errs.flash![key], `${msg} ${key}: ${JSON.stringify(errs)}`).toBeLessThanOrEqual(
        2 * errs.standard![key] + 1e-6,
      );
    }
    // And both are float32-accurate in absolute terms (sanity: ~1e-7 relative at these sizes).
    expect(errs.standard!.grad, msg).toBeLessThan(1e-4);
  });
});

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}
