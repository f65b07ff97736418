/**
 * The ops a GPT-2 training step needs (llm.c's list), over an opaque device buffer handle `Buf`.
 * A backend (CPU, WebGPU, CUDA, the float64 reference) implements them over its own memory; the model
 * allocates, views, uploads and downloads through them and never touches elements itself.
 *
 * Buffers:
 *   - `alloc(n, dtype)` gives a zeroed buffer of n elements; `view(buf, offset, length)` a window into
 *     one (elements, no copy; a view of a view is relative to the view). A view is a `Buf` like any
 *     other and every op takes views.
 *   - dtypes: float32, float16 and bfloat16 (activations and compute copies), float64 (checks), int32
 *     (tokens, targets). A backend lists what it supports in `dtypes`; mixed precision is fp32 master
 *     parameters and optimizer state plus 16-bit compute copies made with `copy` (which casts).
 *   - host data moves only through `upload` and `download` (and the scalars of `sum`/`sumSquares`).
 *
 * Lengths: every buffer argument holds exactly the elements its sizes say (out of matmul M * N, an
 * elementwise op's n, layernorm's mean and rstd N, ...); a longer buffer is an `OpsInputError` like a
 * shorter one, so pass a `view` of the part to use. The exceptions take the whole buffer: `sum`,
 * `sumSquares`, `scale`, `adamw` (its four buffers equally long), `zero`, and the embedding tables
 * (wte / dwte: (V, C) with V taken from their length; wpe / dwpe: (maxT, C) with maxT >= T). Scalars (`scale`'s
 * s, `softmaxCrossEntropy`'s dlossScale, the AdamW hyperparameters) must be finite.
 *
 * Every op may be asynchronous (GPU backends queue work and resolve when it is queued or done); the
 * model awaits each call, in order. Sizes are checked before anything runs: a bad length, dtype or view
 * throws `OpsInputError` naming the argument; running out of device memory throws
 * `BackendOutOfMemoryError` and the backend stays usable.
 *
 * Layouts (row-major): matrices (rows, cols); GPT-2 linear weights (in, out) as Hugging Face's Conv1D.
 */
import { bfloat16BitsToFloat32, float16BitsToFloat32 } from '../dtype.js';
import { OpsInputError } from '../errors.js';
import type { DeviceAttention } from './device-attention.js';

/** Element types of device buffers. */
export type BufferDType = 'float32' | 'float16' | 'bfloat16' | 'float64' | 'int32';

/** Host arrays that `upload` takes and `download` returns: 16-bit floats as raw bits in a Uint16Array. */
export type HostArray = Float32Array | Float64Array | Int32Array | Uint16Array;

/**
 * A downloaded float buffer as numbers: float32 / float64 as they came, 16-bit raw bits (float16, bfloat16)
 * decoded to a new Float32Array. `dtype` is the buffer's (`dtypeOf`); an array of another type than `download`
 * returns for it is an OpsInputError.
 */
export function hostFloats(host: HostArray, dtype: BufferDType): Float32Array | Float64Array {
  const want =
    dtype === 'float32'
      ? Float32Array
      : dtype === 'float64'
        ? Float64Array
        : dtype === 'int32'
          ? null
          : Uint16Array;
  if (want === null || !(host instanceof want)) {
    throw new OpsInputError(
      'hostFloats host',
      want === null
        ? 'a float buffer (dtype float16, bfloat16, float32 or float64)'
        : `a ${want.name} (${dtype})`,
      `${host.constructor.name} (dtype ${dtype})`,
    );
  }
  if (host instanceof Float32Array || host instanceof Float64Array) return host;
  return Float32Array.from(
    host,
    dtype === 'float16' ? float16BitsToFloat32 : bfloat16BitsToFloat32,
  );
}

/** The host array type `download` returns for a dtype. */
export type HostArrayOf<D extends BufferDType> = D extends 'float32'
  ? Float32Array
  : D extends 'float64'
    ? Float64Array
    : D extends 'int32'
      ? Int32Array
      : Uint16Array;

export interface MatmulOptions<Buf> {
  /** A is stored (K, M) and used transposed. Default false: A is (M, K). */
  transA?: boolean;
  /** B is stored (N, K) and used transposed. Default false: B is (K, N). */
  transB?: boolean;
  /** out += op(A) op(B) instead of out = op(A) op(B). Default false. */
  accumulate?: boolean;
  /** (N,) added to every row of out. Not allowed with accumulate. */
  bias?: Buf;
  /**
   * GELU epilogue (GPT-2's MLP forward; cuBLASLt's GELU_AUX_BIAS): this buffer (M, N, out's dtype) receives the
   * pre-activation pre = op(A) op(B) [+ bias] and out = GELU_tanh(pre). A separate buffer from out. Not allowed
   * with accumulate or dgeluPre.
   */
  geluPre?: Buf;
  /**
   * GELU backward epilogue (cuBLASLt's DGELU): out = (op(A) op(B)) * GELU_tanh'(pre), pre (M, N, out's dtype) the
   * forward's pre-activation (its geluPre). Not allowed with accumulate, bias or geluPre.
   */
  dgeluPre?: Buf;
}

/** Which epilogue a matmul's options ask for, after checking that they may go together (OpsInputError if not). */
export function matmulEpilogue<Buf>(
  op: string,
  opts: MatmulOptions<Buf>,
): 'none' | 'bias' | 'gelu' | 'dgelu' {
  const has = (k: keyof MatmulOptions<Buf>): boolean => opts[k] !== undefined && opts[k] !== false;
  const clash = (a: string, b: string): never => {
    throw new OpsInputError(`${op} opts.${a}`, `no ${a} together with ${b}`, `${a} and ${b}`);
  };
  if (has('bias') && has('accumulate')) clash('bias', 'accumulate');
  if (has('geluPre') && has('accumulate')) clash('geluPre', 'accumulate');
  if (has('dgeluPre')) {
    if (has('accumulate')) clash('dgeluPre', 'accumulate');
    if (has('bias')) clash('dgeluPre', 'bias');
    if (has('geluPre')) clash('dgeluPre', 'geluPre');
    return 'dgelu';
  }
  if (has('geluPre')) return 'gelu';
  return has('bias') ? 'bias' : 'none';
}

/**
 * A GELU epilogue as the two ops it fuses, for a backend without a fused kernel (after it checked the arguments):
 * 'gelu': pre = op(A) op(B) [+ bias], out = GELU(pre); 'dgelu': out = op(A) op(B), then out = GELU'(pre) * out in
 * place. The same roundings as a model calling the two ops in turn.
 */
export async function matmulGeluByParts<Buf>(
  ops: Ops<Buf>,
  kind: 'gelu' | 'dgelu',
  out: Buf,
  a: Buf,
  b: Buf,
  M: number,
  N: number,
  K: number,
  opts: MatmulOptions<Buf>,
): Promise<void> {
  const plain = { transA: opts.transA ?? false, transB: opts.transB ?? false };
  if (kind === 'gelu') {
    const pre = opts.geluPre!;
    await ops.matmul(
      pre,
      a,
      b,
      M,
      N,
      K,
      opts.bias !== undefined ? { ...plain, bias: opts.bias } : plain,
    );
    await ops.geluForward(out, pre, M * N);
  } else {
    await ops.matmul(out, a, b, M, N, K, plain);
    await ops.geluBackward(out, opts.dgeluPre!, out, M * N);
  }
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

/**
 * Device memory: what every device backend offers, whether or not it has the model's ops yet (the
 * attention-only backends implement `DeviceMemory<Buf> & DeviceAttention<Buf>`).
 */
export interface DeviceMemory<Buf> {
  /** Buffer dtypes this backend allocates. */
  readonly dtypes: readonly BufferDType[];
  /** A zeroed buffer of n elements. */
  alloc(n: number, dtype: BufferDType): Buf;
  /** Elements [offset, offset + length) of buf, sharing its memory. */
  view(buf: Buf, offset: number, length: number): Buf;
  /** Length in elements. */
  lengthOf(buf: Buf): number;
  dtypeOf(buf: Buf): BufferDType;
  /** buf = 0. */
  zero(buf: Buf): void | Promise<void>;
  /** buf = data (same length; float32/float64 data is cast to buf's float dtype, int32 needs an int32 buf). */
  upload(buf: Buf, data: HostArray): void | Promise<void>;
  /** A host copy of buf (a new array; HostArrayOf<dtypeOf(buf)>). */
  download(buf: Buf): Promise<HostArray>;
  /** dst = src, casting between float dtypes (fp32 master -> bf16 compute copy). Same length. */
  copy(dst: Buf, src: Buf): void | Promise<void>;
  /** Return buf's memory (not a view's). Using it afterwards is an error. */
  free(buf: Buf): void;
}

export interface Ops<Buf> extends DeviceMemory<Buf>, DeviceAttention<Buf> {
  /** e.g. 'cpu (float32, 2 threads, wasm simd)', 'cuda:0 (H100, bf16)'. */
  readonly name: string;
  /**
   * The multiple (elements) this backend wants the row length of the widest matmul operand padded to:
   * GPT-2 pads its vocabulary (the tied head's N and K, the logits' row stride) to it with zero rows, as
   * llm.c does. Tensor-core GEMMs need 16-byte aligned rows: on the H100, cuBLASLt ran the 124M head with
   * V = 50257 at a fraction of its speed at 50304 (BENCHMARKS.md, issue #10). Absent or 1: no padding.
   */
  readonly rowMultiple?: number;
  /**
   * The precision a dtype is multiplied and accumulated in here (like `BackendCapabilities.computeDType`):
   * the ops conformance suite sets its tolerance from it.
   */
  computeDType(dtype: BufferDType): BufferDType;

  // ---- the model's ops ----
  /** out (M, N) (+)= op(A) (M, K) @ op(B) (K, N) [+ bias (N)]. */
  matmul(
    out: Buf,
    a: Buf,
    b: Buf,
    M: number,
    N: number,
    K: number,
    opts?: MatmulOptions<Buf>,
  ): void | Promise<void>;
  /** dbias (N) += column sums of dout (M, N). */
  biasBackward(dbias: Buf, dout: Buf, M: number, N: number): void | Promise<void>;

  /** out (B*T, C) = wte[tokens] + wpe[t]; tokens (B, T) int32 in [0, V). */
  embeddingForward(
    out: Buf,
    tokens: Buf,
    wte: Buf,
    wpe: Buf,
    B: number,
    T: number,
    C: number,
  ): void | Promise<void>;
  /** dwte[tokens] += dout, dwpe[t] += dout (summed over the batch). */
  embeddingBackward(
    dwte: Buf,
    dwpe: Buf,
    dout: Buf,
    tokens: Buf,
    B: number,
    T: number,
    C: number,
  ): void | Promise<void>;

  /**
   * out (N, C) = (inp - mean) * rstd * w + b with rstd = 1 / sqrt(var + 1e-5) (GPT-2's epsilon, biased
   * variance); writes mean (N) and rstd (N) (float32) for the backward.
   */
  layernormForward(
    out: Buf,
    mean: Buf,
    rstd: Buf,
    inp: Buf,
    w: Buf,
    b: Buf,
    N: number,
    C: number,
  ): void | Promise<void>;
  /** dinp (N, C), dw (C), db (C) += the gradients of layernorm given dout (N, C). */
  layernormBackward(
    dinp: Buf,
    dw: Buf,
    db: Buf,
    dout: Buf,
    inp: Buf,
    w: Buf,
    mean: Buf,
    rstd: Buf,
    N: number,
    C: number,
  ): void | Promise<void>;

  /** out = GELU_tanh(inp), n elements (may alias). */
  geluForward(out: Buf, inp: Buf, n: number): void | Promise<void>;
  /** dinp = GELU_tanh'(inp) * dout, n elements (overwrites dinp; may alias dout). */
  geluBackward(dinp: Buf, inp: Buf, dout: Buf, n: number): void | Promise<void>;

  /** out = a + b, n elements (the residual connection; may alias a or b). */
  add(out: Buf, a: Buf, b: Buf, n: number): void | Promise<void>;

  /**
   * Fused softmax cross-entropy over logits (N, V) with int32 targets (N): losses (N, float32 or the
   * logits' float dtype) = -log softmax(logits)[target], and when dlogits is given,
   * dlogits = (softmax(logits) - onehot(target)) * dlossScale (may alias logits). Targets < 0 are
   * ignored (loss 0, gradient 0); targets >= V are an error the backend may report late (device side).
   *
   * Vp (default V, at least V) is the row stride of logits and dlogits (llm.c's padded vocabulary): both
   * hold N * Vp elements, columns [V, Vp) of logits are never read and dlogits is written 0 there, so a
   * matmul over the padded rows (`rowMultiple`) adds nothing.
   */
  softmaxCrossEntropy(
    losses: Buf,
    dlogits: Buf | null,
    logits: Buf,
    targets: Buf,
    N: number,
    V: number,
    dlossScale: number,
    Vp?: number,
  ): void | Promise<void>;

  /** sum of x's elements, to the host (the loss). Synchronises. */
  sum(x: Buf): Promise<number>;
  /** sum of squares of x's elements, to the host (the global gradient norm). Synchronises. */
  sumSquares(x: Buf): Promise<number>;
  /** x *= s. */
  scale(x: Buf, s: number): void | Promise<void>;

  /**
   * One AdamW step (bias-corrected, decoupled weight decay) over equally long params, grads, m, v:
   *   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;  p -= lr * (mhat / (sqrt(vhat) + eps) + wd * p)
   * params, m and v are float32 (or float64); grads may be 16-bit.
   */
  adamw(params: Buf, grads: Buf, m: Buf, v: Buf, h: AdamWStep): void | Promise<void>;

  /** Release the backend's resources (threads, device memory). Later calls throw. */
  dispose(): void | Promise<void>;
}

/** Bytes per element of a buffer dtype. */
export function bufferDTypeBytes(dtype: BufferDType): 2 | 4 | 8 {
  return dtype === 'float64' ? 8 : dtype === 'float16' || dtype === 'bfloat16' ? 2 : 4;
}

export const BUFFER_DTYPES: readonly BufferDType[] = [
  'float32',
  'float16',
  'bfloat16',
  'float64',
  'int32',
];

/**
 * The row stride softmaxCrossEntropy uses: Vp when given (an integer >= V), else V; anything else is an
 * OpsInputError naming `${op} Vp`. Every backend checks the argument through this one function.
 */
export function xentRowStride(op: string, V: number, Vp: number | undefined): number {
  if (Vp === undefined) return V;
  if (typeof Vp !== 'number' || !Number.isSafeInteger(Vp) || Vp < V)
    throw new OpsInputError(`${op} Vp`, `an integer >= V = ${V}`, Vp);
  return Vp;
}

/** n rounded up to a multiple of `multiple` (an Ops' rowMultiple; absent, 0 or 1: n itself). */
export function padToMultiple(n: number, multiple: number | undefined): number {
  const m = multiple !== undefined && Number.isSafeInteger(multiple) && multiple > 1 ? multiple : 1;
  return Math.ceil(n / m) * m;
}
