// The ops suite on core's reference ops (must pass) and on one deliberately broken backend per op
// (each must fail, and only in the op it breaks).
import { createReferenceOps, freshSeed } from '@flashattn/core';
import { describe, expect, it } from 'vitest';
import { OPS_CASES } from './ops/cases.js';
import { OP_NAMES } from './ops/problems.js';
import { runOpsConformance } from './ops/run.js';
import { OPS_FAULTS, brokenOps, type OpsFault } from './test-utils/broken-ops.js';
import { emulate16 } from './test-utils/emulated16.js';
import { describeOpsConformance } from './vitest.js';

describeOpsConformance('reference', () => createReferenceOps(), { matrix: 'ci' });

describe('the ops case matrix', () => {
  it('covers every op, with views, zero sizes and non-normal magnitudes', () => {
    const ci = OPS_CASES.ci;
    for (const op of OP_NAMES) {
      const mine = ci.filter((c) => c.op === op);
      expect(mine.length, op).toBeGreaterThan(0);
      expect(
        mine.some((c) => c.views),
        `${op} has a views case`,
      ).toBe(true);
      expect(
        mine.some((c) => c.mag.std !== 1),
        `${op} has a large or tiny case`,
      ).toBe(true);
    }
    for (const op of OP_NAMES.filter((o) => o !== 'scale' && o !== 'adamw')) {
      expect(
        ci.some((c) => c.op === op && / [MNBn]0 /.test(`${c.id} `)),
        `${op} has a zero-size case`,
      ).toBe(true);
    }
    expect(new Set(ci.map((c) => c.id)).size).toBe(ci.length);
  });
});

describe('a broken ops backend fails the suite, in the op it breaks', () => {
  for (const [fault, op] of Object.entries(OPS_FAULTS) as [OpsFault, string][]) {
    it(fault, async () => {
      const seed = freshSeed();
      const report = await runOpsConformance(brokenOps(createReferenceOps(), fault), {
        seed,
        inputChecks: false,
        filter: op === 'view' ? undefined : (id) => id.startsWith(`${op} `),
      });
      const what = `seed ${seed}: ${report.results
        .filter((r) => r.status === 'fail')
        .map((r) => r.id)
        .join(', ')}`;
      expect(report.failed, what).toBeGreaterThan(0);
      if (op === 'view') {
        // Every failure is a views case; every views case fails.
        for (const r of report.results)
          expect(r.status === 'fail', `${r.id} ${what}`).toBe(r.case.views);
      } else {
        expect(report.failedOps, what).toEqual([op]);
      }
      for (const r of report.results.filter((x) => x.status === 'fail')) {
        expect(r.message).toContain(`seed=${seed}`);
        expect(r.message).toContain(`op=${r.op}`);
      }
    });
  }

  it('the correct backend passes everything including the input checks (control)', async () => {
    const seed = freshSeed();
    const report = await runOpsConformance(createReferenceOps(), { seed });
    expect(
      report.failed,
      report.results
        .filter((r) => r.status === 'fail')
        .map((r) => r.message)
        .join('\n'),
    ).toBe(0);
    expect(report.passed).toBe(2 * (OPS_CASES.ci.length + 1));
  });

  it('an op that throws is a failed case, not a crash', async () => {
    const ref = createReferenceOps();
    const throwing = {
      ...ref,
      name: 'throws',
      add: () => Promise.reject(new Error('device lost')),
    };
    const report = await runOpsConformance(throwing, {
      filter: 'add n67 out=a f32',
      inputChecks: false,
    });
    expect(report.failed).toBe(1);
    expect(report.results[0]!.message).toContain('add threw Error: device lost');
  });
});

describe('the 16-bit path (float16 and bfloat16 emulated over the reference ops)', () => {
  const only16 = (id: string): boolean => / (f16|bf16)$/.test(id);

  it('a float64 computation rounded once to 16 bits passes every case and the input checks', async () => {
    const seed = freshSeed();
    const report = await runOpsConformance(emulate16(createReferenceOps()), {
      seed,
      filter: only16,
    });
    const failures = report.results.filter((r) => r.status === 'fail');
    expect(failures.map((r) => r.message).join('\n')).toBe('');
    expect(report.passed).toBe(2 * (OPS_CASES.ci.length + 1));
  });

  it('a broken op fails in 16 bits too, in that op only', async () => {
    const seed = freshSeed();
    for (const fault of ['geluBackward-accumulates', 'layernormBackward-no-mean-term'] as const) {
      const op = OPS_FAULTS[fault];
      const report = await runOpsConformance(brokenOps(emulate16(createReferenceOps()), fault), {
        seed,
        inputChecks: false,
        filter: (id) => only16(id) && id.startsWith(`${op} `),
      });
      expect(report.failed, `${fault} seed ${seed}`).toBeGreaterThan(0);
      expect(report.failedOps).toEqual([op]);
    }
  });
});
