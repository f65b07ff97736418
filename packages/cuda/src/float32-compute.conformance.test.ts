// float32 computed in float32 (float32ComputeDType 'float32': the float32 FMA kernels, native/kernels/*_f32.cu;
// issue #10's "fp32 mode for checks") under the conformance suite: its float32 cases, forward and backward, against
// the float64 oracle with float32's tolerance (capabilities.computeDType('float32') is 'float32'), on the host
// backend and on createCudaDevice()'s strided views (conformance's contiguous, odd-padded and packed layouts, all
// read and written in place by the float32 kernels; a head dim without a kernel, 80, goes through the zero-padded
// copy). A deliberately broken float32 kernel (testFault 'drop-last-key-block') must fail the same cases. Skips
// with the reason where there is no GPU (CI); on the GPU machine, apps/bench/src/cuda/device.sh f32 runs the full
// matrix through the bundled runner.
import { deviceAttentionBackend, runConformance } from '@flashattn/conformance';
import {
  describeConformance,
  describeDeviceAttentionConformance,
} from '@flashattn/conformance/vitest';
import { describe, expect, it } from 'vitest';
import { cudaUnavailableReason } from './availability.js';
import { createCudaBackend } from './backend.js';
import { createCudaDevice } from './device.js';

const reason = cudaUnavailableReason();
const skip = reason ? `CUDA unavailable: ${reason}` : undefined;
if (skip) console.warn(`@flashattn/cuda float32-compute conformance skipped: ${skip}`);

describeConformance(
  'cuda f32-compute',
  () => createCudaBackend({ float32ComputeDType: 'float32' }),
  {
    matrix: 'ci',
    filter: 'f32',
    skip,
  },
);
describeDeviceAttentionConformance(
  'cuda-device f32-compute',
  () => createCudaDevice({ float32ComputeDType: 'float32' }),
  { matrix: 'ci', filter: 'f32', skip },
);

describe('a broken float32 kernel fails the suite', () => {
  it.skipIf(skip !== undefined)(
    "testFault 'drop-last-key-block' (packed layout) fails float32 cases the correct kernel passes",
    async () => {
      const run = async (broken: boolean) => {
        const dev = createCudaDevice({
          float32ComputeDType: 'float32',
          ...(broken ? { testFault: 'drop-last-key-block' as const } : {}),
        });
        try {
          const backend = deviceAttentionBackend(dev, { layout: 'packed' });
          return await runConformance(backend, { matrix: 'ci', filter: 'f32 ', seed: 20261207 });
        } finally {
          await dev.dispose();
        }
      };
      const good = await run(false);
      const bad = await run(true);
      expect(good.failed).toBe(0);
      expect(good.passed).toBeGreaterThan(0);
      expect(bad.failed).toBeGreaterThan(0);
    },
    600_000,
  );
});
