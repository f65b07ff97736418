/**
 * A dense, row-major host tensor. Attention tensors use flash-attn's layout
 * (batch, seqlen, nheads, headdim); `data` is a Float32Array for float32 and a Uint16Array of raw
 * IEEE half / bfloat16 bits for the 16-bit dtypes.
 */
import {
  bfloat16BitsToFloat32,
  float16BitsToFloat32,
  float32ToBFloat16Bits,
  float32ToFloat16Bits,
  type DType,
  DTYPES,
} from './dtype.js';
import { AttentionInputError, describe } from './errors.js';

export type TensorData = Float32Array | Uint16Array;

export interface Tensor<D extends DType = DType> {
  readonly dtype: D;
  readonly shape: readonly number[];
  readonly data: D extends 'float32' ? Float32Array : Uint16Array;
}

/** Number of elements of a shape. */
export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const s of shape) n *= s;
  return n;
}

/**
 * Build a tensor, checking that `data` fits `shape` and `dtype`.
 * `data` may be a plain number array for float32 (it is copied into a Float32Array).
 */
export function tensor(
  data: TensorData | readonly number[],
  shape: readonly number[],
  dtype?: DType,
  name = 'tensor',
): Tensor {
  const dt: DType = dtype ?? (data instanceof Uint16Array ? 'float16' : 'float32');
  if (!DTYPES.includes(dt)) {
    throw new AttentionInputError(`${name}.dtype`, `one of ${DTYPES.join(', ')}`, dt);
  }
  if (!Array.isArray(shape) || shape.some((s) => !Number.isInteger(s) || s < 0)) {
    throw new AttentionInputError(`${name}.shape`, 'an array of non-negative integers', shape);
  }
  let arr: TensorData;
  if (Array.isArray(data)) {
    if (dt !== 'float32') {
      throw new AttentionInputError(
        `${name}.data`,
        `a Uint16Array of raw ${dt} bits (use fromFloat32 to convert numbers)`,
        'a number array',
      );
    }
    arr = Float32Array.from(data as readonly number[]);
  } else {
    arr = data as TensorData;
  }
  checkData(name, arr, shape, dt);
  return { dtype: dt, shape: [...shape], data: arr } as Tensor;
}

/** Throws unless `data` is the right typed array of length product(shape) for dtype. */
export function checkData(name: string, data: unknown, shape: readonly number[], dtype: DType): void {
  const wantF32 = dtype === 'float32';
  if (wantF32 ? !(data instanceof Float32Array) : !(data instanceof Uint16Array)) {
    throw new AttentionInputError(
      `${name}.data`,
      wantF32 ? 'a Float32Array for dtype float32' : `a Uint16Array of raw bits for dtype ${dtype}`,
      describe(data),
    );
  }
  const n = numel(shape);
  if ((data as TensorData).length !== n) {
    throw new AttentionInputError(
      `${name}.data.length`,
      `${n} = product of shape [${shape.join(', ')}]`,
      (data as TensorData).length,
    );
  }
}

/** Values of a tensor as float32 (a copy for 16-bit dtypes, the same array for float32). */
export function toFloat32(t: Tensor): Float32Array {
  if (t.dtype === 'float32') return t.data as Float32Array;
  const src = t.data as Uint16Array;
  const out = new Float32Array(src.length);
  const conv = t.dtype === 'float16' ? float16BitsToFloat32 : bfloat16BitsToFloat32;
  for (let i = 0; i < src.length; i++) out[i] = conv(src[i]!);
  return out;
}

/** Round float32 values to `dtype` (nearest, ties to even) and wrap them as a tensor. */
export function fromFloat32(values: Float32Array, shape: readonly number[], dtype: DType = 'float32'): Tensor {
  if (dtype === 'float32') return tensor(values, shape, 'float32');
  const out = new Uint16Array(values.length);
  const conv = dtype === 'float16' ? float32ToFloat16Bits : float32ToBFloat16Bits;
  for (let i = 0; i < values.length; i++) out[i] = conv(values[i]!);
  return tensor(out, shape, dtype);
}

/** A zero tensor of this shape and dtype (zero bits are +0 in every dtype). */
export function zeros(shape: readonly number[], dtype: DType = 'float32'): Tensor {
  const n = numel(shape);
  return tensor(dtype === 'float32' ? new Float32Array(n) : new Uint16Array(n), shape, dtype);
}
