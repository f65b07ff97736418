// --backend goes through core's registry: installed backends are discovered (no list in the app), 'auto'
// takes the most preferred one with device ops and says why for each, and an unknown name is an error
// that names the backends that are installed.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseArgs } from './cli.js';
import { runTraining } from './trainer.js';

const root = mkdtempSync(join(tmpdir(), 'gpt2-backend-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const quiet = { write: () => true, isTTY: false };
const flags = (backend: string): string[] => [
  '--backend',
  backend,
  '--config',
  'tiny',
  '--steps',
  '1',
  '--batch',
  '1',
  '--seq',
  '16',
  '--eval-every',
  '0',
  '--val-batches',
  '1',
  '--sample-tokens',
  '0',
  '--ckpt-every',
  '0',
  '--out',
  join(root, backend),
];

describe('--backend', () => {
  it("'auto' resolves to a backend with device ops and prints the reason for each candidate", async () => {
    let log = '';
    const out = { write: (s: string) => ((log += s), true), isTTY: false };
    const s = await runTraining(parseArgs(flags('auto')), { stdout: out, stderr: quiet });
    expect(s.steps).toBe(1);
    expect(log).toMatch(/backend --auto: .*cpu: taken \(\d+ cores\)/);
  });

  it('an unknown backend is a BackendUnavailableError naming the registered ones', async () => {
    await expect(
      runTraining(parseArgs(flags('nosuch')), { stdout: quiet, stderr: quiet }),
    ).rejects.toThrow(/no backend named 'nosuch' is registered \(registered: .*cpu/);
  });
});
