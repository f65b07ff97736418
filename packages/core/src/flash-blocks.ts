/**
 * What the CPU FlashAttention-2 forward and backward share: the block-size options (Br, Bc) with their
 * validation, the accumulation precision switch, and the per-row visible key ranges.
 */
import { AttentionInputError, describe } from './errors.js';
import { keyRange, type AttentionOptions, type ResolvedOptions } from './options.js';

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
 * Default tile sizes, chosen by measurement (the table and the command are in flash-forward.ts,
 * "Block sizes"). On the CPU the tile is held in L1/L2 rather than SRAM; the cost is dominated by the
 * dot products, so the choice matters less than on a GPU.
 */
export const DEFAULT_BLOCK_SIZE_Q = 64;
export const DEFAULT_BLOCK_SIZE_K = 64;

/** Resolve and validate Br and Bc (positive integers). */
export function resolveBlockSizes(opts: FlashAttentionOptions | undefined): { Br: number; Bc: number } {
  const pick = (key: 'blockSizeQ' | 'blockSizeK', fallback: number): number => {
    const x = opts?.[key];
    if (x === undefined) return fallback;
    if (typeof x !== 'number' || !Number.isInteger(x) || x < 1) {
      throw new AttentionInputError(`opts.${key}`, 'a positive integer', describe(x));
    }
    return x;
  };
  return { Br: pick('blockSizeQ', DEFAULT_BLOCK_SIZE_Q), Bc: pick('blockSizeK', DEFAULT_BLOCK_SIZE_K) };
}

/**
 * Precision of the on-chip buffers (S, P, acc, dQ): 'float32' mirrors a GPU kernel's fp32
 * accumulators (every store rounds to float32), 'float64' runs the same algorithm exactly enough for
 * finite-difference gradient checks.
 */
export type AccumPrecision = 'float32' | 'float64';
export type FloatArray = Float32Array | Float64Array;

export function allocFloat(precision: AccumPrecision, n: number): FloatArray {
  return precision === 'float32' ? new Float32Array(n) : new Float64Array(n);
}

/**
 * Visible key range [lo[i], hi[i]) of every query row i (core's keyRange); lo and hi are both
 * non-decreasing in i, so the keys a block of rows can see form one contiguous range. (Nq) each.
 */
export function rowKeyRanges(
  seqlenQ: number,
  seqlenK: number,
  o: Pick<ResolvedOptions, 'windowLeft' | 'windowRight'>,
): { lo: Int32Array; hi: Int32Array } {
  const lo = new Int32Array(seqlenQ); // (Nq)
  const hi = new Int32Array(seqlenQ); // (Nq)
  for (let i = 0; i < seqlenQ; i++) {
    const [a, b] = keyRange(i, seqlenQ, seqlenK, o);
    lo[i] = a;
    hi[i] = b;
  }
  return { lo, hi };
}
