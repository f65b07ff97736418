// A weights-only file in the layout transformers' save_pretrained writes for GPT2LMHeadModel
// ('transformer.'-prefixed names, metadata format 'pt', no lm_head since it is tied), built here by
// hand: loadCheckpoint reads it into the model unchanged. (The parity test against files written by
// transformers itself is src/parity/hf-kv-parity.test.ts.)
import { CpuOps } from '@flashattn/cpu';
import { createRng } from '@flashattn/core';
import { afterAll, describe, expect, it } from 'vitest';
import { GPT2 } from '../model/gpt2.js';
import { loadCheckpointBytes } from './checkpoint.js';
import { encodeSafetensors } from './safetensors.js';

describe("Hugging Face save_pretrained names ('transformer.' prefix)", () => {
  const ops = new CpuOps({ threads: 1 });
  afterAll(() => ops.dispose());
  const config = { vocabSize: 20, maxSeqLen: 8, nLayer: 2, nHead: 2, nEmbd: 8 };

  it('load as the model weights, every tensor in its place', async () => {
    const model = new GPT2({ config, ops });
    const rng = createRng(5);
    const values = Float32Array.from({ length: model.numParams }, () => rng.normal());
    const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
    // reversed order, so the loader must place by name
    for (const s of [...model.specs].reverse())
      tensors.set(`transformer.${s.name}`, {
        shape: s.shape,
        data: values.slice(s.offset, s.offset + s.size),
      });
    const bytes = encodeSafetensors(tensors, { format: 'pt' });
    await loadCheckpointBytes(bytes, 'model.safetensors', model);
    expect(Array.from(await model.getParams())).toEqual(Array.from(values));
  });

  it('still reports a missing tensor by its name', async () => {
    const model = new GPT2({ config, ops });
    const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
    for (const s of model.specs.slice(1))
      tensors.set(`transformer.${s.name}`, { shape: s.shape, data: new Float32Array(s.size) });
    await expect(
      loadCheckpointBytes(encodeSafetensors(tensors, { format: 'pt' }), 'm.safetensors', model),
    ).rejects.toThrow('missing tensor wte.weight');
  });
});
