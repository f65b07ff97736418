/**
 * The demo's measurements, separate from the CLI so tests can run it on tiny sizes.
 *
 * For each N and mask: random q, k, v (B, N, H, D) from a seeded generator; the float64 oracle
 * (core's attentionReference64, untimed; it also warms up the reference code path); then the
 * reference backend (materialises S and P) and the flash backend, each timed as the median of
 * `repeats` calls after `warmup` untimed ones. Around every timed call the heap is collected (when
 * node runs with --expose-gc) and process.memoryUsage().arrayBuffers sampled before and after; the
 * largest difference is reported as the call's measured allocation (see lib/memory.ts for what it
 * does and does not capture), beside the prediction from cpu-working-set.ts.
 */
import {
  attentionIoModel,
  attentionReference64,
  createCpuBackend,
  createRng,
  H100_SXM5_80GB,
  predictRuntime,
  randomTensor,
  toFloat32,
  type AttentionBackend,
  type DType,
  type Tensor,
} from '@flashattn/core';
import { flashWorkingSet, referenceWorkingSet } from './cpu-working-set.js';
import { forwardFlops, gflopsPerSecond } from './lib/flops.js';
import { measureAllocation, sampleMemory, settledSample } from './lib/memory.js';
import { timeIt } from './lib/timing.js';

export interface DemoConfig {
  ns: readonly number[];
  headDim: number;
  batch: number;
  heads: number;
  causal: readonly boolean[];
  repeats: number;
  warmup: number;
  dtype: DType;
  seed: number;
  /** The flash backend under test (cpu-flash, webgpu or cuda). */
  flash: AttentionBackend;
  /** Sequence lengths for the flash-only large case (empty: skip it). */
  largeNs: readonly number[];
  largeCausal: boolean;
}

export interface CaseResult {
  impl: 'reference' | 'flash';
  backend: string;
  n: number;
  causal: boolean;
  medianMs: number;
  minMs: number;
  samplesMs: number[];
  /** FlashAttention-convention GFLOP/s at the median time. */
  gflops: number;
  /** Largest ArrayBuffer growth over the timed calls, bytes. */
  measuredBytes: number;
  /** cpu-working-set.ts prediction of what the call allocates, bytes (CPU implementations only). */
  predictedBytes: number | undefined;
  /** max |out - oracle| over all elements. */
  maxAbsErr: number;
  /** max |lse - oracle lse| over rows the mask leaves visible. */
  lseMaxAbsErr: number;
}

export interface ModelResult {
  n: number;
  causal: boolean;
  /** HBM bytes of the forward pass, IO model on the H100 profile, bfloat16, M = 228 KiB. */
  standardBytes: number;
  flashBytes: number;
  kvPasses: number;
  standardUs: number;
  flashUs: number;
  standardBound: string;
  flashBound: string;
}

export interface LargeResult {
  backend: string;
  n: number;
  causal: boolean;
  ms: number;
  gflops: number;
  measuredBytes: number;
  maxRssGrowth: number;
  /** Peak resident set of the whole process after the call, bytes (inputs, runtime and all). */
  processMaxRss: number;
  predictedBytes: number | undefined;
  /** What the reference's S and P (float64) would need for one head, bytes. */
  referenceWouldNeed: number;
  /** Sanity check on the output: every value finite. */
  finite: boolean;
}

export interface DemoResult {
  cases: CaseResult[];
  model: ModelResult[];
  large: LargeResult[];
}

export type Progress = (line: string) => void;

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (x === y) continue; // also -Infinity === -Infinity for masked rows
    const d = Math.abs(x - y);
    if (!(d <= m)) m = d; // NaN propagates as the max
  }
  return m;
}

/** The IO model's forward figures for one problem on the H100 profile (bfloat16). */
export function modelForward(n: number, causal: boolean, c: Pick<DemoConfig, 'batch' | 'heads' | 'headDim'>): ModelResult {
  const m = attentionIoModel({
    batch: c.batch,
    heads: c.heads,
    seqlenQ: n,
    seqlenK: n,
    headDim: c.headDim,
    bytesPerElement: 2,
    sramBytes: H100_SXM5_80GB.sramBytesPerSM,
    causal,
  });
  const p = predictRuntime(m, H100_SXM5_80GB, 'bfloat16');
  return {
    n,
    causal,
    standardBytes: m.forward.standard.totalBytes,
    flashBytes: m.forward.flash.totalBytes,
    kvPasses: m.kvPasses,
    standardUs: p.forward.standard.seconds * 1e6,
    flashUs: p.forward.flash.seconds * 1e6,
    standardBound: p.forward.standard.bound,
    flashBound: p.forward.flash.bound,
  };
}

export async function runDemo(cfg: DemoConfig, progress: Progress = () => {}): Promise<DemoResult> {
  const reference = createCpuBackend({ kind: 'reference' });
  const isCpuFlash = cfg.flash.name === 'cpu-flash';
  const rng = createRng(cfg.seed);
  const cases: CaseResult[] = [];
  const model: ModelResult[] = [];
  const total = cfg.ns.length * cfg.causal.length;
  let done = 0;
  for (const n of cfg.ns) {
    for (const causal of cfg.causal) {
      done++;
      const tag = `[${done}/${total}] N=${n} ${causal ? 'causal' : 'full'}`;
      const shape = [cfg.batch, n, cfg.heads, cfg.headDim];
      const q = randomTensor(rng, shape, cfg.dtype);
      const k = randomTensor(rng, shape, cfg.dtype);
      const v = randomTensor(rng, shape, cfg.dtype);
      const opts = { causal };
      progress(`${tag}: float64 oracle`);
      const oracle = attentionReference64(q, k, v, opts);
      const sizes = { batch: cfg.batch, heads: cfg.heads, seqlenQ: n, seqlenK: n, headDim: cfg.headDim };
      const flops = forwardFlops({ ...sizes, causal });
      for (const [impl, backend] of [
        ['reference', reference],
        ['flash', cfg.flash],
      ] as const) {
        let measuredBytes = 0;
        let before = 0;
        let last: { out: Tensor; lse: Float32Array } | undefined;
        const t = await timeIt(
          async () => {
            last = await backend.forward(q, k, v, opts);
          },
          {
            // The oracle call above already ran the reference code path. The CPU flash kernel is
            // JIT-compiled once, so its warmup runs before the first case only; GPU backends may
            // build pipelines per shape, so they warm up every case.
            warmup: impl === 'reference' ? 0 : done === 1 || !isCpuFlash ? cfg.warmup : 0,
            repeats: cfg.repeats,
            before: async () => {
              last = undefined;
              before = (await settledSample()).arrayBuffers;
            },
            after: (ms, i) => {
              measuredBytes = Math.max(measuredBytes, sampleMemory().arrayBuffers - before);
              progress(`${tag}: ${impl} (${backend.name}) run ${i + 1}/${cfg.repeats}: ${ms.toFixed(1)} ms`);
            },
          },
        );
        const r = last!;
        const predicted =
          impl === 'reference' ? referenceWorkingSet(sizes).allocated : isCpuFlash ? flashWorkingSet(sizes).allocated : undefined;
        cases.push({
          impl,
          backend: backend.name,
          n,
          causal,
          medianMs: t.medianMs,
          minMs: t.minMs,
          samplesMs: t.samplesMs,
          gflops: gflopsPerSecond(flops, t.medianMs),
          measuredBytes,
          predictedBytes: predicted,
          maxAbsErr: maxAbsDiff(toFloat32(r.out), oracle.out),
          lseMaxAbsErr: maxAbsDiff(r.lse, oracle.lse),
        });
      }
      model.push(modelForward(n, causal, cfg));
    }
  }
  await reference.dispose();

  const large: LargeResult[] = [];
  for (const n of cfg.largeNs) {
    const shape = [cfg.batch, n, cfg.heads, cfg.headDim];
    const q = randomTensor(rng, shape, cfg.dtype);
    const k = randomTensor(rng, shape, cfg.dtype);
    const v = randomTensor(rng, shape, cfg.dtype);
    const sizes = { batch: cfg.batch, heads: cfg.heads, seqlenQ: n, seqlenK: n, headDim: cfg.headDim };
    progress(`large: flash (${cfg.flash.name}) N=${n} ${cfg.largeCausal ? 'causal' : 'full'}, one call...`);
    let ms = 0;
    const m = await measureAllocation(async () => {
      const t0 = performance.now();
      const r = await cfg.flash.forward(q, k, v, { causal: cfg.largeCausal });
      ms = performance.now() - t0;
      return r;
    });
    const out = toFloat32(m.result.out);
    let finite = true;
    for (let i = 0; i < out.length; i++) if (!Number.isFinite(out[i]!)) finite = false;
    large.push({
      backend: cfg.flash.name,
      n,
      causal: cfg.largeCausal,
      ms,
      gflops: gflopsPerSecond(forwardFlops({ ...sizes, causal: cfg.largeCausal }), ms),
      measuredBytes: m.arrayBufferBytes,
      maxRssGrowth: m.maxRssGrowth,
      processMaxRss: sampleMemory().maxRss,
      predictedBytes: isCpuFlash ? flashWorkingSet(sizes).allocated : undefined,
      referenceWouldNeed: 16 * n * n,
      finite,
    });
    progress(`large: N=${n} done in ${(ms / 1000).toFixed(1)} s`);
  }
  return { cases, model, large };
}
