// What the trainer reads back from the device: per optimizer step one loss scalar per micro-step
// (ops.sum) and one gradient norm (ops.sumSquares), nothing else; the rest (the final evaluation and the
// checkpoint's parameters and AdamW moments) happens once at the end. Counted through a backend registered
// for this test: the CPU ops behind a Proxy that counts host reads.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CpuOps } from '@flashattn/cpu';
import { afterAll, describe, expect, it } from 'vitest';
import { parseArgs } from './cli.js';
import { registerCountingBackend } from './test-utils/counting-backend.js';
import { runTraining } from './trainer.js';

const root = mkdtempSync(join(tmpdir(), 'gpt2-readback-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const reads = registerCountingBackend('counting-cpu', () => new CpuOps({ threads: 1 }));

describe('device read-backs of a training run', () => {
  it('per step: K losses and one gradient norm; the checkpoint and final evaluation once', async () => {
    const steps = 3;
    const K = 2;
    await runTraining(
      parseArgs([
        '--backend',
        'counting-cpu',
        '--config',
        'tiny',
        '--steps',
        String(steps),
        '--batch',
        '1',
        '--seq',
        '16',
        '--total-batch',
        String(16 * K),
        '--eval-every',
        '0',
        '--val-batches',
        '1',
        '--ckpt-every',
        '0',
        '--sample-tokens',
        '0',
        '--out',
        join(root, 'run'),
      ]),
      { stdout: { write: () => true }, stderr: { write: () => true } },
    );
    // + 1 sum: the final validation batch
    expect(reads.sum).toBe(steps * K + 1);
    expect(reads.sumSquares).toBe(steps);
    // the checkpoint at the end: parameters, AdamW m and v
    expect(reads.download).toBe(3);
  });
});
