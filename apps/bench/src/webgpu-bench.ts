/**
 * WebGPU benchmark (run on the H100 through Dawn/Vulkan; see BENCHMARKS.md, section WebGPU):
 *   1. the ceiling: the best fp32 WGSL matmul of a few tilings, TFLOP/s at 4096^3;
 *   2. flash forward / backward / forward+backward, fp32, D = 64 and 128, N = 1k..16k
 *      (batch = 16k / N, heads = 2048 / D, as in the FlashAttention papers), against the standard
 *      baseline (materialised S, P) at each N;
 *   3. N = 65536: flash runs, the baseline cannot allocate S; peak buffer bytes for both.
 * Writes JSON to --out (one file) and prints a table. Dawn is loaded from --dawn (dawn.node) or the
 * `webgpu` package.
 *
 *   node webgpu-bench.mjs --dawn ./dawn.node --out results.json [--quick]
 */
import { createRequire } from 'node:module';
import { writeFileSync } from 'node:fs';
import { createRng, fromFloat32, type DType } from '@flashattn/core';
import {
  createStandardAttention,
  createWebGPUBackend,
  DEFAULT_DAWN_FLAGS,
  matmulWGSL,
  packMatmulParams,
  type GPUTensor,
  type MatmulSpec,
  type Tiles,
  type WebGPUAttentionBackend,
} from '@flashattn/webgpu';
import { backwardFlops, forwardFlops, parseArgsOrExit, tflopsPerSecond } from './lib/index.js';

const args = parseArgsOrExit(
  process.argv.slice(2),
  {
    dawn: { type: 'string', default: '', help: 'path to dawn.node (default: the webgpu package)' },
    out: { type: 'string', default: 'webgpu-bench.json', help: 'JSON output file' },
    quick: { type: 'boolean', default: false, help: 'small sizes (a dry run on a software adapter)' },
    sections: { type: 'string', default: 'tiles,ceiling,flash,n65536,sgmat', help: 'comma-separated sections to run' },
  },
  'webgpu-bench',
);

type Any = any; // eslint-disable-line @typescript-eslint/no-explicit-any
const sections = new Set(args.sections.split(','));

async function main(): Promise<void> {
  const require = createRequire(import.meta.url);
  const dawn = require(args.dawn || 'webgpu') as { create: (flags: string[]) => Any };
  const gpu = dawn.create([...DEFAULT_DAWN_FLAGS]);
  const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (!adapter) throw new Error('no adapter');
  const info = adapter.info;
  const results: Any = {
    date: new Date().toISOString(),
    adapter: { vendor: info.vendor, architecture: info.architecture, device: info.device, description: info.description },
    features: [...adapter.features].sort(),
    limits: {
      maxComputeWorkgroupStorageSize: adapter.limits.maxComputeWorkgroupStorageSize,
      maxComputeInvocationsPerWorkgroup: adapter.limits.maxComputeInvocationsPerWorkgroup,
      maxStorageBufferBindingSize: adapter.limits.maxStorageBufferBindingSize,
      maxBufferSize: adapter.limits.maxBufferSize,
    },
  };
  console.log(`adapter: ${JSON.stringify(results.adapter)}`);
  // Forward tile candidates, timed first at N = 4096; the sweep then uses the best per head dim.
  const best: Record<number, Tiles> = {};
  if (sections.has('tiles')) {
    results.tiles = await tileSweep(gpu);
    for (const D of [64, 128]) {
      const top = results.tiles.filter((r: Any) => r.D === D && r.tflops).sort((a: Any, b: Any) => b.tflops - a.tflops)[0];
      if (top) best[D] = top.tiles;
    }
    results.bestTiles = best;
  }
  const be = await createWebGPUBackend({ adapter, tiles: (D) => (best[D] ? { forward: best[D] } : undefined) });
  results.backend = be.name;
  results.compact = be.compact;
  try {
    const save = () => writeFileSync(args.out, JSON.stringify(results, null, 1));
    if (sections.has('ceiling')) results.ceiling = await ceiling(be);
    save();
    if (sections.has('n65536')) results.n65536 = await bigN(be);
    save();
    if (sections.has('flash')) results.flash = await flashSweep(be, (rows) => ((results.flash = { rows }), save()));
    save();
    if (sections.has('sgmat')) {
      const adapter2 = await gpu.requestAdapter({ powerPreference: 'high-performance' });
      const sg = await createWebGPUBackend({ adapter: adapter2, subgroupMatrix: true });
      try {
        results.sgmat = await sgmatSweep(be, sg);
      } catch (e) {
        results.sgmat = { error: String(e) };
        console.log(`subgroup matrix: ${String(e)}`);
      } finally {
        sg.dispose();
      }
    }
  } finally {
    writeFileSync(args.out, JSON.stringify(results, null, 1));
    be.dispose();
  }
  void gpu; // keep Dawn's instance alive until here (see @flashattn/webgpu gpu.ts)
}

/** Wall time per call (ms) of `fn` (which enqueues GPU work), after a warmup, until the queue drains. */
async function timeGpu(be: WebGPUAttentionBackend, fn: () => Promise<void>, minMs = 150, maxReps = 20): Promise<number> {
  await fn();
  await be.runtime.idle();
  let reps = 0;
  const t0 = performance.now();
  while (reps < maxReps) {
    await fn();
    reps++;
    if (reps >= 2 && performance.now() - t0 > minMs) break;
  }
  await be.runtime.idle();
  return (performance.now() - t0) / reps;
}

/** Normal samples generated once and reused (Box-Muller in JS costs seconds at 33M elements). */
let pool = new Float32Array(0);
function normals(n: number, seed: number): Float32Array {
  const need = n + 4096;
  if (pool.length < need) {
    const rng = createRng(12345);
    pool = new Float32Array(need);
    for (let i = 0; i < need; i++) pool[i] = rng.normal();
  }
  const off = (seed * 997) % 4096;
  return pool.subarray(off, off + n);
}

function randomTensor(be: WebGPUAttentionBackend, shape: number[], seed: number, dtype: DType = 'float32'): GPUTensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const x = normals(n, seed);
  return be.upload(dtype === 'float32' ? ({ dtype, shape, data: x } as Any) : fromFloat32(x, shape, dtype));
}

/** float16 forward: subgroup-matrix (tensor core) kernel vs the fp32-math kernel on f16 storage. */
async function sgmatSweep(plain: WebGPUAttentionBackend, sg: WebGPUAttentionBackend): Promise<Any> {
  console.log(`subgroup matrix active: ${sg.subgroupMatrix} (${sg.name})`);
  const Ns = args.quick ? [128] : [1024, 4096, 16384];
  const tokens = args.quick ? 128 : 16384;
  const rows: Any[] = [];
  for (const D of [64, 128]) {
    const H = args.quick ? 2 : 2048 / D;
    for (const N of Ns) {
      const B = Math.max(1, tokens / N);
      const shape = [B, N, H, D];
      const row: Any = { D, N, B, H };
      const flops = forwardFlops({ batch: B, heads: H, seqlenQ: N, seqlenK: N, headDim: D });
      for (const [name, be] of [
        ['sgmat', sg],
        ['fp32math', plain],
      ] as const) {
        const [q, k, v] = [1, 2, 3].map((s) => randomTensor(be, shape, s, 'float16'));
        row[`${name}Ms`] = await timeGpu(be, async () => {
          const r = await be.forwardOnDevice(q!, k!, v!, {});
          be.release(r.out);
          be.release(r.lse);
        });
        row[`${name}Tflops`] = tflopsPerSecond(flops, row[`${name}Ms`]);
        [q, k, v].forEach((t) => be.release(t!));
        be.runtime.trim();
      }
      rows.push(row);
      console.log(`f16 fwd D=${D} N=${N}: subgroup-matrix ${row.sgmatTflops.toFixed(2)} TF, fp32-math ${row.fp32mathTflops.toFixed(2)} TF`);
    }
  }
  return { active: sg.subgroupMatrix, rows };
}

const tile = (BR: number, BC: number, TM: number, TN: number, DK: number, JK: number): Tiles => ({ BR, BC, TM, TN, DK, JK });

async function tileSweep(gpu: Any): Promise<Any[]> {
  const candidates: Tiles[] = [
    tile(64, 64, 4, 4, 16, 16),
    tile(64, 64, 4, 4, 32, 32),
    tile(64, 64, 4, 4, 8, 8),
    tile(128, 64, 8, 4, 8, 8),
    tile(64, 128, 4, 8, 8, 8),
    tile(128, 64, 8, 4, 16, 16),
  ];
  const rows: Any[] = [];
  for (const t of candidates) {
    const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
    const be = await createWebGPUBackend({ adapter, tiles: { forward: t } });
    try {
      for (const D of [64, 128]) {
        const N = args.quick ? 128 : 4096;
        const H = args.quick ? 2 : 2048 / D;
        const B = args.quick ? 1 : 16384 / N;
        const shape = [B, N, H, D];
        const [q, k, v] = [1, 2, 3].map((s) => randomTensor(be, shape, s));
        try {
          const ms = await timeGpu(be, async () => {
            const r = await be.forwardOnDevice(q!, k!, v!, {});
            be.release(r.out);
            be.release(r.lse);
          });
          const tf = tflopsPerSecond(forwardFlops({ batch: B, heads: H, seqlenQ: N, seqlenK: N, headDim: D }), ms);
          rows.push({ D, N, tiles: t, ms, tflops: tf });
          console.log(`tiles ${JSON.stringify(t)} D=${D} N=${N}: ${ms.toFixed(2)} ms ${tf.toFixed(2)} TF`);
        } catch (e) {
          rows.push({ D, tiles: t, error: String(e) });
          console.log(`tiles ${JSON.stringify(t)} D=${D}: ${String(e)}`);
        }
        [q, k, v].forEach((x) => be.release(x!));
      }
    } finally {
      be.dispose();
    }
  }
  return rows;
}

async function ceiling(be: WebGPUAttentionBackend): Promise<Any> {
  const rt = be.runtime;
  const S = args.quick ? 256 : 4096;
  const a = rt.acquire(S * S * 4);
  const b = rt.acquire(S * S * 4);
  const c = rt.acquire(S * S * 4);
  const consts = { M: S, N: S, K: S, a_rs: S, a_cs: 1, b_rs: S, b_cs: 1, c_rs: S, c_cs: 1 };
  const specs: MatmulSpec[] = [
    { BM: 64, BN: 64, BK: 16, aContig: 'k', bContig: 'n', consts },
    { BM: 64, BN: 64, BK: 8, aContig: 'k', bContig: 'n', consts },
    { BM: 128, BN: 128, BK: 8, aContig: 'k', bContig: 'n', consts },
    { BM: 128, BN: 64, BK: 8, aContig: 'k', bContig: 'n', consts },
    { BM: 64, BN: 64, BK: 16, aContig: 'k', bContig: 'n' },
    { BM: 64, BN: 64, BK: 8, aContig: 'k', bContig: 'n' },
    { BM: 128, BN: 128, BK: 8, aContig: 'k', bContig: 'n' },
    { BM: 128, BN: 64, BK: 16, aContig: 'k', bContig: 'n' },
    { BM: 128, BN: 128, BK: 16, aContig: 'k', bContig: 'n' },
  ];
  const rows: Any[] = [];
  for (const spec of args.quick ? specs.slice(4, 5) : specs) {
    const key = `bench-matmul-${spec.BM}x${spec.BN}x${spec.BK}${spec.consts ? '-const' : '-strided'}`;
    try {
      const pl = rt.pipeline(key, () => matmulWGSL(spec));
      const u = rt.uniform(
        packMatmulParams({
          z0: 0,
          local: { a: false, b: false, c: false },
          M: S,
          N: S,
          K: S,
          H: 1,
          a: { rs: S, cs: 1, b: 0, h: 0 },
          b: { rs: S, cs: 1, b: 0, h: 0 },
          c: { rs: S, cs: 1, b: 0, h: 0 },
          alpha: 1,
          beta: 0,
        }),
      );
      const ms = await timeGpu(be, () =>
        rt.submit((enc: Any) => {
          const pass = enc.beginComputePass();
          rt.dispatch(pass, pl, [u, a, b, c], [S / spec.BN, S / spec.BM, 1]);
          pass.end();
        }),
      );
      const tf = tflopsPerSecond(2 * S * S * S, ms);
      rows.push({ ...spec, size: S, ms, tflops: tf });
      console.log(`matmul ${key} ${S}^3: ${ms.toFixed(3)} ms, ${tf.toFixed(2)} TFLOP/s`);
      u.destroy();
    } catch (e) {
      rows.push({ ...spec, error: String(e) });
      console.log(`matmul ${key}: ${String(e)}`);
    }
  }
  [a, b, c].forEach((x) => rt.release(x));
  rt.trim();
  const best = rows.filter((r) => r.tflops).sort((x, y) => y.tflops - x.tflops)[0];
  return { rows, bestTflops: best?.tflops, best };
}

async function flashSweep(be: WebGPUAttentionBackend, progress: (rows: Any[]) => void): Promise<Any> {
  const std = createStandardAttention(be);
  const Ns = args.quick ? [128, 256] : [1024, 2048, 4096, 8192, 16384];
  const tokens = args.quick ? 256 : 16384;
  const rows: Any[] = [];
  for (const D of [64, 128]) {
    const H = args.quick ? 2 : 2048 / D;
    for (const causal of [false, true]) {
      for (const N of Ns) {
        const B = Math.max(1, tokens / N);
        const shape = [B, N, H, D];
        const q = randomTensor(be, shape, 1);
        const k = randomTensor(be, shape, 2);
        const v = randomTensor(be, shape, 3);
        const dout = randomTensor(be, shape, 4);
        const opts = { causal };
        const prob = { batch: B, heads: H, seqlenQ: N, seqlenK: N, headDim: D, causal };
        const fF = forwardFlops(prob);
        const fB = backwardFlops(prob);
        const row: Any = { D, N, B, H, causal };
        const fwd = await be.forwardOnDevice(q, k, v, opts);
        row.fwdMs = await timeGpu(be, async () => {
          const r = await be.forwardOnDevice(q, k, v, opts);
          be.release(r.out);
          be.release(r.lse);
        }, 100, 5);
        row.bwdMs = await timeGpu(be, async () => {
          const g = await be.backwardOnDevice(dout, q, k, v, fwd.out, fwd.lse, opts);
          be.release(g.dq);
          be.release(g.dk);
          be.release(g.dv);
        }, 100, 3);
        row.fwdTflops = tflopsPerSecond(fF, row.fwdMs);
        row.bwdTflops = tflopsPerSecond(fB, row.bwdMs);
        row.fwdBwdTflops = tflopsPerSecond(fF + fB, row.fwdMs + row.bwdMs);
        if (!causal) {
          try {
            const sf = await std.forwardOnDevice(q, k, v, opts);
            row.stdFwdMs = await timeGpu(be, async () => {
              const r = await std.forwardOnDevice(q, k, v, opts);
              be.release(r.out);
              be.release(r.lse);
            }, 100, 3);
            row.stdBwdMs = await timeGpu(be, async () => {
              const g = await std.backwardOnDevice(dout, q, k, v, sf.out, sf.lse, opts);
              be.release(g.dq);
              be.release(g.dk);
              be.release(g.dv);
            }, 100, 2);
            be.release(sf.out);
            be.release(sf.lse);
            row.speedupFwd = row.stdFwdMs / row.fwdMs;
            row.speedupFwdBwd = (row.stdFwdMs + row.stdBwdMs) / (row.fwdMs + row.bwdMs);
          } catch (e) {
            row.stdError = String(e);
          }
        }
        be.release(fwd.out);
        be.release(fwd.lse);
        [q, k, v, dout].forEach((t) => be.release(t));
        be.runtime.trim();
        rows.push(row);
        progress(rows);
        console.log(
          `flash D=${D} N=${N} B=${B} H=${H}${causal ? ' causal' : ''}: fwd ${row.fwdMs.toFixed(2)} ms ${row.fwdTflops.toFixed(2)} TF, ` +
            `bwd ${row.bwdMs.toFixed(2)} ms ${row.bwdTflops.toFixed(2)} TF, fwd+bwd ${row.fwdBwdTflops.toFixed(2)} TF` +
            (row.stdFwdMs ? `; standard fwd ${row.stdFwdMs.toFixed(2)} ms (x${row.speedupFwd.toFixed(2)}), fwd+bwd x${row.speedupFwdBwd.toFixed(2)}` : '') +
            (row.stdError ? `; standard: ${row.stdError}` : ''),
        );
      }
    }
  }
  return { rows, tiles: { 64: be.variant(64), 128: be.variant(128) } };
}

async function bigN(be: WebGPUAttentionBackend): Promise<Any> {
  const std = createStandardAttention(be);
  const N = args.quick ? 2048 : 65536;
  const D = 64;
  const H = args.quick ? 1 : 2048 / D / 2; // 16 heads
  const shape = [1, N, H, D];
  const rt = be.runtime;
  rt.trim();
  rt.resetPeak();
  const q = randomTensor(be, shape, 1);
  const k = randomTensor(be, shape, 2);
  const v = randomTensor(be, shape, 3);
  const inputBytes = rt.allocatedBytes;
  const out: Any = { N, D, H, B: 1, inputBytes };
  const t0 = performance.now();
  const r = await be.forwardOnDevice(q, k, v, {});
  await rt.idle();
  out.flashFwdMs = performance.now() - t0;
  out.flashFwdTflops = tflopsPerSecond(forwardFlops({ batch: 1, heads: H, seqlenQ: N, seqlenK: N, headDim: D }), out.flashFwdMs);
  out.flashPeakBytes = rt.peakBytes;
  be.release(r.out);
  be.release(r.lse);
  rt.resetPeak();
  out.standardNeedsBytes = std.materialisedBytes(q, k, false) + inputBytes + N * H * D * 4;
  try {
    const s = await std.forwardOnDevice(q, k, v, {});
    await rt.idle();
    out.standard = 'ran';
    be.release(s.out);
    be.release(s.lse);
  } catch (e) {
    out.standard = `${(e as Error).name}: ${(e as Error).message}`;
  }
  out.standardPeakBytes = rt.peakBytes;
  console.log(`N=${N}: flash fwd ${out.flashFwdMs.toFixed(0)} ms (${out.flashFwdTflops.toFixed(2)} TF), peak ${out.flashPeakBytes} B; standard: ${out.standard}`);
  [q, k, v].forEach((t) => be.release(t));
  rt.trim();
  return out;
}

main().catch((e: unknown) => {
  console.error(e);
  process.exitCode = 1;
});

export type { Tiles };
