/**
 * core's `DeviceVarlenAttention<WebGPUBuffer>`: packed variable-length batches, forward and backward,
 * by driving the flash forward / backward programs (attention.ts) once per sequence on offset views:
 * sequence b's q rows are the view (1, Lq_b, Hq, D) at q.offset + cuSeqlensQ[b] * q.strides[1], its
 * k, v rows likewise, so the kernels read the packed buffers in place and their masks (bottom-right
 * aligned to each sequence) are exactly the per-sequence masks. lse is (Hq, total_q) here but
 * (1, Hq, Lq_b) for the kernels: a per-sequence f32 scratch, moved with copyBufferToBuffer (one
 * copy per head and sequence).
 *
 * Why per-sequence launches rather than per-block sequence bounds in the kernels (FA2's BlockInfo
 * reading cu_seqlens): the flash programs stay untouched (shared with the training path and the other
 * backends' conformance), and every sequence gets the kernels' exact mask code. The cost is one
 * submission per sequence; measured on SwiftShader (see README, "Inference: KV cache and varlen").
 * A GPU serving many short sequences would want the BlockInfo route (one dispatch for the batch).
 *
 * Sequences with no query write nothing in the forward; in the backward their keys' dk = dv = 0 (the
 * dK/dV pass over zero queries writes zeros), and sequences with no key get dq = 0 likewise.
 */
import {
  validateVarlenBackwardArgs,
  validateVarlenForwardArgs,
  AttentionInputError,
  type AttentionOptions,
  type DeviceAttention,
  type DeviceVarlenAttention,
  type StridedView,
  type VarlenBackwardArgs,
  type VarlenForwardArgs,
} from '@flashattn/core';
import type { WebGPUBuffer, WebGPUMemory } from '../memory.js';
import type { Runtime } from '../runtime.js';

export interface VarlenDeps {
  rt: Runtime;
  mem: WebGPUMemory;
  attention: DeviceAttention<WebGPUBuffer>;
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

export class WebGPUVarlenAttention implements DeviceVarlenAttention<WebGPUBuffer> {
  constructor(private readonly deps: VarlenDeps) {}

  private checkBuffers(args: object, names: readonly string[]): void {
    const a = args as Record<string, unknown>;
    for (const name of names) {
      const v = a[name] as { buffer?: unknown } | null | undefined;
      if (v !== null && typeof v === 'object') {
        try {
          this.deps.mem.check(`${name}.buffer`, v.buffer);
        } catch (e) {
          const err = e as { expected?: string; actual?: string };
          throw new AttentionInputError(
            `${name}.buffer`,
            err.expected ?? 'a WebGPUBuffer',
            err.actual,
          );
        }
      }
    }
    try {
      this.deps.mem.check('lse', a.lse);
    } catch (e) {
      const err = e as { expected?: string; actual?: string };
      throw new AttentionInputError('lse', err.expected ?? 'a WebGPUBuffer', err.actual);
    }
  }

  /** Move per-head lse rows between (Hq, total_q) at lseOff and a (1, Hq, len) scratch. */
  private copyLse(
    enc: GPUCommandEncoder,
    lse: WebGPUBuffer,
    totalQ: number,
    start: number,
    len: number,
    Hq: number,
    scratch: WebGPUBuffer,
    toScratch: boolean,
  ): void {
    for (let h = 0; h < Hq; h++) {
      const packed = (lse.offset + h * totalQ + start) * 4;
      const mine = (scratch.offset + h * len) * 4;
      if (toScratch)
        enc.copyBufferToBuffer(lse.gpuBuffer, packed, scratch.gpuBuffer, mine, len * 4);
      else enc.copyBufferToBuffer(scratch.gpuBuffer, mine, lse.gpuBuffer, packed, len * 4);
    }
  }

  async varlenAttentionForward(
    args: VarlenForwardArgs<WebGPUBuffer>,
    opts?: AttentionOptions,
  ): Promise<void> {
    const { rt, mem, attention } = this.deps;
    rt.check();
    if (args !== null && typeof args === 'object') this.checkBuffers(args, ['q', 'k', 'v', 'out']);
    const p = validateVarlenForwardArgs(args, opts, (b) => mem.lengthOf(b), this.deps);
    const lse = mem.check('lse', args.lse);
    if (lse.dtype !== 'float32') throw new AttentionInputError('lse.dtype', 'float32', lse.dtype);
    for (let b = 0; b < p.B; b++) {
      const q0 = p.cuQ[b]!;
      const lq = p.cuQ[b + 1]! - q0;
      const k0 = p.cuK[b]!;
      const lk = p.cuK[b + 1]! - k0;
      if (lq === 0 || p.Hq === 0) continue;
      const scratch = mem.alloc(p.Hq * lq, 'float32'); // (1, Hq, Lq_b)
      try {
        await attention.attentionForward(
          {
            q: rows(args.q, q0, lq),
            k: rows(args.k, k0, lk),
            v: rows(args.v, k0, lk),
            out: rows(args.out, q0, lq),
            lse: scratch,
          },
          opts,
        );
        await rt.submit((enc) => this.copyLse(enc, lse, p.totalQ, q0, lq, p.Hq, scratch, false));
      } finally {
        mem.free(scratch);
      }
    }
  }

  async varlenAttentionBackward(
    args: VarlenBackwardArgs<WebGPUBuffer>,
    opts?: AttentionOptions,
  ): Promise<void> {
    const { rt, mem, attention } = this.deps;
    rt.check();
    if (args !== null && typeof args === 'object')
      this.checkBuffers(args, ['dout', 'q', 'k', 'v', 'out', 'dq', 'dk', 'dv']);
    const p = validateVarlenBackwardArgs(args, opts, (b) => mem.lengthOf(b), this.deps);
    const lse = mem.check('lse', args.lse);
    if (lse.dtype !== 'float32') throw new AttentionInputError('lse.dtype', 'float32', lse.dtype);
    for (let b = 0; b < p.B; b++) {
      const q0 = p.cuQ[b]!;
      const lq = p.cuQ[b + 1]! - q0;
      const k0 = p.cuK[b]!;
      const lk = p.cuK[b + 1]! - k0;
      if ((lq === 0 && lk === 0) || p.Hq === 0) continue;
      const scratch = mem.alloc(Math.max(p.Hq * lq, 1), 'float32'); // (1, Hq, Lq_b)
      try {
        if (lq > 0)
          await rt.submit((enc) => this.copyLse(enc, lse, p.totalQ, q0, lq, p.Hq, scratch, true));
        await attention.attentionBackward(
          {
            dout: rows(args.dout, q0, lq),
            q: rows(args.q, q0, lq),
            k: rows(args.k, k0, lk),
            v: rows(args.v, k0, lk),
            out: rows(args.out, q0, lq),
            lse: scratch,
            dq: rows(args.dq, q0, lq),
            dk: rows(args.dk, k0, lk),
            dv: rows(args.dv, k0, lk),
          },
          opts,
        );
      } finally {
        mem.free(scratch);
      }
    }
  }
}
