// The profiling wrapper forwards every op: a model on the wrapped CPU ops (profiling on and off) trains
// to exactly the unwrapped model's losses and weights; the per-category times are non-negative, cover the
// model's op kinds and sum to no more than the step's wall time; the reference ops (no synchronize)
// drain through a download and the KV-cache contract stays visible through the wrapper.
import {
  createReferenceOps,
  createRng,
  freshSeed,
  hasKvCacheAttention,
  type Ops,
} from '@flashattn/core';
import { CpuOps } from '@flashattn/cpu';
import { afterAll, describe, expect, it } from 'vitest';
import type { GPT2Config } from '../config.js';
import { GPT2 } from '../model/gpt2.js';
import { AdamW } from '../train/adamw.js';
import { clipGradNorm } from '../train/clip.js';
import { OP_CATEGORIES, profileOps, type OpProfile } from './profiled-ops.js';

const config: GPT2Config = { vocabSize: 31, maxSeqLen: 16, nLayer: 2, nHead: 2, nEmbd: 16 };
const [B, T] = [2, 16];
const seed = freshSeed();
const cpuA = new CpuOps({ threads: 1 });
const cpuB = new CpuOps({ threads: 1 });
afterAll(async () => {
  await cpuA.dispose();
  await cpuB.dispose();
});

async function train<Buf>(
  ops: Ops<Buf>,
  profile: OpProfile | null,
): Promise<{ losses: number[]; params: Float32Array | Float64Array; stepMs: number[] }> {
  const model = new GPT2({ config, ops, seed });
  const opt = new AdamW(ops, model.specs, model.paramsLength);
  const rng = createRng(seed ^ 0x2545f491);
  const losses: number[] = [];
  const stepMs: number[] = [];
  for (let s = 0; s < 3; s++) {
    const tokens = Int32Array.from({ length: B * T }, () => rng.int(config.vocabSize));
    const targets = Int32Array.from({ length: B * T }, () => rng.int(config.vocabSize));
    // Profile the middle step only (as train-bench does: one extra profiled step).
    if (profile && s === 1) await profile.start();
    const t0 = performance.now();
    await model.zeroGrad();
    losses.push(await model.forward(tokens, targets, B, T, true));
    await model.backward();
    await clipGradNorm(ops, model.grads, 1.0);
    await opt.step(model.params, model.grads, 1e-2);
    await model.syncParams();
    stepMs.push(performance.now() - t0);
    if (profile && s === 1) profile.stop();
  }
  return { losses, params: await model.getParams(), stepMs };
}

describe(`profileOps (seed ${seed})`, () => {
  it('forwards every op: wrapped (profiled step included) and unwrapped train identically', async () => {
    const plain = await train(cpuA, null);
    const { ops, profile } = profileOps(cpuB);
    const wrapped = await train(ops, profile);
    expect(wrapped.losses).toEqual(plain.losses);
    expect(Array.from(wrapped.params)).toEqual(Array.from(plain.params));

    const r = profile.report();
    expect(r.drain).toBe('download'); // CpuOps has no synchronize()
    expect(Object.keys(r.categories).sort()).toEqual([...OP_CATEGORIES].sort());
    for (const c of OP_CATEGORIES) expect(r.categories[c]).toBeGreaterThanOrEqual(0);
    // Every kind of op a training step runs was seen once at least.
    for (const op of [
      'matmul',
      'attentionForward',
      'attentionBackward',
      'layernormForward',
      'layernormBackward',
      'softmaxCrossEntropy',
      'adamw',
      'embeddingForward',
      'embeddingBackward',
      'add',
      'biasBackward',
      'sum',
      'sumSquares',
      'zero',
    ])
      expect(r.byOp[op]?.calls, op).toBeGreaterThan(0);
    // 2 layers: forward 4 matmuls per block + head; backward 2 per forward matmul -> 9 + 18 = 27. GELU is the
    // fc matmul's epilogue (geluPre / dgeluPre), so the model calls no GELU op of its own.
    expect(r.byOp['matmul']!.calls).toBe(27);
    expect(r.byOp['geluForward'] ?? r.byOp['geluBackward']).toBeUndefined();
    expect(r.byOp['adamw']!.calls).toBeGreaterThan(0);
    expect(r.totalMs).toBeLessThanOrEqual(wrapped.stepMs[1]!);
    const sumByOp = Object.values(r.byOp).reduce((s, e) => s + e.ms, 0);
    expect(sumByOp).toBeCloseTo(r.totalMs, 6);
    // Off again: nothing more is counted.
    const before = r.byOp['matmul']!.calls;
    expect(profile.enabled).toBe(false);
    expect(profile.report().byOp['matmul']!.calls).toBe(before);
  });

  it('counts the bytes allocated and freed through it, and their peak', () => {
    const { ops, profile } = profileOps(cpuA);
    const a = ops.alloc(100, 'float32'); // 400 bytes
    const b = ops.alloc(10, 'float64'); // 80
    ops.view(a, 0, 50); // views hold nothing
    expect(profile.allocations()).toEqual({ liveBytes: 480, peakBytes: 480 });
    ops.free(a);
    expect(profile.allocations()).toEqual({ liveBytes: 80, peakBytes: 480 });
    profile.resetPeak();
    const c = ops.alloc(4, 'int32');
    expect(profile.allocations()).toEqual({ liveBytes: 96, peakBytes: 96 });
    ops.free(b);
    ops.free(c);
    expect(profile.allocations().liveBytes).toBe(0);
  });

  it('works on opaque buffers (core reference ops) and keeps optional contracts visible', async () => {
    const ref = createReferenceOps();
    const { ops, profile } = profileOps(ref);
    expect(hasKvCacheAttention(ops)).toBe(hasKvCacheAttention(ref));
    await profile.start();
    const x = ops.alloc(4, 'float32');
    await ops.upload(x, new Float32Array([1, 2, 3, 4]));
    expect(await ops.sumSquares(x)).toBe(30);
    const r = profile.report();
    expect(r.byOp['upload']!.calls).toBe(1);
    expect(r.byOp['sumSquares']!.calls).toBe(1);
    expect(r.categories.other).toBe(r.totalMs);
    expect(ops.lengthOf(ops.view(x, 1, 2))).toBe(2);
  });
});
