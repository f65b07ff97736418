/**
 * AdamW over a model's flat parameters with weight decay on matrices only (embeddings and linear
 * weights; not biases or LayerNorm), as nanoGPT and llm.c configure it. The moments m and v live on the
 * ops' device in the masters' dtype; each step is one `ops.adamw` per run of neighbouring tensors that
 * share a decay flag.
 */
import { hasDeviceStep, OpsInputError, type AdamWFromStep, type Ops } from '@flashattn/core';
import type { ParamSpec } from '../model/params.js';

export interface AdamWConfig {
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
}

export const ADAMW_DEFAULTS: AdamWConfig = { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1 };

export class AdamW<Buf = unknown> {
  /** First moments, same layout as the parameters. */
  readonly m: Buf;
  /** Second moments. */
  readonly v: Buf;
  /** Steps taken (the bias-correction t of the next step is t + 1). */
  t = 0;
  private readonly ranges: Array<{ lo: number; hi: number; decay: boolean }>;

  constructor(
    private readonly ops: Ops<Buf>,
    specs: readonly ParamSpec[],
    n: number,
    readonly config: AdamWConfig = ADAMW_DEFAULTS,
    dtype: 'float32' | 'float64' = 'float32',
  ) {
    const extent = specs.reduce((e, s) => Math.max(e, s.offset + s.size), 0);
    if (!Number.isSafeInteger(n) || n < extent)
      throw new OpsInputError(
        'AdamW n',
        `an integer >= ${extent} (the specs' layout: a model's paramsLength)`,
        n,
      );
    this.m = ops.alloc(n, dtype);
    this.v = ops.alloc(n, dtype);
    // Merge neighbouring tensors with the same decay flag into one range.
    this.ranges = [];
    for (const s of specs) {
      const last = this.ranges[this.ranges.length - 1];
      if (last && last.decay === s.decay && last.hi === s.offset) last.hi = s.offset + s.size;
      else this.ranges.push({ lo: s.offset, hi: s.offset + s.size, decay: s.decay });
    }
  }

  async step(params: Buf, grads: Buf, lr: number): Promise<void> {
    this.t++;
    const { beta1, beta2, eps, weightDecay } = this.config;
    const ops = this.ops;
    for (const r of this.ranges) {
      const n = r.hi - r.lo;
      const at = (b: Buf): Buf => ops.view(b, r.lo, n);
      await ops.adamw(at(params), at(grads), at(this.m), at(this.v), {
        lr,
        beta1,
        beta2,
        eps,
        weightDecay: r.decay ? weightDecay : 0,
        t: this.t,
      });
    }
  }

  /**
   * The ops of one step with its scalars on the device (DeviceStepOps.adamwFrom): hyper = adamwHyper(lr, beta1,
   * beta2, t) written by the caller, and the clip of an accumulated gradient. Queued, no host read, and t is NOT
   * advanced: a graphed step records this once and the caller advances t and rewrites hyper before each launch
   * (train/graphed-step.ts).
   */
  async queueStepFrom(
    params: Buf,
    grads: Buf,
    hyper: Buf,
    clip?: AdamWFromStep<Buf>['clip'],
  ): Promise<void> {
    const ops = this.ops;
    if (!hasDeviceStep(ops))
      throw new OpsInputError(
        'AdamW.queueStepFrom',
        `a backend with DeviceStepOps (adamwFrom); ${ops.name} has none`,
        'a call',
      );
    const { beta1, beta2, eps, weightDecay } = this.config;
    for (const r of this.ranges) {
      const n = r.hi - r.lo;
      const at = (b: Buf): Buf => ops.view(b, r.lo, n);
      await ops.adamwFrom(at(params), at(grads), at(this.m), at(this.v), {
        beta1,
        beta2,
        eps,
        weightDecay: r.decay ? weightDecay : 0,
        hyper,
        ...(clip ? { clip } : {}),
      });
    }
  }

  /** The moments on the host (for checkpoints). */
  async getState(): Promise<{ m: Float32Array | Float64Array; v: Float32Array | Float64Array }> {
    const m = (await this.ops.download(this.m)) as Float32Array | Float64Array;
    const v = (await this.ops.download(this.v)) as Float32Array | Float64Array;
    return { m, v };
  }

  /** Restore the moments and step count (from a checkpoint). */
  async setState(
    m: Float32Array | Float64Array,
    v: Float32Array | Float64Array,
    t: number,
  ): Promise<void> {
    await this.ops.upload(this.m, m);
    await this.ops.upload(this.v, v);
    this.t = t;
  }
}
