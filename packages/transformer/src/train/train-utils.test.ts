// AdamW, the LR schedule and clipping against formulas written out independently here.
import { afterAll, describe, expect, it } from 'vitest';
import { CpuOps } from '@flashattn/cpu';
import type { ParamSpec } from '../model/params.js';
import { AdamW } from './adamw.js';
import { clipGradNorm } from './clip.js';
import { learningRate } from './schedule.js';

const ops = new CpuOps({ threads: 1 });
afterAll(() => ops.dispose());

describe('AdamW', () => {
  it('two steps match the paper formulas; weight decay only on matrices', async () => {
    const specs: ParamSpec[] = [
      { name: 'w', shape: [1, 2], offset: 0, size: 2, decay: true, init: 'normal' },
      { name: 'b', shape: [1], offset: 2, size: 1, decay: false, init: 'zeros' },
    ];
    const cfg = { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1 };
    const opt = new AdamW(ops, specs, 3, cfg, 'float64');
    const p = ops.alloc(3, 'float64');
    p.set([1, -2, 0.5]);
    const grads = [
      [0.1, 0.2, -0.3],
      [-0.05, 0.4, 0.1],
    ];
    const want = [1, -2, 0.5];
    const m = [0, 0, 0];
    const v = [0, 0, 0];
    for (let t = 1; t <= 2; t++) {
      const g = ops.alloc(3, 'float64');
      g.set(grads[t - 1]!);
      await opt.step(p, g, 0.01);
      for (let i = 0; i < 3; i++) {
        m[i] = 0.9 * m[i]! + 0.1 * grads[t - 1]![i]!;
        v[i] = 0.95 * v[i]! + 0.05 * grads[t - 1]![i]! ** 2;
        const mhat = m[i]! / (1 - 0.9 ** t);
        const vhat = v[i]! / (1 - 0.95 ** t);
        const wd = i < 2 ? 0.1 : 0;
        want[i] = want[i]! - 0.01 * (mhat / (Math.sqrt(vhat) + 1e-8) + wd * want[i]!);
      }
    }
    for (let i = 0; i < 3; i++) expect(p[i]).toBeCloseTo(want[i]!, 14);
    expect(opt.t).toBe(2);
  });
});

describe('cosine schedule with warmup', () => {
  const s = { maxLr: 1e-3, minLr: 1e-4, warmup: 10, total: 110 };
  it('warms up linearly, peaks, hits the midpoint and the floor', () => {
    expect(learningRate(s, 0)).toBeCloseTo(1e-4, 15);
    expect(learningRate(s, 9)).toBeCloseTo(1e-3, 15);
    expect(learningRate(s, 10)).toBeCloseTo(1e-3, 15);
    expect(learningRate(s, 60)).toBeCloseTo((1e-3 + 1e-4) / 2, 15);
    expect(learningRate(s, 110)).toBe(1e-4);
    expect(learningRate(s, 500)).toBe(1e-4);
  });
});

describe('global gradient-norm clipping', () => {
  it('scales to maxNorm when above, leaves alone when below', async () => {
    const g = ops.alloc(2, 'float64');
    g.set([3, 4]);
    expect(await clipGradNorm(ops, g, 1)).toBeCloseTo(5, 14);
    expect(Math.hypot(g[0]!, g[1]!)).toBeCloseTo(1, 5);
    g.set([0.3, 0.4]);
    expect(await clipGradNorm(ops, g, 1)).toBeCloseTo(0.5, 14);
    expect(Array.from(g)).toEqual([0.3, 0.4]);
  });
});
