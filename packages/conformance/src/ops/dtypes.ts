/** Float buffer dtypes of the ops suite and their rounding (core's, plus float64). */
import {
  float32ToBFloat16Bits,
  float32ToFloat16Bits,
  hostFloats,
  roundToDType as roundStorage,
  type BufferDType,
  type HostArray,
} from '@flashattn/core';

/** A float buffer dtype (every BufferDType but int32). */
export type ComputeDTypeLike = Exclude<BufferDType, 'int32'>;

export const FLOAT_BUFFER_DTYPES: readonly ComputeDTypeLike[] = [
  'float64',
  'float32',
  'float16',
  'bfloat16',
];

/** x rounded to a float buffer dtype (float64: unchanged). */
export function roundToDType(x: number, dt: ComputeDTypeLike): number {
  return dt === 'float64' ? x : roundStorage(x, dt);
}

/** Unit roundoff, float64 included. */
export function unitRoundoffOfBuffer(dt: ComputeDTypeLike): number {
  return dt === 'float64'
    ? 2 ** -53
    : dt === 'float32'
      ? 2 ** -24
      : dt === 'float16'
        ? 2 ** -11
        : 2 ** -8;
}

/** The coarser (larger unit roundoff) of two float dtypes. */
export function coarser(a: ComputeDTypeLike, b: ComputeDTypeLike): ComputeDTypeLike {
  return unitRoundoffOfBuffer(a) >= unitRoundoffOfBuffer(b) ? a : b;
}

/** Host data to upload for values already representable in dt: raw bits for 16-bit dtypes. */
export function hostArrayFor(
  dt: BufferDType,
  values: ArrayLike<number>,
): Float64Array | Float32Array | Uint16Array | Int32Array {
  switch (dt) {
    case 'float64':
      return Float64Array.from(values);
    case 'float32':
      return Float32Array.from(values);
    case 'int32':
      return Int32Array.from(values);
    case 'float16':
      return Uint16Array.from(values, (x) => float32ToFloat16Bits(x));
    case 'bfloat16':
      return Uint16Array.from(values, (x) => float32ToBFloat16Bits(x));
  }
}

/** Downloaded data as numbers (16-bit dtypes decoded from raw bits by core's hostFloats). */
export function valuesOf(dt: BufferDType, raw: HostArray): Float64Array {
  return Float64Array.from(dt === 'int32' ? raw : hostFloats(raw, dt));
}
