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

  it('align: every offset and stride of the padded and packed layouts is a multiple of it, and the suite still judges', async () => {
    const seed = freshSeed();
    const seen: number[] = [];
    const inner = createReferenceOps();
    const recording = {
      ...inner,
      dtypes: inner.dtypes,
      attentionCapabilities: inner.attentionCapabilities,
      alloc: inner.alloc.bind(inner),
      view: inner.view.bind(inner),
      lengthOf: inner.lengthOf.bind(inner),
      dtypeOf: inner.dtypeOf.bind(inner),
      zero: inner.zero.bind(inner),
      upload: inner.upload.bind(inner),
      download: inner.download.bind(inner),
      copy: inner.copy.bind(inner),
      free: inner.free.bind(inner),
      attentionForward(
        a: Parameters<typeof inner.attentionForward>[0],
        o?: Parameters<typeof inner.attentionForward>[1],
      ) {
        // Views of head dims a multiple of 8 (the shapes an aligned kernel reads in place) must be aligned.
        if (a.q.shape[3] % 8 === 0)
          for (const v of [a.q, a.k, a.v, a.out])
            seen.push(v.offset, v.strides[0], v.strides[1], v.strides[2]);
        return inner.attentionForward(a, o);
      },
      attentionBackward: inner.attentionBackward.bind(inner),
    };
    for (const layout of ['padded', 'packed'] as const) {
      const report = await runConformance(deviceAttentionBackend(recording, { layout, align: 8 }), {
        cases,
        seed,
      });
      expect(report.failed, report.results.map((r) => r.message).join('\n')).toBe(0);
      const strided = deviceAttentionBackend(ignoresStrides(createReferenceOps()), {
        layout,
        align: 8,
      });
      expect(
        (await runConformance(strided, { cases, seed, backward: false })).failed,
        `seed ${seed}`,
      ).toBe(cases.length);
    }
    expect(seen.length).toBeGreaterThan(0);
    expect(
      seen.every((x) => x % 8 === 0),
      seen.join(','),
    ).toBe(true);
    expect(() => deviceAttentionBackend(inner, { align: 0 })).toThrow(
      /align must be a positive integer/,
    );
  });

  it('rejects an unknown layout', () => {
    expect(() =>
      deviceAttentionBackend(createReferenceOps(), { layout: 'tiled' as never }),
    ).toThrow(/layout/);
  });
});
