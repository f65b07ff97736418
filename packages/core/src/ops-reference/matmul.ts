/** Float64 matmul and its bias gradient (the semantics of `Ops.matmul` / `Ops.biasBackward`). */

export interface MatmulRefOptions {
  /** A is stored (K, M) and used transposed. */
  transA?: boolean;
  /** B is stored (N, K) and used transposed. */
  transB?: boolean;
  /** out += op(A) op(B): out's current values are read. */
  accumulate?: boolean;
  /** (N) added to every row (not with accumulate; the ops layer checks that). */
  bias?: ArrayLike<number> | null;
}

/** out (M, N) (+)= op(A) (M, K) @ op(B) (K, N) [+ bias (N)], in float64. */
export function matmulRef(
  out: Float64Array, // (M, N)
  a: ArrayLike<number>, // (M, K), or (K, M) with transA
  b: ArrayLike<number>, // (K, N), or (N, K) with transB
  M: number,
  N: number,
  K: number,
  o: MatmulRefOptions = {},
): void {
  const aAt = o.transA
    ? (i: number, p: number) => a[p * M + i]!
    : (i: number, p: number) => a[i * K + p]!;
  const bAt = o.transB
    ? (p: number, j: number) => b[j * K + p]!
    : (p: number, j: number) => b[p * N + j]!;
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      let acc = o.bias ? o.bias[j]! : 0;
      for (let p = 0; p < K; p++) acc += aAt(i, p) * bAt(p, j);
      out[i * N + j] = o.accumulate ? out[i * N + j]! + acc : acc;
    }
  }
}

/** dbias (N) += column sums of dout (M, N). */
export function biasBackwardRef(
  dbias: Float64Array,
  dout: ArrayLike<number>,
  M: number,
  N: number,
): void {
  for (let j = 0; j < N; j++) {
    let s = 0;
    for (let i = 0; i < M; i++) s += dout[i * N + j]!;
    dbias[j] = dbias[j]! + s;
  }
}
