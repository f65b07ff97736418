import { mkdtempSync, readFileSync, rmSync, writeFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CpuOps, type CpuBuffer } from '@flashattn/cpu';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GPT2Config } from '../config.js';
import { GPT2 } from '../model/gpt2.js';
import { AdamW } from '../train/adamw.js';
import { CheckpointError, encodeSafetensors, parseSafetensors } from './safetensors.js';
import { loadCheckpoint, saveCheckpoint } from './checkpoint-file.js';

const config: GPT2Config = { vocabSize: 13, maxSeqLen: 8, nLayer: 2, nHead: 2, nEmbd: 8 };
const ops = new CpuOps({ threads: 1 });
const dir = mkdtempSync(join(tmpdir(), 'ckpt-test-'));
afterAll(async () => {
  rmSync(dir, { recursive: true, force: true });
  await ops.dispose();
});

type Model = GPT2<CpuBuffer>;
type Opt = AdamW<CpuBuffer>;

async function make(seed: number): Promise<{ model: Model; opt: Opt }> {
  const model = new GPT2({ config, ops, seed });
  const opt = new AdamW(ops, model.specs, model.paramsLength);
  const m = Float32Array.from({ length: model.numParams }, (_, i) => Math.sin(i + seed));
  const v = Float32Array.from({ length: model.numParams }, (_, i) => Math.cos(i + seed) ** 2);
  await opt.setState(m, v, 7 + seed);
  await model.getParams(); // initialised
  return { model, opt };
}

describe('safetensors checkpoints', () => {
  const path = join(dir, 'a.safetensors');
  let src: { model: Model; opt: Opt };
  beforeAll(async () => {
    src = await make(1);
    await saveCheckpoint(path, src.model, src.opt, {
      step: 42,
      dataPosition: 12345,
      rngState: 0xdeadbeef,
      extra: { note: 'hi' },
    });
  });

  it('round-trips weights, optimizer state, step, data position and RNG state exactly', async () => {
    const dst = await make(2);
    expect(dst.model.params).not.toEqual(src.model.params);
    const st = await loadCheckpoint(path, dst.model, dst.opt, { requireOptimizer: true });
    expect(st).toEqual({
      step: 42,
      dataPosition: 12345,
      rngState: 0xdeadbeef,
      extra: { note: 'hi' },
    });
    expect(dst.model.params).toEqual(src.model.params);
    expect(dst.opt.m).toEqual(src.opt.m);
    expect(dst.opt.v).toEqual(src.opt.v);
    expect(dst.opt.t).toBe(src.opt.t);
    expect(readdirSync(dir).filter((f) => f.includes('.tmp-'))).toEqual([]); // no temp file left behind
  });

  it('uses Hugging Face GPT-2 names and the Conv1D (in, out) layout', () => {
    const { tensors } = parseSafetensors(readFileSync(path));
    expect(tensors.get('wte.weight')!.shape).toEqual([13, 8]);
    expect(tensors.get('wpe.weight')!.shape).toEqual([8, 8]);
    expect(tensors.get('h.0.ln_1.weight')!.shape).toEqual([8]);
    expect(tensors.get('h.1.attn.c_attn.weight')!.shape).toEqual([8, 24]);
    expect(tensors.get('h.1.attn.c_proj.weight')!.shape).toEqual([8, 8]);
    expect(tensors.get('h.0.mlp.c_fc.weight')!.shape).toEqual([8, 32]);
    expect(tensors.get('h.0.mlp.c_proj.weight')!.shape).toEqual([32, 8]);
    expect(tensors.get('ln_f.bias')!.shape).toEqual([8]);
    expect(tensors.has('optimizer.exp_avg.wte.weight')).toBe(true);
  });

  it("loads a weights-only file with Hugging Face's metadata (format 'pt')", async () => {
    const { tensors } = parseSafetensors(readFileSync(path));
    const hf = new Map([...tensors].filter(([k]) => !k.startsWith('optimizer.')));
    const hfPath = join(dir, 'hf.safetensors');
    writeFileSync(hfPath, encodeSafetensors(hf, { format: 'pt' }));
    const dst = await make(3);
    await loadCheckpoint(hfPath, dst.model);
    expect(dst.model.params).toEqual(src.model.params);
  });

  const untouched = async (
    fn: (m: Model, o: Opt) => Promise<unknown>,
    pattern: RegExp,
  ): Promise<void> => {
    const dst = await make(4);
    const before = await dst.model.getParams();
    const mBefore = (await dst.opt.getState()).m;
    const err = await fn(dst.model, dst.opt).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(CheckpointError);
    expect(String(err)).toMatch(pattern);
    expect(await dst.model.getParams()).toEqual(before); // never half-loaded
    expect((await dst.opt.getState()).m).toEqual(mBefore);
  };

  it('rejects a corrupted byte (checksum) and leaves model and optimizer untouched', async () => {
    const bytes = readFileSync(path);
    bytes[bytes.length - 100] ^= 0x40;
    const bad = join(dir, 'corrupt.safetensors');
    writeFileSync(bad, bytes);
    await untouched((m, o) => loadCheckpoint(bad, m, o), /checksum .* corrupted/);
  });

  it('rejects a truncated file', async () => {
    const bytes = readFileSync(path);
    const bad = join(dir, 'trunc.safetensors');
    writeFileSync(bad, bytes.subarray(0, bytes.length - 10));
    await untouched((m, o) => loadCheckpoint(bad, m, o), /truncated/);
    writeFileSync(bad, bytes.subarray(0, 5));
    await untouched((m, o) => loadCheckpoint(bad, m, o), /shorter than the 8-byte header/);
  });

  it('rejects a checkpoint of another configuration, naming the difference', async () => {
    const other = new GPT2({ config: { ...config, nEmbd: 12, nHead: 3 }, ops });
    const otherPath = join(dir, 'other.safetensors');
    await saveCheckpoint(otherPath, other, null, { step: 1, dataPosition: 0, rngState: 0 });
    await untouched(
      (m, o) => loadCheckpoint(otherPath, m, o),
      /config mismatch \(nHead: checkpoint 3 vs model 2; nEmbd: checkpoint 12 vs model 8\)/,
    );
  });

  it('rejects resume from a weights-only checkpoint and a missing file', async () => {
    const wo = join(dir, 'wo.safetensors');
    await saveCheckpoint(wo, src.model, null, { step: 1, dataPosition: 0, rngState: 0 });
    await untouched(
      (m, o) => loadCheckpoint(wo, m, o, { requireOptimizer: true }),
      /no optimizer state/,
    );
    await untouched((m, o) => loadCheckpoint(join(dir, 'nope.safetensors'), m, o), /cannot read/);
  });

  it('rejects a missing tensor and a wrong shape in a weights-only file', async () => {
    const { tensors } = parseSafetensors(readFileSync(path));
    const missing = new Map([...tensors].filter(([k]) => k !== 'h.1.mlp.c_fc.bias'));
    const p1 = join(dir, 'missing.safetensors');
    writeFileSync(p1, encodeSafetensors(missing));
    await untouched((m) => loadCheckpoint(p1, m), /missing tensor h\.1\.mlp\.c_fc\.bias/);
    const wrong = new Map(tensors);
    wrong.set('ln_f.weight', { dtype: 'F32', shape: [2, 4], data: new Float32Array(8) });
    const p2 = join(dir, 'shape.safetensors');
    writeFileSync(p2, encodeSafetensors(wrong));
    await untouched(
      (m) => loadCheckpoint(p2, m),
      /ln_f\.weight: shape \[2, 4\], model expects \[8\]/,
    );
  });
});
