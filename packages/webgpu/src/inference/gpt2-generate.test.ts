// GPT-2 generation with the KV cache on the WebGPU ops (WebGpuOps.attentionWithKvCache, i.e.
// inference/kv-cache.ts under GPT2.forwardCached): the cached forward, run in chunks (a 7-token prefill,
// single-token decode steps, a 6-token chunk), gives the full forward's logits under the suite's rule
// lifted to the model, against core's float64 reference ops with the same initialisation:
//
//   max |logits_webgpu_cached - logits_64| <= 2 max |logits_cpu_cached - logits_64| + 1e-5 max |logits_64|
//
// (the CPU float32 ops' cached forward is the same-precision peer; the floor is the repo's end-to-end
// float32 floor, as in ops/gpt2-training.test.ts). And greedy generation with the cache equals greedy
// generation without it (the flash forward over the whole window each step), token for token.
import { createReferenceOps, createRng, freshSeed, type Ops } from '@flashattn/core';
import { CpuOps } from '@flashattn/cpu';
import { generate, GPT2, type GPT2Config } from '@flashattn/transformer';
import { afterAll, describe, expect, it } from 'vitest';
import { createWebGpuOps, type WebGpuOps } from '../ops/webgpu-ops.js';
import { defaultToSwiftShader, probeAdapter, webgpuRequired } from '../test-utils/env.js';

defaultToSwiftShader();
const unavailable = await probeAdapter();
const skip = unavailable !== undefined && !webgpuRequired();
if (skip)
  console.warn(`gpt2 cached generation on webgpu ops: skipped: no WebGPU adapter: ${unavailable}`);

const config: GPT2Config = { vocabSize: 67, maxSeqLen: 24, nLayer: 2, nHead: 2, nEmbd: 32 };
const [B, T] = [2, 19];
const CHUNKS = [
  [0, 7],
  [7, 1],
  [8, 1],
  [9, 6],
  [15, 4],
] as const;
const seed = freshSeed();

/** The cached forward's logits, chunk by chunk, laid out like the full forward's (B * T, V). */
async function cachedLogits<Buf>(
  ops: Ops<Buf>,
  dtype: 'float32' | 'float64',
): Promise<Float64Array> {
  const model = new GPT2({ config, ops, paramDType: dtype, seed });
  const rng = createRng(seed ^ 0x5bd1e995);
  const tokens = Int32Array.from({ length: B * T }, () => rng.int(config.vocabSize));
  const V = config.vocabSize;
  const out = new Float64Array(B * T * V);
  const cache = model.createCache(B);
  for (const [t0, n] of CHUNKS) {
    const chunk = new Int32Array(B * n);
    for (let b = 0; b < B; b++) chunk.set(tokens.subarray(b * T + t0, b * T + t0 + n), b * n);
    await model.forwardCached(chunk, B, n, cache);
    const got = await ops.download(model.logits as Buf); // (B * n, V)
    for (let b = 0; b < B; b++)
      for (let t = 0; t < n; t++)
        for (let j = 0; j < V; j++)
          out[(b * T + t0 + t) * V + j] = Number(got[(b * n + t) * V + j]);
  }
  model.releaseActivations();
  return out;
}

async function fullLogits<Buf>(ops: Ops<Buf>): Promise<Float64Array> {
  const model = new GPT2({ config, ops, paramDType: 'float64', seed });
  const rng = createRng(seed ^ 0x5bd1e995);
  const tokens = Int32Array.from({ length: B * T }, () => rng.int(config.vocabSize));
  await model.forward(tokens, null, B, T);
  return Float64Array.from(await ops.download(model.logits as Buf), Number);
}

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
    const ref = createReferenceOps();
    const want = await fullLogits(ref);
    const c = await cachedLogits(cpu, 'float32');
    const g = await cachedLogits(gpu, 'float32');
    const dev = (x: Float64Array) => x.reduce((m, v, i) => Math.max(m, Math.abs(v - want[i]!)), 0);
    const scale = want.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    const [errG, errC] = [dev(g), dev(c)];
    const allowed = 2 * errC + 1e-5 * scale;
    console.log(`cached logits: webgpu err ${errG}, cpu f32 err ${errC}, allowed ${allowed}`);
    expect(scale).toBeGreaterThan(0);
    expect(errG, `webgpu ${errG} cpu ${errC} allowed ${allowed}`).toBeLessThanOrEqual(allowed);
  });

  it('greedy generation with the cache equals greedy generation without it', async () => {
    gpu ??= await createWebGpuOps();
    const model = new GPT2({ config, ops: gpu, seed });
    const rng = createRng(seed);
    const prompt = Array.from({ length: 9 }, () => rng.int(config.vocabSize));
    const greedy = { maxNewTokens: 6, topK: 1, window: 24 };
    const withCache = await generate(model, prompt, {
      ...greedy,
      rng: createRng(1),
      useCache: true,
    });
    const without = await generate(model, prompt, {
      ...greedy,
      rng: createRng(1),
      useCache: false,
    });
    expect(withCache).toHaveLength(6);
    expect(withCache).toEqual(without);
  });
});
