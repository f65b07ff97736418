// Kill -9 a process while it writes a checkpoint: the previous checkpoint must survive intact.
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CpuOps } from '@flashattn/cpu';
import { AdamW, GPT2, loadCheckpoint } from '@flashattn/transformer';
import { afterAll, describe, expect, it } from 'vitest';

const dir = mkdtempSync(join(tmpdir(), 'gpt2-kill-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const child = fileURLToPath(new URL('./test-utils/write-then-hang.mjs', import.meta.url));

describe('atomic checkpoint writes', () => {
  it('SIGKILL during the write of checkpoint 2 leaves checkpoint 1 loadable and unchanged', async () => {
    const path = join(dir, 'checkpoint.safetensors');
    const seed = 99;
    const proc = spawn(process.execPath, [child, path, String(seed)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`child never reached MIDWRITE; stdout: ${out}`)),
        60_000,
      );
      proc.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('MIDWRITE')) {
          clearTimeout(timer);
          proc.kill('SIGKILL');
          resolve();
        }
      });
      proc.on('exit', () => {
        clearTimeout(timer);
        if (!out.includes('MIDWRITE')) reject(new Error(`child exited early; stdout: ${out}`));
      });
    });
    await new Promise((r) => proc.once('exit', r).once('close', r));
    expect(out).toContain('SAVED1');
    expect(out).not.toContain('SAVED2');
    // The half-written temp file is there (the kill really hit mid-write) ...
    const temps = readdirSync(dir).filter((f) => f.includes('.tmp-'));
    expect(temps).toHaveLength(1);
    expect(statSync(join(dir, temps[0]!)).size).toBe(4096);
    // ... and the checkpoint is still v1: step 1 and the seed's initial weights.
    const ops = new CpuOps({ threads: 1 });
    const config = { vocabSize: 64, maxSeqLen: 16, nLayer: 2, nHead: 2, nEmbd: 32 };
    const fresh = new GPT2({ config, ops, seed });
    const loaded = new GPT2({ config, ops, seed: seed + 1 });
    const opt = new AdamW(ops, loaded.specs, loaded.paramsLength);
    expect(await loaded.getParams()).not.toEqual(await fresh.getParams());
    const st = await loadCheckpoint(path, loaded, opt, { requireOptimizer: true });
    expect(st.step).toBe(1);
    expect(st.dataPosition).toBe(100);
    expect(await loaded.getParams()).toEqual(await fresh.getParams());
    await ops.dispose();
  });
});
