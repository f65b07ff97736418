/**
 * Parameter layout: one flat buffer holding every tensor (llm.c style), in Hugging Face GPT-2 order
 * and names, so checkpoints, the optimizer and the gradient norm each walk one array.
 * Linear weights use HF's Conv1D layout (in, out): y = x @ W + b.
 */
import type { GPT2Config } from '../config.js';
import type { Ops, Rng } from '@flashattn/core';

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

/**
 * The flat layout. With a padded vocabulary Vp > V (an Ops' `rowMultiple`; llm.c's padded_vocab_size), wte's
 * (V, C) rows are followed by (Vp - V) rows of zeros that belong to no tensor, so that wte viewed as (Vp, C) is the
 * tied head's weight with 16-byte aligned rows; the optimizer (which walks the specs) never touches them and their
 * gradient is exactly 0 (softmaxCrossEntropy writes dlogits 0 in the padding columns).
 */
export function paramSpecs(c: GPT2Config, paddedVocab = c.vocabSize): ParamSpec[] {
  const C = c.nEmbd;
  const specs: ParamSpec[] = [];
  let offset = 0;
  const add = (name: string, shape: number[], init: ParamSpec['init']): void => {
    const size = shape.reduce((a, b) => a * b, 1);
    specs.push({ name, shape, offset, size, decay: shape.length >= 2, init });
    offset += size;
  };
  add('wte.weight', [c.vocabSize, C], 'normal');
  offset += (Math.max(paddedVocab, c.vocabSize) - c.vocabSize) * C; // the zero rows of the padded head
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

/** Parameters of the model (the padding rows of a padded vocabulary are not parameters). */
export function numParams(c: GPT2Config): number {
  return paramsLength(paramSpecs(c));
}

/** Elements of the flat buffer that `specs` lay out (numParams plus any padding rows). */
export function paramsLength(specs: readonly ParamSpec[]): number {
  const last = specs[specs.length - 1]!;
  return last.offset + last.size;
}

/**
 * The GPT-2 initialisation as host values (flat, HF order): N(0, 0.02) for weights and embeddings,
 * 0.02 / sqrt(2 L) for the residual projections, LayerNorm weights 1 and biases 0. Drawn in spec order
 * from rng, so a seed gives the same model on every backend.
 */
export function initialParams(c: GPT2Config, specs: readonly ParamSpec[], rng: Rng): Float64Array {
  const residualStd = 0.02 / Math.sqrt(2 * c.nLayer);
  const last = specs[specs.length - 1]!;
  const out = new Float64Array(last.offset + last.size);
  for (const s of specs) {
    if (s.init === 'ones') out.fill(1, s.offset, s.offset + s.size);
    else if (s.init === 'normal' || s.init === 'residual') {
      const std = s.init === 'residual' ? residualStd : 0.02;
      for (let i = s.offset; i < s.offset + s.size; i++) out[i] = rng.normal() * std;
    }
  }
  return out;
}

/** Views into the flat buffer for one block's tensors. */
export interface LayerParams<Buf> {
  ln1w: Buf;
  ln1b: Buf;
  qkvw: Buf;
  qkvb: Buf; // (C, 3C), (3C)
  attprojw: Buf;
  attprojb: Buf; // (C, C), (C)
  ln2w: Buf;
  ln2b: Buf;
  fcw: Buf;
  fcb: Buf; // (C, 4C), (4C)
  fcprojw: Buf;
  fcprojb: Buf; // (4C, C), (C)
}

export interface ParamViews<Buf> {
  wte: Buf; // (V, C)
  wpe: Buf; // (maxT, C)
  layers: LayerParams<Buf>[];
  lnfw: Buf;
  lnfb: Buf; // (C)
}

/** Views (no copies) into the flat parameter (or gradient) buffer, by tensor. */
export function paramViews<Buf>(
  c: GPT2Config,
  ops: Ops<Buf>,
  flat: Buf,
  specs: readonly ParamSpec[] = paramSpecs(c),
): ParamViews<Buf> {
  const byName = new Map<string, Buf>();
  for (const s of specs) byName.set(s.name, ops.view(flat, s.offset, s.size));
  const g = (n: string): Buf => byName.get(n)!;
  const layers: LayerParams<Buf>[] = [];
  for (let l = 0; l < c.nLayer; l++) {
    const p = `h.${l}.`;
    layers.push({
      ln1w: g(p + 'ln_1.weight'),
      ln1b: g(p + 'ln_1.bias'),
      qkvw: g(p + 'attn.c_attn.weight'),
      qkvb: g(p + 'attn.c_attn.bias'),
      attprojw: g(p + 'attn.c_proj.weight'),
      attprojb: g(p + 'attn.c_proj.bias'),
      ln2w: g(p + 'ln_2.weight'),
      ln2b: g(p + 'ln_2.bias'),
      fcw: g(p + 'mlp.c_fc.weight'),
      fcb: g(p + 'mlp.c_fc.bias'),
      fcprojw: g(p + 'mlp.c_proj.weight'),
      fcprojb: g(p + 'mlp.c_proj.bias'),
    });
  }
  return {
    wte: g('wte.weight'),
    wpe: g('wpe.weight'),
    layers,
    lnfw: g('ln_f.weight'),
    lnfb: g('ln_f.bias'),
  };
}
