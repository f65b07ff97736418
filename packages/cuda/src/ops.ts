/**
 * createCudaOps(): core's `Ops<CudaBuffer>` on an NVIDIA GPU, the ops a GPT-2 training step needs (llm.c's list).
 *
 * It is a CudaDevice (memory, casts, the strided FlashAttention forward/backward) plus the model's ops:
 *   - matmul through cuBLASLt, loaded at run time (native/addon/cublaslt.cpp): float32 in/out with
 *     CUBLAS_COMPUTE_32F (no TF32), 16-bit inputs with float32 accumulation and a 16-bit or float32 out; the
 *     bias through cuBLASLt's BIAS epilogue; accumulate as beta = 1.
 *   - our kernels (native/ops/*.cu, one per file): embedding, LayerNorm, GELU, residual add, fused softmax
 *     cross-entropy, bias backward, sum / sum of squares, scale, fused AdamW. Every op computes in float32;
 *     16-bit buffers are storage (one rounding per output), so `computeDType(d)` is d.
 *   - attention (CudaDevice's): float32 buffers run on the float32 FMA kernels by default (`float32ComputeDType`
 *     'float32', issue #10), so computeDType('float32') is float32 for every op; with 'bfloat16' / 'float16' the
 *     float32 attention runs on the tensor cores in that dtype and computeDType('float32') says so.
 *
 * Every call is checked in full before anything is enqueued (OpsInputError naming the argument, as
 * `${op} ${argument}`), then enqueued on the device's one stream in program order; only `sum`, `sumSquares` and
 * `download` wait for the device. CUDA and cuBLASLt errors become BackendExecutionError, out of memory
 * BackendOutOfMemoryError. Reductions (bias backward, LayerNorm's dw/db, the embedding backward, sum) are
 * deterministic: fixed chunking and a fixed order, no float atomics.
 *
 * Opening order (each step throws a BackendUnavailableError saying what is missing): the addon
 * (CudaUnavailableError), then cuBLASLt (CublasLtUnavailableError, dlopen only, so it is reported the same with
 * or without a GPU), then the GPU itself (CudaUnavailableError).
 */
import {
  BackendExecutionError,
  BackendOutOfMemoryError,
  BackendUnavailableError,
  OpsInputError,
  bufferDTypeBytes,
  captureRefusal,
  checkAdamWFromScalars,
  describe,
  matmulEpilogue,
  matmulGeluByParts,
  xentRowStride,
  type AdamWFromStep,
  type AdamWStep,
  type BufferDType,
  type DeviceStepOps,
  type HostArray,
  type MatmulOptions,
  type Ops,
  type OpsGraph,
  type OpsGraphs,
} from '@flashattn/core';
import { cudaUnavailableReason } from './availability.js';
import { checkFloat32Options, openCudaDevice } from './backend.js';
import { bufferState, type CudaBuffer } from './cuda-buffer.js';
import { CudaDevice, type CudaDeviceOptions } from './device.js';
import { CudaUnavailableError, mapCudaError } from './errors.js';
import { loadAddon, type CudaAddon, type DeviceInfo, type DevicePtr } from './native.js';
import { deviceQueue, type SerialQueue } from './queue.js';

export interface CudaOpsOptions extends CudaDeviceOptions {
  /**
   * Path of libcublasLt.so to try first (then FLASHATTN_CUBLASLT_PATH, then libcublasLt.so.13 / .so.12 /
   * libcublasLt.so on the loader's path, then $CUDA_HOME/lib64 and /usr/local/cuda/lib64). E.g. a PyTorch venv's
   * site-packages/nvidia/cublas/lib/libcublasLt.so.13.
   */
  cublasLtPath?: string;
  /**
   * Run the matmul GELU epilogues (`geluPre` / `dgeluPre`) as cuBLASLt's GELU_AUX_BIAS / DGELU epilogues (one
   * kernel) where they apply; false: the matmul and the GELU kernel in turn. Default true: on the H100
   * (2026-12-07 16:05 UTC) the ops conformance suite's GELU cases pass both ways (39 / 39), compute-sanitizer
   * memcheck of a GPT-2 step finds 0 errors, and GPT-2 124M (B 16, T 1024, bf16) trains in 40.60 ms/step fused
   * against 42.27 unfused (BENCHMARKS.md).
   */
  fusedGelu?: boolean;
}

/** cuBLASLt (the matmul library) could not be loaded: `tried` lists each path and why it failed. */
export class CublasLtUnavailableError extends BackendUnavailableError {
  readonly tried: readonly string[];
  constructor(tried: readonly string[]) {
    super(
      'cuda',
      `cuBLASLt (libcublasLt.so, needed by createCudaOps for matmul; CUDA attention works without it) could not be ` +
        `loaded. Install the CUDA toolkit's cuBLAS or the nvidia-cublas wheel and pass its path as ` +
        `createCudaOps({ cublasLtPath }) or FLASHATTN_CUBLASLT_PATH. Tried: ${tried.join('; ')}`,
    );
    this.tried = tried;
  }
}

/** The addon's training-op entry points (native/addon/ops.cpp). Pointers are bigints; dtype ids 0/1/2. */
interface OpsAddon {
  opsCublasLtLoad(
    path: string,
  ): { loaded: true; path: string; version: number } | { loaded: false; tried: string[] };
  opsMatmul(device: number, a: Record<string, unknown>): void;
  /** true: enqueued with cuBLASLt's GELU epilogue; false: it does not apply, nothing enqueued (older addons lack it). */
  opsMatmulGelu?(device: number, a: Record<string, unknown>): boolean;
  opsEmbeddingForward(device: number, a: Record<string, unknown>): void;
  opsEmbeddingBackward(device: number, a: Record<string, unknown>): void;
  opsLayernormForward(device: number, a: Record<string, unknown>): void;
  opsLayernormBackward(device: number, a: Record<string, unknown>): void;
  opsGeluForward(device: number, a: Record<string, unknown>): void;
  opsGeluBackward(device: number, a: Record<string, unknown>): void;
  opsAdd(device: number, a: Record<string, unknown>): void;
  opsSoftmaxCrossEntropy(device: number, a: Record<string, unknown>): void;
  opsBiasBackward(device: number, a: Record<string, unknown>): void;
  opsReduceSum(device: number, a: Record<string, unknown>): Promise<number[]>;
  opsScale(device: number, a: Record<string, unknown>): void;
  opsAdamW(device: number, a: Record<string, unknown>): void;
  opsReduceSumTo?(device: number, a: Record<string, unknown>): void;
  opsAdamWFrom?(device: number, a: Record<string, unknown>): void;
  opsRelease(device: number): void;
  // CUDA graphs of the device's stream (native/addon/graphs.cpp); absent in addons built before them
  graphBegin?(device: number): void;
  graphEnd?(device: number): { id: number; nodes: number };
  graphAbort?(device: number): void;
  graphLaunch?(device: number, id: number): void;
  graphFree?(device: number, id: number): void;
}

/** A CUDA graph of a device's stream (CudaOps.captureGraph). */
class CudaGraph implements OpsGraph {
  freed = false;
  constructor(
    readonly device: number,
    readonly id: number,
    readonly nodes: number,
  ) {}
}

/** Live CudaOps per device: the last one disposed frees the device's cuBLASLt handle and workspace. */
const liveOps = new Map<number, number>();

const FLOAT_ID: Partial<Record<BufferDType, number>> = { float32: 0, float16: 1, bfloat16: 2 };
/** The largest C of embeddingBackward (its row accumulator is C floats of shared memory). */
const MAX_EMBEDDING_C = 12288;

type State = NonNullable<ReturnType<typeof bufferState>>;

/** An addon error (CUDA or cuBLASLt) as core's typed errors. */
function mapOpsError(e: unknown, backend: string): Error {
  const err = e as { cublasStatus?: string } & Error;
  if (err instanceof Error && typeof err.cublasStatus === 'string') {
    return err.cublasStatus === 'CUBLAS_STATUS_ALLOC_FAILED'
      ? new BackendOutOfMemoryError(backend, err.message, { cause: e })
      : new BackendExecutionError(backend, err.message, { cause: e });
  }
  return mapCudaError(e, backend);
}

function sizeArg(op: string, name: string, x: unknown): number {
  if (typeof x !== 'number' || !Number.isSafeInteger(x) || x < 0)
    throw new OpsInputError(`${op} ${name}`, 'a non-negative integer', describe(x));
  return x;
}

export class CudaOps
  extends CudaDevice
  implements Ops<CudaBuffer>, DeviceStepOps<CudaBuffer>, OpsGraphs
{
  /** e.g. 'cuda:0 (NVIDIA H100 80GB HBM3, cuBLASLt 130100)' */
  override readonly name: string;
  /** Where cuBLASLt was loaded from and its version (cublasLtGetVersion()). */
  readonly cublasLt: { readonly path: string; readonly version: number };
  /**
   * GPT-2 pads its vocabulary to a multiple of 64 here (50257 -> 50304, as llm.c): cuBLASLt's Hopper kernels need
   * 16-byte aligned rows, and on the H100 the head's three bf16 matmuls at N or K = 50257 ran far below their
   * 680-775 TFLOP/s at 50304 (BENCHMARKS.md, "GPT-2 training vs PyTorch"). 64 (not 8) keeps whole tiles.
   */
  readonly rowMultiple = 64;
  readonly #addon: CudaAddon & OpsAddon;
  readonly #queue: SerialQueue;
  #opsDisposed = false;
  readonly #fusedGelu: boolean;
  /** A captureGraph is recording: calls that wait, move host data or allocate are refused (#refuse). */
  #capturing = false;
  #refused: Error | null = null;

  /** @internal Use createCudaOps(). */
  constructor(
    addon: CudaAddon & OpsAddon,
    device: number,
    info: DeviceInfo,
    opts: CudaOpsOptions,
    lt: { path: string; version: number },
  ) {
    super(addon, device, info, {
      ...opts,
      float32ComputeDType: opts.float32ComputeDType ?? 'float32',
    });
    this.#addon = addon;
    this.#queue = deviceQueue(device);
    this.cublasLt = lt;
    this.#fusedGelu = opts.fusedGelu ?? true;
    liveOps.set(device, (liveOps.get(device) ?? 0) + 1);
    this.name = `cuda:${device} (${info.name}, cuBLASLt ${lt.version})`;
  }

  /**
   * Buffers compute in their own dtype's precision with float32 accumulation (float32: float32, no TF32), except
   * float32 attention with a 16-bit float32ComputeDType: the weakest op of a dtype sets what is claimed for it.
   */
  computeDType(dtype: BufferDType): BufferDType {
    return dtype === 'float32' ? this.float32ComputeDType : dtype;
  }

  // ---- plumbing ------------------------------------------------------------------------------------------

  #live(op: string): void {
    if (this.#opsDisposed) throw new BackendExecutionError(this.name, `${op} after dispose()`);
  }

  /** Throws (and abandons the capture) when a graph is being captured: `op` may not be recorded. */
  #refuse(op: string): void {
    if (this.#capturing) throw (this.#refused = captureRefusal(op));
  }

  /** Enqueue after every earlier call on the device; addon errors become typed errors. */
  #run<R>(task: () => R | Promise<R>): Promise<R> {
    return this.#queue.run(async () => {
      try {
        return await task();
      } catch (e) {
        throw mapOpsError(e, this.name);
      }
    });
  }

  /** A live CudaBuffer of this device, of exactly `n` elements when n is given. */
  #buf(op: string, name: string, buf: unknown, n?: number): State {
    const s = bufferState(buf);
    if (!s)
      throw new OpsInputError(`${op} ${name}`, 'a CudaBuffer (from alloc or view)', describe(buf));
    if (s.allocation.device !== this.device)
      throw new OpsInputError(
        `${op} ${name}`,
        `a buffer on cuda:${this.device}`,
        `one on cuda:${s.allocation.device}`,
      );
    if (s.allocation.freed)
      throw new OpsInputError(`${op} ${name}`, 'a live CudaBuffer', 'a freed one');
    if (n !== undefined && s.length !== n)
      throw new OpsInputError(`${op} ${name}.length`, String(n), s.length);
    return s;
  }

  /** A float buffer (float32, float16 or bfloat16), optionally of the given dtype. */
  #float(
    op: string,
    name: string,
    buf: unknown,
    n?: number,
    dtype?: BufferDType,
    like?: string,
  ): State {
    const s = this.#buf(op, name, buf, n);
    if (FLOAT_ID[s.dtype] === undefined)
      throw new OpsInputError(
        `${op} ${name}`,
        'a float32, float16 or bfloat16 buffer',
        `a ${s.dtype} buffer`,
      );
    if (dtype !== undefined && s.dtype !== dtype)
      throw new OpsInputError(
        `${op} ${name}.dtype`,
        `${dtype}${like ? ` like ${like}` : ''}`,
        s.dtype,
      );
    return s;
  }

  #int32(op: string, name: string, buf: unknown, n: number): State {
    const s = this.#buf(op, name, buf, n);
    if (s.dtype !== 'int32')
      throw new OpsInputError(`${op} ${name}`, 'an int32 buffer', `a ${s.dtype} buffer`);
    return s;
  }

  #ptr(s: State): DevicePtr {
    return s.allocation.ptr + BigInt(s.offset * bufferDTypeBytes(s.dtype));
  }

  #id(s: State): number {
    return FLOAT_ID[s.dtype]!;
  }

  // ---- the model's ops -----------------------------------------------------------------------------------

  async matmul(
    out: CudaBuffer,
    a: CudaBuffer,
    b: CudaBuffer,
    M: number,
    N: number,
    K: number,
    opts: MatmulOptions<CudaBuffer> = {},
  ): Promise<void> {
    const op = 'matmul';
    this.#live(op);
    sizeArg(op, 'M', M);
    sizeArg(op, 'N', N);
    sizeArg(op, 'K', K);
    if (opts === null || typeof opts !== 'object')
      throw new OpsInputError(`${op} opts`, 'an object', describe(opts));
    const so = this.#float(op, 'out', out, M * N);
    const sa = this.#float(op, 'a', a, M * K);
    const sb = this.#float(op, 'b', b, K * N, sa.dtype, 'a');
    if (so.dtype !== sa.dtype && so.dtype !== 'float32')
      throw new OpsInputError(`${op} out.dtype`, `${sa.dtype} (like a) or float32`, so.dtype);
    const epilogue = matmulEpilogue(op, opts);
    const sbias =
      opts.bias === undefined ? null : this.#float(op, 'opts.bias', opts.bias, N, so.dtype, 'out');
    if (epilogue === 'gelu' || epilogue === 'dgelu') {
      // cuBLASLt's GELU_AUX_BIAS / DGELU epilogue with fusedGelu where it applies, else the matmul and the GELU
      // kernel in turn on the one stream.
      const preBuf = (opts.geluPre ?? opts.dgeluPre)!;
      const sp = this.#float(op, `opts.${epilogue}Pre`, preBuf, M * N, so.dtype, 'out');
      const addon = this.#addon;
      if (this.#fusedGelu && addon.opsMatmulGelu && so.dtype === sa.dtype) {
        const fused = await this.#run(() =>
          addon.opsMatmulGelu!(this.device, {
            out: this.#ptr(so),
            a: this.#ptr(sa),
            b: this.#ptr(sb),
            bias: sbias ? this.#ptr(sbias) : null,
            pre: this.#ptr(sp),
            abDtype: this.#id(sa),
            outDtype: this.#id(so),
            M,
            N,
            K,
            transA: !!opts.transA,
            transB: !!opts.transB,
            gelu: epilogue === 'gelu' ? 1 : 2,
          }),
        );
        if (fused) return;
      }
      return matmulGeluByParts(this, epilogue, out, a, b, M, N, K, opts);
    }
    return this.#run(() =>
      this.#addon.opsMatmul(this.device, {
        out: this.#ptr(so),
        a: this.#ptr(sa),
        b: this.#ptr(sb),
        bias: sbias ? this.#ptr(sbias) : null,
        abDtype: this.#id(sa),
        outDtype: this.#id(so),
        M,
        N,
        K,
        transA: !!opts.transA,
        transB: !!opts.transB,
        accumulate: !!opts.accumulate,
      }),
    );
  }

  async biasBackward(dbias: CudaBuffer, dout: CudaBuffer, M: number, N: number): Promise<void> {
    const op = 'biasBackward';
    this.#live(op);
    sizeArg(op, 'M', M);
    sizeArg(op, 'N', N);
    const sd = this.#float(op, 'dbias', dbias, N);
    const so = this.#float(op, 'dout', dout, M * N, sd.dtype, 'dbias');
    if (M * N === 0) return;
    return this.#run(() =>
      this.#addon.opsBiasBackward(this.device, {
        dtype: this.#id(sd),
        dbias: this.#ptr(sd),
        dout: this.#ptr(so),
        M,
        N,
      }),
    );
  }

  /** wte (V, C) with V = wte.length / C; wpe at least T rows. */
  #embeddingTables(
    op: string,
    wteName: string,
    wte: unknown,
    wpeName: string,
    wpe: unknown,
    T: number,
    C: number,
    dtype: BufferDType,
  ) {
    const st = this.#float(op, wteName, wte, undefined, dtype, 'out');
    const sp = this.#float(op, wpeName, wpe, undefined, dtype, 'out');
    if (C > 0 && st.length % C !== 0)
      throw new OpsInputError(
        `${op} ${wteName}.length`,
        `a multiple of C = ${C} (V rows)`,
        st.length,
      );
    if (sp.length < T * C)
      throw new OpsInputError(`${op} ${wpeName}.length`, `>= T * C = ${T * C}`, sp.length);
    return { st, sp, V: C > 0 ? st.length / C : 0 };
  }

  /** Tokens outside [0, V) are found on the device only: their rows of out become NaN. */
  async embeddingForward(
    out: CudaBuffer,
    tokens: CudaBuffer,
    wte: CudaBuffer,
    wpe: CudaBuffer,
    B: number,
    T: number,
    C: number,
  ): Promise<void> {
    const op = 'embeddingForward';
    this.#live(op);
    sizeArg(op, 'B', B);
    sizeArg(op, 'T', T);
    sizeArg(op, 'C', C);
    const so = this.#float(op, 'out', out, B * T * C);
    const sk = this.#int32(op, 'tokens', tokens, B * T);
    const { st, sp, V } = this.#embeddingTables(op, 'wte', wte, 'wpe', wpe, T, C, so.dtype);
    if (B * T * C === 0) return;
    return this.#run(() =>
      this.#addon.opsEmbeddingForward(this.device, {
        dtype: this.#id(so),
        out: this.#ptr(so),
        tokens: this.#ptr(sk),
        wte: this.#ptr(st),
        wpe: this.#ptr(sp),
        B,
        T,
        C,
        V,
      }),
    );
  }

  /** Deterministic (no atomics): see native/ops/embedding_backward_wte.cu. Tokens outside [0, V) add nothing. */
  async embeddingBackward(
    dwte: CudaBuffer,
    dwpe: CudaBuffer,
    dout: CudaBuffer,
    tokens: CudaBuffer,
    B: number,
    T: number,
    C: number,
  ): Promise<void> {
    const op = 'embeddingBackward';
    this.#live(op);
    sizeArg(op, 'B', B);
    sizeArg(op, 'T', T);
    sizeArg(op, 'C', C);
    if (C > MAX_EMBEDDING_C) throw new OpsInputError(`${op} C`, `at most ${MAX_EMBEDDING_C}`, C);
    const sd = this.#float(op, 'dout', dout, B * T * C);
    const sk = this.#int32(op, 'tokens', tokens, B * T);
    const { st, sp, V } = this.#embeddingTables(op, 'dwte', dwte, 'dwpe', dwpe, T, C, sd.dtype);
    if (B * T * C === 0) return;
    return this.#run(() =>
      this.#addon.opsEmbeddingBackward(this.device, {
        dtype: this.#id(sd),
        dwte: this.#ptr(st),
        dwpe: this.#ptr(sp),
        dout: this.#ptr(sd),
        tokens: this.#ptr(sk),
        B,
        T,
        C,
        V,
      }),
    );
  }

  async layernormForward(
    out: CudaBuffer,
    mean: CudaBuffer,
    rstd: CudaBuffer,
    inp: CudaBuffer,
    w: CudaBuffer,
    b: CudaBuffer,
    N: number,
    C: number,
  ): Promise<void> {
    const op = 'layernormForward';
    this.#live(op);
    sizeArg(op, 'N', N);
    sizeArg(op, 'C', C);
    const so = this.#float(op, 'out', out, N * C);
    const sm = this.#float(op, 'mean', mean, N, 'float32');
    const sr = this.#float(op, 'rstd', rstd, N, 'float32');
    const si = this.#float(op, 'inp', inp, N * C, so.dtype, 'out');
    const sw = this.#float(op, 'w', w, C, so.dtype, 'out');
    const sb = this.#float(op, 'b', b, C, so.dtype, 'out');
    if (N === 0) return;
    return this.#run(() =>
      this.#addon.opsLayernormForward(this.device, {
        dtype: this.#id(so),
        out: this.#ptr(so),
        mean: this.#ptr(sm),
        rstd: this.#ptr(sr),
        inp: this.#ptr(si),
        w: this.#ptr(sw),
        b: this.#ptr(sb),
        N,
        C,
      }),
    );
  }

  async layernormBackward(
    dinp: CudaBuffer,
    dw: CudaBuffer,
    db: CudaBuffer,
    dout: CudaBuffer,
    inp: CudaBuffer,
    w: CudaBuffer,
    mean: CudaBuffer,
    rstd: CudaBuffer,
    N: number,
    C: number,
  ): Promise<void> {
    const op = 'layernormBackward';
    this.#live(op);
    sizeArg(op, 'N', N);
    sizeArg(op, 'C', C);
    const sdi = this.#float(op, 'dinp', dinp, N * C);
    const dt = sdi.dtype;
    const sdw = this.#float(op, 'dw', dw, C, dt, 'dinp');
    const sdb = this.#float(op, 'db', db, C, dt, 'dinp');
    const sdo = this.#float(op, 'dout', dout, N * C, dt, 'dinp');
    const si = this.#float(op, 'inp', inp, N * C, dt, 'dinp');
    const sw = this.#float(op, 'w', w, C, dt, 'dinp');
    const sm = this.#float(op, 'mean', mean, N, 'float32');
    const sr = this.#float(op, 'rstd', rstd, N, 'float32');
    if (N * C === 0) return;
    return this.#run(() =>
      this.#addon.opsLayernormBackward(this.device, {
        dtype: this.#id(sdi),
        dinp: this.#ptr(sdi),
        dw: this.#ptr(sdw),
        db: this.#ptr(sdb),
        dout: this.#ptr(sdo),
        inp: this.#ptr(si),
        w: this.#ptr(sw),
        mean: this.#ptr(sm),
        rstd: this.#ptr(sr),
        N,
        C,
      }),
    );
  }

  async geluForward(out: CudaBuffer, inp: CudaBuffer, n: number): Promise<void> {
    const op = 'geluForward';
    this.#live(op);
    sizeArg(op, 'n', n);
    const so = this.#float(op, 'out', out, n);
    const si = this.#float(op, 'inp', inp, n, so.dtype, 'out');
    if (n === 0) return;
    return this.#run(() =>
      this.#addon.opsGeluForward(this.device, {
        dtype: this.#id(so),
        out: this.#ptr(so),
        inp: this.#ptr(si),
        n,
      }),
    );
  }

  async geluBackward(
    dinp: CudaBuffer,
    inp: CudaBuffer,
    dout: CudaBuffer,
    n: number,
  ): Promise<void> {
    const op = 'geluBackward';
    this.#live(op);
    sizeArg(op, 'n', n);
    const sd = this.#float(op, 'dinp', dinp, n);
    const si = this.#float(op, 'inp', inp, n, sd.dtype, 'dinp');
    const so = this.#float(op, 'dout', dout, n, sd.dtype, 'dinp');
    if (n === 0) return;
    return this.#run(() =>
      this.#addon.opsGeluBackward(this.device, {
        dtype: this.#id(sd),
        dinp: this.#ptr(sd),
        inp: this.#ptr(si),
        dout: this.#ptr(so),
        n,
      }),
    );
  }

  async add(out: CudaBuffer, a: CudaBuffer, b: CudaBuffer, n: number): Promise<void> {
    const op = 'add';
    this.#live(op);
    sizeArg(op, 'n', n);
    const so = this.#float(op, 'out', out, n);
    const sa = this.#float(op, 'a', a, n, so.dtype, 'out');
    const sb = this.#float(op, 'b', b, n, so.dtype, 'out');
    if (n === 0) return;
    return this.#run(() =>
      this.#addon.opsAdd(this.device, {
        dtype: this.#id(so),
        out: this.#ptr(so),
        a: this.#ptr(sa),
        b: this.#ptr(sb),
        n,
      }),
    );
  }

  /** Targets >= V are found on the device only: that row's loss and gradient become NaN. */
  async softmaxCrossEntropy(
    losses: CudaBuffer,
    dlogits: CudaBuffer | null,
    logits: CudaBuffer,
    targets: CudaBuffer,
    N: number,
    V: number,
    dlossScale: number,
    VpArg?: number,
  ): Promise<void> {
    const op = 'softmaxCrossEntropy';
    this.#live(op);
    sizeArg(op, 'N', N);
    sizeArg(op, 'V', V);
    const Vp = xentRowStride(op, V, VpArg);
    if (typeof dlossScale !== 'number' || !Number.isFinite(dlossScale))
      throw new OpsInputError(`${op} dlossScale`, 'a finite number', describe(dlossScale));
    const sx = this.#float(op, 'logits', logits, N * Vp);
    const sl = this.#float(op, 'losses', losses, N);
    if (sl.dtype !== 'float32' && sl.dtype !== sx.dtype)
      throw new OpsInputError(
        `${op} losses.dtype`,
        `float32 or ${sx.dtype} (the logits' dtype)`,
        sl.dtype,
      );
    const sd =
      dlogits === null ? null : this.#float(op, 'dlogits', dlogits, N * Vp, sx.dtype, 'logits');
    const st = this.#int32(op, 'targets', targets, N);
    if (N === 0) return;
    return this.#run(() =>
      this.#addon.opsSoftmaxCrossEntropy(this.device, {
        dtype: this.#id(sx),
        lossDtype: this.#id(sl),
        losses: this.#ptr(sl),
        dlogits: sd ? this.#ptr(sd) : null,
        logits: this.#ptr(sx),
        targets: this.#ptr(st),
        N,
        V,
        Vp,
        scale: dlossScale,
      }),
    );
  }

  #reduce(op: string, x: CudaBuffer, squares: boolean): Promise<number> {
    this.#live(op);
    this.#refuse(op);
    const s = this.#float(op, 'x', x);
    if (s.length === 0) return Promise.resolve(0);
    return this.#run(async () => {
      const [v] = await this.#addon.opsReduceSum(this.device, {
        dtype: this.#id(s),
        x: this.#ptr(s),
        n: s.length,
        squares,
      });
      return v!;
    });
  }

  /** Sum in float64 over a fixed two-pass reduction (deterministic). Waits for the device. */
  sum(x: CudaBuffer): Promise<number> {
    return this.#reduce('sum', x, false);
  }

  sumSquares(x: CudaBuffer): Promise<number> {
    return this.#reduce('sumSquares', x, true);
  }

  async scale(x: CudaBuffer, s: number): Promise<void> {
    const op = 'scale';
    this.#live(op);
    const sx = this.#float(op, 'x', x);
    if (typeof s !== 'number' || !Number.isFinite(s))
      throw new OpsInputError(`${op} s`, 'a finite number', describe(s));
    if (sx.length === 0) return;
    return this.#run(() =>
      this.#addon.opsScale(this.device, {
        dtype: this.#id(sx),
        x: this.#ptr(sx),
        n: sx.length,
        scale: s,
      }),
    );
  }

  /** AdamW's four equally long buffers, checked (params, m, v float32), and their addon arguments. */
  #adamwBuffers(
    op: string,
    params: CudaBuffer,
    grads: CudaBuffer,
    m: CudaBuffer,
    v: CudaBuffer,
  ): { n: number; ptrs: Record<string, unknown> } {
    const sp = this.#float(op, 'params', params, undefined, 'float32');
    const n = sp.length;
    const sg = this.#float(op, 'grads', grads, n);
    const sm = this.#float(op, 'm', m, n, 'float32');
    const sv = this.#float(op, 'v', v, n, 'float32');
    const ptrs = {
      gradDtype: this.#id(sg),
      params: this.#ptr(sp),
      grads: this.#ptr(sg),
      m: this.#ptr(sm),
      v: this.#ptr(sv),
      n,
    };
    return { n, ptrs };
  }

  async adamw(
    params: CudaBuffer,
    grads: CudaBuffer,
    m: CudaBuffer,
    v: CudaBuffer,
    h: AdamWStep,
  ): Promise<void> {
    const op = 'adamw';
    this.#live(op);
    const { n, ptrs } = this.#adamwBuffers(op, params, grads, m, v);
    if (h === null || typeof h !== 'object')
      throw new OpsInputError(`${op} h`, 'an AdamWStep', describe(h));
    const hp = h as unknown as Record<string, unknown>;
    for (const key of ['lr', 'beta1', 'beta2', 'eps', 'weightDecay', 't']) {
      if (typeof hp[key] !== 'number' || !Number.isFinite(hp[key]))
        throw new OpsInputError(`${op} h.${key}`, 'a finite number', describe(hp[key]));
    }
    if (!Number.isInteger(h.t) || h.t < 1)
      throw new OpsInputError(`${op} h.t`, 'an integer >= 1 (1-based step)', h.t);
    if (n === 0) return;
    return this.#run(() =>
      this.#addon.opsAdamW(this.device, {
        ...ptrs,
        lr: h.lr,
        beta1: h.beta1,
        beta2: h.beta2,
        eps: h.eps,
        weightDecay: h.weightDecay,
        c1: 1 - h.beta1 ** h.t,
        c2: 1 - h.beta2 ** h.t,
      }),
    );
  }

  // ---- DeviceStepOps: the step's scalars on the device ----------------------------------------------------

  /** out (float32, 1) (+)= sum of x (of x^2), the same deterministic reduction as sum; queued, no wait. */
  async sumTo(
    out: CudaBuffer,
    x: CudaBuffer,
    opts: { squares?: boolean; accumulate?: boolean } = {},
  ): Promise<void> {
    const op = 'sumTo';
    this.#live(op);
    const so = this.#float(op, 'out', out, 1, 'float32');
    const sx = this.#float(op, 'x', x);
    if (opts === null || typeof opts !== 'object')
      throw new OpsInputError(`${op} opts`, 'an object', describe(opts));
    for (const k of ['squares', 'accumulate'] as const)
      if (opts[k] !== undefined && typeof opts[k] !== 'boolean')
        throw new OpsInputError(`${op} opts.${k}`, 'a boolean', describe(opts[k]));
    const addon = this.#addon;
    if (!addon.opsReduceSumTo)
      throw new BackendExecutionError(this.name, `${op}: the CUDA addon predates it: rebuild it`);
    return this.#run(() =>
      addon.opsReduceSumTo!(this.device, {
        dtype: this.#id(sx),
        x: this.#ptr(sx),
        n: sx.length,
        squares: !!opts.squares,
        accumulate: !!opts.accumulate,
        out: this.#ptr(so),
      }),
    );
  }

  /** AdamW with lr, 1 - beta1^t, 1 - beta2^t from h.hyper (float32 (3)) and the clip factor from h.clip.normSq. */
  async adamwFrom(
    params: CudaBuffer,
    grads: CudaBuffer,
    m: CudaBuffer,
    v: CudaBuffer,
    h: AdamWFromStep<CudaBuffer>,
  ): Promise<void> {
    const op = 'adamwFrom';
    this.#live(op);
    const { n, ptrs } = this.#adamwBuffers(op, params, grads, m, v);
    checkAdamWFromScalars(op, h);
    const sh = this.#float(op, 'h.hyper', h.hyper, 3, 'float32');
    const sn = h.clip ? this.#float(op, 'h.clip.normSq', h.clip.normSq, 1, 'float32') : null;
    const addon = this.#addon;
    if (!addon.opsAdamWFrom)
      throw new BackendExecutionError(this.name, `${op}: the CUDA addon predates it: rebuild it`);
    if (n === 0) return;
    return this.#run(() =>
      addon.opsAdamWFrom!(this.device, {
        ...ptrs,
        hyper: this.#ptr(sh),
        normSq: sn ? this.#ptr(sn) : null,
        maxNorm: h.clip?.maxNorm ?? 0,
        K: h.clip?.K ?? 1,
        beta1: h.beta1,
        beta2: h.beta2,
        eps: h.eps,
        weightDecay: h.weightDecay,
      }),
    );
  }

  // ---- OpsGraphs: CUDA graphs of the device's stream -------------------------------------------------------

  /**
   * Record the ops `record` calls into a CUDA graph (stream capture; nothing runs). Every call of this device's
   * queue between the start and the end is recorded, so only this CudaOps should be used meanwhile.
   */
  async captureGraph(record: () => Promise<void>): Promise<OpsGraph> {
    const op = 'captureGraph';
    this.#live(op);
    if (this.#capturing)
      throw new OpsInputError(op, 'no capture inside a capture', 'a nested captureGraph');
    const addon = this.#addon;
    if (!addon.graphBegin || !addon.graphEnd || !addon.graphAbort)
      throw new BackendExecutionError(
        this.name,
        `${op}: the CUDA addon predates graphs: rebuild it`,
      );
    this.#capturing = true;
    this.#refused = null;
    try {
      await this.#run(() => addon.graphBegin!(this.device));
      try {
        await record();
        if (this.#refused) throw this.#refused;
      } catch (e) {
        await this.#run(() => addon.graphAbort!(this.device));
        throw e;
      }
      const g = await this.#run(() => addon.graphEnd!(this.device));
      return new CudaGraph(this.device, g.id, g.nodes);
    } finally {
      this.#capturing = false;
    }
  }

  #graph(op: string, g: OpsGraph): CudaGraph {
    if (!(g instanceof CudaGraph) || g.device !== this.device)
      throw new OpsInputError(
        `${op} g`,
        `a graph from captureGraph on cuda:${this.device}`,
        describe(g),
      );
    if (g.freed) throw new OpsInputError(`${op} g`, 'a live graph', 'a freed one');
    return g;
  }

  /** Enqueue the recording (one launch). */
  async launchGraph(g: OpsGraph): Promise<void> {
    const op = 'launchGraph';
    this.#live(op);
    this.#refuse(op);
    const cg = this.#graph(op, g);
    return this.#run(() => this.#addon.graphLaunch!(this.device, cg.id));
  }

  /** Release the recording after the launches queued before this call. */
  freeGraph(g: OpsGraph): void {
    const cg = this.#graph('freeGraph', g);
    cg.freed = true;
    void this.#run(() => this.#addon.graphFree!(this.device, cg.id)).catch(() => undefined);
  }

  // ---- calls a capture may not record ------------------------------------------------------------------------

  override alloc(n: number, dtype: BufferDType): CudaBuffer {
    this.#refuse('alloc');
    return super.alloc(n, dtype);
  }

  override free(buf: CudaBuffer): void {
    this.#refuse('free');
    super.free(buf);
  }

  override upload(buf: CudaBuffer, data: HostArray): Promise<void> {
    this.#refuse('upload');
    return super.upload(buf, data);
  }

  override download(buf: CudaBuffer): Promise<HostArray> {
    this.#refuse('download');
    return super.download(buf);
  }

  override synchronize(): Promise<void> {
    this.#refuse('synchronize');
    return super.synchronize();
  }

  override attentionWithKvCache(
    ...args: Parameters<CudaDevice['attentionWithKvCache']>
  ): ReturnType<CudaDevice['attentionWithKvCache']> {
    this.#refuse('attentionWithKvCache');
    return super.attentionWithKvCache(...args);
  }

  override varlenAttentionForward(
    ...args: Parameters<CudaDevice['varlenAttentionForward']>
  ): ReturnType<CudaDevice['varlenAttentionForward']> {
    this.#refuse('varlenAttentionForward');
    return super.varlenAttentionForward(...args);
  }

  override varlenAttentionBackward(
    ...args: Parameters<CudaDevice['varlenAttentionBackward']>
  ): ReturnType<CudaDevice['varlenAttentionBackward']> {
    this.#refuse('varlenAttentionBackward');
    return super.varlenAttentionBackward(...args);
  }

  override async dispose(): Promise<void> {
    this.#refuse('dispose');
    if (this.#opsDisposed) return;
    this.#opsDisposed = true;
    const left = (liveOps.get(this.device) ?? 1) - 1;
    liveOps.set(this.device, left);
    await super.dispose(); // waits for the device
    if (left === 0) {
      try {
        this.#addon.opsRelease(this.device);
      } catch {
        // a sticky device error: nothing left to release
      }
    }
  }
}

/** Check the options createCudaOps knows (the device's, plus cublasLtPath). */
function checkOptions(opts: CudaOpsOptions): void {
  if (opts === null || typeof opts !== 'object')
    throw new OpsInputError('createCudaOps options', 'an object', describe(opts));
  const known = new Set([
    'device',
    'deterministic',
    'float32ComputeDType',
    'cublasLtPath',
    'fusedGelu',
  ]);
  for (const key of Object.keys(opts)) {
    if (!known.has(key))
      throw new OpsInputError(
        `createCudaOps options.${key}`,
        `one of ${[...known].join(', ')}`,
        key,
      );
  }
  checkFloat32Options(opts, OpsInputError, 'createCudaOps options');
  if (opts.fusedGelu !== undefined && typeof opts.fusedGelu !== 'boolean')
    throw new OpsInputError(
      'createCudaOps options.fusedGelu',
      'a boolean',
      describe(opts.fusedGelu),
    );
  if (
    opts.cublasLtPath !== undefined &&
    (typeof opts.cublasLtPath !== 'string' || opts.cublasLtPath === '')
  )
    throw new OpsInputError(
      'createCudaOps options.cublasLtPath',
      'a non-empty path string',
      describe(opts.cublasLtPath),
    );
}

/**
 * Open a CUDA device as core's `Ops<CudaBuffer>`. Throws, in this order: OpsInputError for unknown or bad
 * options; CudaUnavailableError when the addon is missing; CublasLtUnavailableError when libcublasLt cannot be
 * loaded (listing every path tried); CudaUnavailableError when there is no driver or GPU.
 */
export function createCudaOps(opts: CudaOpsOptions = {}): CudaOps {
  checkOptions(opts);
  const load = loadAddon();
  if (!load.addon) throw new CudaUnavailableError(load.reason);
  const addon = load.addon as CudaAddon & Partial<OpsAddon>;
  if (typeof addon.opsCublasLtLoad !== 'function')
    throw new CudaUnavailableError(
      `the CUDA addon at ${load.path} predates the training ops: rebuild it`,
    );
  const lt = addon.opsCublasLtLoad(opts.cublasLtPath ?? '');
  if (!lt.loaded) throw new CublasLtUnavailableError(lt.tried);
  const { cublasLtPath: _path, ...deviceOpts } = opts;
  const { device, info } = openCudaDevice(deviceOpts);
  return new CudaOps(addon as CudaAddon & OpsAddon, device, info, opts, {
    path: lt.path,
    version: lt.version,
  });
}

/**
 * Why createCudaOps() cannot work here (no addon, no GPU, or no cuBLASLt), or undefined when it can. For tests and
 * apps that skip or fall back with the reason printed; loads cuBLASLt but opens no device.
 */
export function cudaOpsUnavailableReason(
  opts: Pick<CudaOpsOptions, 'cublasLtPath'> = {},
): string | undefined {
  const gpu = cudaUnavailableReason();
  if (gpu) return gpu;
  const addon = loadAddon().addon as (CudaAddon & Partial<OpsAddon>) | undefined;
  if (typeof addon?.opsCublasLtLoad !== 'function')
    return 'the CUDA addon predates the training ops: rebuild it';
  const lt = addon.opsCublasLtLoad(opts.cublasLtPath ?? '');
  return lt.loaded ? undefined : new CublasLtUnavailableError(lt.tried).reason;
}
