/**
 * Strided device attention on host arrays: gather (B, N, H, D) views into contiguous arrays, run
 * attention in float64, scatter the results back through the output views.
 *
 *  - float32-stored inputs go through core's float64 oracle (`attentionReference64`,
 *    `attentionReferenceBackward64`): their values are exact float32 numbers, so this is the oracle itself;
 *  - float64-stored inputs (values a float32 tensor cannot hold) go through core's FlashAttention-2
 *    kernels run with float64 buffers and accumulation (`flashForwardKernel(..., 'float64')`), which
 *    match the oracle to ~1e-14 relative (flash-forward.test.ts) and finite differences (flash-backward.test.ts).
 */
import type { Strides4 } from '../contracts/device-attention.js';
import { DEFAULT_BLOCK_SIZE_K, DEFAULT_BLOCK_SIZE_Q } from '../flash-blocks.js';
import { flashBackwardKernel } from '../flash-backward.js';
import { flashForwardKernel } from '../flash-forward.js';
import { resolveOptions, type AttentionOptions, type AttentionShape } from '../options.js';
import { attentionReference64, attentionReferenceBackward64 } from '../reference.js';
import { fromFloat32, zeros } from '../tensor.js';

/** Where a (B, N, H, D) tensor lives in a flat array: element (b, n, h, d) at offset + b sB + n sN + h sH + d. */
export interface StridedLayout {
  readonly offset: number;
  readonly shape: readonly [number, number, number, number];
  readonly strides: Strides4;
}

/** A contiguous (B, N, H, D) copy of a strided tensor in `src`. */
export function gatherStrided(src: ArrayLike<number>, l: StridedLayout): Float64Array {
  const [B, N, H, D] = l.shape;
  const [sB, sN, sH] = l.strides;
  const out = new Float64Array(B * N * H * D);
  let x = 0;
  for (let b = 0; b < B; b++)
    for (let n = 0; n < N; n++)
      for (let h = 0; h < H; h++) {
        const o = l.offset + b * sB + n * sN + h * sH;
        for (let d = 0; d < D; d++) out[x++] = src[o + d]!;
      }
  return out;
}

/** Write a contiguous (B, N, H, D) array through a strided layout into `dst` (after `round`). */
export function scatterStrided(
  dst: { [i: number]: number },
  l: StridedLayout,
  values: ArrayLike<number>,
  round: (x: number) => number = (x) => x,
): void {
  const [B, N, H, D] = l.shape;
  const [sB, sN, sH] = l.strides;
  let x = 0;
  for (let b = 0; b < B; b++)
    for (let n = 0; n < N; n++)
      for (let h = 0; h < H; h++) {
        const o = l.offset + b * sB + n * sN + h * sH;
        for (let d = 0; d < D; d++) dst[o + d] = round(values[x++]!);
      }
}

function shapeOf(q: StridedLayout, k: StridedLayout): AttentionShape {
  const [B, Nq, Hq, D] = q.shape;
  const [, Nk, Hk] = k.shape;
  return { batch: B, seqlenQ: Nq, seqlenK: Nk, nheadsQ: Hq, nheadsK: Hk, headDim: D };
}

const f32 = (a: Float64Array, shape: readonly number[]) => fromFloat32(Float32Array.from(a), shape);

/**
 * Float64 attention forward on contiguous q (B, Nq, Hq, D), k, v (B, Nk, Hk, D).
 * `exactFloat32`: the inputs are float32 values (use the oracle); otherwise the float64 flash kernel.
 * Returns out (B, Nq, Hq, D) and lse (B, Hq, Nq), both float64.
 */
export function attentionForwardRef(
  q: Float64Array,
  k: Float64Array,
  v: Float64Array,
  qL: StridedLayout,
  kL: StridedLayout,
  opts: AttentionOptions | undefined,
  exactFloat32: boolean,
): { out: Float64Array; lse: Float64Array } {
  const s = shapeOf(qL, kL);
  if (exactFloat32) {
    const r = attentionReference64(f32(q, qL.shape), f32(k, kL.shape), f32(v, kL.shape), opts);
    return { out: r.out, lse: r.lse };
  }
  const r = flashForwardKernel(
    q,
    k,
    v,
    s,
    resolveOptions(opts, s.headDim),
    DEFAULT_BLOCK_SIZE_Q,
    DEFAULT_BLOCK_SIZE_K,
    'float64',
  );
  return { out: Float64Array.from(r.out), lse: Float64Array.from(r.lse) };
}

/**
 * Float64 gradients of sum(out * dout) w.r.t. q, k, v (contiguous). With `exactFloat32` the oracle
 * recomputes P from q, k (out and lse are not needed); otherwise the float64 flash backward uses them.
 */
export function attentionBackwardRef(
  dout: Float64Array,
  q: Float64Array,
  k: Float64Array,
  v: Float64Array,
  out: Float64Array,
  lse: Float64Array,
  qL: StridedLayout,
  kL: StridedLayout,
  opts: AttentionOptions | undefined,
  exactFloat32: boolean,
): { dq: Float64Array; dk: Float64Array; dv: Float64Array } {
  const s = shapeOf(qL, kL);
  if (exactFloat32) {
    const g = attentionReferenceBackward64(
      f32(dout, qL.shape),
      f32(q, qL.shape),
      f32(k, kL.shape),
      f32(v, kL.shape),
      zeros(qL.shape),
      Float32Array.from(lse),
      opts,
    );
    return g;
  }
  const g = flashBackwardKernel(
    dout,
    q,
    k,
    v,
    out,
    lse,
    s,
    resolveOptions(opts, s.headDim),
    DEFAULT_BLOCK_SIZE_Q,
    DEFAULT_BLOCK_SIZE_K,
    'float64',
  );
  return { dq: Float64Array.from(g.dq), dk: Float64Array.from(g.dk), dv: Float64Array.from(g.dv) };
}
