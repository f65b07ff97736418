/**
 * Storage dtypes and exact float32 <-> float16 / bfloat16 conversion (round to nearest, ties to even),
 * bit for bit what IEEE 754 hardware does, so CPU results match GPU storage.
 */

export type DType = 'float32' | 'float16' | 'bfloat16';

export const DTYPES: readonly DType[] = ['float32', 'float16', 'bfloat16'];

/** Bytes one element occupies in storage. */
export function bytesPerElement(dtype: DType): 2 | 4 {
  return dtype === 'float32' ? 4 : 2;
}

/** Unit roundoff u = 2^-(p) for p mantissa bits incl. the implicit one: the relative error of one rounding. */
export function unitRoundoff(dtype: DType): number {
  switch (dtype) {
    case 'float32':
      return 2 ** -24;
    case 'float16':
      return 2 ** -11;
    case 'bfloat16':
      return 2 ** -8;
  }
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** float32 bits of x (x is first rounded to float32). */
export function float32Bits(x: number): number {
  f32[0] = x;
  return u32[0]!;
}

/** The float32 value with these bits. */
export function float32FromBits(bits: number): number {
  u32[0] = bits >>> 0;
  return f32[0]!;
}

/**
 * float32 bits of x rounded to odd: x truncated toward zero to float32, with the lowest mantissa bit
 * set when that dropped anything. Rounding this to a format with at least 2 fewer mantissa bits gives
 * the same result as rounding x directly (no double rounding), for float64 x; float32 x is unchanged.
 */
function float32BitsRoundToOdd(x: number): number {
  f32[0] = x;
  let bits = u32[0]!;
  const f = f32[0]!;
  if (f === x || Number.isNaN(x)) return bits;
  if (Math.abs(f) > Math.abs(x)) bits = (bits - 1) >>> 0; // one step toward zero (same sign)
  return (bits | 1) >>> 0;
}

/** Round a number to the nearest float16, ties to even; returns the 16 raw bits. */
export function float32ToFloat16Bits(x: number): number {
  const bits = float32BitsRoundToOdd(x);
  const sign = (bits >>> 16) & 0x8000;
  const exp = (bits >>> 23) & 0xff;
  let mant = bits & 0x7fffff;

  if (exp === 0xff) {
    // Inf or NaN (keep NaN quiet and non-zero).
    return sign | 0x7c00 | (mant !== 0 ? 0x200 | (mant >>> 13) : 0);
  }
  const e = exp - 127 + 15; // re-biased exponent
  if (e >= 0x1f) return sign | 0x7c00; // overflow -> Inf
  if (e <= 0) {
    // Subnormal half (or zero): shift the full mantissa (with implicit 1) right.
    if (e < -10) return sign; // underflows to +-0 even after rounding
    mant |= 0x800000;
    const shift = 14 - e; // 14..24
    const half = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    const rounded = rem > halfway || (rem === halfway && (half & 1) === 1) ? half + 1 : half;
    return sign | rounded;
  }
  const half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  // Rounding may carry into the exponent, which is still correct (up to Inf).
  const rounded = rem > 0x1000 || (rem === 0x1000 && (half & 1) === 1) ? half + 1 : half;
  return sign | rounded;
}

/** Exact value of a float16 bit pattern. */
export function float16BitsToFloat32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** Round a number to the nearest bfloat16, ties to even; returns the 16 raw bits. */
export function float32ToBFloat16Bits(x: number): number {
  const bits = float32BitsRoundToOdd(x);
  if ((bits & 0x7f800000) === 0x7f800000 && (bits & 0x7fffff) !== 0) {
    return ((bits >>> 16) | 0x40) & 0xffff; // quiet NaN
  }
  const lsb = (bits >>> 16) & 1;
  return ((bits + 0x7fff + lsb) >>> 16) & 0xffff;
}

/** Exact value of a bfloat16 bit pattern. */
export function bfloat16BitsToFloat32(b: number): number {
  return float32FromBits((b & 0xffff) << 16);
}

/** Round x to the nearest value representable in dtype (as a JS number). */
export function roundToDType(x: number, dtype: DType): number {
  switch (dtype) {
    case 'float32':
      return Math.fround(x);
    case 'float16':
      return float16BitsToFloat32(float32ToFloat16Bits(x));
    case 'bfloat16':
      return bfloat16BitsToFloat32(float32ToBFloat16Bits(x));
  }
}
