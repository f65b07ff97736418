/**
 * WebGPU device attention: the strided packed path against the contiguous path (issue #9). The same
 * kernels run on q, k, v read in place from one packed (B, N, 3, H, D) buffer (GPT-2's qkv projection,
 * core's `packedQkvViews`) with dq, dk, dv written into the packed gradient, and on q, k, v / dq, dk, dv in
 * separate contiguous (B, N, H, D) buffers. fp32, non-causal, batch = 16384 / N, heads = 2048 / D
 * (BENCHMARKS.md's WebGPU setting). Times: wall-clock per call until a queue drain, after at least
 * 150 ms of warm-up calls, over at least 250 ms (the same rule as bench.ts). Writes JSON to --out.
 *
 *   node webgpu-strided.mjs --dawn ./dawn.node --out strided.json [--n 4096] [--dims 64,128] [--quick]
 */
import { createRequire } from 'node:module';
import { writeFileSync } from 'node:fs';
import { contiguousView, createRng, packedQkvViews, type StridedView } from '@flashattn/core';
import {
  createWebGPUBackend,
  DEFAULT_DAWN_FLAGS,
  type WebGPUAttentionBackend,
  type WebGPUBuffer,
} from '@flashattn/webgpu';
import { backwardFlops, forwardFlops, parseArgsOrExit, tflopsPerSecond } from '../lib/index.js';

const args = parseArgsOrExit(
  process.argv.slice(2),
  {
    dawn: { type: 'string', default: '', help: 'path to dawn.node (default: the webgpu package)' },
    out: { type: 'string', default: 'webgpu-strided.json', help: 'JSON output file' },
    n: { type: 'string', default: '4096', help: 'sequence lengths, comma-separated' },
    dims: { type: 'string', default: '64,128', help: 'head dims, comma-separated' },
    quick: {
      type: 'boolean',
      default: false,
      help: 'N = 256, B = 1, H = 2, short timings (a dry run on a software adapter)',
    },
  },
  'webgpu-strided',
);

type View = StridedView<WebGPUBuffer>;

/** Mean wall time per call (ms) of `fn` until the queue drains (warm-up first; see the file comment). */
async function timeGpu(
  be: WebGPUAttentionBackend,
  fn: () => Promise<void>,
  minMs: number,
  warmMs: number,
): Promise<number> {
  const w0 = performance.now();
  do {
    await fn();
    await be.runtime.idle();
  } while (performance.now() - w0 < warmMs);
  let reps = 0;
  const t0 = performance.now();
  while (reps < 50) {
    await fn();
    reps++;
    if (reps >= 2 && performance.now() - t0 > minMs) break;
  }
  await be.runtime.idle();
  return (performance.now() - t0) / reps;
}

/** Normal samples generated once and tiled (Box-Muller in JS costs seconds at 100M elements). */
const POOL = (() => {
  const rng = createRng(12345);
  return Float32Array.from({ length: (1 << 20) + 4096 }, () => rng.normal());
})();

/** A float32 buffer of n normal samples (the pool tiled from a seed-dependent start). */
async function filled(be: WebGPUAttentionBackend, n: number, seed: number): Promise<WebGPUBuffer> {
  const x = new Float32Array(n);
  const off = (seed * 997) % 4096;
  for (let i = 0; i < n; i += 1 << 20) x.set(POOL.subarray(off, off + Math.min(1 << 20, n - i)), i);
  const b = be.alloc(n, 'float32');
  await be.upload(b, x);
  return b;
}

interface Row {
  round: number;
  layout: 'contiguous' | 'packed';
  D: number;
  N: number;
  B: number;
  H: number;
  fwdMs: number;
  fwdTflops: number;
  bwdMs: number;
  bwdTflops: number;
}

async function main(): Promise<void> {
  const require = createRequire(import.meta.url);
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- Dawn's GPU (no WebGPU types in apps/bench)
  const dawn = require(args.dawn || 'webgpu') as { create: (flags: string[]) => any };
  const gpu = dawn.create([...DEFAULT_DAWN_FLAGS]);
  const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (!adapter) throw new Error('no adapter');
  const be = await createWebGPUBackend({ adapter });
  const minMs = args.quick ? 20 : 250;
  const warmMs = args.quick ? 10 : 150;
  const rows: Row[] = [];
  const results = { date: new Date().toISOString(), backend: be.name, rows };
  try {
    for (const D of args.dims.split(',').map(Number)) {
      for (const N of (args.quick ? '256' : args.n).split(',').map(Number)) {
        const B = args.quick ? 1 : Math.max(1, Math.floor(16384 / N));
        const H = args.quick ? 2 : 2048 / D;
        const shape = [B, N, H, D] as const;
        const n = B * N * H * D;
        const p = { batch: B, heads: H, seqlenQ: N, seqlenK: N, headDim: D };
        const owned: WebGPUBuffer[] = [];
        const keep = <T extends WebGPUBuffer>(b: T): T => (owned.push(b), b);
        try {
          const out = keep(be.alloc(n, 'float32'));
          const dout = keep(await filled(be, n, 4));
          const lse = keep(be.alloc(B * H * N, 'float32'));
          const o: View = contiguousView(out, shape);
          const dO: View = contiguousView(dout, shape);
          // contiguous: q, k, v and dq, dk, dv each in its own (B, N, H, D) buffer
          const [q, k, v] = [
            keep(await filled(be, n, 1)),
            keep(await filled(be, n, 2)),
            keep(await filled(be, n, 3)),
          ].map((b) => contiguousView(b, shape)) as [View, View, View];
          const [dq, dk, dv] = [0, 1, 2].map(() =>
            contiguousView(keep(be.alloc(n, 'float32')), shape),
          ) as [View, View, View];
          // packed: one (B, N, 3, H, D) buffer each
          const qkv = packedQkvViews(keep(await filled(be, 3 * n, 5)), B, N, H, D);
          const dqkv = packedQkvViews(keep(be.alloc(3 * n, 'float32')), B, N, H, D);
          const layouts = {
            contiguous: { q, k, v, dq, dk, dv },
            packed: { ...qkv, dq: dqkv.q, dk: dqkv.k, dv: dqkv.v },
          };
          // two rounds in alternating order, so clock ramps and drift show as round-to-round spread
          for (const [round, layout] of [
            [1, 'contiguous'],
            [1, 'packed'],
            [2, 'contiguous'],
            [2, 'packed'],
          ] as const) {
            const L = layouts[layout];
            const fwd = async () => {
              await be.attentionForward({ q: L.q, k: L.k, v: L.v, out: o, lse });
            };
            const bwd = async () => {
              await be.attentionBackward({
                q: L.q,
                k: L.k,
                v: L.v,
                out: o,
                dout: dO,
                lse,
                dq: L.dq,
                dk: L.dk,
                dv: L.dv,
              });
            };
            const fwdMs = await timeGpu(be, fwd, minMs, warmMs);
            const bwdMs = await timeGpu(be, bwd, minMs, warmMs);
            const row: Row = {
              round,
              layout,
              D,
              N,
              B,
              H,
              fwdMs,
              fwdTflops: tflopsPerSecond(forwardFlops(p), fwdMs),
              bwdMs,
              bwdTflops: tflopsPerSecond(backwardFlops(p), bwdMs),
            };
            rows.push(row);
            console.log(
              `strided r${round} ${layout.padEnd(10)} D=${D} N=${N} B=${B} H=${H}: fwd ${fwdMs.toFixed(2)} ms ${row.fwdTflops.toFixed(2)} TF, ` +
                `bwd ${bwdMs.toFixed(2)} ms ${row.bwdTflops.toFixed(2)} TF`,
            );
            writeFileSync(args.out, JSON.stringify(results, null, 1));
          }
        } finally {
          owned.forEach((b) => be.free(b));
        }
      }
    }
  } finally {
    writeFileSync(args.out, JSON.stringify(results, null, 1));
    be.dispose();
  }
  void gpu; // keep Dawn's instance alive until here (see @flashattn/webgpu gpu.ts)
}

main().catch((e: unknown) => {
  console.error(e);
  process.exitCode = 1;
});
