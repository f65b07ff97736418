/**
 * Predicted ArrayBuffer bytes one forward call of each CPU implementation allocates, read off the
 * code in packages/core (float32 inputs; 16-bit inputs add float32 copies of q, k, v):
 *
 *   reference (reference.ts, attentionReference64 + attentionReference):
 *     S, P: (Nq, Nk) float64 each, per (batch, head)          16 Nq Nk   (live one head at a time)
 *     out (B, Nq, H, D) float64, lse (B, H, Nq) float64       8 B Nq H D + 8 B H Nq
 *     row lse (Nq) float64 per head, acc (D) float64          8 Nq + 8 D
 *     float32 copies of out and lse                           4 B Nq H D + 4 B H Nq
 *   flash (flash-forward.ts, flashAttention):
 *     out (B, Nq, H, D) and lse (B, H, Nq) float32            4 B Nq H D + 4 B H Nq
 *     row key ranges lo, hi: (Nq) int32 each                  8 Nq
 *     tiles Q_i, acc (Br, D); m_i, l_i (Br); S_ij row (Bc)    4 (2 Br D + 2 Br + Bc)
 *
 * `peak` assumes the per-head S and P of earlier heads were collected (B H = 1 makes that exact);
 * `allocated` is everything the call allocates, which is what an uncollected heap holds when the
 * call returns. The flash figures contain no Nq Nk term: memory linear in N.
 */

export interface WorkingSetProblem {
  batch: number;
  heads: number;
  seqlenQ: number;
  seqlenK: number;
  headDim: number;
  /** Flash tile sizes (core's defaults are 64 x 64). */
  Br?: number;
  Bc?: number;
}

export interface WorkingSet {
  /** Largest live set during the call, bytes. */
  peak: number;
  /** Total bytes allocated by the call, bytes. */
  allocated: number;
}

export function referenceWorkingSet(p: WorkingSetProblem): WorkingSet {
  const { batch: B, heads: H, seqlenQ: Nq, seqlenK: Nk, headDim: D } = p;
  const perHead = 16 * Nq * Nk + 8 * Nq; // S, P, row lse
  const outputs = 12 * B * Nq * H * D + 12 * B * H * Nq + 8 * D; // float64 + float32 out/lse, acc
  return { peak: perHead + outputs, allocated: B * H * perHead + outputs };
}

export function flashWorkingSet(p: WorkingSetProblem): WorkingSet {
  const { batch: B, heads: H, seqlenQ: Nq, headDim: D } = p;
  const Br = p.Br ?? 64;
  const Bc = p.Bc ?? 64;
  const bytes = 4 * B * Nq * H * D + 4 * B * H * Nq + 8 * Nq + 4 * (2 * Br * D + 2 * Br + Bc);
  return { peak: bytes, allocated: bytes };
}
