/**
 * The fixed tiny GPT-2 and batch of the PyTorch parity check (parity/torch_golden.py wrote the golden
 * file from exactly these values). Weights are drawn from a seeded RNG and rounded to float32 so the
 * float32 model, the float64 model and PyTorch all start from identical numbers. LayerNorm weights
 * and all biases are random too, so every gradient is exercised.
 */
import { createRng } from '@flashattn/core';
import type { GPT2Config } from '../config.js';
import { paramSpecs, numParams } from '../model/params.js';

export const PARITY_CONFIG: GPT2Config = { vocabSize: 64, maxSeqLen: 16, nLayer: 2, nHead: 2, nEmbd: 32 };
export const PARITY_B = 2;
export const PARITY_T = 16;
export const PARITY_SEED = 20261121;

export interface ParityInputs {
  params: Float32Array; // flat, params.ts order
  tokens: Int32Array; // (B, T)
  targets: Int32Array; // (B, T)
}

export function parityInputs(): ParityInputs {
  const rng = createRng(PARITY_SEED);
  const params = new Float32Array(numParams(PARITY_CONFIG));
  for (const s of paramSpecs(PARITY_CONFIG)) {
    for (let i = 0; i < s.size; i++) {
      const z = rng.normal();
      // Larger than GPT-2's 0.02 so logits and attention are far from uniform.
      params[s.offset + i] = s.init === 'ones' ? 1 + 0.1 * z : s.init === 'zeros' ? 0.05 * z : 0.15 * z;
    }
  }
  const n = PARITY_B * PARITY_T;
  const tokens = new Int32Array(n);
  const targets = new Int32Array(n);
  for (let i = 0; i < n; i++) tokens[i] = rng.int(PARITY_CONFIG.vocabSize);
  for (let i = 0; i < n; i++) targets[i] = rng.int(PARITY_CONFIG.vocabSize);
  return { params, tokens, targets };
}
