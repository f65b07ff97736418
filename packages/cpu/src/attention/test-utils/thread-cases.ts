// The attention cases of the thread-count tests (flash-native.test.ts, flash-simd.test.ts): one case's
// views over fresh random buffers of a CpuOps, the packed (B, N, 3, H, D) layout where Nq = Nk and
// Hq = Hk (q, k, v read in place from one buffer), contiguous (B, N, H, D) views otherwise.
import {
  contiguousView,
  createRng,
  packedQkvViews,
  type AttentionOptions,
  type StridedView,
} from '@flashattn/core';
import type { CpuBuffer } from '../../ops/buffers.js';
import type { CpuOps } from '../../ops/cpu-ops.js';

export interface ThreadCase {
  name: string;
  B: number;
  Nq: number;
  Nk: number;
  Hq: number;
  Hk: number;
  D: number;
  opts: AttentionOptions;
}

export interface ThreadCaseInputs {
  q: StridedView<CpuBuffer>;
  k: StridedView<CpuBuffer>;
  v: StridedView<CpuBuffer>;
  /** (B, Nq, Hq, D) and its buffer */
  out: StridedView<CpuBuffer>;
  outBuf: Float32Array;
  /** (B, Hq, Nq) */
  lse: Float32Array;
  /** A float32 buffer of n standard normals from the same stream (dout, for the backward). */
  rand: (n: number) => Float32Array;
  /** Packed layout: the one (B, N, 3, H, D) buffer's size; contiguous: null. */
  packedFloats: number | null;
}

/** The case's inputs on `ops`, every value drawn from `seed`; out and lse allocated (zeros). */
export function threadCaseInputs(ops: CpuOps, c: ThreadCase, seed: number): ThreadCaseInputs {
  const rng = createRng(seed);
  const rand = (n: number): Float32Array => {
    const a = ops.alloc(n, 'float32') as Float32Array;
    for (let i = 0; i < n; i++) a[i] = rng.normal();
    return a;
  };
  const { B, Nq, Nk, Hq, Hk, D } = c;
  const packed = Nq === Nk && Hq === Hk;
  const views = packed
    ? packedQkvViews(rand(B * Nq * 3 * Hq * D), B, Nq, Hq, D)
    : {
        q: contiguousView(rand(B * Nq * Hq * D), [B, Nq, Hq, D]),
        k: contiguousView(rand(B * Nk * Hk * D), [B, Nk, Hk, D]),
        v: contiguousView(rand(B * Nk * Hk * D), [B, Nk, Hk, D]),
      };
  const outBuf = ops.alloc(B * Nq * Hq * D, 'float32') as Float32Array;
  return {
    ...views,
    out: contiguousView(outBuf, [B, Nq, Hq, D]),
    outBuf,
    lse: ops.alloc(B * Hq * Nq, 'float32') as Float32Array,
    rand,
    packedFloats: packed ? B * Nq * 3 * Hq * D : null,
  };
}
