/**
 * Decode attention on WebGPU (issue #12): one new query per sequence (Nq = 1, appended into the cache
 * first, as a generation step does) over a KV cache of L keys, H = 32 query heads, Hk = 8 kv heads,
 * D = 128, f16 where the adapter has shader-f16 (else f32), batch B, contiguous and paged
 * (page_size 256, pages in a random order) caches, split-KV by the backend's heuristic.
 *
 * The figure of merit is the bandwidth of reading K and V: decode reads each cached key and value
 * once, so achieved GB/s = 2 * B * L * Hk * D * bytes / time, set against a plain WGSL vec4 copy
 * kernel's GB/s ((read + write) bytes / time) measured in the same run on the same device.
 * Timing: `--reps` calls issued back to back (each records and submits its own command buffer, as a
 * generation loop would), divided into the wall time until the queue drains, after a warm-up; small
 * problems are therefore bounded by the per-call submit cost, not by memory.
 * Caches are zero-filled on the GPU (values do not change the work), q is random.
 *
 *   node decode-bench.mjs [--dawn ./dawn.node] [--batches 1,8,32,64] [--lens 1024,...,131072]
 *        [--layouts contiguous,paged] [--kernels rows,staged] [--max-gib 40] [--json out.json] [--quick]
 * --kernels times both kv-cache-attention variants (the backend's kvStageK option) in the same run, so
 * one GPU run picks the default.
 *   (bundled for the GPU machine by decode-device.sh; --quick: small shapes for a software adapter)
 */
import { createRequire } from 'node:module';
import { writeFileSync } from 'node:fs';
import { contiguousView, createRng, kvSplitHeuristic, type DType } from '@flashattn/core';
import {
  createWebGPUBackend,
  DEFAULT_DAWN_FLAGS,
  type WebGPUAttentionBackend,
  type WebGPUBuffer,
} from '@flashattn/webgpu';
import type { ProgramInfo } from '@flashattn/webgpu/kernels';
import { fmt, formatTable, parseArgsOrExit, type ArgSchema } from '../lib/index.js';

const SCHEMA = {
  dawn: { type: 'string', default: '', help: 'path to dawn.node (default: the webgpu package)' },
  batches: { type: 'intList', default: [1, 8, 32, 64], min: 1, help: 'batch sizes B' },
  lens: {
    type: 'intList',
    default: [1024, 4096, 16384, 65536, 131072],
    min: 1,
    help: 'keys per sequence L (after the append)',
  },
  layouts: { type: 'string', default: 'contiguous,paged', help: 'contiguous, paged or both' },
  pageSize: { type: 'int', default: 256, min: 1, help: 'paged cache page size' },
  heads: { type: 'int', default: 32, min: 1, help: 'query heads H' },
  kvHeads: { type: 'int', default: 8, min: 1, help: 'kv heads Hk' },
  headDim: { type: 'int', default: 128, min: 1, max: 256, help: 'D' },
  dtype: {
    type: 'enum',
    values: ['auto', 'float32', 'float16'],
    default: 'auto',
    help: 'auto: float16 with shader-f16, else float32',
  },
  splits: { type: 'int', default: 0, min: 0, help: '0: the backend heuristic; n: forced' },
  kernels: {
    type: 'string',
    default: 'rows,staged',
    help: 'kv-cache-attention variants: rows (each invocation reads its key row), staged (K tiles through workgroup memory: kvStageK)',
  },
  reps: { type: 'int', default: 20, min: 1, help: 'timed calls per configuration' },
  maxGib: {
    type: 'number',
    default: 40,
    min: 0.001,
    help: 'skip configurations whose K + V exceed this',
  },
  copyMib: { type: 'int', default: 1024, min: 1, help: 'bytes the copy kernel moves (read), MiB' },
  quick: {
    type: 'boolean',
    default: false,
    help: 'small shapes for a software adapter (SwiftShader)',
  },
  json: { type: 'string', help: 'write all results as JSON here' },
} as const satisfies ArgSchema;

const args = parseArgsOrExit(process.argv.slice(2), SCHEMA, 'decode-bench');

type Any = any; // eslint-disable-line @typescript-eslint/no-explicit-any

export interface DecodeRow {
  kernel: string;
  layout: 'contiguous' | 'paged';
  B: number;
  L: number;
  dtype: DType;
  splits: number;
  ms: number;
  /** K + V bytes read per call. */
  kvBytes: number;
  gbps: number;
  /** gbps / the copy kernel's GB/s. */
  ofCopy: number;
  skipped?: string;
}

/** dst = src, vec4 words, one invocation per vec4 (2-D dispatch). */
function copyProgram(dispatch: readonly [number, number, number]): ProgramInfo {
  return {
    name: 'bench-copy',
    cacheKey: '',
    uniforms: [{ name: 'n4', type: 'u32', comment: 'vec4 words' }],
    bindings: [
      { name: 'src', type: 'array<vec4<f32>>', access: 'read', shape: '(n4)' },
      { name: 'dst', type: 'array<vec4<f32>>', access: 'read_write', shape: '(n4)' },
    ],
    dispatch,
    body: () => `
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
  let i = gid.x + gid.y * nw.x * 256u;
  if (i < p.n4) { dst[i] = src[i]; }
}
`,
  };
}

/** Wall ms per call of `reps` calls issued back to back, after a warm-up, until the queue drains. */
async function timeCalls(
  be: WebGPUAttentionBackend,
  call: () => Promise<void>,
  reps: number,
): Promise<number> {
  await call();
  await be.runtime.idle();
  const w0 = performance.now();
  while (performance.now() - w0 < 100) {
    await Promise.all(Array.from({ length: Math.min(reps, 4) }, call));
    await be.runtime.idle();
  }
  const t0 = performance.now();
  await Promise.all(Array.from({ length: reps }, call));
  await be.runtime.idle();
  return (performance.now() - t0) / reps;
}

/** The copy kernel's GB/s ((read + write) / time) over `bytes` bytes. */
async function copyGbps(be: WebGPUAttentionBackend, bytes: number, reps: number): Promise<number> {
  const rt = be.runtime;
  const n4 = Math.floor(bytes / 16);
  const src = rt.acquire(n4 * 16);
  const dst = rt.acquire(n4 * 16);
  try {
    const groups = Math.ceil(n4 / 256);
    const gx = Math.min(groups, be.device.limits.maxComputeWorkgroupsPerDimension);
    const prog = copyProgram([gx, Math.ceil(groups / gx), 1]);
    const ms = await timeCalls(
      be,
      () =>
        rt.submit((enc) => {
          const pass = enc.beginComputePass();
          rt.programs.run(pass, prog, { n4 }, { src, dst });
          pass.end();
        }),
      reps,
    );
    return (2 * n4 * 16) / (ms * 1e6);
  } finally {
    rt.release(src);
    rt.release(dst);
  }
}

async function decodeRow(
  be: WebGPUAttentionBackend,
  kernel: string,
  layout: 'contiguous' | 'paged',
  B: number,
  L: number,
  dtype: DType,
  copy: number,
): Promise<DecodeRow> {
  const H = args.heads;
  const Hk = args.kvHeads;
  const D = args.headDim;
  const bytes = dtype === 'float32' ? 4 : 2;
  const kvBytes = 2 * B * L * Hk * D * bytes;
  const row: DecodeRow = {
    kernel,
    layout,
    B,
    L,
    dtype,
    splits: 0,
    ms: NaN,
    kvBytes,
    gbps: NaN,
    ofCopy: NaN,
  };
  const ps = args.pageSize;
  const pages = layout === 'paged' ? B * Math.ceil(L / ps) : 0;
  const cacheElems = layout === 'paged' ? pages * ps * Hk * D : B * L * Hk * D;
  const lim = Math.min(
    be.device.limits.maxStorageBufferBindingSize,
    be.device.limits.maxBufferSize,
  );
  if (cacheElems * bytes > lim) {
    row.skipped = `a cache of ${(cacheElems * bytes) / 2 ** 30} GiB > the binding limit ${lim / 2 ** 30} GiB`;
    return row;
  }
  if (cacheElems > 2 ** 32) {
    row.skipped = `a cache of ${cacheElems} elements > 2^32 (u32 indices in WGSL)`;
    return row;
  }
  if (kvBytes > args.maxGib * 2 ** 30) {
    row.skipped = `K + V ${kvBytes / 2 ** 30} GiB > --max-gib`;
    return row;
  }
  const owned: WebGPUBuffer[] = [];
  const alloc = (n: number) => {
    const b = be.alloc(n, dtype);
    owned.push(b);
    return b;
  };
  try {
    const shape = (layout === 'paged' ? [pages, ps, Hk, D] : [B, L, Hk, D]) as [
      number,
      number,
      number,
      number,
    ];
    const kc = alloc(cacheElems); // (B, L, Hk, D) or (pages, page_size, Hk, D)
    const vc = alloc(cacheElems);
    await be.zero(kc);
    await be.zero(vc);
    const rng = createRng(B * 1_000_003 + L);
    const q = alloc(B * H * D); // (B, 1, H, D)
    await be.upload(
      q,
      Float32Array.from({ length: B * H * D }, () => rng.normal()),
    );
    const kn = alloc(B * Hk * D); // (B, 1, Hk, D)
    const vn = alloc(B * Hk * D);
    await be.upload(
      kn,
      Float32Array.from({ length: B * Hk * D }, () => rng.normal()),
    );
    await be.upload(
      vn,
      Float32Array.from({ length: B * Hk * D }, () => rng.normal()),
    );
    const out = alloc(B * H * D); // (B, 1, H, D)
    let blockTable: Int32Array | undefined;
    if (layout === 'paged') {
      const order = Int32Array.from({ length: pages }, (_, i) => i);
      for (let i = pages - 1; i > 0; i--) {
        const j = rng.int(i + 1);
        [order[i], order[j]] = [order[j]!, order[i]!];
      }
      blockTable = order; // (B, ceil(L / ps))
    }
    const cacheSeqlens = new Int32Array(B).fill(L - 1); // + 1 appended = L keys
    const opts = { causal: true, ...(args.splits ? { numSplits: args.splits } : {}) };
    const wanted =
      args.splits ||
      kvSplitHeuristic(
        { batch: B, seqlenQ: 1, nheadsQ: H, nheadsK: Hk, seqlenK: L },
        be.kvCacheCapabilities,
      );
    row.splits = Math.max(1, Math.min(wanted, L, be.kvCacheCapabilities.maxSplits));
    const call = () =>
      be.attentionWithKvCache(
        {
          q: contiguousView(q, [B, 1, H, D]),
          kCache: contiguousView(kc, shape),
          vCache: contiguousView(vc, shape),
          cacheSeqlens,
          kNew: contiguousView(kn, [B, 1, Hk, D]),
          vNew: contiguousView(vn, [B, 1, Hk, D]),
          ...(blockTable ? { blockTable } : {}),
          out: contiguousView(out, [B, 1, H, D]),
        },
        opts,
      ) as Promise<void>;
    row.ms = await timeCalls(be, call, args.reps);
    row.gbps = kvBytes / (row.ms * 1e6);
    row.ofCopy = row.gbps / copy;
  } catch (e) {
    row.skipped = `${(e as Error).name}: ${(e as Error).message}`;
  } finally {
    for (const b of owned) be.free(b);
  }
  return row;
}

async function main(): Promise<void> {
  const require = createRequire(import.meta.url);
  let gpu: Any;
  let adapter: Any;
  if (args.dawn) {
    const dawn = require(args.dawn) as { create: (flags: string[]) => Any };
    gpu = dawn.create([...DEFAULT_DAWN_FLAGS]);
    adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
    if (!adapter) throw new Error('no adapter');
  }
  const kernels = args.kernels.split(',');
  for (const k of kernels)
    if (k !== 'rows' && k !== 'staged') throw new Error(`--kernels: rows or staged, got '${k}'`);
  const open = (kernel: string) =>
    createWebGPUBackend({ ...(adapter ? { adapter } : {}), kvStageK: kernel === 'staged' });
  let be = await open(kernels[0]!);
  const dtype: DType =
    args.dtype === 'auto' ? (be.nativeF16 ? 'float16' : 'float32') : (args.dtype as DType);
  const batches = args.quick ? [1, 4] : args.batches;
  const lens = args.quick ? [256, 1024] : args.lens;
  const layouts = args.layouts.split(',') as Array<'contiguous' | 'paged'>;
  const results: Any = {
    date: new Date().toISOString(),
    backend: be.name,
    nativeF16: be.nativeF16,
    dtype,
    H: args.heads,
    Hk: args.kvHeads,
    D: args.headDim,
    pageSize: args.pageSize,
    parallelism: be.kvCacheCapabilities.parallelism,
    limits: {
      maxStorageBufferBindingSize: be.device.limits.maxStorageBufferBindingSize,
      maxBufferSize: be.device.limits.maxBufferSize,
    },
  };
  console.log(`${be.name}, ${dtype}, H ${args.heads} Hk ${args.kvHeads} D ${args.headDim}`);
  const rows: DecodeRow[] = [];
  results.rows = rows;
  try {
    const copyBytes = (args.quick ? 16 : args.copyMib) * 2 ** 20;
    results.copyGbps = await copyGbps(be, copyBytes, args.reps);
    console.log(
      `copy kernel: ${fmt(results.copyGbps)} GB/s (read + write of ${copyBytes / 2 ** 20} MiB)`,
    );
    for (const [ki, kernel] of kernels.entries()) {
      if (ki > 0) {
        be.dispose();
        be = await open(kernel);
      }
      for (const layout of layouts)
        for (const B of batches)
          for (const L of lens) {
            const r = await decodeRow(be, kernel, layout, B, L, dtype, results.copyGbps);
            rows.push(r);
            console.log(
              `${kernel} ${layout} B=${B} L=${L}: ${r.skipped ? `skipped (${r.skipped})` : `${fmt(r.ms)} ms, ${fmt(r.gbps)} GB/s (${fmt(100 * r.ofCopy)}% of copy), splits ${r.splits}`}`,
            );
            if (args.json) writeFileSync(args.json, JSON.stringify(results, null, 1));
          }
    }
    console.log(
      '\n' +
        formatTable<DecodeRow>(
          [
            { header: 'kernel', cell: (r) => r.kernel, align: 'left' },
            { header: 'layout', cell: (r) => r.layout, align: 'left' },
            { header: 'B', cell: (r) => String(r.B) },
            { header: 'L', cell: (r) => String(r.L) },
            { header: 'splits', cell: (r) => String(r.splits) },
            { header: 'K+V MiB', cell: (r) => fmt(r.kvBytes / 2 ** 20) },
            { header: 'ms', cell: (r) => (r.skipped ? 'skipped' : fmt(r.ms)) },
            { header: 'GB/s', cell: (r) => fmt(r.gbps) },
            { header: '% of copy', cell: (r) => fmt(100 * r.ofCopy) },
          ],
          rows,
        ),
    );
  } finally {
    if (args.json) writeFileSync(args.json, JSON.stringify(results, null, 1));
    be.dispose();
  }
  void gpu; // keep Dawn's instance alive until here (see @flashattn/webgpu gpu.ts)
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
