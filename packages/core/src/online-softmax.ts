/**
 * Online softmax (Milakov & Gimelshein 2018), the identity FlashAttention is built on
 * (FlashAttention-2 paper, section 3.1.1): softmax(s) V over a row of scores can be computed one block
 * of keys at a time, keeping only a running state of size O(D):
 *
 *   m   = max_j s_j                    running max
 *   l   = sum_j exp(s_j - m)           running sum, relative to m
 *   acc = sum_j exp(s_j - m) v_j       running weighted sum of value rows, (D)
 *
 * Seeing a new block rescales the old state by exp(m_old - m_new) (Algorithm 1, lines 9-10). Two
 * states over disjoint sets of keys combine with `merge`, which is associative and commutative, so the
 * keys may be split and grouped in any way (this is what split-K / flash-decoding relies on).
 * `finalize` gives out = acc / l and lse = m + log(l) (Algorithm 1, lines 12-13); a state that saw no
 * visible key (every score -Infinity) gives out = 0 and lse = -Infinity, the masked-row convention.
 *
 * This module works in float64 on one row; the tiled kernels inline the same steps over Br rows.
 */
import { AttentionInputError, describe } from './errors.js';

/** The result of a finished softmax-weighted sum over one row of scores. */
export interface OnlineSoftmaxResult {
  /** sum_j softmax(s)_j v_j: (D). Zeros when no score was finite. */
  out: Float64Array;
  /** log sum_j exp(s_j); -Infinity when no score was finite. */
  lse: number;
}

export class OnlineSoftmax {
  /** Running max m of the scores seen so far; -Infinity while the state is empty. */
  m = -Infinity;
  /** Running sum l = sum_j exp(s_j - m). */
  l = 0;
  /** Running weighted sum acc = sum_j exp(s_j - m) v_j: (D). */
  readonly acc: Float64Array;

  constructor(readonly D: number) {
    if (!Number.isInteger(D) || D < 1) {
      throw new AttentionInputError('OnlineSoftmax D', 'a positive integer', describe(D));
    }
    this.acc = new Float64Array(D);
  }

  /** True until a finite score has been seen. */
  get empty(): boolean {
    return this.m === -Infinity;
  }

  /**
   * Fold in one block: `scores` (n) and the matching value rows `values` (n, D), row-major.
   * Scores of -Infinity are masked keys and contribute nothing.
   */
  update(scores: ArrayLike<number>, values: ArrayLike<number>): this {
    const n = scores.length;
    const D = this.D;
    if (values.length !== n * D) {
      throw new AttentionInputError(
        'OnlineSoftmax.update values.length',
        `${n * D} = ${n} scores x D ${D}`,
        values.length,
      );
    }
    // rowmax of the block
    let mBlock = -Infinity;
    for (let j = 0; j < n; j++) {
      const s = scores[j]!;
      if (Number.isNaN(s) || s === Infinity) {
        throw new AttentionInputError(
          `OnlineSoftmax.update scores[${j}]`,
          'a finite number or -Infinity (masked)',
          s,
        );
      }
      if (s > mBlock) mBlock = s;
    }
    if (mBlock === -Infinity) return this; // a fully masked block leaves the state unchanged
    // Algorithm 1, line 9: m_new = max(m_old, rowmax(S)); l_new = exp(m_old - m_new) l_old + rowsum(P)
    const mNew = Math.max(this.m, mBlock);
    const alpha = Math.exp(this.m - mNew); // 0 when the state was empty
    const acc = this.acc;
    // Algorithm 1, line 10: acc = diag(exp(m_old - m_new)) acc + P V
    if (alpha !== 1) for (let d = 0; d < D; d++) acc[d]! *= alpha;
    let rowsum = 0;
    for (let j = 0; j < n; j++) {
      const p = Math.exp(scores[j]! - mNew); // exp(-Infinity) = 0 for masked keys
      if (p === 0) continue;
      rowsum += p;
      const vo = j * D;
      for (let d = 0; d < D; d++) acc[d]! += p * values[vo + d]!;
    }
    this.l = alpha * this.l + rowsum;
    this.m = mNew;
    return this;
  }

  /** An independent copy of this state. */
  clone(): OnlineSoftmax {
    const c = new OnlineSoftmax(this.D);
    c.m = this.m;
    c.l = this.l;
    c.acc.set(this.acc);
    return c;
  }

  /**
   * The state over the union of the keys of `a` and `b` (disjoint key sets): both are rescaled to
   * the common max m = max(m_a, m_b). Associative and commutative; the empty state is its identity.
   * Returns a new state; a and b are not modified.
   */
  static merge(a: OnlineSoftmax, b: OnlineSoftmax): OnlineSoftmax {
    if (a.D !== b.D) {
      throw new AttentionInputError('OnlineSoftmax.merge b.D', `${a.D} to match a.D`, b.D);
    }
    if (b.empty) return a.clone();
    if (a.empty) return b.clone();
    const r = new OnlineSoftmax(a.D);
    const m = Math.max(a.m, b.m);
    const alphaA = Math.exp(a.m - m);
    const alphaB = Math.exp(b.m - m);
    r.m = m;
    r.l = alphaA * a.l + alphaB * b.l;
    for (let d = 0; d < a.D; d++) r.acc[d] = alphaA * a.acc[d]! + alphaB * b.acc[d]!;
    return r;
  }

  /** Algorithm 1, lines 12-13: out = diag(l)^-1 acc, lse = m + log(l). */
  finalize(): OnlineSoftmaxResult {
    const out = new Float64Array(this.D);
    if (this.empty) return { out, lse: -Infinity };
    for (let d = 0; d < this.D; d++) out[d] = this.acc[d]! / this.l;
    return { out, lse: this.m + Math.log(this.l) };
  }
}
