// --graphs: the recorded step (GraphedTrainStep) in the trainer. A backend registered for this test gives core's
// float64 reference ops with host-recorded graphs (withRecordedGraphs), so 'auto' turns graphs on there; the same
// run with --graphs off is the eager step. The two compute the same step with different roundings in float32
// buffers: the eager step rescales the float32 gradient buffer by the clip factor (one rounding) where the graphed
// one multiplies inside AdamW, and its loss and norm are float32 on the device where the eager step sums in
// float64. Those 2^-24-sized differences grow through the AdamW steps (measured: 3e-6 relative after 4 steps); the
// bound, 1e-4 relative, is 30x that and 100x below what a plumbing error costs (the negative control: the same run
// with a 10% different learning rate is > 1e-2 off). The graphed run reads back once per step, and a resumed graphed
// run continues exactly. On the CPU backend (no graphs) --graphs on is a UsageError that says why.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createReferenceOps, withRecordedGraphs } from '@flashattn/core';
import { afterAll, describe, expect, it } from 'vitest';
import { parseArgs, UsageError } from './cli.js';
import { registerCountingBackend } from './test-utils/counting-backend.js';
import { runTraining } from './trainer.js';

const root = mkdtempSync(join(tmpdir(), 'gpt2-graphs-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const reads = registerCountingBackend('reference-graphs', () =>
  withRecordedGraphs(createReferenceOps()),
);

const flags = (out: string, extra: string[] = []): string[] => [
  '--backend',
  'reference-graphs',
  '--config',
  'tiny',
  '--steps',
  '4',
  '--batch',
  '1',
  '--seq',
  '16',
  '--total-batch',
  '32',
  '--lr',
  '3e-2',
  '--eval-every',
  '0',
  '--val-batches',
  '1',
  '--ckpt-every',
  '0',
  '--sample-tokens',
  '0',
  '--out',
  join(root, out),
  ...extra,
];

async function train(argv: string[]): Promise<{ log: string; losses: number[] }> {
  let log = '';
  const stdout = { write: (s: string) => ((log += s), true), isTTY: false };
  const s = await runTraining(parseArgs(argv), { stdout, stderr: { write: () => true } });
  return { log, losses: s.history.train.map(([, l]) => l) };
}

describe('gpt2-train --graphs', () => {
  it('auto: graphed on a backend with graphs, one read-back per step, the eager run within float32 rounding', async () => {
    reads.sum = reads.sumSquares = reads.download = 0;
    const g = await train(flags('graphed'));
    expect(g.log).toMatch(/graphs: on \(each micro-step and the optimizer recorded once/);
    // 4 steps: one download each (the losses and the norm together); then the final validation (1 sum) and the
    // checkpoint (3 downloads)
    expect(reads).toEqual({ sum: 1, sumSquares: 0, download: 4 + 3 });
    const e = await train(flags('eager', ['--graphs', 'off']));
    expect(e.log).toMatch(/graphs: off \(--graphs off\)/);
    expect(g.losses).toHaveLength(4);
    const rel = (a: number[], b: number[]): number =>
      Math.max(...a.map((x, i) => Math.abs(x - b[i]!) / Math.abs(b[i]!)));
    expect(rel(g.losses, e.losses)).toBeLessThanOrEqual(1e-4);
    // the negative control: a plumbing-sized error (another learning rate) is far outside the bound
    const lr = flags('eager-lr', ['--graphs', 'off']);
    lr[lr.indexOf('--lr') + 1] = '3.3e-2';
    expect(rel((await train(lr)).losses, e.losses)).toBeGreaterThan(1e-2);
    // the run trains: the losses are not one value repeated
    expect(new Set(g.losses).size).toBe(4);
  });

  it('a graphed run stopped and resumed repeats the uninterrupted losses exactly', async () => {
    const full = await train(flags('full'));
    await train(flags('split', ['--stop-after', '2']));
    const resumed = await train(flags('split', ['--resume']));
    expect(resumed.log).toMatch(/graphs: on/);
    expect(resumed.losses).toEqual(full.losses);
  });

  it('--graphs on where the backend has none is a UsageError saying why', async () => {
    await expect(
      runTraining(
        parseArgs(
          [...flags('cpu-on', ['--graphs', 'on'])].map((x) =>
            x === 'reference-graphs' ? 'cpu' : x,
          ),
        ),
        { stdout: { write: () => true }, stderr: { write: () => true } },
      ),
    ).rejects.toThrow(UsageError);
    await expect(
      runTraining(
        parseArgs(
          [...flags('cpu-on2', ['--graphs', 'on'])].map((x) =>
            x === 'reference-graphs' ? 'cpu' : x,
          ),
        ),
        { stdout: { write: () => true }, stderr: { write: () => true } },
      ),
    ).rejects.toThrow(/--graphs on: .*no DeviceStepOps/);
  });
});
