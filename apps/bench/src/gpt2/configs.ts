/**
 * Model shapes for the GPT-2 training benchmark: the same as apps/gpt2-train's presets (configs.ts there),
 * with the full GPT-2 vocabulary of 50257 (not padded to 50304: our model has no padded vocabulary, so the
 * PyTorch peer uses 50257 too) for the GPT-2 sizes, and the trainer's compact vocabularies for tiny/small.
 */
import type { GPT2Config } from '@flashattn/transformer';

export const BENCH_CONFIGS = {
  tiny: { vocabSize: 2048, maxSeqLen: 1024, nLayer: 4, nHead: 4, nEmbd: 128 },
  small: { vocabSize: 8192, maxSeqLen: 1024, nLayer: 6, nHead: 6, nEmbd: 384 },
  'gpt2-124m': { vocabSize: 50257, maxSeqLen: 1024, nLayer: 12, nHead: 12, nEmbd: 768 },
  'gpt2-350m': { vocabSize: 50257, maxSeqLen: 1024, nLayer: 24, nHead: 16, nEmbd: 1024 },
  // 124M with 8192 positions (wpe 8192 x 768): the T = 4096 / 8192 settings
  'gpt2-124m-8k': { vocabSize: 50257, maxSeqLen: 8192, nLayer: 12, nHead: 12, nEmbd: 768 },
} as const satisfies Record<string, GPT2Config>;

export type BenchConfigName = keyof typeof BENCH_CONFIGS;
export const BENCH_CONFIG_NAMES = Object.keys(BENCH_CONFIGS) as BenchConfigName[];

/** The benchmarks' --dtype flag: the model's compute dtype (parameters and AdamW state stay float32). */
export const COMPUTE_DTYPE_FLAGS = ['bf16', 'fp32', 'fp16'] as const;
export type ComputeDTypeFlag = (typeof COMPUTE_DTYPE_FLAGS)[number];
const COMPUTE = { bf16: 'bfloat16', fp32: 'float32', fp16: 'float16' } as const;

/** The compute dtype that `--dtype flag` names, or a RangeError naming the flag when `ops` has no such buffers. */
export function computeDTypeFor(
  flag: ComputeDTypeFlag,
  ops: { name: string; dtypes: readonly string[] },
): (typeof COMPUTE)[ComputeDTypeFlag] {
  const dtype = COMPUTE[flag];
  if (!ops.dtypes.includes(dtype))
    throw new RangeError(
      `--dtype ${flag}: backend ${ops.name} has no ${dtype} buffers (it has ${ops.dtypes.join(', ')})`,
    );
  return dtype;
}
