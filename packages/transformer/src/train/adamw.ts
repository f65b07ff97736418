/**
 * AdamW over a model's flat parameters with weight decay on matrices only (embeddings and linear
 * weights; not biases or LayerNorm), as nanoGPT and llm.c configure it.
 */
import type { ParamSpec } from '../model/params.js';
import type { FloatArray, Ops } from '../ops/ops.js';

export interface AdamWConfig {
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
}

export const ADAMW_DEFAULTS: AdamWConfig = { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1 };

export class AdamW {
  readonly m: FloatArray;
  readonly v: FloatArray;
  /** Steps taken (the bias-correction t of the next step is t + 1). */
  t = 0;
  private readonly ranges: Array<{ lo: number; hi: number; decay: boolean }>;

  constructor(
    private readonly ops: Ops,
    specs: readonly ParamSpec[],
    n: number,
    readonly config: AdamWConfig = ADAMW_DEFAULTS,
  ) {
    this.m = ops.alloc(n);
    this.v = ops.alloc(n);
    // Merge neighbouring tensors with the same decay flag into one range.
    this.ranges = [];
    for (const s of specs) {
      const last = this.ranges[this.ranges.length - 1];
      if (last && last.decay === s.decay && last.hi === s.offset) last.hi = s.offset + s.size;
      else this.ranges.push({ lo: s.offset, hi: s.offset + s.size, decay: s.decay });
    }
  }

  async step(params: FloatArray, grads: FloatArray, lr: number): Promise<void> {
    this.t++;
    const { beta1, beta2, eps, weightDecay } = this.config;
    for (const r of this.ranges) {
      await this.ops.adamw(params, grads, this.m, this.v, r.lo, r.hi, {
        lr, beta1, beta2, eps, weightDecay: r.decay ? weightDecay : 0, t: this.t,
      });
    }
  }
}
