/**
 * The case matrix of the CPU flash tests (forward and backward share it) and the input generator.
 * Each run draws fresh random inputs from a new seed; a failure message prints the seed and the case.
 */
import type { DType } from '../dtype.js';
import type { FlashAttentionOptions } from '../flash-blocks.js';
import { createRng, randomTensor } from '../random.js';
import type { Tensor } from '../tensor.js';

export interface FlashCase {
  name: string;
  B: number;
  Nq: number;
  Nk: number;
  Hq: number;
  Hk: number;
  D: number;
  dtype: DType;
  opts: FlashAttentionOptions;
  /** Standard deviation of q and k: 1 for ordinary scores, large for logits near 1e4. */
  qkStd?: number;
}

export interface FlashInputs {
  seed: number;
  q: Tensor; // (B, Nq, Hq, D)
  k: Tensor; // (B, Nk, Hk, D)
  v: Tensor; // (B, Nk, Hk, D)
  dout: Tensor; // (B, Nq, Hq, D)
}

export function makeInputs(c: FlashCase, seed: number): FlashInputs {
  const rng = createRng(seed);
  const std = c.qkStd ?? 1;
  return {
    seed,
    q: randomTensor(rng, [c.B, c.Nq, c.Hq, c.D], c.dtype, std),
    k: randomTensor(rng, [c.B, c.Nk, c.Hk, c.D], c.dtype, std),
    v: randomTensor(rng, [c.B, c.Nk, c.Hk, c.D], c.dtype),
    dout: randomTensor(rng, [c.B, c.Nq, c.Hq, c.D], c.dtype),
  };
}

/** Attention options only (the oracle rejects the flash block-size keys). */
export function attentionOpts(opts: FlashAttentionOptions): FlashAttentionOptions {
  const { blockSizeQ: _q, blockSizeK: _k, ...rest } = opts;
  return rest;
}

const DT: DType[] = ['float32', 'float16', 'bfloat16'];

/** The matrix: every case runs in every dtype. */
export function flashCases(): FlashCase[] {
  const base: Omit<FlashCase, 'dtype'>[] = [];
  const add = (name: string, c: Omit<FlashCase, 'dtype' | 'name'>): void =>
    void base.push({ name, ...c });
  // Square lengths around the default tile (64) and its multiples, causal and not.
  for (const N of [1, 17, 127, 128, 129]) {
    add(`N=${N}`, { B: 2, Nq: N, Nk: N, Hq: 2, Hk: 2, D: 32, opts: {} });
    add(`N=${N} causal`, { B: 1, Nq: N, Nk: N, Hq: 2, Hk: 2, D: 32, opts: { causal: true } });
  }
  // seqlen_q != seqlen_k both ways; causal is bottom-right aligned, so Nq > Nk leaves rows masked.
  add('Nq<Nk', { B: 1, Nq: 17, Nk: 129, Hq: 2, Hk: 2, D: 64, opts: {} });
  add('Nq>Nk', { B: 1, Nq: 129, Nk: 17, Hq: 2, Hk: 2, D: 64, opts: {} });
  add('Nq<Nk causal', { B: 1, Nq: 40, Nk: 131, Hq: 2, Hk: 1, D: 32, opts: { causal: true } });
  add('Nq>Nk causal (fully masked rows)', {
    B: 2,
    Nq: 131,
    Nk: 40,
    Hq: 2,
    Hk: 2,
    D: 32,
    opts: { causal: true },
  });
  // Sliding windows, including ones that leave rows with no key.
  add('window [8,4]', {
    B: 1,
    Nq: 150,
    Nk: 150,
    Hq: 2,
    Hk: 2,
    D: 32,
    opts: { windowSize: [8, 4] },
  });
  add('window [16,-1] Nq<Nk', {
    B: 1,
    Nq: 70,
    Nk: 200,
    Hq: 2,
    Hk: 2,
    D: 32,
    opts: { windowSize: [16, -1] },
  });
  add('window [3,0] Nq>Nk (fully masked rows)', {
    B: 1,
    Nq: 90,
    Nk: 30,
    Hq: 2,
    Hk: 2,
    D: 16,
    opts: { windowSize: [3, 0] },
  });
  add('window [0,0]', { B: 1, Nq: 33, Nk: 33, Hq: 1, Hk: 1, D: 16, opts: { windowSize: [0, 0] } });
  // GQA and MQA.
  add('GQA 6/2', { B: 1, Nq: 65, Nk: 77, Hq: 6, Hk: 2, D: 32, opts: {} });
  add('MQA 4/1 causal', { B: 2, Nq: 50, Nk: 50, Hq: 4, Hk: 1, D: 32, opts: { causal: true } });
  // Logits near 1e4 (scores std ~ qkStd^2): a naive exp without the max shift overflows.
  add('huge logits', { B: 1, Nq: 40, Nk: 70, Hq: 2, Hk: 2, D: 64, opts: {}, qkStd: 100 });
  add('huge logits causal', {
    B: 1,
    Nq: 70,
    Nk: 40,
    Hq: 1,
    Hk: 1,
    D: 64,
    opts: { causal: true },
    qkStd: 100,
  });
  // Block sizes that do not divide N, degenerate ones, and ones larger than N.
  add('Br=7 Bc=13', {
    B: 1,
    Nq: 100,
    Nk: 91,
    Hq: 2,
    Hk: 1,
    D: 32,
    opts: { blockSizeQ: 7, blockSizeK: 13 },
  });
  add('Br=1 Bc=1 causal', {
    B: 1,
    Nq: 20,
    Nk: 25,
    Hq: 1,
    Hk: 1,
    D: 8,
    opts: { causal: true, blockSizeQ: 1, blockSizeK: 1 },
  });
  add('Br=128 Bc=32 window', {
    B: 1,
    Nq: 200,
    Nk: 180,
    Hq: 2,
    Hk: 2,
    D: 32,
    opts: { windowSize: [20, 5], blockSizeQ: 128, blockSizeK: 32 },
  });
  add('Br=300 Bc=500 causal', {
    B: 1,
    Nq: 129,
    Nk: 127,
    Hq: 1,
    Hk: 1,
    D: 80,
    opts: { causal: true, blockSizeQ: 300, blockSizeK: 500 },
  });
  add('softmaxScale 0.3, D=128', {
    B: 1,
    Nq: 37,
    Nk: 53,
    Hq: 2,
    Hk: 2,
    D: 128,
    opts: { softmaxScale: 0.3 },
  });
  return base.flatMap((c) => DT.map((dtype) => ({ ...c, dtype, name: `${c.name} ${dtype}` })));
}
