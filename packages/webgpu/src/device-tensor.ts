/**
 * Device-resident tensors: a GPUBuffer plus dtype and shape, so a model can chain attention calls
 * without host round trips. 16-bit dtypes hold raw bits, two per u32 word (little endian, the same
 * bytes as core's Uint16Array); float32 holds f32.
 * An lse tensor on the device is float32 (B, Hq, Nq) and stores -1e30 where the host API says -Infinity.
 */
import type { DType } from '@flashattn/core';

export interface GPUTensor {
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly buffer: GPUBuffer;
}

/** Host value standing for lse = -Infinity on the device (a fully masked row). */
export const LSE_MASKED = -1e30;
