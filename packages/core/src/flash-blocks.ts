/**
 * The public knobs of the CPU FlashAttention-2 forward and backward: the block-size options (Br, Bc)
 * with their defaults and validation, and the accumulation precision type. (The internal tile helpers
 * are in flash-tile.ts.)
 */
import { AttentionInputError, describe } from './errors.js';
import type { AttentionOptions } from './options.js';

/** AttentionOptions plus the tile sizes of the CPU FlashAttention-2 kernels. */
export interface FlashAttentionOptions extends AttentionOptions {
  /** Br: query rows per tile (Algorithm 1's outer loop). Default DEFAULT_BLOCK_SIZE_Q. */
  blockSizeQ?: number;
  /** Bc: key/value rows per tile (Algorithm 1's inner loop). Default DEFAULT_BLOCK_SIZE_K. */
  blockSizeK?: number;
}

/** Option keys the flash kernels accept beyond AttentionOptions (for validateForward/Backward). */
export const FLASH_OPTION_KEYS: readonly string[] = ['blockSizeQ', 'blockSizeK'];

/**
 * Default tile sizes, chosen by measurement (the table and the command are in flash-forward.ts's
 * header, "Block sizes"): on the CPU no size measured better beyond the noise, so 64 x 64.
 */
export const DEFAULT_BLOCK_SIZE_Q = 64;
export const DEFAULT_BLOCK_SIZE_K = 64;

/** Resolve and validate Br and Bc (positive integers). */
export function resolveBlockSizes(opts: FlashAttentionOptions | undefined): {
  Br: number;
  Bc: number;
} {
  const pick = (key: 'blockSizeQ' | 'blockSizeK', fallback: number): number => {
    const x = opts?.[key];
    if (x === undefined) return fallback;
    if (typeof x !== 'number' || !Number.isInteger(x) || x < 1) {
      throw new AttentionInputError(`opts.${key}`, 'a positive integer', describe(x));
    }
    return x;
  };
  return {
    Br: pick('blockSizeQ', DEFAULT_BLOCK_SIZE_Q),
    Bc: pick('blockSizeK', DEFAULT_BLOCK_SIZE_K),
  };
}

/**
 * Precision of the on-chip buffers (S, P, acc, dQ): 'float32' mirrors a GPU kernel's fp32
 * accumulators (every store rounds to float32), 'float64' runs the same algorithm exactly enough for
 * finite-difference gradient checks.
 */
export type AccumPrecision = 'float32' | 'float64';
export type FloatArray = Float32Array | Float64Array;

/**
 * Where one (B, N, H, D) operand of the CPU kernels lives in its array: the element offset of
 * (0, 0, 0, 0) and the batch, row and head strides (the head dim is contiguous). The device
 * attention contract's StridedView, minus the buffer.
 */
export interface KernelLayout {
  offset: number;
  sB: number;
  sN: number;
  sH: number;
}

/** The contiguous (B, N, H, D) layout. */
export function contiguousLayout(N: number, H: number, D: number, offset = 0): KernelLayout {
  return { offset, sB: N * H * D, sN: H * D, sH: D };
}
