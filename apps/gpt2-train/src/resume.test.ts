// Exact resume: a run stopped after step 3 by --stop-after (checkpoint written as on SIGINT) and resumed to step 6
// produces bitwise the same training losses as an uninterrupted 6-step run with the same seed.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseArgs } from './cli.js';
import { runTraining } from './trainer.js';

const root = mkdtempSync(join(tmpdir(), 'gpt2-resume-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const quiet = { write: () => true, isTTY: false };
const flags = (out: string, extra: string[] = []): string[] => [
  '--config', 'tiny', '--steps', '6', '--batch', '2', '--seq', '32', '--warmup', '2', '--eval-every', '3',
  '--val-batches', '1', '--sample-tokens', '0', '--ckpt-every', '0', '--seed', '42', '--out', out, ...extra,
];

describe('checkpoint resume', () => {
  it('stop at step 3 + resume to 6 == uninterrupted 6 steps (same losses, bitwise)', async () => {
    const full = await runTraining(parseArgs(flags(join(root, 'full'))), { stdout: quiet, stderr: quiet });
    // --stop-after 3: the CLI's clean stop (as on SIGINT: checkpoint and plot written)
    const part = await runTraining(parseArgs(flags(join(root, 'split'), ['--stop-after', '3'])), { stdout: quiet, stderr: quiet });
    expect(part.stoppedEarly).toBe(true);
    expect(part.steps).toBe(3);
    const resumed = await runTraining(parseArgs(flags(join(root, 'split'), ['--resume'])), { stdout: quiet, stderr: quiet });
    expect(resumed.steps).toBe(6);
    expect(full.history.train).toHaveLength(6);
    expect(resumed.history.train).toEqual(full.history.train); // toEqual on numbers: exact (Object.is)
    expect(resumed.history.val).toEqual(full.history.val);
    expect(resumed.finalValLoss).toBe(full.finalValLoss);
    // The run learned something even in 6 steps (losses are not all equal).
    expect(new Set(full.history.train.map(([, l]) => l)).size).toBe(6);
    // The loss curve was written as a PNG.
    const png = readFileSync(join(root, 'split', 'loss.png'));
    expect(Array.from(png.subarray(0, 8))).toEqual([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  });

  it('refuses to resume with a different batch shape, naming it', async () => {
    await expect(
      runTraining(parseArgs([...flags(join(root, 'split')), '--resume'].map((x) => (x === '32' ? '16' : x))), { stdout: quiet, stderr: quiet }),
    ).rejects.toThrow(/--batch 2 --seq 32; got --batch 2 --seq 16/);
  });
});
