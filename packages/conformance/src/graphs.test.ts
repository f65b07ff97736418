// The OpsGraphs check on host-recorded graphs over the float64 reference ops (must pass) and on one deliberately
// broken recorder per fault (each must fail). The CUDA graphs run the same check on the GPU (device-run ops-graphs).
import { createReferenceOps, withRecordedGraphs } from '@flashattn/core';
import { describe, expect, it } from 'vitest';
import { formatGraphsReport, runGraphsConformance } from './graphs.js';
import { GRAPHS_FAULTS, brokenGraphs } from './test-utils/broken-graphs.js';

describe('graphs conformance', () => {
  it('withRecordedGraphs over the reference ops passes every check', async () => {
    const r = await runGraphsConformance(withRecordedGraphs(createReferenceOps()));
    expect(r.problems, formatGraphsReport(r)).toEqual([]);
    expect(r.pass).toBe(true);
    expect(r.checked.length).toBeGreaterThan(15);
  });

  it('a backend without graphs fails, saying so', async () => {
    const r = await runGraphsConformance(createReferenceOps());
    expect(r.pass).toBe(false);
    expect(r.problems[0]).toMatch(/no OpsGraphs/);
  });

  for (const fault of GRAPHS_FAULTS) {
    it(`a broken recorder fails: ${fault}`, async () => {
      const r = await runGraphsConformance(brokenGraphs(fault));
      expect(r.pass, formatGraphsReport(r)).toBe(false);
      expect(r.problems.length).toBeGreaterThan(0);
    });
  }
});
