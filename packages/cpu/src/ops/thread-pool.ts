/**
 * The CPU backend's one thread pool, shared by the matmul and attention: `threads - 1` worker threads
 * plus the calling thread. Sized to the machine by default (CpuOpsOptions.threads); every worker is
 * unref'd, so an idle pool never keeps a finished program alive, and dispose() terminates them.
 *
 * The kernels are shipped to each worker as source (Function.prototype.toString), so the same code runs
 * from src under vitest and from dist. Operands live in shared memory (the wasm arena or
 * SharedArrayBuffers); a job message carries typed arrays (shared, not copied) or byte addresses.
 * Jobs:
 *   - matmul (JS kernel, float64) and gemm (wasm SIMD, float32): a row range each, fixed split, one
 *     thread per output row;
 *   - flash (wasm SIMD attention): every thread takes work units from one atomic counter
 *     (attention/flash-simd.ts), each unit computed whole by one thread;
 *   - core attention (the scalar fallback): core's Algorithm 1/2 kernels on a (b, h) range.
 * Every output element is computed by exactly one thread with the same arithmetic, so results are
 * bitwise identical whatever the thread count (exact resume depends on this).
 */
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { flashUnits, type FlashJob, type FlashSimdExports } from '../attention/flash-simd.js';
import { gemmRows, type GemmJob } from './matmul-blocked.js';
import { matmulKernel } from './matmul-kernel.js';

type F = Float32Array | Float64Array;

export interface MatmulJob {
  C: F;
  Ap: F;
  Bp: F;
  bias: F | null;
  m0: number;
  m1: number;
  N: number;
  K: number;
  accumulate: boolean;
}

/** Core's scalar attention kernels on a (b, h) range (attention/cpu-attention.ts builds the args). */
export interface CoreAttentionJob {
  core: 'forward' | 'backward';
  args: unknown;
}

export type PoolJob = MatmulJob | GemmJob | { flash: FlashJob; thread: number } | CoreAttentionJob;

const WORKER_SOURCE = (coreUrl: string): string => `
const { parentPort } = require('node:worker_threads');
// esbuild (vitest) may wrap functions in __name(); make that a no-op here.
const __name = (f) => f;
const matmulKernel = ${matmulKernel.toString()};
const flashUnits = ${flashUnits.toString()};
const gemmRows = ${gemmRows.toString()};
let flash = null;
let memory = null;
let core = null;
parentPort.on('message', async (j) => {
  try {
    if (j.init) {
      // No reply: the port keeps order, so every later job sees the instances.
      memory = j.memory;
      flash = new WebAssembly.Instance(j.flash, { env: { memory } }).exports;
      return;
    } else if (j.flash) {
      flashUnits(flash, memory, j.flash, j.thread);
    } else if (j.gemm) {
      gemmRows(flash, memory, j);
    } else if (j.core) {
      core ??= await import(${JSON.stringify(coreUrl)});
      const a = j.args;
      const precision = a.q instanceof Float64Array ? 'float64' : 'float32';
      const o = core.resolveOptions(a.opts, a.shape.headDim);
      const Br = core.DEFAULT_BLOCK_SIZE_Q, Bc = core.DEFAULT_BLOCK_SIZE_K;
      if (j.core === 'forward') core.flashForwardKernel(a.q, a.k, a.v, a.shape, o, Br, Bc, precision, a.io);
      else core.flashBackwardKernel(a.dO, a.q, a.k, a.v, a.O, a.L, a.shape, o, Br, Bc, precision, a.io);
    } else {
      matmulKernel(j.C, j.Ap, j.Bp, j.bias, j.m0, j.m1, j.N, j.K, j.accumulate);
    }
    parentPort.postMessage({ ok: true });
  } catch (e) {
    parentPort.postMessage({ ok: false, error: String(e && e.stack || e) });
  }
});
`;

function coreUrl(): string {
  return pathToFileURL(createRequire(import.meta.url).resolve('@flashattn/core')).href;
}

export class ThreadPool {
  private readonly workers: Worker[] = [];
  private pending: Array<{ resolve: () => void; reject: (e: Error) => void } | null> = [];
  private flash: { ex: FlashSimdExports; memory: WebAssembly.Memory } | null = null;

  /** `helpers` worker threads besides the calling one. */
  constructor(helpers: number) {
    const src = helpers > 0 ? WORKER_SOURCE(coreUrl()) : '';
    for (let w = 0; w < helpers; w++) {
      const worker = new Worker(src, { eval: true });
      const idx = w;
      worker.on('message', (msg: { ok: boolean; error?: string }) => {
        const p = this.pending[idx];
        this.pending[idx] = null;
        worker.unref();
        if (!p) return;
        if (msg.ok) p.resolve();
        else p.reject(new Error(`CPU worker ${idx} failed: ${msg.error}`));
      });
      worker.on('error', (e) => {
        const p = this.pending[idx];
        this.pending[idx] = null;
        worker.unref();
        p?.reject(e instanceof Error ? e : new Error(String(e)));
      });
      // After the listeners: adding a 'message' listener refs the worker again, and an idle pool must
      // never keep a finished program alive (a program that forgets ops.dispose() still exits).
      worker.unref();
      this.workers.push(worker);
      this.pending.push(null);
    }
  }

  /** Number of threads a job is split over: the helpers plus the calling thread. */
  get threads(): number {
    return this.workers.length + 1;
  }

  /** Give every helper the wasm modules and the shared memory (ordered before any later job). */
  initWasm(
    memory: WebAssembly.Memory,
    flash: { module: WebAssembly.Module; local: FlashSimdExports },
  ): void {
    this.flash = { ex: flash.local, memory };
    for (const worker of this.workers)
      worker.postMessage({ init: true, flash: flash.module, memory });
  }

  /** Run jobs[0] on this thread and jobs[w + 1] on helper w; helpers are awaited even if ours throws. */
  async run(jobs: PoolJob[]): Promise<void> {
    if (jobs.length > 0) await this.fanOut(jobs.slice(1), () => this.runHere(jobs[0]!));
  }

  /** Post helperJobs[w] to helper w, run `here` on this thread, then wait for the helpers. */
  async fanOut(helperJobs: PoolJob[], here: () => void): Promise<void> {
    const waits = helperJobs.map((job, w) => {
      const worker = this.workers[w]!;
      return new Promise<void>((resolve, reject) => {
        this.pending[w] = { resolve, reject };
        worker.ref(); // a job in flight keeps the program alive; the reply unrefs it again
        worker.postMessage(job);
      });
    });
    try {
      here();
    } finally {
      await Promise.all(waits);
    }
  }

  /** One flash phase on every thread: each takes units from the job's counter until none is left. */
  async runFlash(job: FlashJob): Promise<void> {
    await this.run(Array.from({ length: this.threads }, (_, t) => ({ flash: job, thread: t })));
  }

  private runHere(j: PoolJob): void {
    if ('flash' in j) flashUnits(this.flash!.ex, this.flash!.memory, j.flash, j.thread);
    else if ('gemm' in j) gemmRows(this.flash!.ex, this.flash!.memory, j);
    else if ('core' in j) throw new Error('ThreadPool: core attention jobs run on helpers only');
    else matmulKernel(j.C, j.Ap, j.Bp, j.bias, j.m0, j.m1, j.N, j.K, j.accumulate);
  }

  async dispose(): Promise<void> {
    const ws = this.workers.splice(0);
    await Promise.all(ws.map((w) => w.terminate()));
  }
}
