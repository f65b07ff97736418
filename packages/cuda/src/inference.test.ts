// The inference contracts of createCudaDevice() on the CPU (CI has nvcc but no GPU): bad input is an
// AttentionInputError naming the argument, raised before anything is enqueued (so nothing is written); the
// arguments a valid call hands the addon (splits from core's heuristic with the SM count, the metadata, 16-byte
// loads only for aligned caches, the per-sequence views of varlen); and the native entry points' own TypeErrors
// (the addon built, no driver). A recording stand-in for the addon takes the native calls; the numerics are the
// GPU suite's job (inference.conformance.test.ts, inference-broken.test.ts).
import {
  AttentionInputError,
  contiguousView,
  hasKvCacheAttention,
  hasVarlenAttention,
  type BufferDType,
  type KvCacheAttentionArgs,
  type KvCacheOptions,
  type StridedView,
} from '@flashattn/core';
import { describe, expect, it } from 'vitest';
import type { CudaBuffer } from './cuda-buffer.js';
import { CudaDevice } from './device.js';
import type { NativeKvCache } from './inference-kv-cache.js';
import {
  addonWithoutGpu,
  expectRejects,
  STAND_IN_INFO,
  standInMemory,
} from './test-utils/stand-in-addon.js';

interface Recorded {
  fn: string;
  args: unknown[];
}

/** A CudaDevice over an addon that hands out fake 256-byte aligned addresses and records every native call. */
function standIn() {
  const calls: Recorded[] = [];
  const rec =
    (fn: string, ret?: unknown) =>
    (...args: unknown[]) => {
      calls.push({ fn, args });
      return ret;
    };
  const addon: Record<string, unknown> = {
    ...standInMemory(),
    memcpy: async (...a: unknown[]) => void calls.push({ fn: 'memcpy', args: a }),
    copyDevice: rec('copyDevice'),
    convert: rec('convert'),
    forward: rec('forward'),
    backward: rec('backward'),
    kvCacheAttention: rec('kvCacheAttention'),
    attentionCombine: rec('attentionCombine'),
  };
  const dev = new CudaDevice(
    addon as unknown as ConstructorParameters<typeof CudaDevice>[0],
    0,
    STAND_IN_INFO,
    {},
  );
  const kernels = () => calls.filter((c) => c.fn !== 'memcpy');
  return { dev, calls, kernels };
}

const rejects = (p: () => unknown, argument: string) =>
  expectRejects(p, AttentionInputError, argument);

/** A valid paged decode call: B = 2, Hq = 4, Hk = 2, D = 16, page size 4, lens [5, 2], one key appended. */
function pagedCall(dev: CudaDevice, dtype: BufferDType = 'bfloat16') {
  const [B, Hq, Hk, D, ps, pages] = [2, 4, 2, 16, 4, 5];
  const f = (shape: [number, number, number, number], dt: BufferDType = dtype) =>
    contiguousView(
      dev.alloc(
        shape.reduce((a, b) => a * b, 1),
        dt,
      ),
      shape,
    );
  const args: KvCacheAttentionArgs<CudaBuffer> = {
    q: f([B, 1, Hq, D]),
    kCache: f([pages, ps, Hk, D]),
    vCache: f([pages, ps, Hk, D]),
    kNew: f([B, 1, Hk, D]),
    vNew: f([B, 1, Hk, D]),
    cacheSeqlens: Int32Array.from([5, 2]),
    // (B, 2): sequence 0 uses pages 3, 0; sequence 1 page 4 (its second entry is never read)
    blockTable: Int32Array.from([3, 0, 4, -1]),
    out: f([B, 1, Hq, D]),
    lse: dev.alloc(B * Hq, 'float32'),
  };
  return args;
}

describe('KV-cache attention on createCudaDevice(): argument checks and native arguments (stand-in addon)', () => {
  it('implements the inference contracts, with any page size and the SM count as parallelism', () => {
    const { dev } = standIn();
    expect(hasKvCacheAttention(dev)).toBe(true);
    expect(hasVarlenAttention(dev)).toBe(true);
    expect(dev.kvCacheCapabilities.pageSizeMultiple).toBe(1);
    expect(dev.kvCacheCapabilities.maxSplits).toBe(128);
    expect(dev.kvCacheCapabilities.parallelism).toBe(132 * 4);
    expect(dev.kvCacheCapabilities.computeDType('float32')).toBe('float32');
  });

  it('rejects bad input with a typed error naming the argument and enqueues nothing', async () => {
    const { dev, calls } = standIn();
    const good = pagedCall(dev);
    const freed = dev.alloc(2 * 4 * 16, 'bfloat16');
    dev.free(freed);
    const cases: Array<[string, KvCacheAttentionArgs<CudaBuffer>, KvCacheOptions, string]> = [
      [
        'page out of range',
        { ...good, blockTable: Int32Array.from([3, 5, 4, -1]) },
        {},
        'blockTable[0, 1]',
      ],
      [
        'negative page',
        { ...good, blockTable: Int32Array.from([3, 0, -2, -1]) },
        {},
        'blockTable[1, 0]',
      ],
      [
        'length above capacity',
        { ...good, cacheSeqlens: Int32Array.from([8, 2]) },
        {},
        'cacheSeqlens[0]',
      ],
      ['k_new without v_new', { ...good, vNew: undefined }, {}, 'vNew'],
      [
        'cache_batch_idx with pages',
        { ...good, cacheBatchIdx: Int32Array.from([0, 1]) },
        {},
        'cacheBatchIdx',
      ],
      [
        'cache dtype',
        {
          ...good,
          kCache: { ...good.kCache, buffer: dev.alloc(5 * 4 * 2 * 16, 'float16') },
        },
        {},
        'kCache.buffer dtype',
      ],
      ['lse dtype', { ...good, lse: dev.alloc(8, 'bfloat16') }, {}, 'lse dtype'],
      [
        'not a buffer',
        { ...good, q: { ...good.q, buffer: new Float32Array(128) as unknown as CudaBuffer } },
        {},
        'q.buffer',
      ],
      ['freed buffer', { ...good, out: { ...good.out, buffer: freed } }, {}, 'out.buffer'],
      ['numSplits', good, { numSplits: -1 }, 'opts.numSplits'],
      ['unknown option', good, { casual: true } as KvCacheOptions, 'opts.casual'],
    ];
    for (const [what, args, opts, arg] of cases) {
      await rejects(() => dev.attentionWithKvCache(args, opts), arg);
      expect(
        calls.filter((c) => c.fn === 'kvCacheAttention'),
        what,
      ).toEqual([]);
    }
    // the valid call does reach the addon (the checks above are not vacuous)
    await dev.attentionWithKvCache(good, { causal: true });
    expect(calls.filter((c) => c.fn === 'kvCacheAttention')).toHaveLength(1);
  });

  it('hands the addon the metadata, the strides, the pointers and the split count', async () => {
    const { dev, calls } = standIn();
    const good = pagedCall(dev);
    await dev.attentionWithKvCache(good, { causal: true, numSplits: 3 });
    const a = calls.find((c) => c.fn === 'kvCacheAttention')!.args[1] as NativeKvCache;
    expect(a.dtype).toBe(2);
    expect([a.batch, a.seqlenQ, a.nheadsQ, a.nheadsK, a.headDim, a.seqlenNew]).toEqual([
      2, 1, 4, 2, 16, 1,
    ]);
    expect([a.pageSize, a.blocksPerSeq, a.numBlocks]).toEqual([4, 2, 5]);
    expect(Array.from(a.cacheSeqlens)).toEqual([5, 2]);
    expect(Array.from(a.table)).toEqual([3, 0, 4, -1]);
    // forced splits; keys per split = ceil(max(5 + 1, 2 + 1) / 3)
    expect([a.numSplits, a.keysPerSplit]).toEqual([3, 2]);
    expect([a.windowLeft, a.windowRight]).toEqual([-1, 0]);
    expect(a.softmaxScale).toBeCloseTo(1 / 4, 12);
    expect(a.kStrides).toEqual([4 * 2 * 16, 2 * 16, 16]);
    expect(a.vectorLoads).toBe(true);
    // splits are clamped to the longest sequence's keys
    await dev.attentionWithKvCache(good, { numSplits: 50 });
    const b = calls.filter((c) => c.fn === 'kvCacheAttention')[1]!.args[1] as NativeKvCache;
    expect(b.numSplits).toBe(6);
    expect([b.windowLeft, b.windowRight]).toEqual([-1, -1]);
  });

  it('takes the split count from the heuristic with 4 CTAs per SM, and scalar loads for unaligned caches', async () => {
    const { dev, calls } = standIn();
    // decode B = 1, Hq = 32, Hk = 8, D = 128, 8192 cached keys: 8 work units on 132 x 4 = 528 parallel slots;
    // flash-attn's rule takes the fewest splits within 85% of the best wave efficiency 8 s / 528 (1 at s = 66):
    // s = 57 (456 / 528 = 0.86; s = 56 gives 448 / 528 = 0.848)
    const [Hq, Hk, D, N] = [32, 8, 128, 8192];
    const cache = (offset: number): StridedView<CudaBuffer> => ({
      ...contiguousView(dev.alloc(offset + N * Hk * D, 'bfloat16'), [1, N, Hk, D]),
      offset,
    });
    const args: KvCacheAttentionArgs<CudaBuffer> = {
      q: contiguousView(dev.alloc(Hq * D, 'bfloat16'), [1, 1, Hq, D]),
      kCache: cache(0),
      vCache: cache(0),
      cacheSeqlens: Int32Array.from([N]),
      out: contiguousView(dev.alloc(Hq * D, 'bfloat16'), [1, 1, Hq, D]),
    };
    await dev.attentionWithKvCache(args, { causal: true });
    const a = calls.find((c) => c.fn === 'kvCacheAttention')!.args[1] as NativeKvCache;
    expect([a.numSplits, a.keysPerSplit]).toEqual([57, Math.ceil(8192 / 57)]);
    expect(a.vectorLoads).toBe(true);
    expect(a.lse).toBeNull();
    expect(Array.from(a.table)).toEqual([0]); // contiguous: cache_batch_idx, one entry per sequence
    // a cache view 3 elements into its buffer: rows not 16-byte aligned -> scalar loads, pointer at the offset
    await dev.attentionWithKvCache({ ...args, kCache: cache(3) }, { causal: true });
    const b = calls.filter((c) => c.fn === 'kvCacheAttention')[1]!.args[1] as NativeKvCache;
    expect(b.vectorLoads).toBe(false);
    expect(b.k - a.k).not.toBe(0n);
    expect((b.k - 0x10000n) % 256n).toBe(6n); // 3 bf16 elements past a 256-byte aligned allocation
  });

  it('combine: typed errors, then the partials and the strided out', async () => {
    const { dev, calls } = standIn();
    const [S, B, Nq, Hq, D] = [3, 1, 2, 2, 8];
    const outP = dev.alloc(S * B * Nq * Hq * D, 'float32');
    const lseP = dev.alloc(S * B * Hq * Nq, 'float32');
    const out = contiguousView(dev.alloc(B * Nq * Hq * D, 'float16'), [B, Nq, Hq, D]);
    await rejects(
      () => dev.attentionCombine({ outPartial: outP, lsePartial: lseP, numSplits: 0, out }),
      'numSplits',
    );
    await rejects(
      () => dev.attentionCombine({ outPartial: outP, lsePartial: lseP, numSplits: 2, out }),
      'outPartial.length',
    );
    await rejects(
      () =>
        dev.attentionCombine({
          outPartial: dev.alloc(S * B * Nq * Hq * D, 'bfloat16'),
          lsePartial: lseP,
          numSplits: S,
          out,
        }),
      'outPartial dtype',
    );
    expect(calls.filter((c) => c.fn === 'attentionCombine')).toEqual([]);
    await dev.attentionCombine({ outPartial: outP, lsePartial: lseP, numSplits: S, out });
    const a = calls.find((c) => c.fn === 'attentionCombine')!.args[1] as Record<string, unknown>;
    expect(a).toMatchObject({
      dtype: 1,
      numSplits: 3,
      batch: 1,
      seqlenQ: 2,
      nheadsQ: 2,
      headDim: 8,
      lse: null,
    });
    expect(a.outStrides).toEqual([Nq * Hq * D, Hq * D, D]);
  });
});

describe('varlen on createCudaDevice(): argument checks and per-sequence launches (stand-in addon)', () => {
  const setup = () => {
    const s = standIn();
    const [Hq, D] = [2, 32];
    const totalQ = 7;
    const totalK = 9;
    const view = (n: number) => contiguousView(s.dev.alloc(n * Hq * D, 'bfloat16'), [1, n, Hq, D]);
    const args = {
      q: view(totalQ),
      k: view(totalK),
      v: view(totalK),
      out: view(totalQ),
      lse: s.dev.alloc(Hq * totalQ, 'float32'),
      cuSeqlensQ: Int32Array.from([0, 3, 3, 7]),
      cuSeqlensK: Int32Array.from([0, 4, 5, 9]),
      maxSeqlenQ: 4,
      maxSeqlenK: 4,
    };
    return { ...s, args, Hq, D, totalQ };
  };

  it('rejects bad offsets, lengths and dtypes before any launch', async () => {
    const { dev, args, kernels } = setup();
    await rejects(
      () => dev.varlenAttentionForward({ ...args, cuSeqlensQ: Int32Array.from([0, 3, 2, 7]) }),
      'cuSeqlensQ[2]',
    );
    await rejects(() => dev.varlenAttentionForward({ ...args, maxSeqlenK: 3 }), 'maxSeqlenK');
    await rejects(
      () =>
        dev.varlenAttentionForward({
          ...args,
          cuSeqlensK: Int32Array.from([0, 4, 9]),
          maxSeqlenK: 5,
        }),
      'cuSeqlensK.length',
    );
    await rejects(
      () => dev.varlenAttentionForward({ ...args, lse: dev.alloc(14, 'bfloat16') }),
      'lse dtype',
    );
    await rejects(
      () =>
        dev.varlenAttentionForward({
          ...args,
          v: { ...args.v, buffer: dev.alloc(9 * 2 * 32, 'float32') },
        }),
      'v.buffer dtype',
    );
    expect(kernels()).toEqual([]);
  });

  it('launches the flash forward once per sequence with a query, on row-offset views', async () => {
    const { dev, args, kernels, Hq, D, totalQ } = setup();
    await dev.varlenAttentionForward(args, { causal: true });
    const fwd = kernels()
      .filter((c) => c.fn === 'forward')
      .map((c) => c.args[1] as Record<string, unknown>);
    // sequences 0 and 2 (sequence 1 has no query)
    expect(fwd.map((f) => [f.seqlenQ, f.seqlenK])).toEqual([
      [3, 4],
      [4, 4],
    ]);
    const qBase = fwd[0]!.q as bigint;
    expect((fwd[1]!.q as bigint) - qBase).toBe(BigInt(3 * Hq * D * 2)); // row 3 of the packed q, bf16
    // each sequence's lse, (1, Hq, Lq_b), is copied into the packed (Hq, total_q) one head at a time
    const copies = kernels().filter((c) => c.fn === 'copyDevice');
    expect(copies).toHaveLength(2 * Hq);
    expect(copies.map((c) => c.args[3])).toEqual([3 * 4, 3 * 4, 4 * 4, 4 * 4]);
    const lseBase = copies[0]!.args[1] as bigint;
    expect((copies[1]!.args[1] as bigint) - lseBase).toBe(BigInt(totalQ * 4)); // head 1 of sequence 0
    expect((copies[2]!.args[1] as bigint) - lseBase).toBe(BigInt(3 * 4)); // head 0 of sequence 2
  });
});

describe('the inference entry points without a GPU (the addon built, no driver: CI)', () => {
  const { available, call } = addonWithoutGpu();
  const ok: NativeKvCache = {
    dtype: 2,
    batch: 1,
    seqlenQ: 1,
    nheadsQ: 4,
    nheadsK: 2,
    headDim: 64,
    seqlenNew: 0,
    pageSize: 16,
    blocksPerSeq: 2,
    numBlocks: 4,
    numSplits: 2,
    keysPerSplit: 10,
    softmaxScale: 0.125,
    windowLeft: -1,
    windowRight: 0,
    vectorLoads: true,
    q: 256n,
    qStrides: [256, 256, 64],
    k: 1024n,
    kStrides: [2048, 128, 64],
    v: 4096n,
    vStrides: [2048, 128, 64],
    out: 8192n,
    outStrides: [256, 256, 64],
    lse: null,
    cacheSeqlens: Int32Array.from([20]),
    table: Int32Array.from([3, 1]),
  };
  it.skipIf(!available)(
    'bad arguments are TypeErrors naming them, read before the device is touched; a good call fails with a CUDA error',
    () => {
      const dev = call('kvCacheAttention', ok) as { cudaError?: string };
      expect(dev).toBeInstanceOf(Error);
      expect(dev.cudaError).toMatch(/^cuda/);
      const bad: Array<[Partial<NativeKvCache>, RegExp]> = [
        [{ dtype: 7 }, /dtype must be 0/],
        [{ numSplits: 0 }, /numSplits must be between 1 and 128/],
        [{ headDim: 300 }, /headDim must be between 1 and 256/],
        [{ table: Int32Array.from([3, 4]) }, /table\[0, 1\] is not a page/],
        [{ table: Int32Array.from([3]) }, /table must have 2 elements/],
        [{ cacheSeqlens: Int32Array.from([33]) }, /exceeds the capacity/],
        [{ k: 1032n }, /vectorLoads needs 16-byte aligned/],
        [{ seqlenNew: 1 }, /kNew/],
        [{ kStrides: [2048, -1, 64] }, /kStrides must be non-negative/],
      ];
      for (const [change, msg] of bad) {
        const e = call('kvCacheAttention', { ...ok, ...change });
        expect(
          e,
          JSON.stringify(change, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v)),
        ).toBeInstanceOf(TypeError);
        expect((e as Error).message).toMatch(msg);
      }
      const comb = call('attentionCombine', {
        dtype: 0,
        numSplits: 129,
        batch: 1,
        seqlenQ: 1,
        nheadsQ: 1,
        headDim: 8,
        outPartial: 256n,
        lsePartial: 512n,
        out: 768n,
        outStrides: [8, 8, 8],
        lse: null,
      });
      expect(comb).toBeInstanceOf(TypeError);
      expect(call('copyBenchmark', 0n, 256n, 16, 0, 1)).toBeInstanceOf(TypeError);
    },
  );
});
