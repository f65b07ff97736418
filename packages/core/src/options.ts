/**
 * Attention options and the mask rule every backend shares.
 *
 * Masking follows flash-attn >= 2.1: with seqlen_q != seqlen_k the causal diagonal is aligned to the
 * bottom-right corner, i.e. query row i sits at key position i + (Nk - Nq). A sliding window
 * [left, right] lets row i see keys j with  i + Nk - Nq - left <= j <= i + Nk - Nq + right
 * (-1 = unbounded on that side). `causal` is the window's right edge at 0.
 * A query row that sees no key outputs zeros and lse = -Infinity.
 */

export interface AttentionOptions {
  /** Mask keys to the future of each query (bottom-right aligned). Default false. */
  causal?: boolean;
  /** Scale applied to QK^T before softmax. Default 1/sqrt(headdim). */
  softmaxScale?: number;
  /** Sliding window [left, right] in keys around the (shifted) diagonal; -1 = unbounded. Default [-1, -1]. */
  windowSize?: readonly [number, number];
}

/** Sizes of one attention problem, from q (B, Nq, Hq, D) and k, v (B, Nk, Hk, D). */
export interface AttentionShape {
  batch: number;
  seqlenQ: number;
  seqlenK: number;
  nheadsQ: number;
  nheadsK: number;
  headDim: number;
}

/** Options with every default filled in. */
export interface ResolvedOptions {
  causal: boolean;
  softmaxScale: number;
  /** Keys visible to the left of the diagonal; -1 = unbounded. */
  windowLeft: number;
  /** Keys visible to the right of the diagonal; -1 = unbounded. causal forces 0. */
  windowRight: number;
}

/** Fill in defaults. Assumes opts were validated (see validate.ts). */
export function resolveOptions(opts: AttentionOptions | undefined, headDim: number): ResolvedOptions {
  const causal = opts?.causal ?? false;
  const [left, right] = opts?.windowSize ?? [-1, -1];
  return {
    causal,
    softmaxScale: opts?.softmaxScale ?? 1 / Math.sqrt(headDim),
    windowLeft: left,
    // flash-attn: causal sets the right edge of the window to 0.
    windowRight: causal ? 0 : right,
  };
}

/**
 * Visible key range [lo, hi) for query row i. Empty (lo >= hi) for a fully masked row.
 * This is the single definition of the mask; kernels mirror it and tests check them against it.
 */
export function keyRange(
  i: number,
  seqlenQ: number,
  seqlenK: number,
  o: Pick<ResolvedOptions, 'windowLeft' | 'windowRight'>,
): [lo: number, hi: number] {
  const diag = i + seqlenK - seqlenQ;
  const lo = o.windowLeft < 0 ? 0 : Math.max(0, diag - o.windowLeft);
  const hi = o.windowRight < 0 ? seqlenK : Math.min(seqlenK, diag + o.windowRight + 1);
  return [lo, Math.max(lo, hi)];
}

/** True when some query row sees no key at all under these options. */
export function hasFullyMaskedRows(shape: Pick<AttentionShape, 'seqlenQ' | 'seqlenK'>, o: ResolvedOptions): boolean {
  for (let i = 0; i < shape.seqlenQ; i++) {
    const [lo, hi] = keyRange(i, shape.seqlenQ, shape.seqlenK, o);
    if (lo >= hi) return true;
  }
  return false;
}

/** Number of (query, key) pairs that are not masked: the work a causal/windowed kernel must do. */
export function visiblePairs(shape: Pick<AttentionShape, 'seqlenQ' | 'seqlenK'>, o: ResolvedOptions): number {
  let n = 0;
  for (let i = 0; i < shape.seqlenQ; i++) {
    const [lo, hi] = keyRange(i, shape.seqlenQ, shape.seqlenK, o);
    n += hi - lo;
  }
  return n;
}
