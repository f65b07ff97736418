/**
 * Deliberately wrong KV-cache backends the inference suite must fail, made from any correct one (a backend's own
 * tests and device runners show with them that the suite sees these faults on that backend): the append written
 * one row early, the sliding window dropped, and attentionCombine ignoring the splits' lse. Each names the
 * scenario that exposes it; `runBrokenKvVariant` runs it there. The wrappers delegate every other member to the
 * real device, bound to it (so class instances with private fields work).
 */
import type { AttentionCombineArgs, KvCacheAttentionArgs, KvCacheOptions } from '@flashattn/core';
import {
  COMBINE_SCENARIOS,
  KV_CACHE_SCENARIOS,
  runCombineScenario,
  runKvCacheScenario,
  type InferenceResult,
  type KvCacheDevice,
} from './kv-cache.js';

export interface BrokenKvVariant {
  what: string;
  /** The scenario that exposes it: a KV_CACHE_SCENARIOS id fragment, or 'combine' for COMBINE_SCENARIOS[0]. */
  scenario: string;
  make<Buf>(dev: KvCacheDevice<Buf>): KvCacheDevice<Buf>;
}

/** `d` with some members replaced; every other one read from `d`, methods bound to `d` (`this === d`). */
function override<Buf>(
  d: KvCacheDevice<Buf>,
  members: Partial<KvCacheDevice<Buf>>,
): KvCacheDevice<Buf> {
  return new Proxy(d, {
    get(target, key) {
      if (key in members) return members[key as keyof typeof members];
      const v: unknown = Reflect.get(target, key, target);
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

export const BROKEN_KV_VARIANTS: readonly BrokenKvVariant[] = [
  {
    what: 'append one row early',
    scenario: 'decode-append',
    make: <Buf>(d: KvCacheDevice<Buf>) =>
      override(d, {
        attentionWithKvCache: (a: KvCacheAttentionArgs<Buf>, o?: KvCacheOptions) =>
          d.attentionWithKvCache(
            { ...a, cacheSeqlens: a.cacheSeqlens.map((x) => Math.max(0, x - 1)) },
            o,
          ),
      }),
  },
  {
    what: 'window dropped',
    scenario: 'decode-window',
    make: <Buf>(d: KvCacheDevice<Buf>) =>
      override(d, {
        attentionWithKvCache: (a: KvCacheAttentionArgs<Buf>, o?: KvCacheOptions) => {
          const { windowSize: _dropped, ...rest } = o ?? {};
          return d.attentionWithKvCache(a, rest);
        },
      }),
  },
  {
    what: 'combine ignoring the split lse',
    scenario: 'combine',
    make: <Buf>(d: KvCacheDevice<Buf>) =>
      override(d, {
        attentionCombine: async (a: AttentionCombineArgs<Buf>) => {
          // zero lse partials: every split weighs the same
          const zeros = d.alloc(d.lengthOf(a.lsePartial), 'float32');
          await d.zero(zeros);
          try {
            await d.attentionCombine({ ...a, lsePartial: zeros });
          } finally {
            d.free(zeros);
          }
        },
      }),
  },
];

/** The scenario that exposes `v`, run on `dev` (the broken variant, or the real device as the control). */
export function runBrokenKvVariant<Buf>(
  dev: KvCacheDevice<Buf>,
  v: BrokenKvVariant,
  seed: number,
): Promise<InferenceResult> {
  return v.scenario === 'combine'
    ? runCombineScenario(dev, COMBINE_SCENARIOS[0]!, seed)
    : runKvCacheScenario(
        dev,
        KV_CACHE_SCENARIOS.find((s) => s.id.includes(v.scenario))!,
        seed,
      );
}
