/**
 * The GPT-2 KV-cache check a backend runs on its ops (webgpu's gpt2-generate test, the CUDA device run): a tiny
 * model's cached forward (GPT2.forwardCached), run in chunks (a 7-token prefill, single-token decode steps, a
 * 6-token chunk), against core's float64 full forward with the same initialisation, under the conformance rule
 * lifted to the model:
 *
 *   max |logits_cached - logits_64| <= 2 max |logits_peer_cached - logits_64| + 1e-5 max |logits_64|
 *
 * where the peer is a same-precision backend's cached forward (the CPU float32 ops) and the floor is the repo's
 * end-to-end float32 floor (as in webgpu's GPT-2 training test). Plus greedy generation on the same model, with or
 * without the cache, for token-for-token comparisons.
 */
import { createReferenceOps, createRng, type Ops } from '@flashattn/core';
import type { GPT2Config } from '../config.js';
import { generate } from './generate.js';
import { GPT2 } from './gpt2.js';

/** The checked model: small enough for the float64 reference ops, 2 layers so the cache crosses a layer. */
export const CACHED_CHECK_CONFIG: GPT2Config = {
  vocabSize: 67,
  maxSeqLen: 24,
  nLayer: 2,
  nHead: 2,
  nEmbd: 32,
};
const [B, T] = [2, 19];
/** [t0, n]: the cached forward's calls, covering t = 0 .. T - 1. */
const CHUNKS = [
  [0, 7],
  [7, 1],
  [8, 1],
  [9, 6],
  [15, 4],
] as const;

/** The model's (B, T) tokens and its parameters both come from `seed`. */
function tokensOf(seed: number): Int32Array {
  const rng = createRng(seed ^ 0x5bd1e995);
  return Int32Array.from({ length: B * T }, () => rng.int(CACHED_CHECK_CONFIG.vocabSize)); // (B, T)
}

/** The cached forward's logits, chunk by chunk, laid out like the full forward's (B * T, V). */
export async function cachedForwardLogits<Buf>(
  ops: Ops<Buf>,
  seed: number,
  paramDType: 'float32' | 'float64' = 'float32',
  computeDType: 'float32' | 'float64' | 'bfloat16' | 'float16' = paramDType,
): Promise<Float64Array> {
  const V = CACHED_CHECK_CONFIG.vocabSize;
  const model = new GPT2({ config: CACHED_CHECK_CONFIG, ops, paramDType, computeDType, seed });
  const tokens = tokensOf(seed);
  const out = new Float64Array(B * T * V); // (B * T, V)
  const cache = model.createCache(B);
  for (const [t0, n] of CHUNKS) {
    const chunk = new Int32Array(B * n); // (B, n)
    for (let b = 0; b < B; b++) chunk.set(tokens.subarray(b * T + t0, b * T + t0 + n), b * n);
    await model.forwardCached(chunk, B, n, cache);
    const got = await model.downloadLogits(); // (B * n, V)
    for (let b = 0; b < B; b++)
      for (let t = 0; t < n; t++)
        for (let j = 0; j < V; j++)
          out[(b * T + t0 + t) * V + j] = Number(got[(b * n + t) * V + j]);
  }
  model.releaseActivations();
  return out;
}

/** The full forward's logits (B * T, V) with float64 parameters (on core's reference ops: the oracle). */
export async function fullForwardLogits<Buf>(ops: Ops<Buf>, seed: number): Promise<Float64Array> {
  const model = new GPT2({ config: CACHED_CHECK_CONFIG, ops, paramDType: 'float64', seed });
  await model.forward(tokensOf(seed), null, B, T);
  return Float64Array.from(await model.downloadLogits(), Number);
}

export interface CachedForwardCheck {
  /** max |logits_cached - logits_64| of the checked ops and of the peer. */
  err: number;
  errPeer: number;
  /** 2 errPeer + 1e-5 scale. */
  allowed: number;
  /** max |logits_64| (> 0, or the check is void). */
  scale: number;
  pass: boolean;
}

/** The rule above for `ops`' float32 cached forward, with `peer`'s as the same-precision peer. */
export async function checkCachedForward<Buf, PeerBuf>(
  ops: Ops<Buf>,
  peer: Ops<PeerBuf>,
  seed: number,
): Promise<CachedForwardCheck> {
  const want = await fullForwardLogits(createReferenceOps(), seed);
  const errOf = (x: Float64Array) => x.reduce((m, v, i) => Math.max(m, Math.abs(v - want[i]!)), 0);
  const scale = want.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
  const err = errOf(await cachedForwardLogits(ops, seed));
  const errPeer = errOf(await cachedForwardLogits(peer, seed));
  const allowed = 2 * errPeer + 1e-5 * scale;
  return { err, errPeer, allowed, scale, pass: scale > 0 && err <= allowed };
}

/** Greedy generation (top-1, 6 new tokens, window 24) after a 9-token prompt drawn from `seed`. */
export async function greedyTokens<Buf>(
  ops: Ops<Buf>,
  seed: number,
  useCache: boolean,
): Promise<number[]> {
  const model = new GPT2({ config: CACHED_CHECK_CONFIG, ops, seed });
  const rng = createRng(seed);
  const prompt = Array.from({ length: 9 }, () => rng.int(CACHED_CHECK_CONFIG.vocabSize));
  return generate(model, prompt, {
    maxNewTokens: 6,
    topK: 1,
    window: 24,
    rng: createRng(1),
    useCache,
  });
}
