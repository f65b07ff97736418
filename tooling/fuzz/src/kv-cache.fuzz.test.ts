// Fuzzes the cache arguments of CpuOps.attentionWithKvCache (core's DeviceKvCacheAttention contract):
// random contiguous or paged caches with random lengths, new keys and split counts.
//  - valid: the appended caches equal the float64 oracle's bit for bit (an append is a copy) and out matches
//    kvCacheReference64 within float64 rounding (bound below), on float64 buffers;
//  - one broken cache argument (cacheSeqlens, blockTable, cacheBatchIdx, kNew/vNew, lse, numSplits): an
//    AttentionInputError naming it, and nothing written (caches and out unchanged).
import fc from 'fast-check';
import {
  AttentionInputError,
  contiguousView,
  createRng,
  kvCacheReference64,
  type KvCacheAttentionArgs,
  type KvCacheOptions,
} from '@flashattn/core';
import { CpuOps } from '@flashattn/cpu';
import { afterAll, describe, expect, it } from 'vitest';
import { SEED, expectInputError, fuzz } from './fuzz.js';

const ops = new CpuOps({ threads: 2 });
afterAll(() => ops.dispose());
type Buf = Float64Array;
const U64 = 2 ** -53;

interface Spec {
  B: number;
  Hk: number;
  group: number;
  D: number;
  Nq: number;
  Nnew: number;
  paged: boolean;
  pageSize: number;
  lens: number[]; // cached keys per sequence before the append
  causal: boolean;
  numSplits: number;
  seed: number;
}

const spec: fc.Arbitrary<Spec> = fc
  .record({
    B: fc.integer({ min: 1, max: 3 }),
    Hk: fc.integer({ min: 1, max: 2 }),
    group: fc.integer({ min: 1, max: 2 }),
    D: fc.integer({ min: 1, max: 12 }),
    Nq: fc.integer({ min: 1, max: 4 }),
    Nnew: fc.integer({ min: 0, max: 3 }),
    paged: fc.boolean(),
    pageSize: fc.constantFrom(1, 2, 4, 8),
    causal: fc.boolean(),
    numSplits: fc.constantFrom(0, 1, 2, 3, 7),
    seed: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
  })
  .chain((s) =>
    fc
      .array(fc.integer({ min: 0, max: 20 }), { minLength: s.B, maxLength: s.B })
      .map((lens) => ({ ...s, lens })),
  );

function build(s: Spec): {
  args: KvCacheAttentionArgs<Buf>;
  opts: KvCacheOptions;
  capacity: number;
  pages: number;
} {
  const rng = createRng(s.seed);
  const Hq = s.Hk * s.group;
  const capacity = Math.max(...s.lens.map((l) => l + s.Nnew), 1);
  const fill = (n: number): Buf => {
    const b = ops.alloc(n, 'float64') as Buf;
    // float32 values in float64 buffers: the oracle gathers the cache into float32 tensors, exactly then
    for (let i = 0; i < n; i++) b[i] = Math.fround(rng.normal());
    return b;
  };
  let kCache, vCache, blockTable: Int32Array | undefined, pages: number;
  if (s.paged) {
    const perSeq = Math.ceil(capacity / s.pageSize);
    pages = s.B * perSeq + 1;
    kCache = contiguousView(fill(pages * s.pageSize * s.Hk * s.D), [pages, s.pageSize, s.Hk, s.D]);
    vCache = contiguousView(fill(pages * s.pageSize * s.Hk * s.D), [pages, s.pageSize, s.Hk, s.D]);
    // a permutation of the pages, so logical and physical order differ
    blockTable = Int32Array.from({ length: s.B * perSeq }, (_, i) => (i * 5 + 1) % pages);
    const seen = new Set(blockTable);
    if (seen.size !== blockTable.length)
      blockTable = Int32Array.from({ length: s.B * perSeq }, (_, i) => i + 1);
  } else {
    pages = s.B;
    kCache = contiguousView(fill(s.B * capacity * s.Hk * s.D), [s.B, capacity, s.Hk, s.D]);
    vCache = contiguousView(fill(s.B * capacity * s.Hk * s.D), [s.B, capacity, s.Hk, s.D]);
  }
  const args: KvCacheAttentionArgs<Buf> = {
    q: contiguousView(fill(s.B * s.Nq * Hq * s.D), [s.B, s.Nq, Hq, s.D]),
    kCache,
    vCache,
    cacheSeqlens: Int32Array.from(s.lens),
    ...(s.Nnew > 0
      ? {
          kNew: contiguousView(fill(s.B * s.Nnew * s.Hk * s.D), [s.B, s.Nnew, s.Hk, s.D]),
          vNew: contiguousView(fill(s.B * s.Nnew * s.Hk * s.D), [s.B, s.Nnew, s.Hk, s.D]),
        }
      : {}),
    ...(blockTable ? { blockTable } : {}),
    out: contiguousView(ops.alloc(s.B * s.Nq * Hq * s.D, 'float64') as Buf, [s.B, s.Nq, Hq, s.D]),
    lse: ops.alloc(s.B * Hq * s.Nq, 'float64') as Buf,
  };
  return { args, opts: { causal: s.causal, numSplits: s.numSplits }, capacity, pages };
}

const snapshot = (a: KvCacheAttentionArgs<Buf>): number[][] => [
  Array.from(a.kCache.buffer),
  Array.from(a.vCache.buffer),
  Array.from(a.out.buffer),
];

type Mutation = {
  names: string[];
  apply: (
    a: KvCacheAttentionArgs<Buf>,
    o: KvCacheOptions,
    s: Spec,
    cap: number,
    pages: number,
  ) => void;
};
const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.constantFrom<Mutation>(
    {
      names: ['cacheSeqlens'],
      apply: (a) =>
        void (a.cacheSeqlens = Float32Array.from(a.cacheSeqlens) as unknown as Int32Array),
    },
    {
      names: ['cacheSeqlens'],
      apply: (a) => void (a.cacheSeqlens = Int32Array.from([...a.cacheSeqlens, 0])),
    },
    {
      names: ['cacheSeqlens'],
      apply: (a) => void (a.cacheSeqlens[a.cacheSeqlens.length - 1] = -1),
    },
    // past the cache's capacity once the new keys are appended
    {
      names: ['cacheSeqlens'],
      apply: (a, _o, s, cap) =>
        void (a.cacheSeqlens[0] =
          (s.paged ? Math.ceil(cap / s.pageSize) * s.pageSize : cap) - s.Nnew + 1),
    },
    {
      names: ['lse'],
      apply: (a) => void (a.lse = ops.alloc((a.lse as Buf).length + 1, 'float64') as Buf),
    },
    { names: ['opts.numSplits'], apply: (_a, o) => void (o.numSplits = -1) },
    { names: ['opts.numSplits'], apply: (_a, o) => void (o.numSplits = 1.5) },
    {
      names: ['opts.causal'],
      apply: (_a, o) => void ((o as Record<string, unknown>).causal = 'yes'),
    },
  ),
  // paged only
  fc.constantFrom<Mutation>(
    // only entries a sequence uses are read (and checked): break sequence 0's first block when it has keys
    {
      names: ['blockTable'],
      apply: (a, _o, s, _c, pages) =>
        void (a.blockTable && s.lens[0]! + s.Nnew > 0 && (a.blockTable[0] = pages)),
    },
    {
      names: ['blockTable'],
      apply: (a, _o, s) => void (a.blockTable && s.lens[0]! + s.Nnew > 0 && (a.blockTable[0] = -1)),
    },
    // one entry short: not a multiple of B, or (B = 1) fewer blocks per sequence, which the lengths outgrow
    {
      names: ['blockTable', 'cacheSeqlens'],
      apply: (a) => void (a.blockTable && (a.blockTable = a.blockTable.subarray(1))),
    },
    {
      names: ['cacheBatchIdx'],
      apply: (a) =>
        void (a.blockTable && (a.cacheBatchIdx = new Int32Array(a.cacheSeqlens.length))),
    },
  ),
  // contiguous only
  fc.constantFrom<Mutation>(
    {
      names: ['cacheBatchIdx'],
      apply: (a) =>
        void (
          !a.blockTable &&
          (a.cacheBatchIdx = Int32Array.from(a.cacheSeqlens, () => a.kCache.shape[0]))
        ),
    },
    {
      names: ['cacheBatchIdx'],
      apply: (a) =>
        void (!a.blockTable && (a.cacheBatchIdx = new Int32Array(a.cacheSeqlens.length + 1))),
    },
  ),
  // new keys
  fc.constantFrom<Mutation>(
    { names: ['kNew', 'vNew'], apply: (a) => void (a.kNew && (a.vNew = undefined)) },
    {
      names: ['kNew'],
      apply: (a) =>
        void (
          a.kNew &&
          (a.kNew = contiguousView(
            ops.alloc(
              a.kNew.shape[0] * a.kNew.shape[1] * (a.kNew.shape[2] + 1) * a.kNew.shape[3],
              'float64',
            ) as Buf,
            [a.kNew.shape[0], a.kNew.shape[1], a.kNew.shape[2] + 1, a.kNew.shape[3]],
          ))
        ),
    },
  ),
);

describe(`KV-cache fuzz (seed ${SEED})`, () => {
  it('valid caches: appended keys equal the oracle bit for bit, out matches it within float64 rounding', async () => {
    const n = await fuzz('kv-cache valid', spec, 300, async (s) => {
      const { args, opts } = build(s);
      const ref = kvCacheReference64(args, opts); // before the call: it copies the caches and appends
      await ops.attentionWithKvCache(args, opts);
      expect(Array.from(args.kCache.buffer)).toEqual(Array.from(ref.kCache));
      expect(Array.from(args.vCache.buffer)).toEqual(Array.from(ref.vCache));
      // out = sum_j p_j v_j: the scores carry (D + 2) u64 sum_d |q_d k_d| (dot product and scale), so p_j a
      // relative error of twice that, plus Lk + 4 roundings of the sums and exp: a bound on |out - oracle|.
      const maxAbs = (b: ArrayLike<number>): number => {
        let m = 0;
        for (let i = 0; i < b.length; i++) m = Math.max(m, Math.abs(b[i]!));
        return m;
      };
      const vMax = Math.max(maxAbs(ref.vCache), 1e-300);
      const sAbs = (maxAbs(args.q.buffer) * maxAbs(ref.kCache) * s.D) / Math.sqrt(s.D); // >= scale sum_d |q_d k_d|
      const Lk = Math.max(...ref.seqlensK, 1);
      const bound = vMax * (2 * (s.D + 2) * U64 * sAbs + (Lk + 4) * U64);
      for (let i = 0; i < ref.out.length; i++) {
        const err = Math.abs(args.out.buffer[i]! - ref.out[i]!);
        if (!(err <= bound))
          throw new Error(
            `out[${i}]: ${args.out.buffer[i]} vs oracle ${ref.out[i]}, |err| ${err} > ${bound}`,
          );
      }
    });
    expect(n).toBeGreaterThan(0);
  });

  it('one broken cache argument: AttentionInputError naming it, and nothing written', async () => {
    const n = await fuzz('kv-cache invalid', fc.tuple(spec, mutation), 1500, async ([s, m]) => {
      const { args, opts, capacity, pages } = build(s);
      const before = snapshot(args);
      const orig = JSON.stringify({
        bt: args.blockTable && Array.from(args.blockTable),
        idx: args.cacheBatchIdx,
        kNew: args.kNew?.shape,
        vNew: !!args.vNew,
        lse: (args.lse as Buf).length,
        cs: Array.from(args.cacheSeqlens),
        cst: args.cacheSeqlens.constructor.name,
        o: opts,
      });
      m.apply(args, opts, s, capacity, pages);
      const now = JSON.stringify({
        bt: args.blockTable && Array.from(args.blockTable),
        idx: args.cacheBatchIdx,
        kNew: args.kNew?.shape,
        vNew: !!args.vNew,
        lse: (args.lse as Buf).length,
        cs: Array.from(args.cacheSeqlens),
        cst: args.cacheSeqlens.constructor.name,
        o: opts,
      });
      if (now === orig) return; // this mutation does not apply to this layout (e.g. a blockTable edit on a contiguous cache)
      await expectInputError(
        () => ops.attentionWithKvCache(args, opts),
        AttentionInputError,
        m.names,
        `${s.paged ? 'paged' : 'contiguous'} cache with ${m.names[0]} broken`,
      );
      const after = snapshot(args);
      if (JSON.stringify(after) !== JSON.stringify(before))
        throw new Error(`a rejected call wrote to the cache or out (${m.names[0]})`);
    });
    expect(n).toBeGreaterThan(0);
  });
});
