/**
 * The demo harness on tiny sizes: it checks the flash backend against the float64 oracle, and the
 * CPU implementations allocate what cpu-working-set.ts predicts from reading their code.
 */
import { createCpuBackend, freshSeed } from '@flashattn/core';
import { describe, expect, it } from 'vitest';
import { flashWorkingSet, referenceWorkingSet } from './cpu-working-set.js';
import { modelForward, runDemo } from './demo-run.js';
import { canCollect } from './lib/memory.js';

if (!canCollect) console.warn('demo-run.test: node without --expose-gc; allocation checks skipped');

describe('runDemo', async () => {
  const seed = freshSeed();
  const lines: string[] = [];
  const res = await runDemo(
    {
      ns: [1, 17, 130],
      headDim: 32,
      batch: 1,
      heads: 1,
      causal: [false, true],
      repeats: 2,
      warmup: 1,
      dtype: 'float32',
      seed,
      flash: createCpuBackend({ kind: 'flash' }),
      largeNs: [300],
      largeCausal: true,
    },
    (l) => lines.push(l),
  );

  it(`times both implementations for every N and mask (seed ${seed})`, () => {
    expect(res.cases.map((r) => `${r.impl}:${r.n}:${r.causal}`)).toEqual(
      [1, 17, 130].flatMap((n) => [false, true].flatMap((c) => [`reference:${n}:${c}`, `flash:${n}:${c}`])),
    );
    for (const r of res.cases) {
      expect(r.samplesMs).toHaveLength(2);
      expect(r.medianMs).toBeGreaterThan(0);
      expect(r.gflops).toBeGreaterThan(0);
    }
    expect(lines.some((l) => l.startsWith('[6/6] N=130 causal: flash (cpu-flash) run 2/2'))).toBe(true);
  });

  it(`reports errors against the float64 oracle within the float32 rounding budget (seed ${seed})`, () => {
    // Reference: the oracle rounded to float32, |err| <= 2^-24 |out| (|out| < 4 for N(0,1) values).
    // Flash: float32 accumulation over <= 130 keys; 1e-5 is ~100 ulp at |out| ~ 1.
    for (const r of res.cases) {
      expect(r.maxAbsErr).toBeLessThan(r.impl === 'reference' ? 4 * 2 ** -24 : 1e-5);
      expect(r.lseMaxAbsErr).toBeLessThan(1e-5);
    }
  });

  it.skipIf(!canCollect)('measures the allocations cpu-working-set.ts predicts', () => {
    for (const r of res.cases) {
      const sizes = { batch: 1, heads: 1, seqlenQ: r.n, seqlenK: r.n, headDim: 32 };
      const want = r.impl === 'reference' ? referenceWorkingSet(sizes).allocated : flashWorkingSet(sizes).allocated;
      expect(r.predictedBytes).toBe(want);
      // V8 keeps typed arrays of <= 64 bytes on the JS heap (no ArrayBuffer): at N = 1 the few
      // per-row arrays are that small, so allow 64 bytes for each of them; otherwise exact.
      if (r.n === 1) expect(Math.abs(r.measuredBytes - want)).toBeLessThanOrEqual(64 * 6);
      else expect(r.measuredBytes).toBe(want);
    }
  });

  it('runs the flash-only large case and says what the reference would need', () => {
    expect(res.large).toHaveLength(1);
    const l = res.large[0]!;
    expect([l.n, l.causal, l.finite]).toEqual([300, true, true]);
    expect(l.referenceWouldNeed).toBe(16 * 300 * 300);
    if (canCollect) expect(l.measuredBytes).toBeGreaterThanOrEqual(4 * 300 * 32);
  });

  it('adds the IO model figures for the H100 profile', () => {
    expect(res.model).toHaveLength(6);
    const m = modelForward(4096, false, { batch: 1, heads: 1, headDim: 64 });
    // Standard attention: 4 N^2 + 4 N d bfloat16 elements (FA1 Algorithm 0).
    expect(m.standardBytes).toBe(2 * (4 * 4096 * 4096 + 4 * 4096 * 64));
    expect(m.flashBytes).toBeLessThan(m.standardBytes);
  });
});
