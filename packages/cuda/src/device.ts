/**
 * createCudaDevice(): core's `DeviceMemory<CudaBuffer> & DeviceAttention<CudaBuffer>` on an NVIDIA GPU.
 *
 * Memory: buffers come from CUDA's stream-ordered pool; every call is enqueued on the device's one stream in
 * program order (the per-device SerialQueue), `free` is stream-ordered, and only `download` (and `synchronize`)
 * wait for the device. A kernel fault therefore surfaces at the next waiting call, as a BackendExecutionError.
 *
 * Attention reads q, k, v and writes out / dq, dk, dv in place through their strides (FlashAttention-2's
 * params: the kernels take q_batch_stride, q_row_stride, q_head_stride, ... ; include/flash_params.h). So the
 * packed (B, T, 3, H, D) qkv of GPT-2 and its packed gradient need no split or merge copies. A view the kernels
 * cannot take in place is staged through a contiguous copy by the strided cast kernel (kernels/strided_convert.cu):
 * float32 storage computed in a 16-bit dtype (`float32ComputeDType` 'bfloat16', the default here, or 'float16'), a
 * head dim without a kernel (zero-padded to 32, 64, 96, 128 or 256), or, for the 16-bit kernels, a view whose offset
 * or strides are not multiples of 8 elements (they move 16 bytes per row chunk). With `float32ComputeDType:
 * 'float32'` float32 views run on the float32 FMA kernels (native/kernels/*_f32.cu), which read and write any
 * strides in place.
 *
 * Inference (issue #12): attention with a KV cache, split-KV, the lse combine (src/inference-kv-cache.ts, kernels in
 * native/inference/) and packed variable-length batches (src/inference-varlen.ts, the flash kernels per sequence).
 */
import {
  AttentionInputError,
  BackendExecutionError,
  OpsInputError,
  bufferDTypeBytes,
  checkStridedView,
  deviceAttentionShape,
  resolveOptions,
  validateOptions,
  type AttentionOptions,
  type BackendCapabilities,
  type BufferDType,
  type DType,
  type DeviceAttention,
  type DeviceAttentionBackwardArgs,
  type DeviceAttentionForwardArgs,
  type DeviceKvCacheAttention,
  type DeviceMemory,
  type DeviceVarlenAttention,
  type AttentionCombineArgs,
  type HostArray,
  type KvCacheAttentionArgs,
  type KvCacheCapabilities,
  type KvCacheOptions,
  type StridedView,
  type VarlenBackwardArgs,
  type VarlenForwardArgs,
} from '@flashattn/core';
import {
  MAX_HEAD_DIM,
  openCudaDevice,
  paddedHeadDim,
  TEST_FAULT_ID,
  type CudaBackendOptions,
  type Float32ComputeDType,
} from './backend.js';
import {
  bufferState,
  CudaBuffer,
  newAllocation,
  newView,
  retireAllocation,
} from './cuda-buffer.js';
import { mapCudaError } from './errors.js';
import {
  CudaKvCacheAttention,
  KV_CTAS_PER_SM,
  type InferenceAddon,
  type InferenceDeps,
} from './inference-kv-cache.js';
import { CudaVarlenAttention } from './inference-varlen.js';
import { readMemoryStats, type CudaMemoryStats } from './memory-stats.js';
import {
  convertRows,
  memcpyHost,
  type CudaAddon,
  type DeviceInfo,
  type DevicePtr,
  type NativeShape,
  type NativeStrides,
} from './native.js';
import { deviceQueue, type SerialQueue } from './queue.js';

export type CudaDeviceOptions = CudaBackendOptions;

/** The dtypes the strided cast kernel and the attention kernels know: 0 = float32, 1 = float16, 2 = bfloat16. */
const FLOAT_ID: Partial<Record<BufferDType, number>> = { float32: 0, float16: 1, bfloat16: 2 };
const DEVICE_DTYPES: readonly BufferDType[] = ['float32', 'float16', 'bfloat16', 'int32'];

type State = NonNullable<ReturnType<typeof bufferState>>;
type Shape4 = readonly [number, number, number, number];

/** An operand as the kernels take it: pointer to element (0, 0, 0, 0) and [batch, row, head] strides. */
interface KernelOperand {
  ptr: DevicePtr;
  strides: NativeStrides;
}

function contiguous3(N: number, H: number, D: number): NativeStrides {
  return [N * H * D, H * D, D];
}

function isHostArray(x: unknown): x is HostArray {
  return (
    x instanceof Float32Array ||
    x instanceof Float64Array ||
    x instanceof Int32Array ||
    x instanceof Uint16Array
  );
}

export class CudaDevice
  implements
    DeviceMemory<CudaBuffer>,
    DeviceAttention<CudaBuffer>,
    DeviceKvCacheAttention<CudaBuffer>,
    DeviceVarlenAttention<CudaBuffer>
{
  /** e.g. 'cuda:0 (NVIDIA H100 80GB HBM3)' */
  readonly name: string;
  readonly dtypes: readonly BufferDType[] = DEVICE_DTYPES;
  readonly attentionCapabilities: BackendCapabilities;
  readonly device: number;
  readonly deviceInfo: DeviceInfo;
  readonly deterministic: boolean;
  /** What float32 views are computed in ('bfloat16' by default; createCudaOps: 'float32'). */
  readonly float32ComputeDType: Float32ComputeDType;
  /** KV-cache attention (src/inference-kv-cache.ts): any page size, float32 computed in float32. */
  readonly kvCacheCapabilities: KvCacheCapabilities;
  readonly #addon: CudaAddon;
  readonly #queue: SerialQueue;
  readonly #kv: CudaKvCacheAttention;
  readonly #varlen: CudaVarlenAttention;
  readonly #testFault: number;
  #disposed = false;

  constructor(addon: CudaAddon, device: number, info: DeviceInfo, opts: CudaDeviceOptions) {
    this.#addon = addon;
    this.device = device;
    this.deviceInfo = info;
    this.deterministic = opts.deterministic ?? false;
    this.float32ComputeDType = opts.float32ComputeDType ?? 'bfloat16';
    this.#testFault = opts.testFault ? TEST_FAULT_ID[opts.testFault] : 0;
    this.#queue = deviceQueue(device);
    this.name = `cuda:${device} (${info.name})`;
    const f32 = this.float32ComputeDType;
    this.attentionCapabilities = {
      dtypes: ['float32', 'float16', 'bfloat16'],
      maxHeadDim: MAX_HEAD_DIM,
      computeDType: (dtype: DType): DType => (dtype === 'float32' ? f32 : dtype),
    };
    const deps: InferenceDeps = {
      addon: addon as CudaAddon & InferenceAddon,
      device,
      parallelism: Math.max(1, info.multiProcessorCount) * KV_CTAS_PER_SM,
      check: () => this.#check(),
      live: (name, buf) => {
        const s = this.#live(name, buf, AttentionInputError);
        return { dtype: s.dtype, length: s.length, ptr: (offset = 0) => this.#ptr(s, offset) };
      },
      run: (task) => this.#run(task),
    };
    this.#kv = new CudaKvCacheAttention(deps);
    this.kvCacheCapabilities = this.#kv.kvCacheCapabilities;
    this.#varlen = new CudaVarlenAttention({ ...deps, attention: this, maxHeadDim: MAX_HEAD_DIM });
  }

  // ---- plumbing -------------------------------------------------------------------------------------------

  #check(): void {
    if (this.#disposed) throw new BackendExecutionError(this.name, 'device used after dispose()');
  }

  /** Run `task` after every earlier call on this device, mapping CUDA errors to typed errors. */
  #run<R>(task: () => Promise<R> | R): Promise<R> {
    this.#check();
    return this.#queue.run(async () => {
      try {
        return await task();
      } catch (e) {
        throw mapCudaError(e, this.name);
      }
    });
  }

  /** A live buffer of this device, or a typed error naming the argument. */
  #live(
    name: string,
    buf: unknown,
    E: typeof OpsInputError | typeof AttentionInputError = OpsInputError,
  ): State {
    const s = bufferState(buf);
    if (!s) throw new E(name, 'a CudaBuffer', buf);
    if (s.allocation.device !== this.device)
      throw new E(name, `a buffer on cuda:${this.device}`, `one on cuda:${s.allocation.device}`);
    if (s.allocation.freed) throw new E(name, 'a live CudaBuffer', 'a freed one');
    return s;
  }

  /** Device address of element `offset` of a buffer. */
  #ptr(s: State, offset = 0): DevicePtr {
    return s.allocation.ptr + BigInt((s.offset + offset) * bufferDTypeBytes(s.dtype));
  }

  #malloc(bytes: number): DevicePtr {
    try {
      return this.#addon.malloc(this.device, bytes);
    } catch (e) {
      throw mapCudaError(e, this.name);
    }
  }

  #freeAll(ptrs: DevicePtr[]): void {
    for (const p of ptrs.splice(0)) this.#addon.free(this.device, p);
  }

  /** Wait for every call so far to finish on the device (kernel faults surface here). */
  synchronize(): Promise<void> {
    return this.#run(() => this.#addon.synchronize(this.device));
  }

  /**
   * Device bytes this process's addon holds on this GPU, now and at most since the last resetPeakMemory() (see
   * memory-stats.ts; shared by every CudaDevice / CudaOps on the GPU). Read after every call queued before it, so
   * a buffer freed before the call is not counted.
   */
  async memoryStats(): Promise<CudaMemoryStats> {
    return this.#run(() => readMemoryStats(this.#addon, this.device, this.name, false));
  }

  /** Restart the peak of memoryStats() from the bytes in use now (after every call queued before it). */
  async resetPeakMemory(): Promise<void> {
    await this.#run(() => readMemoryStats(this.#addon, this.device, this.name, true));
  }

  // ---- DeviceMemory -----------------------------------------------------------------------------------------

  alloc(n: number, dtype: BufferDType): CudaBuffer {
    this.#check();
    if (!Number.isSafeInteger(n) || n < 0)
      throw new OpsInputError('alloc n', 'a non-negative integer', n);
    if (!DEVICE_DTYPES.includes(dtype))
      throw new OpsInputError('alloc dtype', DEVICE_DTYPES.join(' | '), dtype);
    const bytes = n * bufferDTypeBytes(dtype);
    const ptr = this.#malloc(bytes);
    try {
      this.#addon.memset(this.device, ptr, bytes);
    } catch (e) {
      this.#addon.free(this.device, ptr);
      throw mapCudaError(e, this.name);
    }
    return newAllocation(this.#addon, this.device, ptr, bytes, n, dtype);
  }

  view(buf: CudaBuffer, offset: number, length: number): CudaBuffer {
    const s = this.#live('view buf', buf);
    if (!Number.isSafeInteger(offset) || offset < 0)
      throw new OpsInputError('view offset', 'a non-negative integer', offset);
    if (!Number.isSafeInteger(length) || length < 0)
      throw new OpsInputError('view length', 'a non-negative integer', length);
    if (offset + length > s.length) {
      throw new OpsInputError(
        'view offset + length',
        `at most the buffer's length ${s.length}`,
        offset + length,
      );
    }
    return newView(s, offset, length);
  }

  lengthOf(buf: CudaBuffer): number {
    return this.#live('lengthOf buf', buf).length;
  }

  dtypeOf(buf: CudaBuffer): BufferDType {
    return this.#live('dtypeOf buf', buf).dtype;
  }

  async zero(buf: CudaBuffer): Promise<void> {
    const s = this.#live('zero buf', buf);
    return this.#run(() =>
      this.#addon.memset(this.device, this.#ptr(s), s.length * bufferDTypeBytes(s.dtype)),
    );
  }

  /**
   * buf = data. Float32Array / Float64Array fill float buffers (cast on the device for 16-bit ones), Uint16Array
   * gives 16-bit buffers their raw bits, Int32Array fills int32 buffers. The data is copied before the call
   * returns its Promise (so the caller may reuse the array, and a SharedArrayBuffer is never read concurrently).
   */
  async upload(buf: CudaBuffer, data: HostArray): Promise<void> {
    const s = this.#live('upload buf', buf);
    if (!isHostArray(data)) {
      throw new OpsInputError(
        'upload data',
        'a Float32Array, Float64Array, Int32Array or Uint16Array',
        data,
      );
    }
    if (data.length !== s.length)
      throw new OpsInputError(
        'upload data.length',
        `${s.length} (the buffer's length)`,
        data.length,
      );
    const kind = data.constructor.name;
    let host: Float32Array | Int32Array | Uint16Array;
    let cast = false; // host is float32 for a 16-bit buffer
    if (s.dtype === 'int32') {
      if (!(data instanceof Int32Array))
        throw new OpsInputError('upload data', 'an Int32Array for an int32 buffer', kind);
      host = data.slice();
    } else if (data instanceof Int32Array) {
      throw new OpsInputError('upload data', `float data for a ${s.dtype} buffer`, kind);
    } else if (data instanceof Uint16Array) {
      if (s.dtype === 'float32')
        throw new OpsInputError(
          'upload data',
          'Float32Array or Float64Array for a float32 buffer',
          kind,
        );
      host = data.slice();
    } else {
      host = data instanceof Float64Array ? Float32Array.from(data) : data.slice();
      cast = s.dtype !== 'float32';
    }
    return this.#run(async () => {
      if (!cast) return memcpyHost(this.#addon, this.device, this.#ptr(s), host, true);
      const tmp = this.#malloc(host.byteLength);
      try {
        await memcpyHost(this.#addon, this.device, tmp, host, true);
        convertRows(this.#addon, this.device, {
          src: tmp,
          srcDtype: 0,
          dst: this.#ptr(s),
          dstDtype: FLOAT_ID[s.dtype]!,
          rows: s.length,
          srcCols: 1,
          dstCols: 1,
        });
      } finally {
        this.#addon.free(this.device, tmp);
      }
    });
  }

  async download(buf: CudaBuffer): Promise<HostArray> {
    const s = this.#live('download buf', buf);
    const out: HostArray =
      s.dtype === 'float32'
        ? new Float32Array(s.length)
        : s.dtype === 'int32'
          ? new Int32Array(s.length)
          : new Uint16Array(s.length);
    return this.#run(async () => {
      await memcpyHost(this.#addon, this.device, this.#ptr(s), out, false);
      return out;
    });
  }

  /** dst = src (same length), casting between float32, float16 and bfloat16. The two may not overlap. */
  async copy(dst: CudaBuffer, src: CudaBuffer): Promise<void> {
    const d = this.#live('copy dst', dst);
    const s = this.#live('copy src', src);
    if (d.length !== s.length)
      throw new OpsInputError('copy src.length', `${d.length} (dst's length)`, s.length);
    const sameDtype = d.dtype === s.dtype;
    if (!sameDtype && (FLOAT_ID[d.dtype] === undefined || FLOAT_ID[s.dtype] === undefined)) {
      throw new OpsInputError(
        'copy src.dtype',
        `${d.dtype} or a float dtype to cast from`,
        s.dtype,
      );
    }
    if (d.allocation === s.allocation) {
      const [a0, a1] = [
        d.offset * bufferDTypeBytes(d.dtype),
        (d.offset + d.length) * bufferDTypeBytes(d.dtype),
      ];
      const [b0, b1] = [
        s.offset * bufferDTypeBytes(s.dtype),
        (s.offset + s.length) * bufferDTypeBytes(s.dtype),
      ];
      if (a0 < b1 && b0 < a1 && d.length > 0)
        throw new OpsInputError('copy dst', 'a buffer not overlapping src', 'an overlapping view');
    }
    return this.#run(() => {
      if (sameDtype) {
        this.#addon.copyDevice(
          this.device,
          this.#ptr(d),
          this.#ptr(s),
          s.length * bufferDTypeBytes(s.dtype),
        );
      } else {
        convertRows(this.#addon, this.device, {
          src: this.#ptr(s),
          srcDtype: FLOAT_ID[s.dtype]!,
          dst: this.#ptr(d),
          dstDtype: FLOAT_ID[d.dtype]!,
          rows: s.length,
          srcCols: 1,
          dstCols: 1,
        });
      }
    });
  }

  free(buf: CudaBuffer): void {
    const s = this.#live('free buf', buf);
    if (s.isView) throw new OpsInputError('free buf', 'a buffer from alloc (not a view)', 'a view');
    const held = retireAllocation(s);
    // Stream-ordered, and after every call queued before this one (which may still use the buffer).
    void this.#queue.run(async () => held.addon.free(held.device, held.ptr)).catch(() => undefined); // a sticky device error: nothing left to free
  }

  /** Wait for the device, then return the pool's cached free memory to the driver. Later calls throw. */
  async dispose(): Promise<void> {
    if (this.#disposed) return;
    this.#disposed = true;
    await this.#queue.run(async () => {
      try {
        await this.#addon.synchronize(this.device);
        this.#addon.trimMemPool(this.device);
      } catch {
        // a sticky device error; nothing left to release here
      }
    });
  }

  // ---- DeviceAttention --------------------------------------------------------------------------------------

  /** Check every view (buffer, range, dtype) before anything runs; returns the states in order. */
  #views(named: [string, StridedView<CudaBuffer> | undefined][]): State[] {
    const states: State[] = [];
    let dtype: BufferDType | undefined;
    for (const [name, v] of named) {
      if (v === null || typeof v !== 'object') {
        throw new AttentionInputError(name, 'a StridedView { buffer, offset, shape, strides }', v);
      }
      const s = this.#live(`${name}.buffer`, v.buffer, AttentionInputError);
      checkStridedView(name, v, s.length);
      if (FLOAT_ID[s.dtype] === undefined)
        throw new AttentionInputError(
          `${name}.buffer dtype`,
          'float32, float16 or bfloat16',
          s.dtype,
        );
      dtype ??= s.dtype;
      if (s.dtype !== dtype)
        throw new AttentionInputError(
          `${name}.buffer dtype`,
          `${dtype} to match ${named[0]![0]}`,
          s.dtype,
        );
      states.push(s);
    }
    return states;
  }

  #lse(buf: unknown, n: number): State {
    const s = this.#live('lse', buf, AttentionInputError);
    if (s.dtype !== 'float32') throw new AttentionInputError('lse dtype', 'float32', s.dtype);
    if (s.length < n)
      throw new AttentionInputError(
        'lse',
        `a float32 buffer of at least B * Hq * Nq = ${n} elements`,
        s.length,
      );
    return s;
  }

  #sameShape(name: string, got: readonly number[], want: readonly number[]): void {
    if (got.some((x, i) => x !== want[i])) {
      throw new AttentionInputError(`${name}.shape`, `[${want.join(', ')}]`, `[${got.join(', ')}]`);
    }
  }

  #problem(
    sizes: { B: number; Nq: number; Nk: number; Hq: number; Hk: number; D: number },
    dtype: BufferDType,
    opts: AttentionOptions | undefined,
  ): NativeShape {
    const { B, Nq, Nk, Hq, Hk, D } = sizes;
    if (D < 1 || D > MAX_HEAD_DIM)
      throw new AttentionInputError('q.shape[3] (headdim)', `between 1 and ${MAX_HEAD_DIM}`, D);
    if (B > 65535 || Hq > 65535) {
      throw new AttentionInputError(
        'q.shape',
        'batch and heads at most 65535 (CUDA grid limits)',
        `[${B}, ${Nq}, ${Hq}, ${D}]`,
      );
    }
    validateOptions(opts);
    const o = resolveOptions(opts, D);
    const cdt = dtype === 'float32' ? this.float32ComputeDType : dtype;
    return {
      dtype: FLOAT_ID[cdt]!,
      batch: B,
      nheadsQ: Hq,
      nheadsK: Hk,
      seqlenQ: Nq,
      seqlenK: Nk,
      headDim: paddedHeadDim(D),
      softmaxScale: o.softmaxScale,
      windowLeft: o.windowLeft,
      windowRight: o.windowRight,
      ...(this.#testFault && cdt === 'float32' ? { testFault: this.#testFault } : {}),
    };
  }

  /**
   * The kernels can take this view in place: compute dtype, a kernel head dim, and for the 16-bit kernels 16-byte
   * aligned rows (the float32 kernels take any strides).
   */
  #inPlace(s: State, v: StridedView<CudaBuffer>, ns: NativeShape): boolean {
    return (
      FLOAT_ID[s.dtype] === ns.dtype &&
      v.shape[3] === ns.headDim &&
      (ns.dtype === FLOAT_ID.float32 ||
        ((s.offset + v.offset) % 8 === 0 &&
          v.strides[0] % 8 === 0 &&
          v.strides[1] % 8 === 0 &&
          v.strides[2] % 8 === 0))
    );
  }

  /** Bytes per element of the kernels' compute dtype. */
  #computeBytes(ns: NativeShape): number {
    return ns.dtype === FLOAT_ID.float32 ? 4 : 2;
  }

  /** An input operand: the view itself, or a contiguous (B, N, H, Dp) copy in the compute dtype. */
  #input(s: State, v: StridedView<CudaBuffer>, ns: NativeShape, owned: DevicePtr[]): KernelOperand {
    const [B, N, H, D] = v.shape;
    if (this.#inPlace(s, v, ns))
      return { ptr: this.#ptr(s, v.offset), strides: [v.strides[0], v.strides[1], v.strides[2]] };
    const dp = ns.headDim;
    const tmp = this.#malloc(B * N * H * dp * this.#computeBytes(ns));
    owned.push(tmp);
    const strides = contiguous3(N, H, dp);
    this.#addon.convert(this.device, {
      src: this.#ptr(s, v.offset),
      srcDtype: FLOAT_ID[s.dtype]!,
      srcStrides: [v.strides[0], v.strides[1], v.strides[2]],
      dst: tmp,
      dstDtype: ns.dtype,
      dstStrides: strides,
      shape: [B, N, H],
      srcCols: D,
      dstCols: dp,
    });
    return { ptr: tmp, strides };
  }

  /** An output operand: the view itself, or a contiguous buffer whose `writeBack` casts it into the view. */
  #output(
    s: State,
    v: StridedView<CudaBuffer>,
    ns: NativeShape,
    owned: DevicePtr[],
  ): KernelOperand & { writeBack(): void } {
    const [B, N, H, D] = v.shape;
    const viewStrides: NativeStrides = [v.strides[0], v.strides[1], v.strides[2]];
    if (this.#inPlace(s, v, ns))
      return { ptr: this.#ptr(s, v.offset), strides: viewStrides, writeBack: () => undefined };
    const dp = ns.headDim;
    const tmp = this.#malloc(B * N * H * dp * this.#computeBytes(ns));
    owned.push(tmp);
    const strides = contiguous3(N, H, dp);
    return {
      ptr: tmp,
      strides,
      writeBack: () =>
        this.#addon.convert(this.device, {
          src: tmp,
          srcDtype: ns.dtype,
          srcStrides: strides,
          dst: this.#ptr(s, v.offset),
          dstDtype: FLOAT_ID[s.dtype]!,
          dstStrides: viewStrides,
          shape: [B, N, H],
          srcCols: D,
          dstCols: D,
        }),
    };
  }

  /** view = 0 (strided): a cast from a zeroed contiguous float32 buffer. */
  #zeroView(s: State, v: StridedView<CudaBuffer>, owned: DevicePtr[]): void {
    const [B, N, H, D] = v.shape;
    if (B * N * H * D === 0) return;
    const tmp = this.#malloc(B * N * H * D * 4);
    owned.push(tmp);
    this.#addon.memset(this.device, tmp, B * N * H * D * 4);
    this.#addon.convert(this.device, {
      src: tmp,
      srcDtype: 0,
      srcStrides: contiguous3(N, H, D),
      dst: this.#ptr(s, v.offset),
      dstDtype: FLOAT_ID[s.dtype]!,
      dstStrides: [v.strides[0], v.strides[1], v.strides[2]],
      shape: [B, N, H],
      srcCols: D,
      dstCols: D,
    });
  }

  async attentionForward(
    args: DeviceAttentionForwardArgs<CudaBuffer>,
    opts?: AttentionOptions,
  ): Promise<void> {
    this.#check();
    if (args === null || typeof args !== 'object')
      throw new AttentionInputError('args', '{ q, k, v, out, lse }', args);
    const [sq, sk, sv, so] = this.#views([
      ['q', args.q],
      ['k', args.k],
      ['v', args.v],
      ['out', args.out],
    ]) as [State, State, State, State];
    const sizes = deviceAttentionShape(args);
    const { B, Nq, Nk, Hq, D } = sizes;
    this.#sameShape('out', args.out.shape, [B, Nq, Hq, D] as Shape4);
    const sl = this.#lse(args.lse, B * Hq * Nq);
    const ns = this.#problem(sizes, sq.dtype, opts);
    if (B * Nq * Hq === 0) return;
    return this.#run(async () => {
      const owned: DevicePtr[] = [];
      try {
        if (Nk === 0) {
          // no key at all: out = 0, lse = -inf
          this.#zeroView(so, args.out, owned);
          await memcpyHost(
            this.#addon,
            this.device,
            this.#ptr(sl),
            new Float32Array(B * Hq * Nq).fill(-Infinity),
            true,
          );
          return;
        }
        const q = this.#input(sq, args.q, ns, owned);
        const k = this.#input(sk, args.k, ns, owned);
        const v = this.#input(sv, args.v, ns, owned);
        const out = this.#output(so, args.out, ns, owned);
        this.#addon.forward(this.device, {
          ...ns,
          q: q.ptr,
          qStrides: q.strides,
          k: k.ptr,
          kStrides: k.strides,
          v: v.ptr,
          vStrides: v.strides,
          out: out.ptr,
          outStrides: out.strides,
          lse: this.#ptr(sl),
        });
        out.writeBack();
      } finally {
        this.#freeAll(owned);
      }
    });
  }

  async attentionBackward(
    args: DeviceAttentionBackwardArgs<CudaBuffer>,
    opts?: AttentionOptions,
  ): Promise<void> {
    this.#check();
    if (args === null || typeof args !== 'object') {
      throw new AttentionInputError('args', '{ dout, q, k, v, out, lse, dq, dk, dv }', args);
    }
    const states = this.#views([
      ['q', args.q],
      ['k', args.k],
      ['v', args.v],
      ['out', args.out],
      ['dout', args.dout],
      ['dq', args.dq],
      ['dk', args.dk],
      ['dv', args.dv],
    ]);
    const [sq, sk, sv, so, sdo, sdq, sdk, sdv] = states as [
      State,
      State,
      State,
      State,
      State,
      State,
      State,
      State,
    ];
    const sizes = deviceAttentionShape(args);
    const { B, Nq, Nk, Hq, Hk, D } = sizes;
    const qShape = [B, Nq, Hq, D] as Shape4;
    const kShape = [B, Nk, Hk, D] as Shape4;
    this.#sameShape('out', args.out.shape, qShape);
    this.#sameShape('dout', args.dout.shape, qShape);
    this.#sameShape('dq', args.dq.shape, qShape);
    this.#sameShape('dk', args.dk.shape, kShape);
    this.#sameShape('dv', args.dv.shape, kShape);
    const sl = this.#lse(args.lse, B * Hq * Nq);
    const ns = this.#problem(sizes, sq.dtype, opts);
    if (B * Hq === 0) return;
    return this.#run(async () => {
      const owned: DevicePtr[] = [];
      try {
        if (Nq === 0 || Nk === 0) {
          // no score at all: every gradient is 0
          this.#zeroView(sdq, args.dq, owned);
          this.#zeroView(sdk, args.dk, owned);
          this.#zeroView(sdv, args.dv, owned);
          return;
        }
        const q = this.#input(sq, args.q, ns, owned);
        const k = this.#input(sk, args.k, ns, owned);
        const v = this.#input(sv, args.v, ns, owned);
        const out = this.#input(so, args.out, ns, owned);
        const dout = this.#input(sdo, args.dout, ns, owned);
        const dq = this.#output(sdq, args.dq, ns, owned);
        const dk = this.#output(sdk, args.dk, ns, owned);
        const dv = this.#output(sdv, args.dv, ns, owned);
        this.#addon.backward(this.device, {
          ...ns,
          q: q.ptr,
          qStrides: q.strides,
          k: k.ptr,
          kStrides: k.strides,
          v: v.ptr,
          vStrides: v.strides,
          out: out.ptr,
          outStrides: out.strides,
          dout: dout.ptr,
          doutStrides: dout.strides,
          lse: this.#ptr(sl),
          dq: dq.ptr,
          dqStrides: dq.strides,
          dk: dk.ptr,
          dkStrides: dk.strides,
          dv: dv.ptr,
          dvStrides: dv.strides,
          deterministic: this.deterministic,
        });
        dq.writeBack();
        dk.writeBack();
        dv.writeBack();
      } finally {
        this.#freeAll(owned);
      }
    });
  }

  // ---- Inference (DeviceKvCacheAttention, DeviceVarlenAttention): src/inference-*.ts ------------------------

  /** KV-cache attention: append k_new / v_new, split-KV decode, combine (native/inference/). */
  attentionWithKvCache(
    args: KvCacheAttentionArgs<CudaBuffer>,
    opts?: KvCacheOptions,
  ): Promise<void> {
    return this.#kv.attentionWithKvCache(args, opts);
  }

  attentionCombine(args: AttentionCombineArgs<CudaBuffer>): Promise<void> {
    return this.#kv.attentionCombine(args);
  }

  varlenAttentionForward(
    args: VarlenForwardArgs<CudaBuffer>,
    opts?: AttentionOptions,
  ): Promise<void> {
    return this.#varlen.varlenAttentionForward(args, opts);
  }

  varlenAttentionBackward(
    args: VarlenBackwardArgs<CudaBuffer>,
    opts?: AttentionOptions,
  ): Promise<void> {
    return this.#varlen.varlenAttentionBackward(args, opts);
  }

  /** @internal The addon arguments of a KV-cache call (the decode benchmark times them with kvCacheBenchmark). */
  kvCacheNativeArgs(
    args: KvCacheAttentionArgs<CudaBuffer>,
    opts?: KvCacheOptions,
  ): ReturnType<CudaKvCacheAttention['nativeArgs']> {
    return this.#kv.nativeArgs(args, opts);
  }
}

/**
 * Open a CUDA device as core's `DeviceMemory<CudaBuffer> & DeviceAttention<CudaBuffer>` (and the inference
 * contracts, `DeviceKvCacheAttention<CudaBuffer> & DeviceVarlenAttention<CudaBuffer>`). Throws
 * CudaUnavailableError (a BackendUnavailableError) when the addon, driver or a usable GPU is missing.
 */
export function createCudaDevice(opts: CudaDeviceOptions = {}): CudaDevice {
  const { addon, device, info } = openCudaDevice(opts);
  return new CudaDevice(addon, device, info, opts);
}

export { CudaBuffer };
