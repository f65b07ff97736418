/**
 * The float32 matmul on the attention module's register-tile kernel (wasm/flash-simd.mjs `gemm`: a 6 x 8
 * tile with FMA, 4 x 8 without, one broadcast of A and two vectors of B per multiply-add step), blocked
 * for the caches as GotoBLAS does: KC x NC panels of B (256 x 256 floats = 256 KiB, in L2) against
 * MC = 64-row blocks of A (64 x 256 floats = 64 KiB), each 8-column strip of the panel (8 KiB) in L1
 * while the rows stream past it. Operands: A (M, K) and B (K, N) row-major, C (M, N), N % 4 == 0.
 *
 * Rows [m0, m1) only (a thread's share). Every C element is summed in the same order (K blocks in
 * turn, k ascending inside) whichever thread computes it, so results do not depend on the split.
 * Self-contained (shipped to the workers as source).
 */
import type { FlashSimdExports } from '../attention/flash-simd.js';

export interface GemmJob {
  gemm: true;
  /** Byte addresses and byte row strides in the shared memory. */
  c: number;
  ldc: number;
  a: number;
  lda: number;
  b: number;
  ldb: number;
  /** bias (N) or 0 */
  bias: number;
  N: number;
  K: number;
  m0: number;
  m1: number;
  /** 0: C = A B, 1: C = A B + bias, 2: C += A B */
  mode: number;
}

export function gemmRows(ex: FlashSimdExports, memory: WebAssembly.Memory, j: GemmJob): void {
  const KC = 256;
  const NC = 256;
  const MC = 64;
  if (j.mode !== 2) {
    // Start from the bias (or zero) and add every K block to it.
    const f32 = new Float32Array(memory.buffer);
    for (let i = j.m0; i < j.m1; i++) {
      const row = (j.c + i * j.ldc) / 4;
      if (j.mode === 1) f32.set(f32.subarray(j.bias / 4, j.bias / 4 + j.N), row);
      else f32.fill(0, row, row + j.N);
    }
  }
  for (let k0 = 0; k0 < j.K; k0 += KC) {
    const kc = Math.min(KC, j.K - k0);
    for (let j0 = 0; j0 < j.N; j0 += NC) {
      const nc = Math.min(NC, j.N - j0);
      for (let i0 = j.m0; i0 < j.m1; i0 += MC) {
        const mc = Math.min(MC, j.m1 - i0);
        ex.gemm(
          j.c + i0 * j.ldc + j0 * 4,
          j.ldc,
          j.a + i0 * j.lda + k0 * 4,
          j.lda,
          j.b + k0 * j.ldb + j0 * 4,
          j.ldb,
          mc,
          nc,
          kc,
          1,
        );
      }
    }
  }
}
