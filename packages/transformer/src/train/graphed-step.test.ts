// The graphed step (recordings launched per micro-step, the clip and the AdamW scalars on the device) against the
// eager step it replaces (zero grads; K x forward + backward; sumSquares; scale by min(1, maxNorm / (norm + 1e-6)) / K;
// AdamW.step; sync), on core's float64 reference ops with host-recorded graphs (withRecordedGraphs): in float64 the
// two are the same arithmetic, so every loss, norm and parameter must agree to the last bit. Ragged micro-batches
// (ignored targets, a different count per micro-step) exercise one recording per (k, count).
import {
  createReferenceOps,
  createRng,
  freshSeed,
  OpsInputError,
  withRecordedGraphs,
  type Ops,
} from '@flashattn/core';
import { describe, expect, it } from 'vitest';
import type { GPT2Config } from '../config.js';
import { GPT2 } from '../model/gpt2.js';
import { AdamW } from './adamw.js';
import { GraphedTrainStep, graphedStepUnavailableReason } from './graphed-step.js';

const config: GPT2Config = { vocabSize: 29, maxSeqLen: 8, nLayer: 2, nHead: 2, nEmbd: 16 };
const [B, T] = [2, 8];
const seed = freshSeed();

/** K micro-batches per step for `steps` steps; micro-step k ignores every (k + 3)-th target. */
function batches(steps: number, K: number): Array<Array<{ x: Int32Array; y: Int32Array }>> {
  const rng = createRng(seed ^ 0x2545f491);
  return Array.from({ length: steps }, () =>
    Array.from({ length: K }, (_, k) => ({
      x: Int32Array.from({ length: B * T }, () => rng.int(config.vocabSize)),
      y: Int32Array.from({ length: B * T }, (_, i) =>
        i % (k + 3) === 1 ? -1 : rng.int(config.vocabSize),
      ),
    })),
  );
}

async function eagerRun<Buf>(ops: Ops<Buf>, data: ReturnType<typeof batches>, maxNorm: number) {
  const model = new GPT2({ config, ops, paramDType: 'float64', seed });
  const opt = new AdamW(ops, model.specs, model.paramsLength, undefined, 'float64');
  const out = { losses: [] as number[], norms: [] as number[] };
  for (const [s, step] of data.entries()) {
    const K = step.length;
    await model.zeroGrad();
    let loss = 0;
    for (const { x, y } of step) {
      loss += await model.forward(x, y, B, T, true);
      await model.backward();
    }
    const norm = Math.sqrt(await ops.sumSquares(model.grads)) / K;
    const clip = Number.isFinite(norm) && norm > maxNorm ? maxNorm / (norm + 1e-6) : 1;
    await ops.scale(model.grads, clip / K);
    await opt.step(model.params, model.grads, 1e-2 * (1 + s));
    await model.syncParams();
    out.losses.push(loss / K);
    out.norms.push(norm);
  }
  return { ...out, params: await model.getParams(), m: (await opt.getState()).m };
}

async function graphedRun(data: ReturnType<typeof batches>, maxNorm: number) {
  const ops = withRecordedGraphs(createReferenceOps());
  const model = new GPT2({ config, ops, paramDType: 'float64', seed });
  const opt = new AdamW(ops, model.specs, model.paramsLength, undefined, 'float64');
  const K = data[0]!.length;
  const step = new GraphedTrainStep(model, opt, { B, T, K, maxNorm });
  const out = { losses: [] as number[], norms: [] as number[] };
  for (const [s, batch] of data.entries()) {
    const r = await step.step(batch, 1e-2 * (1 + s));
    out.losses.push(r.loss);
    out.norms.push(r.norm);
  }
  const graphs = step.graphs;
  step.dispose();
  return { ...out, params: await model.getParams(), m: (await opt.getState()).m, graphs, t: opt.t };
}

describe(`GraphedTrainStep (float64 reference ops, recorded graphs; seed ${seed})`, () => {
  for (const [K, maxNorm, what] of [
    [1, 1e3, 'K = 1, no clipping'],
    [3, 0.05, 'K = 3 micro-steps of ragged counts, clipping active'],
  ] as const) {
    it(`${what}: losses, norms, parameters and moments equal the eager step's`, async () => {
      const data = batches(4, K);
      const e = await eagerRun(createReferenceOps(), data, maxNorm);
      const g = await graphedRun(data, maxNorm);
      expect(g.losses).toEqual(e.losses);
      expect(g.norms).toEqual(e.norms);
      // the clip was (not) active as the case says, so both branches of the factor are covered
      expect(e.norms.every((n) => (maxNorm < 1 ? n > maxNorm : n < maxNorm))).toBe(true);
      expect(Array.from(g.params)).toEqual(Array.from(e.params));
      expect(Array.from(g.m)).toEqual(Array.from(e.m));
      expect(g.t).toBe(4);
      // one recording per micro-step (each has its own count of targets) and one for the optimizer, made once
      expect(g.graphs.micro).toBe(K);
      expect(g.graphs.optimizer).toBe(1);
      // and the run trains: the losses change from step to step
      expect(new Set(g.losses).size).toBe(4);
    });
  }

  it('a count of targets new at every step runs eagerly (no recording per count), still the eager arithmetic', async () => {
    // step s ignores every 2nd, 3rd, 5th, 7th target: counts 8, 10, 12, 13, a new one at every step
    const data = batches(4, 1).map((step, s) =>
      step.map(({ x, y }) => ({
        x,
        y: y.map((t, i) => (i % [2, 3, 5, 7][s]! === 0 ? -1 : Math.max(t, 0))),
      })),
    );
    const e = await eagerRun(createReferenceOps(), data, 0.05);
    const g = await graphedRun(data, 0.05);
    expect(g.losses).toEqual(e.losses);
    expect(Array.from(g.params)).toEqual(Array.from(e.params));
    expect(g.graphs.micro).toBe(0);
    expect(g.graphs.optimizer).toBe(1); // the optimizer's recording does not depend on the count
  });

  it('refuses a backend without graphs or device scalars, naming what is missing', () => {
    const ops = createReferenceOps();
    expect(graphedStepUnavailableReason(ops)).toMatch(/no OpsGraphs/);
    const model = new GPT2({ config, ops, paramDType: 'float64', seed });
    const opt = new AdamW(ops, model.specs, model.paramsLength, undefined, 'float64');
    expect(() => new GraphedTrainStep(model, opt, { B, T, K: 1, maxNorm: 1 })).toThrow(
      OpsInputError,
    );
  });

  it('a wrong number of micro-batches is an OpsInputError and leaves the model untouched', async () => {
    const ops = withRecordedGraphs(createReferenceOps());
    const model = new GPT2({ config, ops, paramDType: 'float64', seed });
    const opt = new AdamW(ops, model.specs, model.paramsLength, undefined, 'float64');
    const before = await model.getParams();
    const step = new GraphedTrainStep(model, opt, { B, T, K: 2, maxNorm: 1 });
    await expect(step.step(batches(1, 1)[0]!, 1e-2)).rejects.toThrow(/2 micro-batches/);
    expect(Array.from(await model.getParams())).toEqual(Array.from(before));
    expect(opt.t).toBe(0);
  });
});
