import { createCpuBackend } from '@flashattn/core';
import { describe, expect, it } from 'vitest';
import {
  CASE_MATRICES,
  HEAD_DIMS,
  casesFor,
  matchesFilter,
  type CaseFeature,
  type ConformanceCase,
} from './cases.js';
import { readConformanceEnv } from './env.js';
import { caseSeedOf, makeInputs } from './inputs.js';
import { runConformance } from './run.js';

const ALL_FEATURES: CaseFeature[] = [
  'causal',
  'window',
  'gqa',
  'mqa',
  'batch>1',
  'n=1',
  'n=1000',
  'ragged',
  'nq>nk',
  'nq<nk',
  'huge-logits',
  'fully-masked-rows',
  'unseen-keys',
];

describe('case matrices', () => {
  for (const name of ['full', 'ci'] as const) {
    it(`${name} touches every feature, head dim, dtype and logit profile`, () => {
      const cases = casesFor(name);
      const features = new Set(cases.flatMap((c) => c.features));
      for (const f of ALL_FEATURES) expect(features, f).toContain(f);
      expect(new Set(cases.map((c) => c.headDim))).toEqual(new Set(HEAD_DIMS));
      expect(new Set(cases.map((c) => c.dtype))).toEqual(
        new Set(['float32', 'float16', 'bfloat16']),
      );
      expect(new Set(cases.map((c) => c.logits))).toEqual(
        new Set(['normal', 'huge-spread', 'huge-pos', 'huge-neg']),
      );
      for (const n of [1, 17, 127, 128, 129, 1000]) {
        expect(
          cases.some((c) => c.seqlenQ === n || c.seqlenK === n),
          `seqlen ${n}`,
        ).toBe(true);
      }
    });
  }

  it('ids are unique in every matrix and the matrices are frozen', () => {
    for (const cases of Object.values(CASE_MATRICES)) {
      expect(new Set(cases.map((c) => c.id)).size).toBe(cases.length);
      expect(Object.isFrozen(cases)).toBe(true);
    }
  });

  it('features are derived from the mask rule: causal with Nq > Nk masks the top rows', () => {
    const c = CASE_MATRICES.full.find((x) => x.seqlenQ === 1000 && x.seqlenK === 1 && x.causal)!;
    expect(c.features).toContain('fully-masked-rows');
    const w = CASE_MATRICES.ci.find((x) => x.windowSize?.[0] === 8)!;
    expect(w.features).toContain('unseen-keys');
  });

  it('unknown matrix names are a clear error', () => {
    expect(() => casesFor('huge' as never)).toThrow(
      /Unknown conformance matrix 'huge'.*full, ci, smoke/,
    );
  });

  it('filters by substring, RegExp and predicate', () => {
    const c: ConformanceCase = CASE_MATRICES.ci[2]!;
    expect(matchesFilter(c, c.id.slice(0, 6))).toBe(true);
    expect(matchesFilter(c, /^nothing/)).toBe(false);
    expect(matchesFilter(c, (x) => x.dtype === c.dtype)).toBe(true);
    expect(matchesFilter(c, undefined)).toBe(true);
  });

  it('skips cases outside a backend capabilities, with the reason', async () => {
    const cpu = createCpuBackend({ kind: 'reference' });
    const narrow = {
      ...cpu,
      name: 'narrow',
      capabilities: { ...cpu.capabilities, dtypes: ['float32'] as const, maxHeadDim: 64 },
    };
    const report = await runConformance(narrow, { matrix: 'smoke', backward: false });
    const skipped = report.results.filter((r) => r.status === 'skip');
    expect(skipped.map((r) => r.case.dtype === 'float16' || r.case.headDim > 64)).toEqual(
      skipped.map(() => true),
    );
    expect(skipped.length).toBe(2);
    expect(skipped.some((r) => /does not support dtype float16/.test(r.skipReason!))).toBe(true);
    expect(skipped.some((r) => /head dims up to 64, case has 128/.test(r.skipReason!))).toBe(true);
    expect(report.passed).toBe(1);
  });
});

describe('inputs', () => {
  it('depend only on (seed, case id): a filtered rerun sees the same data', () => {
    const c = CASE_MATRICES.ci[1]!;
    const a = makeInputs(c, 42);
    const b = makeInputs(c, 42);
    expect(b.q.data).toEqual(a.q.data);
    expect(b.dout.data).toEqual(a.dout.data);
    expect(makeInputs(c, 43).q.data).not.toEqual(a.q.data);
    expect(caseSeedOf(42, c.id)).not.toBe(caseSeedOf(42, CASE_MATRICES.ci[2]!.id));
  });

  it('huge-pos logits sit near +1e4 in every dtype', () => {
    for (const c of CASE_MATRICES.full.filter(
      (x) => x.logits === 'huge-pos' && x.headDim === 256,
    )) {
      const { q, k } = makeInputs(c, 7);
      const [qf, kf] = [q, k].map((t) =>
        Array.from(t.dtype === 'float32' ? (t.data as Float32Array) : []),
      );
      if (c.dtype === 'float32') {
        let dot = 0;
        for (let d = 0; d < c.headDim; d++) dot += qf[d]! * kf[d]!;
        expect(dot / Math.sqrt(c.headDim)).toBeGreaterThan(1e4 - 100);
        expect(dot / Math.sqrt(c.headDim)).toBeLessThan(1e4 + 100);
      }
    }
  });
});

describe('environment overrides', () => {
  it('parses matrix, seed and filter strictly', () => {
    expect(
      readConformanceEnv({
        FLASHATTN_CONFORMANCE_MATRIX: 'full',
        FLASHATTN_CONFORMANCE_SEED: '123',
      }),
    ).toEqual({
      matrix: 'full',
      seed: 123,
    });
    expect(readConformanceEnv({})).toEqual({});
    expect(() => readConformanceEnv({ FLASHATTN_CONFORMANCE_MATRIX: 'all' })).toThrow(
      /expected one of full, ci, smoke/,
    );
    expect(() => readConformanceEnv({ FLASHATTN_CONFORMANCE_SEED: '-1' })).toThrow(
      /unsigned 32-bit/,
    );
    expect(() => readConformanceEnv({ FLASHATTN_CONFORMANCE_SEED: '1e3' })).toThrow(
      /unsigned 32-bit/,
    );
  });
});
