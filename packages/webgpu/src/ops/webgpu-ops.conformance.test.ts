/**
 * The WebGPU ops against the conformance suites on whatever adapter Node finds (SwiftShader on a
 * CPU-only machine): every op of Ops<Buf> in float32 (the only float dtype listed; the float16,
 * bfloat16 and float64 cases report skipped) against core's float64 reference ops under the suite's
 * rule, including the every-operand-a-view-of-one-buffer cases (one GPUBuffer bound once, operands.ts)
 * and the bad-input checks; and attention through the ops (the recorder's batched submit path) in the
 * packed (B, N, 3, H, D) layout the model uses, on the cases of the model's sizes (D <= 64, N <= 129:
 * 6 cases, ~8 s). The attention kernels themselves run the whole matrix, every layout and the NaN /
 * Infinity scenarios in ../conformance.test.ts; here only the path through the ops' batch is new.
 * With CI or FLASHATTN_REQUIRE_WEBGPU=1 set, a missing adapter fails instead of skipping.
 */
import {
  describeDeviceAttentionConformance,
  describeOpsConformance,
} from '@flashattn/conformance/vitest';
import { conformanceSkip, defaultToSwiftShader } from '../test-utils/env.js';
import { createWebGpuOps } from './webgpu-ops.js';

defaultToSwiftShader();

const skip = await conformanceSkip();

describeOpsConformance('webgpu ops', () => createWebGpuOps(), { matrix: 'ci', skip });
describeDeviceAttentionConformance('webgpu ops', () => createWebGpuOps(), {
  matrix: 'ci',
  layouts: ['packed'],
  filter: (c) => !/ (q1000|k1000|d128|d256) /.test(` ${c.id} `),
  nonFinite: false,
  skip,
});
