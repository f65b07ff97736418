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
import { MatmulPool, type MatmulJob, type SimdJob } from './matmul-pool.js';
import { simdRows, WasmArena } from './wasm-arena.js';
import { softmaxCrossEntropy } from './softmax-xent.js';

export interface CpuOpsOptions {
  precision?: Precision;
  /** Threads for matmul, including the calling one. Default: available cores (2 here). */
  threads?: number;
  /**
   * float32 only: keep buffers in a shared WebAssembly memory and multiply with the 128-bit SIMD
   * kernel (wasm/matmul-simd.wat). Default true; false = the plain JS kernel (matmul-kernel.ts).
   */
  simd?: boolean;
}

/**
 * Below this many multiply-adds a matmul runs on the calling thread: a worker round trip measured
 * 39 us here (2000 empty jobs, load ~2), the time the SIMD kernel needs for ~2^18 multiply-adds.
 */
const MIN_PARALLEL_MACS = 1 << 18;

/**
 * dst (rows, Kp) = src as (rows, K) [trans = false: src is (rows, K)] or src^T [trans = true: src is
 * (K, rows)], zero-padded in columns K..Kp.
 */
function packRows(dst: Float32Array, src: FloatArray, rows: number, K: number, Kp: number, trans: boolean): void {
  if (!trans) {
    for (let r = 0; r < rows; r++) {
      dst.set(src.subarray(r * K, r * K + K), r * Kp);
      for (let k = K; k < Kp; k++) dst[r * Kp + k] = 0;
    }
    return;
  }
  const TB = 32;
  for (let k0 = 0; k0 < K; k0 += TB) {
    const k1 = Math.min(K, k0 + TB);
    for (let r0 = 0; r0 < rows; r0 += TB) {
      const r1 = Math.min(rows, r0 + TB);
      for (let k = k0; k < k1; k++) for (let r = r0; r < r1; r++) dst[r * Kp + k] = src[k * rows + r]!;
    }
  }
  for (let r = 0; r < rows; r++) for (let k = K; k < Kp; k++) dst[r * Kp + k] = 0;
}

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
  private readonly arena: WasmArena | null;
  private simdA: Float32Array | null = null;
  private simdB: Float32Array | null = null;

  constructor(opts: CpuOpsOptions = {}) {
    this.precision = opts.precision ?? 'float32';
    const threads = Math.max(1, Math.floor(opts.threads ?? availableParallelism()));
    this.pool = threads > 1 ? new MatmulPool(threads - 1) : null;
    this.arena = this.precision === 'float32' && (opts.simd ?? true) ? new WasmArena() : null;
    if (this.arena && this.pool) this.pool.initSimd(this.arena.module, this.arena.memory, this.arena.exports);
    this.name = `cpu (${this.precision}, ${threads} thread${threads > 1 ? 's' : ''}${this.arena ? ', wasm simd' : ''})`;
    this.packA = this.alloc(0);
    this.packB = this.alloc(0);
  }

  get threads(): number {
    return this.pool?.threads ?? 1;
  }

  alloc(n: number): FloatArray {
    const inArena = this.arena?.allocF32(n);
    if (inArena) return inArena;
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
      if (this.arena && this.arena.ptr(out) >= 0 && (opts.bias === undefined || this.arena.ptr(opts.bias) >= 0)) {
        await this.matmulSimd(this.arena, out as Float32Array, a, b, M, N, K, opts);
        return;
      }
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

  /** Scratch in the arena (grown by 1.5x so repeated growth stays bounded). */
  private simdScratch(which: 'A' | 'B', n: number): Float32Array {
    const cur = which === 'A' ? this.simdA : this.simdB;
    if (cur && cur.length >= n) return cur;
    const next = this.arena!.allocF32(Math.max(n, Math.ceil((cur?.length ?? 0) * 1.5)));
    if (!next) throw new Error(`CpuOps: wasm memory exhausted (${this.arena!.bytesUsed} bytes in use)`);
    if (which === 'A') this.simdA = next;
    else this.simdB = next;
    return next;
  }

  /**
   * SIMD path: operands packed (when not already) to X (rows, Kp) with Kp = K rounded up to 4 and
   * zero padding, so the kernel's 4-lane loop needs no tail.
   */
  private async matmulSimd(arena: WasmArena, out: Float32Array, a: FloatArray, b: FloatArray, M: number, N: number, K: number, opts: MatmulOptions): Promise<void> {
    const Kp = Math.ceil(K / 4) * 4;
    const direct = (x: FloatArray, trans: boolean): boolean => !trans && Kp === K && arena.ptr(x) >= 0;
    let aPtr: number;
    if (direct(a, opts.transA ?? false)) aPtr = arena.ptr(a);
    else {
      const s = this.simdScratch('A', M * Kp);
      packRows(s, a, M, K, Kp, opts.transA ?? false);
      aPtr = s.byteOffset;
    }
    let bPtr: number;
    if (direct(b, !(opts.transB ?? false))) bPtr = arena.ptr(b);
    else {
      const s = this.simdScratch('B', N * Kp);
      packRows(s, b, N, K, Kp, !(opts.transB ?? false));
      bPtr = s.byteOffset;
    }
    const mode = opts.accumulate ? 2 : opts.bias ? 1 : 0;
    const biasPtr = opts.bias ? arena.ptr(opts.bias) : 0;
    const cPtr = out.byteOffset;
    const threads = this.pool?.threads ?? 1;
    if (this.pool === null || M * N * K < MIN_PARALLEL_MACS || M < 8 * threads) {
      simdRows(arena.exports, cPtr, aPtr, bPtr, biasPtr, N, Kp, 0, M, mode);
      return;
    }
    const jobs: SimdJob[] = [];
    const per = Math.ceil(M / threads / 4) * 4;
    for (let t = 0, m0 = 0; t < threads && m0 < M; t++, m0 += per) {
      jobs.push({ simd: true, c: cPtr, a: aPtr, b: bPtr, bias: biasPtr, N, K: Kp, m0, m1: Math.min(M, m0 + per), mode });
    }
    await this.pool.run(jobs);
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
