/**
 * CpuOps.matmul's float32 path where the native addon has the gemm (native/gemm_avx2.cc: packed 6 x 16
 * AVX2 + FMA register tiles; for M <= 8 rows native/gemv_avx2.cc, nothing packed, B read once in its own
 * layout; both bitwise the same for any thread count): the operands' views go to the addon as they are,
 * no copies. Below NATIVE_SYNC_MACS (either path) the call runs on the calling thread alone; above it on the addon's pool threads, off the event loop when every
 * operand lives in shared memory (the wasm arena: a SharedArrayBuffer cannot be detached while the
 * threads read it), else on those threads with the event loop held (JS cannot run, so nothing can
 * detach a plain ArrayBuffer under them).
 */
import { BackendOutOfMemoryError, type MatmulOptions } from '@flashattn/core';
import type { CpuAddon, NativeGemmArgs, NativeGemmKernel } from '../attention/flash-native.js';
import type { CpuBuffer } from './buffers.js';

/**
 * Multiply-adds below which the gemm runs synchronously on the calling thread: handing a call to the
 * addon's pool and settling its promise costs ~20-30 us here; two threads beat one from 2^22
 * multiply-adds (79-82 against 107-108 us), tie at 2^21 (54-62 against 58-59 us) and lose below, two
 * runs on 2026-12-07, load 0.1-0.4 (apps/bench/figures/cpu/r5/gemm-sync-threshold.log has the second;
 * packages/cpu/native/dev/gemm-sync-threshold.mjs).
 */
export const NATIVE_SYNC_MACS = 1 << 22;

/*
 * The small-M path (M <= the addon's gemvMaxM rows) follows the same rule. It reads B once from memory,
 * so its time follows K N rather than the multiply-adds, and alone, at M = 1 with B cycling through 64
 * MiB of copies, two pool threads beat one from K N = 590k floats on the quiet machine (1.13-1.72x; 0.97-
 * 1.04x at 442k; packages/cpu/native/dev/gemv-sync-threshold.mjs, 2026-12-07, apps/bench/figures/cpu/
 * gemv/gemv-sync-threshold-{1..5}.log; 0.84-0.98x everywhere with another process on the second core).
 * But in a decode step (GPT-2 generate with the KV cache, 4 alternating rounds, load 0.7-1.2) the pool
 * from K N = 2^19 was slower than this rule: small 813-885 against 730-780 ms, gpt2-124m 4219-4660
 * against 4076-4622 ms (apps/bench/figures/cpu/gemv/kn-vs-mac.log). So the decode shapes below 2^22
 * multiply-adds stay on the calling thread (gpt2-124m's head, 38.6M, goes to the pool).
 */

export interface NativeGemm {
  addon: CpuAddon;
  /** 0 in production; 1, 2 and 3 are the broken test variants (NativeGemmArgs.variant). */
  variant: 0 | 1 | 2 | 3;
}

const shared = (x: Float32Array | null): boolean =>
  x === null || x.buffer instanceof SharedArrayBuffer;

/**
 * out (M, N) (+)= op(a) op(b) [+ bias] on the addon; arguments already checked by CpuOps. Returns the
 * kernel that ran ('gemv': the small-M path; 'gemm': packed; undefined from an addon that predates it).
 */
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
): Promise<NativeGemmKernel | undefined> {
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
    if (M * N * K < NATIVE_SYNC_MACS) return g.addon.gemmSync!({ ...args, threads: 1 });
    if (shared(out) && shared(a) && shared(b) && shared(bias)) return await g.addon.gemm!(args);
    return g.addon.gemmSync!(args);
  } catch (e) {
    if ((e as { code?: string }).code === 'ENOMEM')
      throw new BackendOutOfMemoryError('cpu', `matmul: ${(e as Error).message}`, { cause: e });
    throw e;
  }
}
