/**
 * GPT-2 generation on the CPU with and without the KV cache (issue #12): a prompt of P tokens, then N
 * new tokens sampled greedily, timed end to end through @flashattn/transformer's generate() on CpuOps.
 *   - no cache: every new token reruns the whole context (P + i tokens, padded to a multiple of 16);
 *   - cache:    one prefill of the P prompt tokens, then one token per step (GPT2.forwardCached: the
 *               attention appends k/v in place and decodes with split-KV over the worker threads).
 * Reports tokens/s over the whole call (prefill included) and, for the cache, the prefill time and
 * the decode rate alone. Random weights (throughput does not depend on them); both runs must produce
 * the same greedy tokens, which the script checks.
 * Run (repo root):
 *   npx -y pnpm@10.34.8 --filter @flashattn/bench... build
 *   node apps/bench/dist/cpu/generate-kv.js [--config small|tiny|gpt2-124m] [--prompt 512] [--new 64] [--threads N]
 */
import { availableParallelism, cpus } from 'node:os';
import { CpuOps } from '@flashattn/cpu';
import { createRng } from '@flashattn/core';
import { GPT2, GPT2_124M, generate, type GPT2Config } from '@flashattn/transformer';

// gpt2-train's presets (apps/gpt2-train/src/configs.ts) with their vocabularies.
const CONFIGS: Record<string, GPT2Config> = {
  tiny: { vocabSize: 2048, maxSeqLen: 1024, nLayer: 4, nHead: 4, nEmbd: 128 },
  small: { vocabSize: 8192, maxSeqLen: 1024, nLayer: 6, nHead: 6, nEmbd: 384 },
  'gpt2-124m': GPT2_124M,
};

function flag(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : def;
}

async function main(): Promise<void> {
  const known = new Set(['--config', '--prompt', '--new', '--threads']);
  for (let i = 2; i < process.argv.length; i += 2) {
    if (!known.has(process.argv[i]!))
      throw new Error(`unknown flag ${process.argv[i]} (known: ${[...known].join(' ')})`);
  }
  const name = flag('config', 'small');
  const config = CONFIGS[name];
  if (!config) throw new Error(`--config must be one of ${Object.keys(CONFIGS).join('|')}`);
  const P = Number(flag('prompt', '512'));
  const N = Number(flag('new', '64'));
  const threads = Number(flag('threads', String(availableParallelism())));
  if (P + N > config.maxSeqLen)
    throw new Error(`prompt + new = ${P + N} > maxSeqLen ${config.maxSeqLen}`);
  const ops = new CpuOps({ threads });
  const model = new GPT2({ config, ops, seed: 1 });
  const rng = createRng(2);
  const prompt = Array.from({ length: P }, () => rng.int(config.vocabSize));
  const greedy = { maxNewTokens: N, topK: 1, rng: createRng(3) };

  // warm up both paths (JIT, buffers) on a short prompt
  await generate(model, prompt.slice(0, 32), { ...greedy, maxNewTokens: 4, useCache: true });
  await generate(model, prompt.slice(0, 32), { ...greedy, maxNewTokens: 4, useCache: false });

  let t0 = performance.now();
  let tFirst = 0;
  const withCache = await generate(model, prompt, {
    ...greedy,
    useCache: true,
    onToken: () => void (tFirst ||= performance.now()),
  });
  const cacheMs = performance.now() - t0;
  const prefillMs = tFirst - t0; // prefill + the first token's sampling
  t0 = performance.now();
  const noCache = await generate(model, prompt, { ...greedy, useCache: false });
  const noCacheMs = performance.now() - t0;
  await ops.dispose();
  const same = withCache.every((t, i) => t === noCache[i]);
  const row = {
    date: new Date().toISOString(),
    machine: `${cpus()[0]?.model ?? 'cpu'} (${availableParallelism()} cores), Node ${process.versions.node}`,
    ops: ops.name,
    config: `${name} (L=${config.nLayer} H=${config.nHead} C=${config.nEmbd} V=${config.vocabSize})`,
    prompt: P,
    newTokens: N,
    noCacheTokPerS: N / (noCacheMs / 1e3),
    cacheTokPerS: N / (cacheMs / 1e3),
    cachePrefillMs: prefillMs,
    cacheDecodeTokPerS: (N - 1) / ((cacheMs - prefillMs) / 1e3),
    speedup: noCacheMs / cacheMs,
    sameTokens: same,
  };
  console.log(JSON.stringify(row));
  console.log(
    `${row.config}, prompt ${P}, ${N} new tokens, ${row.ops}\n` +
      `  no cache: ${row.noCacheTokPerS.toFixed(2)} tok/s (${(noCacheMs / 1e3).toFixed(1)} s)\n` +
      `  cache:    ${row.cacheTokPerS.toFixed(2)} tok/s (${(cacheMs / 1e3).toFixed(1)} s; prefill ${prefillMs.toFixed(0)} ms, decode ${row.cacheDecodeTokPerS.toFixed(1)} tok/s)\n` +
      `  speedup ${row.speedup.toFixed(1)}x; same greedy tokens: ${same}`,
  );
  if (!same) process.exitCode = 1;
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
