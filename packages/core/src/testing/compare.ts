/**
 * Error measurement under the tolerance rule (max |actual - oracle| with NaN/Inf counted as infinite),
 * and which rows / keys the mask empties (they get exact checks instead).
 */
import { keyRange, resolveOptions, type AttentionOptions } from '../options.js';

/** Which query rows see no key and which keys no query sees (the mask depends on i and j only). */
export interface MaskInfo {
  /** (Nq): 1 where row i is fully masked. */
  maskedRows: Uint8Array;
  /** (Nk): 1 where key j is seen by no query row. */
  unseenKeys: Uint8Array;
  anyMaskedRow: boolean;
  anyUnseenKey: boolean;
}

export function maskInfo(
  seqlenQ: number,
  seqlenK: number,
  headDim: number,
  opts: AttentionOptions,
): MaskInfo {
  const o = resolveOptions(opts, headDim);
  const maskedRows = new Uint8Array(seqlenQ);
  const seen = new Uint8Array(seqlenK);
  for (let i = 0; i < seqlenQ; i++) {
    const [lo, hi] = keyRange(i, seqlenQ, seqlenK, o);
    if (lo >= hi) maskedRows[i] = 1;
    else seen.fill(1, lo, hi);
  }
  const unseenKeys = seen.map((s) => 1 - s);
  return {
    maskedRows,
    unseenKeys,
    anyMaskedRow: maskedRows.includes(1),
    anyUnseenKey: unseenKeys.includes(1),
  };
}

/** Result of comparing one output with the oracle. */
export interface Deviation {
  /** max |actual - oracle| over the compared elements; Infinity if some actual value is NaN or +-Inf. */
  maxErr: number;
  /** Flat index of the worst element (or of the first non-finite one); -1 if nothing was compared. */
  at: number;
  /** Number of non-finite actual values among the compared elements. */
  nonFinite: number;
}

/**
 * max |actual - oracle| over elements where `skip(x)` is false. Non-finite actual values count as an
 * infinite error (a NaN must never pass by comparing false).
 */
export function maxDeviation(
  actual: ArrayLike<number>,
  oracle: ArrayLike<number>,
  skip?: (x: number) => boolean,
): Deviation {
  let maxErr = 0;
  let at = -1;
  let nonFinite = 0;
  for (let x = 0; x < oracle.length; x++) {
    if (skip?.(x)) continue;
    const a = actual[x]!;
    if (!Number.isFinite(a)) {
      if (nonFinite === 0) at = x;
      nonFinite++;
      continue;
    }
    const e = Math.abs(a - oracle[x]!);
    if (nonFinite === 0 && (e > maxErr || at < 0)) {
      maxErr = e;
      at = x;
    }
  }
  if (nonFinite > 0) maxErr = Infinity;
  return { maxErr, at, nonFinite };
}

/** Render a flat index of a (d0, d1, d2, d3) tensor as named coordinates. */
export function coords(x: number, shape: readonly number[], names: readonly string[]): string {
  const idx: number[] = [];
  let r = x;
  for (let a = shape.length - 1; a >= 0; a--) {
    idx[a] = r % shape[a]!;
    r = Math.floor(r / shape[a]!);
  }
  return idx.map((v, a) => `${names[a]}=${v}`).join(' ');
}
