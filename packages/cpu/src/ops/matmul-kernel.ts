/**
 * The CPU matmul kernel: C[m0:m1, :] (+)= Ap[m0:m1, :] @ Bp^T, both operands packed row-major with K
 * contiguous: Ap (M, K), Bp (N, K). That makes the inner loop two unit-stride streams.
 *
 * Blocking: K in KC-long panels and N in NC-wide panels so one packed B panel (NC x KC floats =
 * 64 KiB at KC=256, NC=64) stays in L2 while every row block of A streams past it; a 4x4 register
 * tile of C (16 locals) per inner loop, 8 loads for 16 multiply-adds. 3-5x the naive i-j-k loop on
 * this 2-core Xeon (src/bench/matmul-bench.ts, table in BENCHMARKS.md). This is the float64 path and
 * the fallback; float32 buffers in wasm memory use the SIMD gemm (matmul-blocked.ts).
 *
 * This function is serialised with Function.prototype.toString() into the worker thread, so it must
 * stay self-contained: no imports, no closures over module scope.
 */
export function matmulKernel(
  C: Float32Array | Float64Array, // (M, N)
  Ap: Float32Array | Float64Array, // (M, K)
  Bp: Float32Array | Float64Array, // (N, K)
  bias: Float32Array | Float64Array | null, // (N) or null
  m0: number,
  m1: number,
  N: number,
  K: number,
  accumulate: boolean,
): void {
  const KC = 256;
  const NC = 64;
  if (K === 0) {
    for (let i = m0; i < m1; i++) {
      for (let j = 0; j < N; j++) {
        if (!accumulate) C[i * N + j] = bias === null ? 0 : bias[j]!;
      }
    }
    return;
  }
  for (let k0 = 0; k0 < K; k0 += KC) {
    const k1 = Math.min(K, k0 + KC);
    // First K panel: start from C (accumulate), the bias, or zero. Later panels add to C.
    const fromC = accumulate || k0 > 0;
    for (let j0 = 0; j0 < N; j0 += NC) {
      const j1 = Math.min(N, j0 + NC);
      let i = m0;
      for (; i + 4 <= m1; i += 4) {
        const a0 = i * K;
        const a1 = a0 + K;
        const a2 = a1 + K;
        const a3 = a2 + K;
        let j = j0;
        for (; j + 4 <= j1; j += 4) {
          const b0 = j * K;
          const b1 = b0 + K;
          const b2 = b1 + K;
          const b3 = b2 + K;
          let c00 = 0, c01 = 0, c02 = 0, c03 = 0;
          let c10 = 0, c11 = 0, c12 = 0, c13 = 0;
          let c20 = 0, c21 = 0, c22 = 0, c23 = 0;
          let c30 = 0, c31 = 0, c32 = 0, c33 = 0;
          for (let k = k0; k < k1; k++) {
            const x0 = Ap[a0 + k]!;
            const x1 = Ap[a1 + k]!;
            const x2 = Ap[a2 + k]!;
            const x3 = Ap[a3 + k]!;
            const y0 = Bp[b0 + k]!;
            const y1 = Bp[b1 + k]!;
            const y2 = Bp[b2 + k]!;
            const y3 = Bp[b3 + k]!;
            c00 += x0 * y0; c01 += x0 * y1; c02 += x0 * y2; c03 += x0 * y3;
            c10 += x1 * y0; c11 += x1 * y1; c12 += x1 * y2; c13 += x1 * y3;
            c20 += x2 * y0; c21 += x2 * y1; c22 += x2 * y2; c23 += x2 * y3;
            c30 += x3 * y0; c31 += x3 * y1; c32 += x3 * y2; c33 += x3 * y3;
          }
          let o = i * N + j;
          if (fromC) {
            C[o] += c00; C[o + 1] += c01; C[o + 2] += c02; C[o + 3] += c03; o += N;
            C[o] += c10; C[o + 1] += c11; C[o + 2] += c12; C[o + 3] += c13; o += N;
            C[o] += c20; C[o + 1] += c21; C[o + 2] += c22; C[o + 3] += c23; o += N;
            C[o] += c30; C[o + 1] += c31; C[o + 2] += c32; C[o + 3] += c33;
          } else {
            const z0 = bias === null ? 0 : bias[j]!;
            const z1 = bias === null ? 0 : bias[j + 1]!;
            const z2 = bias === null ? 0 : bias[j + 2]!;
            const z3 = bias === null ? 0 : bias[j + 3]!;
            C[o] = c00 + z0; C[o + 1] = c01 + z1; C[o + 2] = c02 + z2; C[o + 3] = c03 + z3; o += N;
            C[o] = c10 + z0; C[o + 1] = c11 + z1; C[o + 2] = c12 + z2; C[o + 3] = c13 + z3; o += N;
            C[o] = c20 + z0; C[o + 1] = c21 + z1; C[o + 2] = c22 + z2; C[o + 3] = c23 + z3; o += N;
            C[o] = c30 + z0; C[o + 1] = c31 + z1; C[o + 2] = c32 + z2; C[o + 3] = c33 + z3;
          }
        }
        // Columns left over after the 4-wide tiles: one dot product per cell.
        for (; j < j1; j++) {
          for (let r = 0; r < 4; r++) {
            const a = (i + r) * K;
            const b = j * K;
            let s = 0;
            for (let k = k0; k < k1; k++) s += Ap[a + k]! * Bp[b + k]!;
            const o = (i + r) * N + j;
            C[o] = fromC ? C[o]! + s : s + (bias === null ? 0 : bias[j]!);
          }
        }
      }
      // Rows left over after the 4-tall tiles.
      for (; i < m1; i++) {
        const a = i * K;
        for (let j = j0; j < j1; j++) {
          const b = j * K;
          let s = 0;
          for (let k = k0; k < k1; k++) s += Ap[a + k]! * Bp[b + k]!;
          const o = i * N + j;
          C[o] = fromC ? C[o]! + s : s + (bias === null ? 0 : bias[j]!);
        }
      }
    }
  }
}

/** dst (cols, rows) = src (rows, cols)^T, in 32x32 blocks so both sides stay in cache. Self-contained. */
export function transposeInto(
  dst: Float32Array | Float64Array,
  src: Float32Array | Float64Array,
  rows: number,
  cols: number,
): void {
  const TB = 32;
  for (let r0 = 0; r0 < rows; r0 += TB) {
    const r1 = Math.min(rows, r0 + TB);
    for (let c0 = 0; c0 < cols; c0 += TB) {
      const c1 = Math.min(cols, c0 + TB);
      for (let r = r0; r < r1; r++) {
        for (let c = c0; c < c1; c++) dst[c * rows + r] = src[r * cols + c]!;
      }
    }
  }
}
