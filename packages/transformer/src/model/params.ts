/**
 * Parameter layout: one flat buffer holding every tensor (llm.c style), in Hugging Face GPT-2 order
 * and names, so checkpoints, the optimizer and the gradient norm each walk one array.
 * Linear weights use HF's Conv1D layout (in, out): y = x @ W + b.
 */
import type { GPT2Config } from '../config.js';
import type { FloatArray } from '../ops/ops.js';

export interface ParamSpec {
  /** Hugging Face GPT-2 name, e.g. 'h.0.attn.c_attn.weight'. */
  name: string;
  shape: number[];
  offset: number;
  size: number;
  /** AdamW weight decay applies to matrices (embeddings and linear weights), not biases or LayerNorm. */
  decay: boolean;
  /** Init: 'normal' (std 0.02), 'residual' (std 0.02 / sqrt(2 L)), 'zeros' or 'ones'. */
  init: 'normal' | 'residual' | 'zeros' | 'ones';
}

export function paramSpecs(c: GPT2Config): ParamSpec[] {
  const C = c.nEmbd;
  const specs: ParamSpec[] = [];
  let offset = 0;
  const add = (name: string, shape: number[], init: ParamSpec['init']): void => {
    const size = shape.reduce((a, b) => a * b, 1);
    specs.push({ name, shape, offset, size, decay: shape.length >= 2, init });
    offset += size;
  };
  add('wte.weight', [c.vocabSize, C], 'normal');
  add('wpe.weight', [c.maxSeqLen, C], 'normal');
  for (let l = 0; l < c.nLayer; l++) {
    const p = `h.${l}.`;
    add(p + 'ln_1.weight', [C], 'ones');
    add(p + 'ln_1.bias', [C], 'zeros');
    add(p + 'attn.c_attn.weight', [C, 3 * C], 'normal');
    add(p + 'attn.c_attn.bias', [3 * C], 'zeros');
    add(p + 'attn.c_proj.weight', [C, C], 'residual');
    add(p + 'attn.c_proj.bias', [C], 'zeros');
    add(p + 'ln_2.weight', [C], 'ones');
    add(p + 'ln_2.bias', [C], 'zeros');
    add(p + 'mlp.c_fc.weight', [C, 4 * C], 'normal');
    add(p + 'mlp.c_fc.bias', [4 * C], 'zeros');
    add(p + 'mlp.c_proj.weight', [4 * C, C], 'residual');
    add(p + 'mlp.c_proj.bias', [C], 'zeros');
  }
  add('ln_f.weight', [C], 'ones');
  add('ln_f.bias', [C], 'zeros');
  return specs;
}

export function numParams(c: GPT2Config): number {
  const s = paramSpecs(c);
  const last = s[s.length - 1]!;
  return last.offset + last.size;
}

/** Views into the flat buffer for one block's tensors. */
export interface LayerParams {
  ln1w: FloatArray; ln1b: FloatArray;
  qkvw: FloatArray; qkvb: FloatArray; // (C, 3C), (3C)
  attprojw: FloatArray; attprojb: FloatArray; // (C, C), (C)
  ln2w: FloatArray; ln2b: FloatArray;
  fcw: FloatArray; fcb: FloatArray; // (C, 4C), (4C)
  fcprojw: FloatArray; fcprojb: FloatArray; // (4C, C), (C)
}

export interface ParamViews {
  wte: FloatArray; // (V, C)
  wpe: FloatArray; // (maxT, C)
  layers: LayerParams[];
  lnfw: FloatArray; lnfb: FloatArray; // (C)
}

export function paramViews(c: GPT2Config, flat: FloatArray): ParamViews {
  const byName = new Map<string, FloatArray>();
  for (const s of paramSpecs(c)) byName.set(s.name, flat.subarray(s.offset, s.offset + s.size));
  const g = (n: string): FloatArray => byName.get(n)!;
  const layers: LayerParams[] = [];
  for (let l = 0; l < c.nLayer; l++) {
    const p = `h.${l}.`;
    layers.push({
      ln1w: g(p + 'ln_1.weight'), ln1b: g(p + 'ln_1.bias'),
      qkvw: g(p + 'attn.c_attn.weight'), qkvb: g(p + 'attn.c_attn.bias'),
      attprojw: g(p + 'attn.c_proj.weight'), attprojb: g(p + 'attn.c_proj.bias'),
      ln2w: g(p + 'ln_2.weight'), ln2b: g(p + 'ln_2.bias'),
      fcw: g(p + 'mlp.c_fc.weight'), fcb: g(p + 'mlp.c_fc.bias'),
      fcprojw: g(p + 'mlp.c_proj.weight'), fcprojb: g(p + 'mlp.c_proj.bias'),
    });
  }
  return { wte: g('wte.weight'), wpe: g('wpe.weight'), layers, lnfw: g('ln_f.weight'), lnfb: g('ln_f.bias') };
}
