/**
 * Model FLOPs of a GPT-2 training step and model FLOPs utilisation (MFU), one definition for the trainer
 * (apps/gpt2-train), our benchmark (apps/bench/src/gpt2/train-bench.ts) and, restated in Python with the
 * same numbers, the PyTorch peer (apps/bench/src/gpt2/torch_gpt2_peer.py).
 *
 * Convention (FlashAttention-2 paper, Section 4.2, end-to-end GPT training, after Megatron-LM):
 *   FLOPs per token, forward + backward = 6 * N + 12 * nLayer * nEmbd * T
 *   - 6 * N: every weight is used in one multiply-add (2 FLOPs) per token in the forward and two in the
 *     backward (input and weight gradients). N counts wte once (the tied head lnf @ wte^T is the matmul
 *     that uses it) but not wpe: a position embedding is a lookup, no FLOPs (nanoGPT's estimate_mfu
 *     leaves it out too). It matters for the long-context presets, where wpe holds 6.3M of 130M params.
 *   - 12 * L * C * T: attention scores S = Q K^T and P V are 2 * 2 * T * C FLOPs per token per layer
 *     forward, 3x that forward + backward (the backward does two matmuls per forward one).
 *   Causal attention is NOT halved here. The FA2 paper (Section 4.2) uses this formula per sequence,
 *   6 * seqlen * params + 12 * layers * hidden * seqlen^2, notes that one could halve the second term
 *   for a causal mask, and keeps it whole to follow the literature (Megatron-LM); its end-to-end GPT
 *   figures (72% MFU) are computed that way. Only its attention-kernel benchmarks halve the causal count. `attention: 'causal-half'` gives the halved count
 *   (what a causal kernel actually computes) for reports that want it.
 */
import type { GPT2Config } from '../config.js';
import { numParams } from '../model/params.js';

export interface FlopsOptions {
  /** 'full' (default, FA2 end-to-end convention) or 'causal-half'. */
  attention?: 'full' | 'causal-half';
}

/** N for 6 * N: every parameter except the position embedding wpe (maxSeqLen x nEmbd). */
export function flopParams(c: GPT2Config): number {
  return numParams(c) - c.maxSeqLen * c.nEmbd;
}

/** Training FLOPs (forward + backward) per token at sequence length T. */
export function trainingFlopsPerToken(c: GPT2Config, T: number, o: FlopsOptions = {}): number {
  const attn = 12 * c.nLayer * c.nEmbd * T;
  return 6 * flopParams(c) + (o.attention === 'causal-half' ? attn / 2 : attn);
}

/** Training FLOPs of one optimizer step over `tokens` tokens of sequence length T. */
export function trainingFlops(
  c: GPT2Config,
  T: number,
  tokens: number,
  o: FlopsOptions = {},
): number {
  return trainingFlopsPerToken(c, T, o) * tokens;
}

/** A dense peak (TFLOP/s) for a compute dtype on a known device, or why there is none. */
export type PeakLookup =
  { tflops: number; device: string; source: string } | { tflops: null; note: string };

/**
 * Dense peaks from NVIDIA's H100 SXM5 datasheet (the figures core's device-profiles.ts records):
 * bf16/fp16 tensor cores 989.5 TFLOP/s dense (1,979 with sparsity; 989.4 when computed from the boost
 * clock), fp32 on CUDA cores 67. The H200 has the same GH100 compute (only memory differs), so the same
 * peaks. H100 PCIe / NVL have other clocks and SM counts: not matched (MFU then needs --peak-tflops).
 */
export function lookupPeakTflops(deviceText: string, computeDType: string): PeakLookup {
  const isPcie = /H100[^,;)]*(PCIe|NVL)/i.test(deviceText);
  const m = /\b(H100|H200)\b/i.exec(deviceText);
  if (!m || isPcie) {
    return {
      tflops: null,
      note: `no known peak for '${deviceText}' (known: H100 SXM, H200); pass --peak-tflops for MFU`,
    };
  }
  const device = m[1]!.toUpperCase();
  if (computeDType === 'bfloat16' || computeDType === 'float16')
    return {
      tflops: 989.5,
      device,
      source: `${device} SXM dense ${computeDType} tensor-core peak (datasheet)`,
    };
  if (computeDType === 'float32')
    return { tflops: 67, device, source: `${device} SXM fp32 (non-tensor) peak (datasheet)` };
  return {
    tflops: null,
    note: `no peak for ${computeDType} on ${device}; pass --peak-tflops for MFU`,
  };
}

/** MFU in [0, 1]: achieved model FLOP/s over the peak. */
export function mfu(flopsPerStep: number, secondsPerStep: number, peakTflops: number): number {
  return flopsPerStep / secondsPerStep / (peakTflops * 1e12);
}
