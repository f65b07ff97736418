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
// On SwiftShader (CI) the kernel cannot run (no native shader-f16, no subgroup matrices): skip without touching
// Dawn. Creating the probe's device and then the subgroup-matrix one made the worker abort (std::system_error) or
// hang at exit in 3 of 14 runs there (2026-12-07; gpu.ts on two Dawn instances in turn); the CI run of 20:18 UTC
// failed on it.
const icd = `${process.env.VK_DRIVER_FILES ?? ''} ${process.env.VK_ICD_FILENAMES ?? ''}`;
let skip = /swiftshader/i.test(icd)
  ? 'SwiftShader has no native shader-f16 or subgroup matrices'
  : await probeAdapter();
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
