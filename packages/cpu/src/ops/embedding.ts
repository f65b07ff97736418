/** Token + position embedding (llm.c encoder_forward / encoder_backward). */
import type { FloatArray } from '@flashattn/core';

export function embeddingForward(
  out: FloatArray, // (B, T, C)
  tokens: Int32Array, // (B, T)
  wte: FloatArray, // (V, C)
  wpe: FloatArray, // (maxT, C)
  B: number,
  T: number,
  C: number,
): void {
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      const o = (b * T + t) * C;
      const ix = tokens[b * T + t]!;
      const e = ix * C;
      const p = t * C;
      for (let c = 0; c < C; c++) out[o + c] = wte[e + c]! + wpe[p + c]!;
    }
  }
}

export function embeddingBackward(
  dwte: FloatArray, // (V, C), accumulated into
  dwpe: FloatArray, // (maxT, C), accumulated into
  dout: FloatArray, // (B, T, C)
  tokens: Int32Array, // (B, T)
  B: number,
  T: number,
  C: number,
): void {
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      const o = (b * T + t) * C;
      const e = tokens[b * T + t]! * C;
      const p = t * C;
      for (let c = 0; c < C; c++) {
        const g = dout[o + c]!;
        dwte[e + c] += g;
        dwpe[p + c] += g;
      }
    }
  }
}
