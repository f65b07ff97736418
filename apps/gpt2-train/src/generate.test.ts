// gpt2-generate: flags against the schema, and a run end to end on a checkpoint written here (ids in,
// ids streamed out; with and without the KV cache the greedy ids agree).
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CpuOps } from '@flashattn/cpu';
import { GPT2, encodeSafetensors, saveCheckpoint } from '@flashattn/transformer';
import { afterAll, describe, expect, it } from 'vitest';
import {
  GenerateUsageError,
  checkpointConfig,
  parseGenerateArgs,
  runGenerate,
} from './generate.js';

describe('gpt2-generate', () => {
  const dir = mkdtempSync(join(tmpdir(), 'gpt2-generate-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('parses flags and rejects unknown or bad ones', () => {
    const a = parseGenerateArgs([
      '--checkpoint',
      'x.safetensors',
      '--top-p',
      '0.9',
      '--prompt-ids',
      '1,2',
    ]);
    expect(a.topP).toBe(0.9);
    expect(a.promptIds).toEqual([1, 2]);
    expect(() => parseGenerateArgs(['--checkpoint', 'x', '--topp', '1'])).toThrow(
      GenerateUsageError,
    );
    expect(() => parseGenerateArgs(['--checkpoint', 'x', '--top-p', '1.5'])).toThrow(/top-p/);
    expect(() => parseGenerateArgs(['--prompt', 'hi'])).toThrow(/--checkpoint is required/);
    expect(() => parseGenerateArgs(['--checkpoint', 'x', '--prompt-ids', '1,a'])).toThrow(
      /prompt-ids/,
    );
  });

  it('loads our checkpoint and streams greedy ids, the same with and without the cache', async () => {
    const ops = new CpuOps({ threads: 1 });
    const config = { vocabSize: 40, maxSeqLen: 16, nLayer: 1, nHead: 2, nEmbd: 16 };
    const model = new GPT2({ config, ops, seed: 3 });
    const path = join(dir, 'ckpt.safetensors');
    await saveCheckpoint(path, model, null, { step: 0, dataPosition: 0, rngState: 0 });
    await ops.dispose();
    const run = async (noCache: boolean) => {
      let text = '';
      const ids = await runGenerate(
        {
          ...parseGenerateArgs([
            '--checkpoint',
            path,
            '--prompt-ids',
            '3,1,4',
            '--top-k',
            '1',
            '--max-new-tokens',
            '20',
            '--threads',
            '1',
          ]),
          noCache,
        },
        { write: (s: string) => (text += s) },
      );
      return { ids, text };
    };
    const cached = await run(false);
    const uncached = await run(true);
    expect(cached.ids).toHaveLength(20);
    expect(cached.ids).toEqual(uncached.ids);
    expect(cached.text).toBe(`3,1,4,${cached.ids.join(',')}\n`);
    // A relative --checkpoint is the user's: it resolves against INIT_CWD (where a package manager was run).
    const saved = process.env.INIT_CWD;
    process.env.INIT_CWD = dir;
    try {
      const ids = await runGenerate(
        parseGenerateArgs([
          '--checkpoint',
          'ckpt.safetensors',
          '--prompt-ids',
          '3,1,4',
          '--top-k',
          '1',
          '--max-new-tokens',
          '20',
          '--threads',
          '1',
        ]),
        { write: () => true },
      );
      expect(ids).toEqual(cached.ids);
    } finally {
      if (saved === undefined) delete process.env.INIT_CWD;
      else process.env.INIT_CWD = saved;
    }
  });

  it('reads a Hugging Face layout: model.safetensors (transformer. names) with config.json beside it', async () => {
    const ops = new CpuOps({ threads: 1 });
    const config = { vocabSize: 30, maxSeqLen: 12, nLayer: 1, nHead: 2, nEmbd: 8 };
    const model = new GPT2({ config, ops, seed: 4 });
    const params = (await model.getParams()) as Float32Array;
    const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
    for (const s of model.specs)
      tensors.set(`transformer.${s.name}`, {
        shape: s.shape,
        data: params.slice(s.offset, s.offset + s.size),
      });
    await ops.dispose();
    const hf = join(dir, 'hf');
    mkdirSync(hf);
    writeFileSync(join(hf, 'model.safetensors'), encodeSafetensors(tensors, { format: 'pt' }));
    writeFileSync(
      join(hf, 'config.json'),
      JSON.stringify({
        model_type: 'gpt2',
        vocab_size: 30,
        n_positions: 12,
        n_layer: 1,
        n_head: 2,
        n_embd: 8,
        activation_function: 'gelu_new',
        layer_norm_epsilon: 1e-5,
      }),
    );
    expect(checkpointConfig(join(hf, 'model.safetensors'))).toEqual(config);
    let text = '';
    const ids = await runGenerate(
      parseGenerateArgs([
        '--checkpoint',
        join(hf, 'model.safetensors'),
        '--prompt-ids',
        '7',
        '--max-new-tokens',
        '5',
        '--top-p',
        '0.9',
        '--threads',
        '1',
      ]),
      { write: (s: string) => (text += s) },
    );
    expect(ids).toHaveLength(5);
    expect(ids.every((t) => t >= 0 && t < 30)).toBe(true);
    expect(text).toBe(`7,${ids.join(',')}\n`);
  });
});
