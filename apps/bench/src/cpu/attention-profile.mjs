// Where a CPU attention forward spends its time: runs CpuOps' forward under V8's sampling profiler
// (--cpu-prof) and prints each wasm kernel's and JS function's share of the samples, with the wasm
// functions named from the order wasm/flash-simd.mjs emits them (the register tiles, then gemm, ...).
//   node --experimental-wasm-relaxed-simd apps/bench/src/cpu/attention-profile.mjs B,N,D,THREADS,CAUSAL,CALLS
// (it re-runs itself with --cpu-prof; setup samples, before the timed calls, are left out by name).
// Without relaxed SIMD (Node 20 without the flag) the plain variant runs and is named accordingly.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../../../', import.meta.url));
const me = fileURLToPath(import.meta.url);
const spec = process.argv[2] ?? '1,1024,128,1,1,40';
if (process.argv[3] !== 'child') {
  const dir = mkdtempSync(join(tmpdir(), 'attn-prof-'));
  const out = execFileSync(
    process.execPath,
    [...process.execArgv, '--cpu-prof', `--cpu-prof-dir=${dir}`, me, spec, 'child'],
    { encoding: 'utf8' },
  );
  const p = JSON.parse(readFileSync(join(dir, readdirSync(dir)[0]), 'utf8'));
  // The wasm functions in the order wasm/flash-simd.mjs emits them: the register tiles (6, 4, 1 rows
  // with FMA; 4, 1 without) x (8, 4 columns), then the exports.
  const { hasRelaxedSimd } = await import(`${root}packages/cpu/dist/attention/flash-simd.js`);
  const rowTiles = hasRelaxedSimd() ? [6, 4, 1] : [4, 1];
  const names = [
    ...rowTiles.flatMap((r) => [`mk${r}x2`, `mk${r}x1`]),
    ...['gemm', 'softmaxRows', 'probsRows', 'probsCols', 'dsRows', 'dsCols', 'copyRows'],
    ...['scaleRows', 'transposeBlocks', 'packStrips', 'nonFinite'],
  ];
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map();
  let total = 0;
  for (const id of p.samples) {
    const f = byId.get(id).callFrame;
    const w = /wasm-function\[(\d+)\]/.exec(f.functionName);
    if (
      !w &&
      /attention-profile|random|\(program\)|\(idle\)|compile|loader|realm|url/.test(
        f.functionName + f.url,
      )
    )
      continue;
    const k = w ? `wasm ${names[Number(w[1])] ?? w[1]}` : `JS ${f.functionName || '(anonymous)'}`;
    self.set(k, (self.get(k) ?? 0) + 1);
    total++;
  }
  console.log(`${spec} (B,N,D,threads,causal,calls): ${out.trim()}`);
  for (const [k, c] of [...self].sort((a, b) => b[1] - a[1]).filter(([, c]) => c / total > 0.003))
    console.log(`  ${k} ${((100 * c) / total).toFixed(1)}%`);
} else {
  const { CpuOps } = await import(`${root}packages/cpu/dist/index.js`);
  const { contiguousView, createRng } = await import(`${root}packages/core/dist/index.js`);
  const [B, N, D, T, causal, calls] = spec.split(',').map(Number);
  const H = 8;
  const ops = new CpuOps({ threads: T });
  const n = B * N * H * D;
  const rng = createRng(1);
  const up = () => {
    const b = ops.alloc(n, 'float32');
    for (let i = 0; i < n; i++) b[i] = rng.normal();
    return contiguousView(b, [B, N, H, D]); // (B, N, H, D)
  };
  const [q, k, v, out] = [up(), up(), up(), up()];
  const lse = ops.alloc(B * H * N, 'float32'); // (B, H, N)
  const f = () => ops.attentionForward({ q, k, v, out, lse }, { causal: causal === 1 });
  for (let i = 0; i < 5; i++) await f();
  const ms = [];
  for (let i = 0; i < calls; i++) {
    const t0 = performance.now();
    await f();
    ms.push(performance.now() - t0);
  }
  ms.sort((a, b) => a - b);
  console.log(`median ${ms[calls >> 1].toFixed(1)} ms, fastest ${ms[0].toFixed(1)} ms`);
  await ops.dispose();
}
