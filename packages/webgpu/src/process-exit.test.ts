/**
 * A Node process that used the backend must exit by itself after dispose() (Dawn-node keeps the
 * process alive while its GPU object is referenced, and an idle device can spin a core until it is
 * destroyed). The package is bundled with esbuild into a child script that runs one forward and
 * disposes; the test asserts the child exits 0 on its own, well inside the timeout.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { describe, expect, it } from 'vitest';
import { defaultToSwiftShader, probeAdapter, webgpuRequired } from './test-utils/env.js';

defaultToSwiftShader();

const unavailable = await probeAdapter();
const skip = unavailable !== undefined && !webgpuRequired();
if (skip) console.warn(`process-exit test skipped: no WebGPU adapter: ${unavailable}`);

const CHILD = `
import { createWebGPUBackend } from './webgpu.mjs';
const be = await createWebGPUBackend();
const n = 1 * 4 * 1 * 16;
const t = { dtype: 'float32', shape: [1, 4, 1, 16], data: new Float32Array(n).fill(0.5) };
const r = await be.forward(t, t, t);
be.dispose();
console.log('forward ok', r.out.data[0]);
`;

describe.skipIf(skip)('process lifetime', () => {
  it('exits on its own after dispose()', async () => {
    const dir = fileURLToPath(new URL('../node_modules/.cache/flashattn-exit-test/', import.meta.url));
    mkdirSync(dir, { recursive: true });
    await build({
      entryPoints: [fileURLToPath(new URL('./index.ts', import.meta.url))],
      bundle: true,
      platform: 'node',
      format: 'esm',
      external: ['webgpu'],
      outfile: `${dir}webgpu.mjs`,
      logLevel: 'error',
    });
    writeFileSync(`${dir}child.mjs`, CHILD);
    const t0 = performance.now();
    const res = spawnSync(process.execPath, [`${dir}child.mjs`], { encoding: 'utf8', timeout: 90_000, env: process.env });
    const seconds = (performance.now() - t0) / 1000;
    expect(res.error, `child did not exit by itself within 90 s: ${String(res.error)}`).toBeUndefined();
    expect(res.status, res.stderr).toBe(0);
    // All keys see equal scores, so out = mean of v rows = 0.5 exactly.
    expect(res.stdout).toContain('forward ok 0.5');
    console.log(`child exited with 0 after ${seconds.toFixed(1)} s`);
  }, 120_000);
});
