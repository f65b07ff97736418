/**
 * The decode kernel's split count (native/inference/decode_attention.cu): core's flash-decoding rule
 * (`kvSplitHeuristic`: the fewest splits within 85% of the best wave efficiency over SMs x KV_CTAS_PER_SM
 * resident CTAs), then no more splits than leave each one KV_MIN_KEYS_PER_SPLIT keys. Measurements:
 * BENCHMARKS.md, "CUDA decode attention (issue #12)".
 */
import { kvSplitHeuristic, type KvCacheCapabilities } from '@flashattn/core';

/**
 * Fewest keys per split of the CUDA decode kernel. Below it a split's fixed cost (Q loads, the ring's fill,
 * the group merge, its partial and its share of the fused combine, which the last CTA runs alone over every
 * split) outweighs its keys. H100, bf16 decode Hq 32 / Hk 8, D 128, B = 1 (BENCHMARKS.md, CUDA decode attention,
 * 2026-12-07 11:45 UTC split sweep, one build): L = 4096 took 0.051 ms at 32 splits and 0.075 ms at 57, L = 1024
 * 0.028 ms at 8 and 0.031 ms at 16 (that build's combine cost ~0.6 us a split, more than the default's; the
 * default build ran 55 splits of 75 keys at L = 4096 in 0.040 ms).
 */
export const KV_MIN_KEYS_PER_SPLIT = 128;

/** The shape kvSplitHeuristic takes (seqlenK: the longest sequence's keys). */
export interface KvSplitShape {
  batch: number;
  seqlenQ: number;
  nheadsQ: number;
  nheadsK: number;
  seqlenK: number;
}

/** Splits for one call: kvSplitHeuristic, capped so that every split keeps KV_MIN_KEYS_PER_SPLIT keys. */
export function cudaKvSplits(
  shape: KvSplitShape,
  caps: Pick<KvCacheCapabilities, 'parallelism' | 'maxSplits'>,
): number {
  const s = kvSplitHeuristic(shape, caps);
  return Math.max(1, Math.min(s, Math.floor(shape.seqlenK / KV_MIN_KEYS_PER_SPLIT)));
}
