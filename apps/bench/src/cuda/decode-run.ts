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
 *                                    [--layouts contiguous,paged] [--page-size 256] [--iters 20] [--json F]
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
import { checkCachedForward, greedyTokens } from '@flashattn/transformer';
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
} from '@flashattn/conformance';
import {
  createCudaDevice,
  createCudaOps,
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
  layout: 'contiguous' | 'paged';
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

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export async function decodeBench(args: string[]): Promise<number> {
  const batches = ints(flag(args, 'batches') ?? '1,4,16,64');
  const lens = ints(flag(args, 'lens') ?? '1024,4096,8192,16384,32768,65536,131072');
  const maxTokens = Number(flag(args, 'max-tokens') ?? 2 ** 21);
  const layouts = (flag(args, 'layouts') ?? 'contiguous,paged').split(',') as DecodeRow['layout'][];
  const pageSize = Number(flag(args, 'page-size') ?? 256);
  const iters = Number(flag(args, 'iters') ?? 20);
  const [Hq, Hk, D] = [32, 8, 128];
  const load = loadAddon();
  if (!load.addon) throw new Error(load.reason);
  const addon = load.addon as typeof load.addon & InferenceAddon;
  const dev = createCudaDevice();
  const device = dev.device;

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
      const call = dev.kvCacheNativeArgs(
        {
          q: view(q, [B, 1, Hq, D]),
          kCache: view(kBuf, cacheShape),
          vCache: view(vBuf, cacheShape),
          cacheSeqlens: new Int32Array(B).fill(L),
          ...(blockTable ? { blockTable } : {}),
          out: view(out, [B, 1, Hq, D]),
        },
        { causal: true },
      )!;
      const ms = median(await addon.kvCacheBenchmark(device, call, 3, iters));
      const kvBytes = 2 * B * L * Hk * D * 2;
      const gbps = kvBytes / ms / 1e6;
      const row: DecodeRow = {
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
        `ours ${layout.padEnd(10)} B=${String(B).padStart(2)} L=${String(L).padStart(6)} splits=${String(call.numSplits).padStart(3)}: ` +
          `${ms.toFixed(4)} ms, ${gbps.toFixed(0)} GB/s = ${(100 * row.fractionOfCopy).toFixed(1)}% of copy`,
      );
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
        { device: dev.name, copy: { bytes: copyBytes, ms: copyMs, gbps: copyGbps }, results: rows },
        null,
        1,
      ),
    );
  }
  return 0;
}
