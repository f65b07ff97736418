/**
 * core's `DeviceVarlenAttention<WebGPUBuffer>`: packed variable-length batches, forward and backward, by core's
 * per-sequence driver (varlenForwardBySequence / varlenBackwardBySequence: one call of the flash forward /
 * backward programs (attention.ts) per sequence on offset views of the packed buffers, so the kernels read them
 * in place and their bottom-right aligned masks are exactly the per-sequence masks). What is WebGPU's: the lse
 * rows move between the packed (Hq, total_q) lse and each sequence's (1, Hq, Lq_b) f32 scratch with
 * copyBufferToBuffer (one copy per head and sequence, one submission).
 *
 * The cost of per-sequence calls is one submission per sequence; measured on SwiftShader (see README,
 * "Inference: KV cache and varlen"). A GPU serving many short sequences would want per-block sequence bounds in
 * the kernels (FA2's BlockInfo reading cu_seqlens: one dispatch for the batch).
 *
 * Sequences with no query write nothing in the forward; in the backward their keys' dk = dv = 0 (the
 * dK/dV pass over zero queries writes zeros), and sequences with no key get dq = 0 likewise.
 */
import {
  validateVarlenBackwardArgs,
  validateVarlenForwardArgs,
  varlenBackwardBySequence,
  varlenForwardBySequence,
  AttentionInputError,
  type AttentionOptions,
  type DeviceAttention,
  type DeviceVarlenAttention,
  type VarlenBackwardArgs,
  type VarlenBySequenceDeps,
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

export class WebGPUVarlenAttention implements DeviceVarlenAttention<WebGPUBuffer> {
  /** The per-sequence driver's deps: WebGPU memory, and the lse rows moved by copyBufferToBuffer. */
  private readonly bySequence: VarlenBySequenceDeps<WebGPUBuffer>;

  constructor(private readonly deps: VarlenDeps) {
    const { rt, mem } = deps;
    this.bySequence = {
      attention: deps.attention,
      alloc: (n, dtype) => mem.alloc(n, dtype),
      free: (b) => mem.free(b),
      copyLse: (lse, scratch, r, toScratch) =>
        rt.submit((enc) => {
          for (let h = 0; h < r.Hq; h++) {
            const packed = (lse.offset + h * r.totalQ + r.q0) * 4;
            const mine = (scratch.offset + h * r.len) * 4;
            if (toScratch)
              enc.copyBufferToBuffer(lse.gpuBuffer, packed, scratch.gpuBuffer, mine, r.len * 4);
            else enc.copyBufferToBuffer(scratch.gpuBuffer, mine, lse.gpuBuffer, packed, r.len * 4);
          }
        }),
    };
  }

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

  private checkLse(buf: WebGPUBuffer): void {
    const lse = this.deps.mem.check('lse', buf);
    if (lse.dtype !== 'float32') throw new AttentionInputError('lse.dtype', 'float32', lse.dtype);
  }

  async varlenAttentionForward(
    args: VarlenForwardArgs<WebGPUBuffer>,
    opts?: AttentionOptions,
  ): Promise<void> {
    const { rt, mem } = this.deps;
    rt.check();
    if (args !== null && typeof args === 'object') this.checkBuffers(args, ['q', 'k', 'v', 'out']);
    const p = validateVarlenForwardArgs(args, opts, (b) => mem.lengthOf(b), this.deps);
    this.checkLse(args.lse);
    await varlenForwardBySequence(args, opts, p, this.bySequence);
  }

  async varlenAttentionBackward(
    args: VarlenBackwardArgs<WebGPUBuffer>,
    opts?: AttentionOptions,
  ): Promise<void> {
    const { rt, mem } = this.deps;
    rt.check();
    if (args !== null && typeof args === 'object')
      this.checkBuffers(args, ['dout', 'q', 'k', 'v', 'out', 'dq', 'dk', 'dv']);
    const p = validateVarlenBackwardArgs(args, opts, (b) => mem.lengthOf(b), this.deps);
    this.checkLse(args.lse);
    await varlenBackwardBySequence(args, opts, p, this.bySequence);
  }
}
