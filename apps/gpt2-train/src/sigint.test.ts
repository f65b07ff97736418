// Ctrl-C (SIGINT) on the real CLI: it finishes the current step, writes a checkpoint and exits 130;
// --resume then carries on from that step.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const main = fileURLToPath(new URL('../dist/main.js', import.meta.url));
const out = mkdtempSync(join(tmpdir(), 'gpt2-sigint-'));
afterAll(() => rmSync(out, { recursive: true, force: true }));
const flags = ['--steps', '400', '--batch', '1', '--seq', '16', '--eval-every', '1', '--val-batches', '1', '--sample-tokens', '0', '--out', out];

describe.skipIf(!existsSync(main))('SIGINT', () => {
  it('checkpoints and exits 130; --resume continues from the saved step', async () => {
    const child = spawn(process.execPath, [main, ...flags], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const code = await new Promise<number | null>((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`no step 2 within 90 s: ${stdout}${stderr}`));
      }, 90_000);
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      // Validation lines ("step N: train loss ...") go to stderr with the progress bar.
      child.stderr.on('data', (d: Buffer) => {
        stderr += d.toString();
        if (/step 2: train loss/.test(stderr) && !child.killed) child.kill('SIGINT');
      });
      child.on('exit', (c) => {
        clearTimeout(timer);
        resolve(c);
      });
    });
    expect(code, stdout).toBe(130);
    const m = /stopped at step (\d+)/.exec(stdout);
    expect(m, stdout).not.toBeNull();
    const stoppedAt = Number(m![1]);
    expect(stoppedAt).toBeGreaterThanOrEqual(2);
    expect(stoppedAt).toBeLessThan(400);
    const r = spawnSync(process.execPath, [main, ...flags.map((f) => (f === '400' ? String(stoppedAt + 1) : f)), '--resume'], { encoding: 'utf8', timeout: 90_000 });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain(`resumed ${join(out, 'checkpoint.safetensors')} at step ${stoppedAt}`);
    expect(r.stdout).toContain(`done at step ${stoppedAt + 1}`);
  });
});
