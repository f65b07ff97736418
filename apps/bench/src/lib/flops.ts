/**
 * FLOP counts and rates for benchmarks, from core's IO model (one definition for the repo).
 * FlashAttention convention: forward = 4 * B * H * Nq * Nk * D, halved when causal;
 * backward = 2.5 x forward (it recomputes S = Q K^T).
 */
import { attentionFlops } from '@flashattn/core';

export interface FlopProblem {
  batch: number;
  heads: number;
  seqlenQ: number;
  seqlenK: number;
  headDim: number;
  causal?: boolean;
}

export function forwardFlops(p: FlopProblem): number {
  return attentionFlops(p).forward;
}

export function backwardFlops(p: FlopProblem): number {
  return attentionFlops(p).backward;
}

/** GFLOP/s for `flops` done in `ms` milliseconds. */
export function gflopsPerSecond(flops: number, ms: number): number {
  return flops / (ms * 1e-3) / 1e9;
}

/** TFLOP/s for `flops` done in `ms` milliseconds. */
export function tflopsPerSecond(flops: number, ms: number): number {
  return flops / (ms * 1e-3) / 1e12;
}
