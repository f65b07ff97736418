/**
 * Device memory on WebGPU: core's `DeviceMemory<WebGPUBuffer>`. A `WebGPUBuffer` is an opaque handle: a
 * GPUBuffer plus an element offset, a length and a dtype; `view` makes another handle on the same
 * GPUBuffer, so views share memory. Kernels bind the whole GPUBuffer and get the element offset as a
 * uniform (storage-buffer binding offsets would have to be multiples of 256 bytes).
 *
 * Element layouts: float32 and int32 4 bytes; float16 and bfloat16 raw bits, two per u32 word (little
 * endian, the same bytes as a host Uint16Array). 16-bit data at an odd element offset or of odd length
 * is not 4-byte aligned, which `writeBuffer` and `copyBufferToBuffer` require: such uploads and copies go
 * through the convert-to-view kernel, downloads read the enclosing words.
 */
import {
  BackendOutOfMemoryError,
  bfloat16BitsToFloat32,
  bufferDTypeBytes,
  float16BitsToFloat32,
  float32ToBFloat16Bits,
  float32ToFloat16Bits,
  OpsInputError,
  type BufferDType,
  type DeviceMemory,
  type HostArray,
} from '@flashattn/core';
import {
  CONVERT_WG,
  convertToViewProgram,
  wordAligned,
  type ConvertKind,
} from './kernels/convert-to-view.wgsl.js';
import { roundUp, USAGE, type Runtime } from './runtime.js';

/** Shared by a buffer and all its views. */
interface Allocation {
  readonly gpu: GPUBuffer;
  /** The memory this handle belongs to (a handle from another backend is an input error). */
  readonly owner: object;
  freed: boolean;
}

/** Opaque handle of WebGPU device memory (or a window into it). */
export class WebGPUBuffer {
  /** @internal */
  readonly allocation: Allocation;
  /** Element offset into the GPUBuffer. */
  readonly offset: number;
  /** Length in elements. */
  readonly length: number;
  readonly dtype: BufferDType;
  /** Whether this handle came from `alloc` (and may be freed) rather than `view`. */
  readonly isRoot: boolean;

  /** @internal */
  constructor(
    allocation: Allocation,
    offset: number,
    length: number,
    dtype: BufferDType,
    isRoot: boolean,
  ) {
    this.allocation = allocation;
    this.offset = offset;
    this.length = length;
    this.dtype = dtype;
    this.isRoot = isRoot;
  }

  /** The underlying GPUBuffer (shared by every view of it). */
  get gpuBuffer(): GPUBuffer {
    return this.allocation.gpu;
  }
}

/** Dtypes the WebGPU backend allocates (WGSL has no f64). */
export const WEBGPU_BUFFER_DTYPES: readonly BufferDType[] = [
  'float32',
  'float16',
  'bfloat16',
  'int32',
];

/** Host array kind of a value, or undefined for anything else. */
function hostKind(data: unknown): 'f32' | 'f64' | 'i32' | 'u16' | undefined {
  if (data instanceof Float32Array) return 'f32';
  if (data instanceof Float64Array) return 'f64';
  if (data instanceof Int32Array) return 'i32';
  if (data instanceof Uint16Array) return 'u16';
  return undefined;
}

/**
 * The bytes to hand to the device for `data` stored as `dtype`: a fresh ArrayBuffer of our own. Never a
 * view of the caller's memory, so a SharedArrayBuffer (which Dawn's writeBuffer must not be given: it
 * crashed the process with SIGSEGV), a resizable or a later-mutated buffer cannot reach the native side.
 */
export function hostBytes(
  name: string,
  data: HostArray,
  dtype: BufferDType,
): Uint8Array<ArrayBuffer> {
  const kind = hostKind(data);
  if (!kind) {
    throw new OpsInputError(name, 'a Float32Array, Float64Array, Int32Array or Uint16Array', data);
  }
  const n = data.length;
  if (dtype === 'int32') {
    if (kind !== 'i32') throw new OpsInputError(name, 'an Int32Array for an int32 buffer', data);
    return new Uint8Array(Int32Array.from(data as Int32Array).buffer);
  }
  if (kind === 'i32') throw new OpsInputError(name, `float data for a ${dtype} buffer`, data);
  if (dtype === 'float32') {
    if (kind === 'u16')
      throw new OpsInputError(
        name,
        'float data (Float32Array or Float64Array) for a float32 buffer',
        data,
      );
    return new Uint8Array(Float32Array.from(data as Float32Array | Float64Array).buffer);
  }
  // 16-bit: raw bits as given, or rounded to nearest even from float32 / float64 values
  const bits = new Uint16Array(n);
  if (kind === 'u16') bits.set(data as Uint16Array);
  else {
    const f = dtype === 'float16' ? float32ToFloat16Bits : float32ToBFloat16Bits;
    const src = data as Float32Array | Float64Array;
    for (let i = 0; i < n; i++) bits[i] = f(src[i]!); // core's conversion (round to odd first for float64: no double rounding)
  }
  return new Uint8Array(bits.buffer);
}

/** Float32 values of 16-bit raw bits (the host-side half of 16-bit <-> f32 conversion). */
export function bitsToFloat32(bits: Uint16Array, dtype: 'float16' | 'bfloat16'): Float32Array {
  const f = dtype === 'float16' ? float16BitsToFloat32 : bfloat16BitsToFloat32;
  const out = new Float32Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = f(bits[i]!);
  return out;
}

const convertKindOf = (d: BufferDType): ConvertKind =>
  d === 'float16' ? 'f16x2' : d === 'bfloat16' ? 'bf16x2' : 'f32';

/** DeviceMemory<WebGPUBuffer> over one Runtime. */
export class WebGPUMemory implements DeviceMemory<WebGPUBuffer> {
  readonly dtypes = WEBGPU_BUFFER_DTYPES;
  private readonly owner = {};

  constructor(private readonly rt: Runtime) {}

  /** Check that `buf` is a live handle of this memory; returns it typed. */
  check(name: string, buf: unknown): WebGPUBuffer {
    if (!(buf instanceof WebGPUBuffer))
      throw new OpsInputError(name, 'a WebGPUBuffer from alloc or view', buf);
    if (buf.allocation.owner !== this.owner) {
      throw new OpsInputError(name, 'a buffer of this backend', 'a buffer of another backend');
    }
    if (buf.allocation.freed) throw new OpsInputError(name, 'a live buffer', 'a freed buffer');
    return buf;
  }

  alloc(n: number, dtype: BufferDType): WebGPUBuffer {
    this.rt.check();
    if (!Number.isInteger(n) || n < 0) throw new OpsInputError('n', 'a non-negative integer', n);
    if (!WEBGPU_BUFFER_DTYPES.includes(dtype)) {
      throw new OpsInputError('dtype', `one of ${WEBGPU_BUFFER_DTYPES.join(', ')}`, dtype);
    }
    const size = roundUp(Math.max(n * bufferDTypeBytes(dtype), 4), 4);
    const lim = this.rt.device.limits;
    if (size > lim.maxBufferSize || size > lim.maxStorageBufferBindingSize) {
      throw new BackendOutOfMemoryError(
        this.rt.name,
        `a buffer of ${size} bytes exceeds the device limits (maxBufferSize ${lim.maxBufferSize}, ` +
          `maxStorageBufferBindingSize ${lim.maxStorageBufferBindingSize})`,
      );
    }
    // WebGPU zero-initialises new buffers.
    const gpu = this.rt.device.createBuffer({
      size,
      usage: USAGE.STORAGE | USAGE.COPY_SRC | USAGE.COPY_DST,
    });
    this.rt.track(size);
    return new WebGPUBuffer({ gpu, owner: this.owner, freed: false }, 0, n, dtype, true);
  }

  /** Wrap a caller's GPUBuffer (created with STORAGE | COPY_SRC | COPY_DST usage); the caller keeps it (free() rejects it). */
  wrap(gpu: GPUBuffer, dtype: BufferDType, length?: number): WebGPUBuffer {
    const n = length ?? Math.floor(gpu.size / bufferDTypeBytes(dtype));
    if (!Number.isInteger(n) || n < 0 || n * bufferDTypeBytes(dtype) > gpu.size) {
      throw new OpsInputError(
        'length',
        `at most ${Math.floor(gpu.size / bufferDTypeBytes(dtype))} elements`,
        length,
      );
    }
    return new WebGPUBuffer({ gpu, owner: this.owner, freed: false }, 0, n, dtype, false);
  }

  view(buf: WebGPUBuffer, offset: number, length: number): WebGPUBuffer {
    const b = this.check('buf', buf);
    if (!Number.isInteger(offset) || offset < 0)
      throw new OpsInputError('offset', 'a non-negative integer', offset);
    if (!Number.isInteger(length) || length < 0 || offset + length > b.length) {
      throw new OpsInputError(
        'length',
        `a non-negative integer with offset + length <= ${b.length}`,
        length,
      );
    }
    return new WebGPUBuffer(b.allocation, b.offset + offset, length, b.dtype, false);
  }

  lengthOf(buf: WebGPUBuffer): number {
    return this.check('buf', buf).length;
  }

  dtypeOf(buf: WebGPUBuffer): BufferDType {
    return this.check('buf', buf).dtype;
  }

  /** Byte range of a handle and whether it is 4-byte aligned at both ends. */
  private range(b: WebGPUBuffer): { start: number; bytes: number; aligned: boolean } {
    const bpe = bufferDTypeBytes(b.dtype);
    const start = b.offset * bpe;
    const bytes = b.length * bpe;
    return { start, bytes, aligned: start % 4 === 0 && bytes % 4 === 0 };
  }

  async zero(buf: WebGPUBuffer): Promise<void> {
    const b = this.check('buf', buf);
    if (b.length === 0) return;
    const r = this.range(b);
    if (r.aligned) {
      await this.rt.submit((enc) => enc.clearBuffer(b.gpuBuffer, r.start, r.bytes));
      return;
    }
    await this.upload(b, new Uint16Array(b.length));
  }

  async upload(buf: WebGPUBuffer, data: HostArray): Promise<void> {
    const b = this.check('buf', buf);
    this.rt.check();
    if (hostKind(data) && data.length !== b.length) {
      throw new OpsInputError(
        'data',
        `${b.length} elements (the buffer's length)`,
        `${data.length} elements`,
      );
    }
    const bytes = hostBytes('data', data, b.dtype);
    if (b.length === 0) return;
    const r = this.range(b);
    if (r.aligned) {
      // inside submit's error scopes, so a failed write is a typed error
      await this.rt.submit(() => this.rt.device.queue.writeBuffer(b.gpuBuffer, r.start, bytes));
      return;
    }
    // 16-bit at an odd offset or of odd length: stage the bits at offset 0, then convert into place.
    const staging = this.alloc(b.length, b.dtype);
    try {
      this.rt.device.queue.writeBuffer(staging.gpuBuffer, 0, padTo4(bytes));
      await this.copy(b, staging);
    } finally {
      this.free(staging);
    }
  }

  async download(buf: WebGPUBuffer): Promise<HostArray> {
    const b = this.check('buf', buf);
    const r = this.range(b);
    const lo = Math.floor(r.start / 4) * 4;
    const hi = roundUp(r.start + r.bytes, 4);
    const words = r.bytes === 0 ? new ArrayBuffer(0) : await this.rt.read(b.gpuBuffer, hi - lo, lo);
    const bytes = words.slice(r.start - lo, r.start - lo + r.bytes);
    switch (b.dtype) {
      case 'float32':
        return new Float32Array(bytes);
      case 'int32':
        return new Int32Array(bytes);
      default:
        return new Uint16Array(bytes);
    }
  }

  async copy(dst: WebGPUBuffer, src: WebGPUBuffer): Promise<void> {
    const d = this.check('dst', dst);
    const s = this.check('src', src);
    if (d.length !== s.length) {
      throw new OpsInputError('dst', `${s.length} elements (src's length)`, `${d.length} elements`);
    }
    if ((d.dtype === 'int32') !== (s.dtype === 'int32')) {
      throw new OpsInputError(
        'dst.dtype',
        `${s.dtype === 'int32' ? 'int32' : 'a float dtype'} like src`,
        d.dtype,
      );
    }
    if (d.length === 0) return;
    const rd = this.range(d);
    const rs = this.range(s);
    if (d.dtype === s.dtype && rd.aligned && rs.aligned) {
      if (
        d.gpuBuffer === s.gpuBuffer &&
        rd.start < rs.start + rs.bytes &&
        rs.start < rd.start + rd.bytes
      ) {
        throw new OpsInputError('dst', 'a range not overlapping src', 'an overlapping range');
      }
      await this.rt.submit((enc) =>
        enc.copyBufferToBuffer(s.gpuBuffer, rs.start, d.gpuBuffer, rd.start, rd.bytes),
      );
      return;
    }
    if (d.gpuBuffer === s.gpuBuffer) {
      // A kernel cannot bind one GPUBuffer both read-only and writable: go through a scratch copy.
      const tmp = this.alloc(s.length, s.dtype);
      try {
        await this.copy(tmp, s);
        await this.copy(d, tmp);
      } finally {
        this.free(tmp);
      }
      return;
    }
    const n = d.length;
    await this.rt.submit((enc) => {
      const pass = enc.beginComputePass();
      this.recordConvert(
        pass,
        s.gpuBuffer,
        s.offset,
        convertKindOf(s.dtype),
        d.gpuBuffer,
        convertKindOf(d.dtype),
        {
          shape: [1, 1, 1, n],
          offset: d.offset,
          strides: [0, 0, 0, 1],
        },
      );
      pass.end();
    });
  }

  /**
   * Record dst view = src (contiguous from element srcOff), converting kinds: the 16-bit writes of the
   * attention outputs and the unaligned copies. `dst.offset` is absolute in the GPUBuffer.
   */
  recordConvert(
    pass: GPUComputePassEncoder,
    src: GPUBuffer,
    srcOff: number,
    srcKind: ConvertKind,
    dst: GPUBuffer,
    dstKind: ConvertKind,
    view: { shape: readonly number[]; offset: number; strides: readonly number[] },
  ): void {
    const [B, N, H, D] = view.shape as [number, number, number, number];
    const n = B * N * H * D;
    if (n === 0) return;
    const mode =
      dstKind !== 'f32' && wordAligned(D, view.offset, view.strides) ? 'words' : 'halves';
    const count = dstKind !== 'f32' && mode === 'words' ? n / 2 : n;
    const groups = Math.ceil(count / CONVERT_WG);
    const gx = Math.min(groups, this.rt.device.limits.maxComputeWorkgroupsPerDimension);
    const program = convertToViewProgram({ src: srcKind, dst: dstKind, mode }, [
      gx,
      Math.ceil(groups / gx),
      1,
    ]);
    const [sB, sN, sH] = view.strides as [number, number, number];
    this.rt.programs.run(
      pass,
      program,
      { n, N, H, D, srcOff, dst: [view.offset, sB, sN, sH] },
      { src, dst },
    );
  }

  free(buf: WebGPUBuffer): void {
    const b = this.check('buf', buf);
    if (!b.isRoot) throw new OpsInputError('buf', 'a buffer from alloc (not a view)', 'a view');
    b.allocation.freed = true;
    this.rt.track(-b.gpuBuffer.size);
    b.gpuBuffer.destroy();
  }
}

function padTo4(bytes: Uint8Array<ArrayBuffer>): Uint8Array<ArrayBuffer> {
  if (bytes.byteLength % 4 === 0) return bytes;
  const out = new Uint8Array(roundUp(bytes.byteLength, 4));
  out.set(bytes);
  return out;
}
