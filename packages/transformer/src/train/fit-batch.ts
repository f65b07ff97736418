/**
 * Fit one fixed batch for a few steps: the classic sanity check of a training backend (the loss must
 * fall), and how the tests compare backends step by step (same initialisation, same batch: the losses
 * and clipped gradient norms of two backends must agree within the precision rule). The step is the
 * trainer's: zero grads, forward with the loss, backward, clip at 1.0, AdamW, sync compute copies.
 */
import type { Ops } from '@flashattn/core';
import { createRng } from '@flashattn/core';
import type { GPT2Config } from '../config.js';
import { GPT2 } from '../model/gpt2.js';
import { AdamW } from './adamw.js';
import { clipGradNorm } from './clip.js';

export interface FitBatchOptions {
  config: GPT2Config;
  batch: number; // B
  seq: number; // T
  steps: number;
  /** Initialisation and batch seed. */
  seed: number;
  dtype: 'float32' | 'float64';
  lr: number;
  /** Every `ignoreEvery`-th target (from `ignoreOffset`) is -1 (ignored), so the ignore path is exercised. */
  ignoreEvery: number;
  ignoreOffset: number;
}

export interface FitBatchResult {
  losses: number[]; // (steps)
  norms: number[]; // (steps) gradient norms before clipping
  params: Float32Array | Float64Array; // the final parameters, read back
}

export async function fitOneBatch<Buf>(ops: Ops<Buf>, o: FitBatchOptions): Promise<FitBatchResult> {
  const { config, batch: B, seq: T } = o;
  const model = new GPT2({ config, ops, paramDType: o.dtype, seed: o.seed });
  const opt = new AdamW(ops, model.specs, model.paramsLength, undefined, o.dtype);
  const rng = createRng(o.seed ^ 0x5bd1e995);
  const tokens = Int32Array.from({ length: B * T }, () => rng.int(config.vocabSize)); // (B, T)
  const targets = Int32Array.from({ length: B * T }, (_, i) =>
    i % o.ignoreEvery === o.ignoreOffset ? -1 : rng.int(config.vocabSize),
  ); // (B, T)
  const losses: number[] = [];
  const norms: number[] = [];
  for (let s = 0; s < o.steps; s++) {
    await model.zeroGrad();
    losses.push(await model.forward(tokens, targets, B, T, true));
    await model.backward();
    norms.push(await clipGradNorm(ops, model.grads, 1.0));
    await opt.step(model.params, model.grads, o.lr);
    await model.syncParams();
  }
  return { losses, norms, params: await model.getParams() };
}
