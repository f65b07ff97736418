/**
 * The CPU implementation of core's `Ops<Buf>`: buffers are host typed arrays (buffers.ts), the matmul is
 * cache-blocked (wasm SIMD for float32) over worker threads, attention is FlashAttention-2 over strided
 * views on worker threads (attention/cpu-attention.ts), the rest single-threaded loops (they are O(N C)
 * against the matmuls' O(N C^2)). float64 buffers run the same algorithms in float64: the gradient
 * checks' exact twin.
 */
import { availableParallelism } from 'node:os';
import {
  BackendOutOfMemoryError,
  OpsInputError,
  describe,
  matmulEpilogue,
  matmulGeluByParts,
  xentRowStride,
  type AdamWStep,
  type AttentionOptions,
  type BackendCapabilities,
  type BufferDType,
  type DeviceAttentionBackwardArgs,
  type DeviceAttentionForwardArgs,
  type FloatArray,
  type HostArray,
  type MatmulOptions,
  type Ops,
} from '@flashattn/core';
import type {
  AttentionCombineArgs,
  DeviceKvCacheAttention,
  DeviceVarlenAttention,
  KvCacheAttentionArgs,
  KvCacheCapabilities,
  KvCacheOptions,
  VarlenBackwardArgs,
  VarlenForwardArgs,
} from '@flashattn/core';
import {
  CpuAttention,
  type CpuAttentionKind,
  type CpuAttentionPath,
} from '../attention/cpu-attention.js';
import { nativeAddon, nativeAttentionInfo, nativeInfo } from '../attention/flash-native.js';
import { flashSimdModule, type FlashSimdExports } from '../attention/flash-simd.js';
import { CpuInferenceAttention } from '../attention/kv-cache.js';
import { adamwUpdate } from './adamw.js';
import {
  CPU_DTYPES,
  checkUpload,
  cpuDTypeOf,
  floatAny,
  floatBuf,
  intBuf,
  sameDType,
  size,
  type CpuBuffer,
  type CpuFloatBuffer,
} from './buffers.js';
import { embeddingBackward, embeddingForward } from './embedding.js';
import { geluBackward, geluForward } from './gelu.js';
import { layernormBackward, layernormForward } from './layernorm.js';
import { matmulKernel, transposeInto } from './matmul-kernel.js';
import { GEMM_PACK_FLOATS, gemmRows, type GemmJob } from './matmul-blocked.js';
import { matmulNative, type NativeGemm } from './matmul-native.js';
import { ThreadPool, type MatmulJob } from './thread-pool.js';
import { WasmArena } from './wasm-arena.js';
import { softmaxCrossEntropy } from './softmax-xent.js';
import {
  adamwSimd,
  layernormForwardSimd,
  opsSimdInstance,
  softmaxCrossEntropySimd,
  type OpsSimdExports,
} from './ops-simd.js';

export interface CpuOpsOptions {
  /** Threads for matmul and attention, including the calling one. Default: available cores. */
  threads?: number;
  /**
   * Keep float32 buffers in a shared WebAssembly memory and multiply them with the 128-bit SIMD kernel
   * (ops/matmul-blocked.ts) and run attention with the wasm SIMD tiles (attention/flash-simd.ts).
   * Default true; false = the plain JS matmul (matmul-kernel.ts) and core's scalar attention kernels.
   */
  simd?: boolean;
  /**
   * Attention's multiply-adds: fused (relaxed-SIMD f32x4.relaxed_madd) where the runtime has relaxed
   * SIMD (default), or false for plain f32x4.mul + f32x4.add everywhere.
   */
  fma?: boolean;
  /** 'flash' (default): FlashAttention-2 in place; 'standard': the materialised baseline (cpu-attention.ts). */
  attention?: CpuAttentionKind;
  /**
   * Tile sizes of the wasm SIMD attention: Br query rows and Bc key columns, multiples of 4 in [4, 256].
   * Default: the tuned ones (attention/cpu-attention.ts has the sweep); for tuning runs.
   */
  attentionTiles?: { Br: number; Bc: number };
  /**
   * Run the attention forward and the float32 matmul on the native AVX2 + FMA addon (native/, on native
   * threads) where it is built and this CPU has both (default true; with simd, whose arena holds the
   * forward's buffers); false = the wasm SIMD forward and matmul. Where it cannot run, the wasm kernels
   * run and the ops' name says why (`nativeInfo()`). The attention backward is wasm either way.
   */
  native?: boolean;
  /** Testing only: a deliberately broken native forward (1 = mask off by one, 2 = no rescale). */
  nativeVariant?: 0 | 1 | 2;
  /**
   * Testing only: a deliberately broken native gemm (1 = each K slice drops its last step, 2 = the edge
   * columns are never written: N % 16 packed, N % 8 on the small-M path, 3 = the small-M path computes
   * every row from the first row of op(A)).
   */
  nativeGemmVariant?: 0 | 1 | 2 | 3;
  /**
   * Most bytes the wasm memory (the SIMD kernels' arena) may grow to; default 4 GiB, wasm32's limit. Float32
   * buffers past it live outside the arena and take the native or scalar kernels; a matmul whose packs no
   * longer fit takes the scalar kernel. Smaller values are for tests and embedders.
   */
  wasmMemoryBytes?: number;
}

/**
 * Below this many multiply-adds a matmul runs on the calling thread: a worker round trip measured
 * 39 us here (2000 empty jobs, load ~2), the time the SIMD kernel needs for ~2^18 multiply-adds.
 */
const MIN_PARALLEL_MACS = 1 << 18;

/** dst (K, Np) = src as (K, N) [trans = false] or src^T [trans = true: src is (N, K)], zero-padded. */
function packKN(
  dst: Float32Array,
  src: FloatArray,
  K: number,
  N: number,
  Np: number,
  trans: boolean,
): void {
  if (!trans) {
    for (let k = 0; k < K; k++) {
      dst.set(src.subarray(k * N, k * N + N), k * Np);
      for (let n = N; n < Np; n++) dst[k * Np + n] = 0;
    }
    return;
  }
  const TB = 32;
  for (let n0 = 0; n0 < N; n0 += TB) {
    const n1 = Math.min(N, n0 + TB);
    for (let k0 = 0; k0 < K; k0 += TB) {
      const k1 = Math.min(K, k0 + TB);
      for (let n = n0; n < n1; n++) for (let k = k0; k < k1; k++) dst[k * Np + n] = src[n * K + k]!;
    }
  }
  for (let k = 0; k < K; k++) for (let n = N; n < Np; n++) dst[k * Np + n] = 0;
}

function isShared(x: ArrayBufferView | null | undefined): boolean {
  return x == null || x.buffer instanceof SharedArrayBuffer;
}

export class CpuOps
  implements Ops<CpuBuffer>, DeviceKvCacheAttention<CpuBuffer>, DeviceVarlenAttention<CpuBuffer>
{
  readonly name: string;
  readonly dtypes = CPU_DTYPES;
  private readonly pool: ThreadPool | null;
  private readonly attention: CpuAttention;
  private packA: FloatArray;
  private packB: FloatArray;
  private busy = false;
  private disposed = false;
  private readonly arena: WasmArena | null;
  private simdA: Float32Array | null = null;
  private simdB: Float32Array | null = null;
  private simdC: Float32Array | null = null;
  /** Per-thread B panel packs of the SIMD matmul (matmul-blocked.ts). */
  private simdP: Float32Array | null = null;
  private flash: FlashSimdExports | null = null;
  /** The SIMD layernorm, GELU, softmax cross-entropy and AdamW (ops-simd.ts), on the arena. */
  private opsSimd: OpsSimdExports | null = null;
  /** Which kernels the last layernorm / GELU / cross-entropy / AdamW call ran (tests check it). */
  lastOpPath: 'simd' | 'scalar' | null = null;
  /** The native gemm (matmul-native.ts) when the addon has it and `native` is on, else null. */
  private readonly gemm: NativeGemm | null;
  /**
   * Which kernel the last matmul ran: the native packed gemm, the native small-M path (M <= 8 rows), the
   * wasm SIMD gemm, or the JS loops (tests check it).
   */
  lastMatmulPath: 'native' | 'native-gemv' | 'simd' | 'scalar' | null = null;

  constructor(opts: CpuOpsOptions = {}) {
    const threads = Math.max(1, Math.floor(opts.threads ?? availableParallelism()));
    this.pool = threads > 1 ? new ThreadPool(threads - 1) : null;
    this.arena = (opts.simd ?? true) ? new WasmArena(opts.wasmMemoryBytes) : null;
    let flash: { exports: FlashSimdExports; fma: boolean } | null = null;
    if (this.arena) {
      const { module, fma } = flashSimdModule(opts.fma);
      const inst = new WebAssembly.Instance(module, { env: { memory: this.arena.memory } });
      flash = { exports: inst.exports as unknown as FlashSimdExports, fma };
      this.flash = flash.exports;
      this.opsSimd = opsSimdInstance(this.arena.memory, fma);
      this.pool?.initWasm(this.arena.memory, { module, local: flash.exports });
    }
    const tiles = opts.attentionTiles;
    if (tiles !== undefined)
      for (const key of ['Br', 'Bc'] as const) {
        const t = tiles?.[key];
        if (!Number.isInteger(t) || t! < 4 || t! > 256 || t! % 4 !== 0)
          throw new OpsInputError(
            `attentionTiles.${key}`,
            'a multiple of 4 in [4, 256]',
            describe(t),
          );
      }
    // The native forward needs float32 buffers in shared memory, i.e. the arena (simd true).
    const addon = (opts.native ?? true) && this.arena ? nativeAddon() : null;
    this.attention = new CpuAttention(
      this.pool,
      this.arena && flash ? { arena: this.arena, exports: flash.exports } : null,
      opts.attention ?? 'flash',
      tiles,
      addon ? { addon, variant: opts.nativeVariant ?? 0 } : null,
    );
    const simd = flash ? `, wasm simd${flash.fma ? ' + relaxed fma' : ''}` : '';
    const info = nativeInfo();
    this.gemm = addon && info.gemm ? { addon, variant: opts.nativeGemmVariant ?? 0 } : null;
    const why = nativeAttentionInfo().reason;
    const native = addon
      ? `, native avx2 forward${this.gemm ? ' + gemm' : ` (no native gemm: ${info.reason ?? '?'})`}`
      : (opts.native ?? true) && this.arena && why
        ? `, no native forward: ${why}`
        : '';
    this.name = `cpu (${threads} thread${threads > 1 ? 's' : ''}${simd}${native}, ${this.attention.kind} attention)`;
    this.packA = new Float32Array(0);
    this.packB = new Float32Array(0);
  }

  get threads(): number {
    return this.pool?.threads ?? 1;
  }

  /** Which attention path the last call took: 'simd' (wasm tiles), 'scalar' (core's kernels), 'standard'. */
  get attentionPath(): CpuAttentionPath | null {
    return this.attention.lastPath;
  }

  get attentionCapabilities(): BackendCapabilities {
    return this.attention.capabilities;
  }

  computeDType(dtype: BufferDType): BufferDType {
    return dtype;
  }

  // ---- memory ----

  alloc(n: number, dtype: BufferDType): CpuBuffer {
    this.live();
    size('alloc', 'n', n);
    if (!CPU_DTYPES.includes(dtype)) {
      throw new OpsInputError(
        'alloc dtype',
        `one of ${CPU_DTYPES.join(', ')} (the CPU backend)`,
        describe(dtype),
      );
    }
    if (dtype === 'float32') {
      const inArena = this.arena?.allocF32(n);
      if (inArena) return inArena;
    }
    const bytes = dtype === 'float64' ? 8 : 4;
    let sab: SharedArrayBuffer;
    try {
      sab = new SharedArrayBuffer(n * bytes);
    } catch (e) {
      throw new BackendOutOfMemoryError(
        'cpu',
        `cannot allocate ${n} ${dtype} elements (${n * bytes} bytes)`,
        { cause: e },
      );
    }
    return dtype === 'float32'
      ? new Float32Array(sab)
      : dtype === 'float64'
        ? new Float64Array(sab)
        : new Int32Array(sab);
  }

  view(buf: CpuBuffer, offset: number, length: number): CpuBuffer {
    this.bufferOf('view', 'buf', buf);
    size('view', 'offset', offset);
    size('view', 'length', length);
    if (offset + length > buf.length) {
      throw new OpsInputError(
        'view range',
        `offset + length <= ${buf.length} (the buffer's length)`,
        offset + length,
      );
    }
    return buf.subarray(offset, offset + length);
  }

  lengthOf(buf: CpuBuffer): number {
    return this.bufferOf('lengthOf', 'buf', buf).length;
  }

  dtypeOf(buf: CpuBuffer): BufferDType {
    return cpuDTypeOf(this.bufferOf('dtypeOf', 'buf', buf))!;
  }

  zero(buf: CpuBuffer): void {
    this.bufferOf('zero', 'buf', buf).fill(0);
  }

  upload(buf: CpuBuffer, data: HostArray): void {
    checkUpload(this.bufferOf('upload', 'buf', buf), data);
    buf.set(data as ArrayLike<number>);
  }

  async download(buf: CpuBuffer): Promise<HostArray> {
    // slice() copies into a new, unshared ArrayBuffer: the caller's array never aliases device memory.
    return this.bufferOf('download', 'buf', buf).slice();
  }

  copy(dst: CpuBuffer, src: CpuBuffer): void {
    const d = this.bufferOf('copy', 'dst', dst);
    const s = this.bufferOf('copy', 'src', src);
    if (d instanceof Int32Array !== s instanceof Int32Array) {
      throw new OpsInputError(
        'copy src.dtype',
        `${cpuDTypeOf(d)} or another float dtype like dst`,
        cpuDTypeOf(s),
      );
    }
    if (s.length !== d.length)
      throw new OpsInputError('copy src.length', String(d.length), s.length);
    d.set(s);
  }

  free(buf: CpuBuffer): void {
    // Garbage collected (SharedArrayBuffer) or owned by the wasm arena, which lives as long as the ops.
    this.bufferOf('free', 'buf', buf);
  }

  private bufferOf(op: string, name: string, buf: unknown): CpuBuffer {
    this.live();
    if (cpuDTypeOf(buf) === null)
      throw new OpsInputError(`${op} ${name}`, 'a CPU buffer (from alloc or view)', describe(buf));
    return buf as CpuBuffer;
  }

  private live(): void {
    if (this.disposed) throw new OpsInputError('ops', 'a live CpuOps', 'one after dispose()');
  }

  private scratch(which: 'A' | 'B', n: number, like: CpuFloatBuffer): FloatArray {
    const cur = which === 'A' ? this.packA : this.packB;
    if (cur.length >= n && cur.constructor === like.constructor) return cur;
    const len = cur.constructor === like.constructor ? Math.max(n, Math.ceil(cur.length * 1.5)) : n;
    const next = this.alloc(len, cpuDTypeOf(like)!) as FloatArray;
    if (which === 'A') this.packA = next;
    else this.packB = next;
    return next;
  }

  // ---- the model's ops ----

  async matmul(
    out: CpuBuffer,
    a: CpuBuffer,
    b: CpuBuffer,
    M: number,
    N: number,
    K: number,
    opts: MatmulOptions<CpuBuffer> = {},
  ): Promise<void> {
    this.live();
    for (const [n, x] of [
      ['M', M],
      ['N', N],
      ['K', K],
    ] as const)
      size('matmul', n, x);
    const o = floatBuf('matmul', 'out', out, M * N);
    const A = floatBuf('matmul', 'a', a, M * K);
    const Bm = floatBuf('matmul', 'b', b, K * N);
    sameDType('matmul', 'a', A, o, 'out');
    sameDType('matmul', 'b', Bm, o, 'out');
    const bias = opts.bias === undefined ? null : floatBuf('matmul', 'opts.bias', opts.bias, N);
    if (bias) sameDType('matmul', 'opts.bias', bias, o, 'out');
    const epilogue = matmulEpilogue('matmul', opts);
    if (epilogue === 'gelu' || epilogue === 'dgelu') {
      const name = `opts.${epilogue}Pre`;
      const preBuf = (opts.geluPre ?? opts.dgeluPre)!;
      sameDType('matmul', name, floatBuf('matmul', name, preBuf, M * N), o, 'out');
      return matmulGeluByParts(this, epilogue, out, a, b, M, N, K, opts);
    }
    if (this.busy)
      throw new Error('CpuOps.matmul: overlapping calls share pack buffers; await each call');
    this.busy = true;
    try {
      if (this.gemm && o instanceof Float32Array) {
        this.lastMatmulPath = 'native';
        const f32 = (x: FloatArray): Float32Array => x as Float32Array; // sameDType: all float32
        const kernel = await matmulNative(
          this.gemm,
          this.threads,
          o,
          f32(A),
          f32(Bm),
          bias && f32(bias),
          M,
          N,
          K,
          opts,
        );
        if (kernel === 'gemv') this.lastMatmulPath = 'native-gemv';
        return;
      }
      if (
        this.arena &&
        this.arena.ptr(o) >= 0 &&
        (bias === null || this.arena.ptr(bias) >= 0) &&
        (await this.matmulSimd(this.arena, o as Float32Array, A, Bm, M, N, K, opts))
      ) {
        this.lastMatmulPath = 'simd';
        return;
      }
      this.lastMatmulPath = 'scalar';
      // Pack to the kernel's layout: Ap (M, K) and Bp (N, K), K contiguous.
      let Ap: FloatArray = A;
      if (opts.transA) {
        Ap = this.scratch('A', M * K, o);
        transposeInto(Ap, A, K, M);
      }
      let Bp: FloatArray = Bm;
      if (!opts.transB) {
        Bp = this.scratch('B', N * K, o);
        transposeInto(Bp, Bm, K, N);
      }
      const accumulate = opts.accumulate ?? false;
      const threads = this.pool?.threads ?? 1;
      const parallel =
        this.pool !== null &&
        M * N * K >= MIN_PARALLEL_MACS &&
        M >= 8 * threads &&
        isShared(o) &&
        isShared(Ap) &&
        isShared(Bp) &&
        isShared(bias);
      if (!parallel) {
        matmulKernel(o, Ap, Bp, bias, 0, M, N, K, accumulate);
        return;
      }
      // Split rows in multiples of 4 (the register tile height).
      const jobs: MatmulJob[] = [];
      const per = Math.ceil(M / threads / 4) * 4;
      for (let t = 0, m0 = 0; t < threads && m0 < M; t++, m0 += per) {
        jobs.push({ C: o, Ap, Bp, bias, m0, m1: Math.min(M, m0 + per), N, K, accumulate });
      }
      await this.pool!.run(jobs);
    } finally {
      this.busy = false;
    }
  }

  /**
   * Byte addresses of float32 buffers that all live in the arena (the SIMD ops' operands), or null when
   * one does not (float64, a plain array): that call takes the scalar kernel. Records the path.
   */
  private simdOperands(...bufs: FloatArray[]): number[] | null {
    const ptrs =
      this.opsSimd && this.arena
        ? bufs.map((b) => (b instanceof Float32Array ? this.arena!.ptr(b) : -1))
        : null;
    const ok = ptrs !== null && ptrs.every((x) => x >= 0);
    this.lastOpPath = ok ? 'simd' : 'scalar';
    return ok ? ptrs : null;
  }

  /** Scratch in the arena (grown by 1.5x), or null when the wasm memory cannot grow to it. */
  private simdScratch(which: 'A' | 'B' | 'C' | 'P', n: number): Float32Array | null {
    const cur =
      which === 'A'
        ? this.simdA
        : which === 'B'
          ? this.simdB
          : which === 'C'
            ? this.simdC
            : this.simdP;
    if (cur && cur.length >= n) return cur;
    const next = this.arena!.allocF32(Math.max(n, Math.ceil((cur?.length ?? 0) * 1.5)));
    if (!next) return null;
    if (which === 'A') this.simdA = next;
    else if (which === 'B') this.simdB = next;
    else if (which === 'C') this.simdC = next;
    else this.simdP = next;
    return next;
  }

  /**
   * SIMD path (matmul-blocked.ts): A as (M, K) and B as (K, Np) row-major with Np = N rounded up to 4,
   * packed (transposed, zero-padded) only when the operand is not already so; C written in place when
   * N % 4 == 0, else through an (M, Np) scratch. Rows are split over the pool in multiples of 6 (the
   * register tile height). False, before touching out, when the packs do not fit in the wasm memory.
   */
  private async matmulSimd(
    arena: WasmArena,
    out: Float32Array,
    a: FloatArray,
    b: FloatArray,
    M: number,
    N: number,
    K: number,
    opts: MatmulOptions<CpuBuffer>,
  ): Promise<boolean> {
    const Np = Math.ceil(N / 4) * 4;
    const transA = opts.transA ?? false;
    const transB = opts.transB ?? false;
    const threads = this.pool?.threads ?? 1;
    let aPtr = !transA ? arena.ptr(a) : -1;
    let bPtr = !transB && Np === N ? arena.ptr(b) : -1;
    // Every scratch first, so that a call that cannot take this path leaves everything as it was.
    const sA = aPtr < 0 ? this.simdScratch('A', M * K) : null;
    const sB = bPtr < 0 ? this.simdScratch('B', K * Np) : null;
    const sC = Np === N ? null : this.simdScratch('C', M * Np);
    const sP = this.simdScratch('P', threads * GEMM_PACK_FLOATS);
    if ((aPtr < 0 && !sA) || (bPtr < 0 && !sB) || (Np !== N && !sC) || !sP) return false;
    if (sA) {
      if (transA) transposeInto(sA, a, K, M);
      else sA.set(a.subarray(0, M * K));
      aPtr = sA.byteOffset;
    }
    if (sB) {
      packKN(sB, b, K, N, Np, transB);
      bPtr = sB.byteOffset;
    }
    const cOut = sC ?? out;
    const mode = opts.accumulate ? 2 : opts.bias ? 1 : 0;
    if (mode === 2 && cOut !== out)
      for (let i = 0; i < M; i++) cOut.set(out.subarray(i * N, i * N + N), i * Np);
    const packs = sP.byteOffset;
    const job = (m0: number, m1: number, t: number): GemmJob => ({
      gemm: true,
      c: cOut.byteOffset,
      ldc: Np * 4,
      a: aPtr,
      lda: K * 4,
      b: bPtr,
      ldb: Np * 4,
      bias: opts.bias ? arena.ptr(opts.bias as Float32Array) : 0,
      N: Np,
      K,
      m0,
      m1,
      mode,
      pack: packs + t * GEMM_PACK_FLOATS * 4,
    });
    if (this.pool === null || M * N * K < MIN_PARALLEL_MACS || M < 8 * threads) {
      gemmRows(this.flash!, arena.memory, job(0, M, 0));
    } else {
      const jobs: GemmJob[] = [];
      const per = Math.ceil(M / threads / 6) * 6;
      for (let m0 = 0, t = 0; m0 < M; m0 += per, t++) jobs.push(job(m0, Math.min(M, m0 + per), t));
      await this.pool.run(jobs);
    }
    if (cOut !== out) for (let i = 0; i < M; i++) out.set(cOut.subarray(i * Np, i * Np + N), i * N);
    return true;
  }

  biasBackward(dbias: CpuBuffer, dout: CpuBuffer, M: number, N: number): void {
    this.live();
    size('biasBackward', 'M', M);
    size('biasBackward', 'N', N);
    const db = floatBuf('biasBackward', 'dbias', dbias, N);
    const g = floatBuf('biasBackward', 'dout', dout, M * N);
    for (let i = 0; i < M; i++) {
      const o = i * N;
      for (let j = 0; j < N; j++) db[j] += g[o + j]!;
    }
  }

  embeddingForward(
    out: CpuBuffer,
    tokens: CpuBuffer,
    wte: CpuBuffer,
    wpe: CpuBuffer,
    B: number,
    T: number,
    C: number,
  ): void {
    const e = this.embeddingArgs('embeddingForward', ['wte', wte], ['wpe', wpe], tokens, B, T, C);
    embeddingForward(
      floatBuf('embeddingForward', 'out', out, B * T * C),
      e.tok,
      e.table,
      e.pos,
      B,
      T,
      C,
    );
  }

  embeddingBackward(
    dwte: CpuBuffer,
    dwpe: CpuBuffer,
    dout: CpuBuffer,
    tokens: CpuBuffer,
    B: number,
    T: number,
    C: number,
  ): void {
    const e = this.embeddingArgs(
      'embeddingBackward',
      ['dwte', dwte],
      ['dwpe', dwpe],
      tokens,
      B,
      T,
      C,
    );
    embeddingBackward(
      e.table,
      e.pos,
      floatBuf('embeddingBackward', 'dout', dout, B * T * C),
      e.tok,
      B,
      T,
      C,
    );
  }

  /** The checked arguments of both embedding ops: sizes, the (V, C) token and (>= T, C) position tables, tokens. */
  private embeddingArgs(
    op: string,
    [tableName, table]: [string, CpuBuffer],
    [posName, pos]: [string, CpuBuffer],
    tokens: CpuBuffer,
    B: number,
    T: number,
    C: number,
  ): { tok: Int32Array; table: CpuFloatBuffer; pos: CpuFloatBuffer } {
    this.live();
    size(op, 'B', B);
    size(op, 'T', T);
    size(op, 'C', C);
    const t = floatAny(op, tableName, table);
    const p = floatAny(op, posName, pos);
    if (p.length < T * C)
      throw new OpsInputError(`${op} ${posName}.length`, `>= T * C = ${T * C}`, p.length);
    return { tok: this.tokens(op, tokens, B * T, t, C), table: t, pos: p };
  }

  /** tokens (n) int32, each in [0, V) where V = table.length / C. */
  private tokens(
    op: string,
    tokens: CpuBuffer,
    n: number,
    table: CpuBuffer,
    C: number,
  ): Int32Array {
    const tok = intBuf(op, 'tokens', tokens, n);
    if (C > 0 && table.length % C !== 0) {
      throw new OpsInputError(`${op} wte.length`, `a multiple of C = ${C} (V rows)`, table.length);
    }
    const V = C > 0 ? table.length / C : 0;
    for (let i = 0; i < n; i++) {
      const t = tok[i]!;
      if (!(t >= 0 && t < V))
        throw new OpsInputError(`${op} tokens[${i}]`, `a token id in [0, ${V})`, t);
    }
    return tok;
  }

  layernormForward(
    out: CpuBuffer,
    mean: CpuBuffer,
    rstd: CpuBuffer,
    inp: CpuBuffer,
    w: CpuBuffer,
    b: CpuBuffer,
    N: number,
    C: number,
  ): void {
    this.live();
    size('layernormForward', 'N', N);
    size('layernormForward', 'C', C);
    const a = [
      floatBuf('layernormForward', 'out', out, N * C),
      floatBuf('layernormForward', 'mean', mean, N),
      floatBuf('layernormForward', 'rstd', rstd, N),
      floatBuf('layernormForward', 'inp', inp, N * C),
      floatBuf('layernormForward', 'w', w, C),
      floatBuf('layernormForward', 'b', b, C),
    ] as const;
    const p = this.simdOperands(...a);
    if (p) {
      const [o, m, r, x, wp, bp] = p as [number, number, number, number, number, number];
      layernormForwardSimd(this.opsSimd!, { out: o, mean: m, rstd: r, inp: x, w: wp, b: bp }, N, C);
    } else layernormForward(...a, N, C);
  }

  layernormBackward(
    dinp: CpuBuffer,
    dw: CpuBuffer,
    db: CpuBuffer,
    dout: CpuBuffer,
    inp: CpuBuffer,
    w: CpuBuffer,
    mean: CpuBuffer,
    rstd: CpuBuffer,
    N: number,
    C: number,
  ): void {
    this.live();
    size('layernormBackward', 'N', N);
    size('layernormBackward', 'C', C);
    const a = [
      floatBuf('layernormBackward', 'dinp', dinp, N * C),
      floatBuf('layernormBackward', 'dw', dw, C),
      floatBuf('layernormBackward', 'db', db, C),
      floatBuf('layernormBackward', 'dout', dout, N * C),
      floatBuf('layernormBackward', 'inp', inp, N * C),
      floatBuf('layernormBackward', 'w', w, C),
      floatBuf('layernormBackward', 'mean', mean, N),
      floatBuf('layernormBackward', 'rstd', rstd, N),
    ] as const;
    const p = this.simdOperands(...a);
    if (p) {
      const [dx, dwp, dbp, go, x, wp, m, r] = p as [
        number,
        number,
        number,
        number,
        number,
        number,
        number,
        number,
      ];
      this.opsSimd!.layernormBackward(dx, dwp, dbp, go, x, wp, m, r, N, C);
    } else layernormBackward(...a, N, C);
  }

  geluForward(out: CpuBuffer, inp: CpuBuffer, n: number): void {
    this.live();
    size('geluForward', 'n', n);
    const o = floatBuf('geluForward', 'out', out, n);
    const x = floatBuf('geluForward', 'inp', inp, n);
    const p = this.simdOperands(o, x);
    if (p) this.opsSimd!.geluForward(p[0]!, p[1]!, n);
    else geluForward(o, x, n);
  }

  geluBackward(dinp: CpuBuffer, inp: CpuBuffer, dout: CpuBuffer, n: number): void {
    this.live();
    size('geluBackward', 'n', n);
    const dx = floatBuf('geluBackward', 'dinp', dinp, n);
    const x = floatBuf('geluBackward', 'inp', inp, n);
    const go = floatBuf('geluBackward', 'dout', dout, n);
    const p = this.simdOperands(dx, x, go);
    if (p) this.opsSimd!.geluBackward(p[0]!, p[1]!, p[2]!, n);
    else geluBackward(dx, x, go, n);
  }

  add(out: CpuBuffer, a: CpuBuffer, b: CpuBuffer, n: number): void {
    this.live();
    size('add', 'n', n);
    const o = floatBuf('add', 'out', out, n);
    const x = floatBuf('add', 'a', a, n);
    const y = floatBuf('add', 'b', b, n);
    for (let i = 0; i < n; i++) o[i] = x[i]! + y[i]!;
  }

  softmaxCrossEntropy(
    losses: CpuBuffer,
    dlogits: CpuBuffer | null,
    logits: CpuBuffer,
    targets: CpuBuffer,
    N: number,
    V: number,
    dlossScale: number,
    VpArg?: number,
  ): void {
    this.live();
    size('softmaxCrossEntropy', 'N', N);
    size('softmaxCrossEntropy', 'V', V);
    const Vp = xentRowStride('softmaxCrossEntropy', V, VpArg);
    if (!Number.isFinite(dlossScale))
      throw new OpsInputError('softmaxCrossEntropy dlossScale', 'a finite number', dlossScale);
    const l = floatBuf('softmaxCrossEntropy', 'losses', losses, N);
    const x = floatBuf('softmaxCrossEntropy', 'logits', logits, N * Vp);
    const d = dlogits === null ? null : floatBuf('softmaxCrossEntropy', 'dlogits', dlogits, N * Vp);
    const t = intBuf('softmaxCrossEntropy', 'targets', targets, N);
    for (let i = 0; i < N; i++) {
      if (t[i]! >= V)
        throw new OpsInputError(
          `softmaxCrossEntropy targets[${i}]`,
          `< V = ${V} (or < 0 to ignore)`,
          t[i],
        );
    }
    const p = d === null ? this.simdOperands(l, x) : this.simdOperands(l, x, d);
    if (p) {
      const f32 = new Float32Array(this.arena!.memory.buffer);
      softmaxCrossEntropySimd(
        this.opsSimd!,
        f32,
        p[0]!,
        p[2] ?? -1,
        p[1]!,
        t,
        N,
        V,
        dlossScale,
        Vp,
      );
    } else softmaxCrossEntropy(l, d, x, t, N, V, dlossScale, Vp);
  }

  async sum(x: CpuBuffer): Promise<number> {
    const a = this.bufferOf('sum', 'x', x);
    let s = 0;
    for (let i = 0; i < a.length; i++) s += a[i]!;
    return s;
  }

  async sumSquares(x: CpuBuffer): Promise<number> {
    const a = this.bufferOf('sumSquares', 'x', x);
    let s = 0;
    for (let i = 0; i < a.length; i++) s += a[i]! * a[i]!;
    return s;
  }

  scale(x: CpuBuffer, s: number): void {
    this.live();
    const a = floatAny('scale', 'x', x);
    if (!Number.isFinite(s)) throw new OpsInputError('scale s', 'a finite number', s);
    for (let i = 0; i < a.length; i++) a[i] *= s;
  }

  adamw(params: CpuBuffer, grads: CpuBuffer, m: CpuBuffer, v: CpuBuffer, h: AdamWStep): void {
    this.live();
    const n = this.bufferOf('adamw', 'params', params).length;
    const p = floatBuf('adamw', 'params', params, n);
    const hp = h as unknown as Record<string, unknown>;
    for (const key of ['lr', 'beta1', 'beta2', 'eps', 'weightDecay', 't']) {
      if (typeof hp[key] !== 'number' || !Number.isFinite(hp[key]))
        throw new OpsInputError(`adamw h.${key}`, 'a finite number', describe(hp[key]));
    }
    if (!Number.isInteger(h.t) || h.t < 1)
      throw new OpsInputError('adamw h.t', 'an integer >= 1 (1-based step)', h.t);
    const g = floatBuf('adamw', 'grads', grads, n);
    const mb = floatBuf('adamw', 'm', m, n);
    const vb = floatBuf('adamw', 'v', v, n);
    const q = this.simdOperands(p, g, mb, vb);
    if (q) adamwSimd(this.opsSimd!, { params: q[0]!, grads: q[1]!, m: q[2]!, v: q[3]! }, n, h);
    else adamwUpdate(p, g, mb, vb, 0, n, h);
  }

  // ---- attention ----

  attentionForward(
    args: DeviceAttentionForwardArgs<CpuBuffer>,
    opts?: AttentionOptions,
  ): Promise<void> {
    this.live();
    return this.attention.forward(args, opts);
  }

  attentionBackward(
    args: DeviceAttentionBackwardArgs<CpuBuffer>,
    opts?: AttentionOptions,
  ): Promise<void> {
    this.live();
    return this.attention.backward(args, opts);
  }

  // ---- inference attention (attention/kv-cache.ts: KV cache, split-KV, combine, varlen) ----

  private inferenceImpl: CpuInferenceAttention | null = null;
  private get inference(): CpuInferenceAttention {
    this.live();
    return (this.inferenceImpl ??= new CpuInferenceAttention(this.threads, {
      forward: (a, o) => this.attention.forward(a, o),
      alloc: (n, dtype) => this.alloc(n, dtype),
    }));
  }

  get kvCacheCapabilities(): KvCacheCapabilities {
    return this.inference.capabilities;
  }

  attentionWithKvCache(
    args: KvCacheAttentionArgs<CpuBuffer>,
    opts?: KvCacheOptions,
  ): Promise<void> {
    return this.inference.withKvCache(args, opts);
  }

  attentionCombine(args: AttentionCombineArgs<CpuBuffer>): Promise<void> {
    return this.inference.combine(args);
  }

  varlenAttentionForward(
    args: VarlenForwardArgs<CpuBuffer>,
    opts?: AttentionOptions,
  ): Promise<void> {
    return this.inference.varlenForward(args, opts);
  }

  varlenAttentionBackward(
    args: VarlenBackwardArgs<CpuBuffer>,
    opts?: AttentionOptions,
  ): Promise<void> {
    return this.inference.varlenBackward(args, opts);
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    await this.pool?.dispose();
    await this.attention.dispose();
    await this.inferenceImpl?.dispose();
  }
}
