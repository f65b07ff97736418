// The inference conformance suite must catch a wrong KV-cache backend (GPU only; skips with the reason without
// one): deliberately broken wrappers of createCudaDevice() - the append one row early, the sliding window
// dropped, attentionCombine (combine_by_lse.cu) ignoring the splits' lse - fail their scenario with a wrong
// result (not an exception), while the real device passes the same scenario and seed. The decode kernel's fused
// split merge is judged by the suite's split scenarios (split3-paged, split-more-than-keys, split-heuristic-long).
import {
  COMBINE_SCENARIOS,
  KV_CACHE_SCENARIOS,
  runCombineScenario,
  runKvCacheScenario,
  type KvCacheDevice,
} from '@flashattn/conformance';
import { afterAll, describe, expect, it } from 'vitest';
import { cudaUnavailableReason } from './availability.js';
import type { CudaBuffer } from './cuda-buffer.js';
import { createCudaDevice, type CudaDevice } from './device.js';

const reason = cudaUnavailableReason();
if (reason)
  console.warn(
    `@flashattn/cuda inference broken-variant tests skipped: CUDA unavailable: ${reason}`,
  );

/** `d` with some methods replaced; every other member bound to `d` (its private fields need `this === d`). */
function override(
  d: CudaDevice,
  methods: Partial<KvCacheDevice<CudaBuffer>>,
): KvCacheDevice<CudaBuffer> {
  return new Proxy(d, {
    get(target, key) {
      if (key in methods) return (methods as Record<PropertyKey, unknown>)[key];
      const v: unknown = Reflect.get(target, key, target);
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  }) as unknown as KvCacheDevice<CudaBuffer>;
}

describe.skipIf(!!reason)('broken KV-cache variants fail the inference suite (GPU)', () => {
  let dev: CudaDevice | undefined;
  const get = () => (dev ??= createCudaDevice());
  afterAll(async () => {
    await dev?.dispose();
  });
  const scenario = (name: string) => KV_CACHE_SCENARIOS.find((s) => s.id.includes(name))!;
  const broken: Array<[string, string, (d: CudaDevice) => KvCacheDevice<CudaBuffer>]> = [
    [
      'append one row early',
      'decode-append',
      (d) =>
        override(d, {
          attentionWithKvCache: (a, o) =>
            d.attentionWithKvCache(
              { ...a, cacheSeqlens: a.cacheSeqlens.map((x) => Math.max(0, x - 1)) },
              o,
            ),
        }),
    ],
    [
      'window dropped',
      'decode-window',
      (d) =>
        override(d, {
          attentionWithKvCache: (a, o) => {
            const { windowSize: _dropped, ...rest } = o ?? {};
            return d.attentionWithKvCache(a, rest);
          },
        }),
    ],
  ];
  for (const [what, name, make] of broken) {
    it(`broken variant fails the suite: ${what}`, async () => {
      const r = await runKvCacheScenario(make(get()), scenario(name), 1);
      expect(r.pass, r.message).toBe(false);
      expect(r.message, 'a wrong result, not an exception').not.toMatch(/threw/);
      const ok = await runKvCacheScenario(get(), scenario(name), 1);
      expect(ok.pass, ok.message).toBe(true);
    });
  }

  it('broken variant fails the suite: combine ignoring the split lse', async () => {
    const d = get();
    const bad = override(d, {
      attentionCombine: async (a) => {
        // zero lse partials: every split weighs the same
        const zeros = d.alloc(d.lengthOf(a.lsePartial), 'float32');
        await d.zero(zeros);
        try {
          await d.attentionCombine({ ...a, lsePartial: zeros });
        } finally {
          d.free(zeros);
        }
      },
    });
    const r = await runCombineScenario(bad, COMBINE_SCENARIOS[0]!, 1);
    expect(r.pass, r.message).toBe(false);
    const ok = await runCombineScenario(d, COMBINE_SCENARIOS[0]!, 1);
    expect(ok.pass, ok.message).toBe(true);
  });
});
