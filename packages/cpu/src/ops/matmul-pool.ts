/**
 * Threads for the CPU matmul. The kernel source is shipped to each worker as a string
 * (Function.prototype.toString), so the same code runs from src under vitest and from dist.
 * Operands live in SharedArrayBuffers; a job message carries the typed arrays (shared, not copied)
 * and a row range. Each output row is computed by exactly one thread in a fixed order, so results
 * are bitwise identical whatever the thread count (exact resume depends on this).
 */
import { Worker } from 'node:worker_threads';
import { matmulKernel } from './matmul-kernel.js';
import { simdRows, type MatmulSimdExports } from './wasm-arena.js';

type F = Float32Array | Float64Array;

/** A job for the SIMD kernel: byte addresses in the shared wasm memory. */
export interface SimdJob {
  simd: true;
  c: number;
  a: number;
  b: number;
  bias: number;
  N: number;
  K: number;
  m0: number;
  m1: number;
  mode: number;
}

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

const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
// esbuild (vitest) may wrap functions in __name(); make that a no-op here.
const __name = (f) => f;
const matmulKernel = ${matmulKernel.toString()};
const simdRows = ${simdRows.toString()};
let simd = null;
parentPort.on('message', (j) => {
  try {
    if (j.init) {
      // No reply: the port keeps order, so every later job sees the instance.
      simd = new WebAssembly.Instance(j.module, { env: { memory: j.memory } }).exports;
      return;
    } else if (j.simd) {
      simdRows(simd, j.c, j.a, j.b, j.bias, j.N, j.K, j.m0, j.m1, j.mode);
    } else {
      matmulKernel(j.C, j.Ap, j.Bp, j.bias, j.m0, j.m1, j.N, j.K, j.accumulate);
    }
    parentPort.postMessage({ ok: true });
  } catch (e) {
    parentPort.postMessage({ ok: false, error: String(e && e.stack || e) });
  }
});
`;

export class MatmulPool {
  private readonly workers: Worker[] = [];
  private pending: Array<{ resolve: () => void; reject: (e: Error) => void } | null> = [];

  private simd: MatmulSimdExports | null = null;

  constructor(helpers: number) {
    for (let w = 0; w < helpers; w++) {
      const worker = new Worker(WORKER_SOURCE, { eval: true });
      const idx = w;
      worker.on('message', (msg: { ok: boolean; error?: string }) => {
        const p = this.pending[idx];
        this.pending[idx] = null;
        worker.unref();
        if (!p) return;
        if (msg.ok) p.resolve();
        else p.reject(new Error(`matmul worker ${idx} failed: ${msg.error}`));
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

  /** Give every helper the SIMD module and the shared memory (ordered before any later job). */
  initSimd(module: WebAssembly.Module, memory: WebAssembly.Memory, local: MatmulSimdExports): void {
    this.simd = local;
    for (const worker of this.workers) worker.postMessage({ init: true, module, memory });
  }

  /** Run the row chunks: chunk 0 on this thread, chunk w+1 on helper w. */
  async run(jobs: Array<MatmulJob | SimdJob>): Promise<void> {
    const waits: Promise<void>[] = [];
    for (let w = 1; w < jobs.length; w++) {
      const worker = this.workers[w - 1]!;
      waits.push(
        new Promise<void>((resolve, reject) => {
          this.pending[w - 1] = { resolve, reject };
          worker.ref(); // a job in flight keeps the program alive; the reply unrefs it again
          worker.postMessage(jobs[w]);
        }),
      );
    }
    const j = jobs[0]!;
    if ('simd' in j) simdRows(this.simd!, j.c, j.a, j.b, j.bias, j.N, j.K, j.m0, j.m1, j.mode);
    else matmulKernel(j.C, j.Ap, j.Bp, j.bias, j.m0, j.m1, j.N, j.K, j.accumulate);
    await Promise.all(waits);
  }

  async dispose(): Promise<void> {
    const ws = this.workers.splice(0);
    await Promise.all(ws.map((w) => w.terminate()));
  }
}
