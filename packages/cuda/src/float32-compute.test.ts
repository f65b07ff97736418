// float32ComputeDType on the CPU (CI has nvcc but no GPU): the option checks (typed errors naming the option, before
// the addon is loaded), what each setting claims (capabilities / computeDType), and what reaches the addon: with
// 'float32' the attention kernels get dtype 0 and float32 views in place at any strides (no staging copy), with
// 'bfloat16' a staged 16-bit copy. A recording stand-in takes the native calls; the numerics are the GPU
// conformance suite's job (cuda.conformance.test.ts, float32-fault.conformance.test.ts).
import {
  AttentionInputError,
  OpsInputError,
  packedQkvViews,
  type StridedView,
} from '@flashattn/core';
import { afterAll, describe, expect, it } from 'vitest';
import { createCudaBackend, CudaBackend } from './backend.js';
import type { CudaBuffer } from './cuda-buffer.js';
import { createCudaDevice, CudaDevice } from './device.js';
import { CudaOps, createCudaOps } from './ops.js';
import { provider } from './provider.js';
import {
  addonWithoutGpu,
  expectRejects,
  STAND_IN_INFO,
  standInMemory,
} from './test-utils/stand-in-addon.js';

interface Recorded {
  fn: string;
  args: Record<string, unknown>;
}

const made: { dispose(): Promise<void> }[] = [];
afterAll(async () => {
  for (const m of made) await m.dispose();
});

/** A stand-in addon recording the attention and cast calls. */
function standIn() {
  const calls: Recorded[] = [];
  const addon: Record<string, unknown> = { ...standInMemory(), opsRelease: () => undefined };
  for (const fn of ['forward', 'backward', 'convert']) {
    addon[fn] = (_d: number, args: Record<string, unknown>) => calls.push({ fn, args });
  }
  return { addon, calls };
}

type Addon = ConstructorParameters<typeof CudaDevice>[0];
type OpsAddon = ConstructorParameters<typeof CudaOps>[0];

function device(opts: ConstructorParameters<typeof CudaDevice>[3]) {
  const { addon, calls } = standIn();
  const dev = new CudaDevice(addon as unknown as Addon, 0, STAND_IN_INFO, opts);
  made.push(dev);
  return { dev, calls };
}

function ops(opts: ConstructorParameters<typeof CudaOps>[3]) {
  const { addon, calls } = standIn();
  const o = new CudaOps(addon as unknown as OpsAddon, 0, STAND_IN_INFO, opts, {
    path: 'stand-in',
    version: 130100,
  });
  made.push(o);
  return { ops: o, calls };
}

describe('float32ComputeDType: option checks before anything is loaded', () => {
  it('a bad value is a typed error naming the option, for every entry point', async () => {
    for (const bad of ['float64', 'tf32', 1, null]) {
      const opts = { float32ComputeDType: bad } as never;
      await expectRejects(
        () => createCudaBackend(opts),
        AttentionInputError,
        'opts.float32ComputeDType',
      );
      await expectRejects(
        () => createCudaDevice(opts),
        AttentionInputError,
        'opts.float32ComputeDType',
      );
      await expectRejects(
        () => createCudaOps(opts),
        OpsInputError,
        'createCudaOps options.float32ComputeDType',
      );
      await expectRejects(
        () => provider.createAttention(opts),
        AttentionInputError,
        'opts.float32ComputeDType',
      );
    }
  });

  it('testFault (test-only) needs a known fault and float32 compute, and is no provider option', async () => {
    await expectRejects(
      () => createCudaDevice({ testFault: 'drop-last-key-block' }),
      AttentionInputError,
      'opts.testFault',
    );
    await expectRejects(
      () => createCudaBackend({ float32ComputeDType: 'float32', testFault: 'drop-mask' as never }),
      AttentionInputError,
      'opts.testFault',
    );
    await expectRejects(
      () =>
        provider.createAttention({
          float32ComputeDType: 'float32',
          testFault: 'drop-last-key-block',
        }),
      AttentionInputError,
      'options.testFault',
    );
  });
});

describe('float32ComputeDType: what each setting claims', () => {
  it("createCudaOps defaults to 'float32' and claims float32 for float32 buffers, attention included", () => {
    const { ops: o } = ops({});
    expect(o.float32ComputeDType).toBe('float32');
    expect(o.computeDType('float32')).toBe('float32');
    expect(o.attentionCapabilities.computeDType('float32')).toBe('float32');
    expect(o.computeDType('bfloat16')).toBe('bfloat16');
  });

  it("createCudaOps with a 16-bit float32ComputeDType claims it for float32 (its attention's precision)", () => {
    for (const cdt of ['bfloat16', 'float16'] as const) {
      const { ops: o } = ops({ float32ComputeDType: cdt });
      expect(o.computeDType('float32')).toBe(cdt);
      expect(o.attentionCapabilities.computeDType('float32')).toBe(cdt);
    }
  });

  it("the attention backends default to 'bfloat16' (speed) and claim what they run", () => {
    const { dev } = device({});
    expect(dev.float32ComputeDType).toBe('bfloat16');
    expect(dev.attentionCapabilities.computeDType('float32')).toBe('bfloat16');
    const { dev: d32 } = device({ float32ComputeDType: 'float32' });
    expect(d32.attentionCapabilities.computeDType('float32')).toBe('float32');
    expect(d32.attentionCapabilities.computeDType('float16')).toBe('float16');
    const { addon } = standIn();
    const be = new CudaBackend(addon as unknown as Addon, 0, STAND_IN_INFO, {
      float32ComputeDType: 'float32',
    });
    made.push(be);
    expect(be.capabilities.computeDType('float32')).toBe('float32');
  });
});

describe('float32ComputeDType: what reaches the addon', () => {
  // GPT-2's packed qkv (B, T, 3, H, D) at an odd offset (not a multiple of 8: the 16-bit kernels cannot read it in
  // place) and its packed gradient; out and dout contiguous.
  const [B, T, H, D] = [2, 5, 3, 32];
  const offset = 3;
  function buffers(dev: CudaDevice) {
    const qkv = dev.alloc(offset + B * T * 3 * H * D, 'float32');
    const grad = dev.alloc(offset + B * T * 3 * H * D, 'float32');
    const p = packedQkvViews(qkv, B, T, H, D, offset);
    const g = packedQkvViews(grad, B, T, H, D, offset);
    const view = (buffer: CudaBuffer): StridedView<CudaBuffer> => ({
      buffer,
      offset: 0,
      shape: [B, T, H, D],
      strides: [T * H * D, H * D, D, 1],
    });
    const out = view(dev.alloc(B * T * H * D, 'float32'));
    const dout = view(dev.alloc(B * T * H * D, 'float32'));
    const lse = dev.alloc(B * H * T, 'float32');
    return { p, g, out, dout, lse };
  }

  it("'float32': dtype 0, the packed views in place (element pointers, their strides), no staging copy", async () => {
    const { dev, calls } = device({ float32ComputeDType: 'float32' });
    const { p, g, out, dout, lse } = buffers(dev);
    await dev.attentionForward({ q: p.q, k: p.k, v: p.v, out, lse }, { causal: true });
    await dev.attentionBackward(
      { q: p.q, k: p.k, v: p.v, out, dout, lse, dq: g.q, dk: g.k, dv: g.v },
      { causal: true },
    );
    expect(calls.map((c) => c.fn)).toEqual(['forward', 'backward']);
    const [fwd, bwd] = calls.map((c) => c.args) as [
      Record<string, unknown>,
      Record<string, unknown>,
    ];
    expect(fwd.dtype).toBe(0);
    expect(bwd.dtype).toBe(0);
    expect(fwd.testFault).toBeUndefined();
    const qkvBase = fwd.q as bigint;
    // q, k, v: element (0, 0, 0, 0) of each third of a row, 4 bytes apart per element, the packed strides
    expect((fwd.k as bigint) - qkvBase).toBe(BigInt(H * D * 4));
    expect((fwd.v as bigint) - qkvBase).toBe(BigInt(2 * H * D * 4));
    expect(fwd.qStrides).toEqual([T * 3 * H * D, 3 * H * D, D]);
    expect(bwd.q).toBe(qkvBase);
    expect((bwd.dk as bigint) - (bwd.dq as bigint)).toBe(BigInt(H * D * 4));
    expect(bwd.dqStrides).toEqual([T * 3 * H * D, 3 * H * D, D]);
    expect(fwd.headDim).toBe(32);
  });

  it("'bfloat16': dtype 2 on staged 16-bit copies (the odd offset cannot be read in place)", async () => {
    const { dev, calls } = device({ float32ComputeDType: 'bfloat16' });
    const { p, out, lse } = buffers(dev);
    await dev.attentionForward({ q: p.q, k: p.k, v: p.v, out, lse });
    const fwd = calls.find((c) => c.fn === 'forward')!.args;
    expect(fwd.dtype).toBe(2);
    // q, k, v cast into 16-bit copies before, out cast back after
    expect(calls.map((c) => c.fn)).toEqual(['convert', 'convert', 'convert', 'forward', 'convert']);
  });

  it('a head dim without a kernel is zero-padded in float32 too (staged float32 copies, dtype 0)', async () => {
    const { dev, calls } = device({ float32ComputeDType: 'float32' });
    const d = 40;
    const view = (): StridedView<CudaBuffer> => ({
      buffer: dev.alloc(B * T * H * d, 'float32'),
      offset: 0,
      shape: [B, T, H, d],
      strides: [T * H * d, H * d, d, 1],
    });
    await dev.attentionForward({
      q: view(),
      k: view(),
      v: view(),
      out: view(),
      lse: dev.alloc(B * H * T, 'float32'),
    });
    const fwd = calls.find((c) => c.fn === 'forward')!.args;
    expect(fwd.dtype).toBe(0);
    expect(fwd.headDim).toBe(64);
    const casts = calls.filter((c) => c.fn === 'convert').map((c) => c.args);
    expect(casts).toHaveLength(4);
    for (const c of casts) expect([c.srcDtype, c.dstDtype]).toEqual([0, 0]);
  });

  it('testFault reaches the float32 kernels as its id', async () => {
    const { dev, calls } = device({
      float32ComputeDType: 'float32',
      testFault: 'drop-last-key-block',
    });
    const { p, out, lse } = buffers(dev);
    await dev.attentionForward({ q: p.q, k: p.k, v: p.v, out, lse });
    expect(calls.find((c) => c.fn === 'forward')!.args.testFault).toBe(1);
  });
});

describe('the native attention entry points without a GPU (the addon built, no driver: CI)', () => {
  const { available, call } = addonWithoutGpu();
  const shape = {
    batch: 1,
    nheadsQ: 2,
    nheadsK: 2,
    seqlenQ: 4,
    seqlenK: 4,
    headDim: 32,
    softmaxScale: 0.125,
    windowLeft: -1,
    windowRight: -1,
  };
  // a packed (B, T, 3, H, D) float32 qkv at an odd element offset: strides and pointers not multiples of 8 elements
  const odd = {
    q: 0x10004n,
    k: 0x10104n,
    v: 0x10204n,
    out: 0x20004n,
    lse: 0x30000n,
    qStrides: [4 * 3 * 2 * 36, 3 * 2 * 36, 36],
    kStrides: [4 * 3 * 2 * 36, 3 * 2 * 36, 36],
    vStrides: [4 * 3 * 2 * 36, 3 * 2 * 36, 36],
  };
  it.skipIf(!available)(
    'float32 (dtype 0) takes any strides and 4-byte aligned pointers and reaches the device; 16-bit dtypes still need 16-byte rows; testFault is float32-only',
    () => {
      const f32 = call('forward', { ...shape, dtype: 0, ...odd }) as { cudaError?: string };
      expect(f32).toBeInstanceOf(Error);
      expect(f32).not.toBeInstanceOf(TypeError);
      expect(f32.cudaError).toMatch(/^cuda/);
      const bf16 = call('forward', { ...shape, dtype: 2, ...odd });
      expect(bf16).toBeInstanceOf(TypeError);
      expect((bf16 as Error).message).toMatch(/16-byte aligned|multiples of 8/);
      const unaligned = call('forward', { ...shape, dtype: 0, ...odd, q: 0x10002n });
      expect(unaligned).toBeInstanceOf(TypeError);
      expect((unaligned as Error).message).toContain('q must be a 4-byte aligned device pointer');
      const fault16 = call('forward', {
        ...shape,
        dtype: 2,
        q: 0x10000n,
        k: 0x10100n,
        v: 0x10200n,
        out: 0x20000n,
        lse: 0x30000n,
        testFault: 1,
      });
      expect(fault16).toBeInstanceOf(TypeError);
      expect((fault16 as Error).message).toContain('testFault');
      const badDtype = call('forward', { ...shape, dtype: 3, ...odd });
      expect(badDtype).toBeInstanceOf(TypeError);
      expect((badDtype as Error).message).toContain(
        'dtype must be float32 (0), float16 (1) or bfloat16 (2)',
      );
    },
  );
});
