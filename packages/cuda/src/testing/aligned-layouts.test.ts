// The aligned test layouts on core's float64 reference ops (a DeviceMemory + DeviceAttention that runs on the
// CPU): checks the adapter itself - packing, views at offsets, the NaN padding check, gathering - everywhere, so a
// failure on the GPU is the kernels', not the harness's. The reference ops hold float32 / float64 only: the
// 16-bit cases are reported unsupported.
import { createReferenceOps } from '@flashattn/core';
import { runConformance } from '@flashattn/conformance';
import { describe, expect, it } from 'vitest';
import { ALIGNED_LAYOUTS, alignedDeviceBackend } from './aligned-layouts.js';

describe('aligned device layouts (on the reference ops)', () => {
  for (const layout of ALIGNED_LAYOUTS) {
    it(`${layout}: the ci matrix passes in float32 and every padding element stays NaN`, async () => {
      const ops = createReferenceOps();
      const report = await runConformance(alignedDeviceBackend(ops, layout), {
        matrix: 'ci',
        seed: 11,
      });
      const ran = report.results.filter((r) => r.status !== 'skip');
      expect(ran.length).toBeGreaterThan(3);
      expect(
        report.failed,
        report.results
          .filter((r) => !r.pass)
          .map((r) => r.case.id)
          .join(', '),
      ).toBe(0);
      await ops.dispose();
    }, 300_000);
  }

  it('a device that ignores the view offset fails the padding check', async () => {
    const ops = createReferenceOps();
    const shifted = {
      ...ops,
      name: 'offset-ignoring',
      attentionForward: (
        a: Parameters<typeof ops.attentionForward>[0],
        o?: Parameters<typeof ops.attentionForward>[1],
      ) => ops.attentionForward({ ...a, out: { ...a.out, offset: 0 } }, o),
    };
    const report = await runConformance(alignedDeviceBackend(shifted, 'padded8'), {
      matrix: 'smoke',
      seed: 3,
      backward: false,
    });
    expect(report.failed).toBeGreaterThan(0);
    await ops.dispose();
  });
});
