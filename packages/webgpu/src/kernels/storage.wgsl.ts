/**
 * WGSL snippets for storage dtypes. Math is always f32; storage is one of:
 *   float32          array<f32>
 *   float16 native   array<f16>, needs the `shader-f16` feature
 *   float16 packed   array<u32>, two halves per word, read with unpack2x16float
 *   bfloat16         array<u32>, two bfloat16 per word (the high half of an f32)
 *   any              array<u32>, the dtype read at run time from Params.dt (0 f32, 1 f16, 2 bf16):
 *                    one pipeline for every dtype, for adapters where compiling is slow (SwiftShader)
 * Element i of a packed tensor lives in word i >> 1, low half when i is even (little endian, the same
 * bytes as the host's Uint16Array).
 */
import type { DType } from '@flashattn/core';

/** How a dtype is laid out in a storage buffer on this device. */
export type StorageKind = 'f32' | 'f16' | 'f16x2' | 'bf16x2' | 'any';

/** Params.dt code of a dtype (for the 'any' kind). */
export function dtypeCode(dtype: DType): number {
  return dtype === 'float32' ? 0 : dtype === 'float16' ? 1 : 2;
}

export function storageKind(dtype: DType, nativeF16: boolean, generic = false): StorageKind {
  if (generic) return 'any';
  if (dtype === 'float32') return 'f32';
  if (dtype === 'float16') return nativeF16 ? 'f16' : 'f16x2';
  return 'bf16x2';
}

/** `enable f16;` when the kind needs it. */
export function enableFor(kind: StorageKind): string {
  return kind === 'f16' ? 'enable f16;\n' : '';
}

/** The WGSL element type of a storage array of this kind. */
export function arrayType(kind: StorageKind): string {
  return kind === 'f32' ? 'array<f32>' : kind === 'f16' ? 'array<f16>' : 'array<u32>';
}

/** `fn ld_<buf>(i: u32) -> f32` reading element i of storage buffer `buf` as f32. */
export function loadFn(buf: string, kind: StorageKind): string {
  const head = `fn ld_${buf}(i: u32) -> f32 {`;
  switch (kind) {
    case 'f32':
      return `${head} return ${buf}[i]; }\n`;
    case 'f16':
      return `${head} return f32(${buf}[i]); }\n`;
    case 'f16x2':
      return `${head} let w = ${buf}[i >> 1u]; return unpack2x16float(w)[i & 1u]; }\n`;
    case 'bf16x2':
      return (
        `${head} let w = ${buf}[i >> 1u];\n` +
        `  return bitcast<f32>(select(w << 16u, w & 0xffff0000u, (i & 1u) == 1u)); }\n`
      );
    case 'any':
      return (
        `${head}\n  if (p.dt == 0u) { return bitcast<f32>(${buf}[i]); }\n` +
        `  let w = ${buf}[i >> 1u];\n` +
        `  if (p.dt == 1u) { return unpack2x16float(w)[i & 1u]; }\n` +
        `  return bitcast<f32>(select(w << 16u, w & 0xffff0000u, (i & 1u) == 1u)); }\n`
      );
  }
}

/**
 * Round-to-nearest-even f32 -> 16-bit conversions done with integer ops, so packed outputs match the
 * host's conversion in core bit for bit (WGSL leaves the rounding of pack2x16float to the implementation).
 */
export const ROUND_FNS = /* wgsl */ `
fn f32_to_bf16_bits(x: f32) -> u32 {
  let b = bitcast<u32>(x);
  if ((b & 0x7f800000u) == 0x7f800000u && (b & 0x7fffffu) != 0u) { return ((b >> 16u) | 0x40u) & 0xffffu; } // quiet NaN
  let lsb = (b >> 16u) & 1u;
  return ((b + 0x7fffu + lsb) >> 16u) & 0xffffu;
}
fn f32_to_f16_bits(x: f32) -> u32 {
  let b = bitcast<u32>(x);
  let sign = (b >> 16u) & 0x8000u;
  let e = i32((b >> 23u) & 0xffu) - 127 + 15;
  var mant = b & 0x7fffffu;
  if (((b >> 23u) & 0xffu) == 0xffu) { return sign | 0x7c00u | select(0u, 0x200u | (mant >> 13u), mant != 0u); } // Inf, quiet NaN
  if (e >= 31) { return sign | 0x7c00u; }
  if (e <= 0) {
    if (e < -10) { return sign; }
    mant = mant | 0x800000u;
    let shift = u32(14 - e);
    let half = mant >> shift;
    let rem = mant & ((1u << shift) - 1u);
    let halfway = 1u << (shift - 1u);
    let up = rem > halfway || (rem == halfway && (half & 1u) == 1u);
    return sign | (half + select(0u, 1u, up));
  }
  let half = (u32(e) << 10u) | (mant >> 13u);
  let rem = mant & 0x1fffu;
  let up = rem > 0x1000u || (rem == 0x1000u && (half & 1u) == 1u);
  return sign | (half + select(0u, 1u, up));
}
`;

/** Large negative stand-in for -Infinity: WGSL lets implementations assume no infinities. */
export const NEG = '-1.0e30';
