/**
 * A thin layer over one GPUDevice: a pipeline cache keyed by WGSL source, a pool of storage buffers
 * reused by size, dispatch helpers and error scopes turned into typed errors.
 */
import { BackendExecutionError, BackendOutOfMemoryError } from '@flashattn/core';

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
  private readonly pipelines = new Map<string, GPUComputePipeline>();
  /** Free storage buffers by byte size. */
  private readonly free = new Map<number, GPUBuffer[]>();
  /** Bytes currently allocated through this runtime (pooled or in use), and the peak. */
  allocatedBytes = 0;
  peakBytes = 0;
  lost: GPUDeviceLostInfo | undefined;
  disposed = false;

  constructor(device: GPUDevice, name: string) {
    this.device = device;
    this.name = name;
    void device.lost.then((info) => {
      this.lost = info;
    });
  }

  check(): void {
    if (this.disposed) throw new BackendExecutionError(this.name, 'the backend was disposed');
    if (this.lost) {
      throw new BackendExecutionError(this.name, `device lost (${this.lost.reason}): ${this.lost.message}`);
    }
  }

  /** The pipeline for `key` (which must determine the code), compiling `code()` on first use. */
  pipeline(key: string, code: () => string): GPUComputePipeline {
    let pl = this.pipelines.get(key);
    if (!pl) {
      const module = this.device.createShaderModule({ code: code(), label: key });
      pl = this.device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' }, label: key });
      this.pipelines.set(key, pl);
    }
    return pl;
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

  uniform(data: ArrayBuffer): GPUBuffer {
    const buf = this.device.createBuffer({ size: data.byteLength, usage: USAGE.UNIFORM | USAGE.COPY_DST });
    this.device.queue.writeBuffer(buf, 0, data);
    return buf;
  }

  upload(buf: GPUBuffer, data: ArrayBufferView): void {
    // writeBuffer needs a multiple of 4 bytes: a 16-bit tensor of odd length is padded with a zero.
    let bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    if (bytes.byteLength % 4 !== 0) {
      const padded = new Uint8Array(roundUp(bytes.byteLength, 4));
      padded.set(bytes);
      bytes = padded;
    }
    this.device.queue.writeBuffer(buf, 0, bytes as Uint8Array<ArrayBuffer>);
  }

  /** Record one dispatch of `pipeline` with bindings 0..n-1 into `pass`. */
  dispatch(
    pass: GPUComputePassEncoder,
    pipeline: GPUComputePipeline,
    bindings: readonly (GPUBuffer | { buffer: GPUBuffer; offset: number; size: number })[],
    groups: readonly [number, number, number],
  ): void {
    const bg = this.device.createBindGroup({
      layout: pipeline.getBindGroupLayout(0),
      entries: bindings.map((b, binding) => ({
        binding,
        resource: 'buffer' in b ? b : { buffer: b },
      })),
    });
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bg);
    pass.dispatchWorkgroups(groups[0], groups[1], groups[2]);
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
    }
    // Pop all three before awaiting, so overlapping submit() calls never interleave their scopes.
    const popped = [dev.popErrorScope(), dev.popErrorScope(), dev.popErrorScope()];
    const [internal, validation, oom] = await Promise.all(popped);
    if (oom) throw new BackendOutOfMemoryError(this.name, `out of memory: ${oom.message}`);
    if (thrown instanceof BackendExecutionError) throw thrown;
    if (validation) throw new BackendExecutionError(this.name, `validation error: ${validation.message}`);
    if (internal) throw new BackendExecutionError(this.name, `internal error: ${internal.message}`);
    if (thrown) throw new BackendExecutionError(this.name, String(thrown), { cause: thrown });
    this.check();
  }

  /** Copy `bytes` from a storage buffer to the host. */
  async read(buf: GPUBuffer, bytes: number): Promise<ArrayBuffer> {
    const size = roundUp(bytes, 4);
    const staging = this.device.createBuffer({ size, usage: USAGE.MAP_READ | USAGE.COPY_DST });
    try {
      await this.submit((enc) => enc.copyBufferToBuffer(buf, 0, staging, 0, size));
      await staging.mapAsync(MAP_READ_MODE);
      const copy = staging.getMappedRange().slice(0, bytes);
      staging.unmap();
      return copy;
    } catch (e) {
      this.check();
      throw e instanceof BackendExecutionError ? e : new BackendExecutionError(this.name, String(e), { cause: e });
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
    this.pipelines.clear();
    this.disposed = true;
    if (ownDevice) this.device.destroy();
  }
}
