/**
 * core's `DeviceVarlenAttention<CudaBuffer>`: packed variable-length batches, forward and backward, by core's
 * per-sequence driver (varlenForwardBySequence / varlenBackwardBySequence: one strided flash call per sequence on
 * offset views of the packed buffers, CudaDevice.attentionForward / attentionBackward here). What is CUDA's: the
 * lse rows move between the packed (Hq, total_q) lse and each sequence's (1, Hq, Lq_b) float32 scratch with one
 * device-to-device copy per head, in device order.
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
  varlenBackwardBySequence,
  varlenForwardBySequence,
  type AttentionOptions,
  type BufferDType,
  type DeviceAttention,
  type DeviceMemory,
  type DeviceVarlenAttention,
  type StridedView,
  type VarlenBackwardArgs,
  type VarlenBySequenceDeps,
  type VarlenForwardArgs,
  type VarlenProblem,
} from '@flashattn/core';
import type { CudaBuffer } from './cuda-buffer.js';
import type { InferenceDeps, LiveBuffer } from './inference-kv-cache.js';

export interface VarlenDeps extends InferenceDeps {
  /** The device itself: its strided flash attention and its memory. */
  attention: DeviceAttention<CudaBuffer> & DeviceMemory<CudaBuffer>;
  maxHeadDim: number;
}

const FLOATS: readonly BufferDType[] = ['float32', 'float16', 'bfloat16'];
const FORWARD = ['q', 'k', 'v', 'out'];

export class CudaVarlenAttention implements DeviceVarlenAttention<CudaBuffer> {
  /** The per-sequence driver's deps: device memory, and the lse rows moved by device-to-device copies. */
  readonly #bySequence: VarlenBySequenceDeps<CudaBuffer>;

  constructor(private readonly deps: VarlenDeps) {
    this.#bySequence = {
      attention: deps.attention,
      alloc: (n, dtype) => deps.attention.alloc(n, dtype),
      free: (b) => deps.attention.free(b),
      copyLse: (lseBuf, scratchBuf, r, toScratch) => {
        const lse = deps.live('lse', lseBuf);
        const scratch = deps.live('lse scratch', scratchBuf);
        return deps.run(() => {
          for (let h = 0; h < r.Hq; h++) {
            const packed = lse.ptr(h * r.totalQ + r.q0);
            const mine = scratch.ptr(h * r.len);
            if (toScratch) deps.addon.copyDevice(deps.device, mine, packed, r.len * 4);
            else deps.addon.copyDevice(deps.device, packed, mine, r.len * 4);
          }
        });
      },
    };
  }

  /** Resolve the views' buffers and lse (AttentionInputError naming them); a map from each buffer to its state. */
  #buffers(args: object, names: readonly string[]): Map<unknown, LiveBuffer> {
    const a = args as Record<string, unknown>;
    const m = new Map<unknown, LiveBuffer>();
    for (const name of names) {
      const v = a[name] as { buffer?: unknown } | null | undefined;
      if (v !== null && typeof v === 'object')
        m.set(v.buffer, this.deps.live(`${name}.buffer`, v.buffer));
    }
    m.set(a.lse, this.deps.live('lse', a.lse));
    return m;
  }

  /**
   * Everything checked before the first launch: the buffers (in `order`), core's rules (`validate` with their
   * lengths), the views' dtypes (one float dtype, that of `dtypes[0]`), a float32 lse and the grid limits.
   */
  #validate(
    args: object,
    order: readonly string[],
    dtypes: readonly string[],
    validate: (lengthOf: (b: CudaBuffer) => number) => VarlenProblem,
  ): VarlenProblem {
    this.deps.check();
    const bufs =
      args !== null && typeof args === 'object'
        ? this.#buffers(args, order)
        : new Map<unknown, LiveBuffer>();
    const p = validate((b) => bufs.get(b)?.length ?? 0);
    const a = args as Record<string, StridedView<CudaBuffer>>;
    const d0 = bufs.get(a[dtypes[0]!]!.buffer)!.dtype;
    if (!FLOATS.includes(d0))
      throw new AttentionInputError(`${dtypes[0]}.buffer dtype`, FLOATS.join(', '), d0);
    for (const name of dtypes) {
      const d = bufs.get(a[name]!.buffer)!.dtype;
      if (d !== d0)
        throw new AttentionInputError(`${name}.buffer dtype`, `${d0} like ${dtypes[0]}`, d);
    }
    const dl = bufs.get((args as { lse: unknown }).lse)!.dtype;
    if (dl !== 'float32') throw new AttentionInputError('lse dtype', 'float32', dl);
    if (p.Hq > 65535)
      throw new AttentionInputError(
        'q.shape[2] (nheads)',
        'at most 65535 (CUDA grid limits)',
        p.Hq,
      );
    return p;
  }

  async varlenAttentionForward(
    args: VarlenForwardArgs<CudaBuffer>,
    opts?: AttentionOptions,
  ): Promise<void> {
    const p = this.#validate(args, FORWARD, FORWARD, (lengthOf) =>
      validateVarlenForwardArgs(args, opts, lengthOf, this.deps),
    );
    await varlenForwardBySequence(args, opts, p, this.#bySequence);
  }

  async varlenAttentionBackward(
    args: VarlenBackwardArgs<CudaBuffer>,
    opts?: AttentionOptions,
  ): Promise<void> {
    const p = this.#validate(
      args,
      ['dout', 'q', 'k', 'v', 'out', 'dq', 'dk', 'dv'],
      ['q', 'k', 'v', 'out', 'dout', 'dq', 'dk', 'dv'],
      (lengthOf) => validateVarlenBackwardArgs(args, opts, lengthOf, this.deps),
    );
    await varlenBackwardBySequence(args, opts, p, this.#bySequence);
  }
}
