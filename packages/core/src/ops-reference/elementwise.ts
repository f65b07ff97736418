/** Float64 elementwise ops and reductions: add, scale, sum, sumSquares. */

/** out = a + b, n elements. */
export function addRef(
  out: Float64Array,
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  n: number,
): void {
  for (let i = 0; i < n; i++) out[i] = a[i]! + b[i]!;
}

/** x *= s. */
export function scaleRef(x: Float64Array, s: number): void {
  for (let i = 0; i < x.length; i++) x[i] = x[i]! * s;
}

/** sum of x. */
export function sumRef(x: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i]!;
  return s;
}

/** sum of x^2. */
export function sumSquaresRef(x: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i]! * x[i]!;
  return s;
}
