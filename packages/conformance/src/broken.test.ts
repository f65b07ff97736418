// Prove the suite can fail: each deliberately broken backend must fail, with a message that names
// the seed and the case so the failure reproduces.
import { createCpuBackend, freshSeed } from '@flashattn/core';
import { describe, expect, it } from 'vitest';
import { CASE_MATRICES, type ConformanceCase } from './cases.js';
import { ConformanceError, assertConformance, runConformance } from './run.js';
import { runNonFiniteCase, runNonFiniteChecks } from './nonfinite.js';
import { brokenBackend } from './test-utils/broken.js';

const byId = (pred: (c: ConformanceCase) => boolean): ConformanceCase[] =>
  CASE_MATRICES.ci.filter(pred);
// Small, fast cases from the ci matrix: one per dtype, and one with fully masked rows.
const small = byId(
  (c) =>
    c.seqlenQ * c.seqlenK * c.headDim * c.nheadsQ <= 129 * 129 * 64 * 2 && c.logits === 'normal',
);
const masked = byId(
  (c) => c.features.includes('fully-masked-rows') && c.seqlenQ * c.seqlenK < 200_000,
);
const gqa = byId((c) => c.features.includes('gqa'));
const causalNqGtNk = byId(
  (c) => c.causal && c.seqlenQ > c.seqlenK && c.seqlenQ * c.seqlenK < 200_000,
);

describe('a broken backend fails the suite', () => {
  const inner = createCpuBackend({ kind: 'reference' });

  it('the small cases cover every dtype and include fully masked rows', () => {
    expect(new Set(small.map((c) => c.dtype))).toEqual(new Set(['float32', 'float16', 'bfloat16']));
    expect(masked.length).toBeGreaterThan(0);
    expect(gqa.length).toBeGreaterThan(0);
    expect(causalNqGtNk.length).toBeGreaterThan(0);
  });

  it('the correct backend passes the same cases (control)', async () => {
    const seed = freshSeed();
    const report = await runConformance(inner, { cases: [...small, ...masked], seed });
    expect(report.failed, report.results.map((r) => r.message).join('\n')).toBe(0);
    expect(report.passed).toBe(small.length + masked.length);
  });

  const faults = [
    ['wrong-scale', small, 'FAIL'],
    ['out-perturbed', small, 'out'],
    ['lse-off', small, 'lse'],
    ['dv-perturbed', small, 'dv'],
    ['masked-rows-nan', masked, 'fully masked row): expected exactly 0, got NaN'],
    ['masked-lse-zero', masked, 'fully masked row'],
    ['gqa-head-mapping', gqa, 'FAIL out'],
    ['causal-top-left', causalNqGtNk, 'fully masked row'],
  ] as const;

  for (const [fault, cases, mention] of faults) {
    it(`${fault} fails every case it touches, naming seed and case`, async () => {
      const seed = freshSeed();
      const report = await runConformance(brokenBackend(inner, fault), { cases, seed });
      expect(report.pass).toBe(false);
      expect(report.failed).toBe(cases.length);
      for (const r of report.results) {
        expect(r.status).toBe('fail');
        expect(r.message).toContain(`seed=${seed}`);
        expect(r.message).toContain(`case="${r.case.id}"`);
        expect(r.message).toContain(`FLASHATTN_CONFORMANCE_SEED=${seed}`);
        expect(r.message).toContain(mention);
      }
      expect(() => assertConformance(report)).toThrow(ConformanceError);
      expect(() => assertConformance(report)).toThrow(`seed=${seed}`);
    });
  }

  for (const fault of ['nan-zeroed', 'nan-leaks'] as const) {
    it(`${fault} fails the NaN propagation scenarios, naming seed and case`, async () => {
      const seed = freshSeed();
      const r = await runNonFiniteCase(brokenBackend(inner, fault), 'nan-key', 'float32', seed);
      expect(r.status, r.message).toBe('fail');
      expect(r.message).toContain(`seed=${seed}`);
      expect(r.message).toContain(
        fault === 'nan-zeroed' ? 'expected NaN' : 'expected a finite number',
      );
    });
  }

  it('the correct backend passes every NaN/Infinity scenario in every dtype (control)', async () => {
    const seed = freshSeed();
    for (const r of await runNonFiniteChecks(inner, { seed }))
      expect(r.status, r.message).toBe('pass');
  });

  it('a backend that throws is a failed case, not a crash', async () => {
    const throwing = {
      ...inner,
      name: 'throws',
      forward: () => Promise.reject(new Error('device lost')),
    };
    const report = await runConformance(throwing, { cases: small.slice(0, 1) });
    expect(report.failed).toBe(1);
    expect(report.results[0]!.message).toContain('forward threw Error: device lost');
  });
});
