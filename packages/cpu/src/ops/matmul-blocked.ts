/**
 * The float32 matmul on the attention module's register-tile kernel (wasm/flash-simd.mjs `gemm`: a 6 x 8
 * tile with FMA, 4 x 8 without, one broadcast of A and two vectors of B per multiply-add step), blocked
 * for the caches as GotoBLAS does: each KC x NC panel of B (256 x 256 floats = 256 KiB, in L2) is first
 * packed into 8-column strips (KC x 8 floats = 8 KiB, contiguous: one strip stays in L1 while MC = 64
 * rows of A stream past it), then multiplied by every MC-row block of A. Operands: A (M, K) and B (K, N)
 * row-major, C (M, N), N % 4 == 0.
 *
 * Packing: B read in place with its row stride N (the previous version) put the strip's rows N * 4
 * bytes apart, a multiple of 4 KiB for N = 1024, 3072, 8192 (every row of the strip in the same L1
 * set). Measured 2026-12-07 on the 2-core EPYC (Zen 3, load 7), one thread, FMA, GFLOP/s of CPU time,
 * both versions alternating in one process (medians of 5), bitwise the same results: tiny qkv
 * 2048x384x128 16.4 -> 22.9, tiny fc 2048x512x128 21.9 -> 23.2, tiny head 2048x8192x128 25.2 -> 34.7,
 * small qkv 2048x2304x768 35.1 -> 36.5, small fc 2048x3072x768 30.1 -> 41.7, small proj
 * 2048x768x3072 34.1 -> 40.6.
 *
 * Rows [m0, m1) only (a thread's share, a fixed split: taking 256-row units from a shared counter
 * instead, so that a late worker holds nobody up, measured 0.86-1.04x the time of this at 2 threads and
 * load 15-20, 2026-12-07, so it was not kept); each thread packs the panels into its own `pack` area. Every C
 * element is summed in the same order (K blocks in turn, k ascending inside) whichever thread computes
 * it, so results do not depend on the split. Self-contained (shipped to the workers as source).
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
  /** This thread's pack area: GEMM_PACK_FLOATS floats (byte address). */
  pack: number;
}

/** Floats of one thread's B pack (KC x NC). */
export const GEMM_PACK_FLOATS = 256 * 256;

export function gemmRows(ex: FlashSimdExports, memory: WebAssembly.Memory, j: GemmJob): void {
  const KC = 256;
  const NC = 256;
  const MC = 64;
  // mode 0: the first K block stores its products (gemm's acc = 0) instead of adding them to a C
  // zeroed first; mode 1 starts from the bias, mode 2 from C. Every later K block adds. Dropping the
  // zero-fill pass over C: 2026-12-07, builds-ab.mjs matmul against cc61baf (alternating in one
  // process, 9 rounds, bitwise the same C), wall-time speedup on 1 / 2 threads: tiny qkv 1.14 / 1.14,
  // tiny fc 1.12 / 1.09, tiny head 1.09 / 1.12, small qkv 0.99 / 1.18, small fc 1.05 / 1.08, small
  // proj 0.99 / 1.07 (load 3.1-3.7 / 2.0-2.1). The K = 128 shapes gain most: one K block, so the
  // zero-fill was a whole extra pass over C.
  if (j.mode === 0 && j.K === 0) {
    // No K block to store into C: A B over an empty K is 0 (the fuzz suite's M = 3, N = 1, K = 0 found
    // C left as it was).
    const f32 = new Float32Array(memory.buffer);
    for (let i = j.m0; i < j.m1; i++) f32.fill(0, (j.c + i * j.ldc) / 4, (j.c + i * j.ldc) / 4 + j.N);
  }
  if (j.mode === 1) {
    const f32 = new Float32Array(memory.buffer);
    for (let i = j.m0; i < j.m1; i++) {
      const row = (j.c + i * j.ldc) / 4;
      f32.set(f32.subarray(j.bias / 4, j.bias / 4 + j.N), row);
    }
  }
  for (let k0 = 0; k0 < j.K; k0 += KC) {
    const kc = Math.min(KC, j.K - k0);
    for (let j0 = 0; j0 < j.N; j0 += NC) {
      const nc = Math.min(NC, j.N - j0);
      ex.packStrips(j.pack, j.b + k0 * j.ldb + j0 * 4, j.ldb, kc, nc);
      for (let i0 = j.m0; i0 < j.m1; i0 += MC) {
        const mc = Math.min(MC, j.m1 - i0);
        const a = j.a + i0 * j.lda + k0 * 4;
        for (let s = 0; s < nc; s += 8) {
          const w = Math.min(8, nc - s);
          ex.gemm(
            j.c + i0 * j.ldc + (j0 + s) * 4,
            j.ldc,
            a,
            j.lda,
            j.pack + s * kc * 4,
            w * 4,
            mc,
            w,
            kc,
            j.mode === 0 && k0 === 0 ? 0 : 1,
          );
        }
      }
    }
  }
}
