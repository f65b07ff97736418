// createCudaDevice(): core's DeviceMemory + DeviceAttention on CUDA buffers. The GPU parts skip with the reason
// printed where CUDA is unavailable (CI: nvcc, no GPU); the provider / registry parts run everywhere.
import { mkdtempSync, mkdirSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  AttentionInputError,
  BackendOutOfMemoryError,
  OpsInputError,
  contiguousView,
  listBackends,
  packedQkvViews,
  type BackendProvider,
} from '@flashattn/core';
import { discoverBackends } from '@flashattn/core/node';
import { describeDeviceAttentionConformance } from '@flashattn/conformance/vitest';
import { describe, expect, it } from 'vitest';
import { cudaUnavailableReason } from './availability.js';
import { createCudaDevice, type CudaDevice } from './device.js';
import { CudaUnavailableError } from './errors.js';
import { provider } from './provider.js';

const pkgRoot = join(dirname(fileURLToPath(import.meta.url)), '..');
const reason = cudaUnavailableReason();
const skip = reason ? `CUDA unavailable: ${reason}` : undefined;
if (skip) console.warn(`@flashattn/cuda device tests skipped: ${skip}`);

describe('provider (runs everywhere)', () => {
  it("is 'cuda' at priority 20, registered on import, and probes with a reason when unavailable", async () => {
    expect(provider.name).toBe('cuda');
    expect(provider.priority).toBe(20);
    expect(listBackends().some((p) => p === provider)).toBe(true);
    const probe = await provider.probe();
    expect(probe.available).toBe(!reason);
    if (!probe.available) {
      expect(probe.reason).toContain(reason);
      await expect(provider.createAttention()).rejects.toBeInstanceOf(CudaUnavailableError);
    }
    await expect(provider.createAttention({ devcie: 0 })).rejects.toBeInstanceOf(
      AttentionInputError,
    );
  });

  it("core's discoverBackends() finds it through package.json flashattn.provider (built dist)", async () => {
    // An app folder with only this package installed (node_modules/@flashattn/cuda -> this package).
    const app = mkdtempSync(join(tmpdir(), 'flashattn-discover-'));
    mkdirSync(join(app, 'node_modules', '@flashattn'), { recursive: true });
    symlinkSync(pkgRoot, join(app, 'node_modules', '@flashattn', 'cuda'), 'dir');
    const found = await discoverBackends(app);
    expect(found).toEqual([{ package: '@flashattn/cuda', provider: 'cuda' }]);
    const registered = listBackends().find((p) => p.name === 'cuda') as BackendProvider;
    expect((await registered.probe()).available).toBe(!reason);
  });

  it.skipIf(!reason)('createCudaDevice throws CudaUnavailableError saying what is missing', () => {
    expect(() => createCudaDevice()).toThrow(CudaUnavailableError);
  });
});

describe.skipIf(!!reason)('CudaDevice memory (GPU)', () => {
  const withDevice = async (f: (dev: CudaDevice) => Promise<void>): Promise<void> => {
    const dev = createCudaDevice();
    try {
      await f(dev);
    } finally {
      await dev.dispose();
    }
  };

  it('alloc is zeroed; upload / download round trips; views share memory; copy casts; zero', () =>
    withDevice(async (dev) => {
      const f = dev.alloc(10, 'float32');
      expect(Array.from((await dev.download(f)) as Float32Array)).toEqual(new Array(10).fill(0));
      const data = Float32Array.from({ length: 10 }, (_, i) => i - 4.5);
      await dev.upload(f, data);
      expect(Array.from((await dev.download(f)) as Float32Array)).toEqual(Array.from(data));
      const v = dev.view(f, 2, 5);
      expect([dev.lengthOf(v), dev.dtypeOf(v)]).toEqual([5, 'float32']);
      expect(Array.from((await dev.download(dev.view(v, 1, 2))) as Float32Array)).toEqual([
        -1.5, -0.5,
      ]);
      await dev.upload(v, new Float64Array([9, 9, 9, 9, 9]));
      expect(Array.from((await dev.download(f)) as Float32Array)).toEqual([
        -4.5, -3.5, 9, 9, 9, 9, 9, 2.5, 3.5, 4.5,
      ]);
      const h = dev.alloc(10, 'bfloat16');
      await dev.copy(h, f); // float32 -> bfloat16 on the device; these values are exact in bf16
      const bits = (await dev.download(h)) as Uint16Array;
      expect(bits[0]).toBe(0xc090); // -4.5
      const back = dev.alloc(10, 'float32');
      await dev.copy(back, h);
      expect(Array.from((await dev.download(back)) as Float32Array)).toEqual(
        Array.from((await dev.download(f)) as Float32Array),
      );
      await dev.upload(h, new Float32Array(10).fill(1.5)); // cast on upload
      expect(Array.from((await dev.download(h)) as Uint16Array)).toEqual(
        new Array(10).fill(0x3fc0),
      );
      await dev.zero(v);
      expect(Array.from((await dev.download(f)) as Float32Array)).toEqual([
        -4.5, -3.5, 0, 0, 0, 0, 0, 2.5, 3.5, 4.5,
      ]);
      const i = dev.alloc(3, 'int32');
      await dev.upload(i, new Int32Array([1, -2, 3]));
      expect(Array.from((await dev.download(i)) as Int32Array)).toEqual([1, -2, 3]);
      for (const b of [f, h, back, i]) dev.free(b);
    }));

  it('a Float32Array on a SharedArrayBuffer uploads (copied first), and every bad host input is a typed error', () =>
    withDevice(async (dev) => {
      const b = dev.alloc(6, 'float32');
      const shared = new Float32Array(new SharedArrayBuffer(4 * 8), 4, 6);
      shared.set([1, 2, 3, 4, 5, 6]);
      await dev.upload(b, shared);
      expect(Array.from((await dev.download(b)) as Float32Array)).toEqual([1, 2, 3, 4, 5, 6]);
      const h = dev.alloc(6, 'float16');
      await dev.upload(h, new Float32Array(new SharedArrayBuffer(24)));
      await dev.upload(h, new Uint16Array(new SharedArrayBuffer(12)).fill(0x3c00));
      expect(Array.from((await dev.download(h)) as Uint16Array)).toEqual(new Array(6).fill(0x3c00));
      await expect(dev.upload(b, new Float32Array(5))).rejects.toThrow(OpsInputError);
      await expect(dev.upload(b, new Int32Array(6))).rejects.toThrow(/upload data/);
      await expect(dev.upload(b, new Uint16Array(6))).rejects.toThrow(OpsInputError);
      await expect(dev.upload(b, [1, 2, 3, 4, 5, 6] as unknown as Float32Array)).rejects.toThrow(
        OpsInputError,
      );
      await expect(dev.upload(b, new Uint8Array(24) as unknown as Float32Array)).rejects.toThrow(
        OpsInputError,
      );
      const detached = new Float32Array(6);
      structuredClone(detached.buffer, { transfer: [detached.buffer] });
      await expect(dev.upload(b, detached)).rejects.toThrow(OpsInputError);
      expect(() => dev.view(b, 4, 3)).toThrow(OpsInputError);
      expect(() => dev.alloc(-1, 'float32')).toThrow(OpsInputError);
      expect(() => dev.alloc(4, 'float64')).toThrow(OpsInputError);
      expect(() => dev.free(dev.view(b, 0, 2))).toThrow(/not a view/);
      await expect(dev.copy(dev.alloc(6, 'int32'), b)).rejects.toThrow(OpsInputError);
      await expect(dev.copy(dev.view(b, 0, 3), dev.view(b, 2, 3))).rejects.toThrow(/overlapping/);
      dev.free(b);
      expect(() => dev.lengthOf(b)).toThrow(/freed/);
      await expect(dev.download(b)).rejects.toThrow(OpsInputError);
      dev.free(h);
    }));

  it('an oversized allocation is BackendOutOfMemoryError and the device stays usable', () =>
    withDevice(async (dev) => {
      expect(() => dev.alloc(2 ** 44, 'float32')).toThrow(BackendOutOfMemoryError);
      const b = dev.alloc(4, 'float32');
      await dev.upload(b, new Float32Array([1, 2, 3, 4]));
      expect(Array.from((await dev.download(b)) as Float32Array)).toEqual([1, 2, 3, 4]);
      dev.free(b);
    }));
});

describe.skipIf(!!reason)('CudaDevice attention arguments (GPU)', () => {
  it('every view is checked before launching: typed errors name the argument', async () => {
    const dev = createCudaDevice();
    const [B, T, H, D] = [1, 16, 2, 64];
    const qkv = dev.alloc(B * T * 3 * H * D, 'bfloat16');
    const { q, k, v } = packedQkvViews(qkv, B, T, H, D);
    const out = contiguousView(dev.alloc(B * T * H * D, 'bfloat16'), [B, T, H, D]);
    const lse = dev.alloc(B * H * T, 'float32');
    await dev.attentionForward({ q, k, v, out, lse });
    const err = (p: Promise<void>) => expect(p).rejects.toThrow(AttentionInputError);
    await err(dev.attentionForward({ q: { ...q, offset: 3 * H * D }, k, v, out, lse }));
    await expect(
      dev.attentionForward({ q: { ...q, shape: [B, T + 1, H, D] }, k, v, out, lse }),
    ).rejects.toThrow(/Invalid q/);
    await err(dev.attentionForward({ q, k, v, out, lse: dev.view(lse, 0, B * H * T - 1) }));
    await err(dev.attentionForward({ q, k, v, out, lse: qkv }));
    await err(
      dev.attentionForward({
        q,
        k,
        v: { ...v, strides: [0, 0, D, 2] as unknown as [number, number, number, 1] },
        out,
        lse,
      }),
    );
    await err(
      dev.attentionForward({
        q,
        k,
        v,
        out: contiguousView(dev.alloc(B * T * H * D, 'float16'), [B, T, H, D]),
        lse,
      }),
    );
    await err(dev.attentionForward({ q: { ...q, shape: [B, T, H, 300] }, k, v, out, lse }));
    await dev.dispose();
  });

  it('no keys at all: out = 0, lse = -inf; no queries: dk = dv = 0', async () => {
    const dev = createCudaDevice();
    const [B, N, H, D] = [2, 5, 2, 32];
    const q = contiguousView(dev.alloc(B * N * H * D, 'float16'), [B, N, H, D]);
    const e = contiguousView(dev.alloc(8, 'float16'), [B, 0, H, D]);
    const outBuf = dev.alloc(B * N * H * D, 'float16');
    await dev.upload(outBuf, new Uint16Array(B * N * H * D).fill(0x3c00));
    const lse = dev.alloc(B * H * N, 'float32');
    await dev.attentionForward({ q, k: e, v: e, out: contiguousView(outBuf, [B, N, H, D]), lse });
    expect(Array.from((await dev.download(outBuf)) as Uint16Array).every((x) => x === 0)).toBe(
      true,
    );
    expect(
      Array.from((await dev.download(lse)) as Float32Array).every((x) => x === -Infinity),
    ).toBe(true);
    const dk = dev.alloc(B * N * H * D, 'float16');
    await dev.upload(dk, new Uint16Array(B * N * H * D).fill(0x3c00));
    const dkv = contiguousView(dk, [B, N, H, D]);
    const qe = contiguousView(dev.alloc(8, 'float16'), [B, 0, H, D]);
    await dev.attentionBackward({
      q: qe,
      k: q,
      v: q,
      out: qe,
      dout: qe,
      lse,
      dq: qe,
      dk: dkv,
      dv: dkv,
    });
    expect(Array.from((await dev.download(dk)) as Uint16Array).every((x) => x === 0)).toBe(true);
    await dev.dispose();
  });
});

// The conformance matrix on device buffers: conformance's layouts (contiguous: in place; padded / packed with odd
// gaps and offsets: through the staging copies) and the same layouts aligned to 8 elements (the strided kernels
// read and write the views in place). Each compares with the float64 oracle on fresh random inputs under the
// tolerance rule.
describeDeviceAttentionConformance('cuda-device', () => createCudaDevice(), { matrix: 'ci', skip });
describeDeviceAttentionConformance('cuda-device aligned', () => createCudaDevice(), {
  matrix: 'ci',
  skip,
  layouts: ['packed', 'padded'],
  align: 8,
});
