// Our side of the Hugging Face training parity on the CPU backend: against the committed PyTorch float64
// golden of the tiny parity model (packages/transformer/src/parity/golden.safetensors, the same format
// hf_train_golden.py writes: grad.<HF name> + the loss in the metadata), loaded from our own checkpoint
// format, the float32 model passes the no-peer bound; a golden with one gradient perturbed fails and names
// that tensor; the rule itself on hand-made values; the inputs mode writes a checkpoint and a batch.
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CpuOps } from '@flashattn/cpu';
import {
  encodeSafetensors,
  GPT2,
  parseSafetensors,
  saveCheckpoint,
  type SafeData,
} from '@flashattn/transformer';
import { PARITY_B, PARITY_CONFIG, PARITY_T, parityInputs } from '@flashattn/transformer/parity';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FLOOR, judge, NO_PEER_BOUND, relErr } from './parity-rule.js';
import { compareParity, writeParityInputs } from './train-parity.js';

const dir = mkdtempSync(join(tmpdir(), 'train-parity-'));
const golden = join(
  createRequire(import.meta.url).resolve('@flashattn/transformer/package.json'),
  '..',
  'src',
  'parity',
  'golden.safetensors',
);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

beforeAll(async () => {
  const ops = new CpuOps({ threads: 1 });
  const { params, tokens, targets } = parityInputs();
  const model = new GPT2({ config: PARITY_CONFIG, ops });
  await model.setParams(params);
  await saveCheckpoint(join(dir, 'checkpoint.safetensors'), model, null, {
    step: 0,
    dataPosition: 0,
    rngState: 0,
  });
  await ops.dispose();
  const shape = [PARITY_B, PARITY_T];
  writeFileSync(
    join(dir, 'batch.safetensors'),
    encodeSafetensors(
      new Map([
        ['input.tokens', { shape, data: tokens }],
        ['input.targets', { shape, data: targets }],
      ]),
    ),
  );
  copyFileSync(golden, join(dir, 'golden-fp64.safetensors'));
});

describe('training parity, our side, on the CPU backend', () => {
  it('float32 on the CPU passes against the PyTorch float64 golden (no same-precision peer)', async () => {
    const r = await compareParity({ backend: 'cpu', dtype: 'fp32', dir });
    expect(r.peer).toBeNull();
    expect(r.tensors).toHaveLength(2 + 12 * PARITY_CONFIG.nLayer + 2);
    expect(r.failed).toEqual([]);
    expect(r.pass).toBe(true);
    for (const t of r.tensors) expect(t.bound).toBe(NO_PEER_BOUND.fp32);
    expect(Math.abs(r.loss.ours - r.loss.oracle)).toBeLessThan(1e-4 * r.loss.oracle);
  });

  it('a golden with one gradient perturbed fails, naming that tensor', async () => {
    const g = parseSafetensors(readFileSync(golden));
    const bad = new Map<string, { shape: number[]; data: SafeData }>();
    for (const [k, t] of g.tensors) bad.set(k, { shape: t.shape, data: t.data });
    const fc = bad.get('grad.h.1.mlp.c_fc.bias')!;
    const data = Float32Array.from(fc.data as Float32Array);
    const scale = data.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
    data[3]! += 1e-2 * scale; // 1e-2 relative: 100x the fp32 no-peer bound
    bad.set('grad.h.1.mlp.c_fc.bias', { shape: fc.shape, data });
    const badPath = join(dir, 'bad-oracle.safetensors');
    writeFileSync(badPath, encodeSafetensors(bad, g.metadata));
    const r = await compareParity({ backend: 'cpu', dtype: 'fp32', dir, oracle: badPath });
    expect(r.pass).toBe(false);
    expect(r.failed).toEqual(['h.1.mlp.c_fc.bias']);
  });

  it('the rule on hand-made values', () => {
    expect(relErr([1, 2.5], [1, 2])).toBeCloseTo(0.25, 15);
    expect(relErr([NaN], [1])).toBe(Infinity);
    // ours 0.1 relative, torch 0.06: bound 0.12 + 2^-8 -> pass; ours 0.2 -> fail
    expect(judge('t', [1.1], [1], [1.06], 'bf16')).toMatchObject({ pass: true });
    expect(judge('t', [1.2], [1], [1.06], 'bf16').bound).toBeCloseTo(0.12 + FLOOR.bf16, 12);
    expect(judge('t', [1.2], [1], [1.06], 'bf16').pass).toBe(false);
    expect(() => judge('t', [1, 2], [1], null, 'fp32')).toThrow(/t: 2 values, the golden has 1/);
  });

  it('inputs mode: our checkpoint and one batch', async () => {
    const d = join(dir, 'inputs');
    mkdirSync(d);
    await writeParityInputs({ config: 'tiny', batch: 2, seq: 8, dir: d });
    expect(existsSync(join(d, 'checkpoint.safetensors'))).toBe(true);
    const b = parseSafetensors(readFileSync(join(d, 'batch.safetensors')));
    expect(b.tensors.get('input.tokens')!.shape).toEqual([2, 8]);
    const ck = parseSafetensors(readFileSync(join(d, 'checkpoint.safetensors')));
    expect(JSON.parse(ck.metadata['config']!)).toMatchObject({
      nLayer: 4,
      nEmbd: 128,
      vocabSize: 2048,
    });
    expect(ck.tensors.has('h.3.mlp.c_proj.weight')).toBe(true);
  });
});
