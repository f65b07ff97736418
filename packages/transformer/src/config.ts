/** GPT-2 hyperparameters (names as in Hugging Face GPT2Config). */
import { AttentionInputError } from '@flashattn/core';

export interface GPT2Config {
  /** Vocabulary size (wte rows). */
  vocabSize: number;
  /** Largest sequence length (wpe rows), HF n_positions. */
  maxSeqLen: number;
  /** Blocks, HF n_layer. */
  nLayer: number;
  /** Heads, HF n_head. */
  nHead: number;
  /** Channels, HF n_embd. */
  nEmbd: number;
}

/** GPT-2 small, the 124M-parameter model (vocab 50257, 1024 positions, 12 x 12 x 768). */
export const GPT2_124M: GPT2Config = { vocabSize: 50257, maxSeqLen: 1024, nLayer: 12, nHead: 12, nEmbd: 768 };

export function validateConfig(c: GPT2Config): void {
  for (const key of ['vocabSize', 'maxSeqLen', 'nLayer', 'nHead', 'nEmbd'] as const) {
    const v = c[key];
    if (!Number.isInteger(v) || v < 1) throw new AttentionInputError(`config.${key}`, 'a positive integer', v);
  }
  if (c.nEmbd % c.nHead !== 0) {
    throw new AttentionInputError('config.nEmbd', `a multiple of nHead (${c.nHead})`, c.nEmbd);
  }
}
