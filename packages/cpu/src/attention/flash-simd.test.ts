// The wasm SIMD attention (flash-simd.ts, CpuOps({ native: false })): bitwise identical results for 1, 2 and 3 threads on fresh
// random inputs (exact resume depends on it), in both kernel variants; the SIMD path is the one taken;
// and the plain-SIMD variant against the float64 oracle through the conformance suite (the default
// variant, FMA where the runtime has relaxed SIMD, runs it in ops/cpu-ops.conformance.test.ts).
import { contiguousView, freshSeed, packedQkvViews, type StridedView } from '@flashattn/core';
import { describeDeviceAttentionConformance } from '@flashattn/conformance/vitest';
import { describe, expect, it } from 'vitest';
import type { CpuBuffer } from '../ops/buffers.js';
import { CpuOps } from '../ops/cpu-ops.js';
import { nativeAttentionInfo } from './flash-native.js';
import { hasRelaxedSimd } from './flash-simd.js';
import { threadCaseInputs, type ThreadCase } from './test-utils/thread-cases.js';

const seed = freshSeed();

// Lengths off the 64-row tiles, Nq != Nk, GQA, D not a multiple of 4, causal and a window.
const CASES: ThreadCase[] = [
  { name: 'packed causal', B: 2, Nq: 130, Nk: 130, Hq: 3, Hk: 3, D: 20, opts: { causal: true } },
  { name: 'gqa', B: 1, Nq: 70, Nk: 200, Hq: 4, Hk: 2, D: 18, opts: {} },
  { name: 'window', B: 1, Nq: 150, Nk: 97, Hq: 2, Hk: 1, D: 32, opts: { windowSize: [20, 5] } },
];

/** out, lse, dq, dk, dv of one case on one CpuOps, every input from `seed`. */
async function run(ops: CpuOps, c: ThreadCase, s: number): Promise<Float32Array[]> {
  const { q, k, v, out, outBuf, lse, rand, packedFloats } = threadCaseInputs(ops, c, s);
  const { B, Nq, Nk, Hq, Hk, D } = c;
  let dq: StridedView<CpuBuffer>, dk: StridedView<CpuBuffer>, dv: StridedView<CpuBuffer>;
  let grads: Float32Array[];
  if (packedFloats !== null) {
    // dq, dk, dv written into one packed (B, N, 3, H, D) buffer, as q, k, v are read from one
    const g = ops.alloc(packedFloats, 'float32') as Float32Array;
    ({ q: dq, k: dk, v: dv } = packedQkvViews(g, B, Nq, Hq, D));
    grads = [g];
  } else {
    const g = [B * Nq * Hq * D, B * Nk * Hk * D, B * Nk * Hk * D].map(
      (n) => ops.alloc(n, 'float32') as Float32Array,
    );
    dq = contiguousView(g[0]!, [B, Nq, Hq, D]);
    dk = contiguousView(g[1]!, [B, Nk, Hk, D]);
    dv = contiguousView(g[2]!, [B, Nk, Hk, D]);
    grads = g;
  }
  await ops.attentionForward({ q, k, v, out, lse }, c.opts);
  expect(ops.attentionPath).toBe('simd');
  const dout = contiguousView(rand(B * Nq * Hq * D), [B, Nq, Hq, D]);
  await ops.attentionBackward({ dout, q, k, v, out, lse, dq, dk, dv }, c.opts);
  expect(ops.attentionPath).toBe('simd');
  return [outBuf, lse, ...grads].map((x) => x.slice());
}

const variants: Array<{ name: string; fma: boolean }> = [{ name: 'plain simd', fma: false }];
if (hasRelaxedSimd()) variants.push({ name: 'relaxed fma', fma: true });
else console.warn('flash-simd.test: no relaxed SIMD in this runtime; the FMA variant is not run');

describe(`wasm SIMD attention: results independent of the thread count (seed ${seed})`, () => {
  for (const variant of variants) {
    for (const c of CASES) {
      it(`${variant.name}, ${c.name}`, async () => {
        const results: Float32Array[][] = [];
        for (const threads of [1, 2, 3]) {
          const ops = new CpuOps({ threads, fma: variant.fma, native: false });
          try {
            expect(ops.name).toContain(variant.fma ? 'relaxed fma' : 'wasm simd');
            results.push(await run(ops, c, seed));
          } finally {
            await ops.dispose();
          }
        }
        const [one, ...rest] = results;
        for (const r of rest) {
          r.forEach((x, i) => {
            const same = x.every((y, j) => Object.is(y, one![i]![j]));
            expect(same, `output ${i} differs from 1 thread`).toBe(true);
          });
        }
        // Not a degenerate all-zero run: the outputs hold finite, non-zero values.
        expect(one![0]!.some((x) => x !== 0 && Number.isFinite(x))).toBe(true);
      }, 60_000);
    }
  }
});

// The plain variant against the float64 oracle, one layout (packed: q, k, v read from the qkv buffer).
describeDeviceAttentionConformance(
  'cpu ops, plain wasm simd, 2 threads',
  () => new CpuOps({ threads: 2, fma: false, native: false }),
  {
    matrix: 'ci',
    layouts: ['packed'],
    ...(hasRelaxedSimd()
      ? {}
      : { skip: 'no relaxed SIMD here: the default variant is this one (cpu-ops.conformance)' }),
  },
);

// The default wasm variant's forward where the native AVX2 forward is the default (so that
// cpu-ops.conformance, which runs the default, checks the native one): the wasm forward stays for
// browsers-to-be and CPUs without AVX2, and keeps passing the suite. Two threads, every layout.
describeDeviceAttentionConformance(
  'cpu ops, wasm forward (native: false), 2 threads',
  () => new CpuOps({ threads: 2, native: false }),
  {
    matrix: 'ci',
    ...(nativeAttentionInfo().available
      ? {}
      : {
          skip: 'no native forward here: the default forward is the wasm one (cpu-ops.conformance)',
        }),
  },
);
