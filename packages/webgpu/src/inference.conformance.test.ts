/**
 * The inference conformance suite (@flashattn/conformance's describeInferenceConformance: KV cache
 * decode and chunked prefill, paged and contiguous caches, appends, split-KV, the combine on its own,
 * varlen forward and backward, typed rejections) on whatever adapter Node finds: SwiftShader on a
 * CPU-only machine (float32, and float16 / bfloat16 as packed words read through the storage kinds),
 * a real GPU otherwise. With CI or FLASHATTN_REQUIRE_WEBGPU=1 set, a missing adapter fails the run.
 */
import { describeInferenceConformance } from '@flashattn/conformance/vitest';
import { createWebGPUBackend } from './index.js';
import { conformanceSkip, defaultToSwiftShader } from './test-utils/env.js';

defaultToSwiftShader();

const skip = await conformanceSkip();

describeInferenceConformance('webgpu', () => createWebGPUBackend(), { skip });

// The typed storage kinds (f32, packed f16x2 / bf16x2 words: what a GPU without shader-f16 reads)
// rather than SwiftShader's default run-time 'any' kind, and the kv-cache-attention variant that stages
// K tiles through workgroup memory (kvStageK); KV-cache scenarios only (varlen runs the flash programs,
// whose kinds conformance.test.ts covers).
describeInferenceConformance(
  'webgpu (typed kinds, staged K)',
  () => createWebGPUBackend({ compact: false, kvStageK: true }),
  { skip, varlen: false },
);
