/**
 * The retired subgroup-matrix forward against the float64 oracle: the float16 cases of the `ci` matrix
 * through the conformance suite (forward on subgroup matrices, backward the production one). Needs an
 * adapter with `chromium-experimental-subgroup-matrix` and subgroup size 32 (Dawn on NVIDIA with
 * allow_unsafe_apis); elsewhere (SwiftShader in CI) it is skipped with the reason printed.
 */
import { casesFor } from '@flashattn/conformance';
import { describeConformance } from '@flashattn/conformance/vitest';
import { defaultToSwiftShader, probeAdapter } from '../src/test-utils/env.js';
import { createSgmatBackend } from './sgmat.js';

defaultToSwiftShader();
let skip = await probeAdapter();
if (skip === undefined) {
  const sg = await createSgmatBackend();
  skip = sg.reason;
  sg.dispose();
}
if (skip) console.warn(`subgroup-matrix forward skipped: ${skip}`);

describeConformance('webgpu subgroup-matrix forward (dev)', () => createSgmatBackend(), {
  cases: casesFor('ci').filter((c) => c.dtype === 'float16'),
  skip: skip ? `subgroup-matrix forward unavailable: ${skip}` : undefined,
});
