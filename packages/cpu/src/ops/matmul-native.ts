/**
 * CpuOps.matmul's float32 path where the native addon has the gemm (native/gemm_avx2.cc: packed 6 x 16
 * AVX2 + FMA register tiles, bitwise the same for any thread count): the operands' views go to the addon
 * as they are, no copies. Below NATIVE_SYNC_MACS the call runs on the calling thread alone; above it on
 * the addon's native threads, off the event loop when every operand lives in shared memory (the wasm
 * arena: a SharedArrayBuffer cannot be detached while the threads read it), else on those threads with
 * the event loop held (JS cannot run, so nothing can detach a plain ArrayBuffer under them).
 */
import { BackendOutOfMemoryError, type MatmulOptions } from '@flashattn/core';
import type { CpuAddon, NativeGemmArgs } from '../attention/flash-native.js';
import type { CpuBuffer } from './buffers.js';

/**
 * Multiply-adds below which the gemm runs synchronously on the calling thread: the async hop (libuv
 * pool + promise) plus waking a pool thread measured ~0.1 ms on this 2-vCPU machine
 * (BENCHMARKS.md issue #11 round 5), the time one thread needs for ~2^22 multiply-adds at ~40 GMAC/s.
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
