// PyTorch parity: golden.safetensors (beside this file, so turbo's src/** test inputs cover it) holds logits, loss and every parameter gradient of the
// tiny GPT-2 in parity-inputs.ts, computed in float64 by parity/torch_golden.py with PyTorch (plain
// torch, cross-checked there against transformers.GPT2LMHeadModel) on the GPU machine, stored as
// float32. This test rebuilds the same model here and compares.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { CpuOps, type CpuBuffer } from '@flashattn/cpu';
import { afterAll, describe, expect, it } from 'vitest';
import { encodeSafetensors, parseSafetensors } from '../checkpoint/safetensors.js';
import { GPT2 } from '../model/gpt2.js';
import { paramSpecs } from '../model/params.js';
import { PARITY_B, PARITY_CONFIG, PARITY_T, parityInputs } from './parity-inputs.js';

const goldenPath = fileURLToPath(new URL('./golden.safetensors', import.meta.url));
const golden = parseSafetensors(readFileSync(goldenPath), goldenPath);
const inputs = parityInputs();
const ops64 = new CpuOps({ threads: 1 });
const ops32 = new CpuOps();
const ops32std = new CpuOps({ attention: 'standard' });
afterAll(async () => {
  await ops64.dispose();
  await ops32.dispose();
  await ops32std.dispose();
});

/** The exact bytes write-inputs.mjs gave PyTorch; the golden records their sha256. */
function inputsSha(): string {
  const t = new Map<string, { shape: number[]; data: Float32Array | Int32Array }>();
  for (const s of paramSpecs(PARITY_CONFIG))
    t.set(s.name, { shape: s.shape, data: inputs.params.subarray(s.offset, s.offset + s.size) });
  t.set('input.tokens', { shape: [PARITY_B, PARITY_T], data: inputs.tokens });
  t.set('input.targets', { shape: [PARITY_B, PARITY_T], data: inputs.targets });
  return createHash('sha256')
    .update(encodeSafetensors(t, { config: JSON.stringify(PARITY_CONFIG) }))
    .digest('hex');
}

interface Errors {
  loss: number;
  logits: number;
  grad: number;
  gradScale: number;
}

async function compare(model: GPT2<CpuBuffer>): Promise<Errors> {
  await model.setParams(inputs.params);
  await model.zeroGrad();
  const loss = await model.forward(inputs.tokens, inputs.targets, PARITY_B, PARITY_T, true);
  const logits = golden.tensors.get('logits')!.data;
  const ours = await model.ops.download(model.logits);
  let logitErr = 0;
  for (let i = 0; i < logits.length; i++)
    logitErr = Math.max(logitErr, Math.abs(ours[i]! - logits[i]!));
  await model.backward();
  const grads = await model.getGrads();
  let gradErr = 0;
  let gradScale = 0;
  for (const s of model.specs) {
    const g = golden.tensors.get(`grad.${s.name}`);
    expect(g, `golden lacks grad.${s.name}`).toBeDefined();
    expect(g!.shape).toEqual(s.shape);
    for (let i = 0; i < s.size; i++) {
      gradErr = Math.max(gradErr, Math.abs(grads[s.offset + i]! - g!.data[i]!));
      gradScale = Math.max(gradScale, Math.abs(g!.data[i]!));
    }
  }
  return {
    loss: Math.abs(loss - Number(golden.metadata['loss'])),
    logits: logitErr,
    grad: gradErr,
    gradScale,
  };
}

describe('parity with PyTorch (golden file)', () => {
  it('the golden was computed from these exact inputs', () => {
    expect(golden.metadata['inputs_sha256']).toBe(inputsSha());
  });

  it('float64 model matches PyTorch float64 to float32 storage precision', async () => {
    const e = await compare(new GPT2({ config: PARITY_CONFIG, ops: ops64, paramDType: 'float64' }));
    // The golden is float64 rounded once to float32: |error| <= 2^-24 |value| per element, so 1e-6
    // relative to the largest magnitude bounds it with margin. The loss is stored as a full double.
    expect(e.loss).toBeLessThan(1e-12);
    expect(e.logits).toBeLessThan(1e-6 * 8);
    expect(e.grad).toBeLessThan(1e-6 * e.gradScale);
  });

  it('float32 model (flash and standard attention) matches PyTorch within the tolerance rule', async () => {
    const flash = await compare(new GPT2({ config: PARITY_CONFIG, ops: ops32 }));
    const standard = await compare(new GPT2({ config: PARITY_CONFIG, ops: ops32std }));
    // Flash's error <= 2x the materialised path's error in the same dtype + a floor of 1e-5 of the
    // value scale (float32 golden storage alone contributes up to 6e-8 relative).
    expect(flash.loss).toBeLessThanOrEqual(2 * standard.loss + 1e-6);
    expect(flash.logits).toBeLessThanOrEqual(2 * standard.logits + 1e-5);
    expect(flash.grad).toBeLessThanOrEqual(2 * standard.grad + 1e-5 * flash.gradScale);
    // Float32 end to end stays within ~1e-4 relative of PyTorch's float64 answer.
    expect(standard.grad).toBeLessThan(1e-4 * standard.gradScale);
    expect(standard.loss).toBeLessThan(1e-5);
  });
});
