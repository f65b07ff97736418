/**
 * CpuOps.matmul's float32 path where the native addon has the gemm (native/gemm_avx2.cc: packed 6 x 16
 * AVX2 + FMA register tiles, bitwise the same for any thread count): the operands' views go to the addon
 * as they are, no copies. Below NATIVE_SYNC_MACS the call runs on the calling thread alone; above it on
 * the addon's pool threads, off the event loop when every operand lives in shared memory (the wasm
 * arena: a SharedArrayBuffer cannot be detached while the threads read it), else on those threads with
 * the event loop held (JS cannot run, so nothing can detach a plain ArrayBuffer under them).
 */
import { BackendOutOfMemoryError, type MatmulOptions } from '@flashattn/core';
import type { CpuAddon, NativeGemmArgs } from '../attention/flash-native.js';
import type { CpuBuffer } from './buffers.js';

/**
 * Multiply-adds below which the gemm runs synchronously on the calling thread: handing a call to the
 * addon's pool and settling its promise costs ~20-30 us here; two threads beat one from 2^22
 * multiply-adds (79-82 against 107-108 us), tie at 2^21 (54-62 against 58-59 us) and lose below, two
 * runs on 2026-12-07, load 0.1-0.4 (apps/bench/figures/cpu/r5/gemm-sync-threshold.log has the second;
 * packages/cpu/native/dev/gemm-sync-threshold.mjs).
 */
export const NATIVE_SYNC_MACS = 1 << 22;

export interface NativeGemm {
  addon: CpuAddon;
  /** 0 in production; 1 and 2 are the broken test variants (NativeGemmArgs.variant). */
  variant: 0 | 1 | 2;
}

const shared = (x: Float32Array | null): boolean =>
  x === null || x.buffer instanceof SharedArrayBuffer;

/** out (M, N) (+)= op(a) op(b) [+ bias] on the addon; arguments already checked by CpuOps. */
export async function matmulNative(
  g: NativeGemm,
  threads: number,
  out: Float32Array, // (M, N)
  a: Float32Array, // (M, K) or (K, M) with transA
  b: Float32Array, // (K, N) or (N, K) with transB
  bias: Float32Array | null, // (N)
  M: number,
  N: number,
  K: number,
  opts: MatmulOptions<CpuBuffer>,
): Promise<void> {
  const args: NativeGemmArgs = {
    M,
    N,
    K,
    transA: opts.transA ?? false,
    transB: opts.transB ?? false,
    accumulate: opts.accumulate ?? false,
    a,
    b,
    c: out,
    bias,
    threads,
    variant: g.variant,
  };
  try {
    if (M * N * K < NATIVE_SYNC_MACS) g.addon.gemmSync!({ ...args, threads: 1 });
    else if (shared(out) && shared(a) && shared(b) && shared(bias)) await g.addon.gemm!(args);
    else g.addon.gemmSync!(args);
  } catch (e) {
    if ((e as { code?: string }).code === 'ENOMEM')
      throw new BackendOutOfMemoryError('cpu', `matmul: ${(e as Error).message}`, { cause: e });
    throw e;
  }
}
