// The inference conformance suite must catch a wrong KV-cache backend (GPU only; skips with the reason without
// one): @flashattn/conformance's deliberately broken wrappers (BROKEN_KV_VARIANTS: the append one row early, the
// sliding window dropped, attentionCombine ignoring the splits' lse) around createCudaDevice() fail their scenario
// with a wrong result (not an exception), while the real device passes the same scenario and seed. The decode
// kernel's fused split merge is judged by the suite's split scenarios (split3-paged, split-more-than-keys,
// split-heuristic-long). The device runner (apps/bench/src/cuda/decode-run.ts) runs the same variants on the GPU
// machine.
import { BROKEN_KV_VARIANTS, runBrokenKvVariant } from '@flashattn/conformance';
import { afterAll, describe, expect, it } from 'vitest';
import { cudaUnavailableReason } from './availability.js';
import { createCudaDevice, type CudaDevice } from './device.js';

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
      const r = await runBrokenKvVariant(v.make(get()), v, 1);
      expect(r.pass, r.message).toBe(false);
      expect(r.message, 'a wrong result, not an exception').not.toMatch(/threw/);
      const ok = await runBrokenKvVariant(get(), v, 1);
      expect(ok.pass, ok.message).toBe(true);
    });
  }
});
