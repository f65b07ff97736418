/**
 * WebGPU-specific checks of the KV-cache path beside the conformance suite
 * (inference.conformance.test.ts):
 *   - rejections that only this backend makes (a cache dtype unlike q's, k_new inside a cache's
 *     GPUBuffer, a foreign buffer handle) and core's (a negative numSplits) are AttentionInputErrors
 *     naming the argument, and the rejected call leaves both caches and out untouched;
 *   - conformance's deliberately broken variants of this backend (BROKEN_KV_VARIANTS: the append
 *     written one row early, the window option dropped, the combine's lse ignored) fail the suite's
 *     scenarios, so the suite can see these faults here.
 */
import { AttentionInputError, contiguousView, type KvCacheAttentionArgs } from '@flashattn/core';
import { BROKEN_KV_VARIANTS, runBrokenKvVariant } from '@flashattn/conformance';
import { afterAll, describe, expect, it } from 'vitest';
import { createWebGPUBackend, type WebGPUAttentionBackend, type WebGPUBuffer } from '../index.js';
import { defaultToSwiftShader, probeAdapter } from '../test-utils/env.js';

defaultToSwiftShader();
const unavailable = await probeAdapter();
const why = unavailable !== undefined ? `no WebGPU adapter: ${unavailable}` : undefined;
if (why) console.warn(`kv-cache.test.ts skipped: ${why}`);

describe.skipIf(why !== undefined)('webgpu kv cache: rejections and broken variants', () => {
  let be: WebGPUAttentionBackend | undefined;
  const get = async () => (be ??= await createWebGPUBackend());
  afterAll(() => be?.dispose());

  it('a rejected call is a typed error naming the argument and writes nothing', async () => {
    const dev = await get();
    const [B, Hq, Hk, D, ps] = [2, 4, 2, 8, 4];
    const pages = 6;
    const cacheShape = [pages, ps, Hk, D] as const; // (num_blocks, page_size, Hk, D)
    const n = pages * ps * Hk * D;
    const up = async (len: number, seed: number, dtype: 'float32' | 'float16' = 'float32') => {
      const b = dev.alloc(len, dtype);
      await dev.upload(
        b,
        Float32Array.from({ length: len }, (_, i) => Math.sin(seed * 7919 + i)),
      );
      return b;
    };
    const kc = await up(n, 1);
    const vc = await up(n, 2);
    const q = await up(B * Hq * D, 3); // (B, 1, Hq, D)
    const kn = await up(B * Hk * D, 4); // (B, 1, Hk, D)
    const vn = await up(B * Hk * D, 5);
    const kn16 = await up(B * Hk * D, 6, 'float16');
    const out = await up(B * Hq * D, 7); // (B, 1, Hq, D)
    const good: KvCacheAttentionArgs<WebGPUBuffer> = {
      q: contiguousView(q, [B, 1, Hq, D]),
      kCache: contiguousView(kc, cacheShape),
      vCache: contiguousView(vc, cacheShape),
      cacheSeqlens: Int32Array.from([5, 2]),
      kNew: contiguousView(kn, [B, 1, Hk, D]),
      vNew: contiguousView(vn, [B, 1, Hk, D]),
      blockTable: Int32Array.from([3, 0, 5, 1, -1, -1]), // (B, 3)
      out: contiguousView(out, [B, 1, Hq, D]),
    };
    const cases: Array<[string, KvCacheAttentionArgs<WebGPUBuffer>, object, string]> = [
      [
        'k_new float16, cache float32',
        { ...good, kNew: contiguousView(kn16, [B, 1, Hk, D]) },
        {},
        'kNew.buffer.dtype',
      ],
      [
        'k_new inside the k cache buffer',
        { ...good, kNew: contiguousView(dev.view(kc, 0, B * Hk * D), [B, 1, Hk, D]) },
        {},
        'kNew.buffer',
      ],
      [
        'a foreign buffer handle',
        { ...good, q: { ...good.q, buffer: new Float32Array(64) as unknown as WebGPUBuffer } },
        {},
        'q.buffer',
      ],
      ['negative numSplits', good, { numSplits: -1 }, 'opts.numSplits'],
    ];
    const snapshot = async () => [
      await dev.download(kc),
      await dev.download(vc),
      await dev.download(out),
    ];
    const before = await snapshot();
    for (const [what, args, opts, arg] of cases) {
      let threw: unknown;
      try {
        await dev.attentionWithKvCache(args, opts);
      } catch (e) {
        threw = e;
      }
      expect(threw, what).toBeInstanceOf(AttentionInputError);
      expect((threw as AttentionInputError).argument, what).toBe(arg);
      const after = await snapshot();
      for (let i = 0; i < 3; i++)
        expect(Array.from(after[i]!), `${what}: buffer ${i}`).toEqual(Array.from(before[i]!));
    }
    // and the same call, valid, does write (the checks above are not vacuous)
    await dev.attentionWithKvCache(good, { causal: true });
    const after = await snapshot();
    expect(Array.from(after[0]!)).not.toEqual(Array.from(before[0]!));
    expect(Array.from(after[2]!)).not.toEqual(Array.from(before[2]!));
  });

  // conformance's BROKEN_KV_VARIANTS on this backend: each fails its scenario with a wrong result, while the
  // real backend passes the same scenario and seed
  for (const v of BROKEN_KV_VARIANTS) {
    it(`broken variant fails the suite: ${v.what}`, async () => {
      const r = await runBrokenKvVariant(v.make(await get()), v, 1);
      expect(r.pass, r.message).toBe(false);
      expect(r.message, 'a wrong result, not an exception').not.toMatch(/threw/);
      const ok = await runBrokenKvVariant(await get(), v, 1);
      expect(ok.pass, ok.message).toBe(true);
    });
  }
});
