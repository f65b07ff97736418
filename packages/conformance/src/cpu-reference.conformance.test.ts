// The CPU reference backend (the float64 oracle rounded to the input dtype) against the conformance
// matrix: the suite's own sanity check, ratios should be ~0.5 (one rounding against naive's many).
import { createCpuBackend } from '@flashattn/core';
import { describeConformance } from './vitest.js';

describeConformance('cpu-reference', () => createCpuBackend({ kind: 'reference' }), {
  matrix: 'ci',
});
