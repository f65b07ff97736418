/**
 * The inference conformance suite (KV cache, split-KV, combine, varlen forward and backward, typed
 * rejections) on the WebGPU backend through Dawn, for the GPU machine (decode-device.sh), where
 * float16 is read as native f16 (shader-f16) instead of the packed words SwiftShader's tests use; the
 * KV-cache scenarios run again on the staged-K kernel variant (kvStageK).
 * One line per scenario (its worst check per output), a summary, the results as JSON.
 *
 *   node inference-conformance.mjs [out.json] [seed]
 * Exit status 1 when a scenario fails.
 */
import { writeFileSync } from 'node:fs';
import { freshSeed } from '@flashattn/core';
import {
  COMBINE_SCENARIOS,
  KV_CACHE_SCENARIOS,
  runCombineScenario,
  runKvCacheRejections,
  runKvCacheScenario,
  runVarlenRejections,
  runVarlenScenario,
  VARLEN_SCENARIOS,
  type InferenceResult,
} from '@flashattn/conformance';
import { createWebGPUBackend } from '@flashattn/webgpu';

async function main(): Promise<void> {
  const [out = 'inference-conformance.json', seedArg] = process.argv.slice(2);
  const seed = seedArg ? Number(seedArg) >>> 0 : freshSeed();
  const be = await createWebGPUBackend();
  const results: InferenceResult[] = [];
  const report = (r: InferenceResult) => {
    results.push(r);
    console.log(r.pass ? r.message.split('\n')[0] : r.message);
  };
  try {
    console.log(`${be.name} nativeF16=${be.nativeF16} seed=${seed}`);
    for (const s of KV_CACHE_SCENARIOS) report(await runKvCacheScenario(be, s, seed));
    for (const s of COMBINE_SCENARIOS) report(await runCombineScenario(be, s, seed));
    report(await runKvCacheRejections(be, seed));
    for (const s of VARLEN_SCENARIOS) report(await runVarlenScenario(be, s, seed));
    report(await runVarlenRejections(be, seed));
    // the staged-K kv-cache-attention variant (decode-bench.ts --kernels staged) on the KV scenarios
    const staged = await createWebGPUBackend({ kvStageK: true });
    try {
      for (const s of KV_CACHE_SCENARIOS) {
        const r = await runKvCacheScenario(staged, s, seed);
        report({
          ...r,
          id: `${r.id} [staged K]`,
          message: r.message.replace(/\n|$/, ' [staged K]$&'),
        });
      }
    } finally {
      staged.dispose();
    }
    const failed = results.filter((r) => !r.pass).length;
    console.log(`${results.length - failed} passed, ${failed} failed`);
    writeFileSync(out, JSON.stringify({ backend: be.name, seed, results }, null, 1));
    process.exitCode = failed ? 1 : 0;
  } finally {
    be.dispose();
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
