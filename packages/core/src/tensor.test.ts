import { describe, expect, it } from 'vitest';
import { float32ToBFloat16Bits, float32ToFloat16Bits } from './dtype.js';
import { AttentionInputError } from './errors.js';
import { checkData, fromFloat32, numel, tensor, toFloat32, zeros } from './tensor.js';

describe('tensor', () => {
  it('builds float32 tensors from numbers and typed arrays, copying the shape', () => {
    const shape = [1, 2, 1, 2];
    const t = tensor([1, 2, 3, 4], shape);
    expect(t.dtype).toBe('float32');
    expect(t.data).toBeInstanceOf(Float32Array);
    expect(Array.from(t.data)).toEqual([1, 2, 3, 4]);
    shape[0] = 9;
    expect(t.shape).toEqual([1, 2, 1, 2]);
    const raw = new Uint16Array([0x3c00, 0xc000]);
    const h = tensor(raw, [2], 'float16');
    expect(h.data).toBe(raw);
    expect(tensor(new Uint16Array(1), [1]).dtype).toBe('float16'); // Uint16Array defaults to float16
  });

  it('computes numel', () => {
    expect(numel([2, 3, 4])).toBe(24);
    expect(numel([])).toBe(1);
    expect(numel([3, 0])).toBe(0);
  });

  it('rejects data whose length is not product(shape), naming argument, expected and actual', () => {
    try {
      tensor(new Float32Array(5), [2, 3], 'float32', 'q');
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(AttentionInputError);
      const err = e as AttentionInputError;
      expect(err.argument).toBe('q.data.length');
      expect(err.expected).toContain('6');
      expect(err.actual).toBe('5');
      expect(err.message).toMatch(/q\.data\.length.*6.*5/);
    }
  });

  it('rejects the wrong array type for the dtype, bad dtypes and bad shapes', () => {
    expect(() => tensor(new Float32Array(2), [2], 'float16')).toThrow(/Uint16Array/);
    expect(() => tensor(new Uint16Array(2), [2], 'float32')).toThrow(/Float32Array/);
    expect(() => tensor([1, 2], [2], 'bfloat16')).toThrow(AttentionInputError);
    expect(() => tensor([1], [1], 'float64' as never)).toThrow(/dtype/);
    expect(() => tensor([1], [-1])).toThrow(/shape/);
    expect(() => tensor([1], [0.5])).toThrow(/shape/);
    expect(() => checkData('k', new Float64Array(2), [2], 'float32')).toThrow(/k\.data/);
  });

  it('converts to and from float32 with round-to-nearest-even', () => {
    const values = Float32Array.from([1, -2.5, 1 + 2 ** -11, 65520, 1e-8, 0.1]);
    const h = fromFloat32(values, [6], 'float16');
    expect(Array.from(h.data as Uint16Array)).toEqual(Array.from(values, float32ToFloat16Bits));
    expect(Array.from(toFloat32(h))).toEqual([
      1,
      -2.5,
      1,
      Infinity,
      Math.fround(2 ** -24 * Math.round(1e-8 / 2 ** -24)),
      Math.fround(0.0999755859375),
    ]);
    const b = fromFloat32(values, [6], 'bfloat16');
    expect(Array.from(b.data as Uint16Array)).toEqual(Array.from(values, float32ToBFloat16Bits));
    expect(toFloat32(b)[0]).toBe(1);
    const f = fromFloat32(values, [6], 'float32');
    expect(toFloat32(f)).toBe(f.data); // float32: no copy
    expect(Array.from(f.data)).toEqual(Array.from(values));
  });

  it('makes zeros of every dtype', () => {
    for (const dt of ['float32', 'float16', 'bfloat16'] as const) {
      const z = zeros([2, 3], dt);
      expect(z.dtype).toBe(dt);
      expect(Array.from(toFloat32(z))).toEqual([0, 0, 0, 0, 0, 0]);
    }
  });
});
