/**
 * The GPU modes of @flashattn/cuda's inference kernels (issue #12) in the device runner:
 *   node device-run.mjs inference [--seed N] [--filter S] [--json F]
 *       the inference conformance suite (@flashattn/conformance: KV-cache decode / chunked prefill, paged and
 *       contiguous caches, appends, split-KV, the combine on its own, varlen forward and backward, rejections) on
 *       createCudaDevice(), then the KV-cache scenarios again on 16-byte aligned copies of the caches
 *       (withAlignedKvCaches: the decode kernel's 16-byte-load path), then the broken variants (BROKEN_KV_VARIANTS:
 *       each must fail its scenario with a wrong result); one line per scenario, a summary last
 *   node device-run.mjs inference-sanitize
 *       a few small scenarios of each kind (scalar and 16-byte paths, paged, split, varlen fwd + bwd, combine), for
 *       compute-sanitizer memcheck
 *   node device-run.mjs inference-gpt2
 *       GPT-2 generation with the KV cache on createCudaOps() (GPT2.forwardCached on attentionWithKvCache): a
 *       tiny float32 model's cached forward in chunks (7-token prefill, single-token steps, a 6-token chunk)
 *       against core's float64 full forward under the rule lifted to the model (err <= 2 err_cpu_f32_cached +
 *       1e-5 max |logits|: @flashattn/transformer's checkCachedForward, as webgpu's gpt2-generate test), and
 *       greedy generation with the cache equal to the CPU float32 ops' (both float32 attention); greedy without
 *       the cache is printed beside it (CUDA's flash forward computes float32 in bfloat16, so a near tie may
 *       differ there)
 *   node device-run.mjs decode-bench [--batches 1,4,16,64] [--lens 1024,...,131072] [--max-tokens 2097152]
 *                                    [--layouts contiguous,paged,headmajor] [--page-size 256] [--iters 20] [--json F]
 *                                    [--check] [--ctas-per-sm 4,8 | --splits 8,16,32]
 *       --check (the tuning sweep, packages/cuda/dev/decode-sweep.sh): before timing, the 16-bit KV-cache
 *       scenarios of the conformance suite and DECODE_CHECKS (D = 128 GQA decode / chunks / windows / splits, the
 *       shapes the tuned path runs) on 16-byte aligned caches against the float64 reference; any failure: no
 *       timing, exit 1. The kernel variant is FLASHATTN_DECODE_VARIANT's (decode_attention.cu), recorded in the
 *       JSON. --ctas-per-sm: time each shape once per value, with the splits cudaKvSplits (the device's rule) gives for
 *       SMs x value parallel CTAs (default: the device's own kvCacheCapabilities). --splits: time each shape once
 *       per forced split count instead (clamped to L and the most splits; the split sweep of decode-sweep.sh).
 *       decode attention, Nq = 1, Hq = 32, Hk = 8, D = 128, bf16, every sequence holding L keys (no append): CUDA-
 *       event medians of the whole KV-cache call (the decode kernel and its fused combine; the metadata uploaded once before
 *       timing), and the device-to-device copy bandwidth (cudaMemcpyAsync of 1 GiB) in the same process.
 *       KV read = 2 B L Hk D 2 bytes; GB/s = KV read / time; fraction of copy = GB/s / copy GB/s, where a copy
 *       of n bytes moves 2n (reads n, writes n). Shapes with B L > max-tokens are left out (memory and time).
 *       decode-sdpa-peer.py times PyTorch SDPA on the same shapes (same flags).
 */
import { writeFileSync } from 'node:fs';
import { contiguousView, createRng } from '@flashattn/core';
import { CpuOps } from '@flashattn/cpu';
import { cachedForwardLogits, checkCachedForward, greedyTokens } from '@flashattn/transformer';
import {
  BROKEN_KV_VARIANTS,
  COMBINE_SCENARIOS,
  KV_CACHE_SCENARIOS,
  runBrokenKvVariant,
  VARLEN_SCENARIOS,
  runCombineScenario,
  runKvCacheRejections,
  runKvCacheScenario,
  runVarlenRejections,
  runVarlenScenario,
  type InferenceResult,
  type KvCacheScenario,
} from '@flashattn/conformance';
import {
  createCudaDevice,
  createCudaOps,
  cudaKvSplits,
  withAlignedKvCaches,
  type CudaBuffer,
  type CudaDevice,
  type InferenceAddon,
} from '@flashattn/cuda';
import { loadAddon } from '@flashattn/cuda/native';

function flag(args: string[], name: string): string | undefined {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : undefined;
}

const ints = (s: string) => s.split(',').map(Number);

function line(r: InferenceResult): void {
  console.log(`case ${r.pass ? 'pass' : 'fail'} ${r.backend} | ${r.id}`);
  if (!r.pass) console.log(r.message);
}

/** Every inference scenario on createCudaDevice(), the KV-cache ones again with aligned caches. */
export async function inferenceConformance(args: string[]): Promise<number> {
  const seed = Number(flag(args, 'seed') ?? 20261207);
  const filter = flag(args, 'filter');
  const keep = (id: string) => !filter || id.includes(filter);
  const dev = createCudaDevice();
  const aligned = withAlignedKvCaches(dev);
  const results: InferenceResult[] = [];
  const add = (r: InferenceResult) => {
    line(r);
    results.push(r);
  };
  const t0 = Date.now();
  for (const d of [dev, aligned]) {
    for (const s of KV_CACHE_SCENARIOS.filter((x) => keep(x.id)))
      add(await runKvCacheScenario(d, s, seed));
    if (!keep('kv rejections')) continue;
    add(await runKvCacheRejections(d, seed));
  }
  for (const s of COMBINE_SCENARIOS.filter((x) => keep(x.id)))
    add(await runCombineScenario(dev, s, seed));
  for (const s of VARLEN_SCENARIOS.filter((x) => keep(x.id)))
    add(await runVarlenScenario(dev, s, seed));
  if (keep('varlen rejections')) add(await runVarlenRejections(dev, seed));
  // The suite must catch a wrong backend: each broken variant fails its scenario with a wrong result.
  for (const v of BROKEN_KV_VARIANTS.filter((x) => keep(`broken ${x.what}`))) {
    const r = await runBrokenKvVariant(v.make(dev), v, seed);
    const caught = !r.pass && !/threw/.test(r.message);
    add({
      ...r,
      id: `broken variant '${v.what}' fails ${r.id}`,
      pass: caught,
      message: caught
        ? `the suite caught it: ${r.message.split('\n')[1] ?? ''}`
        : `NOT caught as a wrong result:\n${r.message}`,
    });
  }
  await dev.dispose();
  const failed = results.filter((r) => !r.pass).length;
  console.log(
    `inference-conformance ${dev.name} seed=${seed}: ${results.length - failed} passed, ${failed} failed in ` +
      `${((Date.now() - t0) / 1000).toFixed(1)} s`,
  );
  const json = flag(args, 'json');
  if (json) {
    writeFileSync(
      json,
      JSON.stringify(
        results.map((r) => ({
          id: r.id,
          backend: r.backend,
          pass: r.pass,
          problems: r.problems,
          checks: r.checks,
        })),
        null,
        1,
      ),
    );
  }
  return failed === 0 ? 0 : 1;
}

/** Small cases of each kind for compute-sanitizer memcheck (results are checked too). */
export async function inferenceSanitize(): Promise<number> {
  const dev = createCudaDevice();
  const seed = 7;
  const pick = (names: string[]) =>
    KV_CACHE_SCENARIOS.filter((s) => names.some((n) => s.id.includes(n)));
  const kv = pick([
    'decode-paged-gqa',
    'split3-paged',
    'prefill-chunk-paged-window',
    'decode-bf16',
    'decode-batch-idx',
  ]);
  const results: InferenceResult[] = [];
  for (const d of [dev, withAlignedKvCaches(dev)])
    for (const s of kv) results.push(await runKvCacheScenario(d, s, seed));
  results.push(await runCombineScenario(dev, COMBINE_SCENARIOS[1]!, seed));
  for (const s of VARLEN_SCENARIOS.slice(0, 2)) results.push(await runVarlenScenario(dev, s, seed));
  results.push(await runKvCacheRejections(dev, seed));
  for (const r of results) line(r);
  await dev.synchronize();
  await dev.dispose();
  const failed = results.filter((r) => !r.pass).length;
  console.log(`inference-sanitize: ${results.length} cases done, ${failed} failed`);
  return failed === 0 ? 0 : 1;
}

export async function inferenceGpt2(): Promise<number> {
  const seed = 20261207;
  const cuda = createCudaOps();
  const cpu = new CpuOps({ threads: 1 });
  let failed = 0;
  const check = (name: string, ok: boolean, detail: string) => {
    console.log(`${ok ? 'pass' : 'FAIL'} ${name}: ${detail}`);
    if (!ok) failed++;
  };
  try {
    const c = await checkCachedForward(cuda, cpu, seed);
    check(
      'forwardCached in chunks vs the float64 full forward',
      c.pass,
      `cuda err ${c.err.toExponential(2)}, cpu f32 err ${c.errPeer.toExponential(2)}, allowed ${c.allowed.toExponential(2)}`,
    );
    const cudaCached = await greedyTokens(cuda, seed, true);
    const cpuCached = await greedyTokens(cpu, seed, true);
    check(
      'greedy generation with the cache, CUDA = CPU float32',
      cudaCached.length === 6 && cudaCached.join() === cpuCached.join(),
      `cuda [${cudaCached.join(', ')}], cpu [${cpuCached.join(', ')}]`,
    );
    // bf16 compute (as gpt2-train --dtype bf16): the logits come back as bf16 bits and the model decodes them
    // (hostFloats). A decoding check, not the accuracy rule: within 2^-4 of the logits' scale of the float32
    // model's (8 bf16 roundings' worth); undecoded bits would be off by ~1e4.
    const f32 = await cachedForwardLogits(cuda, seed);
    const b16 = await cachedForwardLogits(cuda, seed, 'float32', 'bfloat16');
    const scale = f32.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    const errB16 = b16.reduce((m, v, i) => Math.max(m, Math.abs(v - f32[i]!)), 0);
    check(
      'bf16-compute cached forward: logits decoded, near the float32 model',
      scale > 0 && errB16 <= 2 ** -4 * scale,
      `max |bf16 - f32| ${errB16.toExponential(2)}, allowed ${(2 ** -4 * scale).toExponential(2)}`,
    );
    const cudaFull = await greedyTokens(cuda, seed, false);
    console.log(
      `info greedy without the cache on CUDA (bf16 flash forward): [${cudaFull.join(', ')}] ${cudaFull.join() === cudaCached.join() ? '= the cached tokens' : '!= the cached tokens'}`,
    );
  } finally {
    cpu.dispose();
    await cuda.dispose();
  }
  console.log(`inference-gpt2: ${failed} failed`);
  return failed === 0 ? 0 : 1;
}

interface DecodeRow {
  ctasPerSm?: number;
  /** numSplits forced by --splits (else the heuristic's). */
  forcedSplits?: boolean;
  /** headmajor: the (B, L, Hk, D) cache as a strided view of (B, Hk, L, D) memory (SDPA's layout). */
  layout: 'contiguous' | 'paged' | 'headmajor';
  batch: number;
  seqlenK: number;
  nheadsQ: number;
  nheadsK: number;
  headDim: number;
  pageSize: number;
  numSplits: number;
  ms: number;
  kvBytes: number;
  gbps: number;
  fractionOfCopy: number;
}

/** Fill `n` bf16 elements at `dst` with random values: one random block uploaded, then device copies of it. */
async function fillRandom(
  dev: CudaDevice,
  dst: CudaBuffer,
  n: number,
  seed: number,
): Promise<void> {
  const block = Math.min(n, 1 << 24);
  const rng = createRng(seed);
  const host = new Float32Array(block);
  for (let i = 0; i < block; i++) host[i] = rng.normal();
  const src = dev.alloc(block, 'bfloat16');
  await dev.upload(src, host);
  for (let at = 0; at < n; at += block) {
    const len = Math.min(block, n - at);
    await dev.copy(dev.view(dst, at, len), len === block ? src : dev.view(src, 0, len));
  }
  dev.free(src);
}

/**
 * The shapes the 16-bit D <= 128 path is tuned for, checked before a variant is timed (decode-bench --check):
 * GQA 32 / 8 at D = 128 with long ragged caches, contiguous and paged, appends, forced and heuristic splits,
 * a window, a causal chunk of 3 queries (3 row blocks), D = 96 and D = 64 (lanes past D masked), MQA.
 */
export const DECODE_CHECKS: readonly KvCacheScenario[] = (
  [
    ['decode', 'bfloat16', 2, 1, 32, 8, 128, [3000, 1777], 1, 0, { causal: true }],
    [
      'decode-paged-split7',
      'bfloat16',
      3,
      1,
      32,
      8,
      128,
      [4100, 0, 257],
      1,
      16,
      { causal: true, numSplits: 7 },
    ],
    [
      'decode-paged-window',
      'float16',
      2,
      1,
      32,
      8,
      128,
      [2500, 900],
      0,
      256,
      { causal: true, windowSize: [300, 0], numSplits: 3 },
    ],
    [
      'chunk3-paged',
      'bfloat16',
      2,
      3,
      32,
      8,
      128,
      [1000, 50],
      3,
      64,
      { causal: true, numSplits: 1 },
    ],
    [
      'decode-d96-split40',
      'bfloat16',
      1,
      1,
      32,
      8,
      96,
      [700],
      1,
      0,
      { causal: true, numSplits: 40 },
    ],
    ['decode-d64-mqa', 'float16', 1, 1, 8, 1, 64, [999], 0, 32, { causal: true, numSplits: 2 }],
  ] as const
).map(([name, dtype, B, Nq, Hq, Hk, D, lens, Nnew, pageSize, opts]) => ({
  id: `decode-check ${name} ${dtype} B${B} q${Nq} h${Hq}/${Hk} d${D} lens[${lens.join(',')}] +${Nnew} ${pageSize ? `page${pageSize}` : 'contiguous'}`,
  B,
  Nq,
  Hq,
  Hk,
  D,
  lens,
  Nnew,
  pageSize,
  opts: { ...opts } as KvCacheScenario['opts'],
  dtype,
}));

/** decode-bench --check: the 16-bit scenarios and DECODE_CHECKS on aligned caches; the failures' count. */
async function checkDecodeVariant(dev: CudaDevice): Promise<number> {
  const aligned = withAlignedKvCaches(dev);
  const scenarios = [...KV_CACHE_SCENARIOS.filter((s) => s.dtype !== 'float32'), ...DECODE_CHECKS];
  let failed = 0;
  for (const s of scenarios) {
    const r = await runKvCacheScenario(aligned, s, 20261207);
    line(r);
    if (!r.pass) failed++;
  }
  console.log(`decode-check: ${scenarios.length - failed} passed, ${failed} failed`);
  return failed;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export async function decodeBench(args: string[]): Promise<number> {
  const batches = ints(flag(args, 'batches') ?? '1,4,16,64');
  const lens = ints(flag(args, 'lens') ?? '1024,4096,8192,16384,32768,65536,131072');
  const maxTokens = Number(flag(args, 'max-tokens') ?? 2 ** 21);
  const layouts = (flag(args, 'layouts') ?? 'contiguous,paged').split(',') as DecodeRow['layout'][];
  const pageSize = Number(flag(args, 'page-size') ?? 256);
  const iters = Number(flag(args, 'iters') ?? 20);
  const ctasList = flag(args, 'ctas-per-sm') ? ints(flag(args, 'ctas-per-sm')!) : [0];
  const splitsList = flag(args, 'splits') ? ints(flag(args, 'splits')!) : [];
  if (splitsList.length > 0 && flag(args, 'ctas-per-sm'))
    throw new Error('decode-bench: --splits and --ctas-per-sm exclude each other');
  // each shape is timed once per setting: forced splits, or the heuristic's splits for a CTAs-per-SM value
  const settings: Array<{ ctas: number; splits?: number }> =
    splitsList.length > 0
      ? splitsList.map((n) => ({ ctas: 0, splits: n }))
      : ctasList.map((c) => ({ ctas: c }));
  const variant = process.env.FLASHATTN_DECODE_VARIANT ?? 'default';
  const [Hq, Hk, D] = [32, 8, 128];
  const load = loadAddon();
  if (!load.addon) throw new Error(load.reason);
  const addon = load.addon as typeof load.addon & InferenceAddon;
  const dev = createCudaDevice();
  const device = dev.device;
  if (args.includes('--check') && (await checkDecodeVariant(dev)) > 0) {
    console.log(`decode variant ${variant}: wrong results, not timed`);
    await dev.dispose();
    return 1;
  }

  // The copy bandwidth: cudaMemcpyAsync device to device of 1 GiB (moves 2 GiB).
  const copyBytes = 2 ** 30;
  const src = addon.malloc(device, copyBytes);
  const dst = addon.malloc(device, copyBytes);
  addon.memset(device, src, copyBytes);
  let copyMs: number;
  try {
    copyMs = median(await addon.copyBenchmark(device, dst, src, copyBytes, 3, iters));
  } finally {
    addon.free(device, src);
    addon.free(device, dst);
  }
  const copyGbps = (2 * copyBytes) / copyMs / 1e6;
  console.log(
    `copy: cudaMemcpyAsync D2D ${copyBytes} bytes in ${copyMs.toFixed(3)} ms = ${copyGbps.toFixed(0)} GB/s (read + write)`,
  );

  // One K and one V buffer of the largest cache, reused by every shape; q, out per shape.
  const shapes = batches.flatMap((B) =>
    lens.filter((L) => B * L <= maxTokens).map((L) => ({ B, L })),
  );
  const maxElems = Math.max(...shapes.map((s) => s.B * s.L)) * Hk * D;
  const kBuf = dev.alloc(maxElems, 'bfloat16');
  const vBuf = dev.alloc(maxElems, 'bfloat16');
  await fillRandom(dev, kBuf, maxElems, 1);
  await fillRandom(dev, vBuf, maxElems, 2);
  const rows: DecodeRow[] = [];
  const rng = createRng(3);
  for (const layout of layouts) {
    for (const { B, L } of shapes) {
      const q = dev.alloc(B * Hq * D, 'bfloat16');
      await dev.upload(
        q,
        Float32Array.from({ length: B * Hq * D }, () => rng.normal()),
      );
      const out = dev.alloc(B * Hq * D, 'bfloat16');
      const view = (buf: CudaBuffer, shape: [number, number, number, number]) =>
        contiguousView(buf, shape);
      // (B, L, Hk, D) over (B, Hk, L, D) memory: each kv head's keys one contiguous run, as SDPA's peer holds them
      const cacheView = (buf: CudaBuffer, shape: [number, number, number, number]) =>
        layout === 'headmajor'
          ? {
              buffer: buf,
              offset: 0,
              shape,
              strides: [Hk * L * D, D, L * D, 1] as [number, number, number, 1],
            }
          : view(buf, shape);
      let blockTable: Int32Array | undefined;
      let cacheShape: [number, number, number, number] = [B, L, Hk, D];
      if (layout === 'paged') {
        // pages of one sequence scattered over the pool (a shuffled block table)
        const per = Math.ceil(L / pageSize);
        const pages = B * per;
        cacheShape = [Math.floor(maxElems / (pageSize * Hk * D)), pageSize, Hk, D];
        const order = Int32Array.from({ length: pages }, (_, i) => i);
        for (let i = pages - 1; i > 0; i--) {
          const j = rng.int(i + 1);
          [order[i], order[j]] = [order[j]!, order[i]!];
        }
        blockTable = order;
      }
      const seen = new Set<number>();
      for (const { ctas, splits } of settings) {
        const shape = { batch: B, seqlenQ: 1, nheadsQ: Hq, nheadsK: Hk, seqlenK: L };
        const numSplits =
          splits !== undefined
            ? Math.min(splits, L, dev.kvCacheCapabilities.maxSplits)
            : ctas > 0
              ? cudaKvSplits(shape, {
                  parallelism: dev.deviceInfo.multiProcessorCount * ctas,
                  maxSplits: dev.kvCacheCapabilities.maxSplits,
                })
              : undefined;
        if (splits !== undefined) {
          if (seen.has(numSplits!)) continue; // clamped to one already timed
          seen.add(numSplits!);
        }
        const call = dev.kvCacheNativeArgs(
          {
            q: view(q, [B, 1, Hq, D]),
            kCache: cacheView(kBuf, cacheShape),
            vCache: cacheView(vBuf, cacheShape),
            cacheSeqlens: new Int32Array(B).fill(L),
            ...(blockTable ? { blockTable } : {}),
            out: view(out, [B, 1, Hq, D]),
          },
          { causal: true, ...(numSplits !== undefined ? { numSplits } : {}) },
        )!;
        const ms = median(await addon.kvCacheBenchmark(device, call, 3, iters));
        const kvBytes = 2 * B * L * Hk * D * 2;
        const gbps = kvBytes / ms / 1e6;
        const row: DecodeRow = {
          ...(ctas > 0 ? { ctasPerSm: ctas } : {}),
          ...(splits !== undefined ? { forcedSplits: true } : {}),
          layout,
          batch: B,
          seqlenK: L,
          nheadsQ: Hq,
          nheadsK: Hk,
          headDim: D,
          pageSize: layout === 'paged' ? pageSize : 0,
          numSplits: call.numSplits,
          ms,
          kvBytes,
          gbps,
          fractionOfCopy: gbps / copyGbps,
        };
        rows.push(row);
        console.log(
          `ours v=${variant} ${layout.padEnd(10)} B=${String(B).padStart(2)} L=${String(L).padStart(6)} splits=${String(call.numSplits).padStart(3)}: ` +
            `${ms.toFixed(4)} ms, ${gbps.toFixed(0)} GB/s = ${(100 * row.fractionOfCopy).toFixed(1)}% of copy`,
        );
      }
      dev.free(q);
      dev.free(out);
    }
  }
  dev.free(kBuf);
  dev.free(vBuf);
  await dev.dispose();
  const json = flag(args, 'json');
  if (json) {
    writeFileSync(
      json,
      JSON.stringify(
        {
          device: dev.name,
          variant,
          copy: { bytes: copyBytes, ms: copyMs, gbps: copyGbps },
          results: rows,
        },
        null,
        1,
      ),
    );
  }
  return 0;
}
