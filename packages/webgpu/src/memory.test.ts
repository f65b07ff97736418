/**
 * DeviceMemory<WebGPUBuffer>: views share memory; 16-bit data at odd offsets and odd lengths (not
 * 4-byte aligned) uploads, copies, zeroes and downloads without touching its neighbours; copy casts
 * bit for bit like core's host conversion (round to nearest even, NaN kept); bad arguments are typed
 * errors naming the argument.
 */
import {
  createRng,
  float16BitsToFloat32,
  float32ToBFloat16Bits,
  float32ToFloat16Bits,
  OpsInputError,
} from '@flashattn/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createWebGPUBackend, type WebGPUAttentionBackend } from './index.js';
import { defaultToSwiftShader, webgpuRequired } from './test-utils/env.js';

defaultToSwiftShader();

let be: WebGPUAttentionBackend | undefined;
let unavailable: string | undefined;
try {
  be = await createWebGPUBackend();
} catch (e) {
  unavailable = e instanceof Error ? e.message : String(e);
}
const skip = unavailable !== undefined && !webgpuRequired();
if (skip) console.warn(`webgpu memory tests skipped: no WebGPU adapter: ${unavailable}`);

/** Random float32 values over many binades, plus the special values a conversion must keep. */
function values(n: number, seed: number): Float32Array {
  const rng = createRng(seed);
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = rng.normal() * 2 ** Math.round(rng.normal() * 12);
  x.set([NaN, Infinity, -Infinity, 0, -0, 65520, 1e-8, 3.4e38, 2 ** -24 * 1.5], 0);
  return x;
}

describe.skipIf(skip)('webgpu device memory', () => {
  beforeAll(() => {
    if (!be) throw new Error(`no WebGPU adapter although one is required: ${unavailable}`);
  });
  afterAll(() => be?.dispose());

  it('allocates zeroed buffers; a view shares its buffer memory', async () => {
    const m = be!;
    const a = m.alloc(10, 'float32');
    expect([m.lengthOf(a), m.dtypeOf(a)]).toEqual([10, 'float32']);
    expect(Array.from(await m.download(a))).toEqual(new Array(10).fill(0));
    const v = m.view(a, 3, 4);
    const w = m.view(v, 1, 2); // a view of a view is relative to the view
    await m.upload(v, new Float32Array([1, 2, 3, 4]));
    expect(Array.from(await m.download(a))).toEqual([0, 0, 0, 1, 2, 3, 4, 0, 0, 0]);
    expect(Array.from(await m.download(w))).toEqual([2, 3]);
    await m.zero(w);
    expect(Array.from(await m.download(a))).toEqual([0, 0, 0, 1, 0, 0, 4, 0, 0, 0]);
    m.free(a);
  });

  it('uploads, zeroes and downloads 16-bit views at odd offsets without touching their neighbours', async () => {
    const m = be!;
    const root = m.alloc(9, 'bfloat16');
    const all = Uint16Array.from({ length: 9 }, (_, i) => 0x3f80 + i);
    await m.upload(root, all);
    const v = m.view(root, 1, 5); // elements 1..5: starts and ends mid-word
    await m.upload(v, new Uint16Array([0xa, 0xb, 0xc, 0xd, 0xe]));
    expect(Array.from(await m.download(root))).toEqual([
      0x3f80, 0xa, 0xb, 0xc, 0xd, 0xe, 0x3f86, 0x3f87, 0x3f88,
    ]);
    expect(Array.from(await m.download(m.view(root, 3, 3)))).toEqual([0xc, 0xd, 0xe]);
    await m.zero(m.view(root, 2, 1));
    expect(Array.from(await m.download(root))).toEqual([
      0x3f80, 0xa, 0, 0xc, 0xd, 0xe, 0x3f86, 0x3f87, 0x3f88,
    ]);
    m.free(root);
  });

  it('copies with a cast bit for bit like the host conversion (f32 -> f16 / bf16 -> f32), at any offset', async () => {
    const m = be!;
    const n = 1001;
    const x = values(n, 11);
    const src = m.alloc(n + 1, 'float32');
    await m.upload(m.view(src, 1, n), x);
    for (const [dtype, conv] of [
      ['float16', float32ToFloat16Bits],
      ['bfloat16', float32ToBFloat16Bits],
    ] as const) {
      const dst = m.alloc(n + 2, dtype);
      await m.copy(m.view(dst, 1, n), m.view(src, 1, n)); // odd destination offset: the half-word path
      const got = Array.from(await m.download(m.view(dst, 1, n)));
      expect(got).toEqual(Array.from(x, (e) => conv(e)));
      const back = m.alloc(n, 'float32');
      await m.copy(back, m.view(dst, 1, n));
      const want =
        dtype === 'float16'
          ? got.map(float16BitsToFloat32)
          : got.map((b) => new Float32Array(new Uint32Array([b << 16]).buffer)[0]!);
      expect(Array.from(await m.download(back))).toEqual(want);
      // host float data into a 16-bit buffer takes the same conversion
      await m.upload(m.view(dst, 1, n), x);
      expect(Array.from(await m.download(m.view(dst, 1, n)))).toEqual(
        Array.from(x, (e) => conv(e)),
      );
      m.free(dst);
      m.free(back);
    }
    m.free(src);
  });

  it("wraps a caller's GPUBuffer without taking it over", async () => {
    const m = be!;
    const gpu = m.device.createBuffer({ size: 64, usage: 128 | 4 | 8 }); // STORAGE | COPY_SRC | COPY_DST
    const w = m.wrap(gpu, 'float32', 16);
    await m.upload(m.view(w, 4, 2), new Float32Array([5, 6]));
    expect(Array.from(await m.download(m.view(w, 3, 4)))).toEqual([0, 5, 6, 0]);
    expect(() => m.free(w)).toThrow(/Invalid buf: expected a buffer from alloc/);
    expect(() => m.wrap(gpu, 'float32', 17)).toThrow(/Invalid length/);
    gpu.destroy();
  });

  it('rejects bad arguments with OpsInputError naming the argument', async () => {
    const m = be!;
    const a = m.alloc(4, 'float32');
    const i = m.alloc(4, 'int32');
    await expect(m.upload(a, new Float32Array(3))).rejects.toThrow(
      /Invalid data: expected 4 elements/,
    );
    await expect(m.upload(a, new Int32Array(4))).rejects.toThrow(OpsInputError);
    await expect(m.upload(i, new Float32Array(4))).rejects.toThrow(
      /Invalid data: expected an Int32Array/,
    );
    await expect(m.upload(a, [1, 2, 3, 4] as unknown as Float32Array)).rejects.toThrow(
      /Invalid data/,
    );
    await expect(m.copy(m.alloc(4, 'float16'), i)).rejects.toThrow(/Invalid dst\.dtype/);
    expect(() => m.alloc(4, 'float64')).toThrow(/Invalid dtype/);
    expect(() => m.alloc(-1, 'float32')).toThrow(/Invalid n/);
    expect(() => m.view(a, 2, 3)).toThrow(/Invalid length/);
    expect(() => m.free(m.view(a, 0, 2))).toThrow(/Invalid buf: expected a buffer from alloc/);
    m.free(a);
    await expect(m.download(a)).rejects.toThrow(/Invalid buf: expected a live buffer/);
    expect(() => m.lengthOf({} as never)).toThrow(OpsInputError);
    m.free(i);
  });
});
