/**
 * Training parity against Hugging Face (issue #10 "Correctness"), our side. Three steps on the GPU machine
 * (device.sh runs them as `parity`):
 *   node train-parity.mjs inputs --config gpt2-124m --batch 4 --seq 1024 --dir D [--seed 1337]
 *       our initialisation saved as our safetensors checkpoint (D/checkpoint.safetensors, Hugging Face
 *       names) and one batch of random tokens (D/batch.safetensors: input.tokens, input.targets)
 *   python3 packages/transformer/parity/hf_train_golden.py D
 *       GPT2LMHeadModel loads that checkpoint; loss and every gradient in float64 (the oracle), float32
 *       and bf16 autocast: D/golden-{fp64,fp32,bf16}.safetensors
 *   node train-parity.mjs compare --backend cuda --dtype bf16 --dir D [--json F]
 *       loads the checkpoint on the backend, one forward + backward on the batch, and judges the loss and
 *       every gradient against the oracle by parity-rule.ts; exit 1 when any fails.
 */
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { createRng, resolveBackend, type Ops } from '@flashattn/core';
import '@flashattn/cpu/provider';
import '@flashattn/cuda/provider';
import '@flashattn/webgpu/provider';
import {
  encodeSafetensors,
  GPT2,
  loadCheckpointBytes,
  parseSafetensors,
  saveCheckpoint,
  writeFileAtomic,
  type GPT2Config,
} from '@flashattn/transformer';
import { parseArgsOrExit, type ArgSchema } from '../lib/args.js';
import {
  BENCH_CONFIG_NAMES,
  BENCH_CONFIGS,
  COMPUTE_DTYPE_FLAGS,
  computeDTypeFor,
  type BenchConfigName,
} from './configs.js';
import { judge, type ParityDType, type TensorVerdict } from './parity-rule.js';
import { runIfMain } from '../lib/is-main.js';

/** Our initial weights as a checkpoint and one random batch, for hf_train_golden.py. */
export async function writeParityInputs(o: {
  config: BenchConfigName;
  batch: number;
  seq: number;
  dir: string;
  seed?: number;
  backend?: string;
}): Promise<void> {
  const config = BENCH_CONFIGS[o.config];
  const { value: ops } = await resolveBackend<Ops<unknown>>(o.backend ?? 'cpu', { need: 'ops' });
  try {
    const model = new GPT2({ config, ops, seed: o.seed ?? 1337 });
    mkdirSync(o.dir, { recursive: true });
    await saveCheckpoint(join(o.dir, 'checkpoint.safetensors'), model, null, {
      step: 0,
      dataPosition: 0,
      rngState: 0,
    });
    const rng = createRng((o.seed ?? 1337) ^ 0x51ed270b);
    const n = o.batch * o.seq;
    const shape = [o.batch, o.seq];
    const tokens = Int32Array.from({ length: n }, () => rng.int(config.vocabSize));
    const targets = Int32Array.from({ length: n }, () => rng.int(config.vocabSize));
    writeFileAtomic(
      join(o.dir, 'batch.safetensors'),
      encodeSafetensors(
        new Map([
          ['input.tokens', { shape, data: tokens }],
          ['input.targets', { shape, data: targets }],
        ]),
        { config: JSON.stringify(config) },
      ),
    );
  } finally {
    await ops.dispose();
  }
}

export interface ParityResult {
  backend: string;
  ops: string;
  dtype: ParityDType;
  peer: string | null;
  loss: { ours: number; oracle: number; torch: number | null; verdict: TensorVerdict };
  tensors: TensorVerdict[];
  failed: string[];
  pass: boolean;
}

/** Load D's checkpoint on the backend, one forward + backward on D's batch, judge against D's goldens. */
export async function compareParity(o: {
  backend: string;
  dtype: ParityDType;
  dir: string;
  /** Override the oracle file (default D/golden-fp64.safetensors). */
  oracle?: string;
  options?: Record<string, unknown>;
}): Promise<ParityResult> {
  const ckptPath = join(o.dir, 'checkpoint.safetensors');
  const bytes = readFileSync(ckptPath);
  const config = JSON.parse(
    parseSafetensors(bytes, ckptPath).metadata['config'] ?? 'null',
  ) as GPT2Config | null;
  if (!config)
    throw new Error(`${ckptPath}: no config in the metadata (not one of our checkpoints)`);
  const batch = parseSafetensors(readFileSync(join(o.dir, 'batch.safetensors')));
  const tokens = batch.tensors.get('input.tokens')!;
  const targets = batch.tensors.get('input.targets')!;
  const [B, T] = tokens.shape as [number, number];
  const oraclePath = o.oracle ?? join(o.dir, 'golden-fp64.safetensors');
  const oracle = parseSafetensors(readFileSync(oraclePath), oraclePath);
  const peerPath = join(o.dir, `golden-${o.dtype}.safetensors`);
  let peer: ReturnType<typeof parseSafetensors> | null = null;
  try {
    peer = parseSafetensors(readFileSync(peerPath), peerPath);
  } catch {
    peer = null;
  }
  const { value: ops, provider } = await resolveBackend<Ops<unknown>>(o.backend, {
    need: 'ops',
    options: o.options,
  });
  try {
    const computeDType = computeDTypeFor(o.dtype, ops);
    const model = new GPT2({ config, ops, paramDType: 'float32', computeDType });
    await loadCheckpointBytes(bytes, ckptPath, model);
    await model.zeroGrad();
    const loss = await model.forward(
      tokens.data as Int32Array,
      targets.data as Int32Array,
      B,
      T,
      true,
    );
    await model.backward();
    const grads = Float64Array.from(await model.getGrads()); // 16-bit gradients decoded (hostFloats)
    const tensors: TensorVerdict[] = [];
    for (const s of model.specs) {
      const g = oracle.tensors.get(`grad.${s.name}`);
      if (!g) throw new Error(`${oraclePath} has no grad.${s.name}`);
      const p = peer?.tensors.get(`grad.${s.name}`)?.data ?? null;
      tensors.push(judge(s.name, grads.subarray(s.offset, s.offset + s.size), g.data, p, o.dtype));
    }
    const loss64 = Number(oracle.metadata['loss']);
    const lossTorch = peer ? Number(peer.metadata['loss']) : null;
    const lossVerdict = judge(
      'loss',
      [loss],
      [loss64],
      lossTorch === null ? null : [lossTorch],
      o.dtype,
    );
    const failed = [...tensors, lossVerdict].filter((t) => !t.pass).map((t) => t.name);
    return {
      backend: provider.name,
      ops: ops.name,
      dtype: o.dtype,
      peer: peer ? peerPath : null,
      loss: { ours: loss, oracle: loss64, torch: lossTorch, verdict: lossVerdict },
      tensors,
      failed,
      pass: failed.length === 0,
    };
  } finally {
    await ops.dispose();
  }
}

export function formatParity(r: ParityResult): string {
  const e = (x: number | null): string => (x === null ? '-' : x.toExponential(2));
  const worst = [...r.tensors].sort((a, b) => b.ours / b.bound - a.ours / a.bound).slice(0, 6);
  return [
    `parity ${r.dtype} on ${r.ops}: ${r.pass ? 'PASS' : `FAIL (${r.failed.join(', ')})`}; peer ${r.peer ?? 'none (no-peer bound)'}`,
    `  loss ours ${r.loss.ours.toFixed(6)} oracle ${r.loss.oracle.toFixed(6)} torch ${r.loss.torch?.toFixed(6) ?? '-'}: rel err ${e(r.loss.verdict.ours)} (torch ${e(r.loss.verdict.torch)}, bound ${e(r.loss.verdict.bound)})`,
    `  gradients: ${r.tensors.filter((t) => t.pass).length}/${r.tensors.length} within the rule; closest to their bound:`,
    ...worst.map(
      (t) =>
        `    ${t.name.padEnd(28)} ours ${e(t.ours)}  torch ${e(t.torch)}  bound ${e(t.bound)}  ${t.pass ? 'ok' : 'FAIL'}`,
    ),
  ].join('\n');
}

const SCHEMA = {
  config: {
    type: 'enum',
    values: BENCH_CONFIG_NAMES,
    default: 'gpt2-124m',
    help: 'inputs: model shape',
  },
  batch: { type: 'int', default: 4, min: 1, help: 'inputs: B' },
  seq: { type: 'int', default: 1024, min: 1, help: 'inputs: T' },
  seed: { type: 'int', default: 1337, min: 0, help: 'inputs: init and batch seed' },
  dir: { type: 'string', default: 'parity-work', help: 'folder of checkpoint, batch and goldens' },
  backend: { type: 'string', default: 'cuda', help: 'compare: backend (inputs always use cpu)' },
  dtype: {
    type: 'enum',
    values: COMPUTE_DTYPE_FLAGS,
    default: 'bf16',
    help: 'compare: compute dtype',
  },
  json: { type: 'string', help: 'compare: write the result as JSON here' },
} as const satisfies ArgSchema;

async function main(): Promise<number> {
  const [mode, ...rest] = process.argv.slice(2);
  const a = parseArgsOrExit(rest, SCHEMA, `train-parity ${mode ?? '<inputs|compare>'}`);
  if (mode === 'inputs') {
    await writeParityInputs({
      config: a.config,
      batch: a.batch,
      seq: a.seq,
      dir: a.dir,
      seed: a.seed,
    });
    console.log(
      `wrote ${a.dir}/checkpoint.safetensors and batch.safetensors (${a.config}, B=${a.batch}, T=${a.seq})`,
    );
    return 0;
  }
  if (mode === 'compare') {
    const r = await compareParity({ backend: a.backend, dtype: a.dtype, dir: a.dir });
    console.log(formatParity(r));
    if (a.json) writeFileSync(a.json, JSON.stringify(r, null, 2) + '\n');
    return r.pass ? 0 : 1;
  }
  process.stderr.write('usage: train-parity inputs|compare [flags] (--help)\n');
  return 2;
}

void runIfMain(import.meta.url, 'train-parity', main);
