/**
 * Tables and figures from attention-vs-ort.ts's JSON: markdown tables on stdout, PNG figures (GFLOP/s vs
 * N for B = 1, D = 64, all threads, forward, one per mask) into a folder.
 *   node apps/bench/dist/cpu/ort-report.js ATTENTION.json [MATMUL.json] --figures DIR
 * Speed ratios are peer time / our time (> 1: we are faster), from the medians of wall time; the CPU
 * column is the same ratio from CPU time (all threads of the process), which a loaded machine disturbs
 * less than wall time.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { lineChart, saveChart, type Series } from '@flashattn/plot';

interface Row {
  B: number;
  H: number;
  N: number;
  D: number;
  causal: boolean;
  threads: number;
  impl: string;
  pass: 'fwd' | 'bwd';
  ms: number;
  /** absent in rows recovered from a run's log (attention-vs-ort prints wall times only) */
  cpuMs?: number;
  gflops: number;
  load: number;
}

const args = process.argv.slice(2);
const figIdx = args.indexOf('--figures');
const figDir = figIdx >= 0 ? args[figIdx + 1] : undefined;
const files = args.filter((a, i) => !a.startsWith('--') && (figIdx < 0 || i !== figIdx + 1));
if (files.length === 0) {
  console.error('usage: ort-report.js ATTENTION.json [MATMUL.json] [--figures DIR]');
  process.exit(2);
}

const att = JSON.parse(readFileSync(files[0]!, 'utf8')) as { meta: unknown; rows: Row[] };
console.log(`<!-- ${JSON.stringify(att.meta)} -->`);
const key = (r: Row) => `${r.B}/${r.D}/${r.N}/${r.causal}/${r.threads}`;
const groups = new Map<string, Row[]>();
for (const r of att.rows) groups.set(key(r), [...(groups.get(key(r)) ?? []), r]);
const f1 = (x: number | undefined) => (x === undefined ? '-' : x.toFixed(1));
const f2 = (x: number | undefined) => (x === undefined ? '-' : x.toFixed(2));

console.log(
  '| B | D | N | mask | threads | ours fwd ms (GFLOP/s) | MHA ms | plain ms | Attention-23 ms | vs MHA | vs best ORT | vs best ORT, CPU time | ours bwd ms (GFLOP/s) | plain bwd ms | bwd vs plain | load |',
);
console.log('|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|');
for (const rows of groups.values()) {
  const get = (impl: string, pass: 'fwd' | 'bwd') =>
    rows.find((r) => r.impl === impl && r.pass === pass);
  const o = get('ours', 'fwd')!;
  const peers = ['mha', 'plain', 'attn23'].map((i) => get(i, 'fwd')!).filter(Boolean);
  const best = Math.min(...peers.map((p) => p.ms));
  const bestCpu = Math.min(...peers.map((p) => p.cpuMs ?? NaN));
  const ob = get('ours', 'bwd');
  const pb = get('plain', 'bwd');
  console.log(
    `| ${o.B} | ${o.D} | ${o.N} | ${o.causal ? 'causal' : 'full'} | ${o.threads} | ${f1(o.ms)} (${f1(o.gflops)}) | ${f1(get('mha', 'fwd')?.ms)} | ${f1(get('plain', 'fwd')?.ms)} | ${f1(get('attn23', 'fwd')?.ms)} | ${f2(get('mha', 'fwd')!.ms / o.ms)} | ${f2(best / o.ms)} | ${o.cpuMs === undefined ? '-' : f2(bestCpu / o.cpuMs)} | ${ob ? `${f1(ob.ms)} (${f1(ob.gflops)})` : '-'} | ${f1(pb?.ms)} | ${ob && pb ? f2(pb.ms / ob.ms) : '-'} | ${f1(o.load)} |`,
  );
}

// Round 4 on: the forward native (ours) and wasm (native: false) in the same rounds.
if (att.rows.some((r) => r.impl === 'wasm')) {
  console.log(
    '\n| B | D | N | mask | threads | native fwd ms (GFLOP/s) | wasm fwd ms (GFLOP/s) | native / wasm speedup | MHA ms | best ORT ms | native vs MHA | native vs best ORT | same, CPU time | wasm vs best ORT | load |',
  );
  console.log('|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|');
  for (const rows of groups.values()) {
    const get = (impl: string) => rows.find((r) => r.impl === impl && r.pass === 'fwd');
    const o = get('ours')!;
    const w = get('wasm');
    const peers = ['mha', 'plain', 'attn23'].map((i) => get(i)!).filter(Boolean);
    const best = Math.min(...peers.map((p) => p.ms));
    const bestCpu = Math.min(...peers.map((p) => p.cpuMs ?? NaN));
    console.log(
      `| ${o.B} | ${o.D} | ${o.N} | ${o.causal ? 'causal' : 'full'} | ${o.threads} | ${f1(o.ms)} (${f1(o.gflops)}) | ${w ? `${f1(w.ms)} (${f1(w.gflops)})` : '-'} | ${w ? f2(w.ms / o.ms) : '-'} | ${f1(get('mha')?.ms)} | ${f1(best)} | ${f2(get('mha')!.ms / o.ms)} | ${f2(best / o.ms)} | ${o.cpuMs === undefined ? '-' : f2(bestCpu / o.cpuMs)} | ${w ? f2(best / w.ms) : '-'} | ${f1(o.load)} |`,
    );
  }
}

if (files[1]) {
  const mm = JSON.parse(readFileSync(files[1], 'utf8')) as {
    meta: unknown;
    rows: Array<{ shape: string; threads: number; oursGflops: number; ortGflops: number }>;
  };
  console.log(`\n<!-- ${JSON.stringify(mm.meta)} -->`);
  console.log('| shape (M x N x K) | threads | ours GFLOP/s | ORT MatMul GFLOP/s | ours / ORT |');
  console.log('|---|---|---|---|---|');
  for (const r of mm.rows)
    console.log(
      `| ${r.shape} | ${r.threads} | ${f1(r.oursGflops)} | ${f1(r.ortGflops)} | ${f2(r.oursGflops / r.ortGflops)} |`,
    );
}

if (figDir) {
  const threads = Math.max(...att.rows.map((r) => r.threads));
  for (const causal of [false, true]) {
    const sel = att.rows.filter(
      (r) => r.B === 1 && r.D === 64 && r.causal === causal && r.threads === threads,
    );
    const impls = [
      ['ours', 'fwd', 'ours fwd', '#1f77b4', false],
      ['wasm', 'fwd', 'ours fwd, wasm (native: false)', '#9467bd', true],
      ['mha', 'fwd', 'ORT MultiHeadAttention', '#ff7f0e', false],
      ['plain', 'fwd', 'ORT MatMul-Softmax-MatMul', '#2ca02c', false],
      ['attn23', 'fwd', 'ORT Attention (opset 23)', '#d62728', false],
      ['ours', 'bwd', 'ours bwd', '#1f77b4', true],
      ['plain', 'bwd', 'ORT plain graph bwd', '#2ca02c', true],
    ] as const;
    const series: Series[] = [];
    for (const [impl, pass, name, color, dashed] of impls) {
      const points = sel
        .filter((r) => r.impl === impl && r.pass === pass)
        .sort((a, b) => a.N - b.N)
        .map((r) => [r.N, r.gflops] as const);
      if (points.length > 0) series.push({ name, points, color, dashed, markers: true });
    }
    const name = `cpu-attention-vs-ort-d64${causal ? '-causal' : ''}.png`;
    saveChart(
      join(figDir, name),
      lineChart({
        title: `CPU attention vs onnxruntime, B=1 H=8 D=64, ${threads} threads${causal ? ', causal' : ''}`,
        xLabel: 'N (sequence length)',
        yLabel: 'GFLOP/s (median wall time)',
        logX: true,
        xTicks: [...new Set(sel.map((r) => r.N))].sort((a, b) => a - b),
        series,
      }),
    );
    console.log(`wrote ${join(figDir, name)}`);
  }
}
