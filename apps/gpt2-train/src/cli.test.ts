import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parseArgs, usage, UsageError } from './cli.js';

describe('CLI flags (schema)', () => {
  it('parses --dtype, --total-batch, --peak-tflops and the new presets; --help names them', () => {
    const a = parseArgs([
      '--config',
      'gpt2-124m-8k',
      '--dtype',
      'bf16',
      '--total-batch',
      '524288',
      '--peak-tflops',
      '989.5',
      '--backend',
      'auto',
    ]);
    expect(a).toMatchObject({
      config: 'gpt2-124m-8k',
      dtype: 'bf16',
      totalBatch: 524288,
      peakTflops: 989.5,
      backend: 'auto',
    });
    expect(parseArgs(['--config', 'gpt2-350m']).dtype).toBeUndefined();
    expect(() => parseArgs(['--dtype', 'int8'])).toThrow(
      /--dtype must be one of fp32\|bf16\|fp16, got 'int8'/,
    );
    expect(() => parseArgs(['--peak-tflops', '0'])).toThrow(/--peak-tflops must be > 0/);
    expect(() => parseArgs(['--total-batch', '0'])).toThrow(/--total-batch must be >= 1/);
    const help = usage();
    expect(help).not.toContain('cpu today');
    expect(help).toMatch(/--backend <string> +ops backend: cuda, webgpu, cpu .*'auto'/);
    expect(help).toMatch(/gpt2-124m-8k \(124M shape with 8192 positions: wpe grows/);
  });

  it('parses every documented flag', () => {
    const a = parseArgs([
      '--config',
      'small',
      '--attention',
      'standard',
      '--backend',
      'cpu',
      '--steps',
      '10',
      '--batch',
      '2',
      '--seq=64',
      '--lr',
      '3e-4',
      '--out',
      '/tmp/x',
      '--resume',
      '--seed',
      '5',
      '--sample',
      'Once upon',
      '--temperature',
      '0.5',
      '--top-k',
      '10',
      '--sample-tokens',
      '0',
    ]);
    expect(a).toMatchObject({
      config: 'small',
      attention: 'standard',
      backend: 'cpu',
      steps: 10,
      batch: 2,
      seq: 64,
      lr: 3e-4,
      out: '/tmp/x',
      resume: true,
      seed: 5,
      sample: 'Once upon',
      temperature: 0.5,
      topK: 10,
      sampleTokens: 0,
    });
  });

  it('--stop-after and --deterministic', () => {
    expect(parseArgs(['--stop-after', '3', '--deterministic'])).toMatchObject({
      stopAfter: 3,
      deterministic: true,
    });
    expect(parseArgs([])).toMatchObject({ stopAfter: undefined, deterministic: false });
    expect(() => parseArgs(['--stop-after', '0'])).toThrow(/--stop-after/);
  });

  it('ignores the bare -- that pnpm passes through', () => {
    expect(parseArgs(['--', '--steps', '3'])).toMatchObject({ steps: 3 });
  });

  it('has defaults', () => {
    expect(parseArgs([])).toMatchObject({
      config: 'tiny',
      attention: 'flash',
      backend: 'cpu',
      resume: false,
      seed: 1337,
    });
  });

  it.each([
    [['--stpes', '10'], /unknown flag --stpes/],
    [
      ['--config', 'huge'],
      /--config must be one of tiny\|small\|gpt2-124m\|gpt2-350m\|gpt2-124m-8k, got 'huge'/,
    ],
    [['--attention', 'sparse'], /--attention must be one of flash\|standard/],
    [['--steps', '1.5'], /--steps must be an integer, got '1.5'/],
    [['--lr', 'fast'], /--lr must be a number, got 'fast'/],
    [['--batch', '0'], /--batch must be >= 1, got 0/],
    [['--steps'], /--steps needs a value/],
    [['--resume=yes'], /--resume takes no value/],
    [['--seed', '1', '--seed', '2'], /--seed given twice/],
    [['steps'], /unexpected argument 'steps'/],
    [['--temperature', '0'], /--temperature must be > 0/],
  ])('rejects %j', (argv, pattern) => {
    expect(() => parseArgs(argv)).toThrow(UsageError);
    expect(() => parseArgs(argv)).toThrow(pattern);
  });

  const main = fileURLToPath(new URL('../dist/main.js', import.meta.url));
  it.skipIf(!existsSync(main))(
    'the built CLI exits 2 with usage on an unknown flag, before loading any data',
    () => {
      const r = spawnSync(process.execPath, [main, '--bogus', '1'], {
        encoding: 'utf8',
        timeout: 30_000,
      });
      expect(r.status).toBe(2);
      expect(r.stderr).toMatch(/unknown flag --bogus/);
      expect(r.stderr).toMatch(/Usage: gpt2-train/);
      expect(r.stdout).toBe('');
    },
  );
});
