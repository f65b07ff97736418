/**
 * The inference contracts on the CPU (core's DeviceKvCacheAttention and DeviceVarlenAttention for
 * CpuOps): KV-cache attention with split-KV (flash-decoding) on worker threads, the lse combine, and
 * varlen forward/backward. The kernels are core's (kv-cache-kernels.ts: append, kvDecodeKernel,
 * lseCombineKernel, varlenForwardKernel / varlenBackwardKernel over Algorithms 1 and 2); this file
 * validates (core's validate*Args: every check before any write), splits the work and fans it out.
 *
 * Threads: a split-KV call has B * Hk * numSplits work units (one (sequence, kv head, key split)
 * each); they are shared between this thread and the workers, then the partials are merged here with
 * the lse combine. A varlen call shares its sequences. Every unit is computed by one thread with the
 * same algorithm, so results do not depend on the thread count. Buffers not in shared memory run on
 * this thread only. float32 buffers run in float32, float64 buffers in float64 (the exact twin).
 */
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import {
  AttentionInputError,
  DEFAULT_BLOCK_SIZE_K,
  DEFAULT_BLOCK_SIZE_Q,
  appendKvKernel,
  describe,
  kvSplitHeuristic,
  resolveOptions,
  validateCombineArgs,
  validateKvCacheArgs,
  validateVarlenBackwardArgs,
  validateVarlenForwardArgs,
  type AttentionCombineArgs,
  type AttentionOptions,
  type DeviceAttentionForwardArgs,
  type KernelLayout,
  type KvCacheAttentionArgs,
  type KvCacheCapabilities,
  type KvCacheGeometry,
  type KvCacheOptions,
  type StridedView,
  type VarlenBackwardArgs,
  type VarlenForwardArgs,
  type VarlenGeometry,
} from '@flashattn/core';
import * as core from '@flashattn/core';
import type { CpuBuffer, CpuFloatBuffer } from '../ops/buffers.js';
import { CPU_ATTENTION_CAPABILITIES } from './cpu-attention.js';

/** The core kernels a job may call (the worker runs the same functions by name). */
type KernelName =
  'kvDecodeKernel' | 'lseCombineKernel' | 'varlenForwardKernel' | 'varlenBackwardKernel';
interface Job {
  fn: KernelName;
  args: unknown[];
}

const workerSource = (coreUrl: string): string => `
const { parentPort } = require('node:worker_threads');
const corePromise = import(${JSON.stringify(coreUrl)});
parentPort.on('message', async (j) => {
  try {
    const c = await corePromise;
    c[j.fn](...j.args);
    parentPort.postMessage({ ok: true });
  } catch (e) {
    parentPort.postMessage({ ok: false, error: String((e && e.stack) || e) });
  }
});
`;

function runHere(j: Job): void {
  (core[j.fn] as (...a: unknown[]) => void)(...j.args);
}

const shared = (x: ArrayBufferView): boolean => x.buffer instanceof SharedArrayBuffer;

const layout = (v: StridedView<CpuBuffer>): KernelLayout => ({
  offset: v.offset,
  sB: v.strides[0],
  sN: v.strides[1],
  sH: v.strides[2],
});

const lengthOf = (b: CpuBuffer): number => {
  if (!(b instanceof Float32Array || b instanceof Float64Array || b instanceof Int32Array)) {
    throw new AttentionInputError('buffer', 'a CPU buffer (from alloc or view)', describe(b));
  }
  return b.length;
};

/** Every named buffer is a float buffer of q's dtype. */
function floats(named: Record<string, CpuBuffer | undefined>): 'float32' | 'float64' {
  const entries = Object.entries(named).filter(([, b]) => b !== undefined) as Array<
    [string, CpuBuffer]
  >;
  const [, first] = entries[0]!;
  const dtype = first instanceof Float64Array ? 'float64' : 'float32';
  for (const [name, b] of entries) {
    const ok = dtype === 'float64' ? b instanceof Float64Array : b instanceof Float32Array;
    if (!ok)
      throw new AttentionInputError(
        `${name}.buffer`,
        `a ${dtype} CPU buffer like ${entries[0]![0]}'s`,
        describe(b),
      );
  }
  return dtype;
}

/**
 * Below this many multiply-adds (2 per key and head dim of every query row: q.k and p.v) a call runs
 * on this thread. A GPT-2 decode step (Nq = 1, H = 6, D = 64, 512 keys: 0.4M) measured 7.3 ms per call
 * fanned out to 2 threads beside the matmul pool's workers and 0.9-2.3 ms alone (2-core dev machine,
 * 2026-12-07, apps/bench/src/gpt2/generate-bench.ts).
 */
const MIN_PARALLEL_MACS = 1 << 22;

export const CPU_KV_CACHE_CAPABILITIES = (threads: number): KvCacheCapabilities => ({
  ...CPU_ATTENTION_CAPABILITIES,
  pageSizeMultiple: 1,
  maxSplits: 64,
  parallelism: threads,
});

export class CpuInferenceAttention {
  readonly capabilities: KvCacheCapabilities;
  private workers: Worker[] | null = null;
  private lseScratch: CpuBuffer | null = null;

  /**
   * `dense`: the ops' strided FlashAttention forward (cpu-attention.ts, with its SIMD inner loops).
   * When every sequence attends to the same number of keys in a contiguous cache without
   * cache_batch_idx and one split is used, the call is exactly that attention over the cache view
   * (B, Lk, Hk, D) - same bottom-right mask - so a prefill (many query rows) runs there; decoding and
   * every other call run core's decode kernel.
   */
  constructor(
    readonly threads: number,
    private readonly dense?: {
      forward(a: DeviceAttentionForwardArgs<CpuBuffer>, opts?: AttentionOptions): Promise<void>;
      /** The ops' alloc (float32 in the wasm arena, which the SIMD attention needs for lse). */
      alloc(n: number, dtype: 'float32' | 'float64'): CpuBuffer;
    },
  ) {
    this.capabilities = CPU_KV_CACHE_CAPABILITIES(threads);
  }

  /** The worker pool, started on first use (threads - 1 workers). */
  private pool(): Worker[] {
    if (this.workers) return this.workers;
    this.workers = [];
    if (this.threads > 1) {
      const src = workerSource(
        pathToFileURL(createRequire(import.meta.url).resolve('@flashattn/core')).href,
      );
      for (let i = 1; i < this.threads; i++) {
        const w = new Worker(src, { eval: true });
        w.unref();
        this.workers.push(w);
      }
    }
    return this.workers;
  }

  private post(w: Worker, job: Job): Promise<void> {
    return new Promise((resolve, reject) => {
      const onMsg = (m: { ok: boolean; error?: string }): void => {
        w.off('error', onErr);
        if (m.ok) resolve();
        else reject(new Error(`inference attention worker: ${m.error}`));
      };
      const onErr = (e: Error): void => {
        w.off('message', onMsg);
        reject(e);
      };
      w.once('message', onMsg);
      w.once('error', onErr);
      w.postMessage(job);
    });
  }

  /**
   * Units [0, n) shared over this thread and the workers (all here unless every buffer is shared, or
   * the call's multiply-adds `macs` are too few to pay for a round trip to the workers).
   */
  private async fanOut(
    n: number,
    bufs: ArrayBufferView[],
    make: (lo: number, hi: number) => Job,
    macs = Infinity,
  ): Promise<void> {
    const worth = macs >= MIN_PARALLEL_MACS;
    const parts = this.threads > 1 && worth && bufs.every(shared) ? Math.min(n, this.threads) : 1;
    const per = Math.ceil(n / Math.max(parts, 1));
    const shares: Array<[number, number]> = [];
    for (let lo = 0; lo < n; lo += per) shares.push([lo, Math.min(n, lo + per)]);
    const workers = shares.length > 1 ? this.pool() : [];
    const waits = shares.slice(1).map(([lo, hi], i) => this.post(workers[i]!, make(lo, hi)));
    try {
      if (shares.length > 0) runHere(make(shares[0]![0], shares[0]![1]));
    } finally {
      await Promise.all(waits);
    }
  }

  /** How many splits a call uses: the caller's numSplits, else the heuristic; at most the longest key count. */
  numSplits(
    p: { B: number; Nq: number; Hq: number; Hk: number; maxSeqlenK: number },
    opts?: KvCacheOptions,
  ): number {
    const forced = opts?.numSplits ?? 0;
    const s =
      forced > 0
        ? forced
        : kvSplitHeuristic(
            { batch: p.B, seqlenQ: p.Nq, nheadsQ: p.Hq, nheadsK: p.Hk, seqlenK: p.maxSeqlenK },
            this.capabilities,
          );
    return Math.max(1, Math.min(s, p.maxSeqlenK, this.capabilities.maxSplits));
  }

  async withKvCache(a: KvCacheAttentionArgs<CpuBuffer>, opts?: KvCacheOptions): Promise<void> {
    // Validate everything (views, metadata, dtypes) before the append writes into the cache.
    const p = validateKvCacheArgs(a, opts, lengthOf, this.capabilities);
    const dtype = floats({
      q: a.q.buffer,
      kCache: a.kCache.buffer,
      vCache: a.vCache.buffer,
      out: a.out.buffer,
      kNew: a.kNew?.buffer,
      vNew: a.vNew?.buffer,
      lse: a.lse,
    });
    const q = a.q.buffer as CpuFloatBuffer;
    const kc = a.kCache.buffer as CpuFloatBuffer;
    const vc = a.vCache.buffer as CpuFloatBuffer;
    const out = a.out.buffer as CpuFloatBuffer;
    const lse = a.lse as CpuFloatBuffer | undefined;
    const g: KvCacheGeometry = { ...p, blockTable: a.blockTable };
    if (a.kNew && a.vNew && p.Nnew > 0) {
      appendKvKernel(
        kc,
        layout(a.kCache),
        a.kNew.buffer as CpuFloatBuffer,
        layout(a.kNew),
        p.Nnew,
        a.cacheSeqlens,
        g,
      );
      appendKvKernel(
        vc,
        layout(a.vCache),
        a.vNew.buffer as CpuFloatBuffer,
        layout(a.vNew),
        p.Nnew,
        a.cacheSeqlens,
        g,
      );
    }
    if (p.B === 0 || p.Nq === 0) return;
    const o = resolveOptions(opts, p.D);
    const S = this.numSplits(p, opts);
    const units = p.B * p.Hk * S;
    const inputs = [q, kc, vc];
    let macs = 0;
    for (let b = 0; b < p.B; b++) macs += 2 * p.seqlensK[b]! * p.Nq * p.Hq * p.D;
    const Lk = p.seqlensK[0]!;
    const uniform = p.seqlensK.every((x) => x === Lk);
    // Query rows per kv head >= 16 (prefill): the dense path's K/V packing pays off. Decoding stays on
    // the decode kernel: 0.9 / 2.3 ms a call (one split, 2 / 1 threads) against 3.3 / 10 ms for the
    // dense path at Nq = 1, H = 6, D = 64, 512 keys (2-core dev machine, 2026-12-07).
    const rows = p.Nq * (p.Hq / p.Hk);
    if (this.dense && rows >= 16 && S === 1 && !p.paged && !a.cacheBatchIdx && uniform && Lk > 0) {
      const view = (c: StridedView<CpuBuffer>): StridedView<CpuBuffer> => ({
        ...c,
        shape: [p.B, Lk, p.Hk, p.D],
      });
      const { numSplits: _n, ...attnOpts } = opts ?? {};
      const n = p.B * p.Hq * p.Nq;
      // lse scratch when the caller wants none: kept and grown, as arena memory is not returned
      let lseOut = a.lse;
      if (!lseOut) {
        const old = this.lseScratch;
        if (!old || old.length < n || (dtype === 'float64') !== old instanceof Float64Array)
          this.lseScratch = this.dense.alloc(n, dtype);
        lseOut = this.lseScratch!.subarray(0, n);
      }
      await this.dense.forward(
        { q: a.q, k: view(a.kCache), v: view(a.vCache), out: a.out, lse: lseOut },
        attnOpts,
      );
      return;
    }
    // One kvDecodeKernel call per unit range, writing either the final out/lse (S = 1) or S partials.
    const decode = (splits: number, output: unknown, outputs: ArrayBufferView[]): Promise<void> =>
      this.fanOut(
        units,
        [...inputs, ...outputs],
        (lo, hi) => ({
          fn: 'kvDecodeKernel',
          args: [
            q,
            layout(a.q),
            kc,
            layout(a.kCache),
            vc,
            layout(a.vCache),
            g,
            o,
            splits,
            output,
            DEFAULT_BLOCK_SIZE_K,
            dtype,
            lo,
            hi,
          ],
        }),
        macs,
      );
    if (S === 1) {
      await decode(1, { kind: 'direct' as const, out, outLayout: layout(a.out), lse }, [
        out,
        ...(lse ? [lse] : []),
      ]);
      return;
    }
    const n = p.B * p.Nq * p.Hq;
    const alloc = (len: number): CpuFloatBuffer =>
      dtype === 'float64'
        ? new Float64Array(new SharedArrayBuffer(len * 8))
        : new Float32Array(new SharedArrayBuffer(len * 4));
    const outPartial = alloc(S * n * p.D); // (S, B, Nq, Hq, D)
    const lsePartial = alloc(S * n); // (S, B, Hq, Nq)
    await decode(S, { kind: 'partial' as const, outPartial, lsePartial }, [outPartial, lsePartial]);
    core.lseCombineKernel(
      outPartial,
      lsePartial,
      S,
      p.B,
      p.Nq,
      p.Hq,
      p.D,
      out,
      layout(a.out),
      lse,
      0,
      n,
    );
  }

  async combine(a: AttentionCombineArgs<CpuBuffer>): Promise<void> {
    const s = validateCombineArgs(a, lengthOf);
    floats({ outPartial: a.outPartial, lsePartial: a.lsePartial, out: a.out.buffer, lse: a.lse });
    const rows = s.B * s.Hq * s.Nq;
    const bufs = [a.outPartial, a.lsePartial, a.out.buffer, ...(a.lse ? [a.lse] : [])];
    await this.fanOut(rows, bufs, (lo, hi) => ({
      fn: 'lseCombineKernel',
      args: [
        a.outPartial,
        a.lsePartial,
        s.S,
        s.B,
        s.Nq,
        s.Hq,
        s.D,
        a.out.buffer,
        layout(a.out),
        a.lse,
        lo,
        hi,
      ],
    }));
  }

  async varlenForward(a: VarlenForwardArgs<CpuBuffer>, opts?: AttentionOptions): Promise<void> {
    const p = validateVarlenForwardArgs(a, opts, lengthOf, this.capabilities);
    const dtype = floats({
      q: a.q.buffer,
      k: a.k.buffer,
      v: a.v.buffer,
      out: a.out.buffer,
      lse: a.lse,
    });
    const g: VarlenGeometry = {
      Hq: p.Hq,
      Hk: p.Hk,
      D: p.D,
      totalQ: p.totalQ,
      cuQ: p.cuQ,
      cuK: p.cuK,
    };
    const o = resolveOptions(opts, p.D);
    const bufs = [a.q.buffer, a.k.buffer, a.v.buffer, a.out.buffer, a.lse];
    await this.fanOut(p.B, bufs, (lo, hi) => ({
      fn: 'varlenForwardKernel',
      args: [
        a.q.buffer,
        layout(a.q),
        a.k.buffer,
        layout(a.k),
        a.v.buffer,
        layout(a.v),
        a.out.buffer,
        layout(a.out),
        a.lse,
        g,
        o,
        DEFAULT_BLOCK_SIZE_Q,
        DEFAULT_BLOCK_SIZE_K,
        dtype,
        lo,
        hi,
      ],
    }));
  }

  async varlenBackward(a: VarlenBackwardArgs<CpuBuffer>, opts?: AttentionOptions): Promise<void> {
    const p = validateVarlenBackwardArgs(a, opts, lengthOf, this.capabilities);
    const dtype = floats({
      q: a.q.buffer,
      k: a.k.buffer,
      v: a.v.buffer,
      dout: a.dout.buffer,
      out: a.out.buffer,
      lse: a.lse,
      dq: a.dq.buffer,
      dk: a.dk.buffer,
      dv: a.dv.buffer,
    });
    const g: VarlenGeometry = {
      Hq: p.Hq,
      Hk: p.Hk,
      D: p.D,
      totalQ: p.totalQ,
      cuQ: p.cuQ,
      cuK: p.cuK,
    };
    const o = resolveOptions(opts, p.D);
    const bufs = [a.dout, a.q, a.k, a.v, a.out, a.dq, a.dk, a.dv].map(
      (v) => v.buffer as ArrayBufferView,
    );
    await this.fanOut(p.B, [...bufs, a.lse], (lo, hi) => ({
      fn: 'varlenBackwardKernel',
      args: [
        a.dout.buffer,
        layout(a.dout),
        a.q.buffer,
        layout(a.q),
        a.k.buffer,
        layout(a.k),
        a.v.buffer,
        layout(a.v),
        a.out.buffer,
        layout(a.out),
        a.lse,
        a.dq.buffer,
        layout(a.dq),
        a.dk.buffer,
        layout(a.dk),
        a.dv.buffer,
        layout(a.dv),
        g,
        o,
        DEFAULT_BLOCK_SIZE_Q,
        DEFAULT_BLOCK_SIZE_K,
        dtype,
        lo,
        hi,
      ],
    }));
  }

  async dispose(): Promise<void> {
    const ws = this.workers ?? [];
    this.workers = null;
    await Promise.all(ws.map((w) => w.terminate()));
  }
}
