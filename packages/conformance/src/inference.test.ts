// The inference scenarios (kv-cache.ts, varlen.ts) on a correct host implementation (core's kernels on
// one thread) - the control - and on deliberately broken ones, each of which must fail the scenarios it
// touches with a message naming the seed and the scenario.
import { createReferenceOps, freshSeed } from '@flashattn/core';
import { describe, expect, it } from 'vitest';
import { BROKEN_KV_VARIANTS, runBrokenKvVariant } from './broken-kv-variants.js';
import { describeInferenceConformance } from './inference-vitest.js';
import {
  COMBINE_SCENARIOS,
  KV_CACHE_SCENARIOS,
  runCombineScenario,
  runKvCacheRejections,
  runKvCacheScenario,
  type InferenceResult,
} from './kv-cache.js';
import { VARLEN_SCENARIOS, runVarlenRejections, runVarlenScenario } from './varlen.js';
import { hostInferenceDevice, type InferenceFault } from './test-utils/host-inference.js';

describeInferenceConformance('host (core kernels, control)', () => hostInferenceDevice());
describeInferenceConformance('reference ops (float64 compute)', () => createReferenceOps());

const f32 = <T extends { dtype: string }>(xs: readonly T[]) =>
  xs.filter((s) => s.dtype === 'float32');

describe('a broken inference implementation fails the scenarios', () => {
  const seed = freshSeed();
  const expectFail = (rs: InferenceResult[], mention: string) => {
    expect(rs.length).toBeGreaterThan(0);
    for (const r of rs) {
      expect(r.pass, r.message).toBe(false);
      expect(r.message).toContain(`seed=${seed}`);
      expect(r.message).toContain(`scenario="${r.id}"`);
      expect(r.message).toContain(mention);
    }
  };
  const kvFaults: Array<
    [InferenceFault, (s: (typeof KV_CACHE_SCENARIOS)[number]) => boolean, string]
  > = [
    ['append-off-by-one', (s) => s.Nnew > 0, 'Cache'],
    ['drop-last-key', (s) => s.lens.some((l) => l + s.Nnew > 1), 'FAIL'],
    ['touch-spare-page', () => true, 'kCache'],
    [
      'split-ignores-lse',
      (s) => s.lens.some((l) => l + s.Nnew > 3) && s.opts.windowSize === undefined,
      'FAIL out',
    ],
  ];
  for (const [fault, applies, mention] of kvFaults) {
    it(`${fault} fails every KV-cache scenario it touches (seed=${seed})`, async () => {
      const dev = hostInferenceDevice(fault);
      const rs = await Promise.all(
        f32(KV_CACHE_SCENARIOS)
          .filter(applies)
          .map((s) => runKvCacheScenario(dev, s, seed)),
      );
      expectFail(rs, mention);
    });
  }
  it(`write-before-validate fails the rejection checks (seed=${seed})`, async () => {
    const r = await runKvCacheRejections(hostInferenceDevice('write-before-validate'), seed);
    expectFail([r], 'the rejected call wrote into the k cache');
  });
  it(`combine-unweighted fails the combine scenarios (seed=${seed})`, async () => {
    const dev = hostInferenceDevice('combine-unweighted');
    // out or lse: with few splits the unweighted out can land inside the rule by chance (seed 2488797773,
    // 'combine S2 B2 q3 h2 d16 k40': out err 2.9e-8 <= 8.5e-7, while lse err 4.9 > 6.2e-6 still failed)
    expectFail(
      await Promise.all(COMBINE_SCENARIOS.map((s) => runCombineScenario(dev, s, seed))),
      'FAIL combined',
    );
  });
  it(`varlen-lse-layout fails every varlen scenario with Hq > 1 (seed=${seed})`, async () => {
    const dev = hostInferenceDevice('varlen-lse-layout');
    expectFail(
      await Promise.all(
        f32(VARLEN_SCENARIOS).map((s) => runVarlenScenario(dev, s, seed, { backward: false })),
      ),
      'lse',
    );
  });
  it(`varlen-dk-not-overwritten fails the scenarios with a sequence without queries (seed=${seed})`, async () => {
    const dev = hostInferenceDevice('varlen-dk-not-overwritten');
    const rs = await Promise.all(
      f32(VARLEN_SCENARIOS)
        .filter((s) => s.lensQ.includes(0) && s.lensK[s.lensQ.indexOf(0)]! > 0)
        .map((s) => runVarlenScenario(dev, s, seed)),
    );
    expectFail(rs, 'has no query: dk and dv must be exactly 0');
  });
  it('the correct host passes the same rejections (control)', async () => {
    const dev = hostInferenceDevice();
    for (const r of [await runKvCacheRejections(dev, seed), await runVarlenRejections(dev, seed)])
      expect(r.pass, r.message).toBe(true);
  });
});

describe('BROKEN_KV_VARIANTS (the wrappers backends run on themselves) fail their scenario on the host', () => {
  const seed = freshSeed();
  for (const v of BROKEN_KV_VARIANTS) {
    it(`${v.what}: a wrong result, while the correct host passes the same scenario (seed=${seed})`, async () => {
      const dev = hostInferenceDevice();
      const r = await runBrokenKvVariant(v.make(dev), v, seed);
      expect(r.pass, r.message).toBe(false);
      expect(r.message, 'a wrong result, not an exception').not.toMatch(/threw/);
      const ok = await runBrokenKvVariant(dev, v, seed);
      expect(ok.pass, ok.message).toBe(true);
    });
  }
});
