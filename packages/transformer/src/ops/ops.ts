/**
 * The ops a GPT-2 step needs, as an interface: a backend (CPU now; WebGPU and CUDA later) implements
 * them over its own buffers and the model never touches element loops of the heavy work itself.
 *
 * Buffers are flat, row-major typed arrays allocated by the ops (`alloc`), so a backend can place them
 * where its kernels want them (the CPU ops use SharedArrayBuffer so a worker thread can share the
 * matmul). The element type is float32 for training and float64 for the gradient checks.
 * Every op may be asynchronous; the model awaits each one.
 */

export type FloatArray = Float32Array | Float64Array;
export type Precision = 'float32' | 'float64';

export interface MatmulOptions {
  /** A is stored (K, M) and used transposed. Default false: A is (M, K). */
  transA?: boolean;
  /** B is stored (N, K) and used transposed. Default false: B is (K, N). */
  transB?: boolean;
  /** out += op(A) op(B) instead of out = op(A) op(B). Default false. */
  accumulate?: boolean;
  /** (N,) added to every row of out (only when accumulate is false). */
  bias?: FloatArray;
}

export interface Ops {
  readonly name: string;
  readonly precision: Precision;
  /** A zeroed buffer of n elements. */
  alloc(n: number): FloatArray;

  /** out (M, N) (+)= op(A) (M, K) @ op(B) (K, N) [+ bias]. */
  matmul(out: FloatArray, a: FloatArray, b: FloatArray, M: number, N: number, K: number, opts?: MatmulOptions): void | Promise<void>;
  /** dbias (N) += column sums of dout (M, N). */
  biasBackward(dbias: FloatArray, dout: FloatArray, M: number, N: number): void | Promise<void>;

  /** out (BT, C) = wte[tokens] + wpe[t]; tokens (B, T). */
  embeddingForward(out: FloatArray, tokens: Int32Array, wte: FloatArray, wpe: FloatArray, B: number, T: number, C: number): void | Promise<void>;
  /** dwte[tokens] += dout, dwpe[t] += dout. */
  embeddingBackward(dwte: FloatArray, dwpe: FloatArray, dout: FloatArray, tokens: Int32Array, B: number, T: number, C: number): void | Promise<void>;

  /** out (N, C) = (inp - mean) * rstd * w + b; writes mean (N) and rstd (N) for the backward. */
  layernormForward(out: FloatArray, mean: FloatArray, rstd: FloatArray, inp: FloatArray, w: FloatArray, b: FloatArray, N: number, C: number): void | Promise<void>;
  /** dinp, dw, db += gradients of layernorm given dout. */
  layernormBackward(dinp: FloatArray, dw: FloatArray, db: FloatArray, dout: FloatArray, inp: FloatArray, w: FloatArray, mean: FloatArray, rstd: FloatArray, N: number, C: number): void | Promise<void>;

  /** out = GELU_tanh(inp), n elements. */
  geluForward(out: FloatArray, inp: FloatArray, n: number): void | Promise<void>;
  /** dinp += GELU_tanh'(inp) * dout. */
  geluBackward(dinp: FloatArray, inp: FloatArray, dout: FloatArray, n: number): void | Promise<void>;

  /** out = a + b, n elements (the residual connection; its backward is a copy/accumulate). */
  add(out: FloatArray, a: FloatArray, b: FloatArray, n: number): void | Promise<void>;

  /**
   * Fused softmax cross-entropy over logits (N, V) with targets (N): writes per-row losses (N) and,
   * when dlogits is given, dlogits = (softmax(logits) - onehot(target)) * dlossScale (may alias logits).
   * Targets < 0 are ignored (loss 0, gradient 0). Returns the sum of the row losses.
   */
  softmaxCrossEntropy(losses: FloatArray, dlogits: FloatArray | null, logits: FloatArray, targets: Int32Array, N: number, V: number, dlossScale: number): number | Promise<number>;

  /** sum of squares of x (for the global gradient norm). */
  sumSquares(x: FloatArray): number | Promise<number>;
  /** x *= s. */
  scale(x: FloatArray, s: number): void | Promise<void>;

  /**
   * One AdamW step over a flat parameter range [lo, hi) (bias-corrected, decoupled weight decay):
   *   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
   *   p -= lr * (mhat / (sqrt(vhat) + eps) + wd * p)
   */
  adamw(params: FloatArray, grads: FloatArray, m: FloatArray, v: FloatArray, lo: number, hi: number, h: AdamWStep): void | Promise<void>;

  /** Stop worker threads; later calls still work single-threaded. */
  dispose(): void | Promise<void>;
}

export interface AdamWStep {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** 1-based step count for bias correction. */
  t: number;
}
