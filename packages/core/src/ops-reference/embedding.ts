/** Float64 token + position embedding (the semantics of `Ops.embeddingForward` / `embeddingBackward`). */

/** out (B*T, C) = wte[tokens[b, t]] + wpe[t]. Tokens must be in [0, V) (the ops layer checks). */
export function embeddingForwardRef(
  out: Float64Array, // (B*T, C)
  tokens: ArrayLike<number>, // (B, T)
  wte: ArrayLike<number>, // (V, C)
  wpe: ArrayLike<number>, // (>= T, C)
  B: number,
  T: number,
  C: number,
): void {
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      const row = (b * T + t) * C;
      const tok = tokens[b * T + t]!;
      for (let c = 0; c < C; c++) out[row + c] = wte[tok * C + c]! + wpe[t * C + c]!;
    }
  }
}

/** dwte[tokens[b, t]] += dout[b, t], dwpe[t] += sum_b dout[b, t]. */
export function embeddingBackwardRef(
  dwte: Float64Array, // (V, C), accumulated
  dwpe: Float64Array, // (>= T, C), accumulated
  dout: ArrayLike<number>, // (B*T, C)
  tokens: ArrayLike<number>, // (B, T)
  B: number,
  T: number,
  C: number,
): void {
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      const row = (b * T + t) * C;
      const tok = tokens[b * T + t]!;
      for (let c = 0; c < C; c++) {
        dwte[tok * C + c] = dwte[tok * C + c]! + dout[row + c]!;
        dwpe[t * C + c] = dwpe[t * C + c]! + dout[row + c]!;
      }
    }
  }
}
