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
  flashForwardSgmatWGSL,
  packParams,
  sgmatRows,
  type SgmatSpec,
  matmulV4WGSL,
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
    sections: {
      type: 'string',
      default: 'tiles,bwdtiles,ceiling,flash,n65536,sgmat',
      help: 'comma-separated sections to run (tiles, bwdtiles, ceiling, flash, n65536, sgmat)',
    },
    fwdOnly: { type: 'boolean', default: false, help: 'flash section: forward only (no backward, no standard baseline)' },
  },
  'webgpu-bench',
);

type Any = any; // eslint-disable-line @typescript-eslint/no-explicit-any
/** Subgroup-matrix forward: its shape per head dim, set by the sgmat section's sweep. */
const sgmatBest: Record<number, Omit<SgmatSpec, 'headDim'> | undefined> = {};
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
    // Best per head dim: the highest sum of TFLOP/s over the swept N (N = 1k and 4k weigh equally).
    for (const D of [64, 128]) {
      const score = new Map<string, { tiles: Tiles; sum: number; n: number }>();
      for (const r of results.tiles.filter((x: Any) => x.D === D)) {
        const key = JSON.stringify(r.tiles);
        const e = score.get(key) ?? { tiles: r.tiles, sum: 0, n: 0 };
        e.sum += r.tflops ?? 0;
        e.n += r.tflops ? 1 : 0;
        score.set(key, e);
      }
      const full = [...score.values()].filter((e) => e.n === (args.quick ? 1 : 2));
      const top = full.sort((a, b) => b.sum - a.sum)[0];
      if (top) best[D] = top.tiles;
    }
    results.bestTiles = best;
  }
  // Backward tile candidates at N = 1k and 4k; the flash sweep then uses the best per head dim.
  let bwdBest: Record<number, { dq?: Tiles; dkdv?: Tiles }> = {};
  if (sections.has('bwdtiles')) {
    results.bwdTiles = await bwdTileSweep(gpu);
    bwdBest = bestBwd(results.bwdTiles);
    results.bestBwdTiles = bwdBest;
    writeFileSync(args.out, JSON.stringify(results, null, 1));
  }
  const be = await createWebGPUBackend({
    adapter,
    tiles: (D) => ({ ...(best[D] ? { forward: best[D] } : {}), ...(bwdBest[D] ?? {}) }),
  });
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
      const sg = await createWebGPUBackend({ adapter: adapter2, subgroupMatrix: true, sgmatSpec: (D) => sgmatBest[D] });
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

/**
 * Wall time per call (ms) of `fn` (which enqueues GPU work) until the queue drains. Warm-up runs for
 * at least `warmMs` (one call at least), so the GPU's clocks have ramped up after the host-side setup
 * between configurations (short calls measured after one warm-up call read up to 2x slow at N = 1k).
 */
async function timeGpu(
  be: WebGPUAttentionBackend,
  fn: () => Promise<void>,
  minMs = 250,
  maxReps = 50,
  warmMs = 150,
): Promise<number> {
  const w0 = performance.now();
  do {
    await fn();
    await be.runtime.idle();
  } while (performance.now() - w0 < warmMs);
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

/** Time one subgroup-matrix kernel (possibly an ablation with wrong results) dispatched directly. */
async function timeSgmatKernel(sg: WebGPUAttentionBackend, spec: SgmatSpec, N: number): Promise<number> {
  const D = spec.headDim;
  const H = 2048 / D;
  const B = Math.max(1, 16384 / N);
  const shape = [B, N, H, D];
  const rt = sg.runtime;
  const [q, k, v] = [1, 2, 3].map((s) => randomTensor(sg, shape, s, 'float16'));
  const o = rt.acquire(B * N * H * D * 4);
  const lse = rt.acquire(B * H * N * 4);
  const u = rt.uniform(
    packParams({ B, Nq: N, Nk: N, Hq: H, Hk: H, scale: 1 / Math.sqrt(D), windowLeft: -1, windowRight: -1 }),
  );
  const key = `bench-sgmat-d${D}-qt${spec.QT}-bc${spec.BC ?? 32}${spec.QREG ? '-qreg' : ''}-${spec.ablate ?? 'full'}`;
  const pl = rt.pipeline(key, () => flashForwardSgmatWGSL(spec));
  const ms = await timeGpu(sg, () =>
    rt.submit((enc: Any) => {
      const pass = enc.beginComputePass();
      rt.dispatch(pass, pl, [u, q!.buffer, k!.buffer, v!.buffer, o, lse], [Math.ceil(N / sgmatRows(spec)), H, B]);
      pass.end();
    }),
  );
  u.destroy();
  [q, k, v].forEach((t) => sg.release(t!));
  rt.release(o);
  rt.release(lse);
  rt.trim();
  return ms;
}

/**
 * float16 forward: subgroup-matrix (tensor core) kernel vs the fp32-math kernel on f16 storage.
 * First a sweep of Q tiles per workgroup (QT) and ablations (what each part costs) at N = 4096; the
 * best QT per head dim is then used for the N sweep.
 */
async function sgmatSweep(plain: WebGPUAttentionBackend, sg: WebGPUAttentionBackend): Promise<Any> {
  console.log(`subgroup matrix active: ${sg.subgroupMatrix} (${sg.name})`);
  const out: Any = { active: sg.subgroupMatrix, qtSweep: [], ablations: [], rows: [] };
  if (!sg.subgroupMatrix) return out;
  const Nt = args.quick ? 128 : 4096;
  for (const D of [64, 128]) {
    const flops = forwardFlops({ batch: Math.max(1, 16384 / Nt), heads: 2048 / D, seqlenQ: Nt, seqlenK: Nt, headDim: D });
    let best: { spec: Omit<SgmatSpec, 'headDim'>; tflops: number } | undefined;
    const specs: Omit<SgmatSpec, 'headDim'>[] = [
      { QT: 1 },
      { QT: 1, QREG: true },
      { QT: 1, BC: 64 },
      { QT: 1, BC: 64, QREG: true },
      { QT: 2, QREG: true },
    ];
    for (const spec of specs) {
      try {
        const ms = await timeSgmatKernel(sg, { ...spec, headDim: D }, Nt);
        const tflops = tflopsPerSecond(flops, ms);
        out.qtSweep.push({ D, N: Nt, ...spec, ms, tflops });
        console.log(`sgmat D=${D} N=${Nt} ${JSON.stringify(spec)}: ${ms.toFixed(2)} ms ${tflops.toFixed(2)} TF`);
        if (!best || tflops > best.tflops) best = { spec, tflops };
      } catch (e) {
        out.qtSweep.push({ D, N: Nt, ...spec, error: String(e) });
        console.log(`sgmat D=${D} ${JSON.stringify(spec)}: ${String(e)}`);
      }
    }
    sgmatBest[D] = best?.spec;
    for (const ablate of ['mma', 'softmax', 'loads'] as const) {
      try {
        const spec = { ...(best?.spec ?? { QT: 1 }), headDim: D, ablate };
        const ms = await timeSgmatKernel(sg, spec, Nt);
        out.ablations.push({ D, N: Nt, ...spec, ms });
        console.log(`sgmat D=${D} N=${Nt} ${JSON.stringify(best?.spec)} without ${ablate}: ${ms.toFixed(2)} ms`);
      } catch (e) {
        out.ablations.push({ D, ablate, error: String(e) });
      }
    }
  }
  out.best = { ...sgmatBest };
  const Ns = args.quick ? [128] : [1024, 4096, 16384];
  const tokens = args.quick ? 128 : 16384;
  for (const D of [64, 128]) {
    const H = args.quick ? 2 : 2048 / D;
    for (const N of Ns) {
      const B = Math.max(1, tokens / N);
      const shape = [B, N, H, D];
      const row: Any = { D, N, B, H, spec: sgmatBest[D] };
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
      out.rows.push(row);
      console.log(`f16 fwd D=${D} N=${N}: subgroup-matrix ${row.sgmatTflops.toFixed(2)} TF, fp32-math ${row.fp32mathTflops.toFixed(2)} TF`);
    }
  }
  return out;
}

const tile = (BR: number, BC: number, TM: number, TN: number, DK: number, JK: number, more: Partial<Tiles> = {}): Tiles => ({
  BR,
  BC,
  TM,
  TN,
  DK,
  JK,
  ...more,
});
const V4 = { V4: true };
const V4QR = { V4: true, QR: true };

/**
 * Backward tile candidates (flash-backward-dq-v4.wgsl.ts, flash-backward-dkdv-v4.wgsl.ts): each dQ
 * candidate with the default dK/dV tiles and each dK/dV candidate with the default dQ tiles, plus the
 * previous scalar pair, timed as whole backward calls (preprocess + dK/dV + dQ) at N = 1k and 4k.
 */
interface BwdCandidate {
  label: string;
  /** Which pass this candidate varies ('dq', 'dkdv'), 'default' or 'scalar' (the earlier kernels). */
  varies: 'dq' | 'dkdv' | 'default' | 'scalar';
  tiles: { dq?: Tiles; dkdv?: Tiles };
}
const BWD_CANDIDATES: BwdCandidate[] = [
  { label: 'scalar (earlier default)', varies: 'scalar', tiles: { dq: tile(64, 64, 4, 4, 16, 16), dkdv: tile(64, 32, 4, 2, 16, 16) } },
  { label: 'default', varies: 'default', tiles: {} },
  // run 1 (h100-bwd-v4-run1-2026-11-21.json) tried dQ 64x64 4x4 DK16, 128x64 4x4 and 64x64 8x4, dK/dV
  // 32x64 4x4 DK16 (resident K/V too), 128x32 8x4 and 64x64 4x4 DK8 JK8/16 (table in variants.ts)
  { label: 'dq v4 128x64 8x4 DK8 JK16', varies: 'dq', tiles: { dq: tile(128, 64, 8, 4, 8, 16, V4) } },
  { label: 'dq v4 64x64 4x4 DK16 JK16', varies: 'dq', tiles: { dq: tile(64, 64, 4, 4, 16, 16, V4) } },
  { label: 'dq v4 64x128 4x8 DK8 JK16', varies: 'dq', tiles: { dq: tile(64, 128, 4, 8, 8, 16, V4) } },
  { label: 'dq v4 128x64 8x4 DK8 JK8', varies: 'dq', tiles: { dq: tile(128, 64, 8, 4, 8, 8, V4) } },
  { label: 'dkdv v4 64x64 4x4 DK8 JK8', varies: 'dkdv', tiles: { dkdv: tile(64, 64, 4, 4, 8, 8, V4) } },
  { label: 'dkdv v4 32x64 4x4 DK16 JK16 (128 inv.)', varies: 'dkdv', tiles: { dkdv: tile(32, 64, 4, 4, 16, 16, V4) } },
  { label: 'dkdv v4 32x128 4x8 DK8 JK8 (128 inv.)', varies: 'dkdv', tiles: { dkdv: tile(32, 128, 4, 8, 8, 8, V4) } },
  { label: 'dkdv v4 32x64 4x4 DK16 JK8 (128 inv.)', varies: 'dkdv', tiles: { dkdv: tile(32, 64, 4, 4, 16, 8, V4) } },
];

async function bwdTileSweep(gpu: Any): Promise<Any[]> {
  const rows: Any[] = [];
  for (const cand of BWD_CANDIDATES) {
    const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
    const be = await createWebGPUBackend({ adapter, tiles: { ...cand.tiles } });
    try {
      for (const [D, N] of args.quick ? [[64, 128], [128, 128]] : [[64, 1024], [64, 4096], [128, 1024], [128, 4096]]) {
        if (D === undefined || N === undefined) continue;
        const H = args.quick ? 2 : 2048 / D;
        const B = args.quick ? 1 : 16384 / N;
        const shape = [B, N, H, D];
        const [q, k, v, dout] = [1, 2, 3, 4].map((s) => randomTensor(be, shape, s));
        const used = { dq: be.variant(D).dq, dkdv: be.variant(D).dkdv };
        try {
          const fwd = await be.forwardOnDevice(q!, k!, v!, {});
          const ms = await timeGpu(be, async () => {
            const g = await be.backwardOnDevice(dout!, q!, k!, v!, fwd.out, fwd.lse, {});
            be.release(g.dq);
            be.release(g.dk);
            be.release(g.dv);
          }, 250, 5);
          be.release(fwd.out);
          be.release(fwd.lse);
          const tf = tflopsPerSecond(backwardFlops({ batch: B, heads: H, seqlenQ: N, seqlenK: N, headDim: D }), ms);
          rows.push({ D, N, label: cand.label, varies: cand.varies, tiles: used, ms, tflops: tf });
          console.log(`bwd tiles ${cand.label} D=${D} N=${N}: ${ms.toFixed(2)} ms ${tf.toFixed(2)} TF`);
        } catch (e) {
          rows.push({ D, N, label: cand.label, varies: cand.varies, tiles: used, error: String(e) });
          console.log(`bwd tiles ${cand.label} D=${D} N=${N}: ${String(e)}`);
        }
        [q, k, v, dout].forEach((x) => be.release(x!));
        be.runtime.trim();
      }
    } finally {
      be.dispose();
    }
  }
  return rows;
}

/** Per head dim, the dQ and dK/dV tiles of the best-scoring (sum of TFLOP/s over N) candidates. */
function bestBwd(rows: Any[]): Record<number, { dq?: Tiles; dkdv?: Tiles }> {
  const out: Record<number, { dq?: Tiles; dkdv?: Tiles }> = {};
  for (const D of [64, 128]) {
    const score = (label: string) => {
      const r = rows.filter((x) => x.D === D && x.label === label);
      return r.length > 0 && r.every((x) => x.tflops) ? r.reduce((a, x) => a + x.tflops, 0) : -1;
    };
    const def = rows.find((x) => x.D === D && x.varies === 'default');
    if (!def) continue;
    const pickFor = (pass: 'dq' | 'dkdv'): Tiles => {
      let best = { s: score('default'), t: def.tiles[pass] as Tiles };
      for (const c of BWD_CANDIDATES.filter((x) => x.varies === pass)) {
        const s = score(c.label);
        if (s > best.s) best = { s, t: c.tiles[pass]! };
      }
      return best.t;
    };
    out[D] = { dq: pickFor('dq'), dkdv: pickFor('dkdv') };
  }
  return out;
}

async function tileSweep(gpu: Any): Promise<Any[]> {
  // The scalar kernel's best (run 1, 2026-11-21) and vec4-kernel candidates (flash-forward-v4.wgsl.ts).
  const candidates: Tiles[] = [
    tile(128, 64, 8, 4, 8, 8), // scalar kernel, the earlier default
    tile(128, 64, 8, 4, 16, 16, V4),
    tile(128, 64, 8, 4, 16, 8, V4),
    tile(128, 64, 4, 4, 16, 16, V4), // 512 invocations, half the registers each
    tile(64, 64, 8, 4, 16, 16, V4), // 128 invocations
    tile(64, 64, 8, 4, 16, 16, V4QR), // 128 invocations, Q resident (D = 64 only)
  ];
  const rows: Any[] = [];
  for (const t of candidates) {
    const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
    const be = await createWebGPUBackend({ adapter, tiles: { forward: t } });
    try {
      for (const [D, N] of args.quick ? [[64, 128], [128, 128]] : [[64, 1024], [64, 4096], [128, 1024], [128, 4096]]) {
        if (D === undefined || N === undefined) continue;
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
          rows.push({ D, N, tiles: t, error: String(e) });
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
  // Random A, B (uniform in [-1, 1)) so that the vec4 kernels' results can be spot-checked.
  let seed = 12345;
  const lcg = (): number => ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 2 ** 31) - 1;
  const ha = Float32Array.from({ length: S * S }, lcg);
  const hb = Float32Array.from({ length: S * S }, lcg);
  rt.upload(a, ha);
  rt.upload(b, hb);
  for (const G of [1, 2] as const) {
    for (const BK of [8, 16]) {
      const key = `bench-matmul-v4-${64 * G}x${64 * G}x${BK}`;
      try {
        const pl = rt.pipeline(key, () => matmulV4WGSL({ G, BK, M: S, N: S, K: S }));
        const ms = await timeGpu(be, () =>
          rt.submit((enc: Any) => {
            const pass = enc.beginComputePass();
            rt.dispatch(pass, pl, [a, b, c], [S / (64 * G), S / (64 * G), 1]);
            pass.end();
          }),
        );
        // spot check 64 entries against a float64 dot product (bound: K * 2^-24 * sum|a b| <= S^2 2^-24)
        const got = new Float32Array(await rt.read(c, S * S * 4));
        let worst = 0;
        for (let t = 0; t < 64; t++) {
          const i = (t * 977) % S;
          const j = (t * 1543 + 7) % S;
          let ref = 0;
          for (let kk = 0; kk < S; kk++) ref += ha[i * S + kk]! * hb[kk * S + j]!;
          worst = Math.max(worst, Math.abs(got[i * S + j]! - ref));
        }
        const tf = tflopsPerSecond(2 * S * S * S, ms);
        const ok = worst <= S * S * 2 ** -24;
        rows.push({ kernel: 'v4', G, BK, size: S, ms, tflops: ok ? tf : undefined, maxErr: worst, checked: ok });
        console.log(`matmul ${key} ${S}^3: ${ms.toFixed(3)} ms, ${tf.toFixed(2)} TFLOP/s, spot-check max err ${worst.toExponential(2)}${ok ? '' : ' FAILED'}`);
      } catch (e) {
        rows.push({ kernel: 'v4', G, BK, error: String(e) });
        console.log(`matmul ${key}: ${String(e)}`);
      }
    }
  }
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
        });
        row.fwdTflops = tflopsPerSecond(fF, row.fwdMs);
        if (args.fwdOnly) {
          be.release(fwd.out);
          be.release(fwd.lse);
          [q, k, v, dout].forEach((t) => be.release(t));
          be.runtime.trim();
          rows.push(row);
          progress(rows);
          console.log(`flash D=${D} N=${N} B=${B} H=${H}${causal ? ' causal' : ''}: fwd ${row.fwdMs.toFixed(2)} ms ${row.fwdTflops.toFixed(2)} TF`);
          continue;
        }
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
