/**
 * core's `DeviceVarlenAttention<CudaBuffer>`: packed variable-length batches, forward and backward, by driving
 * the strided flash kernels (CudaDevice.attentionForward / attentionBackward) once per sequence on offset views:
 * sequence b's q rows are the view (1, Lq_b, Hq, D) at q.offset + cuSeqlensQ[b] * q.strides[1], its k, v rows
 * likewise, so the kernels read the packed buffers in place and their masks (bottom-right aligned) are exactly
 * the per-sequence masks. lse is (Hq, total_q) here but (1, Hq, Lq_b) for the kernels: a per-sequence float32
 * scratch, moved with one device-to-device copy per head.
 *
 * Why per-sequence launches rather than per-CTA sequence bounds (FlashAttention-2's BlockInfo reading
 * cu_seqlens): the flash kernels stay untouched (shared with training and verified on the H100), and every
 * sequence gets their exact mask code. The cost is B launches (plus 2 Hq small copies) per call; a server
 * batching many short sequences would want the BlockInfo route (one launch for the batch).
 *
 * Every argument is validated first (core's validateVarlenForwardArgs / validateVarlenBackwardArgs, the dtypes
 * and the grid limits here), so a rejected call writes nothing. Sequences with no query write nothing in the
 * forward; in the backward their keys get dk = dv = 0, and queries with no key dq = 0 (the strided backward's
 * Nq = 0 / Nk = 0 cases).
 */
import {
  AttentionInputError,
  validateVarlenBackwardArgs,
  validateVarlenForwardArgs,
  type AttentionOptions,
  type BufferDType,
  type DeviceAttention,
  type DeviceMemory,
  type DeviceVarlenAttention,
  type StridedView,
  type VarlenBackwardArgs,
  type VarlenForwardArgs,
} from '@flashattn/core';
import type { CudaBuffer } from './cuda-buffer.js';
import type { InferenceDeps, LiveBuffer } from './inference-kv-cache.js';

export interface VarlenDeps extends InferenceDeps {
  /** The device itself: its strided flash attention and its memory. */
  attention: DeviceAttention<CudaBuffer> & DeviceMemory<CudaBuffer>;
  maxHeadDim: number;
}

/** Rows [start, start + len) of a packed (1, total, H, D) view. */
function rows<T>(v: StridedView<T>, start: number, len: number): StridedView<T> {
  return {
    buffer: v.buffer,
    offset: v.offset + start * v.strides[1],
    shape: [1, len, v.shape[2], v.shape[3]],
    strides: v.strides,
  };
}

const FLOATS: readonly BufferDType[] = ['float32', 'float16', 'bfloat16'];

export class CudaVarlenAttention implements DeviceVarlenAttention<CudaBuffer> {
  constructor(private readonly deps: VarlenDeps) {}

  /** Resolve the views' buffers and lse (AttentionInputError naming them), then check their dtypes. */
  #buffers(args: object, names: readonly string[]): Map<unknown, LiveBuffer> {
    const a = args as Record<string, unknown>;
    const m = new Map<unknown, LiveBuffer>();
    const views: Array<[string, LiveBuffer]> = [];
    for (const name of names) {
      const v = a[name] as { buffer?: unknown } | null | undefined;
      if (v !== null && typeof v === 'object') {
        const b = this.deps.live(`${name}.buffer`, v.buffer);
        m.set(v.buffer, b);
        views.push([name, b]);
      }
    }
    const lse = this.deps.live('lse', a.lse);
    m.set(a.lse, lse);
    return m;
  }

  #dtypes(
    bufs: Map<unknown, LiveBuffer>,
    views: Array<[string, StridedView<CudaBuffer>]>,
    lse: unknown,
  ): void {
    const [first, v0] = views[0]!;
    const d0 = bufs.get(v0.buffer)!.dtype;
    if (!FLOATS.includes(d0))
      throw new AttentionInputError(`${first}.buffer dtype`, FLOATS.join(', '), d0);
    for (const [name, v] of views) {
      const d = bufs.get(v.buffer)!.dtype;
      if (d !== d0) throw new AttentionInputError(`${name}.buffer dtype`, `${d0} like ${first}`, d);
    }
    const dl = bufs.get(lse)!.dtype;
    if (dl !== 'float32') throw new AttentionInputError('lse dtype', 'float32', dl);
  }

  /** Copy lse rows between the packed (Hq, total_q) at [., q0) and a (1, Hq, len) scratch. */
  #copyLse(
    lse: LiveBuffer,
    totalQ: number,
    q0: number,
    len: number,
    Hq: number,
    scratch: LiveBuffer,
    toScratch: boolean,
  ): void {
    const { addon, device } = this.deps;
    for (let h = 0; h < Hq; h++) {
      const packed = lse.ptr(h * totalQ + q0);
      const mine = scratch.ptr(h * len);
      if (toScratch) addon.copyDevice(device, mine, packed, len * 4);
      else addon.copyDevice(device, packed, mine, len * 4);
    }
  }

  #gridLimits(Hq: number): void {
    if (Hq > 65535)
      throw new AttentionInputError('q.shape[2] (nheads)', 'at most 65535 (CUDA grid limits)', Hq);
  }

  async varlenAttentionForward(
    args: VarlenForwardArgs<CudaBuffer>,
    opts?: AttentionOptions,
  ): Promise<void> {
    const { attention: dev } = this.deps;
    this.deps.check();
    const bufs =
      args !== null && typeof args === 'object'
        ? this.#buffers(args, ['q', 'k', 'v', 'out'])
        : new Map<unknown, LiveBuffer>();
    const p = validateVarlenForwardArgs(args, opts, (b) => bufs.get(b)?.length ?? 0, this.deps);
    this.#dtypes(
      bufs,
      [
        ['q', args.q],
        ['k', args.k],
        ['v', args.v],
        ['out', args.out],
      ],
      args.lse,
    );
    this.#gridLimits(p.Hq);
    const lse = bufs.get(args.lse)!;
    for (let b = 0; b < p.B; b++) {
      const q0 = p.cuQ[b]!;
      const lq = p.cuQ[b + 1]! - q0;
      const k0 = p.cuK[b]!;
      const lk = p.cuK[b + 1]! - k0;
      if (lq === 0 || p.Hq === 0) continue;
      const scratchBuf = dev.alloc(p.Hq * lq, 'float32'); // (1, Hq, Lq_b)
      try {
        await dev.attentionForward(
          {
            q: rows(args.q, q0, lq),
            k: rows(args.k, k0, lk),
            v: rows(args.v, k0, lk),
            out: rows(args.out, q0, lq),
            lse: scratchBuf,
          },
          opts,
        );
        const scratch = this.deps.live('lse scratch', scratchBuf);
        await this.deps.run(() => this.#copyLse(lse, p.totalQ, q0, lq, p.Hq, scratch, false));
      } finally {
        dev.free(scratchBuf);
      }
    }
  }

  async varlenAttentionBackward(
    args: VarlenBackwardArgs<CudaBuffer>,
    opts?: AttentionOptions,
  ): Promise<void> {
    const { attention: dev } = this.deps;
    this.deps.check();
    const bufs =
      args !== null && typeof args === 'object'
        ? this.#buffers(args, ['dout', 'q', 'k', 'v', 'out', 'dq', 'dk', 'dv'])
        : new Map<unknown, LiveBuffer>();
    const p = validateVarlenBackwardArgs(args, opts, (b) => bufs.get(b)?.length ?? 0, this.deps);
    this.#dtypes(
      bufs,
      [
        ['q', args.q],
        ['k', args.k],
        ['v', args.v],
        ['out', args.out],
        ['dout', args.dout],
        ['dq', args.dq],
        ['dk', args.dk],
        ['dv', args.dv],
      ],
      args.lse,
    );
    this.#gridLimits(p.Hq);
    const lse = bufs.get(args.lse)!;
    for (let b = 0; b < p.B; b++) {
      const q0 = p.cuQ[b]!;
      const lq = p.cuQ[b + 1]! - q0;
      const k0 = p.cuK[b]!;
      const lk = p.cuK[b + 1]! - k0;
      if ((lq === 0 && lk === 0) || p.Hq === 0) continue;
      const scratchBuf = dev.alloc(Math.max(p.Hq * lq, 1), 'float32'); // (1, Hq, Lq_b)
      try {
        if (lq > 0) {
          const scratch = this.deps.live('lse scratch', scratchBuf);
          await this.deps.run(() => this.#copyLse(lse, p.totalQ, q0, lq, p.Hq, scratch, true));
        }
        await dev.attentionBackward(
          {
            dout: rows(args.dout, q0, lq),
            q: rows(args.q, q0, lq),
            k: rows(args.k, k0, lk),
            v: rows(args.v, k0, lk),
            out: rows(args.out, q0, lq),
            lse: scratchBuf,
            dq: rows(args.dq, q0, lq),
            dk: rows(args.dk, k0, lk),
            dv: rows(args.dv, k0, lk),
          },
          opts,
        );
      } finally {
        dev.free(scratchBuf);
      }
    }
  }
}
