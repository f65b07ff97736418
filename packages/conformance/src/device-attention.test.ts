// The device adapter: the attention suite on core's reference ops through every layout, and a device
// whose kernel ignores the row stride, which must fail wherever the layout is not contiguous.
import {
  contiguousStrides,
  createReferenceOps,
  freshSeed,
  type DeviceAttentionForwardArgs,
  type ReferenceBuffer,
  type StridedView,
} from '@flashattn/core';
import { describe, expect, it } from 'vitest';
import { CASE_MATRICES } from './cases.js';
import {
  DEVICE_LAYOUTS,
  deviceAttentionBackend,
  type AttentionDevice,
} from './device-attention.js';
import { runConformance } from './run.js';
import { describeDeviceAttentionConformance } from './vitest.js';

// The reference ops sum P V and dS K over each row's visible keys only, so NaN stays exactly where
// exact arithmetic puts it: the strict variant of the NaN scenarios.
describeDeviceAttentionConformance('reference-ops', () => createReferenceOps(), {
  matrix: 'ci',
  nonFinite: 'exact',
});

/** Reads and writes every view as if it were contiguous: the classic "ignores the row stride" bug. */
function ignoresStrides(dev: AttentionDevice<ReferenceBuffer>): AttentionDevice<ReferenceBuffer> {
  const flat = (v: StridedView<ReferenceBuffer>): StridedView<ReferenceBuffer> => ({
    ...v,
    strides: contiguousStrides(v.shape),
  });
  const ops = createReferenceOps();
  return {
    ...ops,
    name: 'ignores-strides',
    attentionForward: (a: DeviceAttentionForwardArgs<ReferenceBuffer>, o) =>
      dev.attentionForward({ ...a, q: flat(a.q), k: flat(a.k), v: flat(a.v), out: flat(a.out) }, o),
  };
}

/** Writes dq one element past its view (an off-by-one in the last tile's bound). */
function writesPastView(
  dev: ReturnType<typeof createReferenceOps>,
): AttentionDevice<ReferenceBuffer> {
  return {
    ...dev,
    name: 'writes-past-view',
    async attentionBackward(a, o) {
      await dev.attentionBackward(a, o);
      const [B, N, H, D] = a.dq.shape;
      const last =
        a.dq.offset +
        (B - 1) * a.dq.strides[0] +
        (N - 1) * a.dq.strides[1] +
        (H - 1) * a.dq.strides[2] +
        D;
      if (last < dev.lengthOf(a.dq.buffer)) {
        const host = (await dev.download(a.dq.buffer)) as Float32Array;
        host[last] = 0;
        await dev.upload(a.dq.buffer, host);
      }
    },
  };
}

describe('the device adapter can fail', () => {
  // The reference ops store float32 only: the smoke cases it runs.
  const cases = CASE_MATRICES.smoke.filter((c) => c.dtype === 'float32');

  it('a kernel that ignores strides fails every case in the padded and packed layouts', async () => {
    const seed = freshSeed();
    for (const layout of ['padded', 'packed'] as const) {
      const backend = deviceAttentionBackend(ignoresStrides(createReferenceOps()), { layout });
      const report = await runConformance(backend, { cases, seed, backward: false });
      expect(report.failed, `seed ${seed} ${layout}`).toBe(cases.length);
      for (const r of report.results) expect(r.message).toContain(`seed=${seed}`);
    }
  });

  it('the same kernel passes contiguous buffers (the layout is what catches it)', async () => {
    const seed = freshSeed();
    const backend = deviceAttentionBackend(ignoresStrides(createReferenceOps()), {
      layout: 'contiguous',
    });
    const report = await runConformance(backend, { cases, seed, backward: false });
    expect(report.failed, report.results.map((r) => r.message).join('\n')).toBe(0);
  });

  it('a write outside an output view fails: into padding (named) or into a neighbouring view', async () => {
    const seed = freshSeed();
    for (const layout of DEVICE_LAYOUTS.filter((l) => l !== 'contiguous')) {
      const backend = deviceAttentionBackend(writesPastView(createReferenceOps()), { layout });
      const report = await runConformance(backend, { cases: cases.slice(0, 1), seed });
      expect(report.failed, `seed ${seed} ${layout}`).toBe(1);
      // padded: the element after dq is padding; packed: it is dk's first element of the next row.
      expect(report.results[0]!.message).toContain(
        layout === 'padded' ? 'lies outside every view' : 'FAIL dk',
      );
    }
  });

  it('rejects an unknown layout', () => {
    expect(() =>
      deviceAttentionBackend(createReferenceOps(), { layout: 'tiled' as never }),
    ).toThrow(/layout/);
  });
});
