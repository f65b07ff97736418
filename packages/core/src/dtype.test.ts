import { describe, expect, it } from 'vitest';
import {
  bfloat16BitsToFloat32,
  bytesPerElement,
  float16BitsToFloat32,
  float32Bits,
  float32FromBits,
  float32ToBFloat16Bits,
  float32ToFloat16Bits,
  roundToDType,
  unitRoundoff,
  type DType,
} from './dtype.js';
import { createRng, freshSeed } from './random.js';

/**
 * Independent oracle for round-to-nearest-even: the sorted list of every finite value of the 16-bit
 * format (decoded by arithmetic, not by the code under test), a binary search for the neighbours,
 * ties to the even bit pattern, and overflow past the last midpoint to Infinity (IEEE 754).
 */
function decode(fmt: 'float16' | 'bfloat16', bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const [eBits, mBits, bias] = fmt === 'float16' ? [5, 10, 15] : [8, 7, 127];
  const e = (bits >> mBits) & ((1 << eBits) - 1);
  const m = bits & ((1 << mBits) - 1);
  if (e === (1 << eBits) - 1) return m ? NaN : sign * Infinity;
  if (e === 0) return sign * m * 2 ** (1 - bias - mBits);
  return sign * (1 + m / 2 ** mBits) * 2 ** (e - bias);
}

function finiteTable(fmt: 'float16' | 'bfloat16'): { values: number[]; bits: number[] } {
  const pairs: [number, number][] = [];
  for (let b = 0; b < 0x8000; b++) {
    const x = decode(fmt, b);
    if (Number.isFinite(x)) pairs.push([x, b]);
  }
  pairs.sort((a, b) => a[0] - b[0]);
  return { values: pairs.map((p) => p[0]), bits: pairs.map((p) => p[1]) };
}

const TABLES = { float16: finiteTable('float16'), bfloat16: finiteTable('bfloat16') };

function oracleRound(fmt: 'float16' | 'bfloat16', x: number): number {
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const a = Math.abs(x);
  const { values, bits } = TABLES[fmt];
  const n = values.length;
  const max = values[n - 1]!;
  const ulpAtMax = max - values[n - 2]!;
  if (a >= max + ulpAtMax / 2) return sign | (fmt === 'float16' ? 0x7c00 : 0x7f80); // incl. the tie
  let lo = 0;
  let hi = n - 1;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (values[mid]! <= a) lo = mid;
    else hi = mid;
  }
  if (a >= max) return sign | bits[n - 1]!;
  const dLo = a - values[lo]!;
  const dHi = values[hi]! - a;
  const pick = dLo < dHi ? lo : dHi < dLo ? hi : bits[lo]! % 2 === 0 ? lo : hi;
  return sign | bits[pick]!;
}

const TO_BITS = { float16: float32ToFloat16Bits, bfloat16: float32ToBFloat16Bits };
const FROM_BITS = { float16: float16BitsToFloat32, bfloat16: bfloat16BitsToFloat32 };

describe.each(['float16', 'bfloat16'] as const)('%s conversion', (fmt) => {
  const toBits = TO_BITS[fmt];
  const fromBits = FROM_BITS[fmt];
  const { values } = TABLES[fmt];

  // Loops collect mismatches and assert once (an expect per element would dominate the run time).
  it('decodes every bit pattern exactly', () => {
    const bad: string[] = [];
    for (let b = 0; b < 0x10000; b++) {
      const want = decode(fmt, b);
      const got = fromBits(b);
      const ok = Number.isNaN(want) ? Number.isNaN(got) : Object.is(got, want);
      if (!ok) bad.push(`bits ${b.toString(16)}: ${got} vs ${want}`);
    }
    expect(bad).toEqual([]);
  });

  it('round-trips every non-NaN bit pattern', () => {
    const bad: string[] = [];
    for (let b = 0; b < 0x10000; b++) {
      const x = fromBits(b);
      if (!Number.isNaN(x) && toBits(x) !== b)
        bad.push(`bits ${b.toString(16)} -> ${toBits(x).toString(16)}`);
    }
    expect(bad).toEqual([]);
  });

  it('rounds every midpoint to even and every near-midpoint to the nearer value', () => {
    const bad: string[] = [];
    let checked = 0;
    for (let i = 0; i + 1 < values.length; i++) {
      const mid = (values[i]! + values[i + 1]!) / 2; // exact in float32 (one more bit)
      for (const x of [
        mid,
        float32FromBits(float32Bits(mid) + 1),
        float32FromBits(float32Bits(mid) - 1),
      ]) {
        if (x === 0) continue;
        for (const y of [x, -x]) {
          checked++;
          if (toBits(y) !== oracleRound(fmt, y))
            bad.push(`x = ${y}: ${toBits(y)} vs ${oracleRound(fmt, y)}`);
        }
      }
    }
    expect(checked).toBeGreaterThan(6 * 30000);
    expect(bad.slice(0, 10)).toEqual([]);
  });

  it('matches the oracle on random float32 values of every magnitude', () => {
    const seed = freshSeed();
    const rng = createRng(seed);
    const bad: string[] = [];
    for (let t = 0; t < 20000; t++) {
      const x = float32FromBits(Math.floor(rng.uniform() * 2 ** 32));
      if (Number.isFinite(x) && toBits(x) !== oracleRound(fmt, x))
        bad.push(`seed ${seed} x = ${x}`);
    }
    expect(bad.slice(0, 10)).toEqual([]);
  });

  it('handles signed zero, infinities, overflow and NaN', () => {
    const inf = fmt === 'float16' ? 0x7c00 : 0x7f80;
    expect(toBits(0)).toBe(0);
    expect(toBits(-0)).toBe(0x8000);
    expect(toBits(Infinity)).toBe(inf);
    expect(toBits(-Infinity)).toBe(0x8000 | inf);
    const max = values[values.length - 1]!;
    expect(fromBits(toBits(max))).toBe(max);
    expect(toBits(1e39)).toBe(inf); // beyond even float32: Infinity
    expect(toBits(-1e39)).toBe(0x8000 | inf);
    // NaN stays NaN, including NaNs whose payload sits in the low float32 bits only.
    for (const nan of [
      NaN,
      float32FromBits(0x7f800001),
      float32FromBits(0xffc00000),
      float32FromBits(0x7fa00000),
    ]) {
      const b = toBits(nan);
      expect(
        Number.isNaN(fromBits(b)),
        `NaN bits ${float32Bits(nan).toString(16)} -> ${b.toString(16)}`,
      ).toBe(true);
    }
  });
});

describe('named float16 cases', () => {
  it.each([
    [1, 0x3c00],
    [65504, 0x7bff], // max
    [65519, 0x7bff], // below the last midpoint
    [65520, 0x7c00], // the last midpoint: ties to even = Infinity
    [1 + 2 ** -11, 0x3c00], // tie between 1 and 1 + 2^-10: even is 1
    [1 + 3 * 2 ** -11, 0x3c02], // tie between 1 + 2^-10 (odd) and 1 + 2^-9 (even)
    [2 ** -14, 0x0400], // smallest normal
    [2 ** -24, 0x0001], // smallest subnormal
    [2 ** -25, 0x0000], // tie between 0 and 2^-24: even is 0
    [3 * 2 ** -25, 0x0002], // tie between 1 and 2 ulps: even is 2
    [2 ** -25 + 2 ** -35, 0x0001], // just above the tie
    [1023.5 * 2 ** -24, 0x0400], // subnormal rounding up into the smallest normal
    [-2, 0xc000],
  ])('%s -> %s', (x, bits) => {
    expect(float32ToFloat16Bits(x)).toBe(bits);
  });
});

describe('named bfloat16 cases', () => {
  it.each([
    [1, 0x3f80],
    [1 + 2 ** -8, 0x3f80], // tie: even is 1
    [1 + 3 * 2 ** -8, 0x3f82],
    [3.3895313892515355e38, 0x7f7f], // max
    [3.4028234663852886e38, 0x7f80], // float32 max is past the last midpoint: Infinity
    [2 ** -133, 0x0001], // smallest subnormal
    [2 ** -134, 0x0000], // tie with 0
  ])('%s -> %s', (x, bits) => {
    expect(float32ToBFloat16Bits(x)).toBe(bits);
  });
});

describe('roundToDType', () => {
  it('rounds float64 numbers once, to the nearest value (no double rounding via float32)', () => {
    // 1 + 2^-11 + 2^-40 is just above the float16 tie; rounding it to float32 first lands exactly on
    // the tie and then on the even neighbour 1, which is wrong.
    expect(roundToDType(1 + 2 ** -11 + 2 ** -40, 'float16')).toBe(1 + 2 ** -10);
    expect(roundToDType(1 + 2 ** -11 - 2 ** -40, 'float16')).toBe(1);
    expect(roundToDType(1 + 2 ** -8 + 2 ** -40, 'bfloat16')).toBe(1 + 2 ** -7);
    expect(roundToDType(-(1 + 2 ** -8 + 2 ** -40), 'bfloat16')).toBe(-(1 + 2 ** -7));
    expect(roundToDType(65520 - 2 ** -30, 'float16')).toBe(65504);
    expect(roundToDType(2 ** -25 + 2 ** -60, 'float16')).toBe(2 ** -24);
    expect(roundToDType(1 + 2 ** -30, 'float32')).toBe(1);
  });

  it('agrees with the oracle on random float64 values, also right beside the float32 ties', () => {
    const seed = freshSeed();
    const rng = createRng(seed);
    const bad: string[] = [];
    for (let t = 0; t < 20000; t++) {
      for (const fmt of ['float16', 'bfloat16'] as const) {
        const x = (rng.uniform() - 0.5) * 2 ** (rng.int(60) - 30);
        // A midpoint of the format nudged by far less than a float32 ulp: the double-rounding trap.
        const { values } = TABLES[fmt];
        const i = rng.int(values.length - 1);
        const mid = (values[i]! + values[i + 1]!) / 2;
        const y = mid + (rng.uniform() < 0.5 ? -1 : 1) * Math.max(mid, 2 ** -140) * 2 ** -40;
        for (const z of [x, y]) {
          if (roundToDType(z, fmt) !== FROM_BITS[fmt](oracleRound(fmt, z)))
            bad.push(`${fmt} x = ${z}`);
        }
      }
    }
    expect(bad.slice(0, 10), `seed ${seed}`).toEqual([]);
  });

  it('states bytes and unit roundoff per dtype', () => {
    const cases: [DType, number, number][] = [
      ['float32', 4, 2 ** -24],
      ['float16', 2, 2 ** -11],
      ['bfloat16', 2, 2 ** -8],
    ];
    for (const [dt, bytes, u] of cases) {
      expect(bytesPerElement(dt)).toBe(bytes);
      expect(unitRoundoff(dt)).toBe(u);
      // u bounds the relative error of one rounding.
      const x = 1 + Math.PI / 1000;
      expect(Math.abs(roundToDType(x, dt) - x) / x).toBeLessThanOrEqual(u);
    }
  });
});
