/**
 * The 100-step loss curve against PyTorch (issue #10 "Correctness"), beside the one-step parity harness
 * (train-parity.ts). device.sh runs the steps as `curve`:
 *   node train-curve.mjs inputs --config gpt2-124m --batch 4 --seq 1024 --steps 100 --dir D [--lr 6e-4]
 *       our initialisation (GPT2 from --seed, on the CPU ops) as our checkpoint (D/checkpoint.safetensors,
 *       Hugging Face names) and the curve's data (D/curve-data.safetensors: curve.x, curve.y (S, B, T) int32,
 *       curve.stream; the metadata's `curve` JSON: config, learning rate of every step, AdamW, clip; see
 *       curve-data.ts)
 *   node train-curve.mjs train --backend cuda --dtype bf16 --dir D          -> D/ours-bf16.json
 *       ours: loads the checkpoint on the backend and trains the S steps (curve-train.ts)
 *   python3 packages/transformer/parity/hf_train_curve.py D --modes fp64,fp32,bf16   -> D/torch-<mode>.json
 *       Hugging Face GPT2LMHeadModel from the same checkpoint, torch.optim.AdamW, clip_grad_norm_
 *   node train-curve.mjs compare --dir D [--plot D/curve.png]
 *       judges each of our curves by curve-rule.ts, prints the bound and the measured maximum differences,
 *       draws the curves (and their distance from the oracle) with the trainer's plotter; exit 1 on a FAIL
 *   node train-curve.mjs golden --dir D --out F.json
 *       packs a small run (curve-tiny) into the committed golden that train-curve.test.ts checks on the CPU
 */
import { readdirSync, readFileSync, writeFileSync, mkdirSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { resolveBackend, type Ops } from '@flashattn/core';
import '@flashattn/cpu/provider';
import '@flashattn/cuda/provider';
import '@flashattn/webgpu/provider';
import { lineChart, saveChart, type Series } from '@flashattn/plot';
import {
  encodeSafetensors,
  GPT2,
  loadCheckpointBytes,
  parseSafetensors,
  saveCheckpoint,
  writeFileAtomic,
} from '@flashattn/transformer';
import { parseArgsOrExit, type ArgSchema } from '../lib/args.js';
import { runIfMain } from '../lib/is-main.js';
import { COMPUTE_DTYPE_FLAGS, computeDTypeFor, type ComputeDTypeFlag } from './configs.js';
import {
  brownStream,
  curveBatches,
  curveSpec,
  CURVE_CONFIG_NAMES,
  type CurveConfigName,
  type CurveSpec,
} from './curve-data.js';
import { formatCurveVerdict, judgeCurve, type Curve, type CurveJudgement } from './curve-rule.js';
import { devicePeakMemory, type DevicePeak } from './device-memory.js';
import { trainCurve } from './curve-train.js';

/** Sum and sum of squares (float64, in parameter order) of the initial weights: the golden's check that
 * GPT2's init from the seed still gives the weights PyTorch started from. */
export interface InitFingerprint {
  n: number;
  sum: number;
  sumSquares: number;
}

export function fingerprint(values: ArrayLike<number>): InitFingerprint {
  let sum = 0;
  let sumSquares = 0;
  for (let i = 0; i < values.length; i++) {
    sum += values[i]!;
    sumSquares += values[i]! * values[i]!;
  }
  return { n: values.length, sum, sumSquares };
}

export interface CurveData {
  spec: CurveSpec;
  x: Int32Array; // (S, B, T)
  y: Int32Array; // (S, B, T)
  stream: Int32Array; // (S B T + 1)
  init: InitFingerprint;
}

/** Our initial checkpoint and the curve's data in D (see the header). */
export async function writeCurveInputs(o: {
  config: CurveConfigName;
  batch: number;
  seq: number;
  steps: number;
  seed: number;
  lr: number;
  warmup?: number;
  dir: string;
}): Promise<CurveData> {
  const spec = curveSpec(o);
  const stream = brownStream(spec.config.vocabSize, spec.steps, spec.batch, spec.seq);
  const { x, y } = curveBatches(stream, spec.steps, spec.batch, spec.seq);
  const { value: ops } = await resolveBackend<Ops<unknown>>('cpu', { need: 'ops' });
  let init: InitFingerprint;
  try {
    const model = new GPT2({ config: spec.config, ops, seed: spec.seed });
    init = fingerprint(await model.getParams());
    mkdirSync(o.dir, { recursive: true });
    await saveCheckpoint(join(o.dir, 'checkpoint.safetensors'), model, null, {
      step: 0,
      dataPosition: 0,
      rngState: 0,
    });
  } finally {
    await ops.dispose();
  }
  const SBT = [spec.steps, spec.batch, spec.seq];
  writeFileAtomic(
    join(o.dir, 'curve-data.safetensors'),
    encodeSafetensors(
      new Map([
        ['curve.x', { shape: SBT, data: x }],
        ['curve.y', { shape: SBT, data: y }],
        ['curve.stream', { shape: [stream.length], data: stream }],
      ]),
      { curve: JSON.stringify(spec), init: JSON.stringify(init) },
    ),
  );
  return { spec, x, y, stream, init };
}

export function readCurveData(dir: string): CurveData {
  const path = join(dir, 'curve-data.safetensors');
  const f = parseSafetensors(readFileSync(path), path);
  const get = (k: string): Int32Array => {
    const t = f.tensors.get(k);
    if (!t || !(t.data instanceof Int32Array)) throw new Error(`${path}: no int32 tensor ${k}`);
    return t.data;
  };
  return {
    spec: JSON.parse(f.metadata['curve'] ?? 'null') as CurveSpec,
    x: get('curve.x'),
    y: get('curve.y'),
    stream: get('curve.stream'),
    init: JSON.parse(f.metadata['init'] ?? 'null') as InitFingerprint,
  };
}

export interface OursCurve extends Curve {
  backend: string;
  ops: string;
  dtype: ComputeDTypeFlag;
  date: string;
  seconds: number;
  /** The backend's own peak memory over the run (device-memory.ts), where it can tell. */
  peakMemory: DevicePeak | null;
  /** The backend's whole memoryStats() answer where it has one (CudaOps: pool and outside-pool bytes). */
  memoryStats: unknown;
}

/** Ours: D's checkpoint on the backend, trained over D's batches (curve-train.ts). */
export async function trainOurs(o: {
  backend: string;
  dtype: ComputeDTypeFlag;
  dir: string;
  options?: Record<string, unknown>;
  log?: (s: string) => void;
}): Promise<OursCurve> {
  const data = readCurveData(o.dir);
  const ckptPath = join(o.dir, 'checkpoint.safetensors');
  const { value: ops, provider } = await resolveBackend<Ops<unknown>>(o.backend, {
    need: 'ops',
    options: o.options,
  });
  try {
    const computeDType = computeDTypeFor(o.dtype, ops);
    const model = new GPT2({ config: data.spec.config, ops, paramDType: 'float32', computeDType });
    await loadCheckpointBytes(readFileSync(ckptPath), ckptPath, model);
    const t0 = performance.now();
    const run = await trainCurve({
      ops,
      model,
      spec: data.spec,
      x: data.x,
      y: data.y,
      log: (s, loss, norm) => {
        if (o.log && (s % 10 === 0 || s === data.spec.steps - 1))
          o.log(`ours ${o.dtype} step ${s}: loss ${loss.toFixed(6)} norm ${norm.toFixed(4)}`);
      },
    });
    return {
      backend: provider.name,
      ops: ops.name,
      dtype: o.dtype,
      date: new Date().toISOString(),
      seconds: (performance.now() - t0) / 1000,
      peakMemory: await devicePeakMemory(ops),
      memoryStats: await memoryStatsOf(ops),
      ...run,
    };
  } finally {
    await ops.dispose();
  }
}

async function memoryStatsOf(ops: object): Promise<unknown> {
  const f = (ops as { memoryStats?: () => unknown }).memoryStats;
  return typeof f === 'function' ? await f.call(ops) : null;
}

type TorchMode = 'fp64' | 'fp32' | 'bf16';
const TORCH_MODES: TorchMode[] = ['fp64', 'fp32', 'bf16'];

function readJson<T>(path: string): T | null {
  return existsSync(path) ? (JSON.parse(readFileSync(path, 'utf8')) as T) : null;
}

/** PyTorch's curves in D (hf_train_curve.py's torch-<mode>.json), by mode. */
export function readTorchCurves(
  dir: string,
): Partial<Record<TorchMode, Curve & Record<string, unknown>>> {
  const out: Partial<Record<TorchMode, Curve & Record<string, unknown>>> = {};
  for (const m of TORCH_MODES) {
    const c = readJson<Curve & Record<string, unknown>>(join(dir, `torch-${m}.json`));
    if (c) out[m] = c;
  }
  return out;
}

/** The loss curves, and each one's distance from the oracle per step (log scale), with the trainer's plotter. */
export function plotCurves(
  path: string,
  title: string,
  curves: Array<{ name: string; curve: Curve; dashed?: boolean }>,
  oracle: Curve | null,
): string[] {
  const pts = (l: number[]): Array<[number, number]> => l.map((v, s) => [s + 1, v]);
  const series: Series[] = curves.map((c) => ({
    name: c.name,
    points: pts(c.curve.losses),
    markers: false,
    ...(c.dashed ? { dashed: true } : {}),
  }));
  const written = [
    saveChart(path, lineChart({ title, xLabel: 'step', yLabel: 'loss (nats/token)', series })),
  ];
  if (oracle) {
    const diff: Series[] = curves
      .filter((c) => c.curve !== oracle)
      .map((c) => ({
        name: c.name,
        // |loss - oracle|, floored at 1e-9 so a step that agrees exactly stays on the log axis
        points: c.curve.losses.map(
          (v, s) => [s + 1, Math.max(1e-9, Math.abs(v - oracle.losses[s]!))] as [number, number],
        ),
        markers: false,
        ...(c.dashed ? { dashed: true } : {}),
      }));
    const diffPath = path.replace(/\.png$/i, '-diff.png');
    written.push(
      saveChart(
        diffPath,
        lineChart({
          title: `${title}: |loss - oracle|`,
          xLabel: 'step',
          yLabel: '|loss - oracle| (nats)',
          series: diff,
          logY: true,
        }),
      ),
    );
  }
  return written;
}

export interface CompareResult {
  spec: CurveSpec;
  verdicts: CurveJudgement[];
  plots: string[];
  pass: boolean;
}

/** Judge every ours-<dtype>.json in D against D's PyTorch curves; plot them all. */
export function compareCurves(o: { dir: string; plot?: string }): CompareResult {
  const data = readCurveData(o.dir);
  const torch = readTorchCurves(o.dir);
  const ours = readdirSync(o.dir)
    .filter((f) => /^ours-(fp32|bf16|fp16)\.json$/.test(f))
    .sort()
    .map((f) => readJson<OursCurve>(join(o.dir, f))!);
  const verdicts = ours.map((c) => judgeCurve(c.dtype, c, torch));
  const curves = [
    ...TORCH_MODES.filter((m) => torch[m]).map((m) => ({
      name: `torch ${m}`,
      curve: torch[m]!,
      dashed: true,
    })),
    ...ours.map((c) => ({ name: `ours ${c.dtype} (${c.backend})`, curve: c as Curve })),
  ];
  const s = data.spec;
  const plots = o.plot
    ? plotCurves(
        o.plot,
        `${s.configName} B=${s.batch} T=${s.seq}, ${s.steps} steps: ours vs PyTorch`,
        curves,
        torch.fp64 ?? torch.fp32 ?? null,
      )
    : [];
  const judged = verdicts.filter((v) => !('skipped' in v));
  return {
    spec: s,
    verdicts,
    plots,
    pass: judged.length > 0 && judged.every((v) => 'pass' in v && v.pass),
  };
}

/** The committed golden: the spec, the tokens, the init's fingerprint and PyTorch's curves. */
export interface CurveGolden {
  about: string;
  command: string;
  spec: CurveSpec;
  init: InitFingerprint;
  /** The first S B T + 1 tokens of the stream (curveBatches gives every step's x and y). */
  stream: number[];
  torch: Partial<Record<TorchMode, Curve & Record<string, unknown>>>;
}

export function packGolden(dir: string, command: string): CurveGolden {
  const data = readCurveData(dir);
  return {
    about:
      'PyTorch (Hugging Face GPT2LMHeadModel, torch.optim.AdamW, clip_grad_norm_) loss curves from our initialisation ' +
      '(GPT2 init from spec.seed; init = its fingerprint) over the Brown-corpus batches of `stream`; ' +
      'written by apps/bench/src/gpt2/train-curve.ts golden, checked by train-curve.test.ts',
    command,
    spec: data.spec,
    init: data.init,
    stream: Array.from(data.stream),
    torch: readTorchCurves(dir),
  };
}

const SCHEMA = {
  config: {
    type: 'enum',
    values: CURVE_CONFIG_NAMES,
    default: 'gpt2-124m',
    help: 'inputs: model shape',
  },
  batch: { type: 'int', default: 4, min: 1, help: 'inputs: B' },
  seq: { type: 'int', default: 1024, min: 1, help: 'inputs: T' },
  steps: { type: 'int', default: 100, min: 1, help: 'inputs: optimizer steps' },
  lr: {
    type: 'number',
    default: 6e-4,
    min: 0,
    help: "inputs: peak learning rate (the trainer's gpt2-124m)",
  },
  warmup: {
    type: 'int',
    min: 0,
    help: "inputs: warmup steps (default the trainer's: min(100, steps / 10))",
  },
  seed: { type: 'int', default: 1337, min: 0, help: 'inputs: init seed' },
  dir: { type: 'string', default: 'curve-work', help: 'folder of checkpoint, data and curves' },
  backend: { type: 'string', default: 'cuda', help: 'train: backend' },
  dtype: {
    type: 'enum',
    values: COMPUTE_DTYPE_FLAGS,
    default: 'bf16',
    help: 'train: compute dtype',
  },
  json: {
    type: 'string',
    help: 'train: write our curve here (default D/ours-<dtype>.json); compare: the verdicts',
  },
  plot: { type: 'string', help: 'compare: PNG of the curves (and <name>-diff.png)' },
  out: { type: 'string', help: 'golden: the golden JSON to write' },
  command: { type: 'string', help: 'golden: how the golden was made (recorded in it)' },
} as const satisfies ArgSchema;

async function main(): Promise<number> {
  const [mode, ...rest] = process.argv.slice(2);
  const a = parseArgsOrExit(rest, SCHEMA, `train-curve ${mode ?? '<inputs|train|compare|golden>'}`);
  if (mode === 'inputs') {
    const d = await writeCurveInputs({
      config: a.config,
      batch: a.batch,
      seq: a.seq,
      steps: a.steps,
      seed: a.seed,
      lr: a.lr,
      dir: a.dir,
      ...(a.warmup !== undefined ? { warmup: a.warmup } : {}),
    });
    const s = d.spec;
    console.log(
      `wrote ${a.dir}/checkpoint.safetensors and curve-data.safetensors: ${s.configName}, B=${s.batch} T=${s.seq}, ${s.steps} steps, ` +
        `lr ${s.schedule.maxLr} (warmup ${s.schedule.warmup}, cosine to ${s.schedule.minLr}), AdamW ${JSON.stringify(s.adamw)}, clip ${s.clip}; ${s.data}`,
    );
    return 0;
  }
  if (mode === 'train') {
    const r = await trainOurs({
      backend: a.backend,
      dtype: a.dtype,
      dir: a.dir,
      log: (s) => console.log(s),
    });
    const out = a.json ?? join(a.dir, `ours-${a.dtype}.json`);
    writeFileSync(out, JSON.stringify(r) + '\n');
    const peak = r.peakMemory
      ? `, backend peak ${(r.peakMemory.bytes / 2 ** 20).toFixed(0)} MiB (${r.peakMemory.source})`
      : '';
    console.log(
      `ours ${a.dtype} on ${r.ops}: ${r.losses.length} steps in ${r.seconds.toFixed(1)} s, last loss ${r.losses.at(-1)!.toFixed(4)}${peak} -> ${out}`,
    );
    return 0;
  }
  if (mode === 'compare') {
    const r = compareCurves({ dir: a.dir, ...(a.plot ? { plot: a.plot } : {}) });
    const ops = (dt: string): string =>
      readJson<OursCurve>(join(a.dir, `ours-${dt}.json`))?.ops ?? '';
    for (const v of r.verdicts) console.log(formatCurveVerdict(v, ops(v.dtype)));
    if (r.plots.length) console.log(`plots: ${r.plots.join(', ')}`);
    if (a.json) writeFileSync(a.json, JSON.stringify(r, null, 2) + '\n');
    return r.pass ? 0 : 1;
  }
  if (mode === 'golden') {
    if (!a.out) throw new Error('golden: --out <file.json> is required');
    const g = packGolden(a.dir, a.command ?? process.argv.slice(1).join(' '));
    writeFileSync(a.out, JSON.stringify(g) + '\n');
    console.log(
      `wrote ${a.out}: torch curves ${Object.keys(g.torch).join(', ')}, ${g.stream.length} tokens`,
    );
    return 0;
  }
  process.stderr.write('usage: train-curve inputs|train|compare|golden [flags] (--help)\n');
  return 2;
}

void runIfMain(import.meta.url, 'train-curve', main);
