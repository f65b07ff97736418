/**
 * Our GPT-2 training step on one backend (issue #10 / #13 "Performance"): warmup steps, then N timed steps
 * of the trainer's step (zero grads, forward with the loss read back, backward, global-norm clip at 1.0,
 * AdamW, refresh the compute copy), then one extra step with the per-op profile on. Reports tokens/s,
 * ms/step, model TFLOP/s and MFU (FLOPs: @flashattn/transformer trainingFlopsPerToken, the FA2 end-to-end
 * convention the PyTorch peer restates), peak memory (the model's bytes through Ops.alloc, and the
 * backend's own peak where it has a query: device-memory.ts), and the per-op breakdown.
 *
 *   node dist/gpt2/train-bench.js [--backend cuda|webgpu|cpu|auto] [--config gpt2-124m] [--batch 16]
 *        [--seq 1024] [--dtype bf16] [--warmup 3] [--steps 10] [--unfused-gelu] [--graphs] [--host-delay-us 0]
 *        [--json out.json]
 *   (bundled for the GPU machine: node .bundle-gpt2/train-bench.mjs ..., see bundle.mjs and device.sh)
 *
 * Data: uniformly random token ids from a seeded RNG (fresh per step); throughput does not depend on
 * the values. Learning rate constant 6e-4, AdamW (0.9, 0.95, eps 1e-8, weight decay 0.1 on matrices),
 * the same as the PyTorch peer.
 */
import { writeFileSync } from 'node:fs';
import { createRng, resolveBackend, type Ops } from '@flashattn/core';
// The providers are imported, not discovered, so the bundle (no node_modules) has them all.
import '@flashattn/cpu/provider';
import '@flashattn/cuda/provider';
import '@flashattn/webgpu/provider';
import {
  AdamW,
  clipGradNorm,
  GPT2,
  GraphedTrainStep,
  lookupPeakTflops,
  numParams,
  profileOps,
  trainingFlopsPerToken,
  type OpProfileReport,
} from '@flashattn/transformer';
import { parseArgsOrExit, type ArgSchema } from '../lib/args.js';
import { median } from '../lib/timing.js';
import {
  BENCH_CONFIG_NAMES,
  BENCH_CONFIGS,
  COMPUTE_DTYPE_FLAGS,
  computeDTypeFor,
  type BenchConfigName,
  type ComputeDTypeFlag,
} from './configs.js';
import { devicePeakMemory } from './device-memory.js';
import { withHostDelay } from './host-delay.js';
import { runIfMain } from '../lib/is-main.js';

export const TRAIN_BENCH_SCHEMA = {
  backend: {
    type: 'string',
    default: 'cuda',
    help: "cuda, webgpu, cpu or 'auto' (core's registry)",
  },
  config: { type: 'enum', values: BENCH_CONFIG_NAMES, default: 'gpt2-124m', help: 'model shape' },
  batch: { type: 'int', default: 16, min: 1, help: 'B, sequences per step' },
  seq: {
    type: 'int',
    default: 1024,
    min: 1,
    help: 'T, tokens per sequence (<= the config positions)',
  },
  dtype: {
    type: 'enum',
    values: COMPUTE_DTYPE_FLAGS,
    default: 'bf16',
    help: 'compute dtype (fp32 masters and AdamW state)',
  },
  warmup: { type: 'int', default: 3, min: 0, help: 'untimed steps first' },
  steps: { type: 'int', default: 10, min: 1, help: 'timed steps' },
  profile: {
    type: 'boolean',
    default: true,
    help: 'one extra step with the per-op profile (--no-profile: none)',
  },
  attention: {
    type: 'enum',
    values: ['flash', 'standard'],
    default: 'flash',
    help: 'CPU backend option',
  },
  threads: { type: 'int', min: 1, help: 'CPU backend threads' },
  unfusedGelu: {
    type: 'boolean',
    default: false,
    help: "CUDA backend option: the matmul and the GELU kernel in turn instead of cuBLASLt's GELU epilogues (createCudaOps({ fusedGelu: false }))",
  },
  graphs: {
    type: 'boolean',
    default: false,
    help: 'time the graphed step (GraphedTrainStep: the step recorded once and replayed, loss and clip on the device; the backend needs OpsGraphs and DeviceStepOps, e.g. cuda); the profile stays one eager step',
  },
  hostDelayUs: {
    type: 'number',
    default: 0,
    min: 0,
    help: 'busy host microseconds before every op call (the CUDA-graphs slack test: host-delay.ts)',
  },
  peakTflops: {
    type: 'number',
    min: 0,
    help: 'device peak for MFU (default: looked up from the device name)',
  },
  seed: { type: 'int', default: 1337, min: 0, help: 'init and data seed' },
  json: { type: 'string', help: "write the result as JSON here ('-' = stdout)" },
} as const satisfies ArgSchema;

export interface TrainBenchOptions {
  backend: string;
  config: BenchConfigName;
  batch: number;
  seq: number;
  dtype: ComputeDTypeFlag;
  warmup: number;
  steps: number;
  profile: boolean;
  attention?: 'flash' | 'standard';
  threads?: number;
  /** CUDA: cuBLASLt's GELU_AUX_BIAS / DGELU epilogues (true, the backend's default) or the matmul and the GELU kernel. */
  fusedGelu?: boolean;
  /** Busy host time before every op call (host-delay.ts); 0: none. */
  hostDelayUs?: number;
  /** Time the graphed step (GraphedTrainStep) instead of the eager one. */
  graphs?: boolean;
  peakTflops?: number;
  seed?: number;
  log?: (line: string) => void;
}

export interface TrainBenchResult {
  date: string;
  node: string;
  backend: string;
  ops: string;
  /** CUDA with cuBLASLt's GELU epilogues (the default; false with --unfused-gelu and on other backends). */
  fusedGelu: boolean;
  /** --host-delay-us and the op calls of one timed step (the added host time per step is their product). */
  hostDelayUs: number;
  /** The timed steps were graphed (GraphedTrainStep): the recordings made and their CUDA graph nodes. */
  graphs: { micro: number; optimizer: number; nodes: number } | null;
  opCallsPerStep: number;
  /** The host's wait for read-backs per timed step (host-delay.ts): how far it ran ahead of the GPU. */
  hostWaitMsPerStep: number;
  decisions: string[];
  config: BenchConfigName;
  params: number;
  vocab: number;
  batch: number;
  seq: number;
  dtype: string;
  warmup: number;
  steps: number;
  /** Wall time of the N timed steps (device drained at the end) / N. */
  msPerStep: number;
  /** Median of the per-step wall times (each step ends at its last host read-back, the grad norm). */
  msPerStepMedian: number;
  tokensPerSec: number;
  flopsPerToken: number;
  modelTflops: number;
  peakTflops: number | null;
  mfu: number | null;
  mfuNote: string;
  /** Losses of the timed steps (finite, random data: about ln V). */
  losses: number[];
  /** Peak bytes held by the model's buffers (through Ops.alloc). */
  peakAllocBytes: number;
  /** The backend's own peak, where it can tell (duck-typed), else null. */
  peakDeviceBytes: number | null;
  peakDeviceSource: string | null;
  /** Per-op breakdown of one extra step, and that step's wall time; null with --no-profile. */
  profile: (OpProfileReport & { stepMs: number }) | null;
}

export async function runTrainBench(o: TrainBenchOptions): Promise<TrainBenchResult> {
  const log = o.log ?? ((s: string) => void process.stdout.write(s + '\n'));
  const config = BENCH_CONFIGS[o.config];
  const [B, T] = [o.batch, o.seq];
  if (T > config.maxSeqLen)
    throw new RangeError(`--seq ${T} exceeds ${o.config}'s ${config.maxSeqLen} positions`);
  const resolved = await resolveBackend<Ops<unknown>>(o.backend, {
    need: 'ops',
    optionsFor: {
      cpu: {
        attention: o.attention ?? 'flash',
        ...(o.threads !== undefined ? { threads: o.threads } : {}),
      },
      ...(o.fusedGelu !== undefined ? { cuda: { fusedGelu: o.fusedGelu } } : {}),
    },
  });
  const decisions = resolved.decisions.map(
    (d) => `${d.name}: ${d.taken ? 'taken' : 'passed over'} (${d.reason})`,
  );
  for (const d of decisions) log(`backend --${o.backend}: ${d}`);
  const inner = resolved.value;
  try {
    const computeDType = computeDTypeFor(o.dtype, inner);
    const delayed = withHostDelay(inner, o.hostDelayUs ?? 0);
    const { ops, profile } = profileOps(delayed.ops);
    const model = new GPT2({
      config,
      ops,
      seed: o.seed ?? 1337,
      paramDType: 'float32',
      computeDType,
    });
    const opt = new AdamW(ops, model.specs, model.paramsLength);
    const rng = createRng((o.seed ?? 1337) ^ 0x7f4a7c15);
    const V = config.vocabSize;
    const batch = (): { x: Int32Array; y: Int32Array } => ({
      x: Int32Array.from({ length: B * T }, () => rng.int(V)),
      y: Int32Array.from({ length: B * T }, () => rng.int(V)),
    });
    const graphed = o.graphs
      ? new GraphedTrainStep(model, opt, { B, T, K: 1, maxNorm: 1.0 })
      : null;
    const eagerStep = async (): Promise<number> => {
      const { x, y } = batch();
      await model.zeroGrad();
      const loss = await model.forward(x, y, B, T, true);
      await model.backward();
      await clipGradNorm(ops, model.grads, 1.0);
      await opt.step(model.params, model.grads, 6e-4);
      await model.syncParams();
      return loss;
    };
    const step = async (): Promise<number> =>
      graphed ? (await graphed.step([batch()], 6e-4)).loss : eagerStep();
    // Drain: the parameters' first element read back, after everything queued (in-order queues).
    const drain = async (): Promise<void> => {
      await ops.download(ops.view(model.params, 0, 1));
    };
    log(
      `gpt2 train-bench: ${o.config} (L=${config.nLayer} H=${config.nHead} C=${config.nEmbd} V=${V}, ${(numParams(config) / 1e6).toFixed(2)}M params), B=${B} T=${T}, ${o.dtype}, on ${inner.name}`,
    );
    for (let i = 0; i < o.warmup; i++) await step();
    await drain();
    const losses: number[] = [];
    const stepMs: number[] = [];
    delayed.reset();
    const t0 = performance.now();
    for (let i = 0; i < o.steps; i++) {
      const s0 = performance.now();
      losses.push(await step());
      stepMs.push(performance.now() - s0);
    }
    await drain();
    const msPerStep = (performance.now() - t0) / o.steps;
    const opCallsPerStep = Math.round(delayed.calls() / o.steps);
    const hostWaitMsPerStep = delayed.waitMs() / o.steps;
    for (const l of losses) if (!Number.isFinite(l)) throw new Error(`loss ${l} in a timed step`);
    let prof: TrainBenchResult['profile'] = null;
    if (o.profile) {
      await profile.start();
      const p0 = performance.now();
      await eagerStep();
      await drain();
      const ms = performance.now() - p0;
      profile.stop();
      prof = { ...profile.report(), stepMs: ms };
    }
    const tokens = B * T;
    const flopsPerToken = trainingFlopsPerToken(config, T);
    const tokensPerSec = tokens / (msPerStep / 1000);
    const modelTflops = (tokensPerSec * flopsPerToken) / 1e12;
    const deviceText = `${inner.name}; ${resolved.decisions.find((d) => d.taken)?.reason ?? ''}`;
    const peak =
      o.peakTflops !== undefined
        ? { tflops: o.peakTflops, source: '--peak-tflops' }
        : lookupPeakTflops(deviceText, computeDType);
    const mfuNote =
      peak.tflops === null
        ? `MFU omitted: ${'note' in peak ? peak.note : ''}`
        : `against ${peak.tflops} TFLOP/s (${'source' in peak ? peak.source : ''})`;
    const dev = await devicePeakMemory(inner);
    const result: TrainBenchResult = {
      date: new Date().toISOString(),
      node: process.version,
      backend: resolved.provider.name,
      ops: inner.name,
      fusedGelu: resolved.provider.name === 'cuda' && (o.fusedGelu ?? true),
      hostDelayUs: o.hostDelayUs ?? 0,
      graphs: graphed?.graphs ?? null,
      opCallsPerStep,
      hostWaitMsPerStep,
      decisions,
      config: o.config,
      params: model.numParams,
      vocab: V,
      batch: B,
      seq: T,
      dtype: o.dtype,
      warmup: o.warmup,
      steps: o.steps,
      msPerStep,
      msPerStepMedian: median(stepMs),
      tokensPerSec,
      flopsPerToken,
      modelTflops,
      peakTflops: peak.tflops,
      mfu: peak.tflops === null ? null : modelTflops / peak.tflops,
      mfuNote,
      losses,
      peakAllocBytes: profile.allocations().peakBytes,
      peakDeviceBytes: dev?.bytes ?? null,
      peakDeviceSource: dev?.source ?? null,
      profile: prof,
    };
    log(formatResult(result));
    return result;
  } finally {
    await inner.dispose();
  }
}

/** The human-readable summary: one line of rates, one of memory, the profile as a small table. */
export function formatResult(r: TrainBenchResult): string {
  const MiB = 2 ** 20;
  const lines = [
    `ours ${r.config} B=${r.batch} T=${r.seq} ${r.dtype} on ${r.ops}${r.fusedGelu ? ' (fused GELU)' : ''}${r.graphs ? ` (graphed: ${r.graphs.micro + r.graphs.optimizer} recordings, ${r.graphs.nodes} nodes)` : ''}: ${r.msPerStep.toFixed(2)} ms/step (median ${r.msPerStepMedian.toFixed(2)}), ` +
      `${Math.round(r.tokensPerSec)} tokens/s, ${r.modelTflops.toFixed(2)} model TFLOP/s, ` +
      (r.mfu !== null ? `MFU ${(100 * r.mfu).toFixed(1)}% ${r.mfuNote}` : r.mfuNote),
    `memory: model buffers peak ${(r.peakAllocBytes / MiB).toFixed(1)} MiB; backend peak ${r.peakDeviceBytes === null ? 'n/a (no memory query)' : `${(r.peakDeviceBytes / MiB).toFixed(1)} MiB (${r.peakDeviceSource})`}`,
    `losses ${r.losses.map((l) => l.toFixed(4)).join(' ')}`,
    `host: ${r.opCallsPerStep} op calls per step` +
      (r.hostDelayUs > 0
        ? `, ${r.hostDelayUs} us busy before each (+${((r.opCallsPerStep * r.hostDelayUs) / 1000).toFixed(2)} ms host time per step)`
        : '') +
      `; waited ${r.hostWaitMsPerStep.toFixed(2)} ms per step for read-backs (the host's lead on the device)`,
  ];
  if (r.profile) {
    const p = r.profile;
    lines.push(
      `profile of one step (${p.stepMs.toFixed(2)} ms wall with a drain around every op; ${p.drain} drain ${(p.drainMs * 1000).toFixed(0)} us subtracted per op):`,
    );
    const cats = Object.entries(p.categories).sort((a, b) => b[1] - a[1]);
    for (const [c, ms] of cats)
      lines.push(
        `  ${c.padEnd(13)} ${ms.toFixed(3).padStart(10)} ms  ${((100 * ms) / p.totalMs).toFixed(1).padStart(5)}%`,
      );
    lines.push(`  ${'sum'.padEnd(13)} ${p.totalMs.toFixed(3).padStart(10)} ms`);
  }
  return lines.join('\n');
}

async function main(): Promise<void> {
  const a = parseArgsOrExit(process.argv.slice(2), TRAIN_BENCH_SCHEMA, 'train-bench');
  const r = await runTrainBench({
    backend: a.backend,
    config: a.config,
    batch: a.batch,
    seq: a.seq,
    dtype: a.dtype,
    warmup: a.warmup,
    steps: a.steps,
    profile: a.profile,
    attention: a.attention,
    seed: a.seed,
    ...(a.threads !== undefined ? { threads: a.threads } : {}),
    ...(a.unfusedGelu ? { fusedGelu: false } : {}),
    ...(a.hostDelayUs > 0 ? { hostDelayUs: a.hostDelayUs } : {}),
    ...(a.graphs ? { graphs: true } : {}),
    ...(a.peakTflops !== undefined ? { peakTflops: a.peakTflops } : {}),
    ...(a.json === '-' ? { log: (s: string) => void process.stderr.write(s + '\n') } : {}),
  });
  if (a.json === '-') process.stdout.write(JSON.stringify(r) + '\n');
  else if (a.json) writeFileSync(a.json, JSON.stringify(r, null, 2) + '\n');
}

void runIfMain(import.meta.url, 'train-bench', async () => {
  await main();
  return 0;
});
