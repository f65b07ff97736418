/**
 * createCudaBackend(): the AttentionBackend on an NVIDIA GPU. Host Tensors in and out exactly like the CPU
 * backends (so the conformance suite runs unchanged), or CudaTensors in and out with no host round trip.
 *
 * Storage and compute dtypes: float16 and bfloat16 run as they are. float32 inputs are computed as
 * `float32ComputeDType` says: 'bfloat16' (the default here: speed) or 'float16' convert them on the device to
 * that 16-bit dtype for the tensor-core kernels and convert the results back, so float32 accuracy is that of the
 * 16-bit dtype; 'float32' runs the float32 FMA kernels (native/kernels/*_f32.cu: no tensor cores, no TF32; issue
 * #10's "fp32 mode for checks"), float32 accuracy at a fraction of the speed. capabilities.computeDType says which.
 * Head dims 32, 64, 96, 128, 256 run directly; other sizes up to 256 are zero-padded to the next of these.
 *
 * Backward determinism: dK and dV are always deterministic. dQ is accumulated with fp32 atomics across K/V
 * blocks, whose order varies from run to run (results differ in the last bits); `deterministic: true` makes
 * the K/V blocks add in a fixed order (a per-Q-block semaphore), bit-reproducible at some speed cost. The
 * float32 compute path is always deterministic (a separate dQ pass, no atomics).
 */
import {
  AttentionInputError,
  bytesPerElement,
  numel,
  resolveOptions,
  validateBackward,
  validateForward,
  validateOptions,
  type AttentionBackend,
  type AttentionForwardResult,
  type AttentionGradients,
  type AttentionOptions,
  type AttentionShape,
  type BackendCapabilities,
  type DType,
  type Tensor,
} from '@flashattn/core';
import { CudaTensor, isCudaTensor } from './device-tensor.js';
import { CudaUnavailableError, mapCudaError } from './errors.js';
import { explainCudaError } from './availability.js';
import {
  convertRows,
  loadAddon,
  memcpyHost,
  type CudaAddon,
  type DeviceInfo,
  type DevicePtr,
  type NativeShape,
} from './native.js';
import { deviceQueue, type SerialQueue } from './queue.js';

export interface CudaBackendOptions {
  /** CUDA device index (default 0). */
  device?: number;
  /** Make dQ bit-reproducible (fixed order of the K/V blocks' additions). Default false. */
  deterministic?: boolean;
  /**
   * What float32 inputs are computed in: 'float32' (the float32 FMA kernels), or 'bfloat16' / 'float16' (the
   * tensor-core kernels on a 16-bit copy). Default 'bfloat16' for createCudaBackend / createCudaDevice, 'float32'
   * for createCudaOps.
   */
  float32ComputeDType?: Float32ComputeDType;
  /**
   * @internal Test-only: run a deliberately broken float32 kernel (the conformance suite must fail it).
   * 'drop-last-key-block': every float32 kernel skips the last key block a row sees. Needs float32ComputeDType
   * 'float32'; not an option of the provider.
   */
  testFault?: CudaTestFault;
}

/** The compute dtypes float32 storage can run in. */
export type Float32ComputeDType = 'float32' | 'bfloat16' | 'float16';
export const FLOAT32_COMPUTE_DTYPES: readonly Float32ComputeDType[] = [
  'float32',
  'bfloat16',
  'float16',
];
/** @internal The test-only faults of the float32 kernels and their ids in the addon (include/flash_f32.cuh). */
export type CudaTestFault = 'drop-last-key-block';
export const TEST_FAULT_ID: Record<CudaTestFault, number> = { 'drop-last-key-block': 1 };

/** Head dims the kernels are compiled for; others are zero-padded up to the next one. */
export const KERNEL_HEAD_DIMS = [32, 64, 96, 128, 256] as const;
export const MAX_HEAD_DIM = 256;

export function paddedHeadDim(d: number): number {
  const p = KERNEL_HEAD_DIMS.find((k) => k >= d);
  if (p === undefined)
    throw new AttentionInputError('q.shape[3] (headdim)', `at most ${MAX_HEAD_DIM}`, d);
  return p;
}

const DTYPE_ID: Record<DType, number> = { float32: 0, float16: 1, bfloat16: 2 };

/** A forward result on the device: out (B, Nq, Hq, D) in q's dtype, lse (B, Hq, Nq) float32. */
export interface CudaForwardResult {
  out: CudaTensor;
  lse: CudaTensor;
}
export interface CudaGradients {
  dq: CudaTensor;
  dk: CudaTensor;
  dv: CudaTensor;
}

type AnyTensor = Tensor | CudaTensor;

export class CudaBackend implements AttentionBackend {
  readonly name: string;
  readonly capabilities: BackendCapabilities;
  readonly device: number;
  readonly deviceInfo: DeviceInfo;
  readonly deterministic: boolean;
  readonly float32ComputeDType: Float32ComputeDType;
  readonly #testFault: number;
  readonly #addon: CudaAddon;
  readonly #queue: SerialQueue;
  #disposed = false;

  constructor(addon: CudaAddon, device: number, info: DeviceInfo, opts: CudaBackendOptions) {
    this.#addon = addon;
    this.device = device;
    this.deviceInfo = info;
    this.deterministic = opts.deterministic ?? false;
    this.float32ComputeDType = opts.float32ComputeDType ?? 'bfloat16';
    this.#testFault = opts.testFault ? TEST_FAULT_ID[opts.testFault] : 0;
    this.#queue = deviceQueue(device);
    this.name = `cuda:${device} (${info.name})`;
    const f32 = this.float32ComputeDType;
    this.capabilities = {
      dtypes: ['float32', 'float16', 'bfloat16'],
      maxHeadDim: MAX_HEAD_DIM,
      computeDType: (dtype: DType): DType => (dtype === 'float32' ? f32 : dtype),
    };
  }

  #computeDType(dtype: DType): DType {
    return dtype === 'float32' ? this.float32ComputeDType : dtype;
  }

  #check(): void {
    if (this.#disposed) throw new Error(`${this.name}: backend used after dispose()`);
  }

  /** Run `task` after every earlier call on this device, mapping CUDA errors to typed errors. */
  #run<R>(task: () => Promise<R>): Promise<R> {
    this.#check();
    return this.#queue.run(async () => {
      try {
        return await task();
      } catch (e) {
        throw mapCudaError(e, this.name);
      }
    });
  }

  #malloc(bytes: number): DevicePtr {
    return this.#addon.malloc(this.device, bytes);
  }

  #free(ptrs: DevicePtr[]): void {
    for (const p of ptrs) this.#addon.free(this.device, p);
  }

  // ---- device tensors ----------------------------------------------------------------------------------

  /** Copy a host tensor to the device, converting it to `dtype` (default: its own) on the device. */
  upload(t: Tensor, dtype: DType = t.dtype): Promise<CudaTensor> {
    return this.#run(async () => {
      const shape = [...t.shape];
      const cols = shape.length ? shape[shape.length - 1]! : 1;
      const rows = cols === 0 ? 0 : numel(shape) / cols;
      const raw = this.#malloc(numel(shape) * bytesPerElement(t.dtype));
      if (dtype === t.dtype) {
        try {
          await memcpyHost(this.#addon, this.device, raw, t.data, true);
        } catch (e) {
          this.#free([raw]);
          throw e;
        }
        return new CudaTensor(this.#addon, this.device, raw, dtype, shape);
      }
      let dst: DevicePtr | undefined;
      try {
        await memcpyHost(this.#addon, this.device, raw, t.data, true);
        dst = this.#malloc(numel(shape) * bytesPerElement(dtype));
        convertRows(this.#addon, this.device, {
          src: raw,
          srcDtype: DTYPE_ID[t.dtype],
          dst,
          dstDtype: DTYPE_ID[dtype],
          rows,
          srcCols: cols,
          dstCols: cols,
        });
      } catch (e) {
        if (dst !== undefined) this.#free([dst]);
        throw e;
      } finally {
        this.#free([raw]);
      }
      return new CudaTensor(this.#addon, this.device, dst, dtype, shape);
    });
  }

  /** Copy a device tensor to the host, converting to `dtype` (default: its own) on the device first. */
  download(t: CudaTensor, dtype: DType = t.dtype): Promise<Tensor> {
    return this.#run(() => this.#download(t.ptr, t.dtype, t.shape, dtype));
  }

  async #download(
    ptr: DevicePtr,
    srcDtype: DType,
    shape: readonly number[],
    dtype: DType,
  ): Promise<Tensor> {
    const n = numel(shape);
    const data = dtype === 'float32' ? new Float32Array(n) : new Uint16Array(n);
    if (srcDtype === dtype) {
      await memcpyHost(this.#addon, this.device, ptr, data, false);
    } else {
      const cols = shape[shape.length - 1] ?? 1;
      const tmp = this.#malloc(n * bytesPerElement(dtype));
      try {
        convertRows(this.#addon, this.device, {
          src: ptr,
          srcDtype: DTYPE_ID[srcDtype],
          dst: tmp,
          dstDtype: DTYPE_ID[dtype],
          rows: cols === 0 ? 0 : n / cols,
          srcCols: cols,
          dstCols: cols,
        });
        await memcpyHost(this.#addon, this.device, tmp, data, false);
      } finally {
        this.#free([tmp]);
      }
    }
    return { dtype, shape: [...shape], data } as Tensor;
  }

  // ---- staging between the caller's layout and the kernels' (compute dtype, padded head dim) -------------

  async #stage(t: AnyTensor, cdt: DType, dp: number, owned: DevicePtr[]): Promise<DevicePtr> {
    const shape = t.shape;
    const d = shape[3]!;
    const rows = numel(shape) / d;
    if (isCudaTensor(t)) {
      if (t.dtype === cdt && d === dp) return t.ptr;
      const dst = this.#malloc(rows * dp * bytesPerElement(cdt));
      owned.push(dst);
      convertRows(this.#addon, this.device, {
        src: t.ptr,
        srcDtype: DTYPE_ID[t.dtype],
        dst,
        dstDtype: DTYPE_ID[cdt],
        rows,
        srcCols: d,
        dstCols: dp,
      });
      return dst;
    }
    const raw = this.#malloc(numel(shape) * bytesPerElement(t.dtype));
    owned.push(raw);
    await memcpyHost(this.#addon, this.device, raw, t.data, true);
    if (t.dtype === cdt && d === dp) return raw;
    const dst = this.#malloc(rows * dp * bytesPerElement(cdt));
    owned.push(dst);
    convertRows(this.#addon, this.device, {
      src: raw,
      srcDtype: DTYPE_ID[t.dtype],
      dst,
      dstDtype: DTYPE_ID[cdt],
      rows,
      srcCols: d,
      dstCols: dp,
    });
    return dst;
  }

  /** A kernel output (cdt, dp) as the caller's (dtype, d): a CudaTensor, or a host Tensor when `host`. */
  async #unstage(
    ptr: DevicePtr,
    cdt: DType,
    dp: number,
    dtype: DType,
    shape: readonly number[],
    host: boolean,
    owned: DevicePtr[],
  ): Promise<Tensor | CudaTensor> {
    const d = shape[3]!;
    const rows = numel(shape) / d;
    let final = ptr;
    if (cdt !== dtype || d !== dp) {
      final = this.#malloc(rows * d * bytesPerElement(dtype));
      convertRows(this.#addon, this.device, {
        src: ptr,
        srcDtype: DTYPE_ID[cdt],
        dst: final,
        dstDtype: DTYPE_ID[dtype],
        rows,
        srcCols: dp,
        dstCols: d,
      });
      owned.push(ptr);
    }
    if (host) {
      owned.push(final);
      return this.#download(final, dtype, shape, dtype);
    }
    return new CudaTensor(this.#addon, this.device, final, dtype, shape);
  }

  #nativeShape(
    shape: AttentionShape,
    cdt: DType,
    dp: number,
    opts: AttentionOptions | undefined,
  ): NativeShape {
    if (shape.batch > 65535 || shape.nheadsQ > 65535) {
      throw new AttentionInputError(
        'q.shape',
        'batch and nheads at most 65535 (CUDA grid limits)',
        `[${shape.batch}, ${shape.nheadsQ}]`,
      );
    }
    const o = resolveOptions(opts, shape.headDim);
    return {
      dtype: DTYPE_ID[cdt],
      batch: shape.batch,
      nheadsQ: shape.nheadsQ,
      nheadsK: shape.nheadsK,
      seqlenQ: shape.seqlenQ,
      seqlenK: shape.seqlenK,
      headDim: dp,
      softmaxScale: o.softmaxScale,
      windowLeft: o.windowLeft,
      windowRight: o.windowRight,
      ...(this.#testFault ? { testFault: this.#testFault } : {}),
    };
  }

  // ---- AttentionBackend -------------------------------------------------------------------------------

  forward(
    q: CudaTensor,
    k: CudaTensor,
    v: CudaTensor,
    opts?: AttentionOptions,
  ): Promise<CudaForwardResult>;
  forward(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    opts?: AttentionOptions,
  ): Promise<AttentionForwardResult>;
  async forward(
    q: AnyTensor,
    k: AnyTensor,
    v: AnyTensor,
    opts?: AttentionOptions,
  ): Promise<AttentionForwardResult | CudaForwardResult> {
    const device = isCudaTensor(q);
    const shape = device
      ? validateDevice(
          [
            ['q', q],
            ['k', k],
            ['v', v],
          ],
          this.device,
          opts,
        )
      : validateForward(q as Tensor, k as Tensor, v as Tensor, opts);
    const dp = paddedHeadDim(shape.headDim);
    const cdt = this.#computeDType(q.dtype);
    const ns = this.#nativeShape(shape, cdt, dp, opts);
    return this.#run(async () => {
      const owned: DevicePtr[] = [];
      let outPtr: DevicePtr | undefined;
      let lsePtr: DevicePtr | undefined;
      try {
        const qp = await this.#stage(q, cdt, dp, owned);
        const kp = await this.#stage(k, cdt, dp, owned);
        const vp = await this.#stage(v, cdt, dp, owned);
        outPtr = this.#malloc(
          shape.batch * shape.seqlenQ * shape.nheadsQ * dp * bytesPerElement(cdt),
        );
        lsePtr = this.#malloc(shape.batch * shape.nheadsQ * shape.seqlenQ * 4);
        this.#addon.forward(this.device, { ...ns, q: qp, k: kp, v: vp, out: outPtr, lse: lsePtr });
        const outShape = [shape.batch, shape.seqlenQ, shape.nheadsQ, shape.headDim];
        const lseShape = [shape.batch, shape.nheadsQ, shape.seqlenQ];
        const op = outPtr;
        outPtr = undefined;
        const out = await this.#unstage(op, cdt, dp, q.dtype, outShape, !device, owned);
        if (device) {
          const lse = new CudaTensor(this.#addon, this.device, lsePtr, 'float32', lseShape);
          lsePtr = undefined;
          await this.#addon.synchronize(this.device); // surface kernel faults here, not in a later call
          return { out: out as CudaTensor, lse };
        }
        const lse = new Float32Array(numel(lseShape));
        await memcpyHost(this.#addon, this.device, lsePtr, lse, false);
        return { out: out as Tensor, lse };
      } finally {
        if (outPtr !== undefined) owned.push(outPtr);
        if (lsePtr !== undefined) owned.push(lsePtr);
        this.#free(owned);
      }
    });
  }

  backward(
    dout: CudaTensor,
    q: CudaTensor,
    k: CudaTensor,
    v: CudaTensor,
    out: CudaTensor,
    lse: CudaTensor,
    opts?: AttentionOptions,
  ): Promise<CudaGradients>;
  backward(
    dout: Tensor,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    out: Tensor,
    lse: Float32Array,
    opts?: AttentionOptions,
  ): Promise<AttentionGradients>;
  async backward(
    dout: AnyTensor,
    q: AnyTensor,
    k: AnyTensor,
    v: AnyTensor,
    out: AnyTensor,
    lse: Float32Array | CudaTensor,
    opts?: AttentionOptions,
  ): Promise<AttentionGradients | CudaGradients> {
    const device = isCudaTensor(q);
    let shape: AttentionShape;
    if (device) {
      shape = validateDevice(
        [
          ['q', q],
          ['k', k],
          ['v', v],
          ['dout', dout],
          ['out', out],
        ],
        this.device,
        opts,
      );
      const want = [shape.batch, shape.nheadsQ, shape.seqlenQ];
      if (!isCudaTensor(lse) || lse.dtype !== 'float32' || lse.shape.join() !== want.join()) {
        throw new AttentionInputError(
          'lse',
          `a float32 CudaTensor of shape [${want.join(', ')}]`,
          isCudaTensor(lse) ? `${lse.dtype} [${lse.shape.join(', ')}]` : lse,
        );
      }
    } else {
      shape = validateBackward(
        dout as Tensor,
        q as Tensor,
        k as Tensor,
        v as Tensor,
        out as Tensor,
        lse as Float32Array,
        opts,
      );
    }
    const dp = paddedHeadDim(shape.headDim);
    const cdt = this.#computeDType(q.dtype);
    const ns = this.#nativeShape(shape, cdt, dp, opts);
    return this.#run(async () => {
      const owned: DevicePtr[] = [];
      const grads: DevicePtr[] = [];
      try {
        const qp = await this.#stage(q, cdt, dp, owned);
        const kp = await this.#stage(k, cdt, dp, owned);
        const vp = await this.#stage(v, cdt, dp, owned);
        const op = await this.#stage(out, cdt, dp, owned);
        const dop = await this.#stage(dout, cdt, dp, owned);
        let lp: DevicePtr;
        if (isCudaTensor(lse)) {
          lp = lse.ptr;
        } else {
          lp = this.#malloc(lse.length * 4);
          owned.push(lp);
          await memcpyHost(this.#addon, this.device, lp, lse, true);
        }
        const qBytes = shape.batch * shape.seqlenQ * shape.nheadsQ * dp * bytesPerElement(cdt);
        const kBytes = shape.batch * shape.seqlenK * shape.nheadsK * dp * bytesPerElement(cdt);
        grads.push(this.#malloc(qBytes), this.#malloc(kBytes), this.#malloc(kBytes));
        const [dq, dk, dv] = grads as [DevicePtr, DevicePtr, DevicePtr];
        this.#addon.backward(this.device, {
          ...ns,
          q: qp,
          k: kp,
          v: vp,
          out: op,
          dout: dop,
          lse: lp,
          dq,
          dk,
          dv,
          deterministic: this.deterministic,
        });
        const qShape = [shape.batch, shape.seqlenQ, shape.nheadsQ, shape.headDim];
        const kShape = [shape.batch, shape.seqlenK, shape.nheadsK, shape.headDim];
        const taken = grads.splice(0);
        const results: (Tensor | CudaTensor)[] = [];
        try {
          results.push(await this.#unstage(taken[0]!, cdt, dp, q.dtype, qShape, !device, owned));
          results.push(await this.#unstage(taken[1]!, cdt, dp, q.dtype, kShape, !device, owned));
          results.push(await this.#unstage(taken[2]!, cdt, dp, q.dtype, kShape, !device, owned));
          if (device) await this.#addon.synchronize(this.device);
        } catch (e) {
          for (const r of results) if (isCudaTensor(r)) r.dispose();
          for (const p of taken.slice(results.length)) owned.push(p);
          throw e;
        }
        const [rq, rk, rv] = results;
        return device
          ? { dq: rq as CudaTensor, dk: rk as CudaTensor, dv: rv as CudaTensor }
          : { dq: rq as Tensor, dk: rk as Tensor, dv: rv as Tensor };
      } finally {
        this.#free(grads);
        this.#free(owned);
      }
    });
  }

  /** Wait for all work on this device. */
  synchronize(): Promise<void> {
    return this.#run(() => this.#addon.synchronize(this.device));
  }

  /**
   * Waits for the device's work, then hands the memory pool's cached free blocks back to the driver (the pool
   * keeps freed memory between calls, which made the backward 1-6% faster; README tuning log). Memory of live
   * CudaTensors, or in use by another backend on the same device, stays.
   */
  async dispose(): Promise<void> {
    if (this.#disposed) return;
    await this.#queue.run(async () => {
      try {
        await this.#addon.synchronize(this.device);
        this.#addon.trimMemPool(this.device);
      } catch {
        // a sticky device error; nothing left to release here
      }
    });
    this.#disposed = true;
  }
}

/** Shapes of device tensors, with the same checks and messages as core's validateForward. */
function validateDevice(
  named: [string, AnyTensor][],
  device: number,
  opts: AttentionOptions | undefined,
): AttentionShape {
  for (const [name, t] of named) {
    if (!isCudaTensor(t))
      throw new AttentionInputError(name, 'a CudaTensor (all inputs on the device, or none)', t);
    if (t.disposed)
      throw new AttentionInputError(name, 'a live CudaTensor', 'a disposed CudaTensor');
    if (t.device !== device)
      throw new AttentionInputError(`${name}.device`, `device ${device}`, t.device);
  }
  const axes = ['batch', 'seqlen', 'nheads', 'headdim'];
  const [[, q], [, k], [, v]] = named as [
    [string, CudaTensor],
    [string, CudaTensor],
    [string, CudaTensor],
  ];
  for (const [name, t] of named) {
    if (t.shape.length !== 4) {
      throw new AttentionInputError(
        `${name}.shape`,
        'rank 4 (batch, seqlen, nheads, headdim)',
        `rank ${t.shape.length}`,
      );
    }
    t.shape.forEach((x, axis) => {
      if (!Number.isInteger(x) || x < 1)
        throw new AttentionInputError(
          `${name}.shape[${axis}] (${axes[axis]})`,
          'a positive integer',
          x,
        );
    });
    if (t.dtype !== q.dtype)
      throw new AttentionInputError(`${name}.dtype`, `${q.dtype} to match q.dtype`, t.dtype);
  }
  const same = (
    name: string,
    t: CudaTensor,
    axis: number,
    refName: string,
    ref: CudaTensor,
  ): void => {
    if (t.shape[axis] !== ref.shape[axis]) {
      throw new AttentionInputError(
        `${name}.shape[${axis}] (${axes[axis]})`,
        `${ref.shape[axis]} to match ${refName}.shape[${axis}]`,
        t.shape[axis],
      );
    }
  };
  same('k', k, 0, 'q', q);
  same('k', k, 3, 'q', q);
  for (let axis = 0; axis < 4; axis++) same('v', v, axis, 'k', k);
  if (q.shape[2]! % k.shape[2]! !== 0) {
    throw new AttentionInputError(
      'k.shape[2] (nheads)',
      `a divisor of q's nheads ${q.shape[2]} (GQA/MQA needs nheads_q % nheads_k === 0)`,
      k.shape[2],
    );
  }
  validateOptions(opts);
  const shape: AttentionShape = {
    batch: q.shape[0]!,
    seqlenQ: q.shape[1]!,
    seqlenK: k.shape[1]!,
    nheadsQ: q.shape[2]!,
    nheadsK: k.shape[2]!,
    headDim: q.shape[3]!,
  };
  for (const name of ['dout', 'out']) {
    const t = named.find(([n]) => n === name)?.[1];
    if (!t) continue;
    if (t.dtype !== named[0]![1].dtype)
      throw new AttentionInputError(
        `${name}.dtype`,
        `${named[0]![1].dtype} to match q.dtype`,
        t.dtype,
      );
    if (t.shape.join() !== named[0]![1].shape.join()) {
      throw new AttentionInputError(
        `${name}.shape`,
        `[${named[0]![1].shape.join(', ')}] to match q`,
        `[${t.shape.join(', ')}]`,
      );
    }
  }
  return shape;
}

/**
 * float32ComputeDType is one of FLOAT32_COMPUTE_DTYPES, and testFault (test-only) a known fault with float32
 * compute; else E (AttentionInputError / OpsInputError) naming `${prefix}.float32ComputeDType` / `.testFault`.
 */
export function checkFloat32Options(
  opts: CudaBackendOptions,
  E: new (argument: string, expected: string, got: unknown) => Error,
  prefix: string,
): void {
  const cdt = opts.float32ComputeDType;
  if (cdt !== undefined && !FLOAT32_COMPUTE_DTYPES.includes(cdt)) {
    throw new E(`${prefix}.float32ComputeDType`, "'float32', 'bfloat16' or 'float16'", cdt);
  }
  const fault = opts.testFault;
  if (fault !== undefined) {
    if (!Object.hasOwn(TEST_FAULT_ID, fault))
      throw new E(`${prefix}.testFault`, Object.keys(TEST_FAULT_ID).join(' | '), fault);
    if (cdt !== 'float32')
      throw new E(`${prefix}.testFault`, "no fault unless float32ComputeDType is 'float32'", fault);
  }
}

/** The checked options and the opened device shared by `createCudaBackend` and `createCudaDevice`. */
export function openCudaDevice(opts: CudaBackendOptions): {
  addon: CudaAddon;
  device: number;
  info: DeviceInfo;
} {
  const device = opts.device ?? 0;
  if (!Number.isInteger(device) || device < 0)
    throw new AttentionInputError('opts.device', 'a non-negative integer', device);
  checkFloat32Options(opts, AttentionInputError, 'opts');
  if (opts.deterministic !== undefined && typeof opts.deterministic !== 'boolean') {
    throw new AttentionInputError('opts.deterministic', 'a boolean', opts.deterministic);
  }
  const load = loadAddon();
  if (!load.addon) throw new CudaUnavailableError(load.reason);
  let count: number;
  let info: DeviceInfo;
  try {
    count = load.addon.deviceCount();
    if (device >= count) {
      throw new CudaUnavailableError(
        count === 0 ? 'no CUDA device found' : `device ${device} requested, ${count} present`,
      );
    }
    info = load.addon.deviceInfo(device);
  } catch (e) {
    const mapped = mapCudaError(e, 'cuda');
    // Say it in terms of what the user has ("no NVIDIA driver found", not "driver version is insufficient").
    throw mapped instanceof CudaUnavailableError
      ? new CudaUnavailableError(explainCudaError(mapped.reason, load.cudaVersion), { cause: e })
      : new CudaUnavailableError(mapped.message, { cause: e });
  }
  if (info.major < 8) {
    throw new CudaUnavailableError(
      `${info.name} has compute capability ${info.major}.${info.minor}; the kernels need >= 8.0 (mma.sync bf16, cp.async)`,
    );
  }
  return { addon: load.addon, device, info };
}

/** Create the CUDA backend. Throws CudaUnavailableError when the addon, driver or a usable GPU is missing. */
export function createCudaBackend(opts: CudaBackendOptions = {}): CudaBackend {
  const { addon, device, info } = openCudaDevice(opts);
  return new CudaBackend(addon, device, info, opts);
}
