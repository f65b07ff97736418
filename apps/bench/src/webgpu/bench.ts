/**
 * WebGPU benchmark (run on the H100 through Dawn/Vulkan; see BENCHMARKS.md, section WebGPU):
 *   1. the ceiling: the best fp32 WGSL matmul of a few tilings, TFLOP/s at 4096^3;
 *   2. flash forward / backward / forward+backward, fp32, D = 64 and 128, N = 1k..16k
 *      (batch = 16k / N, heads = 2048 / D, as in the FlashAttention papers), against the standard
 *      baseline (materialised S, P) at each N;
 *   3. N = 65536: flash runs, the baseline cannot allocate S; peak buffer bytes for both.
 * Writes JSON to --out (one file) and prints a table. Dawn is loaded from --dawn (dawn.node) or the
 * `webgpu` package. Flash and the baseline are called through the device API on contiguous views; the
 * strided packed layout is timed by strided.ts. (The subgroup-matrix forward's sweep moved with the
 * kernel to packages/webgpu/dev/.)
 *
 *   node webgpu-bench.mjs --dawn ./dawn.node --out results.json [--quick]
 */
import { createRequire } from 'node:module';
import { writeFileSync } from 'node:fs';
import {
  contiguousView,
  createRng,
  type AttentionOptions,
  type DType,
  type StridedView,
} from '@flashattn/core';
import {
  createWebGPUBackend,
  DEFAULT_DAWN_FLAGS,
  type WebGPUAttentionBackend,
  type WebGPUBuffer,
} from '@flashattn/webgpu';
import {
  createStandardAttention,
  matmulProgram,
  matmulUniforms,
  matmulV4Program,
  type MatmulSpec,
  type StandardAttention,
  type Tiles,
} from '@flashattn/webgpu/kernels';
import { backwardFlops, forwardFlops, parseArgsOrExit, tflopsPerSecond } from '../lib/index.js';

const args = parseArgsOrExit(
  process.argv.slice(2),
  {
    dawn: { type: 'string', default: '', help: 'path to dawn.node (default: the webgpu package)' },
    out: { type: 'string', default: 'webgpu-bench.json', help: 'JSON output file' },
    quick: {
      type: 'boolean',
      default: false,
      help: 'small sizes (a dry run on a software adapter)',
    },
    sections: {
      type: 'string',
      default: 'tiles,bwdtiles,ceiling,flash,n65536',
      help: 'comma-separated sections to run (tiles, bwdtiles, ceiling, flash, n65536)',
    },
    fwdOnly: {
      type: 'boolean',
      default: false,
      help: 'flash section: forward only (no backward, no standard baseline)',
    },
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
    adapter: {
      vendor: info.vendor,
      architecture: info.architecture,
      device: info.device,
      description: info.description,
    },
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
    if (sections.has('flash'))
      results.flash = await flashSweep(be, (rows) => ((results.flash = { rows }), save()));
    save();
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

/** A (B, N, H, D) tensor on the device: its buffer and contiguous view. */
interface DevTensor {
  buf: WebGPUBuffer;
  view: StridedView<WebGPUBuffer>;
}

async function randomTensor(
  be: WebGPUAttentionBackend,
  shape: number[],
  seed: number,
  dtype: DType = 'float32',
): Promise<DevTensor> {
  const n = shape.reduce((a, b) => a * b, 1);
  const buf = be.alloc(n, dtype);
  await be.upload(buf, normals(n, seed));
  return { buf, view: contiguousView(buf, shape as [number, number, number, number]) };
}

/** What the flash backend and the standard baseline both offer: the device attention calls. */
type Attention =
  Pick<WebGPUAttentionBackend, 'attentionForward' | 'attentionBackward'> | StandardAttention;

/** out (like q) and lse buffers for one configuration, and calls that write them. */
function calls(
  be: WebGPUAttentionBackend,
  att: Attention,
  q: DevTensor,
  k: DevTensor,
  v: DevTensor,
  opts: AttentionOptions,
) {
  const [B, N, H] = q.view.shape;
  const out = be.alloc(q.buf.length, q.buf.dtype);
  const lse = be.alloc(B * H * N, 'float32');
  const o = contiguousView(out, q.view.shape);
  // dq, dk, dv allocated by the first backward (so a forward-only peak counts out and lse alone)
  let grads: WebGPUBuffer[] = [];
  const gradViews = () => {
    if (grads.length === 0) grads = [q, k, v].map((t) => be.alloc(t.buf.length, t.buf.dtype));
    return grads.map((g, i) => contiguousView(g, [q, k, v][i]!.view.shape));
  };
  return {
    forward: async () => {
      await att.attentionForward({ q: q.view, k: k.view, v: v.view, out: o, lse }, opts);
    },
    backward: async (dout: DevTensor) => {
      const [dq, dk, dv] = gradViews() as [
        StridedView<WebGPUBuffer>,
        StridedView<WebGPUBuffer>,
        StridedView<WebGPUBuffer>,
      ];
      await att.attentionBackward(
        { q: q.view, k: k.view, v: v.view, out: o, lse, dout: dout.view, dq, dk, dv },
        opts,
      );
    },
    free: () => [out, lse, ...grads].forEach((b) => be.free(b)),
  };
}

const tile = (
  BR: number,
  BC: number,
  TM: number,
  TN: number,
  DK: number,
  JK: number,
  more: Partial<Tiles> = {},
): Tiles => ({
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
  {
    label: 'scalar (earlier default)',
    varies: 'scalar',
    tiles: { dq: tile(64, 64, 4, 4, 16, 16), dkdv: tile(64, 32, 4, 2, 16, 16) },
  },
  { label: 'default', varies: 'default', tiles: {} },
  // run 1 (h100-bwd-v4-run1-2026-11-21.json) tried dQ 64x64 4x4 DK16, 128x64 4x4 and 64x64 8x4, dK/dV
  // 32x64 4x4 DK16 (resident K/V too), 128x32 8x4 and 64x64 4x4 DK8 JK8/16 (table in variants.ts)
  {
    label: 'dq v4 128x64 8x4 DK8 JK16',
    varies: 'dq',
    tiles: { dq: tile(128, 64, 8, 4, 8, 16, V4) },
  },
  {
    label: 'dq v4 64x64 4x4 DK16 JK16',
    varies: 'dq',
    tiles: { dq: tile(64, 64, 4, 4, 16, 16, V4) },
  },
  {
    label: 'dq v4 64x128 4x8 DK8 JK16',
    varies: 'dq',
    tiles: { dq: tile(64, 128, 4, 8, 8, 16, V4) },
  },
  { label: 'dq v4 128x64 8x4 DK8 JK8', varies: 'dq', tiles: { dq: tile(128, 64, 8, 4, 8, 8, V4) } },
  {
    label: 'dkdv v4 64x64 4x4 DK8 JK8',
    varies: 'dkdv',
    tiles: { dkdv: tile(64, 64, 4, 4, 8, 8, V4) },
  },
  {
    label: 'dkdv v4 32x64 4x4 DK16 JK16 (128 inv.)',
    varies: 'dkdv',
    tiles: { dkdv: tile(32, 64, 4, 4, 16, 16, V4) },
  },
  {
    label: 'dkdv v4 32x128 4x8 DK8 JK8 (128 inv.)',
    varies: 'dkdv',
    tiles: { dkdv: tile(32, 128, 4, 8, 8, 8, V4) },
  },
  {
    label: 'dkdv v4 32x64 4x4 DK16 JK8 (128 inv.)',
    varies: 'dkdv',
    tiles: { dkdv: tile(32, 64, 4, 4, 16, 8, V4) },
  },
];

async function bwdTileSweep(gpu: Any): Promise<Any[]> {
  const rows: Any[] = [];
  for (const cand of BWD_CANDIDATES) {
    const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
    const be = await createWebGPUBackend({ adapter, tiles: { ...cand.tiles } });
    try {
      for (const [D, N] of args.quick
        ? [
            [64, 128],
            [128, 128],
          ]
        : [
            [64, 1024],
            [64, 4096],
            [128, 1024],
            [128, 4096],
          ]) {
        if (D === undefined || N === undefined) continue;
        const H = args.quick ? 2 : 2048 / D;
        const B = args.quick ? 1 : 16384 / N;
        const shape = [B, N, H, D];
        const [q, k, v, dout] = await Promise.all(
          [1, 2, 3, 4].map((s) => randomTensor(be, shape, s)),
        );
        const used = { dq: be.variant(D).dq, dkdv: be.variant(D).dkdv };
        const c = calls(be, be, q!, k!, v!, {});
        try {
          await c.forward();
          const ms = await timeGpu(be, () => c.backward(dout!), 250, 5);
          const tf = tflopsPerSecond(
            backwardFlops({ batch: B, heads: H, seqlenQ: N, seqlenK: N, headDim: D }),
            ms,
          );
          rows.push({ D, N, label: cand.label, varies: cand.varies, tiles: used, ms, tflops: tf });
          console.log(
            `bwd tiles ${cand.label} D=${D} N=${N}: ${ms.toFixed(2)} ms ${tf.toFixed(2)} TF`,
          );
        } catch (e) {
          rows.push({
            D,
            N,
            label: cand.label,
            varies: cand.varies,
            tiles: used,
            error: String(e),
          });
          console.log(`bwd tiles ${cand.label} D=${D} N=${N}: ${String(e)}`);
        }
        c.free();
        [q, k, v, dout].forEach((x) => be.free(x!.buf));
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
      for (const [D, N] of args.quick
        ? [
            [64, 128],
            [128, 128],
          ]
        : [
            [64, 1024],
            [64, 4096],
            [128, 1024],
            [128, 4096],
          ]) {
        if (D === undefined || N === undefined) continue;
        const H = args.quick ? 2 : 2048 / D;
        const B = args.quick ? 1 : 16384 / N;
        const shape = [B, N, H, D];
        const [q, k, v] = await Promise.all([1, 2, 3].map((s) => randomTensor(be, shape, s)));
        const c = calls(be, be, q!, k!, v!, {});
        try {
          const ms = await timeGpu(be, c.forward);
          const tf = tflopsPerSecond(
            forwardFlops({ batch: B, heads: H, seqlenQ: N, seqlenK: N, headDim: D }),
            ms,
          );
          rows.push({ D, N, tiles: t, ms, tflops: tf });
          console.log(
            `tiles ${JSON.stringify(t)} D=${D} N=${N}: ${ms.toFixed(2)} ms ${tf.toFixed(2)} TF`,
          );
        } catch (e) {
          rows.push({ D, N, tiles: t, error: String(e) });
          console.log(`tiles ${JSON.stringify(t)} D=${D}: ${String(e)}`);
        }
        c.free();
        [q, k, v].forEach((x) => be.free(x!.buf));
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
  const lcg = (): number => (seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 2 ** 31 - 1;
  const ha = Float32Array.from({ length: S * S }, lcg);
  const hb = Float32Array.from({ length: S * S }, lcg);
  rt.upload(a, ha);
  rt.upload(b, hb);
  for (const G of [1, 2] as const) {
    for (const BK of [8, 16]) {
      const key = `bench-matmul-v4-${64 * G}x${64 * G}x${BK}`;
      try {
        const program = matmulV4Program({ G, BK, M: S, N: S, K: S });
        const ms = await timeGpu(be, () =>
          rt.submit((enc: Any) => {
            const pass = enc.beginComputePass();
            rt.programs.run(pass, program, {}, { A: a, Bm: b, C: c });
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
        rows.push({
          kernel: 'v4',
          G,
          BK,
          size: S,
          ms,
          tflops: ok ? tf : undefined,
          maxErr: worst,
          checked: ok,
        });
        console.log(
          `matmul ${key} ${S}^3: ${ms.toFixed(3)} ms, ${tf.toFixed(2)} TFLOP/s, spot-check max err ${worst.toExponential(2)}${ok ? '' : ' FAILED'}`,
        );
      } catch (e) {
        rows.push({ kernel: 'v4', G, BK, error: String(e) });
        console.log(`matmul ${key}: ${String(e)}`);
      }
    }
  }
  for (const spec of args.quick ? specs.slice(4, 5) : specs) {
    const key = `bench-matmul-${spec.BM}x${spec.BN}x${spec.BK}${spec.consts ? '-const' : '-strided'}`;
    try {
      const program = matmulProgram(spec, [S / spec.BN, S / spec.BM, 1]);
      const uniforms = matmulUniforms({
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
      });
      const ms = await timeGpu(be, () =>
        rt.submit((enc: Any) => {
          const pass = enc.beginComputePass();
          rt.programs.run(pass, program, uniforms, { A: a, Bm: b, C: c });
          pass.end();
        }),
      );
      const tf = tflopsPerSecond(2 * S * S * S, ms);
      rows.push({ ...spec, size: S, ms, tflops: tf });
      console.log(`matmul ${key} ${S}^3: ${ms.toFixed(3)} ms, ${tf.toFixed(2)} TFLOP/s`);
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

async function flashSweep(
  be: WebGPUAttentionBackend,
  progress: (rows: Any[]) => void,
): Promise<Any> {
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
        const [q, k, v, dout] = await Promise.all(
          [1, 2, 3, 4].map((s) => randomTensor(be, shape, s)),
        );
        const opts = { causal };
        const prob = { batch: B, heads: H, seqlenQ: N, seqlenK: N, headDim: D, causal };
        const fF = forwardFlops(prob);
        const fB = backwardFlops(prob);
        const row: Any = { D, N, B, H, causal };
        const flash = calls(be, be, q!, k!, v!, opts);
        const done = () => {
          flash.free();
          [q, k, v, dout].forEach((t) => be.free(t!.buf));
          be.runtime.trim();
        };
        row.fwdMs = await timeGpu(be, flash.forward);
        row.fwdTflops = tflopsPerSecond(fF, row.fwdMs);
        if (args.fwdOnly) {
          done();
          rows.push(row);
          progress(rows);
          console.log(
            `flash D=${D} N=${N} B=${B} H=${H}${causal ? ' causal' : ''}: fwd ${row.fwdMs.toFixed(2)} ms ${row.fwdTflops.toFixed(2)} TF`,
          );
          continue;
        }
        row.bwdMs = await timeGpu(be, () => flash.backward(dout!), 100, 3);
        row.bwdTflops = tflopsPerSecond(fB, row.bwdMs);
        row.fwdBwdTflops = tflopsPerSecond(fF + fB, row.fwdMs + row.bwdMs);
        if (!causal) {
          const base = calls(be, std, q!, k!, v!, opts);
          try {
            row.stdFwdMs = await timeGpu(be, base.forward, 100, 3);
            row.stdBwdMs = await timeGpu(be, () => base.backward(dout!), 100, 2);
            row.speedupFwd = row.stdFwdMs / row.fwdMs;
            row.speedupFwdBwd = (row.stdFwdMs + row.stdBwdMs) / (row.fwdMs + row.bwdMs);
          } catch (e) {
            row.stdError = String(e);
          } finally {
            base.free();
          }
        }
        done();
        rows.push(row);
        progress(rows);
        console.log(
          `flash D=${D} N=${N} B=${B} H=${H}${causal ? ' causal' : ''}: fwd ${row.fwdMs.toFixed(2)} ms ${row.fwdTflops.toFixed(2)} TF, ` +
            `bwd ${row.bwdMs.toFixed(2)} ms ${row.bwdTflops.toFixed(2)} TF, fwd+bwd ${row.fwdBwdTflops.toFixed(2)} TF` +
            (row.stdFwdMs
              ? `; standard fwd ${row.stdFwdMs.toFixed(2)} ms (x${row.speedupFwd.toFixed(2)}), fwd+bwd x${row.speedupFwdBwd.toFixed(2)}`
              : '') +
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
  const [q, k, v] = await Promise.all([1, 2, 3].map((s) => randomTensor(be, shape, s)));
  const inputBytes = rt.allocatedBytes;
  const out: Any = { N, D, H, B: 1, inputBytes };
  const flash = calls(be, be, q!, k!, v!, {});
  const t0 = performance.now();
  await flash.forward();
  await rt.idle();
  out.flashFwdMs = performance.now() - t0;
  out.flashFwdTflops = tflopsPerSecond(
    forwardFlops({ batch: 1, heads: H, seqlenQ: N, seqlenK: N, headDim: D }),
    out.flashFwdMs,
  );
  out.flashPeakBytes = rt.peakBytes;
  flash.free();
  rt.resetPeak();
  out.standardNeedsBytes =
    std.materialisedBytes(q!.view, k!.view, false) + inputBytes + N * H * D * 4;
  const base = calls(be, std, q!, k!, v!, {});
  try {
    await base.forward();
    await rt.idle();
    out.standard = 'ran';
  } catch (e) {
    out.standard = `${(e as Error).name}: ${(e as Error).message}`;
  } finally {
    base.free();
  }
  out.standardPeakBytes = rt.peakBytes;
  console.log(
    `N=${N}: flash fwd ${out.flashFwdMs.toFixed(0)} ms (${out.flashFwdTflops.toFixed(2)} TF), peak ${out.flashPeakBytes} B; standard: ${out.standard}`,
  );
  [q, k, v].forEach((t) => be.free(t!.buf));
  rt.trim();
  return out;
}

main().catch((e: unknown) => {
  console.error(e);
  process.exitCode = 1;
});

export type { Tiles };
