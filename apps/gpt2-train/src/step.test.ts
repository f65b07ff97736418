// Gradient accumulation and the dtype flag: K micro-steps plus accumulatedClip give the full batch's mean
// gradient (and its norm) within float32 summation rounding; clipping scales the mean gradient to maxNorm;
// K = 1 is clipGradNorm exactly; --total-batch must be a multiple of batch x seq; --dtype bf16 on a
// backend without bfloat16 buffers is a UsageError naming the backend; a run with --total-batch resumes
// exactly; the checkpoint's dtype and total batch are read from its header.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRng, freshSeed } from '@flashattn/core';
import { CpuOps } from '@flashattn/cpu';
import { clipGradNorm, GPT2 } from '@flashattn/transformer';
import { afterAll, describe, expect, it } from 'vitest';
import { parseArgs, UsageError } from './cli.js';
import { accumulatedClip, computeDTypeOf, microSteps, readRunSettings } from './step.js';
import { runTraining } from './trainer.js';

const seed = freshSeed();
const ops = new CpuOps({ threads: 1 });
const root = mkdtempSync(join(tmpdir(), 'gpt2-step-'));
afterAll(async () => {
  await ops.dispose();
  rmSync(root, { recursive: true, force: true });
});
const quiet = { write: () => true, isTTY: false };
const config = { vocabSize: 37, maxSeqLen: 16, nLayer: 2, nHead: 2, nEmbd: 16 };

async function gradsAfter(K: number, maxNorm: number): Promise<{ g: Float32Array; norm: number }> {
  const model = new GPT2({ config, ops, seed });
  const rng = createRng(seed ^ 0x1234567);
  const [B, T] = [4, 16];
  const tokens = Int32Array.from({ length: B * T }, () => rng.int(config.vocabSize));
  const targets = Int32Array.from({ length: B * T }, () => rng.int(config.vocabSize));
  const b = B / K; // the same 4 sequences, in K micro-batches of b
  await model.zeroGrad();
  for (let k = 0; k < K; k++) {
    const part = (a: Int32Array): Int32Array => a.subarray(k * b * T, (k + 1) * b * T);
    await model.forward(part(tokens), part(targets), b, T, true);
    await model.backward();
  }
  const norm = await accumulatedClip(ops, model.grads, K, maxNorm);
  return { g: (await model.getGrads()) as Float32Array, norm };
}

describe(`gradient accumulation (seed ${seed})`, () => {
  it('2 and 4 micro-steps give the full batch mean gradient and norm', async () => {
    const full = await gradsAfter(1, Infinity);
    let scale = 0;
    for (const x of full.g) scale = Math.max(scale, Math.abs(x));
    for (const K of [2, 4]) {
      const acc = await gradsAfter(K, Infinity);
      // Only the order of float32 sums differs (per-row losses summed in K parts, weight gradients
      // accumulated over K matmuls): a few float32 ulps of the largest gradient, 1e-5 relative bounds it.
      let err = 0;
      for (let i = 0; i < full.g.length; i++) err = Math.max(err, Math.abs(acc.g[i]! - full.g[i]!));
      expect(err).toBeLessThan(1e-5 * scale);
      expect(acc.norm).toBeCloseTo(full.norm, 5);
    }
  });

  it('clipping acts on the mean gradient: its norm becomes maxNorm', async () => {
    const full = await gradsAfter(1, Infinity);
    const maxNorm = full.norm / 3;
    const acc = await gradsAfter(2, maxNorm);
    expect(acc.norm).toBeCloseTo(full.norm, 5);
    let ss = 0;
    for (const x of acc.g) ss += x * x;
    expect(Math.sqrt(ss)).toBeCloseTo(maxNorm, 4);
  });

  it('K = 1 is clipGradNorm exactly', async () => {
    const a = ops.alloc(3, 'float32');
    const b = ops.alloc(3, 'float32');
    a.set([3, 4, 12]);
    b.set([3, 4, 12]);
    expect(await accumulatedClip(ops, a, 1, 1)).toBe(await clipGradNorm(ops, b, 1));
    expect(Array.from(a)).toEqual(Array.from(b));
    a.set([0.1, 0.2, 0.2]);
    expect(await accumulatedClip(ops, a, 1, 1)).toBeCloseTo(0.3, 6);
    expect(Array.from(a)).toEqual(Array.from(new Float32Array([0.1, 0.2, 0.2])));
  });

  it('micro-steps: total / (batch x seq), a UsageError otherwise', () => {
    expect(microSteps(undefined, 4, 64)).toBe(1);
    expect(microSteps(256, 4, 64)).toBe(1);
    expect(microSteps(1024, 4, 64)).toBe(4);
    expect(() => microSteps(1000, 4, 64)).toThrow(UsageError);
    expect(() => microSteps(1000, 4, 64)).toThrow(
      /--total-batch 1000 must be a positive multiple of --batch x --seq = 4 x 64 = 256/,
    );
    expect(() => microSteps(128, 4, 64)).toThrow(UsageError);
  });
});

describe('--dtype', () => {
  it('maps to the compute dtype, refused (naming the backend) where the backend lacks it', () => {
    const gpu = { name: 'fake-gpu', dtypes: ['float32', 'bfloat16', 'int32'] as const };
    expect(computeDTypeOf('bf16', gpu)).toBe('bfloat16');
    expect(computeDTypeOf('fp32', gpu)).toBe('float32');
    expect(() => computeDTypeOf('fp16', gpu)).toThrow(
      /--dtype fp16: backend fake-gpu has no float16 buffers \(it has float32, bfloat16, int32\)/,
    );
  });

  it('the CPU backend has no bfloat16: gpt2-train --dtype bf16 stops with a UsageError naming it', async () => {
    const args = parseArgs([
      '--config',
      'tiny',
      '--dtype',
      'bf16',
      '--steps',
      '1',
      '--batch',
      '1',
      '--seq',
      '16',
      '--out',
      join(root, 'bf16'),
    ]);
    await expect(runTraining(args, { stdout: quiet, stderr: quiet })).rejects.toThrow(
      /--dtype bf16: backend cpu .* has no bfloat16 buffers/,
    );
  });
});

describe('--total-batch in a run', () => {
  const flags = (out: string, extra: string[] = []): string[] => [
    '--config',
    'tiny',
    '--steps',
    '4',
    '--batch',
    '2',
    '--seq',
    '32',
    '--total-batch',
    '128',
    '--warmup',
    '1',
    '--eval-every',
    '0',
    '--val-batches',
    '1',
    '--sample-tokens',
    '0',
    '--ckpt-every',
    '0',
    '--seed',
    '7',
    '--out',
    out,
    ...extra,
  ];
  it('stop at 2 + resume to 4 == 4 uninterrupted steps (bitwise); the checkpoint records dtype and total batch', async () => {
    const full = await runTraining(parseArgs(flags(join(root, 'tb-full'))), {
      stdout: quiet,
      stderr: quiet,
    });
    expect(full.microSteps).toBe(2);
    expect(full.totalBatch).toBe(128);
    expect(full.mfu).toBeNull(); // no known peak for the CPU and no --peak-tflops
    expect(full.mfuNote).toMatch(/MFU omitted: .*--peak-tflops/);
    const part = await runTraining(parseArgs(flags(join(root, 'tb-split'))), {
      stdout: quiet,
      stderr: quiet,
      stopAfterStep: 2,
    });
    expect(part.steps).toBe(2);
    expect(readRunSettings(join(root, 'tb-split', 'checkpoint.safetensors'))).toMatchObject({
      dtype: 'fp32',
      totalBatch: 128,
      batch: 2,
      seq: 32,
    });
    // --total-batch left out on resume: taken from the checkpoint.
    const resumeFlags = flags(join(root, 'tb-split'), ['--resume']).filter(
      (x, i, a) => x !== '--total-batch' && a[i - 1] !== '--total-batch',
    );
    let log = '';
    const resumed = await runTraining(parseArgs(resumeFlags), {
      stdout: { write: (s: string) => ((log += s), true) },
      stderr: quiet,
    });
    expect(log).toContain('batch 2 x seq 32 x 2 micro-steps = 128 tokens/step');
    expect(resumed.history.train).toEqual(full.history.train);
    // Another total batch on resume is refused.
    await expect(
      runTraining(
        parseArgs(flags(join(root, 'tb-split'), ['--resume']).map((x) => (x === '128' ? '64' : x))),
        { stdout: quiet, stderr: quiet },
      ),
    ).rejects.toThrow(/--seq 32 --total-batch 128; got --batch 2 --seq 32 \(/);
  });

  it('--peak-tflops gives an MFU from the model FLOPs', async () => {
    const s = await runTraining(
      parseArgs([
        ...flags(join(root, 'tb-mfu')).map((x, i, a) => (a[i - 1] === '--steps' ? '3' : x)),
        '--peak-tflops',
        '0.5',
      ]),
      { stdout: quiet, stderr: quiet },
    );
    expect(s.peakTflops).toBe(0.5);
    expect(s.mfu).toBeCloseTo((s.tokensPerSecSteady * s.flopsPerToken) / 0.5e12, 12);
  });
});
