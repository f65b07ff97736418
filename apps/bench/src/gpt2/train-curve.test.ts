// The loss curve against PyTorch without a GPU (issue #10: "Commit a small golden file so a test checks it without a
// GPU"): curve-golden-tiny.json holds PyTorch's curves (Hugging Face GPT2LMHeadModel, torch.optim.AdamW,
// clip_grad_norm_; float64, float32 with TF32 off, bf16 autocast) for curve-tiny over 50 Brown-corpus batches from our
// initialisation, written on the GPU machine by `device.sh cuda curve` with CURVE_GOLDEN=1 (see its `command`). Ours
// trains the same steps on the CPU ops in float32 and must pass curve-rule.ts; the same run with a deliberately
// broken optimizer (the schedule read one step late, a classic off-by-one) must fail it. The harness's own pieces
// (inputs, the batches in the trainer's order, compare, the plots) run on the CPU too.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CpuOps } from '@flashattn/cpu';
import { GPT2 } from '@flashattn/transformer';
import { Loader } from 'gpt2-train/dataset';
import { afterAll, describe, expect, it } from 'vitest';
import { curveBatches, curveSpec } from './curve-data.js';
import { formatCurveVerdict, judgeCurve, type CurveVerdict } from './curve-rule.js';
import { trainCurve } from './curve-train.js';
import { compareCurves, fingerprint, writeCurveInputs, type CurveGolden } from './train-curve.js';

const here = dirname(fileURLToPath(import.meta.url));
const goldenPath = join(here, 'curve-golden-tiny.json');
const noGolden = existsSync(goldenPath)
  ? undefined
  : `${goldenPath} is not there yet (made on the GPU machine: device.sh cuda curve with CURVE_GOLDEN=1)`;
if (noGolden) console.warn(`loss-curve golden tests skipped: ${noGolden}`);
const golden = (noGolden ? null : JSON.parse(readFileSync(goldenPath, 'utf8'))) as CurveGolden;
const dir = mkdtempSync(join(tmpdir(), 'train-curve-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Ours on the CPU ops in float32 over the golden's batches, from GPT2's init of the golden's seed. */
async function oursOnGolden(lrs: number[] = golden.spec.lrs) {
  const s = golden.spec;
  const ops = new CpuOps({ threads: 1 });
  try {
    const model = new GPT2({
      config: s.config,
      ops,
      seed: s.seed,
      paramDType: 'float32',
      computeDType: 'float32',
    });
    const init = fingerprint(await model.getParams());
    const { x, y } = curveBatches(Int32Array.from(golden.stream), s.steps, s.batch, s.seq);
    const run = await trainCurve({ ops, model, spec: { ...s, lrs }, x, y });
    return { init, run };
  } finally {
    await ops.dispose();
  }
}

describe.skipIf(!!noGolden)(
  'the loss curve against the committed PyTorch golden (CPU ops, float32)',
  () => {
    it('the golden is what the rule needs: 50 steps of curve-tiny, PyTorch in fp64, fp32 and bf16', () => {
      expect(golden.spec.configName).toBe('curve-tiny');
      expect(golden.stream).toHaveLength(
        golden.spec.steps * golden.spec.batch * golden.spec.seq + 1,
      );
      for (const m of ['fp64', 'fp32', 'bf16'] as const) {
        expect(golden.torch[m]!.losses).toHaveLength(golden.spec.steps);
        for (const l of golden.torch[m]!.losses) expect(Number.isFinite(l)).toBe(true);
      }
      // PyTorch itself learned on these batches (from about ln 512 = 6.24), so the curve says something.
      const l = golden.torch.fp64!.losses;
      expect(l[0]).toBeGreaterThan(5.5);
      expect(l.at(-1)!).toBeLessThan(l[0]! - 1);
    });

    it('ours tracks PyTorch within the fp32 rule; the schedule read one step late fails it', async () => {
      const { init, run } = await oursOnGolden();
      // GPT2's init from the seed must still be the weights PyTorch started from (else regenerate the golden:
      // device.sh cuda curve with CURVE_GOLDEN=1, see the golden's `command`).
      expect(
        init,
        'GPT2 init of the golden seed changed: regenerate curve-golden-tiny.json',
      ).toEqual(golden.init);
      const v = judgeCurve('fp32', run, golden.torch);
      console.log(formatCurveVerdict(v, 'cpu (1 thread)'));
      expect('skipped' in v).toBe(false);
      const verdict = v as CurveVerdict;
      expect(verdict.oracle).toBe('fp64');
      expect(verdict.pass).toBe(true);
      expect(verdict.ours).toBeLessThanOrEqual(verdict.bound);

      const late = golden.spec.lrs.map(
        (_, s) => golden.spec.lrs[Math.min(s + 1, golden.spec.steps - 1)]!,
      );
      const broken = judgeCurve(
        'fp32',
        (await oursOnGolden(late)).run,
        golden.torch,
      ) as CurveVerdict;
      console.log(`the schedule one step late: ${formatCurveVerdict(broken)}`);
      expect(broken.pass).toBe(false);
      expect(broken.ours).toBeGreaterThan(10 * broken.bound);
    }, 60_000);
  },
);

describe('the curve harness on the CPU', () => {
  it("the batches are the trainer's Loader order over the stream", () => {
    const stream = Int32Array.from({ length: 3 * 2 * 5 + 1 }, (_, i) => 100 + i);
    const { x, y } = curveBatches(stream, 3, 2, 5);
    const loader = new Loader(stream, 2, 5);
    for (let s = 0; s < 3; s++) {
      const b = loader.next();
      expect(Array.from(x.subarray(s * 10, s * 10 + 10))).toEqual(Array.from(b.x));
      expect(Array.from(y.subarray(s * 10, s * 10 + 10))).toEqual(Array.from(b.y));
    }
    expect(x[10]).toBe(110); // step 1 starts B T tokens later
    expect(y[9]).toBe(110); // the target is the next token
    expect(() => curveBatches(stream, 4, 2, 5)).toThrow(/ends before step 3/);
  });

  it("the spec: the trainer's schedule (warmup steps / 10, cosine to lr / 10) and AdamW", () => {
    const s = curveSpec({ config: 'curve-tiny', batch: 4, seq: 64, steps: 50, seed: 1, lr: 3e-3 });
    expect(s.schedule).toMatchObject({ maxLr: 3e-3, warmup: 5, total: 50 });
    expect(s.schedule.minLr).toBeCloseTo(3e-4, 15);
    expect(s.lrs[0]).toBeCloseTo(3e-3 / 5, 15);
    expect(s.lrs[4]).toBeCloseTo(3e-3, 15);
    expect(s.lrs[49]).toBeGreaterThan(3e-4);
    expect(s.adamw).toEqual({ beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1 });
    expect(() =>
      curveSpec({ config: 'curve-tiny', batch: 1, seq: 65, steps: 1, seed: 1, lr: 1 }),
    ).toThrow(/--seq 65/);
  });
});

describe.skipIf(!!noGolden)('the curve harness on the CPU, from the golden', () => {
  it('inputs -> ours -> compare: the golden stream and init again, the verdicts and both plots', async () => {
    const s = golden.spec;
    const d = await writeCurveInputs({
      config: 'curve-tiny',
      batch: s.batch,
      seq: s.seq,
      steps: s.steps,
      seed: s.seed,
      lr: s.schedule.maxLr,
      dir,
    });
    // the Brown corpus tokenised by our GPT-2 BPE (compact vocabulary of 512) gives the golden's tokens
    expect(Array.from(d.stream)).toEqual(golden.stream);
    expect(d.init).toEqual(golden.init);
    expect(d.spec.lrs).toEqual(s.lrs);
    for (const m of ['fp64', 'fp32', 'bf16'] as const)
      writeFileSync(join(dir, `torch-${m}.json`), JSON.stringify(golden.torch[m]));
    const { run } = await oursOnGolden();
    writeFileSync(
      join(dir, 'ours-fp32.json'),
      JSON.stringify({ ...run, dtype: 'fp32', ops: 'cpu', backend: 'cpu' }),
    );
    const r = compareCurves({ dir, plot: join(dir, 'curve.png') });
    expect(r.verdicts).toHaveLength(1);
    expect(r.pass).toBe(true);
    expect(r.plots).toEqual([join(dir, 'curve.png'), join(dir, 'curve-diff.png')]);
    for (const p of r.plots) expect(readFileSync(p).subarray(1, 4).toString()).toBe('PNG');
    // without the float64 curve the fp32 curve is not judged (no oracle), and the run does not pass
    rmSync(join(dir, 'torch-fp64.json'));
    const noOracle = compareCurves({ dir });
    expect(noOracle.verdicts[0]).toMatchObject({
      dtype: 'fp32',
      skipped: expect.stringMatching(/no PyTorch float64 curve/),
    });
    expect(noOracle.pass).toBe(false);
    expect(existsSync(join(dir, 'checkpoint.safetensors'))).toBe(true);
  }, 60_000);
});
