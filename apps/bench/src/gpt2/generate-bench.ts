/**
 * GPT-2 generation with and without the KV cache on any backend (issue #12 "GPT-2 generation tokens/s with
 * and without the cache (CPU, WebGPU, CUDA) at prompt 512 and 64 new tokens"): a prompt of P tokens, then
 * N new tokens sampled greedily, timed end to end through @flashattn/transformer's generate().
 *   - no cache: every new token reruns the whole context (P + i tokens);
 *   - cache:    one prefill of the P prompt tokens, then one token per step (GPT2.forwardCached: the
 *               backend's DeviceKvCacheAttention appends k/v in place and decodes with split-KV).
 * Reports tokens/s over the whole call (prefill included) and, for the cache, the prefill time and the
 * decode rate alone. Random weights (throughput does not depend on them); both runs must produce the same
 * greedy tokens, which the script checks (exit 1 otherwise). A backend without the KV-cache contract
 * reports the no-cache run only, and says so.
 *
 *   node dist/gpt2/generate-bench.js [--backend cpu|webgpu|cuda|auto] [--config small] [--dtype fp32]
 *        [--prompt 512] [--new 64] [--threads N] [--json out.json]
 *   (bundled for the GPU machine: node .bundle-gpt2/generate-bench.mjs ..., see bundle.mjs)
 */
import { writeFileSync } from 'node:fs';
import { availableParallelism, cpus } from 'node:os';
import { createRng, resolveBackend, type Ops } from '@flashattn/core';
// The providers are imported, not discovered, so the bundle (no node_modules) has them all.
import '@flashattn/cpu/provider';
import '@flashattn/cuda/provider';
import '@flashattn/webgpu/provider';
import { GPT2, generate } from '@flashattn/transformer';
import { parseArgsOrExit, type ArgSchema } from '../lib/args.js';
import {
  BENCH_CONFIG_NAMES,
  BENCH_CONFIGS,
  COMPUTE_DTYPE_FLAGS,
  computeDTypeFor,
} from './configs.js';
import { runIfMain } from '../lib/is-main.js';

export const GENERATE_BENCH_SCHEMA = {
  backend: {
    type: 'string',
    default: 'cpu',
    help: "cpu, webgpu, cuda or 'auto' (core's registry)",
  },
  config: { type: 'enum', values: BENCH_CONFIG_NAMES, default: 'small', help: 'model shape' },
  dtype: {
    type: 'enum',
    values: COMPUTE_DTYPE_FLAGS,
    default: 'fp32',
    help: 'compute dtype (fp32 parameters)',
  },
  prompt: { type: 'int', default: 512, min: 1, help: 'P, prompt tokens' },
  new: { type: 'int', default: 64, min: 2, help: 'N, new tokens' },
  threads: { type: 'int', min: 1, help: 'CPU backend threads (default: all cores)' },
  json: { type: 'string', help: "write the result row as JSON to this file ('-': stdout)" },
} as const satisfies ArgSchema;

async function main(): Promise<void> {
  const a = parseArgsOrExit(process.argv.slice(2), GENERATE_BENCH_SCHEMA, 'generate-bench');
  const config = BENCH_CONFIGS[a.config];
  const [P, N] = [a.prompt, a.new];
  if (P + N > config.maxSeqLen)
    throw new RangeError(
      `--prompt + --new = ${P + N} > ${a.config}'s ${config.maxSeqLen} positions`,
    );
  const resolved = await resolveBackend<Ops<unknown>>(a.backend, {
    need: 'ops',
    options: a.backend === 'cpu' ? { threads: a.threads ?? availableParallelism() } : undefined,
  });
  const ops = resolved.value;
  try {
    const computeDType = computeDTypeFor(a.dtype, ops);
    const model = new GPT2({ config, ops, seed: 1, paramDType: 'float32', computeDType });
    const rng = createRng(2);
    const prompt = Array.from({ length: P }, () => rng.int(config.vocabSize));
    const greedy = { maxNewTokens: N, topK: 1, rng: createRng(3) };
    const cached = model.supportsKvCache;

    // Warm up both paths (JIT, pipelines, buffers) on a short prompt.
    if (cached)
      await generate(model, prompt.slice(0, 32), { ...greedy, maxNewTokens: 4, useCache: true });
    await generate(model, prompt.slice(0, 32), { ...greedy, maxNewTokens: 4, useCache: false });

    let cacheMs: number | null = null;
    let prefillMs: number | null = null;
    let withCache: number[] | null = null;
    if (cached) {
      const t0 = performance.now();
      let tFirst = 0;
      withCache = await generate(model, prompt, {
        ...greedy,
        useCache: true,
        onToken: () => void (tFirst ||= performance.now()),
      });
      cacheMs = performance.now() - t0;
      prefillMs = tFirst - t0; // prefill + the first token's sampling
    }
    const t0 = performance.now();
    const noCache = await generate(model, prompt, { ...greedy, useCache: false });
    const noCacheMs = performance.now() - t0;
    const same = withCache ? withCache.every((t, i) => t === noCache[i]) : null;
    const row = {
      date: new Date().toISOString(),
      machine: `${cpus()[0]?.model ?? 'cpu'} (${availableParallelism()} cores), Node ${process.versions.node}`,
      ops: ops.name,
      config: `${a.config} (L=${config.nLayer} H=${config.nHead} C=${config.nEmbd} V=${config.vocabSize})`,
      dtype: a.dtype,
      prompt: P,
      newTokens: N,
      noCacheTokPerS: N / (noCacheMs / 1e3),
      cacheTokPerS: cacheMs === null ? null : N / (cacheMs / 1e3),
      cachePrefillMs: prefillMs,
      cacheDecodeTokPerS:
        cacheMs === null || prefillMs === null ? null : (N - 1) / ((cacheMs - prefillMs) / 1e3),
      speedup: cacheMs === null ? null : noCacheMs / cacheMs,
      sameTokens: same,
    };
    const lines = [
      `${row.config} ${a.dtype}, prompt ${P}, ${N} new tokens, on ${row.ops}`,
      `  no cache: ${row.noCacheTokPerS.toFixed(2)} tok/s (${(noCacheMs / 1e3).toFixed(2)} s)`,
      cacheMs === null
        ? `  cache:    - (${ops.name} does not implement KV-cache attention)`
        : `  cache:    ${row.cacheTokPerS!.toFixed(2)} tok/s (${(cacheMs / 1e3).toFixed(2)} s; prefill ${prefillMs!.toFixed(0)} ms, decode ${row.cacheDecodeTokPerS!.toFixed(1)} tok/s)\n` +
          `  speedup ${row.speedup!.toFixed(1)}x; same greedy tokens: ${same}`,
    ];
    process.stderr.write(lines.join('\n') + '\n');
    if (a.json === '-') process.stdout.write(JSON.stringify(row) + '\n');
    else if (a.json) writeFileSync(a.json, JSON.stringify(row, null, 2) + '\n');
    if (same === false) process.exitCode = 1;
  } finally {
    await ops.dispose();
  }
}

void runIfMain(import.meta.url, 'generate-bench', async () => {
  await main();
});
