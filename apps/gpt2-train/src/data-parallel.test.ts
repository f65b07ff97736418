// Data parallel over the CPU transport (real processes through the launcher, `--workers N`) against the
// single-process run with the same seed and total batch; a killed rank; resume on another world size.
//
// Precision rule (conformance's, for a reordered float32 sum): the ranks' gradient is the same sum of
// micro-step gradients added in another order, so the data-parallel run's deviation from the
// single-process run must be at most 2x that of another reordering in one process (--batch 2 over
// the same tokens: the same 6 windows of 16 tokens, summed by the matmuls instead of accumulated
// across micro-steps) plus a floor of 4 float32 ulps. The first step's loss is bit-identical (the
// losses are gathered and added in micro-step order).
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseSafetensors } from '@flashattn/transformer';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseArgs } from './cli.js';
import { runTraining } from './trainer.js';

const main = fileURLToPath(new URL('../dist/main.js', import.meta.url));
const root = mkdtempSync(join(tmpdir(), 'gpt2-dp-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const quiet = { write: () => true, isTTY: false };
const BASE: Record<string, string> = {
  config: 'tiny',
  steps: '2',
  batch: '1',
  seq: '16',
  'total-batch': '96',
  warmup: '1',
  'eval-every': '0',
  'val-batches': '1',
  'sample-tokens': '0',
  seed: '7',
  threads: '1',
};
/** The base flags with `over` replacing or adding flags ('' = a flag without a value). */
const flags = (out: string, over: Record<string, string> = {}): string[] =>
  Object.entries({ ...BASE, ...over, out }).flatMap(([k, v]) =>
    v === '' ? [`--${k}`] : [`--${k}`, v],
  );

interface Run {
  loss: number[];
  norm: number[];
  /** parameters, exp_avg, exp_avg_sq: every tensor concatenated in the checkpoint's order. */
  p: number[];
  m: number[];
  v: number[];
  t: number;
  dataPosition: number;
}

function readRun(dir: string): Run {
  const ck = parseSafetensors(readFileSync(join(dir, 'checkpoint.safetensors')));
  const h = JSON.parse(ck.metadata['extra.history']!) as {
    train: [number, number][];
    norm: [number, number][];
  };
  const r: Run = {
    loss: h.train.map((x) => x[1]),
    norm: h.norm.map((x) => x[1]),
    p: [],
    m: [],
    v: [],
    t: 0,
    dataPosition: Number(ck.metadata['data_position']),
  };
  r.t = (JSON.parse(ck.metadata['optimizer']!) as { t: number }).t;
  for (const [k, x] of [...ck.tensors].sort(([a], [b]) => (a < b ? -1 : 1))) {
    const dst = k.startsWith('optimizer.exp_avg_sq.')
      ? r.v
      : k.startsWith('optimizer.exp_avg.')
        ? r.m
        : r.p;
    for (const e of x.data as Float32Array) dst.push(e);
  }
  return r;
}

const maxDiff = (a: number[], b: number[]): number =>
  a.reduce((d, x, i) => Math.max(d, Math.abs(x - b[i]!)), 0);
const maxAbs = (a: number[]): number => a.reduce((d, x) => Math.max(d, Math.abs(x)), 0);

/** Every quantity of `got` within 2x the reorder's deviation (+ 4 float32 ulps) of `want`. */
function expectSameRun(got: Run, want: Run, reorder: Run): void {
  expect(got.t).toBe(want.t);
  expect(got.dataPosition).toBe(want.dataPosition);
  expect(got.loss.length).toBe(want.loss.length);
  for (const k of ['loss', 'norm', 'p', 'm', 'v'] as const) {
    const allowed = 2 * maxDiff(reorder[k], want[k]) + 4 * 2 ** -23 * maxAbs(want[k]);
    expect(
      maxDiff(got[k], want[k]),
      `${k}: deviation vs the single-process run (allowed ${allowed})`,
    ).toBeLessThanOrEqual(allowed);
  }
}

function launch(
  out: string,
  extra: Record<string, string>,
): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [main, ...flags(out, extra)], {
    encoding: 'utf8',
    timeout: 120_000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe.skipIf(!existsSync(main))('data parallel (--workers, CPU transport)', () => {
  let single: Run;
  let reorder: Run;
  beforeAll(async () => {
    await runTraining(parseArgs(flags(join(root, 'single'))), { stdout: quiet, stderr: quiet });
    await runTraining(parseArgs(flags(join(root, 'reorder'), { batch: '2' })), {
      stdout: quiet,
      stderr: quiet,
    });
    single = readRun(join(root, 'single'));
    reorder = readRun(join(root, 'reorder'));
  }, 120_000);

  // World size 3 runs in the resume test (its second step), to keep CI time small.
  for (const W of [2]) {
    it(`--workers ${W}: loss, grad norm, parameters and AdamW moments match one process (precision rule above)`, () => {
      const out = join(root, `w${W}`);
      const r = launch(out, { workers: String(W) });
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout).toContain(`data parallel: ${W} ranks over cpu sockets (${W} ranks)`);
      const got = readRun(out);
      expect(got.loss[0]).toBe(single.loss[0]); // bit-identical first step
      expectSameRun(got, single, reorder);
    }, 120_000);
  }

  it('resume on another world size: 2 ranks for step 1, then 3 ranks (and 1) to step 2 == one process', () => {
    const out = join(root, 'resume');
    const a = launch(out, { workers: '2', steps: '1' });
    expect(a.status, a.stderr).toBe(0);
    spawnSync('cp', ['-r', out, out + '-1']);
    const b = launch(out, { workers: '3', resume: '' });
    expect(b.status, b.stderr).toBe(0);
    expect(b.stdout).toContain('at step 1');
    expectSameRun(readRun(out), single, reorder);
    const c = launch(out + '-1', { resume: '' }); // to one process
    expect(c.status, c.stderr).toBe(0);
    expectSameRun(readRun(out + '-1'), single, reorder);
  }, 120_000);

  it('a rank killed mid-run: the others fail naming it within the collective timeout; the launcher reports it', async () => {
    const out = join(root, 'kill');
    const timeoutS = 5;
    const child = spawn(
      process.execPath,
      [
        main,
        ...flags(out, {
          workers: '3',
          steps: '400',
          'ckpt-every': '1',
          'collective-timeout': String(timeoutS),
        }),
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdout.resume();
    let killedAt = 0;
    const status = await new Promise<number | null>((res, rej) => {
      const poll = setInterval(() => {
        const pid = /rank 1 of 3 started \(pid (\d+)/.exec(stderr)?.[1];
        if (!killedAt && pid && existsSync(join(out, 'checkpoint.safetensors'))) {
          process.kill(Number(pid), 'SIGKILL');
          killedAt = Date.now();
        }
        if (killedAt && Date.now() - killedAt > (timeoutS + 20) * 1000) {
          child.kill('SIGKILL');
          rej(new Error(`the job did not end after rank 1 was killed:\n${stderr}`));
        }
      }, 50);
      child.on('close', (c) => {
        clearInterval(poll);
        res(c);
      });
    });
    expect(killedAt, stderr).toBeGreaterThan(0);
    expect(status).not.toBe(0);
    expect(stderr).toMatch(/rank 1 \(pid \d+\) was killed by SIGKILL first/);
    // Rank 0 (stderr through the launcher) and rank 2 (prefixed) both name rank 1.
    expect(stderr).toMatch(/^gpt2-train: rank 1 exited \(seen by rank 0\)/m);
    expect(stderr).toMatch(/^\[rank 2\] gpt2-train: rank 1 exited \(seen by rank 2\)/m);
  }, 120_000);

  it('SIGINT to the launcher: every rank stops after the same step (exit 130), and the run resumes on 3 ranks', async () => {
    const out = join(root, 'sigint');
    const child = spawn(
      process.execPath,
      [main, ...flags(out, { workers: '2', steps: '400', 'eval-every': '1' })],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    const code = await new Promise<number | null>((res, rej) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        rej(new Error(`no stop within 100 s:\n${stderr}`));
      }, 100_000);
      child.stderr.on('data', (d: Buffer) => {
        stderr += d.toString();
        if (/step 1: train loss/.test(stderr) && !child.killed) child.kill('SIGINT');
      });
      child.on('close', (c) => {
        clearTimeout(timer);
        res(c);
      });
    });
    expect(code, stderr).toBe(130);
    const m = /stopped at step (\d+)/.exec(stdout);
    expect(m, stdout + stderr).not.toBeNull();
    const at = Number(m![1]);
    expect(readRun(out).loss.length).toBe(at); // the checkpoint holds exactly the steps taken
    const r = launch(out, { workers: '3', resume: '', steps: String(at + 1), 'eval-every': '1' });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain(`done at step ${at + 1}`);
  }, 150_000);
});
