/**
 * Hugging Face GPT-2 configs (the config.json that save_pretrained writes beside model.safetensors)
 * as our GPT2Config, refusing the settings this model does not implement (untied head, another
 * activation or LayerNorm epsilon, a non-4C MLP, inverse-layer attention scaling) rather than
 * loading weights into a model that computes something else.
 */
import type { GPT2Config } from '../config.js';
import { CheckpointError } from './safetensors.js';

export function configFromHuggingFace(json: unknown, path = '<config>'): GPT2Config {
  const fail = (msg: string): never => {
    throw new CheckpointError(path, msg);
  };
  if (json === null || typeof json !== 'object') fail('config is not a JSON object');
  const j = json as Record<string, unknown>;
  if (j['model_type'] !== undefined && j['model_type'] !== 'gpt2')
    fail(`model_type ${String(j['model_type'])}, expected gpt2`);
  const int = (k: string): number => {
    const v = j[k];
    if (!Number.isInteger(v) || (v as number) < 1)
      fail(`${k} = ${String(v)} is not a positive integer`);
    return v as number;
  };
  const cfg: GPT2Config = {
    vocabSize: int('vocab_size'),
    maxSeqLen: int('n_positions'),
    nLayer: int('n_layer'),
    nHead: int('n_head'),
    nEmbd: int('n_embd'),
  };
  const act = j['activation_function'] ?? 'gelu_new';
  if (act !== 'gelu_new' && act !== 'gelu_pytorch_tanh')
    fail(`activation_function ${String(act)}: only GELU tanh (gelu_new) is implemented`);
  const eps = j['layer_norm_epsilon'] ?? 1e-5;
  if (eps !== 1e-5) fail(`layer_norm_epsilon ${String(eps)}: the model's LayerNorm uses 1e-5`);
  if (j['tie_word_embeddings'] === false)
    fail('tie_word_embeddings false: the model ties lm_head to wte');
  if (j['n_inner'] !== undefined && j['n_inner'] !== null && j['n_inner'] !== 4 * cfg.nEmbd)
    fail(`n_inner ${String(j['n_inner'])}: the MLP is 4 * n_embd wide`);
  if (j['scale_attn_by_inverse_layer_idx'] === true)
    fail('scale_attn_by_inverse_layer_idx: not implemented');
  if (j['scale_attn_weights'] === false) fail('scale_attn_weights false: not implemented');
  return cfg;
}
