/**
 * GPT-2 training on the WebGPU ops (issue #13 "Performance"), in one process:
 *   1. the fp32 WGSL matmul ceiling: WebGpuOps.matmul itself (the tiled kernel the model uses, sizes as
 *      uniforms) on big square products, NN and the model's two transposed forms, TFLOP/s = 2 S^3 / t
 *      (best of --reps after a warm-up, each timed to the GPU's completion);
 *   2. the GPT-2 training step of ../gpt2/train-bench.ts (zero grads, forward with the loss read back,
 *      backward, global-norm clip at 1.0, AdamW, compute-copy refresh; random tokens; the same FLOP
 *      count, transformer's trainingFlopsPerToken) for each --configs entry in fp32: tokens/s, ms/step,
 *      model TFLOP/s, and one more step under transformer's profileOps, each op timed to the GPU's
 *      completion through WebGpuOps.synchronize. (Its own loop rather than runTrainBench: bundled into
 *      one .mjs, train-bench.ts's "am I the entry point" check would start its CLI too.)
 *   3. a table: model TFLOP/s as a fraction of the ceiling measured in the same run (the issue's bar: 40%
 *      for gpt2-124m, goal 60%).
 *
 *   node dist/webgpu/train-ops-bench.js [--configs tiny,small,gpt2-124m] [--batch 8] [--seq 1024]
 *        [--steps 5] [--warmup 2] [--sizes 2048,4096] [--json out.json]
 *   (bundled for the GPU machine: apps/bench/src/webgpu/ops-device.sh)
 */
import { writeFileSync } from 'node:fs';
import { createRng } from '@flashattn/core';
import {
  AdamW,
  clipGradNorm,
  GPT2,
  profileOps,
  trainingFlopsPerToken,
  type OpProfileReport,
} from '@flashattn/transformer';
import { createWebGpuOps, type WebGpuOps } from '@flashattn/webgpu';
import { matmulV4Program } from '@flashattn/webgpu/kernels';
import { parseArgsOrExit, type ArgSchema } from '../lib/args.js';
import { BENCH_CONFIG_NAMES, BENCH_CONFIGS, type BenchConfigName } from '../gpt2/configs.js';
import { isMain } from '../lib/is-main.js';

const SCHEMA = {
  configs: {
    type: 'string',
    default: 'tiny,small,gpt2-124m',
    help: `comma-separated: ${BENCH_CONFIG_NAMES.join(', ')}`,
  },
  batch: { type: 'int', default: 8, min: 1, help: 'B' },
  seq: { type: 'int', default: 1024, min: 1, help: 'T' },
  warmup: { type: 'int', default: 2, min: 0, help: 'untimed steps' },
  steps: { type: 'int', default: 5, min: 1, help: 'timed steps' },
  sizes: { type: 'intList', default: [2048, 4096], min: 64, help: 'square matmul sizes S' },
  reps: { type: 'int', default: 5, min: 1, help: 'timed matmuls per size and form' },
  json: { type: 'string', help: 'write all results as JSON here' },
} as const satisfies ArgSchema;

export interface CeilingRow {
  S: number;
  /** NN / NT / TN: WebGpuOps.matmul; 'v4-baked': the repo's earlier ceiling kernel (sizes baked in). */
  form: 'NN' | 'NT' | 'TN' | 'v4-baked';
  ms: number;
  tflops: number;
}

/** The fp32 matmul ceiling: best of `reps` runs of out (S, S) = op(A) op(B) per size and form. */
export async function matmulCeiling(
  ops: WebGpuOps,
  sizes: readonly number[],
  reps: number,
  log: (s: string) => void,
): Promise<CeilingRow[]> {
  const rows: CeilingRow[] = [];
  const rng = createRng(7);
  for (const S of sizes) {
    const a = ops.alloc(S * S, 'float32'); // (S, S)
    const b = ops.alloc(S * S, 'float32'); // (S, S)
    const out = ops.alloc(S * S, 'float32'); // (S, S)
    try {
      const host = Float32Array.from({ length: S * S }, () => rng.normal());
      await ops.upload(a, host);
      await ops.upload(b, host);
      for (const form of ['NN', 'NT', 'TN'] as const) {
        const opts = { transA: form === 'TN', transB: form === 'NT' };
        ops.matmul(out, a, b, S, S, S, opts); // warm-up: pipeline compile
        await ops.synchronize();
        let best = Infinity;
        for (let r = 0; r < reps; r++) {
          const t0 = performance.now();
          ops.matmul(out, a, b, S, S, S, opts);
          await ops.synchronize();
          best = Math.min(best, performance.now() - t0);
        }
        const tflops = (2 * S ** 3) / (best / 1000) / 1e12;
        rows.push({ S, form, ms: best, tflops });
        log(`matmul ${form} S=${S}: ${best.toFixed(2)} ms, ${tflops.toFixed(2)} TFLOP/s`);
      }
      // For reference: baseline/matmul-v4.wgsl.ts (128 x 128 tiles, BK 8, sizes baked, no bounds
      // checks), the 32.2 TFLOP/s ceiling of BENCHMARKS.md (H100, 2026-11-21), on the same buffers.
      if (S % 128 === 0) {
        const program = matmulV4Program({ G: 2, BK: 8, M: S, N: S, K: S });
        const bufs = { A: a.gpuBuffer, Bm: b.gpuBuffer, C: out.gpuBuffer };
        const once = async (): Promise<void> => {
          ops.runtime.programs.run(ops.recorder.compute(), program, {}, bufs);
          ops.recorder.dispatched();
          await ops.synchronize();
        };
        await once();
        let best = Infinity;
        for (let r = 0; r < reps; r++) {
          const t0 = performance.now();
          await once();
          best = Math.min(best, performance.now() - t0);
        }
        const tflops = (2 * S ** 3) / (best / 1000) / 1e12;
        rows.push({ S, form: 'v4-baked', ms: best, tflops });
        log(
          `matmul v4-baked S=${S}: ${best.toFixed(2)} ms, ${tflops.toFixed(2)} TFLOP/s (reference)`,
        );
      }
    } finally {
      for (const x of [a, b, out]) ops.free(x);
    }
  }
  return rows;
}

export interface StepResult {
  config: BenchConfigName;
  params: number;
  batch: number;
  seq: number;
  msPerStep: number;
  tokensPerSec: number;
  modelTflops: number;
  losses: number[];
  /** Command buffers submitted per step (the recorder's batching). */
  submitsPerStep: number;
  profile: OpProfileReport & { stepMs: number };
}

/** Timed fp32 GPT-2 training steps on a fresh WebGpuOps (freed with it). */
export async function trainSteps(o: {
  config: BenchConfigName;
  batch: number;
  seq: number;
  warmup: number;
  steps: number;
  log: (s: string) => void;
}): Promise<StepResult> {
  const config = BENCH_CONFIGS[o.config];
  const [B, T] = [o.batch, o.seq];
  if (T > config.maxSeqLen) throw new RangeError(`--seq ${T} > ${config.maxSeqLen} positions`);
  const inner = await createWebGpuOps();
  try {
    const { ops, profile } = profileOps(inner);
    const model = new GPT2({ config, ops, seed: 1337, paramDType: 'float32' });
    const opt = new AdamW(ops, model.specs, model.paramsLength);
    const rng = createRng(1337 ^ 0x7f4a7c15);
    const V = config.vocabSize;
    const step = async (): Promise<number> => {
      const x = Int32Array.from({ length: B * T }, () => rng.int(V));
      const y = Int32Array.from({ length: B * T }, () => rng.int(V));
      await model.zeroGrad();
      const loss = await model.forward(x, y, B, T, true);
      await model.backward();
      await clipGradNorm(ops, model.grads, 1.0);
      await opt.step(model.params, model.grads, 6e-4);
      await model.syncParams();
      return loss;
    };
    o.log(
      `${o.config}: L=${config.nLayer} H=${config.nHead} C=${config.nEmbd} V=${V}, ${(model.numParams / 1e6).toFixed(2)}M params, B=${B} T=${T}, fp32, on ${inner.name}`,
    );
    for (let i = 0; i < o.warmup; i++) await step();
    await inner.synchronize();
    const losses: number[] = [];
    const s0 = inner.recorder.submits;
    const t0 = performance.now();
    for (let i = 0; i < o.steps; i++) losses.push(await step());
    await inner.synchronize();
    const msPerStep = (performance.now() - t0) / o.steps;
    const submitsPerStep = (inner.recorder.submits - s0) / o.steps;
    for (const l of losses) if (!Number.isFinite(l)) throw new Error(`loss ${l} in a timed step`);
    await profile.start();
    const p0 = performance.now();
    await step();
    await inner.synchronize();
    const stepMs = performance.now() - p0;
    profile.stop();
    const tokensPerSec = (B * T) / (msPerStep / 1000);
    const modelTflops = (tokensPerSec * trainingFlopsPerToken(config, T)) / 1e12;
    const r: StepResult = {
      config: o.config,
      params: model.numParams,
      batch: B,
      seq: T,
      msPerStep,
      tokensPerSec,
      modelTflops,
      losses,
      submitsPerStep,
      profile: { ...profile.report(), stepMs },
    };
    o.log(
      `${o.config}: ${msPerStep.toFixed(1)} ms/step, ${tokensPerSec.toFixed(0)} tokens/s, ${modelTflops.toFixed(2)} TFLOP/s, ${submitsPerStep.toFixed(1)} command buffers/step, losses ${losses.map((l) => l.toFixed(3)).join(' ')}`,
    );
    const byOp = Object.entries(r.profile.byOp).sort((a, b) => b[1].ms - a[1].ms);
    o.log(
      `  profile (one step, ${stepMs.toFixed(1)} ms with a GPU drain around every op; ${r.profile.totalMs.toFixed(1)} ms in ops):`,
    );
    for (const [name, e] of byOp) {
      o.log(
        `    ${name.padEnd(22)} ${e.ms.toFixed(2).padStart(9)} ms ${String(e.calls).padStart(5)} calls ${((100 * e.ms) / r.profile.totalMs).toFixed(1).padStart(5)}%`,
      );
    }
    return r;
  } finally {
    await inner.dispose();
  }
}

async function main(): Promise<void> {
  const args = parseArgsOrExit(process.argv.slice(2), SCHEMA, 'train-ops-bench');
  const configs = args.configs.split(',').map((s) => s.trim()) as BenchConfigName[];
  for (const c of configs) {
    if (!BENCH_CONFIG_NAMES.includes(c))
      throw new Error(`--configs: unknown ${c} (${BENCH_CONFIG_NAMES.join(', ')})`);
  }
  const log = (s: string): void => void process.stdout.write(s + '\n');
  const ops = await createWebGpuOps();
  log(`webgpu train-ops-bench ${new Date().toISOString()} on ${ops.name}`);
  let ceiling: CeilingRow[];
  try {
    ceiling = await matmulCeiling(ops, args.sizes, args.reps, log);
  } finally {
    await ops.dispose();
  }
  const best = Math.max(...ceiling.filter((r) => r.form === 'NN').map((r) => r.tflops));
  const runs: { config: string; result?: StepResult; error?: string }[] = [];
  for (const config of configs) {
    try {
      const result = await trainSteps({
        config,
        batch: args.batch,
        seq: args.seq,
        warmup: args.warmup,
        steps: args.steps,
        log,
      });
      runs.push({ config, result });
    } catch (e) {
      const error = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
      log(`${config}: FAILED ${error}`);
      runs.push({ config, error });
    }
  }
  log(`\nfp32 WGSL matmul ceiling (NN, best size): ${best.toFixed(2)} TFLOP/s`);
  log('config      B x T        ms/step   tokens/s   model TFLOP/s   of ceiling');
  for (const r of runs) {
    if (!r.result) {
      log(`${r.config.padEnd(11)} failed: ${r.error}`);
      continue;
    }
    const x = r.result;
    log(
      `${r.config.padEnd(11)} ${`${x.batch} x ${x.seq}`.padEnd(12)} ${x.msPerStep.toFixed(1).padStart(8)} ${x.tokensPerSec.toFixed(0).padStart(10)} ${x.modelTflops.toFixed(2).padStart(15)} ${((100 * x.modelTflops) / best).toFixed(1).padStart(11)}%`,
    );
  }
  if (args.json) {
    writeFileSync(
      args.json,
      JSON.stringify(
        { date: new Date().toISOString(), ceiling, ceilingTflops: best, runs },
        null,
        2,
      ),
    );
  }
}

if (isMain(import.meta.url)) {
  main().catch((e: unknown) => {
    console.error(e);
    process.exit(1);
  });
}
