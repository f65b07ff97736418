// The GPT-2 training benchmark on the CPU backend with the tiny config (no timings asserted): the result
// has every field, finite losses near ln V for random data, the profile's categories sum to no more than
// the profiled step, MFU is omitted on a device without a known peak (and computed from --peak-tflops),
// the model's peak bytes cover its parameters, gradients and AdamW state, the JSON file is written by the
// CLI, and a dtype the backend lacks is refused naming the backend.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { numParams } from '@flashattn/transformer';
import { afterAll, describe, expect, it } from 'vitest';
import { BENCH_CONFIGS } from './configs.js';
import { runTrainBench } from './train-bench.js';

const dir = mkdtempSync(join(tmpdir(), 'train-bench-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const quiet = (): void => undefined;
const base = {
  backend: 'cpu',
  config: 'tiny' as const,
  batch: 2,
  seq: 32,
  dtype: 'fp32' as const,
  warmup: 1,
  steps: 2,
  profile: true,
  threads: 1,
  log: quiet,
};

describe('train-bench on the CPU backend', () => {
  it('reports rates, memory and a per-op profile of one step', async () => {
    const r = await runTrainBench(base);
    expect(r.backend).toBe('cpu');
    expect(r.decisions[0]).toMatch(/^cpu: taken/);
    expect(r.losses).toHaveLength(2);
    // Random targets over V = 2048 at init: the loss is about ln 2048 = 7.62.
    for (const l of r.losses) expect(Math.abs(l - Math.log(2048))).toBeLessThan(0.5);
    expect(r.tokensPerSec).toBeGreaterThan(0);
    expect(r.tokensPerSec).toBeCloseTo((2 * 32) / (r.msPerStep / 1000), 6);
    expect(r.mfu).toBeNull();
    expect(r.mfuNote).toMatch(/MFU omitted/);
    // params (fp32) + grads (fp32) + AdamW m, v: 16 bytes per parameter at least
    expect(r.peakAllocBytes).toBeGreaterThanOrEqual(16 * numParams(BENCH_CONFIGS.tiny));
    expect(r.peakDeviceBytes).toBeNull(); // CpuOps has no memory query
    const p = r.profile!;
    expect(p.totalMs).toBeLessThanOrEqual(p.stepMs);
    expect(p.byOp['matmul']!.calls).toBe(4 * 4 * 3 + 3); // per block 4 fwd + 8 bwd; head 1 + 2
    for (const c of [
      'matmul',
      'attention',
      'layernorm',
      'softmax-xent',
      'adamw',
      'embedding',
    ] as const)
      expect(p.categories[c], c).toBeGreaterThan(0);
    // every op the profile counted went through the host-delay wrapper too (plus views, allocs, uploads)
    const profiled = Object.values(p.byOp).reduce((n, e) => n + e.calls, 0);
    expect(r.opCallsPerStep).toBeGreaterThanOrEqual(profiled);
    expect(r.hostDelayUs).toBe(0);
    expect(p.categories['gelu']).toBe(0); // GPT-2's GELU is the fc matmul's epilogue: counted as matmul
  });

  it('MFU from --peak-tflops; a dtype the backend lacks is refused naming it', async () => {
    const r = await runTrainBench({ ...base, profile: false, peakTflops: 1 });
    expect(r.profile).toBeNull();
    expect(r.mfu).toBeCloseTo(r.modelTflops / 1, 12);
    await expect(runTrainBench({ ...base, dtype: 'bf16' })).rejects.toThrow(
      /--dtype bf16: backend cpu .* has no bfloat16 buffers/,
    );
  });

  it('the built CLI writes the JSON', () => {
    const cli = fileURLToPath(new URL('../../dist/gpt2/train-bench.js', import.meta.url));
    const out = join(dir, 'r.json');
    execFileSync(
      process.execPath,
      [
        cli,
        '--backend',
        'cpu',
        '--config',
        'tiny',
        '--batch',
        '1',
        '--seq',
        '16',
        '--warmup',
        '0',
        '--steps',
        '1',
        '--threads',
        '1',
        '--dtype',
        'fp32',
        '--json',
        out,
      ],
      { stdio: 'pipe' },
    );
    const r = JSON.parse(readFileSync(out, 'utf8')) as {
      seq: number;
      profile: { categories: Record<string, number> };
    };
    expect(r.seq).toBe(16);
    expect(Object.keys(r.profile.categories)).toContain('softmax-xent');
  });
});
