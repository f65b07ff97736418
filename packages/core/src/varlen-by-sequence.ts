/**
 * A generic `DeviceVarlenAttention` driver over core's `DeviceAttention<Buf>`: packed variable-length batches,
 * forward and backward, by one strided flash call per sequence on offset views. Sequence b's q rows are the
 * view (1, Lq_b, Hq, D) at q.offset + cuSeqlensQ[b] * q.strides[1], its k, v rows likewise, so the flash kernels
 * read the packed buffers in place and their masks (bottom-right aligned) are exactly the per-sequence masks.
 * lse is (Hq, total_q) in the varlen contract but (1, Hq, Lq_b) for one flash call: a per-sequence float32
 * scratch that the backend's `copyLse` moves (one copy per head).
 *
 * Why per-sequence calls rather than per-block sequence bounds in the kernels (FlashAttention-2's BlockInfo
 * reading cu_seqlens): the flash kernels stay untouched (shared with training and their conformance), and every
 * sequence gets their exact mask code. The cost is B calls (plus 2 Hq small copies) per varlen call; a server
 * batching many short sequences would want the BlockInfo route (one launch for the batch).
 *
 * The caller validates first (validateVarlenForwardArgs / validateVarlenBackwardArgs, plus its own dtype and
 * grid rules) and passes the problem it returned, so a rejected call writes nothing. Sequences with no query
 * write nothing in the forward; in the backward their keys get dk = dv = 0, and queries with no key dq = 0 (the
 * strided backward's Nq = 0 / Nk = 0 cases).
 */
import type { DeviceAttention, StridedView } from './contracts/device-attention.js';
import type { VarlenBackwardArgs, VarlenForwardArgs, VarlenProblem } from './contracts/kv-cache.js';
import type { AttentionOptions } from './options.js';

/** Where one sequence's lse rows sit: columns [q0, q0 + len) of the packed (Hq, totalQ) lse. */
export interface VarlenLseRows {
  Hq: number;
  totalQ: number;
  q0: number;
  len: number;
}

/** What the per-sequence driver needs from a backend. */
export interface VarlenBySequenceDeps<Buf> {
  /** The backend's strided flash attention. */
  attention: DeviceAttention<Buf>;
  /** A float32 buffer of n elements (the per-sequence lse scratch), and its release. */
  alloc(n: number, dtype: 'float32'): Buf;
  free(buf: Buf): void;
  /**
   * For h < Hq: the packed lse[h * totalQ + q0, + len) -> scratch[h * len, + len) when toScratch, else back.
   * Settles once the copies are ordered before the backend's next call.
   */
  copyLse(lse: Buf, scratch: Buf, rows: VarlenLseRows, toScratch: boolean): Promise<void>;
}

/** Rows [start, start + len) of a packed (1, total, H, D) view, as a (1, len, H, D) view of the same buffer. */
export function varlenRows<T>(v: StridedView<T>, start: number, len: number): StridedView<T> {
  return {
    buffer: v.buffer,
    offset: v.offset + start * v.strides[1],
    shape: [1, len, v.shape[2], v.shape[3]],
    strides: v.strides,
  };
}

/** Each packed sequence's rows: queries [q0, q0 + lq), keys [k0, k0 + lk). */
function* sequences(
  p: VarlenProblem,
): Generator<{ q0: number; lq: number; k0: number; lk: number }> {
  for (let b = 0; b < p.B; b++) {
    const [q0, k0] = [p.cuQ[b]!, p.cuK[b]!];
    yield { q0, lq: p.cuQ[b + 1]! - q0, k0, lk: p.cuK[b + 1]! - k0 };
  }
}

/** The varlen forward (out, lse) by one attentionForward per sequence; `p` is the validated problem. */
export async function varlenForwardBySequence<Buf>(
  args: VarlenForwardArgs<Buf>,
  opts: AttentionOptions | undefined,
  p: VarlenProblem,
  deps: VarlenBySequenceDeps<Buf>,
): Promise<void> {
  for (const { q0, lq, k0, lk } of sequences(p)) {
    if (lq === 0 || p.Hq === 0) continue;
    const scratch = deps.alloc(p.Hq * lq, 'float32'); // (1, Hq, Lq_b)
    try {
      await deps.attention.attentionForward(
        {
          q: varlenRows(args.q, q0, lq),
          k: varlenRows(args.k, k0, lk),
          v: varlenRows(args.v, k0, lk),
          out: varlenRows(args.out, q0, lq),
          lse: scratch,
        },
        opts,
      );
      await deps.copyLse(args.lse, scratch, { Hq: p.Hq, totalQ: p.totalQ, q0, len: lq }, false);
    } finally {
      deps.free(scratch);
    }
  }
}

/** The varlen backward (dq, dk, dv) by one attentionBackward per sequence; `p` is the validated problem. */
export async function varlenBackwardBySequence<Buf>(
  args: VarlenBackwardArgs<Buf>,
  opts: AttentionOptions | undefined,
  p: VarlenProblem,
  deps: VarlenBySequenceDeps<Buf>,
): Promise<void> {
  for (const { q0, lq, k0, lk } of sequences(p)) {
    if ((lq === 0 && lk === 0) || p.Hq === 0) continue;
    const scratch = deps.alloc(Math.max(p.Hq * lq, 1), 'float32'); // (1, Hq, Lq_b)
    try {
      if (lq > 0)
        await deps.copyLse(args.lse, scratch, { Hq: p.Hq, totalQ: p.totalQ, q0, len: lq }, true);
      await deps.attention.attentionBackward(
        {
          dout: varlenRows(args.dout, q0, lq),
          q: varlenRows(args.q, q0, lq),
          k: varlenRows(args.k, k0, lk),
          v: varlenRows(args.v, k0, lk),
          out: varlenRows(args.out, q0, lq),
          lse: scratch,
          dq: varlenRows(args.dq, q0, lq),
          dk: varlenRows(args.dk, k0, lk),
          dv: varlenRows(args.dv, k0, lk),
        },
        opts,
      );
    } finally {
      deps.free(scratch);
    }
  }
}
