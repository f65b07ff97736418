/**
 * Attention on device buffers, with strides: FlashAttention's own API shape. q, k and v are read in
 * place from wherever they live (typically the packed (B, T, 3, H, D) output of the qkv projection),
 * and dq, dk, dv are written in place (into the packed (B, T, 3, H, D) gradient), with no split or merge
 * copies. Semantics (mask, scale, GQA, fully masked rows) are those of the host `AttentionBackend`
 * (attention-backend.ts) and core's float64 reference; the conformance suite checks both.
 *
 * Conventions every backend follows:
 *   - a view's offset and strides count elements of its buffer's dtype, not bytes;
 *   - the head-dim stride is 1 (rows of D contiguous), the others are free (any order, may overlap
 *     only for inputs);
 *   - lse is a contiguous float32 (B, Hq, Nq) buffer; a fully masked row has lse = -Infinity and out = 0;
 *   - dq, dk, dv are overwritten, not accumulated; under GQA/MQA dk, dv are summed over each group;
 *   - NaN or Infinity in q, k or v is not checked (use `checkFinite` on host tensors to reject it). It
 *     reaches every output and gradient element that depends on it, and never an element that cannot
 *     depend on it in any evaluation order (the rows that mask a NaN key, the other head-dim columns of a
 *     NaN in v). Elements a tiled kernel reaches only through a masked zero times the NaN (0 * NaN) may
 *     be NaN too, as in flash-attn's GEMM tiles; the conformance suite checks exactly this, and its
 *     `nonFinite: 'exact'` mode checks a backend that promises finite values there as well.
 */
import { AttentionInputError } from '../errors.js';
import type { AttentionOptions } from '../options.js';
import type { BackendCapabilities } from './attention-backend.js';

/** (B, N, H, D) strides in elements: batch, sequence row, head, and 1 for the head dim. */
export type Strides4 = readonly [sB: number, sN: number, sH: number, sD: 1];

/** A strided (B, N, H, D) window into a device buffer. */
export interface StridedView<Buf> {
  readonly buffer: Buf;
  /** Element offset of (0, 0, 0, 0) in `buffer`. */
  readonly offset: number;
  /** (B, N, H, D) */
  readonly shape: readonly [number, number, number, number];
  readonly strides: Strides4;
}

export interface DeviceAttentionForwardArgs<Buf> {
  q: StridedView<Buf>; // (B, Nq, Hq, D)
  k: StridedView<Buf>; // (B, Nk, Hk, D)
  v: StridedView<Buf>; // (B, Nk, Hk, D)
  out: StridedView<Buf>; // (B, Nq, Hq, D), written
  lse: Buf; // (B, Hq, Nq) float32, contiguous, written
}

export interface DeviceAttentionBackwardArgs<Buf> {
  dout: StridedView<Buf>; // (B, Nq, Hq, D)
  q: StridedView<Buf>;
  k: StridedView<Buf>;
  v: StridedView<Buf>;
  out: StridedView<Buf>; // the forward's out
  lse: Buf; // the forward's lse (B, Hq, Nq)
  dq: StridedView<Buf>; // (B, Nq, Hq, D), written
  dk: StridedView<Buf>; // (B, Nk, Hk, D), written
  dv: StridedView<Buf>; // (B, Nk, Hk, D), written
}

/** FlashAttention-2 forward (Algorithm 1) and backward (Algorithm 2) over device buffers. */
export interface DeviceAttention<Buf> {
  /** Storage dtypes, head dims and compute precision of the attention kernels (conformance reads it). */
  readonly attentionCapabilities: BackendCapabilities;
  attentionForward(
    args: DeviceAttentionForwardArgs<Buf>,
    opts?: AttentionOptions,
  ): void | Promise<void>;
  attentionBackward(
    args: DeviceAttentionBackwardArgs<Buf>,
    opts?: AttentionOptions,
  ): void | Promise<void>;
}

/** Contiguous (B, N, H, D) strides. */
export function contiguousStrides(shape: readonly [number, number, number, number]): Strides4 {
  const [, N, H, D] = shape;
  return [N * H * D, H * D, D, 1];
}

/** A contiguous (B, N, H, D) view of `buffer` starting at element `offset`. */
export function contiguousView<Buf>(
  buffer: Buf,
  shape: readonly [number, number, number, number],
  offset = 0,
): StridedView<Buf> {
  return { buffer, offset, shape: [...shape] as const, strides: contiguousStrides(shape) };
}

/**
 * q, k, v views into a packed (B, T, 3, H, D) buffer, the layout of GPT-2's qkv projection
 * (B*T rows of [q | k | v], each C = H*D wide). The same helper gives dq, dk, dv into the packed gradient.
 */
export function packedQkvViews<Buf>(
  buffer: Buf,
  B: number,
  T: number,
  H: number,
  D: number,
  offset = 0,
): { q: StridedView<Buf>; k: StridedView<Buf>; v: StridedView<Buf> } {
  const C = H * D;
  const strides: Strides4 = [T * 3 * C, 3 * C, D, 1];
  const shape = [B, T, H, D] as const;
  return {
    q: { buffer, offset, shape, strides },
    k: { buffer, offset: offset + C, shape, strides },
    v: { buffer, offset: offset + 2 * C, shape, strides },
  };
}

/** Largest element index a view touches, plus one (0 for an empty view). */
export function viewExtent(v: StridedView<unknown>): number {
  const [B, N, H, D] = v.shape;
  if (B === 0 || N === 0 || H === 0 || D === 0) return 0;
  return v.offset + (B - 1) * v.strides[0] + (N - 1) * v.strides[1] + (H - 1) * v.strides[2] + D;
}

/**
 * Check a view's shape, strides and range against its buffer's length (in elements). Backends call
 * this for every view before launching anything, so a bad view is a typed error, never a fault.
 */
export function checkStridedView(
  name: string,
  v: StridedView<unknown>,
  bufferLength: number,
): void {
  if (v === null || typeof v !== 'object') {
    throw new AttentionInputError(name, 'a StridedView { buffer, offset, shape, strides }', v);
  }
  if (
    !Array.isArray(v.shape) ||
    v.shape.length !== 4 ||
    v.shape.some((s) => !Number.isInteger(s) || s < 0)
  ) {
    throw new AttentionInputError(`${name}.shape`, '4 non-negative integers (B, N, H, D)', v.shape);
  }
  if (
    !Array.isArray(v.strides) ||
    v.strides.length !== 4 ||
    v.strides.some((s) => !Number.isInteger(s) || s < 0)
  ) {
    throw new AttentionInputError(
      `${name}.strides`,
      '4 non-negative integers (sB, sN, sH, 1)',
      v.strides,
    );
  }
  if (v.strides[3] !== 1) {
    throw new AttentionInputError(
      `${name}.strides[3]`,
      '1 (head-dim elements contiguous)',
      v.strides[3],
    );
  }
  if (!Number.isInteger(v.offset) || v.offset < 0) {
    throw new AttentionInputError(`${name}.offset`, 'a non-negative integer', v.offset);
  }
  const end = viewExtent(v);
  if (end > bufferLength) {
    throw new AttentionInputError(
      `${name}`,
      `a view inside its buffer of ${bufferLength} elements`,
      `a view reaching element ${end}`,
      `offset ${v.offset}, shape [${v.shape.join(', ')}], strides [${v.strides.join(', ')}]`,
    );
  }
}

/** Views must agree on B, N, H, D where attention requires it; returns the problem sizes. */
export function deviceAttentionShape(a: {
  q: StridedView<unknown>;
  k: StridedView<unknown>;
  v: StridedView<unknown>;
}): { B: number; Nq: number; Nk: number; Hq: number; Hk: number; D: number } {
  const [B, Nq, Hq, D] = a.q.shape;
  const [Bk, Nk, Hk, Dk] = a.k.shape;
  const same = (name: string, got: readonly number[], want: readonly number[]): void => {
    if (got.some((x, i) => x !== want[i])) {
      throw new AttentionInputError(`${name}.shape`, `[${want.join(', ')}]`, `[${got.join(', ')}]`);
    }
  };
  same('k', [Bk, Dk], [B, D]);
  same('v', a.v.shape, a.k.shape);
  if (Hk === 0 || Hq % Hk !== 0) {
    throw new AttentionInputError('k.shape[2]', `a divisor of the query heads ${Hq} (GQA/MQA)`, Hk);
  }
  return { B, Nq, Nk, Hq, Hk, D };
}
