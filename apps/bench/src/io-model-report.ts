/**
 * `pnpm --filter @flashattn/bench io-model`: the IO model's forward and backward HBM traffic of
 * standard attention vs FlashAttention-2 on a device profile across sequence lengths, with the
 * roofline times; optionally a figure (bytes vs N, log-log) showing Theorem 2's N^2 vs N^2 d^2 / M.
 */
import { attentionIoModel, DEVICE_PROFILES, predictRuntime } from '@flashattn/core';
import { lineChart, saveChart, type Series } from '@flashattn/plot';
import { parseArgsOrExit, type ArgSchema } from './lib/args.js';
import { fmt, fmtBytes, formatTable, type Column } from './lib/table.js';

const schema = {
  device: { type: 'enum', values: ['h100', 'a100'], default: 'h100', help: 'device profile' },
  n: { type: 'intList', default: [512, 1024, 2048, 4096, 8192, 16384, 32768, 65536], min: 1, help: 'sequence lengths' },
  d: { type: 'intList', default: [64, 128], min: 1, help: 'head dimensions' },
  batch: { type: 'int', default: 1, min: 1, help: 'batch' },
  heads: { type: 'int', default: 1, min: 1, help: 'heads' },
  bytes: { type: 'int', default: 2, min: 1, max: 8, help: 'bytes per element (2: fp16/bf16)' },
  causal: { type: 'boolean', help: 'causal mask' },
  plot: { type: 'string', help: 'write HBM bytes vs N to this .png or .svg' },
} as const satisfies ArgSchema;

interface Row {
  n: number;
  d: number;
  std: number;
  flash: number;
  stdBwd: number;
  flashBwd: number;
  kvPasses: number;
  stdUs: number;
  flashUs: number;
}

const args = parseArgsOrExit(process.argv.slice(2), schema, 'pnpm --filter @flashattn/bench io-model');
const dev = DEVICE_PROFILES[args.device];
const rows: Row[] = [];
for (const d of args.d) {
  for (const n of args.n) {
    const m = attentionIoModel({
      batch: args.batch,
      heads: args.heads,
      seqlenQ: n,
      seqlenK: n,
      headDim: d,
      bytesPerElement: args.bytes,
      sramBytes: dev.sramBytesPerSM,
      causal: args.causal,
    });
    const p = predictRuntime(m, dev);
    rows.push({
      n,
      d,
      std: m.forward.standard.totalBytes,
      flash: m.forward.flash.totalBytes,
      stdBwd: m.backward.standard.totalBytes,
      flashBwd: m.backward.flash.totalBytes,
      kvPasses: m.kvPasses,
      stdUs: p.forward.standard.seconds * 1e6,
      flashUs: p.forward.flash.seconds * 1e6,
    });
  }
}
const cols: Column<Row>[] = [
  { header: 'N', cell: (r) => String(r.n) },
  { header: 'd', cell: (r) => String(r.d) },
  { header: 'fwd standard', cell: (r) => fmtBytes(r.std) },
  { header: 'fwd flash', cell: (r) => fmtBytes(r.flash) },
  { header: 'ratio', cell: (r) => `${fmt(r.std / r.flash)}x` },
  { header: 'K/V passes', cell: (r) => fmt(r.kvPasses) },
  { header: 'bwd standard', cell: (r) => fmtBytes(r.stdBwd) },
  { header: 'bwd flash', cell: (r) => fmtBytes(r.flashBwd) },
  { header: 'fwd roofline us (std / flash)', cell: (r) => `${fmt(r.stdUs)} / ${fmt(r.flashUs)}` },
];
process.stdout.write(
  `IO model, ${dev.name}: M = ${dev.sramBytesPerSM / 1024} KiB shared memory per SM, ${args.bytes}-byte elements, ` +
    `B=${args.batch} H=${args.heads}${args.causal ? ', causal' : ''}; HBM bytes read + written\n\n${formatTable(cols, rows)}\n`,
);
if (args.plot) {
  const series: Series[] = args.d.flatMap((d) => [
    { name: `standard, d=${d}`, points: rows.filter((r) => r.d === d).map((r) => [r.n, r.std] as const), color: d === args.d[0] ? '#d62728' : '#ff7f0e' },
    { name: `FlashAttention-2, d=${d}`, points: rows.filter((r) => r.d === d).map((r) => [r.n, r.flash] as const), color: d === args.d[0] ? '#1f77b4' : '#17becf' },
  ]);
  saveChart(
    args.plot,
    lineChart({
      title: `Forward HBM traffic on ${args.device.toUpperCase()} (IO model)`,
      xLabel: 'sequence length N',
      yLabel: 'HBM bytes read + written',
      logX: true,
      logY: true,
      series,
    }),
  );
  process.stderr.write(`wrote ${args.plot}\n`);
}
