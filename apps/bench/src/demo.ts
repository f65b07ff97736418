/**
 * `pnpm demo`: reference attention (materialises S and P) against FlashAttention-2 on the best
 * available backend, printing time, GFLOP/s, memory and error per sequence length, and the IO
 * model's HBM traffic for the same problems on an H100. Progress goes to stderr, tables to stdout.
 *
 *   pnpm --filter @flashattn/bench demo -- --n 256,1024 --causal both --repeats 3 --json out.json --plot out.png
 *   pnpm --filter @flashattn/bench demo -- --large          # flash only at N = 32768, D = 64
 */
import { cpus } from 'node:os';
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { lineChart, saveChart, type Series } from '@flashattn/plot';
import { BackendUnavailableError, DTYPES, freshSeed } from '@flashattn/core';
import {
  runDemo,
  type CaseResult,
  type DemoResult,
  type LargeResult,
  type ModelResult,
} from './demo-run.js';
import { parseArgsOrExit, type ArgSchema } from './lib/args.js';
import { canCollect } from './lib/memory.js';
import { fmt, fmtBytes, formatMarkdownTable, formatTable, type Column } from './lib/table.js';
import { selectBackend } from './select-backend.js';

const schema = {
  n: {
    type: 'intList',
    default: [256, 512, 1024, 2048],
    min: 1,
    max: 1 << 20,
    help: 'sequence lengths (Nq = Nk)',
  },
  d: { type: 'int', default: 64, min: 1, max: 1024, help: 'head dimension D' },
  batch: { type: 'int', default: 1, min: 1, help: 'batch size B' },
  heads: {
    type: 'int',
    default: 1,
    min: 1,
    help: 'heads H (1 keeps the measured memory equal to the live peak)',
  },
  causal: { type: 'enum', values: ['true', 'false', 'both'], default: 'both', help: 'causal mask' },
  repeats: { type: 'int', default: 3, min: 1, help: 'timed calls per case (median reported)' },
  warmup: {
    type: 'int',
    default: 1,
    min: 0,
    help: 'untimed flash calls before timing (CPU: first case only; GPU: every case)',
  },
  dtype: { type: 'enum', values: DTYPES, default: 'float32', help: 'storage dtype of q, k, v' },
  seed: { type: 'int', min: 0, help: 'seed for the random inputs (default: fresh, printed)' },
  backend: {
    type: 'string',
    default: 'auto',
    help: "flash backend: 'auto' or an installed backend's name (cpu, webgpu, cuda)",
  },
  large: {
    type: 'boolean',
    help: 'also run the flash forward alone at --large-n (reference skipped: it needs 16 N^2 bytes)',
  },
  largeN: { type: 'intList', default: [32768], min: 1, help: 'sequence lengths for --large' },
  largeCausal: { type: 'boolean', help: 'causal mask for the --large runs' },
  json: { type: 'string', help: 'write all results as JSON to this file' },
  plot: { type: 'string', help: 'write time vs N (reference vs flash) to this .png or .svg file' },
  markdown: { type: 'boolean', help: 'print the tables as GitHub Markdown (for BENCHMARKS.md)' },
} as const satisfies ArgSchema;

const log = (line: string): void => void process.stderr.write(`${line}\n`);

function caseTable(rows: CaseResult[], md = false): string {
  const cols: Column<CaseResult>[] = [
    { header: 'N', cell: (r) => String(r.n) },
    { header: 'mask', cell: (r) => (r.causal ? 'causal' : 'full'), align: 'left' },
    { header: 'impl', cell: (r) => `${r.impl} (${r.backend})`, align: 'left' },
    { header: 'time ms', cell: (r) => fmt(r.medianMs) },
    { header: 'GFLOP/s', cell: (r) => fmt(r.gflops) },
    { header: 'measured alloc', cell: (r) => fmtBytes(r.measuredBytes) },
    { header: 'predicted alloc', cell: (r) => fmtBytes(r.predictedBytes) },
    { header: 'max|err| out', cell: (r) => fmt(r.maxAbsErr, 2) },
    { header: 'max|err| lse', cell: (r) => fmt(r.lseMaxAbsErr, 2) },
  ];
  return md ? formatMarkdownTable(cols, rows) : formatTable(cols, rows);
}

function modelTable(rows: ModelResult[], md = false): string {
  const cols: Column<ModelResult>[] = [
    { header: 'N', cell: (r) => String(r.n) },
    { header: 'mask', cell: (r) => (r.causal ? 'causal' : 'full'), align: 'left' },
    { header: 'standard HBM', cell: (r) => fmtBytes(r.standardBytes) },
    { header: 'flash HBM', cell: (r) => fmtBytes(r.flashBytes) },
    { header: 'ratio', cell: (r) => `${fmt(r.standardBytes / r.flashBytes)}x` },
    { header: 'K/V passes', cell: (r) => fmt(r.kvPasses) },
    { header: 'standard us', cell: (r) => `${fmt(r.standardUs)} (${r.standardBound})` },
    { header: 'flash us', cell: (r) => `${fmt(r.flashUs)} (${r.flashBound})` },
  ];
  return md ? formatMarkdownTable(cols, rows) : formatTable(cols, rows);
}

function largeTable(rows: LargeResult[], md = false): string {
  const cols: Column<LargeResult>[] = [
    { header: 'N', cell: (r) => String(r.n) },
    { header: 'mask', cell: (r) => (r.causal ? 'causal' : 'full'), align: 'left' },
    { header: 'impl', cell: (r) => `flash (${r.backend})`, align: 'left' },
    { header: 'time s', cell: (r) => fmt(r.ms / 1000) },
    { header: 'GFLOP/s', cell: (r) => fmt(r.gflops) },
    { header: 'measured alloc', cell: (r) => fmtBytes(r.measuredBytes) },
    { header: 'predicted alloc', cell: (r) => fmtBytes(r.predictedBytes) },
    { header: 'peak RSS growth', cell: (r) => fmtBytes(r.maxRssGrowth) },
    { header: 'process peak RSS', cell: (r) => fmtBytes(r.processMaxRss) },
    { header: 'reference S+P would need', cell: (r) => fmtBytes(r.referenceWouldNeed) },
    { header: 'finite', cell: (r) => (r.finite ? 'yes' : 'NO'), align: 'left' },
  ];
  return md ? formatMarkdownTable(cols, rows) : formatTable(cols, rows);
}

function plotTimes(path: string, res: DemoResult, d: number): void {
  const series: Series[] = [];
  for (const impl of ['reference', 'flash'] as const) {
    for (const causal of [false, true]) {
      const rows = res.cases.filter((r) => r.impl === impl && r.causal === causal);
      if (rows.length === 0) continue;
      series.push({
        name: `${impl} (${rows[0]!.backend})${causal ? ', causal' : ''}`,
        points: rows.map((r) => [r.n, r.medianMs] as const),
        color: impl === 'reference' ? '#d62728' : '#1f77b4',
        dashed: causal,
      });
    }
  }
  const ns = [...new Set(res.cases.map((r) => r.n))].sort((a, b) => a - b);
  const chart = lineChart({
    title: `Attention forward, D = ${d}: time vs N`,
    xLabel: 'sequence length N',
    yLabel: 'median time (ms)',
    logX: true,
    logY: true,
    xTicks: ns,
    series,
  });
  saveChart(path, chart);
  log(`wrote ${path}`);
}

async function main(): Promise<void> {
  const args = parseArgsOrExit(process.argv.slice(2), schema, 'npx -y pnpm@10.34.8 demo');
  // Output paths are the user's: resolve them against the directory the command was run from (INIT_CWD
  // when a package manager started us elsewhere), before any work, and print the real ones.
  const userDir = process.env.INIT_CWD ?? process.cwd();
  const jsonPath = args.json ? resolve(userDir, args.json) : undefined;
  const plotPath = args.plot ? resolve(userDir, args.plot) : undefined;
  const seed = args.seed ?? freshSeed();
  const cpu = `${cpus()[0]?.model.trim() ?? 'unknown CPU'} (${cpus().length} cores)`;
  log(
    `flashattn demo: seed ${seed}, ${cpu}, node ${process.version}${canCollect ? '' : ' (no --expose-gc: memory figures include garbage)'}`,
  );
  const selected = await selectBackend(args.backend);
  for (const note of selected.notes) log(note);
  const causal = args.causal === 'both' ? [false, true] : [args.causal === 'true'];
  const started = Date.now();
  const res = await runDemo(
    {
      ns: args.n,
      headDim: args.d,
      batch: args.batch,
      heads: args.heads,
      causal,
      repeats: args.repeats,
      warmup: args.warmup,
      dtype: args.dtype,
      seed,
      flash: selected.backend,
      largeNs: args.large ? args.largeN : [],
      largeCausal: args.largeCausal,
    },
    log,
  );
  await selected.backend.dispose();
  const seconds = (Date.now() - started) / 1000;

  const out = process.stdout;
  out.write(`\nBackend: ${selected.kind} (${selected.backend.name})\n`);
  for (const note of selected.notes) out.write(`  ${note}\n`);
  out.write(
    `\nForward, B=${args.batch} H=${args.heads} D=${args.d} ${args.dtype}, median of ${args.repeats}; ` +
      `GFLOP/s = 4 B H N^2 D (halved when causal) / time; seed ${seed}; ${cpu}\n` +
      `max|err| is against the float64 oracle. "measured alloc" = largest growth of ArrayBuffer bytes over a call ` +
      `(heap collected before it), "predicted alloc" = what the code allocates (apps/bench/src/cpu-working-set.ts).\n\n`,
  );
  out.write(`${caseTable(res.cases, args.markdown)}\n`);
  out.write(
    `\nIO model (packages/core/src/io-model.ts), same problems on ${'H100 SXM5'}: bfloat16, M = 228 KiB shared memory per SM, ` +
      `forward HBM bytes and roofline time (3.35 TB/s, 989.5 TFLOP/s):\n\n`,
  );
  out.write(`${modelTable(res.model, args.markdown)}\n`);
  if (res.large.length > 0) {
    out.write(
      `\nLarge case: flash forward alone (the reference would need 16 N^2 bytes for S and P in float64):\n\n`,
    );
    out.write(`${largeTable(res.large, args.markdown)}\n`);
  }
  out.write(`\n(${seconds.toFixed(1)} s)\n`);

  if (jsonPath) {
    const doc = {
      date: new Date().toISOString(),
      cpu,
      node: process.version,
      seed,
      args,
      backend: { kind: selected.kind, name: selected.backend.name, notes: selected.notes },
      ...res,
    };
    writeFileSync(jsonPath!, `${JSON.stringify(doc, null, 2)}\n`);
    log(`wrote ${jsonPath}`);
  }
  if (plotPath) plotTimes(plotPath, res, args.d);
}

main().catch((e: unknown) => {
  // A backend that cannot run here is the user's setup, not a bug: one line saying what is missing.
  const text =
    e instanceof BackendUnavailableError
      ? e.message
      : e instanceof Error
        ? (e.stack ?? e.message)
        : String(e);
  process.stderr.write(`demo failed: ${text}\n`);
  process.exitCode = 1;
});
