/**
 * Device-resident tensors: a cudaMallocAsync'd buffer plus dtype and shape (B, N, H, D layout for attention).
 * dispose() frees it in stream order; a FinalizationRegistry frees it too if it is dropped undisposed.
 */
import { bytesPerElement, numel, type DType } from '@flashattn/core';
import type { CudaAddon, DevicePtr } from './native.js';

interface Held {
  addon: CudaAddon;
  device: number;
  ptr: DevicePtr;
}

const registry = new FinalizationRegistry<Held>((held) => {
  try {
    held.addon.free(held.device, held.ptr);
  } catch {
    // The device may be gone (sticky error, process exit); nothing more can be done from a finaliser.
  }
});

export class CudaTensor {
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly device: number;
  readonly #addon: CudaAddon;
  #ptr: DevicePtr | undefined;

  /** Wraps a buffer the caller owns no longer (the tensor frees it). */
  constructor(
    addon: CudaAddon,
    device: number,
    ptr: DevicePtr,
    dtype: DType,
    shape: readonly number[],
  ) {
    this.#addon = addon;
    this.device = device;
    this.#ptr = ptr;
    this.dtype = dtype;
    this.shape = Object.freeze([...shape]);
    registry.register(this, { addon, device, ptr }, this);
  }

  /** The device pointer; throws once disposed. */
  get ptr(): DevicePtr {
    if (this.#ptr === undefined) throw new Error('CudaTensor used after dispose()');
    return this.#ptr;
  }

  get disposed(): boolean {
    return this.#ptr === undefined;
  }

  get numel(): number {
    return numel(this.shape);
  }

  get byteLength(): number {
    return this.numel * bytesPerElement(this.dtype);
  }

  /** Free the buffer (stream-ordered: work already enqueued that reads it still sees it). Idempotent. */
  dispose(): void {
    if (this.#ptr === undefined) return;
    const ptr = this.#ptr;
    this.#ptr = undefined;
    registry.unregister(this);
    this.#addon.free(this.device, ptr);
  }
}

/** True for a CudaTensor (device-resident) argument. */
export function isCudaTensor(x: unknown): x is CudaTensor {
  return x instanceof CudaTensor;
}
