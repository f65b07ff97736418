/**
 * Model presets. gpt2-350m is GPT-2 medium's shape; gpt2-124m-8k is the 124M shape with 8192 positions
 * (only wpe grows: 8192 x 768), for long-context training at --seq 4096 / 8192 where materialised
 * attention's (B, H, T, T) scores would not fit. `vocab` is the compact vocabulary size (see vocab.ts); 0 = full GPT-2 (50257).
 * tiny: sized so a few minutes on a 2-core CPU learn visible structure.
 */
import { GPT2_124M, type GPT2Config } from '@flashattn/transformer';

export interface Preset {
  model: Omit<GPT2Config, 'vocabSize'>;
  vocab: number;
  batch: number;
  seq: number;
  lr: number;
  steps: number;
}

export const PRESETS = {
  tiny: { model: { maxSeqLen: 1024, nLayer: 4, nHead: 4, nEmbd: 128 }, vocab: 2048, batch: 8, seq: 64, lr: 3e-3, steps: 400 },
  small: { model: { maxSeqLen: 1024, nLayer: 6, nHead: 6, nEmbd: 384 }, vocab: 8192, batch: 8, seq: 256, lr: 1e-3, steps: 2000 },
  'gpt2-124m': { model: { maxSeqLen: GPT2_124M.maxSeqLen, nLayer: 12, nHead: 12, nEmbd: 768 }, vocab: 0, batch: 4, seq: 1024, lr: 6e-4, steps: 1000 },
  'gpt2-350m': { model: { maxSeqLen: 1024, nLayer: 24, nHead: 16, nEmbd: 1024 }, vocab: 0, batch: 4, seq: 1024, lr: 3e-4, steps: 1000 },
  'gpt2-124m-8k': { model: { maxSeqLen: 8192, nLayer: 12, nHead: 12, nEmbd: 768 }, vocab: 0, batch: 1, seq: 4096, lr: 6e-4, steps: 1000 },
} satisfies Record<string, Preset>;

export type PresetName = keyof typeof PRESETS;
