/**
 * Turn a webgpu-bench JSON (from the H100 run) into the figure and the markdown tables of the
 * WebGPU section of BENCHMARKS.md. Runs anywhere (no GPU):
 *
 *   node dist/webgpu-report.js --bench ../../packages/webgpu/bench-results/h100-bench-2026-11-21.json \
 *     --sgmat ../../packages/webgpu/bench-results/h100-sgmat-2026-11-21.json --figure ../../packages/webgpu/bench-results/h100-flash
 *
 * --ceiling takes the ceiling and N = 65536 sections from another JSON (a run that timed only the flash
 * sweep); --previous adds the backward and forward+backward TFLOP/s of an earlier run as columns.
 */
import { readFileSync } from 'node:fs';
import { lineChart, saveChart } from '@flashattn/plot';
import { parseArgsOrExit } from '../lib/index.js';

const args = parseArgsOrExit(
  process.argv.slice(2),
  {
    bench: { type: 'string', help: 'webgpu-bench JSON (sections ceiling, flash, n65536)' },
    sgmat: { type: 'string', help: 'webgpu-bench JSON of the sgmat section' },
    figure: { type: 'string', help: 'figure path without extension (.png and .svg are written)' },
    ceiling: {
      type: 'string',
      help: 'webgpu-bench JSON to take the ceiling and n65536 sections from',
    },
    previous: {
      type: 'string',
      help: 'earlier webgpu-bench JSON: its bwd and fwd+bwd TFLOP/s become columns',
    },
  },
  'webgpu-report',
);

type Any = any; // eslint-disable-line @typescript-eslint/no-explicit-any
const f = (x: number | undefined, d = 2): string =>
  x === undefined || !Number.isFinite(x) ? '-' : x.toFixed(d);
const gb = (b: number): string => `${(b / 1e9).toFixed(2)} GB`;

if (!args.bench) throw new Error('--bench is required');
const r: Any = JSON.parse(readFileSync(args.bench, 'utf8'));
if (args.ceiling) {
  const c: Any = JSON.parse(readFileSync(args.ceiling, 'utf8'));
  r.ceiling = r.ceiling ?? c.ceiling;
  r.n65536 = r.n65536 ?? c.n65536;
}
const ceiling = r.ceiling.bestTflops as number;
const prevRows: Any[] = args.previous
  ? JSON.parse(readFileSync(args.previous, 'utf8')).flash.rows
  : [];
const prev = (x: Any): Any =>
  prevRows.find((p) => p.D === x.D && p.N === x.N && !!p.causal === !!x.causal);
const rows: Any[] = r.flash.rows;
const lines: string[] = [];

const b = r.ceiling.best;
const how =
  b.kernel === 'v4'
    ? `vec4 kernel, ${64 * b.G}x${64 * b.G} tile, ${4 * b.G}x${4 * b.G} per invocation, BK ${b.BK}, sizes baked in`
    : `${b.BM}x${b.BN} tile, BK ${b.BK}, ${b.consts ? 'sizes baked in' : 'strided'}`;
lines.push(`Ceiling (best fp32 WGSL matmul, 4096^3): **${f(ceiling)} TFLOP/s** (${how}).`);
lines.push('');
const before = prevRows.length > 0;
lines.push(
  `| D | N | causal | fwd ms | fwd TFLOP/s | % of ceiling | bwd TFLOP/s |${before ? ' bwd before |' : ''} fwd+bwd TFLOP/s |${before ? ' fwd+bwd before |' : ''} standard fwd ms | speedup fwd | speedup fwd+bwd |`,
);
lines.push(`|---|---|---|---|---|---|---|${before ? '---|---|' : ''}---|---|---|---|`);
for (const x of rows) {
  const p = prev(x);
  lines.push(
    `| ${x.D} | ${x.N} | ${x.causal ? 'yes' : 'no'} | ${f(x.fwdMs, 1)} | ${f(x.fwdTflops)} | ${f((100 * x.fwdTflops) / ceiling, 0)}% | ${f(x.bwdTflops)} |${before ? ` ${f(p?.bwdTflops)} |` : ''} ${f(x.fwdBwdTflops)} |${before ? ` ${f(p?.fwdBwdTflops)} |` : ''} ${f(x.stdFwdMs, 1)} | ${x.speedupFwd ? `${f(x.speedupFwd)}x` : '-'} | ${x.speedupFwdBwd ? `${f(x.speedupFwdBwd)}x` : '-'} |`,
  );
}
const n = r.n65536;
if (n) {
  lines.push('');
  lines.push(
    `N = ${n.N} (B 1, H ${n.H}, D ${n.D}, fp32): flash forward ${f(n.flashFwdMs / 1000)} s (${f(n.flashFwdTflops)} TFLOP/s), peak buffer bytes ${gb(n.flashPeakBytes)}; ` +
      `standard: needs ${gb(n.standardNeedsBytes)} (S for all heads) and fails: \`${String(n.standard).split(':')[0]}\` (${String(n.standard).split('): ')[1] ?? n.standard}).`,
  );
}
if (args.sgmat) {
  const s: Any = JSON.parse(readFileSync(args.sgmat, 'utf8')).sgmat;
  if (s?.rows) {
    lines.push('');
    lines.push(
      '| f16 forward D | N | subgroup-matrix TFLOP/s | fp32-math kernel on f16 storage TFLOP/s |',
    );
    lines.push('|---|---|---|---|');
    for (const x of s.rows)
      lines.push(`| ${x.D} | ${x.N} | ${f(x.sgmatTflops)} | ${f(x.fp32mathTflops)} |`);
  }
}
console.log(lines.join('\n'));

if (args.figure) {
  const series = [];
  for (const D of [64, 128]) {
    const nc = rows.filter((x) => x.D === D && !x.causal);
    series.push({
      name: `flash fwd D=${D}`,
      points: nc.map((x) => [x.N, x.fwdTflops] as [number, number]),
    });
    series.push({
      name: `flash fwd+bwd D=${D}`,
      points: nc.map((x) => [x.N, x.fwdBwdTflops] as [number, number]),
      dashed: true,
    });
    series.push({
      name: `standard fwd D=${D}`,
      points: nc
        .filter((x) => x.stdFwdMs)
        .map((x) => [x.N, x.fwdTflops / x.speedupFwd] as [number, number]),
      dashed: true,
    });
  }
  const Ns = [...new Set(rows.map((x) => x.N as number))];
  series.push({
    name: 'matmul ceiling',
    points: [
      [Ns[0]!, ceiling],
      [Ns[Ns.length - 1]!, ceiling],
    ] as [number, number][],
    dashed: true,
  });
  const chart = lineChart({
    title: 'WebGPU fp32 attention on H100 (Dawn/Vulkan)',
    xLabel: 'sequence length N',
    yLabel: 'TFLOP/s',
    logX: true,
    xTicks: Ns,
    series,
  });
  saveChart(`${args.figure}.png`, chart);
  saveChart(`${args.figure}.svg`, chart);
  console.log(`\nfigure: ${args.figure}.png, ${args.figure}.svg`);
}
