/** Float64 GELU, tanh approximation (GPT-2's gelu_new): 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). */

export const GELU_SCALE = Math.sqrt(2 / Math.PI);
export const GELU_CUBIC = 0.044715;

/** out = GELU_tanh(inp), n elements. */
export function geluForwardRef(out: Float64Array, inp: ArrayLike<number>, n: number): void {
  for (let i = 0; i < n; i++) {
    const x = inp[i]!;
    out[i] = 0.5 * x * (1 + Math.tanh(GELU_SCALE * (x + GELU_CUBIC * x * x * x)));
  }
}

/** dinp = GELU_tanh'(inp) * dout, n elements: OVERWRITES dinp (the contract's semantics). */
export function geluBackwardRef(
  dinp: Float64Array,
  inp: ArrayLike<number>,
  dout: ArrayLike<number>,
  n: number,
): void {
  for (let i = 0; i < n; i++) {
    const x = inp[i]!;
    const th = Math.tanh(GELU_SCALE * (x + GELU_CUBIC * x * x * x));
    const sech2 = 1 - th * th;
    const local = 0.5 * (1 + th) + 0.5 * x * sech2 * GELU_SCALE * (1 + 3 * GELU_CUBIC * x * x);
    dinp[i] = local * dout[i]!;
  }
}
