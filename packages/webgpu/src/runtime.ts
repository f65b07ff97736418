/**
 * A thin layer over one GPUDevice: the program manager (pipelines, bindings, uniforms: program.ts), a
 * pool of scratch storage buffers reused by size, and error scopes turned into typed errors.
 */
import { BackendExecutionError, BackendOutOfMemoryError } from '@flashattn/core';
import { ProgramManager } from './program.js';

// GPUBufferUsage / GPUMapMode values (spelled out: Node has no such globals without `webgpu`'s).
export const USAGE = { MAP_READ: 1, COPY_SRC: 4, COPY_DST: 8, UNIFORM: 64, STORAGE: 128 } as const;
const MAP_READ_MODE = 1;

/** Storage buffer sizes are rounded up to this many bytes (binding sizes must be multiples of 4). */
const ALIGN = 256;

export function roundUp(n: number, m: number): number {
  return Math.ceil(n / m) * m;
}

export class Runtime {
  readonly device: GPUDevice;
  readonly name: string;
  /** Every kernel dispatch goes through it. */
  readonly programs: ProgramManager;
  /** Free storage buffers by byte size. */
  private readonly free = new Map<number, GPUBuffer[]>();
  /** Bytes currently allocated on this runtime (pooled scratch and device-memory buffers), and the peak. */
  allocatedBytes = 0;
  peakBytes = 0;
  lost: GPUDeviceLostInfo | undefined;
  disposed = false;

  constructor(device: GPUDevice, name: string) {
    this.device = device;
    this.name = name;
    this.programs = new ProgramManager(device);
    void device.lost.then((info) => {
      this.lost = info;
    });
  }

  check(): void {
    if (this.disposed) throw new BackendExecutionError(this.name, 'the backend was disposed');
    if (this.lost) {
      throw new BackendExecutionError(
        this.name,
        `device lost (${this.lost.reason}): ${this.lost.message}`,
      );
    }
  }

  /** A storage buffer of at least `bytes` (pooled). Throws BackendOutOfMemoryError past the device limits. */
  acquire(bytes: number): GPUBuffer {
    const size = roundUp(Math.max(bytes, 4), ALIGN);
    const list = this.free.get(size);
    const hit = list?.pop();
    if (hit) return hit;
    const lim = this.device.limits;
    if (size > lim.maxBufferSize || size > lim.maxStorageBufferBindingSize) {
      throw new BackendOutOfMemoryError(
        this.name,
        `a buffer of ${size} bytes exceeds the device limits (maxBufferSize ${lim.maxBufferSize}, ` +
          `maxStorageBufferBindingSize ${lim.maxStorageBufferBindingSize})`,
      );
    }
    const buf = this.device.createBuffer({
      size,
      usage: USAGE.STORAGE | USAGE.COPY_SRC | USAGE.COPY_DST,
    });
    this.allocatedBytes += size;
    this.peakBytes = Math.max(this.peakBytes, this.allocatedBytes);
    return buf;
  }

  /** Count `bytes` more (or fewer, if negative) allocated outside the pool (device memory's alloc / free). */
  track(bytes: number): void {
    this.allocatedBytes += bytes;
    this.peakBytes = Math.max(this.peakBytes, this.allocatedBytes);
  }

  /** Return a buffer to the pool. */
  release(buf: GPUBuffer): void {
    const list = this.free.get(buf.size) ?? [];
    list.push(buf);
    this.free.set(buf.size, list);
  }

  /** Start a new peak measurement from the bytes allocated now. */
  resetPeak(): void {
    this.peakBytes = this.allocatedBytes;
  }

  /** Destroy pooled buffers (not those in use). */
  trim(): void {
    for (const list of this.free.values()) {
      for (const b of list) {
        this.allocatedBytes -= b.size;
        b.destroy();
      }
    }
    this.free.clear();
  }

  /**
   * Write a host array at the start of `buf`. The bytes are always copied into a fresh ArrayBuffer first:
   * Dawn's writeBuffer given a view of a SharedArrayBuffer crashed the process (SIGSEGV), and a copy also
   * pads a 16-bit array of odd length to the 4-byte multiple writeBuffer needs.
   */
  upload(buf: GPUBuffer, data: ArrayBufferView): void {
    const bytes = new Uint8Array(roundUp(data.byteLength, 4));
    bytes.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    this.device.queue.writeBuffer(buf, 0, bytes);
  }

  /**
   * Run `record` (which encodes work) under validation and out-of-memory error scopes and submit it.
   * Errors become BackendExecutionError / BackendOutOfMemoryError.
   */
  async submit(record: (enc: GPUCommandEncoder) => void): Promise<void> {
    this.check();
    const dev = this.device;
    dev.pushErrorScope('out-of-memory');
    dev.pushErrorScope('validation');
    dev.pushErrorScope('internal');
    let thrown: unknown;
    try {
      const enc = dev.createCommandEncoder();
      record(enc);
      dev.queue.submit([enc.finish()]);
    } catch (e) {
      thrown = e;
    } finally {
      this.programs.releaseUniforms();
    }
    // Pop all three before awaiting, so overlapping submit() calls never interleave their scopes.
    const popped = [dev.popErrorScope(), dev.popErrorScope(), dev.popErrorScope()];
    const [internal, validation, oom] = await Promise.all(popped);
    if (oom) throw new BackendOutOfMemoryError(this.name, `out of memory: ${oom.message}`);
    if (thrown instanceof BackendExecutionError) throw thrown;
    if (validation)
      throw new BackendExecutionError(this.name, `validation error: ${validation.message}`);
    if (internal) throw new BackendExecutionError(this.name, `internal error: ${internal.message}`);
    if (thrown) throw new BackendExecutionError(this.name, String(thrown), { cause: thrown });
    this.check();
  }

  /** Copy `bytes` from a storage buffer, starting at byte `offset` (a multiple of 4), to the host. */
  async read(buf: GPUBuffer, bytes: number, offset = 0): Promise<ArrayBuffer> {
    const size = roundUp(bytes, 4);
    const staging = this.device.createBuffer({ size, usage: USAGE.MAP_READ | USAGE.COPY_DST });
    try {
      await this.submit((enc) => enc.copyBufferToBuffer(buf, offset, staging, 0, size));
      await staging.mapAsync(MAP_READ_MODE);
      const copy = staging.getMappedRange().slice(0, bytes);
      staging.unmap();
      return copy;
    } catch (e) {
      this.check();
      throw e instanceof BackendExecutionError
        ? e
        : new BackendExecutionError(this.name, String(e), { cause: e });
    } finally {
      staging.destroy();
    }
  }

  /** Wait until the queue is idle. */
  async idle(): Promise<void> {
    await this.device.queue.onSubmittedWorkDone();
  }

  dispose(ownDevice: boolean): void {
    if (this.disposed) return;
    this.trim();
    this.programs.clear();
    this.disposed = true;
    if (ownDevice) this.device.destroy();
  }
}
