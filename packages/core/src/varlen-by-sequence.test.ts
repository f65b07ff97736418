// The per-sequence varlen driver (varlen-by-sequence.ts) over the reference ops' strided attention, against the
// float64 varlen oracles (varlenReference64 / varlenReferenceBackward64) on fresh random inputs: GQA, causal,
// sequences with no query and with no key, packed q/k/v views. The reference ops compute each flash call with
// the oracle itself on float32 inputs and store into float32 buffers, and the driver adds no arithmetic, so every
// element must be the oracle's value rounded to float32: |got - want| <= 2^-24 |want| (round to nearest). A
// driver that moves the lse rows to the wrong columns must fail the same check.
import { describe, expect, it } from 'vitest';
import {
  contiguousView,
  packedQkvViews,
  type DeviceAttention,
  type StridedView,
} from './contracts/device-attention.js';
import { validateVarlenBackwardArgs, validateVarlenForwardArgs } from './contracts/kv-cache.js';
import { varlenReference64, varlenReferenceBackward64 } from './kv-cache-reference.js';
import { createReferenceOps, type ReferenceBuffer } from './ops-reference/index.js';
import type { AttentionOptions } from './options.js';
import { createRng, freshSeed } from './random.js';
import {
  varlenBackwardBySequence,
  varlenForwardBySequence,
  type VarlenBySequenceDeps,
  type VarlenLseRows,
} from './varlen-by-sequence.js';

const ops = createReferenceOps();
const CAPS = { maxHeadDim: 256 };

/** The generic lse mover: one view + copy per head (backends batch raw copies instead). */
function copyLse(
  lse: ReferenceBuffer,
  scratch: ReferenceBuffer,
  r: VarlenLseRows,
  toScratch: boolean,
): Promise<void> {
  for (let h = 0; h < r.Hq; h++) {
    const packed = ops.view(lse, h * r.totalQ + r.q0, r.len);
    const mine = ops.view(scratch, h * r.len, r.len);
    if (toScratch) ops.copy(mine, packed);
    else ops.copy(packed, mine);
  }
  return Promise.resolve();
}

/** Every (n, h) row of a (1, N, H, D) view of a reference buffer set to `value`. */
async function fillView(v: StridedView<ReferenceBuffer>, value: number): Promise<void> {
  const [, N, H, D] = v.shape;
  for (let n = 0; n < N; n++)
    for (let h = 0; h < H; h++)
      await ops.upload(
        ops.view(v.buffer, v.offset + n * v.strides[1] + h * v.strides[2], D),
        new Float32Array(D).fill(value),
      );
}

/**
 * The reference ops' strided attention, plus the empty cases the driver hands the device backends' strided
 * attention (which the reference ops reject): Nk = 0 gives out = 0 and lse = -inf, and a backward with Nq = 0 or
 * Nk = 0 gives zero gradients (CudaDevice's and the WebGPU programs' behaviour).
 */
const attention: DeviceAttention<ReferenceBuffer> = {
  attentionCapabilities: ops.attentionCapabilities,
  async attentionForward(a, o) {
    if (a.k.shape[1] > 0) return ops.attentionForward(a, o);
    await fillView(a.out, 0);
    await ops.upload(a.lse, new Float32Array(ops.lengthOf(a.lse)).fill(-Infinity));
  },
  async attentionBackward(a, o) {
    if (a.q.shape[1] > 0 && a.k.shape[1] > 0) return ops.attentionBackward(a, o);
    for (const g of [a.dq, a.dk, a.dv]) await fillView(g, 0);
  },
};

const deps: VarlenBySequenceDeps<ReferenceBuffer> = {
  attention,
  alloc: (n, dtype) => ops.alloc(n, dtype),
  free: (b) => ops.free(b),
  copyLse,
};

/** Worst |got - want| / |want| over finite wants; a non-finite want must be matched exactly. */
function worstRelative(got: ArrayLike<number>, want: ArrayLike<number>): number {
  expect(got.length).toBe(want.length);
  let worst = 0;
  for (let i = 0; i < want.length; i++) {
    const [g, w] = [got[i]!, want[i]!];
    if (!Number.isFinite(w)) {
      if (g !== w) return Infinity;
      continue;
    }
    if (w === 0) {
      if (g !== 0) return Infinity;
      continue;
    }
    worst = Math.max(worst, Math.abs(g - w) / Math.abs(w));
  }
  return worst;
}

const cu = (l: number[]) =>
  Int32Array.from([0, ...l.map((_, i) => l.slice(0, i + 1).reduce((x, y) => x + y, 0))]);

async function host(b: ReferenceBuffer): Promise<Float64Array> {
  return Float64Array.from(await ops.download(b), Number);
}

/** Fresh float32 random values in a new float32 reference buffer. */
async function randomBuffer(rng: ReturnType<typeof createRng>, n: number) {
  const data = Float32Array.from({ length: n }, () => rng.normal());
  const buf = ops.alloc(n, 'float32');
  await ops.upload(buf, data);
  return { buf, data };
}

const ulp = 2 ** -24;

for (const [name, lensQ, lensK, Hq, Hk, packed] of [
  [
    'GQA 4:2, a sequence without queries and one without keys',
    [3, 0, 1, 5, 2],
    [4, 2, 0, 5, 6],
    4,
    2,
    false,
  ],
  ['packed q/k/v (1, T, 3, H, D), equal lengths', [4, 1, 6], [4, 1, 6], 2, 2, true],
] as const) {
  describe(`varlen by one flash call per sequence: ${name}`, () => {
    const seed = freshSeed();
    for (const opts of [{ causal: true }, {}] as AttentionOptions[]) {
      it(`forward and backward = the float64 oracles rounded to float32 (causal ${opts.causal === true}, seed=${seed})`, async () => {
        const rng = createRng(seed);
        const D = 8;
        const [cuQ, cuK] = [cu([...lensQ]), cu([...lensK])];
        const tq = cuQ[cuQ.length - 1]!;
        const tk = cuK[cuK.length - 1]!;
        let q: StridedView<ReferenceBuffer>,
          k: StridedView<ReferenceBuffer>,
          v: StridedView<ReferenceBuffer>;
        let hq: StridedView<Float32Array>,
          hk: StridedView<Float32Array>,
          hv: StridedView<Float32Array>;
        if (packed) {
          const x = await randomBuffer(rng, tq * 3 * Hq * D);
          ({ q, k, v } = packedQkvViews(x.buf, 1, tq, Hq, D));
          ({ q: hq, k: hk, v: hv } = packedQkvViews(x.data, 1, tq, Hq, D));
        } else {
          const [xq, xk, xv] = [
            await randomBuffer(rng, tq * Hq * D),
            await randomBuffer(rng, tk * Hk * D),
            await randomBuffer(rng, tk * Hk * D),
          ];
          [q, k, v] = [
            contiguousView(xq.buf, [1, tq, Hq, D]),
            contiguousView(xk.buf, [1, tk, Hk, D]),
            contiguousView(xv.buf, [1, tk, Hk, D]),
          ];
          [hq, hk, hv] = [
            contiguousView(xq.data, [1, tq, Hq, D]),
            contiguousView(xk.data, [1, tk, Hk, D]),
            contiguousView(xv.data, [1, tk, Hk, D]),
          ];
        }
        const dout = await randomBuffer(rng, tq * Hq * D);
        const qShape = [1, tq, Hq, D] as const;
        const kShape = [1, tk, Hk, D] as const;
        const lens = {
          cuSeqlensQ: cuQ,
          cuSeqlensK: cuK,
          maxSeqlenQ: Math.max(...lensQ),
          maxSeqlenK: Math.max(...lensK),
        };
        const out = contiguousView(ops.alloc(tq * Hq * D, 'float32'), qShape);
        const lse = ops.alloc(Hq * tq, 'float32');
        await ops.upload(lse, new Float32Array(Hq * tq).fill(-Infinity)); // rows without a query keep -inf
        const fwd = { q, k, v, out, lse, ...lens };
        await varlenForwardBySequence(
          fwd,
          opts,
          validateVarlenForwardArgs(fwd, opts, ops.lengthOf, CAPS),
          deps,
        );

        const hostFwd = {
          q: hq,
          k: hk,
          v: hv,
          out: contiguousView(new Float64Array(tq * Hq * D), qShape),
          lse: new Float64Array(Hq * tq),
          ...lens,
        };
        const want = varlenReference64(hostFwd, opts);
        expect(worstRelative(await host(out.buffer), want.out)).toBeLessThanOrEqual(ulp);
        expect(worstRelative(await host(lse), want.lse)).toBeLessThanOrEqual(ulp);

        const grads = [tq * Hq * D, tk * Hk * D, tk * Hk * D].map((n) => ops.alloc(n, 'float32'));
        const [dq, dk, dv] = [
          contiguousView(grads[0]!, qShape),
          contiguousView(grads[1]!, kShape),
          contiguousView(grads[2]!, kShape),
        ];
        for (const g of grads) await ops.upload(g, new Float32Array(ops.lengthOf(g)).fill(NaN)); // all written
        const bwd = { ...fwd, dout: contiguousView(dout.buf, qShape), dq, dk, dv };
        await varlenBackwardBySequence(
          bwd,
          opts,
          validateVarlenBackwardArgs(bwd, opts, ops.lengthOf, CAPS),
          deps,
        );
        const wantG = varlenReferenceBackward64(
          {
            ...hostFwd,
            dout: contiguousView(dout.data, qShape),
            dq: contiguousView(new Float64Array(tq * Hq * D), qShape),
            dk: contiguousView(new Float64Array(tk * Hk * D), kShape),
            dv: contiguousView(new Float64Array(tk * Hk * D), kShape),
          },
          opts,
        );
        expect(worstRelative(await host(dq.buffer), wantG.dq)).toBeLessThanOrEqual(ulp);
        expect(worstRelative(await host(dk.buffer), wantG.dk)).toBeLessThanOrEqual(ulp);
        expect(worstRelative(await host(dv.buffer), wantG.dv)).toBeLessThanOrEqual(ulp);
      });
    }
  });
}

describe('varlen by one flash call per sequence: a broken lse mover fails the check', () => {
  it('lse rows written one column off are caught', async () => {
    const rng = createRng(freshSeed());
    const [lensQ, Hq, D] = [[3, 2, 4], 2, 4];
    const cuQ = cu(lensQ);
    const tq = cuQ[cuQ.length - 1]!;
    const x = await randomBuffer(rng, tq * 3 * Hq * D);
    const { q, k, v } = packedQkvViews(x.buf, 1, tq, Hq, D);
    const h = packedQkvViews(x.data, 1, tq, Hq, D);
    const lens = { cuSeqlensQ: cuQ, cuSeqlensK: cuQ, maxSeqlenQ: 4, maxSeqlenK: 4 };
    const out = contiguousView(ops.alloc(tq * Hq * D, 'float32'), [1, tq, Hq, D]);
    const lse = ops.alloc(Hq * tq, 'float32');
    const fwd = { q, k, v, out, lse, ...lens };
    const broken: VarlenBySequenceDeps<ReferenceBuffer> = {
      ...deps,
      copyLse: (l, s, r, to) => copyLse(l, s, { ...r, q0: Math.max(r.q0 - 1, 0) }, to),
    };
    await varlenForwardBySequence(
      fwd,
      {},
      validateVarlenForwardArgs(fwd, {}, ops.lengthOf, CAPS),
      broken,
    );
    const want = varlenReference64(
      {
        ...h,
        out: contiguousView(new Float64Array(tq * Hq * D), [1, tq, Hq, D]),
        lse: new Float64Array(Hq * tq),
        ...lens,
      },
      {},
    );
    expect(worstRelative(await host(out.buffer), want.out)).toBeLessThanOrEqual(ulp);
    expect(worstRelative(await host(lse), want.lse)).toBeGreaterThan(ulp);
  });
});
