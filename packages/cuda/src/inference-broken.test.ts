// The inference conformance suite must catch a wrong KV-cache backend (GPU only; skips with the reason without
// one): the deliberately broken wrappers of createCudaDevice() in BROKEN_KV_VARIANTS (inference-testing.ts: the
// append one row early, the sliding window dropped, attentionCombine ignoring the splits' lse) fail their scenario
// with a wrong result (not an exception), while the real device passes the same scenario and seed. The decode
// kernel's fused split merge is judged by the suite's split scenarios (split3-paged, split-more-than-keys,
// split-heuristic-long). The device runner (apps/bench/src/cuda/decode-run.ts) runs the same variants on the GPU
// machine.
import {
  COMBINE_SCENARIOS,
  KV_CACHE_SCENARIOS,
  runCombineScenario,
  runKvCacheScenario,
} from '@flashattn/conformance';
import { afterAll, describe, expect, it } from 'vitest';
import { cudaUnavailableReason } from './availability.js';
import { createCudaDevice, type CudaDevice } from './device.js';
import { BROKEN_KV_VARIANTS } from './inference-testing.js';

const reason = cudaUnavailableReason();
if (reason)
  console.warn(
    `@flashattn/cuda inference broken-variant tests skipped: CUDA unavailable: ${reason}`,
  );

describe.skipIf(!!reason)('broken KV-cache variants fail the inference suite (GPU)', () => {
  let dev: CudaDevice | undefined;
  const get = () => (dev ??= createCudaDevice());
  afterAll(async () => {
    await dev?.dispose();
  });
  for (const v of BROKEN_KV_VARIANTS) {
    it(`broken variant fails the suite: ${v.what}`, async () => {
      const run = (d: CudaDevice) =>
        v.scenario === 'combine'
          ? runCombineScenario(d, COMBINE_SCENARIOS[0]!, 1)
          : runKvCacheScenario(
              d,
              KV_CACHE_SCENARIOS.find((s) => s.id.includes(v.scenario))!,
              1,
            );
      const r = await run(v.make(get()));
      expect(r.pass, r.message).toBe(false);
      expect(r.message, 'a wrong result, not an exception').not.toMatch(/threw/);
      const ok = await run(get());
      expect(ok.pass, ok.message).toBe(true);
    });
  }
});
