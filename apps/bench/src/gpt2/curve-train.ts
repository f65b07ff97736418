/**
 * Our side of the loss curve (train-curve.ts): the trainer's optimizer step (apps/gpt2-train trainer.ts
 * with one micro-step, as train-bench.ts times it) repeated over the curve's batches: zero grads, forward
 * with the mean loss read back, backward, global-norm clip (its norm read back), AdamW at the step's
 * learning rate, refresh of the compute copy. Returns the loss of every step (computed before that
 * step's update, as PyTorch's loop reports it) and the gradient norm before clipping.
 */
import type { Ops } from '@flashattn/core';
import { AdamW, clipGradNorm, type GPT2 } from '@flashattn/transformer';
import type { CurveSpec } from './curve-data.js';

export interface CurveRun {
  losses: number[];
  norms: number[];
}

export async function trainCurve<Buf>(o: {
  ops: Ops<Buf>;
  model: GPT2<Buf>;
  spec: Pick<CurveSpec, 'batch' | 'seq' | 'steps' | 'lrs' | 'adamw' | 'clip'>;
  x: Int32Array; // (S, B, T)
  y: Int32Array; // (S, B, T)
  log?: (step: number, loss: number, norm: number) => void;
}): Promise<CurveRun> {
  const { ops, model, spec, x, y } = o;
  const { batch: B, seq: T, steps } = spec;
  const BT = B * T;
  if (x.length !== steps * BT || y.length !== steps * BT)
    throw new RangeError(
      `x and y must hold ${steps} x ${B} x ${T} = ${steps * BT} tokens; got ${x.length} and ${y.length}`,
    );
  if (spec.lrs.length !== steps)
    throw new RangeError(`lrs: ${spec.lrs.length} values for ${steps} steps`);
  const opt = new AdamW(ops, model.specs, model.paramsLength, spec.adamw);
  const losses: number[] = [];
  const norms: number[] = [];
  for (let s = 0; s < steps; s++) {
    await model.zeroGrad();
    const loss = await model.forward(
      x.subarray(s * BT, (s + 1) * BT),
      y.subarray(s * BT, (s + 1) * BT),
      B,
      T,
      true,
    );
    await model.backward();
    const norm = await clipGradNorm(ops, model.grads, spec.clip);
    await opt.step(model.params, model.grads, spec.lrs[s]!);
    await model.syncParams();
    losses.push(loss);
    norms.push(norm);
    o.log?.(s, loss, norm);
    if (!Number.isFinite(loss)) throw new Error(`loss ${loss} at step ${s}`);
  }
  return { losses, norms };
}
