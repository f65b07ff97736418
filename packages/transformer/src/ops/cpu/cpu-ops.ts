/**
 * CPU implementation of the ops: cache-blocked matmul over worker threads, the rest single-threaded
 * loops (they are O(N C) against the matmuls' O(N C^2)).
 */
import { availableParallelism } from 'node:os';
import type { AdamWStep, FloatArray, MatmulOptions, Ops, Precision } from '../ops.js';
import { adamwUpdate } from './adamw.js';
import { embeddingBackward, embeddingForward } from './embedding.js';
import { geluBackward, geluForward } from './gelu.js';
import { layernormBackward, layernormForward } from './layernorm.js';
import { matmulKernel, transposeInto } from './matmul-kernel.js';
import { MatmulPool, type MatmulJob } from './matmul-pool.js';
import { softmaxCrossEntropy } from './softmax-xent.js';

export interface CpuOpsOptions {
  precision?: Precision;
  /** Threads for matmul, including the calling one. Default: available cores (2 here). */
  threads?: number;
}

/** Below this many multiply-adds a matmul runs on the calling thread (a worker round trip is ~50 us). */
const MIN_PARALLEL_MACS = 1 << 18;

function isShared(x: FloatArray | null | undefined): boolean {
  return x == null || x.buffer instanceof SharedArrayBuffer;
}

export class CpuOps implements Ops {
  readonly name: string;
  readonly precision: Precision;
  private readonly pool: MatmulPool | null;
  private packA: FloatArray;
  private packB: FloatArray;
  private busy = false;

  constructor(opts: CpuOpsOptions = {}) {
    this.precision = opts.precision ?? 'float32';
    const threads = Math.max(1, Math.floor(opts.threads ?? availableParallelism()));
    this.pool = threads > 1 ? new MatmulPool(threads - 1) : null;
    this.name = `cpu (${this.precision}, ${threads} thread${threads > 1 ? 's' : ''})`;
    this.packA = this.alloc(0);
    this.packB = this.alloc(0);
  }

  get threads(): number {
    return this.pool?.threads ?? 1;
  }

  alloc(n: number): FloatArray {
    const bytes = this.precision === 'float32' ? 4 : 8;
    const sab = new SharedArrayBuffer(n * bytes);
    return this.precision === 'float32' ? new Float32Array(sab) : new Float64Array(sab);
  }

  private scratch(which: 'A' | 'B', n: number): FloatArray {
    const cur = which === 'A' ? this.packA : this.packB;
    if (cur.length >= n) return cur;
    const next = this.alloc(Math.max(n, Math.ceil(cur.length * 1.5)));
    if (which === 'A') this.packA = next;
    else this.packB = next;
    return next;
  }

  async matmul(out: FloatArray, a: FloatArray, b: FloatArray, M: number, N: number, K: number, opts: MatmulOptions = {}): Promise<void> {
    if (this.busy) throw new Error('CpuOps.matmul: overlapping calls share pack buffers; await each call');
    this.busy = true;
    try {
      // Pack to the kernel's layout: Ap (M, K) and Bp (N, K), K contiguous.
      let Ap = a;
      if (opts.transA) {
        Ap = this.scratch('A', M * K);
        transposeInto(Ap, a, K, M);
      }
      let Bp = b;
      if (!opts.transB) {
        Bp = this.scratch('B', N * K);
        transposeInto(Bp, b, K, N);
      }
      const accumulate = opts.accumulate ?? false;
      const bias = opts.bias ?? null;
      const threads = this.pool?.threads ?? 1;
      const parallel =
        this.pool !== null && M * N * K >= MIN_PARALLEL_MACS && M >= 8 * threads &&
        isShared(out) && isShared(Ap) && isShared(Bp) && isShared(bias);
      if (!parallel) {
        matmulKernel(out, Ap, Bp, bias, 0, M, N, K, accumulate);
        return;
      }
      // Split rows in multiples of 4 (the register tile height).
      const jobs: MatmulJob[] = [];
      const per = Math.ceil(M / threads / 4) * 4;
      for (let t = 0, m0 = 0; t < threads && m0 < M; t++, m0 += per) {
        jobs.push({ C: out, Ap, Bp, bias, m0, m1: Math.min(M, m0 + per), N, K, accumulate });
      }
      await this.pool!.run(jobs);
    } finally {
      this.busy = false;
    }
  }

  biasBackward(dbias: FloatArray, dout: FloatArray, M: number, N: number): void {
    for (let i = 0; i < M; i++) {
      const o = i * N;
      for (let j = 0; j < N; j++) dbias[j] += dout[o + j]!;
    }
  }

  embeddingForward(out: FloatArray, tokens: Int32Array, wte: FloatArray, wpe: FloatArray, B: number, T: number, C: number): void {
    embeddingForward(out, tokens, wte, wpe, B, T, C);
  }

  embeddingBackward(dwte: FloatArray, dwpe: FloatArray, dout: FloatArray, tokens: Int32Array, B: number, T: number, C: number): void {
    embeddingBackward(dwte, dwpe, dout, tokens, B, T, C);
  }

  layernormForward(out: FloatArray, mean: FloatArray, rstd: FloatArray, inp: FloatArray, w: FloatArray, b: FloatArray, N: number, C: number): void {
    layernormForward(out, mean, rstd, inp, w, b, N, C);
  }

  layernormBackward(dinp: FloatArray, dw: FloatArray, db: FloatArray, dout: FloatArray, inp: FloatArray, w: FloatArray, mean: FloatArray, rstd: FloatArray, N: number, C: number): void {
    layernormBackward(dinp, dw, db, dout, inp, w, mean, rstd, N, C);
  }

  geluForward(out: FloatArray, inp: FloatArray, n: number): void {
    geluForward(out, inp, n);
  }

  geluBackward(dinp: FloatArray, inp: FloatArray, dout: FloatArray, n: number): void {
    geluBackward(dinp, inp, dout, n);
  }

  add(out: FloatArray, a: FloatArray, b: FloatArray, n: number): void {
    for (let i = 0; i < n; i++) out[i] = a[i]! + b[i]!;
  }

  softmaxCrossEntropy(losses: FloatArray, dlogits: FloatArray | null, logits: FloatArray, targets: Int32Array, N: number, V: number, dlossScale: number): number {
    return softmaxCrossEntropy(losses, dlogits, logits, targets, N, V, dlossScale);
  }

  sumSquares(x: FloatArray): number {
    let s = 0;
    for (let i = 0; i < x.length; i++) s += x[i]! * x[i]!;
    return s;
  }

  scale(x: FloatArray, s: number): void {
    for (let i = 0; i < x.length; i++) x[i] *= s;
  }

  adamw(params: FloatArray, grads: FloatArray, m: FloatArray, v: FloatArray, lo: number, hi: number, h: AdamWStep): void {
    adamwUpdate(params, grads, m, v, lo, hi, h);
  }

  async dispose(): Promise<void> {
    await this.pool?.dispose();
  }
}
