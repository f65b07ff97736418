// GPT-2 generation with the KV cache on the WebGPU ops (WebGpuOps.attentionWithKvCache, i.e.
// inference/kv-cache.ts under GPT2.forwardCached): the cached forward, run in chunks (a 7-token prefill,
// single-token decode steps, a 6-token chunk), gives the full forward's logits under the suite's rule
// lifted to the model, against core's float64 reference ops with the same initialisation:
//
//   max |logits_webgpu_cached - logits_64| <= 2 max |logits_cpu_cached - logits_64| + 1e-5 max |logits_64|
//
// (the CPU float32 ops' cached forward is the same-precision peer; @flashattn/transformer's checkCachedForward).
// And greedy generation with the cache equals greedy generation without it (the flash forward over the whole
// window each step), token for token.
import { freshSeed } from '@flashattn/core';
import { CpuOps } from '@flashattn/cpu';
import { checkCachedForward, greedyTokens } from '@flashattn/transformer';
import { afterAll, describe, expect, it } from 'vitest';
import { createWebGpuOps, type WebGpuOps } from '../ops/webgpu-ops.js';
import { defaultToSwiftShader, probeAdapter, webgpuRequired } from '../test-utils/env.js';

defaultToSwiftShader();
const unavailable = await probeAdapter();
const skip = unavailable !== undefined && !webgpuRequired();
if (skip)
  console.warn(`gpt2 cached generation on webgpu ops: skipped: no WebGPU adapter: ${unavailable}`);

const seed = freshSeed();

let gpu: WebGpuOps | undefined;
const cpu = new CpuOps({ threads: 1 });
afterAll(async () => {
  cpu.dispose();
  await gpu?.dispose();
});

describe.skipIf(skip)(`GPT-2 cached generation on the WebGPU ops (seed ${seed})`, () => {
  it('forwardCached in chunks gives the float64 full forward within the rule', async () => {
    gpu = await createWebGpuOps();
    expect(gpu.kvCacheCapabilities.dtypes).toEqual(['float32']);
    const c = await checkCachedForward(gpu, cpu, seed);
    console.log(
      `cached logits: webgpu err ${c.err}, cpu f32 err ${c.errPeer}, allowed ${c.allowed}`,
    );
    expect(c.scale).toBeGreaterThan(0);
    expect(c.err, `webgpu ${c.err} cpu ${c.errPeer} allowed ${c.allowed}`).toBeLessThanOrEqual(
      c.allowed,
    );
  });

  it('greedy generation with the cache equals greedy generation without it', async () => {
    gpu ??= await createWebGpuOps();
    const withCache = await greedyTokens(gpu, seed, true);
    const without = await greedyTokens(gpu, seed, false);
    expect(withCache).toHaveLength(6);
    expect(withCache).toEqual(without);
  });
});
