// Hugging Face GPT-2 config.json -> GPT2Config, and the settings the model does not implement refused
// with a CheckpointError naming the field.
import { describe, expect, it } from 'vitest';
import { configFromHuggingFace } from './hf-config.js';
import { CheckpointError } from './safetensors.js';

const gpt2 = {
  model_type: 'gpt2',
  vocab_size: 50257,
  n_positions: 1024,
  n_layer: 12,
  n_head: 12,
  n_embd: 768,
  activation_function: 'gelu_new',
  layer_norm_epsilon: 1e-5,
  n_inner: null,
};

describe('configFromHuggingFace', () => {
  it('maps the GPT-2 124M config', () => {
    expect(configFromHuggingFace(gpt2)).toEqual({
      vocabSize: 50257,
      maxSeqLen: 1024,
      nLayer: 12,
      nHead: 12,
      nEmbd: 768,
    });
  });
  for (const [field, value] of [
    ['activation_function', 'relu'],
    ['layer_norm_epsilon', 1e-6],
    ['tie_word_embeddings', false],
    ['n_inner', 1000],
    ['scale_attn_by_inverse_layer_idx', true],
    ['model_type', 'llama'],
    ['n_head', 0],
  ] as const) {
    it(`refuses ${field} = ${String(value)}`, () => {
      const f = () => configFromHuggingFace({ ...gpt2, [field]: value }, 'config.json');
      expect(f).toThrow(CheckpointError);
      expect(f).toThrow(field);
    });
  }
});
