/**
 * CudaBuffer: the opaque device buffer handle of `createCudaDevice()` (core's `DeviceMemory<Buf>`). A buffer is a
 * window (element offset, length, dtype) into one allocation from CUDA's stream-ordered pool; `view` makes more
 * windows into the same memory. Freeing the allocation (stream-ordered) invalidates every window of it; an
 * allocation no buffer refers to any more is freed by a FinalizationRegistry.
 */
import type { BufferDType } from '@flashattn/core';
import type { CudaAddon, DevicePtr } from './native.js';

/** One cudaMallocAsync'd block. */
interface Allocation {
  readonly addon: CudaAddon;
  readonly device: number;
  readonly ptr: DevicePtr;
  readonly bytes: number;
  freed: boolean;
}

interface Held {
  addon: CudaAddon;
  device: number;
  ptr: DevicePtr;
}

const finalizer = new FinalizationRegistry<Held>((held) => {
  try {
    held.addon.free(held.device, held.ptr);
  } catch {
    // The device may be gone (sticky error, process exit); nothing more can be done from a finaliser.
  }
});

interface BufferState {
  allocation: Allocation;
  /** In elements of `dtype`. */
  offset: number;
  length: number;
  dtype: BufferDType;
  /** A view (made by `view`): cannot be freed itself. */
  isView: boolean;
}

const states = new WeakMap<CudaBuffer, BufferState>();

/** A device buffer (or a view of one) on a CUDA device. Opaque: use the device's methods. */
export class CudaBuffer {
  /** CUDA device index. */
  readonly device: number;

  /** @internal Use `createCudaDevice().alloc` / `.view`. */
  constructor(state: BufferState) {
    this.device = state.allocation.device;
    states.set(this, state);
  }

  get dtype(): BufferDType {
    return states.get(this)!.dtype;
  }

  get length(): number {
    return states.get(this)!.length;
  }

  toString(): string {
    const s = states.get(this)!;
    return `CudaBuffer(cuda:${this.device}, ${s.dtype}[${s.length}]${s.isView ? ` at +${s.offset}` : ''})`;
  }
}

/** Internal state of a buffer, or undefined for anything that is not a CudaBuffer. */
export function bufferState(b: unknown): BufferState | undefined {
  return b instanceof CudaBuffer ? states.get(b) : undefined;
}

/** A new root buffer over a fresh allocation; the allocation is freed when no buffer refers to it any more. */
export function newAllocation(
  addon: CudaAddon,
  device: number,
  ptr: DevicePtr,
  bytes: number,
  length: number,
  dtype: BufferDType,
): CudaBuffer {
  const allocation: Allocation = { addon, device, ptr, bytes, freed: false };
  finalizer.register(allocation, { addon, device, ptr }, allocation);
  return new CudaBuffer({ allocation, offset: 0, length, dtype, isView: false });
}

/** A view sharing `parent`'s allocation. */
export function newView(parent: BufferState, offset: number, length: number): CudaBuffer {
  return new CudaBuffer({
    allocation: parent.allocation,
    offset: parent.offset + offset,
    length,
    dtype: parent.dtype,
    isView: true,
  });
}

/** Mark the allocation freed (every window of it becomes unusable) and return what to free on the stream. */
export function retireAllocation(s: BufferState): Held {
  s.allocation.freed = true;
  finalizer.unregister(s.allocation);
  return { addon: s.allocation.addon, device: s.allocation.device, ptr: s.allocation.ptr };
}
