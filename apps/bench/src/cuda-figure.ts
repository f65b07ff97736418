/**
 * Draws the CUDA section of BENCHMARKS.md as figures: TFLOP/s against N for ours, PyTorch's
 * FlashAttention-2 SDPA backend and cuDNN, one chart per (D, causal), forward and backward side by side.
 * The numbers are read from the table the device run wrote into BENCHMARKS.md (rows
 * `| bf16 | D | causal | B x N (H) | fwd / bwd / fwd+bwd | torch flash ... | torch cuDNN ... | ...`), so the
 * figure always shows what the table says.
 *
 *   pnpm --filter @flashattn/bench build && node apps/bench/dist/cuda-figure.js BENCHMARKS.md apps/bench/figures
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { lineChart, saveChart, type Series } from '@flashattn/plot';

export interface CudaRow {
  dtype: string;
  D: number;
  causal: boolean;
  batch: number;
  N: number;
  /** [fwd, bwd, fwd+bwd] TFLOP/s for ours, torch flash, torch cuDNN */
  ours: number[];
  flash: number[];
  cudnn: number[];
}

const ROW =
  /^\|\s*(bf16|fp16)\s*\|\s*(\d+)\s*\|\s*(yes|no)\s*\|\s*(\d+) x (\d+) \(\d+\)\s*\|([^|]+)\|([^|]+)\|([^|]+)\|/;

/** The CUDA table rows of a BENCHMARKS.md text (only the section headed 'CUDA'). */
export function parseCudaRows(markdown: string): CudaRow[] {
  const start = markdown.indexOf('## CUDA');
  if (start < 0) throw new Error('BENCHMARKS.md has no "## CUDA" section');
  const next = markdown.indexOf('\n## ', start + 1);
  const section = markdown.slice(start, next < 0 ? undefined : next);
  const triple = (cell: string): number[] => cell.split('/').map((x) => Number(x.trim()));
  const rows: CudaRow[] = [];
  for (const line of section.split('\n')) {
    const m = ROW.exec(line);
    if (!m) continue;
    rows.push({
      dtype: m[1]!,
      D: Number(m[2]),
      causal: m[3] === 'yes',
      batch: Number(m[4]),
      N: Number(m[5]),
      ours: triple(m[6]!),
      flash: triple(m[7]!),
      cudnn: triple(m[8]!),
    });
  }
  return rows;
}

function main(): void {
  const [benchmarks = 'BENCHMARKS.md', outDir = 'apps/bench/figures'] = process.argv.slice(2);
  const rows = parseCudaRows(readFileSync(benchmarks, 'utf8'));
  if (rows.length === 0) throw new Error(`no CUDA table rows found in ${benchmarks}`);
  for (const D of [...new Set(rows.map((r) => r.D))]) {
    for (const causal of [false, true]) {
      // batch x N = 16384 rows only (the batch-1 long-N row is off that sweep's axis)
      const sel = rows.filter((r) => r.D === D && r.causal === causal && r.dtype === 'bf16' && r.batch * r.N === 16384);
      if (sel.length === 0) continue;
      const series: Series[] = [];
      // one colour per implementation, solid = forward, dashed = backward
      const peers = [
        ['ours', 'ours', '#1f77b4'],
        ['flash', 'torch flash', '#ff7f0e'],
        ['cudnn', 'torch cuDNN', '#2ca02c'],
      ] as const;
      for (const [pass, idx, dashed] of [['fwd', 0, false], ['bwd', 1, true]] as const) {
        for (const [key, label, color] of peers) {
          const points = sel.map((r) => [r.N, r[key][idx]!] as const);
          series.push({ name: `${label} ${pass}`, points, color, dashed, markers: true });
        }
      }
      const name = `cuda-h100-bf16-d${D}${causal ? '-causal' : ''}.png`;
      const chart = lineChart({
        title: `H100 bf16 attention, D = ${D}${causal ? ', causal' : ''} (batch x N = 16k)`,
        xLabel: 'N (sequence length)',
        yLabel: 'TFLOP/s',
        logX: true,
        series,
      });
      saveChart(join(outDir, name), chart);
      console.log(`wrote ${join(outDir, name)} (${sel.length} points per series)`);
    }
  }
}

if (import.meta.url === `file://${process.argv[1]}`) main();
