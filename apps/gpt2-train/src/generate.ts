#!/usr/bin/env node
/**
 * gpt2-generate: load a GPT-2 checkpoint - ours (gpt2-train's checkpoint.safetensors, config in its
 * metadata) or a Hugging Face file (model.safetensors with config.json beside it, as save_pretrained
 * writes them) - and stream sampled tokens with temperature, top-k and top-p. Generation uses the
 * backend's KV cache when it has one (prefill, then one token per step); --no-cache reruns the window.
 *
 *   node dist/generate.js --checkpoint runs/tiny/checkpoint.safetensors --prompt "The jury" --top-p 0.9
 *   node dist/generate.js --checkpoint hf-gpt2/model.safetensors --prompt-ids 1,2,3 --max-new-tokens 8
 *
 * Text prompts use GPT-2's BPE (r50k_base): the full 50257-token vocabulary, or for a compact
 * vocabulary (gpt2-train's tiny/small presets) the same Brown-corpus vocabulary the trainer built.
 * A model with any other vocabulary takes --prompt-ids and prints ids.
 */
import { readFileSync, realpathSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRng, resolveBackend, type Ops } from '@flashattn/core';
import { discoverBackends } from '@flashattn/core/node';
import {
  GPT2,
  generate,
  loadCheckpoint,
  parseSafetensors,
  readHuggingFaceConfig,
  type GPT2Config,
} from '@flashattn/transformer';
import { loadDataset } from './dataset.js';
import { GPT2_VOCAB, buildVocab, gpt2TokenBytes, type Vocab } from './vocab.js';

type Kind = 'int' | 'float' | 'string' | 'bool';
const SCHEMA: Record<string, { kind: Kind; min?: number; help: string }> = {
  checkpoint: { kind: 'string', help: 'a .safetensors checkpoint (ours, or Hugging Face GPT-2)' },
  'hf-config': {
    kind: 'string',
    help: 'Hugging Face config.json (default: config.json beside the checkpoint when it lacks ours)',
  },
  prompt: { kind: 'string', help: 'prompt text (GPT-2 BPE); default "The"' },
  'prompt-ids': {
    kind: 'string',
    help: 'prompt as comma-separated token ids (instead of --prompt)',
  },
  'max-new-tokens': { kind: 'int', min: 0, help: 'tokens to generate; default 64' },
  temperature: { kind: 'float', min: 0, help: 'sampling temperature (> 0); default 0.8' },
  'top-k': { kind: 'int', min: 0, help: 'keep the k most likely tokens (0 = all); default 40' },
  'top-p': {
    kind: 'float',
    min: 0,
    help: 'nucleus: keep the most likely tokens up to mass p; default 1',
  },
  seed: { kind: 'int', min: 0, help: 'sampling seed; default 1337' },
  backend: { kind: 'string', help: "ops backend: 'auto' or an installed one; default cpu" },
  threads: { kind: 'int', min: 1, help: 'CPU threads; default all cores' },
  'no-cache': { kind: 'bool', help: 'rerun the whole window every token (no KV cache)' },
  help: { kind: 'bool', help: 'show this help' },
};

export interface GenerateArgs {
  checkpoint?: string;
  hfConfig?: string;
  prompt: string;
  promptIds?: number[];
  maxNewTokens: number;
  temperature: number;
  topK: number;
  topP: number;
  seed: number;
  backend: string;
  threads?: number;
  noCache: boolean;
  help: boolean;
}

export class GenerateUsageError extends Error {
  override name = 'GenerateUsageError';
}

export function generateUsage(): string {
  const lines = ['Usage: gpt2-generate --checkpoint <file> [flags]', ''];
  for (const [name, s] of Object.entries(SCHEMA))
    lines.push(`  --${name}${s.kind === 'bool' ? '' : ` <${s.kind}>`}`.padEnd(32) + s.help);
  return lines.join('\n');
}

/** Flags against the schema: unknown flags, missing values and bad numbers are usage errors. */
export function parseGenerateArgs(argv: readonly string[]): GenerateArgs {
  const raw = new Map<string, string | number | boolean>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') continue;
    if (!a.startsWith('--')) throw new GenerateUsageError(`unexpected argument '${a}'`);
    let name = a.slice(2);
    let value: string | undefined;
    const eq = name.indexOf('=');
    if (eq >= 0) [name, value] = [name.slice(0, eq), name.slice(eq + 1)];
    const spec = SCHEMA[name];
    if (!spec) throw new GenerateUsageError(`unknown flag --${name}`);
    if (raw.has(name)) throw new GenerateUsageError(`--${name} given twice`);
    if (spec.kind === 'bool') {
      if (value !== undefined && value !== 'true' && value !== 'false')
        throw new GenerateUsageError(`--${name} takes no value, got '${value}'`);
      raw.set(name, value !== 'false');
      continue;
    }
    value ??= argv[++i];
    if (value === undefined) throw new GenerateUsageError(`--${name} needs a value`);
    if (spec.kind === 'string') {
      raw.set(name, value);
      continue;
    }
    const x = Number(value);
    if (value.trim() === '' || !Number.isFinite(x) || (spec.kind === 'int' && !Number.isInteger(x)))
      throw new GenerateUsageError(
        `--${name} must be ${spec.kind === 'int' ? 'an integer' : 'a number'}, got '${value}'`,
      );
    if (spec.min !== undefined && x < spec.min)
      throw new GenerateUsageError(`--${name} must be >= ${spec.min}, got ${x}`);
    raw.set(name, x);
  }
  const g = <T>(k: string, d: T): T => (raw.has(k) ? (raw.get(k) as T) : d);
  const ids = g<string | undefined>('prompt-ids', undefined);
  let promptIds: number[] | undefined;
  if (ids !== undefined) {
    promptIds = ids.split(',').map((s) => Number(s.trim()));
    if (promptIds.length === 0 || promptIds.some((x) => !Number.isInteger(x) || x < 0))
      throw new GenerateUsageError(`--prompt-ids must be comma-separated token ids, got '${ids}'`);
    if (raw.has('prompt')) throw new GenerateUsageError('give --prompt or --prompt-ids, not both');
  }
  const args: GenerateArgs = {
    checkpoint: g<string | undefined>('checkpoint', undefined),
    hfConfig: g<string | undefined>('hf-config', undefined),
    prompt: g('prompt', 'The'),
    promptIds,
    maxNewTokens: g('max-new-tokens', 64),
    temperature: g('temperature', 0.8),
    topK: g('top-k', 40),
    topP: g('top-p', 1),
    seed: g('seed', 1337),
    backend: g('backend', 'cpu'),
    threads: g<number | undefined>('threads', undefined),
    noCache: g('no-cache', false),
    help: g('help', false),
  };
  if (!args.help && args.checkpoint === undefined)
    throw new GenerateUsageError('--checkpoint is required');
  if (!(args.temperature > 0)) throw new GenerateUsageError('--temperature must be > 0');
  if (!(args.topP > 0 && args.topP <= 1)) throw new GenerateUsageError('--top-p must be in (0, 1]');
  return args;
}

/** The model config of a checkpoint: ours in its metadata, else Hugging Face's config.json. */
export function checkpointConfig(path: string, hfConfig?: string): GPT2Config {
  const { metadata } = parseSafetensors(readFileSync(path), path);
  if (hfConfig === undefined && metadata['config'] !== undefined)
    return JSON.parse(metadata['config']) as GPT2Config;
  return readHuggingFaceConfig(hfConfig ?? join(dirname(path), 'config.json'));
}

/** The text vocabulary for a model's vocab size, or null (ids only). */
function vocabFor(V: number): Vocab | null {
  if (V === GPT2_VOCAB) return buildVocab(0);
  if (V >= 258 && V < GPT2_VOCAB) return loadDataset(V).vocab; // the trainer's compact vocabulary
  return null;
}

export interface GenerateIO {
  write(s: string): unknown;
}

/** Load, prefill, stream. Returns the generated ids. */
export async function runGenerate(
  args: GenerateArgs,
  out: GenerateIO = process.stdout,
): Promise<number[]> {
  // Paths on the command line are the user's: resolve them against the directory the command was run from
  // (INIT_CWD when a package manager started us in the app's folder), as gpt2-train does for --out.
  const from = process.env.INIT_CWD ?? process.cwd();
  const path = resolve(from, args.checkpoint!);
  const config = checkpointConfig(
    path,
    args.hfConfig === undefined ? undefined : resolve(from, args.hfConfig),
  );
  await discoverBackends(dirname(fileURLToPath(import.meta.url)));
  const { value: ops } = await resolveBackend<Ops<unknown>>(args.backend, {
    need: 'ops',
    options: args.threads !== undefined ? { threads: args.threads } : {},
  });
  try {
    const model = new GPT2({ config, ops });
    await loadCheckpoint(path, model);
    const vocab = args.promptIds ? null : vocabFor(config.vocabSize);
    if (!args.promptIds && !vocab)
      throw new GenerateUsageError(
        `vocabulary of ${config.vocabSize} tokens has no text encoding: use --prompt-ids`,
      );
    const prompt = args.promptIds ?? Array.from(vocab!.encode(args.prompt));
    const bad = prompt.find((t) => t >= config.vocabSize);
    if (bad !== undefined)
      throw new GenerateUsageError(`prompt token ${bad} >= vocabulary ${config.vocabSize}`);
    // Stream: bytes of each GPT-2 token through one streaming UTF-8 decoder (tokens may split characters).
    const bytes = vocab ? gpt2TokenBytes() : null;
    const utf8 = new TextDecoder('utf-8', { fatal: false });
    if (vocab) out.write(vocab.decode(prompt));
    else out.write(prompt.join(','));
    const ids = await generate(model, prompt, {
      maxNewTokens: args.maxNewTokens,
      temperature: args.temperature,
      topK: args.topK,
      topP: args.topP,
      rng: createRng(args.seed),
      useCache: args.noCache ? false : undefined,
      onToken: (t) =>
        void out.write(vocab ? utf8.decode(bytes![vocab.toGpt2[t]!]!, { stream: true }) : `,${t}`),
    });
    out.write((vocab ? utf8.decode() : '') + '\n');
    return ids;
  } finally {
    await ops.dispose();
  }
}

async function main(): Promise<number> {
  let args: GenerateArgs;
  try {
    args = parseGenerateArgs(process.argv.slice(2));
  } catch (e) {
    if (e instanceof GenerateUsageError) {
      process.stderr.write(`gpt2-generate: ${e.message}\n\n${generateUsage()}\n`);
      return 2;
    }
    throw e;
  }
  if (args.help) {
    process.stdout.write(generateUsage() + '\n');
    return 0;
  }
  try {
    await runGenerate(args);
  } catch (e) {
    if (e instanceof GenerateUsageError) {
      process.stderr.write(`gpt2-generate: ${e.message}\n`);
      return 2;
    }
    throw e;
  }
  return 0;
}

// Run as a program (node dist/generate.js, or the gpt2-generate bin link), not when imported by tests.
if (process.argv[1] && fileURLToPath(import.meta.url) === realpathSync(process.argv[1])) {
  main().then(
    (code) => process.exit(code),
    (e: unknown) => {
      process.stderr.write(`gpt2-generate: ${(e as Error)?.stack ?? String(e)}\n`);
      process.exit(1);
    },
  );
}
