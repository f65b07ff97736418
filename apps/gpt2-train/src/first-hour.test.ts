// The rough edges a new user hit on a fresh clone (issue 14): bad values that only the run can judge
// exit like parse errors (UsageError, status 2 with usage), an existing run is never silently replaced,
// a resumed run keeps its schedule, output paths are the user's, and no "NaN" is printed for a loss
// that was never measured.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { parseArgs, UsageError } from './cli.js';
import { runTraining } from './trainer.js';

const root = mkdtempSync(join(tmpdir(), 'gpt2-first-hour-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

function capture(): { write: (s: string) => boolean; isTTY: boolean; text: () => string } {
  let t = '';
  return { write: (s: string) => ((t += s), true), isTTY: false, text: () => t };
}
const small = [
  '--batch',
  '1',
  '--seq',
  '16',
  '--val-batches',
  '1',
  '--sample-tokens',
  '0',
  '--eval-every',
  '0',
];

async function run(argv: string[], stopAfterStep?: number): Promise<string> {
  const out = capture();
  await runTraining(parseArgs(argv), { stdout: out, stderr: capture(), stopAfterStep });
  return out.text();
}

describe('gpt2-train rough edges', () => {
  it('--seq past the model is a UsageError naming the limit, and the CLI exits 2 with usage', async () => {
    await expect(run(['--seq', '100000', '--out', join(root, 'seq')])).rejects.toThrow(UsageError);
    await expect(run(['--seq', '100000', '--out', join(root, 'seq')])).rejects.toThrow(
      /--seq <= 1024/,
    );
    const main = fileURLToPath(new URL('../dist/main.js', import.meta.url));
    if (!existsSync(main)) return; // typecheck-only runs; `pnpm test` builds first
    const r = spawnSync(process.execPath, [main, '--seq', '100000', '--out', join(root, 'seq')], {
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/--seq 100000 exceeds/);
    expect(r.stderr).toMatch(/Usage: gpt2-train/);
  });

  it('--steps 0 and a stop before the first evaluation print no NaN', async () => {
    const zero = await run(['--steps', '0', ...small, '--out', join(root, 'zero')]);
    expect(zero).toMatch(/done at step 0: no training step run, val loss \d/);
    expect(zero).not.toMatch(/NaN/);
    const stopped = await run(['--steps', '50', ...small, '--out', join(root, 'stop')], 1);
    expect(stopped).toMatch(/stopped at step 1: train loss \d[\d.]*, no validation loss yet/);
    expect(stopped).not.toMatch(/NaN/);
  });

  it('refuses to replace an existing run without --overwrite, and rejects --steps below the checkpoint', async () => {
    const out = join(root, 'existing');
    await run(['--steps', '2', '--warmup', '1', ...small, '--out', out]);
    await expect(run(['--steps', '2', ...small, '--out', out])).rejects.toThrow(
      /already exists: pass --resume to continue that run, --overwrite to replace it/,
    );
    await expect(run(['--resume', '--steps', '1', '--out', out])).rejects.toThrow(
      /--steps 1 is below the checkpoint's step 2/,
    );
    expect(() => parseArgs(['--resume', '--overwrite'])).toThrow(UsageError);
    // --resume alone continues with the checkpoint's batch, seq, steps and warmup (here: nothing to train).
    const resumed = await run([
      '--resume',
      '--out',
      out,
      '--sample-tokens',
      '0',
      '--val-batches',
      '1',
    ]);
    expect(resumed).toMatch(/batch 1 x seq 16 = 16 tokens\/step, steps 2->2, .*\(warmup 1,/);
    // A longer resumed run keeps warmup 1 instead of recomputing min(100, steps / 10) = 10.
    const longer = await run(
      ['--resume', '--steps', '100', '--out', out, '--sample-tokens', '0', '--val-batches', '1'],
      3,
    );
    expect(longer).toMatch(/steps 2->100, .*\(warmup 1,/);
    // --overwrite starts over.
    const again = await run(['--steps', '1', ...small, '--out', out, '--overwrite']);
    expect(again).toMatch(/done at step 1/);
  });

  it('resolves --out against the directory the user ran the command from (INIT_CWD) and prints the real path', async () => {
    const userDir = join(root, 'user-cwd');
    mkdirSync(userDir);
    const saved = process.env.INIT_CWD;
    process.env.INIT_CWD = userDir;
    try {
      const text = await run(['--steps', '1', ...small, '--out', 'runs/rel']);
      expect(existsSync(join(userDir, 'runs', 'rel', 'checkpoint.safetensors'))).toBe(true);
      expect(text).toContain(
        `checkpoint ${join(userDir, 'runs', 'rel', 'checkpoint.safetensors')}`,
      );
    } finally {
      if (saved === undefined) delete process.env.INIT_CWD;
      else process.env.INIT_CWD = saved;
    }
  });
});
