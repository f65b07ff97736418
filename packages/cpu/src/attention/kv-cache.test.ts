// The CPU inference attention (kv-cache.ts): the inference conformance scenarios (KV cache, split-KV,
// combine, varlen, rejections) on 1 and 2 threads, plus the properties the threads must keep: split-KV
// on worker threads returns the same bits as on one thread, and the float64 buffers run the exact twin
// (checked against core's float64 oracle to 1e-12).
import { describeInferenceConformance } from '@flashattn/conformance/vitest';
import {
  contiguousView,
  createRng,
  freshSeed,
  kvCacheReference64,
  type KvCacheAttentionArgs,
} from '@flashattn/core';
import { afterAll, describe, expect, it } from 'vitest';
import { CpuOps } from '../ops/cpu-ops.js';
import type { CpuBuffer } from '../ops/buffers.js';

describeInferenceConformance('cpu (1 thread)', () => new CpuOps({ threads: 1 }));
describeInferenceConformance('cpu (2 threads)', () => new CpuOps({ threads: 2 }));

describe('split-KV on worker threads', () => {
  const one = new CpuOps({ threads: 1 });
  const three = new CpuOps({ threads: 3 });
  afterAll(async () => {
    await one.dispose();
    await three.dispose();
  });
  const seed = freshSeed();

  /** A paged decode problem on `ops`, in float32 or float64 buffers. */
  async function problem(ops: CpuOps, dtype: 'float32' | 'float64') {
    const rng = createRng(seed);
    const [B, Hq, Hk, D, ps] = [3, 4, 2, 16, 8];
    const lens = [1, 90, 257];
    const maxBlocks = Math.ceil((257 + 1) / ps);
    const numBlocks = B * maxBlocks;
    const fill = async (n: number) => {
      const b = ops.alloc(n, dtype);
      await ops.upload(
        b,
        Float64Array.from({ length: n }, () => Math.fround(rng.normal())),
      );
      return b;
    };
    const blockTable = Int32Array.from({ length: B * maxBlocks }, (_, i) => (i * 7) % numBlocks);
    const args: KvCacheAttentionArgs<CpuBuffer> = {
      q: contiguousView(await fill(B * Hq * D), [B, 1, Hq, D]),
      kCache: contiguousView(await fill(numBlocks * ps * Hk * D), [numBlocks, ps, Hk, D]),
      vCache: contiguousView(await fill(numBlocks * ps * Hk * D), [numBlocks, ps, Hk, D]),
      kNew: contiguousView(await fill(B * Hk * D), [B, 1, Hk, D]),
      vNew: contiguousView(await fill(B * Hk * D), [B, 1, Hk, D]),
      cacheSeqlens: Int32Array.from(lens),
      blockTable,
      out: contiguousView(ops.alloc(B * Hq * D, dtype), [B, 1, Hq, D]),
      lse: ops.alloc(B * Hq, dtype),
    };
    return args;
  }

  it(`returns the same bits on 1 and 3 threads, for forced and heuristic splits (seed=${seed})`, async () => {
    for (const numSplits of [1, 5, 0]) {
      const a1 = await problem(one, 'float32');
      const a3 = await problem(three, 'float32');
      await one.attentionWithKvCache(a1, { causal: true, numSplits });
      await three.attentionWithKvCache(a3, { causal: true, numSplits });
      expect(Array.from(a3.out.buffer)).toEqual(Array.from(a1.out.buffer));
      expect(Array.from(a3.lse!)).toEqual(Array.from(a1.lse!));
      expect(Array.from(a3.kCache.buffer)).toEqual(Array.from(a1.kCache.buffer));
    }
  });

  it(`a uniform prefill in a contiguous cache runs on the ops' flash forward; decoding and ragged lengths on the decode kernel (seed=${seed})`, async () => {
    const ops = new CpuOps({ threads: 2 });
    const [B, Hq, D, L] = [2, 2, 8, 40];
    const buf = (n: number) => ops.alloc(n, 'float32');
    const args = (Nq: number, lens: number[]): KvCacheAttentionArgs<CpuBuffer> => ({
      q: contiguousView(buf(B * Nq * Hq * D), [B, Nq, Hq, D]),
      kCache: contiguousView(buf(B * L * Hq * D), [B, L, Hq, D]),
      vCache: contiguousView(buf(B * L * Hq * D), [B, L, Hq, D]),
      cacheSeqlens: Int32Array.from(lens),
      out: contiguousView(buf(B * Nq * Hq * D), [B, Nq, Hq, D]),
    });
    await ops.attentionWithKvCache(args(16, [20, 21]), { causal: true });
    await ops.attentionWithKvCache(args(1, [20, 20]), { causal: true });
    expect(ops.attentionPath).toBeNull(); // neither ran the strided attention
    await ops.attentionWithKvCache(args(16, [20, 20]), { causal: true });
    expect(ops.attentionPath).not.toBeNull();
    await ops.dispose();
  });

  it(`float64 buffers: split-KV on workers matches the float64 oracle to 1e-12 (seed=${seed})`, async () => {
    const a = await problem(three, 'float64');
    const host = {
      ...a,
      q: { ...a.q, buffer: a.q.buffer.slice() as Float64Array },
      kCache: { ...a.kCache, buffer: a.kCache.buffer.slice() as Float64Array },
      vCache: { ...a.vCache, buffer: a.vCache.buffer.slice() as Float64Array },
      kNew: { ...a.kNew!, buffer: a.kNew!.buffer.slice() as Float64Array },
      vNew: { ...a.vNew!, buffer: a.vNew!.buffer.slice() as Float64Array },
      out: { ...a.out, buffer: new Float64Array(a.out.buffer.length) },
      lse: undefined,
    };
    const ref = kvCacheReference64(host, { causal: true });
    await three.attentionWithKvCache(a, { causal: true, numSplits: 4 });
    let err = 0;
    a.out.buffer.forEach((x, i) => (err = Math.max(err, Math.abs(x - ref.out[i]!))));
    a.lse!.forEach((x, i) => (err = Math.max(err, Math.abs(x - ref.lse[i]!))));
    expect(err).toBeLessThan(1e-12);
    expect(Array.from(a.kCache.buffer)).toEqual(Array.from(ref.kCache));
  });
});
